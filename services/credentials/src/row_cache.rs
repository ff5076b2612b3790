//! Credential rows kept in memory for leases.
//!
//! Reading the row was a database round trip on every lease, most of a lease's cost once its
//! audit row is group-committed. A lease now takes the row from memory when it was read less
//! than [`ROW_MAX_AGE`] ago. Every write to a row in this process forgets it after its commit
//! ([`crate::store::CredentialStore`]), and with Redis every replica forgets it too
//! ([`crate::row_changes`]); the age bound is what remains when a message is lost, so a revoked
//! row is never served for longer than that (a lease is good for five minutes anyway).
//!
//! A read that began before a write may finish after the write forgot the row; a generation
//! counter, moved by every forget, keeps such a read from putting the old row back.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::store::StoredCredential;

/// How long a row read from the database may serve leases without being read again.
pub const ROW_MAX_AGE: Duration = Duration::from_secs(2);

/// Rows kept at most; the cache starts over past it, like the decoded-secret cache.
const MAX_ROWS: usize = 10_000;

struct Kept {
    row: Arc<StoredCredential>,
    /// When the read that returned it began.
    read_at: Instant,
}

struct State {
    /// tenant -> connection id -> row, so that a lookup needs no owned key.
    rows: HashMap<String, HashMap<String, Kept>>,
    len: usize,
    /// Moved by every forget: a read that began before it does not put its row back.
    generation: u64,
    /// False while the replicas' change messages cannot be heard: nothing is kept then.
    enabled: bool,
}

/// Shared by every clone of the store.
#[derive(Clone)]
pub struct RowCache {
    state: Arc<RwLock<State>>,
}

impl std::fmt::Debug for RowCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RowCache({} rows)", self.read().len)
    }
}

impl RowCache {
    /// A cache that keeps rows at once (`enabled`) or only once told to.
    pub fn new(enabled: bool) -> RowCache {
        RowCache {
            state: Arc::new(RwLock::new(State {
                rows: HashMap::new(),
                len: 0,
                generation: 0,
                enabled,
            })),
        }
    }

    /// The row of a connection, if one read at most [`ROW_MAX_AGE`] before `now` is kept.
    pub fn get(
        &self,
        tenant: &str,
        connection_id: &str,
        now: Instant,
    ) -> Option<Arc<StoredCredential>> {
        let state = self.read();
        let kept = state.rows.get(tenant)?.get(connection_id)?;
        (now.saturating_duration_since(kept.read_at) < ROW_MAX_AGE).then(|| kept.row.clone())
    }

    /// The generation to pass to [`RowCache::keep`]; take it before reading the row.
    pub fn generation(&self) -> u64 {
        self.read().generation
    }

    /// Keeps `row`, read from `read_at` on, unless a forget happened since `generation`.
    pub fn keep(&self, generation: u64, row: Arc<StoredCredential>, read_at: Instant) {
        let mut state = self.write();
        if !state.enabled || state.generation != generation {
            return;
        }
        if state.len >= MAX_ROWS {
            state.rows.clear();
            state.len = 0;
        }
        let replaced = state
            .rows
            .entry(row.tenant.clone())
            .or_default()
            .insert(row.connection_id.clone(), Kept { row, read_at });
        if replaced.is_none() {
            state.len += 1;
        }
    }

    /// Drops a connection's row: it was written here or on another replica.
    pub fn forget(&self, tenant: &str, connection_id: &str) {
        let mut state = self.write();
        state.generation += 1;
        let removed = state
            .rows
            .get_mut(tenant)
            .and_then(|rows| rows.remove(connection_id));
        if removed.is_some() {
            state.len -= 1;
        }
    }

    /// Drops every row, and keeps new ones only when `enabled`: the replicas' change messages
    /// were lost, or can be heard again.
    pub fn reset(&self, enabled: bool) {
        let mut state = self.write();
        state.generation += 1;
        state.rows.clear();
        state.len = 0;
        state.enabled = enabled;
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(tenant: &str, connection_id: &str, version: u64) -> Arc<StoredCredential> {
        Arc::new(StoredCredential {
            tenant: tenant.into(),
            connection_id: connection_id.into(),
            connector: "bullhorn".into(),
            kind: "api_key".into(),
            version,
            key_id: "k1".into(),
            sealed_by: crate::store::SEALED_BY_DATA_KEY.into(),
            sealed: "v1.x".into(),
            revoked: false,
            updated_at: String::new(),
        })
    }

    #[test]
    fn a_row_serves_for_its_age_bound_and_only_its_tenant() {
        let cache = RowCache::new(true);
        let read_at = Instant::now();
        cache.keep(cache.generation(), row("acme", "c1", 1), read_at);
        let version = |now| cache.get("acme", "c1", now).map(|row| row.version);
        assert_eq!(version(read_at), Some(1));
        assert_eq!(version(read_at + ROW_MAX_AGE / 2), Some(1));
        assert_eq!(version(read_at + ROW_MAX_AGE), None, "too old");
        assert!(cache.get("globex", "c1", read_at).is_none());
        assert!(cache.get("acme", "c2", read_at).is_none());
    }

    #[test]
    fn a_read_from_before_a_forget_is_not_kept() {
        let cache = RowCache::new(true);
        let now = Instant::now();
        cache.keep(cache.generation(), row("acme", "c1", 1), now);
        let before_write = cache.generation();
        cache.forget("acme", "c1");
        assert!(cache.get("acme", "c1", now).is_none());
        // The read that began before the write ends after it: its row is stale.
        cache.keep(before_write, row("acme", "c1", 1), now);
        assert!(cache.get("acme", "c1", now).is_none());
        cache.keep(cache.generation(), row("acme", "c1", 2), now);
        assert_eq!(cache.get("acme", "c1", now).map(|row| row.version), Some(2));
    }

    #[test]
    fn a_disabled_cache_keeps_nothing_until_enabled() {
        let cache = RowCache::new(false);
        let now = Instant::now();
        cache.keep(cache.generation(), row("acme", "c1", 1), now);
        assert!(cache.get("acme", "c1", now).is_none());
        cache.reset(true);
        cache.keep(cache.generation(), row("acme", "c1", 1), now);
        assert!(cache.get("acme", "c1", now).is_some());
        cache.reset(false);
        assert!(cache.get("acme", "c1", now).is_none(), "dropped on reset");
    }

    #[test]
    fn the_cache_starts_over_when_full() {
        let cache = RowCache::new(true);
        let now = Instant::now();
        for index in 0..MAX_ROWS {
            cache.keep(
                cache.generation(),
                row("acme", &format!("c{index}"), 1),
                now,
            );
        }
        cache.keep(cache.generation(), row("acme", "one-more", 1), now);
        assert!(cache.get("acme", "one-more", now).is_some());
        assert!(cache.get("acme", "c0", now).is_none());
        assert_eq!(format!("{cache:?}"), "RowCache(1 rows)");
    }
}
