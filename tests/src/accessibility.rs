//! Accessibility checks in the browser tests: axe-core (npm package `axe-core`, installed by
//! `tests/run.sh` into `$CARGO_TARGET_DIR/tools`) injected into the page through WebDriver and
//! run on it, failing on serious and critical violations.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::browser::Browser;

/// Where axe-core's browser bundle is: `PLUGBOARD_AXE` when set (tests/run.sh sets it), else
/// the tools folder of the target directory.
pub fn axe_script_path() -> PathBuf {
    if let Some(path) = std::env::var_os("PLUGBOARD_AXE") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("tools/node_modules/axe-core/axe.min.js")
}

/// One rule the page breaks, with the elements that break it.
#[derive(Debug, Clone)]
pub struct Violation {
    pub rule: String,
    pub impact: String,
    pub help: String,
    pub targets: Vec<String>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {} at {}",
            self.rule,
            self.impact,
            self.help,
            self.targets.join(", ")
        )
    }
}

/// Runs axe-core (WCAG 2.0/2.1 A and AA rules) on the page the browser shows; returns every
/// violation whatever its impact.
pub async fn audit(browser: &Browser) -> anyhow::Result<Vec<Violation>> {
    let path = axe_script_path();
    let source = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "axe-core is not at {}: run tests/run.sh, or npm install axe-core@4 --prefix \
             \"$CARGO_TARGET_DIR/tools\"",
            path.display()
        )
    })?;
    // Injected as a script of its own so it defines `window.axe` for the page.
    browser
        .execute(&format!("{source}\nreturn typeof window.axe;"))
        .await
        .context("injecting axe-core")?;
    let script = r#"
        const done = arguments[arguments.length - 1];
        window.axe.run(document, {
            runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
            resultTypes: ['violations']
        }).then(
            (results) => done({ ok: results.violations }),
            (error) => done({ error: String(error) })
        );
    "#;
    let answer = browser.execute_async(script).await?;
    if let Some(error) = answer.get("error") {
        bail!("axe-core failed: {error}");
    }
    let violations = answer["ok"]
        .as_array()
        .context("axe-core answered no list")?;
    Ok(violations.iter().map(violation).collect())
}

/// Fails with every serious or critical violation of the page, named by rule and element.
pub async fn assert_no_serious_violations(browser: &Browser, page: &str) -> anyhow::Result<()> {
    let violations = audit(browser).await?;
    let serious: Vec<String> = violations
        .iter()
        .filter(|violation| matches!(violation.impact.as_str(), "serious" | "critical"))
        .map(ToString::to_string)
        .collect();
    if !serious.is_empty() {
        bail!(
            "{page}: {} serious accessibility violations:\n{}",
            serious.len(),
            serious.join("\n")
        );
    }
    Ok(())
}

fn violation(value: &Value) -> Violation {
    let text = |key: &str| value[key].as_str().unwrap_or_default().to_owned();
    let targets = value["nodes"]
        .as_array()
        .map(|nodes| {
            nodes
                .iter()
                .map(|node| node["target"].to_string())
                .collect()
        })
        .unwrap_or_default();
    Violation {
        rule: text("id"),
        impact: text("impact"),
        help: text("help"),
        targets,
    }
}
