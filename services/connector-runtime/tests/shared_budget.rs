//! One request budget per partner account, shared by every connector replica through Redis:
//! two replicas' limiters for the same account together stay within the manifest's window,
//! while another account's budget is its own.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use plugboard_connector_runtime::budget;
use plugboard_connector_runtime::http::Limiter;
use plugboard_connector_runtime::manifest::RateLimit;

fn redis_url() -> String {
    std::env::var("PLUGBOARD_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Four requests per second for the account.
fn four_a_second() -> RateLimit {
    RateLimit {
        requests: 4,
        per_seconds: 1,
        concurrency: None,
        retry_after_headers: vec!["Retry-After".to_owned()],
        max_wait_seconds: 60,
    }
}

async fn replica(connector: &str, tenant: &str) -> Limiter {
    // Each replica has its own Redis connection, as separate processes do.
    let budgets = budget::connect(&redis_url(), connector).await.unwrap();
    Limiter::new(Some(&four_a_second())).shared(budgets.account(tenant, "c1"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_spend_one_budget_per_account() {
    // A unique connector name: Redis is shared with every other test on the machine.
    let connector = format!("budget-test-{}", uuid::Uuid::new_v4().simple());
    let first = Arc::new(replica(&connector, "acme").await);
    let second = Arc::new(replica(&connector, "acme").await);
    let start = Instant::now();
    let mut requests = Vec::new();
    for index in 0..12 {
        let limiter = Arc::clone(if index % 2 == 0 { &first } else { &second });
        requests.push(tokio::spawn(async move {
            drop(limiter.admit().await);
            start.elapsed()
        }));
    }
    let mut admitted = Vec::new();
    for request in requests {
        admitted.push(request.await.unwrap());
    }
    admitted.sort();
    // Twelve requests at four a second for the account: three windows, whichever replica
    // sends them. Two separate budgets would have let eight through in the first window.
    let in_first_window = admitted
        .iter()
        .filter(|at| **at < Duration::from_millis(900))
        .count();
    assert_eq!(in_first_window, 4, "{admitted:?}");
    assert!(admitted[11] >= Duration::from_millis(1900), "{admitted:?}");

    // Another tenant's account has a budget of its own.
    let other = replica(&connector, "globex").await;
    let before = Instant::now();
    for _ in 0..4 {
        drop(other.admit().await);
    }
    assert!(
        before.elapsed() < Duration::from_millis(500),
        "{:?}",
        before.elapsed()
    );
}
