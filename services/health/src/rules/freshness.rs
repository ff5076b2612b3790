//! How fresh each entity is against its target: the customer's question is rarely "did the
//! last run succeed" but "are my jobs up to date".

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::EntityFacts;

/// Target age per entity, with a default for entities not named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    per_entity: BTreeMap<String, Duration>,
    default: Duration,
}

impl Default for Targets {
    /// Jobs within 15 minutes (they are what recruiters act on first), everything else within
    /// an hour.
    fn default() -> Targets {
        Targets::new(
            [("job".to_owned(), Duration::from_secs(15 * 60))],
            Duration::from_secs(60 * 60),
        )
    }
}

impl Targets {
    pub fn new(
        per_entity: impl IntoIterator<Item = (String, Duration)>,
        default: Duration,
    ) -> Targets {
        Targets {
            per_entity: per_entity.into_iter().collect(),
            default,
        }
    }

    /// Parses `job=900,candidate=3600,*=3600` (seconds); `*` sets the default.
    pub fn parse(text: &str) -> Result<Targets, String> {
        let mut targets = Targets::default();
        for pair in text
            .split(',')
            .map(str::trim)
            .filter(|pair| !pair.is_empty())
        {
            let (entity, seconds) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not entity=seconds"))?;
            let seconds: u64 = seconds
                .trim()
                .parse()
                .map_err(|_| format!("{pair:?}: seconds must be a positive whole number"))?;
            if seconds == 0 {
                return Err(format!("{pair:?}: seconds must be a positive whole number"));
            }
            let target = Duration::from_secs(seconds);
            match entity.trim() {
                "*" => targets.default = target,
                entity => {
                    targets.per_entity.insert(entity.to_owned(), target);
                }
            }
        }
        Ok(targets)
    }

    pub fn of(&self, entity: &str) -> Duration {
        self.per_entity.get(entity).copied().unwrap_or(self.default)
    }
}

/// One entity's freshness at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freshness {
    pub entity: String,
    pub last_success_at: Option<DateTime<Utc>>,
    pub target: Duration,
    /// Zero when the entity never synced.
    pub age: Duration,
    pub within_target: bool,
}

/// Freshness of every entity the integration has reported, by entity name.
pub fn freshness(
    entities: &BTreeMap<String, EntityFacts>,
    targets: &Targets,
    now: DateTime<Utc>,
) -> Vec<Freshness> {
    entities
        .iter()
        .map(|(entity, facts)| {
            let target = targets.of(entity);
            let age = facts
                .last_success_at
                .and_then(|at| now.signed_duration_since(at).to_std().ok())
                .unwrap_or_default();
            Freshness {
                entity: entity.clone(),
                last_success_at: facts.last_success_at,
                target,
                age,
                within_target: facts.last_success_at.is_some() && age <= target,
            }
        })
        .collect()
}

/// The stalest entity past its target, if any: the one a status reason should name.
pub fn stalest(freshness: &[Freshness]) -> Option<&Freshness> {
    freshness
        .iter()
        .filter(|entry| !entry.within_target && entry.last_success_at.is_some())
        .max_by_key(|entry| entry.age.saturating_sub(entry.target))
}

/// "job" → "jobs", "candidate" → "candidates": entities are singular nouns.
pub fn plural(entity: &str) -> String {
    if entity.ends_with('s') {
        entity.to_owned()
    } else {
        format!("{entity}s")
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn targets_parse_and_the_stalest_late_entity_is_named() {
        let targets = Targets::parse("candidate=600, *=7200").unwrap();
        assert_eq!(targets.of("job"), Duration::from_secs(900));
        assert_eq!(targets.of("candidate"), Duration::from_secs(600));
        assert_eq!(targets.of("placement"), Duration::from_secs(7200));
        assert!(Targets::parse("job").is_err());
        assert!(Targets::parse("job=0").is_err());

        let now = Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).unwrap();
        let ago = |minutes: i64| EntityFacts {
            last_success_at: Some(now - chrono::Duration::minutes(minutes)),
            ..EntityFacts::default()
        };
        let entities: BTreeMap<String, EntityFacts> = [
            ("job".to_owned(), ago(20)),
            ("candidate".to_owned(), ago(30)),
            ("placement".to_owned(), ago(30)),
        ]
        .into_iter()
        .collect();
        let entries = freshness(&entities, &targets, now);
        let by = |name: &str| entries.iter().find(|e| e.entity == name).unwrap();
        assert!(!by("job").within_target);
        assert!(!by("candidate").within_target);
        assert!(by("placement").within_target);
        // Candidates are 20 minutes past target, jobs only 5.
        assert_eq!(stalest(&entries).unwrap().entity, "candidate");
        assert_eq!(plural("job"), "jobs");
    }
}
