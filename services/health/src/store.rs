//! The health tables: each integration's current state and the history of its runs.
//!
//! State is read, changed in Rust (the rules live there) and written back guarded by a
//! `revision`, so concurrent reports never overwrite each other silently on either backend.
//! Every function takes a connection so the service can run them in one transaction. sqlx
//! errors become [`Error::Storage`] here and nowhere else.

use std::time::Duration;

use chrono::{DateTime, Utc};
use plugboard_runtime::storage::format_time;
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyConnection, AnyPool, Row, Transaction};

use crate::error::Error;
use crate::rules::{Facts, HeartbeatSeen, Outcome, OutcomeKind, Status};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// One integration's stored state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integration {
    pub tenant: String,
    pub connection_id: String,
    pub facts: Facts,
    pub status: Status,
    pub status_reason: String,
    /// When the status last changed (RFC 3339).
    pub since: String,
    /// Bumped by every write; a write naming an older revision loses.
    pub revision: i64,
}

/// One reported run, as kept for history.
#[derive(Debug, Clone)]
pub struct RunRecord<'a> {
    pub run_id: &'a str,
    pub connector: &'a str,
    pub kind: OutcomeKind,
    pub reason: &'a str,
    pub records_written: i64,
    pub records_quarantined: i64,
    pub finished_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
}

impl Store {
    /// Opens the database and brings its schema up to date.
    pub async fn open(database_url: &str, schema: &str) -> Result<Store, Error> {
        let pool = plugboard_runtime::storage::open(database_url, schema, &MIGRATOR).await?;
        Ok(Store { pool })
    }

    pub async fn begin(&self) -> Result<Transaction<'static, Any>, Error> {
        self.pool.begin().await.map_err(Error::Storage)
    }

    /// The pool, for tables other modules own (webhooks).
    pub fn pool(&self) -> AnyPool {
        self.pool.clone()
    }

    pub async fn acquire(&self) -> Result<sqlx::pool::PoolConnection<Any>, Error> {
        self.pool.acquire().await.map_err(Error::Storage)
    }
}

pub async fn commit(transaction: Transaction<'static, Any>) -> Result<(), Error> {
    transaction.commit().await.map_err(Error::Storage)
}

/// Adds a run to the history; false when this run was already recorded.
pub async fn insert_run(
    connection: &mut AnyConnection,
    tenant: &str,
    connection_id: &str,
    run: &RunRecord<'_>,
    now: &str,
) -> Result<bool, Error> {
    let result = sqlx::query(
        "INSERT INTO run_outcomes (tenant, connection_id, run_id, connector, kind, reason, \
         records_written, records_quarantined, finished_at, reported_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (tenant, connection_id, run_id) DO NOTHING",
    )
    .bind(tenant)
    .bind(connection_id)
    .bind(run.run_id)
    .bind(run.connector)
    .bind(run.kind.as_str())
    .bind(run.reason)
    .bind(run.records_written)
    .bind(run.records_quarantined)
    .bind(format_time(run.finished_at))
    .bind(now)
    .execute(connection)
    .await
    .map_err(Error::Storage)?;
    Ok(result.rows_affected() > 0)
}

/// Takes the integration's row lock for the rest of the transaction (a no-op write), so
/// concurrent reports for one connection queue instead of overtaking each other. On SQLite it
/// takes the database write lock up front instead of upgrading a read later.
pub async fn lock(
    connection: &mut AnyConnection,
    tenant: &str,
    connection_id: &str,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE integration_state SET revision = revision \
         WHERE tenant = $1 AND connection_id = $2",
    )
    .bind(tenant)
    .bind(connection_id)
    .execute(connection)
    .await
    .map_err(Error::Storage)?;
    Ok(())
}

pub async fn load(
    connection: &mut AnyConnection,
    tenant: &str,
    connection_id: &str,
) -> Result<Option<Integration>, Error> {
    let row = sqlx::query(
        "SELECT tenant, connection_id, connector, last_outcome_kind, last_outcome_reason, \
         last_outcome_at, last_records_quarantined, last_success_at, consecutive_failures, \
         last_heartbeat_at, heartbeat_interval_seconds, paused, status, status_reason, \
         status_since, revision, entities_json, warnings_json, credential_json, partner_json FROM integration_state \
         WHERE tenant = $1 AND connection_id = $2",
    )
    .bind(tenant)
    .bind(connection_id)
    .fetch_optional(connection)
    .await
    .map_err(Error::Storage)?;
    row.map(|row| integration(&row)).transpose()
}

/// Every integration of a tenant, by connection id.
pub async fn list(connection: &mut AnyConnection, tenant: &str) -> Result<Vec<Integration>, Error> {
    let rows = sqlx::query(
        "SELECT tenant, connection_id, connector, last_outcome_kind, last_outcome_reason, \
         last_outcome_at, last_records_quarantined, last_success_at, consecutive_failures, \
         last_heartbeat_at, heartbeat_interval_seconds, paused, status, status_reason, \
         status_since, revision, entities_json, warnings_json, credential_json, partner_json FROM integration_state \
         WHERE tenant = $1 ORDER BY connection_id",
    )
    .bind(tenant)
    .fetch_all(connection)
    .await
    .map_err(Error::Storage)?;
    rows.iter().map(integration).collect()
}

/// Writes `state` if nobody else wrote since it was read (`state.revision`; 0 for a new
/// integration). False when another writer got there first.
pub async fn save(
    connection: &mut AnyConnection,
    state: &Integration,
    now: &str,
) -> Result<bool, Error> {
    let facts = &state.facts;
    let outcome = facts.last_outcome.as_ref();
    let heartbeat = facts.last_heartbeat.as_ref();
    let query = if state.revision == 0 {
        sqlx::query(
            "INSERT INTO integration_state (tenant, connection_id, connector, \
             last_outcome_kind, last_outcome_reason, last_outcome_at, last_records_quarantined, \
             last_success_at, consecutive_failures, last_heartbeat_at, \
             heartbeat_interval_seconds, paused, status, status_reason, status_since, \
             revision, updated_at, entities_json, warnings_json, credential_json, partner_json) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16 + 1, $17, \
             $18, $19, $20, $21) \
             ON CONFLICT (tenant, connection_id) DO NOTHING",
        )
    } else {
        sqlx::query(
            "UPDATE integration_state SET connector = $3, last_outcome_kind = $4, \
             last_outcome_reason = $5, last_outcome_at = $6, last_records_quarantined = $7, \
             last_success_at = $8, consecutive_failures = $9, last_heartbeat_at = $10, \
             heartbeat_interval_seconds = $11, paused = $12, status = $13, \
             status_reason = $14, status_since = $15, revision = $16 + 1, updated_at = $17, \
             entities_json = $18, warnings_json = $19, credential_json = $20, \
             partner_json = $21 \
             WHERE tenant = $1 AND connection_id = $2 AND revision = $16",
        )
    };
    let result = query
        .bind(&state.tenant)
        .bind(&state.connection_id)
        .bind(&facts.connector)
        .bind(outcome.map(|o| o.kind.as_str()).unwrap_or(""))
        .bind(outcome.map(|o| o.reason.clone()).unwrap_or_default())
        .bind(outcome.map(|o| format_time(o.at)).unwrap_or_default())
        .bind(outcome.map_or(0, |o| {
            i64::try_from(o.records_quarantined).unwrap_or(i64::MAX)
        }))
        .bind(facts.last_success_at.map(format_time).unwrap_or_default())
        .bind(i64::from(facts.consecutive_failures))
        .bind(heartbeat.map(|h| format_time(h.at)).unwrap_or_default())
        .bind(heartbeat.map_or(0, |h| {
            i64::try_from(h.interval.as_secs()).unwrap_or(i64::MAX)
        }))
        .bind(i32::from(facts.paused))
        .bind(state.status.as_str())
        .bind(&state.status_reason)
        .bind(&state.since)
        .bind(state.revision)
        .bind(now)
        .bind(to_json(&facts.entities)?)
        .bind(to_json(&facts.warnings)?)
        .bind(to_json(&facts.credential)?)
        .bind(to_json(&facts.partner)?)
        .execute(connection)
        .await
        .map_err(Error::Storage)?;
    Ok(result.rows_affected() > 0)
}

fn to_json(value: &impl serde::Serialize) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::CorruptState {
        connection_id: String::new(),
        detail: format!("cannot encode state: {e}"),
    })
}

/// Every integration of every tenant, for the sweep that notices silence and late data.
pub async fn list_all(connection: &mut AnyConnection) -> Result<Vec<Integration>, Error> {
    let rows = sqlx::query(
        "SELECT tenant, connection_id, connector, last_outcome_kind, last_outcome_reason, \
         last_outcome_at, last_records_quarantined, last_success_at, consecutive_failures, \
         last_heartbeat_at, heartbeat_interval_seconds, paused, status, status_reason, \
         status_since, revision, entities_json, warnings_json, credential_json, partner_json FROM integration_state \
         ORDER BY tenant, connection_id",
    )
    .fetch_all(connection)
    .await
    .map_err(Error::Storage)?;
    rows.iter().map(integration).collect()
}

/// (finished at, completed) of the connection's runs finished at or after `since`.
pub async fn runs_since(
    connection: &mut AnyConnection,
    tenant: &str,
    connection_id: &str,
    since: DateTime<Utc>,
) -> Result<Vec<(DateTime<Utc>, bool)>, Error> {
    let rows = sqlx::query(
        "SELECT kind, finished_at FROM run_outcomes \
         WHERE tenant = $1 AND connection_id = $2 AND finished_at >= $3",
    )
    .bind(tenant)
    .bind(connection_id)
    .bind(format_time(since))
    .fetch_all(connection)
    .await
    .map_err(Error::Storage)?;
    let mut runs = Vec::with_capacity(rows.len());
    for row in rows {
        let kind: String = row.try_get("kind").map_err(Error::Storage)?;
        let finished: String = row.try_get("finished_at").map_err(Error::Storage)?;
        // A row this service wrote and cannot read is skipped rather than failing the bar.
        let (Some(kind), Ok(at)) = (
            OutcomeKind::parse(&kind),
            DateTime::parse_from_rfc3339(&finished),
        ) else {
            continue;
        };
        runs.push((at.with_timezone(&Utc), kind.completed()));
    }
    Ok(runs)
}

/// Forgets runs that finished before `before`: uptime is kept for 90 days only.
pub async fn prune_runs(
    connection: &mut AnyConnection,
    tenant: &str,
    connection_id: &str,
    before: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "DELETE FROM run_outcomes WHERE tenant = $1 AND connection_id = $2 AND finished_at < $3",
    )
    .bind(tenant)
    .bind(connection_id)
    .bind(format_time(before))
    .execute(connection)
    .await
    .map_err(Error::Storage)?;
    Ok(())
}

fn integration(row: &sqlx::any::AnyRow) -> Result<Integration, Error> {
    let text = |column: &str| -> Result<String, Error> {
        row.try_get::<String, _>(column).map_err(Error::Storage)
    };
    let number = |column: &str| -> Result<i64, Error> {
        row.try_get::<i64, _>(column).map_err(Error::Storage)
    };
    let connection_id = text("connection_id")?;
    let corrupt = |detail: String| Error::CorruptState {
        connection_id: connection_id.clone(),
        detail,
    };
    let time = |column: &str| -> Result<Option<DateTime<Utc>>, Error> {
        let value = text(column)?;
        if value.is_empty() {
            return Ok(None);
        }
        DateTime::parse_from_rfc3339(&value)
            .map(|time| Some(time.with_timezone(&Utc)))
            .map_err(|e| corrupt(format!("{column}: {e}")))
    };

    let kind_text = text("last_outcome_kind")?;
    let last_outcome = match (kind_text.as_str(), time("last_outcome_at")?) {
        ("", _) | (_, None) => None,
        (kind, Some(at)) => Some(Outcome {
            kind: OutcomeKind::parse(kind)
                .ok_or_else(|| corrupt(format!("unknown outcome kind {kind:?}")))?,
            reason: text("last_outcome_reason")?,
            records_quarantined: u64::try_from(number("last_records_quarantined")?)
                .unwrap_or_default(),
            at,
        }),
    };
    let interval_seconds = u64::try_from(number("heartbeat_interval_seconds")?).unwrap_or(0);
    let last_heartbeat = time("last_heartbeat_at")?.map(|at| HeartbeatSeen {
        at,
        interval: Duration::from_secs(interval_seconds),
    });
    let status_text = text("status")?;
    let status = Status::parse(&status_text)
        .ok_or_else(|| corrupt(format!("unknown status {status_text:?}")))?;
    let paused: i32 = row.try_get("paused").map_err(Error::Storage)?;
    let entities = serde_json::from_str(&text("entities_json")?)
        .map_err(|e| corrupt(format!("entities_json: {e}")))?;
    let warnings = serde_json::from_str(&text("warnings_json")?)
        .map_err(|e| corrupt(format!("warnings_json: {e}")))?;
    let credential = serde_json::from_str(&text("credential_json")?)
        .map_err(|e| corrupt(format!("credential_json: {e}")))?;
    let partner = serde_json::from_str(&text("partner_json")?)
        .map_err(|e| corrupt(format!("partner_json: {e}")))?;

    Ok(Integration {
        tenant: text("tenant")?,
        facts: Facts {
            connector: text("connector")?,
            paused: paused != 0,
            last_outcome,
            last_success_at: time("last_success_at")?,
            consecutive_failures: u32::try_from(number("consecutive_failures")?)
                .unwrap_or(u32::MAX),
            last_heartbeat,
            entities,
            warnings,
            credential,
            partner,
        },
        status,
        status_reason: text("status_reason")?,
        since: text("status_since")?,
        revision: number("revision")?,
        connection_id,
    })
}
