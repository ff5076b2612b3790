//! One webhook delivery budget per (tenant, connection) for every gateway replica: two gateways
//! in this process, on one tenant database and one Redis, as two replicas behind a load
//! balancer. The services behind them are closed ports: a delivery the budget lets through then
//! fails further on (503), one it refuses is 429 with `Retry-After`, which is all these tests
//! look at. Redis going away (a restart of a test's own server, a port where nothing listens)
//! leaves each replica its own count: deliveries are never refused for Redis being down.
#![allow(clippy::unwrap_used)]

use std::num::NonZeroU32;
use std::process::Command;
use std::time::Duration;

use plugboard_gateway::webhook_budget::DeliveryBudget;
use plugboard_gateway::{Config, TenantStore};
use plugboard_tests::process::plugboard_bin;
use plugboard_tests::redis_server::OwnRedis;
use plugboard_tests::{REDIS_URL, eventually, free_port};

/// Three deliveries a minute: small enough to spend in a test, long enough not to refill.
const BUDGET: u32 = 3;

struct Replicas {
    store: TenantStore,
    tenant: String,
    urls: Vec<String>,
    http: reqwest::Client,
}

impl Replicas {
    /// `count` gateways on one fresh tenant database, counting in the Redis at `redis_url`.
    async fn start(count: usize, redis_url: Option<&str>) -> Replicas {
        let dir = std::env::temp_dir().join(format!("pb-webhook-budget-{}", uuid::Uuid::new_v4()));
        let database_url = plugboard_runtime::storage::sqlite_url(&dir, "gateway");
        // Opened (and migrated) once, then shared, as replicas share one database.
        let store = TenantStore::open(&database_url).await.unwrap();
        let tenant = format!("budget-{}", uuid::Uuid::new_v4().simple());
        store
            .ensure_tenant(&tenant, "Budget Staffing")
            .await
            .unwrap();
        let closed = || format!("127.0.0.1:{}", free_port());
        let mut urls = Vec::new();
        for _ in 0..count {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let config = Config {
                listen_addr: addr,
                database_url: database_url.clone(),
                mesh_key: secrecy::SecretString::from(
                    "webhook-budget-mesh-key-of-32-bytes!!".to_owned(),
                ),
                credentials_addr: closed(),
                mapping_addr: closed(),
                sync_addr: closed(),
                health_addr: closed(),
                registry_addr: closed(),
                public_url: None,
                redis_url: redis_url.map(str::to_owned),
                webhook_budget: DeliveryBudget {
                    deliveries: NonZeroU32::new(BUDGET).unwrap(),
                    window: Duration::from_secs(60),
                },
            };
            let store = store.clone();
            tokio::spawn(async move {
                plugboard_gateway::run_with_store(config, store, listener, std::future::pending())
                    .await
                    .unwrap();
            });
            urls.push(format!("http://{addr}"));
        }
        Replicas {
            store,
            tenant,
            urls,
            http: reqwest::Client::new(),
        }
    }

    /// A connection of the tenant with a webhook route; returns its id.
    async fn connection(&self) -> String {
        let id = format!("conn-{}", uuid::Uuid::new_v4().simple());
        self.store
            .put_webhook_endpoint(&id, &self.tenant, "greenhouse")
            .await
            .unwrap();
        id
    }

    /// Delivers to `replica`; the status and the `Retry-After` seconds, if any.
    async fn deliver(&self, replica: usize, connection_id: &str) -> (u16, Option<u64>) {
        let response = self
            .http
            .post(format!(
                "{}/webhooks/greenhouse/{connection_id}",
                self.urls[replica]
            ))
            .header("Signature", "sha256 00")
            .body(r#"{"action":"update_candidate"}"#)
            .send()
            .await
            .unwrap();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|value| value.to_str().unwrap().parse().unwrap());
        (response.status().as_u16(), retry_after)
    }

    /// Spends the budget of `connection_id` on `replica`; every delivery must get past it.
    async fn spend(&self, replica: usize, connection_id: &str) {
        for _ in 0..BUDGET {
            let (status, _) = self.deliver(replica, connection_id).await;
            assert_ne!(status, 429, "within the budget");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_spend_one_budget_per_connection() {
    let replicas = Replicas::start(2, Some(REDIS_URL)).await;
    let connection = replicas.connection().await;
    replicas.spend(0, &connection).await;
    // The second replica has counted nothing itself, and still refuses.
    let (status, retry_after) = replicas.deliver(1, &connection).await;
    assert_eq!(status, 429);
    let retry_after = retry_after.expect("a 429 says when to come back");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let (status, _) = replicas.deliver(0, &connection).await;
    assert_eq!(status, 429);

    // Another connection of the tenant has a budget of its own.
    let other = replicas.connection().await;
    let (status, _) = replicas.deliver(1, &other).await;
    assert_ne!(status, 429);
    // An id nobody registered is not found, without touching Redis.
    let (status, _) = replicas.deliver(1, "conn-nobody-registered").await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_restarts_each_gateway_counts_alone_then_they_share_again() {
    let mut redis = OwnRedis::start().await.unwrap();
    let replicas = Replicas::start(2, Some(&redis.url())).await;
    let connection = replicas.connection().await;
    replicas.spend(0, &connection).await;
    assert_eq!(replicas.deliver(1, &connection).await.0, 429, "shared");

    // Redis gone: the second replica lets its own budget through (it counted one delivery
    // already), then refuses on its own count, and never answers an error for Redis.
    redis.stop();
    for _ in 1..BUDGET {
        let (status, _) = replicas.deliver(1, &connection).await;
        assert_ne!(status, 429, "redis being away must not refuse deliveries");
        assert_eq!(status, 503, "the closed services behind, not redis");
    }
    let (status, retry_after) = replicas.deliver(1, &connection).await;
    assert_eq!(status, 429, "the replica's own count still holds");
    assert!(retry_after.is_some());

    // Back, empty: once the replicas try it again, the budget is one again.
    redis.restart().await.unwrap();
    eventually(
        "the replicas to share the budget again",
        Duration::from_secs(20),
        || async {
            let fresh = replicas.connection().await;
            replicas.spend(0, &fresh).await;
            replicas.deliver(1, &fresh).await.0 == 429
        },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_whose_redis_never_answers_counts_alone() {
    // Nothing listens there: the gateway starts all the same.
    let replicas = Replicas::start(1, Some(&format!("redis://127.0.0.1:{}", free_port()))).await;
    let connection = replicas.connection().await;
    replicas.spend(0, &connection).await;
    let (status, retry_after) = replicas.deliver(0, &connection).await;
    assert_eq!(status, 429);
    assert!(retry_after.is_some_and(|seconds| (1..=60).contains(&seconds)));
}

#[test]
fn a_malformed_redis_url_stops_the_gateway_naming_the_variable() {
    let output = Command::new(plugboard_bin())
        .args(["serve", "gateway"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PLUGBOARD_LISTEN_ADDR", "127.0.0.1:0")
        .env("PLUGBOARD_DATABASE_URL", "sqlite:///nonexistent/gateway.db")
        .env(
            "PLUGBOARD_MESH_KEY",
            "webhook-budget-mesh-key-of-32-bytes!!",
        )
        .env("PLUGBOARD_CREDENTIALS_ADDR", "127.0.0.1:1")
        .env("PLUGBOARD_MAPPING_ADDR", "127.0.0.1:1")
        .env("PLUGBOARD_SYNC_ADDR", "127.0.0.1:1")
        .env("PLUGBOARD_HEALTH_ADDR", "127.0.0.1:1")
        .env("PLUGBOARD_REGISTRY_ADDR", "127.0.0.1:1")
        .env("PLUGBOARD_REDIS_URL", "redis://:hunter2@redis:port")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("PLUGBOARD_REDIS_URL="), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
