//! One request budget per partner account, shared by every replica of a connector.
//!
//! A manifest's `rate_limit` says how many requests a partner allows per window. Each replica
//! counting its own window would let N replicas spend N budgets and meet a wall of 429s (or a
//! suspended API key). With Redis, the window is one counter per account that every replica
//! increments: the first request of a window starts it (the key's expiry is the window), and a
//! request over the budget waits for the key to expire. Without Redis (dev mode: one process)
//! the in-process window of [`crate::http::Limiter`] is the whole budget.
//!
//! If Redis cannot be reached, requests fall back to the replica's own window rather than
//! stopping: a partner's 429s and Retry-After remain the backstop.

use std::time::Duration;

use redis::aio::ConnectionManager;

const KEY_PREFIX: &str = "plugboard:budget:";

// Takes one request from the account's window; returns 0 when granted, else the milliseconds
// until the window ends. A key left without expiry (a crash between the two calls cannot leave
// one: a script runs whole) is given one, so a window always ends.
const TAKE_SCRIPT: &str = r"
local used = redis.call('INCR', KEYS[1])
if used == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if used <= tonumber(ARGV[1]) then
  return 0
end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  left = tonumber(ARGV[2])
end
return left";

/// The connection to the shared budgets of one connector.
#[derive(Clone)]
pub struct SharedBudgets {
    connection: ConnectionManager,
    connector: String,
}

impl std::fmt::Debug for SharedBudgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBudgets")
            .field("connector", &self.connector)
            .finish_non_exhaustive()
    }
}

impl SharedBudgets {
    /// Budgets of `connector`'s accounts in the Redis at `url`.
    pub async fn connect(url: &str, connector: &str) -> Result<SharedBudgets, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let connection = ConnectionManager::new(client).await?;
        Ok(SharedBudgets {
            connection,
            connector: connector.to_owned(),
        })
    }

    /// The budget of one partner account (a tenant's connection).
    pub fn account(&self, tenant: &str, connection_id: &str) -> AccountBudget {
        AccountBudget {
            connection: self.connection.clone(),
            key: format!("{KEY_PREFIX}{}:{tenant}:{connection_id}", self.connector),
        }
    }
}

/// One account's window, as every replica sees it.
#[derive(Clone)]
pub struct AccountBudget {
    connection: ConnectionManager,
    key: String,
}

impl std::fmt::Debug for AccountBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountBudget")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl AccountBudget {
    /// Takes one of `requests` per `window`: `None` when granted, else how long until the
    /// window ends and another try can succeed.
    pub async fn take(
        &self,
        requests: u32,
        window: Duration,
    ) -> Result<Option<Duration>, redis::RedisError> {
        let mut connection = self.connection.clone();
        let window_millis = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let wait_millis: u64 = redis::Script::new(TAKE_SCRIPT)
            .key(&self.key)
            .arg(requests)
            .arg(window_millis)
            .invoke_async(&mut connection)
            .await?;
        Ok((wait_millis > 0).then(|| Duration::from_millis(wait_millis)))
    }
}
