//! Wire forms of the two-way types, for [`crate::grpc`].

use plugboard_proto::sync::v1 as wire;

use crate::conflicts::{Conflict, Resolution};
use crate::error::Error;
use crate::outbox::{Push, PushState};
use crate::policy::{ConflictPolicy, EntityPolicy, TwoWayPolicy};

pub fn push_info(push: Push) -> wire::PushInfo {
    let state = match push.state {
        PushState::Pending => wire::PushState::Pending,
        PushState::Claimed | PushState::Sending => wire::PushState::Sending,
        PushState::Delivered => wire::PushState::Delivered,
        PushState::Failed => wire::PushState::Failed,
        PushState::Unconfirmed => wire::PushState::Unconfirmed,
    };
    wire::PushInfo {
        next_attempt_at: if push.state == PushState::Pending {
            push.next_attempt_at
        } else {
            String::new()
        },
        push_id: push.push_id,
        connection_id: push.connection_id,
        idempotency_key: push.idempotency_key,
        entity: push.entity,
        external_id: push.external_id,
        state: state as i32,
        attempts: push.attempts,
        error: push.error.unwrap_or_default(),
        error_reason: push.error_reason.unwrap_or_default(),
        created_at: push.created_at,
        updated_at: push.updated_at,
        delivered_at: push.delivered_at.unwrap_or_default(),
        origin: push.origin.as_str().to_owned(),
        skipped_fields: push.skipped_fields,
    }
}

pub fn policy_to_wire(policy: TwoWayPolicy) -> wire::TwoWayPolicy {
    wire::TwoWayPolicy {
        entities: policy
            .entities
            .into_iter()
            .map(|entity| wire::EntityPolicy {
                entity: entity.entity,
                platform_fields: entity.platform_fields,
                partner_fields: entity.partner_fields,
                conflict_policy: conflict_policy_to_wire(entity.conflict_policy) as i32,
            })
            .collect(),
    }
}

pub fn policy_from_wire(policy: Option<wire::TwoWayPolicy>) -> Result<TwoWayPolicy, Error> {
    let policy = policy.unwrap_or_default();
    let entities = policy
        .entities
        .into_iter()
        .map(|entity| {
            let conflict_policy = match wire::ConflictPolicy::try_from(entity.conflict_policy) {
                Ok(wire::ConflictPolicy::PartnerWins) => ConflictPolicy::PartnerWins,
                Ok(wire::ConflictPolicy::PlatformWins) => ConflictPolicy::PlatformWins,
                Ok(wire::ConflictPolicy::LatestChangeWins) => ConflictPolicy::LatestChangeWins,
                Ok(wire::ConflictPolicy::HoldForReview | wire::ConflictPolicy::Unspecified) => {
                    ConflictPolicy::HoldForReview
                }
                Err(_) => {
                    return Err(Error::InvalidArgument {
                        field: "policy.entities.conflict_policy",
                        reason: format!("unknown value {}", entity.conflict_policy),
                    });
                }
            };
            Ok(EntityPolicy {
                entity: entity.entity,
                platform_fields: entity.platform_fields,
                partner_fields: entity.partner_fields,
                conflict_policy,
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(TwoWayPolicy { entities })
}

fn conflict_policy_to_wire(policy: ConflictPolicy) -> wire::ConflictPolicy {
    match policy {
        ConflictPolicy::PartnerWins => wire::ConflictPolicy::PartnerWins,
        ConflictPolicy::PlatformWins => wire::ConflictPolicy::PlatformWins,
        ConflictPolicy::LatestChangeWins => wire::ConflictPolicy::LatestChangeWins,
        ConflictPolicy::HoldForReview => wire::ConflictPolicy::HoldForReview,
    }
}

pub fn resolution_from_wire(resolution: i32) -> Result<Resolution, Error> {
    match wire::ConflictResolution::try_from(resolution) {
        Ok(wire::ConflictResolution::Partner) => Ok(Resolution::Partner),
        Ok(wire::ConflictResolution::Platform) => Ok(Resolution::Platform),
        _ => Err(Error::InvalidArgument {
            field: "resolution",
            reason: "must be CONFLICT_RESOLUTION_PARTNER or CONFLICT_RESOLUTION_PLATFORM".into(),
        }),
    }
}

pub fn conflict_info(conflict: Conflict) -> wire::ConflictInfo {
    let json = |value: Option<serde_json::Value>| value.map(|v| v.to_string()).unwrap_or_default();
    wire::ConflictInfo {
        conflict_id: conflict.conflict_id,
        connection_id: conflict.connection_id,
        entity: conflict.entity,
        external_id: conflict.external_id,
        fields: conflict
            .fields
            .into_iter()
            .map(|field| wire::FieldConflict {
                field: field.field,
                platform_value_json: json(field.platform_value),
                partner_value_json: json(field.partner_value),
            })
            .collect(),
        policy: conflict_policy_to_wire(conflict.policy) as i32,
        state: if conflict.held {
            wire::ConflictState::Held
        } else {
            wire::ConflictState::Resolved
        } as i32,
        resolution: match conflict.resolution {
            Some(Resolution::Partner) => wire::ConflictResolution::Partner,
            Some(Resolution::Platform) => wire::ConflictResolution::Platform,
            None => wire::ConflictResolution::Unspecified,
        } as i32,
        reason: conflict.reason,
        push_id: conflict.push_id,
        corrective_push_id: conflict.corrective_push_id,
        detected_at: conflict.detected_at,
        resolved_at: conflict.resolved_at.unwrap_or_default(),
    }
}
