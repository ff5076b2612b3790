//! A VMS sandbox's mutable world: records per stream, issued tokens, armed faults, counters.
//! Every API call passes [`Vms::admit`] first: bearer token (401), the partner's required
//! headers (403), an armed 429 burst (with `Retry-After`), an armed 500 burst.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;

use super::{Partner, error};

pub type Shared = Arc<Vms>;

pub struct Vms {
    pub partner: Partner,
    world: Mutex<World>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Faults {
    pub rate_limit_burst: u32,
    pub retry_after_seconds: u64,
    pub server_error_burst: u32,
    pub malformed: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub requests: u64,
    pub tokens_issued: u64,
    pub rate_limited: u64,
    pub server_errors: u64,
    pub unauthorized: u64,
    pub writes: u64,
}

pub struct World {
    /// Records by stream, each kept sorted by id.
    pub records: BTreeMap<String, Vec<Value>>,
    /// Records served beside the good ones while the malformed fault is on, by stream.
    pub malformed: BTreeMap<String, Vec<Value>>,
    pub tokens: HashSet<String>,
    pub faults: Faults,
    pub stats: Stats,
    /// Where the partner's next created id starts.
    pub next_id: u64,
}

impl Vms {
    pub fn new(partner: Partner, records: BTreeMap<String, Vec<Value>>) -> Vms {
        let mut records = records;
        for (stream, list) in &mut records {
            let id_field = partner.stream(stream).map_or("id", |spec| spec.id_field);
            list.sort_by_key(|record| id_text(&record[id_field]));
        }
        Vms {
            partner,
            world: Mutex::new(World {
                records,
                malformed: BTreeMap::new(),
                tokens: HashSet::new(),
                faults: Faults::default(),
                stats: Stats::default(),
                next_id: 9_000,
            }),
        }
    }

    pub fn world(&self) -> MutexGuard<'_, World> {
        // Plain data: a panic while holding the lock leaves nothing half-written worth dying for.
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Authentication, required headers and armed faults; the world, locked, when admitted.
    pub fn admit(&self, headers: &HeaderMap) -> Result<MutexGuard<'_, World>, Box<Response>> {
        let mut world = self.world();
        world.stats.requests += 1;
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        if !token.is_some_and(|token| world.tokens.contains(token)) {
            world.stats.unauthorized += 1;
            return Err(Box::new(error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the access token is missing, unknown or expired",
            )));
        }
        for (name, expected) in &self.partner.api_headers {
            let given = headers.get(name).and_then(|value| value.to_str().ok());
            if given != Some(expected.as_str()) {
                return Err(Box::new(error(
                    StatusCode::FORBIDDEN,
                    "invalid_request",
                    &format!("the {name} header is missing or wrong"),
                )));
            }
        }
        if world.faults.rate_limit_burst > 0 {
            world.faults.rate_limit_burst -= 1;
            world.stats.rate_limited += 1;
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests",
            );
            if let Ok(value) = HeaderValue::from_str(&world.faults.retry_after_seconds.to_string())
            {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return Err(Box::new(response));
        }
        if world.faults.server_error_burst > 0 {
            world.faults.server_error_burst -= 1;
            world.stats.server_errors += 1;
            return Err(Box::new(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal error",
            )));
        }
        Ok(world)
    }
}

impl World {
    /// Adds a record to `stream` (kept sorted by `id_field`) or replaces the one with its id.
    pub fn upsert(&mut self, stream: &str, id_field: &str, record: Value) {
        let list = self.records.entry(stream.to_owned()).or_default();
        let id = id_text(&record[id_field]);
        match list.iter_mut().find(|r| id_text(&r[id_field]) == id) {
            Some(existing) => *existing = record,
            None => {
                list.push(record);
                list.sort_by_key(|r| id_text(&r[id_field]));
            }
        }
    }

    /// A new partner id: `prefix` and a zero-padded counter, so ids sort as they are made.
    pub fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{:07}", self.next_id)
    }
}

/// An id as text (numbers without quotes); ids sort as text.
pub fn id_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}
