//! Versioned tenant overrides: every save is a new version; the newest applies.

use sqlx::Row;

use super::Store;
use crate::error::Error;

/// Which spec an override applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OverrideKey {
    pub tenant_id: String,
    pub connector: String,
    pub entity: String,
    pub direction: String,
}

/// One saved version of an override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideRow {
    pub connector: String,
    pub entity: String,
    pub direction: String,
    pub version: i64,
    pub yaml: String,
    pub created_at: String,
}

impl Store {
    /// The newest version for `key`, if any.
    pub async fn latest(&self, key: &OverrideKey) -> Result<Option<OverrideRow>, Error> {
        let row = sqlx::query(
            "SELECT connector, entity, direction, version, yaml, created_at FROM tenant_overrides \
             WHERE tenant_id = $1 AND connector = $2 AND entity = $3 AND direction = $4 \
             ORDER BY version DESC LIMIT 1",
        )
        .bind(&key.tenant_id)
        .bind(&key.connector)
        .bind(&key.entity)
        .bind(&key.direction)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::Storage)?;
        row.map(|row| override_row(&row)).transpose()
    }

    /// Stores `yaml` as the next version. With `expected_version` set, only if the newest
    /// version is that one; a concurrent save of the same version loses with a conflict.
    pub async fn insert_next(
        &self,
        key: &OverrideKey,
        yaml: &str,
        expected_version: Option<i64>,
    ) -> Result<OverrideRow, Error> {
        let latest = self.latest(key).await?.map_or(0, |row| row.version);
        if let Some(expected) = expected_version
            && expected != latest
        {
            return Err(Error::OverrideConflict { expected, latest });
        }
        let row = OverrideRow {
            connector: key.connector.clone(),
            entity: key.entity.clone(),
            direction: key.direction.clone(),
            version: latest + 1,
            yaml: yaml.to_owned(),
            created_at: plugboard_runtime::storage::now_text(),
        };
        sqlx::query(
            "INSERT INTO tenant_overrides \
             (tenant_id, connector, entity, direction, version, yaml, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&key.tenant_id)
        .bind(&row.connector)
        .bind(&row.entity)
        .bind(&row.direction)
        .bind(row.version)
        .bind(&row.yaml)
        .bind(&row.created_at)
        .execute(&self.pool)
        .await
        .map_err(|error| {
            if plugboard_runtime::storage::is_unique_violation(&error) {
                Error::OverrideConflict {
                    expected: latest,
                    latest: latest + 1,
                }
            } else {
                Error::Storage(error)
            }
        })?;
        Ok(row)
    }

    /// Every version of every override `tenant_id` has for `connector`, newest first.
    pub async fn list(&self, tenant_id: &str, connector: &str) -> Result<Vec<OverrideRow>, Error> {
        let rows = sqlx::query(
            "SELECT connector, entity, direction, version, yaml, created_at FROM tenant_overrides \
             WHERE tenant_id = $1 AND connector = $2 \
             ORDER BY entity, direction, version DESC",
        )
        .bind(tenant_id)
        .bind(connector)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::Storage)?;
        rows.iter().map(override_row).collect()
    }

    /// The newest version of every override of `connector`, of every tenant. The one query
    /// across tenants: the service re-checks them all when the connector's specs change, and
    /// what it finds is only ever shown to each override's own tenant.
    pub async fn newest_overrides_of(
        &self,
        connector: &str,
    ) -> Result<Vec<(OverrideKey, OverrideRow)>, Error> {
        let rows = sqlx::query(
            "SELECT tenant_id, connector, entity, direction, version, yaml, created_at \
             FROM tenant_overrides AS saved WHERE connector = $1 AND version = \
             (SELECT MAX(version) FROM tenant_overrides AS newer \
              WHERE newer.tenant_id = saved.tenant_id AND newer.connector = saved.connector \
              AND newer.entity = saved.entity AND newer.direction = saved.direction) \
             ORDER BY tenant_id, entity, direction",
        )
        .bind(connector)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::Storage)?;
        rows.iter()
            .map(|row| {
                let saved = override_row(row)?;
                let key = OverrideKey {
                    tenant_id: row.try_get("tenant_id").map_err(Error::Storage)?,
                    connector: saved.connector.clone(),
                    entity: saved.entity.clone(),
                    direction: saved.direction.clone(),
                };
                Ok((key, saved))
            })
            .collect()
    }

    /// The connectors some tenant has an override of.
    pub async fn connectors_with_overrides(&self) -> Result<Vec<String>, Error> {
        let rows =
            sqlx::query("SELECT DISTINCT connector FROM tenant_overrides ORDER BY connector")
                .fetch_all(&self.pool)
                .await
                .map_err(Error::Storage)?;
        rows.iter()
            .map(|row| row.try_get("connector").map_err(Error::Storage))
            .collect()
    }
}

fn override_row(row: &sqlx::any::AnyRow) -> Result<OverrideRow, Error> {
    Ok(OverrideRow {
        connector: row.try_get("connector").map_err(Error::Storage)?,
        entity: row.try_get("entity").map_err(Error::Storage)?,
        direction: row.try_get("direction").map_err(Error::Storage)?,
        version: row.try_get("version").map_err(Error::Storage)?,
        yaml: row.try_get("yaml").map_err(Error::Storage)?,
        created_at: row.try_get("created_at").map_err(Error::Storage)?,
    })
}
