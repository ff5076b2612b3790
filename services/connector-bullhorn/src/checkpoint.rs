//! The connector's checkpoint: where a read resumes.
//!
//! `{"since": <millis>, "start": <offset>, "max_seen": <millis>}`. During a run `since` stays
//! fixed and `start` advances page by page over the records with `dateLastModified >= since`,
//! ordered by `dateLastModified, id`; `max_seen` is the newest `dateLastModified` seen so far.
//! The last page of a run carries `{"since": max_seen, "start": 0}`: the next run starts at the
//! newest timestamp inclusively, so records sharing that millisecond are never lost (they are
//! read again; sync skips unchanged records by content hash).

use serde::{Deserialize, Serialize};

use crate::error::Error;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub since: i64,
    #[serde(default)]
    pub start: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_seen: Option<i64>,
}

impl Checkpoint {
    /// Parses a checkpoint; empty text is a first full read.
    pub fn parse(text: &str) -> Result<Checkpoint, Error> {
        if text.trim().is_empty() {
            return Ok(Checkpoint::default());
        }
        serde_json::from_str(text).map_err(|e| Error::InvalidCheckpoint(e.to_string()))
    }

    pub fn to_json(self) -> String {
        // A struct of integers always serializes.
        serde_json::to_string(&self).unwrap_or_default()
    }

    /// Records the newest timestamp of a page.
    pub fn see(&mut self, modified: i64) {
        self.max_seen = Some(self.max_seen.map_or(modified, |seen| seen.max(modified)));
    }

    /// The checkpoint after a page of `len` records that did not end the stream.
    pub fn next_page(self, len: usize) -> Checkpoint {
        Checkpoint {
            start: self.start + len as u64,
            ..self
        }
    }

    /// The checkpoint after the last page of a run.
    pub fn finished(self) -> Checkpoint {
        Checkpoint {
            since: self.max_seen.unwrap_or(self.since),
            start: 0,
            max_seen: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_advances_start_then_moves_since_to_the_newest_seen() {
        let mut checkpoint = Checkpoint::parse("").unwrap();
        checkpoint.see(50);
        checkpoint.see(40);
        let next = checkpoint.next_page(200);
        assert_eq!(
            next,
            Checkpoint {
                since: 0,
                start: 200,
                max_seen: Some(50)
            }
        );
        let resumed = Checkpoint::parse(&next.to_json()).unwrap();
        assert_eq!(resumed, next);
        assert_eq!(
            resumed.finished(),
            Checkpoint {
                since: 50,
                start: 0,
                max_seen: None
            }
        );
        assert_eq!(
            Checkpoint::parse(r#"{"since": 7}"#)
                .unwrap()
                .finished()
                .since,
            7
        );
        assert!(matches!(
            Checkpoint::parse("{oops"),
            Err(Error::InvalidCheckpoint(_))
        ));
    }
}
