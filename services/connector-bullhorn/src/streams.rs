//! The Bullhorn entities the connector reads, and the canonical entity each one maps to.

use crate::error::Error;

/// One readable stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stream {
    /// Stream name, equal to the Bullhorn entity name.
    pub name: &'static str,
    /// Canonical entity: job, candidate, application or placement.
    pub entity: &'static str,
    /// The incremental cursor.
    pub cursor_field: &'static str,
}

pub const CURSOR_FIELD: &str = "dateLastModified";

pub const STREAMS: [Stream; 4] = [
    Stream {
        name: "JobOrder",
        entity: "job",
        cursor_field: CURSOR_FIELD,
    },
    Stream {
        name: "Candidate",
        entity: "candidate",
        cursor_field: CURSOR_FIELD,
    },
    Stream {
        name: "JobSubmission",
        entity: "application",
        cursor_field: CURSOR_FIELD,
    },
    Stream {
        name: "Placement",
        entity: "placement",
        cursor_field: CURSOR_FIELD,
    },
];

pub fn find(name: &str) -> Result<Stream, Error> {
    STREAMS
        .iter()
        .find(|stream| stream.name == name)
        .copied()
        .ok_or_else(|| Error::UnknownStream(name.to_owned()))
}
