//! Whether each tenant override fits its connector's newest spec, and the spec it is applied
//! over meanwhile.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{OverrideKey, Store};
use crate::error::Error;
use crate::spec::SpecProblem;

/// The outcome of checking the newest version of one override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideCheck {
    pub key: OverrideKey,
    pub override_version: i64,
    /// The connector version checked last.
    pub checked_connector_version: String,
    /// Why the override does not fit that version; empty when it fits.
    pub problems: Vec<SpecProblem>,
    /// The connector version whose spec the override is applied over (the newest it fits),
    /// and that spec file; empty when it fits none this service has seen.
    pub active_connector_version: String,
    pub active_spec_yaml: String,
    pub checked_at: String,
}

impl OverrideCheck {
    pub fn fits(&self) -> bool {
        self.problems.is_empty()
    }
}

/// A problem as stored in `problems_json`.
#[derive(Serialize, Deserialize)]
struct StoredProblem {
    file: String,
    line: u32,
    message: String,
}

/// The table's columns, as a literal so queries stay static strings.
macro_rules! columns {
    () => {
        "tenant_id, connector, entity, direction, override_version, \
         checked_connector_version, problems_json, active_connector_version, \
         active_spec_yaml, checked_at"
    };
}

impl Store {
    /// Records `check`, replacing the previous one for its override.
    pub async fn put_check(&self, check: &OverrideCheck) -> Result<(), Error> {
        let stored: Vec<StoredProblem> = check
            .problems
            .iter()
            .map(|problem| StoredProblem {
                file: problem.file.clone(),
                line: problem.line,
                message: problem.message.clone(),
            })
            .collect();
        let problems_json = serde_json::to_string(&stored)
            .expect("a list of plain strings and numbers always serializes");
        sqlx::query(concat!(
            "INSERT INTO override_checks (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (tenant_id, connector, entity, direction) DO UPDATE SET \
             override_version = excluded.override_version, \
             checked_connector_version = excluded.checked_connector_version, \
             problems_json = excluded.problems_json, \
             active_connector_version = excluded.active_connector_version, \
             active_spec_yaml = excluded.active_spec_yaml, \
             checked_at = excluded.checked_at"
        ))
        .bind(&check.key.tenant_id)
        .bind(&check.key.connector)
        .bind(&check.key.entity)
        .bind(&check.key.direction)
        .bind(check.override_version)
        .bind(&check.checked_connector_version)
        .bind(problems_json)
        .bind(&check.active_connector_version)
        .bind(&check.active_spec_yaml)
        .bind(&check.checked_at)
        .execute(&self.pool)
        .await
        .map_err(Error::Storage)?;
        Ok(())
    }

    /// The check of the override `key`, if it was ever checked.
    pub async fn check(&self, key: &OverrideKey) -> Result<Option<OverrideCheck>, Error> {
        let row = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM override_checks \
             WHERE tenant_id = $1 AND connector = $2 AND entity = $3 AND direction = $4"
        ))
        .bind(&key.tenant_id)
        .bind(&key.connector)
        .bind(&key.entity)
        .bind(&key.direction)
        .fetch_optional(&self.pool)
        .await
        .map_err(Error::Storage)?;
        row.map(|row| check_row(&row)).transpose()
    }

    /// The checks of every tenant's overrides of `connector` (for re-checking them all).
    pub async fn checks_of_connector(&self, connector: &str) -> Result<Vec<OverrideCheck>, Error> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM override_checks WHERE connector = $1"
        ))
        .bind(connector)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::Storage)?;
        rows.iter().map(check_row).collect()
    }

    /// The checks of `tenant_id`'s overrides, of one connector or (with `""`) of all.
    pub async fn checks_of_tenant(
        &self,
        tenant_id: &str,
        connector: &str,
    ) -> Result<Vec<OverrideCheck>, Error> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM override_checks \
             WHERE tenant_id = $1 AND (connector = $2 OR $2 = '') \
             ORDER BY connector, entity, direction"
        ))
        .bind(tenant_id)
        .bind(connector)
        .fetch_all(&self.pool)
        .await
        .map_err(Error::Storage)?;
        rows.iter().map(check_row).collect()
    }
}

fn check_row(row: &sqlx::any::AnyRow) -> Result<OverrideCheck, Error> {
    let problems_json: String = row.try_get("problems_json").map_err(Error::Storage)?;
    let stored: Vec<StoredProblem> = serde_json::from_str(&problems_json)
        .map_err(|error| Error::Storage(sqlx::Error::Decode(Box::new(error))))?;
    Ok(OverrideCheck {
        key: OverrideKey {
            tenant_id: row.try_get("tenant_id").map_err(Error::Storage)?,
            connector: row.try_get("connector").map_err(Error::Storage)?,
            entity: row.try_get("entity").map_err(Error::Storage)?,
            direction: row.try_get("direction").map_err(Error::Storage)?,
        },
        override_version: row.try_get("override_version").map_err(Error::Storage)?,
        checked_connector_version: row
            .try_get("checked_connector_version")
            .map_err(Error::Storage)?,
        problems: stored
            .into_iter()
            .map(|problem| SpecProblem {
                file: problem.file,
                line: problem.line,
                message: problem.message,
            })
            .collect(),
        active_connector_version: row
            .try_get("active_connector_version")
            .map_err(Error::Storage)?,
        active_spec_yaml: row.try_get("active_spec_yaml").map_err(Error::Storage)?,
        checked_at: row.try_get("checked_at").map_err(Error::Storage)?,
    })
}
