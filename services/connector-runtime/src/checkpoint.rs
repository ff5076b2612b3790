//! Incremental cursors and the read checkpoint.
//!
//! Cursor values are kept as epoch milliseconds whatever the partner writes, so the newest can
//! be picked and a look-back subtracted; [`CursorFormat`] reads and writes the partner's form.
//! The checkpoint is `{"since": <millis>, "max_seen": <millis>, "page": {...}}`: `since` stays
//! fixed during a run and `page` says where the next page starts; the last page of a run moves
//! `since` to the newest value seen (inclusive, so records sharing it are read again rather
//! than lost; sync skips unchanged records by content hash).

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Error;

/// How the partner writes cursor values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorFormat {
    Rfc3339,
    EpochMillis,
    EpochSeconds,
    /// A chrono format without a zone, read in `zone`.
    Pattern {
        pattern: String,
        zone: FixedOffset,
    },
}

impl CursorFormat {
    pub fn parse(format: &str, timezone: Option<&str>) -> Result<CursorFormat, String> {
        let zone = match timezone.map(str::trim) {
            None | Some("UTC" | "utc" | "Z") => {
                Ok(FixedOffset::east_opt(0).expect("zero is a valid offset"))
            }
            Some(offset) => offset
                .parse::<FixedOffset>()
                .map_err(|_| format!("timezone {offset:?} is not UTC or an offset such as +02:00")),
        }?;
        Ok(match format {
            "rfc3339" => CursorFormat::Rfc3339,
            "epoch_millis" => CursorFormat::EpochMillis,
            "epoch_seconds" => CursorFormat::EpochSeconds,
            pattern => {
                use chrono::format::{Item, StrftimeItems};
                if !pattern.contains('%')
                    || StrftimeItems::new(pattern).any(|item| matches!(item, Item::Error))
                {
                    return Err(format!(
                        "incremental format {pattern:?} is not rfc3339, epoch_millis, epoch_seconds or a valid chrono pattern"
                    ));
                }
                CursorFormat::Pattern {
                    pattern: pattern.to_owned(),
                    zone,
                }
            }
        })
    }

    /// Reads a record's cursor field; `None` when absent or unreadable.
    pub fn read(&self, value: &Value) -> Option<i64> {
        match (self, value) {
            (CursorFormat::EpochMillis, Value::Number(n)) => n.as_i64(),
            (CursorFormat::EpochSeconds, Value::Number(n)) => n.as_i64().map(|s| s * 1000),
            (CursorFormat::EpochMillis, Value::String(s)) => s.trim().parse().ok(),
            (CursorFormat::EpochSeconds, Value::String(s)) => {
                s.trim().parse::<i64>().ok().map(|s| s * 1000)
            }
            (CursorFormat::Rfc3339, Value::String(text)) => DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|time| time.timestamp_millis()),
            (CursorFormat::Pattern { pattern, zone }, Value::String(text)) => {
                NaiveDateTime::parse_from_str(text, pattern)
                    .ok()
                    .and_then(|naive| zone.from_local_datetime(&naive).single())
                    .map(|time| time.timestamp_millis())
            }
            _ => None,
        }
    }

    /// Writes `millis` as the partner expects it in a filter.
    pub fn write(&self, millis: i64) -> String {
        match self {
            CursorFormat::EpochMillis => millis.to_string(),
            CursorFormat::EpochSeconds => (millis / 1000).to_string(),
            CursorFormat::Rfc3339 => Utc
                .timestamp_millis_opt(millis)
                .single()
                .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default(),
            CursorFormat::Pattern { pattern, zone } => Utc
                .timestamp_millis_opt(millis)
                .single()
                .map(|time| time.with_timezone(zone).format(pattern).to_string())
                .unwrap_or_default(),
        }
    }
}

/// Where the next page starts within a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PagePosition {
    /// The first page.
    #[default]
    First,
    /// An absolute URL the partner gave (Link header, next URL).
    Url(String),
    /// An opaque cursor token.
    Token(String),
    /// Records or pages to skip.
    Offset(u64),
    /// Keyset paging: the next page starts at cursor value `at` (inclusive); `count` records
    /// at `at` were read this run, the greatest primary key among them being `last_id`.
    Keyset {
        at: i64,
        last_id: String,
        count: u64,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_seen: Option<i64>,
    #[serde(default)]
    pub page: PagePosition,
}

impl Checkpoint {
    /// Empty text is a first full read.
    pub fn parse(text: &str) -> Result<Checkpoint, Error> {
        if text.trim().is_empty() {
            return Ok(Checkpoint::default());
        }
        serde_json::from_str(text).map_err(|e| Error::InvalidCheckpoint(e.to_string()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn see(&mut self, value: i64) {
        self.max_seen = Some(self.max_seen.map_or(value, |seen| seen.max(value)));
    }

    /// The checkpoint after the last page: the next run starts at the newest value seen, less
    /// the look-back.
    pub fn finished(&self, lookback_millis: i64) -> Checkpoint {
        let since = self
            .max_seen
            .map(|seen| seen - lookback_millis)
            .max(self.since)
            .or(self.since);
        Checkpoint {
            since,
            max_seen: None,
            page: PagePosition::First,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn formats_read_and_write_the_same_instant() {
        let rfc = CursorFormat::parse("rfc3339", None).unwrap();
        let millis = rfc.read(&json!("2017-09-28T12:29:30.497Z")).unwrap();
        assert_eq!(rfc.write(millis), "2017-09-28T12:29:30.497Z");
        assert_eq!(
            rfc.read(&json!("2017-09-28T14:29:30.497+02:00")),
            Some(millis)
        );
        let naive = CursorFormat::parse("%Y-%m-%d %H:%M:%S", Some("+02:00")).unwrap();
        assert_eq!(
            naive.read(&json!("2017-09-28 14:29:30")),
            Some(millis - 497)
        );
        assert_eq!(naive.write(millis - 497), "2017-09-28 14:29:30");
        let epoch = CursorFormat::parse("epoch_seconds", None).unwrap();
        assert_eq!(epoch.read(&json!(10)), Some(10_000));
        assert!(CursorFormat::parse("yyyy-mm-dd", None).is_err());
        assert!(CursorFormat::parse("rfc3339", Some("Mars/Olympus")).is_err());
    }

    #[test]
    fn finishing_moves_since_to_the_newest_less_lookback() {
        let mut checkpoint = Checkpoint::parse("").unwrap();
        checkpoint.see(5_000);
        checkpoint.see(9_000);
        checkpoint.page = PagePosition::Offset(100);
        let resumed = Checkpoint::parse(&checkpoint.to_json()).unwrap();
        assert_eq!(resumed, checkpoint);
        let done = resumed.finished(1_000);
        assert_eq!(done.since, Some(8_000));
        assert_eq!(done.page, PagePosition::First);
        // A look-back never moves the cursor backwards past where the run began.
        let mut late = Checkpoint {
            since: Some(8_500),
            ..Checkpoint::default()
        };
        late.see(9_000);
        assert_eq!(late.finished(1_000).since, Some(8_500));
        assert!(Checkpoint::parse("{oops").is_err());
    }
}
