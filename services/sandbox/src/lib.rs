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
//! - [`starter`]: the starter partner `plugboard connector new` copies as a new connector's
//!   sandbox (Bearer key, offset paging, `updated_since`, the admin contract);
//! - [`traces`]: the trace ids of recent requests, so tests can follow a trace to the partner;
//! - [`error`]: the crate's error type.
//!
//! # Limitations
//!
//! - Bullhorn, Greenhouse and Affinda; other partners follow the same `src/<partner>/` layout.
//! - State lives in memory and is lost when the process stops.
//! - The `where` and `query` languages cover the comparisons connectors send (`AND`-joined
//!   comparisons, `IN`, ranges), not Bullhorn's full grammar. TODO(#3): widen with new connectors.
//! - A Bullhorn query filters and sorts every record of its entity for each page, so a page of a
//!   100,000-record sandbox costs about a third of a CPU-second, and the sandbox is the largest
//!   consumer in the full-sync benchmark (`tests/benches/RESULTS.md`). TODO(#6): an index by the
//!   sort key.

pub mod affinda;
pub mod bullhorn;
pub mod error;
pub mod greenhouse;
pub mod mtls;
pub mod oauth;
pub mod starter;
pub mod traces;

pub use bullhorn::{SandboxOptions, router, serve};
pub use error::Error;
