//! Keyset paging over an offset-paged, cursor-sorted stream.
//!
//! Plain offset paging over a fixed lower bound loses records: when a record read earlier in
//! the run changes, it moves to the end of the ordering, every later record shifts one place
//! back, and the record that slides across the page boundary is never read (its timestamp is
//! older than the run's newest, so the next run skips it too). With keyset paging each page
//! asks again from the newest cursor value read so far, inclusively, and drops the records at
//! that value it has already read (sorted by primary key, so "already read" is "key at most
//! the greatest key read there"). Records sharing one timestamp can outnumber a page, so the
//! offset skips all but half a page of them; only if more than half a page of those records
//! changed between two requests could one be missed.

use std::cmp::Ordering;

use crate::checkpoint::PagePosition;

/// Records to skip at the start of the next page.
pub fn offset(position: &PagePosition, page_size: u32) -> u64 {
    match position {
        PagePosition::Keyset { count, .. } => count.saturating_sub(u64::from(page_size / 2)),
        _ => 0,
    }
}

/// Whether a record at `cursor` with primary key `id` was read earlier in this run.
pub fn already_read(position: &PagePosition, cursor: Option<i64>, id: Option<&str>) -> bool {
    match (position, cursor, id) {
        (PagePosition::Keyset { at, last_id, .. }, Some(cursor), Some(id)) => {
            cursor == *at && compare_ids(id, last_id) != Ordering::Greater
        }
        _ => false,
    }
}

/// Primary keys compare as integers when both are, as text otherwise (how partners sort).
pub fn compare_ids(a: &str, b: &str) -> Ordering {
    match (a.parse::<i128>(), b.parse::<i128>()) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        _ => a.cmp(b),
    }
}

/// Follows the newest cursor value of a run and the records read at it.
#[derive(Debug, Clone)]
pub struct Tracker {
    at: Option<i64>,
    last_id: String,
    count: u64,
}

impl Tracker {
    pub fn new(position: &PagePosition) -> Tracker {
        match position {
            PagePosition::Keyset { at, last_id, count } => Tracker {
                at: Some(*at),
                last_id: last_id.clone(),
                count: *count,
            },
            _ => Tracker {
                at: None,
                last_id: String::new(),
                count: 0,
            },
        }
    }

    /// Notes one new record (a record without an id still takes a place in the ordering).
    pub fn see(&mut self, cursor: Option<i64>, id: Option<&str>) {
        let Some(cursor) = cursor else { return };
        match self.at {
            Some(at) if cursor < at => {}
            Some(at) if cursor == at => {
                self.count += 1;
                self.take_greater(id);
            }
            _ => {
                self.at = Some(cursor);
                self.count = 1;
                self.last_id.clear();
                self.take_greater(id);
            }
        }
    }

    fn take_greater(&mut self, id: Option<&str>) {
        if let Some(id) = id
            && (self.last_id.is_empty() || compare_ids(id, &self.last_id) == Ordering::Greater)
        {
            self.last_id = id.to_owned();
        }
    }

    /// Where the next page starts; `None` when no record had a cursor value.
    pub fn position(&self) -> Option<PagePosition> {
        Some(PagePosition::Keyset {
            at: self.at?,
            last_id: self.last_id.clone(),
            count: self.count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_at_the_boundary_are_read_once() {
        let mut tracker = Tracker::new(&PagePosition::First);
        for (cursor, id) in [(5, "1"), (7, "2"), (7, "10"), (7, "9")] {
            tracker.see(Some(cursor), Some(id));
        }
        let position = tracker.position().unwrap();
        assert_eq!(
            position,
            PagePosition::Keyset {
                at: 7,
                last_id: "10".to_owned(),
                count: 3
            }
        );
        assert!(already_read(&position, Some(7), Some("9")));
        assert!(already_read(&position, Some(7), Some("10")));
        assert!(!already_read(&position, Some(7), Some("11")));
        assert!(!already_read(&position, Some(8), Some("1")));
        // Fewer boundary records than half a page: re-read them all and drop them.
        assert_eq!(offset(&position, 10), 0);
        assert_eq!(offset(&position, 2), 2);
        let mut next = Tracker::new(&position);
        next.see(Some(7), Some("12"));
        next.see(Some(9), None);
        assert_eq!(
            next.position(),
            Some(PagePosition::Keyset {
                at: 9,
                last_id: String::new(),
                count: 1
            })
        );
        assert_eq!(compare_ids("9", "10"), Ordering::Less);
        assert_eq!(compare_ids("b", "a"), Ordering::Greater);
    }
}
