//! One request budget per partner account, shared by every replica of a connector.
//!
//! A manifest's `rate_limit` says how many requests a partner allows per window. Each replica
//! counting its own window would let N replicas spend N budgets and meet a wall of 429s (or a
//! suspended API key). With Redis, the window is one counter per account that every replica
//! increments ([`plugboard_runtime::budget`]), and a request over the budget waits for the
//! window to end. Without Redis (dev mode: one process) the in-process window of
//! [`crate::http::Limiter`] is the whole budget.
//!
//! If Redis cannot be reached, requests fall back to the replica's own window rather than
//! stopping: a partner's 429s and Retry-After remain the backstop.

pub use plugboard_runtime::budget::{Budget as AccountBudget, SharedBudgets, Unreachable};

/// The budgets of `connector`'s accounts in the Redis at `url`, connected now.
pub async fn connect(url: &str, connector: &str) -> Result<SharedBudgets, redis::RedisError> {
    SharedBudgets::connect(url, &key_prefix(connector)).await
}

/// Where one connector's account windows live: `plugboard:budget:<connector>:<tenant>:<id>`.
fn key_prefix(connector: &str) -> String {
    format!("plugboard:budget:{connector}:")
}
