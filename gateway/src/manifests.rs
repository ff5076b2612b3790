//! Connector manifests, cached: every dashboard page and API call needs categories and display
//! names, and the registry's answer changes only when a connector version registers.
//!
//! A cached list is served for [`FRESH_FOR`]; after that the next caller asks the registry
//! again. When the registry cannot answer, a list older than that is still served (names and
//! categories rarely change) and the failure is logged; without any list the error goes to the
//! caller.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use plugboard_proto::registry::v1::{ConnectorManifest, ListConnectorsRequest};
use tokio::time::Instant;

use crate::error::Error;
use crate::mesh::{CALL_TIMEOUT, Mesh};

/// How long a fetched list is served without asking again: a new connector shows in the
/// catalogue within this.
pub const FRESH_FOR: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub struct ManifestCache {
    cached: Mutex<Option<(Instant, Arc<Vec<ConnectorManifest>>)>>,
}

impl ManifestCache {
    /// Every registered connector's manifest.
    pub async fn all(&self, mesh: &Mesh) -> Result<Arc<Vec<ConnectorManifest>>, Error> {
        let cached = self.lock().clone();
        if let Some((fetched_at, manifests)) = &cached
            && fetched_at.elapsed() < FRESH_FOR
        {
            return Ok(Arc::clone(manifests));
        }
        let mut request = tonic::Request::new(ListConnectorsRequest {});
        request.set_timeout(CALL_TIMEOUT);
        match mesh.registry().list_connectors(request).await {
            Ok(response) => {
                let manifests: Vec<ConnectorManifest> = response
                    .into_inner()
                    .connectors
                    .into_iter()
                    .filter_map(|entry| entry.manifest)
                    .collect();
                let manifests = Arc::new(manifests);
                *self.lock() = Some((Instant::now(), Arc::clone(&manifests)));
                Ok(manifests)
            }
            Err(status) => match cached {
                Some((_, stale)) => {
                    tracing::warn!(code = ?status.code(), "registry unavailable, serving cached manifests");
                    Ok(stale)
                }
                None => Err(Error::upstream("registry", &status)),
            },
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, Arc<Vec<ConnectorManifest>>)>> {
        // A plain value swapped whole; a panic elsewhere cannot leave it half-written.
        self.cached.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
