//! Which tenant owns the webhook route of a connection. Connection ids are unique per tenant
//! only, so the first tenant to register an id keeps its route; another gets AlreadyExists.

use sqlx::Row;

use plugboard_runtime::storage::now_text;

use super::TenantStore;
use crate::error::Error;

/// The owner of a connection's webhook route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub tenant_id: String,
    pub connector: String,
}

impl TenantStore {
    /// Registers (or re-registers) the tenant's connection for webhooks.
    pub async fn put_webhook_endpoint(
        &self,
        connection_id: &str,
        tenant_id: &str,
        connector: &str,
    ) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO webhook_endpoints (connection_id, tenant_id, connector, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (connection_id) DO UPDATE \
             SET connector = excluded.connector \
             WHERE webhook_endpoints.tenant_id = excluded.tenant_id",
        )
        .bind(connection_id)
        .bind(tenant_id)
        .bind(connector)
        .bind(now_text())
        .execute(&self.pool)
        .await?;
        match self.webhook_endpoint(connection_id).await? {
            Some(endpoint) if endpoint.tenant_id == tenant_id => Ok(()),
            _ => Err(Error::WebhookEndpointTaken(connection_id.to_owned())),
        }
    }

    /// The owner of a connection's webhook route, if it has one.
    pub async fn webhook_endpoint(
        &self,
        connection_id: &str,
    ) -> Result<Option<WebhookEndpoint>, Error> {
        let row = sqlx::query(
            "SELECT tenant_id, connector FROM webhook_endpoints WHERE connection_id = $1",
        )
        .bind(connection_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(WebhookEndpoint {
                tenant_id: row.try_get("tenant_id")?,
                connector: row.try_get("connector")?,
            })
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_route_belongs_to_the_first_tenant_that_registers_it() {
        let dir = std::env::temp_dir().join(format!("pb-gateway-wh-{}", uuid::Uuid::new_v4()));
        let sqlite = TenantStore::open(&plugboard_runtime::storage::sqlite_url(&dir, "gateway"))
            .await
            .expect("sqlite opens");
        let schema = format!("gateway_wh{}", uuid::Uuid::new_v4().simple());
        let postgres =
            TenantStore::open_in_schema("postgres://postgres@127.0.0.1:5432/postgres", &schema)
                .await
                .expect("postgres must run for tests");
        for store in [sqlite, postgres] {
            assert_eq!(store.webhook_endpoint("gh-1").await.unwrap(), None);
            store
                .put_webhook_endpoint("gh-1", "acme", "greenhouse")
                .await
                .unwrap();
            // Again by its owner is fine; by another tenant it is refused and unchanged.
            store
                .put_webhook_endpoint("gh-1", "acme", "greenhouse")
                .await
                .unwrap();
            let taken = store.put_webhook_endpoint("gh-1", "globex", "lever").await;
            assert!(matches!(taken, Err(Error::WebhookEndpointTaken(_))));
            assert_eq!(
                store.webhook_endpoint("gh-1").await.unwrap(),
                Some(WebhookEndpoint {
                    tenant_id: "acme".into(),
                    connector: "greenhouse".into(),
                })
            );
        }
    }
}
