//! The gRPC adapter: takes the tenant from the caller, calls [`HealthService`], maps errors
//! with `to_status`.

use chrono::Utc;
use plugboard_proto::error::to_status;
use plugboard_proto::health::v1::integration_health_service_server::IntegrationHealthService;
use plugboard_proto::health::v1::report_request::Report;
use plugboard_proto::health::v1::{
    GetStatusRequest, GetStatusResponse, IntegrationHealth, IntegrationStatus, ReportRequest,
    ReportResponse,
};
use plugboard_runtime::identity::Caller;
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::error::Error;
use crate::rules;
use crate::service::{HealthService, IntegrationView};

pub struct GrpcHealthAdapter {
    service: HealthService,
}

impl GrpcHealthAdapter {
    pub fn new(service: HealthService) -> GrpcHealthAdapter {
        GrpcHealthAdapter { service }
    }
}

fn connection_of(request: &ReportRequest) -> &str {
    match &request.report {
        Some(Report::RunOutcome(run)) => &run.connection_id,
        Some(Report::Heartbeat(heartbeat)) => &heartbeat.connection_id,
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
    }
}

#[tonic::async_trait]
impl IntegrationHealthService for GrpcHealthAdapter {
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
            None => Err(Error::InvalidReport {
                field: "report",
                problem: "must be a run_outcome or a heartbeat".to_owned(),
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
