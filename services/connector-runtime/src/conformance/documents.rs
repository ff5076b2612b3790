//! The document check of the conformance kit: a document parsed by upload and polling, its
//! parse mapped to every entity the manifest names, and an unreadable one refused.

use plugboard_proto::error::ServiceError;

use super::{Kit, Step, TENANT, Verdict, ensure};
use crate::connector::DocumentParams;
use crate::error::Error;

impl Kit {
    pub(super) async fn document(&self) -> Step {
        let Some(fixture) = &self.fixture.document else {
            return Ok(if self.manifest().documents.is_empty() {
                Verdict::Skipped("the manifest parses no documents".to_owned())
            } else {
                Verdict::Failed(
                    "the manifest parses documents but conformance.yaml has no document".to_owned(),
                )
            });
        };
        let params = DocumentParams {
            tenant: TENANT.to_owned(),
            connection: self.connection.clone(),
            document_type: fixture.kind.clone(),
            content: fixture.text.as_bytes().to_vec(),
            file_name: fixture.file_name.clone(),
            content_type: fixture.content_type.clone(),
        };
        let parsed = self
            .connector
            .parse_document(params.clone())
            .await
            .map_err(|e| format!("parsing {}: {e}", fixture.file_name))?;
        ensure(parsed.record.external_id == parsed.document_id, || {
            "the parse's record is not keyed by the document id".to_owned()
        })?;
        let payload: serde_json::Value =
            serde_json::from_str(&parsed.record.payload_json).map_err(|e| e.to_string())?;
        for (pointer, expected) in &fixture.expect {
            let actual = payload.pointer(pointer);
            ensure(actual == Some(expected), || {
                format!("the parse has {actual:?} at {pointer}, expected {expected}")
            })?;
        }
        for entity in &parsed.entities {
            let spec = self
                .spec(entity)
                .ok_or_else(|| format!("no inbound spec for {entity}"))?;
            let mapped = spec
                .transform(&parsed.record.payload_json)
                .map_err(|e| format!("the parse does not map to {entity}: {e}"))?;
            ensure(mapped.external_id == parsed.document_id, || {
                format!("{entity} has id {}, not the document's", mapped.external_id)
            })?;
        }
        let polled = self
            .manifest()
            .documents
            .values()
            .any(|document| document.poll.is_some());
        ensure(!polled || parsed.polls >= 1, || {
            "the parse was never polled for".to_owned()
        })?;
        // A document the partner cannot read: its failure, not a timeout.
        let unreadable = DocumentParams {
            content: vec![0xff, 0xfe, 0x00, 0x01],
            file_name: "unreadable.bin".to_owned(),
            content_type: "application/octet-stream".to_owned(),
            ..params
        };
        match self.connector.parse_document(unreadable).await {
            Err(error @ Error::DocumentNotParsed(_)) => {
                ensure(error.reason() == "DOCUMENT_NOT_PARSED", || {
                    error.to_string()
                })?;
            }
            Err(error) => return Err(format!("an unreadable document failed as {error}")),
            Ok(_) => return Err("an unreadable document was parsed".to_owned()),
        }
        Ok(Verdict::Passed)
    }
}
