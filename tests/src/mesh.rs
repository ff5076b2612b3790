//! Signed gRPC clients, as an internal platform service would hold them.

use std::time::Duration;

use plugboard_proto::credentials::v1::credentials_service_client::CredentialsServiceClient;
use plugboard_proto::health::v1::integration_health_service_client::IntegrationHealthServiceClient;
use plugboard_proto::sync::v1::sync_service_client::SyncServiceClient;
use plugboard_runtime::channel::lazy_channel;
use plugboard_runtime::identity::{Caller, MeshCredentials, MeshKey};
use secrecy::SecretString;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic_health_free::health_check;

pub type Signed = InterceptedService<Channel, MeshCredentials>;

/// A platform service's identity acting for one tenant.
#[derive(Clone)]
pub struct TenantClients {
    pub key: MeshKey,
    pub credentials: MeshCredentials,
}

impl TenantClients {
    pub fn new(mesh_key: &str, tenant: &str) -> TenantClients {
        let key = MeshKey::new(&SecretString::from(mesh_key.to_owned())).expect("mesh key");
        let credentials = MeshCredentials::service(key.clone(), "e2e-test").for_tenant(tenant);
        TenantClients { key, credentials }
    }

    pub fn sync(&self, addr: &str) -> SyncServiceClient<Signed> {
        SyncServiceClient::with_interceptor(
            lazy_channel(addr).expect("sync address"),
            self.credentials.clone(),
        )
        .max_decoding_message_size(64 * 1024 * 1024)
    }

    pub fn credentials(&self, addr: &str) -> CredentialsServiceClient<Signed> {
        CredentialsServiceClient::with_interceptor(
            lazy_channel(addr).expect("credentials address"),
            self.credentials.clone(),
        )
    }

    pub fn health(&self, addr: &str) -> IntegrationHealthServiceClient<Signed> {
        IntegrationHealthServiceClient::with_interceptor(
            lazy_channel(addr).expect("health address"),
            self.credentials.clone(),
        )
    }

    /// A bearer token for the same identity, for non-Rust clients.
    pub fn bearer_token(&self) -> String {
        self.key
            .sign(&Caller {
                subject: "e2e-test".into(),
                tenant: self.credentials.caller().tenant.clone(),
                connector: None,
            })
            .expect("sign a token")
    }
}

/// Waits until the service at `addr` answers SERVING on grpc.health.v1.
pub async fn wait_serving(addr: &str, timeout: Duration) -> anyhow::Result<()> {
    crate::eventually(&format!("{addr} to serve"), timeout, || health_check(addr)).await
}

mod tonic_health_free {
    //! grpc.health.v1 Check without depending on tonic-health's client types in every test.
    use plugboard_runtime::channel::lazy_channel;

    pub async fn health_check(addr: &str) -> bool {
        let Ok(channel) = lazy_channel(addr) else {
            return false;
        };
        let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
        matches!(
            client
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new()
                })
                .await,
            Ok(response) if response.get_ref().status == 1
        )
    }
}
