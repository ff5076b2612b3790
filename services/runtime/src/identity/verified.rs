//! Tokens the server side already verified, remembered until they expire.
//!
//! Clients reuse a token for half its lifetime ([`super::signed`]), so the server sees the same
//! exact token string many times; checking its HMAC and, for a connector, its Ed25519 proof
//! again each time was most of what the interceptor cost. A remembered token costs one hash
//! lookup instead. Only tokens that passed the full check are remembered, each with the one
//! proof that verified for it: a call presenting any other proof is checked in full again.

use std::collections::HashMap;
use std::sync::RwLock;

use super::Caller;

/// Tokens remembered at most; the map starts over past it, which also drops expired ones.
/// Clients renew a token every couple of minutes, so this is far above a mesh's working set.
const MAX_REMEMBERED: usize = 10_000;

struct Verified {
    caller: Caller,
    /// Unix seconds: the token's own `exp`; it is not believed from then on.
    expires_at: u64,
    /// The connector proof that verified for this token, if one did.
    proof: Option<String>,
}

/// A remembered token: who it names, and whether the call's proof is the one that verified.
pub(super) struct Remembered {
    pub(super) caller: Caller,
    pub(super) proven: bool,
}

/// Verified tokens by their exact text. Debug shows only the count: tokens are bearer
/// credentials. Keys are compared by hash first (SipHash with a per-process random key), so
/// a forged token does not learn how close it is to a remembered one by timing.
#[derive(Default)]
pub(super) struct VerifiedTokens {
    remembered: RwLock<HashMap<String, Verified>>,
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let remembered = self.remembered.read().map_or(0, |map| map.len());
        write!(f, "VerifiedTokens({remembered} remembered)")
    }
}

impl VerifiedTokens {
    /// `token` if it was verified before and has not expired at `now` (unix seconds);
    /// `proven` says whether `proof` is the proof that verified for it.
    pub(super) fn get(&self, token: &str, proof: Option<&str>, now: u64) -> Option<Remembered> {
        let remembered = self
            .remembered
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        let verified = remembered
            .get(token)
            .filter(|verified| now < verified.expires_at)?;
        Some(Remembered {
            caller: verified.caller.clone(),
            proven: proof.is_some() && verified.proof.as_deref() == proof,
        })
    }

    /// Remembers a token that passed the full check, until `expires_at`.
    pub(super) fn remember(&self, token: &str, caller: &Caller, expires_at: u64) {
        let mut remembered = self
            .remembered
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        if remembered.len() >= MAX_REMEMBERED {
            remembered.clear();
        }
        remembered.insert(
            token.to_owned(),
            Verified {
                caller: caller.clone(),
                expires_at,
                proof: None,
            },
        );
    }

    /// Records `proof` as the one that verified for a remembered `token`.
    pub(super) fn remember_proof(&self, token: &str, proof: &str) {
        let mut remembered = self
            .remembered
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(verified) = remembered.get_mut(token) {
            verified.proof = Some(proof.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Caller {
        Caller {
            subject: "connector:bullhorn".into(),
            tenant: Some("acme".into()),
            connector: Some("bullhorn".into()),
        }
    }

    #[test]
    fn a_token_is_remembered_until_its_expiry_with_the_proof_that_verified() {
        let tokens = VerifiedTokens::default();
        assert!(tokens.get("t", None, 10).is_none());
        tokens.remember("t", &caller(), 100);
        let remembered = tokens.get("t", Some("p"), 99).unwrap();
        assert_eq!(remembered.caller, caller());
        assert!(!remembered.proven, "no proof verified yet");
        tokens.remember_proof("t", "p");
        assert!(tokens.get("t", Some("p"), 99).unwrap().proven);
        assert!(!tokens.get("t", Some("other"), 99).unwrap().proven);
        assert!(!tokens.get("t", None, 99).unwrap().proven);
        assert!(tokens.get("t", Some("p"), 100).is_none(), "expired");
        assert!(tokens.get("u", None, 50).is_none());
        assert_eq!(format!("{tokens:?}"), "VerifiedTokens(1 remembered)");
    }
}
