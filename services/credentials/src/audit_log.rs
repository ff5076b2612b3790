//! Reading the audit log (ListAudit): a tenant's rows newest first, one page at a time, for the
//! tenant's own platform services only. Rows never hold a secret value, so nothing is redacted
//! here; connectors may not read them (a connector learns nothing it needs from who else
//! leased what).

use crate::error::Error;
use crate::service::{Actor, Credentials};
use crate::store::AuditRow;
use crate::validate;

/// Rows per page when the caller names no size.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Most rows per page.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// One page of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    pub rows: Vec<AuditRow>,
    /// The id to continue after; empty on the last page.
    pub next_page_token: String,
}

impl Credentials {
    /// The caller's tenant's audit rows (of `connection_id` when not empty), newest first.
    pub async fn audit_page(
        &self,
        actor: &Actor,
        connection_id: &str,
        page_size: u32,
        page_token: &str,
    ) -> Result<AuditPage, Error> {
        if actor.connector.is_some() {
            tracing::info!(subject = %actor.subject, "denied an audit read by a connector");
            return Err(Error::ConnectorMayNotReadAudit);
        }
        if !connection_id.is_empty() {
            validate::connection_id(connection_id)?;
        }
        // Tokens are row ids we handed out: uuids, which `name` accepts.
        if !page_token.is_empty() {
            validate::name("page_token", page_token)?;
        }
        let size = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            size => size.min(MAX_PAGE_SIZE),
        };
        // One more than asked tells whether another page follows.
        let mut rows = self
            .store
            .audit_rows(
                &actor.tenant,
                connection_id,
                page_token,
                i64::from(size) + 1,
            )
            .await?;
        let more = rows.len() > size as usize;
        rows.truncate(size as usize);
        let next_page_token = match rows.last() {
            Some(last) if more => last.id.clone(),
            _ => String::new(),
        };
        Ok(AuditPage {
            rows,
            next_page_token,
        })
    }
}
