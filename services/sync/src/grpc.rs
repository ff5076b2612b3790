//! The gRPC face of the sync service: takes the caller's tenant, calls the domain, converts.

use plugboard_proto::error::to_status;
use plugboard_proto::sync::v1::sync_service_server::SyncService as SyncServiceRpc;
use plugboard_proto::sync::v1::{
    CreateSyncRequest, CreateSyncResponse, EntityCount, GetRunRequest, GetRunResponse,
    ListQuarantineRequest, ListQuarantineResponse, ListRecordsRequest, ListRecordsResponse,
    ListRunsRequest, ListRunsResponse, ListSyncsRequest, ListSyncsResponse, PauseSyncRequest,
    PauseSyncResponse, QuarantinedRecord, ResumeSyncRequest, ResumeSyncResponse, RunInfo,
    RunState as WireRunState, StreamProgress, SyncInfo, TriggerFullRefreshRequest,
    TriggerFullRefreshResponse, TriggerRunRequest, TriggerRunResponse, WatchChangesRequest,
    WatchChangesResponse,
};
use plugboard_proto::sync::v1::{
    GetParseUsageRequest, GetParseUsageResponse, ParseDocumentRequest, ParseDocumentResponse,
};
use plugboard_proto::sync::v1::{
    GetPushRequest, GetPushResponse, GetTwoWayPolicyRequest, GetTwoWayPolicyResponse,
    ListConflictsRequest, ListConflictsResponse, ListPushesRequest, ListPushesResponse,
    PushRecordRequest, PushRecordResponse, PutTwoWayPolicyRequest, PutTwoWayPolicyResponse,
    ResolveConflictRequest, ResolveConflictResponse,
};
use plugboard_proto::sync::v1::{
    GiveUpPushRequest, GiveUpPushResponse, SetScheduleRequest, SetScheduleResponse,
};
use plugboard_proto::sync::v1::{IngestWebhookEventsRequest, IngestWebhookEventsResponse};
use plugboard_runtime::identity::Caller;
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::documents::Documents;
use crate::error::Error;
use crate::grpc_two_way::{
    conflict_info, policy_from_wire, policy_to_wire, push_info, resolution_from_wire,
};
use crate::push::{PushRequest, TwoWayService};
use crate::quarantine::Listed;
use crate::runner::ReadMode;
use crate::service::{NewSync, SyncService, SyncSummary};
use crate::store::{RunRecord, RunState};

pub struct GrpcSyncAdapter {
    service: SyncService,
    two_way: TwoWayService,
    documents: Documents,
}

impl GrpcSyncAdapter {
    pub fn new(
        service: SyncService,
        two_way: TwoWayService,
        documents: Documents,
    ) -> GrpcSyncAdapter {
        GrpcSyncAdapter {
            service,
            two_way,
            documents,
        }
    }
}

#[tonic::async_trait]
impl SyncServiceRpc for GrpcSyncAdapter {
    type WatchChangesStream =
        tokio_stream::wrappers::ReceiverStream<Result<WatchChangesResponse, Status>>;

    #[instrument(skip_all, fields(connection_id = %request.get_ref().connection_id, idempotency_key = %request.get_ref().idempotency_key))]
    async fn push_record(
        &self,
        request: Request<PushRecordRequest>,
    ) -> Result<Response<PushRecordResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        let request = request.into_inner();
        let record = request.record.ok_or_else(|| {
            to_status(&Error::InvalidArgument {
                field: "record",
                reason: "is required".into(),
            })
        })?;
        let wait = std::time::Duration::from_secs(u64::from(request.wait_seconds));
        let push = self
            .two_way
            .push_record(
                &tenant_id,
                PushRequest {
                    connection_id: request.connection_id,
                    idempotency_key: request.idempotency_key,
                    record,
                    wait,
                },
            )
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(PushRecordResponse {
            push: Some(push_info(push)),
        }))
    }

    #[instrument(skip_all, fields(connection_id = %request.get_ref().connection_id, bytes = request.get_ref().content.len()))]
    async fn parse_document(
        &self,
        request: Request<ParseDocumentRequest>,
    ) -> Result<Response<ParseDocumentResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        let parsed = self
            .documents
            .parse(
                &tenant_id,
                crate::grpc_documents::parse_request(request.into_inner()),
            )
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(crate::grpc_documents::parse_response(parsed)))
    }

    #[instrument(skip_all, fields(connection_id = %request.get_ref().connection_id))]
    async fn get_parse_usage(
        &self,
        request: Request<GetParseUsageRequest>,
    ) -> Result<Response<GetParseUsageResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        let request = request.get_ref();
        let (usage, next_page_token) = self
            .documents
            .usage(
                &tenant_id,
                &request.connection_id,
                request.page_size,
                &request.page_token,
            )
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(crate::grpc_documents::usage_response(
            usage,
            next_page_token,
        )))
    }

    #[instrument(skip_all, fields(push_id = %request.get_ref().push_id))]
    async fn get_push(
        &self,
        request: Request<GetPushRequest>,
    ) -> Result<Response<GetPushResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        let push = self
            .two_way
            .get_push(&tenant_id, &request.get_ref().push_id)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(GetPushResponse {
            push: Some(push_info(push)),
        }))
    }

    #[instrument(skip_all, fields(push_id = %request.get_ref().push_id))]
    async fn give_up_push(
        &self,
        request: Request<GiveUpPushRequest>,
    ) -> Result<Response<GiveUpPushResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        let request = request.into_inner();
        let push = self
            .two_way
            .give_up_push(&tenant_id, &request.push_id, &request.reason)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(GiveUpPushResponse {
            push: Some(push_info(push)),
        }))
    }

    #[instrument(skip_all, fields(connection_id = %request.get_ref().connection_id))]
    async fn list_pushes(
        &self,
        request: Request<ListPushesRequest>,
    ) -> Result<Response<ListPushesResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        let request = request.get_ref();
        let (pushes, next_page_token) = self
            .two_way
            .list_pushes(
                &tenant_id,
                &request.connection_id,
                request.page_size,
                &request.page_token,
            )
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(ListPushesResponse {
            pushes: pushes.into_iter().map(push_info).collect(),
            next_page_token,
        }))
    }

    #[instrument(skip_all, fields(connection_id = %request.get_ref().connection_id))]
    async fn put_two_way_policy(
        &self,
        request: Request<PutTwoWayPolicyRequest>,
    ) -> Result<Response<PutTwoWayPolicyResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        let request = request.into_inner();
        let policy = policy_from_wire(request.policy).map_err(|e| to_status(&e))?;
        let policy = self
            .two_way
            .put_policy(&tenant_id, &request.connection_id, policy)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(PutTwoWayPolicyResponse {
            policy: Some(policy_to_wire(policy)),
        }))
    }

    #[instrument(skip_all, fields(connection_id = %request.get_ref().connection_id))]
    async fn get_two_way_policy(
        &self,
        request: Request<GetTwoWayPolicyRequest>,
    ) -> Result<Response<GetTwoWayPolicyResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        let policy = self
            .two_way
            .get_policy(&tenant_id, &request.get_ref().connection_id)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(GetTwoWayPolicyResponse {
            policy: Some(policy_to_wire(policy)),
        }))
    }

    #[instrument(skip_all, fields(connection_id = %request.get_ref().connection_id))]
    async fn list_conflicts(
        &self,
        request: Request<ListConflictsRequest>,
    ) -> Result<Response<ListConflictsResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        let request = request.get_ref();
        let (conflicts, next_page_token) = self
            .two_way
            .list_conflicts(
                &tenant_id,
                &request.connection_id,
                request.held_only,
                request.page_size,
                &request.page_token,
            )
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(ListConflictsResponse {
            conflicts: conflicts.into_iter().map(conflict_info).collect(),
            next_page_token,
        }))
    }

    #[instrument(skip_all, fields(conflict_id = %request.get_ref().conflict_id))]
    async fn resolve_conflict(
        &self,
        request: Request<ResolveConflictRequest>,
    ) -> Result<Response<ResolveConflictResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        let request = request.get_ref();
        let resolution = resolution_from_wire(request.resolution).map_err(|e| to_status(&e))?;
        let conflict = self
            .two_way
            .resolve_conflict(&tenant_id, &request.conflict_id, resolution)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(ResolveConflictResponse {
            conflict: Some(conflict_info(conflict)),
        }))
    }

    #[instrument(skip_all, fields(after_position = request.get_ref().after_position))]
    async fn watch_changes(
        &self,
        request: Request<WatchChangesRequest>,
    ) -> Result<Response<Self::WatchChangesStream>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        let request = request.into_inner();
        let filter = crate::changes::WatchFilter {
            after_position: request.after_position,
            connection_id: request.connection_id,
            entity: request.entity,
        };
        let receiver = self
            .service
            .watch_changes(&tenant_id, filter)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            receiver,
        )))
    }

    #[instrument(skip_all, fields(connection_id = %request.get_ref().connection_id, events = request.get_ref().events.len()))]
    async fn ingest_webhook_events(
        &self,
        request: Request<IngestWebhookEventsRequest>,
    ) -> Result<Response<IngestWebhookEventsResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        let request = request.into_inner();
        let ingested = self
            .service
            .ingest_webhook_events(&tenant_id, &request.connection_id, request.events)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(IngestWebhookEventsResponse {
            accepted: ingested.accepted,
            duplicates: ingested.duplicates,
            ignored: ingested.ignored,
            run_ids: ingested.run_ids,
        }))
    }

    #[instrument(skip_all, fields(connection_id = %request.get_ref().connection_id))]
    async fn list_runs(
        &self,
        request: Request<ListRunsRequest>,
    ) -> Result<Response<ListRunsResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        let request = request.get_ref();
        let runs = self
            .service
            .list_runs(&tenant_id, &request.connection_id, request.limit)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(ListRunsResponse {
            runs: runs.into_iter().map(run_info).collect(),
        }))
    }

    #[instrument(skip_all, fields(connection_id = %request.get_ref().connection_id))]
    async fn set_schedule(
        &self,
        request: Request<SetScheduleRequest>,
    ) -> Result<Response<SetScheduleResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        let request = request.into_inner();
        let summary = self
            .service
            .set_schedule(
                &tenant_id,
                &request.connection_id,
                request.interval_seconds,
                &request.cron,
            )
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(SetScheduleResponse {
            sync: Some(sync_info(summary)),
        }))
    }

    #[instrument(skip_all, fields(connection_id = %request.get_ref().connection_id))]
    async fn pause_sync(
        &self,
        request: Request<PauseSyncRequest>,
    ) -> Result<Response<PauseSyncResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        let summary = self
            .service
            .set_paused(&tenant_id, &request.get_ref().connection_id, true)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(PauseSyncResponse {
            sync: Some(sync_info(summary)),
        }))
    }

    #[instrument(skip_all, fields(connection_id = %request.get_ref().connection_id))]
    async fn resume_sync(
        &self,
        request: Request<ResumeSyncRequest>,
    ) -> Result<Response<ResumeSyncResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        let summary = self
            .service
            .set_paused(&tenant_id, &request.get_ref().connection_id, false)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(ResumeSyncResponse {
            sync: Some(sync_info(summary)),
        }))
    }

    #[instrument(skip_all, fields(connection_id = %request.get_ref().connection_id))]
    async fn create_sync(
        &self,
        request: Request<CreateSyncRequest>,
    ) -> Result<Response<CreateSyncResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        let request = request.into_inner();
        let summary = self
            .service
            .create_sync(
                &tenant_id,
                NewSync {
                    connection_id: request.connection_id,
                    connector: request.connector,
                    settings_json: request.settings_json,
                    streams: request.streams,
                    interval_seconds: request.interval_seconds,
                },
            )
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(CreateSyncResponse {
            sync: Some(sync_info(summary)),
        }))
    }

    #[instrument(skip_all)]
    async fn list_syncs(
        &self,
        request: Request<ListSyncsRequest>,
    ) -> Result<Response<ListSyncsResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        let connection_id = &request.get_ref().connection_id;
        let syncs = if connection_id.is_empty() {
            self.service.list_syncs(&tenant_id).await
        } else {
            let one = self.service.sync_summary(&tenant_id, connection_id).await;
            one.map(|summary| summary.into_iter().collect())
        }
        .map_err(|e| to_status(&e))?;
        Ok(Response::new(ListSyncsResponse {
            syncs: syncs.into_iter().map(sync_info).collect(),
        }))
    }

    #[instrument(skip_all, fields(connection_id = %request.get_ref().connection_id))]
    async fn trigger_run(
        &self,
        request: Request<TriggerRunRequest>,
    ) -> Result<Response<TriggerRunResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        let run_id = self
            .service
            .trigger_run(
                &tenant_id,
                &request.get_ref().connection_id,
                ReadMode::Incremental,
            )
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(TriggerRunResponse { run_id }))
    }

    #[instrument(skip_all, fields(connection_id = %request.get_ref().connection_id))]
    async fn trigger_full_refresh(
        &self,
        request: Request<TriggerFullRefreshRequest>,
    ) -> Result<Response<TriggerFullRefreshResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        let run_id = self
            .service
            .trigger_run(
                &tenant_id,
                &request.get_ref().connection_id,
                ReadMode::FullRefresh,
            )
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(TriggerFullRefreshResponse { run_id }))
    }

    #[instrument(skip_all, fields(run_id = %request.get_ref().run_id))]
    async fn get_run(
        &self,
        request: Request<GetRunRequest>,
    ) -> Result<Response<GetRunResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        let run = self
            .service
            .get_run(&tenant_id, &request.get_ref().run_id)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(GetRunResponse {
            run: Some(run_info(run)),
        }))
    }

    #[instrument(skip_all, fields(connection_id = %request.get_ref().connection_id, entity = %request.get_ref().entity))]
    async fn list_records(
        &self,
        request: Request<ListRecordsRequest>,
    ) -> Result<Response<ListRecordsResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        let request = request.into_inner();
        let (records, next_page_token, total) = self
            .service
            .list_records(
                &tenant_id,
                &request.connection_id,
                &request.entity,
                request.page_size,
                &request.page_token,
            )
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(ListRecordsResponse {
            records,
            next_page_token,
            total,
        }))
    }

    #[instrument(skip_all, fields(connection_id = %request.get_ref().connection_id))]
    async fn list_quarantine(
        &self,
        request: Request<ListQuarantineRequest>,
    ) -> Result<Response<ListQuarantineResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        let request = request.into_inner();
        let (entries, next_page_token) = self
            .service
            .list_quarantine(
                &tenant_id,
                &request.connection_id,
                request.page_size,
                &request.page_token,
                request.include_resolved,
            )
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(ListQuarantineResponse {
            records: entries
                .into_iter()
                .map(|Listed { entry, resolution }| {
                    let resolution = resolution.unwrap_or_default();
                    QuarantinedRecord {
                        run_id: entry.run_id,
                        stream: entry.stream,
                        external_id: entry.external_id,
                        payload_json: entry.payload_json,
                        reason: entry.reason,
                        field_path: entry.field_path,
                        quarantined_at: entry.quarantined_at,
                        resolved_at: resolution.resolved_at,
                        resolved_by_run_id: resolution.run_id,
                    }
                })
                .collect(),
            next_page_token,
        }))
    }
}

fn sync_info(summary: SyncSummary) -> SyncInfo {
    let sync = summary.sync;
    SyncInfo {
        connection_id: sync.connection_id,
        connector: sync.connector,
        streams: sync.streams,
        interval_seconds: sync.interval_seconds,
        paused: sync.paused,
        last_sync_at: sync.last_sync_at.unwrap_or_default(),
        records: summary
            .record_counts
            .into_iter()
            .map(|(entity, count)| EntityCount { entity, count })
            .collect(),
        last_run: summary.last_run.map(run_info),
        cron: sync.cron,
        next_run_at: sync.next_run_at.unwrap_or_default(),
        resumes_at: sync.resumes_at.unwrap_or_default(),
    }
}

fn run_info(run: RunRecord) -> RunInfo {
    let state = match run.state {
        RunState::Running => WireRunState::Running,
        RunState::Succeeded => WireRunState::Succeeded,
        RunState::Failed => WireRunState::Failed,
        RunState::Paused => WireRunState::Paused,
    };
    RunInfo {
        run_id: run.run_id,
        connection_id: run.connection_id,
        state: state as i32,
        started_at: run.started_at,
        finished_at: run.finished_at.unwrap_or_default(),
        streams: run
            .streams
            .into_iter()
            .map(|counters| StreamProgress {
                stream: counters.stream,
                records_read: counters.records_read,
                records_written: counters.records_written,
                records_unchanged: counters.records_unchanged,
                records_quarantined: counters.records_quarantined,
                pages: counters.pages,
                rate_limited_waits: counters.rate_limited_waits,
                records_deleted: counters.records_deleted,
            })
            .collect(),
        error: run.error.unwrap_or_default(),
    }
}
