//! The generic connector: check, discover, read and write for any manifest, testable without
//! gRPC. Sessions and rate budgets are kept per (tenant, connection).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use plugboard_mapping::spec::{CompiledSpec, Direction};
use plugboard_proto::connector::v1::{
    CheckResponse, ConnectionRef, DiscoverResponse, DiscoveredStream, RawRecord, ReadResponse,
    RejectedRecord,
};
use plugboard_proto::error::{ErrorKind, ServiceError};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::access::{Access, LeaseFor, Secret};
use crate::budget::SharedBudgets;
use crate::checkpoint::{Checkpoint, CursorFormat, PagePosition};
use crate::error::Error;
use crate::hooks::{Hooks, PageRead, SessionSigner};
use crate::http::{Answer, Body, Http, Limiter, Request, Response, SendOptions, next_link};
use crate::keyset;
use crate::manifest::{Format, Manifest, Pagination, Stream};
use crate::partner_calls::PartnerCalls;
use crate::session::{self, Session, Settings};
use crate::template;

mod deletes;
mod documents;
mod hooked;

pub use documents::{DocumentOutcome, DocumentParams};

/// Records per partner request when neither the caller nor the manifest chooses.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// Where a connector gets a connection's secret: credentials in the mesh, or a fixed secret
/// (the conformance kit and `plugboard connector` tooling).
#[derive(Debug, Clone)]
pub enum SecretSource {
    Credentials(Access),
    Fixed(Secret),
}

impl SecretSource {
    async fn lease(&self, what: LeaseFor<'_>) -> Result<Secret, Error> {
        match self {
            SecretSource::Credentials(access) => access.lease(what).await,
            SecretSource::Fixed(secret) => Ok(secret.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    tenant: String,
    connection_id: String,
}

#[derive(Debug, Clone)]
struct Cached {
    settings: Settings,
    session: Session,
    /// The run whose lease opened the session: each run leases for itself, so the audit log
    /// names every run that used the secret.
    run_id: String,
}

/// One read: which connection, stream, checkpoint and page size.
#[derive(Debug, Clone)]
pub struct ReadParams {
    pub tenant: String,
    pub connection: ConnectionRef,
    pub stream: String,
    pub checkpoint: String,
    pub page_size: u32,
    /// The sync run served; empty outside one.
    pub run_id: String,
}

/// One write of a canonical record to the partner.
#[derive(Debug, Clone)]
pub struct WriteParams {
    pub tenant: String,
    pub connection: ConnectionRef,
    /// Canonical entity (`candidate`).
    pub entity: String,
    /// The partner's id for an update; empty for a create.
    pub external_id: String,
    /// The canonical record body, JSON, holding only the fields to write.
    pub record_json: String,
    /// The caller's key, the same on every attempt of one write; sent to partners whose manifest
    /// names an idempotency header.
    pub idempotency_key: String,
    /// An earlier attempt may have reached the partner without an answer: a write the partner
    /// cannot take twice is refused with [`Error::WriteOutcomeUnknown`] instead of sent.
    pub earlier_attempt_unconfirmed: bool,
    /// The caller's mapping of the record for a `mapping: true` operation (the mapping service's,
    /// with the tenant's overrides); `None` maps with the connector's own copy of the spec.
    pub mapped: Option<MappedBody>,
}

/// What the mapping service made of a write's record, passed along by the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum MappedBody {
    /// The partner payload, JSON text.
    Payload(String),
    /// Why the record did not map; the write is refused with it.
    Refused(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct WriteOutcome {
    pub external_id: String,
    /// The partner's answer (usually the record as stored), for the caller's echo detection.
    pub answer: Value,
}

pub struct Connector {
    manifest: Arc<Manifest>,
    secrets: SecretSource,
    http: Http,
    allow_private: bool,
    sessions: Mutex<HashMap<Key, Cached>>,
    limiters: Mutex<HashMap<Key, Arc<Limiter>>>,
    /// Request windows shared with the other replicas (Redis); `None` counts in-process.
    budgets: Option<SharedBudgets>,
    /// The operator's cap on one 429 wait, below the manifest's `max_wait_seconds`.
    max_wait_cap: Option<std::time::Duration>,
    /// Outbound mapping specs by entity, for writes whose body is `mapping: true`.
    outbound: HashMap<String, Arc<CompiledSpec>>,
    /// The Rust hooks the manifest may name; every name it uses is registered here.
    hooks: Hooks,
}

impl Connector {
    pub fn new(
        manifest: Manifest,
        secrets: SecretSource,
        allow_private: bool,
    ) -> Result<Connector, Error> {
        Connector::with_hooks(manifest, secrets, allow_private, Hooks::default())
    }

    /// As [`Connector::new`], with a connector binary's own `hooks` besides the built-in
    /// ones; a hook the manifest names that neither holds stops the connector here, at start.
    pub fn with_hooks(
        manifest: Manifest,
        secrets: SecretSource,
        allow_private: bool,
        hooks: Hooks,
    ) -> Result<Connector, Error> {
        let hooks = Hooks::builtin().extend(hooks);
        let problems = hooks.problems(&manifest, "manifest.yaml", "");
        if !problems.is_empty() {
            let text: Vec<String> = problems.into_iter().map(|p| p.message).collect();
            return Err(Error::Startup(text.join("; ")));
        }
        Ok(Connector {
            manifest: Arc::new(manifest),
            secrets,
            http: Http::new()?,
            allow_private,
            sessions: Mutex::new(HashMap::new()),
            limiters: Mutex::new(HashMap::new()),
            budgets: None,
            max_wait_cap: None,
            outbound: HashMap::new(),
            hooks,
        })
    }

    /// Counts each account's request window with every replica through `budgets`.
    pub fn with_shared_budgets(mut self, budgets: SharedBudgets) -> Connector {
        self.budgets = Some(budgets);
        self
    }

    /// Caps one 429 wait at `cap`; a partner asking for longer pauses the run (a quota).
    pub fn with_max_wait_cap(mut self, cap: Option<std::time::Duration>) -> Connector {
        self.max_wait_cap = cap;
        self
    }

    /// Compiles the folder's outbound specs that `mapping: true` writes use; other specs are
    /// mapping's business and stay uncompiled (jq compiles cost an idle connector memory).
    pub fn with_outbound_mappings(mut self, mappings: &[(String, String)]) -> Result<Self, Error> {
        let mapped: HashSet<&str> = self
            .manifest
            .writes
            .iter()
            .filter(|(_, write)| {
                [&write.create, &write.update]
                    .into_iter()
                    .flatten()
                    .any(|operation| operation.mapping)
            })
            .map(|(entity, _)| entity.as_str())
            .collect();
        for (name, yaml) in mappings {
            if !name.ends_with(".outbound.yaml") {
                continue;
            }
            let spec = CompiledSpec::compile(name, yaml).map_err(|problems| {
                let text: Vec<String> = problems.iter().map(|p| p.message.clone()).collect();
                Error::Startup(format!("{name}: {}", text.join("; ")))
            })?;
            let entity = spec.entity().as_str();
            if spec.direction() == Direction::Outbound && mapped.contains(entity) {
                self.outbound.insert(entity.to_owned(), Arc::new(spec));
            }
        }
        if let Some(missing) = mapped.iter().find(|e| !self.outbound.contains_key(**e)) {
            return Err(Error::Startup(format!(
                "write {missing} takes its body from mapping, but there is no outbound spec for it"
            )));
        }
        Ok(self)
    }

    /// The body of a `mapping: true` write: the caller's mapping when it sent one (it applied
    /// the tenant's overrides), else the connector's own copy of the outbound spec.
    fn mapped_body(&self, params: &WriteParams) -> Result<Value, Error> {
        match &params.mapped {
            Some(MappedBody::Payload(json)) => serde_json::from_str(json)
                .map_err(|e| Error::InvalidWrite(format!("mapped_body_json: {e}"))),
            Some(MappedBody::Refused(reason)) => Err(Error::InvalidWrite(reason.clone())),
            None => {
                let spec = self.outbound.get(&params.entity).ok_or_else(|| {
                    Error::InvalidWrite(format!(
                        "{} has no outbound mapping spec for {}",
                        self.manifest.name, params.entity
                    ))
                })?;
                Ok(spec
                    .transform_outbound(&params.record_json, &params.external_id)
                    .map_err(|error| Error::InvalidWrite(error.to_string()))?
                    .payload)
            }
        }
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Opens a fresh session and fetches the check request (or the first stream's first page).
    /// Settings errors fail the call; what the partner or the credential says is `ok: false`.
    pub async fn check(
        &self,
        tenant: &str,
        connection: &ConnectionRef,
    ) -> Result<CheckResponse, Error> {
        let settings = self.settings(connection).await?;
        let key = key(tenant, connection);
        self.forget(&key);
        let outcome = async {
            let check = self.manifest.check.clone();
            let (path, query) = match &check {
                Some(check) => (check.path.clone(), check.query.clone()),
                None => {
                    let stream = self.manifest.streams.values().next().ok_or_else(|| {
                        Error::Unsupported("a manifest without streams".to_owned())
                    })?;
                    (stream.path.clone(), stream.query.clone())
                }
            };
            let scope = json!({ "settings": &settings.values });
            let path = template::render(&path, &scope).map_err(Error::InvalidSettings)?;
            let query = query
                .iter()
                .map(|(k, v)| {
                    Ok((
                        k.clone(),
                        template::render(v, &scope).map_err(Error::InvalidSettings)?,
                    ))
                })
                .collect::<Result<Vec<_>, Error>>()?;
            let format = match &check {
                Some(check) if check.xml.is_some() => Format::Xml,
                _ => self.manifest.format,
            };
            let options = SendOptions {
                format,
                ..SendOptions::default()
            };
            let mut waits = 0;
            let answer = self
                .fetch_as(&key, &settings, "", &mut waits, options, |session| {
                    let mut request = Request {
                        method: check
                            .as_ref()
                            .map_or(crate::manifest::Method::Get, |c| c.method),
                        url: join(&session.base_url, &path)?,
                        headers: Vec::new(),
                        query: query.clone(),
                        body: Body::None,
                    };
                    if let Some(check) = &check {
                        let scope = json!({
                            "settings": &settings.values,
                            "auth": &session.body_values,
                        });
                        check_body(check, &scope, &mut request)?;
                    }
                    Ok(request)
                })
                .await?;
            let errors = check.as_ref().and_then(|check| check.errors.as_ref());
            match documents::answered_error(errors, &answer.body) {
                Some(error) => Err(error),
                None => Ok(()),
            }
        }
        .await;
        match outcome {
            Ok(()) => Ok(CheckResponse {
                ok: true,
                reason: String::new(),
            }),
            Err(error) if error.kind() == ErrorKind::InvalidArgument => Err(error),
            Err(error) => Ok(CheckResponse {
                ok: false,
                reason: error.to_string(),
            }),
        }
    }

    pub fn discover(&self) -> DiscoverResponse {
        DiscoverResponse {
            streams: self
                .manifest
                .streams
                .iter()
                .map(|(name, stream)| DiscoveredStream {
                    name: name.clone(),
                    entity: stream.entity.clone(),
                    cursor_field: stream
                        .incremental
                        .as_ref()
                        .map(|incremental| incremental.field.clone())
                        .unwrap_or_default(),
                })
                .collect(),
        }
    }

    /// Validates a read before any page is fetched, so bad input fails the call itself.
    pub async fn prepare(&self, params: &ReadParams) -> Result<Settings, Error> {
        self.stream(&params.stream)?;
        Checkpoint::parse(&params.checkpoint)?;
        self.settings(&params.connection).await
    }

    /// Pages through a stream, sending each page (or the error that ends the read) to `pages`.
    pub async fn read(
        &self,
        params: ReadParams,
        settings: Settings,
        pages: mpsc::Sender<Result<ReadResponse, Error>>,
    ) {
        let calls = PartnerCalls::default();
        let read = self.read_pages(&params, &settings, &pages, &calls);
        if let Err(error) = calls.scope(read).await {
            tracing::info!(error = %error, stream = %params.stream, "read failed");
            // The receiver may be gone already; then nobody is waiting for the error.
            let _ = pages.send(Err(error)).await;
        }
    }

    /// Reads a whole stream into memory: for tooling and tests.
    pub async fn read_all(&self, params: ReadParams) -> Result<Vec<ReadResponse>, Error> {
        let settings = self.prepare(&params).await?;
        let (sender, mut receiver) = mpsc::channel(4);
        let reading = self.read(params, settings, sender);
        let collecting = async {
            let mut pages = Vec::new();
            while let Some(page) = receiver.recv().await {
                pages.push(page?);
            }
            Ok(pages)
        };
        let ((), pages) = tokio::join!(reading, collecting);
        pages
    }

    async fn read_pages(
        &self,
        params: &ReadParams,
        settings: &Settings,
        pages: &mpsc::Sender<Result<ReadResponse, Error>>,
        calls: &PartnerCalls,
    ) -> Result<(), Error> {
        let stream = self.stream(&params.stream)?;
        let format = stream
            .incremental
            .as_ref()
            .map(|incremental| {
                CursorFormat::parse(&incremental.format, incremental.timezone.as_deref())
                    .map_err(Error::Unsupported)
            })
            .transpose()?;
        let lookback = stream
            .incremental
            .as_ref()
            .map_or(0, |incremental| incremental.lookback_seconds as i64 * 1000);
        let mut checkpoint = Checkpoint::parse(&params.checkpoint)?;
        let keyset = stream
            .incremental
            .as_ref()
            .is_some_and(|incremental| incremental.keyset);
        // A first read's bound, for partners whose filter is mandatory.
        let initial = match (&format, &stream.incremental) {
            (Some(format), Some(incremental)) => {
                incremental.initial.as_ref().and_then(|v| format.read(v))
            }
            _ => None,
        };
        let started_since = checkpoint.since;
        let page_size = stream.pagination.page_size().map(|size| {
            let wanted = if params.page_size == 0 {
                size.value
            } else {
                params.page_size
            };
            wanted.min(size.max.unwrap_or(u32::MAX)).max(1)
        });
        let key = key(&params.tenant, &params.connection);
        let scope = json!({ "settings": &settings.values });
        let path = template::render(&stream.path, &scope).map_err(Error::InvalidSettings)?;
        let stream_format = stream.format.unwrap_or(self.manifest.format);
        let mut seen_positions = HashSet::new();
        loop {
            if !seen_positions.insert(checkpoint.page.clone()) {
                return Err(Error::PartnerResponse(
                    "the partner's paginator repeated a page".to_owned(),
                ));
            }
            let bound = match &checkpoint.page {
                PagePosition::Keyset { at, .. } => Some(*at),
                _ => checkpoint.since.or(initial),
            };
            let mut waits = 0;
            let response = self
                .fetch_as(
                    &key,
                    settings,
                    &params.run_id,
                    &mut waits,
                    SendOptions {
                        format: stream_format,
                        ..SendOptions::default()
                    },
                    |session| {
                        self.page_request(
                            stream,
                            session,
                            &path,
                            &scope,
                            &checkpoint.page,
                            bound.zip(format.as_ref()),
                            page_size,
                        )
                    },
                )
                .await?;
            let items = match stream_records(stream, stream_format, &response.body) {
                Some(items) => items,
                None => {
                    return Err(Error::PartnerResponse(format!(
                        "the page has no record array at {:?}",
                        stream.records
                    )));
                }
            };
            let mut page = ReadResponse {
                rate_limited_waits: waits,
                ..ReadResponse::default()
            };
            // Paging counts the partner's rows; the hook's refusals are quarantined.
            let reshaped = self.reshape(stream, &items, &mut page.rejected);
            let records: Vec<&Value> = match &reshaped {
                Some(reshaped) => reshaped.iter().collect(),
                None => items.clone(),
            };
            let mut tracker = keyset::Tracker::new(&checkpoint.page);
            for item in records.iter().copied() {
                let cursor = match (&format, &stream.incremental) {
                    (Some(format), Some(incremental)) => {
                        item.get(&incremental.field).and_then(|v| format.read(v))
                    }
                    _ => None,
                };
                let id = record_id(item, &stream.primary_key);
                if keyset && keyset::already_read(&checkpoint.page, cursor, id.as_deref()) {
                    continue;
                }
                if let Some(value) = cursor {
                    checkpoint.see(value);
                }
                tracker.see(cursor, id.as_deref());
                match accept(item, &stream.primary_key) {
                    Ok(record) => page.records.push(record),
                    Err(rejected) => page.rejected.push(rejected),
                }
            }
            let next = if keyset {
                let short = page_size.is_some_and(|size| items.len() < size as usize);
                match tracker.position() {
                    _ if short => None,
                    Some(position) => Some(position),
                    None => {
                        return Err(Error::PartnerResponse(format!(
                            "keyset paging needs each record's {}, and a full page had none",
                            stream.incremental.as_ref().map_or("", |i| i.field.as_str())
                        )));
                    }
                }
            } else {
                let read = PageRead {
                    position: &checkpoint.page,
                    body: &response.body,
                    rows: items.len(),
                    page_size,
                };
                match self.hooked_next_page(stream, &read) {
                    Some(next) => next?,
                    None => {
                        next_position(stream, &checkpoint.page, &response, items.len(), page_size)
                    }
                }
            };
            let done = next.is_none() || items.is_empty();
            if done {
                page.deleted = self
                    .read_deleted(
                        stream,
                        &key,
                        settings,
                        &params.run_id,
                        started_since,
                        format.as_ref(),
                    )
                    .await?;
            }
            checkpoint = match next {
                Some(position) if !done => Checkpoint {
                    page: position,
                    ..checkpoint
                },
                _ => checkpoint.finished(lookback),
            };
            page.checkpoint = checkpoint.to_json();
            page.partner_requests = Some(calls.take());
            tracing::debug!(
                stream = %params.stream,
                records = page.records.len(),
                rejected = page.rejected.len(),
                "read a page"
            );
            if pages.send(Ok(page)).await.is_err() || done {
                return Ok(());
            }
        }
    }

    #[allow(clippy::too_many_arguments)] // one page's inputs, all distinct
    fn page_request(
        &self,
        stream: &Stream,
        session: &Session,
        path: &str,
        scope: &Value,
        position: &PagePosition,
        bound: Option<(i64, &CursorFormat)>,
        page_size: Option<u32>,
    ) -> Result<Request, Error> {
        let get = |url, query| Request {
            method: crate::manifest::Method::Get,
            url,
            headers: Vec::new(),
            query,
            body: Body::None,
        };
        if let PagePosition::Url(next) = position {
            // The partner's own next URL carries every parameter; it must stay on the
            // partner's origin, since the session's credentials go with it.
            let url = reqwest::Url::parse(next)
                .map_err(|e| Error::PartnerResponse(format!("next page url: {e}")))?;
            if url.origin() != session.base_url.origin() {
                return Err(Error::TargetNotAllowed {
                    url: next.clone(),
                    reason: "a next-page URL must stay on the partner's base URL".to_owned(),
                });
            }
            return Ok(get(url, Vec::new()));
        }
        let mut query = stream
            .query
            .iter()
            .map(|(k, v)| {
                Ok((
                    k.clone(),
                    template::render(v, scope).map_err(Error::InvalidSettings)?,
                ))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        if let (Some(incremental), Some((since, format))) = (&stream.incremental, bound) {
            let value = template::render(
                &incremental.value,
                &json!({ "cursor": format.write(since) }),
            )
            .map_err(Error::InvalidSettings)?;
            query.push((incremental.param.clone(), value));
        }
        if let (Some(size), Some(page_size)) = (stream.pagination.page_size(), page_size) {
            query.push((size.param.clone(), page_size.to_string()));
        }
        match (&stream.pagination, position) {
            (Pagination::Cursor { param, .. }, PagePosition::Token(token)) => {
                query.push((param.clone(), token.clone()));
            }
            (Pagination::Offset { param, .. }, position)
            | (Pagination::StartCount { start: param, .. }, position) => {
                let offset = match position {
                    PagePosition::Offset(offset) => *offset,
                    PagePosition::Keyset { .. } => {
                        keyset::offset(position, page_size.unwrap_or(DEFAULT_PAGE_SIZE))
                    }
                    _ => 0,
                };
                query.push((param.clone(), offset.to_string()));
            }
            (Pagination::PageNumber { param, first, .. }, position) => {
                let page = match position {
                    PagePosition::Offset(page) => *page,
                    _ => *first,
                };
                query.push((param.clone(), page.to_string()));
            }
            _ => {}
        }
        Ok(get(join(&session.base_url, path)?, query))
    }

    /// Creates or updates one record at the partner from its canonical body.
    ///
    /// The runtime remembers nothing about earlier writes (a memory would vanish with the
    /// process); the caller's durable outbox makes a retried write happen once. What the runtime
    /// does is never repeat a request the partner might already have acted on when a repeat
    /// could create a second record: see [`WriteParams::earlier_attempt_unconfirmed`].
    pub async fn write(&self, params: WriteParams) -> Result<WriteOutcome, Error> {
        let write = self.manifest.writes.get(&params.entity).ok_or_else(|| {
            Error::InvalidWrite(format!(
                "{} does not write {}",
                self.manifest.name, params.entity
            ))
        })?;
        let is_create = params.external_id.is_empty();
        let (operation, verb) = if is_create {
            (write.create.as_ref(), "create")
        } else {
            (write.update.as_ref(), "update")
        };
        let operation = operation.ok_or_else(|| {
            Error::InvalidWrite(format!(
                "{} cannot {verb} {}",
                self.manifest.name, params.entity
            ))
        })?;
        // An update sets values, so sending it twice leaves the same record; a create without a
        // key the partner deduplicates on would make a second one.
        let sends_key = write.idempotency_header.is_some() && !params.idempotency_key.is_empty();
        let repeatable = !is_create || sends_key;
        if params.earlier_attempt_unconfirmed && !repeatable {
            return Err(Error::WriteOutcomeUnknown(format!(
                "an earlier attempt to {verb} this {} may have reached {}, which takes no \
                 idempotency key; not sending it again",
                params.entity, self.manifest.name
            )));
        }
        let record: Value = serde_json::from_str(&params.record_json)
            .map_err(|e| Error::InvalidWrite(format!("record_json: {e}")))?;
        let settings = self.settings(&params.connection).await?;
        let scope = json!({
            "settings": &settings.values,
            "record": record,
            "external_id": params.external_id,
        });
        let path = template::render(&operation.path, &scope).map_err(Error::InvalidWrite)?;
        let mut headers = operation
            .headers
            .iter()
            .map(|(k, v)| {
                Ok((
                    k.clone(),
                    template::render(v, &scope).map_err(Error::InvalidWrite)?,
                ))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        if let (Some(header), true) = (&write.idempotency_header, sends_key) {
            headers.push((header.clone(), params.idempotency_key.clone()));
        }
        let body = if operation.mapping {
            self.mapped_body(&params)?
        } else {
            template::render_json(&operation.body, &scope).unwrap_or(json!({}))
        };
        let format = operation.format.unwrap_or(self.manifest.format);
        if !is_create && body.as_object().is_some_and(serde_json::Map::is_empty) {
            return Err(Error::InvalidWrite(format!(
                "nothing to write: the manifest's {} update carries none of the record's fields",
                params.entity
            )));
        }
        let body = match format {
            Format::Xml => {
                // A Content-Type the manifest gives (SOAP's text/xml) wins over the default.
                let given = headers
                    .iter()
                    .position(|(name, _)| name.eq_ignore_ascii_case("content-type"));
                let content_type = match given {
                    Some(index) => headers.remove(index).1,
                    None => crate::http::media_type(Format::Xml).to_owned(),
                };
                let text = crate::formats::json_to_xml(&body).map_err(Error::InvalidWrite)?;
                Body::Text { content_type, text }
            }
            _ => Body::Json(body),
        };
        let key = key(&params.tenant, &params.connection);
        let mut waits = 0;
        let options = SendOptions {
            format,
            repeatable,
            ..SendOptions::default()
        };
        let response = self
            .fetch_as(&key, &settings, "", &mut waits, options, |session| {
                Ok(Request {
                    method: operation.method,
                    url: join(&session.base_url, &path)?,
                    headers: headers.clone(),
                    query: Vec::new(),
                    body: body.clone(),
                })
            })
            .await?;
        let external_id = match response.body.pointer(&operation.id) {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            Some(Value::Number(id)) => id.to_string(),
            _ if !is_create => params.external_id.clone(),
            // Created, but we cannot say which record: only the caller's reconciliation can.
            _ => {
                return Err(Error::WriteOutcomeUnknown(format!(
                    "the partner accepted the create but its answer has no id at {}",
                    operation.id
                )));
            }
        };
        Ok(WriteOutcome {
            external_id,
            answer: response.body,
        })
    }

    fn stream(&self, name: &str) -> Result<&Stream, Error> {
        self.manifest
            .streams
            .get(name)
            .ok_or_else(|| Error::UnknownStream(name.to_owned()))
    }

    async fn settings(&self, connection: &ConnectionRef) -> Result<Settings, Error> {
        Settings::resolve(
            &self.manifest,
            &connection.settings_json,
            self.allow_private,
        )
        .await
    }

    /// One request with the connection's session. A 401 or an expired session opens a new
    /// session once; when the refused session presented a leased access token, the new lease
    /// names it so credentials refreshes it rather than serving it again.
    async fn fetch(
        &self,
        key: &Key,
        settings: &Settings,
        run_id: &str,
        waits: &mut u32,
        build: impl Fn(&Session) -> Result<Request, Error>,
    ) -> Result<Response, Error> {
        self.fetch_as(key, settings, run_id, waits, SendOptions::default(), build)
            .await
    }

    /// As [`Connector::fetch`], sent with `options`: the answer's format, and whether the
    /// request may (`repeatable`) or may not be sent again after an attempt whose outcome is
    /// unknown.
    async fn fetch_as(
        &self,
        key: &Key,
        settings: &Settings,
        run_id: &str,
        waits: &mut u32,
        options: SendOptions,
        build: impl Fn(&Session) -> Result<Request, Error>,
    ) -> Result<Response, Error> {
        let limiter = self.limiter(key);
        let mut fresh = false;
        let mut refused: Option<String> = None;
        loop {
            let session = match self.cached(key, settings, run_id) {
                Some(session) => session,
                None => {
                    fresh = true;
                    let secret = self
                        .secrets
                        .lease(LeaseFor {
                            tenant: &key.tenant,
                            connection_id: &key.connection_id,
                            run_id,
                            refused_token: refused.as_deref(),
                        })
                        .await?;
                    let mut session = session::open(
                        &self.manifest,
                        &self.http,
                        &limiter,
                        settings,
                        &secret,
                        self.allow_private,
                    )
                    .await?;
                    // Signs the session's partner requests; the login or token requests
                    // `open` made are not signed. TODO(#3).
                    if let Some(hook) = self.sign_request_hook() {
                        let http = session.http.take().unwrap_or_else(|| self.http.clone());
                        session.http = Some(http.signed_by(SessionSigner { hook, secret }));
                    }
                    self.lock_sessions().insert(
                        key.clone(),
                        Cached {
                            settings: settings.clone(),
                            session: session.clone(),
                            run_id: run_id.to_owned(),
                        },
                    );
                    session
                }
            };
            let mut request = build(&session)?;
            request.headers.extend(session.headers.iter().cloned());
            request.query.extend(session.query.iter().cloned());
            // A 401 is a refusal before any work, so even a create may be sent again after it.
            let http = session.http.as_ref().unwrap_or(&self.http);
            match http.send_with(&limiter, &request, options, waits).await? {
                Answer::Ok(response) => return Ok(response),
                Answer::Unauthorized => {
                    self.forget(key);
                    // A stale cached session gets a new lease; a leased token the partner
                    // refuses is refreshed by credentials once. A fresh session refused after
                    // that means the credential itself is bad.
                    let presented = session.access_token_sha256.clone();
                    let worth_retry = !fresh || (presented.is_some() && refused.is_none());
                    if !worth_retry {
                        return Err(Error::CredentialsRejected(
                            "the partner refused a session it had just accepted".to_owned(),
                        ));
                    }
                    tracing::info!(connection_id = %key.connection_id, "the partner refused the session, opening a new one");
                    refused = presented;
                }
            }
        }
    }

    fn cached(&self, key: &Key, settings: &Settings, run_id: &str) -> Option<Session> {
        self.lock_sessions()
            .get(key)
            // Changed settings point elsewhere: the old session does not apply.
            .filter(|cached| {
                cached.settings == *settings && cached.run_id == run_id && cached.session.is_live()
            })
            .map(|cached| cached.session.clone())
    }

    fn forget(&self, key: &Key) {
        self.lock_sessions().remove(key);
    }

    fn limiter(&self, key: &Key) -> Arc<Limiter> {
        let mut limiters = self.limiters.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(limiters.entry(key.clone()).or_insert_with(|| {
            let limiter = Limiter::new(self.manifest.rate_limit.as_ref())
                .with_max_wait_cap(self.max_wait_cap);
            Arc::new(match &self.budgets {
                Some(budgets) if self.manifest.rate_limit.is_some() => {
                    limiter.shared(budgets.account(&key.tenant, &key.connection_id))
                }
                _ => limiter,
            })
        }))
    }

    fn lock_sessions(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Cached>> {
        // Plain data; a panic elsewhere cannot leave it half-written.
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn key(tenant: &str, connection: &ConnectionRef) -> Key {
    Key {
        tenant: tenant.to_owned(),
        connection_id: connection.connection_id.clone(),
    }
}

fn join(base: &reqwest::Url, path: &str) -> Result<reqwest::Url, Error> {
    // `base` has no trailing slash; paths start with one and are appended to its path.
    let mut url = base.clone();
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let joined = format!(
        "{}/{}",
        base.path().trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    url.set_path(&joined);
    if !query.is_empty() {
        url.set_query(Some(query));
    }
    Ok(url)
}

fn stream_records<'a>(stream: &Stream, format: Format, body: &'a Value) -> Option<Vec<&'a Value>> {
    let found = if stream.records.is_empty() {
        Some(body)
    } else {
        body.pointer(&stream.records)
    };
    match (found, format) {
        (Some(Value::Array(items)), _) => Some(items.iter().collect()),
        // XML cannot tell a list of one from one element, nor write an empty list at all.
        (Some(one @ Value::Object(_)), Format::Xml) => Some(vec![one]),
        (Some(Value::String(empty)), Format::Xml) if empty.is_empty() => Some(Vec::new()),
        (None, Format::Xml) => {
            let (parent, _) = stream.records.rsplit_once('/')?;
            let parent = if parent.is_empty() {
                Some(body)
            } else {
                body.pointer(parent)
            };
            parent
                .filter(|parent| parent.is_object())
                .map(|_| Vec::new())
        }
        _ => None,
    }
}

/// Where the page after this one starts; `None` when this was the last.
fn next_position(
    stream: &Stream,
    current: &PagePosition,
    response: &Response,
    count: usize,
    page_size: Option<u32>,
) -> Option<PagePosition> {
    let short = page_size.is_some_and(|size| count < size as usize);
    match &stream.pagination {
        Pagination::None => None,
        Pagination::LinkHeader { .. } => response
            .link
            .as_deref()
            .and_then(next_link)
            .map(PagePosition::Url),
        Pagination::NextUrl { next, .. } => match response.body.pointer(next) {
            Some(Value::String(url)) if !url.is_empty() => Some(PagePosition::Url(url.clone())),
            _ => None,
        },
        Pagination::Cursor { next, .. } => match response.body.pointer(next) {
            Some(Value::String(token)) if !token.is_empty() => {
                Some(PagePosition::Token(token.clone()))
            }
            Some(Value::Number(token)) => Some(PagePosition::Token(token.to_string())),
            _ => None,
        },
        Pagination::Offset { .. } | Pagination::StartCount { .. } => {
            let offset = match current {
                PagePosition::Offset(offset) => *offset,
                _ => 0,
            };
            (!short).then_some(PagePosition::Offset(offset + count as u64))
        }
        Pagination::PageNumber { first, .. } => {
            let page = match current {
                PagePosition::Offset(page) => *page,
                _ => *first,
            };
            (!short).then_some(PagePosition::Offset(page + 1))
        }
    }
}

fn primary_key_value<'a>(item: &'a Value, primary_key: &str) -> Option<&'a Value> {
    if primary_key.starts_with('/') {
        item.pointer(primary_key)
    } else {
        item.get(primary_key)
    }
}

/// The primary key as text, when it is usable.
fn record_id(item: &Value, primary_key: &str) -> Option<String> {
    match primary_key_value(item, primary_key)? {
        Value::Number(number) if number.is_i64() || number.is_u64() => Some(number.to_string()),
        Value::String(text) if !text.trim().is_empty() => Some(text.clone()),
        _ => None,
    }
}

/// A record must be an object with a usable primary key; anything else is rejected with its
/// reason. Other odd fields pass through for mapping to judge.
fn accept(item: &Value, primary_key: &str) -> Result<RawRecord, RejectedRecord> {
    let payload_json = item.to_string();
    let reject = |reason: String| RejectedRecord {
        payload_json: payload_json.clone(),
        reason,
    };
    if !item.is_object() {
        return Err(reject("record is not a JSON object".to_owned()));
    }
    let external_id = match primary_key_value(item, primary_key) {
        None | Some(Value::Null) => return Err(reject(format!("record has no {primary_key}"))),
        Some(Value::Number(number)) if number.is_i64() || number.is_u64() => number.to_string(),
        Some(Value::String(text)) if !text.trim().is_empty() => text.clone(),
        Some(_) => {
            return Err(reject(format!(
                "record {primary_key} is not an integer or a non-empty string"
            )));
        }
    };
    Ok(RawRecord {
        external_id,
        payload_json,
    })
}

/// The headers and body of a `check` request.
fn check_body(
    check: &crate::manifest::CheckRequest,
    scope: &Value,
    request: &mut Request,
) -> Result<(), Error> {
    let render = |text: &str| template::render(text, scope).map_err(Error::InvalidSettings);
    for (name, value) in &check.headers {
        request.headers.push((name.clone(), render(value)?));
    }
    let rendered = |body: &Value| {
        template::render_json(body, scope)
            .ok_or_else(|| Error::InvalidSettings("the check body renders to nothing".into()))
    };
    if let Some(json) = &check.json {
        request.body = Body::Json(rendered(json)?);
    } else if let Some(xml) = &check.xml {
        let text = crate::formats::json_to_xml(&rendered(xml)?).map_err(Error::InvalidSettings)?;
        let given = request
            .headers
            .iter()
            .position(|(name, _)| name.eq_ignore_ascii_case("content-type"));
        let content_type = match given {
            Some(index) => request.headers.remove(index).1,
            None => "text/xml; charset=utf-8".to_owned(),
        };
        request.body = Body::Text { content_type, text };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_without_usable_keys_are_rejected_with_a_reason() {
        assert_eq!(accept(&json!({"id": 12}), "id").unwrap().external_id, "12");
        assert_eq!(
            accept(&json!({"a": {"b": "x"}}), "/a/b")
                .unwrap()
                .external_id,
            "x"
        );
        assert_eq!(
            accept(&json!({"n": 1}), "id").unwrap_err().reason,
            "record has no id"
        );
        assert_eq!(
            accept(&json!([1]), "id").unwrap_err().reason,
            "record is not a JSON object"
        );
        assert!(accept(&json!({"id": 1.5}), "id").is_err());
    }

    #[test]
    fn paths_join_under_the_base_path() {
        let base = reqwest::Url::parse("https://h.example/rest/corp").unwrap();
        assert_eq!(
            join(&base, "/v1/x?a=1").unwrap().as_str(),
            "https://h.example/rest/corp/v1/x?a=1"
        );
    }
}
