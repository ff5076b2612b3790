//! A small W3C WebDriver client over reqwest, driving Debian's headless Chromium through
//! `chromedriver`. No driver is downloaded: both binaries come from the system (`chromium`,
//! `chromium-driver`), which `tests/run.sh` installs when missing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use serde_json::{Value, json};

use crate::{eventually, free_port};

/// The key W3C WebDriver uses for element references.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// One Chromium session behind its own `chromedriver`, killed on drop.
pub struct Browser {
    http: reqwest::Client,
    session_url: String,
    driver: Child,
    _profile: PathBuf,
}

/// Where the browser tests keep their screenshots: `target/screenshots` of the workspace.
pub fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("screenshots")
}

fn find_binary(names: &[&str]) -> anyhow::Result<PathBuf> {
    for name in names {
        for dir in ["/usr/bin", "/usr/local/bin", "/usr/lib/chromium"] {
            let path = Path::new(dir).join(name);
            if path.exists() {
                return Ok(path);
            }
        }
    }
    bail!(
        "none of {names:?} is installed; run tests/run.sh or apt-get install chromium chromium-driver"
    )
}

impl Browser {
    /// Starts `chromedriver` on a free port and opens a headless Chromium session.
    pub async fn start() -> anyhow::Result<Browser> {
        let driver_bin = find_binary(&["chromedriver"])?;
        let chromium_bin = find_binary(&["chromium", "chromium-browser"])?;
        let port = free_port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chromedriver")?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let base = format!("http://127.0.0.1:{port}");
        let status_url = format!("{base}/status");
        eventually("chromedriver to be ready", Duration::from_secs(20), || {
            let http = http.clone();
            let url = status_url.clone();
            async move {
                match http.get(&url).send().await {
                    Ok(response) => response
                        .json::<Value>()
                        .await
                        .is_ok_and(|body| body["value"]["ready"] == true),
                    Err(_) => false,
                }
            }
        })
        .await?;

        // A fresh profile per session; as root Chromium needs --no-sandbox.
        let profile = std::env::temp_dir().join(format!("pb-chromium-{}", uuid::Uuid::new_v4()));
        let capabilities = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium_bin,
                    "args": [
                        "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                        "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        "--window-size=1280,900",
                        format!("--user-data-dir={}", profile.display()),
                    ]
                }
            }}
        });
        let mut browser = Browser {
            http,
            session_url: String::new(),
            driver,
            _profile: profile,
        };
        let created = browser
            .call(
                reqwest::Method::POST,
                &format!("{base}/session"),
                Some(capabilities),
            )
            .await
            .context("creating a chromium session")?;
        let session = created["sessionId"]
            .as_str()
            .context("chromedriver returned no session id")?;
        browser.session_url = format!("{base}/session/{session}");
        Ok(browser)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let request = self.http.request(method, url);
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        let response = request.send().await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            bail!("webdriver {url} answered {status}: {}", body["value"]);
        }
        Ok(body["value"].clone())
    }

    async fn session(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.session_url);
        self.call(method, &url, body).await
    }

    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.session(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await?;
        Ok(())
    }

    pub async fn current_url(&self) -> anyhow::Result<String> {
        let value = self.session(reqwest::Method::GET, "/url", None).await?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    async fn element(&self, css: &str) -> anyhow::Result<String> {
        let value = self
            .session(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await
            .with_context(|| format!("finding {css:?}"))?;
        value[ELEMENT_KEY]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no element reference for {css:?}"))
    }

    pub async fn count(&self, css: &str) -> anyhow::Result<usize> {
        let value = self
            .session(
                reqwest::Method::POST,
                "/elements",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await?;
        Ok(value.as_array().map_or(0, Vec::len))
    }

    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        let element = self.element(css).await?;
        self.session(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await?;
        Ok(())
    }

    pub async fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let element = self.element(css).await?;
        self.session(
            reqwest::Method::POST,
            &format!("/element/{element}/clear"),
            Some(json!({})),
        )
        .await?;
        self.session(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await?;
        Ok(())
    }

    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        let element = self.element(css).await?;
        let value = self
            .session(
                reqwest::Method::GET,
                &format!("/element/{element}/text"),
                None,
            )
            .await?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// Runs a script in the page; async scripts call the last argument to return.
    pub async fn execute_async(&self, script: &str) -> anyhow::Result<Value> {
        self.session(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    pub async fn execute(&self, script: &str) -> anyhow::Result<Value> {
        self.session(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// Waits until the text of `css` contains `expected`.
    pub async fn wait_for_text(
        &self,
        css: &str,
        expected: &str,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let outcome = eventually(
            &format!("{css:?} to show {expected:?}"),
            timeout,
            || async {
                self.text(css)
                    .await
                    .is_ok_and(|text| text.contains(expected))
            },
        )
        .await;
        match outcome {
            Ok(()) => Ok(()),
            Err(error) => {
                let now = self.text(css).await.unwrap_or_default();
                bail!("{error}; it shows {now:?}")
            }
        }
    }

    /// Saves a PNG of the viewport under [`screenshot_dir`] and returns its path.
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let value = self
            .session(reqwest::Method::GET, "/screenshot", None)
            .await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(value.as_str().context("screenshot is not base64 text")?)?;
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        Ok(path)
    }

    /// Ends the session (and Chromium with it).
    pub async fn close(mut self) -> anyhow::Result<()> {
        let url = std::mem::take(&mut self.session_url);
        if !url.is_empty() {
            self.call(reqwest::Method::DELETE, &url, None).await?;
        }
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The session normally ended in `close`; the driver goes either way.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
