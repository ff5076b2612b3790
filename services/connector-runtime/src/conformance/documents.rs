//! The document check of the conformance kit: a document parsed by upload (and polling where
//! the partner parses later), its parse mapped to every entity the manifest names, a 429
//! waited out, a wrong key refused as a credential failure, and an unreadable one refused.

use plugboard_proto::error::ServiceError;

use super::{Kit, Step, TENANT, Verdict, ensure};
use crate::access::Secret;
use crate::connector::{Connector, DocumentParams, SecretSource};
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
        // A 429 on the upload is waited out, not taken for a failed parse.
        self.admin(
            "POST",
            "faults",
            serde_json::json!({"rate_limit_burst": 1, "retry_after_seconds": 1}),
        )
        .await?;
        self.connector
            .parse_document(params.clone())
            .await
            .map_err(|e| format!("a parse after a 429: {e}"))?;
        // A wrong key is the credential's failure, whatever the partner answers with.
        let wrong = match &self.fixture.secret {
            super::FixtureSecret::ApiKey { .. } => Some(Secret::api_key("wrong-key")),
            super::FixtureSecret::Basic { username, .. } => {
                Some(Secret::basic(username, "wrong-password"))
            }
            super::FixtureSecret::Oauth2Client { .. } => None,
        };
        if let Some(wrong) = wrong {
            let refused = Connector::new(self.manifest().clone(), SecretSource::Fixed(wrong), true)
                .map_err(|e| e.to_string())?;
            match refused.parse_document(params.clone()).await {
                Err(Error::CredentialsRejected(_)) => {}
                Err(error) => return Err(format!("a wrong key failed as {error}")),
                Ok(_) => return Err("a wrong key parsed a document".to_owned()),
            }
        }
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
