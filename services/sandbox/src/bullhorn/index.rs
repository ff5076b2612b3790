//! An entity's records in one sort order, kept until they change, so that a query page costs
//! about its page instead of a filter and sort of every record.
//!
//! A connector's keyset paging asks `dateLastModified>=cursor` ordered by `dateLastModified,id`
//! (dlt's offset paging the same with a fixed cursor): with the records in that order, the
//! matching ones are one contiguous run found by binary search, and `total` is its length. Any
//! other query walks the sorted records and filters them, still without sorting.

use std::cmp::Ordering;
use std::ops::Range;

use serde_json::Value;

use super::filter::{self, Condition, Op};

/// Positions (into the entity's records followed by the injected ones) in `sort` order.
pub struct SortedIndex {
    positions: Vec<u32>,
    /// Whether every record that has the first sort key has a number there: only then does a
    /// numeric bound on that key split the order in two, and binary search is exact.
    numeric_first_key: bool,
}

/// A query's page: how many records match, and the page's records.
pub struct Page<'a> {
    pub total: usize,
    pub records: Vec<&'a Value>,
}

impl SortedIndex {
    pub fn build(records: &[&Value], sort: &[(String, bool)]) -> SortedIndex {
        let mut positions: Vec<u32> = (0..records.len() as u32).collect();
        positions.sort_by(|a, b| filter::order(records[*a as usize], records[*b as usize], sort));
        let numeric_first_key = sort.first().is_some_and(|(field, _)| {
            records.iter().all(|record| {
                filter::lookup(record, field).is_none_or(|value| value.as_f64().is_some())
            })
        });
        SortedIndex {
            positions,
            numeric_first_key,
        }
    }

    /// The page `start..start + count` of the records matching `conditions`.
    pub fn page<'a>(
        &self,
        records: &[&'a Value],
        conditions: &[Condition],
        sort: &[(String, bool)],
        start: usize,
        count: usize,
    ) -> Page<'a> {
        let (range, rest) = self.narrow(records, conditions, sort);
        let candidates = &self.positions[range];
        let record = |position: &u32| records[*position as usize];
        if rest.is_empty() {
            let end = start.saturating_add(count).min(candidates.len());
            let page = candidates.get(start..end).unwrap_or_default();
            return Page {
                total: candidates.len(),
                records: page.iter().map(record).collect(),
            };
        }
        let mut total = 0;
        let mut page = Vec::new();
        for candidate in candidates.iter().map(record) {
            if rest.iter().all(|condition| condition.matches(candidate)) {
                if total >= start && page.len() < count {
                    page.push(candidate);
                }
                total += 1;
            }
        }
        Page {
            total,
            records: page,
        }
    }

    /// The run of positions that numeric bounds on the ascending first sort key leave, and the
    /// conditions still to check on each record of it.
    fn narrow<'c>(
        &self,
        records: &[&Value],
        conditions: &'c [Condition],
        sort: &[(String, bool)],
    ) -> (Range<usize>, Vec<&'c Condition>) {
        let mut range = 0..self.positions.len();
        let first_key = match sort.first() {
            Some((field, false)) if self.numeric_first_key => field.as_str(),
            _ => return (range, conditions.iter().collect()),
        };
        let mut rest = Vec::new();
        for condition in conditions {
            let bound = match condition {
                Condition::Compare { field, op, value } if field == first_key => {
                    value.as_f64().map(|bound| (*op, bound))
                }
                _ => None,
            };
            let Some((op, bound)) = bound else {
                rest.push(condition);
                continue;
            };
            // How a record's key compares with the bound; a record without the key sorts
            // first and matches no comparison.
            let side = |position: &u32| {
                filter::lookup(records[*position as usize], first_key)
                    .and_then(Value::as_f64)
                    .map(|key| key.partial_cmp(&bound).unwrap_or(Ordering::Less))
            };
            let slice = &self.positions[range.clone()];
            let below = |position: &u32| side(position).is_none_or(|o| o == Ordering::Less);
            let at_most = |position: &u32| side(position).is_none_or(|o| o != Ordering::Greater);
            let (from, to) = match op {
                Op::Ge => (slice.partition_point(below), slice.len()),
                Op::Gt => (slice.partition_point(at_most), slice.len()),
                Op::Le => (
                    slice.partition_point(|p| side(p).is_none()),
                    slice.partition_point(at_most),
                ),
                Op::Lt => (
                    slice.partition_point(|p| side(p).is_none()),
                    slice.partition_point(below),
                ),
                Op::Eq => (slice.partition_point(below), slice.partition_point(at_most)),
                Op::Ne => {
                    rest.push(condition);
                    continue;
                }
            };
            let start = range.start;
            range = start + from..start + to.max(from);
        }
        (range, rest)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(records: &[Value], clause: &str, sort: &str, start: usize, count: usize) {
        let refs: Vec<&Value> = records.iter().collect();
        let sort = filter::parse_sort(Some(sort));
        let conditions = filter::parse_where(clause).unwrap();
        let index = SortedIndex::build(&refs, &sort);
        let page = index.page(&refs, &conditions, &sort, start, count);

        // The same page the slow way: filter everything, sort, slice.
        let mut matching: Vec<&Value> = refs
            .iter()
            .copied()
            .filter(|record| conditions.iter().all(|c| c.matches(record)))
            .collect();
        matching.sort_by(|a, b| filter::order(a, b, &sort));
        let expected: Vec<&Value> = matching.iter().skip(start).take(count).copied().collect();
        assert_eq!(page.total, matching.len(), "{clause} {start}");
        assert_eq!(page.records, expected, "{clause} {start}");
    }

    #[test]
    fn pages_equal_a_full_filter_and_sort() {
        let mut records: Vec<Value> = (1..=60)
            .map(|id| json!({"id": id, "dateLastModified": (id * 7) % 13, "status": if id % 3 == 0 { "Placed" } else { "New" }}))
            .collect();
        records.push(json!({"firstName": "no id", "dateLastModified": 5}));
        records.push(json!({"id": 99, "name": "no date"}));
        for clause in [
            "dateLastModified>=0",
            "dateLastModified>=5",
            "dateLastModified>5",
            "dateLastModified<=5",
            "dateLastModified<5",
            "dateLastModified=5",
            "dateLastModified<>5",
            "dateLastModified>=3 AND dateLastModified<9",
            "dateLastModified>=3 AND status='placed'",
            "id IN (3, 4, 99)",
        ] {
            for start in [0, 1, 7, 40, 200] {
                check(&records, clause, "dateLastModified,id", start, 10);
                check(&records, clause, "-dateLastModified", start, 10);
            }
        }
    }

    #[test]
    fn a_mistyped_key_falls_back_to_filtering() {
        let records = vec![
            json!({"id": 1, "dateLastModified": 3}),
            json!({"id": 2, "dateLastModified": "yesterday"}),
            json!({"id": 3, "dateLastModified": 1}),
        ];
        let refs: Vec<&Value> = records.iter().collect();
        let sort = filter::parse_sort(Some("dateLastModified"));
        assert!(!SortedIndex::build(&refs, &sort).numeric_first_key);
        check(&records, "dateLastModified>=2", "dateLastModified", 0, 10);
    }
}
