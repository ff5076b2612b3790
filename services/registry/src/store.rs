//! The registry's tables: connectors (latest manifest) and instances (address and heartbeat).
//!
//! Liveness is decided in the queries: an instance is live while `gone = 0` and its last
//! heartbeat is later than a cutoff (now minus the TTL) passed in by the caller, so a stale
//! instance is never returned even before the reaper has marked it gone. sqlx errors become
//! [`Error::Storage`] here and nowhere else.

use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Row};

use crate::error::Error;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// One connector's latest manifest, as stored.
#[derive(Debug, Clone)]
pub struct ConnectorRow {
    pub name: String,
    pub version: String,
    /// Base64 of the prost-encoded manifest; see [`crate::manifest::decode`].
    pub manifest: String,
}

/// A live instance of a connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRow {
    pub instance_id: String,
    pub connector: String,
    pub version: String,
    pub address: String,
}

/// Instance counts of one connector.
#[derive(Debug, Clone, Default)]
pub struct Liveness {
    pub live_instances: i64,
    /// Latest heartbeat of any instance, live or gone; empty when none ever registered.
    pub last_seen_at: String,
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
}

impl Store {
    /// Opens the database and brings its schema up to date.
    pub async fn open(database_url: &str, schema: &str) -> Result<Store, Error> {
        let pool = plugboard_runtime::storage::open(database_url, schema, &MIGRATOR).await?;
        Ok(Store { pool })
    }

    pub async fn connector(&self, name: &str) -> Result<Option<ConnectorRow>, Error> {
        let row = sqlx::query("SELECT name, version, manifest FROM connectors WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(Error::Storage)?;
        row.map(|row| connector_row(&row)).transpose()
    }

    pub async fn connectors(&self) -> Result<Vec<ConnectorRow>, Error> {
        let rows = sqlx::query("SELECT name, version, manifest FROM connectors ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(Error::Storage)?;
        rows.iter().map(connector_row).collect()
    }

    /// Stores `manifest` as the connector's latest, created or replaced.
    pub async fn put_connector(
        &self,
        name: &str,
        version: &str,
        category: &str,
        manifest: &str,
        now: &str,
    ) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO connectors (name, version, category, manifest, first_registered_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $5) \
             ON CONFLICT (name) DO UPDATE SET version = excluded.version, \
             category = excluded.category, manifest = excluded.manifest, \
             updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(version)
        .bind(category)
        .bind(manifest)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(Error::Storage)?;
        Ok(())
    }

    /// Records an instance as live now; a gone instance with the same id comes back.
    pub async fn put_instance(&self, instance: &InstanceRow, now: &str) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO instances (instance_id, connector, version, address, registered_at, \
             last_heartbeat_at, gone) VALUES ($1, $2, $3, $4, $5, $5, 0) \
             ON CONFLICT (instance_id) DO UPDATE SET connector = excluded.connector, \
             version = excluded.version, address = excluded.address, \
             registered_at = excluded.registered_at, \
             last_heartbeat_at = excluded.last_heartbeat_at, gone = 0",
        )
        .bind(&instance.instance_id)
        .bind(&instance.connector)
        .bind(&instance.version)
        .bind(&instance.address)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(Error::Storage)?;
        Ok(())
    }

    /// Moves a live instance's heartbeat to `now`. False when the instance is unknown, gone, or
    /// stale (its heartbeat is not after `cutoff`).
    pub async fn touch_instance(
        &self,
        instance_id: &str,
        now: &str,
        cutoff: &str,
    ) -> Result<bool, Error> {
        let result = sqlx::query(
            "UPDATE instances SET last_heartbeat_at = $2 \
             WHERE instance_id = $1 AND gone = 0 AND last_heartbeat_at > $3",
        )
        .bind(instance_id)
        .bind(now)
        .bind(cutoff)
        .execute(&self.pool)
        .await
        .map_err(Error::Storage)?;
        Ok(result.rows_affected() > 0)
    }

    /// The connector's live instances, in a stable order so callers can rotate through them.
    pub async fn live_instances(
        &self,
        connector: &str,
        cutoff: &str,
    ) -> Result<Vec<InstanceRow>, Error> {
        let rows = sqlx::query(
            "SELECT instance_id, connector, version, address FROM instances \
             WHERE connector = $1 AND gone = 0 AND last_heartbeat_at > $2 \
             ORDER BY instance_id",
        )
        .bind(connector)
        .bind(cutoff)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::Storage)?;
        rows.iter().map(instance_row).collect()
    }

    /// Live instance count and last heartbeat of one connector.
    pub async fn liveness(&self, connector: &str, cutoff: &str) -> Result<Liveness, Error> {
        let row = sqlx::query(
            "SELECT COUNT(CASE WHEN gone = 0 AND last_heartbeat_at > $2 THEN 1 END), \
             COALESCE(MAX(last_heartbeat_at), '') FROM instances WHERE connector = $1",
        )
        .bind(connector)
        .bind(cutoff)
        .fetch_one(&self.pool)
        .await
        .map_err(Error::Storage)?;
        Ok(Liveness {
            live_instances: row.try_get(0).map_err(Error::Storage)?,
            last_seen_at: row.try_get(1).map_err(Error::Storage)?,
        })
    }

    /// Instances not yet marked gone whose heartbeat is not after `cutoff`.
    pub async fn stale_instances(&self, cutoff: &str) -> Result<Vec<InstanceRow>, Error> {
        let rows = sqlx::query(
            "SELECT instance_id, connector, version, address FROM instances \
             WHERE gone = 0 AND last_heartbeat_at <= $1 ORDER BY instance_id",
        )
        .bind(cutoff)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::Storage)?;
        rows.iter().map(instance_row).collect()
    }

    /// Deletes gone instances last heard of at or before `cutoff`, except each connector's
    /// most recent one, which keeps its `last_seen_at`. Returns how many went.
    pub async fn prune_gone(&self, cutoff: &str) -> Result<u64, Error> {
        let result = sqlx::query(
            "DELETE FROM instances WHERE gone = 1 AND last_heartbeat_at <= $1 \
             AND last_heartbeat_at < (SELECT MAX(newest.last_heartbeat_at) FROM instances newest \
             WHERE newest.connector = instances.connector)",
        )
        .bind(cutoff)
        .execute(&self.pool)
        .await
        .map_err(Error::Storage)?;
        Ok(result.rows_affected())
    }

    /// Marks an instance gone if it is still stale; false when a heartbeat or a new
    /// registration won the race.
    pub async fn mark_gone(&self, instance_id: &str, cutoff: &str) -> Result<bool, Error> {
        let result = sqlx::query(
            "UPDATE instances SET gone = 1 \
             WHERE instance_id = $1 AND gone = 0 AND last_heartbeat_at <= $2",
        )
        .bind(instance_id)
        .bind(cutoff)
        .execute(&self.pool)
        .await
        .map_err(Error::Storage)?;
        Ok(result.rows_affected() > 0)
    }
}

fn connector_row(row: &sqlx::any::AnyRow) -> Result<ConnectorRow, Error> {
    Ok(ConnectorRow {
        name: row.try_get("name").map_err(Error::Storage)?,
        version: row.try_get("version").map_err(Error::Storage)?,
        manifest: row.try_get("manifest").map_err(Error::Storage)?,
    })
}

fn instance_row(row: &sqlx::any::AnyRow) -> Result<InstanceRow, Error> {
    Ok(InstanceRow {
        instance_id: row.try_get("instance_id").map_err(Error::Storage)?,
        connector: row.try_get("connector").map_err(Error::Storage)?,
        version: row.try_get("version").map_err(Error::Storage)?,
        address: row.try_get("address").map_err(Error::Storage)?,
    })
}
