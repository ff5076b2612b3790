//! Partner webhooks and partner deletes through the whole mesh: `plugboard serve` processes
//! (registry, credentials, health, mapping, sync, gateway) and two generic-runtime connectors
//! against the Greenhouse sandbox, which signs and POSTs its webhooks to the gateway.
//!
//! `greenhouse` is the real manifest: a signed delivery is taken and a targeted read brings the
//! change, a repeated one is dropped, a late (older) one changes nothing, forged or wrongly
//! signed ones get 401, a delete event tombstones. `greenhouse-fixture` is the same folder
//! patched at test time with what Greenhouse does not offer (a signed timestamp and a
//! deleted-records endpoint, both sandbox test fixtures): a replay outside the tolerance gets
//! 401, and the endpoint's deletions become tombstones, never after a failed read.
//! `greenhouse-batch` is the folder patched to take events batched as BambooHR sends them.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use plugboard_proto::common::v1::canonical_record::Body;
use plugboard_proto::credentials::v1::{ApiKey, PutCredentialRequest, Secret, secret};
use plugboard_proto::registry::v1::ResolveRequest;
use plugboard_proto::registry::v1::registry_service_client::RegistryServiceClient;
use plugboard_proto::sync::v1::{
    CreateSyncRequest, ListRunsRequest, RunState, WatchChangesRequest,
};
use plugboard_sandbox::greenhouse::{DEMO_API_KEY, DEMO_WEBHOOK_SECRET, GreenhouseOptions};
use plugboard_tests::flows::Mesh;
use plugboard_tests::mesh::{TenantClients, wait_serving};
use plugboard_tests::process::{Process, run_to_end};
use plugboard_tests::sandbox::SandboxAdmin;
use plugboard_tests::{REDIS_URL, eventually, free_port, fresh_postgres_database};
use serde_json::{Value, json};

const REAL: &str = "gh-hooks";
const FIXTURE: &str = "ghf-hooks";
/// The connection of the batched connector, and the connector.
const BATCHED: &str = "ghb-hooks";
const BATCH_CONNECTOR: &str = "greenhouse-batch";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Greenhouse folder with a signed timestamp and a deleted-records endpoint, renamed.
fn fixture_connector(dir: &Path) -> PathBuf {
    patched_connector(dir, "greenhouse-fixture", |manifest| {
        let patched = manifest
            .replace(
                "signature: {algorithm: hmac_sha256, header: Signature, prefix: \"sha256 \"}",
                "signature: {algorithm: hmac_sha256, header: Signature, prefix: \"sha256 \", \
                 timestamp_header: X-Fixture-Timestamp, tolerance_seconds: 300, \
                 signed_payload: \"{{ timestamp }}.{{ body }}\"}",
            )
            .replace(
                "    incremental: {param: updated_after, field: updated_at}\n  jobs:",
                "    incremental: {param: updated_after, field: updated_at}\n    deletes: {type: \
                 endpoint, path: /_fixture/v1/candidates/deleted, records: /items, id: candidateId, \
                 deleted_at: deletedAt}\n  jobs:",
            );
        assert!(patched.contains("X-Fixture-Timestamp") && patched.contains("_fixture"));
        patched
    })
}

/// The Greenhouse folder whose webhooks come batched the way BambooHR's employee webhooks do
/// (`tests/fixtures/webhooks/`): the candidates under `/employees`, one signature over the body
/// and the timestamp.
fn batch_connector(dir: &Path) -> PathBuf {
    patched_connector(dir, BATCH_CONNECTOR, |manifest| {
        let (streams, _) = manifest.split_once("\nwebhooks:\n").unwrap();
        format!(
            "{streams}\nwebhooks:
  path: /webhooks/{BATCH_CONNECTOR}
  signature: {{algorithm: hmac_sha256, header: X-BambooHR-Signature, timestamp_header: \
             X-BambooHR-Timestamp, tolerance_seconds: 300, \
             signed_payload: \"{{{{ body }}}}{{{{ timestamp }}}}\"}}
  event_array: /employees
  event_type: /action
  occurred_at: /timestamp
  events:
    Updated: {{entity: candidate, id: /id}}
    Deleted: {{entity: candidate, id: /id, delete: true}}
"
        )
    })
}

/// A copy of the Greenhouse folder named `name`, its manifest passed through `patch`.
fn patched_connector(dir: &Path, name: &str, patch: impl Fn(String) -> String) -> PathBuf {
    let source = repo().join("services/connector-greenhouse");
    let target = dir.join(format!("connector-{name}"));
    std::fs::create_dir_all(target.join("mappings")).unwrap();
    let manifest = std::fs::read_to_string(source.join("manifest.yaml")).unwrap();
    let renamed = manifest.replace("name: greenhouse\n", &format!("name: {name}\n"));
    std::fs::write(target.join("manifest.yaml"), patch(renamed)).unwrap();
    for entry in std::fs::read_dir(source.join("mappings")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let renamed = text.replace("connector: greenhouse", &format!("connector: {name}"));
        std::fs::write(
            target.join("mappings").join(path.file_name().unwrap()),
            renamed,
        )
        .unwrap();
    }
    target
}

struct Harness {
    mesh: Mesh,
    gateway: String,
    sandbox: String,
    api_key: String,
    http: reqwest::Client,
    _processes: Vec<Process>,
}

impl Harness {
    /// The mesh's services as `plugboard` processes, and a connector process for each
    /// `(name, folder)` that `connectors` makes (given the test's own directory).
    async fn start(
        connectors: impl FnOnce(&Path) -> Vec<(&'static str, PathBuf)>,
    ) -> anyhow::Result<Harness> {
        let dir = std::env::temp_dir().join(format!("pb-webhooks-{}", uuid::Uuid::new_v4()));
        let mut options =
            GreenhouseOptions::new(&repo().join("../shared/partners/greenhouse/harvest"));
        options.rate_limit = None;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let sandbox = format!("http://{}", listener.local_addr()?);
        tokio::spawn(plugboard_sandbox::greenhouse::serve(
            listener,
            options,
            std::future::pending(),
        ));

        let database_url = fresh_postgres_database().await?;
        let mesh_key = format!("webhooks-mesh-key-{}", uuid::Uuid::new_v4().simple());
        let master = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
        let addr = || format!("127.0.0.1:{}", free_port());
        let (registry, credentials, health, mapping, sync, gateway) =
            (addr(), addr(), addr(), addr(), addr(), addr());
        let common: Vec<(String, String)> = [
            ("PLUGBOARD_DATABASE_URL", database_url.as_str()),
            ("PLUGBOARD_MESH_KEY", mesh_key.as_str()),
            ("PLUGBOARD_MASTER_KEY", master.as_str()),
            ("PLUGBOARD_REDIS_URL", REDIS_URL),
            ("PLUGBOARD_REGISTRY_ADDR", registry.as_str()),
            ("PLUGBOARD_CREDENTIALS_ADDR", credentials.as_str()),
            ("PLUGBOARD_HEALTH_ADDR", health.as_str()),
            ("PLUGBOARD_MAPPING_ADDR", mapping.as_str()),
            ("PLUGBOARD_SYNC_ADDR", sync.as_str()),
            ("PLUGBOARD_ALLOW_PRIVATE_TARGETS", "true"),
        ]
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect();
        let env = |listen: &str| {
            let mut env = common.clone();
            env.push(("PLUGBOARD_LISTEN_ADDR".to_owned(), listen.to_owned()));
            env.push(("PLUGBOARD_ADVERTISE_ADDR".to_owned(), listen.to_owned()));
            env
        };
        let logs = dir.join("logs");
        let mut processes = Vec::new();
        for (service, listen) in [
            ("registry", &registry),
            ("credentials", &credentials),
            ("health", &health),
            ("mapping", &mapping),
            ("sync", &sync),
            ("gateway", &gateway),
        ] {
            processes.push(Process::start(
                service,
                &["serve", service],
                &env(listen),
                &logs,
            ));
        }
        let mut connector_addrs = Vec::new();
        for (name, folder) in connectors(&dir) {
            let listen = addr();
            let folder = folder.to_string_lossy().into_owned();
            processes.push(Process::start(
                &format!("connector-{name}"),
                &["connector", "serve", &folder],
                &env(&listen),
                &logs,
            ));
            connector_addrs.push((name, listen));
        }
        let services = [&registry, &credentials, &health, &mapping, &sync];
        for listen in services
            .into_iter()
            .chain(connector_addrs.iter().map(|(_, listen)| listen))
        {
            wait_serving(listen, Duration::from_secs(60))
                .await
                .map_err(|e| anyhow::anyhow!("{e}; logs in {}", logs.display()))?;
        }
        // Run leases live in the shared Redis: a tenant of its own keeps a killed earlier run's
        // lease from blocking this one.
        let tenant = format!("webhooks-{}", uuid::Uuid::new_v4().simple());
        let clients = TenantClients::new(&mesh_key, &tenant);
        let channel = plugboard_runtime::channel::lazy_channel(&registry)?;
        let registry_client =
            RegistryServiceClient::with_interceptor(channel, clients.credentials.clone());
        for (connector, _) in &connector_addrs {
            let connector = *connector;
            eventually(
                &format!("{connector} to register"),
                Duration::from_secs(30),
                || {
                    let mut registry = registry_client.clone();
                    async move {
                        registry
                            .resolve(ResolveRequest {
                                connector: connector.into(),
                            })
                            .await
                            .is_ok()
                    }
                },
            )
            .await?;
        }
        let api_key = run_to_end(
            &[
                "tenant",
                "create",
                "--id",
                &tenant,
                "--name",
                "Webhooks Staffing",
            ],
            &[("PLUGBOARD_DATABASE_URL".to_owned(), database_url.clone())],
        )?
        .trim()
        .to_owned();
        let http = reqwest::Client::new();
        let gateway = format!("http://{gateway}");
        eventually("the gateway to answer", Duration::from_secs(30), || {
            let http = http.clone();
            let url = format!("{gateway}/healthz");
            async move { http.get(url).send().await.is_ok() }
        })
        .await?;
        Ok(Harness {
            mesh: Mesh {
                clients,
                sync_addr: sync,
                credentials_addr: credentials,
                sandbox: SandboxAdmin::new(&sandbox),
                sandbox_url: sandbox.clone(),
            },
            gateway,
            sandbox,
            api_key,
            http,
            _processes: processes,
        })
    }

    /// Connects `connection_id` to `connector` with the sandbox's key, syncs it fully once,
    /// and enables its webhooks; returns the webhook URL.
    async fn connect(&self, connection_id: &str, connector: &str) -> anyhow::Result<String> {
        self.mesh
            .clients
            .credentials(&self.mesh.credentials_addr)
            .put_credential(PutCredentialRequest {
                connection_id: connection_id.into(),
                connector: connector.into(),
                secret: Some(Secret {
                    kind: Some(secret::Kind::ApiKey(ApiKey {
                        key: DEMO_API_KEY.into(),
                    })),
                }),
            })
            .await?;
        let settings = json!({"base_url": self.sandbox, "on_behalf_of": "4080"});
        self.mesh
            .clients
            .sync(&self.mesh.sync_addr)
            .create_sync(CreateSyncRequest {
                connection_id: connection_id.into(),
                connector: connector.into(),
                settings_json: settings.to_string(),
                streams: Vec::new(),
                interval_seconds: 0,
            })
            .await?;
        let first = self.mesh.run_once(connection_id).await?;
        anyhow::ensure!(first.state == RunState::Succeeded as i32, "{}", first.error);
        let enabled: Value = self
            .http
            .put(format!(
                "{}/api/v1/integrations/{connection_id}/webhook",
                self.gateway
            ))
            .bearer_auth(&self.api_key)
            .json(&json!({ "secret": DEMO_WEBHOOK_SECRET }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let path = enabled["path"].as_str().unwrap();
        assert_eq!(path, format!("/webhooks/{connector}/{connection_id}"));
        Ok(format!("{}{path}", self.gateway))
    }

    async fn admin(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        Ok(self
            .http
            .post(format!("{}/_sandbox/{path}", self.sandbox))
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?)
    }

    /// Has the sandbox send a webhook to `url`; returns the gateway's status and JSON answer.
    async fn deliver(&self, url: &str, mut request: Value) -> anyhow::Result<(u16, Value)> {
        request["url"] = json!(url);
        let sent = self.admin("webhook/send", request).await?;
        let status = sent["status"].as_u64().unwrap_or_default() as u16;
        let body =
            serde_json::from_str(sent["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null);
        Ok((status, body))
    }

    async fn candidate_ids(&self) -> anyhow::Result<Vec<i64>> {
        let records: Value = self
            .http
            .get(format!("{}/_sandbox/records/candidates", self.sandbox))
            .send()
            .await?
            .json()
            .await?;
        Ok(records["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|record| record["id"].as_i64().unwrap())
            .collect())
    }

    async fn first_name(&self, connection_id: &str, id: i64) -> anyhow::Result<Option<String>> {
        let records = self
            .mesh
            .canonical_records(connection_id, "candidate")
            .await?;
        Ok(records
            .into_iter()
            .find(|record| record.external_id == id.to_string())
            .and_then(|record| match record.body {
                Some(Body::Candidate(candidate)) => Some(candidate.first_name),
                _ => None,
            }))
    }

    async fn run_count(&self, connection_id: &str) -> anyhow::Result<usize> {
        Ok(self
            .mesh
            .clients
            .sync(&self.mesh.sync_addr)
            .list_runs(ListRunsRequest {
                connection_id: connection_id.into(),
                limit: 100,
            })
            .await?
            .into_inner()
            .runs
            .len())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_and_partner_deletes_reach_the_store_through_the_mesh() -> anyhow::Result<()> {
    let harness = Harness::start(|dir| {
        vec![
            ("greenhouse", repo().join("services/connector-greenhouse")),
            ("greenhouse-fixture", fixture_connector(dir)),
        ]
    })
    .await?;
    let url = harness.connect(REAL, "greenhouse").await?;
    let ids = harness.candidate_ids().await?;
    let (changed, late, deleted) = (ids[0], ids[1], ids[2]);

    // A signed delivery is taken, and a read of the candidates stream alone brings the change.
    harness
        .admin(
            "touch",
            json!({"stream": "candidates", "ids": [changed], "changes": {"first_name": "Webhooked"}}),
        )
        .await?;
    let (status, answer) = harness
        .deliver(&url, json!({"action": "update_candidate", "id": changed}))
        .await?;
    assert_eq!(
        (status, answer["accepted"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    eventually(
        "the targeted read to bring the change",
        Duration::from_secs(60),
        || async {
            harness
                .first_name(REAL, changed)
                .await
                .ok()
                .flatten()
                .as_deref()
                == Some("Webhooked")
        },
    )
    .await?;
    // The run records its progress after committing the page: wait for it to finish.
    harness.mesh.wait_idle(REAL).await?;
    let runs = harness
        .mesh
        .clients
        .sync(&harness.mesh.sync_addr)
        .list_runs(ListRunsRequest {
            connection_id: REAL.into(),
            limit: 1,
        })
        .await?
        .into_inner()
        .runs;
    let streams: Vec<&str> = runs[0].streams.iter().map(|s| s.stream.as_str()).collect();
    assert_eq!(
        streams,
        ["candidates"],
        "a targeted read, not a full refresh"
    );
    harness.mesh.wait_idle(REAL).await?;
    let runs_before = harness.run_count(REAL).await?;

    // The same delivery again (a partner's retry, or a replay) is dropped.
    let (status, answer) = harness
        .deliver(&url, json!({"variant": "repeat", "action": "", "id": 0}))
        .await?;
    assert_eq!(
        (status, answer["duplicates"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );

    // A late delivery of an older change, and an older delete, change nothing.
    let (status, answer) = harness
        .deliver(
            &url,
            json!({"action": "update_candidate", "id": changed, "updated_at": "2020-01-01T00:00:00Z"}),
        )
        .await?;
    assert_eq!(
        (status, answer["ignored"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    let (status, answer) = harness
        .deliver(
            &url,
            json!({"action": "delete_candidate", "id": late, "updated_at": "2020-01-01T00:00:00Z"}),
        )
        .await?;
    assert_eq!(
        (status, answer["ignored"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );

    // Forged and wrongly signed deliveries get 401.
    for variant in ["forged", "wrong_secret"] {
        let (status, answer) = harness
            .deliver(
                &url,
                json!({"action": "update_candidate", "id": changed, "variant": variant}),
            )
            .await?;
        assert_eq!(status, 401, "{variant}: {answer}");
        assert_eq!(answer["error"]["code"], "unauthenticated");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        harness.run_count(REAL).await?,
        runs_before,
        "nothing started a read"
    );
    assert_eq!(
        harness.first_name(REAL, changed).await?.as_deref(),
        Some("Webhooked")
    );
    assert!(
        harness.first_name(REAL, late).await?.is_some(),
        "the older delete was ignored"
    );

    // A delete event tombstones its record, and WatchChanges shows the deletion.
    let (status, answer) = harness
        .deliver(&url, json!({"action": "delete_candidate", "id": deleted}))
        .await?;
    assert_eq!(
        (status, answer["accepted"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    assert_eq!(harness.first_name(REAL, deleted).await?, None);
    let mut changes = harness
        .mesh
        .clients
        .sync(&harness.mesh.sync_addr)
        .watch_changes(WatchChangesRequest {
            after_position: 0,
            connection_id: REAL.into(),
            entity: "candidate".into(),
        })
        .await?
        .into_inner();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let change = tokio::time::timeout_at(deadline, changes.message())
            .await
            .map_err(|_| anyhow::anyhow!("the deletion did not reach the change feed"))??
            .ok_or_else(|| anyhow::anyhow!("the change feed ended"))?;
        if change.deleted {
            assert_eq!(change.external_id, deleted.to_string());
            break;
        }
    }

    // Unknown routes are 404; another connector's path for the connection too.
    let (status, _) = harness
        .deliver(
            &format!("{}/webhooks/greenhouse/no-such-connection", harness.gateway),
            json!({"action": "update_candidate", "id": changed}),
        )
        .await?;
    assert_eq!(status, 404);

    // The fixture connector signs a timestamp: a replay outside the tolerance gets 401.
    let fixture_url = harness.connect(FIXTURE, "greenhouse-fixture").await?;
    let fresh = json!({"action": "update_candidate", "id": changed, "scheme": "timestamped"});
    let (status, answer) = harness.deliver(&fixture_url, fresh).await?;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = harness
        .deliver(
            &fixture_url,
            json!({"variant": "repeat", "action": "", "id": 0}),
        )
        .await?;
    assert_eq!(
        (status, answer["duplicates"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    let an_hour_ago = chrono_now() - 3600;
    let stale = json!({"action": "update_candidate", "id": changed, "scheme": "timestamped", "signed_at": an_hour_ago});
    let (status, answer) = harness.deliver(&fixture_url, stale).await?;
    assert_eq!(status, 401, "{answer}");

    // The deleted-records endpoint: never after a failed read, then tombstones.
    harness.mesh.wait_idle(FIXTURE).await?;
    let gone = ids[3];
    harness.admin("delete", json!({"ids": [gone]})).await?;
    harness
        .admin("faults", json!({"deleted_endpoint_fails": true}))
        .await?;
    let failed = harness.mesh.run_once(FIXTURE).await?;
    assert_eq!(
        failed.state,
        RunState::Failed as i32,
        "the endpoint's 422 fails the read"
    );
    assert!(
        harness.first_name(FIXTURE, gone).await?.is_some(),
        "no tombstone after a failed read"
    );
    harness
        .admin("faults", json!({"deleted_endpoint_fails": false}))
        .await?;
    let read = harness.mesh.run_once(FIXTURE).await?;
    assert_eq!(read.state, RunState::Succeeded as i32, "{}", read.error);
    let deleted_count: u64 = read
        .streams
        .iter()
        .filter(|stream| stream.stream == "candidates")
        .map(|stream| stream.records_deleted)
        .sum();
    assert_eq!(deleted_count, 1, "{read:?}");
    assert_eq!(harness.first_name(FIXTURE, gone).await?, None);
    Ok(())
}

/// One signed delivery carrying several events, shaped as BambooHR's batched employee webhooks
/// (`tests/fixtures/webhooks/bamboohr-employees.json`): each element is an event of its own
/// through gateway, connector (signature checked once, with the secret leased from
/// credentials) and sync, dropped as a duplicate on its own; the element without an id is
/// refused alone; a body without the array is refused whole, naming the pointer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batched_delivery_becomes_one_event_per_element() -> anyhow::Result<()> {
    let harness = Harness::start(|dir| vec![(BATCH_CONNECTOR, batch_connector(dir))]).await?;
    let url = harness.connect(BATCHED, BATCH_CONNECTOR).await?;
    let ids = harness.candidate_ids().await?;
    let (changed, later, deleted) = (ids[0], ids[1], ids[2]);
    harness
        .admin(
            "touch",
            json!({"stream": "candidates", "ids": [changed], "changes": {"first_name": "Batched"}}),
        )
        .await?;

    // The fixture's employees become candidates of the sandbox, changed now.
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(
        repo().join("tests/fixtures/webhooks/bamboohr-employees.json"),
    )?)?;
    let now = chrono::Utc::now().to_rfc3339();
    let mut employees = fixture["employees"].as_array().unwrap().clone();
    assert_eq!(employees.len(), 3);
    assert!(
        employees[1].get("id").is_none(),
        "the fixture's second element has no id"
    );
    employees[0]["id"] = json!(changed.to_string());
    employees[2]["id"] = json!(deleted.to_string());
    for employee in &mut employees {
        employee["timestamp"] = json!(now);
    }
    let batched =
        |batch: Value| json!({"scheme": "batched", "batch": batch, "action": "", "id": 0});

    let (status, answer) = harness
        .deliver(&url, batched(json!({ "employees": employees })))
        .await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["accepted"].as_u64(), answer["duplicates"].as_u64()),
        (Some(2), Some(0)),
        "{answer}"
    );
    assert_eq!(
        answer["rejected"].as_array().map(Vec::len),
        Some(1),
        "{answer}"
    );
    assert_eq!(answer["rejected"][0]["index"], 1, "{answer}");
    assert_eq!(
        answer["rejected"][0]["reason"], "no record id at /id for event type \"Updated\"",
        "{answer}"
    );
    eventually(
        "the targeted read to bring the batched change",
        Duration::from_secs(60),
        || async {
            harness
                .first_name(BATCHED, changed)
                .await
                .ok()
                .flatten()
                .as_deref()
                == Some("Batched")
        },
    )
    .await?;
    assert_eq!(
        harness.first_name(BATCHED, deleted).await?,
        None,
        "the Deleted element tombstoned its candidate"
    );

    // The partner's retry of the whole delivery: every event a duplicate, one by one.
    let (status, answer) = harness
        .deliver(&url, json!({"variant": "repeat", "action": "", "id": 0}))
        .await?;
    assert_eq!(
        (
            status,
            answer["accepted"].as_u64(),
            answer["duplicates"].as_u64()
        ),
        (200, Some(0), Some(2)),
        "{answer}"
    );
    // A new batch repeating one element beside a new one: only the repeat is dropped.
    let mut update = employees[0].clone();
    update["id"] = json!(later.to_string());
    let (status, answer) = harness
        .deliver(
            &url,
            batched(json!({"employees": [employees[0].clone(), update]})),
        )
        .await?;
    assert_eq!(
        (
            status,
            answer["accepted"].as_u64(),
            answer["duplicates"].as_u64()
        ),
        (200, Some(1), Some(1)),
        "{answer}"
    );

    // Signed, but not where the manifest says the events are: refused whole, precisely.
    let (status, answer) = harness
        .deliver(&url, batched(json!({ "employee": employees })))
        .await?;
    assert_eq!(status, 400, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("no array of events at /employees"),
        "{answer}"
    );
    // The signature covers the whole batch: signed with another secret, nothing is taken.
    let mut wrong = batched(json!({ "employees": employees }));
    wrong["variant"] = json!("wrong_secret");
    let (status, answer) = harness.deliver(&url, wrong).await?;
    assert_eq!(status, 401, "{answer}");
    Ok(())
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or_default()
}
