//! Budgets shared by every replica through Redis: a fixed window per key that all of them count.
//!
//! Each replica counting its own window lets N replicas spend N budgets. Here a window is one
//! Redis counter: the first take of a window starts it (the key's expiry is the window), and a
//! take over the budget learns how long the window still runs. The connector runtime spends a
//! partner account's request budget this way, the gateway a connection's webhook deliveries.
//!
//! Redis being away must not stop the work a budget paces: [`Budget::take`] then fails fast
//! with [`Unreachable`] and the caller counts in its own replica. After a failure Redis is left
//! alone for [`RETRY_AFTER`] (callers do not each wait on a dead connection), and the change is
//! logged once each way, not per request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::time::Instant;

/// How long Redis is left alone after it failed to answer.
pub const RETRY_AFTER: Duration = Duration::from_secs(2);
/// A take that waits longer on Redis than this counts as Redis being away.
const ANSWER_WITHIN: Duration = Duration::from_millis(500);

// Takes one from the key's window; returns 0 when granted, else the milliseconds until the
// window ends. A key left without expiry (a crash between the two calls cannot leave one: a
// script runs whole) is given one, so a window always ends.
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
/// The script, hashed once (Redis runs it by its hash after the first load).
static TAKE: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(TAKE_SCRIPT));

/// Redis did not answer; the caller counts in its own replica.
#[derive(Debug, thiserror::Error)]
#[error("the shared budget is unreachable: {0}")]
pub struct Unreachable(String);

/// The connection to the budgets under one key prefix.
#[derive(Clone)]
pub struct SharedBudgets {
    connection: ConnectionManager,
    prefix: String,
    reachability: Arc<Reachability>,
}

impl std::fmt::Debug for SharedBudgets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBudgets")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl SharedBudgets {
    /// Budgets under `prefix` in the Redis at `url`, connected now: fails when Redis does not
    /// answer.
    pub async fn connect(url: &str, prefix: &str) -> Result<SharedBudgets, redis::RedisError> {
        let budgets = SharedBudgets::lazy(url, prefix)?;
        let mut connection = budgets.connection.clone();
        let _: String = redis::cmd("PING").query_async(&mut connection).await?;
        Ok(budgets)
    }

    /// Budgets under `prefix` in the Redis at `url`, connected on first use: only a malformed
    /// URL fails, and a Redis that is away at start is [`Unreachable`] until it answers.
    pub fn lazy(url: &str, prefix: &str) -> Result<SharedBudgets, redis::RedisError> {
        let client = redis::Client::open(url)?;
        // One quick attempt per take: a retry loop inside the client would hold the request
        // that asked, and the caller has its own replica's window to fall back on.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(ANSWER_WITHIN))
            .set_response_timeout(Some(ANSWER_WITHIN));
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(SharedBudgets {
            connection,
            prefix: prefix.to_owned(),
            reachability: Arc::new(Reachability::new(prefix)),
        })
    }

    /// The budget of one tenant's connection (a partner account, a webhook route).
    pub fn account(&self, tenant: &str, connection_id: &str) -> Budget {
        Budget {
            connection: self.connection.clone(),
            key: format!("{}{tenant}:{connection_id}", self.prefix),
            reachability: Arc::clone(&self.reachability),
        }
    }
}

/// One key's window, as every replica sees it.
#[derive(Clone)]
pub struct Budget {
    connection: ConnectionManager,
    key: String,
    reachability: Arc<Reachability>,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Budget {
    /// Takes one of `allowed` per `window`: `None` when granted, else how long until the
    /// window ends and another take can succeed.
    pub async fn take(
        &self,
        allowed: u32,
        window: Duration,
    ) -> Result<Option<Duration>, Unreachable> {
        if !self.reachability.worth_trying() {
            return Err(Unreachable("redis failed moments ago".to_owned()));
        }
        let mut connection = self.connection.clone();
        let window_millis = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut invocation = TAKE.key(&self.key);
        invocation.arg(allowed).arg(window_millis);
        let answer: Result<redis::RedisResult<u64>, _> =
            tokio::time::timeout(ANSWER_WITHIN, invocation.invoke_async(&mut connection)).await;
        match answer {
            Ok(Ok(wait_millis)) => {
                self.reachability.answered();
                Ok((wait_millis > 0).then(|| Duration::from_millis(wait_millis)))
            }
            Ok(Err(error)) => Err(self.reachability.failed(error.to_string())),
            Err(_) => Err(self
                .reachability
                .failed(format!("no answer within {} ms", ANSWER_WITHIN.as_millis()))),
        }
    }
}

/// Whether Redis answered last time, and when to ask again after it did not.
#[derive(Debug)]
struct Reachability {
    prefix: String,
    down: AtomicBool,
    retry_at: Mutex<Option<Instant>>,
}

impl Reachability {
    fn new(prefix: &str) -> Reachability {
        Reachability {
            prefix: prefix.to_owned(),
            down: AtomicBool::new(false),
            retry_at: Mutex::new(None),
        }
    }

    /// False while Redis is being left alone after a failure.
    fn worth_trying(&self) -> bool {
        // Plain data: a panic elsewhere cannot leave it half-written.
        let retry_at = self.retry_at.lock().unwrap_or_else(PoisonError::into_inner);
        retry_at.is_none_or(|at| Instant::now() >= at)
    }

    fn answered(&self) {
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::info!(prefix = %self.prefix, "redis answers again: budgets are shared by the replicas again");
        }
        *self.retry_at.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Notes a failure; logs only the first of a run of them.
    fn failed(&self, reason: String) -> Unreachable {
        *self.retry_at.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Instant::now() + RETRY_AFTER);
        if !self.down.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                prefix = %self.prefix,
                error = %reason,
                "redis is unreachable: each replica counts budgets on its own until it answers"
            );
        }
        Unreachable(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis_url() -> String {
        std::env::var("PLUGBOARD_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
    }

    #[tokio::test]
    async fn two_connections_count_one_window() {
        let prefix = format!("plugboard:test-budget:{}:", uuid::Uuid::new_v4().simple());
        let first = SharedBudgets::connect(&redis_url(), &prefix).await.unwrap();
        let second = SharedBudgets::lazy(&redis_url(), &prefix).unwrap();
        let window = Duration::from_secs(30);
        for _ in 0..2 {
            assert_eq!(
                first.account("acme", "c1").take(3, window).await.unwrap(),
                None
            );
        }
        assert_eq!(
            second.account("acme", "c1").take(3, window).await.unwrap(),
            None
        );
        let wait = second.account("acme", "c1").take(3, window).await.unwrap();
        assert!(wait.is_some_and(|wait| wait <= window), "{wait:?}");
        // Another tenant's connection of the same id has its own window.
        assert_eq!(
            second
                .account("globex", "c1")
                .take(3, window)
                .await
                .unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_fast_and_left_alone_for_a_while() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let budgets = SharedBudgets::lazy(&format!("redis://127.0.0.1:{port}"), "p:").unwrap();
        let budget = budgets.account("acme", "c1");
        let started = Instant::now();
        assert!(budget.take(1, Duration::from_secs(1)).await.is_err());
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(budgets.reachability.down.load(Ordering::Relaxed));
        assert!(
            !budgets.reachability.worth_trying(),
            "redis is left alone after a failure"
        );
        let error = budget.take(1, Duration::from_secs(1)).await.unwrap_err();
        assert!(error.to_string().contains("moments ago"), "{error}");
    }

    #[tokio::test]
    async fn a_malformed_url_fails_at_once() {
        assert!(SharedBudgets::lazy("redis://127.0.0.1:notaport", "p:").is_err());
    }
}
