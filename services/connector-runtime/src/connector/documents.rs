//! Document operations (`documents.<kind>`): upload one document to a parsing partner, then
//! poll until its parse is ready, and hand the parse back as a partner record.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use plugboard_proto::connector::v1::{ConnectionRef, RawRecord};
use serde_json::{Value, json};

use sha2::{Digest, Sha256};

use super::{Connector, join, key};
use crate::error::Error;
use crate::http::{Body, Multipart, Request, SendOptions};
use crate::manifest::{Document, ErrorMeaning, Format, Method, Upload, UploadErrors};
use crate::session::Session;
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
    /// The manifest's price of one parse: (decimal amount, currency).
    pub cost: Option<(String, String)>,
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
        let upload = &document.upload;
        let format = document.format.unwrap_or(if upload.xml.is_some() {
            Format::Xml
        } else {
            self.manifest.format
        });
        let document_scope = json!({
            "name": &params.file_name,
            "content_type": &content_type,
            "base64": STANDARD.encode(&params.content),
            "date": chrono::Utc::now().format("%Y-%m-%d").to_string(),
        });
        let key = key(&params.tenant, &params.connection);
        let mut waits = 0;
        // An upload the partner cannot deduplicate: never sent again once it may have arrived.
        let once = SendOptions {
            repeatable: false,
            format,
            ..SendOptions::default()
        };
        let uploaded = self
            .fetch_as(&key, &settings, "", &mut waits, once, |session| {
                // Rendered per session: an `in: body` credential is the session's.
                let scope = json!({
                    "settings": &settings.values,
                    "document": &document_scope,
                    "auth": &session.body_values,
                });
                upload_request(upload, &scope, session, &params, &content_type)
            })
            .await
            .map_err(|error| classify(upload.errors.as_ref(), error))?;
        if let Some(error) = answered_error(upload.errors.as_ref(), &uploaded.body) {
            return Err(error);
        }
        let document_id = if upload.id.is_empty() {
            hex::encode(Sha256::digest(&params.content))
        } else {
            text_at(&uploaded.body, &upload.id).ok_or_else(|| {
                Error::PartnerResponse(format!("the upload answer has no id at {}", upload.id))
            })?
        };
        let mut answer = uploaded.body;
        let polled = SendOptions {
            format,
            ..SendOptions::default()
        };
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
                    .fetch_as(&key, &settings, "", &mut waits, polled, |session| {
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
        let mut record = record
            .filter(|record| record.is_object())
            .cloned()
            .ok_or_else(|| {
                Error::PartnerResponse(format!(
                    "the parse of document {document_id} has no object at {:?}",
                    document.record
                ))
            })?;
        if upload.id.is_empty()
            && let Some(object) = record.as_object_mut()
        {
            // The partner keeps no document: the id is ours, and the mapping reads it here.
            object.insert(
                "plugboard_document_id".to_owned(),
                Value::String(document_id.clone()),
            );
        }
        Ok(DocumentOutcome {
            record: RawRecord {
                external_id: document_id.clone(),
                payload_json: record.to_string(),
            },
            document_id,
            entities: document.entities.clone(),
            polls,
            cost: document
                .cost
                .as_ref()
                .map(|cost| (cost.amount.text(), cost.currency.clone())),
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

/// The upload request for one session.
fn upload_request(
    upload: &Upload,
    scope: &Value,
    session: &Session,
    params: &DocumentParams,
    content_type: &str,
) -> Result<Request, Error> {
    let render = |text: &str| template::render(text, scope).map_err(Error::InvalidDocument);
    let render_json = |json: &Value| {
        template::render_json(json, scope)
            .ok_or_else(|| Error::InvalidDocument("the upload body renders to nothing".into()))
    };
    let path = render(&upload.path)?;
    let mut headers = upload
        .headers
        .iter()
        .map(|(name, value)| Ok((name.clone(), render(value)?)))
        .collect::<Result<Vec<_>, Error>>()?;
    let body = match (&upload.multipart, &upload.json, &upload.xml) {
        (Some(multipart), _, _) => Body::Multipart(Multipart {
            fields: multipart
                .fields
                .iter()
                .map(|(name, value)| Ok((name.clone(), render(value)?)))
                .collect::<Result<_, Error>>()?,
            file_part: multipart.file.clone(),
            file_name: params.file_name.clone(),
            content_type: content_type.to_owned(),
            content: params.content.clone(),
        }),
        (None, Some(json), _) => Body::Json(render_json(json)?),
        (None, None, Some(xml)) => {
            let text =
                crate::formats::json_to_xml(&render_json(xml)?).map_err(Error::InvalidDocument)?;
            // SOAP 1.1 is text/xml; a Content-Type the manifest gives wins.
            let given = headers
                .iter()
                .position(|(name, _)| name.eq_ignore_ascii_case("content-type"));
            let content_type = match given {
                Some(index) => headers.remove(index).1,
                None => "text/xml; charset=utf-8".to_owned(),
            };
            Body::Text { content_type, text }
        }
        (None, None, None) => Body::None,
    };
    Ok(Request {
        method: upload.method,
        url: join(&session.base_url, &path)?,
        headers,
        query: Vec::new(),
        body,
    })
}

/// A refusal the manifest says is about the document or the credential, as that error.
fn classify(errors: Option<&UploadErrors>, error: Error) -> Error {
    let Some(errors) = errors else {
        return error;
    };
    let meaning = match &error {
        Error::PartnerRejected { status, message } => errors
            .status
            .get(status)
            .copied()
            .map(|meaning| (meaning, message.clone()))
            .or_else(|| {
                let body = serde_json::from_str(message)
                    .ok()
                    .or_else(|| crate::formats::xml_to_json(message).ok())?;
                code_meaning(errors, &body)
            }),
        Error::SoapFault { code, message } => errors
            .codes
            .get(code)
            .map(|meaning| (*meaning, format!("{code}: {message}"))),
        _ => None,
    };
    match meaning {
        Some((meaning, message)) => meaning_error(meaning, message),
        None => error,
    }
}

/// An answer the partner sent as a success that carries one of the manifest's error codes.
pub(super) fn answered_error(errors: Option<&UploadErrors>, body: &Value) -> Option<Error> {
    let (meaning, message) = code_meaning(errors?, body)?;
    Some(meaning_error(meaning, message))
}

fn code_meaning(errors: &UploadErrors, body: &Value) -> Option<(ErrorMeaning, String)> {
    let code = text_at(body, errors.pointer.as_deref()?)?;
    let meaning = *errors.codes.get(&code)?;
    let message = errors
        .message
        .as_deref()
        .and_then(|pointer| text_at(body, pointer))
        .unwrap_or_default();
    Some((meaning, format!("{code}: {message}")))
}

fn meaning_error(meaning: ErrorMeaning, message: String) -> Error {
    match meaning {
        ErrorMeaning::Unreadable => Error::DocumentNotParsed(format!(
            "the partner could not read the document: {message}"
        )),
        ErrorMeaning::Credentials => Error::CredentialsRejected(message),
    }
}
