//! The authorization server's memory: codes, token families, counters and injected faults.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::OAuthOptions;

pub type Shared = Arc<AuthServer>;

#[derive(Debug)]
pub struct AuthServer {
    pub options: OAuthOptions,
    grants: Mutex<Grants>,
}

/// An authorization code waiting to be exchanged.
#[derive(Debug, Clone)]
pub struct PendingCode {
    pub redirect_uri: String,
    pub code_challenge: String,
    pub scope: String,
    pub expires: Instant,
}

/// What a live access token was issued for.
#[derive(Debug, Clone)]
pub struct AccessGrant {
    pub family: String,
    pub expires: Instant,
}

/// A refresh token: `used` once it was exchanged (it rotates), kept to recognise a reuse.
#[derive(Debug, Clone)]
pub struct RefreshGrant {
    pub family: String,
    pub scope: String,
    pub used: bool,
}

/// Counters the admin API reports.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Every call to the token endpoint, whatever its outcome.
    pub token_calls: u64,
    /// Calls per `grant_type`.
    pub grants: HashMap<String, u64>,
    /// Refresh tokens presented a second time (each revoked its family).
    pub refresh_reuses: u64,
    pub authorizations: u64,
    /// Calls failed on purpose by an injected fault.
    pub injected_failures: u64,
    /// Calls to the resource API, and those refused for a dead token.
    pub api_calls: u64,
    pub api_refusals: u64,
}

/// Faults set through the admin API.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// The next N token calls fail with `fail_status`.
    pub fail_next: u32,
    pub fail_status: u16,
    /// Every token call waits this long first (widens races in tests).
    pub delay: Duration,
}

#[derive(Debug, Default)]
pub struct Grants {
    pub codes: HashMap<String, PendingCode>,
    pub access: HashMap<String, AccessGrant>,
    pub refresh: HashMap<String, RefreshGrant>,
    /// Token families revoked by a reused refresh token or by revoked consent.
    pub revoked: HashSet<String>,
    pub stats: Stats,
    pub faults: Faults,
}

impl AuthServer {
    pub fn new(options: OAuthOptions) -> AuthServer {
        AuthServer {
            options,
            grants: Mutex::default(),
        }
    }

    /// The state, locked. A panic while holding it cannot leave it half-written in a way that
    /// matters to a test double, so a poisoned lock is used as is.
    pub fn grants(&self) -> MutexGuard<'_, Grants> {
        self.grants
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl Grants {
    /// Issues an access token (and a rotated refresh token unless `with_refresh` is false) in
    /// `family`.
    pub fn issue(
        &mut self,
        family: &str,
        scope: &str,
        ttl: Duration,
        with_refresh: bool,
    ) -> (String, Option<String>) {
        let access = new_token("at");
        self.access.insert(
            access.clone(),
            AccessGrant {
                family: family.to_owned(),
                expires: Instant::now() + ttl,
            },
        );
        let refresh = with_refresh.then(|| {
            let refresh = new_token("rt");
            self.refresh.insert(
                refresh.clone(),
                RefreshGrant {
                    family: family.to_owned(),
                    scope: scope.to_owned(),
                    used: false,
                },
            );
            refresh
        });
        (access, refresh)
    }

    /// Ends every access token now, as a partner that expires tokens early does; refresh tokens
    /// stay valid.
    pub fn expire_access_tokens(&mut self) {
        let now = Instant::now();
        for grant in self.access.values_mut() {
            grant.expires = grant.expires.min(now);
        }
    }

    /// Revokes every token family: the user withdrew consent at the partner.
    pub fn revoke_all(&mut self) {
        let families: Vec<String> = self
            .access
            .values()
            .map(|grant| grant.family.clone())
            .chain(self.refresh.values().map(|grant| grant.family.clone()))
            .collect();
        self.revoked.extend(families);
    }
}

/// An unguessable token with a readable prefix.
pub fn new_token(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}
