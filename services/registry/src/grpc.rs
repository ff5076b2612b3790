//! The gRPC adapter: checks the caller, calls [`Registry`], maps errors with `to_status`.
//!
//! Registry calls are mesh-internal: any valid service token will do and no tenant is needed.

use std::sync::Arc;

use chrono::Utc;
use plugboard_proto::error::to_status;
use plugboard_proto::registry::v1::registry_service_server::RegistryService;
use plugboard_proto::registry::v1::{
    ConnectorEntry, GetConnectorRequest, GetConnectorResponse, HeartbeatRequest, HeartbeatResponse,
    ListConnectorsRequest, ListConnectorsResponse, RegisterRequest, RegisterResponse,
    ResolveRequest, ResolveResponse,
};
use plugboard_runtime::identity::Caller;
use tonic::{Request, Response, Status};
use tracing::instrument;

use crate::error::Error;
use crate::service::{self, Registry};

pub struct GrpcRegistryAdapter {
    registry: Arc<Registry>,
}

impl GrpcRegistryAdapter {
    pub fn new(registry: Arc<Registry>) -> GrpcRegistryAdapter {
        GrpcRegistryAdapter { registry }
    }
}

fn to_entry(entry: service::ConnectorEntry) -> ConnectorEntry {
    ConnectorEntry {
        manifest: Some(entry.manifest),
        live_instances: entry.live_instances,
        last_seen_at: entry.last_seen_at,
    }
}

#[tonic::async_trait]
impl RegistryService for GrpcRegistryAdapter {
    #[instrument(skip_all, fields(instance_id = %request.get_ref().instance_id))]
    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        Caller::of(&request)?;
        let request = request.into_inner();
        let manifest = request.manifest.ok_or_else(|| {
            to_status(&Error::InvalidRegistration {
                field: "manifest",
                problem: "is required".to_owned(),
            })
        })?;
        self.registry
            .register(manifest, &request.instance_id, &request.address, Utc::now())
            .await
            .map_err(|e| to_status(&e))?;
        let ttl = self.registry.liveness_ttl().as_secs();
        Ok(Response::new(RegisterResponse {
            liveness_ttl_seconds: u32::try_from(ttl).unwrap_or(u32::MAX),
        }))
    }

    #[instrument(skip_all, fields(instance_id = %request.get_ref().instance_id))]
    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        Caller::of(&request)?;
        self.registry
            .heartbeat(&request.get_ref().instance_id, Utc::now())
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(HeartbeatResponse {}))
    }

    #[instrument(skip_all)]
    async fn list_connectors(
        &self,
        request: Request<ListConnectorsRequest>,
    ) -> Result<Response<ListConnectorsResponse>, Status> {
        Caller::of(&request)?;
        let entries = self
            .registry
            .connectors(Utc::now())
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(ListConnectorsResponse {
            connectors: entries.into_iter().map(to_entry).collect(),
        }))
    }

    #[instrument(skip_all, fields(connector = %request.get_ref().connector))]
    async fn resolve(
        &self,
        request: Request<ResolveRequest>,
    ) -> Result<Response<ResolveResponse>, Status> {
        Caller::of(&request)?;
        let instance = self
            .registry
            .resolve(&request.get_ref().connector, Utc::now())
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(ResolveResponse {
            address: instance.address,
            instance_id: instance.instance_id,
            version: instance.version,
        }))
    }

    #[instrument(skip_all, fields(connector = %request.get_ref().connector))]
    async fn get_connector(
        &self,
        request: Request<GetConnectorRequest>,
    ) -> Result<Response<GetConnectorResponse>, Status> {
        Caller::of(&request)?;
        let entry = self
            .registry
            .connector(&request.get_ref().connector, Utc::now())
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(GetConnectorResponse {
            connector: Some(to_entry(entry)),
        }))
    }
}
