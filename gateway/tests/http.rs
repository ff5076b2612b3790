//! The gateway over real HTTP, in front of real tonic servers standing in for the services.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use plugboard_gateway::{Config, TenantStore, generate_api_key, run};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use support::{MESH_KEY, Services, closed_port, start_services};

struct Gateway {
    base: String,
    acme_key: String,
    globex_key: String,
    broken_key: String,
    http: reqwest::Client,
}

/// A gateway on a fresh SQLite file and loopback port, with tenants acme, globex and broken.
async fn start_gateway(services: &Services) -> Gateway {
    start_gateway_at(services, None).await
}

/// As [`start_gateway`], configured with a `PLUGBOARD_PUBLIC_URL`.
async fn start_gateway_at(services: &Services, public_url: Option<&str>) -> Gateway {
    let dir = std::env::temp_dir().join(format!("pb-gateway-http-{}", uuid::Uuid::new_v4()));
    let database_url = plugboard_runtime::storage::sqlite_url(&dir, "gateway");
    let store = TenantStore::open(&database_url).await.unwrap();
    let mut keys = Vec::new();
    for tenant in ["acme", "globex", "broken"] {
        store.ensure_tenant(tenant, tenant).await.unwrap();
        let key = generate_api_key();
        store.add_api_key(tenant, &key, "test").await.unwrap();
        keys.push(key);
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = Config {
        listen_addr: listener.local_addr().unwrap(),
        database_url,
        mesh_key: secrecy::SecretString::from(MESH_KEY.to_owned()),
        credentials_addr: services.credentials.clone(),
        mapping_addr: services.mapping.clone(),
        sync_addr: services.sync.clone(),
        health_addr: services.health.clone(),
        registry_addr: services.registry.clone(),
        public_url: public_url.map(str::to_owned),
        redis_url: None,
        webhook_budget: plugboard_gateway::webhook_budget::DeliveryBudget::default(),
    };
    tokio::spawn(async move { run(config, listener, std::future::pending()).await.unwrap() });

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let [acme_key, globex_key, broken_key] = <[String; 3]>::try_from(keys).unwrap();
    Gateway {
        base,
        acme_key,
        globex_key,
        broken_key,
        http,
    }
}

impl Gateway {
    async fn get_json(&self, path: &str, key: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.header(AUTHORIZATION, format!("Bearer {key}"));
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }
}

#[tokio::test]
async fn api_refuses_missing_and_wrong_keys() {
    let gateway = start_gateway(&start_services().await).await;
    let wrong = generate_api_key();
    for key in [None, Some(wrong.as_str()), Some("")] {
        let (status, body) = gateway.get_json("/api/v1/integrations", key).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{key:?}");
        assert_eq!(body["error"]["code"], "unauthenticated");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("api key")
        );
    }
    // A key sent as something other than a bearer token does not count.
    let response = gateway
        .http
        .get(format!("{}/api/v1/integrations", gateway.base))
        .header(AUTHORIZATION, format!("Basic {}", gateway.acme_key))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn each_tenant_sees_only_its_own_integrations_in_the_pinned_shape() {
    let gateway = start_gateway(&start_services().await).await;

    let (status, body) = gateway
        .get_json("/api/v1/integrations", Some(&gateway.acme_key))
        .await;
    assert_eq!(status, StatusCode::OK);
    let expected = json!({"integrations": [
        {
            "id": "acme-broadbean",
            "connector": "broadbean",
            "category": "unknown",
            "status": "down",
            "status_reason": "the last sync failed: partner returned 500",
            "last_sync_at": null,
            "records": {}
        },
        {
            "id": "acme-bullhorn",
            "connector": "bullhorn",
            "category": "ats",
            "status": "degraded",
            "status_reason": "2 records quarantined",
            "last_sync_at": "2026-12-03T09:00:00.000Z",
            "records": {"candidate": 5, "job": 3}
        }
    ]});
    assert_eq!(body, expected);

    let (status, body) = gateway
        .get_json("/api/v1/integrations", Some(&gateway.globex_key))
        .await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = body["integrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|integration| integration["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["globex-bullhorn"]);
    assert_eq!(body["integrations"][0]["status"], "operational");
    assert_eq!(body["integrations"][0]["records"], json!({"placement": 9}));

    // One integration: the tenant's own, and nobody else's.
    let (status, body) = gateway
        .get_json(
            "/api/v1/integrations/acme-bullhorn",
            Some(&gateway.acme_key),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, expected["integrations"][1]);
    // One that health has not judged yet (it answers NotFound): sync's facts decide.
    let (status, body) = gateway
        .get_json(
            "/api/v1/integrations/acme-broadbean",
            Some(&gateway.acme_key),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, expected["integrations"][0]);
    let (status, body) = gateway
        .get_json(
            "/api/v1/integrations/globex-bullhorn",
            Some(&gateway.acme_key),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn upstream_failures_map_to_http_without_leaking_detail() {
    let gateway = start_gateway(&start_services().await).await;
    let (status, body) = gateway
        .get_json("/api/v1/integrations", Some(&gateway.broken_key))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "unavailable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(!message.contains("10.0.0.7"), "{message}");
}

#[tokio::test]
async fn healthz_reports_every_service_and_fails_when_one_is_down() {
    let services = start_services().await;
    let gateway = start_gateway(&services).await;
    let (status, body) = gateway.get_json("/healthz", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let expected = json!({"services": [
        {"name": "credentials", "addr": services.credentials, "status": "serving"},
        {"name": "mapping", "addr": services.mapping, "status": "serving"},
        {"name": "sync", "addr": services.sync, "status": "serving"},
        {"name": "health", "addr": services.health, "status": "serving"},
        {"name": "registry", "addr": services.registry, "status": "serving"},
    ]});
    assert_eq!(body, expected);

    let mut services = services;
    services.registry = closed_port().await;
    let gateway = start_gateway(&services).await;
    let started = std::time::Instant::now();
    let (status, body) = gateway.get_json("/healthz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    assert_eq!(body["services"][4]["name"], "registry");
    assert_eq!(body["services"][4]["addr"], services.registry.as_str());
    assert_eq!(body["services"][4]["status"], "unreachable");
    assert_eq!(body["services"][2]["status"], "serving");
    // The probes Kubernetes uses ask about the gateway itself: still alive and ready.
    let (status, body) = gateway.get_json("/livez", None).await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &json!("serving"))
    );
    let (status, body) = gateway.get_json("/readyz", None).await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &json!("serving"))
    );
}

#[tokio::test]
async fn dashboard_needs_a_session_from_a_valid_key() {
    let gateway = start_gateway(&start_services().await).await;
    let url = |path: &str| format!("{}{path}", gateway.base);

    // No session: off to the login form, which labels its field.
    let response = gateway.http.get(url("/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/login");
    let response = gateway
        .http
        .get(url("/"))
        .header(COOKIE, "pb_session=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let login_page = gateway
        .http
        .get(url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(login_page.contains(r#"<label for="api_key">"#));

    // A wrong key gets no cookie.
    let response = gateway
        .http
        .post(url("/login"))
        .form(&[("api_key", generate_api_key())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get(SET_COOKIE).is_none());

    // A login from another site is refused even with a good key.
    let response = gateway
        .http
        .post(url("/login"))
        .header("origin", "https://evil.example")
        .form(&[("api_key", gateway.acme_key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get(SET_COOKIE).is_none());

    let response = gateway
        .http
        .post(url("/login"))
        .form(&[("api_key", gateway.acme_key.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/");
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set_cookie.contains("HttpOnly"));
    assert!(set_cookie.contains("SameSite=Strict"));
    assert!(!set_cookie.contains(&gateway.acme_key));
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    let response = gateway
        .http
        .get(url("/"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    assert!(html.contains("bullhorn"));
    assert!(html.contains("broadbean"));
    assert!(html.contains("Degraded"));
    assert!(html.contains("2 records quarantined"));
    assert!(html.contains("candidate: 5"));
    assert!(html.contains(r#"<th scope="col">Status</th>"#));
    assert!(!html.contains("globex"));

    let response = gateway
        .http
        .post(url("/logout"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let response = gateway
        .http
        .get(url("/"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn another_tenants_integration_is_not_found_on_every_dashboard_route() {
    let gateway = start_gateway(&start_services().await).await;
    let url = |path: &str| format!("{}{path}", gateway.base);
    let response = gateway
        .http
        .post(url("/login"))
        .form(&[("api_key", gateway.acme_key.as_str())])
        .send()
        .await
        .unwrap();
    let cookie = response.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    // globex-bullhorn exists, but for globex: acme's session gets the page for a missing id.
    for id in ["globex-bullhorn", "no-such-connection"] {
        let response = gateway
            .http
            .get(url(&format!("/integrations/{id}")))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{id}");
        let html = response.text().await.unwrap();
        assert!(html.contains("<h1>Not Found</h1>"), "{html}");
        for action in ["run", "pause", "resume"] {
            let response = gateway
                .http
                .post(url(&format!("/integrations/{id}/{action}")))
                .header(COOKIE, &cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{id} {action}");
        }
    }

    // Actions need a session and a same-site origin.
    let response = gateway
        .http
        .post(url("/integrations/acme-bullhorn/run"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let response = gateway
        .http
        .post(url("/integrations/acme-bullhorn/pause"))
        .header(COOKIE, &cookie)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = gateway.http.get(url("/events")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);

    // The page's script is served from the gateway itself, which the policy allows.
    let script = gateway
        .http
        .get(url("/static/dashboard.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert!(script.text().await.unwrap().contains("EventSource"));
    let overview = gateway
        .http
        .get(url("/"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    let policy = overview.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    let html = overview.text().await.unwrap();
    assert!(
        html.contains(r#"<tr data-connection="acme-bullhorn">"#),
        "{html}"
    );
    assert!(html.contains(r#"href="/integrations/acme-bullhorn""#));
}

#[tokio::test]
async fn webhooks_are_refused_for_a_connector_that_sends_none() {
    let gateway = start_gateway(&start_services().await).await;
    let response = gateway
        .http
        .put(format!(
            "{}/api/v1/integrations/acme-bullhorn/webhook",
            gateway.base
        ))
        .header(AUTHORIZATION, format!("Bearer {}", gateway.acme_key))
        .json(&serde_json::json!({ "secret": "a-signing-secret" }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "failed_precondition", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("Bullhorn does not send webhooks"),
        "{message}"
    );
}

#[tokio::test]
async fn malformed_api_bodies_get_the_json_error_envelope() {
    let gateway = start_gateway(&start_services().await).await;
    let url = format!("{}/api/v1/integrations/acme-bullhorn/webhook", gateway.base);
    let auth = format!("Bearer {}", gateway.acme_key);
    let cases = [
        (
            "{not json",
            Some("application/json"),
            "invalid request body",
        ),
        (r#"{"secret": 7}"#, Some("application/json"), "secret"),
        ("{}", Some("application/json"), "secret"),
        (r#"{"secret":"s"}"#, None, "Content-Type: application/json"),
    ];
    for (body, content_type, expected) in cases {
        let mut request = gateway
            .http
            .put(&url)
            .header(AUTHORIZATION, &auth)
            .body(body.to_owned());
        if let Some(content_type) = content_type {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(
            answer["error"]["code"], "invalid_argument",
            "{body}: {answer}"
        );
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{body}: {message}");
    }

    // The documents route too, and a method a path does not take.
    let documents = format!(
        "{}/api/v1/integrations/acme-bullhorn/documents",
        gateway.base
    );
    let response = gateway
        .http
        .post(&documents)
        .header(AUTHORIZATION, &auth)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "invalid_argument", "{answer}");
    let response = gateway
        .http
        .delete(&url)
        .header(AUTHORIZATION, &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "method_not_allowed", "{answer}");
}

#[tokio::test]
async fn behind_an_https_origin_session_cookies_are_secure() {
    let services = start_services().await;
    let login = |gateway: &Gateway| {
        gateway
            .http
            .post(format!("{}/login", gateway.base))
            .form(&[("api_key", gateway.acme_key.clone())])
            .send()
    };
    let cookie_of = |response: &reqwest::Response| {
        response.headers()[reqwest::header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_owned()
    };

    let public = start_gateway_at(&services, Some("https://integrations.example.com")).await;
    let cookie = cookie_of(&login(&public).await.unwrap());
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    // Plain dev mode on loopback keeps working over http.
    let local = start_gateway(&services).await;
    let cookie = cookie_of(&login(&local).await.unwrap());
    assert!(!cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let gateway = start_gateway(&start_services().await).await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let response = gateway
            .http
            .get(format!("{}/api/v1/integrations", gateway.base))
            .header(AUTHORIZATION, format!("{scheme} {}", gateway.acme_key))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{scheme}");
    }
}
