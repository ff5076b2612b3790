//! What the CV parser sandboxes (Textkernel, RChilli, Daxtra) share: reading a plain-text
//! resume the way a parser would, the faults every parser sandbox can arm, and its counters.
//!
//! A resume is read as its first line for the name, the first word with an `@` for the email,
//! and a line `Skills: a, b` for the skills; a document that is not UTF-8 text or has no
//! two-word first line cannot be read (each partner says so in its own way).

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// What a sandbox "parsed" from a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub first: String,
    pub last: String,
    pub email: String,
    pub skills: Vec<String>,
}

/// Reads a plain-text resume; `None` when the partner would fail to.
pub fn read(content: &[u8]) -> Option<Reading> {
    let text = std::str::from_utf8(content).ok()?;
    let mut lines = text.lines().map(str::trim).filter(|line| !line.is_empty());
    let (first, last) = lines.next()?.split_once(' ')?;
    let email = text
        .split_whitespace()
        .find(|word| word.contains('@'))
        .map(|word| word.trim_matches(|c: char| !c.is_alphanumeric() && c != '@' && c != '.'))
        .unwrap_or_default()
        .to_owned();
    let skills = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("Skills:"))
        .map(|list| {
            list.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Some(Reading {
        first: first.to_owned(),
        last: last.trim().to_owned(),
        email,
        skills,
    })
}

/// Faults armed through `POST /_sandbox/faults`; fields left out keep their state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Faults {
    #[serde(default)]
    pub rate_limit_burst: u32,
    #[serde(default)]
    pub retry_after_seconds: u64,
    #[serde(default)]
    pub server_error_burst: u32,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub requests: u64,
    /// Documents parsed (and billed by the partner).
    pub parses: u64,
    pub unreadable: u64,
    pub unauthorized: u64,
    pub rate_limited: u64,
    pub server_errors: u64,
}

/// A parser sandbox's mutable state.
#[derive(Debug, Default)]
pub struct Counters {
    inner: Mutex<(Faults, Stats)>,
}

/// What the gate decided about one request, before the partner-specific part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Pass,
    Unauthorized,
    /// Answer 429 with this Retry-After.
    RateLimited(u64),
    ServerError,
}

impl Counters {
    fn with<T>(&self, f: impl FnOnce(&mut Faults, &mut Stats) -> T) -> T {
        // Plain counters: a panic while holding the lock leaves nothing worth dying for.
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (faults, stats) = &mut *guard;
        f(faults, stats)
    }

    /// Counts the request and applies, in order: the credential check, an armed 429, an
    /// armed 500.
    pub fn admit(&self, authorized: bool) -> Gate {
        self.with(|faults, stats| {
            stats.requests += 1;
            if !authorized {
                stats.unauthorized += 1;
                return Gate::Unauthorized;
            }
            if faults.rate_limit_burst > 0 {
                faults.rate_limit_burst -= 1;
                stats.rate_limited += 1;
                return Gate::RateLimited(faults.retry_after_seconds);
            }
            if faults.server_error_burst > 0 {
                faults.server_error_burst -= 1;
                stats.server_errors += 1;
                return Gate::ServerError;
            }
            Gate::Pass
        })
    }

    pub fn parsed(&self, readable: bool) {
        self.with(|_, stats| {
            if readable {
                stats.parses += 1;
            } else {
                stats.unreadable += 1;
            }
        });
    }

    pub fn arm(&self, armed: Faults) -> Faults {
        self.with(|faults, _| {
            if armed.rate_limit_burst > 0 {
                faults.rate_limit_burst = armed.rate_limit_burst;
                faults.retry_after_seconds = armed.retry_after_seconds.max(1);
            }
            if armed.server_error_burst > 0 {
                faults.server_error_burst = armed.server_error_burst;
            }
            faults.clone()
        })
    }

    pub fn stats(&self) -> Stats {
        self.with(|_, stats| stats.clone())
    }
}

/// The admin routes every parser sandbox serves: `POST /_sandbox/faults`, `GET
/// /_sandbox/stats`, and `GET /_sandbox/records/{stream}` answering 404 (a parser keeps no
/// records to list).
pub fn admin_routes<S>(counters: fn(&S) -> &Counters) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    use axum::Json;
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use axum::routing::{get, post};

    axum::Router::new()
        .route(
            "/_sandbox/faults",
            post(
                move |State(state): State<S>, Json(armed): Json<Faults>| async move {
                    Json(counters(&state).arm(armed))
                },
            ),
        )
        .route(
            "/_sandbox/stats",
            get(move |State(state): State<S>| async move { Json(counters(&state).stats()) }),
        )
        .route(
            "/_sandbox/records/{stream}",
            get(|Path(stream): Path<String>| async move {
                let body = serde_json::json!({"error": format!("a parser lists no {stream}")});
                (StatusCode::NOT_FOUND, Json(body)).into_response()
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_resume_is_read_and_bytes_are_not() {
        let reading = read(b"Grace Hopper\ngrace@example.com\nSkills: COBOL, Compilers\n").unwrap();
        assert_eq!(
            (reading.first.as_str(), reading.last.as_str()),
            ("Grace", "Hopper")
        );
        assert_eq!(reading.email, "grace@example.com");
        assert_eq!(reading.skills, ["COBOL", "Compilers"]);
        assert_eq!(read(&[0xff, 0xfe, 0x00, 0x01]), None);
        assert_eq!(read(b"Cher"), None);
    }

    #[test]
    fn the_gate_checks_the_key_first_then_armed_faults() {
        let counters = Counters::default();
        assert_eq!(counters.admit(false), Gate::Unauthorized);
        counters.arm(Faults {
            rate_limit_burst: 1,
            retry_after_seconds: 2,
            server_error_burst: 1,
        });
        assert_eq!(counters.admit(true), Gate::RateLimited(2));
        assert_eq!(counters.admit(true), Gate::ServerError);
        assert_eq!(counters.admit(true), Gate::Pass);
        assert_eq!(counters.stats().requests, 4);
    }
}
