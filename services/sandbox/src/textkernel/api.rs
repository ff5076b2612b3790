//! Tx v10's endpoints: the gate (account and service key, armed faults), then the parse.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use super::{Sample, Shared};
use crate::parsers::{Gate, Reading};

/// `POST /tx/v10/parser/resume`.
pub async fn parse_resume(
    State(sandbox): State<Shared>,
    headers: HeaderMap,
    body: Option<Json<Value>>,
) -> Response {
    if let Err(response) = admit(&sandbox, &headers) {
        return *response;
    }
    let body = body.map(|Json(body)| body).unwrap_or(Value::Null);
    let Some(encoded) = body["DocumentAsBase64String"].as_str() else {
        return envelope(
            StatusCode::BAD_REQUEST,
            "MissingParameter",
            "DocumentAsBase64String is required.",
        );
    };
    if body["DocumentLastModified"]
        .as_str()
        .is_none_or(str::is_empty)
    {
        return envelope(
            StatusCode::BAD_REQUEST,
            "MissingParameter",
            "DocumentLastModified is required.",
        );
    }
    let reading = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .and_then(|bytes| crate::parsers::read(&bytes));
    sandbox.counters.parsed(reading.is_some());
    let Some(reading) = reading else {
        return envelope(
            StatusCode::UNPROCESSABLE_ENTITY,
            "ConversionException",
            "The document could not be converted to text.",
        );
    };
    let resume = resume_data(&sandbox.sample, &reading);
    let answer = json!({
        "Info": {"Code": "Success", "Message": "Success", "TransactionId": uuid::Uuid::new_v4().to_string(), "EngineVersion": "10.0", "ApiVersion": "10.0"},
        "Value": {
            "ParsingResponse": {"Code": "Success", "Message": "Success"},
            "ResumeData": resume,
        },
    });
    Json(answer).into_response()
}

/// `GET /tx/v10/account`.
pub async fn account(State(sandbox): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(response) = admit(&sandbox, &headers) {
        return *response;
    }
    let used = sandbox.counters.stats().parses;
    Json(json!({
        "Info": {"Code": "Success", "Message": "Success"},
        "Value": {"CreditsRemaining": 10_000u64.saturating_sub(used), "CreditsUsed": used, "MaximumConcurrentRequests": 4, "ExpirationDate": "2030-01-01"},
    }))
    .into_response()
}

/// A v10 `ResumeData`.
fn resume_data(sample: &Sample, reading: &Reading) -> Value {
    json!({
        "ContactInformation": {
            "CandidateName": {
                "FormattedName": format!("{} {}", reading.first, reading.last),
                "GivenName": reading.first,
                "FamilyName": reading.last,
            },
            "EmailAddresses": if reading.email.is_empty() { json!([]) } else { json!([reading.email]) },
            "Telephones": [{"Raw": sample.phone, "Normalized": format!("+1 {}", sample.phone)}],
            "Location": {
                "CountryCode": sample.country_code,
                "Regions": [sample.region],
                "Municipality": sample.city,
                "PostalCode": sample.postal_code,
            },
        },
        "ProfessionalSummary": sample.summary,
        "Skills": {"Raw": reading.skills.iter().map(|name| json!({"Name": name})).collect::<Vec<_>>()},
        "EmploymentHistory": {"Positions": [{
            "Id": "POS-1",
            "Employer": {"Name": {"Raw": sample.employer, "Normalized": sample.employer}},
            "JobTitle": {"Raw": sample.title, "Normalized": sample.title},
            "StartDate": {"Date": format!("{}-01", sample.start), "IsCurrentDate": false},
            "IsCurrent": true,
        }]},
        "Education": {"EducationDetails": [{
            "Id": "DEG-1",
            "SchoolName": {"Raw": sample.school, "Normalized": sample.school},
            "Degree": {"Name": {"Raw": sample.degree, "Normalized": sample.degree}},
        }]},
        "ResumeMetadata": {"DocumentLanguage": "en", "DocumentCulture": "en-US"},
    })
}

fn admit(sandbox: &Shared, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let authorized = header("Tx-AccountId") == Some(sandbox.options.account_id.as_str())
        && header("Tx-ServiceKey") == Some(sandbox.options.service_key.as_str());
    match sandbox.counters.admit(authorized) {
        Gate::Pass => Ok(()),
        Gate::Unauthorized => Err(Box::new(envelope(
            StatusCode::UNAUTHORIZED,
            "AuthenticationError",
            "Invalid AccountId or ServiceKey.",
        ))),
        Gate::RateLimited(seconds) => {
            let mut response = envelope(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Too many concurrent requests.",
            );
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            Err(Box::new(response))
        }
        Gate::ServerError => Err(Box::new(envelope(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UnhandledException",
            "An unhandled error occurred.",
        ))),
    }
}

/// Tx's envelope with no value.
fn envelope(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"Info": {"Code": code, "Message": message}})),
    )
        .into_response()
}
