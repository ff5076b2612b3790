//! The two-way step of a page commit: before a page of partner records is stored, each changed
//! record is compared with our open pushes and the connection's ownership ([`crate::echo`]);
//! echoes and conflicts are decided ([`crate::conflicts`]); and what follows is written in the
//! page's own transaction, so a crash never keeps a conflict without its page or the reverse.
//!
//! Pages of connections with no open pushes, no unconfirmed creates and no platform-owned
//! fields cost one indexed outbox query and the policy lookup.

use std::collections::{HashMap, HashSet};

use plugboard_proto::content_hash;
use serde_json::Value;
use sqlx::{AnyConnection, AnyPool, Row};

use crate::conflicts::{self, Conflict, Resolution, Settlement};
use crate::echo::{self, FoundConflict};
use crate::error::Error;
use crate::fields::{self, FieldValues};
use crate::outbox::{self, NewPush, Origin, Push, PushState};
use crate::policy::{self, EntityPolicy};
use crate::store::{Store, StoredRecord};

/// How long a delivered push still counts as ours when its write never came back on a read
/// (a partner that rewrites the record, a stream never read).
const OPEN_PUSH_DAYS: i64 = 7;

/// How much earlier than our create a record may say it was created and still be taken for it
/// (partner clocks are not ours).
const CREATE_CLOCK_SKEW_MINUTES: i64 = 10;

/// What the two-way step decided for one page.
#[derive(Debug, Default)]
pub struct PageReview {
    /// Records stored without a change on `WatchChanges`: echoes, and conflicts the partner did
    /// not win with nothing else changed.
    silent: HashSet<String>,
    actions: Vec<Action>,
}

#[derive(Debug)]
enum Action {
    EchoSeen(String),
    LinkUnconfirmed {
        push_id: String,
        external_id: String,
    },
    Conflict(Box<Conflict>, Option<NewPush>),
    /// Fields left out of a queued push, because the partner won them or because they are in
    /// a conflict held for review (`held`).
    DropFields(Box<Push>, Vec<String>, bool),
}

impl PageReview {
    pub fn is_silent(&self, external_id: &str) -> bool {
        self.silent.contains(external_id)
    }

    /// Whether applying it queues pushes, so the outbox worker should look now.
    pub fn queues_pushes(&self) -> bool {
        self.actions
            .iter()
            .any(|action| matches!(action, Action::Conflict(_, Some(_))))
    }
}

/// Reviews a page of mapped records of `entity` before it is committed.
pub async fn review_page(
    store: &Store,
    tenant_id: &str,
    connection_id: &str,
    entity: &str,
    records: &[StoredRecord],
) -> Result<PageReview, Error> {
    let mut page = PageReview::default();
    if records.is_empty() {
        return Ok(page);
    }
    let pool = store.pool();
    let outbox = store.outbox();
    let ids: Vec<&str> = records.iter().map(|r| r.external_id.as_str()).collect();
    let open_since = plugboard_runtime::storage::format_time(
        chrono::Utc::now() - chrono::Duration::days(OPEN_PUSH_DAYS),
    );
    let open = outbox
        .open_for_records(tenant_id, connection_id, entity, &ids, &open_since)
        .await?;
    let mut unconfirmed = outbox
        .unconfirmed_creates(tenant_id, connection_id, entity)
        .await?;
    let policy = policy::load(pool, tenant_id, connection_id)
        .await?
        .for_entity(entity);
    if open.is_empty() && unconfirmed.is_empty() && !policy.owns_fields() {
        return Ok(page);
    }
    let stored = stored_records(pool, tenant_id, connection_id, entity, &ids).await?;
    let now = plugboard_runtime::storage::now_text();

    for record in records {
        let before = stored.get(&record.external_id);
        if before.is_some_and(|before| before.content_hash == record.content_hash) {
            continue;
        }
        let incoming = values_of(record)?;
        // A hash of another scheme says nothing; the same values are the same record (see
        // `rehash`, which replaces the stored hash when the page is committed).
        if before.is_some_and(|before| {
            !content_hash::same_scheme(&before.content_hash, &record.content_hash)
                && before.values == incoming
        }) {
            continue;
        }
        let ours: Vec<&Push> = open
            .iter()
            .filter(|push| push.external_id == record.external_id)
            .collect();
        if before.is_none() && ours.is_empty() {
            // A record new to us may be a create whose answer we never got.
            if let Some(index) = unconfirmed
                .iter()
                .position(|push| is_our_create(push, &incoming))
            {
                let push = unconfirmed.remove(index);
                tracing::info!(
                    push_id = %push.push_id, external_id = %record.external_id,
                    "an unconfirmed create turned up at the partner"
                );
                page.actions.push(Action::LinkUnconfirmed {
                    push_id: push.push_id,
                    external_id: record.external_id.clone(),
                });
                page.silent.insert(record.external_id.clone());
            }
            continue;
        }
        let before_values = before.map(|before| before.values.clone());
        let review = echo::review(before_values.as_ref(), &incoming, &ours, &policy);
        page.actions
            .extend(review.echoes_seen.into_iter().map(Action::EchoSeen));
        if review.echo {
            page.silent.insert(record.external_id.clone());
            continue;
        }
        let mut partner_won = false;
        for found in review.conflicts {
            let changed_at = |values: &FieldValues| {
                values
                    .get("updated_at")
                    .and_then(Value::as_str)
                    .and_then(conflicts::parse_time)
            };
            let settlement = conflicts::settle(
                policy.conflict_policy,
                &found,
                changed_at(&incoming),
                before_values.as_ref().and_then(changed_at),
            );
            partner_won |= settlement == Settlement::PartnerWon;
            // A queued push must not write what the partner won, nor what waits for review:
            // settling a held conflict for the platform queues its own write-back.
            let held = matches!(settlement, Settlement::Held { .. });
            if (settlement == Settlement::PartnerWon || held)
                && let Some(push) = found.against.as_ref().and_then(|against| {
                    open.iter().find(|push| {
                        push.push_id == against.push_id && push.state == PushState::Pending
                    })
                })
            {
                let dropped = found.fields.iter().map(|f| f.field.clone()).collect();
                page.actions
                    .push(Action::DropFields(Box::new(push.clone()), dropped, held));
            }
            let (conflict, write_back) = record_conflict(
                tenant_id,
                connection_id,
                &policy,
                record,
                found,
                settlement,
                &now,
            );
            tracing::info!(
                conflict_id = %conflict.conflict_id, external_id = %record.external_id,
                entity, held = conflict.held, fields = conflict.fields.len(),
                "conflict recorded"
            );
            page.actions
                .push(Action::Conflict(Box::new(conflict), write_back));
        }
        if review.partner_changes.is_empty() && !partner_won {
            page.silent.insert(record.external_id.clone());
        }
    }
    Ok(page)
}

/// Writes what the review decided, inside the page's transaction.
pub async fn apply(
    connection: &mut AnyConnection,
    tenant_id: &str,
    review: &PageReview,
) -> Result<(), Error> {
    let now = plugboard_runtime::storage::now_text();
    for action in &review.actions {
        match action {
            Action::EchoSeen(push_id) => outbox::mark_echo_seen(connection, push_id, &now).await?,
            Action::LinkUnconfirmed {
                push_id,
                external_id,
            } => outbox::link_unconfirmed(connection, push_id, external_id, &now).await?,
            Action::DropFields(push, fields, held) => {
                outbox::drop_fields(connection, push, fields, *held, &now).await?
            }
            Action::Conflict(conflict, write_back) => {
                let mut conflict = conflict.as_ref().clone();
                if let Some(write_back) = write_back {
                    conflict.corrective_push_id =
                        outbox::insert(connection, write_back).await?.push_id;
                }
                conflicts::insert(connection, tenant_id, &conflict).await?;
            }
        }
    }
    Ok(())
}

/// The push that writes the platform's side of a conflict back to the partner.
pub fn write_back(
    tenant_id: &str,
    connection_id: &str,
    entity: &str,
    external_id: &str,
    conflict_id: &str,
    values: &FieldValues,
) -> NewPush {
    let record_json = fields::to_body(values).to_string();
    NewPush {
        tenant_id: tenant_id.to_owned(),
        connection_id: connection_id.to_owned(),
        idempotency_key: format!("conflict:{conflict_id}"),
        entity: entity.to_owned(),
        request_json: serde_json::json!({
            "conflict_id": conflict_id, "external_id": external_id, "record": record_json,
        })
        .to_string(),
        record_json,
        skipped_fields: Vec::new(),
        external_id: external_id.to_owned(),
        origin: Origin::Conflict,
    }
}

/// The platform's values of a conflict, as a push writes them.
pub fn platform_values(conflict: &Conflict) -> FieldValues {
    conflict
        .fields
        .iter()
        .filter_map(|field| Some((field.field.clone(), field.platform_value.clone()?)))
        .collect()
}

fn record_conflict(
    tenant_id: &str,
    connection_id: &str,
    policy: &EntityPolicy,
    record: &StoredRecord,
    found: FoundConflict,
    settlement: Settlement,
    now: &str,
) -> (Conflict, Option<NewPush>) {
    let (held, resolution, reason) = match &settlement {
        Settlement::PartnerWon => (false, Some(Resolution::Partner), found.reason),
        Settlement::PlatformWon { .. } => (false, Some(Resolution::Platform), found.reason),
        Settlement::Held { why: Some(why) } => (true, None, format!("{}; {why}", found.reason)),
        Settlement::Held { why: None } => (true, None, found.reason),
    };
    let conflict = Conflict {
        conflict_id: uuid::Uuid::now_v7().to_string(),
        connection_id: connection_id.to_owned(),
        entity: policy.entity.clone(),
        external_id: record.external_id.clone(),
        fields: found.fields,
        policy: policy.conflict_policy,
        held,
        resolution,
        reason,
        push_id: found
            .against
            .map(|against| against.push_id)
            .unwrap_or_default(),
        corrective_push_id: String::new(),
        detected_at: now.to_owned(),
        resolved_at: (!held).then(|| now.to_owned()),
    };
    let write_back =
        matches!(settlement, Settlement::PlatformWon { write_back: true }).then(|| {
            write_back(
                tenant_id,
                connection_id,
                &policy.entity,
                &record.external_id,
                &conflict.conflict_id,
                &platform_values(&conflict),
            )
        });
    (conflict, write_back)
}

/// Whether a partner record is what an unconfirmed create of ours would have made: every field
/// we wrote has our value, and it was not created well before we pushed.
fn is_our_create(push: &Push, incoming: &FieldValues) -> bool {
    let written = push.pushed_fields();
    let created_after_push = || {
        let created = incoming
            .get("created_at")
            .and_then(Value::as_str)
            .and_then(conflicts::parse_time);
        let pushed = conflicts::parse_time(&push.created_at);
        match (created, pushed) {
            (Some(created), Some(pushed)) => {
                created >= pushed - chrono::Duration::minutes(CREATE_CLOCK_SKEW_MINUTES)
            }
            _ => true,
        }
    };
    !written.is_empty()
        && written
            .iter()
            .all(|(field, value)| incoming.get(field) == Some(value))
        && created_after_push()
}

/// A stored record as the review needs it.
struct Before {
    content_hash: String,
    values: FieldValues,
}

/// The field values of a record: its body's, and its custom fields under `custom_fields.`.
pub fn values_of(record: &StoredRecord) -> Result<FieldValues, Error> {
    values_from_json(&record.body_json, &record.custom_fields_json)
}

fn values_from_json(body_json: &str, custom_fields_json: &str) -> Result<FieldValues, Error> {
    let mut body: Value =
        serde_json::from_str(body_json).map_err(|e| Error::Corrupt(format!("record body: {e}")))?;
    let custom: Value = serde_json::from_str(custom_fields_json)
        .map_err(|e| Error::Corrupt(format!("custom fields: {e}")))?;
    if let Value::Object(body) = &mut body {
        body.insert("custom_fields".to_owned(), custom);
    }
    Ok(fields::of_body(&body))
}

async fn stored_records(
    pool: &AnyPool,
    tenant_id: &str,
    connection_id: &str,
    entity: &str,
    ids: &[&str],
) -> Result<HashMap<String, Before>, Error> {
    let placeholders: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 4)).collect();
    let sql = format!(
        "SELECT external_id, content_hash, body_json, custom_fields_json FROM records \
         WHERE tenant_id = $1 AND connection_id = $2 AND entity = $3 \
         AND deleted_at IS NULL AND external_id IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tenant_id)
        .bind(connection_id)
        .bind(entity);
    for id in ids {
        query = query.bind(*id);
    }
    let mut stored = HashMap::new();
    for row in query.fetch_all(pool).await? {
        let body: String = row.try_get("body_json")?;
        let custom: String = row.try_get("custom_fields_json")?;
        stored.insert(
            row.try_get("external_id")?,
            Before {
                content_hash: row.try_get("content_hash")?,
                values: values_from_json(&body, &custom)?,
            },
        );
    }
    Ok(stored)
}
