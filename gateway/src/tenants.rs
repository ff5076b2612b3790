//! Tenants, their API keys and dashboard sessions, in the gateway's own database.
//!
//! API keys and session tokens are high-entropy random tokens, so they are stored only as their
//! SHA-256 hex and found by looking that hash up: a leaked table does not leak a usable key, and
//! no slow password hash is needed.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};

use plugboard_runtime::storage::{format_time, now_text, open};

use crate::error::Error;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Shortest API key accepted; generated keys are much longer.
pub const MIN_API_KEY_LEN: usize = 16;

/// Prefix of generated keys, so that a leaked one is recognisable in scanners and logs.
pub const API_KEY_PREFIX: &str = "pb_";

/// Tenants, API keys and sessions. Cheap to clone.
#[derive(Clone, Debug)]
pub struct TenantStore {
    pool: AnyPool,
}

/// A new random API key: `pb_` and 32 random bytes in unpadded base64url.
pub fn generate_api_key() -> String {
    format!("{API_KEY_PREFIX}{}", random_token())
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn check_tenant_id(tenant_id: &str) -> Result<(), Error> {
    let valid = (1..=128).contains(&tenant_id.len())
        && tenant_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidTenantId(tenant_id.to_owned()))
    }
}

impl TenantStore {
    /// Whether the gateway's own database answers: what the gateway needs to serve anyone.
    pub async fn reachable(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Opens the database (schema `gateway` on PostgreSQL) and runs the migrations.
    pub async fn open(database_url: &str) -> Result<TenantStore, Error> {
        TenantStore::open_in_schema(database_url, "gateway").await
    }

    /// As [`TenantStore::open`], in another PostgreSQL schema; for tests that must not share one.
    pub async fn open_in_schema(database_url: &str, schema: &str) -> Result<TenantStore, Error> {
        let pool = open(database_url, schema, &MIGRATOR).await?;
        Ok(TenantStore { pool })
    }

    /// Creates the tenant, or renames it when it exists.
    /// The pool, for the gateway's other tables ([`crate::oauth_store`]).
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn ensure_tenant(&self, tenant_id: &str, name: &str) -> Result<(), Error> {
        check_tenant_id(tenant_id)?;
        sqlx::query(
            "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name",
        )
        .bind(tenant_id)
        .bind(name)
        .bind(now_text())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Adds an API key for an existing tenant. Adding the same key again to the same tenant does
    /// nothing; the key is never stored, only its hash.
    pub async fn add_api_key(
        &self,
        tenant_id: &str,
        api_key: &str,
        label: &str,
    ) -> Result<(), Error> {
        if api_key.chars().count() < MIN_API_KEY_LEN {
            return Err(Error::ApiKeyTooShort);
        }
        let exists = sqlx::query("SELECT id FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_optional(&self.pool)
            .await?;
        if exists.is_none() {
            return Err(Error::TenantNotFound(tenant_id.to_owned()));
        }
        let key_hash = sha256_hex(api_key);
        sqlx::query(
            "INSERT INTO api_keys (key_hash, tenant_id, label, created_at, revoked) \
             VALUES ($1, $2, $3, $4, 0) ON CONFLICT (key_hash) DO NOTHING",
        )
        .bind(&key_hash)
        .bind(tenant_id)
        .bind(label)
        .bind(now_text())
        .execute(&self.pool)
        .await?;
        // The insert did nothing when the key existed: it must be this tenant's.
        let owner: String = sqlx::query("SELECT tenant_id FROM api_keys WHERE key_hash = $1")
            .bind(&key_hash)
            .fetch_one(&self.pool)
            .await?
            .try_get("tenant_id")?;
        if owner != tenant_id {
            return Err(Error::ApiKeyInUse);
        }
        Ok(())
    }

    /// Revokes a key; it stops authenticating at once, and the dashboard sessions opened with
    /// it end. False when no such key exists.
    pub async fn revoke_api_key(&self, api_key: &str) -> Result<bool, Error> {
        let key_hash = sha256_hex(api_key);
        let mut transaction = self.pool.begin().await?;
        let result = sqlx::query("UPDATE api_keys SET revoked = 1 WHERE key_hash = $1")
            .bind(&key_hash)
            .execute(&mut *transaction)
            .await?;
        let ended = sqlx::query("DELETE FROM sessions WHERE key_hash = $1")
            .bind(&key_hash)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        if result.rows_affected() > 0 {
            tracing::info!(sessions_ended = ended.rows_affected(), "api key revoked");
        }
        Ok(result.rows_affected() > 0)
    }

    /// The tenant of a valid, unrevoked key.
    pub async fn authenticate(&self, api_key: &str) -> Result<Option<String>, Error> {
        if api_key.is_empty() {
            return Ok(None);
        }
        let row = sqlx::query("SELECT tenant_id FROM api_keys WHERE key_hash = $1 AND revoked = 0")
            .bind(sha256_hex(api_key))
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| row.try_get("tenant_id")).transpose()?)
    }

    /// Starts a dashboard session for `tenant_id`, opened with `api_key` (which ends it when
    /// revoked); returns the token for the cookie.
    pub async fn create_session(
        &self,
        tenant_id: &str,
        api_key: &str,
        lifetime: Duration,
    ) -> Result<String, Error> {
        let token = random_token();
        let now = chrono::Utc::now();
        let lifetime = chrono::Duration::from_std(lifetime).unwrap_or(chrono::Duration::hours(12));
        sqlx::query(
            "INSERT INTO sessions (token_hash, tenant_id, created_at, expires_at, key_hash) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(sha256_hex(&token))
        .bind(tenant_id)
        .bind(format_time(now))
        .bind(format_time(now + lifetime))
        .bind(sha256_hex(api_key))
        .execute(&self.pool)
        .await?;
        // Sweep expired sessions now and then so the table stays small.
        sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
            .bind(format_time(now))
            .execute(&self.pool)
            .await?;
        Ok(token)
    }

    /// The tenant of an unexpired session whose API key is still valid. The key is checked
    /// on every request, not only at revocation, so a key revoked by any means ends its
    /// sessions.
    pub async fn session_tenant(&self, token: &str) -> Result<Option<String>, Error> {
        if token.is_empty() {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT sessions.tenant_id FROM sessions \
             JOIN api_keys ON api_keys.key_hash = sessions.key_hash \
             AND api_keys.tenant_id = sessions.tenant_id AND api_keys.revoked = 0 \
             WHERE sessions.token_hash = $1 AND sessions.expires_at > $2",
        )
        .bind(sha256_hex(token))
        .bind(now_text())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| row.try_get("tenant_id")).transpose()?)
    }

    pub async fn delete_session(&self, token: &str) -> Result<(), Error> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(sha256_hex(token))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

mod webhook_endpoints;

pub use webhook_endpoints::WebhookEndpoint;

#[cfg(test)]
mod tests;
