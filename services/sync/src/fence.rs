//! One run per connection across replicas: the run lease, and its fencing token checked where
//! it matters, inside the transaction of every page a run commits.
//!
//! The lease (Redis, or in-process in dev mode) decides who may start a run; it cannot stop a
//! run whose replica stalled past the lease's life (a long GC-like pause, a frozen VM) from
//! waking up and committing after another replica took over. So the database keeps the highest
//! token granted per connection: a run claims its token when it starts, and each page commit
//! checks that the token is still the connection's, holding the row until the commit so that a
//! takeover waits for a commit in flight or makes it fail. The database is also the floor for
//! new tokens, so tokens keep increasing when Redis restarts empty.

use std::time::Duration;

use plugboard_runtime::coordination::{Coordinator, Lease};
use sqlx::{Any, Transaction};

use crate::error::Error;
use crate::store::Store;

/// The proof a run carries into its commits: the token its lease was granted with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence {
    pub fencing_token: u64,
}

impl Fence {
    pub fn of(lease: &Lease) -> Fence {
        Fence {
            fencing_token: lease.fencing_token,
        }
    }
}

/// The lease key of a connection's runs.
pub fn lease_key(tenant_id: &str, connection_id: &str) -> String {
    format!("run:{tenant_id}:{connection_id}")
}

/// Takes the run lease of a connection and claims its token in the database; `None` while
/// another run holds it. A token the database already passed (two replicas racing right after
/// Redis lost its data) counts as held: the lease is given back and the caller tries later.
pub async fn acquire(
    coordinator: &Coordinator,
    store: &Store,
    tenant_id: &str,
    connection_id: &str,
    holder: &str,
    ttl: Duration,
) -> Result<Option<Lease>, Error> {
    let floor = highest(store, tenant_id, connection_id).await?;
    let key = lease_key(tenant_id, connection_id);
    let Some(lease) = coordinator
        .try_acquire_above(&key, holder, ttl, floor)
        .await?
    else {
        return Ok(None);
    };
    if claim(store, tenant_id, connection_id, &lease).await? {
        return Ok(Some(lease));
    }
    tracing::warn!(
        tenant_id,
        connection_id,
        fencing_token = lease.fencing_token,
        "a newer run already claimed the connection; giving the lease back"
    );
    if let Err(error) = coordinator.release(&lease).await {
        tracing::warn!(error = %error, key, "cannot release a run lease");
    }
    Ok(None)
}

/// The highest token claimed for the connection, 0 before its first run.
pub async fn highest(store: &Store, tenant_id: &str, connection_id: &str) -> Result<u64, Error> {
    let token: Option<i64> = sqlx::query_scalar(
        "SELECT fencing_token FROM run_fences WHERE tenant_id = $1 AND connection_id = $2",
    )
    .bind(tenant_id)
    .bind(connection_id)
    .fetch_optional(store.pool())
    .await?;
    Ok(token.map_or(0, |token| u64::try_from(token).unwrap_or(0)))
}

/// Records `lease` as the connection's newest run; false when a token at least as high is
/// already there.
async fn claim(
    store: &Store,
    tenant_id: &str,
    connection_id: &str,
    lease: &Lease,
) -> Result<bool, Error> {
    let claimed = sqlx::query(
        "INSERT INTO run_fences (tenant_id, connection_id, fencing_token, holder, claimed_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, connection_id) DO UPDATE SET \
         fencing_token = excluded.fencing_token, holder = excluded.holder, \
         claimed_at = excluded.claimed_at \
         WHERE run_fences.fencing_token < excluded.fencing_token",
    )
    .bind(tenant_id)
    .bind(connection_id)
    .bind(token_value(lease.fencing_token))
    .bind(&lease.holder)
    .bind(plugboard_runtime::storage::now_text())
    .execute(store.pool())
    .await?
    .rows_affected();
    Ok(claimed == 1)
}

/// Fails with [`Error::Fenced`] unless `fence` is still the connection's newest token. The
/// no-op update locks the row until `transaction` ends, so a takeover's claim waits for this
/// commit (PostgreSQL; SQLite serialises writers anyway).
pub async fn check(
    transaction: &mut Transaction<'_, Any>,
    tenant_id: &str,
    connection_id: &str,
    fence: Fence,
) -> Result<(), Error> {
    let current = sqlx::query(
        "UPDATE run_fences SET fencing_token = fencing_token \
         WHERE tenant_id = $1 AND connection_id = $2 AND fencing_token = $3",
    )
    .bind(tenant_id)
    .bind(connection_id)
    .bind(token_value(fence.fencing_token))
    .execute(&mut **transaction)
    .await?
    .rows_affected();
    if current == 1 {
        return Ok(());
    }
    Err(Error::Fenced {
        connection_id: connection_id.to_owned(),
        fencing_token: fence.fencing_token,
    })
}

fn token_value(token: u64) -> i64 {
    i64::try_from(token).unwrap_or(i64::MAX)
}
