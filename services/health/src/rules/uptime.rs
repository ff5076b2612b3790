//! Uptime per day from the run history: the share of runs that completed, per UTC day, for
//! the bar of the last 90 days a status page shows.

use chrono::{DateTime, Days, NaiveDate, Utc};

/// How many days of history are kept and shown.
pub const RETENTION_DAYS: u32 = 90;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Day {
    pub date: NaiveDate,
    pub runs: u32,
    pub failed_runs: u32,
}

impl Day {
    /// Completed runs per thousand; `None` on a day without runs.
    pub fn permille(&self) -> Option<u32> {
        ((self.runs - self.failed_runs) * 1000).checked_div(self.runs)
    }
}

/// One entry per day for the `days` days ending today (oldest first), from runs given as
/// (finished at, completed). Runs outside the window are ignored.
pub fn daily(runs: &[(DateTime<Utc>, bool)], today: NaiveDate, days: u32) -> Vec<Day> {
    let days = days.clamp(1, RETENTION_DAYS);
    let first = today
        .checked_sub_days(Days::new(u64::from(days - 1)))
        .unwrap_or(today);
    let mut out: Vec<Day> = first
        .iter_days()
        .take(days as usize)
        .map(|date| Day {
            date,
            runs: 0,
            failed_runs: 0,
        })
        .collect();
    for (at, completed) in runs {
        let date = at.date_naive();
        if date < first || date > today {
            continue;
        }
        let index = (date - first).num_days() as usize;
        if let Some(day) = out.get_mut(index) {
            day.runs += 1;
            if !completed {
                day.failed_runs += 1;
            }
        }
    }
    out
}

/// Completed runs per thousand over all days; 1000 when there were no runs.
pub fn overall(days: &[Day]) -> u32 {
    let runs: u32 = days.iter().map(|day| day.runs).sum();
    let failed: u32 = days.iter().map(|day| day.failed_runs).sum();
    ((runs - failed) * 1000).checked_div(runs).unwrap_or(1000)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn runs_fall_into_their_utc_day_and_old_ones_drop_out() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        let at = |day: u32, hour: u32| Utc.with_ymd_and_hms(2026, 12, day, hour, 0, 0).unwrap();
        let runs = [
            (at(3, 1), true),
            (at(3, 2), false),
            (at(3, 3), true),
            (at(3, 4), true),
            (at(1, 23), false),
            // Outside a three-day window.
            (Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap(), false),
        ];
        let days = daily(&runs, today, 3);
        assert_eq!(days.len(), 3);
        assert_eq!(days[0].date, NaiveDate::from_ymd_opt(2026, 12, 1).unwrap());
        assert_eq!((days[0].runs, days[0].failed_runs), (1, 1));
        assert_eq!(days[0].permille(), Some(0));
        assert_eq!(days[1].permille(), None);
        assert_eq!(days[2].permille(), Some(750));
        assert_eq!(overall(&days), 600);
        assert_eq!(overall(&daily(&[], today, 90)), 1000);
        assert_eq!(daily(&[], today, 0).len(), 1);
        assert_eq!(daily(&[], today, 400).len(), 90);
    }
}
