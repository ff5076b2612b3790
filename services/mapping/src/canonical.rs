//! Rules every canonical record keeps, whoever builds it: an amount carries its currency, a
//! rate its period from the closed list, time zones are IANA names and pay frequencies come from
//! theirs. Mapping checks them where records are built (spec transforms in both directions,
//! HR Open imports), so a record that breaks one fails with the path at fault instead of
//! reaching the store looking valid.

use plugboard_proto::common::v1::canonical_record::Body;
use plugboard_proto::common::v1::{
    Candidate, ChargeLine, Job, Money, PayPeriod, PayRange, Rate, Timesheet,
};

/// The periods a rate or a pay range is expressed in.
pub const RATE_PERIODS: &[&str] = &["hour", "day", "week", "month", "year"];

/// How often a worker is paid (placements, workers, pay periods).
pub const PAY_FREQUENCIES: &[&str] = &["weekly", "biweekly", "semimonthly", "monthly"];

/// The first rule a record breaks: where (`desired_pay.money.currency`), the value found there
/// (or beside it, for a missing one) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct Violation {
    pub path: String,
    pub value: String,
    pub message: String,
}

/// Checks `body` against every rule; the first violation found, in field order.
pub fn check(body: &Body) -> Result<(), Violation> {
    match body {
        Body::Job(job) => check_job(job),
        Body::Candidate(candidate) => check_candidate(candidate),
        Body::Application(application) => {
            rate("proposed_pay", application.proposed_pay.as_ref())?;
            rate("proposed_bill", application.proposed_bill.as_ref())
        }
        Body::Placement(placement) => {
            rate("pay_rate", placement.pay_rate.as_ref())?;
            rate("bill_rate", placement.bill_rate.as_ref())?;
            time_zone("time_zone", &placement.time_zone)?;
            frequency("pay_frequency", &placement.pay_frequency)
        }
        Body::Worker(worker) => {
            time_zone("time_zone", &worker.time_zone)?;
            frequency("pay_frequency", &worker.pay_frequency)
        }
        Body::Timesheet(timesheet) => check_timesheet(timesheet),
        Body::JobPosting(posting) => rate("pay_rate", posting.pay_rate.as_ref()),
        Body::ParsedResume(_) => Ok(()),
    }
}

pub fn check_job(job: &Job) -> Result<(), Violation> {
    rate("pay_rate", job.pay_rate.as_ref())?;
    rate("bill_rate", job.bill_rate.as_ref())?;
    for (index, range) in job.pay_ranges.iter().enumerate() {
        pay_range(&format!("pay_ranges[{index}]"), range)?;
    }
    time_zone("time_zone", &job.time_zone)
}

pub fn check_candidate(candidate: &Candidate) -> Result<(), Violation> {
    rate("desired_pay", candidate.desired_pay.as_ref())?;
    rate(
        "desired_contract_rate",
        candidate.desired_contract_rate.as_ref(),
    )
}

pub fn check_timesheet(timesheet: &Timesheet) -> Result<(), Violation> {
    if let Some(PayPeriod {
        frequency: text, ..
    }) = &timesheet.period
    {
        frequency("period.frequency", text)?;
    }
    time_zone("time_zone", &timesheet.time_zone)?;
    for (index, line) in timesheet.pay_lines.iter().enumerate() {
        charge_line(&format!("pay_lines[{index}]"), line)?;
    }
    for (index, line) in timesheet.bill_lines.iter().enumerate() {
        charge_line(&format!("bill_lines[{index}]"), line)?;
    }
    Ok(())
}

fn violation(path: String, value: &str, message: String) -> Violation {
    Violation {
        path,
        value: value.to_owned(),
        message,
    }
}

/// An amount is a decimal with its ISO 4217 currency. A currency without an amount says
/// nothing and passes (a partner sending its currency code on every record, rate or not).
/// Paths are `base.part`, only put together for a violation (this runs for every record).
fn money(base: &str, part: &str, money: Option<&Money>) -> Result<bool, Violation> {
    let Some(money) = money.filter(|money| !money.amount.is_empty()) else {
        return Ok(false);
    };
    let at = |leaf: &str| format!("{base}.{part}.{leaf}");
    if !is_decimal(&money.amount) {
        return Err(violation(
            at("amount"),
            &money.amount,
            "an amount is a decimal number such as 45.50".to_owned(),
        ));
    }
    if money.currency.is_empty() {
        return Err(violation(
            at("currency"),
            &money.amount,
            format!(
                "the amount {} has no currency; give its ISO 4217 code such as USD",
                money.amount
            ),
        ));
    }
    if !is_currency_code(&money.currency) {
        return Err(violation(
            at("currency"),
            &money.currency,
            format!(
                "{:?} is not an ISO 4217 currency code (three capital letters such as USD)",
                money.currency
            ),
        ));
    }
    Ok(true)
}

fn period(base: &str, text: &str, has_amount: bool) -> Result<(), Violation> {
    if text.is_empty() {
        if has_amount {
            return Err(violation(
                format!("{base}.period"),
                text,
                format!(
                    "an amount per period needs its period: one of {}",
                    RATE_PERIODS.join(", ")
                ),
            ));
        }
        return Ok(());
    }
    if !RATE_PERIODS.contains(&text) {
        return Err(violation(
            format!("{base}.period"),
            text,
            format!(
                "{text:?} is not a rate period; use one of {}",
                RATE_PERIODS.join(", ")
            ),
        ));
    }
    Ok(())
}

fn rate(path: &str, rate: Option<&Rate>) -> Result<(), Violation> {
    let Some(rate) = rate else {
        return Ok(());
    };
    let has_amount = money(path, "money", rate.money.as_ref())?;
    period(path, &rate.period, has_amount)
}

fn pay_range(path: &str, range: &PayRange) -> Result<(), Violation> {
    let mut has_amount = money(path, "amount", range.amount.as_ref())?;
    has_amount |= money(path, "minimum", range.minimum.as_ref())?;
    has_amount |= money(path, "maximum", range.maximum.as_ref())?;
    period(path, &range.period, has_amount)
}

fn charge_line(path: &str, line: &ChargeLine) -> Result<(), Violation> {
    if let Some(line_rate) = &line.rate {
        let has_amount = money(path, "rate.money", line_rate.money.as_ref())?;
        period(&format!("{path}.rate"), &line_rate.period, has_amount)?;
    }
    money(path, "amount", line.amount.as_ref()).map(|_| ())
}

fn time_zone(path: &str, name: &str) -> Result<(), Violation> {
    if name.is_empty() || jiff::tz::TimeZone::get(name).is_ok() {
        return Ok(());
    }
    Err(violation(
        path.to_owned(),
        name,
        format!("{name:?} is not an IANA time zone such as America/Chicago"),
    ))
}

fn frequency(path: &str, text: &str) -> Result<(), Violation> {
    if text.is_empty() || PAY_FREQUENCIES.contains(&text) {
        return Ok(());
    }
    Err(violation(
        path.to_owned(),
        text,
        format!(
            "{text:?} is not a pay frequency; use one of {}",
            PAY_FREQUENCIES.join(", ")
        ),
    ))
}

/// `-12`, `45.50`, `0.5`: digits with an optional sign and fraction (what `tostring` gives
/// for JSON numbers short of exponents).
fn is_decimal(text: &str) -> bool {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, "0"));
    !whole.is_empty()
        && !fraction.is_empty()
        && whole.bytes().all(|byte| byte.is_ascii_digit())
        && fraction.bytes().all(|byte| byte.is_ascii_digit())
}

fn is_currency_code(text: &str) -> bool {
    text.len() == 3 && text.bytes().all(|byte| byte.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use plugboard_proto::common::v1::Worker;

    use super::*;

    fn money_of(amount: &str, currency: &str) -> Option<Money> {
        Some(Money {
            amount: amount.to_owned(),
            currency: currency.to_owned(),
        })
    }

    fn candidate_paid(amount: &str, currency: &str, period: &str) -> Body {
        Body::Candidate(Candidate {
            desired_pay: Some(Rate {
                money: money_of(amount, currency),
                period: period.to_owned(),
            }),
            ..Candidate::default()
        })
    }

    #[test]
    fn amounts_need_currency_and_period() {
        assert_eq!(check(&candidate_paid("45.50", "USD", "hour")), Ok(()));
        // A currency alone (the partner's default) is no amount.
        assert_eq!(check(&candidate_paid("", "USD", "")), Ok(()));

        let error = check(&candidate_paid("45.50", "", "hour")).unwrap_err();
        assert_eq!(error.path, "desired_pay.money.currency");
        assert_eq!(error.value, "45.50");
        let error = check(&candidate_paid("45.50", "usd", "hour")).unwrap_err();
        assert!(error.message.contains("ISO 4217"), "{error}");
        let error = check(&candidate_paid("45.50", "USD", "")).unwrap_err();
        assert_eq!(error.path, "desired_pay.period");
        let error = check(&candidate_paid("45.50", "USD", "fortnight")).unwrap_err();
        assert!(error.message.contains("not a rate period"), "{error}");
        let error = check(&candidate_paid("null", "USD", "hour")).unwrap_err();
        assert_eq!(error.path, "desired_pay.money.amount");
        for good in ["0", "-3", "146000.0", "0.5"] {
            assert_eq!(
                check(&candidate_paid(good, "EUR", "year")),
                Ok(()),
                "{good}"
            );
        }
        for bad in ["1e3", "1.", ".5", "1,5", "--1", "$5"] {
            assert!(check(&candidate_paid(bad, "EUR", "year")).is_err(), "{bad}");
        }
    }

    #[test]
    fn pay_ranges_lines_time_zones_and_frequencies_are_checked() {
        let job = Body::Job(Job {
            pay_ranges: vec![PayRange {
                minimum: money_of("50000", "USD"),
                maximum: money_of("60000", ""),
                period: "year".to_owned(),
                ..PayRange::default()
            }],
            ..Job::default()
        });
        assert_eq!(
            check(&job).unwrap_err().path,
            "pay_ranges[0].maximum.currency"
        );

        let timesheet = Body::Timesheet(Timesheet {
            time_zone: "America/Chicago".to_owned(),
            pay_lines: vec![ChargeLine {
                amount: money_of("400", "USD"),
                ..ChargeLine::default()
            }],
            bill_lines: vec![ChargeLine {
                rate: Some(Rate {
                    money: money_of("60", "USD"),
                    period: String::new(),
                }),
                ..ChargeLine::default()
            }],
            ..Timesheet::default()
        });
        assert_eq!(
            check(&timesheet).unwrap_err().path,
            "bill_lines[0].rate.period"
        );

        let worker = |zone: &str, frequency: &str| {
            Body::Worker(Worker {
                time_zone: zone.to_owned(),
                pay_frequency: frequency.to_owned(),
                ..Worker::default()
            })
        };
        assert_eq!(check(&worker("Europe/London", "biweekly")), Ok(()));
        let error = check(&worker("Mars/Olympus", "weekly")).unwrap_err();
        assert_eq!(error.path, "time_zone");
        assert!(error.message.contains("IANA"), "{error}");
        let error = check(&worker("", "fortnightly")).unwrap_err();
        assert_eq!(error.path, "pay_frequency");
    }
}
