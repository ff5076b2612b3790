//! Connector identities that other services cannot mint.
//!
//! Every service holds the HS256 mesh key, so a mesh token alone cannot prove that its caller
//! is the connector it names: any service could sign `connector: bullhorn`. A connector
//! therefore also holds its own Ed25519 key pair and sends, beside its mesh token, a proof: its
//! signature over that exact token (`x-plugboard-connector-proof`). A server configured with the
//! connectors' public keys ([`ConnectorKeys`]) believes a connector claim only with a valid
//! proof; without one the call goes on as the calling service, with no connector identity, and
//! credentials refuses it a lease. The proof is bound to one token, so it lives no longer than
//! the token's five minutes.
//!
//! Keys are plain text in configuration: a private key is the base64 of its PKCS#8 document
//! (what `plugboard keys connector <name>` prints and ring generates), a public key the base64 of
//! its 32 raw bytes.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use secrecy::{ExposeSecret, SecretString};

/// The metadata key of the proof.
pub const PROOF_HEADER: &str = "x-plugboard-connector-proof";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConnectorKeyError {
    #[error("the connector signing key is not base64 of an Ed25519 PKCS#8 document")]
    BadSigningKey,
    #[error(
        "connector public keys are `name=base64` pairs separated by commas or new lines; \
         `{0}` is not one"
    )]
    BadEntry(String),
    #[error("the public key of connector `{0}` is not base64 of 32 bytes")]
    BadPublicKey(String),
    #[error("connector `{0}` has two public keys; give each connector one")]
    Duplicate(String),
}

/// One connector's private key. Debug output is redacted.
#[derive(Clone)]
pub struct ConnectorSigningKey {
    pair: Arc<Ed25519KeyPair>,
}

impl std::fmt::Debug for ConnectorSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectorSigningKey([redacted])")
    }
}

impl ConnectorSigningKey {
    /// A new random key pair and its private key as configuration text.
    pub fn generate() -> (ConnectorSigningKey, SecretString) {
        let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .expect("the system random source works");
        let text = SecretString::from(STANDARD.encode(document.as_ref()));
        let key = ConnectorSigningKey::parse(&text).expect("ring reads its own PKCS#8");
        (key, text)
    }

    /// Reads the base64 PKCS#8 document of an Ed25519 key.
    pub fn parse(text: &SecretString) -> Result<ConnectorSigningKey, ConnectorKeyError> {
        let document = STANDARD
            .decode(text.expose_secret().trim())
            .map_err(|_| ConnectorKeyError::BadSigningKey)?;
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&document)
            .map_err(|_| ConnectorKeyError::BadSigningKey)?;
        Ok(ConnectorSigningKey {
            pair: Arc::new(pair),
        })
    }

    /// The public half, as configuration text for the servers that check proofs.
    pub fn public_key(&self) -> String {
        STANDARD.encode(self.pair.public_key().as_ref())
    }

    /// The public half's raw bytes: what tells one signing key from another.
    pub(crate) fn public_bytes(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// The proof for one token.
    pub fn prove(&self, token: &str) -> String {
        STANDARD.encode(self.pair.sign(token.as_bytes()).as_ref())
    }
}

/// The public keys of the mesh's connectors, by connector name.
#[derive(Debug, Clone, Default)]
pub struct ConnectorKeys {
    keys: Arc<HashMap<String, Vec<u8>>>,
}

impl ConnectorKeys {
    /// Reads `name=base64` pairs separated by commas or new lines; blank entries are skipped.
    pub fn parse(text: &str) -> Result<ConnectorKeys, ConnectorKeyError> {
        let mut keys = HashMap::new();
        for entry in text.split([',', '\n']).map(str::trim) {
            if entry.is_empty() {
                continue;
            }
            let (name, key) = entry
                .split_once('=')
                .map(|(name, key)| (name.trim(), key.trim()))
                .filter(|(name, key)| !name.is_empty() && !key.is_empty())
                .ok_or_else(|| ConnectorKeyError::BadEntry(entry.to_owned()))?;
            let bytes = STANDARD
                .decode(key)
                .ok()
                .filter(|bytes| bytes.len() == 32)
                .ok_or_else(|| ConnectorKeyError::BadPublicKey(name.to_owned()))?;
            if keys.insert(name.to_owned(), bytes).is_some() {
                return Err(ConnectorKeyError::Duplicate(name.to_owned()));
            }
        }
        Ok(ConnectorKeys {
            keys: Arc::new(keys),
        })
    }

    /// Keys built from signing keys in this process (dev mode, tests).
    pub fn of<'a>(
        signing: impl IntoIterator<Item = (&'a str, &'a ConnectorSigningKey)>,
    ) -> ConnectorKeys {
        let keys = signing
            .into_iter()
            .map(|(name, key)| (name.to_owned(), key.pair.public_key().as_ref().to_vec()))
            .collect();
        ConnectorKeys {
            keys: Arc::new(keys),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether `proof` is `connector`'s signature over `token`. An unknown connector has no
    /// valid proof.
    pub fn verify(&self, connector: &str, token: &str, proof: &str) -> bool {
        let Some(public) = self.keys.get(connector) else {
            return false;
        };
        let Ok(signature) = STANDARD.decode(proof.trim()) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, public)
            .verify(token.as_bytes(), &signature)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_verifies_for_its_connector_and_token_only() {
        let (bullhorn, _) = ConnectorSigningKey::generate();
        let (greenhouse, _) = ConnectorSigningKey::generate();
        let keys = ConnectorKeys::of([("bullhorn", &bullhorn), ("greenhouse", &greenhouse)]);
        let proof = bullhorn.prove("token-1");
        assert!(keys.verify("bullhorn", "token-1", &proof));
        assert!(!keys.verify("bullhorn", "token-2", &proof));
        assert!(!keys.verify("greenhouse", "token-1", &proof));
        assert!(!keys.verify("affinda", "token-1", &proof));
        assert!(!keys.verify("bullhorn", "token-1", "not base64!"));
    }

    #[test]
    fn configuration_text_round_trips() {
        let (key, private) = ConnectorSigningKey::generate();
        let again = ConnectorSigningKey::parse(&private).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let keys = ConnectorKeys::parse(&format!(
            "bullhorn={}\n, greenhouse = {}",
            key.public_key(),
            { ConnectorSigningKey::generate().0.public_key() }
        ))
        .unwrap();
        assert!(keys.verify("bullhorn", "t", &again.prove("t")));
        assert_eq!(format!("{key:?}"), "ConnectorSigningKey([redacted])");
    }

    #[test]
    fn keys_made_by_openssl_are_read() {
        // `openssl genpkey -algorithm ed25519 -outform DER | base64`, as deploy/compose's
        // make-secrets.sh makes them; a throwaway key for this test only.
        let private = SecretString::from(
            "MC4CAQAwBQYDK2VwBCIEIE+1xMm5wgUSKZpyWVoyb5G/iqjuAH0qtjLGdmwEx158".to_owned(),
        );
        let key = ConnectorSigningKey::parse(&private).unwrap();
        assert_eq!(
            key.public_key(),
            "dkzUPHAdeHQgjyEj7oQTDtUhJ0XJQdS39kJEzUZoLb4="
        );
    }

    #[test]
    fn bad_configuration_says_what_is_wrong() {
        let secret = |text: &str| SecretString::from(text.to_owned());
        assert_eq!(
            ConnectorSigningKey::parse(&secret("bm90IGEga2V5")).unwrap_err(),
            ConnectorKeyError::BadSigningKey
        );
        assert_eq!(
            ConnectorKeys::parse("bullhorn").unwrap_err(),
            ConnectorKeyError::BadEntry("bullhorn".into())
        );
        assert_eq!(
            ConnectorKeys::parse("bullhorn=c2hvcnQ=").unwrap_err(),
            ConnectorKeyError::BadPublicKey("bullhorn".into())
        );
        let public = ConnectorSigningKey::generate().0.public_key();
        assert_eq!(
            ConnectorKeys::parse(&format!("a={public},a={public}")).unwrap_err(),
            ConnectorKeyError::Duplicate("a".into())
        );
        assert!(ConnectorKeys::parse(" , \n").unwrap().is_empty());
    }
}
