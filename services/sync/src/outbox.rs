//! The outbox: every write to a partner as a durable row, from `PushRecord` to its outcome.
//!
//! A push is `pending` until a replica claims it (`claimed`), marks it `sending` just before it
//! calls the connector, and records the outcome: `delivered` with the partner's id, `pending`
//! again with a later `next_attempt_at` after a transient failure, `failed` with the reason, or
//! `unconfirmed` when an attempt may have reached a partner that cannot take it twice. Claims
//! are compare-and-set updates, so replicas sharing the database never deliver one push twice,
//! and claims expire: a replica that died holding one leaves it to be recovered (a push that
//! died `sending` is marked `maybe_sent`, and the connector then refuses to repeat a create).
//!
//! Every query but the worker's claim, recovery and purge names the tenant. A push is the record
//! of its idempotency key, so it is kept while a caller may still retry: settled pushes
//! (delivered or failed) are purged after the retention ([`Outbox::purge_settled`]), unless a
//! held conflict still names them; pending, in-flight and unconfirmed ones are never purged.
//! An unconfirmed push the caller knows the partner never made is given up
//! ([`Outbox::give_up`]): it becomes failed, and stays the record of its key.

use std::sync::Arc;

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};
use tokio::sync::Notify;

use crate::error::Error;
use crate::fields::{self, FieldValues};

const COLUMNS: &str = "push_id, tenant_id, connection_id, idempotency_key, entity, request_json, \
     record_json, skipped_fields_json, external_id, is_create, origin, state, attempts, \
     maybe_sent, next_attempt_at, error, error_reason, answer_fields_json, created_at, \
     updated_at, delivered_at, echo_seen_at";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushState {
    Pending,
    /// Taken by a replica that has not called the connector yet.
    Claimed,
    /// The connector has been called; the partner may have the write.
    Sending,
    Delivered,
    Failed,
    Unconfirmed,
}

impl PushState {
    pub fn as_str(self) -> &'static str {
        match self {
            PushState::Pending => "pending",
            PushState::Claimed => "claimed",
            PushState::Sending => "sending",
            PushState::Delivered => "delivered",
            PushState::Failed => "failed",
            PushState::Unconfirmed => "unconfirmed",
        }
    }

    fn parse(text: &str) -> Result<PushState, Error> {
        Ok(match text {
            "pending" => PushState::Pending,
            "claimed" => PushState::Claimed,
            "sending" => PushState::Sending,
            "delivered" => PushState::Delivered,
            "failed" => PushState::Failed,
            "unconfirmed" => PushState::Unconfirmed,
            other => return Err(Error::Corrupt(format!("unknown push state {other:?}"))),
        })
    }

    /// Whether the push will still write (or may have written) values nobody has read back.
    pub fn is_in_flight(self) -> bool {
        matches!(
            self,
            PushState::Pending | PushState::Claimed | PushState::Sending
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Caller,
    /// Queued by sync to write back values the platform won in a conflict.
    Conflict,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Caller => "caller",
            Origin::Conflict => "conflict",
        }
    }
}

/// A push to queue.
#[derive(Debug, Clone)]
pub struct NewPush {
    pub tenant_id: String,
    pub connection_id: String,
    pub idempotency_key: String,
    pub entity: String,
    /// The request as the caller made it; the same key must come with the same request.
    pub request_json: String,
    pub record_json: String,
    pub skipped_fields: Vec<String>,
    /// The partner's id to update; empty to create.
    pub external_id: String,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    pub push_id: String,
    pub tenant_id: String,
    pub connection_id: String,
    pub idempotency_key: String,
    pub entity: String,
    pub request_json: String,
    pub record_json: String,
    pub skipped_fields: Vec<String>,
    pub external_id: String,
    pub is_create: bool,
    pub origin: Origin,
    pub state: PushState,
    pub attempts: u32,
    pub maybe_sent: bool,
    pub next_attempt_at: String,
    pub error: Option<String>,
    pub error_reason: Option<String>,
    pub answer_fields: Option<FieldValues>,
    pub created_at: String,
    pub updated_at: String,
    pub delivered_at: Option<String>,
    pub echo_seen_at: Option<String>,
}

impl Push {
    /// The field values this push writes.
    pub fn pushed_fields(&self) -> FieldValues {
        serde_json::from_str::<Value>(&self.record_json)
            .map(|body| fields::of_body(&body))
            .unwrap_or_default()
    }
}

/// How an attempt ended, as the worker records it.
#[derive(Debug, Clone)]
pub enum Outcome {
    Delivered {
        external_id: String,
        answer_fields: Option<FieldValues>,
    },
    Retry {
        next_attempt_at: String,
        error: String,
        reason: String,
        maybe_sent: bool,
    },
    Failed {
        error: String,
        reason: String,
    },
    Unconfirmed {
        error: String,
        reason: String,
    },
}

#[derive(Clone)]
pub struct Outbox {
    pool: AnyPool,
    /// Woken when a push is queued on this replica, so it goes out at once.
    queued: Arc<Notify>,
    /// Woken when this replica records a push's outcome, for callers waiting on it.
    settled: Arc<Notify>,
}

impl Outbox {
    pub fn new(pool: AnyPool, queued: Arc<Notify>, settled: Arc<Notify>) -> Outbox {
        Outbox {
            pool,
            queued,
            settled,
        }
    }

    pub fn queued(&self) -> &Notify {
        &self.queued
    }

    pub fn notify_queued(&self) {
        self.queued.notify_waiters();
    }

    pub fn settled(&self) -> &Notify {
        &self.settled
    }

    pub fn notify_settled(&self) {
        self.settled.notify_waiters();
    }

    /// Queues a push, or returns the one already queued under its key. `IdempotencyKeyReused`
    /// when that one was asked for with another request.
    pub async fn enqueue(&self, push: &NewPush) -> Result<Push, Error> {
        let mut connection = self.pool.acquire().await?;
        let queued = insert(&mut connection, push).await?;
        self.queued.notify_waiters();
        Ok(queued)
    }

    pub async fn get(&self, tenant_id: &str, push_id: &str) -> Result<Option<Push>, Error> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM outbox WHERE tenant_id = $1 AND push_id = $2"
        )))
        .bind(tenant_id)
        .bind(push_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(push_from_row).transpose()
    }

    /// The connection's pushes older than `before_push_id` (all when empty), newest first.
    pub async fn list(
        &self,
        tenant_id: &str,
        connection_id: &str,
        before_push_id: &str,
        limit: u32,
    ) -> Result<Vec<Push>, Error> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM outbox WHERE tenant_id = $1 AND connection_id = $2 \
             AND ($3 = '' OR push_id < $3) ORDER BY push_id DESC LIMIT $4"
        )))
        .bind(tenant_id)
        .bind(connection_id)
        .bind(before_push_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(push_from_row).collect()
    }

    /// Claims up to `limit` due pushes of every tenant for `holder` until `claimed_until`. A push
    /// waits while an older one to the same partner record is unfinished, so updates arrive in
    /// the order they were pushed.
    pub async fn claim_due(
        &self,
        now: &str,
        holder: &str,
        claimed_until: &str,
        limit: u32,
    ) -> Result<Vec<Push>, Error> {
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT o.push_id FROM outbox o WHERE o.state = 'pending' \
             AND o.next_attempt_at <= $1 AND NOT EXISTS (SELECT 1 FROM outbox e \
             WHERE o.external_id <> '' AND e.tenant_id = o.tenant_id \
             AND e.connection_id = o.connection_id AND e.entity = o.entity \
             AND e.external_id = o.external_id AND e.push_id < o.push_id \
             AND e.state IN ('pending', 'claimed', 'sending')) \
             ORDER BY o.next_attempt_at, o.push_id LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = Vec::with_capacity(due.len());
        for push_id in due {
            // Compare-and-set: of replicas racing for one push, one update matches.
            let won = sqlx::query(
                "UPDATE outbox SET state = 'claimed', claimed_by = $2, claimed_until = $3, \
                 attempts = attempts + 1, updated_at = $4 \
                 WHERE push_id = $1 AND state = 'pending' AND next_attempt_at <= $4",
            )
            .bind(&push_id)
            .bind(holder)
            .bind(claimed_until)
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected()
                == 1;
            if won {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM outbox WHERE push_id = $1"
                )))
                .bind(&push_id)
                .fetch_one(&self.pool)
                .await?;
                claimed.push(push_from_row(&row)?);
            }
        }
        Ok(claimed)
    }

    /// Records that the connector is about to be called; false when the claim was lost.
    pub async fn mark_sending(&self, push_id: &str, holder: &str) -> Result<bool, Error> {
        let marked = sqlx::query(
            "UPDATE outbox SET state = 'sending', updated_at = $3 \
             WHERE push_id = $1 AND claimed_by = $2 AND state = 'claimed'",
        )
        .bind(push_id)
        .bind(holder)
        .bind(plugboard_runtime::storage::now_text())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(marked == 1)
    }

    /// Records how an attempt ended; false when the claim had been lost (expired and recovered
    /// by another replica), in which case nothing is written.
    pub async fn finish(
        &self,
        push_id: &str,
        holder: &str,
        outcome: &Outcome,
    ) -> Result<bool, Error> {
        let now = plugboard_runtime::storage::now_text();
        let guard = "WHERE push_id = $1 AND claimed_by = $2 AND state IN ('claimed', 'sending')";
        let query = match outcome {
            Outcome::Delivered {
                external_id,
                answer_fields,
            } => {
                let answer = answer_fields
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(|e| Error::Corrupt(format!("answer fields: {e}")))?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE outbox SET state = 'delivered', external_id = $3, \
                     answer_fields_json = $4, delivered_at = $5, updated_at = $5, error = NULL, \
                     error_reason = NULL, claimed_by = NULL, claimed_until = NULL {guard}"
                )))
                .bind(push_id)
                .bind(holder)
                .bind(external_id.clone())
                .bind(answer)
                .bind(now)
            }
            Outcome::Retry {
                next_attempt_at,
                error,
                reason,
                maybe_sent,
            } => sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE outbox SET state = 'pending', next_attempt_at = $3, error = $4, \
                 error_reason = $5, maybe_sent = CASE WHEN $6 = 1 THEN 1 ELSE maybe_sent END, \
                 updated_at = $7, claimed_by = NULL, claimed_until = NULL {guard}"
            )))
            .bind(push_id)
            .bind(holder)
            .bind(next_attempt_at.clone())
            .bind(error.clone())
            .bind(reason.clone())
            .bind(i32::from(*maybe_sent))
            .bind(now),
            Outcome::Failed { error, reason } | Outcome::Unconfirmed { error, reason } => {
                let state = if matches!(outcome, Outcome::Failed { .. }) {
                    PushState::Failed
                } else {
                    PushState::Unconfirmed
                };
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE outbox SET state = $3, error = $4, error_reason = $5, \
                     updated_at = $6, claimed_by = NULL, claimed_until = NULL {guard}"
                )))
                .bind(push_id)
                .bind(holder)
                .bind(state.as_str())
                .bind(error.clone())
                .bind(reason.clone())
                .bind(now)
            }
        };
        Ok(query.execute(&self.pool).await?.rows_affected() == 1)
    }

    /// Returns expired claims to `pending`; one that expired while `sending` may have reached
    /// the partner, which the next attempt tells the connector. Returns how many.
    /// Marks an unconfirmed push of the tenant failed with the caller's `reason`; false when
    /// there is no such push or it is not unconfirmed (any more).
    pub async fn give_up(
        &self,
        tenant_id: &str,
        push_id: &str,
        reason: &str,
    ) -> Result<bool, Error> {
        let given_up = sqlx::query(
            "UPDATE outbox SET state = 'failed', error = $3, error_reason = 'GIVEN_UP', \
             updated_at = $4 WHERE tenant_id = $1 AND push_id = $2 AND state = 'unconfirmed'",
        )
        .bind(tenant_id)
        .bind(push_id)
        .bind(reason)
        .bind(plugboard_runtime::storage::now_text())
        .execute(&self.pool)
        .await?
        .rows_affected();
        if given_up > 0 {
            self.notify_settled();
        }
        Ok(given_up > 0)
    }

    /// Deletes up to `limit` settled pushes (delivered or failed) last changed before `before`,
    /// except those a held conflict names; returns how many went. Every tenant's, like the
    /// worker's claims.
    pub async fn purge_settled(&self, before: &str, limit: i64) -> Result<u64, Error> {
        let purged = sqlx::query(
            "DELETE FROM outbox WHERE push_id IN (SELECT push_id FROM outbox \
             WHERE state IN ('delivered', 'failed') AND updated_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM conflicts WHERE conflicts.state = 'held' \
             AND (conflicts.push_id = outbox.push_id \
             OR conflicts.corrective_push_id = outbox.push_id)) \
             ORDER BY updated_at LIMIT $2)",
        )
        .bind(before)
        .bind(limit)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(purged)
    }

    pub async fn recover_expired(&self, now: &str) -> Result<u64, Error> {
        let recovered = sqlx::query(
            "UPDATE outbox SET maybe_sent = CASE WHEN state = 'sending' THEN 1 ELSE maybe_sent END, \
             state = 'pending', claimed_by = NULL, claimed_until = NULL, updated_at = $1 \
             WHERE state IN ('claimed', 'sending') AND claimed_until < $1",
        )
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(recovered)
    }

    /// Pushes to the records `external_ids` whose values still count as ours: in flight, or
    /// delivered after `delivered_since` and not yet read back. Oldest first.
    pub async fn open_for_records(
        &self,
        tenant_id: &str,
        connection_id: &str,
        entity: &str,
        external_ids: &[&str],
        delivered_since: &str,
    ) -> Result<Vec<Push>, Error> {
        if external_ids.is_empty() {
            return Ok(Vec::new());
        }
        // A page's worth of ids: written as the backend binds many parameters best, and bound
        // in the order the text names them.
        let mut connection = self.pool.acquire().await?;
        let marks = plugboard_runtime::placeholders::Placeholders::of(&connection);
        let sql = format!(
            "SELECT {COLUMNS} FROM outbox WHERE tenant_id = {} AND connection_id = {} \
             AND entity = {} AND external_id IN ({}) AND (state IN ('pending', 'claimed', \
             'sending') OR (state = 'delivered' AND echo_seen_at IS NULL AND delivered_at >= {})) \
             ORDER BY push_id",
            marks.one(1),
            marks.one(2),
            marks.one(3),
            marks.list(4, external_ids.len()),
            marks.one(4 + external_ids.len()),
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant_id)
            .bind(connection_id)
            .bind(entity);
        for id in external_ids {
            query = query.bind(*id);
        }
        let rows = query
            .bind(delivered_since)
            .fetch_all(&mut *connection)
            .await?;
        rows.iter().map(push_from_row).collect()
    }

    /// The connection's creates whose outcome is unknown, oldest first.
    pub async fn unconfirmed_creates(
        &self,
        tenant_id: &str,
        connection_id: &str,
        entity: &str,
    ) -> Result<Vec<Push>, Error> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM outbox WHERE tenant_id = $1 AND connection_id = $2 \
             AND entity = $3 AND is_create = 1 AND state = 'unconfirmed' ORDER BY push_id"
        )))
        .bind(tenant_id)
        .bind(connection_id)
        .bind(entity)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(push_from_row).collect()
    }
}

/// Inserts a push unless its key is taken, then returns the push stored under the key.
pub async fn insert(connection: &mut AnyConnection, push: &NewPush) -> Result<Push, Error> {
    let now = plugboard_runtime::storage::now_text();
    let skipped = serde_json::to_string(&push.skipped_fields)
        .map_err(|e| Error::Corrupt(format!("skipped fields: {e}")))?;
    sqlx::query(
        "INSERT INTO outbox (push_id, tenant_id, connection_id, idempotency_key, entity, \
         request_json, record_json, skipped_fields_json, external_id, is_create, origin, state, \
         attempts, maybe_sent, next_attempt_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', 0, 0, $12, $12, $12) \
         ON CONFLICT (tenant_id, connection_id, idempotency_key) DO NOTHING",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(&push.tenant_id)
    .bind(&push.connection_id)
    .bind(&push.idempotency_key)
    .bind(&push.entity)
    .bind(&push.request_json)
    .bind(&push.record_json)
    .bind(skipped)
    .bind(&push.external_id)
    .bind(i32::from(push.external_id.is_empty()))
    .bind(push.origin.as_str())
    .bind(now)
    .execute(&mut *connection)
    .await?;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM outbox WHERE tenant_id = $1 AND connection_id = $2 \
         AND idempotency_key = $3"
    )))
    .bind(&push.tenant_id)
    .bind(&push.connection_id)
    .bind(&push.idempotency_key)
    .fetch_one(&mut *connection)
    .await?;
    let stored = push_from_row(&row)?;
    if stored.request_json != push.request_json {
        return Err(Error::IdempotencyKeyReused {
            idempotency_key: push.idempotency_key.clone(),
        });
    }
    Ok(stored)
}

/// A create whose outcome was unknown turned up at the partner as `external_id`.
pub async fn link_unconfirmed(
    connection: &mut AnyConnection,
    push_id: &str,
    external_id: &str,
    now: &str,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE outbox SET state = 'delivered', external_id = $2, delivered_at = $3, \
         echo_seen_at = $3, updated_at = $3, error = NULL, error_reason = NULL \
         WHERE push_id = $1 AND state = 'unconfirmed'",
    )
    .bind(push_id)
    .bind(external_id)
    .bind(now)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Delivered pushes whose values a read brought back: from now on they are the partner's.
pub async fn mark_echo_seen(
    connection: &mut AnyConnection,
    push_id: &str,
    now: &str,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE outbox SET echo_seen_at = $2 WHERE push_id = $1 AND state = 'delivered' \
         AND echo_seen_at IS NULL",
    )
    .bind(push_id)
    .bind(now)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Leaves `fields` out of a push not sent yet: the partner won them, or they are in a conflict
/// `held` for review (settling it for the platform queues its own write-back). A push left
/// with nothing to write fails, saying which.
pub async fn drop_fields(
    connection: &mut AnyConnection,
    push: &Push,
    dropped: &[String],
    held: bool,
    now: &str,
) -> Result<(), Error> {
    let mut values = push.pushed_fields();
    values.retain(|field, _| !dropped.contains(field));
    let (state, error, reason) = if values.is_empty() && held {
        (
            PushState::Failed,
            Some(
                "held: every field of this push is in a conflict held for review; settling it \
                 for the platform writes them back"
                    .to_owned(),
            ),
            Some("HELD_FOR_REVIEW".to_owned()),
        )
    } else if values.is_empty() {
        (
            PushState::Failed,
            Some("superseded: the partner's values won every field of this push".to_owned()),
            Some("SUPERSEDED_BY_PARTNER".to_owned()),
        )
    } else {
        (PushState::Pending, None, None)
    };
    sqlx::query(
        "UPDATE outbox SET record_json = $2, state = $3, error = $4, error_reason = $5, \
         updated_at = $6 WHERE push_id = $1 AND state = 'pending'",
    )
    .bind(&push.push_id)
    .bind(fields::to_body(&values).to_string())
    .bind(state.as_str())
    .bind(error)
    .bind(reason)
    .bind(now)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

fn push_from_row(row: &AnyRow) -> Result<Push, Error> {
    let corrupt = |what: &str, e: serde_json::Error| Error::Corrupt(format!("push {what}: {e}"));
    let skipped: String = row.try_get("skipped_fields_json")?;
    let answer: Option<String> = row.try_get("answer_fields_json")?;
    let is_create: i32 = row.try_get("is_create")?;
    let maybe_sent: i32 = row.try_get("maybe_sent")?;
    let attempts: i64 = row.try_get("attempts")?;
    let origin: String = row.try_get("origin")?;
    let state: String = row.try_get("state")?;
    Ok(Push {
        push_id: row.try_get("push_id")?,
        tenant_id: row.try_get("tenant_id")?,
        connection_id: row.try_get("connection_id")?,
        idempotency_key: row.try_get("idempotency_key")?,
        entity: row.try_get("entity")?,
        request_json: row.try_get("request_json")?,
        record_json: row.try_get("record_json")?,
        skipped_fields: serde_json::from_str(&skipped).map_err(|e| corrupt("skipped", e))?,
        external_id: row.try_get("external_id")?,
        is_create: is_create != 0,
        origin: if origin == "conflict" {
            Origin::Conflict
        } else {
            Origin::Caller
        },
        state: PushState::parse(&state)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        maybe_sent: maybe_sent != 0,
        next_attempt_at: row.try_get("next_attempt_at")?,
        error: row.try_get("error")?,
        error_reason: row.try_get("error_reason")?,
        answer_fields: answer
            .map(|json| serde_json::from_str(&json))
            .transpose()
            .map_err(|e| corrupt("answer", e))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        delivered_at: row.try_get("delivered_at")?,
        echo_seen_at: row.try_get("echo_seen_at")?,
    })
}
