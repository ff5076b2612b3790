//! When a status change opens, updates or resolves an incident. Incidents are what a status
//! page lists: they open by themselves when an integration stops working as it should and
//! resolve by themselves when it works again, with every change in between on a timeline.

use super::Status;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing to record.
    Nothing,
    Open,
    /// Another status while the incident is open: a timeline entry.
    Update,
    Resolve,
}

/// Whether a status is a problem worth an incident. Paused is the customer's choice, not one.
pub fn is_problem(status: Status) -> bool {
    matches!(
        status,
        Status::Degraded | Status::Down | Status::NeedsReconnect
    )
}

/// What a change from `from` to `to` does, given whether an incident is open.
pub fn step(incident_open: bool, from: Option<Status>, to: Status) -> Step {
    if from == Some(to) {
        return Step::Nothing;
    }
    match (incident_open, is_problem(to)) {
        (false, true) => Step::Open,
        (true, true) => Step::Update,
        // Working again, or paused by the customer: either way the problem is no longer live.
        (true, false) => Step::Resolve,
        (false, false) => Step::Nothing,
    }
}

/// Of two statuses seen during an incident, the one that matters more to the customer.
pub fn worse(a: Status, b: Status) -> Status {
    fn rank(status: Status) -> u8 {
        match status {
            Status::Operational | Status::Paused => 0,
            Status::Degraded => 1,
            Status::Down => 2,
            Status::NeedsReconnect => 3,
        }
    }
    if rank(b) > rank(a) { b } else { a }
}

/// The incident's title: what was wrong, in a few words.
pub fn title(status: Status, connector_display: &str) -> String {
    match status {
        Status::Down => format!("{connector_display} sync is down"),
        Status::NeedsReconnect => format!("{connector_display} needs to be reconnected"),
        _ => format!("{connector_display} sync is degraded"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_open_change_and_recovery_resolves() {
        use Status::{Degraded, Down, NeedsReconnect, Operational, Paused};
        assert_eq!(step(false, Some(Operational), Degraded), Step::Open);
        assert_eq!(step(false, None, Down), Step::Open);
        assert_eq!(step(true, Some(Degraded), Down), Step::Update);
        assert_eq!(step(true, Some(Down), Down), Step::Nothing);
        assert_eq!(step(true, Some(Down), Operational), Step::Resolve);
        assert_eq!(step(true, Some(Down), Paused), Step::Resolve);
        assert_eq!(step(false, Some(Operational), Paused), Step::Nothing);
        assert_eq!(step(false, None, Operational), Step::Nothing);
        assert_eq!(worse(Degraded, NeedsReconnect), NeedsReconnect);
        assert_eq!(worse(Down, Degraded), Down);
        assert_eq!(title(Down, "Bullhorn"), "Bullhorn sync is down");
    }
}
