//! The dashboard in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) against the real `plugboard dev` process. It signs in with the demo key,
//! watches a status change arrive live when the Bullhorn sandbox starts failing, opens the
//! integration page (uptime bar, incident), connects a second integration through the form
//! generated from the manifest, and checks that another tenant's integration cannot be seen or
//! acted on by guessing its id. The integration page says Bullhorn sends no webhooks; the test
//! registers, is refused and removes a notification webhook on the settings page. axe-core
//! audits the overview, the integration page and the settings page and fails on serious or
//! critical violations. Screenshots go to `target/screenshots`.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use plugboard_proto::sync::v1::ListRunsRequest;
use plugboard_sandbox::bullhorn::{
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USERNAME,
};
use plugboard_tests::accessibility::assert_no_serious_violations;
use plugboard_tests::browser::Browser;
use plugboard_tests::flows::Mesh;
use plugboard_tests::mesh::{TenantClients, wait_serving};
use plugboard_tests::process::{Process, run_to_end};
use plugboard_tests::sandbox::SandboxAdmin;
use plugboard_tests::{eventually, free_port};
use serde_json::json;

const DEMO_API_KEY: &str = "pb_browser_test_key_0123456789ab";
const WAIT: Duration = Duration::from_secs(60);

fn printed_addresses(log: &str) -> HashMap<String, String> {
    log.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("service"), Some(name), Some(addr)) => {
                    Some((name.to_owned(), addr.to_owned()))
                }
                (Some("sandbox"), Some("bullhorn"), Some(url)) => {
                    Some(("sandbox".to_owned(), url.to_owned()))
                }
                _ => None,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium() -> anyhow::Result<()> {
    let data_dir = std::env::temp_dir().join(format!("pb-browser-{}", uuid::Uuid::new_v4()));
    let gateway = format!("127.0.0.1:{}", free_port());
    let dev = Process::start(
        "dev",
        &[
            "dev",
            "--data-dir",
            &data_dir.display().to_string(),
            "--gateway-addr",
            &gateway,
            "--demo-api-key",
            DEMO_API_KEY,
        ],
        &[],
        &data_dir.join("logs"),
    );
    eventually("plugboard dev to start", WAIT, || {
        let ready = dev.log_text().contains("press ctrl-c to stop");
        async move { ready }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}: {}", dev.log_text()))?;
    let addresses = printed_addresses(&dev.log_text());
    for name in ["credentials", "sync", "health", "registry"] {
        wait_serving(&addresses[name], Duration::from_secs(30)).await?;
    }
    let sandbox_url = addresses["sandbox"].clone();
    let mesh_key = std::fs::read_to_string(data_dir.join("keys/mesh.key"))?;
    let mesh_for = |tenant: &str| Mesh {
        clients: TenantClients::new(mesh_key.trim(), tenant),
        sync_addr: addresses["sync"].clone(),
        credentials_addr: addresses["credentials"].clone(),
        sandbox: SandboxAdmin::new(&sandbox_url),
        sandbox_url: sandbox_url.clone(),
    };
    let demo = mesh_for("demo");
    demo.wait_idle("demo-bullhorn").await?;

    // Tenant B, made the way an operator would, with an integration of its own.
    let gateway_db = plugboard_runtime::storage::sqlite_url(&data_dir, "gateway");
    run_to_end(
        &["tenant", "create", "--id", "globex", "--name", "Globex"],
        &[("PLUGBOARD_DATABASE_URL".to_owned(), gateway_db.clone())],
    )?;
    let globex = mesh_for("globex");
    globex
        .connect_bullhorn(
            "globex-bullhorn",
            DEMO_CLIENT_ID,
            DEMO_CLIENT_SECRET,
            DEMO_USERNAME,
            DEMO_PASSWORD,
        )
        .await?;

    let base = format!("http://{gateway}");
    let browser = Browser::start().await?;
    let result = drive(&browser, &base, &demo, &globex, &sandbox_url, &gateway_db).await;
    if result.is_err() {
        let _ = browser.screenshot("failure").await;
    }
    browser.close().await?;
    result.map_err(|e| anyhow::anyhow!("{e:#}\n--- plugboard dev log ---\n{}", dev.log_text()))
}

async fn drive(
    browser: &Browser,
    base: &str,
    demo: &Mesh,
    globex: &Mesh,
    sandbox_url: &str,
    gateway_db: &str,
) -> anyhow::Result<()> {
    let row = "tr[data-connection='demo-bullhorn']";

    // Sign in with the API key; the overview shows the demo integration with its freshness.
    browser.goto(&format!("{base}/")).await?;
    assert!(browser.current_url().await?.ends_with("/login"));
    browser.type_into("#api_key", DEMO_API_KEY).await?;
    browser.click("form[action='/login'] button").await?;
    browser
        .wait_for_text(&format!("{row} [data-field='status']"), "Operational", WAIT)
        .await?;
    let freshness = browser.text(&format!("{row} td:nth-of-type(4)")).await?;
    assert!(freshness.contains("job"), "{freshness}");
    browser.screenshot("dashboard").await?;
    assert_no_serious_violations(browser, "the overview").await?;

    // Live: the page stays as it is while the sandbox fails and a run reports it.
    eventually("the live stream to connect", WAIT, || async {
        browser
            .execute("return document.body.getAttribute('data-live')")
            .await
            .is_ok_and(|value| value == "connected")
    })
    .await?;
    browser
        .execute("window.__notReloaded = true; return null")
        .await?;
    demo.sandbox
        .faults(json!({ "server_error_burst": 1000 }))
        .await?;
    demo.clients
        .sync(&demo.sync_addr)
        .trigger_run(plugboard_proto::sync::v1::TriggerRunRequest {
            connection_id: "demo-bullhorn".into(),
        })
        .await?;
    browser
        .wait_for_text(&format!("{row} [data-field='status']"), "Degraded", WAIT)
        .await?;
    let reason = browser
        .text(&format!("{row} [data-field='reason']"))
        .await?;
    assert!(reason.contains("the last sync failed"), "{reason}");
    let same_page = browser
        .execute("return window.__notReloaded === true")
        .await?;
    assert_eq!(same_page, true, "the change must arrive without a reload");
    let announced = browser.text("#live").await?;
    assert!(announced.contains("Degraded"), "{announced}");
    browser.screenshot("live-status-change").await?;
    demo.sandbox
        .faults(json!({ "server_error_burst": 0 }))
        .await?;

    // The integration page: uptime bar of 90 days, the open incident, recent runs.
    browser
        .goto(&format!("{base}/integrations/demo-bullhorn"))
        .await?;
    assert_eq!(browser.count("ol.uptime li").await?, 90);
    let incidents = browser
        .text("section[aria-labelledby='incidents-heading']")
        .await?;
    assert!(
        incidents.contains("Bullhorn sync is degraded"),
        "{incidents}"
    );
    assert!(incidents.contains("ongoing"), "{incidents}");
    let runs = browser
        .text("section[aria-labelledby='runs-heading']")
        .await?;
    assert!(
        runs.contains("failed") && runs.contains("succeeded"),
        "{runs}"
    );
    browser.screenshot("integration").await?;
    assert_no_serious_violations(browser, "the integration page").await?;
    // Run now from the page: the sandbox works again, so the incident resolves.
    demo.wait_idle("demo-bullhorn").await?;
    browser.click("form[action$='/run'] button").await?;
    browser
        .wait_for_text("main [data-field='status']", "Operational", WAIT)
        .await?;
    eventually("the incident to resolve", WAIT, || async {
        let _ = browser
            .goto(&format!("{base}/integrations/demo-bullhorn"))
            .await;
        browser
            .text("section[aria-labelledby='incidents-heading']")
            .await
            .is_ok_and(|text| text.contains("resolved"))
    })
    .await?;

    // Partner webhooks: Bullhorn's manifest declares none, so the page says so instead of
    // offering a form whose every delivery would be refused.
    let notice = browser.text("#webhooks-unsupported").await?;
    assert!(notice.contains("does not send webhooks"), "{notice}");

    settings(browser, base).await?;

    // Connect a second Bullhorn integration through the form generated from the manifest.
    browser.goto(&format!("{base}/connect")).await?;
    browser.click("a[href='/connect/bullhorn']").await?;
    let fields = [
        ("#setting\\.auth_url", sandbox_url.to_owned()),
        ("#setting\\.login_url", sandbox_url.to_owned()),
        ("#credential\\.client_id", DEMO_CLIENT_ID.to_owned()),
        ("#credential\\.client_secret", DEMO_CLIENT_SECRET.to_owned()),
        (
            "#credential\\.token_url",
            format!("{sandbox_url}/oauth/token"),
        ),
        ("#credential\\.username", DEMO_USERNAME.to_owned()),
        ("#credential\\.password", DEMO_PASSWORD.to_owned()),
    ];
    for (css, value) in &fields {
        browser.type_into(css, value).await?;
    }
    browser.screenshot("connect-form").await?;
    browser.click("#connect-form button[type='submit']").await?;
    eventually("the new integration's page", WAIT, || async {
        browser
            .current_url()
            .await
            .is_ok_and(|url| url.contains("/integrations/bullhorn-"))
    })
    .await?;
    let connected = browser.current_url().await?;
    let connection_id = connected.rsplit('/').next().unwrap().to_owned();
    demo.wait_idle(&connection_id).await?;
    browser.goto(&connected).await?;
    browser
        .wait_for_text("main [data-field='status']", "Operational", WAIT)
        .await?;
    browser.goto(&format!("{base}/")).await?;
    assert_eq!(browser.count("tr[data-connection]").await?, 2);

    // Tenant isolation: globex's integration by its id is not found, and acting on it fails.
    browser
        .goto(&format!("{base}/integrations/globex-bullhorn"))
        .await?;
    let heading = browser.text("h1").await?;
    assert_eq!(heading, "Not Found");
    let page = browser.execute("return document.body.innerText").await?;
    assert!(!page.as_str().unwrap().contains("Globex"), "{page}");
    let before = runs_of(globex, "globex-bullhorn").await?;
    let status = browser
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             fetch('/integrations/globex-bullhorn/webhook', {method: 'POST', redirect: 'manual', \
             headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: 'secret=guess'})\
             .then(r => done(r.status)).catch(e => done(String(e)));",
        )
        .await?;
    assert_eq!(status, 404, "enabling another tenant's webhooks");
    for action in ["run", "pause", "resume"] {
        let status = browser
            .execute_async(&format!(
                "const done = arguments[arguments.length - 1];\
                 fetch('/integrations/globex-bullhorn/{action}', {{method: 'POST', redirect: 'manual'}})\
                 .then(r => done(r.status)).catch(e => done(String(e)));"
            ))
            .await?;
        assert_eq!(status, 404, "{action}");
    }
    assert_eq!(runs_of(globex, "globex-bullhorn").await?, before);
    browser.screenshot("other-tenant-not-found").await?;

    // Revoking the key the session was opened with ends the session at once.
    browser.goto(&format!("{base}/")).await?;
    assert!(browser.current_url().await?.ends_with('/'));
    run_to_end(
        &["tenant", "revoke-key", "--api-key", DEMO_API_KEY],
        &[("PLUGBOARD_DATABASE_URL".to_owned(), gateway_db.to_owned())],
    )?;
    browser.goto(&format!("{base}/settings")).await?;
    assert!(
        browser.current_url().await?.ends_with("/login"),
        "a revoked key's session must end"
    );
    Ok(())
}

/// The settings page: a webhook URL to an internal address is refused with the reason, a public
/// one is registered and its signing secret shown once, and an empty one removes it.
async fn settings(browser: &Browser, base: &str) -> anyhow::Result<()> {
    browser.goto(&format!("{base}/settings")).await?;
    assert_no_serious_violations(browser, "the settings page").await?;
    let submit = "form[action='/settings/webhook'] button";
    browser
        .type_into("#webhook_url", "https://127.0.0.1/plugboard")
        .await?;
    browser.click(submit).await?;
    browser
        .wait_for_text("#webhook-error", "public internet addresses only", WAIT)
        .await?;
    // 198.18.0.0/15 passes the guard without any DNS: the test needs no network, and
    // deliveries to it simply fail (they are best effort) until it is removed below.
    let url = "https://198.18.0.1/plugboard-hook";
    browser.type_into("#webhook_url", url).await?;
    browser.click(submit).await?;
    browser.wait_for_text("#current-webhook", url, WAIT).await?;
    let secret = browser
        .execute("return document.getElementById('signing_secret').value")
        .await?;
    assert!(
        secret.as_str().is_some_and(|s| s.starts_with("whsec_")),
        "{secret}"
    );
    assert_no_serious_violations(browser, "the settings page with its secret").await?;
    browser.screenshot("settings").await?;
    browser.goto(&format!("{base}/settings")).await?;
    assert_eq!(
        browser.count("#signing_secret").await?,
        0,
        "shown once only"
    );
    browser.type_into("#webhook_url", "").await?;
    browser.click(submit).await?;
    browser
        .wait_for_text("#current-webhook", "No webhook is registered", WAIT)
        .await?;
    Ok(())
}

async fn runs_of(mesh: &Mesh, connection_id: &str) -> anyhow::Result<usize> {
    Ok(mesh
        .clients
        .sync(&mesh.sync_addr)
        .list_runs(ListRunsRequest {
            connection_id: connection_id.into(),
            limit: 100,
        })
        .await?
        .into_inner()
        .runs
        .len())
}
