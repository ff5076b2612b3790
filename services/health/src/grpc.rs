//! The gRPC adapter: takes the tenant from the caller, calls [`HealthService`], maps errors
//! with `to_status`.

use std::pin::Pin;

use chrono::Utc;
use futures::Stream;
use plugboard_proto::error::to_status;
use plugboard_proto::health::v1::integration_health_service_server::IntegrationHealthService;
use plugboard_proto::health::v1::report_request::Report;
use plugboard_proto::health::v1::{
    EntityFreshness, GetStatusRequest, GetStatusResponse, GetUptimeRequest, GetUptimeResponse,
    GetWebhookRequest, GetWebhookResponse, Incident, IncidentUpdate, IntegrationHealth,
    IntegrationStatus, ListIncidentsRequest, ListIncidentsResponse, ReportRequest, ReportResponse,
    SetWebhookRequest, SetWebhookResponse, UptimeDay, Warning, WatchStatusRequest,
    WatchStatusResponse,
};
use plugboard_runtime::identity::Caller;
use plugboard_runtime::storage::format_time;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::error::Error;
use crate::rules::{self, uptime};
use crate::service::{HealthService, IntegrationView};
use crate::webhooks::Webhooks;
use crate::{incidents, rules::freshness::Freshness};

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchStatusResponse, Status>> + Send>>;

pub struct GrpcHealthAdapter {
    service: HealthService,
    webhooks: Webhooks,
    /// Becomes true when the process stops: open `WatchStatus` streams then end, so they do
    /// not hold the drain until the grace period runs out (clients reconnect elsewhere).
    stopping: watch::Receiver<bool>,
}

impl GrpcHealthAdapter {
    pub fn new(
        service: HealthService,
        webhooks: Webhooks,
        stopping: watch::Receiver<bool>,
    ) -> GrpcHealthAdapter {
        GrpcHealthAdapter {
            service,
            webhooks,
            stopping,
        }
    }
}

fn connection_of(request: &ReportRequest) -> &str {
    match &request.report {
        Some(Report::RunOutcome(run)) => &run.connection_id,
        Some(Report::Heartbeat(heartbeat)) => &heartbeat.connection_id,
        Some(Report::Credential(credential)) => &credential.connection_id,
        None => "",
    }
}

fn to_proto_status(status: rules::Status) -> IntegrationStatus {
    match status {
        rules::Status::Operational => IntegrationStatus::Operational,
        rules::Status::Degraded => IntegrationStatus::Degraded,
        rules::Status::Down => IntegrationStatus::Down,
        rules::Status::NeedsReconnect => IntegrationStatus::NeedsReconnect,
        rules::Status::Paused => IntegrationStatus::Paused,
    }
}

fn to_health(view: IntegrationView) -> IntegrationHealth {
    IntegrationHealth {
        connection_id: view.connection_id,
        connector: view.connector,
        status: to_proto_status(view.assessment.status).into(),
        reason: view.assessment.reason,
        action: view.assessment.action,
        last_success_at: view.last_success_at,
        last_run_at: view.last_run_at,
        since: view.since,
        warnings: view
            .warnings
            .into_iter()
            .map(|warning| Warning {
                code: warning.code,
                entity: warning.entity,
                reason: warning.reason,
                action: warning.action,
            })
            .collect(),
        freshness: view.freshness.into_iter().map(to_freshness).collect(),
    }
}

fn to_freshness(entry: Freshness) -> EntityFreshness {
    EntityFreshness {
        entity: entry.entity,
        last_success_at: entry.last_success_at.map(format_time).unwrap_or_default(),
        target_seconds: u32::try_from(entry.target.as_secs()).unwrap_or(u32::MAX),
        age_seconds: entry.age.as_secs(),
        within_target: entry.within_target,
    }
}

fn to_incident(incident: incidents::Incident) -> Incident {
    Incident {
        id: incident.id,
        connection_id: incident.connection_id,
        connector: incident.connector,
        worst_status: to_proto_status(incident.worst_status).into(),
        title: incident.title,
        opened_at: incident.opened_at,
        resolved_at: incident.resolved_at,
        timeline: incident
            .timeline
            .into_iter()
            .map(|update| IncidentUpdate {
                at: update.at,
                status: to_proto_status(update.status).into(),
                reason: update.reason,
            })
            .collect(),
    }
}

/// The snapshot a watcher gets first (and again after lagging): the current statuses.
async fn snapshot(
    service: &HealthService,
    tenant: &str,
    connection_id: &str,
) -> Result<Vec<WatchStatusResponse>, Status> {
    let views = service
        .status(tenant, connection_id, Utc::now())
        .await
        .map_err(|e| to_status(&e))?;
    Ok(views
        .into_iter()
        .map(|view| WatchStatusResponse {
            integration: Some(to_health(view)),
            previous_status: IntegrationStatus::Unspecified.into(),
            snapshot: true,
        })
        .collect())
}

#[tonic::async_trait]
impl IntegrationHealthService for GrpcHealthAdapter {
    type WatchStatusStream = WatchStream;

    #[instrument(skip_all)]
    async fn set_webhook(
        &self,
        request: Request<SetWebhookRequest>,
    ) -> Result<Response<SetWebhookResponse>, Status> {
        let tenant = Caller::tenant_of(&request)?;
        let url = request.into_inner().url;
        let signing_secret = self
            .webhooks
            .set(&tenant, &url)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(SetWebhookResponse {
            url: url.trim().to_owned(),
            signing_secret,
        }))
    }

    #[instrument(skip_all)]
    async fn get_webhook(
        &self,
        request: Request<GetWebhookRequest>,
    ) -> Result<Response<GetWebhookResponse>, Status> {
        let tenant = Caller::tenant_of(&request)?;
        let url = self
            .webhooks
            .url_of(&tenant)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(GetWebhookResponse {
            url: url.unwrap_or_default(),
        }))
    }

    #[instrument(skip_all, fields(connection_id = %request.get_ref().connection_id))]
    async fn watch_status(
        &self,
        request: Request<WatchStatusRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let tenant = Caller::tenant_of(&request)?;
        let connection_id = request.into_inner().connection_id;
        // Subscribe before the snapshot so no change falls between the two.
        let events = self.service.watch();
        let first = snapshot(&self.service, &tenant, &connection_id).await?;
        let service = self.service.clone();
        let stopping = self.stopping.clone();
        let state = (events, std::collections::VecDeque::from(first));
        let stream = futures::stream::unfold(state, move |(mut events, mut pending)| {
            let service = service.clone();
            let tenant = tenant.clone();
            let connection_id = connection_id.clone();
            let mut stopping = stopping.clone();
            async move {
                loop {
                    if let Some(next) = pending.pop_front() {
                        return Some((Ok(next), (events, pending)));
                    }
                    let received = tokio::select! {
                        received = events.recv() => received,
                        // The process is stopping (or gone): end the stream cleanly.
                        _ = stopping.wait_for(|stopping| *stopping) => return None,
                    };
                    match received {
                        Ok(event) => {
                            let wanted = event.tenant == tenant
                                && (connection_id.is_empty()
                                    || event.view.connection_id == connection_id);
                            if wanted {
                                let message = WatchStatusResponse {
                                    previous_status: event
                                        .previous
                                        .map_or(IntegrationStatus::Unspecified, to_proto_status)
                                        .into(),
                                    integration: Some(to_health(event.view)),
                                    snapshot: false,
                                };
                                return Some((Ok(message), (events, pending)));
                            }
                        }
                        // Missed events: the current state replaces them.
                        Err(RecvError::Lagged(_)) => {
                            match snapshot(&service, &tenant, &connection_id).await {
                                Ok(fresh) => pending.extend(fresh),
                                Err(status) => return Some((Err(status), (events, pending))),
                            }
                        }
                        Err(RecvError::Closed) => return None,
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    #[instrument(skip_all, fields(connection_id = %request.get_ref().connection_id))]
    async fn list_incidents(
        &self,
        request: Request<ListIncidentsRequest>,
    ) -> Result<Response<ListIncidentsResponse>, Status> {
        let tenant = Caller::tenant_of(&request)?;
        let message = request.get_ref();
        let found = self
            .service
            .incidents(&tenant, &message.connection_id, message.limit)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(ListIncidentsResponse {
            incidents: found.into_iter().map(to_incident).collect(),
        }))
    }

    #[instrument(skip_all, fields(connection_id = %request.get_ref().connection_id))]
    async fn get_uptime(
        &self,
        request: Request<GetUptimeRequest>,
    ) -> Result<Response<GetUptimeResponse>, Status> {
        let tenant = Caller::tenant_of(&request)?;
        let message = request.get_ref();
        let days = self
            .service
            .uptime(&tenant, &message.connection_id, message.days, Utc::now())
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(GetUptimeResponse {
            uptime_permille: uptime::overall(&days),
            days: days
                .iter()
                .map(|day| UptimeDay {
                    date: day.date.format("%Y-%m-%d").to_string(),
                    runs: day.runs,
                    failed_runs: day.failed_runs,
                    uptime_permille: day.permille().unwrap_or(1000),
                })
                .collect(),
        }))
    }

    #[instrument(skip_all, fields(connection_id = %connection_of(request.get_ref())))]
    async fn report(
        &self,
        request: Request<ReportRequest>,
    ) -> Result<Response<ReportResponse>, Status> {
        let tenant = Caller::tenant_of(&request)?;
        let now = Utc::now();
        let result = match &request.get_ref().report {
            Some(Report::RunOutcome(run)) => self.service.report_run(&tenant, run, now).await,
            Some(Report::Heartbeat(heartbeat)) => {
                self.service.report_heartbeat(&tenant, heartbeat, now).await
            }
            Some(Report::Credential(credential)) => {
                self.service
                    .report_credential(&tenant, credential, now)
                    .await
            }
            None => Err(Error::InvalidReport {
                field: "report",
                problem: "must be a run_outcome, a heartbeat or a credential report".to_owned(),
            }),
        };
        result.map_err(|e| to_status(&e))?;
        Ok(Response::new(ReportResponse {}))
    }

    #[instrument(skip_all, fields(connection_id = %request.get_ref().connection_id))]
    async fn get_status(
        &self,
        request: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        let tenant = Caller::tenant_of(&request)?;
        let views = self
            .service
            .status(&tenant, &request.get_ref().connection_id, Utc::now())
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(GetStatusResponse {
            integrations: views.into_iter().map(to_health).collect(),
        }))
    }
}
