//! Keeping this instance registered: register, heartbeat every ttl/3, register again when the
//! registry forgot us, and keep trying (never crash) while the registry is unreachable.

use std::time::Duration;

use plugboard_proto::registry::v1::registry_service_client::RegistryServiceClient;
use plugboard_proto::registry::v1::{ConnectorManifest, HeartbeatRequest, RegisterRequest};
use plugboard_runtime::identity::{Caller, MeshCredentials, MeshKey};
use tonic::Code;
use tonic::transport::Channel;

use crate::access::CONNECTOR;

const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(15);

/// Runs until the task is aborted.
pub async fn maintain(
    channel: Channel,
    key: MeshKey,
    manifest: ConnectorManifest,
    instance_id: String,
    address: String,
) {
    let identity = MeshCredentials::new(
        key,
        Caller {
            subject: format!("connector:{CONNECTOR}"),
            tenant: None,
            connector: Some(CONNECTOR.to_owned()),
        },
    );
    let mut client = RegistryServiceClient::with_interceptor(channel, identity);
    let mut retry = FIRST_RETRY;
    let mut failures = 0u32;
    loop {
        let request = RegisterRequest {
            manifest: Some(manifest.clone()),
            instance_id: instance_id.clone(),
            address: address.clone(),
        };
        let ttl = match client.register(request).await {
            Ok(response) => response.into_inner().liveness_ttl_seconds,
            Err(status) => {
                failures += 1;
                // Say it once loudly, then quietly: the registry may simply start later.
                if failures == 1 {
                    tracing::warn!(code = ?status.code(), message = status.message(), "cannot register with the registry yet, retrying");
                } else {
                    tracing::debug!(code = ?status.code(), failures, "registration still failing");
                }
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(MAX_RETRY);
                continue;
            }
        };
        tracing::info!(instance_id = %instance_id, address = %address, ttl, "registered with the registry");
        retry = FIRST_RETRY;
        failures = 0;
        let period = (Duration::from_secs(u64::from(ttl)) / 3).max(Duration::from_millis(500));
        loop {
            tokio::time::sleep(period).await;
            let heartbeat = HeartbeatRequest {
                instance_id: instance_id.clone(),
            };
            match client.heartbeat(heartbeat).await {
                Ok(_) => {}
                Err(status) if status.code() == Code::NotFound => {
                    tracing::info!("the registry forgot this instance, registering again");
                    break;
                }
                Err(status) => {
                    tracing::warn!(code = ?status.code(), message = status.message(), "heartbeat failed");
                }
            }
        }
    }
}
