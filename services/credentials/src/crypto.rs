//! Envelope encryption at rest: AES-256-GCM data keys per tenant, wrapped by a master key.
//!
//! A secret is sealed with its tenant's random 256-bit [`DataKey`]; the data key is stored
//! wrapped (sealed) by a [`MasterKey`], with associated data naming the tenant and the data key
//! id, so a wrapped key copied to another tenant does not open. Rotating the master key re-wraps
//! the few data keys and never touches a secret's ciphertext. The [`Keyring`] holds the current
//! master key plus previous ones, and unwrapping picks the key by its id.
//!
//! Every seal uses a fresh random 96-bit nonce, and a secret's associated data binds its
//! ciphertext to its row (tenant, connection id, version), so a ciphertext copied into another
//! row, or replayed from an older version, fails to open. The stored text is
//! `v1.<base64(nonce || ciphertext)>`; the prefix leaves room for other formats.
//!
//! Each master key has a key id, a truncated SHA-256 fingerprint stored beside every value it
//! wraps. It tells "wrapped under a key we were not given" (a configuration mistake) apart from
//! "this ciphertext is damaged". Rows written before envelope encryption were sealed directly by
//! a master key; [`MasterKey::open`] still reads them so they can be migrated.

use aes_gcm::aead::array::Array;
use aes_gcm::aead::{Aead, Generate, Key, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Length of a master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const FORMAT_PREFIX: &str = "v1.";
const AAD_DOMAIN: &[u8] = b"plugboard.credentials.v1.secret";
const KEY_ID_DOMAIN: &[u8] = b"plugboard.credentials.v1.key-id";
const DATA_KEY_DOMAIN: &[u8] = b"plugboard.credentials.v1.data-key";

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
        let mut aad = prefixed(AAD_DOMAIN, &[self.tenant, self.connection_id]);
        aad.extend_from_slice(&self.version.to_be_bytes());
        aad
    }
}

/// `domain` followed by each field with its length in front.
fn prefixed(domain: &[u8], fields: &[&str]) -> Vec<u8> {
    let mut aad =
        Vec::with_capacity(domain.len() + fields.iter().map(|f| f.len() + 8).sum::<usize>());
    aad.extend_from_slice(domain);
    for field in fields {
        aad.extend_from_slice(&(field.len() as u64).to_be_bytes());
        aad.extend_from_slice(field.as_bytes());
    }
    aad
}

fn seal_with(cipher: &Aes256Gcm, aad: &[u8], plaintext: &[u8]) -> Result<String, SealError> {
    let nonce = Nonce::try_generate().map_err(|_| SealError::Random)?;
    let payload = Payload {
        msg: plaintext,
        aad,
    };
    let ciphertext = cipher
        .encrypt(&nonce, payload)
        .map_err(|_| SealError::Encrypt)?;
    let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    sealed.extend_from_slice(nonce.as_slice());
    sealed.extend_from_slice(&ciphertext);
    Ok(format!("{FORMAT_PREFIX}{}", BASE64.encode(sealed)))
}

/// The plaintext, in a buffer cleared when it is dropped.
fn open_with(
    cipher: &Aes256Gcm,
    aad: &[u8],
    sealed: &str,
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let encoded = sealed
        .strip_prefix(FORMAT_PREFIX)
        .ok_or(SealError::Unreadable)?;
    let bytes = BASE64.decode(encoded).map_err(|_| SealError::Unreadable)?;
    if bytes.len() < NONCE_LEN {
        return Err(SealError::Unreadable);
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
    let nonce = Array::try_from(nonce).map_err(|_| SealError::Unreadable)?;
    let payload = Payload {
        msg: ciphertext,
        aad,
    };
    cipher
        .decrypt(&nonce, payload)
        .map(Zeroizing::new)
        .map_err(|_| SealError::Unreadable)
}

/// Which tenant and data key id a wrapped data key belongs to, authenticated as associated data.
fn data_key_binding(tenant: &str, data_key_id: &str) -> Vec<u8> {
    prefixed(DATA_KEY_DOMAIN, &[tenant, data_key_id])
}

/// A tenant's random 256-bit data key, which seals that tenant's secrets. Debug output is
/// redacted; only a wrapped form is ever stored. Its bytes and the cipher's key schedule are
/// cleared when it is dropped.
#[derive(Clone)]
pub struct DataKey {
    cipher: Aes256Gcm,
    bytes: Zeroizing<[u8; MASTER_KEY_LEN]>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

impl DataKey {
    /// A fresh key from the system random source.
    pub fn generate() -> Result<DataKey, SealError> {
        let mut key = Key::<Aes256Gcm>::try_generate().map_err(|_| SealError::Random)?;
        let data_key = DataKey::from_slice(key.as_slice()).ok_or(SealError::Random);
        zeroize::Zeroize::zeroize(key.as_mut_slice());
        data_key
    }

    fn from_slice(slice: &[u8]) -> Option<DataKey> {
        let bytes = Zeroizing::new(<[u8; MASTER_KEY_LEN]>::try_from(slice).ok()?);
        let cipher = Aes256Gcm::new_from_slice(bytes.as_slice()).ok()?;
        Some(DataKey { cipher, bytes })
    }

    pub fn seal(&self, binding: RowBinding<'_>, plaintext: &[u8]) -> Result<String, SealError> {
        seal_with(&self.cipher, &binding.associated_data(), plaintext)
    }

    /// The plaintext, cleared when the buffer is dropped.
    pub fn open(
        &self,
        binding: RowBinding<'_>,
        sealed: &str,
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        open_with(&self.cipher, &binding.associated_data(), sealed)
    }
}

/// The master keys the service was given: the current one, which wraps every new or re-wrapped
/// data key, and previous ones that still unwrap until the rewrap has moved everything over.
#[derive(Debug, Clone)]
pub struct Keyring {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl From<MasterKey> for Keyring {
    fn from(current: MasterKey) -> Keyring {
        Keyring::new(current, Vec::new())
    }
}

impl Keyring {
    /// Previous keys equal to the current one are dropped.
    pub fn new(current: MasterKey, previous: Vec<MasterKey>) -> Keyring {
        let mut kept: Vec<MasterKey> = Vec::new();
        for key in previous {
            if key.key_id != current.key_id && kept.iter().all(|k| k.key_id != key.key_id) {
                kept.push(key);
            }
        }
        Keyring {
            current,
            previous: kept,
        }
    }

    pub fn current(&self) -> &MasterKey {
        &self.current
    }

    /// The key with this id, current or previous.
    pub fn find(&self, key_id: &str) -> Option<&MasterKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| key.key_id == key_id)
    }

    /// This keyring with every key of `held` that it lacks added as a previous key: what a
    /// replica holds after reading its key files again by itself, so that a file edited by
    /// mistake can add keys but never take away one that still opens stored data keys.
    pub fn merged_with(&self, held: &Keyring) -> Keyring {
        let mut previous = self.previous.clone();
        previous.extend(
            std::iter::once(&held.current)
                .chain(&held.previous)
                .cloned(),
        );
        Keyring::new(self.current.clone(), previous)
    }

    /// The ids of every key held, current first.
    pub fn key_ids(&self) -> Vec<&str> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .map(MasterKey::key_id)
            .collect()
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
        let bytes = Zeroizing::new(
            BASE64
                .decode(text.expose_secret().trim())
                .map_err(|_| KeyError::NotBase64)?,
        );
        if bytes.len() != MASTER_KEY_LEN {
            return Err(KeyError::WrongLength(bytes.len()));
        }
        let cipher =
            Aes256Gcm::new_from_slice(&bytes).map_err(|_| KeyError::WrongLength(bytes.len()))?;
        let mut fingerprint = Sha256::new();
        fingerprint.update(KEY_ID_DOMAIN);
        fingerprint.update(bytes.as_slice());
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

    /// Seals directly under the master key: the format of rows written before envelope
    /// encryption, kept so tests can create such rows and the migration can read them.
    pub fn seal(&self, binding: RowBinding<'_>, plaintext: &[u8]) -> Result<String, SealError> {
        seal_with(&self.cipher, &binding.associated_data(), plaintext)
    }

    /// Opens a row sealed directly under the master key (before envelope encryption).
    pub fn open(
        &self,
        binding: RowBinding<'_>,
        sealed: &str,
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        open_with(&self.cipher, &binding.associated_data(), sealed)
    }

    /// The stored form of a tenant's data key, bound to the tenant and the data key id.
    pub fn wrap(
        &self,
        tenant: &str,
        data_key_id: &str,
        data_key: &DataKey,
    ) -> Result<String, SealError> {
        seal_with(
            &self.cipher,
            &data_key_binding(tenant, data_key_id),
            data_key.bytes.as_slice(),
        )
    }

    pub fn unwrap_key(
        &self,
        tenant: &str,
        data_key_id: &str,
        wrapped: &str,
    ) -> Result<DataKey, SealError> {
        let bytes = open_with(
            &self.cipher,
            &data_key_binding(tenant, data_key_id),
            wrapped,
        )?;
        DataKey::from_slice(&bytes).ok_or(SealError::Unreadable)
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
            key.open(row("acme", "bh-1", 1), &first).unwrap().as_slice(),
            b"hunter2"
        );
        assert_eq!(
            key.open(row("acme", "bh-1", 1), &second)
                .unwrap()
                .as_slice(),
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

    #[test]
    fn data_keys_wrap_per_tenant_and_seal_secrets() {
        let master = key();
        let data_key = DataKey::generate().unwrap();
        assert_eq!(format!("{data_key:?}"), "DataKey([redacted])");
        let wrapped = master.wrap("acme", "dk-1", &data_key).unwrap();
        let sealed = data_key.seal(row("acme", "bh-1", 1), b"secret").unwrap();
        let unwrapped = master.unwrap_key("acme", "dk-1", &wrapped).unwrap();
        assert_eq!(
            unwrapped
                .open(row("acme", "bh-1", 1), &sealed)
                .unwrap()
                .as_slice(),
            b"secret"
        );
        // The wrapped key is bound to its tenant and id, and only the master key opens it.
        for (tenant, id) in [("globex", "dk-1"), ("acme", "dk-2")] {
            assert_eq!(
                master.unwrap_key(tenant, id, &wrapped).unwrap_err(),
                SealError::Unreadable
            );
        }
        assert_eq!(
            key().unwrap_key("acme", "dk-1", &wrapped).unwrap_err(),
            SealError::Unreadable
        );
        // Another data key, or the master key itself, does not open the secret.
        let other = DataKey::generate().unwrap();
        assert_eq!(
            other.open(row("acme", "bh-1", 1), &sealed),
            Err(SealError::Unreadable)
        );
        assert_eq!(
            master.open(row("acme", "bh-1", 1), &sealed),
            Err(SealError::Unreadable)
        );
    }

    #[test]
    fn keyring_finds_keys_by_id_and_drops_duplicates() {
        let (current, previous) = (key(), key());
        let ring = Keyring::new(
            current.clone(),
            vec![previous.clone(), current.clone(), previous.clone()],
        );
        assert_eq!(ring.key_ids(), vec![current.key_id(), previous.key_id()]);
        assert_eq!(
            ring.find(previous.key_id()).unwrap().key_id(),
            previous.key_id()
        );
        assert!(ring.find("0000000000000000").is_none());
        assert_eq!(ring.current().key_id(), current.key_id());
    }
}
