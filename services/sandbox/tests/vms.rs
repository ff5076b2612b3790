//! The VMS sandboxes' auth rules over real HTTP on 127.0.0.1:0: each refuses what its partner
//! refuses, so a connector that gets them wrong fails here and in the conformance kit.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use plugboard_sandbox::{beeline, fieldglass, magnit};
use reqwest::StatusCode;
use serde_json::Value;

async fn start(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    base
}

async fn token(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

#[tokio::test]
async fn fieldglass_wants_its_token_url_basic_client_auth_and_the_application_key() {
    let base = start(fieldglass::router()).await;
    let http = reqwest::Client::new();
    let form = [("grant_type", "client_credentials")];
    // Without the documented query parameters the token URL is refused.
    let (status, _) = token(
        http.post(format!("{base}/api/oauth2/v2.0/token"))
            .basic_auth(fieldglass::CLIENT_ID, Some(fieldglass::CLIENT_SECRET))
            .form(&form),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let url =
        format!("{base}/api/oauth2/v2.0/token?grant_type=client_credentials&response_type=token");
    // The client in the form instead of Basic is not authenticated.
    let (status, body) = token(http.post(&url).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", fieldglass::CLIENT_ID),
        ("client_secret", fieldglass::CLIENT_SECRET),
    ]))
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (status, body) = token(
        http.post(&url)
            .basic_auth(fieldglass::CLIENT_ID, Some(fieldglass::CLIENT_SECRET))
            .form(&form),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let access = body["access_token"].as_str().unwrap().to_owned();
    let download = format!("{base}/api/vc/connector/Job_Posting_Download");
    let without_key = http
        .get(&download)
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(without_key.status(), StatusCode::FORBIDDEN);
    let page: Value = http
        .get(&download)
        .bearer_auth(&access)
        .header("X-ApplicationKey", fieldglass::APPLICATION_KEY)
        .query(&[("pageSize", "5"), ("startIndex", "20")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 4);
    assert_eq!(page["totalCount"], fieldglass::seed::JOB_POSTINGS);
    // Time sheets are a flat file.
    let sheets = http
        .get(format!("{base}/api/vc/connector/Time_Sheet_Download"))
        .bearer_auth(&access)
        .header("X-ApplicationKey", fieldglass::APPLICATION_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(sheets.starts_with("Time Sheet ID,Worker ID,"), "{sheets}");
}

#[tokio::test]
async fn beeline_wants_the_audience_of_its_product_and_region_and_the_site() {
    let base = start(beeline::router()).await;
    let http = reqwest::Client::new();
    let form = |audience: &'static str| {
        [
            ("grant_type", "client_credentials"),
            ("client_id", beeline::CLIENT_ID),
            ("client_secret", beeline::CLIENT_SECRET),
            ("audience", audience),
        ]
    };
    let url = format!("{base}/oauth/token");
    let (status, _) = token(http.post(&url).form(&form("client-api.eu.beeline.com"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = token(http.post(&url).form(&form(beeline::AUDIENCE))).await;
    assert_eq!(status, StatusCode::OK);
    let access = body["access_token"].as_str().unwrap();
    let other_site = http
        .get(format!("{base}/api/v2/sites/OTHER-SITE/requisitions"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(other_site.status(), StatusCode::NOT_FOUND);
    let page: Value = http
        .get(format!(
            "{base}/api/v2/sites/{}/requisitions",
            beeline::SITE_ID
        ))
        .bearer_auth(access)
        .query(&[("page", "2"), ("pageSize", "15")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        page["items"].as_array().unwrap().len(),
        beeline::seed::REQUISITIONS - 15
    );
}

#[tokio::test]
async fn magnit_wants_its_scopes_and_serves_xml_and_csv() {
    let base = start(magnit::router()).await;
    let http = reqwest::Client::new();
    let url = format!("{base}/oauth2/token");
    let form = |scope: &'static str| {
        [
            ("grant_type", "client_credentials"),
            ("client_id", magnit::CLIENT_ID),
            ("client_secret", magnit::CLIENT_SECRET),
            ("scope", scope),
        ]
    };
    let (status, _) = token(http.post(&url).form(&form("ccw.read"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = token(http.post(&url).form(&form(magnit::SCOPES))).await;
    assert_eq!(status, StatusCode::OK);
    let access = body["access_token"].as_str().unwrap();
    let xml = http
        .get(format!("{base}/api/job_requests"))
        .bearer_auth(access)
        .query(&[("limit", "2")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(xml.contains("<job-request><"), "{xml}");
    let csv = http
        .get(format!("{base}/api/exports/timesheets.csv"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(csv.starts_with("Timesheet ID,"), "{csv}");
    let expired = http
        .post(format!("{base}/_sandbox/faults"))
        .json(&serde_json::json!({"expire_sessions": true}))
        .send()
        .await
        .unwrap();
    assert!(expired.status().is_success());
    let refused = http
        .get(format!("{base}/api/candidates"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
}

/// A supplier's submission goes to an open posting only, starts `Submitted`, and the supplier
/// may withdraw it but not move it on: only the buyer does that.
#[tokio::test]
async fn fieldglass_uploads_follow_the_buyer_and_supplier_roles() {
    let base = start(fieldglass::router()).await;
    let http = reqwest::Client::new();
    let url =
        format!("{base}/api/oauth2/v2.0/token?grant_type=client_credentials&response_type=token");
    let (_, body) = token(
        http.post(&url)
            .basic_auth(fieldglass::CLIENT_ID, Some(fieldglass::CLIENT_SECRET))
            .form(&[("grant_type", "client_credentials")]),
    )
    .await;
    let access = body["access_token"].as_str().unwrap().to_owned();
    let upload = |body: Value| {
        http.post(format!("{base}/api/vc/connector/Job_Seeker_Upload"))
            .bearer_auth(&access)
            .header("X-ApplicationKey", fieldglass::APPLICATION_KEY)
            .json(&body)
            .send()
    };
    let person = |posting: &str| {
        serde_json::json!({
            "jobPostingId": posting, "firstName": "Ada", "lastName": "Lovelace",
            "email": "ada@example.com",
            "billRate": {"amount": "85.00", "currency": "USD", "unit": "Hr"},
        })
    };
    // JP0000004 is closed (every sixth posting from the fourth).
    let closed = upload(person("JP0000004")).await.unwrap();
    assert_eq!(closed.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let created = upload(person("JP0000001")).await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["status"], "Submitted");
    let id = created["jobSeekerId"].as_str().unwrap();
    let promoted = upload(serde_json::json!({"jobSeekerId": id, "status": "Selected"}))
        .await
        .unwrap();
    assert_eq!(promoted.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let withdrawn = upload(serde_json::json!({"jobSeekerId": id, "status": "Withdrawn"}))
        .await
        .unwrap();
    assert_eq!(withdrawn.status(), StatusCode::OK);
    let no_currency = upload(serde_json::json!({
        "jobPostingId": "JP0000001", "firstName": "A", "lastName": "B", "email": "a@b.example",
        "billRate": {"amount": "85.00"},
    }))
    .await
    .unwrap();
    assert_eq!(no_currency.status(), StatusCode::UNPROCESSABLE_ENTITY);
}
