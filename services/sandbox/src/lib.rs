//! Simulated partner APIs for Plugboard's dev mode and tests.
//!
//! A sandbox speaks one partner's real wire format, auth scheme, paging and rate limits, holds
//! state seeded deterministically from the public reference material in `shared/partners/`, and
//! can inject faults on demand through an admin API under `/_sandbox/`. Production never uses it.
//!
//! Modules:
//! - [`bullhorn`]: Bullhorn's REST API (OAuth2 authorize and token, REST login, `query` and
//!   `search` with `start`/`count` paging, 429 rate limiting) over JobOrder, Candidate,
//!   JobSubmission and Placement;
//! - [`affinda`]: Affinda's v3 document API (multipart upload, parse polled until ready,
//!   offset/limit listing), seeded from its OpenAPI spec;
//! - [`oauth`]: a generic, strict OAuth2 authorization server (PKCE codes, rotating refresh
//!   tokens that reject reuse, client credentials, token-call counters and faults);
//! - [`mtls`]: a partner behind mutual TLS (ADP-like workers), refusing clients without a
//!   certificate from its CA;
//! - [`greenhouse`]: Greenhouse Harvest (Basic auth, `Link` header paging, `updated_after`,
//!   candidate writes, signed webhooks), seeded from Greenhouse's published samples;
//! - [`textkernel`]: Textkernel Tx v10's resume parser (`Tx-AccountId`/`Tx-ServiceKey`, the
//!   `{Info, Value}` envelope), dressed in its published v9 sample's values;
//! - [`daxtra`]: Daxtra's SOAP `CVXtractorService` (`ProcessCV` with a base64 document and the
//!   account; HR-XML out; SOAP faults);
//! - [`rchilli`]: RChilli's `parseResumeBinary` (the user key in the JSON body, errors as
//!   `{error: {errorcode, errormsg}}`);
//! - [`parsers`]: what the CV parser sandboxes share (reading a text resume, faults, counters);
//! - [`hmacboard`]: HMACBoard, the example partner of connector hooks (not a real partner):
//!   the starter partner behind an HMAC-SHA256 signature over method, path, timestamp and body;
//! - [`starter`]: the starter partner `plugboard connector new` copies as a new connector's
//!   sandbox (Bearer key, offset paging, `updated_since`, the admin contract);
//! - [`vms`]: what the VMS sandboxes share (OAuth2 client-credentials tokens under each
//!   partner's rules, offset-paged JSON, CSV and XML downloads, the admin contract);
//! - [`fieldglass`]: SAP Fieldglass (Basic client auth to its token URL, `X-ApplicationKey`,
//!   `/api/vc/connector/{name}` JSON and CSV downloads, job seeker uploads);
//! - [`beeline`]: Beeline (client credentials with an `audience` per API product and region,
//!   resources under the client site id, page-numbered JSON, candidate submissions);
//! - [`magnit`]: Coupa Contingent Workforce / Magnit (client credentials at `/oauth2/token`
//!   with scopes, XML job requests, JSON candidates and workers, CSV exports of work
//!   confirmations and timesheets);
//! - [`traces`]: the trace ids of recent requests, so tests can follow a trace to the partner;
//! - [`error`]: the crate's error type.
//!
//! # Limitations
//!
//! - Bullhorn, Greenhouse, Affinda, the three VMSs and the three other CV parsers; other
//!   partners follow the same `src/<partner>/` layout. The VMS, RChilli and Daxtra sandboxes
//!   are built from documented facts, not specs.
//! - State lives in memory and is lost when the process stops.
//! - The VMS sandboxes (built from documented facts; no public specs exist) do not push
//!   webhooks (Fieldglass's real-time push to a customer endpoint is not simulated: TODO(#8)),
//!   keep timesheets as totals per pay code in their flat files (no daily entries for
//!   Fieldglass and Coupa), and are not served by `plugboard dev` or `plugboard serve`.
//! - The `where` and `query` languages cover the comparisons connectors send (`AND`-joined
//!   comparisons, `IN`, ranges), not Bullhorn's full grammar. TODO(#3): widen with new connectors.
//! - A Bullhorn query keeps its entity's records sorted per sort order until one changes, and
//!   finds numeric bounds on the first ascending sort key by binary search, so the connector's
//!   and dlt's pages cost their page; any other filter still walks every record (without
//!   sorting), and the first query after a change sorts the entity again. Records are held as
//!   `serde_json` values, about 4.5 KB each (490 MB at 100,000 candidates).

pub mod affinda;
pub mod beeline;
pub mod bullhorn;
pub mod daxtra;
pub mod error;
pub mod fieldglass;
pub mod greenhouse;
pub mod hmacboard;
pub mod magnit;
pub mod mtls;
pub mod oauth;
pub mod parsers;
pub mod rchilli;
pub mod starter;
pub mod textkernel;
pub mod traces;
pub mod vms;

pub use bullhorn::{SandboxOptions, router, serve};
pub use error::Error;
