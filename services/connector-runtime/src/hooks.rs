//! Rust hooks: named pieces of code a manifest calls for one step it cannot describe.
//!
//! Three hook points exist. `hooks: {sign_request: <name>}` at the top of a manifest runs on every
//! partner request of a session, just before it leaves (each retry again, so a timestamp is
//! fresh), and adds headers computed over the method, the URL and the body bytes: signatures
//! with a scheme the manifest cannot write. `hooks: {map_record: <name>}` on a stream reshapes
//! each raw record before the runtime reads its id and cursor: arithmetic, nested unpacking. A
//! record the hook refuses is quarantined with the hook's reason. `hooks: {next_page: <name>}`
//! on a stream computes where the next page starts (paging that needs arithmetic over the
//! answer); the request is still built as the stream's `pagination` says.
//!
//! A hook is a trait object registered by name in [`Hooks`]. The runtime's own registry,
//! [`Hooks::builtin`], holds the hooks of the connectors kept in this repository; a connector
//! crate of its own adds its hooks with [`Hooks::with_sign_request`] and friends and serves with
//! [`crate::serve_loaded_with_hooks`]. A manifest naming a hook the registry lacks stops at
//! `check` and at start ([`Hooks::problems`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::access::Secret;
use crate::checkpoint::PagePosition;
use crate::manifest::{Manifest, Problem, locate};

/// A request as it will leave: what a signature is computed over.
#[derive(Debug, Clone, Copy)]
pub struct OutgoingRequest<'a> {
    /// Upper case (`GET`).
    pub method: &'a str,
    /// With its query string, as sent.
    pub url: &'a reqwest::Url,
    /// The exact body bytes; `None` when there is none or it is streamed (multipart).
    pub body: Option<&'a [u8]>,
}

/// Adds headers to every partner request of a session.
pub trait SignRequest: Send + Sync {
    /// The headers to add, computed from `request` and the connection's leased `secret`.
    fn sign(
        &self,
        request: &OutgoingRequest<'_>,
        secret: &Secret,
    ) -> Result<Vec<(String, String)>, String>;
}

/// Reshapes one raw record of a stream before the runtime reads it.
pub trait MapRecord: Send + Sync {
    /// The record the runtime reads instead of `record`; an error quarantines the record with
    /// it as the reason.
    fn map_record(&self, record: Value) -> Result<Value, String>;
}

/// The page just read, as [`NextPage`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct PageRead<'a> {
    /// Where this page started.
    pub position: &'a PagePosition,
    /// The partner's whole answer.
    pub body: &'a Value,
    /// The partner's rows on the page (before `map_record`).
    pub rows: usize,
    /// The page size the stream asked for, if any.
    pub page_size: Option<u32>,
}

/// Where the next page of a stream starts.
pub trait NextPage: Send + Sync {
    /// `None` ends the read; an error fails it as an unexpected partner answer.
    fn next_page(&self, page: &PageRead<'_>) -> Result<Option<PagePosition>, String>;
}

/// Hooks by name, as a connector binary registers them.
#[derive(Clone, Default)]
pub struct Hooks {
    sign_request: BTreeMap<String, Arc<dyn SignRequest>>,
    map_record: BTreeMap<String, Arc<dyn MapRecord>>,
    next_page: BTreeMap<String, Arc<dyn NextPage>>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field(
                "sign_request",
                &self.sign_request.keys().collect::<Vec<_>>(),
            )
            .field("map_record", &self.map_record.keys().collect::<Vec<_>>())
            .field("next_page", &self.next_page.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Hooks {
    /// The hooks of the connectors kept in this repository (each under its connector's name),
    /// which every runtime binary serves.
    pub fn builtin() -> Hooks {
        Hooks::default().with_sign_request(
            crate::hmacboard_hooks::SIGN_REQUEST,
            crate::hmacboard_hooks::Signer,
        )
    }

    pub fn with_sign_request(mut self, name: &str, hook: impl SignRequest + 'static) -> Hooks {
        self.sign_request.insert(name.to_owned(), Arc::new(hook));
        self
    }

    pub fn with_map_record(mut self, name: &str, hook: impl MapRecord + 'static) -> Hooks {
        self.map_record.insert(name.to_owned(), Arc::new(hook));
        self
    }

    pub fn with_next_page(mut self, name: &str, hook: impl NextPage + 'static) -> Hooks {
        self.next_page.insert(name.to_owned(), Arc::new(hook));
        self
    }

    /// Adds every hook of `other`, which wins on a shared name.
    pub fn extend(mut self, other: Hooks) -> Hooks {
        self.sign_request.extend(other.sign_request);
        self.map_record.extend(other.map_record);
        self.next_page.extend(other.next_page);
        self
    }

    pub fn sign_request(&self, name: &str) -> Option<Arc<dyn SignRequest>> {
        self.sign_request.get(name).cloned()
    }

    pub fn map_record(&self, name: &str) -> Option<Arc<dyn MapRecord>> {
        self.map_record.get(name).cloned()
    }

    pub fn next_page(&self, name: &str) -> Option<Arc<dyn NextPage>> {
        self.next_page.get(name).cloned()
    }

    /// Every hook `manifest` names that is not registered here, located in `yaml` (the
    /// manifest's text) and reported against `file`.
    pub fn problems(&self, manifest: &Manifest, file: &str, yaml: &str) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut missing = |path: &[&str], point: &str, name: &str, known: Vec<&String>| {
            let known = if known.is_empty() {
                "none is registered".to_owned()
            } else {
                let names: Vec<&str> = known.iter().map(|name| name.as_str()).collect();
                format!("registered: {}", names.join(", "))
            };
            problems.push(Problem {
                file: file.to_owned(),
                line: locate(yaml, path),
                message: format!(
                    "{point} hook {name:?} is not registered in this binary ({known}); \
                     register it in the connector's Hooks or fix the name"
                ),
            });
        };
        if let Some(name) = &manifest.hooks.sign_request
            && !self.sign_request.contains_key(name)
        {
            let known = self.sign_request.keys().collect();
            missing(&["hooks", "sign_request"], "sign_request", name, known);
        }
        for (stream_name, stream) in &manifest.streams {
            if let Some(name) = &stream.hooks.map_record
                && !self.map_record.contains_key(name)
            {
                let path = ["streams", stream_name.as_str(), "hooks", "map_record"];
                let known = self.map_record.keys().collect();
                missing(&path, "map_record", name, known);
            }
            if let Some(name) = &stream.hooks.next_page
                && !self.next_page.contains_key(name)
            {
                let path = ["streams", stream_name.as_str(), "hooks", "next_page"];
                let known = self.next_page.keys().collect();
                missing(&path, "next_page", name, known);
            }
        }
        problems
    }
}

/// A session's signing hook with the secret it signs with. Debug names neither.
#[derive(Clone)]
pub struct SessionSigner {
    pub hook: Arc<dyn SignRequest>,
    pub secret: Secret,
}

impl fmt::Debug for SessionSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionSigner(..)")
    }
}

#[cfg(test)]
mod tests;
