//! Issue #4 end to end, every service its own process (PostgreSQL, Redis), a manifest
//! connector (`tests/fixtures/connector-oauth-demo`) and the strict OAuth2 sandbox as the
//! partner: a tenant connects on the dashboard with "Connect with <partner>", consents at the
//! partner, the gateway's callback completes the connect and the sync runs on leased tokens;
//! the partner expires every token (recovered by one refresh) and then loses the consent, health
//! says needs_reconnect with the partner's reason, and the dashboard's Reconnect restores it.
//!
//! No leaks over that whole sync: every process logs at debug level with every span and its
//! fields (`PLUGBOARD_LOG_SPANS`), and no log line, run error, status reason or page holds the
//! canary client secret, an access, refresh or authorization code token of the partner, the
//! connect `state`, the API key, the mesh key or the master key.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use plugboard_proto::credentials::v1::ListAuditRequest;
use plugboard_proto::health::v1::integration_health_service_client::IntegrationHealthServiceClient;
use plugboard_proto::health::v1::{GetStatusRequest, IntegrationStatus};
use plugboard_proto::sync::v1::{ListSyncsRequest, RunState, SyncInfo, TriggerRunRequest};
use plugboard_runtime::channel::lazy_channel;
use plugboard_sandbox::oauth::{CLIENT_ID, OAuthOptions};
use plugboard_tests::mesh::{TenantClients, wait_serving};
use plugboard_tests::process::{Process, run_to_end};
use plugboard_tests::{REDIS_URL, eventually, free_port, fresh_postgres_database};
use rand::RngCore;
use reqwest::redirect::Policy;
use serde_json::{Value, json};

const TENANT: &str = "oauth-tenant";

struct Browser {
    http: reqwest::Client,
    gateway: String,
    cookie: String,
}

impl Browser {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway)
    }

    async fn get(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let request = self.http.get(self.url(path)).header("cookie", &self.cookie);
        Ok(request.send().await?)
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> anyhow::Result<reqwest::Response> {
        let request = self
            .http
            .post(self.url(path))
            .header("cookie", &self.cookie)
            .header("origin", format!("http://{}", self.gateway))
            .form(form);
        Ok(request.send().await?)
    }

    /// Follows the partner's consent page back to the gateway's callback, as a browser does:
    /// the callback is a cross-site navigation, so it carries no session cookie.
    async fn consent(&self, authorize_url: &str) -> anyhow::Result<String> {
        let consent = self.http.get(authorize_url).send().await?;
        anyhow::ensure!(consent.status() == 302, "authorize: {}", consent.status());
        let callback = location(&consent)?;
        anyhow::ensure!(
            callback.starts_with(&self.url("/oauth/callback?")),
            "the partner sends the customer back to the gateway: {callback}"
        );
        let page = self.http.get(&callback).send().await?;
        anyhow::ensure!(page.status() == 200, "callback: {}", page.status());
        let body = page.text().await?;
        let start = body
            .find("href=\"/integrations/")
            .ok_or_else(|| anyhow::anyhow!("no link to the integration: {body}"))?;
        let rest = &body[start + "href=\"/integrations/".len()..];
        Ok(rest[..rest.find('"').unwrap_or(0)].to_owned())
    }
}

fn location(response: &reqwest::Response) -> anyhow::Result<String> {
    Ok(response
        .headers()
        .get("location")
        .ok_or_else(|| anyhow::anyhow!("no Location on {}", response.status()))?
        .to_str()?
        .to_owned())
}

async fn sync_info(clients: &TenantClients, sync: &str, id: &str) -> anyhow::Result<SyncInfo> {
    let syncs = clients
        .sync(sync)
        .list_syncs(ListSyncsRequest::default())
        .await?
        .into_inner()
        .syncs;
    syncs
        .into_iter()
        .find(|info| info.connection_id == id)
        .ok_or_else(|| anyhow::anyhow!("no sync for {id}"))
}

/// Waits for a finished run other than `after` and returns it.
async fn finished_run(
    clients: &TenantClients,
    sync: &str,
    id: &str,
    after: &str,
) -> anyhow::Result<plugboard_proto::sync::v1::RunInfo> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(info) = sync_info(clients, sync, id).await
            && let Some(run) = info.last_run
            && run.run_id != after
            && run.state != RunState::Running as i32
        {
            return Ok(run);
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "no run finished");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn status(
    clients: &TenantClients,
    health: &str,
    id: &str,
) -> anyhow::Result<plugboard_proto::health::v1::IntegrationHealth> {
    let channel = lazy_channel(health)?;
    let mut client =
        IntegrationHealthServiceClient::with_interceptor(channel, clients.credentials.clone());
    let mut statuses = client
        .get_status(GetStatusRequest {
            connection_id: id.into(),
        })
        .await?
        .into_inner()
        .integrations;
    anyhow::ensure!(!statuses.is_empty(), "health knows nothing of {id}");
    Ok(statuses.remove(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_through_the_dashboard_sync_on_leased_tokens_and_reconnect() -> anyhow::Result<()> {
    let database_url = fresh_postgres_database().await?;
    let log_dir = std::env::temp_dir().join(format!("pb-oauth-{}", uuid::Uuid::new_v4()));
    let mut master = [0u8; 32];
    rand::rng().fill_bytes(&mut master);
    let mesh_key = format!("oauth-e2e-mesh-key-{}", uuid::Uuid::new_v4().simple());
    let addr = || format!("127.0.0.1:{}", free_port());
    let (registry, credentials, health, mapping, sync, connector, gateway) =
        (addr(), addr(), addr(), addr(), addr(), addr(), addr());

    // The partner, in this test process, with a canary client secret.
    let client_secret = format!("canary-client-secret-{}", uuid::Uuid::new_v4().simple());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let partner = format!("http://{}", listener.local_addr()?);
    tokio::spawn(plugboard_sandbox::oauth::serve(
        listener,
        OAuthOptions {
            client_secret: client_secret.clone(),
            ..OAuthOptions::default()
        },
        std::future::pending(),
    ));
    let master_key = base64::engine::general_purpose::STANDARD.encode(master);

    let common: Vec<(String, String)> = [
        ("PLUGBOARD_DATABASE_URL", database_url.clone()),
        ("PLUGBOARD_MESH_KEY", mesh_key.clone()),
        ("PLUGBOARD_REDIS_URL", REDIS_URL.to_owned()),
        ("PLUGBOARD_REGISTRY_ADDR", registry.clone()),
        ("PLUGBOARD_CREDENTIALS_ADDR", credentials.clone()),
        ("PLUGBOARD_HEALTH_ADDR", health.clone()),
        ("PLUGBOARD_MAPPING_ADDR", mapping.clone()),
        ("PLUGBOARD_SYNC_ADDR", sync.clone()),
        ("PLUGBOARD_MASTER_KEY", master_key.clone()),
        ("PLUGBOARD_ALLOW_PRIVATE_TARGETS", "true".to_owned()),
        ("PLUGBOARD_LOG", "debug".to_owned()),
        ("PLUGBOARD_LOG_SPANS", "true".to_owned()),
        ("PLUGBOARD_ADVERTISE_ADDR", connector.clone()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    let start = |name: &str, args: &[&str], listen: &str| {
        let mut env = common.clone();
        env.push(("PLUGBOARD_LISTEN_ADDR".into(), listen.to_owned()));
        Process::start(name, args, &env, &log_dir)
    };
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/connector-oauth-demo");
    let fixture = fixture.to_string_lossy().into_owned();
    let processes = [
        start("registry", &["serve", "registry"], &registry),
        start("credentials", &["serve", "credentials"], &credentials),
        start("health", &["serve", "health"], &health),
        start("mapping", &["serve", "mapping"], &mapping),
        start("sync", &["serve", "sync"], &sync),
        start("connector", &["connector", "serve", &fixture], &connector),
        start("gateway", &["serve", "gateway"], &gateway),
    ];
    for service in [
        &registry,
        &credentials,
        &health,
        &mapping,
        &sync,
        &connector,
    ] {
        wait_serving(service, Duration::from_secs(60))
            .await
            .map_err(|e| anyhow::anyhow!("{service}: {e}; logs in {}", log_dir.display()))?;
    }
    let api_key = format!("pb_oauth_{}", uuid::Uuid::new_v4().simple());
    run_to_end(
        &[
            "tenant",
            "create",
            "--id",
            TENANT,
            "--name",
            "OAuth Staffing",
            "--api-key",
            &api_key,
        ],
        &[("PLUGBOARD_DATABASE_URL".into(), database_url.clone())],
    )?;
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()?;
    eventually("the gateway", Duration::from_secs(30), || {
        let request = http.get(format!("http://{gateway}/healthz")).send();
        async move { request.await.is_ok_and(|r| r.status() == 200) }
    })
    .await?;
    let login = http
        .post(format!("http://{gateway}/login"))
        .header("origin", format!("http://{gateway}"))
        .form(&[("api_key", api_key.as_str())])
        .send()
        .await?;
    let cookie = login
        .headers()
        .get("set-cookie")
        .ok_or_else(|| anyhow::anyhow!("login set no cookie: {}", login.status()))?
        .to_str()?
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned();
    let browser = Browser {
        http: http.clone(),
        gateway: gateway.clone(),
        cookie,
    };
    let clients = TenantClients::new(&mesh_key, TENANT);

    // The form of an authorization code connector: the customer's app, no password, and a
    // "Connect with" button.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let form = loop {
        let response = browser.get("/connect/oauth-demo").await?;
        if response.status() == 200 {
            break response.text().await?;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the connector never reached the catalogue"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(form.contains("Connect with OAuth Demo ATS"), "{form}");
    assert!(form.contains("credential.client_id") && !form.contains("credential.username"));

    let begun = browser
        .post(
            "/connect/oauth-demo",
            &[
                ("setting.base_url", partner.as_str()),
                ("credential.client_id", CLIENT_ID),
                ("credential.client_secret", client_secret.as_str()),
            ],
        )
        .await?;
    assert_eq!(begun.status(), 303, "{}", begun.text().await?);
    let authorize = location(&begun)?;
    assert!(
        authorize.starts_with(&format!("{partner}/oauth2/authorize?"))
            && authorize.contains("code_challenge_method=S256")
            && authorize.contains("state="),
        "{authorize}"
    );
    let connect_state = reqwest::Url::parse(&authorize)?
        .query_pairs()
        .find(|(name, _)| name == "state")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    let id = browser.consent(&authorize).await?;
    assert!(id.starts_with("oauth-demo-"), "{id}");

    let first = finished_run(&clients, &sync, &id, "").await?;
    assert_eq!(first.state, RunState::Succeeded as i32, "{}", first.error);
    let info = sync_info(&clients, &sync, &id).await?;
    let candidates: u64 = info
        .records
        .iter()
        .filter(|count| count.entity == "candidate")
        .map(|count| count.count)
        .sum();
    assert_eq!(candidates, 57, "every partner candidate is in the store");

    // The partner ends every access token early: the connector is refused, leases again, and
    // credentials refreshes once (rotating the refresh token).
    let faults = format!("{partner}/_sandbox/oauth2/faults");
    http.post(&faults)
        .json(&json!({ "expire_access_tokens": true }))
        .send()
        .await?;
    clients
        .sync(&sync)
        .trigger_run(TriggerRunRequest {
            connection_id: id.clone(),
        })
        .await?;
    let second = finished_run(&clients, &sync, &id, &first.run_id).await?;
    assert_eq!(second.state, RunState::Succeeded as i32, "{}", second.error);
    let stats: Value = http
        .get(format!("{partner}/_sandbox/oauth2/stats"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(stats["grants"]["authorization_code"], 1, "{stats}");
    assert_eq!(stats["grants"]["refresh_token"], 1, "{stats}");
    assert_eq!(stats["refresh_reuses"], 0, "{stats}");

    // Every lease in the audit log names its run.
    let audit = clients
        .credentials(&credentials)
        .list_audit(ListAuditRequest {
            connection_id: id.clone(),
            ..ListAuditRequest::default()
        })
        .await?
        .into_inner()
        .records;
    for run in [&first.run_id, &second.run_id] {
        assert!(
            audit
                .iter()
                .any(|row| row.action == "lease" && row.outcome == "ok" && &row.run_id == run),
            "no lease for run {run}: {audit:?}"
        );
    }

    // The partner loses the consent: the next run is refused, health asks for a reconnect.
    http.post(&faults)
        .json(&json!({ "revoke_consent": true }))
        .send()
        .await?;
    clients
        .sync(&sync)
        .trigger_run(TriggerRunRequest {
            connection_id: id.clone(),
        })
        .await?;
    let third = finished_run(&clients, &sync, &id, &second.run_id).await?;
    assert_eq!(third.state, RunState::Failed as i32);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let refused = loop {
        if let Ok(found) = status(&clients, &health, &id).await
            && found.status() == IntegrationStatus::NeedsReconnect
        {
            break found;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "health never said needs_reconnect"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        refused.reason.contains("invalid_grant"),
        "{}",
        refused.reason
    );
    assert!(
        refused.action.starts_with("Reconnect"),
        "{}",
        refused.action
    );
    let page = browser
        .get(&format!("/integrations/{id}"))
        .await?
        .text()
        .await?;
    assert!(
        page.contains("id=\"reconnect\""),
        "a Reconnect button: {page}"
    );
    let mut said = vec![
        third.error.clone(),
        refused.reason.clone(),
        page.clone(),
        form.clone(),
    ];

    // Reconnect: consent again at the partner with the stored client; the next run succeeds.
    let again = browser
        .post(&format!("/integrations/{id}/reconnect"), &[])
        .await?;
    assert_eq!(again.status(), 303, "{}", again.text().await?);
    let reconnected = browser.consent(&location(&again)?).await?;
    assert_eq!(reconnected, id);
    let fourth = finished_run(&clients, &sync, &id, &third.run_id).await?;
    assert_eq!(fourth.state, RunState::Succeeded as i32, "{}", fourth.error);
    eventually("operational again", Duration::from_secs(20), || {
        let status = status(&clients, &health, &id);
        async move {
            status
                .await
                .is_ok_and(|status| status.status() == IntegrationStatus::Operational)
        }
    })
    .await?;

    // No secret in anything any process logged, or in anything shown to the customer.
    said.push(fourth.error.clone());
    let secrets = [
        client_secret.as_str(),
        connect_state.as_str(),
        api_key.as_str(),
        mesh_key.as_str(),
        master_key.as_str(),
    ];
    for process in &processes {
        let log = process.log_text();
        anyhow::ensure!(
            log.lines().count() > 10 && log.contains("DEBUG"),
            "{} logged at debug level",
            process.name()
        );
        said.push(log);
    }
    for text in &said {
        for secret in secrets {
            anyhow::ensure!(
                !secret.is_empty() && !text.contains(secret),
                "a secret leaked"
            );
        }
        for prefix in ["at_", "rt_", "code_"] {
            anyhow::ensure!(
                partner_token(text, prefix).is_none(),
                "a partner {prefix} token leaked"
            );
        }
    }
    Ok(())
}

/// A token of the sandbox's form (`<prefix><32 hex digits>`) inside `text`.
fn partner_token(text: &str, prefix: &str) -> Option<String> {
    text.match_indices(prefix).find_map(|(at, _)| {
        let rest = &text[at + prefix.len()..];
        let hex: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
        (hex.len() == 32).then(|| format!("{prefix}{hex}"))
    })
}
