//! What an incoming partner record means next to what we stored and what we pushed: our own
//! write coming back (an echo), a partner change, or a conflict.
//!
//! The echo rule: a record read from the partner is our echo when every field it changes
//! (compared with the stored record; bookkeeping times aside) now holds the value one of our
//! open pushes to that record wrote, or the value the partner answered that push with. A push
//! is open while it is queued or being sent, and once delivered until a read brings it back.
//! For a record we do not have yet, the fields our create wrote are compared, and the rest
//! (what the partner adds to a new record) is part of the echo. An echo is stored, so the store
//! matches the partner, but is not published on `WatchChanges` and raises no conflict, so
//! nothing reacts to it and nothing is pushed back.
//!
//! Any other changed field is a partner change. It conflicts when the platform owns the field,
//! or when an open push of ours wrote a different value to it.

use serde_json::Value;

use crate::fields::{self, FieldValues};
use crate::outbox::{Origin, Push, PushState};
use crate::policy::{EntityPolicy, Owner};

/// One field both sides have a value for.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldConflict {
    pub field: String,
    pub platform_value: Option<Value>,
    pub partner_value: Option<Value>,
}

/// The push a conflict is against, as far as settling it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgainstPush {
    pub push_id: String,
    pub state: PushState,
    pub origin: Origin,
    pub created_at: String,
}

/// Fields of one record that conflict with one push (or, for platform-owned fields nothing
/// pushed, with the stored value).
#[derive(Debug, Clone, PartialEq)]
pub struct FoundConflict {
    pub fields: Vec<FieldConflict>,
    pub against: Option<AgainstPush>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Review {
    /// Every changed field is ours: store it, publish nothing.
    pub echo: bool,
    /// Changed fields that are plain partner changes.
    pub partner_changes: Vec<String>,
    pub conflicts: Vec<FoundConflict>,
    /// Delivered pushes this record brings back in full; they are the partner's values now.
    pub echoes_seen: Vec<String>,
}

/// Reviews one incoming record. `stored` is `None` for a record not stored yet; `ours` are
/// the open pushes to this record, oldest first.
pub fn review(
    stored: Option<&FieldValues>,
    incoming: &FieldValues,
    ours: &[&Push],
    policy: &EntityPolicy,
) -> Review {
    let pushed: Vec<(&Push, FieldValues)> = ours
        .iter()
        .map(|push| (*push, push.pushed_fields()))
        .collect();
    let is_ours = |push: &Push, values: &FieldValues, field: &str| {
        let value = incoming.get(field);
        values.get(field).is_some_and(|ours| Some(ours) == value)
            || push
                .answer_fields
                .as_ref()
                .and_then(|answer| answer.get(field))
                .is_some_and(|answered| Some(answered) == value)
    };
    let changed: Vec<String> = match stored {
        Some(stored) => fields::changed(stored, incoming),
        // A record new to us: what our creates wrote is what can differ from them.
        None => {
            let mut written: Vec<String> = pushed
                .iter()
                .flat_map(|(_, values)| values.keys().cloned())
                .collect();
            written.sort();
            written.dedup();
            written
        }
    };
    let echoes_seen = pushed
        .iter()
        .filter(|(push, values)| {
            push.state == PushState::Delivered
                && values.keys().all(|field| is_ours(push, values, field))
        })
        .map(|(push, _)| push.push_id.clone())
        .collect();

    let mut partner_changes = Vec::new();
    let mut conflicts: Vec<FoundConflict> = Vec::new();
    for field in changed {
        // The latest push that wrote the field speaks for the platform.
        let latest = pushed
            .iter()
            .rev()
            .find(|(_, values)| values.contains_key(&field));
        if let Some((push, values)) = latest
            && is_ours(push, values, &field)
        {
            continue;
        }
        let owner = policy.owner_of(&field);
        let platform_value = match (latest, owner) {
            (Some((_, values)), _) => values.get(&field).cloned(),
            (None, Owner::Platform) => stored.and_then(|stored| stored.get(&field).cloned()),
            (None, _) => {
                partner_changes.push(field);
                continue;
            }
        };
        if owner == Owner::Partner {
            partner_changes.push(field);
            continue;
        }
        let reason = match (owner, latest) {
            (Owner::Platform, _) => "the partner changed a field the platform owns",
            _ => "the partner changed a field to another value than our push wrote",
        };
        let against = latest.map(|(push, _)| AgainstPush {
            push_id: push.push_id.clone(),
            state: push.state,
            origin: push.origin,
            created_at: push.created_at.clone(),
        });
        let conflict = FieldConflict {
            partner_value: incoming.get(&field).cloned(),
            field,
            platform_value,
        };
        match conflicts
            .iter_mut()
            .find(|found| found.against == against && found.reason == reason)
        {
            Some(found) => found.fields.push(conflict),
            None => conflicts.push(FoundConflict {
                fields: vec![conflict],
                against,
                reason: reason.to_owned(),
            }),
        }
    }
    Review {
        echo: !ours.is_empty() && partner_changes.is_empty() && conflicts.is_empty(),
        partner_changes,
        conflicts,
        echoes_seen,
    }
}

#[cfg(test)]
mod tests;
