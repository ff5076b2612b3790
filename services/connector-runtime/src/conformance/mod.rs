//! The conformance kit: one suite every manifest connector passes against its sandbox, with no
//! test code of its own.
//!
//! A connector folder's `conformance.yaml` says how to reach its sandbox (settings with
//! `{{ sandbox }}` for the sandbox URL, the demo secret, a record to write, a webhook to ask
//! for). The sandbox speaks the partner's API plus the `/_sandbox/` admin contract:
//! `GET records/{stream}` (`{"data": [...], "malformed": [...]}`: the records as the connector
//! reads them, and those it serves that must be quarantined), `POST touch` (`{"stream",
//! "ids", "changes"}`: one cursor value for all of them), `POST faults` (`rate_limit_burst`,
//! `retry_after_seconds`, `server_error_burst`, `malformed`, `expire_sessions`) and `POST
//! webhook` (`{"action", "id", "signed_at"?}` → `{"headers", "body"}`). [`run`] goes through every check
//! the manifest's features call for and returns one [`Outcome`] per check; checks a manifest
//! has no feature for are skipped with a reason.
//!
//! A connector with `documents` gets a document to parse (`conformance.yaml`'s `document`);
//! its sandbox fails the parse of a document that is not text.
//!
//! Submodules: [`reads`] (check, discover, full and incremental reads, paging, faults,
//! quarantine), [`writes`] (writes and webhooks) and [`documents`] (document parsing).

mod documents;
mod reads;
mod writes;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;

use plugboard_mapping::spec::CompiledSpec;
use plugboard_proto::connector::v1::{ConnectionRef, ReadResponse};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::access::Secret;
use crate::connector::{Connector, ReadParams, SecretSource};
use crate::manifest::{self, Manifest};
use crate::template;

const TENANT: &str = "conformance";

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
    #[serde(default)]
    pub document: Option<FixtureDocument>,
}

/// A document to parse, for connectors with `documents`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureDocument {
    /// The manifest's document kind.
    #[serde(rename = "type", default)]
    pub kind: String,
    pub file_name: String,
    pub content_type: String,
    /// The document's content.
    pub text: String,
    /// Values of the parse at JSON pointers.
    pub expect: BTreeMap<String, Value>,
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
    let mut specs = Vec::new();
    for (name, yaml) in &loaded.mappings {
        // `load` compiled them already; this cannot fail unless the file changed since.
        specs.push(CompiledSpec::compile(name, yaml).map_err(|_| format!("{name} changed"))?);
    }
    let kit = Kit::new(
        loaded.manifest,
        fixture,
        specs,
        &loaded.mappings,
        sandbox_url,
    )?;
    let mut outcomes = vec![Outcome {
        check: "manifest and mappings check offline",
        verdict: Verdict::Passed,
    }];
    let steps: [(&'static str, Step); 13] = [
        ("check", kit.check().await),
        ("discover", kit.discover()),
        (
            "full read equals the sandbox's records, field by field",
            kit.full_reads().await,
        ),
        (
            "pagination ends and never repeats a page",
            kit.pagination_ends().await,
        ),
        (
            "incremental read moves only changes",
            kit.incremental().await,
        ),
        (
            "records sharing a cursor value across pages, one changed mid-read, are all read",
            kit.shared_cursor().await,
        ),
        ("429 honoured", kit.rate_limited().await),
        ("5xx burst retried", kit.server_errors().await),
        (
            "token expiry during a paged read recovered",
            kit.token_expiry().await,
        ),
        (
            "malformed record quarantined with its reason",
            kit.malformed().await,
        ),
        (
            "write round-trips; an unconfirmed create is never sent twice",
            kit.write().await,
        ),
        (
            "document parsed and mapped; 429 waited out; wrong key and unreadable document refused",
            kit.document().await,
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
    /// The connector's inbound mapping specs, by entity: quarantine can happen there too.
    specs: Vec<CompiledSpec>,
    sandbox: String,
    connection: ConnectionRef,
    http: reqwest::Client,
}

fn ensure(condition: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(message()) }
}

/// The pages of one read.
struct Read {
    pages: Vec<ReadResponse>,
}

impl Read {
    fn records(&self) -> impl Iterator<Item = &plugboard_proto::connector::v1::RawRecord> {
        self.pages.iter().flat_map(|page| &page.records)
    }

    fn ids(&self) -> Vec<String> {
        self.records().map(|r| r.external_id.clone()).collect()
    }
}

impl Kit {
    fn new(
        manifest: Manifest,
        fixture: Fixture,
        specs: Vec<CompiledSpec>,
        mappings: &[(String, String)],
        sandbox: &str,
    ) -> Result<Kit, String> {
        let scope = json!({ "sandbox": sandbox });
        let settings: serde_json::Map<String, Value> = fixture
            .settings
            .iter()
            .map(|(key, value)| {
                (
                    key.clone(),
                    template::render_json(value, &scope).unwrap_or(Value::Null),
                )
            })
            .collect();
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
            .and_then(|connector| connector.with_outbound_mappings(mappings))
            .map_err(|e| e.to_string())?;
        Ok(Kit {
            connector,
            fixture,
            specs,
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

    /// The sandbox's well-formed records of `stream` and how many malformed ones it serves.
    async fn sandbox_records(&self, stream: &str) -> Result<(Vec<Value>, usize), String> {
        let records = self
            .admin("GET", &format!("records/{stream}"), Value::Null)
            .await?;
        let data = records["data"].as_array().cloned().unwrap_or_default();
        let malformed = records["malformed"].as_array().map_or(0, Vec::len);
        Ok((data, malformed))
    }

    /// Reads a stream to its end, at most `max_pages` pages.
    async fn read(
        &self,
        stream: &str,
        checkpoint: &str,
        page_size: u32,
        max_pages: usize,
    ) -> Result<Read, String> {
        self.read_with(stream, checkpoint, page_size, max_pages, || async {
            Ok(())
        })
        .await
    }

    /// As [`Kit::read`], running `after_first_page` once the first page has arrived and
    /// before the connector may fetch more than one page beyond it.
    async fn read_with<F, Fut>(
        &self,
        stream: &str,
        checkpoint: &str,
        page_size: u32,
        max_pages: usize,
        after_first_page: F,
    ) -> Result<Read, String>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let params = ReadParams {
            tenant: TENANT.to_owned(),
            connection: self.connection.clone(),
            stream: stream.to_owned(),
            checkpoint: checkpoint.to_owned(),
            page_size,
            run_id: String::new(),
        };
        let settings = self
            .connector
            .prepare(&params)
            .await
            .map_err(|e| format!("reading {stream}: {e}"))?;
        // One page in the channel, one being sent: the hook runs before page three is asked.
        let (sender, mut receiver) = mpsc::channel(1);
        let reading = self.connector.read(params, settings, sender);
        let collecting = async move {
            let mut pages = Vec::new();
            let mut hook = Some(after_first_page);
            while let Some(page) = receiver.recv().await {
                pages.push(page.map_err(|e| format!("reading {stream}: {e}"))?);
                if let Some(hook) = hook.take() {
                    hook().await?;
                }
                // An explicit end, not a timeout: a paginator that never stops fails here.
                ensure(pages.len() <= max_pages, || {
                    format!("reading {stream} did not end within {max_pages} pages")
                })?;
            }
            Ok(Read { pages })
        };
        let ((), read) = tokio::join!(reading, collecting);
        read
    }

    fn spec(&self, entity: &str) -> Option<&CompiledSpec> {
        self.specs.iter().find(|spec| {
            spec.entity().as_str() == entity
                && spec.direction() == plugboard_mapping::spec::Direction::Inbound
        })
    }
}

/// Most pages a read of `records` records in pages of `page_size` may take: every page full,
/// plus a last one and room for records sharing the boundary cursor value read again.
fn page_cap(records: usize, page_size: u32) -> usize {
    records.div_ceil(page_size.max(1) as usize) + 3
}

fn id_text(id: &Value) -> String {
    match id {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}
