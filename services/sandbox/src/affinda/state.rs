//! The Affinda sandbox's world: documents (parsed or still parsing), faults and counters.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use serde_json::{Value, json};

use super::AffindaOptions;
use super::seed::{self, Examples, Generator};

pub type Shared = Arc<Sandbox>;

pub struct Sandbox {
    pub options: AffindaOptions,
    pub examples: Examples,
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
    pub uploads: u64,
    pub polls: u64,
    pub rate_limited: u64,
    pub server_errors: u64,
    pub unauthorized: u64,
}

/// A document and how many more `GET`s it takes before its parse is ready.
pub struct Stored {
    pub document: Value,
    /// The parse, held back until `polls_left` reaches zero.
    pub pending: Option<Value>,
    pub polls_left: u32,
}

pub struct World {
    /// In upload order (the list's order).
    pub documents: Vec<Stored>,
    /// Served by the list while the `malformed` fault is on.
    pub malformed: Vec<Value>,
    pub faults: Faults,
    pub stats: Stats,
    pub generator: Generator,
    pub next_id: u64,
}

impl Sandbox {
    pub fn new(options: AffindaOptions, examples: &Examples) -> Sandbox {
        let mut generator = Generator::new(options.seed);
        let mut world = World {
            documents: Vec::new(),
            malformed: Vec::new(),
            faults: Faults::default(),
            stats: Stats::default(),
            generator: Generator::new(options.seed ^ 0x5eed),
            next_id: 0,
        };
        for (first, last, email, skills) in seed::people(examples, options.documents, options.seed)
        {
            let data = seed::resume_data(examples, &first, &last, &email, &skills, &mut generator);
            let file_name = format!("{}_{}.pdf", first.to_lowercase(), last.to_lowercase());
            let document = world.new_document(&file_name, Some(data));
            world.documents.push(Stored {
                document,
                pending: None,
                polls_left: 0,
            });
        }
        Sandbox {
            options,
            examples: examples.clone(),
            world: Mutex::new(world),
        }
    }

    pub fn world(&self) -> MutexGuard<'_, World> {
        // Plain data: a panic while holding the lock leaves nothing half-written worth dying for.
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl World {
    /// A document as Affinda answers it; `data` null while parsing.
    pub fn new_document(&mut self, file_name: &str, data: Option<Value>) -> Value {
        self.next_id += 1;
        // Affinda identifiers are short random-looking strings.
        let identifier = format!(
            "DOC{:05}{}",
            self.next_id,
            ["a", "k", "q", "z"][self.generator.next(4)]
        );
        let ready = data.is_some();
        json!({
            "meta": {
                "identifier": identifier,
                "fileName": file_name,
                "ready": ready,
                "readyDt": if ready { json!(now()) } else { Value::Null },
                "failed": false,
                "language": "en",
                "createdDt": now(),
                "documentType": "resume",
                "collection": {"identifier": super::DEMO_COLLECTION},
            },
            "data": data.unwrap_or(Value::Null),
        })
    }

    pub fn set_malformed(&mut self, on: bool) {
        self.faults.malformed = on;
        self.malformed.clear();
        if on {
            // One with no identifier (the connector refuses it), one whose name is a number
            // (the mapping refuses it).
            self.malformed = vec![
                json!({"meta": {"fileName": "lost.pdf", "ready": true}, "data": {}}),
                json!({"meta": {"identifier": "DOCBAD01", "fileName": "odd.pdf", "ready": true},
                       "data": {"name": {"first": 7, "last": 8}, "emails": ["odd@example.com"]}}),
            ];
        }
    }
}

pub fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}
