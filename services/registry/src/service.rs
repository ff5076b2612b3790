//! The registry's domain logic: registration, heartbeats, resolution and the reaper.
//!
//! Every method takes the current time so that tests can move it; the gRPC adapter and the
//! reaper pass the wall clock.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use plugboard_proto::registry::v1::ConnectorManifest;
use plugboard_runtime::storage::format_time;
use tracing::{info, warn};

use crate::config::DEFAULT_GONE_RETENTION;
use crate::error::Error;
use crate::manifest;
use crate::store::{InstanceRow, Store};

/// One connector as the registry knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorEntry {
    pub manifest: ConnectorManifest,
    pub live_instances: u32,
    /// RFC 3339 time of the latest heartbeat of any of its instances.
    pub last_seen_at: String,
}

#[derive(Debug)]
pub struct Registry {
    store: Store,
    liveness_ttl: Duration,
    /// How long a gone instance stays listed: deployments mint a new instance id per pod, so
    /// without pruning the table grows with every rollout.
    gone_retention: Duration,
    /// Next pick per connector, so resolutions rotate through live instances.
    rotation: Mutex<HashMap<String, usize>>,
}

impl Registry {
    pub fn new(store: Store, liveness_ttl: Duration) -> Registry {
        Registry {
            store,
            liveness_ttl,
            gone_retention: DEFAULT_GONE_RETENTION,
            rotation: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps gone instances this long after their last heartbeat before pruning them.
    pub fn with_gone_retention(mut self, retention: Duration) -> Registry {
        self.gone_retention = retention;
        self
    }

    pub fn liveness_ttl(&self) -> Duration {
        self.liveness_ttl
    }

    /// Heartbeats at or before this time are too old for the instance to count as live.
    fn cutoff(&self, now: DateTime<Utc>) -> String {
        let ttl = chrono::Duration::from_std(self.liveness_ttl).unwrap_or(chrono::Duration::MAX);
        format_time(
            now.checked_sub_signed(ttl)
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        )
    }

    /// Records a live instance and, unless it would downgrade a running version, its manifest.
    pub async fn register(
        &self,
        manifest: ConnectorManifest,
        instance_id: &str,
        address: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        manifest::validate(&manifest, instance_id, address)?;
        let now_text = format_time(now);
        let cutoff = self.cutoff(now);

        // An old instance re-registering during a rolling update must not push the stored
        // manifest back; a rollback (no live instance runs the stored version) may.
        let stored = self.store.connector(&manifest.name).await?;
        let replace = match &stored {
            None => true,
            Some(row) if !manifest::is_older(&manifest.version, &row.version) => true,
            Some(row) => self
                .store
                .live_instances(&manifest.name, &cutoff)
                .await?
                .iter()
                .all(|instance| instance.version != row.version),
        };
        if replace {
            self.store
                .put_connector(
                    &manifest.name,
                    &manifest.version,
                    &manifest.category,
                    &manifest::encode(&manifest),
                    &now_text,
                )
                .await?;
            let previous = stored.as_ref().map(|row| row.version.as_str());
            if previous != Some(manifest.version.as_str()) {
                info!(
                    connector = %manifest.name,
                    version = %manifest.version,
                    previous_version = previous.unwrap_or(""),
                    "connector manifest stored"
                );
            }
        }

        let instance = InstanceRow {
            instance_id: instance_id.to_owned(),
            connector: manifest.name.clone(),
            version: manifest.version.clone(),
            address: address.to_owned(),
        };
        self.store.put_instance(&instance, &now_text).await?;
        info!(
            instance_id,
            connector = %manifest.name,
            version = %manifest.version,
            address,
            "connector instance registered"
        );
        Ok(())
    }

    /// Keeps a live instance live. A gone or unknown one must register again.
    pub async fn heartbeat(&self, instance_id: &str, now: DateTime<Utc>) -> Result<(), Error> {
        let touched = self
            .store
            .touch_instance(instance_id, &format_time(now), &self.cutoff(now))
            .await?;
        if !touched {
            return Err(Error::InstanceNotFound {
                instance_id: instance_id.to_owned(),
            });
        }
        Ok(())
    }

    /// One live instance of `connector`, rotating through them on successive calls.
    pub async fn resolve(&self, connector: &str, now: DateTime<Utc>) -> Result<InstanceRow, Error> {
        let mut live = self
            .store
            .live_instances(connector, &self.cutoff(now))
            .await?;
        if live.is_empty() {
            return Err(Error::NoLiveInstance {
                connector: connector.to_owned(),
                ttl_seconds: self.liveness_ttl.as_secs(),
            });
        }
        let pick = {
            // A panic elsewhere cannot leave the counter map inconsistent, so poison is harmless.
            let mut rotation = self
                .rotation
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let next = rotation.entry(connector.to_owned()).or_insert(0);
            let pick = *next % live.len();
            *next = next.wrapping_add(1);
            pick
        };
        Ok(live.swap_remove(pick))
    }

    /// The connector's latest manifest, whether or not an instance is live.
    pub async fn connector(&self, name: &str, now: DateTime<Utc>) -> Result<ConnectorEntry, Error> {
        let row = self
            .store
            .connector(name)
            .await?
            .ok_or_else(|| Error::ConnectorNotFound {
                connector: name.to_owned(),
            })?;
        self.entry(&row.name, &row.manifest, now).await
    }

    /// Every connector that ever registered, by name.
    pub async fn connectors(&self, now: DateTime<Utc>) -> Result<Vec<ConnectorEntry>, Error> {
        let rows = self.store.connectors().await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            entries.push(self.entry(&row.name, &row.manifest, now).await?);
        }
        Ok(entries)
    }

    async fn entry(
        &self,
        name: &str,
        manifest_text: &str,
        now: DateTime<Utc>,
    ) -> Result<ConnectorEntry, Error> {
        let liveness = self.store.liveness(name, &self.cutoff(now)).await?;
        Ok(ConnectorEntry {
            manifest: manifest::decode(name, manifest_text)?,
            live_instances: u32::try_from(liveness.live_instances).unwrap_or(u32::MAX),
            last_seen_at: liveness.last_seen_at,
        })
    }

    /// Marks every stale instance gone; returns how many it marked.
    pub async fn reap(&self, now: DateTime<Utc>) -> Result<usize, Error> {
        let cutoff = self.cutoff(now);
        let mut marked = 0;
        for instance in self.store.stale_instances(&cutoff).await? {
            // Another replica's reaper or a late registration may have got there first.
            if self.store.mark_gone(&instance.instance_id, &cutoff).await? {
                info!(
                    instance_id = %instance.instance_id,
                    connector = %instance.connector,
                    "connector instance gone"
                );
                marked += 1;
            }
        }
        Ok(marked)
    }

    /// Deletes gone instances older than the retention (keeping each connector's most recent
    /// one); returns how many it deleted.
    pub async fn prune(&self, now: DateTime<Utc>) -> Result<u64, Error> {
        let retention =
            chrono::Duration::from_std(self.gone_retention).unwrap_or(chrono::Duration::MAX);
        let cutoff = format_time(
            now.checked_sub_signed(retention)
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        );
        let pruned = self.store.prune_gone(&cutoff).await?;
        if pruned > 0 {
            info!(pruned, "pruned long-gone connector instances");
        }
        Ok(pruned)
    }

    /// Reaps every third of the TTL until the task is dropped or aborted.
    pub async fn reap_forever(&self) {
        let period = (self.liveness_ttl / 3).max(Duration::from_millis(100));
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let now = Utc::now();
            if let Err(error) = self.reap(now).await {
                warn!(error = %error, "reaping gone connector instances failed");
            }
            if let Err(error) = self.prune(now).await {
                warn!(error = %error, "pruning gone connector instances failed");
            }
        }
    }
}
