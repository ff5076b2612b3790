//! Conflicts: how each is settled under the connection's policy, and their table.
//!
//! Every conflict is recorded, settled or not. Settling one never rewrites the record store,
//! which always holds what the partner has: when the platform wins, a push writes its values
//! back to the partner and the store follows when that write is read back (as an echo); when
//! the partner wins, the change is published like any other; a held conflict waits for
//! `ResolveConflict`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};

use crate::echo::{FieldConflict, FoundConflict};
use crate::error::Error;
use crate::outbox::{Origin, PushState};
use crate::policy::ConflictPolicy;

const COLUMNS: &str = "conflict_id, tenant_id, connection_id, entity, external_id, fields_json, \
     policy, state, resolution, reason, push_id, corrective_push_id, detected_at, resolved_at";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Partner,
    Platform,
}

impl Resolution {
    fn as_str(self) -> &'static str {
        match self {
            Resolution::Partner => "partner",
            Resolution::Platform => "platform",
        }
    }
}

/// What the policy decided for a conflict just found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    PartnerWon,
    /// `write_back` when no queued push of ours is going to write the values anyway.
    PlatformWon {
        write_back: bool,
    },
    Held {
        why: Option<String>,
    },
}

/// Decides a conflict. `partner_changed_at` is the incoming record's change time;
/// `stored_changed_at` that of the record as stored, the platform's time for a platform-owned
/// field no push touched.
pub fn settle(
    policy: ConflictPolicy,
    conflict: &FoundConflict,
    partner_changed_at: Option<DateTime<Utc>>,
    stored_changed_at: Option<DateTime<Utc>>,
) -> Settlement {
    let in_flight = conflict
        .against
        .as_ref()
        .is_some_and(|push| push.state.is_in_flight());
    let platform = || {
        // Writing our own write-back again would loop with a partner that keeps changing the
        // value (normalising an e-mail address, say): the second time, someone decides.
        if conflict.against.as_ref().is_some_and(|push| {
            push.origin == Origin::Conflict && push.state == PushState::Delivered
        }) {
            return Settlement::Held {
                why: Some(
                    "the partner did not keep the values sync wrote back after an earlier \
                     conflict; held so the two sides do not overwrite each other for ever"
                        .to_owned(),
                ),
            };
        }
        Settlement::PlatformWon {
            write_back: !in_flight,
        }
    };
    match policy {
        ConflictPolicy::PartnerWins => Settlement::PartnerWon,
        ConflictPolicy::PlatformWins => platform(),
        // The review of the page takes the held fields out of a push still queued for them.
        ConflictPolicy::HoldForReview => Settlement::Held { why: None },
        ConflictPolicy::LatestChangeWins => {
            let platform_changed_at = match &conflict.against {
                Some(push) => parse_time(&push.created_at),
                None => stored_changed_at,
            };
            match (partner_changed_at, platform_changed_at) {
                (Some(partner), Some(ours)) if partner > ours => Settlement::PartnerWon,
                (Some(_), Some(_)) => platform(),
                _ => Settlement::Held {
                    why: Some("the change times of the two sides cannot be compared".to_owned()),
                },
            }
        }
    }
}

pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredField {
    field: String,
    platform: Option<Value>,
    partner: Option<Value>,
}

/// A conflict as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub conflict_id: String,
    pub connection_id: String,
    pub entity: String,
    pub external_id: String,
    pub fields: Vec<FieldConflict>,
    pub policy: ConflictPolicy,
    pub held: bool,
    pub resolution: Option<Resolution>,
    pub reason: String,
    pub push_id: String,
    pub corrective_push_id: String,
    pub detected_at: String,
    pub resolved_at: Option<String>,
}

/// Records a conflict inside the page's transaction.
pub async fn insert(
    connection: &mut AnyConnection,
    tenant_id: &str,
    conflict: &Conflict,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO conflicts (conflict_id, tenant_id, connection_id, entity, external_id, \
         fields_json, policy, state, resolution, reason, push_id, corrective_push_id, \
         detected_at, resolved_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&conflict.conflict_id)
    .bind(tenant_id)
    .bind(&conflict.connection_id)
    .bind(&conflict.entity)
    .bind(&conflict.external_id)
    .bind(fields_json(&conflict.fields)?)
    .bind(conflict.policy.as_str())
    .bind(if conflict.held { "held" } else { "resolved" })
    .bind(conflict.resolution.map(Resolution::as_str).unwrap_or(""))
    .bind(&conflict.reason)
    .bind(&conflict.push_id)
    .bind(&conflict.corrective_push_id)
    .bind(&conflict.detected_at)
    .bind(&conflict.resolved_at)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

pub async fn get(
    connection: &mut AnyConnection,
    tenant_id: &str,
    conflict_id: &str,
) -> Result<Option<Conflict>, Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM conflicts WHERE tenant_id = $1 AND conflict_id = $2"
    )))
    .bind(tenant_id)
    .bind(conflict_id)
    .fetch_optional(&mut *connection)
    .await?;
    row.as_ref().map(conflict_from_row).transpose()
}

/// The connection's conflicts older than `before_id` (all when empty), newest first.
pub async fn list(
    pool: &AnyPool,
    tenant_id: &str,
    connection_id: &str,
    held_only: bool,
    before_id: &str,
    limit: u32,
) -> Result<Vec<Conflict>, Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM conflicts WHERE tenant_id = $1 AND connection_id = $2 \
         AND ($3 = 0 OR state = 'held') AND ($4 = '' OR conflict_id < $4) \
         ORDER BY conflict_id DESC LIMIT $5"
    )))
    .bind(tenant_id)
    .bind(connection_id)
    .bind(i32::from(held_only))
    .bind(before_id)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(conflict_from_row).collect()
}

/// Settles a held conflict; false when it was no longer held (settled meanwhile).
pub async fn mark_resolved(
    connection: &mut AnyConnection,
    tenant_id: &str,
    conflict_id: &str,
    resolution: Resolution,
    corrective_push_id: &str,
    now: &str,
) -> Result<bool, Error> {
    let updated = sqlx::query(
        "UPDATE conflicts SET state = 'resolved', resolution = $3, corrective_push_id = $4, \
         resolved_at = $5 WHERE tenant_id = $1 AND conflict_id = $2 AND state = 'held'",
    )
    .bind(tenant_id)
    .bind(conflict_id)
    .bind(resolution.as_str())
    .bind(corrective_push_id)
    .bind(now)
    .execute(&mut *connection)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

fn fields_json(fields: &[FieldConflict]) -> Result<String, Error> {
    let stored: Vec<StoredField> = fields
        .iter()
        .map(|field| StoredField {
            field: field.field.clone(),
            platform: field.platform_value.clone(),
            partner: field.partner_value.clone(),
        })
        .collect();
    serde_json::to_string(&stored).map_err(|e| Error::Corrupt(format!("conflict fields: {e}")))
}

fn conflict_from_row(row: &AnyRow) -> Result<Conflict, Error> {
    let fields: String = row.try_get("fields_json")?;
    let fields: Vec<StoredField> = serde_json::from_str(&fields)
        .map_err(|e| Error::Corrupt(format!("conflict fields: {e}")))?;
    let policy: String = row.try_get("policy")?;
    let state: String = row.try_get("state")?;
    let resolution: String = row.try_get("resolution")?;
    Ok(Conflict {
        conflict_id: row.try_get("conflict_id")?,
        connection_id: row.try_get("connection_id")?,
        entity: row.try_get("entity")?,
        external_id: row.try_get("external_id")?,
        fields: fields
            .into_iter()
            .map(|field| FieldConflict {
                field: field.field,
                platform_value: field.platform,
                partner_value: field.partner,
            })
            .collect(),
        policy: ConflictPolicy::parse(&policy)?,
        held: state == "held",
        resolution: match resolution.as_str() {
            "partner" => Some(Resolution::Partner),
            "platform" => Some(Resolution::Platform),
            _ => None,
        },
        reason: row.try_get("reason")?,
        push_id: row.try_get("push_id")?,
        corrective_push_id: row.try_get("corrective_push_id")?,
        detected_at: row.try_get("detected_at")?,
        resolved_at: row.try_get("resolved_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::echo::AgainstPush;

    fn conflict(against: Option<(PushState, Origin, &str)>) -> FoundConflict {
        FoundConflict {
            fields: vec![FieldConflict {
                field: "current_title".into(),
                platform_value: Some("Analyst".into()),
                partner_value: Some("Janitor".into()),
            }],
            against: against.map(|(state, origin, created_at)| AgainstPush {
                push_id: "p1".into(),
                state,
                origin,
                created_at: created_at.into(),
            }),
            reason: "test".into(),
        }
    }

    const T1: &str = "2026-03-01T10:00:00.000Z";
    const T2: &str = "2026-03-01T11:00:00.000Z";

    #[test]
    fn each_policy_settles_as_it_says() {
        let delivered = conflict(Some((PushState::Delivered, Origin::Caller, T1)));
        let queued = conflict(Some((PushState::Pending, Origin::Caller, T1)));
        assert_eq!(
            settle(ConflictPolicy::PartnerWins, &delivered, None, None),
            Settlement::PartnerWon
        );
        assert_eq!(
            settle(ConflictPolicy::PlatformWins, &delivered, None, None),
            Settlement::PlatformWon { write_back: true }
        );
        // A queued push writes the platform's value anyway; no second write.
        assert_eq!(
            settle(ConflictPolicy::PlatformWins, &queued, None, None),
            Settlement::PlatformWon { write_back: false }
        );
        assert_eq!(
            settle(ConflictPolicy::HoldForReview, &delivered, None, None),
            Settlement::Held { why: None }
        );
    }

    #[test]
    fn the_latest_change_wins_and_incomparable_times_hold() {
        let pushed_at_t1 = conflict(Some((PushState::Delivered, Origin::Caller, T1)));
        let later = parse_time(T2);
        let earlier = parse_time("2026-03-01T09:00:00Z");
        let latest = ConflictPolicy::LatestChangeWins;
        assert_eq!(
            settle(latest, &pushed_at_t1, later, None),
            Settlement::PartnerWon
        );
        assert_eq!(
            settle(latest, &pushed_at_t1, earlier, None),
            Settlement::PlatformWon { write_back: true }
        );
        // A platform-owned field nothing pushed: the stored record's time is the platform's.
        let unpushed = conflict(None);
        assert_eq!(
            settle(latest, &unpushed, earlier, later),
            Settlement::PlatformWon { write_back: true }
        );
        assert!(matches!(
            settle(latest, &unpushed, None, later),
            Settlement::Held { why: Some(_) }
        ));
    }

    #[test]
    fn a_write_back_the_partner_did_not_keep_is_held_not_written_again() {
        let write_back = conflict(Some((PushState::Delivered, Origin::Conflict, T1)));
        assert!(matches!(
            settle(ConflictPolicy::PlatformWins, &write_back, None, None),
            Settlement::Held { why: Some(_) }
        ));
    }
}
