//! The end-to-end flow both deployment modes must pass: a full sync equals the sandbox, and an
//! incremental run moves exactly the records changed at the partner.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use plugboard_proto::common::v1::CanonicalRecord;
use plugboard_proto::common::v1::canonical_record::Body;
use plugboard_proto::credentials::v1::{OAuth2Client, PutCredentialRequest, Secret, secret};
use plugboard_proto::error::reason_of;
use plugboard_proto::sync::v1::{
    CreateSyncRequest, GetRunRequest, ListQuarantineRequest, ListRecordsRequest, ListSyncsRequest,
    RunInfo, RunState, TriggerRunRequest,
};
use serde_json::{Value, json};

use crate::mesh::TenantClients;
use crate::sandbox::SandboxAdmin;

/// Bullhorn streams and the canonical entity each maps to.
pub const STREAMS: [(&str, &str); 4] = [
    ("JobOrder", "job"),
    ("Candidate", "candidate"),
    ("JobSubmission", "application"),
    ("Placement", "placement"),
];

/// How many records a run tombstoned in `stream`.
pub fn deleted_in(run: &RunInfo, stream: &str) -> u64 {
    run.streams
        .iter()
        .filter(|progress| progress.stream == stream)
        .map(|progress| progress.records_deleted)
        .sum()
}

pub use plugboard_sandbox::bullhorn::{
    DEMO_CLIENT_ID as SANDBOX_CLIENT_ID, DEMO_CLIENT_SECRET as SANDBOX_CLIENT_SECRET,
    DEMO_PASSWORD as SANDBOX_PASSWORD, DEMO_USERNAME as SANDBOX_USERNAME,
};

pub struct Mesh {
    pub clients: TenantClients,
    pub sync_addr: String,
    pub credentials_addr: String,
    pub sandbox: SandboxAdmin,
    pub sandbox_url: String,
}

impl Mesh {
    /// Stores the sandbox's Bullhorn credential and defines a manual sync for `connection_id`.
    pub async fn connect_bullhorn(
        &self,
        connection_id: &str,
        client_id: &str,
        client_secret: &str,
        username: &str,
        password: &str,
    ) -> anyhow::Result<()> {
        self.clients
            .credentials(&self.credentials_addr)
            .put_credential(PutCredentialRequest {
                connection_id: connection_id.into(),
                connector: "bullhorn".into(),
                secret: Some(Secret {
                    kind: Some(secret::Kind::Oauth2Client(OAuth2Client {
                        client_id: client_id.into(),
                        client_secret: client_secret.into(),
                        token_url: format!("{}/oauth/token", self.sandbox_url),
                        scopes: Vec::new(),
                        username: username.into(),
                        password: password.into(),
                        token_parameters: Default::default(),
                        client_secret_in_body: false,
                        client_certificate: None,
                    })),
                }),
            })
            .await?;
        let settings =
            serde_json::json!({ "auth_url": self.sandbox_url, "login_url": self.sandbox_url });
        let request = CreateSyncRequest {
            connection_id: connection_id.into(),
            connector: "bullhorn".into(),
            settings_json: settings.to_string(),
            streams: Vec::new(),
            interval_seconds: 0,
        };
        // Sync checks the definition against the connector's manifest, which the connector
        // registers just after it starts serving: a mesh started a moment ago may not have it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let created = self
                .clients
                .sync(&self.sync_addr)
                .create_sync(request.clone())
                .await;
            match created {
                Ok(_) => return Ok(()),
                Err(status)
                    if reason_of(&status).as_deref() == Some("CONNECTOR_NOT_REGISTERED")
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(status) => return Err(status.into()),
            }
        }
    }

    /// Waits until the connection has run at least once and no run is in progress.
    pub async fn wait_idle(&self, connection_id: &str) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let syncs = self
                .clients
                .sync(&self.sync_addr)
                .list_syncs(ListSyncsRequest::default())
                .await?
                .into_inner()
                .syncs;
            let idle = syncs
                .iter()
                .filter(|sync| sync.connection_id == connection_id)
                .any(|sync| {
                    sync.last_run
                        .as_ref()
                        .is_none_or(|run| run.state != RunState::Running as i32)
                });
            if idle {
                return Ok(());
            }
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "run did not finish");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Starts a run and waits for it to finish.
    pub async fn run_once(&self, connection_id: &str) -> anyhow::Result<RunInfo> {
        let mut sync = self.clients.sync(&self.sync_addr);
        let mut attempts = 0;
        let run_id = loop {
            self.wait_idle(connection_id).await?;
            let triggered = sync
                .trigger_run(TriggerRunRequest {
                    connection_id: connection_id.into(),
                })
                .await;
            match triggered {
                Ok(response) => break response.into_inner().run_id,
                // A scheduled run got there between our check and our trigger.
                Err(status)
                    if status.code() == tonic::Code::FailedPrecondition && attempts < 20 =>
                {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(status) => return Err(status.into()),
            }
        };
        self.wait_run(&run_id).await
    }

    /// Waits for a run to finish (up to three minutes) and returns it.
    pub async fn wait_run(&self, run_id: &str) -> anyhow::Result<RunInfo> {
        let mut sync = self.clients.sync(&self.sync_addr);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
        loop {
            let run = sync
                .get_run(GetRunRequest {
                    run_id: run_id.to_owned(),
                })
                .await?
                .into_inner()
                .run
                .ok_or_else(|| anyhow::anyhow!("run {run_id} has no body"))?;
            if run.state != RunState::Running as i32 {
                return Ok(run);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "run {run_id} did not finish"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn canonical_records(
        &self,
        connection_id: &str,
        entity: &str,
    ) -> anyhow::Result<Vec<CanonicalRecord>> {
        let mut sync = self.clients.sync(&self.sync_addr);
        let mut records = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = sync
                .list_records(ListRecordsRequest {
                    connection_id: connection_id.into(),
                    entity: entity.into(),
                    page_size: 500,
                    page_token: page_token.clone(),
                })
                .await?
                .into_inner();
            records.extend(page.records);
            if page.next_page_token.is_empty() {
                return Ok(records);
            }
            page_token = page.next_page_token;
        }
    }

    /// External ids quarantined per stream, and how many rejects had no id at all.
    pub async fn quarantined(
        &self,
        connection_id: &str,
    ) -> anyhow::Result<(HashMap<String, BTreeSet<String>>, usize)> {
        let entries = self
            .clients
            .sync(&self.sync_addr)
            .list_quarantine(ListQuarantineRequest {
                connection_id: connection_id.into(),
                page_size: 1000,
                page_token: String::new(),
                include_resolved: false,
            })
            .await?
            .into_inner()
            .records;
        let mut by_stream: HashMap<String, BTreeSet<String>> = HashMap::new();
        let mut without_id = 0;
        for entry in entries {
            anyhow::ensure!(
                !entry.reason.is_empty(),
                "quarantined without a reason: {entry:?}"
            );
            if entry.external_id.is_empty() {
                without_id += 1;
            } else {
                by_stream
                    .entry(entry.stream)
                    .or_default()
                    .insert(entry.external_id);
            }
        }
        Ok((by_stream, without_id))
    }

    /// Every sandbox record is in the canonical store or in quarantine, never both, never
    /// neither; counts match; a sample of field values matches the partner's.
    pub async fn assert_matches_sandbox(&self, connection_id: &str) -> anyhow::Result<()> {
        let (quarantined, _) = self.quarantined(connection_id).await?;
        for (stream, entity) in STREAMS {
            let partner = self.sandbox.records(stream).await?;
            let partner_ids: BTreeSet<String> = partner.iter().filter_map(id_of).collect();
            let canonical = self.canonical_records(connection_id, entity).await?;
            let canonical_ids: BTreeSet<String> =
                canonical.iter().map(|r| r.external_id.clone()).collect();
            let quarantined_ids = quarantined.get(stream).cloned().unwrap_or_default();
            anyhow::ensure!(
                !partner_ids.is_empty(),
                "the sandbox has no {stream} records"
            );
            anyhow::ensure!(
                canonical_ids.is_disjoint(&quarantined_ids),
                "{stream}: records both stored and quarantined"
            );
            let accounted: BTreeSet<String> =
                canonical_ids.union(&quarantined_ids).cloned().collect();
            anyhow::ensure!(
                accounted == partner_ids,
                "{stream}: sandbox has {} records, canonical {} + quarantined {}; missing {:?}, extra {:?}",
                partner_ids.len(),
                canonical_ids.len(),
                quarantined_ids.len(),
                partner_ids
                    .difference(&accounted)
                    .take(5)
                    .collect::<Vec<_>>(),
                accounted
                    .difference(&partner_ids)
                    .take(5)
                    .collect::<Vec<_>>()
            );
            let by_id: HashMap<&str, &CanonicalRecord> = canonical
                .iter()
                .map(|record| (record.external_id.as_str(), record))
                .collect();
            // Up to ten stored records are compared field by field; malformed ones have no
            // canonical twin and are skipped, but a sample of none proves nothing.
            let sample: Vec<(&Value, &&CanonicalRecord)> = partner
                .iter()
                .filter_map(|partner_record| {
                    let record = by_id.get(id_of(partner_record)?.as_str())?;
                    Some((partner_record, record))
                })
                .take(10)
                .collect();
            anyhow::ensure!(
                !sample.is_empty(),
                "{stream}: no stored record to compare with the partner's"
            );
            for (partner_record, record) in sample {
                assert_fields_match(stream, partner_record, record)?;
            }
        }
        Ok(())
    }

    /// Changes records at the partner (one field each, with a fresh value) and checks the next
    /// run writes exactly those, with the new values.
    pub async fn assert_incremental_moves_exactly(
        &self,
        connection_id: &str,
    ) -> anyhow::Result<()> {
        let touched: [(&str, &str, usize); 2] =
            [("Candidate", "candidate", 2), ("JobOrder", "job", 1)];
        let marker = uuid::Uuid::new_v4().simple().to_string();
        let new_last_name = format!("Moved-{marker}");
        let new_title = format!("Retitled {marker}");
        let change = |stream: &str| match stream {
            "Candidate" => json!({ "lastName": new_last_name }),
            _ => json!({ "title": new_title }),
        };
        let mut before: HashMap<String, String> = HashMap::new();
        let mut touched_ids: HashMap<&str, Vec<String>> = HashMap::new();
        for (stream, entity, how_many) in touched {
            let canonical = self.canonical_records(connection_id, entity).await?;
            let ids: Vec<String> = canonical
                .iter()
                .take(how_many)
                .map(|r| r.external_id.clone())
                .collect();
            for record in &canonical {
                before.insert(
                    format!("{entity}/{}", record.external_id),
                    record.content_hash.clone(),
                );
            }
            let numeric: Vec<i64> = ids.iter().filter_map(|id| id.parse().ok()).collect();
            self.sandbox
                .touch_with(stream, &numeric, change(stream))
                .await?;
            touched_ids.insert(stream, ids);
        }

        let run = self.run_once(connection_id).await?;
        anyhow::ensure!(
            run.state == RunState::Succeeded as i32,
            "incremental run failed: {}",
            run.error
        );
        for (stream, _) in STREAMS {
            let written = run
                .streams
                .iter()
                .find(|progress| progress.stream == stream)
                .map(|progress| progress.records_written)
                .unwrap_or(0);
            let expected = touched_ids.get(stream).map(Vec::len).unwrap_or(0) as u64;
            anyhow::ensure!(
                written == expected,
                "{stream}: the incremental run wrote {written} records, expected exactly {expected}"
            );
        }
        for (stream, entity, _) in touched {
            let canonical = self.canonical_records(connection_id, entity).await?;
            for record in canonical {
                let key = format!("{entity}/{}", record.external_id);
                let was_touched = touched_ids[stream].contains(&record.external_id);
                let changed = before.get(&key) != Some(&record.content_hash);
                anyhow::ensure!(
                    changed == was_touched,
                    "{key}: changed={changed} but touched={was_touched}"
                );
                if !was_touched {
                    continue;
                }
                let arrived = match &record.body {
                    Some(Body::Candidate(candidate)) => candidate.last_name == new_last_name,
                    Some(Body::Job(job)) => job.title == new_title,
                    _ => false,
                };
                anyhow::ensure!(
                    arrived,
                    "{key}: the changed field did not arrive: {record:?}"
                );
            }
        }
        Ok(())
    }
}

fn id_of(record: &Value) -> Option<String> {
    match record.get("id")? {
        Value::Number(number) => Some(number.to_string()),
        Value::String(text) => Some(text.clone()),
        _ => None,
    }
}

fn assert_fields_match(
    stream: &str,
    partner: &Value,
    record: &CanonicalRecord,
) -> anyhow::Result<()> {
    let text = |field: &str| {
        partner
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    match (&record.body, stream) {
        (Some(Body::Candidate(candidate)), "Candidate") => {
            anyhow::ensure!(
                candidate.first_name == text("firstName"),
                "candidate first name"
            );
            anyhow::ensure!(
                candidate.last_name == text("lastName"),
                "candidate last name"
            );
            anyhow::ensure!(candidate.email == text("email"), "candidate email");
        }
        (Some(Body::Job(job)), "JobOrder") => {
            anyhow::ensure!(job.title == text("title"), "job title");
        }
        (Some(Body::Application(application)), "JobSubmission") => {
            let candidate_id = partner.pointer("/candidate/id").and_then(id_of_value);
            anyhow::ensure!(
                Some(application.candidate_external_id.clone()) == candidate_id,
                "submission candidate id"
            );
        }
        (Some(Body::Placement(placement)), "Placement") => {
            let job_id = partner.pointer("/jobOrder/id").and_then(id_of_value);
            anyhow::ensure!(
                Some(placement.job_external_id.clone()) == job_id,
                "placement job id"
            );
        }
        (body, _) => anyhow::bail!("{stream} record {} has body {body:?}", record.external_id),
    }
    Ok(())
}

fn id_of_value(value: &Value) -> Option<String> {
    match value {
        Value::Number(number) => Some(number.to_string()),
        Value::String(text) => Some(text.clone()),
        _ => None,
    }
}
