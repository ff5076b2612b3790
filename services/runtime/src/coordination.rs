//! Coordination between replicas: leases with fencing tokens.
//!
//! In split mode several replicas of a service share Redis, and a lease makes sure one of them
//! does a piece of work (one run per connection, one token refresh). The fencing token increases
//! with every grant, so a holder that lost its lease while paused can be told apart from the new
//! one. In dev mode there is one process, and the in-process implementation serves.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use tokio::sync::Mutex;

const KEY_PREFIX: &str = "plugboard:lease:";
const FENCE_PREFIX: &str = "plugboard:fence:";

// Deletes the lease only while it is still ours.
const RELEASE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

// Extends the lease only while it is still ours.
const RENEW_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0";

#[derive(Debug, thiserror::Error)]
pub enum CoordinationError {
    #[error("redis is unavailable: {0}")]
    Redis(#[from] redis::RedisError),
}

/// A granted lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub key: String,
    pub holder: String,
    /// Strictly greater than the token of every earlier grant of the same key.
    pub fencing_token: u64,
}

impl Lease {
    fn value(&self) -> String {
        format!("{}:{}", self.holder, self.fencing_token)
    }
}

#[derive(Clone)]
pub enum Coordinator {
    Local(LocalCoordinator),
    Redis(RedisCoordinator),
}

impl Coordinator {
    /// Redis at `url` (`redis://host:port`).
    pub async fn redis(url: &str) -> Result<Coordinator, CoordinationError> {
        let client = redis::Client::open(url)?;
        let connection = ConnectionManager::new(client).await?;
        Ok(Coordinator::Redis(RedisCoordinator { connection }))
    }

    pub fn local() -> Coordinator {
        Coordinator::Local(LocalCoordinator::default())
    }

    /// Grants `key` to `holder` for `ttl` unless someone else holds it.
    pub async fn try_acquire(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, CoordinationError> {
        match self {
            Coordinator::Local(local) => Ok(local.try_acquire(key, holder, ttl).await),
            Coordinator::Redis(redis) => redis.try_acquire(key, holder, ttl).await,
        }
    }

    /// Extends a lease still held. False when it was lost (expired and taken, or released).
    pub async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, CoordinationError> {
        match self {
            Coordinator::Local(local) => Ok(local.renew(lease, ttl).await),
            Coordinator::Redis(redis) => redis.renew(lease, ttl).await,
        }
    }

    pub async fn release(&self, lease: &Lease) -> Result<(), CoordinationError> {
        match self {
            Coordinator::Local(local) => {
                local.release(lease).await;
                Ok(())
            }
            Coordinator::Redis(redis) => redis.release(lease).await,
        }
    }
}

#[derive(Clone)]
pub struct RedisCoordinator {
    connection: ConnectionManager,
}

impl RedisCoordinator {
    async fn try_acquire(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, CoordinationError> {
        let mut connection = self.connection.clone();
        let lease_key = format!("{KEY_PREFIX}{key}");
        let existing: Option<String> = redis::cmd("GET")
            .arg(&lease_key)
            .query_async(&mut connection)
            .await?;
        if existing.is_some() {
            return Ok(None);
        }
        let fencing_token: u64 = redis::cmd("INCR")
            .arg(format!("{FENCE_PREFIX}{key}"))
            .query_async(&mut connection)
            .await?;
        let lease = Lease {
            key: key.to_owned(),
            holder: holder.to_owned(),
            fencing_token,
        };
        let granted: Option<String> = redis::cmd("SET")
            .arg(&lease_key)
            .arg(lease.value())
            .arg("NX")
            .arg("PX")
            .arg(ttl_millis(ttl))
            .query_async(&mut connection)
            .await?;
        Ok(granted.map(|_| lease))
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, CoordinationError> {
        let mut connection = self.connection.clone();
        let renewed: i64 = redis::Script::new(RENEW_SCRIPT)
            .key(format!("{KEY_PREFIX}{}", lease.key))
            .arg(lease.value())
            .arg(ttl_millis(ttl))
            .invoke_async(&mut connection)
            .await?;
        Ok(renewed == 1)
    }

    async fn release(&self, lease: &Lease) -> Result<(), CoordinationError> {
        let mut connection = self.connection.clone();
        let _: i64 = redis::Script::new(RELEASE_SCRIPT)
            .key(format!("{KEY_PREFIX}{}", lease.key))
            .arg(lease.value())
            .invoke_async(&mut connection)
            .await?;
        Ok(())
    }
}

fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[derive(Default)]
struct LocalState {
    held: HashMap<String, (Lease, Instant)>,
    fences: HashMap<String, u64>,
}

/// The in-process implementation, for the single process of dev mode and for tests.
#[derive(Clone, Default)]
pub struct LocalCoordinator {
    state: Arc<Mutex<LocalState>>,
}

impl LocalCoordinator {
    async fn try_acquire(&self, key: &str, holder: &str, ttl: Duration) -> Option<Lease> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        if let Some((_, expires_at)) = state.held.get(key)
            && *expires_at > now
        {
            return None;
        }
        let fence = state.fences.entry(key.to_owned()).or_insert(0);
        *fence += 1;
        let lease = Lease {
            key: key.to_owned(),
            holder: holder.to_owned(),
            fencing_token: *fence,
        };
        state
            .held
            .insert(key.to_owned(), (lease.clone(), now + ttl));
        Some(lease)
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> bool {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        match state.held.get_mut(&lease.key) {
            Some((held, expires_at)) if held == lease && *expires_at > now => {
                *expires_at = now + ttl;
                true
            }
            _ => false,
        }
    }

    async fn release(&self, lease: &Lease) {
        let mut state = self.state.lock().await;
        if state
            .held
            .get(&lease.key)
            .is_some_and(|(held, _)| held == lease)
        {
            state.held.remove(&lease.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn exclusive_and_fenced(coordinator: Coordinator, key: &str) {
        let ttl = Duration::from_secs(30);
        let first = coordinator
            .try_acquire(key, "a", ttl)
            .await
            .unwrap()
            .unwrap();
        assert!(
            coordinator
                .try_acquire(key, "b", ttl)
                .await
                .unwrap()
                .is_none()
        );
        assert!(coordinator.renew(&first, ttl).await.unwrap());
        coordinator.release(&first).await.unwrap();
        let second = coordinator
            .try_acquire(key, "b", ttl)
            .await
            .unwrap()
            .unwrap();
        assert!(second.fencing_token > first.fencing_token);
        assert!(!coordinator.renew(&first, ttl).await.unwrap());
        coordinator.release(&second).await.unwrap();
    }

    #[tokio::test]
    async fn local_leases_are_exclusive_and_fenced() {
        exclusive_and_fenced(Coordinator::local(), "local-test").await;
    }

    #[tokio::test]
    async fn redis_leases_are_exclusive_and_fenced() {
        let url = std::env::var("PLUGBOARD_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        let coordinator = Coordinator::redis(&url)
            .await
            .expect("redis must run for tests");
        let key = format!("test-{}", uuid::Uuid::new_v4());
        exclusive_and_fenced(coordinator, &key).await;
    }
}
