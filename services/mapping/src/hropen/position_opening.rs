//! HR Open `PositionOpeningType` and the canonical [`Job`].

use plugboard_proto::common::v1::{Job, Money, PayRange};
use serde_json::{Value, json};

use super::candidate::{export_address, import_address};
use super::{code, code_back, decimal, items, number, prune, text};
use crate::canonical::{self, Violation};

/// The fields that survive import and export (paths into `PositionOpeningType`).
pub const MAPPED: &[&str] = &[
    "/documentId/value",
    "/statusCode",
    "/positionProfiles/0/positionTitle",
    "/positionProfiles/0/positionOrganizations/0/name",
    "/positionProfiles/0/positionOrganizations/0/id/value",
    "/positionProfiles/0/positionLocation/0/line",
    "/positionProfiles/0/positionLocation/0/city",
    "/positionProfiles/0/positionLocation/0/countrySubDivisions/0/value",
    "/positionProfiles/0/positionLocation/0/postalCode",
    "/positionProfiles/0/positionLocation/0/countryCode",
    "/positionProfiles/0/positionOpenQuantity",
    "/positionProfiles/0/positionFormattedDescriptions/0/content",
    "/positionProfiles/0/positionPeriod/start",
    "/positionProfiles/0/positionOfferingTypes/0",
    "/positionProfiles/0/remoteWork/remoteWorkIndicator",
    "/positionProfiles/0/positionScheduleTypeCodes/0",
    "/positionProfiles/0/offeredRemunerationPackage/basisCode",
    "/positionProfiles/0/offeredRemunerationPackage/ranges/*/typeCode",
    "/positionProfiles/0/offeredRemunerationPackage/ranges/*/intervalCode",
    "/positionProfiles/0/offeredRemunerationPackage/ranges/*/referenceAmount/value",
    "/positionProfiles/0/offeredRemunerationPackage/ranges/*/referenceAmount/currency",
    "/positionProfiles/0/offeredRemunerationPackage/ranges/*/minimumAmount/value",
    "/positionProfiles/0/offeredRemunerationPackage/ranges/*/minimumAmount/currency",
    "/positionProfiles/0/offeredRemunerationPackage/ranges/*/maximumAmount/value",
    "/positionProfiles/0/offeredRemunerationPackage/ranges/*/maximumAmount/currency",
];

/// `RecruitingDocumentStatusCodeList` to the canonical job status. Exports of statuses without
/// an HR Open code (`filled`, `cancelled`) say `Closed`.
const STATUS: &[(&str, &str)] = &[
    ("Active", "open"),
    ("OnHold", "on_hold"),
    ("Closed", "closed"),
    ("Incomplete", "draft"),
];

/// `PositionTypeCodeList` to the canonical employment type; other codes (Internship,
/// Seasonal, ...) keep their HR Open spelling.
const EMPLOYMENT_TYPE: &[(&str, &str)] = &[
    ("DirectHire", "permanent"),
    ("Contract", "contract"),
    ("ContractToHire", "contract_to_hire"),
    ("Temporary", "temporary"),
    ("TemporaryToHire", "temporary_to_hire"),
];

/// `PositionScheduleTypeCodeList` to the canonical schedule.
const SCHEDULE: &[(&str, &str)] = &[
    ("FullTime", "full_time"),
    ("PartTime", "part_time"),
    ("FlexTime", "flex_time"),
    ("SharedTime", "shared_time"),
];

/// `RemunerationBasisCodeList` to the canonical pay basis.
const PAY_BASIS: &[(&str, &str)] = &[
    ("Hourly", "hourly"),
    ("Salaried", "salaried"),
    ("SalariedPlusBonus", "salaried_plus_bonus"),
    ("SalariedPlusCommission", "salaried_plus_commission"),
    ("CommissionOnly", "commission_only"),
];

/// `PayTypeCodeList` to the canonical pay type.
const PAY_TYPE: &[(&str, &str)] = &[
    ("BasePay", "base_pay"),
    ("Commission", "commission"),
    ("Bonus", "bonus"),
    ("ShortTermIncentive", "short_term_incentive"),
    ("ShiftPay", "shift_pay"),
    ("OnCall", "on_call"),
    ("Hazard", "hazard"),
    ("VariablePay", "variable_pay"),
    ("Allowance", "allowance"),
    ("Overtime", "overtime"),
];

/// The `PayRateIntervalCodeList` entries with a canonical rate period. Other intervals
/// (`TwoWeeks`, `Quarter`, `Once`, ...) keep their spelling and fail the import, since a
/// canonical amount per period has one of the closed list.
const INTERVAL: &[(&str, &str)] = &[
    ("Hour", "hour"),
    ("Day", "day"),
    ("Week", "week"),
    ("Month", "month"),
    ("Year", "year"),
];

/// `value` translated through `pairs`, or as it is when not listed.
fn translated(pairs: &[(&str, &str)], value: String) -> String {
    code(pairs, &value).map_or(value, str::to_owned)
}

fn translated_back(pairs: &[(&str, &str)], value: &str) -> String {
    code_back(pairs, value).unwrap_or(value).to_owned()
}

/// An HR Open `AmountType` as canonical money; `None` without a value.
fn import_amount(amount: Option<&Value>) -> Option<Money> {
    let amount = amount?;
    let value = decimal(amount.get("value"));
    (!value.is_empty()).then(|| Money {
        amount: value,
        currency: text(amount, "/currency"),
    })
}

fn export_amount(money: Option<&Money>) -> Value {
    match money {
        Some(money) => json!({"value": number(&money.amount), "currency": money.currency}),
        None => Value::Null,
    }
}

fn import_range(range: &Value) -> PayRange {
    PayRange {
        pay_type: translated(PAY_TYPE, text(range, "/typeCode")),
        amount: import_amount(range.get("referenceAmount")),
        minimum: import_amount(range.get("minimumAmount")),
        maximum: import_amount(range.get("maximumAmount")),
        period: translated(INTERVAL, text(range, "/intervalCode")),
    }
}

fn export_range(range: &PayRange) -> Value {
    json!({
        "typeCode": translated_back(PAY_TYPE, &range.pay_type),
        "referenceAmount": export_amount(range.amount.as_ref()),
        "minimumAmount": export_amount(range.minimum.as_ref()),
        "maximumAmount": export_amount(range.maximum.as_ref()),
        "intervalCode": translated_back(INTERVAL, &range.period),
    })
}

/// Reads an HR Open position opening: its document id and the canonical job. A job that breaks
/// a rule of the canonical model (an amount without currency, an interval with no canonical
/// period) is refused with the canonical path at fault.
pub fn import(document: &Value) -> Result<(String, Job), Violation> {
    let profile = document
        .pointer("/positionProfiles/0")
        .cloned()
        .unwrap_or_default();
    let status = text(document, "/statusCode");
    let offering = text(&profile, "/positionOfferingTypes/0");
    let job = Job {
        title: text(&profile, "/positionTitle"),
        status: code(STATUS, &status).map_or(status.clone(), str::to_owned),
        employment_type: code(EMPLOYMENT_TYPE, &offering).map_or(offering.clone(), str::to_owned),
        client_name: text(&profile, "/positionOrganizations/0/name"),
        client_external_id: text(&profile, "/positionOrganizations/0/id/value"),
        location: import_address(profile.pointer("/positionLocation/0")),
        openings: profile
            .get("positionOpenQuantity")
            .and_then(Value::as_i64)
            .and_then(|quantity| i32::try_from(quantity).ok())
            .unwrap_or_default(),
        description: items(&profile, "/positionFormattedDescriptions")
            .first()
            .map(|description| text(description, "/content"))
            .unwrap_or_default(),
        start_date: text(&profile, "/positionPeriod/start"),
        remote: profile.pointer("/remoteWork/remoteWorkIndicator") == Some(&Value::Bool(true)),
        schedule: translated(SCHEDULE, text(&profile, "/positionScheduleTypeCodes/0")),
        pay_basis: translated(
            PAY_BASIS,
            text(&profile, "/offeredRemunerationPackage/basisCode"),
        ),
        pay_ranges: items(&profile, "/offeredRemunerationPackage/ranges")
            .iter()
            .map(import_range)
            .collect(),
        ..Job::default()
    };
    canonical::check_job(&job)?;
    Ok((text(document, "/documentId/value"), job))
}

/// Writes a canonical job as an HR Open `PositionOpeningType` document.
pub fn export(external_id: &str, job: &Job) -> Value {
    let status = match job.status.as_str() {
        "filled" | "cancelled" => "Closed",
        other => code_back(STATUS, other).unwrap_or(other),
    };
    let offering = code_back(EMPLOYMENT_TYPE, &job.employment_type).unwrap_or(&job.employment_type);
    let document = json!({
        "documentId": {"value": external_id},
        "statusCode": status,
        "positionProfiles": [{
            "positionTitle": job.title,
            "positionOrganizations": [{
                "name": job.client_name,
                "id": {"value": job.client_external_id},
            }],
            "positionLocation": job.location.as_ref().map(|location| vec![export_address(location)]),
            "positionOpenQuantity": if job.openings > 0 { json!(job.openings) } else { Value::Null },
            "positionFormattedDescriptions": [{"content": job.description}],
            "positionPeriod": {"start": job.start_date},
            "positionOfferingTypes": [offering],
            "remoteWork": {"remoteWorkIndicator": job.remote},
            "positionScheduleTypeCodes": [translated_back(SCHEDULE, &job.schedule)],
            "offeredRemunerationPackage": {
                "basisCode": translated_back(PAY_BASIS, &job.pay_basis),
                "ranges": job.pay_ranges.iter().map(export_range).collect::<Vec<_>>(),
            },
        }],
    });
    prune(document).unwrap_or_default()
}
