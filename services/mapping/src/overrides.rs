//! Tenant overrides over connector specs: validated when saved, checked again whenever a
//! connector's specs change, and applied per tenant.
//!
//! A connector upgrade can change what an override builds on (a lookup it uses is renamed, a
//! field it nests under becomes a scalar). So when this service first sees a connector version
//! ([`Overrides::check_all`], run by the spec poller and before any transform uses the specs),
//! it compiles every tenant's newest override against it and records the outcome. An override
//! that no longer fits keeps being applied over the newest connector spec it did fit, the
//! *active* one: the tenant's syncs go on mapping its fields, the problem is logged and listed
//! by `ListBrokenOverrides` and `ListTenantOverrides`, and saving a fixed version (validated
//! against the newest spec) makes the newest spec active again.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::catalog::ConnectorSpecs;
use crate::error::Error;
use crate::spec::{CompiledSpec, Direction, Entity, SpecProblem, compile_with_override};
use crate::store::{OverrideCheck, OverrideKey, OverrideRow, Store};

/// A spec with one override laid over it, per override, active connector version and override
/// version (all only grow, so an entry never goes stale; it is just not used again).
type CompiledCache = HashMap<(OverrideKey, String, i64), Arc<CompiledSpec>>;

pub(crate) struct Overrides {
    store: Store,
    compiled: Mutex<CompiledCache>,
    /// Connector versions whose overrides this process has checked.
    checked: Mutex<HashSet<(String, String)>>,
}

impl Overrides {
    pub(crate) fn new(store: Store) -> Overrides {
        Overrides {
            store,
            compiled: Mutex::new(HashMap::new()),
            checked: Mutex::new(HashSet::new()),
        }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// The spec for `entity` and `direction` as `tenant_id` sees it: the connector's, with the
    /// tenant's newest override laid over it (over the active spec when the newest one breaks
    /// it). `specs` must have been through [`Overrides::check_all`].
    pub(crate) async fn apply(
        &self,
        tenant_id: &str,
        specs: &ConnectorSpecs,
        entity: Entity,
        direction: Direction,
    ) -> Result<Option<Arc<CompiledSpec>>, Error> {
        let key = OverrideKey {
            tenant_id: tenant_id.to_owned(),
            connector: specs.connector.clone(),
            entity: entity.as_str().to_owned(),
            direction: direction.as_str().to_owned(),
        };
        let spec = specs.find(entity, direction);
        let Some(row) = self.store.latest(&key).await? else {
            return Ok(spec);
        };
        let check = self.store.check(&key).await?;
        let base = match check {
            Some(check)
                if check.override_version == row.version
                    && check.checked_connector_version == specs.version
                    && !check.fits() =>
            {
                if check.active_connector_version.is_empty() {
                    // Saved before checks existed and fitting no spec seen since: nothing
                    // good to fall back on, and mapping without it would drop its fields.
                    return Err(Error::InvalidOverride(check.problems));
                }
                Base::Active {
                    version: check.active_connector_version,
                    yaml: check.active_spec_yaml,
                }
            }
            _ => match spec {
                Some(spec) => Base::Newest {
                    version: specs.version.clone(),
                    spec,
                },
                None => return Ok(None),
            },
        };
        let cache_key = (key, base.version().to_owned(), row.version);
        if let Some(cached) = self.cache().get(&cache_key) {
            return Ok(Some(cached.clone()));
        }
        let name = override_name(&row);
        let override_yaml = row.yaml.clone();
        // Compiling is CPU work; keep it off the async workers.
        let compiled = tokio::task::spawn_blocking(move || {
            let spec = match base {
                Base::Newest { spec, .. } => spec,
                Base::Active { yaml, version } => Arc::new(
                    CompiledSpec::compile(&format!("spec of version {version}"), &yaml)
                        .map_err(Error::InvalidOverride)?,
                ),
            };
            compile_with_override(&spec, &name, &override_yaml).map_err(Error::InvalidOverride)
        })
        .await
        .map_err(|error| Error::Task(error.to_string()))??;
        let compiled = Arc::new(compiled);
        self.cache().insert(cache_key, compiled.clone());
        Ok(Some(compiled))
    }

    /// Checks every tenant's newest override of the connector against `specs`, once per
    /// connector version and process, and records each outcome. A storage failure is returned
    /// and the version checked again next time.
    pub(crate) async fn check_all(&self, specs: &ConnectorSpecs) -> Result<(), Error> {
        let version_key = (specs.connector.clone(), specs.version.clone());
        if self.checked().contains(&version_key) {
            return Ok(());
        }
        let previous: HashMap<OverrideKey, OverrideCheck> = self
            .store
            .checks_of_connector(&specs.connector)
            .await?
            .into_iter()
            .map(|check| (check.key.clone(), check))
            .collect();
        let mut broken = 0;
        for (key, row) in self.store.newest_overrides_of(&specs.connector).await? {
            let previous = previous
                .get(&key)
                .filter(|check| check.override_version == row.version);
            // Another replica may already have checked a newer version (a rolling upgrade);
            // an older one must not overwrite what it found.
            if previous.is_some_and(|check| {
                check.checked_connector_version == specs.version
                    || is_newer(&check.checked_connector_version, &specs.version)
            }) {
                continue;
            }
            let check = self.check_one(specs, &key, &row, previous).await?;
            if !check.fits() {
                broken += 1;
                tracing::warn!(
                    tenant_id = %key.tenant_id,
                    connector = %key.connector,
                    entity = %key.entity,
                    direction = %key.direction,
                    override_version = row.version,
                    connector_version = %specs.version,
                    active_connector_version = %check.active_connector_version,
                    problems = check.problems.len(),
                    "a tenant override does not fit the connector's new specs; the last \
                     version it fits stays active"
                );
            }
            self.store.put_check(&check).await?;
        }
        tracing::info!(
            connector = %specs.connector,
            connector_version = %specs.version,
            broken,
            "checked tenant overrides against the connector's specs"
        );
        self.checked().insert(version_key);
        Ok(())
    }

    async fn check_one(
        &self,
        specs: &ConnectorSpecs,
        key: &OverrideKey,
        row: &OverrideRow,
        previous: Option<&OverrideCheck>,
    ) -> Result<OverrideCheck, Error> {
        let name = override_name(row);
        let spec = match (Entity::parse(&key.entity), Direction::parse(&key.direction)) {
            (Some(entity), Some(direction)) => specs.find(entity, direction),
            _ => None,
        };
        let outcome = match spec {
            None => Err(vec![SpecProblem {
                file: name,
                line: 0,
                message: format!(
                    "connector version {} has no {} {} spec to override",
                    specs.version, key.direction, key.entity
                ),
            }]),
            Some(spec) => {
                let yaml = row.yaml.clone();
                tokio::task::spawn_blocking(move || {
                    compile_with_override(&spec, &name, &yaml).map(|_| spec.source().to_owned())
                })
                .await
                .map_err(|error| Error::Task(error.to_string()))?
            }
        };
        let (problems, active_connector_version, active_spec_yaml) = match outcome {
            Ok(spec_yaml) => (Vec::new(), specs.version.clone(), spec_yaml),
            Err(problems) => match previous {
                Some(previous) => (
                    problems,
                    previous.active_connector_version.clone(),
                    previous.active_spec_yaml.clone(),
                ),
                None => (problems, String::new(), String::new()),
            },
        };
        Ok(OverrideCheck {
            key: key.clone(),
            override_version: row.version,
            checked_connector_version: specs.version.clone(),
            problems,
            active_connector_version,
            active_spec_yaml,
            checked_at: plugboard_runtime::storage::now_text(),
        })
    }

    /// Stores a validated override as the next version; it fits `spec`, the newest, which
    /// becomes active for it.
    pub(crate) async fn save(
        &self,
        key: &OverrideKey,
        spec: &CompiledSpec,
        connector_version: &str,
        yaml: &str,
        expected_version: Option<i64>,
    ) -> Result<OverrideRow, Error> {
        let row = self.store.insert_next(key, yaml, expected_version).await?;
        self.store
            .put_check(&OverrideCheck {
                key: key.clone(),
                override_version: row.version,
                checked_connector_version: connector_version.to_owned(),
                problems: Vec::new(),
                active_connector_version: connector_version.to_owned(),
                active_spec_yaml: spec.source().to_owned(),
                checked_at: row.created_at.clone(),
            })
            .await?;
        Ok(row)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, CompiledCache> {
        // A panic while holding the lock cannot leave the map inconsistent (inserts are whole).
        self.compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn checked(&self) -> std::sync::MutexGuard<'_, HashSet<(String, String)>> {
        self.checked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What an override is laid over.
enum Base {
    /// The connector's newest spec.
    Newest {
        version: String,
        spec: Arc<CompiledSpec>,
    },
    /// The newest spec the override fits, from its check.
    Active { version: String, yaml: String },
}

impl Base {
    fn version(&self) -> &str {
        match self {
            Base::Newest { version, .. } | Base::Active { version, .. } => version,
        }
    }
}

pub(crate) fn override_name(row: &OverrideRow) -> String {
    format!(
        "override v{} of {} {} {}",
        row.version, row.connector, row.entity, row.direction
    )
}

/// Whether connector version `a` is newer than `b`: dot-separated numbers compared as numbers
/// (`1.10.0` > `1.9.2`), anything else as text.
fn is_newer(a: &str, b: &str) -> bool {
    let numbers = |version: &str| -> Option<Vec<u64>> {
        version
            .split(['.', '-', '+'])
            .take(3)
            .map(|part| part.parse().ok())
            .collect()
    };
    match (numbers(a), numbers(b)) {
        (Some(a), Some(b)) => a > b,
        _ => a > b,
    }
}

#[cfg(test)]
mod tests {
    use super::is_newer;

    #[test]
    fn versions_compare_numerically() {
        assert!(is_newer("1.10.0", "1.9.2"));
        assert!(is_newer("2.0.0", "1.99.99"));
        assert!(!is_newer("1.0.0", "1.0.0"));
        assert!(!is_newer("1.0.0", "1.1.0"));
        assert!(is_newer("b", "a"));
    }
}
