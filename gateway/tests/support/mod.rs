//! Small tonic stand-ins for sync, health and the registry, served like the real services (mesh
//! key required, `grpc.health.v1` included) and answering per tenant from the signed caller
//! identity, so the tests see exactly what the gateway asked for and as whom.

use plugboard_proto::health::v1::integration_health_service_server::{
    IntegrationHealthService, IntegrationHealthServiceServer,
};
use plugboard_proto::health::v1::{
    GetStatusRequest, GetStatusResponse, GetUptimeRequest, GetUptimeResponse, GetWebhookRequest,
    GetWebhookResponse, IntegrationHealth, IntegrationStatus, ListIncidentsRequest,
    ListIncidentsResponse, ReportRequest, ReportResponse, SetWebhookRequest, SetWebhookResponse,
    WatchStatusRequest, WatchStatusResponse,
};
use plugboard_proto::registry::v1::registry_service_server::{
    RegistryService, RegistryServiceServer,
};
use plugboard_proto::registry::v1::{
    ConnectorEntry, ConnectorManifest, GetConnectorRequest, GetConnectorResponse, HeartbeatRequest,
    HeartbeatResponse, ListConnectorsRequest, ListConnectorsResponse, RegisterRequest,
    RegisterResponse, ResolveRequest, ResolveResponse,
};
use plugboard_proto::sync::v1::sync_service_server::{SyncService, SyncServiceServer};
use plugboard_proto::sync::v1::*;
use plugboard_runtime::identity::{Caller, MeshKey, RequireCaller};
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic::{Request, Response, Status};

pub const MESH_KEY: &str = "a-test-mesh-key-of-at-least-32-bytes!!";

pub fn mesh_key() -> MeshKey {
    MeshKey::new(&secrecy::SecretString::from(MESH_KEY.to_owned())).unwrap()
}

/// The tenant of a call, refusing any caller but the gateway.
fn gateway_tenant<T>(request: &Request<T>) -> Result<String, Status> {
    let caller = Caller::of(request)?;
    if caller.subject != "gateway" {
        return Err(Status::permission_denied(
            "only the gateway calls this stand-in",
        ));
    }
    Caller::tenant_of(request)
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not offered by this stand-in"))
}

fn counts(pairs: &[(&str, u64)]) -> Vec<EntityCount> {
    pairs
        .iter()
        .map(|(entity, count)| EntityCount {
            entity: (*entity).to_owned(),
            count: *count,
        })
        .collect()
}

fn run(state: RunState, error: &str) -> Option<RunInfo> {
    Some(RunInfo {
        run_id: "r1".to_owned(),
        state: state as i32,
        error: error.to_owned(),
        ..RunInfo::default()
    })
}

pub struct FakeSync;

#[tonic::async_trait]
impl SyncService for FakeSync {
    type WatchChangesStream = futures::stream::Empty<Result<WatchChangesResponse, Status>>;

    async fn watch_changes(
        &self,
        _: Request<WatchChangesRequest>,
    ) -> Result<Response<Self::WatchChangesStream>, Status> {
        unimplemented()
    }

    async fn list_runs(
        &self,
        _: Request<ListRunsRequest>,
    ) -> Result<Response<ListRunsResponse>, Status> {
        unimplemented()
    }

    async fn parse_document(
        &self,
        _: Request<plugboard_proto::sync::v1::ParseDocumentRequest>,
    ) -> Result<Response<plugboard_proto::sync::v1::ParseDocumentResponse>, Status> {
        unimplemented()
    }

    async fn get_parse_usage(
        &self,
        _: Request<plugboard_proto::sync::v1::GetParseUsageRequest>,
    ) -> Result<Response<plugboard_proto::sync::v1::GetParseUsageResponse>, Status> {
        unimplemented()
    }

    async fn ingest_webhook_events(
        &self,
        _: Request<plugboard_proto::sync::v1::IngestWebhookEventsRequest>,
    ) -> Result<Response<plugboard_proto::sync::v1::IngestWebhookEventsResponse>, Status> {
        unimplemented()
    }

    async fn pause_sync(
        &self,
        _: Request<PauseSyncRequest>,
    ) -> Result<Response<PauseSyncResponse>, Status> {
        unimplemented()
    }

    async fn give_up_push(
        &self,
        _: Request<GiveUpPushRequest>,
    ) -> Result<Response<GiveUpPushResponse>, Status> {
        unimplemented()
    }

    async fn set_schedule(
        &self,
        _: Request<SetScheduleRequest>,
    ) -> Result<Response<SetScheduleResponse>, Status> {
        unimplemented()
    }

    async fn resume_sync(
        &self,
        _: Request<ResumeSyncRequest>,
    ) -> Result<Response<ResumeSyncResponse>, Status> {
        unimplemented()
    }

    async fn trigger_full_refresh(
        &self,
        _: Request<TriggerFullRefreshRequest>,
    ) -> Result<Response<TriggerFullRefreshResponse>, Status> {
        unimplemented()
    }

    async fn create_sync(
        &self,
        _: Request<CreateSyncRequest>,
    ) -> Result<Response<CreateSyncResponse>, Status> {
        unimplemented()
    }

    async fn list_syncs(
        &self,
        request: Request<ListSyncsRequest>,
    ) -> Result<Response<ListSyncsResponse>, Status> {
        let syncs = match gateway_tenant(&request)?.as_str() {
            "acme" => vec![
                SyncInfo {
                    connection_id: "acme-bullhorn".to_owned(),
                    connector: "bullhorn".to_owned(),
                    last_sync_at: "2026-12-03T09:00:00.000Z".to_owned(),
                    records: counts(&[("job", 3), ("candidate", 5)]),
                    last_run: run(RunState::Succeeded, ""),
                    ..SyncInfo::default()
                },
                SyncInfo {
                    connection_id: "acme-broadbean".to_owned(),
                    connector: "broadbean".to_owned(),
                    last_run: run(RunState::Failed, "partner returned 500"),
                    ..SyncInfo::default()
                },
            ],
            "globex" => vec![SyncInfo {
                connection_id: "globex-bullhorn".to_owned(),
                connector: "bullhorn".to_owned(),
                last_sync_at: "2026-12-02T08:00:00.000Z".to_owned(),
                records: counts(&[("placement", 9)]),
                last_run: run(RunState::Succeeded, ""),
                ..SyncInfo::default()
            }],
            "broken" => {
                return Err(Status::unavailable(
                    "database said: connection refused at 10.0.0.7",
                ));
            }
            _ => Vec::new(),
        };
        Ok(Response::new(ListSyncsResponse { syncs }))
    }

    async fn trigger_run(
        &self,
        _: Request<TriggerRunRequest>,
    ) -> Result<Response<TriggerRunResponse>, Status> {
        unimplemented()
    }

    async fn get_run(&self, _: Request<GetRunRequest>) -> Result<Response<GetRunResponse>, Status> {
        unimplemented()
    }

    async fn list_records(
        &self,
        _: Request<ListRecordsRequest>,
    ) -> Result<Response<ListRecordsResponse>, Status> {
        unimplemented()
    }

    async fn list_quarantine(
        &self,
        _: Request<ListQuarantineRequest>,
    ) -> Result<Response<ListQuarantineResponse>, Status> {
        unimplemented()
    }

    async fn push_record(
        &self,
        _: Request<PushRecordRequest>,
    ) -> Result<Response<PushRecordResponse>, Status> {
        unimplemented()
    }

    async fn get_push(
        &self,
        _: Request<GetPushRequest>,
    ) -> Result<Response<GetPushResponse>, Status> {
        unimplemented()
    }

    async fn list_pushes(
        &self,
        _: Request<ListPushesRequest>,
    ) -> Result<Response<ListPushesResponse>, Status> {
        unimplemented()
    }

    async fn put_two_way_policy(
        &self,
        _: Request<PutTwoWayPolicyRequest>,
    ) -> Result<Response<PutTwoWayPolicyResponse>, Status> {
        unimplemented()
    }

    async fn get_two_way_policy(
        &self,
        _: Request<GetTwoWayPolicyRequest>,
    ) -> Result<Response<GetTwoWayPolicyResponse>, Status> {
        unimplemented()
    }

    async fn list_conflicts(
        &self,
        _: Request<ListConflictsRequest>,
    ) -> Result<Response<ListConflictsResponse>, Status> {
        unimplemented()
    }

    async fn resolve_conflict(
        &self,
        _: Request<ResolveConflictRequest>,
    ) -> Result<Response<ResolveConflictResponse>, Status> {
        unimplemented()
    }
}

pub struct FakeHealth;

#[tonic::async_trait]
impl IntegrationHealthService for FakeHealth {
    type WatchStatusStream = futures::stream::Empty<Result<WatchStatusResponse, Status>>;

    async fn report(&self, _: Request<ReportRequest>) -> Result<Response<ReportResponse>, Status> {
        unimplemented()
    }

    async fn watch_status(
        &self,
        _: Request<WatchStatusRequest>,
    ) -> Result<Response<Self::WatchStatusStream>, Status> {
        unimplemented()
    }

    async fn list_incidents(
        &self,
        _: Request<ListIncidentsRequest>,
    ) -> Result<Response<ListIncidentsResponse>, Status> {
        unimplemented()
    }

    async fn get_uptime(
        &self,
        _: Request<GetUptimeRequest>,
    ) -> Result<Response<GetUptimeResponse>, Status> {
        unimplemented()
    }

    async fn set_webhook(
        &self,
        _: Request<SetWebhookRequest>,
    ) -> Result<Response<SetWebhookResponse>, Status> {
        unimplemented()
    }

    async fn get_webhook(
        &self,
        _: Request<GetWebhookRequest>,
    ) -> Result<Response<GetWebhookResponse>, Status> {
        unimplemented()
    }

    async fn get_status(
        &self,
        request: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        let entry = |id: &str, status: IntegrationStatus, reason: &str| IntegrationHealth {
            connection_id: id.to_owned(),
            connector: "bullhorn".to_owned(),
            status: status as i32,
            reason: reason.to_owned(),
            ..IntegrationHealth::default()
        };
        // acme-broadbean has no entry: health has not judged it yet.
        let integrations = match gateway_tenant(&request)?.as_str() {
            "acme" => vec![entry(
                "acme-bullhorn",
                IntegrationStatus::Degraded,
                "2 records quarantined",
            )],
            "globex" => vec![entry(
                "globex-bullhorn",
                IntegrationStatus::Operational,
                "syncing normally",
            )],
            _ => Vec::new(),
        };
        // As health does: one named connection it has no entry for is NotFound.
        let wanted = request.get_ref().connection_id.clone();
        if wanted.is_empty() {
            return Ok(Response::new(GetStatusResponse { integrations }));
        }
        let integrations: Vec<IntegrationHealth> = integrations
            .into_iter()
            .filter(|entry| entry.connection_id == wanted)
            .collect();
        if integrations.is_empty() {
            return Err(Status::not_found(format!("no integration {wanted}")));
        }
        Ok(Response::new(GetStatusResponse { integrations }))
    }
}

pub struct FakeRegistry;

#[tonic::async_trait]
impl RegistryService for FakeRegistry {
    async fn register(
        &self,
        _: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        unimplemented()
    }

    async fn heartbeat(
        &self,
        _: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        unimplemented()
    }

    async fn list_connectors(
        &self,
        request: Request<ListConnectorsRequest>,
    ) -> Result<Response<ListConnectorsResponse>, Status> {
        Caller::of(&request)?;
        let bullhorn = ConnectorEntry {
            manifest: Some(ConnectorManifest {
                name: "bullhorn".to_owned(),
                display_name: "Bullhorn".to_owned(),
                category: "ats".to_owned(),
                ..ConnectorManifest::default()
            }),
            live_instances: 1,
            last_seen_at: String::new(),
        };
        Ok(Response::new(ListConnectorsResponse {
            connectors: vec![bullhorn],
        }))
    }

    async fn resolve(
        &self,
        _: Request<ResolveRequest>,
    ) -> Result<Response<ResolveResponse>, Status> {
        unimplemented()
    }

    async fn get_connector(
        &self,
        _: Request<GetConnectorRequest>,
    ) -> Result<Response<GetConnectorResponse>, Status> {
        unimplemented()
    }
}

/// Serves `routes` (plus `grpc.health.v1`) on a fresh loopback port; returns `host:port`.
pub async fn serve(routes: Routes, names: &'static [&'static str]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        plugboard_runtime::server::serve(listener, routes, names, std::future::pending())
            .await
            .unwrap();
    });
    addr
}

/// The five services: sync, health and registry stand-ins, and bare health-only servers for
/// credentials and mapping, which the gateway only probes.
pub struct Services {
    pub credentials: String,
    pub mapping: String,
    pub sync: String,
    pub health: String,
    pub registry: String,
}

pub async fn start_services() -> Services {
    let require = || RequireCaller::new(mesh_key());
    Services {
        credentials: serve(Routes::default(), &[]).await,
        mapping: serve(Routes::default(), &[]).await,
        sync: serve(
            Routes::new(SyncServiceServer::with_interceptor(FakeSync, require())),
            &[<SyncServiceServer<FakeSync> as NamedService>::NAME],
        )
        .await,
        health: serve(
            Routes::new(IntegrationHealthServiceServer::with_interceptor(
                FakeHealth,
                require(),
            )),
            &[<IntegrationHealthServiceServer<FakeHealth> as NamedService>::NAME],
        )
        .await,
        registry: serve(
            Routes::new(RegistryServiceServer::with_interceptor(
                FakeRegistry,
                require(),
            )),
            &[<RegistryServiceServer<FakeRegistry> as NamedService>::NAME],
        )
        .await,
    }
}

/// A loopback address where nothing listens.
pub async fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    addr
}
