//! Catches a connector that serves the same page again, so a run stops with a clear error
//! instead of looping for ever.
//!
//! A page repeats when it carries records and either its checkpoint equals the one before it
//! (the cursor did not move) or its records are exactly the records of the page before it.

use std::collections::BTreeSet;

#[derive(Debug, Default)]
pub struct PageGuard {
    previous_checkpoint: Option<String>,
    previous_ids: BTreeSet<String>,
}

/// Why a page was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repeat {
    /// The checkpoint after this page equals the one after the page before.
    CursorDidNotMove { checkpoint: String },
    /// The same records as the page before.
    SameRecords { count: usize },
}

impl std::fmt::Display for Repeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Repeat::CursorDidNotMove { checkpoint } => {
                write!(f, "the cursor did not move past {checkpoint}")
            }
            Repeat::SameRecords { count } => {
                write!(f, "the same {count} records were served twice in a row")
            }
        }
    }
}

impl PageGuard {
    /// Checks one page before it is committed.
    pub fn check<'a>(
        &mut self,
        checkpoint: &str,
        external_ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), Repeat> {
        let ids: BTreeSet<String> = external_ids.into_iter().map(str::to_owned).collect();
        let has_records = !ids.is_empty();
        if has_records && self.previous_checkpoint.as_deref() == Some(checkpoint) {
            return Err(Repeat::CursorDidNotMove {
                checkpoint: checkpoint.to_owned(),
            });
        }
        if has_records && ids == self.previous_ids {
            return Err(Repeat::SameRecords { count: ids.len() });
        }
        self.previous_checkpoint = Some(checkpoint.to_owned());
        self.previous_ids = ids;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_pages_pass() {
        let mut guard = PageGuard::default();
        assert!(guard.check("{\"start\":2}", ["1", "2"]).is_ok());
        assert!(guard.check("{\"start\":4}", ["3", "4"]).is_ok());
        // The final page may be empty and keep the cursor where it is.
        assert!(guard.check("{\"start\":4}", []).is_ok());
    }

    #[test]
    fn a_cursor_that_does_not_move_is_refused() {
        let mut guard = PageGuard::default();
        guard.check("c1", ["1", "2"]).unwrap();
        assert_eq!(
            guard.check("c1", ["3", "4"]),
            Err(Repeat::CursorDidNotMove {
                checkpoint: "c1".into()
            })
        );
    }

    #[test]
    fn the_same_records_again_are_refused() {
        let mut guard = PageGuard::default();
        guard.check("c1", ["1", "2"]).unwrap();
        assert_eq!(
            guard.check("c2", ["2", "1"]),
            Err(Repeat::SameRecords { count: 2 })
        );
    }
}
