//! Document operations (`documents.<kind>`): upload one document to a parsing partner, then
//! poll until its parse is ready, and hand the parse back as a partner record.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use plugboard_proto::connector::v1::{ConnectionRef, RawRecord};
use serde_json::{Value, json};

use super::{Connector, join, key};
use crate::error::Error;
use crate::http::{Body, Multipart, Request};
use crate::manifest::{Document, Method};
use crate::template;

/// One document to parse.
#[derive(Debug, Clone)]
pub struct DocumentParams {
    pub tenant: String,
    pub connection: ConnectionRef,
    /// The manifest's document kind; empty when it has one only.
    pub document_type: String,
    pub content: Vec<u8>,
    pub file_name: String,
    pub content_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentOutcome {
    pub document_id: String,
    pub record: RawRecord,
    pub entities: Vec<String>,
    pub polls: u32,
}

impl Connector {
    /// Uploads the document and waits for its parse.
    pub async fn parse_document(&self, params: DocumentParams) -> Result<DocumentOutcome, Error> {
        let document = self.document(&params.document_type)?;
        if params.content.is_empty() || params.content.len() > document.max_bytes {
            return Err(Error::InvalidDocument(format!(
                "a document has 1 to {} bytes, this one {}",
                document.max_bytes,
                params.content.len()
            )));
        }
        let settings = self.settings(&params.connection).await?;
        let content_type = if params.content_type.is_empty() {
            "application/octet-stream".to_owned()
        } else {
            params.content_type.clone()
        };
        let scope = json!({
            "settings": &settings.values,
            "document": {
                "name": &params.file_name,
                "content_type": &content_type,
                "base64": STANDARD.encode(&params.content),
            },
        });
        let render = |text: &str| template::render(text, &scope).map_err(Error::InvalidDocument);
        let upload = &document.upload;
        let path = render(&upload.path)?;
        let body = match (&upload.multipart, &upload.json) {
            (Some(multipart), _) => Body::Multipart(Multipart {
                fields: multipart
                    .fields
                    .iter()
                    .map(|(name, value)| Ok((name.clone(), render(value)?)))
                    .collect::<Result<_, Error>>()?,
                file_part: multipart.file.clone(),
                file_name: params.file_name.clone(),
                content_type,
                content: params.content.clone(),
            }),
            (None, Some(json)) => {
                Body::Json(template::render_json(json, &scope).unwrap_or(json!({})))
            }
            (None, None) => Body::None,
        };
        let key = key(&params.tenant, &params.connection);
        let mut waits = 0;
        // An upload the partner cannot deduplicate: never sent again once it may have arrived.
        let once = crate::http::SendOptions {
            repeatable: false,
            ..crate::http::SendOptions::default()
        };
        let uploaded = self
            .fetch_as(&key, &settings, "", &mut waits, once, |session| {
                Ok(Request {
                    method: upload.method,
                    url: join(&session.base_url, &path)?,
                    headers: Vec::new(),
                    query: Vec::new(),
                    body: body.clone(),
                })
            })
            .await?;
        let document_id = text_at(&uploaded.body, &upload.id).ok_or_else(|| {
            Error::PartnerResponse(format!("the upload answer has no id at {}", upload.id))
        })?;
        let mut answer = uploaded.body;
        let mut polls = 0;
        if let Some(poll) = &document.poll {
            let scope = json!({ "settings": &settings.values, "document_id": &document_id });
            let path = template::render(&poll.path, &scope).map_err(Error::InvalidDocument)?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(poll.timeout_seconds);
            loop {
                if let Some(failed) = &poll.failed
                    && answer.pointer(failed) == Some(&Value::Bool(true))
                {
                    return Err(Error::DocumentNotParsed(format!(
                        "the partner could not parse document {document_id}"
                    )));
                }
                if answer.pointer(&poll.ready) == Some(&Value::Bool(true)) {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(Error::PartnerUnavailable(format!(
                        "document {document_id} was not parsed within {} s",
                        poll.timeout_seconds
                    )));
                }
                tokio::time::sleep(Duration::from_secs(poll.interval_seconds)).await;
                polls += 1;
                answer = self
                    .fetch(&key, &settings, "", &mut waits, |session| {
                        Ok(Request {
                            method: Method::Get,
                            url: join(&session.base_url, &path)?,
                            headers: Vec::new(),
                            query: Vec::new(),
                            body: Body::None,
                        })
                    })
                    .await?
                    .body;
            }
        }
        let record = if document.record.is_empty() {
            Some(&answer)
        } else {
            answer.pointer(&document.record)
        };
        let record = record.filter(|record| record.is_object()).ok_or_else(|| {
            Error::PartnerResponse(format!(
                "the parse of document {document_id} has no object at {:?}",
                document.record
            ))
        })?;
        Ok(DocumentOutcome {
            record: RawRecord {
                external_id: document_id.clone(),
                payload_json: record.to_string(),
            },
            document_id,
            entities: document.entities.clone(),
            polls,
        })
    }

    fn document(&self, kind: &str) -> Result<&Document, Error> {
        let documents = &self.manifest.documents;
        let found = if kind.is_empty() && documents.len() == 1 {
            documents.values().next()
        } else {
            documents.get(kind)
        };
        found.ok_or_else(|| {
            Error::InvalidDocument(format!(
                "{} parses {}; document_type {kind:?} is not one of them",
                self.manifest.name,
                if documents.is_empty() {
                    "no documents".to_owned()
                } else {
                    documents.keys().cloned().collect::<Vec<_>>().join(", ")
                }
            ))
        })
    }
}

fn text_at(body: &Value, pointer: &str) -> Option<String> {
    match body.pointer(pointer)? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}
