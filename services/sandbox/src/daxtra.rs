//! A simulated Daxtra CVX parser behind SOAP.
//!
//! What it speaks, from the partner facts in `shared/partners/INDEX.md`: the SOAP service
//! `CVXtractorService` with the operation `ProcessCV`, taking a base64 `document` and the
//! `account`, answering an HR-XML style `Resume` (ContactMethod, EmploymentHistory,
//! EducationHistory, Competency). Unverified details (no public Daxtra material is stored):
//! the endpoint path `/cvx/CVXtractorService`, the namespace, the HR-XML embedded as elements
//! of `ProcessCVResponse`, and the SOAP 1.1 faults `soap:Client.InvalidAccount` and
//! `soap:Client.UnreadableDocument` (HTTP 500); a 429 carries `Retry-After`; `GET
//! ...?wsdl` answers a WSDL. Values beyond the document's come from the published HR-XML
//! sample (see [`crate::textkernel::Sample`]).
//!
//! Admin: `/_sandbox/faults`, `/_sandbox/stats` (see [`crate::parsers`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;

use crate::parsers::{Counters, Gate, Reading};
use crate::textkernel::Sample;

pub const DEMO_ACCOUNT: &str = "daxtra-demo-account";
const NAMESPACE: &str = "http://cvxtractor.daxtra.com/";

#[derive(Debug, Clone)]
pub struct DaxtraOptions {
    /// The published HR-XML sample folder (`textkernel-sovren/sovren-v9-json`).
    pub samples: PathBuf,
    pub account: String,
}

impl DaxtraOptions {
    pub fn new(samples: &Path) -> DaxtraOptions {
        DaxtraOptions {
            samples: samples.to_owned(),
            account: DEMO_ACCOUNT.to_owned(),
        }
    }
}

struct Sandbox {
    options: DaxtraOptions,
    sample: Sample,
    counters: Counters,
}

type Shared = Arc<Sandbox>;

pub fn router(options: DaxtraOptions) -> Result<Router, String> {
    let sample = Sample::load(&options.samples)?;
    let shared: Shared = Arc::new(Sandbox {
        options,
        sample,
        counters: Counters::default(),
    });
    Ok(Router::new()
        .route("/cvx/CVXtractorService", get(wsdl).post(process))
        .merge(crate::parsers::admin_routes(|shared: &Shared| {
            &shared.counters
        }))
        .with_state(shared))
}

async fn wsdl() -> Response {
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><definitions xmlns="http://schemas.xmlsoap.org/wsdl/" targetNamespace="{NAMESPACE}" name="CVXtractorService"><portType name="CVXtractor"><operation name="ProcessCV"/></portType></definitions>"#
    );
    xml(StatusCode::OK, body)
}

async fn process(State(sandbox): State<Shared>, body: String) -> Response {
    let account = element_text(&body, "account").unwrap_or_default();
    match sandbox.counters.admit(account == sandbox.options.account) {
        Gate::Pass => {}
        Gate::Unauthorized => return fault("Client.InvalidAccount", "Unknown account"),
        Gate::RateLimited(seconds) => {
            let mut response = (StatusCode::TOO_MANY_REQUESTS, "Too many requests").into_response();
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return response;
        }
        Gate::ServerError => return fault("Server", "Internal error"),
    }
    let Some(document) = element_text(&body, "document") else {
        return fault("Client.MissingDocument", "ProcessCV needs a document");
    };
    let reading = base64::engine::general_purpose::STANDARD
        .decode(document.trim())
        .ok()
        .and_then(|bytes| crate::parsers::read(&bytes));
    sandbox.counters.parsed(reading.is_some());
    let Some(reading) = reading else {
        return fault(
            "Client.UnreadableDocument",
            "No text could be extracted from the document",
        );
    };
    let resume = resume(&sandbox.sample, &reading);
    xml(
        StatusCode::OK,
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><ProcessCVResponse xmlns="{NAMESPACE}">{resume}</ProcessCVResponse></soap:Body></soap:Envelope>"#
        ),
    )
}

/// The HR-XML `Resume` of a reading.
fn resume(sample: &Sample, reading: &Reading) -> String {
    let e = |text: &str| quick_xml::escape::escape(text).into_owned();
    let competencies: String = reading
        .skills
        .iter()
        .map(|skill| format!(r#"<Competency name="{}"/>"#, e(skill)))
        .collect();
    let email = if reading.email.is_empty() {
        String::new()
    } else {
        format!(
            "<ContactMethod><InternetEmailAddress>{}</InternetEmailAddress></ContactMethod>",
            e(&reading.email)
        )
    };
    format!(
        r#"<Resume xmlns="http://ns.hr-xml.org/2006-02-28"><StructuredXMLResume><ContactInfo><PersonName><FormattedName>{first} {last}</FormattedName><GivenName>{first}</GivenName><FamilyName>{last}</FamilyName></PersonName>{email}<ContactMethod><Telephone><FormattedNumber>{phone}</FormattedNumber></Telephone></ContactMethod><ContactMethod><PostalAddress><CountryCode>{country}</CountryCode><PostalCode>{postal}</PostalCode><Region>{region}</Region><Municipality>{city}</Municipality></PostalAddress></ContactMethod></ContactInfo><ExecutiveSummary>{summary}</ExecutiveSummary><EmploymentHistory><EmployerOrg><EmployerOrgName>{employer}</EmployerOrgName><PositionHistory currentEmployer="true"><Title>{title}</Title><StartDate><YearMonth>{start}</YearMonth></StartDate></PositionHistory></EmployerOrg></EmploymentHistory><EducationHistory><SchoolOrInstitution><School><SchoolName>{school}</SchoolName></School><Degree><DegreeName>{degree}</DegreeName></Degree></SchoolOrInstitution></EducationHistory><Qualifications>{competencies}</Qualifications></StructuredXMLResume></Resume>"#,
        first = e(&reading.first),
        last = e(&reading.last),
        phone = e(&sample.phone),
        country = e(&sample.country_code),
        postal = e(&sample.postal_code),
        region = e(&sample.region),
        city = e(&sample.city),
        summary = e(&sample.summary),
        employer = e(&sample.employer),
        title = e(&sample.title),
        start = e(&sample.start),
        school = e(&sample.school),
        degree = e(&sample.degree),
    )
}

/// The text of the first element named `local` (any namespace prefix) in `body`.
fn element_text(body: &str, local: &str) -> Option<String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(body);
    let mut inside = false;
    let mut text = String::new();
    loop {
        match reader.read_event().ok()? {
            Event::Start(element) if element.local_name().as_ref() == local => {
                inside = true;
            }
            Event::Text(content) if inside => {
                text.push_str(&content);
            }
            Event::End(element) if inside && element.local_name().as_ref() == local => {
                return Some(text);
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// A SOAP 1.1 fault, with 500 as SOAP 1.1 over HTTP answers faults.
fn fault(code: &str, message: &str) -> Response {
    let message = quick_xml::escape::escape(message);
    xml(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode>soap:{code}</faultcode><faultstring>{message}</faultstring></soap:Fault></soap:Body></soap:Envelope>"#
        ),
    )
}

fn xml(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soap_fields_are_found_under_any_prefix() {
        let body = r#"<s:Envelope xmlns:s="x"><s:Body><c:ProcessCV xmlns:c="y"><c:document>QUJD</c:document><c:account>acme</c:account></c:ProcessCV></s:Body></s:Envelope>"#;
        assert_eq!(element_text(body, "document").as_deref(), Some("QUJD"));
        assert_eq!(element_text(body, "account").as_deref(), Some("acme"));
        assert_eq!(element_text(body, "missing"), None);
    }
}
