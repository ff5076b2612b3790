//! Credential row changes told to every replica over Redis, so that their row caches
//! ([`crate::row_cache`]) forget a row as soon as any replica writes it.
//!
//! A replica that commits a write to a row publishes its (tenant, connection id) on one channel
//! per database schema before the write returns; every replica, itself included, forgets that
//! row when the message arrives. The message names the row and carries nothing of it. Redis
//! pub/sub is at-most-once: while this replica is not subscribed (at start, after Redis went
//! away) its cache keeps nothing, and whatever it kept is dropped when the subscription ends.
//! A subscription that dies without the connection closing goes unnoticed; the cache's age
//! bound ([`crate::row_cache::ROW_MAX_AGE`]) limits what that can serve.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use redis::aio::{ConnectionManager, PubSubStream};

use crate::row_cache::RowCache;

/// Channel of a deployment's row changes, followed by its database schema so that
/// deployments sharing a Redis stay apart.
const CHANNEL_PREFIX: &str = "plugboard:credentials:row-changes:";
/// Wait before subscribing again after the subscription ended.
const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);

/// Publishes this replica's row writes and follows every replica's.
#[derive(Clone)]
pub struct RowChanges {
    publisher: ConnectionManager,
    channel: String,
    /// Ends the subscription when the last clone goes.
    _following: Arc<Following>,
}

impl std::fmt::Debug for RowChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowChanges")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

struct Following(tokio::task::JoinHandle<()>);

impl Drop for Following {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl RowChanges {
    /// Subscribes at once, so that a Redis that cannot be reached stops the service at start,
    /// then enables `rows` and keeps it in step with the replicas on `schema`.
    pub async fn follow(
        redis_url: &str,
        schema: &str,
        rows: RowCache,
    ) -> Result<RowChanges, redis::RedisError> {
        let client = redis::Client::open(redis_url)?;
        let channel = format!("{CHANNEL_PREFIX}{schema}");
        let publisher = ConnectionManager::new(client.clone()).await?;
        let first = subscribe(&client, &channel, &rows).await?;
        let following = tokio::spawn(follow_forever(client, channel.clone(), rows, first));
        Ok(RowChanges {
            publisher,
            channel,
            _following: Arc::new(Following(following)),
        })
    }

    /// Tells every replica that a row was written. A message that cannot be sent is logged:
    /// the write is committed, and the other replicas' age bound makes them read it soon.
    pub async fn publish(&self, tenant: &str, connection_id: &str) {
        let mut connection = self.publisher.clone();
        let sent = redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(encode(tenant, connection_id))
            .query_async::<i64>(&mut connection)
            .await;
        if let Err(error) = sent {
            tracing::warn!(
                error = %error,
                connection_id,
                "cannot tell the other replicas that a credential changed"
            );
        }
    }
}

/// Subscribes, then lets `rows` keep rows again: from here on no write is missed.
async fn subscribe(
    client: &redis::Client,
    channel: &str,
    rows: &RowCache,
) -> Result<PubSubStream, redis::RedisError> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    rows.reset(true);
    tracing::debug!(channel, "following credential row changes");
    Ok(pubsub.into_on_message())
}

async fn follow_forever(
    client: redis::Client,
    channel: String,
    rows: RowCache,
    first: PubSubStream,
) {
    let mut messages = first;
    loop {
        while let Some(message) = messages.next().await {
            let payload = message.get_payload::<String>().ok();
            match payload.as_deref().and_then(decode) {
                Some((tenant, connection_id)) => rows.forget(tenant, connection_id),
                None => {
                    tracing::warn!("an unreadable credential change message; dropping every row");
                    rows.reset(true);
                }
            }
        }
        // Messages published from here on are not heard: keep nothing until subscribed again.
        rows.reset(false);
        tracing::warn!("credential row changes subscription ended; rows are read every lease");
        loop {
            tokio::time::sleep(RESUBSCRIBE_DELAY).await;
            match subscribe(&client, &channel, &rows).await {
                Ok(stream) => {
                    tracing::info!("following credential row changes again");
                    messages = stream;
                    break;
                }
                Err(error) => {
                    tracing::debug!(error = %error, "cannot subscribe to credential row changes")
                }
            }
        }
    }
}

/// `<tenant length>:<tenant><connection id>`: unambiguous whatever the ids contain.
fn encode(tenant: &str, connection_id: &str) -> String {
    format!("{}:{tenant}{connection_id}", tenant.len())
}

fn decode(text: &str) -> Option<(&str, &str)> {
    let (length, rest) = text.split_once(':')?;
    let length: usize = length.parse().ok()?;
    Some((rest.get(..length)?, rest.get(length..)?))
}

#[cfg(test)]
mod tests {
    use super::{decode, encode};

    #[test]
    fn a_message_names_the_row_whatever_its_ids_hold() {
        for (tenant, connection_id) in [("acme", "bh-1"), ("a:b", ":c"), ("", "x"), ("é", "ü")] {
            let text = encode(tenant, connection_id);
            assert_eq!(decode(&text), Some((tenant, connection_id)), "{text}");
        }
        assert_eq!(decode("9:ab"), None);
        assert_eq!(decode("ab"), None);
        assert_eq!(decode("x:ab"), None);
    }
}
