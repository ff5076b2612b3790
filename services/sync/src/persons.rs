//! Identity across systems, from sync's side: mapping links the people of every committed page
//! in the call that maps it (Transform's `resolve_persons`; `ResolvePersons` when an older
//! mapping service did not), and the records sync answers carry their person id, looked up when
//! read (`LookupPersons`) so a merge, a split or a manual link or unlink in mapping shows at
//! once instead of going stale in a copy here.
//!
//! Limitation: a merge or split by itself puts no change on `WatchChanges`; a watcher sees the
//! new person id with the record's next change, and `ListRecords` at once.

use plugboard_proto::common::v1::CanonicalRecord;
use plugboard_proto::mapping::v1::{LookupPersonsRequest, RecordRef, ResolvePersonsRequest};
use plugboard_proto::sync::v1::WatchChangesResponse;
use tokio::sync::mpsc;
use tonic::Status;

use crate::error::Error;
use crate::mesh::Mesh;
use crate::store::SyncDefinition;

/// The canonical entities that are people.
const PERSON_ENTITIES: &[&str] = &["candidate", "worker", "parsed_resume"];

pub fn is_person(entity: &str) -> bool {
    PERSON_ENTITIES.contains(&entity)
}

/// What linking reads of a mapped record: all of it but the raw payload, which is most of
/// its size and which identity never looks at.
pub fn for_linking(record: &CanonicalRecord) -> CanonicalRecord {
    CanonicalRecord {
        entity: record.entity.clone(),
        external_id: record.external_id.clone(),
        body: record.body.clone(),
        connection_id: record.connection_id.clone(),
        ..CanonicalRecord::default()
    }
}

/// Links the people among a page's mapped records before the page commits; a failure fails the
/// page like a failed transform, so the run resumes from the page before.
pub async fn resolve_page(
    mesh: &Mesh,
    sync: &SyncDefinition,
    records: Vec<CanonicalRecord>,
) -> Result<(), Error> {
    if records.is_empty() {
        return Ok(());
    }
    let response = mesh
        .mapping(&sync.tenant_id)
        .resolve_persons(ResolvePersonsRequest {
            connection_id: sync.connection_id.clone(),
            connector: sync.connector.clone(),
            records,
        })
        .await
        .map_err(|status| Error::dependency("mapping", &status))?
        .into_inner();
    tracing::debug!(
        connection_id = %sync.connection_id,
        persons = response.assignments.len(),
        reassigned = response.reassigned.len(),
        "resolved the page's people"
    );
    Ok(())
}

/// Sets `person_id` on the person records among `records`. Without mapping the records are
/// still answered, without person ids, and a warning says why.
pub async fn fill(mesh: &Mesh, tenant_id: &str, records: &mut [CanonicalRecord]) {
    let wanted: Vec<RecordRef> = records
        .iter()
        .filter(|record| is_person(&record.entity))
        .map(|record| RecordRef {
            connection_id: record.connection_id.clone(),
            entity: record.entity.clone(),
            external_id: record.external_id.clone(),
        })
        .collect();
    if wanted.is_empty() {
        return;
    }
    let found = match mesh
        .mapping(tenant_id)
        .lookup_persons(LookupPersonsRequest { records: wanted })
        .await
    {
        Ok(response) => response.into_inner().assignments,
        Err(status) => {
            tracing::warn!(
                code = ?status.code(),
                message = status.message(),
                "cannot look person ids up; records are answered without them"
            );
            return;
        }
    };
    for assignment in found {
        let Some(key) = assignment.record else {
            continue;
        };
        if let Some(record) = records.iter_mut().find(|record| {
            record.connection_id == key.connection_id
                && record.entity == key.entity
                && record.external_id == key.external_id
        }) {
            record.person_id = assignment.person_id;
        }
    }
}

/// The changes of `changes`, with the person id set on each change's record.
pub fn with_persons(
    mesh: Mesh,
    tenant_id: String,
    mut changes: mpsc::Receiver<Result<WatchChangesResponse, Status>>,
) -> mpsc::Receiver<Result<WatchChangesResponse, Status>> {
    let (sender, receiver) = mpsc::channel(64);
    tokio::spawn(async move {
        while let Some(mut change) = changes.recv().await {
            if let Ok(WatchChangesResponse {
                record: Some(record),
                ..
            }) = &mut change
            {
                fill(&mesh, &tenant_id, std::slice::from_mut(record)).await;
            }
            if sender.send(change).await.is_err() {
                return;
            }
        }
    });
    receiver
}
