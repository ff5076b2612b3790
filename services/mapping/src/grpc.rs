//! The thin gRPC adapter over [`Mapper`].

use std::sync::Arc;

use plugboard_proto::error::to_status;
use plugboard_proto::mapping::v1::mapping_service_server::MappingService;
use plugboard_proto::mapping::v1::{
    GetPersonRequest, GetPersonResponse, LinkRecordsRequest, LinkRecordsResponse,
    ListBrokenOverridesRequest, ListBrokenOverridesResponse, ListSpecsRequest, ListSpecsResponse,
    ListTenantOverridesRequest, ListTenantOverridesResponse, LookupPersonsRequest,
    LookupPersonsResponse, PutTenantOverrideRequest, PutTenantOverrideResponse,
    ResolvePersonsRequest, ResolvePersonsResponse, TransformRequest, TransformResponse,
    UnlinkRecordsRequest, UnlinkRecordsResponse, ValidateSpecRequest, ValidateSpecResponse,
};
use plugboard_runtime::identity::Caller;
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::service::Mapper;

pub struct GrpcMappingAdapter {
    mapper: Arc<Mapper>,
}

impl GrpcMappingAdapter {
    pub fn new(mapper: Arc<Mapper>) -> GrpcMappingAdapter {
        GrpcMappingAdapter { mapper }
    }
}

#[tonic::async_trait]
impl MappingService for GrpcMappingAdapter {
    #[instrument(skip_all, fields(
        connection_id = %request.get_ref().connection_id,
        connector = %request.get_ref().connector,
        entity = %request.get_ref().entity,
        records = request.get_ref().inputs.len(),
    ))]
    async fn transform(
        &self,
        request: Request<TransformRequest>,
    ) -> Result<Response<TransformResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        self.mapper
            .transform(&tenant_id, request.into_inner())
            .await
            .map(Response::new)
            .map_err(|error| to_status(&error))
    }

    #[instrument(skip_all, fields(name = %request.get_ref().name))]
    async fn validate_spec(
        &self,
        request: Request<ValidateSpecRequest>,
    ) -> Result<Response<ValidateSpecResponse>, Status> {
        Caller::of(&request)?;
        let request = request.into_inner();
        let yaml = request.yaml;
        let name = request.name;
        // Compiling is CPU work; keep it off the async workers.
        let response = tokio::task::spawn_blocking(move || Mapper::validate_spec(&name, &yaml))
            .await
            .map_err(|error| to_status(&crate::Error::Task(error.to_string())))?;
        Ok(Response::new(response))
    }

    #[instrument(skip_all, fields(connector = %request.get_ref().connector))]
    async fn list_specs(
        &self,
        request: Request<ListSpecsRequest>,
    ) -> Result<Response<ListSpecsResponse>, Status> {
        Caller::of(&request)?;
        self.mapper
            .list_specs(&request.get_ref().connector)
            .await
            .map(Response::new)
            .map_err(|error| to_status(&error))
    }

    #[instrument(skip_all, fields(
        connector = %request.get_ref().connector,
        entity = %request.get_ref().entity,
    ))]
    async fn put_tenant_override(
        &self,
        request: Request<PutTenantOverrideRequest>,
    ) -> Result<Response<PutTenantOverrideResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        self.mapper
            .put_tenant_override(&tenant_id, request.into_inner())
            .await
            .map(Response::new)
            .map_err(|error| to_status(&error))
    }

    #[instrument(skip_all, fields(connector = %request.get_ref().connector))]
    async fn list_tenant_overrides(
        &self,
        request: Request<ListTenantOverridesRequest>,
    ) -> Result<Response<ListTenantOverridesResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        self.mapper
            .list_tenant_overrides(&tenant_id, &request.get_ref().connector)
            .await
            .map(Response::new)
            .map_err(|error| to_status(&error))
    }

    #[instrument(skip_all, fields(connector = %request.get_ref().connector))]
    async fn list_broken_overrides(
        &self,
        request: Request<ListBrokenOverridesRequest>,
    ) -> Result<Response<ListBrokenOverridesResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        self.mapper
            .list_broken_overrides(&tenant_id, &request.get_ref().connector)
            .await
            .map(Response::new)
            .map_err(|error| to_status(&error))
    }

    #[instrument(skip_all, fields(
        connection_id = %request.get_ref().connection_id,
        connector = %request.get_ref().connector,
        records = request.get_ref().records.len(),
    ))]
    async fn resolve_persons(
        &self,
        request: Request<ResolvePersonsRequest>,
    ) -> Result<Response<ResolvePersonsResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        self.mapper
            .resolve_persons(&tenant_id, request.into_inner())
            .await
            .map(Response::new)
            .map_err(|error| to_status(&error))
    }

    #[instrument(skip_all, fields(records = request.get_ref().records.len()))]
    async fn lookup_persons(
        &self,
        request: Request<LookupPersonsRequest>,
    ) -> Result<Response<LookupPersonsResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        self.mapper
            .lookup_persons(&tenant_id, request.into_inner())
            .await
            .map(Response::new)
            .map_err(|error| to_status(&error))
    }

    #[instrument(skip_all)]
    async fn get_person(
        &self,
        request: Request<GetPersonRequest>,
    ) -> Result<Response<GetPersonResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        self.mapper
            .get_person(&tenant_id, request.into_inner())
            .await
            .map(Response::new)
            .map_err(|error| to_status(&error))
    }

    #[instrument(skip_all)]
    async fn link_records(
        &self,
        request: Request<LinkRecordsRequest>,
    ) -> Result<Response<LinkRecordsResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        let caller = Caller::of(&request)?.subject.clone();
        self.mapper
            .link_records(&tenant_id, &caller, request.into_inner())
            .await
            .map(Response::new)
            .map_err(|error| to_status(&error))
    }

    #[instrument(skip_all)]
    async fn unlink_records(
        &self,
        request: Request<UnlinkRecordsRequest>,
    ) -> Result<Response<UnlinkRecordsResponse>, Status> {
        let tenant_id = Caller::tenant_of(&request)?;
        let caller = Caller::of(&request)?.subject.clone();
        self.mapper
            .unlink_records(&tenant_id, &caller, request.into_inner())
            .await
            .map(Response::new)
            .map_err(|error| to_status(&error))
    }
}
