//! A simulated RChilli resume parser.
//!
//! What it speaks, from the partner facts in `shared/partners/INDEX.md`: `POST
//! /RChilliParser/Rchilli/parseResumeBinary` with the JSON body `{filedata (base64), filename,
//! userkey, version, subuserid}`, answered with the root `ResumeParserData`. The rest is
//! unverified (no public RChilli material is stored): errors come as HTTP 200 with `{error:
//! {errorcode, errormsg}}` (1008 an unknown user key, 1020 a document it cannot read), dates
//! are `dd/MM/yyyy`, `POST /RChilliParser/Rchilli/getAccountInfo` with `{userkey}` answers the
//! account's credits, and a 429 carries `Retry-After`. Values beyond what the document says
//! come from the published HR-XML sample (see [`crate::textkernel::Sample`]).
//!
//! Admin: `/_sandbox/faults`, `/_sandbox/stats` (see [`crate::parsers`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::parsers::{Counters, Gate, Reading};
use crate::textkernel::Sample;

pub const DEMO_USER_KEY: &str = "rchilli-demo-user-key";
pub const DEMO_SUB_USER: &str = "plugboard-demo";

#[derive(Debug, Clone)]
pub struct RchilliOptions {
    /// The published HR-XML sample folder (`textkernel-sovren/sovren-v9-json`).
    pub samples: PathBuf,
    pub user_key: String,
}

impl RchilliOptions {
    pub fn new(samples: &Path) -> RchilliOptions {
        RchilliOptions {
            samples: samples.to_owned(),
            user_key: DEMO_USER_KEY.to_owned(),
        }
    }
}

struct Sandbox {
    options: RchilliOptions,
    sample: Sample,
    counters: Counters,
}

type Shared = Arc<Sandbox>;

pub fn router(options: RchilliOptions) -> Result<Router, String> {
    let sample = Sample::load(&options.samples)?;
    let shared: Shared = Arc::new(Sandbox {
        options,
        sample,
        counters: Counters::default(),
    });
    Ok(Router::new()
        .route("/RChilliParser/Rchilli/parseResumeBinary", post(parse))
        .route("/RChilliParser/Rchilli/getAccountInfo", post(account))
        .merge(crate::parsers::admin_routes(|shared: &Shared| {
            &shared.counters
        }))
        .with_state(shared))
}

async fn parse(State(sandbox): State<Shared>, body: Option<Json<Value>>) -> Response {
    let body = body.map(|Json(body)| body).unwrap_or(Value::Null);
    if let Err(response) = admit(&sandbox, &body) {
        return *response;
    }
    for field in ["filedata", "filename", "version"] {
        if body[field].as_str().is_none_or(str::is_empty) {
            return error(1002, &format!("{field} is required"));
        }
    }
    let reading = body["filedata"]
        .as_str()
        .and_then(|data| base64::engine::general_purpose::STANDARD.decode(data).ok())
        .and_then(|bytes| crate::parsers::read(&bytes));
    sandbox.counters.parsed(reading.is_some());
    let Some(reading) = reading else {
        return error(1020, "Unable to parse the file: no text could be extracted");
    };
    let file_name = body["filename"].as_str().unwrap_or_default();
    Json(json!({"ResumeParserData": resume(&sandbox.sample, &reading, file_name)})).into_response()
}

async fn account(State(sandbox): State<Shared>, body: Option<Json<Value>>) -> Response {
    let body = body.map(|Json(body)| body).unwrap_or(Value::Null);
    if let Err(response) = admit(&sandbox, &body) {
        return *response;
    }
    let used = sandbox.counters.stats().parses;
    Json(json!({"AccountInfo": {"UserKey": "********", "CreditsUsed": used, "CreditsRemaining": 5_000u64.saturating_sub(used)}}))
        .into_response()
}

fn resume(sample: &Sample, reading: &Reading, file_name: &str) -> Value {
    let start = sample.start.split('-').collect::<Vec<_>>();
    let start = match start.as_slice() {
        [year, month] => format!("01/{month}/{year}"),
        _ => String::new(),
    };
    json!({
        "ResumeFileName": file_name,
        "ResumeLanguage": {"Language": "English", "LanguageCode": "en"},
        "ParsingDate": chrono::Utc::now().format("%d/%m/%Y").to_string(),
        "Name": {
            "FullName": format!("{} {}", reading.first, reading.last),
            "FirstName": reading.first,
            "MiddleName": "",
            "LastName": reading.last,
            "FormattedName": format!("{} {}", reading.first, reading.last),
        },
        "Email": if reading.email.is_empty() { json!([]) } else { json!([{"EmailAddress": reading.email, "ConfidenceScore": 10}]) },
        "PhoneNumber": [{"Number": sample.phone, "ISDCode": "+1", "OriginalNumber": sample.phone, "FormattedNumber": format!("+1 {}", sample.phone), "Type": "Phone"}],
        "Address": [{"Street": "", "City": sample.city, "State": sample.region, "Country": "USA", "CountryCode": {"IsoAlpha2": sample.country_code, "IsoAlpha3": "USA"}, "ZipCode": sample.postal_code}],
        "CurrentEmployer": sample.employer,
        "JobProfile": sample.title,
        "ExecutiveSummary": sample.summary,
        "SegregatedSkill": reading.skills.iter().map(|skill| json!({"Skill": skill, "Type": "OperationalSkill"})).collect::<Vec<_>>(),
        "SegregatedExperience": [{
            "Employer": {"EmployerName": sample.employer},
            "JobProfile": {"Title": sample.title},
            "StartDate": start,
            "EndDate": "",
            "IsCurrentEmployer": "true",
        }],
        "SegregatedQualification": [{
            "Institution": {"Name": sample.school},
            "Degree": {"DegreeName": sample.degree},
        }],
    })
}

fn admit(sandbox: &Shared, body: &Value) -> Result<(), Box<Response>> {
    let authorized = body["userkey"].as_str() == Some(sandbox.options.user_key.as_str());
    match sandbox.counters.admit(authorized) {
        Gate::Pass => Ok(()),
        Gate::Unauthorized => Err(Box::new(error(1008, "Invalid user key"))),
        Gate::RateLimited(seconds) => {
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({"error": {"errorcode": 429, "errormsg": "Too many requests"}})),
            )
                .into_response();
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            Err(Box::new(response))
        }
        Gate::ServerError => Err(Box::new(
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": {"errorcode": 500, "errormsg": "Internal error"}})),
            )
                .into_response(),
        )),
    }
}

/// RChilli's error body, answered with 200.
fn error(code: u32, message: &str) -> Response {
    Json(json!({"error": {"errorcode": code, "errormsg": message}})).into_response()
}
