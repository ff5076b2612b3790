//! The gateway's OAuth tables: connects in flight (by state hash) and, per OAuth-connected
//! integration, where its customer consents again.

use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::error::Error;
use crate::tenants::TenantStore;

/// A connect between BeginOAuth and the partner's redirect back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingConnect {
    pub tenant_id: String,
    pub connection_id: String,
    pub connector: String,
    pub settings_json: String,
    pub authorize_url: String,
    pub reconnect: bool,
}

/// SHA-256 hex of a connect `state`.
pub fn state_hash(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

impl TenantStore {
    pub async fn insert_connect(&self, state: &str, pending: &PendingConnect) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO oauth_connects (state_hash, tenant_id, connection_id, connector, \
             settings_json, authorize_url, reconnect, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(state_hash(state))
        .bind(&pending.tenant_id)
        .bind(&pending.connection_id)
        .bind(&pending.connector)
        .bind(&pending.settings_json)
        .bind(&pending.authorize_url)
        .bind(i64::from(pending.reconnect))
        .bind(plugboard_runtime::storage::now_text())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Removes and returns the connect of `state`: a state completes once.
    pub async fn take_connect(&self, state: &str) -> Result<Option<PendingConnect>, Error> {
        let row = sqlx::query(
            "DELETE FROM oauth_connects WHERE state_hash = $1 RETURNING tenant_id, \
             connection_id, connector, settings_json, authorize_url, reconnect",
        )
        .bind(state_hash(state))
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok(PendingConnect {
                tenant_id: row.try_get("tenant_id")?,
                connection_id: row.try_get("connection_id")?,
                connector: row.try_get("connector")?,
                settings_json: row.try_get("settings_json")?,
                authorize_url: row.try_get("authorize_url")?,
                reconnect: row.try_get::<i64, _>("reconnect")? != 0,
            })
        })
        .transpose()
    }

    /// Remembers where the integration's customer consents, for a later reconnect.
    pub async fn remember_oauth_integration(&self, pending: &PendingConnect) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO oauth_integrations (tenant_id, connection_id, connector, authorize_url) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, connection_id) DO UPDATE SET \
             connector = excluded.connector, authorize_url = excluded.authorize_url",
        )
        .bind(&pending.tenant_id)
        .bind(&pending.connection_id)
        .bind(&pending.connector)
        .bind(&pending.authorize_url)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The consent URL of one of the tenant's OAuth-connected integrations.
    pub async fn oauth_integration(
        &self,
        tenant_id: &str,
        connection_id: &str,
    ) -> Result<Option<(String, String)>, Error> {
        let row = sqlx::query(
            "SELECT connector, authorize_url FROM oauth_integrations \
             WHERE tenant_id = $1 AND connection_id = $2",
        )
        .bind(tenant_id)
        .bind(connection_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| Ok((row.try_get("connector")?, row.try_get("authorize_url")?)))
            .transpose()
    }
}
