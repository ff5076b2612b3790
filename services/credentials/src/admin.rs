//! Key management for operators (`CredentialsAdminService`): master key rotation on a running
//! replica and per-tenant data key rotation, for admin callers only.
//!
//! An admin caller is one whose verified service token names the subject `admin` or
//! `admin:<name>` (`plugboard token --subject admin:alice`) and claims no connector. Like every
//! mesh token it is signed with the mesh key, so any holder of that key can act as admin; that
//! is proportionate here because neither call reveals or accepts key material: they only move
//! wrapping and sealing onto keys the service already holds or makes itself.

use plugboard_runtime::identity::Caller;

use crate::data_key_rotation::DataKeyRotation;
use crate::error::Error;
use crate::master_rotation::{MasterRotation, batch_size};
use crate::service::{Actor, Credentials};

/// The subject of an admin token, alone or as the prefix of `admin:<name>`.
pub const ADMIN_SUBJECT: &str = "admin";

/// Whether `subject` (with no connector claim) is an admin's.
pub fn is_admin(subject: &str, connector: Option<&str>) -> bool {
    let named = subject
        .strip_prefix(ADMIN_SUBJECT)
        .and_then(|rest| rest.strip_prefix(':'))
        .is_some_and(|name| !name.is_empty());
    connector.is_none() && (subject == ADMIN_SUBJECT || named)
}

impl Credentials {
    /// Reads the master keys again and re-wraps every data key under the current one.
    pub async fn rotate_master_key(
        &self,
        caller: &Caller,
        batch: u32,
    ) -> Result<MasterRotation, Error> {
        if !is_admin(&caller.subject, caller.connector.as_deref()) {
            tracing::info!(subject = %caller.subject, "denied a master key rotation to a non-admin caller");
            return Err(Error::AdminOnly);
        }
        self.keys
            .rotate_master(&caller.subject, batch_size(batch))
            .await
    }

    /// Gives the actor's tenant a new data key and re-seals the tenant's secrets under it.
    pub async fn rotate_data_key(
        &self,
        actor: &Actor,
        batch: u32,
    ) -> Result<DataKeyRotation, Error> {
        if !is_admin(&actor.subject, actor.connector.as_deref()) {
            tracing::info!(subject = %actor.subject, "denied a data key rotation to a non-admin caller");
            let audit = self.audit(actor, "", "rotate_data_key", "denied", "", 0);
            self.store.record(audit).await?;
            return Err(Error::AdminOnly);
        }
        let rotation = self
            .keys
            .rotate_data_key(&actor.subject, &actor.tenant, batch_size(batch))
            .await?;
        Ok(rotation)
    }
}

#[cfg(test)]
mod tests {
    use super::is_admin;

    #[test]
    fn only_admin_subjects_without_a_connector_are_admins() {
        assert!(is_admin("admin", None));
        assert!(is_admin("admin:alice", None));
        for (subject, connector) in [
            ("admin", Some("bullhorn")),
            ("admin:", None),
            ("administrator", None),
            ("gateway", None),
            ("cli", None),
        ] {
            assert!(!is_admin(subject, connector), "{subject} {connector:?}");
        }
    }
}
