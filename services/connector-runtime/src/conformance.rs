//! The conformance kit: one suite every manifest connector passes against its sandbox, with no
//! test code of its own.
//!
//! A connector folder's `conformance.yaml` says how to reach its sandbox (settings with
//! `{{ sandbox }}` for the sandbox URL, the demo secret, a record to write, a webhook to ask
//! for). The sandbox speaks the partner's API plus the `/_sandbox/` admin contract:
//! `GET records/{stream}` (`{"data": [...], "malformed": [...]}`), `POST touch`
//! (`{"stream", "ids", "changes"}`), `POST faults` (`rate_limit_burst`, `retry_after_seconds`,
//! `malformed`, `expire_sessions`) and `POST webhook` (`{"action", "id", "signed_at"?}` → `{"headers",
//! "body"}`). [`run`] goes through every check the manifest's features call for and returns
//! one [`Outcome`] per check; checks a manifest has no feature for are skipped with a reason.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use plugboard_proto::connector::v1::connector_service_server::ConnectorService;
use plugboard_proto::connector::v1::{
    ConnectionRef, HandleWebhookRequest, HandleWebhookResponse, ReadResponse, WebhookHeader,
};
use plugboard_runtime::identity::Caller;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::access::Secret;
use crate::checkpoint::{Checkpoint, CursorFormat};
use crate::connector::{Connector, ReadParams, SecretSource, WriteParams};
use crate::error::Error;
use crate::grpc::GrpcConnectorAdapter;
use crate::manifest::{self, Auth, Manifest};
use crate::template;
use crate::webhook_events::{WebhookHandler, WebhookSecretSource};

const TENANT: &str = "conformance";
/// Longest a single read may take before the kit calls it endless.
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// `conformance.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// Connection settings; string values are templates over `sandbox` (its base URL).
    pub settings: BTreeMap<String, Value>,
    pub secret: FixtureSecret,
    #[serde(default)]
    pub webhook: Option<FixtureWebhook>,
    #[serde(default)]
    pub write: Option<FixtureWrite>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FixtureSecret {
    ApiKey {
        key: String,
    },
    Basic {
        username: String,
        password: String,
    },
    Oauth2Client {
        client_id: String,
        client_secret: String,
        #[serde(default)]
        token_url: String,
        #[serde(default)]
        username: String,
        #[serde(default)]
        password: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureWebhook {
    pub secret: String,
    /// The event the sandbox is asked to sign.
    pub action: String,
    /// The stream whose first record the event is about.
    pub stream: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureWrite {
    pub entity: String,
    /// Where the written record shows up in the sandbox.
    pub stream: String,
    /// The canonical record to create.
    pub record: Value,
    /// Fields of the partner record after the create.
    pub expect: BTreeMap<String, Value>,
    /// Canonical fields changed by the update, and what the partner record then shows.
    #[serde(default)]
    pub update: Option<(Value, BTreeMap<String, Value>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    Skipped(String),
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub check: &'static str,
    pub verdict: Verdict,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.verdict {
            Verdict::Passed => write!(f, "pass  {}", self.check),
            Verdict::Skipped(why) => write!(f, "skip  {}: {why}", self.check),
            Verdict::Failed(why) => write!(f, "FAIL  {}: {why}", self.check),
        }
    }
}

type Step = Result<Verdict, String>;

/// Runs the suite for the connector folder `dir` against the sandbox at `sandbox_url`.
pub async fn run(dir: &Path, sandbox_url: &str) -> Result<Vec<Outcome>, String> {
    let loaded = manifest::load(dir).map_err(|problems| {
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        format!("check: {}", text.join("; "))
    })?;
    let fixture_path = dir.join("conformance.yaml");
    let fixture: Fixture = serde_yaml_ng::from_str(
        &std::fs::read_to_string(&fixture_path)
            .map_err(|e| format!("{}: {e}", fixture_path.display()))?,
    )
    .map_err(|e| format!("{}: {e}", fixture_path.display()))?;
    let kit = Kit::new(loaded.manifest, fixture, sandbox_url)?;
    let mut outcomes = vec![Outcome {
        check: "manifest and mappings check offline",
        verdict: Verdict::Passed,
    }];
    let steps: [(&'static str, Step); 9] = [
        ("check", kit.check().await),
        ("discover", kit.discover()),
        (
            "full read equals the sandbox, pages never repeat",
            kit.full_reads().await,
        ),
        (
            "incremental read moves only changes",
            kit.incremental().await,
        ),
        ("429 honoured", kit.rate_limited().await),
        ("token expiry mid-run recovered", kit.token_expiry().await),
        (
            "malformed record quarantined with its reason",
            kit.malformed().await,
        ),
        (
            "write round-trips; an unconfirmed create is never sent twice",
            kit.write().await,
        ),
        (
            "signed webhook accepted, forged and replayed rejected",
            kit.webhook().await,
        ),
    ];
    for (check, step) in steps {
        outcomes.push(Outcome {
            check,
            verdict: step.unwrap_or_else(Verdict::Failed),
        });
    }
    Ok(outcomes)
}

struct Kit {
    connector: Connector,
    fixture: Fixture,
    sandbox: String,
    connection: ConnectionRef,
    http: reqwest::Client,
}

fn ensure(condition: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(message()) }
}

impl Kit {
    fn new(manifest: Manifest, fixture: Fixture, sandbox: &str) -> Result<Kit, String> {
        let scope = json!({ "sandbox": sandbox });
        let settings: serde_json::Map<String, Value> = fixture
            .settings
            .iter()
            .map(|(key, value)| {
                Ok((
                    key.clone(),
                    template::render_json(value, &scope).unwrap_or(Value::Null),
                ))
            })
            .collect::<Result<_, String>>()?;
        let secret = match &fixture.secret {
            FixtureSecret::ApiKey { key } => Secret::api_key(key),
            FixtureSecret::Basic { username, password } => Secret::basic(username, password),
            FixtureSecret::Oauth2Client {
                client_id,
                client_secret,
                token_url,
                username,
                password,
            } => Secret::oauth2_client(
                client_id,
                client_secret,
                &template::render(token_url, &scope)?,
                username,
                password,
            ),
        };
        // The sandbox listens on loopback: the kit runs as dev mode does.
        let connector = Connector::new(manifest, SecretSource::Fixed(secret), true)
            .map_err(|e| e.to_string())?;
        Ok(Kit {
            connector,
            fixture,
            sandbox: sandbox.trim_end_matches('/').to_owned(),
            connection: ConnectionRef {
                connection_id: "conformance-1".to_owned(),
                settings_json: Value::Object(settings).to_string(),
            },
            http: reqwest::Client::new(),
        })
    }

    fn manifest(&self) -> &Manifest {
        self.connector.manifest()
    }

    async fn admin(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        let url = format!("{}/_sandbox/{path}", self.sandbox);
        let request = match method {
            "GET" => self.http.get(&url),
            _ => self.http.post(&url).json(&body),
        };
        let response = request.send().await.map_err(|e| format!("{url}: {e}"))?;
        let status = response.status();
        let value: Value = response.json().await.map_err(|e| format!("{url}: {e}"))?;
        ensure(status.is_success(), || {
            format!("{url} answered {status}: {value}")
        })?;
        Ok(value)
    }

    async fn sandbox_ids(&self, stream: &str) -> Result<(Vec<Value>, usize), String> {
        let records = self
            .admin("GET", &format!("records/{stream}"), Value::Null)
            .await?;
        let data = records["data"].as_array().cloned().unwrap_or_default();
        let malformed = records["malformed"].as_array().map_or(0, Vec::len);
        Ok((data, malformed))
    }

    async fn read(
        &self,
        stream: &str,
        checkpoint: &str,
        page_size: u32,
    ) -> Result<Vec<ReadResponse>, String> {
        let params = ReadParams {
            tenant: TENANT.to_owned(),
            connection: self.connection.clone(),
            stream: stream.to_owned(),
            checkpoint: checkpoint.to_owned(),
            page_size,
        };
        tokio::time::timeout(READ_TIMEOUT, self.connector.read_all(params))
            .await
            .map_err(|_| format!("reading {stream} did not end within {READ_TIMEOUT:?}"))?
            .map_err(|e| format!("reading {stream}: {e}"))
    }

    async fn check(&self) -> Step {
        let response = self
            .connector
            .check(TENANT, &self.connection)
            .await
            .map_err(|e| e.to_string())?;
        ensure(response.ok, || format!("check failed: {}", response.reason))?;
        Ok(Verdict::Passed)
    }

    fn discover(&self) -> Step {
        let streams = self.connector.discover().streams;
        ensure(streams.len() == self.manifest().streams.len(), || {
            "discover does not list every stream".to_owned()
        })?;
        for stream in &streams {
            let spec = &self.manifest().streams[&stream.name];
            ensure(stream.entity == spec.entity, || {
                format!("{} has the wrong entity", stream.name)
            })?;
        }
        Ok(Verdict::Passed)
    }

    async fn full_reads(&self) -> Step {
        for name in self.manifest().streams.keys() {
            let (data, _) = self.sandbox_ids(name).await?;
            let expected: HashSet<String> = data.iter().map(|r| id_text(&r["id"])).collect();
            // Small pages, so every stream takes several.
            let page_size = (expected.len() as u32 / 3).max(1);
            let pages = self.read(name, "", page_size).await?;
            let mut seen = HashSet::new();
            for page in &pages {
                for record in &page.records {
                    ensure(seen.insert(record.external_id.clone()), || {
                        format!(
                            "{name}: record {} came twice (a repeated page)",
                            record.external_id
                        )
                    })?;
                }
            }
            ensure(seen == expected, || {
                format!(
                    "{name}: read {} records, the sandbox holds {}",
                    seen.len(),
                    expected.len()
                )
            })?;
            let paged = !matches!(
                self.manifest().streams[name].pagination,
                manifest::Pagination::None
            );
            ensure(!paged || expected.len() < 3 || pages.len() >= 3, || {
                format!(
                    "{name}: {} records came in {} pages of {page_size}",
                    seen.len(),
                    pages.len()
                )
            })?;
        }
        Ok(Verdict::Passed)
    }

    async fn incremental(&self) -> Step {
        let Some((name, stream)) = self
            .manifest()
            .streams
            .iter()
            .find(|(_, stream)| stream.incremental.is_some())
        else {
            return Ok(Verdict::Skipped("no stream is incremental".to_owned()));
        };
        let incremental = stream.incremental.as_ref().ok_or("unreachable")?;
        let format = CursorFormat::parse(&incremental.format, incremental.timezone.as_deref())?;
        let pages = self.read(name, "", 0).await?;
        let last = pages.last().ok_or("a full read gave no page")?;
        let since = Checkpoint::parse(&last.checkpoint)
            .map_err(|e| e.to_string())?
            .since
            .ok_or("the last page's checkpoint has no cursor")?;
        let (data, _) = self.sandbox_ids(name).await?;
        let touched: Vec<Value> = data.iter().take(2).map(|r| r["id"].clone()).collect();
        self.admin("POST", "touch", json!({"stream": name, "ids": touched}))
            .await?;
        let changed = self.read(name, &last.checkpoint, 0).await?;
        let read: HashSet<String> = changed
            .iter()
            .flat_map(|page| page.records.iter().map(|r| r.external_id.clone()))
            .collect();
        let touched: HashSet<String> = touched.iter().map(id_text).collect();
        ensure(touched.is_subset(&read), || {
            format!("{name}: the touched records were not read again")
        })?;
        for record in changed.iter().flat_map(|page| &page.records) {
            if touched.contains(&record.external_id) {
                continue;
            }
            let payload: Value =
                serde_json::from_str(&record.payload_json).map_err(|e| e.to_string())?;
            let value = format.read(&payload[&incremental.field]);
            ensure(value.is_some_and(|value| value >= since), || {
                format!(
                    "{name}: unchanged record {} was read again",
                    record.external_id
                )
            })?;
        }
        ensure(read.len() < data.len(), || {
            format!("{name}: the incremental read re-read everything")
        })?;
        Ok(Verdict::Passed)
    }

    async fn rate_limited(&self) -> Step {
        let name = self.manifest().streams.keys().next().ok_or("no stream")?;
        let (data, _) = self.sandbox_ids(name).await?;
        self.admin(
            "POST",
            "faults",
            json!({"rate_limit_burst": 2, "retry_after_seconds": 1}),
        )
        .await?;
        let pages = self.read(name, "", 0).await?;
        let waits: u32 = pages.iter().map(|page| page.rate_limited_waits).sum();
        let records: usize = pages.iter().map(|page| page.records.len()).sum();
        ensure(waits >= 2, || {
            format!("{name}: {waits} waits reported for two 429s")
        })?;
        ensure(records == data.len(), || {
            format!("{name}: the read after 429s lost records")
        })?;
        Ok(Verdict::Passed)
    }

    async fn token_expiry(&self) -> Step {
        match self.manifest().auth {
            Auth::Login { .. } | Auth::Oauth2ClientCredentials { .. } => {}
            _ => {
                return Ok(Verdict::Skipped(
                    "the auth scheme has no session or token that could expire".to_owned(),
                ));
            }
        }
        let name = self.manifest().streams.keys().next().ok_or("no stream")?;
        self.read(name, "", 0).await?;
        self.admin("POST", "faults", json!({"expire_sessions": true}))
            .await?;
        self.read(name, "", 0).await?;
        Ok(Verdict::Passed)
    }

    async fn malformed(&self) -> Step {
        self.admin("POST", "faults", json!({"malformed": true}))
            .await?;
        let mut checked = false;
        for name in self.manifest().streams.keys() {
            let (data, malformed) = self.sandbox_ids(name).await?;
            if malformed == 0 {
                continue;
            }
            checked = true;
            let pages = self.read(name, "", 0).await?;
            let rejected: Vec<_> = pages.iter().flat_map(|page| &page.rejected).collect();
            let records: usize = pages.iter().map(|page| page.records.len()).sum();
            ensure(rejected.len() == malformed, || {
                format!(
                    "{name}: {} rejected for {malformed} malformed",
                    rejected.len()
                )
            })?;
            ensure(
                rejected
                    .iter()
                    .all(|r| !r.reason.is_empty() && !r.payload_json.is_empty()),
                || format!("{name}: a rejected record has no reason or payload"),
            )?;
            ensure(records == data.len(), || {
                format!("{name}: good records were lost")
            })?;
        }
        self.admin("POST", "faults", json!({"malformed": false}))
            .await?;
        if checked {
            Ok(Verdict::Passed)
        } else {
            Ok(Verdict::Skipped(
                "the sandbox injects no malformed records".to_owned(),
            ))
        }
    }

    async fn write(&self) -> Step {
        let Some(fixture) = &self.fixture.write else {
            return Ok(if self.manifest().writes.is_empty() {
                Verdict::Skipped("the manifest has no writes".to_owned())
            } else {
                Verdict::Failed("the manifest writes but conformance.yaml has no write".to_owned())
            });
        };
        let (before, _) = self.sandbox_ids(&fixture.stream).await?;
        let params = WriteParams {
            tenant: TENANT.to_owned(),
            connection: self.connection.clone(),
            entity: fixture.entity.clone(),
            external_id: String::new(),
            record_json: fixture.record.to_string(),
            idempotency_key: "conformance-write-1".to_owned(),
            earlier_attempt_unconfirmed: false,
        };
        let created = self
            .connector
            .write(params.clone())
            .await
            .map_err(|e| e.to_string())?;
        // The same create again, as an outbox retries one whose first answer was lost: without
        // a key the partner deduplicates on, the runtime must refuse rather than create twice.
        let again = self
            .connector
            .write(WriteParams {
                earlier_attempt_unconfirmed: true,
                ..params.clone()
            })
            .await;
        match (
            &again,
            &self.manifest().writes[&fixture.entity].idempotency_header,
        ) {
            (Err(Error::WriteOutcomeUnknown(_)), None) => {}
            (Ok(again), Some(_)) => ensure(again.external_id == created.external_id, || {
                "the partner did not deduplicate a repeated idempotency key".to_owned()
            })?,
            (other, _) => {
                return Ok(Verdict::Failed(format!(
                    "a repeated unconfirmed create answered {other:?}"
                )));
            }
        }
        let (after, _) = self.sandbox_ids(&fixture.stream).await?;
        ensure(after.len() == before.len() + 1, || {
            format!(
                "{} records after one create, {} before",
                after.len(),
                before.len()
            )
        })?;
        let find = |records: &[Value]| {
            records
                .iter()
                .find(|r| id_text(&r["id"]) == created.external_id)
                .cloned()
        };
        let record = find(&after).ok_or("the created record is not in the sandbox")?;
        for (field, expected) in &fixture.expect {
            let actual = record.pointer(field).or_else(|| record.get(field));
            ensure(actual == Some(expected), || {
                format!("created record: {field} is {actual:?}, expected {expected}")
            })?;
        }
        if let Some((changes, expect)) = &fixture.update {
            let mut record = fixture.record.clone();
            if let (Some(record), Some(changes)) = (record.as_object_mut(), changes.as_object()) {
                record.extend(changes.clone());
            }
            let updated = self
                .connector
                .write(WriteParams {
                    external_id: created.external_id.clone(),
                    record_json: record.to_string(),
                    idempotency_key: "conformance-write-2".to_owned(),
                    // An update sets values: repeating one is harmless, so it is sent.
                    earlier_attempt_unconfirmed: true,
                    ..params
                })
                .await
                .map_err(|e| e.to_string())?;
            ensure(updated.external_id == created.external_id, || {
                "the update changed the id".to_owned()
            })?;
            let (after, _) = self.sandbox_ids(&fixture.stream).await?;
            let record = find(&after).ok_or("the updated record is gone")?;
            for (field, expected) in expect {
                let actual = record.pointer(field).or_else(|| record.get(field));
                ensure(actual == Some(expected), || {
                    format!("updated record: {field} is {actual:?}, expected {expected}")
                })?;
            }
        }
        Ok(Verdict::Passed)
    }

    async fn webhook(&self) -> Step {
        let (Some(spec), Some(fixture)) = (&self.manifest().webhooks, &self.fixture.webhook) else {
            return Ok(Verdict::Skipped("the manifest has no webhooks".to_owned()));
        };
        let (data, _) = self.sandbox_ids(&fixture.stream).await?;
        let id = data
            .first()
            .map(|r| r["id"].clone())
            .ok_or("no record to send a webhook about")?;
        let delivery = self
            .admin(
                "POST",
                "webhook",
                json!({"action": fixture.action, "id": id}),
            )
            .await?;
        let headers = delivery_headers(&delivery);
        let body = delivery["body"]
            .as_str()
            .ok_or("the sandbox sent no body")?;
        // Through the connector's own HandleWebhook, as the gateway calls it.
        let adapter = |secret: &str| -> Result<GrpcConnectorAdapter, String> {
            let connector = Connector::new(
                self.manifest().clone(),
                SecretSource::Fixed(Secret::api_key("")),
                true,
            )
            .map_err(|e| e.to_string())?;
            let handler = WebhookHandler::new(
                Arc::new(self.manifest().clone()),
                WebhookSecretSource::Fixed(secret.to_owned().into()),
            );
            Ok(GrpcConnectorAdapter::new(Arc::new(connector)).with_webhooks(Arc::new(handler)))
        };
        let connection = &self.connection;
        let unauthenticated = |answer: Result<_, tonic::Status>| matches!(answer, Err(status) if status.code() == tonic::Code::Unauthenticated);
        let right = adapter(&fixture.secret)?;
        let forged = body.replacen(&id_text(&id), "1", 1);
        ensure(
            unauthenticated(deliver(&right, connection, &forged, &headers).await),
            || "a forged body was not refused as unauthenticated".to_owned(),
        )?;
        let wrong = adapter("not-the-secret")?;
        ensure(
            unauthenticated(deliver(&wrong, connection, body, &headers).await),
            || "a delivery signed with another secret was accepted".to_owned(),
        )?;
        let accepted = deliver(&right, connection, body, &headers)
            .await
            .map_err(|status| format!("a correctly signed delivery was refused: {status:?}"))?;
        let event = accepted.events.first().ok_or("the delivery has no event")?;
        ensure(event.external_id == id_text(&id), || {
            format!("the event names {:?}, not {id}", event.external_id)
        })?;
        ensure(
            !event.stream.is_empty() && !event.event_id.is_empty(),
            || "the event names no stream to read or has no id".to_owned(),
        )?;
        // A repeated delivery is the same event, which sync drops durably.
        let again = deliver(&right, connection, body, &headers)
            .await
            .map_err(|status| format!("a repeated delivery was refused: {status:?}"))?;
        ensure(
            again.events.first().map(|e| &e.event_id) == Some(&event.event_id),
            || "a repeated delivery got another event id".to_owned(),
        )?;
        // A delivery signed long ago is refused, where the partner signs a timestamp.
        if spec.signature.timestamp_header.is_some() {
            let signed_at = chrono::Utc::now().timestamp()
                - 2 * i64::try_from(spec.signature.tolerance_seconds).unwrap_or(i64::MAX / 4);
            let old = self
                .admin(
                    "POST",
                    "webhook",
                    json!({"action": fixture.action, "id": id, "signed_at": signed_at}),
                )
                .await?;
            let old_headers = delivery_headers(&old);
            let old_body = old["body"].as_str().ok_or("the sandbox sent no body")?;
            ensure(
                unauthenticated(deliver(&right, connection, old_body, &old_headers).await),
                || "a replay outside the tolerance was accepted".to_owned(),
            )?;
        }
        Ok(Verdict::Passed)
    }
}

/// The headers of a delivery the sandbox produced.
fn delivery_headers(delivery: &Value) -> Vec<WebhookHeader> {
    delivery["headers"]
        .as_object()
        .map(|headers| {
            headers
                .iter()
                .map(|(name, value)| WebhookHeader {
                    name: name.clone(),
                    value: value.as_str().unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// One delivery through the adapter's `HandleWebhook`, as the gateway (tenant [`TENANT`])
/// calls it.
async fn deliver(
    adapter: &GrpcConnectorAdapter,
    connection: &ConnectionRef,
    body: &str,
    headers: &[WebhookHeader],
) -> Result<HandleWebhookResponse, tonic::Status> {
    let mut request = tonic::Request::new(HandleWebhookRequest {
        connection: Some(connection.clone()),
        body: body.as_bytes().to_vec(),
        headers: headers.to_vec(),
    });
    request.extensions_mut().insert(Caller {
        subject: "gateway".to_owned(),
        tenant: Some(TENANT.to_owned()),
        connector: None,
    });
    ConnectorService::handle_webhook(adapter, request)
        .await
        .map(tonic::Response::into_inner)
}

fn id_text(id: &Value) -> String {
    match id {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
