//! Each connection's two-way policy: which canonical fields the platform owns and which the
//! partner owns, per entity, and how a conflict over a field is settled.
//!
//! Ownership decides what a change means. A partner change to a platform-owned field is always
//! a conflict. A partner-owned field is never written by an update and never conflicts. Every
//! other field is shared: a partner change to it conflicts only with a push of ours that has
//! not come back yet and wrote another value.

use serde::{Deserialize, Serialize};
use sqlx::AnyPool;

use crate::error::Error;
use crate::fields;

const MAX_FIELDS: usize = 200;
const MAX_PATH_LEN: usize = 200;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    PartnerWins,
    PlatformWins,
    LatestChangeWins,
    /// The default: nothing is overwritten until someone decides.
    #[default]
    HoldForReview,
}

impl ConflictPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictPolicy::PartnerWins => "partner_wins",
            ConflictPolicy::PlatformWins => "platform_wins",
            ConflictPolicy::LatestChangeWins => "latest_change_wins",
            ConflictPolicy::HoldForReview => "hold_for_review",
        }
    }

    pub fn parse(text: &str) -> Result<ConflictPolicy, Error> {
        match text {
            "partner_wins" => Ok(ConflictPolicy::PartnerWins),
            "platform_wins" => Ok(ConflictPolicy::PlatformWins),
            "latest_change_wins" => Ok(ConflictPolicy::LatestChangeWins),
            "hold_for_review" => Ok(ConflictPolicy::HoldForReview),
            other => Err(Error::Corrupt(format!("unknown conflict policy {other:?}"))),
        }
    }
}

/// Who owns a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Platform,
    Partner,
    Shared,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityPolicy {
    pub entity: String,
    pub platform_fields: Vec<String>,
    pub partner_fields: Vec<String>,
    pub conflict_policy: ConflictPolicy,
}

impl EntityPolicy {
    pub fn owner_of(&self, field: &str) -> Owner {
        if self
            .platform_fields
            .iter()
            .any(|p| fields::covers(p, field))
        {
            Owner::Platform
        } else if self.partner_fields.iter().any(|p| fields::covers(p, field)) {
            Owner::Partner
        } else {
            Owner::Shared
        }
    }

    /// Whether any field is platform-owned, so partner changes need a look even when nothing
    /// was pushed.
    pub fn owns_fields(&self) -> bool {
        !self.platform_fields.is_empty()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwoWayPolicy {
    pub entities: Vec<EntityPolicy>,
}

impl TwoWayPolicy {
    /// The entity's policy; an entity not named shares every field and holds conflicts.
    pub fn for_entity(&self, entity: &str) -> EntityPolicy {
        self.entities
            .iter()
            .find(|policy| policy.entity == entity)
            .cloned()
            .unwrap_or_else(|| EntityPolicy {
                entity: entity.to_owned(),
                ..EntityPolicy::default()
            })
    }

    /// Checks entities and field paths against the canonical model, so a misspelt field is an
    /// error now rather than an ownership that silently never applies.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |reason: String| Error::InvalidArgument {
            field: "policy.entities",
            reason,
        };
        let mut seen = std::collections::HashSet::new();
        for policy in &self.entities {
            let Some(body) = fields::empty_body(&policy.entity) else {
                return Err(invalid(format!(
                    "{:?} is not a canonical entity",
                    policy.entity
                )));
            };
            if !seen.insert(policy.entity.as_str()) {
                return Err(invalid(format!("{} appears twice", policy.entity)));
            }
            if policy.platform_fields.len() + policy.partner_fields.len() > MAX_FIELDS {
                return Err(invalid(format!(
                    "{}: at most {MAX_FIELDS} fields",
                    policy.entity
                )));
            }
            for path in policy.platform_fields.iter().chain(&policy.partner_fields) {
                check_path(&policy.entity, &body, path).map_err(invalid)?;
            }
            if let Some(both) = policy
                .platform_fields
                .iter()
                .find(|path| policy.partner_fields.contains(path))
            {
                return Err(invalid(format!(
                    "{}.{both} cannot be owned by both sides",
                    policy.entity
                )));
            }
        }
        Ok(())
    }
}

fn check_path(entity: &str, body: &serde_json::Value, path: &str) -> Result<(), String> {
    let well_formed = !path.is_empty()
        && path.len() <= MAX_PATH_LEN
        && path.split('.').all(|segment| {
            !segment.is_empty()
                && segment
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        });
    if !well_formed {
        return Err(format!(
            "{entity}: {path:?} is not a field path (snake_case names joined by dots)"
        ));
    }
    let top = path.split('.').next().unwrap_or(path);
    if fields::is_bookkeeping(top) {
        return Err(format!(
            "{entity}.{top} records when the partner changed the record and cannot be owned"
        ));
    }
    // Custom fields travel beside the body under `custom_fields.<name>`.
    if body.get(top).is_none() && top != "custom_fields" {
        return Err(format!("{entity} has no field {top}"));
    }
    Ok(())
}

/// The connection's policy; the default (everything shared, conflicts held) when none is set.
pub async fn load(
    pool: &AnyPool,
    tenant_id: &str,
    connection_id: &str,
) -> Result<TwoWayPolicy, Error> {
    let stored: Option<String> = sqlx::query_scalar(
        "SELECT policy_json FROM two_way_policies WHERE tenant_id = $1 AND connection_id = $2",
    )
    .bind(tenant_id)
    .bind(connection_id)
    .fetch_optional(pool)
    .await?;
    match stored {
        Some(json) => serde_json::from_str(&json)
            .map_err(|e| Error::Corrupt(format!("two-way policy of {connection_id}: {e}"))),
        None => Ok(TwoWayPolicy::default()),
    }
}

pub async fn save(
    pool: &AnyPool,
    tenant_id: &str,
    connection_id: &str,
    policy: &TwoWayPolicy,
) -> Result<(), Error> {
    let json = serde_json::to_string(policy)
        .map_err(|e| Error::Corrupt(format!("two-way policy: {e}")))?;
    sqlx::query(
        "INSERT INTO two_way_policies (tenant_id, connection_id, policy_json, updated_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, connection_id) DO UPDATE SET \
         policy_json = excluded.policy_json, updated_at = excluded.updated_at",
    )
    .bind(tenant_id)
    .bind(connection_id)
    .bind(json)
    .bind(plugboard_runtime::storage::now_text())
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(platform: &[&str], partner: &[&str]) -> TwoWayPolicy {
        TwoWayPolicy {
            entities: vec![EntityPolicy {
                entity: "candidate".into(),
                platform_fields: platform.iter().map(|f| (*f).to_owned()).collect(),
                partner_fields: partner.iter().map(|f| (*f).to_owned()).collect(),
                conflict_policy: ConflictPolicy::PlatformWins,
            }],
        }
    }

    #[test]
    fn ownership_follows_paths_and_defaults_to_shared() {
        let policy = candidate(&["email", "address"], &["owner_name"]).for_entity("candidate");
        assert_eq!(policy.owner_of("email"), Owner::Platform);
        assert_eq!(policy.owner_of("address.city"), Owner::Platform);
        assert_eq!(policy.owner_of("owner_name"), Owner::Partner);
        assert_eq!(policy.owner_of("phone"), Owner::Shared);
        let job = candidate(&[], &[]).for_entity("job");
        assert_eq!(job.conflict_policy, ConflictPolicy::HoldForReview);
    }

    #[test]
    fn validation_names_what_is_wrong() {
        let reason = |policy: TwoWayPolicy| policy.validate().unwrap_err().to_string();
        assert!(
            candidate(&["email", "address.city"], &["source"])
                .validate()
                .is_ok()
        );
        assert!(reason(candidate(&["emial"], &[])).contains("no field emial"));
        assert!(reason(candidate(&["email"], &["email"])).contains("both sides"));
        assert!(reason(candidate(&["updated_at"], &[])).contains("cannot be owned"));
        assert!(reason(candidate(&["Email"], &[])).contains("not a field path"));
        let mut unknown = candidate(&[], &[]);
        unknown.entities[0].entity = "invoice".into();
        assert!(reason(unknown).contains("not a canonical entity"));
    }
}
