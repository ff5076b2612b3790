//! The two-way domain operations behind the RPCs, every one scoped to the caller's tenant:
//! queueing pushes, reading them, the connection's policy, and conflicts.

use std::time::Duration;

use plugboard_proto::common::v1::CanonicalRecord;
use plugboard_proto::common::v1::canonical_record::Body;

use crate::conflicts::{self, Conflict, Resolution};
use crate::error::Error;
use crate::fields::{self, FieldValues};
use crate::outbox::{NewPush, Origin, Outbox, Push};
use crate::policy::{self, Owner, TwoWayPolicy};
use crate::store::Store;

const MAX_KEY_LEN: usize = 128;
/// Longest reason a caller gives for giving up a push.
const MAX_GIVE_UP_REASON: usize = 500;
const MAX_EXTERNAL_ID_LEN: usize = 256;
/// The longest a caller may wait in `PushRecord` for the outcome.
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// How often a waiting caller looks again, for pushes another replica delivers.
const WAIT_POLL: Duration = Duration::from_millis(250);
const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 500;

/// What a caller asks to write.
#[derive(Debug, Clone)]
pub struct PushRequest {
    pub connection_id: String,
    pub idempotency_key: String,
    pub record: CanonicalRecord,
    pub wait: Duration,
}

#[derive(Clone)]
pub struct TwoWayService {
    store: Store,
    outbox: Outbox,
}

impl TwoWayService {
    pub fn new(store: Store) -> TwoWayService {
        TwoWayService {
            outbox: store.outbox(),
            store,
        }
    }

    /// Queues a write (or finds the one queued under the key) and waits up to `wait` for it.
    pub async fn push_record(&self, tenant_id: &str, request: PushRequest) -> Result<Push, Error> {
        self.require_sync(tenant_id, &request.connection_id).await?;
        validate_key(&request.idempotency_key)?;
        let record = &request.record;
        validate_body(record)?;
        if record.external_id.len() > MAX_EXTERNAL_ID_LEN
            || record.external_id.chars().any(char::is_control)
        {
            return Err(Error::InvalidArgument {
                field: "record.external_id",
                reason: format!(
                    "must be at most {MAX_EXTERNAL_ID_LEN} characters, no control characters"
                ),
            });
        }
        let stored = crate::record_codec::to_stored(record, "")?;
        let requested = crate::two_way::values_of(&stored)?;
        let request_json = serde_json::json!({
            "entity": record.entity,
            "external_id": record.external_id,
            "fields": requested,
        })
        .to_string();
        let policy = policy::load(self.store.pool(), tenant_id, &request.connection_id)
            .await?
            .for_entity(&record.entity);
        let is_create = record.external_id.is_empty();
        let (written, skipped): (FieldValues, FieldValues) =
            requested.into_iter().partition(|(field, _)| {
                // Bookkeeping times are the partner's; an update never overwrites what the
                // partner owns (a create has nothing to overwrite yet).
                !fields::is_bookkeeping(field)
                    && (is_create || policy.owner_of(field) != Owner::Partner)
            });
        if written.is_empty() {
            return Err(Error::InvalidArgument {
                field: "record",
                reason: if skipped.is_empty() {
                    "sets no field".to_owned()
                } else {
                    "sets only fields the partner owns or bookkeeping times".to_owned()
                },
            });
        }
        let push = self
            .outbox
            .enqueue(&NewPush {
                tenant_id: tenant_id.to_owned(),
                connection_id: request.connection_id.clone(),
                idempotency_key: request.idempotency_key.clone(),
                entity: record.entity.clone(),
                request_json,
                record_json: fields::to_body(&written).to_string(),
                skipped_fields: skipped.into_keys().collect(),
                external_id: record.external_id.clone(),
                origin: Origin::Caller,
            })
            .await?;
        tracing::info!(
            tenant_id, push_id = %push.push_id, connection_id = %push.connection_id,
            entity = %push.entity, state = push.state.as_str(), "push queued"
        );
        if request.wait.is_zero() {
            return Ok(push);
        }
        self.wait_settled(tenant_id, push, request.wait.min(MAX_WAIT))
            .await
    }

    async fn wait_settled(
        &self,
        tenant_id: &str,
        mut push: Push,
        wait: Duration,
    ) -> Result<Push, Error> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let settled = self.outbox.settled().notified();
            if !push.state.is_in_flight() || tokio::time::Instant::now() >= deadline {
                return Ok(push);
            }
            tokio::select! {
                () = settled => {}
                () = tokio::time::sleep(WAIT_POLL) => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
            push = self.get_push(tenant_id, &push.push_id).await?;
        }
    }

    /// Gives up an unconfirmed push (the partner never made the record): it becomes failed
    /// with `reason`. `PushNotUnconfirmed` for a push in another state.
    pub async fn give_up_push(
        &self,
        tenant_id: &str,
        push_id: &str,
        reason: &str,
    ) -> Result<Push, Error> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_GIVE_UP_REASON {
            return Err(Error::InvalidArgument {
                field: "reason",
                reason: format!("must be 1 to {MAX_GIVE_UP_REASON} characters"),
            });
        }
        let error = format!("given up by the caller: {reason}");
        if !self.outbox.give_up(tenant_id, push_id, &error).await? {
            let push = self.get_push(tenant_id, push_id).await?;
            return Err(Error::PushNotUnconfirmed {
                push_id: push.push_id,
                state: push.state.as_str(),
            });
        }
        tracing::info!(tenant_id, push_id, "unconfirmed push given up");
        self.get_push(tenant_id, push_id).await
    }

    pub async fn get_push(&self, tenant_id: &str, push_id: &str) -> Result<Push, Error> {
        self.outbox
            .get(tenant_id, push_id)
            .await?
            .ok_or_else(|| Error::PushNotFound {
                push_id: push_id.to_owned(),
            })
    }

    pub async fn list_pushes(
        &self,
        tenant_id: &str,
        connection_id: &str,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<Push>, String), Error> {
        self.require_sync(tenant_id, connection_id).await?;
        let limit = page_limit(page_size);
        let pushes = self
            .outbox
            .list(tenant_id, connection_id, page_token, limit)
            .await?;
        let next = next_token(pushes.len(), limit, pushes.last().map(|p| &p.push_id));
        Ok((pushes, next))
    }

    pub async fn put_policy(
        &self,
        tenant_id: &str,
        connection_id: &str,
        policy: TwoWayPolicy,
    ) -> Result<TwoWayPolicy, Error> {
        self.require_sync(tenant_id, connection_id).await?;
        policy.validate()?;
        policy::save(self.store.pool(), tenant_id, connection_id, &policy).await?;
        tracing::info!(
            tenant_id,
            connection_id,
            entities = policy.entities.len(),
            "two-way policy set"
        );
        Ok(policy)
    }

    pub async fn get_policy(
        &self,
        tenant_id: &str,
        connection_id: &str,
    ) -> Result<TwoWayPolicy, Error> {
        self.require_sync(tenant_id, connection_id).await?;
        policy::load(self.store.pool(), tenant_id, connection_id).await
    }

    pub async fn list_conflicts(
        &self,
        tenant_id: &str,
        connection_id: &str,
        held_only: bool,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Vec<Conflict>, String), Error> {
        self.require_sync(tenant_id, connection_id).await?;
        let limit = page_limit(page_size);
        let found = conflicts::list(
            self.store.pool(),
            tenant_id,
            connection_id,
            held_only,
            page_token,
            limit,
        )
        .await?;
        let next = next_token(found.len(), limit, found.last().map(|c| &c.conflict_id));
        Ok((found, next))
    }

    /// Settles a held conflict. The partner's side publishes the record as it is now (the
    /// store already holds the partner's values); the platform's side queues a push that
    /// writes its values back.
    pub async fn resolve_conflict(
        &self,
        tenant_id: &str,
        conflict_id: &str,
        resolution: Resolution,
    ) -> Result<Conflict, Error> {
        let mut transaction = self.store.pool().begin().await?;
        let conflict = conflicts::get(&mut transaction, tenant_id, conflict_id)
            .await?
            .ok_or_else(|| Error::ConflictNotFound {
                conflict_id: conflict_id.to_owned(),
            })?;
        if !conflict.held {
            return Err(Error::ConflictNotHeld {
                conflict_id: conflict_id.to_owned(),
            });
        }
        let now = plugboard_runtime::storage::now_text();
        let mut corrective_push_id = String::new();
        match resolution {
            Resolution::Partner => {
                let change = crate::changes::Change {
                    entity: conflict.entity.clone(),
                    external_id: conflict.external_id.clone(),
                    deleted: false,
                };
                crate::changes::log_changes(
                    &mut transaction,
                    tenant_id,
                    &conflict.connection_id,
                    &[change],
                    &now,
                )
                .await?;
            }
            Resolution::Platform => {
                let write_back = crate::two_way::write_back(
                    tenant_id,
                    &conflict.connection_id,
                    &conflict.entity,
                    &conflict.external_id,
                    &conflict.conflict_id,
                    &crate::two_way::platform_values(&conflict),
                );
                corrective_push_id = crate::outbox::insert(&mut transaction, &write_back)
                    .await?
                    .push_id;
            }
        }
        let settled = conflicts::mark_resolved(
            &mut transaction,
            tenant_id,
            conflict_id,
            resolution,
            &corrective_push_id,
            &now,
        )
        .await?;
        if !settled {
            return Err(Error::ConflictNotHeld {
                conflict_id: conflict_id.to_owned(),
            });
        }
        transaction.commit().await?;
        match resolution {
            Resolution::Partner => self.store.notify_committed(),
            Resolution::Platform => self.outbox.notify_queued(),
        }
        tracing::info!(tenant_id, conflict_id, ?resolution, "conflict resolved");
        conflicts::get(
            &mut *self.store.pool().acquire().await?,
            tenant_id,
            conflict_id,
        )
        .await?
        .ok_or_else(|| Error::ConflictNotFound {
            conflict_id: conflict_id.to_owned(),
        })
    }

    async fn require_sync(&self, tenant_id: &str, connection_id: &str) -> Result<(), Error> {
        match self.store.get_sync(tenant_id, connection_id).await? {
            Some(_) => Ok(()),
            None => Err(Error::SyncNotFound {
                connection_id: connection_id.to_owned(),
            }),
        }
    }
}

fn validate_key(key: &str) -> Result<(), Error> {
    let valid =
        !key.is_empty() && key.len() <= MAX_KEY_LEN && key.chars().all(|c| c.is_ascii_graphic());
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            field: "idempotency_key",
            reason: format!("must be 1 to {MAX_KEY_LEN} printable ASCII characters without spaces"),
        })
    }
}

/// The record's body must be the entity's own message.
fn validate_body(record: &CanonicalRecord) -> Result<(), Error> {
    let body_entity = match &record.body {
        Some(Body::Job(_)) => "job",
        Some(Body::Candidate(_)) => "candidate",
        Some(Body::Application(_)) => "application",
        Some(Body::Placement(_)) => "placement",
        Some(Body::Worker(_)) => "worker",
        Some(Body::Timesheet(_)) => "timesheet",
        Some(Body::JobPosting(_)) => "job_posting",
        Some(Body::ParsedResume(_)) => "parsed_resume",
        None => {
            return Err(Error::InvalidArgument {
                field: "record.body",
                reason: "is required".to_owned(),
            });
        }
    };
    if record.entity != body_entity {
        return Err(Error::InvalidArgument {
            field: "record.entity",
            reason: format!("is {:?} but the body is a {body_entity}", record.entity),
        });
    }
    Ok(())
}

fn page_limit(page_size: u32) -> u32 {
    match page_size {
        0 => DEFAULT_PAGE_SIZE,
        size => size.min(MAX_PAGE_SIZE),
    }
}

fn next_token(returned: usize, limit: u32, last: Option<&String>) -> String {
    if returned < limit as usize {
        return String::new();
    }
    last.cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use plugboard_proto::common::v1::{Candidate, Job};

    use super::*;

    #[test]
    fn keys_and_bodies_are_checked() {
        assert!(validate_key("submit-42/a").is_ok());
        assert!(validate_key("").is_err());
        assert!(validate_key("has space").is_err());
        assert!(validate_key(&"k".repeat(129)).is_err());
        let mut record = CanonicalRecord {
            entity: "candidate".into(),
            body: Some(Body::Candidate(Candidate::default())),
            ..CanonicalRecord::default()
        };
        assert!(validate_body(&record).is_ok());
        record.body = Some(Body::Job(Job::default()));
        let error = validate_body(&record).unwrap_err().to_string();
        assert!(error.contains("the body is a job"), "{error}");
        record.body = None;
        assert!(validate_body(&record).is_err());
    }
}
