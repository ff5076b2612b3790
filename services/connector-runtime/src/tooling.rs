//! What `plugboard connector check | new | stats` do, as plain functions the command wraps.

use std::path::{Path, PathBuf};

use crate::hooks::Hooks;
use crate::manifest::{self, Loaded, Problem};

/// Checks a connector folder (or its `manifest.yaml`) offline, with the built-in hooks.
pub fn check(path: &Path) -> Result<Loaded, Vec<Problem>> {
    check_with_hooks(path, &Hooks::builtin())
}

/// As [`check`], for a binary that registers `hooks`: a hook the manifest names that is not
/// among them is a problem at its line.
pub fn check_with_hooks(path: &Path, hooks: &Hooks) -> Result<Loaded, Vec<Problem>> {
    let dir = if path.is_file() {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    } else {
        path.to_path_buf()
    };
    let loaded = manifest::load(&dir)?;
    let manifest_path = dir.join("manifest.yaml");
    // load just read it; a file gone since is reported without a line.
    let yaml = std::fs::read_to_string(&manifest_path).unwrap_or_default();
    let problems = hooks.problems(
        &loaded.manifest,
        &manifest_path.display().to_string(),
        &yaml,
    );
    if problems.is_empty() {
        Ok(loaded)
    } else {
        Err(problems)
    }
}

/// One connector's size, as `stats` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub name: String,
    pub category: String,
    pub streams: usize,
    pub writes: usize,
    pub webhook_events: usize,
    pub manifest_lines: usize,
    pub mapping_lines: usize,
    pub rust_lines: usize,
}

/// Every connector under `services/` (folders named `connector-*` other than the runtime):
/// manifest connectors from their manifest, hand-written ones from their Rust.
pub fn stats(services: &Path) -> std::io::Result<Vec<Stats>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(services)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.is_dir()
                && path.file_name().is_some_and(|name| {
                    let name = name.to_string_lossy();
                    name.starts_with("connector-") && name != "connector-runtime"
                })
        })
        .collect();
    dirs.sort();
    let mut rows = Vec::new();
    for dir in dirs {
        let folder = dir
            .file_name()
            .map(|name| {
                name.to_string_lossy()
                    .trim_start_matches("connector-")
                    .to_owned()
            })
            .unwrap_or_default();
        let manifest_path = dir.join("manifest.yaml");
        let (name, category, streams, writes, webhook_events) =
            match manifest::load(&dir).map(|loaded| loaded.manifest) {
                Ok(manifest) => (
                    manifest.name,
                    manifest.category,
                    manifest.streams.len(),
                    manifest
                        .writes
                        .values()
                        .map(|w| usize::from(w.create.is_some()) + usize::from(w.update.is_some()))
                        .sum(),
                    manifest.webhooks.map_or(0, |w| w.events.len()),
                ),
                Err(_) => (folder, "(rust)".to_owned(), 0, 0, 0),
            };
        rows.push(Stats {
            name,
            category,
            streams,
            writes,
            webhook_events,
            manifest_lines: lines(&manifest_path)?,
            mapping_lines: lines_under(&dir.join("mappings"), "yaml")?,
            rust_lines: lines_under(&dir.join("src"), "rs")?,
        });
    }
    Ok(rows)
}

/// The table `stats` prints.
pub fn render_stats(rows: &[Stats]) -> String {
    let mut out = format!(
        "{:<16} {:<12} {:>7} {:>6} {:>8} {:>9} {:>8} {:>6} {:>6}\n",
        "connector",
        "category",
        "streams",
        "writes",
        "webhooks",
        "manifest",
        "mapping",
        "rust",
        "total"
    );
    for row in rows {
        out.push_str(&format!(
            "{:<16} {:<12} {:>7} {:>6} {:>8} {:>9} {:>8} {:>6} {:>6}\n",
            row.name,
            row.category,
            row.streams,
            row.writes,
            row.webhook_events,
            row.manifest_lines,
            row.mapping_lines,
            row.rust_lines,
            row.manifest_lines + row.mapping_lines + row.rust_lines
        ));
    }
    out
}

/// Non-empty, non-comment lines of a file; 0 when it does not exist.
fn lines(path: &Path) -> std::io::Result<usize> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#') && !line.starts_with("//"))
            .count()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(error) => Err(error),
    }
}

fn lines_under(dir: &Path, extension: &str) -> std::io::Result<usize> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut total = 0;
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            total += lines_under(&path, extension)?;
        } else if path.extension().is_some_and(|ext| ext == extension) {
            total += lines(&path)?;
        }
    }
    Ok(total)
}

/// The sandbox `new` writes: the starter partner's source.
const STARTER_SANDBOX: &str = include_str!("../../sandbox/src/starter.rs");
/// The starter partner's API key.
const STARTER_KEY: &str = "starter-demo-key";

/// Scaffolds `services/connector-<name>` (a manifest, a mapping spec and a `conformance.yaml`,
/// which pass `check` as written) and its sandbox stub `services/sandbox/src/<name>.rs` (the
/// starter partner, which they pass the conformance kit against).
pub fn scaffold(services: &Path, name: &str) -> Result<PathBuf, String> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(format!(
            "{name:?}: a connector name is lowercase letters, digits and hyphens"
        ));
    }
    let dir = services.join(format!("connector-{name}"));
    let module = name.replace('-', "_");
    if dir.exists() {
        return Err(format!("{} already exists", dir.display()));
    }
    let write = |path: PathBuf, text: String| {
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    std::fs::create_dir_all(dir.join("mappings"))
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    write(
        dir.join("manifest.yaml"),
        format!(
            r#"# yaml-language-server: $schema=../connector-runtime/manifest.schema.json
manifest_version: 1
name: {name}
display_name: {name}
category: ats
version: 0.1.0
base_url: "{{{{ settings.base_url }}}}"
settings:
  base_url:
    type: url
auth:
  type: bearer
  token: "{{{{ secret.key }}}}"
streams:
  candidates:
    entity: candidate
    path: /candidates
    records: /data
    pagination: {{type: offset, page_size: {{param: limit, value: 100}}}}
    # Sorted by (updated_at, id): each page resumes at the newest updated_at read.
    incremental: {{param: updated_since, field: updated_at, keyset: true}}
"#
        ),
    )?;
    write(
        dir.join("mappings/candidate.inbound.yaml"),
        format!(
            r#"version: 1
connector: {name}
entity: candidate
direction: inbound
external_id: .id
fields:
  first_name: {{expr: .first_name, required: true}}
  last_name: {{expr: .last_name, required: true}}
  email: .email
  updated_at: {{expr: .updated_at, required: true}}
"#
        ),
    )?;
    write(
        dir.join("conformance.yaml"),
        format!(
            "# How the conformance kit reaches the {name} sandbox (services/sandbox/src/{module}.rs).\n\
             settings: {{base_url: \"{{{{ sandbox }}}}\"}}\n\
             secret: {{kind: api_key, key: {key}}}\n",
            key = STARTER_KEY,
        ),
    )?;
    // The sandbox stub: the starter partner, which serves this manifest as scaffolded and
    // passes the conformance kit; the connector's author turns it into the partner.
    let sandbox_dir = services.join("sandbox/src");
    std::fs::create_dir_all(&sandbox_dir)
        .map_err(|e| format!("cannot create {}: {e}", sandbox_dir.display()))?;
    let stub = sandbox_dir.join(format!("{module}.rs"));
    if stub.exists() {
        return Err(format!("{} already exists", stub.display()));
    }
    let body = STARTER_SANDBOX
        .split_once("\n\nuse ")
        .map(|(_, rest)| format!("use {rest}"))
        .unwrap_or_else(|| STARTER_SANDBOX.to_owned());
    write(
        stub,
        format!(
            "//! A simulated {name} API for dev mode and the conformance kit, begun from the\n\
             //! starter partner (`plugboard connector new`). Make it speak {name}'s real wire format,\n\
             //! auth, paging and faults, seeded from `shared/partners/{name}/`.\n\n{body}"
        ),
    )?;
    Ok(dir)
}
