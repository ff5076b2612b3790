//! The Bullhorn sandbox over real HTTP on 127.0.0.1:0.

#![allow(clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::collections::HashSet;

use plugboard_sandbox::bullhorn::{
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USERNAME,
};
use plugboard_sandbox::{SandboxOptions, serve};
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::{Value, json};

struct Sandbox {
    base: String,
    http: reqwest::Client,
}

async fn start(options: SandboxOptions) -> Sandbox {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(listener, options, std::future::pending()));
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    Sandbox { base, http }
}

fn unlimited() -> SandboxOptions {
    SandboxOptions {
        requests_per_second: None,
        ..SandboxOptions::default()
    }
}

impl Sandbox {
    async fn authorize(&self, password: &str) -> reqwest::Response {
        self.http
            .get(format!("{}/oauth/authorize", self.base))
            .query(&[
                ("client_id", DEMO_CLIENT_ID),
                ("response_type", "code"),
                ("action", "Login"),
                ("username", DEMO_USERNAME),
                ("password", password),
            ])
            .send()
            .await
            .unwrap()
    }

    /// The whole documented flow; returns (restUrl, BhRestToken).
    async fn login(&self) -> (String, String) {
        let redirect = self.authorize(DEMO_PASSWORD).await;
        assert_eq!(redirect.status(), StatusCode::FOUND);
        let location = redirect.headers()["location"].to_str().unwrap().to_owned();
        let code = location
            .split(['?', '&'])
            .find_map(|pair| pair.strip_prefix("code="))
            .unwrap()
            .to_owned();
        let token: Value = self
            .http
            .post(format!("{}/oauth/token", self.base))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", DEMO_CLIENT_ID),
                ("client_secret", DEMO_CLIENT_SECRET),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(token["token_type"], "Bearer");
        assert!(token["refresh_token"].is_string() && token["expires_in"].as_u64() > Some(0));
        let login: Value = self
            .http
            .get(format!("{}/rest-services/login", self.base))
            .query(&[
                ("version", "2.0"),
                ("access_token", token["access_token"].as_str().unwrap()),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            login["restUrl"].as_str().unwrap().to_owned(),
            login["BhRestToken"].as_str().unwrap().to_owned(),
        )
    }

    async fn get(&self, url: &str, session: &str, query: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .get(url)
            .query(query)
            .query(&[("BhRestToken", session)])
            .send()
            .await
            .unwrap()
    }

    async fn admin(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/_sandbox/{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    async fn records(&self, entity: &str) -> Value {
        self.http
            .get(format!("{}/_sandbox/records/{entity}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Pages `query/{entity}` from `since` with `count`, returning every record in order.
    async fn read_all(&self, rest: &str, session: &str, entity: &str, since: i64) -> Vec<Value> {
        let mut all = Vec::new();
        let clause = format!("dateLastModified>={since}");
        loop {
            let start = all.len().to_string();
            let page: Value = self
                .get(
                    &format!("{rest}query/{entity}"),
                    session,
                    &[
                        ("where", &clause),
                        ("fields", "*"),
                        ("orderBy", "dateLastModified,id"),
                        ("start", &start),
                        ("count", "37"),
                    ],
                )
                .await
                .json()
                .await
                .unwrap();
            let data = page["data"].as_array().unwrap().clone();
            let done = data.len() < 37;
            all.extend(data);
            if done {
                return all;
            }
        }
    }
}

#[tokio::test]
async fn auth_flow_rejects_bad_credentials_and_tokens() {
    let sandbox = start(unlimited()).await;
    assert_eq!(
        sandbox.authorize("wrong").await.status(),
        StatusCode::UNAUTHORIZED
    );

    let (rest, session) = sandbox.login().await;
    assert!(rest.starts_with(&sandbox.base) && rest.ends_with("/rest-services/pb1demo/"));
    let ping = sandbox.get(&format!("{rest}ping"), &session, &[]).await;
    assert_eq!(ping.status(), StatusCode::OK);

    let bad = sandbox.get(&format!("{rest}ping"), "nope", &[]).await;
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(
        body["errorMessageKey"],
        "errors.authentication.invalidRestToken"
    );
    assert_eq!(body["errorCode"], 401);

    // A code is single use.
    let redirect = sandbox.authorize(DEMO_PASSWORD).await;
    let location = redirect.headers()["location"].to_str().unwrap().to_owned();
    let code = location
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let exchange = |code: String| {
        sandbox
            .http
            .post(format!("{}/oauth/token", sandbox.base))
            .query(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", DEMO_CLIENT_ID),
                ("client_secret", DEMO_CLIENT_SECRET),
            ])
            .send()
    };
    assert_eq!(
        exchange(code.to_owned()).await.unwrap().status(),
        StatusCode::OK
    );
    let again = exchange(code.to_owned()).await.unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");

    sandbox
        .admin("faults", json!({"expire_sessions": true}))
        .await;
    let expired = sandbox.get(&format!("{rest}ping"), &session, &[]).await;
    assert_eq!(expired.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn paging_covers_every_record_once_in_cursor_order() {
    let sandbox = start(unlimited()).await;
    let (rest, session) = sandbox.login().await;
    for entity in ["JobOrder", "Candidate", "JobSubmission", "Placement"] {
        let held = sandbox.records(entity).await;
        let read = sandbox.read_all(&rest, &session, entity, 0).await;
        assert_eq!(
            read.len(),
            held["total"].as_u64().unwrap() as usize,
            "{entity}"
        );
        let ids: HashSet<i64> = read.iter().map(|r| r["id"].as_i64().unwrap()).collect();
        assert_eq!(ids.len(), read.len(), "{entity}: no duplicates");
        let keys: Vec<(i64, i64)> = read
            .iter()
            .map(|r| {
                (
                    r["dateLastModified"].as_i64().unwrap(),
                    r["id"].as_i64().unwrap(),
                )
            })
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{entity}: ascending");
    }
}

#[tokio::test]
async fn count_is_capped_and_fields_project() {
    let sandbox = start(SandboxOptions {
        counts: plugboard_sandbox::bullhorn::SeedCounts {
            candidates: 600,
            ..Default::default()
        },
        ..unlimited()
    })
    .await;
    let (rest, session) = sandbox.login().await;
    let page: Value = sandbox
        .get(
            &format!("{rest}search/Candidate"),
            &session,
            &[
                ("query", "dateLastModified:[0 TO *]"),
                ("fields", "firstName,owner(id)"),
                ("count", "1000"),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 600);
    assert_eq!(page["count"], 500);
    let first = page["data"][0].as_object().unwrap();
    let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["_score", "firstName", "id", "owner"]);
    assert_eq!(first["owner"].as_object().unwrap().len(), 1);

    let unknown = sandbox
        .get(
            &format!("{rest}query/Candidate"),
            &session,
            &[("where", "favouriteColour='red'")],
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn touch_changes_records_and_incremental_filter_finds_them() {
    let sandbox = start(unlimited()).await;
    let (rest, session) = sandbox.login().await;
    let before = sandbox.read_all(&rest, &session, "JobOrder", 0).await;
    let newest = before
        .iter()
        .map(|r| r["dateLastModified"].as_i64().unwrap())
        .max()
        .unwrap();

    let touched = sandbox
        .admin(
            "touch",
            json!({"entity": "JobOrder", "ids": [2003, 2017], "changes": {"status": "Closed"}}),
        )
        .await;
    let at = touched["dateLastModified"].as_i64().unwrap();
    assert!(at > newest);

    let since = sandbox
        .read_all(&rest, &session, "JobOrder", newest + 1)
        .await;
    let ids: Vec<i64> = since.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [2003, 2017]);
    assert!(
        since
            .iter()
            .all(|r| r["status"] == "Closed" && r["dateLastModified"] == at)
    );

    let held = sandbox.records("JobOrder").await;
    let record = held["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == 2003)
        .unwrap();
    assert_eq!(record["status"], "Closed");

    let missing = sandbox
        .http
        .post(format!("{}/_sandbox/touch", sandbox.base))
        .json(&json!({"entity": "JobOrder", "ids": [1]}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn rate_limit_burst_and_budget_answer_429_with_retry_after() {
    let sandbox = start(SandboxOptions {
        requests_per_second: Some(3),
        ..SandboxOptions::default()
    })
    .await;
    let (rest, session) = sandbox.login().await;
    let url = format!("{rest}query/JobOrder");
    let query = [("where", "id>0")];

    sandbox
        .admin(
            "faults",
            json!({"rate_limit_burst": 2, "retry_after_seconds": 7}),
        )
        .await;
    for _ in 0..2 {
        let limited = sandbox.get(&url, &session, &query).await;
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.headers()["retry-after"], "7");
        let body: Value = limited.json().await.unwrap();
        assert_eq!(body["errorCode"], 429);
    }

    // Then the per-second budget: eight quick calls span at most two one-second windows, so
    // one window sees more than three of them.
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(sandbox.get(&url, &session, &query).await.status());
    }
    assert!(statuses.contains(&StatusCode::OK));
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS));

    let stats: Value = sandbox
        .http
        .get(format!("{}/_sandbox/stats", sandbox.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(stats["rate_limited"].as_u64().unwrap() >= 3);
    assert_eq!(stats["entity_requests"]["JobOrder"], 10);
}

#[tokio::test]
async fn malformed_candidates_appear_in_results_when_armed() {
    let sandbox = start(unlimited()).await;
    let (rest, session) = sandbox.login().await;
    let clean = sandbox.read_all(&rest, &session, "Candidate", 0).await;
    assert!(
        clean
            .iter()
            .all(|r| r["id"].is_i64() && r["email"].is_string())
    );

    sandbox.admin("faults", json!({"malformed": true})).await;
    let dirty = sandbox.read_all(&rest, &session, "Candidate", 0).await;
    assert_eq!(dirty.len(), clean.len() + 2);
    assert!(dirty.iter().any(|r| r.get("id").is_none()));
    assert!(dirty.iter().any(|r| r["email"] == 12345));
    let held = sandbox.records("Candidate").await;
    assert_eq!(held["malformed"].as_array().unwrap().len(), 2);

    sandbox.admin("faults", json!({"malformed": false})).await;
    let again = sandbox.read_all(&rest, &session, "Candidate", 0).await;
    assert_eq!(again.len(), clean.len());
}

#[tokio::test]
async fn seeded_shapes_follow_the_documented_samples() {
    // The address shape of Bullhorn's documented entity GET sample.
    let sample: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/partners/bullhorn/samples/entity__get-entity__1__response.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let sandbox = start(unlimited()).await;
    let held = sandbox.records("Candidate").await;
    let candidate = &held["data"][0];
    let keys = |value: &Value| {
        let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&candidate["address"]), keys(&sample["address"]));
    assert!(candidate["firstName"].is_string() && candidate["id"].is_i64());
}
