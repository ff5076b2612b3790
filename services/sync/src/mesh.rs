//! Clients for the services sync calls, each signed as `sync` and, where the call acts for a
//! tenant, carrying that tenant.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use plugboard_proto::connector::v1::connector_service_client::ConnectorServiceClient;
use plugboard_proto::health::v1::integration_health_service_client::IntegrationHealthServiceClient;
use plugboard_proto::mapping::v1::mapping_service_client::MappingServiceClient;
use plugboard_proto::registry::v1::registry_service_client::RegistryServiceClient;
use plugboard_runtime::channel::lazy_channel;
use plugboard_runtime::identity::{MeshCredentials, MeshKey};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::error::Error;

pub type Signed = InterceptedService<Channel, MeshCredentials>;

#[derive(Clone)]
pub struct Mesh {
    credentials: MeshCredentials,
    registry: Channel,
    mapping: Channel,
    health: Channel,
    /// Connector instances come and go; their channels are kept per address.
    connectors: Arc<Mutex<HashMap<String, Channel>>>,
}

impl Mesh {
    pub fn new(
        key: MeshKey,
        registry_addr: &str,
        mapping_addr: &str,
        health_addr: &str,
    ) -> Result<Mesh, Error> {
        Ok(Mesh {
            credentials: MeshCredentials::service(key, "sync"),
            registry: channel("registry", registry_addr)?,
            mapping: channel("mapping", mapping_addr)?,
            health: channel("health", health_addr)?,
            connectors: Arc::default(),
        })
    }

    pub fn registry(&self) -> RegistryServiceClient<Signed> {
        RegistryServiceClient::with_interceptor(self.registry.clone(), self.credentials.clone())
    }

    pub fn mapping(&self, tenant_id: &str) -> MappingServiceClient<Signed> {
        MappingServiceClient::with_interceptor(
            self.mapping.clone(),
            self.credentials.for_tenant(tenant_id),
        )
        // Large pages of raw payloads exceed tonic's 4 MiB default.
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024)
    }

    pub fn health(&self, tenant_id: &str) -> IntegrationHealthServiceClient<Signed> {
        IntegrationHealthServiceClient::with_interceptor(
            self.health.clone(),
            self.credentials.for_tenant(tenant_id),
        )
    }

    pub fn connector(
        &self,
        address: &str,
        tenant_id: &str,
    ) -> Result<ConnectorServiceClient<Signed>, Error> {
        let channel = {
            let mut connectors = self
                .connectors
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match connectors.get(address) {
                Some(channel) => channel.clone(),
                None => {
                    let channel = channel("connector", address)?;
                    connectors.insert(address.to_owned(), channel.clone());
                    channel
                }
            }
        };
        Ok(ConnectorServiceClient::with_interceptor(
            channel,
            self.credentials.for_tenant(tenant_id),
        )
        .max_decoding_message_size(64 * 1024 * 1024))
    }
}

fn channel(service: &'static str, addr: &str) -> Result<Channel, Error> {
    lazy_channel(addr).map_err(|source| Error::Channel {
        service,
        addr: addr.to_owned(),
        source,
    })
}
