//! Signed tokens kept for reuse by the client side.
//!
//! Signing an HS256 token, and proving it with a connector's Ed25519 key, on every call cost a
//! connector more CPU than the rest of its lease call. A token is a bearer credential valid for
//! its whole lifetime anyway, so the same token (and proof) is sent until half of that lifetime
//! is left. The cache lives with the [`super::MeshKey`] that every copy of a service's
//! credentials shares, because callers build a fresh `MeshCredentials` per call
//! (`for_tenant`), which would leave a per-instance cache empty.

use std::collections::HashMap;
use std::sync::RwLock;

use tonic::metadata::AsciiMetadataValue;

use super::Caller;

/// Tokens kept per mesh key at most; the cache starts over past it. A process signs for a few
/// callers (one per service and tenant), so this is only reached by a leak or an attack.
const MAX_KEPT: usize = 4_096;

/// Who a token is signed for: the caller and, for a connector, which key proves it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Signer {
    pub(super) caller: Caller,
    /// The public half of the connector signing key, when the token carries a proof.
    pub(super) connector_key: Option<Vec<u8>>,
}

/// The metadata one call carries, ready to insert.
#[derive(Clone)]
pub(super) struct Signed {
    /// `Bearer <token>`.
    pub(super) authorization: AsciiMetadataValue,
    /// The connector's proof of the token, when signed with a connector key.
    pub(super) proof: Option<AsciiMetadataValue>,
    /// Unix seconds it was issued at (its `iat`).
    pub(super) issued_at: u64,
    /// Unix seconds from which a fresh token is signed instead.
    pub(super) renew_at: u64,
}

/// Signed tokens by signer. Its Debug output shows only how many are kept: tokens are bearer
/// credentials.
#[derive(Default)]
pub(super) struct SignedTokens {
    kept: RwLock<HashMap<Signer, Signed>>,
}

impl std::fmt::Debug for SignedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kept = self.kept.read().map_or(0, |kept| kept.len());
        write!(f, "SignedTokens({kept} kept)")
    }
}

impl SignedTokens {
    /// The token kept for `signer`, unless it is due for renewal at `now` (unix seconds). A
    /// clock that went back before its issue also renews it, so `iat` is never in the future.
    pub(super) fn get(&self, signer: &Signer, now: u64) -> Option<Signed> {
        let kept = self
            .kept
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        kept.get(signer)
            .filter(|signed| signed.issued_at <= now && now < signed.renew_at)
            .cloned()
    }

    pub(super) fn keep(&self, signer: Signer, signed: Signed) {
        let mut kept = self
            .kept
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        if kept.len() >= MAX_KEPT && !kept.contains_key(&signer) {
            kept.clear();
        }
        kept.insert(signer, signed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(subject: &str) -> Signer {
        Signer {
            caller: Caller {
                subject: subject.to_owned(),
                tenant: Some("acme".to_owned()),
                connector: None,
            },
            connector_key: None,
        }
    }

    fn signed(issued_at: u64, renew_at: u64) -> Signed {
        Signed {
            authorization: AsciiMetadataValue::from_static("Bearer t"),
            proof: None,
            issued_at,
            renew_at,
        }
    }

    #[test]
    fn a_kept_token_serves_until_its_renewal_time_and_only_its_signer() {
        let tokens = SignedTokens::default();
        tokens.keep(signer("sync"), signed(100, 250));
        assert!(tokens.get(&signer("sync"), 100).is_some());
        assert!(tokens.get(&signer("sync"), 249).is_some());
        assert!(tokens.get(&signer("sync"), 250).is_none());
        assert!(tokens.get(&signer("sync"), 99).is_none(), "clock went back");
        assert!(tokens.get(&signer("gateway"), 120).is_none());
        assert_eq!(format!("{tokens:?}"), "SignedTokens(1 kept)");
    }

    #[test]
    fn the_cache_starts_over_when_full() {
        let tokens = SignedTokens::default();
        for index in 0..MAX_KEPT {
            tokens.keep(signer(&format!("s{index}")), signed(0, 10));
        }
        tokens.keep(signer("one-more"), signed(0, 10));
        assert!(tokens.get(&signer("one-more"), 1).is_some());
        assert!(tokens.get(&signer("s0"), 1).is_none());
    }
}
