//! The Kubernetes manifests cover the workspace: every overlay under deploy/k8s/overlays,
//! rendered with `kubectl kustomize`, has for every service binary, every `plugboard serve`
//! service and every connector crate a Deployment running it, a Service in front of it and
//! readiness and liveness probes on its serving port; autoscalers where load lands; and network
//! policies that expose only the gateway and let only connectors and the gateway reach
//! credentials.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Binaries that are not one service: the `plugboard` command (what the images run, for every
/// service) and the generic connector runtime, which runs each manifest connector (checked per
/// connector below).
const NOT_A_SERVICE: [&str; 2] = ["plugboard", "plugboard-connector"];
/// Where deploy/docker/Dockerfile ships the manifest connectors' folders.
const CONNECTORS_DIR: &str = "/usr/local/share/plugboard/connectors";
/// `services/connector-*` crates that are the shared kit rather than a partner's connector.
const KIT_CRATES: [&str; 1] = ["connector-runtime"];
/// The simulated partners' binary: deployed (as sandbox-<partner>) only by the dev overlay.
const SANDBOX_BINARY: &str = "plugboard-sandbox";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `plugboard serve`'s services, kebab-cased from `enum Service` as clap does.
fn serve_services() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("services/plugboard/src/serve.rs")).unwrap();
    let body = text
        .split("pub enum Service {")
        .nth(1)
        .and_then(|rest| rest.split('}').next())
        .expect("serve.rs declares `pub enum Service`");
    body.lines()
        .map(str::trim)
        .filter_map(|line| line.strip_suffix(','))
        .filter(|variant| variant.starts_with(|c: char| c.is_ascii_uppercase()))
        .map(|variant| {
            let mut name = String::new();
            for (i, c) in variant.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    name.push('-');
                }
                name.push(c.to_ascii_lowercase());
            }
            name
        })
        .collect()
}

/// Every `[[bin]]` name of the workspace's service crates.
fn service_binaries() -> Vec<String> {
    let mut manifests: Vec<PathBuf> = std::fs::read_dir(root().join("services"))
        .unwrap()
        .map(|entry| entry.unwrap().path().join("Cargo.toml"))
        .collect();
    manifests.push(root().join("gateway/Cargo.toml"));
    let mut bins = Vec::new();
    for manifest in manifests.iter().filter(|path| path.exists()) {
        let text = std::fs::read_to_string(manifest).unwrap();
        for section in text.split("[[bin]]").skip(1) {
            let name = section
                .lines()
                .find_map(|line| line.trim().strip_prefix("name = "))
                .map(|quoted| quoted.trim_matches('"').to_owned())
                .unwrap_or_else(|| panic!("a [[bin]] without a name in {}", manifest.display()));
            bins.push(name);
        }
    }
    bins
}

/// Every connector folder, and whether it is a manifest connector (no Rust crate).
fn connectors() -> BTreeMap<String, bool> {
    std::fs::read_dir(root().join("services"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.starts_with("connector-") && !KIT_CRATES.contains(&name.as_str()))
        .map(|name| {
            let is_manifest = !root()
                .join("services")
                .join(&name)
                .join("Cargo.toml")
                .exists();
            (name, is_manifest)
        })
        .collect()
}

fn overlays() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("deploy/k8s/overlays"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// `kubectl kustomize` of one overlay, as (kind, name) -> object.
fn render(overlay: &str) -> BTreeMap<(String, String), Value> {
    let dir = root().join("deploy/k8s/overlays").join(overlay);
    // tests/run.sh pins kubectl (kustomize v5) and names it here.
    let kubectl = std::env::var("PLUGBOARD_KUBECTL").unwrap_or_else(|_| "kubectl".to_owned());
    let output = Command::new(&kubectl)
        .arg("kustomize")
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {kubectl} (tests/run.sh installs it): {e}"));
    assert!(
        output.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let mut objects = BTreeMap::new();
    // kustomize separates documents with a `---` line; block scalars are indented, so a
    // line that is exactly `---` is always a separator.
    for document in text.split("\n---\n") {
        let value: Value = serde_yaml_ng::from_str(document).unwrap();
        if value.is_null() {
            continue;
        }
        let kind = value["kind"].as_str().unwrap().to_owned();
        let name = value["metadata"]["name"].as_str().unwrap().to_owned();
        objects.insert((kind, name), value);
    }
    objects
}

fn get<'a>(objects: &'a BTreeMap<(String, String), Value>, kind: &str, name: &str) -> &'a Value {
    objects
        .get(&(kind.to_owned(), name.to_owned()))
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// True when `selector` (matchLabels) selects a pod with `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .map(|wanted| wanted.iter().all(|(key, value)| &labels[key] == value))
        .unwrap_or(false)
}

/// Checks the Deployment, Service, probes and disruption budget of one service; a manifest
/// connector runs the generic connector binary on its folder instead of `plugboard serve`.
fn assert_deployed(
    objects: &BTreeMap<(String, String), Value>,
    overlay: &str,
    name: &str,
    manifest_connector: bool,
) {
    let context = format!("{overlay}/{name}");
    let deployment = get(objects, "Deployment", name);
    let pod = &deployment["spec"]["template"];
    assert!(
        selects(
            &deployment["spec"]["selector"]["matchLabels"],
            &pod["metadata"]["labels"]
        ),
        "{context}: the Deployment does not select its own pods"
    );
    let container = &pod["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .map(|args| args.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if manifest_connector {
        assert_eq!(
            container["command"][0], "/usr/local/bin/plugboard-connector",
            "{context}: a manifest connector runs plugboard-connector"
        );
        let config = get(objects, "ConfigMap", &format!("{name}-config"));
        assert_eq!(
            config["data"]["PLUGBOARD_CONNECTOR_DIR"],
            format!("{CONNECTORS_DIR}/{name}"),
            "{context}: connector folder"
        );
    } else {
        assert_eq!(args, ["serve", name], "{context}: container args");
    }
    let port = container["ports"][0]["containerPort"].as_u64().unwrap();
    for probe in ["readinessProbe", "livenessProbe"] {
        let probe_spec = &container[probe];
        let probed_port = probe_spec["grpc"]["port"]
            .as_u64()
            .or_else(|| probe_spec["httpGet"]["port"].as_u64())
            .unwrap_or_else(|| panic!("{context}: no gRPC or HTTP {probe}: {probe_spec}"));
        assert_eq!(probed_port, port, "{context}: {probe} port");
    }
    let uses_grpc = container["ports"][0]["name"] == "grpc";
    if uses_grpc {
        assert!(
            container["readinessProbe"]["grpc"].is_object(),
            "{context}: a gRPC service must be probed on grpc.health.v1"
        );
    } else if name == "gateway" {
        // The gateway's probes ask about the gateway itself, never its backends (`/healthz`):
        // one backend down must not take every gateway out of service or restart them all.
        assert_eq!(
            container["readinessProbe"]["httpGet"]["path"], "/readyz",
            "{context}"
        );
        assert_eq!(
            container["livenessProbe"]["httpGet"]["path"], "/livez",
            "{context}"
        );
        assert_eq!(
            container["startupProbe"]["httpGet"]["path"], "/livez",
            "{context}"
        );
    }
    for config in container["envFrom"].as_array().into_iter().flatten() {
        let config_map = config["configMapRef"]["name"].as_str().unwrap();
        get(objects, "ConfigMap", config_map);
    }

    let service = get(objects, "Service", name);
    assert!(
        selects(&service["spec"]["selector"], &pod["metadata"]["labels"]),
        "{context}: the Service does not select the Deployment's pods"
    );
    assert_eq!(
        service["spec"]["ports"][0]["targetPort"].as_u64(),
        Some(port),
        "{context}: Service targetPort"
    );
    let budget = get(objects, "PodDisruptionBudget", name);
    assert!(
        selects(
            &budget["spec"]["selector"]["matchLabels"],
            &pod["metadata"]["labels"]
        ),
        "{context}: PodDisruptionBudget selector"
    );
    let exposed = service["spec"]["type"].as_str().unwrap_or("ClusterIP");
    assert!(
        name == "gateway" || exposed == "ClusterIP",
        "{context}: only the gateway may be exposed, this Service is {exposed}"
    );
}

/// The secrets a Deployment's pods mount.
fn mounted_secrets(objects: &BTreeMap<(String, String), Value>, name: &str) -> Vec<String> {
    get(objects, "Deployment", name)["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|volume| volume["secret"]["secretName"].as_str().map(str::to_owned))
        .collect()
}

/// Each connector mounts its own identity key and no other connector's; credentials mounts the
/// public keys it checks lease callers with.
fn assert_identity_keys<'a>(
    objects: &BTreeMap<(String, String), Value>,
    overlay: &str,
    connectors: impl Iterator<Item = &'a String>,
) {
    let connectors: Vec<&String> = connectors.collect();
    for connector in &connectors {
        let secrets = mounted_secrets(objects, connector);
        let own = format!("plugboard-{connector}-key");
        assert!(
            secrets.contains(&own),
            "{overlay}/{connector}: does not mount its identity key {own}: {secrets:?}"
        );
        for other in connectors.iter().filter(|other| *other != connector) {
            let theirs = format!("plugboard-{other}-key");
            assert!(
                !secrets.contains(&theirs),
                "{overlay}/{connector} mounts {theirs}"
            );
        }
    }
    let credentials = mounted_secrets(objects, "credentials");
    assert!(
        credentials
            .iter()
            .any(|secret| secret == "plugboard-connector-public-keys"),
        "{overlay}/credentials: no connector public keys: {credentials:?}"
    );
    assert!(
        !credentials
            .iter()
            .any(|secret| secret.ends_with("-key") && secret.starts_with("plugboard-connector-")),
        "{overlay}/credentials mounts a connector's private key"
    );
}

fn assert_autoscaled(objects: &BTreeMap<(String, String), Value>, overlay: &str, name: &str) {
    let hpa = objects
        .values()
        .find(|object| {
            object["kind"] == "HorizontalPodAutoscaler"
                && object["spec"]["scaleTargetRef"]["kind"] == "Deployment"
                && object["spec"]["scaleTargetRef"]["name"] == name
        })
        .unwrap_or_else(|| panic!("{overlay}: no HorizontalPodAutoscaler for {name}"));
    assert!(
        hpa["spec"]["maxReplicas"].as_u64().unwrap() > hpa["spec"]["minReplicas"].as_u64().unwrap()
    );
}

/// The pod labels of every Deployment that has a NetworkPolicy peer matching it, per policy.
fn allowed_callers(objects: &BTreeMap<(String, String), Value>, target: &str) -> BTreeSet<String> {
    let target_labels =
        &get(objects, "Deployment", target)["spec"]["template"]["metadata"]["labels"];
    let mut callers = BTreeSet::new();
    for policy in objects.values().filter(|o| o["kind"] == "NetworkPolicy") {
        if !selects(&policy["spec"]["podSelector"]["matchLabels"], target_labels) {
            continue;
        }
        for rule in policy["spec"]["ingress"].as_array().into_iter().flatten() {
            let Some(peers) = rule["from"].as_array() else {
                callers.insert("*anyone*".to_owned());
                continue;
            };
            for deployment in objects.values().filter(|o| o["kind"] == "Deployment") {
                let labels = &deployment["spec"]["template"]["metadata"]["labels"];
                if peers
                    .iter()
                    .any(|peer| selects(&peer["podSelector"]["matchLabels"], labels))
                {
                    callers.insert(deployment["metadata"]["name"].as_str().unwrap().to_owned());
                }
            }
        }
    }
    callers
}

#[test]
fn every_service_and_connector_is_deployed_with_probes_in_every_overlay() {
    let serve = serve_services();
    let connectors = connectors();
    assert!(
        serve.contains(&"sync".to_owned()),
        "parsed serve.rs: {serve:?}"
    );
    assert!(!connectors.is_empty(), "no connectors found");
    for (connector, is_manifest) in &connectors {
        assert!(
            *is_manifest || serve.contains(connector),
            "connector crate {connector} has no `plugboard serve {connector}`"
        );
    }
    if connectors.values().any(|is_manifest| *is_manifest) {
        // The image must carry the manifest folders where the manifests point.
        let dockerfile = std::fs::read_to_string(root().join("deploy/docker/Dockerfile")).unwrap();
        assert!(
            dockerfile.contains("services/connector-*/") && dockerfile.contains(CONNECTORS_DIR),
            "deploy/docker/Dockerfile does not ship the manifest connectors under {CONNECTORS_DIR}"
        );
    }
    let binaries = service_binaries();
    assert!(
        binaries.contains(&"plugboard-sync".to_owned()),
        "{binaries:?}"
    );

    let overlays = overlays();
    assert!(
        overlays.contains(&"dev".to_owned()) && overlays.contains(&"prod".to_owned()),
        "{overlays:?}"
    );
    for overlay in &overlays {
        let objects = render(overlay);
        let with_sandboxes = overlay == "dev";
        let mut expected: BTreeSet<String> = serve
            .iter()
            .filter(|name| with_sandboxes || !name.starts_with("sandbox-"))
            .cloned()
            .collect();
        expected.extend(connectors.keys().cloned());
        for binary in &binaries {
            if NOT_A_SERVICE.contains(&binary.as_str()) {
                continue;
            }
            if binary == SANDBOX_BINARY {
                if with_sandboxes {
                    assert!(
                        expected.iter().any(|name| name.starts_with("sandbox-")),
                        "{overlay}: no sandbox Deployment"
                    );
                }
                continue;
            }
            let service = binary
                .strip_prefix("plugboard-")
                .unwrap_or_else(|| panic!("binary {binary} is not plugboard-<service>"));
            expected.insert(service.to_owned());
        }
        for name in &expected {
            let manifest_connector = connectors.get(name).copied().unwrap_or(false);
            assert_deployed(&objects, overlay, name, manifest_connector);
        }
        for name in ["sync", "mapping"]
            .into_iter()
            .map(str::to_owned)
            .chain(connectors.keys().cloned())
        {
            assert_autoscaled(&objects, overlay, &name);
        }
        assert_identity_keys(&objects, overlay, connectors.keys());

        // Only the gateway is open to anyone; credentials only to connectors and the gateway.
        for name in &expected {
            let callers = allowed_callers(&objects, name);
            assert!(
                !callers.is_empty(),
                "{overlay}: no NetworkPolicy lets anyone reach {name}"
            );
            if name != "gateway" {
                assert!(
                    !callers.contains("*anyone*"),
                    "{overlay}: {name} is open to anyone"
                );
            }
        }
        let credential_callers = allowed_callers(&objects, "credentials");
        let mut allowed: BTreeSet<String> = connectors.keys().cloned().collect();
        allowed.insert("gateway".to_owned());
        assert!(
            credential_callers.is_subset(&allowed),
            "{overlay}: credentials reachable from {credential_callers:?}, only connectors and the gateway may"
        );
        for connector in connectors.keys() {
            assert!(
                credential_callers.contains(connector),
                "{overlay}: {connector} cannot reach credentials to lease access"
            );
        }
        // Where the overlay brings its own Redis, everything configured to use it may reach it.
        if objects.contains_key(&("Deployment".to_owned(), "redis".to_owned())) {
            let redis_callers = allowed_callers(&objects, "redis");
            for ((kind, name), deployment) in &objects {
                let uses_redis = deployment["spec"]["template"]["spec"]["containers"]
                    .to_string()
                    .contains("\"PLUGBOARD_REDIS_URL\"");
                if kind == "Deployment" && uses_redis {
                    assert!(
                        redis_callers.contains(name),
                        "{overlay}: {name} is given PLUGBOARD_REDIS_URL but cannot reach redis"
                    );
                }
            }
        }
        let open: Vec<&String> = objects
            .iter()
            .filter(|((kind, _), object)| {
                kind == "Service"
                    && matches!(
                        object["spec"]["type"].as_str(),
                        Some("LoadBalancer" | "NodePort")
                    )
            })
            .map(|((_, name), _)| name)
            .collect();
        assert!(
            open.iter().all(|name| *name == "gateway"),
            "{overlay}: exposed Services {open:?}"
        );
        for ((kind, name), ingress) in &objects {
            if kind == "Ingress" {
                let text = ingress["spec"].to_string();
                assert!(
                    text.contains("\"name\":\"gateway\"")
                        && !text.contains("\"name\":\"credentials\""),
                    "{overlay}: Ingress {name} must route to the gateway only: {text}"
                );
            }
        }
    }
}

#[test]
fn committed_manifests_match_the_generator() {
    let output = Command::new("python3")
        .arg(root().join("deploy/k8s/generate.py"))
        .arg("--check")
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
