//! Service identity: who is calling, and for which tenant.
//!
//! Every call inside the mesh carries `authorization: Bearer <token>`, a short-lived HS256 token
//! signed with the mesh key. Its claims name the calling service, the tenant the call acts for
//! (taken from the gateway's authenticated customer, never from a request body) and, for a
//! connector, which connector it is. [`RequireCaller`] checks the token on the server and puts a
//! [`Caller`] in the request's extensions; [`MeshCredentials`] signs outgoing calls and carries
//! the trace context along.
//!
//! Every service holds the one HS256 mesh key, so a mesh token alone cannot prove a connector
//! claim: any service could sign `connector: bullhorn`. A connector also proves itself with its
//! own Ed25519 key ([`crate::connector_keys`]): [`MeshCredentials::with_connector_key`] adds the
//! proof to each call, and [`RequireCaller::with_connector_keys`] drops a connector claim that
//! comes without a valid one. Credentials serves leases only to proven connectors when it is
//! given the keys.
//!
//! Both sides avoid repeating crypto on a hot path: a client reuses its signed token (and
//! proof) until half its lifetime is left ([`signed`]), and a server remembers the tokens it
//! verified until they expire ([`verified`]).

mod signed;
mod verified;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::connector_keys::{ConnectorKeys, ConnectorSigningKey, PROOF_HEADER};
use signed::{Signed, SignedTokens, Signer};
use verified::VerifiedTokens;

/// How long a signed token is good for. Short, because a stolen one is good until then.
const TOKEN_TTL: Duration = Duration::from_secs(300);

/// Seconds of clock difference between replicas tolerated when checking `exp`.
const LEEWAY_SECS: u64 = 5;

/// Shortest mesh key accepted: 32 bytes, the HS256 block strength.
pub const MIN_MESH_KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("the mesh key must be at least {MIN_MESH_KEY_LEN} characters")]
    WeakKey,
    #[error("missing bearer token")]
    Missing,
    #[error("invalid service token: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    connector: Option<String>,
    iat: u64,
    exp: u64,
}

/// The verified identity of the caller of one request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller {
    /// The calling service, for example `gateway`, `sync` or `connector:bullhorn`.
    pub subject: String,
    /// The tenant the call acts for; `None` for mesh-internal calls with no tenant.
    pub tenant: Option<String>,
    /// Set when the caller is a connector.
    pub connector: Option<String>,
}

impl Caller {
    /// The caller's identity from a request that passed [`RequireCaller`].
    pub fn of<T>(request: &Request<T>) -> Result<&Caller, Status> {
        request
            .extensions()
            .get::<Caller>()
            .ok_or_else(|| Status::unauthenticated("no verified caller identity"))
    }

    /// The caller's tenant, or `Unauthenticated` when the call carries none.
    pub fn tenant_of<T>(request: &Request<T>) -> Result<String, Status> {
        Caller::of(request)?
            .tenant
            .clone()
            .ok_or_else(|| Status::unauthenticated("this call must act for a tenant"))
    }
}

/// The mesh's signing key. Its Debug output is redacted.
#[derive(Clone)]
pub struct MeshKey {
    encoding: Arc<EncodingKey>,
    decoding: Arc<DecodingKey>,
    /// Built once: every call is checked against the same rules.
    validation: Arc<Validation>,
    /// Tokens signed with this key, reused by every copy of it (see [`signed`]).
    signed: Arc<SignedTokens>,
}

impl std::fmt::Debug for MeshKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MeshKey([redacted])")
    }
}

impl MeshKey {
    pub fn new(secret: &SecretString) -> Result<MeshKey, IdentityError> {
        let bytes = secret.expose_secret().as_bytes();
        if bytes.len() < MIN_MESH_KEY_LEN {
            return Err(IdentityError::WeakKey);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        Ok(MeshKey {
            encoding: Arc::new(EncodingKey::from_secret(bytes)),
            decoding: Arc::new(DecodingKey::from_secret(bytes)),
            validation: Arc::new(validation),
            signed: Arc::default(),
        })
    }

    /// Signs a token for `caller`, good for five minutes.
    pub fn sign(&self, caller: &Caller) -> Result<String, IdentityError> {
        self.sign_at(caller, unix_now())
    }

    fn sign_at(&self, caller: &Caller, now: u64) -> Result<String, IdentityError> {
        let claims = Claims {
            sub: caller.subject.clone(),
            tenant: caller.tenant.clone(),
            connector: caller.connector.clone(),
            iat: now,
            exp: now + TOKEN_TTL.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| IdentityError::Invalid(e.to_string()))
    }

    pub fn verify(&self, token: &str) -> Result<Caller, IdentityError> {
        self.verify_at(token, unix_now()).map(|(caller, _)| caller)
    }

    /// The caller a token names and its expiry (unix seconds), checked at `now` as well as by
    /// jsonwebtoken's own clock, so that a server's idea of the time is the one that counts.
    fn verify_at(&self, token: &str, now: u64) -> Result<(Caller, u64), IdentityError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| IdentityError::Invalid(e.to_string()))?;
        let claims = data.claims;
        if claims.exp.saturating_add(LEEWAY_SECS) < now {
            return Err(IdentityError::Invalid("ExpiredSignature".to_owned()));
        }
        let caller = Caller {
            subject: claims.sub,
            tenant: claims.tenant,
            connector: claims.connector,
        };
        Ok((caller, claims.exp))
    }

    /// The metadata of a call by `caller` at `now`: a token signed earlier while it has more
    /// than half of its lifetime left, else a fresh one (with its proof when `connector_key`).
    fn signed_for(
        &self,
        caller: &Caller,
        connector_key: Option<&ConnectorSigningKey>,
        now: u64,
    ) -> Result<Signed, IdentityError> {
        let signer = Signer {
            caller: caller.clone(),
            connector_key: connector_key.map(|key| key.public_bytes().to_vec()),
        };
        if let Some(signed) = self.signed.get(&signer, now) {
            return Ok(signed);
        }
        let token = self.sign_at(caller, now)?;
        let proof = connector_key
            .map(|key| metadata_value(key.prove(&token)))
            .transpose()?;
        let signed = Signed {
            authorization: metadata_value(format!("Bearer {token}"))?,
            proof,
            issued_at: now,
            renew_at: now + TOKEN_TTL.as_secs() / 2,
        };
        self.signed.keep(signer, signed.clone());
        Ok(signed)
    }
}

fn metadata_value(text: String) -> Result<AsciiMetadataValue, IdentityError> {
    AsciiMetadataValue::try_from(text)
        .map_err(|_| IdentityError::Invalid("not valid as metadata".to_owned()))
}

/// Seconds since the Unix epoch, what token claims count in.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Server interceptor: rejects calls without a valid token and records the [`Caller`].
#[derive(Clone, Debug)]
pub struct RequireCaller {
    key: MeshKey,
    /// When set, connector claims count only with a proof from the connector's key.
    connector_keys: Option<ConnectorKeys>,
    /// Shared by the clones tonic makes per service and connection.
    verified: Arc<VerifiedTokens>,
}

impl RequireCaller {
    pub fn new(key: MeshKey) -> RequireCaller {
        RequireCaller {
            key,
            connector_keys: None,
            verified: Arc::default(),
        }
    }

    /// Believes a token's connector claim only when the call carries that connector's proof.
    pub fn with_connector_keys(mut self, keys: ConnectorKeys) -> RequireCaller {
        self.connector_keys = Some(keys);
        // Proofs remembered under other keys (a clone's) must not count under these.
        self.verified = Arc::default();
        self
    }

    /// The interceptor's check with the time (unix seconds) given, so tests can move it.
    fn check(&self, mut request: Request<()>, now: u64) -> Result<Request<()>, Status> {
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated(IdentityError::Missing.to_string()))?;
        let proof = request
            .metadata()
            .get(PROOF_HEADER)
            .and_then(|value| value.to_str().ok());
        let (mut caller, mut proven) = match self.verified.get(token, proof, now) {
            Some(remembered) => (remembered.caller, remembered.proven),
            None => {
                let (caller, expires_at) = self.key.verify_at(token, now).map_err(|error| {
                    tracing::info!(error = %error, "denied a call with an invalid service token");
                    Status::unauthenticated("invalid service token")
                })?;
                self.verified.remember(token, &caller, expires_at);
                (caller, false)
            }
        };
        if let (Some(keys), Some(connector)) = (&self.connector_keys, &caller.connector) {
            if !proven && let Some(proof) = proof {
                proven = keys.verify(connector, token, proof);
                if proven {
                    self.verified.remember_proof(token, proof);
                }
            }
            if !proven {
                // Not refused: the caller is still a mesh service, just not this connector.
                tracing::warn!(
                    subject = %caller.subject,
                    connector = %connector,
                    "a connector claim came without a valid proof; the call goes on without it"
                );
                caller.connector = None;
            }
        }
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

impl Interceptor for RequireCaller {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.check(request, unix_now())
    }
}

/// Client interceptor: signs outgoing calls as `caller` (reusing the token while it is fresh)
/// and propagates each call's trace context.
#[derive(Clone, Debug)]
pub struct MeshCredentials {
    key: MeshKey,
    caller: Caller,
    /// A connector's own key, proving its connector claim on each call.
    connector_key: Option<ConnectorSigningKey>,
}

impl MeshCredentials {
    pub fn new(key: MeshKey, caller: Caller) -> MeshCredentials {
        MeshCredentials {
            key,
            caller,
            connector_key: None,
        }
    }

    /// Adds the proof of the caller's connector identity to every call.
    pub fn with_connector_key(mut self, key: Option<ConnectorSigningKey>) -> MeshCredentials {
        self.connector_key = key;
        self
    }

    /// A service's own identity, with no tenant.
    pub fn service(key: MeshKey, subject: &str) -> MeshCredentials {
        MeshCredentials::new(
            key,
            Caller {
                subject: subject.to_owned(),
                tenant: None,
                connector: None,
            },
        )
    }

    /// The same identity acting for `tenant`.
    pub fn for_tenant(&self, tenant: &str) -> MeshCredentials {
        let mut caller = self.caller.clone();
        caller.tenant = Some(tenant.to_owned());
        MeshCredentials {
            key: self.key.clone(),
            caller,
            connector_key: self.connector_key.clone(),
        }
    }

    pub fn caller(&self) -> &Caller {
        &self.caller
    }
}

impl Interceptor for MeshCredentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let signed = self
            .key
            .signed_for(&self.caller, self.connector_key.as_ref(), unix_now())
            .map_err(|error| {
                tracing::error!(error = %error, "cannot sign a service token");
                Status::internal("cannot sign a service token")
            })?;
        if let Some(proof) = signed.proof {
            request.metadata_mut().insert(PROOF_HEADER, proof);
        }
        request
            .metadata_mut()
            .insert("authorization", signed.authorization);
        plugboard_proto::trace_context::inject_current(request.metadata_mut());
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> MeshKey {
        MeshKey::new(&SecretString::from(text.to_owned())).unwrap()
    }

    const KEY_A: &str = "a-test-mesh-key-of-at-least-32-bytes!!";
    const KEY_B: &str = "another-mesh-key-of-at-least-32-bytes!";

    #[test]
    fn outgoing_token_is_accepted_and_carries_the_tenant() {
        let credentials = MeshCredentials::service(key(KEY_A), "gateway").for_tenant("acme");
        let request = credentials.clone().call(Request::new(())).unwrap();
        let request = RequireCaller::new(key(KEY_A)).call(request).unwrap();
        let caller = Caller::of(&request).unwrap();
        assert_eq!(caller.subject, "gateway");
        assert_eq!(caller.tenant.as_deref(), Some("acme"));
    }

    #[test]
    fn token_from_another_key_is_refused() {
        let credentials = MeshCredentials::service(key(KEY_B), "gateway");
        let request = credentials.clone().call(Request::new(())).unwrap();
        let status = RequireCaller::new(key(KEY_A)).call(request).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn missing_token_is_refused() {
        let status = RequireCaller::new(key(KEY_A))
            .call(Request::new(()))
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }

    fn bullhorn() -> Caller {
        Caller {
            subject: "connector:bullhorn".into(),
            tenant: Some("acme".into()),
            connector: Some("bullhorn".into()),
        }
    }

    #[test]
    fn a_connector_claim_counts_only_with_its_connectors_proof() {
        let (bullhorn_key, _) = ConnectorSigningKey::generate();
        let (other_key, _) = ConnectorSigningKey::generate();
        let keys = ConnectorKeys::of([("bullhorn", &bullhorn_key)]);
        let server = || RequireCaller::new(key(KEY_A)).with_connector_keys(keys.clone());
        let connector_of = |credentials: MeshCredentials| {
            let request = credentials.clone().call(Request::new(())).unwrap();
            let request = server().call(request).unwrap();
            Caller::of(&request).unwrap().connector.clone()
        };

        let proven = MeshCredentials::new(key(KEY_A), bullhorn())
            .with_connector_key(Some(bullhorn_key.clone()));
        assert_eq!(connector_of(proven.clone()).as_deref(), Some("bullhorn"));
        // The tenant-scoped copy keeps proving.
        assert_eq!(
            connector_of(proven.for_tenant("other")).as_deref(),
            Some("bullhorn")
        );
        // A mesh-key holder that only claims to be bullhorn, or proves with another key.
        assert_eq!(
            connector_of(MeshCredentials::new(key(KEY_A), bullhorn())),
            None
        );
        let wrong =
            MeshCredentials::new(key(KEY_A), bullhorn()).with_connector_key(Some(other_key));
        assert_eq!(connector_of(wrong), None);

        // A proof lifted from one call does not fit another token.
        let first = proven.clone().call(Request::new(())).unwrap();
        let lifted = first.metadata().get(PROOF_HEADER).unwrap().clone();
        std::thread::sleep(Duration::from_millis(1100));
        let mut replay = MeshCredentials::new(key(KEY_A), bullhorn())
            .call(Request::new(()))
            .unwrap();
        replay.metadata_mut().insert(PROOF_HEADER, lifted);
        let replay = server().call(replay).unwrap();
        assert_eq!(Caller::of(&replay).unwrap().connector, None);
    }

    fn authorization_of(request: &Request<()>) -> String {
        let value = request.metadata().get("authorization").unwrap();
        value.to_str().unwrap().to_owned()
    }

    #[test]
    fn a_signed_token_is_reused_by_every_copy_until_half_its_lifetime_is_left() {
        let mesh = key(KEY_A);
        let gateway = MeshCredentials::service(mesh.clone(), "gateway");
        let first = gateway.for_tenant("acme").call(Request::new(())).unwrap();
        let again = gateway.for_tenant("acme").call(Request::new(())).unwrap();
        assert_eq!(authorization_of(&first), authorization_of(&again));
        let other = gateway.for_tenant("globex").call(Request::new(())).unwrap();
        assert_ne!(authorization_of(&first), authorization_of(&other));

        let caller = gateway.for_tenant("acme").caller().clone();
        let now = unix_now();
        let kept = mesh.signed_for(&caller, None, now).unwrap();
        let half_life = TOKEN_TTL.as_secs() / 2;
        let late = mesh.signed_for(&caller, None, now + half_life).unwrap();
        assert_ne!(kept.authorization, late.authorization, "renewed");
        assert_eq!(
            mesh.signed_for(&caller, None, now + half_life + 1)
                .unwrap()
                .authorization,
            late.authorization
        );
    }

    #[test]
    fn a_remembered_token_is_refused_once_it_expires() {
        let server = RequireCaller::new(key(KEY_A));
        let credentials = MeshCredentials::service(key(KEY_A), "gateway").for_tenant("acme");
        let request = || credentials.clone().call(Request::new(())).unwrap();
        let now = unix_now();
        assert!(server.check(request(), now).is_ok());
        assert!(server.check(request(), now + 10).is_ok(), "remembered");
        let expired = now + TOKEN_TTL.as_secs() + LEEWAY_SECS + 1;
        let status = server.check(request(), expired).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        // Another key's token is refused by a server that remembers tokens.
        let foreign = MeshCredentials::service(key(KEY_B), "gateway").for_tenant("acme");
        let status = server
            .check(foreign.clone().call(Request::new(())).unwrap(), now)
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn a_remembered_token_keeps_its_connector_only_with_the_proof_that_verified() {
        let (bullhorn_key, _) = ConnectorSigningKey::generate();
        let (other_key, _) = ConnectorSigningKey::generate();
        let server = RequireCaller::new(key(KEY_A))
            .with_connector_keys(ConnectorKeys::of([("bullhorn", &bullhorn_key)]));
        let proven =
            MeshCredentials::new(key(KEY_A), bullhorn()).with_connector_key(Some(bullhorn_key));
        let connector_of = |request: Request<()>| {
            let request = server.check(request, unix_now()).unwrap();
            Caller::of(&request).unwrap().connector.clone()
        };
        let good = proven.clone().call(Request::new(())).unwrap();
        let token = authorization_of(&good);
        assert_eq!(connector_of(good).as_deref(), Some("bullhorn"));

        // The same token, seen and proven before, with a proof by another key or none.
        let mut forged = proven.clone().call(Request::new(())).unwrap();
        assert_eq!(authorization_of(&forged), token);
        let bare = token.strip_prefix("Bearer ").unwrap();
        let wrong = AsciiMetadataValue::try_from(other_key.prove(bare)).unwrap();
        forged.metadata_mut().insert(PROOF_HEADER, wrong);
        assert_eq!(connector_of(forged), None);
        let mut unproven = proven.clone().call(Request::new(())).unwrap();
        unproven.metadata_mut().remove(PROOF_HEADER);
        assert_eq!(connector_of(unproven), None);

        // The good proof still counts after the bad ones.
        let good = proven.clone().call(Request::new(())).unwrap();
        assert_eq!(connector_of(good).as_deref(), Some("bullhorn"));
    }

    #[test]
    fn short_keys_are_refused_and_debug_is_redacted() {
        assert!(matches!(
            MeshKey::new(&SecretString::from("short".to_owned())),
            Err(IdentityError::WeakKey)
        ));
        assert_eq!(format!("{:?}", key(KEY_A)), "MeshKey([redacted])");
    }
}
