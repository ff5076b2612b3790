//! Reading a stream's deleted-records endpoint (`streams.<name>.deletes: {type: endpoint}`).
//!
//! It is read once the stream's records have been read to the end, and its entries ride on the
//! read's last page; if it fails, the read fails, so sync never tombstones on a failed read.
//! With `param`, the endpoint gets the cursor the read started from (the deletions since the
//! last complete read); without, it lists a window of its own (JobAdder: the last 14 days) and
//! sync tolerates seeing a deletion again.

use plugboard_proto::connector::v1::DeletedRecord;
use serde_json::{Value, json};

use super::{Connector, Key, join};
use crate::checkpoint::CursorFormat;
use crate::error::Error;
use crate::http::{Body, Request};
use crate::manifest::{Deletes, Method, Stream};
use crate::session::Settings;
use crate::template;
use crate::webhook::time_of;

impl Connector {
    /// The records the stream's deletes endpoint lists; empty when it has none.
    pub(super) async fn read_deleted(
        &self,
        stream: &Stream,
        key: &Key,
        settings: &Settings,
        since: Option<i64>,
        format: Option<&CursorFormat>,
    ) -> Result<Vec<DeletedRecord>, Error> {
        let Some(Deletes::Endpoint {
            path,
            records,
            id,
            deleted_at,
            param,
        }) = &stream.deletes
        else {
            return Ok(Vec::new());
        };
        let scope = json!({ "settings": &settings.values });
        let path = template::render(path, &scope).map_err(Error::InvalidSettings)?;
        let mut query = Vec::new();
        if let (Some(param), Some(format), Some(since)) = (param, format, since) {
            query.push((param.clone(), format.write(since)));
        }
        let mut waits = 0;
        let response = self
            .fetch(key, settings, &mut waits, |session| {
                Ok(Request {
                    method: Method::Get,
                    url: join(&session.base_url, &path)?,
                    headers: Vec::new(),
                    query: query.clone(),
                    body: Body::None,
                })
            })
            .await?;
        let entries = if records.is_empty() {
            response.body.as_array()
        } else {
            response.body.pointer(records).and_then(Value::as_array)
        }
        .ok_or_else(|| {
            Error::PartnerResponse(format!(
                "the deleted-records answer has no array at {records:?}"
            ))
        })?;
        let id_field = id.as_deref().unwrap_or(stream.primary_key.as_str());
        let mut deleted = Vec::with_capacity(entries.len());
        for entry in entries {
            let external_id = match field(entry, id_field) {
                Some(Value::String(text)) if !text.trim().is_empty() => text.clone(),
                Some(Value::Number(number)) if number.is_i64() || number.is_u64() => {
                    number.to_string()
                }
                // An entry without a usable id names nothing to delete; skipping it deletes
                // less, never more.
                _ => {
                    tracing::info!(entry = %entry, "a deleted-records entry has no usable id");
                    continue;
                }
            };
            let deleted_at = deleted_at
                .as_deref()
                .and_then(|name| field(entry, name))
                .and_then(time_of)
                .unwrap_or_default();
            deleted.push(DeletedRecord {
                external_id,
                deleted_at,
            });
        }
        Ok(deleted)
    }
}

/// A field by name, or by JSON pointer when it starts with `/`.
fn field<'a>(entry: &'a Value, name: &str) -> Option<&'a Value> {
    if name.starts_with('/') {
        entry.pointer(name)
    } else {
        entry.get(name)
    }
}
