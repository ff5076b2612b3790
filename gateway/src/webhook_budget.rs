//! How many webhook deliveries a connection may send: one budget for every gateway replica.
//!
//! Each replica first counts a delivery in its own memory, keyed by the connection id in the
//! path, before the route is looked up: probing for routes costs the prober, not the database,
//! and no Redis key is made for an id nobody registered. Once the route names the tenant, the
//! delivery is taken from the connection's budget in Redis ([`plugboard_runtime::budget`]),
//! which every replica counts, so N replicas do not let N budgets through.
//!
//! Without `PLUGBOARD_REDIS_URL` (dev mode: one process) the replica's own count is the whole
//! budget. With Redis away, each replica falls back to its own count (the change is logged once):
//! deliveries are never refused because Redis is down.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use plugboard_runtime::budget::SharedBudgets;

/// Where the shared windows live: `plugboard:webhooks:<tenant>:<connection id>`.
pub const KEY_PREFIX: &str = "plugboard:webhooks:";

/// Deliveries a connection may send per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryBudget {
    pub deliveries: NonZeroU32,
    pub window: Duration,
}

impl Default for DeliveryBudget {
    /// 100 every 5 seconds: 20 a second sustained, bursts of up to 100.
    fn default() -> DeliveryBudget {
        DeliveryBudget {
            deliveries: NonZeroU32::new(100).expect("100 is not zero"),
            window: Duration::from_secs(5),
        }
    }
}

/// The replica's own count, and the shared one when Redis is configured.
pub struct DeliveryLimiter {
    budget: DeliveryBudget,
    local: DefaultKeyedRateLimiter<String>,
    shared: Option<SharedBudgets>,
}

impl DeliveryLimiter {
    pub fn new(budget: DeliveryBudget, shared: Option<SharedBudgets>) -> DeliveryLimiter {
        // The same budget, refilled evenly over the window rather than all at its end.
        let period = (budget.window / budget.deliveries.get()).max(Duration::from_nanos(1));
        let quota = Quota::with_period(period)
            .expect("the period is at least a nanosecond")
            .allow_burst(budget.deliveries);
        DeliveryLimiter {
            budget,
            local: RateLimiter::keyed(quota),
            shared,
        }
    }

    /// Counts a delivery for `connection_id` in this replica; `Err` carries how long to wait.
    pub fn check_replica(&self, connection_id: &str) -> Result<(), Duration> {
        self.local
            .check_key(&connection_id.to_owned())
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Takes a delivery from the tenant's connection budget that every replica counts; `Err`
    /// carries how long to wait. Without Redis, or with Redis away, the replica's count (already
    /// taken) decides alone.
    pub async fn check_shared(&self, tenant_id: &str, connection_id: &str) -> Result<(), Duration> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        let budget = shared.account(tenant_id, connection_id);
        match budget
            .take(self.budget.deliveries.get(), self.budget.window)
            .await
        {
            Ok(None) | Err(_) => Ok(()),
            Ok(Some(wait)) => Err(wait),
        }
    }

    /// Forgets connections that have not delivered lately (the keyed state grows with ids).
    pub fn forget_idle(&self) {
        self.local.retain_recent();
    }
}
