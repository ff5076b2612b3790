//! HR Open `CandidateType` and the canonical [`Candidate`].

use plugboard_proto::common::v1::{Address, Candidate, Education, WorkExperience};
use serde_json::{Value, json};

use super::{items, prune, text};
use crate::canonical::{self, Violation};

/// The fields that survive import and export (paths into `CandidateType`; see the module docs
/// of [`crate::hropen`]).
pub const MAPPED: &[&str] = &[
    "/documentId/value",
    "/person/name/formattedName",
    "/person/name/given",
    "/person/name/family",
    "/person/communication/email/0/address",
    "/person/communication/phone/0/formattedNumber",
    "/person/communication/address/0/line",
    "/person/communication/address/0/city",
    "/person/communication/address/0/countrySubDivisions/0/value",
    "/person/communication/address/0/postalCode",
    "/person/communication/address/0/countryCode",
    "/profiles/0/qualifications/*/competencyName",
    "/profiles/0/employment/*/organization/name",
    "/profiles/0/employment/*/start",
    "/profiles/0/employment/*/end",
    "/profiles/0/employment/*/current",
    "/profiles/0/employment/*/positionHistories/0/title",
    "/profiles/0/employment/*/positionHistories/0/descriptions/0",
    "/profiles/0/education/*/institution/name",
    "/profiles/0/education/*/start",
    "/profiles/0/education/*/end",
    "/profiles/0/education/*/educationDegrees/0/name",
    "/profiles/0/education/*/educationDegrees/0/specializations/0/name",
];

/// Reads an HR Open candidate: its document id (the external id) and the canonical candidate,
/// or the rule of the canonical model it breaks.
pub fn import(document: &Value) -> Result<(String, Candidate), Violation> {
    let person = document.get("person").cloned().unwrap_or_default();
    let profile = document.pointer("/profiles/0").cloned().unwrap_or_default();
    let candidate = Candidate {
        formatted_name: text(&person, "/name/formattedName"),
        first_name: text(&person, "/name/given"),
        last_name: text(&person, "/name/family"),
        email: text(&person, "/communication/email/0/address"),
        phone: text(&person, "/communication/phone/0/formattedNumber"),
        address: import_address(person.pointer("/communication/address/0")),
        skills: items(&profile, "/qualifications")
            .iter()
            .map(|qualification| text(qualification, "/competencyName"))
            .collect(),
        work_history: items(&profile, "/employment")
            .iter()
            .map(|employment| WorkExperience {
                employer: text(employment, "/organization/name"),
                title: text(employment, "/positionHistories/0/title"),
                start_date: text(employment, "/start"),
                end_date: text(employment, "/end"),
                current: employment.get("current") == Some(&Value::Bool(true)),
                description: text(employment, "/positionHistories/0/descriptions/0"),
                location: None,
            })
            .collect(),
        education: items(&profile, "/education")
            .iter()
            .map(|education| Education {
                institution: text(education, "/institution/name"),
                degree: text(education, "/educationDegrees/0/name"),
                field_of_study: text(education, "/educationDegrees/0/specializations/0/name"),
                start_date: text(education, "/start"),
                end_date: text(education, "/end"),
            })
            .collect(),
        ..Candidate::default()
    };
    canonical::check_candidate(&candidate)?;
    Ok((text(document, "/documentId/value"), candidate))
}

/// An HR Open address (`AddressType`) as a canonical address; `None` when there is none.
pub(crate) fn import_address(address: Option<&Value>) -> Option<Address> {
    let address = address?;
    let line = text(address, "/line");
    Some(Address {
        lines: if line.is_empty() {
            Vec::new()
        } else {
            vec![line]
        },
        city: text(address, "/city"),
        region: text(address, "/countrySubDivisions/0/value"),
        postal_code: text(address, "/postalCode"),
        country_code: text(address, "/countryCode"),
    })
}

/// A canonical address as an HR Open `AddressType` (lines joined with ", ").
pub(crate) fn export_address(address: &Address) -> Value {
    json!({
        "line": address.lines.join(", "),
        "city": address.city,
        "countrySubDivisions": if address.region.is_empty() {
            Value::Null
        } else {
            // HR Open requires a type; the canonical region is a state or province.
            json!([{"type": "state", "value": address.region}])
        },
        "postalCode": address.postal_code,
        "countryCode": address.country_code,
    })
}

/// Writes a canonical candidate as an HR Open `CandidateType` document.
pub fn export(external_id: &str, candidate: &Candidate) -> Value {
    let formatted_name = if candidate.formatted_name.is_empty() {
        format!("{} {}", candidate.first_name, candidate.last_name)
    } else {
        candidate.formatted_name.clone()
    };
    let document = json!({
        "documentId": {"value": external_id},
        "person": {
            "name": {
                "formattedName": formatted_name.trim(),
                "given": candidate.first_name,
                "family": candidate.last_name,
            },
            "communication": {
                "address": candidate.address.as_ref().map(|address| vec![export_address(address)]),
                "email": [{"address": candidate.email}],
                "phone": [{"formattedNumber": candidate.phone}],
            },
        },
        "profiles": [{
            "qualifications": candidate
                .skills
                .iter()
                .map(|skill| json!({"competencyName": skill}))
                .collect::<Vec<_>>(),
            "employment": candidate
                .work_history
                .iter()
                .map(|job| json!({
                    "organization": {"name": job.employer},
                    "start": job.start_date,
                    "end": job.end_date,
                    "current": job.current,
                    "positionHistories": [{
                        "title": job.title,
                        "descriptions": [job.description],
                    }],
                }))
                .collect::<Vec<_>>(),
            "education": candidate
                .education
                .iter()
                .map(|education| json!({
                    "institution": {"name": education.institution},
                    "start": education.start_date,
                    "end": education.end_date,
                    "educationDegrees": [{
                        "name": education.degree,
                        "specializations": [{"name": education.field_of_study}],
                    }],
                }))
                .collect::<Vec<_>>(),
        }],
    });
    prune(document).unwrap_or_default()
}
