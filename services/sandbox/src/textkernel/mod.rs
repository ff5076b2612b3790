//! A simulated Textkernel Tx Platform v10 resume parser.
//!
//! What it speaks, as Tx v10 does (facts from Textkernel's Apache-2.0 SDK, see
//! `shared/partners/textkernel-sovren/SOURCE.txt`): every call carries `Tx-AccountId` and
//! `Tx-ServiceKey`; `POST /tx/v10/parser/resume` takes `{DocumentAsBase64String,
//! DocumentLastModified}` and answers the envelope `{Info: {Code, Message}, Value:
//! {ResumeData, ParsingResponse}}`; `GET /tx/v10/account` answers the account's credits.
//! Failures keep the envelope: 401 `AuthenticationError`, 400 `MissingParameter`, 422
//! `ConversionException` (a document it cannot read), 429 with `Retry-After`, 500
//! `UnhandledException`. The parse's values beyond the name, email and skills read from the
//! document (employer, title, school, phone, address) are the published v9 sample's
//! (`sovren-v9-json/resume.json`), written in the v10 shape.
//!
//! Admin: `/_sandbox/faults`, `/_sandbox/stats` (see [`crate::parsers`]).

mod api;

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use serde_json::Value;

use crate::parsers::Counters;

pub const DEMO_ACCOUNT_ID: &str = "12345678";
pub const DEMO_SERVICE_KEY: &str = "tx-demo-service-key";

/// The published sample's values the parse is dressed in.
#[derive(Debug, Clone)]
pub struct Sample {
    pub employer: String,
    pub title: String,
    pub start: String,
    pub school: String,
    pub degree: String,
    pub phone: String,
    pub city: String,
    pub region: String,
    pub postal_code: String,
    pub country_code: String,
    pub summary: String,
}

impl Sample {
    /// Reads `resume.json` of the v9 sample folder.
    pub fn load(folder: &Path) -> Result<Sample, String> {
        let path = folder.join("resume.json");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let resume: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let structured = &resume["Resume"]["StructuredXMLResume"];
        let text_at = |pointer: &str| {
            structured
                .pointer(pointer)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("{}: no text at {pointer}", path.display()))
        };
        let methods = structured["ContactInfo"]["ContactMethod"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let find = |pointer: &str| {
            methods
                .iter()
                .find_map(|method| method.pointer(pointer).and_then(Value::as_str))
                .map(str::to_owned)
                .ok_or_else(|| format!("{}: no contact method with {pointer}", path.display()))
        };
        Ok(Sample {
            employer: text_at("/EmploymentHistory/EmployerOrg/0/EmployerOrgName")?,
            title: text_at("/EmploymentHistory/EmployerOrg/0/PositionHistory/0/Title")?,
            start: text_at(
                "/EmploymentHistory/EmployerOrg/0/PositionHistory/0/StartDate/YearMonth",
            )?,
            school: text_at("/EducationHistory/SchoolOrInstitution/0/School/0/SchoolName")?,
            degree: text_at("/EducationHistory/SchoolOrInstitution/0/Degree/0/DegreeName")?,
            phone: find("/Telephone/FormattedNumber")?,
            city: find("/PostalAddress/Municipality")?,
            region: find("/PostalAddress/Region/0")?,
            postal_code: find("/PostalAddress/PostalCode")?,
            country_code: find("/PostalAddress/CountryCode")?,
            summary: resume
                .pointer(
                    "/Resume/UserArea/sov:ResumeUserArea/sov:ExperienceSummary/sov:Description",
                )
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        })
    }
}

#[derive(Debug, Clone)]
pub struct TextkernelOptions {
    /// `shared/partners/textkernel-sovren/sovren-v9-json`.
    pub samples: std::path::PathBuf,
    pub account_id: String,
    pub service_key: String,
}

impl TextkernelOptions {
    pub fn new(samples: &Path) -> TextkernelOptions {
        TextkernelOptions {
            samples: samples.to_owned(),
            account_id: DEMO_ACCOUNT_ID.to_owned(),
            service_key: DEMO_SERVICE_KEY.to_owned(),
        }
    }
}

pub struct Sandbox {
    pub options: TextkernelOptions,
    pub sample: Sample,
    pub counters: Counters,
}

pub type Shared = Arc<Sandbox>;

/// The sandbox's routes; fails when the sample cannot be read.
pub fn router(options: TextkernelOptions) -> Result<Router, String> {
    let sample = Sample::load(&options.samples)?;
    let shared: Shared = Arc::new(Sandbox {
        options,
        sample,
        counters: Counters::default(),
    });
    Ok(Router::new()
        // Tx takes documents of several MiB, base64 in JSON: over axum's 2 MB default.
        .route(
            "/tx/v10/parser/resume",
            post(api::parse_resume).layer(axum::extract::DefaultBodyLimit::max(20 * 1024 * 1024)),
        )
        .route("/tx/v10/account", get(api::account))
        .merge(crate::parsers::admin_routes(|shared: &Shared| {
            &shared.counters
        }))
        .with_state(shared))
}
