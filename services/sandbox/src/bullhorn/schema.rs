//! Bullhorn's entity field tables, embedded from `data/bullhorn/entityref/` (a copy of
//! `shared/partners/bullhorn/entityref/`, so the sandbox builds from the repository alone).
//!
//! They decide which field names `fields=`, `where=` and `query=` accept, as Bullhorn answers an
//! unknown field with 400, and the tests check every generated field against them.

use std::collections::HashSet;
use std::sync::OnceLock;

use serde::Deserialize;

macro_rules! entityref {
    ($file:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/data/bullhorn/entityref/",
            $file
        ))
    };
}

const TABLES: [(&str, &str); 4] = [
    ("JobOrder", entityref!("joborder.json")),
    ("Candidate", entityref!("candidate.json")),
    ("JobSubmission", entityref!("jobsubmission.json")),
    ("Placement", entityref!("placement.json")),
];

#[derive(Deserialize)]
struct EntityRef {
    tables: Vec<Table>,
}

#[derive(Deserialize)]
struct Table {
    rows: Vec<Row>,
}

#[derive(Deserialize)]
struct Row {
    name: String,
}

/// Field names of one entity: plain names plus numbered ranges (`customText1-40`).
#[derive(Debug, Default)]
pub struct Fields {
    names: HashSet<String>,
    ranges: Vec<(String, u32, u32)>,
}

impl Fields {
    pub fn contains(&self, name: &str) -> bool {
        if self.names.contains(name) {
            return true;
        }
        self.ranges.iter().any(|(prefix, low, high)| {
            name.strip_prefix(prefix.as_str())
                .and_then(|digits| digits.parse::<u32>().ok())
                .is_some_and(|n| (*low..=*high).contains(&n))
        })
    }
}

/// The fields of `entity`, or `None` when the sandbox does not serve it.
pub fn fields(entity: &str) -> Option<&'static Fields> {
    static PARSED: OnceLock<Vec<(&'static str, Fields)>> = OnceLock::new();
    let parsed = PARSED.get_or_init(|| {
        TABLES
            .iter()
            .map(|(entity, text)| (*entity, parse(text)))
            .collect()
    });
    parsed
        .iter()
        .find(|(name, _)| *name == entity)
        .map(|(_, fields)| fields)
}

fn parse(text: &str) -> Fields {
    // The tables are compiled in; a parse failure would be caught by the unit test below, so
    // an empty table (every field unknown) is the fallback rather than a panic.
    let Ok(reference) = serde_json::from_str::<EntityRef>(text) else {
        return Fields::default();
    };
    let mut fields = Fields::default();
    for row in reference.tables.into_iter().flat_map(|table| table.rows) {
        match parse_range(&row.name) {
            Some(range) => fields.ranges.push(range),
            None => {
                fields.names.insert(row.name);
            }
        }
    }
    fields
}

/// `customText1-40`, `customDate1 to 13` and `customObject1s to 35s` name numbered families.
fn parse_range(name: &str) -> Option<(String, u32, u32)> {
    let digits_at = name.find(|c: char| c.is_ascii_digit())?;
    let rest = name[digits_at..].replace(" to ", "-").replace('s', "");
    let (low, high) = rest.split_once('-')?;
    let low: u32 = low.trim().parse().ok()?;
    let high: u32 = high.trim().parse().ok()?;
    Some((name[..digits_at].to_owned(), low, high))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_parse_with_plain_and_ranged_fields() {
        let candidate = fields("Candidate").unwrap();
        assert!(candidate.contains("dateLastModified"));
        assert!(candidate.contains("email"));
        assert!(candidate.contains("customText40"));
        assert!(!candidate.contains("customText41"));
        assert!(!candidate.contains("favouriteColour"));
        let job = fields("JobOrder").unwrap();
        assert!(job.contains("customInt8") && !job.contains("customInt9"));
        assert!(fields("Placement").unwrap().contains("jobSubmission"));
        assert!(fields("JobSubmission").unwrap().contains("sendingUser"));
        assert!(fields("Lead").is_none());
    }
}
