//! The manifest's types, read with serde from YAML. Every struct refuses unknown keys, so a
//! misspelt key is an error with its line rather than a silently ignored setting.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub manifest_version: u32,
    pub name: String,
    pub display_name: String,
    pub category: String,
    pub version: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub format: Format,
    /// Template over `settings`; every partner request is relative to it.
    pub base_url: String,
    #[serde(default)]
    pub settings: BTreeMap<String, Setting>,
    pub auth: Auth,
    /// Sent on every partner request (templates over `settings`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// The request `Check` makes; the first stream's first page when absent.
    #[serde(default)]
    pub check: Option<CheckRequest>,
    /// In the order written: the first stream is the one `Check` reads without a `check`.
    /// A parser that keeps no documents (Textkernel) has none.
    #[serde(default)]
    pub streams: IndexMap<String, Stream>,
    /// Keyed by canonical entity.
    #[serde(default)]
    pub writes: BTreeMap<String, Write>,
    #[serde(default)]
    pub webhooks: Option<Webhooks>,
    /// Document operations (CV parsing), keyed by document kind (`resume`).
    #[serde(default)]
    pub documents: IndexMap<String, Document>,
    /// Rust hooks for every request (see [`crate::hooks`]).
    #[serde(default)]
    pub hooks: RequestHooks,
}

/// The manifest's request hooks, by registered name.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RequestHooks {
    /// Adds headers to each partner request just before it leaves.
    #[serde(default)]
    pub sign_request: Option<String>,
}

/// A stream's record hooks, by registered name.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StreamHooks {
    /// Reshapes each raw record before its id and cursor are read.
    #[serde(default)]
    pub map_record: Option<String>,
    /// Computes where the next page starts from the page just read.
    #[serde(default)]
    pub next_page: Option<String>,
}

/// Upload a document, then poll until the partner's parse is ready.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// Canonical entities the parse maps to; each needs an inbound mapping spec.
    pub entities: Vec<String>,
    pub upload: Upload,
    /// The answers' format (an XML upload is answered in XML, a SOAP envelope); the
    /// manifest's `format` when absent.
    #[serde(default)]
    pub format: Option<Format>,
    /// Asking whether the parse is ready; without it the upload's answer is the parse.
    #[serde(default)]
    pub poll: Option<Poll>,
    /// JSON pointer to the parse in the last answer; the whole answer when empty.
    #[serde(default)]
    pub record: String,
    /// Largest document accepted, in bytes.
    #[serde(default = "ten_mebibytes")]
    pub max_bytes: usize,
    /// What the partner charges per parse; sync records it per tenant with every parse.
    #[serde(default)]
    pub cost: Option<Cost>,
}

/// A price per parsed document.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Cost {
    /// A decimal amount, written as text or a number (`"0.05"`, `0.05`).
    pub amount: Amount,
    /// ISO 4217 code (`USD`).
    pub currency: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Amount {
    Text(String),
    Number(f64),
}

impl Amount {
    pub fn text(&self) -> String {
        match self {
            Amount::Text(text) => text.trim().to_owned(),
            Amount::Number(number) => number.to_string(),
        }
    }
}

fn ten_mebibytes() -> usize {
    10 * 1024 * 1024
}

fn post() -> Method {
    Method::Post
}

/// The upload: a multipart form, a JSON body or an XML body (a SOAP envelope). Templates read
/// `settings`, `document` (`name`, `content_type`, `base64`, `date`: today, UTC, YYYY-MM-DD)
/// and `auth` (an `api_key` sent `in: body`, as `auth.<name>`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Upload {
    #[serde(default = "post")]
    pub method: Method,
    pub path: String,
    /// Extra request headers (SOAP's `SOAPAction`, the XML body's `Content-Type`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub multipart: Option<Multipart>,
    #[serde(default)]
    pub json: Option<Value>,
    /// JSON shaped as the XML reader reads (`{"soap:Envelope": {...}}`), written as XML.
    #[serde(default)]
    pub xml: Option<Value>,
    /// JSON pointer to the partner's document id in the answer. Empty for parsers that keep
    /// no document (Textkernel, RChilli, Daxtra): the id is then the SHA-256 hex of the
    /// content, and the parse carries it as `plugboard_document_id` for the mapping.
    #[serde(default)]
    pub id: String,
    /// How the partner says it could not read the document or refused the credential.
    #[serde(default)]
    pub errors: Option<UploadErrors>,
}

/// Partner answers that are failures of the document or of the credential, whatever their
/// HTTP status: by status, or by a code at a JSON pointer of the answer (a 2xx, a refusal's
/// body, or a SOAP fault's `faultcode`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UploadErrors {
    #[serde(default)]
    pub status: BTreeMap<u16, ErrorMeaning>,
    /// JSON pointer to the partner's error code in an answer body.
    #[serde(default)]
    pub pointer: Option<String>,
    /// JSON pointer to the partner's error message beside the code.
    #[serde(default)]
    pub message: Option<String>,
    /// Codes (at `pointer`, or a SOAP fault code without its prefix) and what they mean.
    #[serde(default)]
    pub codes: BTreeMap<String, ErrorMeaning>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorMeaning {
    /// The partner could not read the document: `DOCUMENT_NOT_PARSED`.
    Unreadable,
    /// The partner refused the credential: `CREDENTIALS_REJECTED`.
    Credentials,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Multipart {
    /// The part that carries the document, with its file name and media type.
    pub file: String,
    /// Text parts.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

fn one_second() -> u64 {
    1
}

fn a_minute() -> u64 {
    60
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Poll {
    /// Template over `settings` and `document_id`.
    pub path: String,
    /// JSON pointer to a boolean that is true once the parse is ready (also read on the
    /// upload's answer, which may be ready already).
    pub ready: String,
    /// JSON pointer to a boolean that is true when the partner could not parse the document.
    #[serde(default)]
    pub failed: Option<String>,
    #[serde(default = "one_second")]
    pub interval_seconds: u64,
    #[serde(default = "a_minute")]
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    Json,
    /// Read as JSON as `formats` describes; written from a JSON template the same shape.
    Xml,
    /// A flat file with a header row: read only (VMS exports).
    Csv,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Setting {
    #[serde(rename = "type", default)]
    pub kind: SettingType,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub default: Option<Value>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SettingType {
    #[default]
    String,
    /// An http(s) URL the runtime calls: checked by the target guard.
    Url,
    Integer,
    Boolean,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyLocation {
    #[default]
    Header,
    Query,
    /// Inside the request body, where document templates put it as `{{ auth.<name> }}`
    /// (RChilli's `userkey`, Daxtra's `account`).
    Body,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// `client_id:client_secret` as HTTP Basic (RFC 6749's default).
    #[default]
    Basic,
    /// `client_id` and `client_secret` as form fields.
    Body,
}

fn key_template() -> String {
    "{{ secret.key }}".to_owned()
}

fn session_token_template() -> String {
    "{{ session.token }}".to_owned()
}

/// How requests are authenticated. Templates may read `settings` and `secret` (the leased
/// credential: `key`, `username`, `password`, `client_id`, `client_secret`, `token_url`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    ApiKey {
        #[serde(rename = "in", default)]
        location: KeyLocation,
        name: String,
        #[serde(default = "key_template")]
        value: String,
    },
    Basic {
        username: String,
        #[serde(default)]
        password: String,
    },
    Bearer {
        #[serde(default = "key_template")]
        token: String,
    },
    Oauth2ClientCredentials {
        /// Template; the credential's `token_url` when absent.
        #[serde(default)]
        token_url: Option<String>,
        #[serde(default)]
        scopes: Vec<String>,
        #[serde(default)]
        client_auth: ClientAuth,
        /// Extra form fields of the token request (Beeline's `audience`).
        #[serde(default)]
        extra: BTreeMap<String, String>,
    },
    Oauth2AuthorizationCode {
        authorize_url: String,
        #[serde(default)]
        token_url: Option<String>,
        #[serde(default)]
        scopes: Vec<String>,
        #[serde(default)]
        client_auth: ClientAuth,
    },
    /// Login requests that trade the credential for a session token and, optionally, the
    /// base URL later requests go to: one `request`, or `steps` made in order (Bullhorn's
    /// authorize redirect, code exchange and REST login). The last answer holds the session.
    Login {
        #[serde(default)]
        request: Option<Box<RequestTemplate>>,
        #[serde(default)]
        steps: Vec<LoginStep>,
        /// JSON pointer to the session token in the last answer.
        token: String,
        /// JSON pointer to the base URL in the last answer.
        #[serde(default)]
        base_url: Option<String>,
        apply: Apply,
    },
    /// A client certificate, with another scheme on top (or none).
    Mtls {
        certificate: String,
        private_key: String,
    },
}

fn yes() -> bool {
    true
}

/// One request of a login sequence. Its templates read `settings`, `secret` and what earlier
/// steps captured, as `{{ steps.<step>.<capture> }}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LoginStep {
    pub name: String,
    pub request: RequestTemplate,
    #[serde(default)]
    pub capture: BTreeMap<String, Capture>,
    /// Whether a 5xx or transport failure is retried; `false` for single-use inputs such as
    /// an authorization code.
    #[serde(default = "yes")]
    pub retry: bool,
}

/// Where a login step's value comes from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Capture {
    /// A JSON pointer into the step's answer.
    Pointer(String),
    /// A query parameter of the redirect the step answers with (`Location`); an OAuth2
    /// `error` parameter there means the credential was refused.
    Redirect { redirect_param: String },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    #[default]
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RequestTemplate {
    #[serde(default)]
    pub method: Method,
    /// Template; relative to `base_url` unless absolute.
    pub url: String,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub form: BTreeMap<String, String>,
    #[serde(default)]
    pub json: Option<Value>,
}

/// Where the session token goes on later requests.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Apply {
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default = "session_token_template")]
    pub value: String,
}

fn default_window() -> u32 {
    1
}

fn default_retry_headers() -> Vec<String> {
    vec!["Retry-After".to_owned()]
}

fn default_max_wait() -> u64 {
    60
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests allowed per window, per connection.
    pub requests: u32,
    #[serde(default = "default_window")]
    pub per_seconds: u32,
    /// Requests in flight at once, per connection.
    #[serde(default)]
    pub concurrency: Option<u32>,
    /// Headers of a 429 that carry the wait: seconds, an HTTP date, or epoch seconds.
    #[serde(default = "default_retry_headers")]
    pub retry_after_headers: Vec<String>,
    /// Longest single 429 wait a read sits through. A partner asking for longer has a used-up
    /// quota: the request fails with `PARTNER_QUOTA_EXHAUSTED` and its reset time, and sync
    /// pauses the run until then.
    #[serde(default = "default_max_wait")]
    pub max_wait_seconds: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    pub path: String,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    #[serde(default)]
    pub method: Method,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A JSON or XML body (templates over `settings` and `auth`), for partners whose only
    /// cheap authenticated call is a POST (RChilli, SOAP).
    #[serde(default)]
    pub json: Option<Value>,
    #[serde(default)]
    pub xml: Option<Value>,
    /// Answers that mean the credential was refused although their status says otherwise.
    #[serde(default)]
    pub errors: Option<UploadErrors>,
}

fn default_primary_key() -> String {
    "id".to_owned()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Stream {
    /// Canonical entity the records map to.
    pub entity: String,
    /// Template over `settings`, relative to `base_url`.
    pub path: String,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// The answer's format; the manifest's `format` when absent.
    #[serde(default)]
    pub format: Option<Format>,
    /// JSON pointer to the record array; empty when the body is the array. In XML a pointer
    /// to one element is a page of one, and a missing last element a page of none.
    #[serde(default)]
    pub records: String,
    #[serde(default = "default_primary_key")]
    pub primary_key: String,
    #[serde(default)]
    pub pagination: Pagination,
    #[serde(default)]
    pub incremental: Option<Incremental>,
    #[serde(default)]
    pub deletes: Option<Deletes>,
    /// Rust hooks for this stream's records (see [`crate::hooks`]).
    #[serde(default)]
    pub hooks: StreamHooks,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PageSize {
    pub param: String,
    pub value: u32,
    #[serde(default)]
    pub max: Option<u32>,
}

fn offset_param() -> String {
    "offset".to_owned()
}

fn page_param() -> String {
    "page".to_owned()
}

fn start_param() -> String {
    "start".to_owned()
}

fn first_page() -> u64 {
    1
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pagination {
    /// One request returns everything.
    #[default]
    None,
    /// RFC 8288 `Link: <url>; rel="next"`.
    LinkHeader {
        #[serde(default)]
        page_size: Option<PageSize>,
    },
    /// The body carries the next page's absolute URL at a JSON pointer.
    NextUrl {
        next: String,
        #[serde(default)]
        page_size: Option<PageSize>,
    },
    /// The body carries an opaque token at `next`, sent back as `param`.
    Cursor {
        param: String,
        next: String,
        #[serde(default)]
        page_size: Option<PageSize>,
    },
    /// `param` counts records skipped; `page_size` is the limit.
    Offset {
        #[serde(default = "offset_param")]
        param: String,
        page_size: PageSize,
    },
    /// `param` counts pages from `first`.
    PageNumber {
        #[serde(default = "page_param")]
        param: String,
        #[serde(default = "first_page")]
        first: u64,
        page_size: PageSize,
    },
    /// Bullhorn's `start`/`count`: an offset under other names.
    StartCount {
        #[serde(default = "start_param")]
        start: String,
        page_size: PageSize,
    },
}

impl Pagination {
    pub fn page_size(&self) -> Option<&PageSize> {
        match self {
            Pagination::None => None,
            Pagination::LinkHeader { page_size }
            | Pagination::NextUrl { page_size, .. }
            | Pagination::Cursor { page_size, .. } => page_size.as_ref(),
            Pagination::Offset { page_size, .. }
            | Pagination::PageNumber { page_size, .. }
            | Pagination::StartCount { page_size, .. } => Some(page_size),
        }
    }
}

fn cursor_template() -> String {
    "{{ cursor }}".to_owned()
}

fn rfc3339() -> String {
    "rfc3339".to_owned()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Incremental {
    /// Query parameter that carries the lower bound.
    pub param: String,
    /// Its value, a template over `cursor` (`dateLastModified>={{ cursor }}`).
    #[serde(default = "cursor_template")]
    pub value: String,
    /// The record field the cursor follows.
    pub field: String,
    /// `rfc3339`, `epoch_millis`, `epoch_seconds`, or a chrono format such as `%Y-%m-%d %H:%M:%S`.
    #[serde(default = "rfc3339")]
    pub format: String,
    /// Zone of timestamps written without one: `UTC` or an offset such as `+02:00`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Each run starts this far before the newest value seen, for late-arriving changes.
    #[serde(default)]
    pub lookback_seconds: u64,
    /// The cursor of a first read, in the partner's format, for partners whose filter is
    /// mandatory (Bullhorn's `where`); without it a first read sends no filter.
    #[serde(default)]
    pub initial: Option<Value>,
    /// Keyset paging for offset-paged streams sorted by (`field`, primary key): each page
    /// starts again at the newest cursor value read so far (inclusive) and skips the records
    /// already read at it, so a record changed mid-run cannot shift an unread one past the
    /// offset. The stream's `query` must sort that way.
    #[serde(default)]
    pub keyset: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Deletes {
    /// An endpoint listing deleted records (JobAdder's `GET /candidates/deleted`), read after
    /// every complete read of the stream; its entries become tombstones in sync.
    Endpoint {
        /// Template over `settings`, relative to `base_url`.
        path: String,
        /// JSON pointer to the array of deleted entries; empty when the body is the array.
        records: String,
        /// Field (or JSON pointer) of an entry's record id; the stream's primary key when absent.
        #[serde(default)]
        id: Option<String>,
        /// Field (or JSON pointer) of when the record was deleted.
        #[serde(default)]
        deleted_at: Option<String>,
        /// Query parameter for the lower bound, sent with the read's cursor in the stream's
        /// cursor format; none when the endpoint lists a fixed recent window.
        #[serde(default)]
        param: Option<String>,
    },
    /// A webhook event names the deleted record (see `webhooks.events.*.delete`).
    Event { event: String },
}

fn id_pointer() -> String {
    "/id".to_owned()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Write {
    #[serde(default)]
    pub create: Option<WriteOperation>,
    #[serde(default)]
    pub update: Option<WriteOperation>,
    /// Header carrying the caller's idempotency key, for partners that honour one.
    #[serde(default)]
    pub idempotency_header: Option<String>,
}

/// One write request. Templates read `settings`, `record` (the canonical record) and
/// `external_id` (updates).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WriteOperation {
    pub method: Method,
    pub path: String,
    /// The body's and answer's format (`json` or `xml`); the manifest's `format` when absent.
    #[serde(default)]
    pub format: Option<Format>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON template of the body; absent when `mapping` builds it.
    #[serde(default)]
    pub body: Value,
    /// The body is the connector's outbound mapping spec for the entity applied to the record
    /// (lookups and jq where the partner's codes or shapes differ from canonical ones).
    #[serde(default)]
    pub mapping: bool,
    /// JSON pointer to the partner's id in the response.
    #[serde(default = "id_pointer")]
    pub id: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Webhooks {
    /// Path under the gateway's webhook prefix.
    pub path: String,
    pub signature: Signature,
    /// JSON pointer to the array of events in a delivery that carries several (`""` when the
    /// body is the array itself). Each element is one event: `event_type`, `event_id`,
    /// `occurred_at` and the events' pointers are then read in the element, not the body.
    /// Absent: the body is one event.
    #[serde(default)]
    pub event_array: Option<String>,
    /// JSON pointer to the event type in the body (in each element, with `event_array`).
    pub event_type: String,
    /// JSON pointer to a delivery id, for duplicate detection; the signature when absent (with
    /// `event_array`, a digest of the element: the same element in another delivery is then
    /// the same event). With `event_array`, an element without it is refused on its own.
    #[serde(default)]
    pub event_id: Option<String>,
    /// JSON pointer to when the change happened (RFC 3339 text or epoch seconds), for events
    /// that do not name their own; sync ignores an event older than what it holds.
    #[serde(default)]
    pub occurred_at: Option<String>,
    pub events: BTreeMap<String, WebhookEvent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    HmacSha256,
    HmacSha1,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    #[default]
    Hex,
    Base64,
}

fn default_tolerance() -> u64 {
    300
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    pub algorithm: Algorithm,
    pub header: String,
    /// Text before the digest in the header (`sha256 `).
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub encoding: Encoding,
    /// Header with the signing time (epoch seconds); replays outside the tolerance fail.
    #[serde(default)]
    pub timestamp_header: Option<String>,
    #[serde(default = "default_tolerance")]
    pub tolerance_seconds: u64,
    /// What is signed, a template over `body` and `timestamp`; the raw body when absent.
    #[serde(default)]
    pub signed_payload: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEvent {
    pub entity: String,
    /// JSON pointer to the record's partner id in the body.
    pub id: String,
    /// Whether the event deletes the record.
    #[serde(default)]
    pub delete: bool,
    /// JSON pointer to when the change happened; the webhooks' `occurred_at` when absent.
    #[serde(default)]
    pub occurred_at: Option<String>,
}

impl Manifest {
    /// The credential kind credentials must hold: `api_key`, `basic` or `oauth2_client`.
    pub fn credential_kind(&self) -> &'static str {
        let templates: Vec<&str> = match &self.auth {
            Auth::Oauth2ClientCredentials { .. } | Auth::Oauth2AuthorizationCode { .. } => {
                return "oauth2_client";
            }
            Auth::ApiKey { value, .. } => vec![value],
            Auth::Bearer { token } => vec![token],
            Auth::Basic { username, password } => vec![username, password],
            Auth::Login {
                request,
                steps,
                apply,
                ..
            } => {
                let mut all: Vec<&str> = vec![&apply.value];
                let single = request.iter().map(|request| &**request);
                for request in single.chain(steps.iter().map(|step| &step.request)) {
                    all.extend(request.templates());
                }
                all
            }
            Auth::Mtls { .. } => return "client_certificate",
        };
        let uses = |field: &str| {
            templates.iter().any(|text| {
                crate::template::holes(text)
                    .iter()
                    .any(|hole| hole == &format!("secret.{field}"))
            })
        };
        if uses("client_id") || uses("client_secret") {
            "oauth2_client"
        } else if uses("username") || uses("password") {
            "basic"
        } else {
            "api_key"
        }
    }
}

impl RequestTemplate {
    /// Every template string of the request.
    pub fn templates(&self) -> Vec<&str> {
        let mut all: Vec<&str> = vec![&self.url];
        all.extend(self.query.values().map(String::as_str));
        all.extend(self.headers.values().map(String::as_str));
        all.extend(self.form.values().map(String::as_str));
        if let Some(json) = &self.json {
            all.extend(crate::template::json_strings(json));
        }
        all
    }
}

impl Manifest {
    /// Whether the auth is a login written as one `request`.
    pub fn auth_has_request(&self) -> bool {
        matches!(
            &self.auth,
            Auth::Login {
                request: Some(_),
                ..
            }
        )
    }
}

impl Auth {
    /// A login's steps, with a lone `request` as one step named `login`.
    pub fn login_steps(&self) -> Vec<LoginStep> {
        match self {
            Auth::Login { request, steps, .. } => request
                .iter()
                .map(|request| LoginStep {
                    name: "login".to_owned(),
                    request: (**request).clone(),
                    capture: BTreeMap::new(),
                    retry: true,
                })
                .chain(steps.iter().cloned())
                .collect(),
            _ => Vec::new(),
        }
    }
}
