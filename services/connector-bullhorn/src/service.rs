//! The connector's domain logic: check, discover and read, testable without gRPC.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use plugboard_proto::connector::v1::{
    CheckResponse, ConnectionRef, DiscoverResponse, DiscoveredStream, RawRecord, ReadResponse,
    RejectedRecord,
};
use plugboard_proto::error::ErrorKind;
use plugboard_proto::error::ServiceError;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::access::Access;
use crate::checkpoint::Checkpoint;
use crate::error::Error;
use crate::partner::{Fetched, Partner, Session};
use crate::settings::Settings;
use crate::streams::{self, CURSOR_FIELD, STREAMS};

/// Records per partner request when the caller does not choose.
pub const DEFAULT_PAGE_SIZE: u32 = 200;
/// Bullhorn's cap on `count`.
pub const MAX_PAGE_SIZE: u32 = 500;

/// Which connection a call acts for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SessionKey {
    tenant: String,
    connection_id: String,
}

#[derive(Debug, Clone)]
struct CachedSession {
    settings: Settings,
    session: Session,
}

/// Talks to Bullhorn for any connection, caching one session per connection.
#[derive(Debug)]
pub struct BullhornConnector {
    access: Access,
    partner: Partner,
    sessions: Mutex<HashMap<SessionKey, CachedSession>>,
}

/// One read: which connection, stream, checkpoint and page size.
#[derive(Debug, Clone)]
pub struct ReadParams {
    pub tenant: String,
    pub connection: ConnectionRef,
    pub stream: String,
    pub checkpoint: String,
    pub page_size: u32,
    /// The sync run served, for credentials' audit log; empty outside one.
    pub run_id: String,
}

impl BullhornConnector {
    pub fn new(access: Access, partner: Partner) -> BullhornConnector {
        BullhornConnector {
            access,
            partner,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// Logs in afresh and pings. Settings errors fail the call; anything the partner or the
    /// credential says comes back as `ok: false` with the reason.
    pub async fn check(
        &self,
        tenant: &str,
        connection: &ConnectionRef,
    ) -> Result<CheckResponse, Error> {
        let settings = self.settings(connection).await?;
        let key = key(tenant, connection);
        self.forget(&key);
        let outcome = async {
            let mut waits = 0;
            match self
                .fetch(&key, &settings, "", "ping", &[], &mut waits)
                .await?
            {
                Value::Object(_) => Ok(()),
                _ => Err(Error::PartnerResponse(
                    "ping answered a non-object".to_owned(),
                )),
            }
        }
        .await;
        match outcome {
            Ok(()) => Ok(CheckResponse {
                ok: true,
                reason: String::new(),
            }),
            Err(error) if error.kind() == ErrorKind::InvalidArgument => Err(error),
            Err(error) => Ok(CheckResponse {
                ok: false,
                reason: error.to_string(),
            }),
        }
    }

    pub fn discover(&self) -> DiscoverResponse {
        DiscoverResponse {
            streams: STREAMS
                .iter()
                .map(|stream| DiscoveredStream {
                    name: stream.name.to_owned(),
                    entity: stream.entity.to_owned(),
                    cursor_field: stream.cursor_field.to_owned(),
                })
                .collect(),
        }
    }

    /// Validates a read before any page is fetched, so bad input fails the call itself.
    pub async fn prepare(&self, params: &ReadParams) -> Result<Settings, Error> {
        streams::find(&params.stream)?;
        Checkpoint::parse(&params.checkpoint)?;
        self.settings(&params.connection).await
    }

    /// Pages through a stream, sending each page (or the error that ends the read) to `pages`.
    /// Stops early when the receiver is gone.
    pub async fn read(
        &self,
        params: ReadParams,
        settings: Settings,
        pages: mpsc::Sender<Result<ReadResponse, Error>>,
    ) {
        if let Err(error) = self.read_pages(&params, &settings, &pages).await {
            tracing::info!(error = %error, stream = %params.stream, "read failed");
            // The receiver may be gone already; then nobody is waiting for the error.
            let _ = pages.send(Err(error)).await;
        }
    }

    async fn read_pages(
        &self,
        params: &ReadParams,
        settings: &Settings,
        pages: &mpsc::Sender<Result<ReadResponse, Error>>,
    ) -> Result<(), Error> {
        let stream = streams::find(&params.stream)?;
        let mut checkpoint = Checkpoint::parse(&params.checkpoint)?;
        let page_size = match params.page_size {
            0 => DEFAULT_PAGE_SIZE,
            size => size.min(MAX_PAGE_SIZE),
        };
        let key = key(&params.tenant, &params.connection);
        let path = format!("query/{}", stream.name);
        loop {
            let query = [
                ("where", format!("{CURSOR_FIELD}>={}", checkpoint.since)),
                ("fields", "*".to_owned()),
                ("orderBy", format!("{CURSOR_FIELD},id")),
                ("start", checkpoint.start.to_string()),
                ("count", page_size.to_string()),
            ];
            let mut waits = 0;
            let body = self
                .fetch(&key, settings, &params.run_id, &path, &query, &mut waits)
                .await?;
            let data = match body.get("data") {
                Some(Value::Array(data)) => data,
                _ => return Err(Error::PartnerResponse("page has no data array".to_owned())),
            };
            let mut page = ReadResponse {
                rate_limited_waits: waits,
                ..ReadResponse::default()
            };
            for item in data {
                if let Some(modified) = item.get(CURSOR_FIELD).and_then(Value::as_i64) {
                    checkpoint.see(modified);
                }
                match accept(item) {
                    Ok(record) => page.records.push(record),
                    Err(rejected) => page.rejected.push(rejected),
                }
            }
            let done = data.len() < page_size as usize;
            checkpoint = if done {
                checkpoint.finished()
            } else {
                checkpoint.next_page(data.len())
            };
            page.checkpoint = checkpoint.to_json();
            tracing::debug!(
                stream = stream.name,
                records = page.records.len(),
                rejected = page.rejected.len(),
                "read a page"
            );
            if pages.send(Ok(page)).await.is_err() || done {
                return Ok(());
            }
        }
    }

    async fn settings(&self, connection: &ConnectionRef) -> Result<Settings, Error> {
        let settings = Settings::parse(&connection.settings_json)?;
        settings.check(self.partner.allow_private()).await?;
        Ok(settings)
    }

    /// One entity request with the connection's session; on 401 logs in again once.
    async fn fetch(
        &self,
        key: &SessionKey,
        settings: &Settings,
        run_id: &str,
        path: &str,
        query: &[(&str, String)],
        waits: &mut u32,
    ) -> Result<Value, Error> {
        let mut fresh = false;
        loop {
            let session = match self.cached(key, settings) {
                Some(session) => session,
                None => {
                    fresh = true;
                    self.login(key, settings, run_id).await?
                }
            };
            match self.partner.get_json(&session, path, query, waits).await? {
                Fetched::Json(body) => return Ok(body),
                Fetched::Unauthorized if !fresh => {
                    tracing::info!(connection_id = %key.connection_id, "bullhorn session expired, logging in again");
                    self.forget(key);
                }
                Fetched::Unauthorized => {
                    self.forget(key);
                    return Err(Error::CredentialsRejected(
                        "bullhorn refused a session it had just issued".to_owned(),
                    ));
                }
            }
        }
    }

    /// Leases the secret (for `run_id`'s audit row) and logs in. The session then serves later
    /// runs too while Bullhorn accepts it, since Bullhorn limits logins.
    async fn login(
        &self,
        key: &SessionKey,
        settings: &Settings,
        run_id: &str,
    ) -> Result<Session, Error> {
        let secret = self
            .access
            .lease(&key.tenant, &key.connection_id, run_id)
            .await?;
        let session = self.partner.login(settings, &secret).await?;
        self.lock().insert(
            key.clone(),
            CachedSession {
                settings: settings.clone(),
                session: session.clone(),
            },
        );
        Ok(session)
    }

    fn cached(&self, key: &SessionKey, settings: &Settings) -> Option<Session> {
        self.lock()
            .get(key)
            // Changed settings point elsewhere: the old session does not apply.
            .filter(|cached| cached.settings == *settings)
            .map(|cached| cached.session.clone())
    }

    fn forget(&self, key: &SessionKey) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionKey, CachedSession>> {
        // The map holds plain data; a panic elsewhere cannot leave it half-written.
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn key(tenant: &str, connection: &ConnectionRef) -> SessionKey {
    SessionKey {
        tenant: tenant.to_owned(),
        connection_id: connection.connection_id.clone(),
    }
}

/// A record needs to be an object with a numeric or string id; anything else is rejected with
/// its reason. Other odd fields pass through for mapping to judge.
fn accept(item: &Value) -> Result<RawRecord, RejectedRecord> {
    let payload_json = item.to_string();
    let reject = |reason: &str| RejectedRecord {
        payload_json: payload_json.clone(),
        reason: reason.to_owned(),
    };
    let Some(object) = item.as_object() else {
        return Err(reject("record is not a JSON object"));
    };
    let external_id = match object.get("id") {
        None | Some(Value::Null) => return Err(reject("record has no id")),
        Some(Value::Number(number)) if number.is_i64() || number.is_u64() => number.to_string(),
        Some(Value::String(text)) if !text.trim().is_empty() => text.clone(),
        Some(_) => return Err(reject("record id is not an integer or a non-empty string")),
    };
    Ok(RawRecord {
        external_id,
        payload_json,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn records_without_usable_ids_are_rejected_with_a_reason() {
        assert_eq!(
            accept(&json!({"id": 12, "email": 5})).unwrap().external_id,
            "12"
        );
        assert_eq!(accept(&json!({"id": "A-1"})).unwrap().external_id, "A-1");
        for (item, reason) in [
            (json!({"name": "x"}), "record has no id"),
            (json!({"id": null}), "record has no id"),
            (json!([1, 2]), "record is not a JSON object"),
            (
                json!({"id": 1.5}),
                "record id is not an integer or a non-empty string",
            ),
        ] {
            let rejected = accept(&item).unwrap_err();
            assert_eq!(rejected.reason, reason);
            assert_eq!(rejected.payload_json, item.to_string());
        }
    }
}
