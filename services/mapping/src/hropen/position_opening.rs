//! HR Open `PositionOpeningType` and the canonical [`Job`].

use plugboard_proto::common::v1::Job;
use serde_json::{Value, json};

use super::candidate::{export_address, import_address};
use super::{code, code_back, items, prune, text};

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

/// Reads an HR Open position opening: its document id and the canonical job.
pub fn import(document: &Value) -> (String, Job) {
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
        ..Job::default()
    };
    (text(document, "/documentId/value"), job)
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
        }],
    });
    prune(document).unwrap_or_default()
}
