//! HR Open `TimecardType` and the canonical [`Timesheet`].

use plugboard_proto::common::v1::{ChargeLine, Money, PayPeriod, Rate, TimeEntry, Timesheet};
use serde_json::{Value, json};

use super::{code, code_back, decimal, items, number, prune, text};
use crate::canonical::{self, Violation};

/// The fields that survive import and export (paths into `TimecardType`).
pub const MAPPED: &[&str] = &[
    "/documentId/value",
    "/person/id/value",
    "/period/start",
    "/period/end",
    "/stateCode",
    "/payRates/*/code",
    "/payRates/*/name",
    "/payRates/*/amount/value",
    "/payRates/*/amount/currency",
    "/items/*/typeCode",
    "/items/*/period",
    "/items/*/timeTotal",
];

/// `StateCodeType` to the canonical timesheet status; other states keep their spelling.
const STATE: &[(&str, &str)] = &[
    ("Open", "draft"),
    ("Submitted", "submitted"),
    ("Approved", "approved"),
    ("Rejected", "rejected"),
    ("Processed", "processed"),
];

/// `ItemTypeCodeType` to canonical pay codes. Other item types map to `other` and keep their
/// HR Open code in `partner_pay_code`.
const PAY_CODE: &[(&str, &str)] = &[
    ("Regular", "regular"),
    ("Overtime", "overtime"),
    ("Holiday", "holiday"),
    ("Illness", "sick"),
    ("Vacation", "vacation"),
];

/// Reads an HR Open timecard: its document id and the canonical timesheet, or the rule of the
/// canonical model it breaks. Entry times become local times of day: a UTC offset on an HR Open
/// date-time is dropped and the wall time kept, since HR Open names no zone to keep instead.
pub fn import(document: &Value) -> Result<(String, Timesheet), Violation> {
    let state = text(document, "/stateCode");
    let period = PayPeriod {
        start_date: text(document, "/period/start"),
        end_date: text(document, "/period/end"),
        frequency: String::new(),
    };
    let timesheet = Timesheet {
        worker_external_id: text(document, "/person/id/value"),
        status: code(STATE, &state).map_or(state.clone(), str::to_owned),
        period: (period != PayPeriod::default()).then_some(period),
        pay_lines: items(document, "/payRates")
            .iter()
            .map(|rate| ChargeLine {
                pay_code: text(rate, "/code"),
                description: text(rate, "/name"),
                unit: "hour".to_owned(),
                rate: Some(Rate {
                    money: Some(Money {
                        amount: decimal(rate.pointer("/amount/value")),
                        currency: text(rate, "/amount/currency"),
                    }),
                    period: "hour".to_owned(),
                }),
                ..ChargeLine::default()
            })
            .collect(),
        entries: items(document, "/items").iter().map(import_entry).collect(),
        ..Timesheet::default()
    };
    canonical::check_timesheet(&timesheet)?;
    Ok((text(document, "/documentId/value"), timesheet))
}

fn import_entry(item: &Value) -> TimeEntry {
    let type_code = text(item, "/typeCode");
    let (pay_code, partner_pay_code) = match code(PAY_CODE, &type_code) {
        Some(pay_code) => (pay_code.to_owned(), String::new()),
        None if type_code.is_empty() => (String::new(), String::new()),
        None => ("other".to_owned(), type_code),
    };
    let mut entry = TimeEntry {
        pay_code,
        partner_pay_code,
        hours: text(item, "/timeTotal")
            .parse::<Duration>()
            .map(|duration| duration.hours())
            .unwrap_or_default(),
        ..TimeEntry::default()
    };
    match item.get("period") {
        // A period may be a bare date.
        Some(Value::String(date)) => entry.date = date.clone(),
        Some(period) => {
            let (date, start_time) = split_date_time(&text(period, "/start"));
            let (end_date, end_time) = split_date_time(&text(period, "/end"));
            entry.end_date = if end_date != date {
                end_date
            } else {
                String::new()
            };
            entry.date = date;
            entry.start_time = start_time;
            entry.end_time = end_time;
        }
        None => entry.date = text(item, "/entryDate"),
    }
    entry
}

/// The local date and time of day of an HR Open date-time, without its UTC offset if any.
fn split_date_time(text: &str) -> (String, String) {
    match text.split_once('T') {
        Some((date, time)) => {
            let local = time
                .strip_suffix('Z')
                .or_else(|| time.rfind(['+', '-']).map(|at| &time[..at]))
                .unwrap_or(time);
            (date.to_owned(), local.to_owned())
        }
        None => (text.to_owned(), String::new()),
    }
}

/// `date` at the local `time` of day as an HR Open date-time: with the offset `zone` has then,
/// so it is a valid RFC 3339 date-time; without a zone (or a time it cannot read) the local
/// text, as a partner gave it.
fn date_time(date: &str, time: &str, zone: Option<&jiff::tz::TimeZone>) -> String {
    let local = format!("{date}T{time}");
    let offset = zone.and_then(|zone| {
        let civil: jiff::civil::DateTime = local.parse().ok()?;
        // A time in a daylight-saving gap or fold takes the offset before the change.
        let zoned = civil.to_zoned(zone.clone()).ok()?;
        Some(zoned.offset().seconds())
    });
    match offset {
        Some(seconds) => {
            let sign = if seconds < 0 { '-' } else { '+' };
            let minutes = seconds.abs() / 60;
            format!("{local}{sign}{:02}:{:02}", minutes / 60, minutes % 60)
        }
        None => local,
    }
}

fn export_entry(entry: &TimeEntry, zone: Option<&jiff::tz::TimeZone>) -> Value {
    let type_code = if entry.partner_pay_code.is_empty() {
        code_back(PAY_CODE, &entry.pay_code).unwrap_or_default()
    } else {
        entry.partner_pay_code.as_str()
    };
    let at = |date: &str, time: &str| {
        if time.is_empty() {
            date.to_owned()
        } else {
            date_time(date, time, zone)
        }
    };
    let period =
        if entry.start_time.is_empty() && entry.end_time.is_empty() && entry.end_date.is_empty() {
            json!(entry.date)
        } else {
            let end_date = if entry.end_date.is_empty() {
                &entry.date
            } else {
                &entry.end_date
            };
            json!({
                "start": at(&entry.date, &entry.start_time),
                "end": at(end_date, &entry.end_time),
            })
        };
    json!({
        "typeCode": type_code,
        "period": period,
        "timeTotal": entry
            .hours
            .parse::<f64>()
            .ok()
            .map(|hours| Duration::from_hours(hours).to_string()),
    })
}

/// Writes a canonical timesheet as an HR Open `TimecardType` document. Entry times carry the
/// UTC offset of the timesheet's time zone at that time, when it has one.
pub fn export(external_id: &str, timesheet: &Timesheet) -> Value {
    let zone = jiff::tz::TimeZone::get(&timesheet.time_zone).ok();
    let period = timesheet.period.clone().unwrap_or_default();
    let state = code_back(STATE, &timesheet.status).unwrap_or(&timesheet.status);
    let document = json!({
        "documentId": {"value": external_id},
        "person": {"id": {"value": timesheet.worker_external_id}},
        "period": {"start": period.start_date, "end": period.end_date},
        "stateCode": state,
        "payRates": timesheet
            .pay_lines
            .iter()
            .map(|line| {
                let money = line.rate.clone().unwrap_or_default().money.unwrap_or_default();
                json!({
                    "code": line.pay_code,
                    "name": line.description,
                    "amount": {"value": number(&money.amount), "currency": money.currency},
                })
            })
            .collect::<Vec<_>>(),
        "items": timesheet
            .entries
            .iter()
            .map(|entry| export_entry(entry, zone.as_ref()))
            .collect::<Vec<_>>(),
    });
    prune(document).unwrap_or_default()
}

/// An ISO 8601 duration of hours, minutes and whole seconds (`PT7H30M`, `-PT8H`), as seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(i64);

impl Duration {
    /// Decimal hours: exact to two places when the duration is a whole number of 36 seconds,
    /// else six places (which still turn back into the same whole seconds).
    pub fn hours(self) -> String {
        let text = if self.0 % 36 == 0 {
            let hundredths = self.0 / 36;
            format!(
                "{}{}.{:02}",
                if hundredths < 0 { "-" } else { "" },
                hundredths.abs() / 100,
                hundredths.abs() % 100
            )
        } else {
            format!("{:.6}", self.0 as f64 / 3600.0)
        };
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }

    pub fn from_hours(hours: f64) -> Duration {
        Duration((hours * 3600.0).round() as i64)
    }
}

impl std::str::FromStr for Duration {
    type Err = String;

    fn from_str(text: &str) -> Result<Duration, String> {
        let (sign, rest) = match text.strip_prefix('-') {
            Some(rest) => (-1, rest),
            None => (1, text),
        };
        let mut rest = rest
            .strip_prefix("PT")
            .ok_or_else(|| format!("{text:?} is not an ISO 8601 time duration"))?;
        let mut seconds = 0_i64;
        let mut seen = false;
        for (unit, factor) in [('H', 3600), ('M', 60), ('S', 1)] {
            if let Some((digits, after)) = rest.split_once(unit)
                && !digits.is_empty()
                && digits.bytes().all(|byte| byte.is_ascii_digit())
            {
                let value: i64 = digits.parse().map_err(|_| format!("{text:?}: too large"))?;
                seconds += value * factor;
                rest = after;
                seen = true;
            }
        }
        if !rest.is_empty() || !seen {
            return Err(format!("{text:?} is not an ISO 8601 time duration"));
        }
        Ok(Duration(sign * seconds))
    }
}

impl std::fmt::Display for Duration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total = self.0.abs();
        if self.0 < 0 {
            f.write_str("-")?;
        }
        f.write_str("PT")?;
        let (hours, minutes, seconds) = (total / 3600, total % 3600 / 60, total % 60);
        if hours > 0 {
            write!(f, "{hours}H")?;
        }
        if minutes > 0 {
            write!(f, "{minutes}M")?;
        }
        if seconds > 0 || total == 0 {
            write!(f, "{seconds}S")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_turn_into_hours_and_back() {
        for (text, hours) in [
            ("PT8H", "8"),
            ("PT7H30M", "7.5"),
            ("PT30M", "0.5"),
            ("PT1H50M", "1.833333"),
            ("PT36M15S", "0.604167"),
            ("-PT8H", "-8"),
            ("PT0S", "0"),
        ] {
            let duration: Duration = text.parse().unwrap();
            assert_eq!(duration.hours(), hours, "{text}");
            let back = Duration::from_hours(hours.parse().unwrap());
            assert_eq!(back.to_string(), text, "{hours}");
        }
        for bad in ["8H", "PT", "PTxH", "P1D", "PT8H1"] {
            assert!(bad.parse::<Duration>().is_err(), "{bad}");
        }
    }
}
