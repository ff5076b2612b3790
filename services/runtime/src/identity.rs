//! Service identity: who is calling, and for which tenant.
//!
//! Every call inside the mesh carries `authorization: Bearer <token>`, a short-lived HS256 token
//! signed with the mesh key. Its claims name the calling service, the tenant the call acts for
//! (taken from the gateway's authenticated customer, never from a request body) and, for a
//! connector, which connector it is. [`RequireCaller`] checks the token on the server and puts a
//! [`Caller`] in the request's extensions; [`MeshCredentials`] signs outgoing calls and carries
//! the trace context along.
//!
//! TODO(#4): every service holds the one HS256 mesh key, so any service (or an attacker who
//! takes one) can mint a `connector:<name>` identity and lease that connector's secrets from
//! credentials. The planned scheme: one Ed25519 key pair per service (jsonwebtoken's EdDSA),
//! tokens naming their signer in `kid`; every service verifies with the public keys of the mesh
//! (given as config, like the mesh key today), and credentials accepts LeaseAccess only from a
//! token signed by a key registered for that connector. Split mode mounts each private key in
//! its own pod only; dev mode generates the pairs in process. Not built yet.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

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
}

impl RequireCaller {
    pub fn new(key: MeshKey) -> RequireCaller {
        RequireCaller { key }
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
        let caller = self.key.verify(token).map_err(|error| {
            tracing::info!(error = %error, "denied a call with an invalid service token");
            Status::unauthenticated("invalid service token")
        })?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

/// Client interceptor: signs each outgoing call as `caller` and propagates the trace context.
#[derive(Clone, Debug)]
pub struct MeshCredentials {
    key: MeshKey,
    caller: Caller,
}

impl MeshCredentials {
    pub fn new(key: MeshKey, caller: Caller) -> MeshCredentials {
        MeshCredentials { key, caller }
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

    #[test]
    fn short_keys_are_refused_and_debug_is_redacted() {
        assert!(matches!(
            MeshKey::new(&SecretString::from("short".to_owned())),
            Err(IdentityError::WeakKey)
        ));
        assert_eq!(format!("{:?}", key(KEY_A)), "MeshKey([redacted])");
    }
}
