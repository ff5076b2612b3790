//! HMACBoard's request signature, which a manifest cannot write: an HMAC-SHA256, keyed with the
//! connection's signing secret (the basic credential's password), over the method, the path
//! with its query, a Unix timestamp and the SHA-256 of the body, one per line. Compiled into
//! the connector runtime as the `sign_request` hook `hmacboard.sign`.

use sha2::{Digest, Sha256};

use crate::access::Secret;
use crate::hooks::{OutgoingRequest, SignRequest};
use crate::manifest::Algorithm;
use crate::webhook::sign;

/// The name the manifest gives the hook.
pub const SIGN_REQUEST: &str = "hmacboard.sign";

pub struct Signer;

impl SignRequest for Signer {
    fn sign(
        &self,
        request: &OutgoingRequest<'_>,
        secret: &Secret,
    ) -> Result<Vec<(String, String)>, String> {
        let key = secret
            .get("password")
            .filter(|key| !key.is_empty())
            .ok_or("the credential has no signing secret (password)")?;
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let signature = signature(key, request, &timestamp);
        Ok(vec![
            ("X-Hmacboard-Timestamp".to_owned(), timestamp),
            ("X-Hmacboard-Signature".to_owned(), signature),
        ])
    }
}

/// The hex signature of `request` at `timestamp`; the sandbox checks the same text.
fn signature(key: &str, request: &OutgoingRequest<'_>, timestamp: &str) -> String {
    let url = request.url;
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let body = hex::encode(Sha256::digest(request.body.unwrap_or_default()));
    let text = format!("{}\n{path}\n{timestamp}\n{body}", request.method);
    hex::encode(sign(Algorithm::HmacSha256, key.as_bytes(), text.as_bytes()))
}
