//! The tenant override RPCs: save (validated first), list, and list the broken ones.

use std::collections::HashMap;

use plugboard_proto::mapping::v1::{
    Direction as WireDirection, ListBrokenOverridesResponse, ListTenantOverridesResponse,
    PutTenantOverrideRequest, PutTenantOverrideResponse, TenantOverride,
};

use super::{Mapper, parse_direction};
use crate::error::Error;
use crate::spec::{Entity, SpecProblem, compile_with_override};
use crate::store::{OverrideCheck, OverrideKey, OverrideRow};

impl Mapper {
    /// Validates `request` against the connector's current spec and stores it as the next
    /// version of the caller tenant's override; a bad override is refused with its problems.
    pub async fn put_tenant_override(
        &self,
        tenant_id: &str,
        request: PutTenantOverrideRequest,
    ) -> Result<PutTenantOverrideResponse, Error> {
        let direction = parse_direction(request.direction)?;
        if request.connector.is_empty() {
            return Err(Error::InvalidArgument("connector is required".to_owned()));
        }
        let entity = Entity::parse(&request.entity).ok_or_else(|| {
            Error::InvalidArgument(format!("unknown entity {:?}", request.entity))
        })?;
        let specs = self.specs(&request.connector, "").await?;
        let spec = specs
            .find(entity, direction)
            .ok_or_else(|| Error::SpecNotFound {
                connector: request.connector.clone(),
                entity: request.entity.clone(),
                direction: direction.as_str(),
            })?;
        let name = format!(
            "override of {} {} {}",
            request.connector,
            entity.as_str(),
            direction.as_str()
        );
        let yaml = request.yaml;
        let checked = {
            let spec = spec.clone();
            let yaml = yaml.clone();
            // Compiling is CPU work; keep it off the async workers.
            tokio::task::spawn_blocking(move || {
                compile_with_override(&spec, &name, &yaml).map(|_| ())
            })
            .await
            .map_err(|error| Error::Task(error.to_string()))?
        };
        checked.map_err(Error::InvalidOverride)?;
        let key = OverrideKey {
            tenant_id: tenant_id.to_owned(),
            connector: request.connector,
            entity: entity.as_str().to_owned(),
            direction: direction.as_str().to_owned(),
        };
        let expected = (request.expected_version > 0).then(|| i64::from(request.expected_version));
        let row = self
            .overrides
            .save(&key, &spec, &specs.version, &yaml, expected)
            .await?;
        tracing::info!(
            connector = %row.connector,
            entity = %row.entity,
            version = row.version,
            connector_version = %specs.version,
            "saved a tenant override"
        );
        let check = self.overrides.store().check(&key).await?;
        Ok(PutTenantOverrideResponse {
            saved: Some(to_wire(row, check.as_ref())),
        })
    }

    /// Every version of the caller tenant's overrides of `connector`, newest first; the newest
    /// of each carries its check.
    pub async fn list_tenant_overrides(
        &self,
        tenant_id: &str,
        connector: &str,
    ) -> Result<ListTenantOverridesResponse, Error> {
        if connector.is_empty() {
            return Err(Error::InvalidArgument("connector is required".to_owned()));
        }
        let store = self.overrides.store();
        let rows = store.list(tenant_id, connector).await?;
        let checks: HashMap<(String, String), OverrideCheck> = store
            .checks_of_tenant(tenant_id, connector)
            .await?
            .into_iter()
            .map(|check| {
                (
                    (check.key.entity.clone(), check.key.direction.clone()),
                    check,
                )
            })
            .collect();
        let overrides = rows
            .into_iter()
            .map(|row| {
                let check = checks
                    .get(&(row.entity.clone(), row.direction.clone()))
                    .filter(|check| check.override_version == row.version);
                to_wire(row, check)
            })
            .collect();
        Ok(ListTenantOverridesResponse { overrides })
    }

    /// The caller tenant's overrides whose newest version does not fit the connector's newest
    /// specs, of one connector or (with `""`) of all.
    pub async fn list_broken_overrides(
        &self,
        tenant_id: &str,
        connector: &str,
    ) -> Result<ListBrokenOverridesResponse, Error> {
        let store = self.overrides.store();
        let mut overrides = Vec::new();
        for check in store.checks_of_tenant(tenant_id, connector).await? {
            if check.fits() {
                continue;
            }
            if let Some(row) = store
                .latest(&check.key)
                .await?
                .filter(|row| row.version == check.override_version)
            {
                overrides.push(to_wire(row, Some(&check)));
            }
        }
        Ok(ListBrokenOverridesResponse { overrides })
    }
}

fn to_wire(row: OverrideRow, check: Option<&OverrideCheck>) -> TenantOverride {
    TenantOverride {
        direction: match row.direction.as_str() {
            "outbound" => WireDirection::Outbound,
            _ => WireDirection::Inbound,
        } as i32,
        connector: row.connector,
        entity: row.entity,
        yaml: row.yaml,
        version: u32::try_from(row.version).unwrap_or(u32::MAX),
        created_at: row.created_at,
        problems: check
            .map(|check| check.problems.iter().map(problem_to_wire).collect())
            .unwrap_or_default(),
        checked_connector_version: check
            .map(|check| check.checked_connector_version.clone())
            .unwrap_or_default(),
        active_connector_version: check
            .map(|check| check.active_connector_version.clone())
            .unwrap_or_default(),
    }
}

pub(super) fn problem_to_wire(problem: &SpecProblem) -> plugboard_proto::mapping::v1::SpecProblem {
    plugboard_proto::mapping::v1::SpecProblem {
        file: problem.file.clone(),
        line: problem.line,
        message: problem.message.clone(),
    }
}
