//! When a sync runs by itself: every so many seconds, or at the occurrences of a cron
//! expression.
//!
//! Cron expressions are read by `croner` with five fields (minute hour day-of-month month
//! day-of-week) or six with seconds first, and are evaluated in UTC, always: a sync has no
//! time zone of its own, so "0 2 * * *" is 02:00 UTC whatever the replica's or the tenant's
//! zone, and daylight-saving changes never skip or repeat a run.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::error::Error;

/// Longest cron expression taken; real ones are a few dozen characters.
const MAX_CRON_LEN: usize = 200;

#[derive(Debug, Clone)]
pub enum Schedule {
    /// Only manual runs (and webhook-targeted reads).
    Manual,
    Every(Duration),
    Cron(Box<Cron>),
}

impl Schedule {
    /// The schedule an interval or a cron expression describes; `InvalidArgument` naming the
    /// field when the expression does not parse or both are given.
    pub fn parse(interval_seconds: u32, cron: &str) -> Result<Schedule, Error> {
        let cron = cron.trim();
        if cron.is_empty() {
            return Ok(match interval_seconds {
                0 => Schedule::Manual,
                seconds => Schedule::Every(Duration::from_secs(u64::from(seconds))),
            });
        }
        if interval_seconds > 0 {
            return Err(invalid(
                "cron",
                "give a cron expression or interval_seconds, not both".to_owned(),
            ));
        }
        if cron.len() > MAX_CRON_LEN {
            return Err(invalid(
                "cron",
                format!("must be at most {MAX_CRON_LEN} characters"),
            ));
        }
        let parsed = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(cron)
            .map_err(|e| invalid("cron", format!("{cron:?} is not a cron expression: {e}")))?;
        // An expression that parses but never fires ("0 0 30 2 *") would leave the sync
        // silently idle for ever.
        if parsed.find_next_occurrence(&Utc::now(), false).is_err() {
            return Err(invalid("cron", format!("{cron:?} never occurs")));
        }
        Ok(Schedule::Cron(Box::new(parsed)))
    }

    /// A stored sync's schedule; an expression stored by an older version that no longer
    /// parses counts as corrupt rather than silently manual.
    pub fn of(sync: &crate::store::SyncDefinition) -> Result<Schedule, Error> {
        Schedule::parse(sync.interval_seconds, &sync.cron)
            .map_err(|e| Error::Corrupt(format!("schedule of {}: {e}", sync.connection_id)))
    }

    pub fn is_scheduled(&self) -> bool {
        !matches!(self, Schedule::Manual)
    }

    /// When the next run is due after `now`; `None` for a manual sync.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Manual => None,
            Schedule::Every(every) => Some(now + chrono::Duration::from_std(*every).ok()?),
            // croner keeps `now`'s fraction of a second in what it finds; occurrences are on
            // whole seconds.
            Schedule::Cron(cron) => cron.find_next_occurrence(&now.trunc_subsecs(0), false).ok(),
        }
    }

    /// The expected time between runs, which health uses to notice a silent scheduler: the
    /// interval, or the gap between the next two occurrences of the cron expression.
    pub fn expected_gap(&self, now: DateTime<Utc>) -> Duration {
        let Some(first) = self.next_after(now) else {
            return Duration::ZERO;
        };
        let second = self.next_after(first).unwrap_or(first);
        (second - first).to_std().unwrap_or(Duration::ZERO)
    }
}

impl FromStr for Schedule {
    type Err = Error;

    /// A cron expression alone.
    fn from_str(cron: &str) -> Result<Schedule, Error> {
        Schedule::parse(0, cron)
    }
}

fn invalid(field: &'static str, reason: String) -> Error {
    Error::InvalidArgument { field, reason }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 4, h, m, s).single().unwrap()
    }

    #[test]
    fn cron_expressions_run_in_utc_with_optional_seconds() {
        let daily: Schedule = "0 2 * * *".parse().unwrap();
        assert_eq!(daily.next_after(at(1, 30, 0)), Some(at(2, 0, 0)));
        assert_eq!(
            daily.next_after(at(2, 0, 0)),
            Some(at(2, 0, 0) + chrono::Duration::days(1)),
            "strictly after now, so a run at the occurrence does not start another"
        );
        let every_five_minutes: Schedule = "*/5 * * * *".parse().unwrap();
        let late = at(22, 50, 0) + chrono::Duration::milliseconds(745);
        assert_eq!(
            every_five_minutes.next_after(late),
            Some(at(22, 55, 0)),
            "on the whole second, whatever the fraction of now"
        );
        let every_ten_seconds: Schedule = "*/10 * * * * *".parse().unwrap();
        assert_eq!(
            every_ten_seconds.next_after(at(9, 0, 1)),
            Some(at(9, 0, 10))
        );
        assert_eq!(
            every_ten_seconds.expected_gap(at(9, 0, 1)),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn bad_expressions_name_the_field() {
        for bad in ["every day", "61 * * * *", "* * * * * * * *", "0 0 30 2 *"] {
            match Schedule::parse(0, bad) {
                Err(Error::InvalidArgument { field, reason }) => {
                    assert_eq!(field, "cron");
                    assert!(!reason.is_empty());
                }
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
        assert!(matches!(
            Schedule::parse(60, "* * * * *"),
            Err(Error::InvalidArgument { field: "cron", .. })
        ));
        assert!(matches!(Schedule::parse(0, ""), Ok(Schedule::Manual)));
        assert!(matches!(Schedule::parse(30, ""), Ok(Schedule::Every(_))));
    }
}
