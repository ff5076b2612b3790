//! Reading a connector folder (`manifest.yaml` plus `mappings/*.yaml`) and every check that
//! can run offline, each problem with its file and line.

use std::collections::BTreeSet;
use std::path::Path;

use plugboard_mapping::spec::CompiledSpec;

use super::types::*;
use super::{CATEGORIES, ENTITIES, MANIFEST_VERSION};
use crate::template;

/// One thing wrong with a connector folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    /// 1-based; 0 when the problem has no single line.
    pub line: u32,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// A connector folder that passed every check.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub manifest: Manifest,
    /// Mapping spec files: (file name, YAML).
    pub mappings: Vec<(String, String)>,
}

/// Reads and checks `dir/manifest.yaml` and `dir/mappings/*.yaml`.
pub fn load(dir: &Path) -> Result<Loaded, Vec<Problem>> {
    load_with(dir, true)
}

/// As [`load`], but reads the mapping specs without compiling them: for serving, where the
/// mapping service compiles them and `check` already has (compiling jq specs costs a serving
/// process memory it keeps).
pub fn load_for_serving(dir: &Path) -> Result<Loaded, Vec<Problem>> {
    load_with(dir, false)
}

fn load_with(dir: &Path, compile_mappings: bool) -> Result<Loaded, Vec<Problem>> {
    let manifest_path = dir.join("manifest.yaml");
    let file = manifest_path.display().to_string();
    let yaml = std::fs::read_to_string(&manifest_path).map_err(|e| {
        vec![Problem {
            file: file.clone(),
            line: 0,
            message: format!("cannot read the manifest: {e}"),
        }]
    })?;
    let mut mappings = Vec::new();
    let mut problems = Vec::new();
    let mapping_dir = dir.join("mappings");
    if let Ok(entries) = std::fs::read_dir(&mapping_dir) {
        let mut paths: Vec<_> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
            .collect();
        paths.sort();
        for path in paths {
            let name = path
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            match std::fs::read_to_string(&path) {
                Ok(text) => mappings.push((name, text)),
                Err(e) => problems.push(Problem {
                    file: path.display().to_string(),
                    line: 0,
                    message: format!("cannot read: {e}"),
                }),
            }
        }
    }
    if !problems.is_empty() {
        if let Err(found) = load_str(&file, &yaml) {
            problems.extend(found);
        }
        return Err(problems);
    }
    check_texts(
        &file,
        &yaml,
        &mapping_dir.display().to_string(),
        mappings,
        compile_mappings,
    )
}

/// A connector folder compiled into a binary (`plugboard serve connector-<name>`): the same
/// checks as [`load_for_serving`], on texts instead of files; `folder` names them in problems.
pub fn load_bundled(
    folder: &str,
    manifest_yaml: &str,
    mappings: &[(&str, &str)],
) -> Result<Loaded, Vec<Problem>> {
    let mappings = mappings
        .iter()
        .map(|(name, yaml)| ((*name).to_owned(), (*yaml).to_owned()))
        .collect();
    check_texts(
        &format!("{folder}/manifest.yaml"),
        manifest_yaml,
        &format!("{folder}/mappings"),
        mappings,
        false,
    )
}

fn check_texts(
    file: &str,
    yaml: &str,
    mapping_dir: &str,
    mappings: Vec<(String, String)>,
    compile_mappings: bool,
) -> Result<Loaded, Vec<Problem>> {
    let manifest = load_str(file, yaml)?;
    if !compile_mappings {
        return Ok(Loaded { manifest, mappings });
    }
    let problems = check_mappings(&manifest, file, yaml, mapping_dir, &mappings);
    if problems.is_empty() {
        Ok(Loaded { manifest, mappings })
    } else {
        Err(problems)
    }
}

/// Parses and checks one manifest text; `file` names it in problems.
pub fn load_str(file: &str, yaml: &str) -> Result<Manifest, Vec<Problem>> {
    let manifest: Manifest = serde_yaml_ng::from_str(yaml).map_err(|error| {
        let line = error.location().map_or(0, |l| l.line() as u32);
        vec![Problem {
            file: file.to_owned(),
            line,
            message: error.to_string(),
        }]
    })?;
    let problems = Checker::new(file, yaml).run(&manifest);
    if problems.is_empty() {
        Ok(manifest)
    } else {
        Err(problems)
    }
}

/// 1-based line of the key at `path` (block-style YAML), or of its nearest written ancestor.
pub fn locate(yaml: &str, path: &[&str]) -> u32 {
    let mut depth = 0;
    let mut indent_of_parent: Option<usize> = None;
    let mut best = 0;
    for (index, line) in yaml.lines().enumerate() {
        if depth == path.len() {
            break;
        }
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if let Some(parent) = indent_of_parent
            && indent <= parent
        {
            // Left the section without finding the key.
            break;
        }
        let key = path[depth];
        let is_key = [key.to_owned(), format!("\"{key}\""), format!("'{key}'")]
            .iter()
            .any(|written| {
                trimmed
                    .strip_prefix(written.as_str())
                    .is_some_and(|rest| rest.trim_start().starts_with(':'))
            });
        if is_key {
            best = index as u32 + 1;
            indent_of_parent = Some(indent);
            depth += 1;
        }
    }
    best
}

struct Checker<'a> {
    file: &'a str,
    yaml: &'a str,
    problems: Vec<Problem>,
    /// `step.capture` values earlier login steps captured, readable as `{{ steps.… }}`.
    captured: BTreeSet<String>,
}

impl<'a> Checker<'a> {
    fn new(file: &'a str, yaml: &'a str) -> Checker<'a> {
        Checker {
            file,
            yaml,
            problems: Vec::new(),
            captured: BTreeSet::new(),
        }
    }

    fn problem(&mut self, path: &[&str], message: String) {
        self.problems.push(Problem {
            file: self.file.to_owned(),
            line: locate(self.yaml, path),
            message,
        });
    }

    /// Checks every hole of `text` against the namespaces allowed there.
    fn template(&mut self, path: &[&str], text: &str, allowed: &[&str], manifest: &Manifest) {
        if template::is_unclosed(text) {
            self.problem(path, format!("template {text:?} has a {{{{ without }}}}"));
            return;
        }
        for hole in template::holes(text) {
            let root = hole.split('.').next().unwrap_or_default();
            if !allowed.contains(&root) {
                self.problem(
                    path,
                    format!(
                        "template {{{{ {hole} }}}} reads {root:?}; here a template may read {}",
                        allowed.join(", ")
                    ),
                );
            } else if root == "settings" {
                let name = hole.split('.').nth(1).unwrap_or_default();
                if !manifest.settings.contains_key(name) {
                    self.problem(
                        path,
                        format!("template {{{{ {hole} }}}} reads setting {name:?}, which `settings` does not declare"),
                    );
                }
            } else if root == "steps" {
                let captured = hole.split_once('.').map_or("", |(_, rest)| rest);
                if !self.captured.contains(captured) {
                    self.problem(
                        path,
                        format!(
                            "template {{{{ {hole} }}}} reads no value an earlier login step captures"
                        ),
                    );
                }
            } else if root == "secret" {
                let field = hole.split('.').nth(1).unwrap_or_default();
                const FIELDS: [&str; 6] = [
                    "key",
                    "username",
                    "password",
                    "client_id",
                    "client_secret",
                    "token_url",
                ];
                if !FIELDS.contains(&field) {
                    self.problem(
                        path,
                        format!(
                            "template {{{{ {hole} }}}}: a secret has {}",
                            FIELDS.join(", ")
                        ),
                    );
                }
            }
        }
    }

    fn pointer(&mut self, path: &[&str], pointer: &str, may_be_empty: bool) {
        if (pointer.is_empty() && !may_be_empty)
            || (!pointer.is_empty() && !pointer.starts_with('/'))
        {
            self.problem(
                path,
                format!("{pointer:?} is not a JSON pointer; write it as /field/child"),
            );
        }
    }

    fn entity(&mut self, path: &[&str], entity: &str) {
        if !ENTITIES.contains(&entity) {
            self.problem(
                path,
                format!(
                    "unknown entity {entity:?}; expected {}",
                    ENTITIES.join(", ")
                ),
            );
        }
    }

    fn run(mut self, manifest: &Manifest) -> Vec<Problem> {
        if manifest.manifest_version != MANIFEST_VERSION {
            self.problem(
                &["manifest_version"],
                format!(
                    "unsupported manifest_version {}; this build reads {MANIFEST_VERSION}",
                    manifest.manifest_version
                ),
            );
        }
        let name_ok = !manifest.name.is_empty()
            && manifest
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !name_ok {
            self.problem(
                &["name"],
                format!(
                    "name {:?} must be lowercase letters, digits and hyphens",
                    manifest.name
                ),
            );
        }
        if !CATEGORIES.contains(&manifest.category.as_str()) {
            self.problem(
                &["category"],
                format!(
                    "unknown category {:?}; expected {}",
                    manifest.category,
                    CATEGORIES.join(", ")
                ),
            );
        }
        self.template(&["base_url"], &manifest.base_url, &["settings"], manifest);
        if template::holes(&manifest.base_url).is_empty()
            && !(manifest.base_url.starts_with("https://")
                || manifest.base_url.starts_with("http://"))
        {
            self.problem(
                &["base_url"],
                format!("base_url {:?} must be an http(s) URL", manifest.base_url),
            );
        }
        for (name, value) in &manifest.headers {
            self.template(&["headers", name], value, &["settings"], manifest);
        }
        self.auth(manifest);
        if let Some(limit) = &manifest.rate_limit {
            if limit.requests == 0 || limit.per_seconds == 0 {
                self.problem(
                    &["rate_limit"],
                    "rate_limit.requests and rate_limit.per_seconds must be at least 1".to_owned(),
                );
            }
            if limit.concurrency == Some(0) {
                self.problem(
                    &["rate_limit", "concurrency"],
                    "rate_limit.concurrency must be at least 1".to_owned(),
                );
            }
        }
        if manifest.streams.is_empty() && manifest.documents.is_empty() {
            self.problem(
                &["streams"],
                "a connector needs at least one stream or document".to_owned(),
            );
        }
        if manifest.streams.is_empty() && manifest.check.is_none() {
            // Pointed at the documents: the check that is missing has no line of its own.
            self.problem(
                &["documents"],
                "a connector without streams needs a check request".to_owned(),
            );
        }
        for (name, stream) in &manifest.streams {
            self.stream(manifest, name, stream);
        }
        for (entity, write) in &manifest.writes {
            self.entity(&["writes", entity], entity);
            if write.create.is_none() && write.update.is_none() {
                self.problem(
                    &["writes", entity],
                    format!("write {entity} has neither create nor update"),
                );
            }
            for (operation, spec) in [("create", &write.create), ("update", &write.update)] {
                let Some(spec) = spec else { continue };
                let path = ["writes", entity.as_str(), operation];
                let allowed: &[&str] = if operation == "update" {
                    &["settings", "record", "external_id"]
                } else {
                    &["settings", "record"]
                };
                self.template(&path, &spec.path, allowed, manifest);
                for value in spec.headers.values() {
                    self.template(&path, value, allowed, manifest);
                }
                for text in template::json_strings(&spec.body) {
                    self.template(&path, text, allowed, manifest);
                }
                self.pointer(&path, &spec.id, false);
                match (spec.mapping, spec.body.is_null()) {
                    (true, false) => self.problem(
                        &path,
                        "a write has a body template or `mapping: true`, not both".to_owned(),
                    ),
                    (false, true) => self.problem(
                        &path,
                        "a write needs a body template, or `mapping: true` for the outbound spec"
                            .to_owned(),
                    ),
                    _ => {}
                }
                if spec.format.unwrap_or(manifest.format) == Format::Csv {
                    self.problem(&path, "writes are json or xml, not csv".to_owned());
                }
            }
        }
        for (kind, document) in &manifest.documents {
            self.document(manifest, kind, document);
        }
        if let Some(check) = &manifest.check {
            let allowed = &["settings", "auth"];
            for text in check.headers.values() {
                self.template(&["check"], text, allowed, manifest);
            }
            if check.json.is_some() && check.xml.is_some() {
                self.problem(
                    &["check"],
                    "a check has a json or an xml body, not both".into(),
                );
            }
            for body in check.json.iter().chain(check.xml.iter()) {
                for text in template::json_strings(body) {
                    self.template(&["check"], text, allowed, manifest);
                }
            }
        }
        if let Some(webhooks) = &manifest.webhooks {
            if let Some(pointer) = &webhooks.event_array {
                self.pointer(&["webhooks", "event_array"], pointer, true);
            }
            self.pointer(&["webhooks", "event_type"], &webhooks.event_type, false);
            if let Some(pointer) = &webhooks.event_id {
                self.pointer(&["webhooks", "event_id"], pointer, false);
            }
            if let Some(pointer) = &webhooks.occurred_at {
                self.pointer(&["webhooks", "occurred_at"], pointer, false);
            }
            if let Some(payload) = &webhooks.signature.signed_payload {
                self.template(
                    &["webhooks", "signature", "signed_payload"],
                    payload,
                    &["body", "timestamp"],
                    manifest,
                );
            }
            if webhooks.events.is_empty() {
                self.problem(
                    &["webhooks", "events"],
                    "webhooks need at least one event".to_owned(),
                );
            }
            for (event, spec) in &webhooks.events {
                self.entity(&["webhooks", "events", event], &spec.entity);
                self.pointer(&["webhooks", "events", event], &spec.id, false);
                if let Some(pointer) = &spec.occurred_at {
                    self.pointer(&["webhooks", "events", event], pointer, false);
                }
            }
        }
        self.problems
    }

    fn auth(&mut self, manifest: &Manifest) {
        let allowed = &["settings", "secret"];
        match &manifest.auth {
            Auth::ApiKey { name, value, .. } => {
                if name.trim().is_empty() {
                    self.problem(
                        &["auth", "name"],
                        "auth.name must name the header or query parameter".to_owned(),
                    );
                }
                self.template(&["auth", "value"], value, allowed, manifest);
            }
            Auth::Basic { username, password } => {
                self.template(&["auth", "username"], username, allowed, manifest);
                self.template(&["auth", "password"], password, allowed, manifest);
            }
            Auth::Bearer { token } => self.template(&["auth", "token"], token, allowed, manifest),
            Auth::Oauth2ClientCredentials { token_url, .. } => {
                if let Some(url) = token_url {
                    self.template(&["auth", "token_url"], url, allowed, manifest);
                }
            }
            Auth::Oauth2AuthorizationCode {
                authorize_url,
                token_url,
                ..
            } => {
                self.template(&["auth", "authorize_url"], authorize_url, allowed, manifest);
                if let Some(url) = token_url {
                    self.template(&["auth", "token_url"], url, allowed, manifest);
                }
            }
            Auth::Login {
                request,
                steps,
                token,
                base_url,
                apply,
            } => {
                if request.is_some() != steps.is_empty() {
                    self.problem(
                        &["auth"],
                        "a login needs exactly one of request or steps".to_owned(),
                    );
                }
                self.login_steps(manifest);
                self.pointer(&["auth", "token"], token, false);
                if let Some(pointer) = base_url {
                    self.pointer(&["auth", "base_url"], pointer, false);
                }
                if apply.header.is_none() == apply.query.is_none() {
                    self.problem(
                        &["auth", "apply"],
                        "auth.apply needs exactly one of header or query".to_owned(),
                    );
                }
                self.template(&["auth", "apply"], &apply.value, &["session"], manifest);
            }
            Auth::Mtls { .. } => {}
        }
    }

    fn document(&mut self, manifest: &Manifest, kind: &str, document: &Document) {
        let path = ["documents", kind];
        if document.entities.is_empty() {
            self.problem(&path, format!("document {kind} maps to no entity"));
        }
        for entity in &document.entities {
            self.entity(&path, entity);
        }
        let upload = &document.upload;
        let allowed = &["settings", "document", "auth"];
        self.template(&path, &upload.path, allowed, manifest);
        for value in upload.headers.values() {
            self.template(&path, value, allowed, manifest);
        }
        match (&upload.multipart, &upload.json, &upload.xml) {
            (Some(multipart), None, None) => {
                for value in multipart.fields.values() {
                    self.template(&path, value, allowed, manifest);
                }
            }
            (None, Some(body), None) | (None, None, Some(body)) => {
                for text in template::json_strings(body) {
                    self.template(&path, text, allowed, manifest);
                }
            }
            _ => self.problem(
                &path,
                format!("document {kind}: the upload needs exactly one of multipart, json or xml"),
            ),
        }
        // `{{ auth.<name> }}` is only there when the api_key goes in the body under that name.
        let body_key = match &manifest.auth {
            crate::manifest::Auth::ApiKey {
                location: crate::manifest::KeyLocation::Body,
                name,
                ..
            } => Some(name.as_str()),
            _ => None,
        };
        let mut texts: Vec<&str> = vec![&upload.path];
        texts.extend(upload.headers.values().map(String::as_str));
        if let Some(body) = upload.json.as_ref().or(upload.xml.as_ref()) {
            texts.extend(template::json_strings(body));
        }
        if let Some(multipart) = &upload.multipart {
            texts.extend(multipart.fields.values().map(String::as_str));
        }
        for text in texts {
            for hole in template::holes(text) {
                if let Some(name) = hole.strip_prefix("auth.")
                    && body_key != Some(name)
                {
                    self.problem(
                        &path,
                        format!(
                            "template {{{{ {hole} }}}} reads a credential the auth does not put \
                             in the body (auth: {{type: api_key, in: body, name: {name}}})"
                        ),
                    );
                }
            }
        }
        if upload.xml.is_some() && document.format == Some(Format::Json) {
            self.problem(
                &path,
                format!("document {kind}: an xml upload is answered in xml; drop format: json"),
            );
        }
        if !upload.id.is_empty() {
            self.pointer(&path, &upload.id, false);
        }
        if let Some(errors) = &upload.errors {
            for pointer in errors.pointer.iter().chain(errors.message.iter()) {
                self.pointer(&path, pointer, false);
            }
            if errors.pointer.is_none() && !errors.codes.is_empty() && upload.xml.is_none() {
                self.problem(
                    &path,
                    format!("document {kind}: errors.codes need errors.pointer to find the code"),
                );
            }
        }
        self.pointer(&path, &document.record, true);
        if let Some(cost) = &document.cost {
            let amount = cost.amount.text();
            let decimal = {
                let (whole, fraction) = amount.split_once('.').unwrap_or((&amount, ""));
                !whole.is_empty()
                    && whole.chars().all(|c| c.is_ascii_digit())
                    && fraction.len() <= 6
                    && fraction.chars().all(|c| c.is_ascii_digit())
            };
            if !decimal {
                self.problem(
                    &path,
                    format!(
                        "document {kind}: cost.amount {amount:?} must be a decimal such as 0.05, \
                         at most 6 places"
                    ),
                );
            }
            if cost.currency.len() != 3 || !cost.currency.chars().all(|c| c.is_ascii_uppercase()) {
                self.problem(
                    &path,
                    format!(
                        "document {kind}: cost.currency {:?} must be an ISO 4217 code such as USD",
                        cost.currency
                    ),
                );
            }
        }
        if let Some(poll) = &document.poll {
            self.template(&path, &poll.path, &["settings", "document_id"], manifest);
            self.pointer(&path, &poll.ready, false);
            if let Some(failed) = &poll.failed {
                self.pointer(&path, failed, false);
            }
            if poll.interval_seconds == 0 || poll.timeout_seconds < poll.interval_seconds {
                self.problem(
                    &path,
                    format!("document {kind}: poll every 1 s or more, within a longer timeout"),
                );
            }
        }
    }

    fn login_steps(&mut self, manifest: &Manifest) {
        let allowed = &["settings", "secret", "steps"];
        let mut names = BTreeSet::new();
        for (index, step) in manifest.auth.login_steps().iter().enumerate() {
            let path = [
                "auth",
                if index == 0 && manifest.auth_has_request() {
                    "request"
                } else {
                    "steps"
                },
            ];
            let name_ok = !step.name.is_empty()
                && step
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !name_ok || !names.insert(step.name.clone()) {
                self.problem(
                    &path,
                    format!(
                        "login step name {:?} must be unique letters, digits and underscores",
                        step.name
                    ),
                );
            }
            for text in step.request.templates() {
                self.template(&path, text, allowed, manifest);
            }
            for (name, capture) in &step.capture {
                match capture {
                    Capture::Pointer(pointer) => self.pointer(&path, pointer, false),
                    Capture::Redirect { redirect_param } if redirect_param.trim().is_empty() => {
                        self.problem(
                            &path,
                            format!("capture {name}: redirect_param names no parameter"),
                        );
                    }
                    Capture::Redirect { .. } => {}
                }
                self.captured.insert(format!("{}.{name}", step.name));
            }
        }
    }

    fn stream(&mut self, manifest: &Manifest, name: &str, stream: &Stream) {
        self.entity(&["streams", name, "entity"], &stream.entity);
        self.template(
            &["streams", name, "path"],
            &stream.path,
            &["settings"],
            manifest,
        );
        for (key, value) in &stream.query {
            self.template(
                &["streams", name, "query", key],
                value,
                &["settings"],
                manifest,
            );
        }
        self.pointer(&["streams", name, "records"], &stream.records, true);
        let format = stream.format.unwrap_or(manifest.format);
        if format == Format::Csv && !stream.records.is_empty() {
            self.problem(
                &["streams", name, "records"],
                "a csv answer is the record list: leave records empty".to_owned(),
            );
        }
        if let Some(size) = stream.pagination.page_size()
            && (size.value == 0 || size.max.is_some_and(|max| max < size.value))
        {
            self.problem(
                &["streams", name, "pagination", "page_size"],
                format!(
                    "page_size.value {} must be at least 1 and at most page_size.max",
                    size.value
                ),
            );
        }
        match &stream.pagination {
            Pagination::NextUrl { next, .. } | Pagination::Cursor { next, .. } => {
                self.pointer(&["streams", name, "pagination", "next"], next, false);
            }
            _ => {}
        }
        if let Some(incremental) = &stream.incremental {
            let path = ["streams", name, "incremental"];
            self.template(&path, &incremental.value, &["cursor"], manifest);
            match crate::checkpoint::CursorFormat::parse(
                &incremental.format,
                incremental.timezone.as_deref(),
            ) {
                Err(message) => self.problem(&path, message),
                Ok(format) => {
                    if let Some(initial) = &incremental.initial
                        && format.read(initial).is_none()
                    {
                        self.problem(
                            &path,
                            format!(
                                "incremental.initial {initial} is not a {} value",
                                incremental.format
                            ),
                        );
                    }
                }
            }
            let offset_paged = matches!(
                stream.pagination,
                Pagination::Offset { .. } | Pagination::StartCount { .. }
            );
            if incremental.keyset && !offset_paged {
                self.problem(
                    &path,
                    "incremental.keyset needs offset or start_count pagination".to_owned(),
                );
            }
        }
        if let Some(crate::manifest::Deletes::Endpoint {
            path: deleted_path,
            records,
            param,
            ..
        }) = &stream.deletes
        {
            let path = ["streams", name, "deletes"];
            self.template(&path, deleted_path, &["settings"], manifest);
            self.pointer(&path, records, true);
            if param.is_some() && stream.incremental.is_none() {
                self.problem(
                    &path,
                    format!("deletes.param needs the stream {name} to be incremental"),
                );
            }
        }
    }
}

/// Mapping specs: each compiles, names this connector, and maps an entity a stream reads;
/// each stream's entity has an inbound spec.
fn check_mappings(
    manifest: &Manifest,
    manifest_file: &str,
    manifest_yaml: &str,
    dir: &str,
    mappings: &[(String, String)],
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut inbound = BTreeSet::new();
    let mut outbound = BTreeSet::new();
    let mut failed = false;
    let stream_entities: BTreeSet<&str> = manifest
        .streams
        .values()
        .map(|s| s.entity.as_str())
        .chain(
            manifest
                .documents
                .values()
                .flat_map(|document| document.entities.iter().map(String::as_str)),
        )
        .collect();
    for (name, yaml) in mappings {
        let file = format!("{dir}/{name}");
        match CompiledSpec::compile(name, yaml) {
            Err(found) => {
                // Its entity is unknown, so no stream is reported as lacking a spec below.
                failed = true;
                problems.extend(found.into_iter().map(|problem| Problem {
                    file: file.clone(),
                    line: problem.line,
                    message: problem.message,
                }));
            }
            Ok(spec) => {
                if spec.connector() != manifest.name {
                    problems.push(Problem {
                        file: file.clone(),
                        line: locate(yaml, &["connector"]),
                        message: format!(
                            "the spec is for connector {:?} but the manifest is {:?}",
                            spec.connector(),
                            manifest.name
                        ),
                    });
                }
                let entity = spec.entity().as_str();
                if spec.direction() == plugboard_mapping::spec::Direction::Inbound {
                    if !stream_entities.contains(entity) {
                        problems.push(Problem {
                            file: file.clone(),
                            line: locate(yaml, &["entity"]),
                            message: format!(
                                "inbound spec for {entity}, but no stream or document of the manifest reads {entity}"
                            ),
                        });
                    }
                    inbound.insert(entity.to_owned());
                } else {
                    outbound.insert(entity.to_owned());
                }
            }
        }
    }
    for (entity, write) in &manifest.writes {
        let mapped = [&write.create, &write.update]
            .into_iter()
            .flatten()
            .any(|operation| operation.mapping);
        if mapped && !outbound.contains(entity.as_str()) && !failed {
            problems.push(Problem {
                file: manifest_file.to_owned(),
                line: locate(manifest_yaml, &["writes", entity]),
                message: format!(
                    "write {entity} takes its body from mapping, but mappings/ has no outbound spec for {entity}"
                ),
            });
        }
    }
    for (kind, document) in &manifest.documents {
        for entity in &document.entities {
            if !inbound.contains(entity) && !failed {
                problems.push(Problem {
                    file: manifest_file.to_owned(),
                    line: locate(manifest_yaml, &["documents", kind, "entities"]),
                    message: format!(
                        "document {kind} maps to {entity} but mappings/ has no inbound spec for it"
                    ),
                });
            }
        }
    }
    for (name, stream) in &manifest.streams {
        if !inbound.contains(&stream.entity) && !failed {
            problems.push(Problem {
                file: manifest_file.to_owned(),
                line: locate(manifest_yaml, &["streams", name, "entity"]),
                message: format!(
                    "stream {name} reads {} but mappings/ has no inbound spec for it",
                    stream.entity
                ),
            });
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_finds_nested_keys_and_falls_back_to_ancestors() {
        let yaml = "name: x\nstreams:\n  jobs:\n    path: /a\n  candidates:\n    # c\n    path: /b\n    entity: candidate\nauth:\n  type: basic\n";
        assert_eq!(locate(yaml, &["name"]), 1);
        assert_eq!(locate(yaml, &["streams", "candidates", "path"]), 7);
        assert_eq!(locate(yaml, &["streams", "jobs", "path"]), 4);
        assert_eq!(locate(yaml, &["streams", "jobs", "entity"]), 3);
        assert_eq!(locate(yaml, &["auth", "type"]), 10);
    }
}
