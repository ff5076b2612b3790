//! The partner's name as its manifest gives it, for health's sentences ("Bullhorn answered
//! ...") rather than a connector id.

use plugboard_proto::registry::v1::GetConnectorRequest;

use crate::mesh::Mesh;

/// The registered display name of `connector`; empty when the registry cannot say, and health
/// then words its reasons with the connector id.
pub async fn display_name(mesh: &Mesh, connector: &str) -> String {
    let answer = mesh
        .registry()
        .get_connector(GetConnectorRequest {
            connector: connector.to_owned(),
        })
        .await;
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
