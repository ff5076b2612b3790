//! Telling the health service when a connection's access changes condition: the partner
//! refused the grant (`invalid_grant`, revoked consent: the connection needs a reconnect), or a
//! put or connect made it valid again. One report per change, not per lease.
//!
//! The change and its report row (`health_outbox`) are written in one transaction; a
//! [`Reporter`] task sends queued rows to health, acting for the row's tenant, and deletes
//! each once health took it. Health counts a report id once, so two replicas sending the same
//! row, or a retry after a lost answer, still make one transition.

use std::sync::Arc;
use std::time::Duration;

use plugboard_proto::health::v1::integration_health_service_client::IntegrationHealthServiceClient;
use plugboard_proto::health::v1::report_request::Report;
use plugboard_proto::health::v1::{CredentialCondition, CredentialReport, ReportRequest};
use plugboard_runtime::identity::MeshCredentials;
use plugboard_runtime::storage::now_text;
use sqlx::Row;
use tokio::sync::Notify;
use tonic::transport::Channel;

use crate::error::Error;
use crate::store::CredentialStore;

/// Rows sent per pass.
const BATCH: i64 = 50;
/// Longest pause between passes while health is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A pass runs at least this often, for rows another replica queued.
const POLL: Duration = Duration::from_secs(5);

/// The condition a report announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Rejected,
    Valid,
}

impl Condition {
    fn as_str(self) -> &'static str {
        match self {
            Condition::Rejected => "rejected",
            Condition::Valid => "valid",
        }
    }
}

/// A queued report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    pub id: String,
    pub tenant: String,
    pub connection_id: String,
    pub connector: String,
    pub condition: Condition,
    /// Plain words for the customer; never a secret.
    pub reason: String,
    pub at: String,
}

impl HealthReport {
    pub fn new(
        tenant: &str,
        connection_id: &str,
        connector: &str,
        condition: Condition,
        reason: &str,
    ) -> HealthReport {
        HealthReport {
            id: uuid::Uuid::now_v7().to_string(),
            tenant: tenant.to_owned(),
            connection_id: connection_id.to_owned(),
            connector: connector.to_owned(),
            condition,
            reason: reason.to_owned(),
            at: now_text(),
        }
    }
}

/// Queues `report` in the caller's transaction.
pub(crate) async fn enqueue(
    connection: &mut sqlx::AnyConnection,
    report: &HealthReport,
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO health_outbox (id, tenant, connection_id, connector, condition, reason, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(report.id.as_str())
    .bind(report.tenant.as_str())
    .bind(report.connection_id.as_str())
    .bind(report.connector.as_str())
    .bind(report.condition.as_str())
    .bind(report.reason.as_str())
    .bind(report.at.as_str())
    .execute(connection)
    .await?;
    Ok(())
}

impl CredentialStore {
    /// The oldest queued reports.
    pub async fn queued_reports(&self, limit: i64) -> Result<Vec<HealthReport>, Error> {
        let rows = sqlx::query(
            "SELECT id, tenant, connection_id, connector, condition, reason, at \
             FROM health_outbox ORDER BY id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let condition: String = row.try_get("condition")?;
                Ok(HealthReport {
                    id: row.try_get("id")?,
                    tenant: row.try_get("tenant")?,
                    connection_id: row.try_get("connection_id")?,
                    connector: row.try_get("connector")?,
                    condition: if condition == "rejected" {
                        Condition::Rejected
                    } else {
                        Condition::Valid
                    },
                    reason: row.try_get("reason")?,
                    at: row.try_get("at")?,
                })
            })
            .collect()
    }

    pub async fn delete_report(&self, id: &str) -> Result<(), Error> {
        sqlx::query("DELETE FROM health_outbox WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

/// Wakes the [`Reporter`] when a report was queued in this process.
#[derive(Debug, Clone, Default)]
pub struct Queued(Arc<Notify>);

impl Queued {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Sends queued reports to health until the process stops.
pub struct Reporter {
    store: CredentialStore,
    channel: Channel,
    identity: MeshCredentials,
    queued: Queued,
}

impl Reporter {
    pub fn new(
        store: CredentialStore,
        channel: Channel,
        identity: MeshCredentials,
        queued: Queued,
    ) -> Reporter {
        Reporter {
            store,
            channel,
            identity,
            queued,
        }
    }

    pub async fn run_forever(self) {
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.pass().await {
                Ok(()) => {
                    backoff = Duration::from_millis(200);
                    // Woken by a report of ours, or polling for other replicas' rows.
                    let _ = tokio::time::timeout(POLL, self.queued.0.notified()).await;
                }
                Err(error) => {
                    tracing::warn!(error = %error, retry_in = ?backoff, "cannot report to health");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Sends every queued row, oldest first; stops at the first failure.
    async fn pass(&self) -> Result<(), ReportError> {
        loop {
            let reports = self.store.queued_reports(BATCH).await?;
            if reports.is_empty() {
                return Ok(());
            }
            for report in reports {
                let mut client = IntegrationHealthServiceClient::with_interceptor(
                    self.channel.clone(),
                    self.identity.for_tenant(&report.tenant),
                );
                let condition = match report.condition {
                    Condition::Rejected => CredentialCondition::Rejected,
                    Condition::Valid => CredentialCondition::Valid,
                };
                let request = ReportRequest {
                    report: Some(Report::Credential(CredentialReport {
                        connection_id: report.connection_id.clone(),
                        connector: report.connector.clone(),
                        condition: condition as i32,
                        reason: report.reason.clone(),
                        at: report.at.clone(),
                        report_id: report.id.clone(),
                    })),
                };
                client.report(request).await.map_err(ReportError::Health)?;
                tracing::info!(
                    connection_id = %report.connection_id,
                    condition = report.condition.as_str(),
                    "reported a change of access to health"
                );
                self.store.delete_report(&report.id).await?;
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum ReportError {
    #[error("health answered {}: {}", .0.code(), .0.message())]
    Health(tonic::Status),
    #[error(transparent)]
    Store(#[from] Error),
}
