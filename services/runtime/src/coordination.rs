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

// Grants the lease when nobody holds it, with a fencing token above both the counter and the
// caller's floor (the highest token its database has seen), in one step so that two replicas
// cannot interleave. Returns the token, or 0 when the lease is held.
const ACQUIRE_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local token = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[3])
if token <= floor then
  token = floor + 1
  redis.call('SET', KEYS[2], token)
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. token, 'PX', ARGV[2])
return token";

// Extends the lease while it is still ours. When Redis has lost the fencing counter too (it
// restarted without persistence), nobody can have been granted the key since, so the holder
// seeds lease and counter again with its own token; a counter that is still there means the
// lease expired or was released, and is not taken back.
const RENEW_SCRIPT: &str = r"
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if current or redis.call('EXISTS', KEYS[2]) == 1 then
  return 0
end
redis.call('SET', KEYS[2], ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1";

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
        self.try_acquire_above(key, holder, ttl, 0).await
    }

    /// [`Coordinator::try_acquire`] with a fencing token above `floor`: the highest token the
    /// caller's durable store has seen, so tokens keep increasing when Redis restarts empty or
    /// a dev process restarts with a fresh in-process coordinator.
    pub async fn try_acquire_above(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
        floor: u64,
    ) -> Result<Option<Lease>, CoordinationError> {
        match self {
            Coordinator::Local(local) => Ok(local.try_acquire(key, holder, ttl, floor).await),
            Coordinator::Redis(redis) => redis.try_acquire(key, holder, ttl, floor).await,
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
        floor: u64,
    ) -> Result<Option<Lease>, CoordinationError> {
        let mut connection = self.connection.clone();
        let fencing_token: u64 = redis::Script::new(ACQUIRE_SCRIPT)
            .key(format!("{KEY_PREFIX}{key}"))
            .key(format!("{FENCE_PREFIX}{key}"))
            .arg(holder)
            .arg(ttl_millis(ttl))
            .arg(floor)
            .invoke_async(&mut connection)
            .await?;
        Ok((fencing_token > 0).then(|| Lease {
            key: key.to_owned(),
            holder: holder.to_owned(),
            fencing_token,
        }))
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<bool, CoordinationError> {
        let mut connection = self.connection.clone();
        let renewed: i64 = redis::Script::new(RENEW_SCRIPT)
            .key(format!("{KEY_PREFIX}{}", lease.key))
            .key(format!("{FENCE_PREFIX}{}", lease.key))
            .arg(lease.value())
            .arg(ttl_millis(ttl))
            .arg(lease.fencing_token)
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
    async fn try_acquire(
        &self,
        key: &str,
        holder: &str,
        ttl: Duration,
        floor: u64,
    ) -> Option<Lease> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        if let Some((_, expires_at)) = state.held.get(key)
            && *expires_at > now
        {
            return None;
        }
        let fence = state.fences.entry(key.to_owned()).or_insert(0);
        *fence = (*fence).max(floor) + 1;
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

    async fn tokens_stay_above_the_floor(coordinator: Coordinator, key: &str) {
        let ttl = Duration::from_secs(30);
        let lease = coordinator
            .try_acquire_above(key, "a", ttl, 41)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(lease.fencing_token, 42);
        coordinator.release(&lease).await.unwrap();
        // A floor below the counter changes nothing.
        let next = coordinator
            .try_acquire_above(key, "b", ttl, 3)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next.fencing_token, 43);
        coordinator.release(&next).await.unwrap();
    }

    #[tokio::test]
    async fn local_leases_are_exclusive_and_fenced() {
        exclusive_and_fenced(Coordinator::local(), "local-test").await;
        tokens_stay_above_the_floor(Coordinator::local(), "local-floor").await;
    }

    fn redis_url() -> String {
        std::env::var("PLUGBOARD_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
    }

    #[tokio::test]
    async fn redis_tokens_stay_above_the_floor() {
        let coordinator = Coordinator::redis(&redis_url()).await.unwrap();
        let key = format!("test-{}", uuid::Uuid::new_v4());
        tokens_stay_above_the_floor(coordinator, &key).await;
    }

    #[tokio::test]
    async fn a_holder_seeds_its_lease_again_only_when_redis_lost_the_counter() {
        let coordinator = Coordinator::redis(&redis_url()).await.unwrap();
        let Coordinator::Redis(redis) = &coordinator else {
            unreachable!("built as redis")
        };
        let mut connection = redis.connection.clone();
        let key = format!("test-{}", uuid::Uuid::new_v4());
        let ttl = Duration::from_secs(30);
        let lease = coordinator
            .try_acquire(&key, "a", ttl)
            .await
            .unwrap()
            .unwrap();
        // What a restart without persistence leaves: neither the lease nor the counter.
        let _: i64 = redis::cmd("DEL")
            .arg(format!("{KEY_PREFIX}{key}"))
            .arg(format!("{FENCE_PREFIX}{key}"))
            .query_async(&mut connection)
            .await
            .unwrap();
        assert!(coordinator.renew(&lease, ttl).await.unwrap());
        assert!(
            coordinator
                .try_acquire(&key, "b", ttl)
                .await
                .unwrap()
                .is_none(),
            "the seeded lease is held"
        );
        // A lease that merely expired (the counter is still there) is not taken back.
        let _: i64 = redis::cmd("DEL")
            .arg(format!("{KEY_PREFIX}{key}"))
            .query_async(&mut connection)
            .await
            .unwrap();
        assert!(!coordinator.renew(&lease, ttl).await.unwrap());
        let _: i64 = redis::cmd("DEL")
            .arg(format!("{FENCE_PREFIX}{key}"))
            .query_async(&mut connection)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn redis_leases_are_exclusive_and_fenced() {
        let coordinator = Coordinator::redis(&redis_url())
            .await
            .expect("redis must run for tests");
        let key = format!("test-{}", uuid::Uuid::new_v4());
        exclusive_and_fenced(coordinator, &key).await;
    }
}
