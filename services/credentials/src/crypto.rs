//! Sealing secrets at rest: AES-256-GCM under the master key.
//!
//! Every seal uses a fresh random 96-bit nonce, and the associated data binds the ciphertext to
//! its row (tenant, connection id, version), so a ciphertext copied into another row, or replayed
//! from an older version, fails to open. The stored text is `v1.<base64(nonce || ciphertext)>`;
//! the prefix leaves room for other formats.
//!
//! Each master key has a key id, a truncated SHA-256 fingerprint stored beside every sealed
//! value. It tells "this row was sealed under another key" (a configuration mistake) apart from
//! "this ciphertext is damaged", and is what key rotation will index on. TODO(#4): envelope
//! encryption with per-row data keys and a keyring for rotation.

use aes_gcm::aead::array::Array;
use aes_gcm::aead::{Aead, Generate, Key, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// Length of a master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const FORMAT_PREFIX: &str = "v1.";
const AAD_DOMAIN: &[u8] = b"plugboard.credentials.v1.secret";
const KEY_ID_DOMAIN: &[u8] = b"plugboard.credentials.v1.key-id";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("must be standard base64")]
    NotBase64,
    #[error("must decode to exactly {MASTER_KEY_LEN} bytes, got {0}")]
    WrongLength(usize),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// The ciphertext is malformed, damaged, bound to another row or sealed under another key.
    #[error("sealed value does not open")]
    Unreadable,
    #[error("the system random source failed")]
    Random,
    #[error("encryption failed")]
    Encrypt,
}

/// The row a ciphertext belongs to, authenticated as associated data.
#[derive(Debug, Clone, Copy)]
pub struct RowBinding<'a> {
    pub tenant: &'a str,
    pub connection_id: &'a str,
    pub version: u64,
}

impl RowBinding<'_> {
    /// Length-prefixed fields, so no two different rows share associated data.
    fn associated_data(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(64 + self.tenant.len() + self.connection_id.len());
        aad.extend_from_slice(AAD_DOMAIN);
        for field in [self.tenant, self.connection_id] {
            aad.extend_from_slice(&(field.len() as u64).to_be_bytes());
            aad.extend_from_slice(field.as_bytes());
        }
        aad.extend_from_slice(&self.version.to_be_bytes());
        aad
    }
}

/// The AES-256-GCM master key. Debug output is redacted.
#[derive(Clone)]
pub struct MasterKey {
    cipher: Aes256Gcm,
    key_id: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl MasterKey {
    /// A key from its base64 text (standard alphabet, padded), which must hold exactly 32 bytes.
    pub fn from_base64(text: &SecretString) -> Result<MasterKey, KeyError> {
        let bytes = BASE64
            .decode(text.expose_secret().trim())
            .map_err(|_| KeyError::NotBase64)?;
        if bytes.len() != MASTER_KEY_LEN {
            return Err(KeyError::WrongLength(bytes.len()));
        }
        let cipher =
            Aes256Gcm::new_from_slice(&bytes).map_err(|_| KeyError::WrongLength(bytes.len()))?;
        let mut fingerprint = Sha256::new();
        fingerprint.update(KEY_ID_DOMAIN);
        fingerprint.update(&bytes);
        let key_id = fingerprint.finalize()[..8]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        Ok(MasterKey { cipher, key_id })
    }

    /// A fresh random key as base64 text, for dev mode and operators.
    pub fn generate_base64() -> Result<SecretString, SealError> {
        let key = Key::<Aes256Gcm>::try_generate().map_err(|_| SealError::Random)?;
        Ok(SecretString::from(BASE64.encode(key.as_slice())))
    }

    /// The fingerprint stored beside every value this key seals.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn seal(&self, binding: RowBinding<'_>, plaintext: &[u8]) -> Result<String, SealError> {
        let nonce = Nonce::try_generate().map_err(|_| SealError::Random)?;
        let aad = binding.associated_data();
        let payload = Payload {
            msg: plaintext,
            aad: &aad,
        };
        let ciphertext = self
            .cipher
            .encrypt(&nonce, payload)
            .map_err(|_| SealError::Encrypt)?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(nonce.as_slice());
        sealed.extend_from_slice(&ciphertext);
        Ok(format!("{FORMAT_PREFIX}{}", BASE64.encode(sealed)))
    }

    pub fn open(&self, binding: RowBinding<'_>, sealed: &str) -> Result<Vec<u8>, SealError> {
        let encoded = sealed
            .strip_prefix(FORMAT_PREFIX)
            .ok_or(SealError::Unreadable)?;
        let bytes = BASE64.decode(encoded).map_err(|_| SealError::Unreadable)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::Unreadable);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Array::try_from(nonce).map_err(|_| SealError::Unreadable)?;
        let aad = binding.associated_data();
        let payload = Payload {
            msg: ciphertext,
            aad: &aad,
        };
        self.cipher
            .decrypt(&nonce, payload)
            .map_err(|_| SealError::Unreadable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::from_base64(&MasterKey::generate_base64().unwrap()).unwrap()
    }

    fn row(tenant: &'static str, connection_id: &'static str, version: u64) -> RowBinding<'static> {
        RowBinding {
            tenant,
            connection_id,
            version,
        }
    }

    #[test]
    fn round_trip_with_a_fresh_nonce_each_time() {
        let key = key();
        let first = key.seal(row("acme", "bh-1", 1), b"hunter2").unwrap();
        let second = key.seal(row("acme", "bh-1", 1), b"hunter2").unwrap();
        assert_ne!(first, second, "nonces must differ");
        assert!(!first.contains("hunter2"));
        assert_eq!(
            key.open(row("acme", "bh-1", 1), &first).unwrap(),
            b"hunter2"
        );
        assert_eq!(
            key.open(row("acme", "bh-1", 1), &second).unwrap(),
            b"hunter2"
        );
    }

    #[test]
    fn ciphertext_is_bound_to_its_row() {
        let key = key();
        let sealed = key.seal(row("acme", "bh-1", 3), b"secret").unwrap();
        for other in [
            row("globex", "bh-1", 3),
            row("acme", "bh-2", 3),
            row("acme", "bh-1", 2),
        ] {
            assert_eq!(key.open(other, &sealed), Err(SealError::Unreadable));
        }
        // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
        let sealed = key.seal(row("ab", "c", 1), b"secret").unwrap();
        assert_eq!(
            key.open(row("a", "bc", 1), &sealed),
            Err(SealError::Unreadable)
        );
    }

    #[test]
    fn another_key_fails_closed_and_has_another_id() {
        let (first, second) = (key(), key());
        assert_ne!(first.key_id(), second.key_id());
        let sealed = first.seal(row("acme", "bh-1", 1), b"secret").unwrap();
        assert_eq!(
            second.open(row("acme", "bh-1", 1), &sealed),
            Err(SealError::Unreadable)
        );
    }

    #[test]
    fn tampering_is_detected() {
        let key = key();
        let sealed = key.seal(row("acme", "bh-1", 1), b"secret").unwrap();
        let mut bytes = BASE64.decode(&sealed[FORMAT_PREFIX.len()..]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = format!("{FORMAT_PREFIX}{}", BASE64.encode(bytes));
        assert_eq!(
            key.open(row("acme", "bh-1", 1), &tampered),
            Err(SealError::Unreadable)
        );
        assert_eq!(
            key.open(row("acme", "bh-1", 1), "v1.AAAA"),
            Err(SealError::Unreadable)
        );
        assert_eq!(
            key.open(row("acme", "bh-1", 1), "garbage"),
            Err(SealError::Unreadable)
        );
    }

    #[test]
    fn key_text_must_be_32_bytes_of_base64() {
        let short = SecretString::from(BASE64.encode([7u8; 16]));
        assert_eq!(
            MasterKey::from_base64(&short).unwrap_err(),
            KeyError::WrongLength(16)
        );
        let not_base64 = SecretString::from("not base64 at all!".to_owned());
        assert_eq!(
            MasterKey::from_base64(&not_base64).unwrap_err(),
            KeyError::NotBase64
        );
        let same = SecretString::from(BASE64.encode([7u8; 32]));
        let key_id = MasterKey::from_base64(&same).unwrap().key_id().to_owned();
        assert_eq!(MasterKey::from_base64(&same).unwrap().key_id(), key_id);
        assert!(!format!("{:?}", MasterKey::from_base64(&same).unwrap()).contains("cipher"));
    }
}
