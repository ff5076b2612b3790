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

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::connector_keys::{ConnectorKeys, ConnectorSigningKey, PROOF_HEADER};

/// How long a signed token is good for. Short, because tokens are minted per call.
const TOKEN_TTL: Duration = Duration::from_secs(300);

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
#[derive(Debug, Clone, PartialEq, Eq)]
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
        validation.leeway = 5;
        Ok(MeshKey {
            encoding: Arc::new(EncodingKey::from_secret(bytes)),
            decoding: Arc::new(DecodingKey::from_secret(bytes)),
            validation: Arc::new(validation),
        })
    }

    /// Signs a token for `caller`, good for five minutes.
    pub fn sign(&self, caller: &Caller) -> Result<String, IdentityError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
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
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| IdentityError::Invalid(e.to_string()))?;
        Ok(Caller {
            subject: data.claims.sub,
            tenant: data.claims.tenant,
            connector: data.claims.connector,
        })
    }
}

/// Server interceptor: rejects calls without a valid token and records the [`Caller`].
#[derive(Clone, Debug)]
pub struct RequireCaller {
    key: MeshKey,
    /// When set, connector claims count only with a proof from the connector's key.
    connector_keys: Option<ConnectorKeys>,
}

impl RequireCaller {
    pub fn new(key: MeshKey) -> RequireCaller {
        RequireCaller {
            key,
            connector_keys: None,
        }
    }

    /// Believes a token's connector claim only when the call carries that connector's proof.
    pub fn with_connector_keys(mut self, keys: ConnectorKeys) -> RequireCaller {
        self.connector_keys = Some(keys);
        self
    }
}

impl Interceptor for RequireCaller {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated(IdentityError::Missing.to_string()))?;
        let mut caller = self.key.verify(token).map_err(|error| {
            tracing::info!(error = %error, "denied a call with an invalid service token");
            Status::unauthenticated("invalid service token")
        })?;
        if let (Some(keys), Some(connector)) = (&self.connector_keys, &caller.connector) {
            let proof = request
                .metadata()
                .get(PROOF_HEADER)
                .and_then(|value| value.to_str().ok());
            if !proof.is_some_and(|proof| keys.verify(connector, token, proof)) {
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

/// Client interceptor: signs each outgoing call as `caller` and propagates the trace context.
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
        let token = self.key.sign(&self.caller).map_err(|error| {
            tracing::error!(error = %error, "cannot sign a service token");
            Status::internal("cannot sign a service token")
        })?;
        if let Some(connector_key) = &self.connector_key {
            let proof = MetadataValue::try_from(connector_key.prove(&token))
                .map_err(|_| Status::internal("connector proof is not valid metadata"))?;
            request.metadata_mut().insert(PROOF_HEADER, proof);
        }
        let value = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| Status::internal("service token is not valid metadata"))?;
        request.metadata_mut().insert("authorization", value);
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

    #[test]
    fn short_keys_are_refused_and_debug_is_redacted() {
        assert!(matches!(
            MeshKey::new(&SecretString::from("short".to_owned())),
            Err(IdentityError::WeakKey)
        ));
        assert_eq!(format!("{:?}", key(KEY_A)), "MeshKey([redacted])");
    }
}
