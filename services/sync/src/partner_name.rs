//! The partner's name as its manifest gives it, for health's sentences ("Bullhorn answered
//! ...") rather than a connector id.

use std::time::Duration;

use plugboard_proto::registry::v1::GetConnectorRequest;

use crate::mesh::Mesh;

/// How long the lookup may take; the read it runs beside takes longer.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The registered display name of `connector`; empty when the registry cannot say, and health
/// then words its reasons with the connector id.
pub async fn display_name(mesh: &Mesh, connector: &str) -> String {
    let mut request = tonic::Request::new(GetConnectorRequest {
        connector: connector.to_owned(),
    });
    // A run waits for this before it reports; a slow registry must not hold the report up.
    request.set_timeout(LOOKUP_TIMEOUT);
    let answer = mesh.registry().get_connector(request).await;
    match answer {
        Ok(answer) => answer
            .into_inner()
            .connector
            .and_then(|entry| entry.manifest)
            .map(|manifest| manifest.display_name)
            .unwrap_or_default(),
        Err(status) => {
            // The report still goes out: a missing name costs a nicer sentence, nothing else.
            tracing::debug!(connector, code = ?status.code(), "no display name from the registry");
            String::new()
        }
    }
}
