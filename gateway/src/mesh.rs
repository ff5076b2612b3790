//! The gateway's view of the mesh: one lazily connected channel per service, signed clients
//! acting for a tenant, and the `grpc.health.v1` probe behind `/healthz`.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use plugboard_proto::credentials::v1::credentials_service_client::CredentialsServiceClient;
use plugboard_proto::credentials::v1::o_auth_service_client::OAuthServiceClient;
use plugboard_proto::health::v1::integration_health_service_client::IntegrationHealthServiceClient;
use plugboard_proto::registry::v1::ConnectorManifest;
use plugboard_proto::registry::v1::registry_service_client::RegistryServiceClient;
use plugboard_proto::sync::v1::sync_service_client::SyncServiceClient;
use plugboard_runtime::channel::lazy_channel;
use plugboard_runtime::identity::{MeshCredentials, MeshKey};

use crate::config::Config;
use crate::error::Error;
use crate::manifests::ManifestCache;

/// How long `/healthz` waits for one service.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Deadline of the gateway's calls on behalf of a request; it travels with the call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// One service of the mesh, as `/healthz` reports it.
#[derive(Clone, Debug)]
struct Member {
    name: &'static str,
    addr: String,
    channel: Channel,
}

/// The result of probing one service.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ServiceHealth {
    pub name: &'static str,
    pub addr: String,
    /// `serving`, `not_serving` or `unreachable`.
    pub status: &'static str,
}

pub type Signed = InterceptedService<Channel, MeshCredentials>;

/// Channels to every service and the gateway's own signing identity.
#[derive(Clone, Debug)]
pub struct Mesh {
    members: Vec<Member>,
    sync: Channel,
    health: Channel,
    secrets: Channel,
    registry: Channel,
    credentials: MeshCredentials,
    manifests: Arc<ManifestCache>,
}

impl Mesh {
    pub fn new(config: &Config) -> Result<Mesh, Error> {
        let key = MeshKey::new(&config.mesh_key)?;
        let mut members = Vec::new();
        for (name, addr) in [
            ("credentials", &config.credentials_addr),
            ("mapping", &config.mapping_addr),
            ("sync", &config.sync_addr),
            ("health", &config.health_addr),
            ("registry", &config.registry_addr),
        ] {
            let channel = lazy_channel(addr).map_err(|source| Error::Address {
                service: name,
                source,
            })?;
            members.push(Member {
                name,
                addr: addr.clone(),
                channel,
            });
        }
        let channel_of = |name: &str| {
            members
                .iter()
                .find(|member| member.name == name)
                .map(|member| member.channel.clone())
                .expect("every service was added above")
        };
        Ok(Mesh {
            sync: channel_of("sync"),
            health: channel_of("health"),
            secrets: channel_of("credentials"),
            registry: channel_of("registry"),
            members,
            credentials: MeshCredentials::service(key, "gateway"),
            manifests: Arc::default(),
        })
    }

    /// The sync service, acting for `tenant_id`.
    pub fn sync_for(&self, tenant_id: &str) -> SyncServiceClient<Signed> {
        SyncServiceClient::with_interceptor(
            self.sync.clone(),
            self.credentials.for_tenant(tenant_id),
        )
    }

    /// The health service, acting for `tenant_id`.
    pub fn health_for(&self, tenant_id: &str) -> IntegrationHealthServiceClient<Signed> {
        IntegrationHealthServiceClient::with_interceptor(
            self.health.clone(),
            self.credentials.for_tenant(tenant_id),
        )
    }

    /// The credentials service, acting for `tenant_id`.
    pub fn credentials_for(&self, tenant_id: &str) -> CredentialsServiceClient<Signed> {
        CredentialsServiceClient::with_interceptor(
            self.secrets.clone(),
            self.credentials.for_tenant(tenant_id),
        )
    }

    /// Credentials' OAuth connect flow, acting for `tenant_id`.
    pub fn oauth_for(&self, tenant_id: &str) -> OAuthServiceClient<Signed> {
        OAuthServiceClient::with_interceptor(
            self.secrets.clone(),
            self.credentials.for_tenant(tenant_id),
        )
    }

    /// The gateway's signing identity acting for `tenant_id`, for channels made elsewhere
    /// (connector instances, whose addresses come from the registry).
    pub fn signer_for(&self, tenant_id: &str) -> MeshCredentials {
        self.credentials.for_tenant(tenant_id)
    }

    /// The registry, as the gateway itself: connector manifests belong to no tenant.
    pub fn registry(&self) -> RegistryServiceClient<Signed> {
        RegistryServiceClient::with_interceptor(self.registry.clone(), self.credentials.clone())
    }

    /// Every registered connector's manifest, cached ([`crate::manifests`]).
    pub async fn manifests(&self) -> Result<Arc<Vec<ConnectorManifest>>, Error> {
        self.manifests.all(self).await
    }

    /// Probes every service at once, each with a one-second limit.
    pub async fn probe_all(&self) -> Vec<ServiceHealth> {
        let probes = self.members.iter().map(|member| async move {
            ServiceHealth {
                name: member.name,
                addr: member.addr.clone(),
                status: probe(member.channel.clone()).await,
            }
        });
        futures::future::join_all(probes).await
    }
}

async fn probe(channel: Channel) -> &'static str {
    let mut client = HealthClient::new(channel);
    // The empty name asks about the server as a whole, which every service reports.
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    request.set_timeout(PROBE_TIMEOUT);
    match tokio::time::timeout(PROBE_TIMEOUT, client.check(request)).await {
        Ok(Ok(response)) if response.get_ref().status == ServingStatus::Serving as i32 => "serving",
        Ok(Ok(_)) => "not_serving",
        // A transport failure surfaces as UNAVAILABLE; any other status means something answered.
        Ok(Err(status)) if status.code() == tonic::Code::Unavailable => "unreachable",
        Ok(Err(status)) => {
            tracing::warn!(code = ?status.code(), "health check answered with an error");
            "not_serving"
        }
        Err(_elapsed) => "unreachable",
    }
}
