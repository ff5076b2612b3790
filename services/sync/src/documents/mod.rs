//! Documents through sync: a CV parsed once per tenant and connection, landed as canonical
//! records, and what each parse cost.
//!
//! `ParseDocument` hashes the content (SHA-256) and claims the hash in `document_parses`. The
//! first caller asks the connection's parser connector (resolved through the registry, like a
//! read), has mapping turn the parse into each entity the connector names, links the people
//! among them, and commits records, change log, quarantine and the parse's row in one
//! transaction ([`store::ParseStore::land`]). A later call with the same content finds the row
//! and answers the stored records without calling the partner; a concurrent one waits for the
//! first to finish. A parse that does not map is quarantined with its reason and kept, so the
//! next call maps it again (after a mapping fix) without paying for another parse. A claim
//! whose holder died expires after [`CLAIM_TTL`] and is taken over.
//!
//! Submodules: [`store`] (the table and the landing transaction), [`money`] (exact decimal
//! costs as millionths).

pub mod money;
pub mod store;

use std::time::Duration;

use plugboard_proto::common::v1::{CanonicalRecord, Money};
use plugboard_proto::connector::v1::{ConnectionRef, ParseDocumentRequest};
use plugboard_proto::mapping::v1::transform_result::Outcome;
use plugboard_proto::mapping::v1::{Direction, TransformInput, TransformRequest};
use plugboard_proto::registry::v1::ResolveRequest;
use plugboard_runtime::storage::{format_time, now_text};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::mesh::Mesh;
use crate::record_codec;
use crate::store::{QuarantineEntry, Store, SyncDefinition};
use store::{Landing, NewClaim, ParseKey, ParseRow, ParseState, ParseStore, Usage};

/// Longest document accepted, as the connector contract says.
pub const MAX_DOCUMENT_BYTES: usize = 10 * 1024 * 1024;
/// How long a caller holds the claim on a document while the partner parses it; past it, the
/// caller is taken to have died and another may parse.
pub const CLAIM_TTL: Duration = Duration::from_secs(180);
/// How long a call waits for another caller parsing the same document.
const WAIT_FOR_OTHER: Duration = Duration::from_secs(60);
const WAIT_STEP: Duration = Duration::from_millis(200);
const DEFAULT_PAGE_SIZE: u32 = 100;
const MAX_PAGE_SIZE: u32 = 1000;

/// One document to parse for a connection.
#[derive(Debug, Clone)]
pub struct ParseRequest {
    pub connection_id: String,
    pub document_type: String,
    pub file_name: String,
    pub content: Vec<u8>,
    pub content_type: String,
}

/// A landed parse: its row and its canonical records.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub parse: ParseRow,
    pub records: Vec<CanonicalRecord>,
    /// Answered from an earlier parse; the partner was not called.
    pub reused: bool,
}

#[derive(Clone)]
pub struct Documents {
    store: Store,
    parses: ParseStore,
    mesh: Mesh,
}

impl Documents {
    pub fn new(store: Store, mesh: Mesh) -> Documents {
        Documents {
            parses: ParseStore::new(store.clone()),
            store,
            mesh,
        }
    }

    /// Parses `request.content` with the connection's parser once; later calls with the same
    /// content answer the same records.
    pub async fn parse(&self, tenant_id: &str, request: ParseRequest) -> Result<Parsed, Error> {
        crate::service::validate_id("connection_id", &request.connection_id)?;
        if request.content.is_empty() || request.content.len() > MAX_DOCUMENT_BYTES {
            return Err(Error::InvalidArgument {
                field: "content",
                reason: format!(
                    "a document has 1 to {MAX_DOCUMENT_BYTES} bytes, this one {}",
                    request.content.len()
                ),
            });
        }
        let sync = self
            .store
            .get_sync(tenant_id, &request.connection_id)
            .await?
            .ok_or_else(|| Error::SyncNotFound {
                connection_id: request.connection_id.clone(),
            })?;
        let content_sha256 = hex::encode(Sha256::digest(&request.content));
        let key = ParseKey {
            tenant_id,
            connection_id: &request.connection_id,
            content_sha256: &content_sha256,
        };
        let give_up = tokio::time::Instant::now() + WAIT_FOR_OTHER;
        loop {
            let claimed_until = claim_deadline();
            let claim = NewClaim {
                connector: &sync.connector,
                document_type: &request.document_type,
                file_name: &request.file_name,
                claimed_until: &claimed_until,
            };
            let existing = match self.parses.claim(key, claim).await? {
                Ok(()) => return self.parse_fresh(key, &sync, &request).await,
                Err(existing) => existing,
            };
            match existing.state {
                ParseState::Parsed => return self.answer_stored(key, existing).await,
                ParseState::Quarantined => return self.map_again(key, &sync, existing).await,
                ParseState::Parsing if existing.claimed_until < now_text() => {
                    if self
                        .parses
                        .take_over(key, &existing.claimed_until, &claimed_until)
                        .await?
                    {
                        tracing::warn!(
                            connection_id = %request.connection_id,
                            content_sha256 = %content_sha256,
                            "took over the expired claim of a document parse"
                        );
                        return self.parse_fresh(key, &sync, &request).await;
                    }
                }
                ParseState::Parsing => {
                    if tokio::time::Instant::now() >= give_up {
                        return Err(Error::DocumentBeingParsed {
                            content_sha256: content_sha256.clone(),
                        });
                    }
                    tokio::time::sleep(WAIT_STEP).await;
                }
            }
        }
    }

    /// The tenant's parses and their totals.
    pub async fn usage(
        &self,
        tenant_id: &str,
        connection_id: &str,
        page_size: u32,
        page_token: &str,
    ) -> Result<(Usage, String), Error> {
        if !connection_id.is_empty() {
            crate::service::validate_id("connection_id", connection_id)?;
        }
        let offset: u64 = if page_token.is_empty() {
            0
        } else {
            page_token.parse().map_err(|_| Error::InvalidArgument {
                field: "page_token",
                reason: "is not a token this call returned".into(),
            })?
        };
        let limit = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            size => size.min(MAX_PAGE_SIZE),
        };
        let usage = self
            .parses
            .usage(tenant_id, connection_id, offset, limit)
            .await?;
        let next = if usage.parses.len() < limit as usize {
            String::new()
        } else {
            (offset + u64::from(limit)).to_string()
        };
        Ok((usage, next))
    }

    /// Asks the partner (we hold the claim), then lands the parse. A failed parse gives the
    /// claim up, so a retry asks again.
    async fn parse_fresh(
        &self,
        key: ParseKey<'_>,
        sync: &SyncDefinition,
        request: &ParseRequest,
    ) -> Result<Parsed, Error> {
        let parsed = self.call_parser(key.tenant_id, sync, request).await;
        let (version, response) = match parsed {
            Ok(parsed) => parsed,
            Err(error) => {
                if let Err(release) = self.parses.release(key).await {
                    tracing::warn!(error = %release, "cannot release a document claim; it expires");
                }
                return Err(error);
            }
        };
        let record = response.record.unwrap_or_default();
        let cost = match response.cost {
            Some(Money { amount, currency }) if !currency.is_empty() => {
                let micros = money::to_micros(&amount).ok_or_else(|| {
                    Error::Corrupt(format!("the connector priced a parse at {amount:?}"))
                })?;
                Some((micros, currency))
            }
            _ => None,
        };
        tracing::info!(
            connection_id = %sync.connection_id,
            connector = %sync.connector,
            document_id = %response.document_id,
            content_sha256 = key.content_sha256,
            "document parsed by the partner"
        );
        let landing = Landing {
            state: ParseState::Parsed,
            document_id: response.document_id,
            entities: response.entities,
            raw_payload_json: record.payload_json,
            cost,
            records: Vec::new(),
            quarantined: Vec::new(),
        };
        self.land(key, sync, &version, landing, &request.document_type)
            .await
    }

    async fn call_parser(
        &self,
        tenant_id: &str,
        sync: &SyncDefinition,
        request: &ParseRequest,
    ) -> Result<
        (
            String,
            plugboard_proto::connector::v1::ParseDocumentResponse,
        ),
        Error,
    > {
        let resolved = self.resolve(sync).await?;
        let response = self
            .mesh
            .connector(&resolved.address, tenant_id)?
            .max_encoding_message_size(MAX_DOCUMENT_BYTES * 2)
            .parse_document(ParseDocumentRequest {
                connection: Some(ConnectionRef {
                    connection_id: sync.connection_id.clone(),
                    settings_json: sync.settings_json.clone(),
                }),
                document_type: request.document_type.clone(),
                content: request.content.clone(),
                file_name: request.file_name.clone(),
                content_type: request.content_type.clone(),
            })
            .await
            .map_err(|status| Error::dependency("connector", &status))?
            .into_inner();
        Ok((resolved.version, response))
    }

    async fn resolve(
        &self,
        sync: &SyncDefinition,
    ) -> Result<plugboard_proto::registry::v1::ResolveResponse, Error> {
        Ok(self
            .mesh
            .registry()
            .resolve(ResolveRequest {
                connector: sync.connector.clone(),
            })
            .await
            .map_err(|status| Error::dependency("registry", &status))?
            .into_inner())
    }

    /// A parse kept in quarantine, mapped again from the kept payload; the partner is not
    /// called and nothing is charged again.
    async fn map_again(
        &self,
        key: ParseKey<'_>,
        sync: &SyncDefinition,
        existing: ParseRow,
    ) -> Result<Parsed, Error> {
        self.parses.count_reuse(key).await?;
        let version = self.resolve(sync).await?.version;
        let document_type = existing.document_type.clone();
        let landing = Landing {
            state: ParseState::Parsed,
            document_id: existing.document_id,
            entities: existing.entities,
            raw_payload_json: existing.raw_payload_json,
            cost: None,
            records: Vec::new(),
            quarantined: Vec::new(),
        };
        let mut parsed = self
            .land(key, sync, &version, landing, &document_type)
            .await?;
        parsed.reused = true;
        Ok(parsed)
    }

    /// Maps the parse to each entity, links its people, and commits it; a parse that does not
    /// map is committed to quarantine instead and answered `DocumentQuarantined`.
    async fn land(
        &self,
        key: ParseKey<'_>,
        sync: &SyncDefinition,
        connector_version: &str,
        mut landing: Landing,
        document_type: &str,
    ) -> Result<Parsed, Error> {
        let now = now_text();
        let mut records = Vec::new();
        let mut reasons = Vec::new();
        for entity in &landing.entities {
            let results = self
                .mesh
                .mapping(key.tenant_id)
                .transform(TransformRequest {
                    connector: sync.connector.clone(),
                    connector_version: connector_version.to_owned(),
                    entity: entity.clone(),
                    direction: Direction::Inbound as i32,
                    inputs: vec![TransformInput {
                        external_id: landing.document_id.clone(),
                        payload_json: landing.raw_payload_json.clone(),
                        ..TransformInput::default()
                    }],
                    connection_id: sync.connection_id.clone(),
                    resolve_persons: false,
                    omit_raw_payloads: false,
                })
                .await
                .map_err(|status| Error::dependency("mapping", &status))?
                .into_inner()
                .results;
            match results.into_iter().next().and_then(|result| result.outcome) {
                Some(Outcome::Record(mut record)) => {
                    // Every record of one parse is keyed by its document, whatever the spec
                    // computed, so the parse's records are found again by its id.
                    record.external_id = landing.document_id.clone();
                    record.connection_id = sync.connection_id.clone();
                    records.push(record);
                }
                Some(Outcome::Error(field_error)) => {
                    let reason = format!(
                        "{entity}: {} (value {})",
                        field_error.message, field_error.partner_value
                    );
                    landing.quarantined.push(QuarantineEntry {
                        id: uuid::Uuid::now_v7().to_string(),
                        run_id: format!("document:{}", key.content_sha256),
                        stream: format!("documents.{}", kind_or(document_type)),
                        external_id: landing.document_id.clone(),
                        payload_json: landing.raw_payload_json.clone(),
                        reason: reason.clone(),
                        field_path: field_error.field_path,
                        quarantined_at: now.clone(),
                    });
                    reasons.push(reason);
                }
                None | Some(Outcome::PartnerRecord(_)) => {
                    return Err(Error::Corrupt(format!(
                        "mapping returned no canonical {entity} for document {}",
                        landing.document_id
                    )));
                }
            }
        }
        if !reasons.is_empty() {
            landing.state = ParseState::Quarantined;
            self.parses.land(key, &landing).await?;
            tracing::info!(
                connection_id = %sync.connection_id,
                document_id = %landing.document_id,
                reason = %reasons.join("; "),
                "document parse quarantined"
            );
            return Err(Error::DocumentQuarantined {
                reason: reasons.join("; "),
            });
        }
        let people: Vec<CanonicalRecord> = records
            .iter()
            .filter(|record| crate::persons::is_person(&record.entity))
            .cloned()
            .collect();
        crate::persons::resolve_page(&self.mesh, sync, people).await?;
        landing.records = records
            .iter()
            .map(|record| record_codec::to_stored(record, &now))
            .collect::<Result<_, _>>()?;
        self.parses.land(key, &landing).await?;
        let parse = self
            .parses
            .get(key)
            .await?
            .ok_or_else(|| Error::Corrupt("a landed parse has no row".into()))?;
        let mut answered = landing
            .records
            .into_iter()
            .map(|record| record_codec::from_stored(record, &sync.connection_id))
            .collect::<Result<Vec<_>, _>>()?;
        crate::persons::fill(&self.mesh, key.tenant_id, &mut answered).await;
        Ok(Parsed {
            parse,
            records: answered,
            reused: false,
        })
    }

    /// The records of a parse landed before.
    async fn answer_stored(&self, key: ParseKey<'_>, existing: ParseRow) -> Result<Parsed, Error> {
        self.parses.count_reuse(key).await?;
        let mut records = Vec::new();
        for entity in &existing.entities {
            let stored = self
                .parses
                .record(
                    key.tenant_id,
                    key.connection_id,
                    entity,
                    &existing.document_id,
                )
                .await?;
            // A record the parse made may since have been replaced under another id by a
            // tenant's mapping change; what is still stored is what is answered.
            if let Some(stored) = stored {
                records.push(record_codec::from_stored(stored, key.connection_id)?);
            }
        }
        crate::persons::fill(&self.mesh, key.tenant_id, &mut records).await;
        tracing::debug!(
            connection_id = key.connection_id,
            document_id = %existing.document_id,
            "document answered from its earlier parse"
        );
        let parse = ParseRow {
            reuses: existing.reuses + 1,
            ..existing
        };
        Ok(Parsed {
            parse,
            records,
            reused: true,
        })
    }
}

fn claim_deadline() -> String {
    let ttl =
        chrono::Duration::from_std(CLAIM_TTL).unwrap_or_else(|_| chrono::Duration::minutes(3));
    format_time(chrono::Utc::now() + ttl)
}

fn kind_or(document_type: &str) -> &str {
    if document_type.is_empty() {
        "default"
    } else {
        document_type
    }
}
