//! Status changes from every health replica to the watchers of every replica, over Redis.
//!
//! A change is committed by whichever replica took the report; a dashboard's `WatchStatus`
//! stream may be held by another. Each replica publishes the changes it committed on one Redis
//! channel and subscribes to it; a change from another replica is re-read from the shared
//! database (the message names it, it does not carry it) and handed to this replica's
//! watchers. Webhook deliveries stay with the committing replica, so each change is delivered
//! once however many replicas run.
//!
//! Redis pub/sub is at-most-once: a change published while a replica's subscription is down
//! never reaches its watchers. Watchers then see the next change, and a reconnecting dashboard
//! starts from a fresh snapshot, so nothing is lost for good, only late.

use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;

use crate::rules::Status;
use crate::service::{HealthService, StatusEvent};

/// The channel every replica of a deployment shares, followed by its database schema so that
/// deployments sharing a Redis stay apart.
const CHANNEL_PREFIX: &str = "plugboard:health:status-changes:";
/// Wait before subscribing again after Redis went away.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// What goes over the channel: which integration changed, from what, and who committed it.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Notice {
    origin: String,
    tenant: String,
    connection_id: String,
    /// None for a new integration.
    previous: Option<String>,
}

/// Publishes this replica's committed changes and relays the other replicas' to its watchers.
#[derive(Clone)]
pub struct Fanout {
    client: redis::Client,
    channel: String,
    /// This replica's name on the channel, so it skips its own notices.
    origin: String,
}

impl Fanout {
    /// Checks `redis_url` at once, so a bad URL stops the service at start. Replicas on the
    /// same database `schema` hear each other.
    pub async fn connect(redis_url: &str, schema: &str) -> Result<Fanout, redis::RedisError> {
        let client = redis::Client::open(redis_url)?;
        // One round trip proves the server answers before the service reports ready.
        let mut connection = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await?;
        Ok(Fanout {
            client,
            channel: format!("{CHANNEL_PREFIX}{schema}"),
            origin: uuid::Uuid::new_v4().to_string(),
        })
    }

    /// Publishes every change `service` commits, until the process ends.
    pub async fn publish_forever(self, service: HealthService) {
        let mut committed = service.watch_committed();
        loop {
            let event = match committed.recv().await {
                Ok(event) => event,
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "status fan-out fell behind; some changes stay local"
                    );
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            let notice = Notice {
                origin: self.origin.clone(),
                tenant: event.tenant.clone(),
                connection_id: event.view.connection_id.clone(),
                previous: event.previous.map(|status| status.as_str().to_owned()),
            };
            if let Err(error) = self.publish(&notice).await {
                tracing::warn!(
                    error = %error,
                    connection_id = %notice.connection_id,
                    "cannot publish a status change to the other health replicas"
                );
            }
        }
    }

    async fn publish(&self, notice: &Notice) -> Result<(), redis::RedisError> {
        let payload = serde_json::to_string(notice).map_err(|error| {
            redis::RedisError::from((
                redis::ErrorKind::Client,
                "notice encoding",
                error.to_string(),
            ))
        })?;
        let mut connection = self.client.get_multiplexed_async_connection().await?;
        redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(payload)
            .query_async::<i64>(&mut connection)
            .await?;
        Ok(())
    }

    /// Hands the other replicas' changes to this replica's watchers, resubscribing after Redis
    /// goes away, until the process ends.
    pub async fn relay_forever(self, service: HealthService) {
        loop {
            match self.relay(&service).await {
                Ok(()) => tracing::info!("status fan-out subscription ended; subscribing again"),
                Err(error) => {
                    tracing::warn!(error = %error, "status fan-out subscription failed; retrying")
                }
            }
            tokio::time::sleep(RECONNECT_DELAY).await;
        }
    }

    async fn relay(&self, service: &HealthService) -> Result<(), redis::RedisError> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(&self.channel).await?;
        tracing::debug!(channel = %self.channel, "subscribed to status changes");
        let mut messages = pubsub.on_message();
        while let Some(message) = messages.next().await {
            let notice: Notice = match message
                .get_payload::<String>()
                .ok()
                .and_then(|text| serde_json::from_str(&text).ok())
            {
                Some(notice) => notice,
                None => {
                    tracing::warn!("ignored an unreadable status change notice");
                    continue;
                }
            };
            if notice.origin == self.origin {
                continue;
            }
            let previous = notice.previous.as_deref().and_then(Status::parse);
            match service
                .view_of(&notice.tenant, &notice.connection_id, chrono::Utc::now())
                .await
            {
                Ok(Some(view)) => service.announce(StatusEvent {
                    tenant: notice.tenant,
                    previous,
                    view,
                }),
                Ok(None) => {}
                Err(error) => tracing::warn!(
                    error = %error,
                    connection_id = %notice.connection_id,
                    "cannot read a status change another replica committed"
                ),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Notice;

    #[test]
    fn a_notice_names_the_change_and_not_its_content() {
        let notice = Notice {
            origin: "replica-a".into(),
            tenant: "acme".into(),
            connection_id: "bh-1".into(),
            previous: Some("operational".into()),
        };
        let text = serde_json::to_string(&notice).unwrap();
        assert_eq!(
            text,
            r#"{"origin":"replica-a","tenant":"acme","connection_id":"bh-1","previous":"operational"}"#
        );
        assert_eq!(serde_json::from_str::<Notice>(&text).unwrap(), notice);
    }
}
