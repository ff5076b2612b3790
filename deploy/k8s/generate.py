#!/usr/bin/env python3
"""Generates the per-service Kubernetes manifests of deploy/k8s from the workspace.

The services come from `plugboard serve`'s own list (services/plugboard/src/serve.rs, the enum
`Service`, kebab-cased as clap does), cross-checked against the crates:

- core services (credentials, mapping, sync, health, registry, gateway) need the few facts in
  CORE below (port, whom they call, who may call them); a new core service without an entry
  stops the generator;
- every connector folder `services/connector-<name>` becomes its own Deployment, Service,
  ConfigMap, HPA, PodDisruptionBudget and NetworkPolicy from one template, so a new connector
  needs no hand-written manifest: a Rust crate (Cargo.toml) runs as `plugboard serve
  connector-<name>` and must have that `serve` variant; a manifest connector (manifest.yaml, no
  Rust) runs the generic `plugboard-connector` binary on its folder, which the image ships under
  CONNECTORS_DIR;
- sandboxes (`sandbox-<partner>`) are simulated partners: generated into the dev overlay only.

Run `python3 deploy/k8s/generate.py` after adding a service or connector and commit the result;
`--check` (run by tests/run.sh) fails when the committed files differ from what it generates.
Standard library only, so it runs on a fresh machine.
"""

import argparse
import difflib
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SERVE_RS = ROOT / "services" / "plugboard" / "src" / "serve.rs"

IMAGE = "plugboard"
CONNECTOR_PORT = 50061
SANDBOX_PORT = 9101
CONNECTOR_ROLE = "connector"
# Where deploy/docker/Dockerfile puts the manifest connectors' folders.
CONNECTORS_DIR = "/usr/local/share/plugboard/connectors"

# Facts about each core service: port, what it needs, who may call it (NetworkPolicy).
# "callers" names services or roles: "connectors" means every connector pod; "api-clients"
# means platform pods labelled plugboard.dev/api-client=true in any namespace.
CORE = {
    "credentials": {
        "port": 50051,
        "database": True,
        "master_key": True,
        # Single-flight OAuth token refresh across replicas.
        "redis": True,
        # Audit rows wait here, on the pod's own disk, until shipped to the database; an
        # emptyDir outlives a crashed container, so the restarted one ships them.
        "audit_spool": "/var/lib/plugboard/audit-spool",
        # Tells health when a partner refuses a connection's grant, and when it is reconnected.
        "calls": ["health"],
        # LeaseAccess is only for connectors (checked on the signed identity by the service);
        # the gateway manages credentials. Sync has no credentials address at all.
        "callers": ["connectors", "gateway"],
    },
    "mapping": {
        "port": 50052,
        # Tenant mapping overrides live in mapping's own schema.
        "database": True,
        "calls": ["registry"],
        "callers": ["sync", "gateway", "api-clients"],
        "autoscale": True,
    },
    "sync": {
        "port": 50053,
        "database": True,
        "redis": True,
        "calls": ["registry", "mapping", "health"],
        "callers": ["gateway", "api-clients"],
        "autoscale": True,
        # A run stops after its current page commit and releases its lease: give it time.
        "grace_seconds": 60,
    },
    "health": {
        "port": 50054,
        "database": True,
        # Status changes fan out to the WatchStatus streams of every replica.
        "redis": True,
        "calls": [],
        "callers": ["sync", "credentials", "gateway", "api-clients"],
    },
    "registry": {
        "port": 50055,
        "database": True,
        "calls": [],
        "callers": ["connectors", "mapping", "sync", "gateway", "api-clients"],
    },
    "gateway": {
        "port": 8080,
        "http": True,
        "database": True,
        # One webhook delivery budget per connection for all replicas.
        "redis": True,
        "calls": ["credentials", "mapping", "sync", "health", "registry"],
        "callers": ["anyone"],
    },
}


def serve_services():
    """The service names `plugboard serve` accepts, in declaration order."""
    text = SERVE_RS.read_text()
    match = re.search(r"pub enum Service \{(.*?)\}", text, re.S)
    if not match:
        sys.exit(f"cannot find `pub enum Service` in {SERVE_RS}")
    variants = re.findall(r"^\s*([A-Z][A-Za-z0-9]*),", match.group(1), re.M)
    return [re.sub(r"(?<!^)([A-Z])", r"-\1", v).lower() for v in variants]


# Crates named connector-* that are the shared kit, not a partner's connector.
KIT_CRATES = {"connector-runtime"}


def connector_folders():
    """(name, is_manifest) of every connector: a crate, or a manifest folder without Rust."""
    found = []
    for path in sorted((ROOT / "services").glob("connector-*")):
        if path.name in KIT_CRATES:
            continue
        if (path / "Cargo.toml").exists():
            found.append((path.name, False))
        elif (path / "manifest.yaml").exists():
            found.append((path.name, True))
    return found


# ---------------------------------------------------------------- a tiny, deterministic YAML writer

def scalar(value):
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    plain = re.fullmatch(r"[A-Za-z_/][A-Za-z0-9_./-]*", text) and text not in (
        "true", "false", "yes", "no", "on", "off", "null", "y", "n")
    return text if plain else '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def emit(value, indent=0):
    pad = "  " * indent
    lines = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:")
                lines.extend(emit(item, indent + 1 if isinstance(item, dict) else indent))
            elif isinstance(item, dict):
                lines.append(f"{pad}{key}: {{}}")
            elif isinstance(item, list):
                lines.append(f"{pad}{key}: []")
            else:
                lines.append(f"{pad}{key}: {scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            sub = emit(item, indent + 1)
            if isinstance(item, (dict, list)) and item:
                first = sub[0].lstrip()
                lines.append(f"{pad}- {first}")
                lines.extend(sub[1:])
            else:
                lines.append(f"{pad}- {scalar(item) if not isinstance(item, (dict, list)) else ('{}' if isinstance(item, dict) else '[]')}")
    return lines


def document(resources, header):
    out = [f"# {line}" if line else "#" for line in header]
    for resource in resources:
        out.append("---")
        out.extend(emit(resource))
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- resources

def labels(name, component):
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/part-of": "plugboard",
        "app.kubernetes.io/component": component,
    }


def probes(port, http):
    if http:
        # The gateway: ready while its own database answers, alive while it serves HTTP. Not
        # /healthz, which reports every backend: one backend down must not take every gateway
        # out of the load balancer, or restart them all.
        ready = {"httpGet": {"path": "/readyz", "port": port}}
        alive = {"httpGet": {"path": "/livez", "port": port}}
    else:
        # Native gRPC probes ask grpc.health.v1 for the server ("" service); our servers answer
        # NOT_SERVING as soon as they start draining, so the pod leaves the endpoints first.
        ready = alive = {"grpc": {"port": port}}
    readiness = dict(ready, periodSeconds=5, failureThreshold=2, timeoutSeconds=2)
    liveness = dict(alive, periodSeconds=10, failureThreshold=3, timeoutSeconds=2)
    startup = dict(alive, periodSeconds=2, failureThreshold=60, timeoutSeconds=2)
    return {"readinessProbe": readiness, "livenessProbe": liveness, "startupProbe": startup}


def service_resources(name, component, port, config, *, database=False, redis=False,
                      master_key=False, http=False, grace_seconds=30, extra_env=(),
                      extra_labels=None, resources=None, mesh_key=True, extra_volumes=()):
    meta_labels = labels(name, component)
    pod_labels = dict(meta_labels, **(extra_labels or {}))
    selector = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "plugboard"}
    # The drain after SIGTERM must end inside the pod's grace period, which also covers the
    # 5 s preStop pause; 2 s more are left for the exit itself.
    env = [{"name": "PLUGBOARD_SHUTDOWN_GRACE_SECONDS", "value": str(grace_seconds - 7)}]
    env.extend(extra_env)
    if database:
        env.append({"name": "PLUGBOARD_DATABASE_URL",
                    "valueFrom": {"secretKeyRef": {"name": "plugboard-database", "key": "url"}}})
    if redis:
        env.append({"name": "PLUGBOARD_REDIS_URL",
                    "valueFrom": {"secretKeyRef": {"name": "plugboard-redis", "key": "url"}}})
    mounts, volumes = [], []
    if mesh_key:
        mounts.append({"name": "mesh-key", "mountPath": "/var/run/plugboard/mesh", "readOnly": True})
        volumes.append({"name": "mesh-key", "secret": {"secretName": "plugboard-mesh-key",
                                                      "items": [{"key": "mesh.key", "path": "mesh.key"}],
                                                      "defaultMode": 0o440}})
    if master_key:
        mounts.append({"name": "master-key", "mountPath": "/var/run/plugboard/master", "readOnly": True})
        # Every key of the secret: master.key, and previous.key during a rotation (named by
        # PLUGBOARD_MASTER_KEY_PREVIOUS_FILE only then; see deploy/README.md).
        volumes.append({"name": "master-key", "secret": {"secretName": "plugboard-master-key",
                                                        "defaultMode": 0o440}})
    # (volume, mount) pairs a caller adds: a connector's own key, the connectors' public keys.
    for volume, mount in extra_volumes:
        volumes.append(volume)
        mounts.append(mount)
    container = {
        "name": name,
        "image": IMAGE,
        "command": ["/usr/local/bin/plugboard"],
        "args": ["serve", name],
        "ports": [{"name": "http" if http else "grpc", "containerPort": port, "protocol": "TCP"}],
        "envFrom": [{"configMapRef": {"name": f"{name}-config"}}],
    }
    if env:
        container["env"] = env
    container.update(probes(port, http))
    container["resources"] = resources or {
        "requests": {"cpu": "100m", "memory": "64Mi"},
        "limits": {"memory": "256Mi"},
    }
    # Endpoints are removed asynchronously from SIGTERM: keep serving a moment so no caller
    # is sent to a pod that has stopped listening.
    container["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", "5"]}}}
    container["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    if mounts:
        container["volumeMounts"] = mounts
    pod_spec = {
        "terminationGracePeriodSeconds": grace_seconds,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "automountServiceAccountToken": False,
        "containers": [container],
    }
    if volumes:
        pod_spec["volumes"] = volumes
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": meta_labels},
        "spec": {
            "replicas": 2,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": pod_labels}, "spec": pod_spec},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": meta_labels},
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http" if http else "grpc", "port": port, "targetPort": port,
                       "protocol": "TCP", **({} if http else {"appProtocol": "grpc"})}],
        },
    }
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-config", "labels": meta_labels},
        "data": dict(sorted(config.items())),
    }
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "labels": meta_labels},
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
    }
    return deployment, service, configmap, pdb


def hpa(name, component):
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "labels": labels(name, component)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 2,
            "maxReplicas": 10,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}],
            # Scale in slowly: a sync replica that stops hands its runs over, which costs a page.
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
    }


def peer(caller):
    if caller == "connectors":
        return {"podSelector": {"matchLabels": {"plugboard.dev/role": CONNECTOR_ROLE}}}
    if caller == "api-clients":
        return {"namespaceSelector": {}, "podSelector": {"matchLabels": {"plugboard.dev/api-client": "true"}}}
    return {"podSelector": {"matchLabels": {"app.kubernetes.io/name": caller}}}


def network_policy(name, component, port, callers):
    rule = {"ports": [{"protocol": "TCP", "port": port}]}
    if callers != ["anyone"]:
        rule["from"] = [peer(caller) for caller in callers]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "labels": labels(name, component)},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "policyTypes": ["Ingress"],
            "ingress": [rule],
        },
    }


def mesh_config(name, port, calls):
    config = {
        "PLUGBOARD_LISTEN_ADDR": f"0.0.0.0:{port}",
        "PLUGBOARD_MESH_KEY_FILE": "/var/run/plugboard/mesh/mesh.key",
        "PLUGBOARD_LOG": "info",
    }
    for callee in calls:
        config[f"PLUGBOARD_{callee.upper()}_ADDR"] = f"{callee}:{CORE[callee]['port']}"
    return config


def secret_volume(volume, secret, key, path, mount_dir):
    return ({"name": volume, "secret": {"secretName": secret, "items": [{"key": key, "path": path}],
                                        "defaultMode": 0o440}},
            {"name": volume, "mountPath": mount_dir, "readOnly": True})


def core_service(name):
    facts = CORE[name]
    port = facts["port"]
    config = mesh_config(name, port, facts["calls"])
    extra_volumes = []
    if facts.get("master_key"):
        config["PLUGBOARD_MASTER_KEY_FILE"] = "/var/run/plugboard/master/master.key"
        # Leases go only to connectors proving themselves with their own key (deploy/README.md).
        config["PLUGBOARD_CONNECTOR_PUBLIC_KEYS_FILE"] = "/var/run/plugboard/connector-keys/keys"
        # OAuth2 token URLs are tenant-supplied: never to internal addresses (the dev overlay
        # allows them for its in-cluster sandbox).
        config["PLUGBOARD_ALLOW_PRIVATE_TARGETS"] = "false"
        extra_volumes.append(secret_volume("connector-public-keys", "plugboard-connector-public-keys",
                                           "keys", "keys", "/var/run/plugboard/connector-keys"))
    if facts.get("audit_spool"):
        config["PLUGBOARD_AUDIT_SPOOL_DIR"] = facts["audit_spool"]
        extra_volumes.append(({"name": "audit-spool", "emptyDir": {"sizeLimit": "256Mi"}},
                              {"name": "audit-spool", "mountPath": facts["audit_spool"]}))
    component = "gateway" if name == "gateway" else "core"
    resources = list(service_resources(
        name, component, port, config,
        database=facts.get("database", False), redis=facts.get("redis", False),
        master_key=facts.get("master_key", False), http=facts.get("http", False),
        grace_seconds=facts.get("grace_seconds", 30), extra_volumes=extra_volumes,
        extra_labels={"plugboard.dev/api-client": "true"} if name == "gateway" else None))
    if facts.get("autoscale"):
        resources.append(hpa(name, component))
    resources.append(network_policy(name, component, port, facts["callers"]))
    return resources


def connector(name, is_manifest):
    port = CONNECTOR_PORT
    config = mesh_config(name, port, ["registry", "credentials"])
    config["PLUGBOARD_ALLOW_PRIVATE_TARGETS"] = "false"
    # Its own identity key, mounted in this connector's pods only.
    config["PLUGBOARD_CONNECTOR_SIGNING_KEY_FILE"] = "/var/run/plugboard/identity/signing.key"
    identity = secret_volume("identity-key", f"plugboard-{name}-key", "signing.key", "signing.key",
                             "/var/run/plugboard/identity")
    if is_manifest:
        config["PLUGBOARD_CONNECTOR_DIR"] = f"{CONNECTORS_DIR}/{name}"
    # Each replica registers its own pod address, so the registry's instance list is real and
    # sync spreads runs over live replicas.
    extra_env = [
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "PLUGBOARD_ADVERTISE_ADDR", "value": f"$(POD_IP):{port}"},
    ]
    # Redis: every replica spends one request budget per partner account (rate_limit).
    resources = list(service_resources(
        name, "connector", port, config, extra_env=extra_env, redis=True,
        extra_labels={"plugboard.dev/role": CONNECTOR_ROLE}, extra_volumes=[identity]))
    if is_manifest:
        container = resources[0]["spec"]["template"]["spec"]["containers"][0]
        container["command"] = ["/usr/local/bin/plugboard-connector"]
        del container["args"]
    resources.append(hpa(name, "connector"))
    resources.append(network_policy(name, "connector", port, ["sync"]))
    return resources


def sandbox(name):
    config = {"PLUGBOARD_LISTEN_ADDR": f"0.0.0.0:{SANDBOX_PORT}", "PLUGBOARD_LOG": "info"}
    deployment, service, configmap, pdb = service_resources(
        name, "sandbox", SANDBOX_PORT, config, http=True, mesh_key=False)
    deployment["spec"]["replicas"] = 1  # its state lives in memory
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        # The simulated partner has no health route; its admin API answers when it is up.
        container[probe]["httpGet"] = {"path": "/_sandbox/records/JobOrder", "port": SANDBOX_PORT}
    rule = [peer("api-clients"), {"podSelector": {"matchLabels": {"plugboard.dev/role": CONNECTOR_ROLE}}}]
    policy = network_policy(name, "sandbox", SANDBOX_PORT, ["connectors"])
    policy["spec"]["ingress"][0]["from"] = rule
    return [deployment, service, configmap, pdb, policy]


HEADER = [
    "GENERATED by deploy/k8s/generate.py from the workspace; do not edit by hand.",
    "Change the generator (or add the service/connector) and run it again.",
]


def kustomization(resources, comment):
    lines = [f"# {line}" for line in HEADER + [comment]]
    lines += ["apiVersion: kustomize.config.k8s.io/v1beta1", "kind: Kustomization", "resources:"]
    lines += [f"  - {r}" for r in resources]
    return "\n".join(lines) + "\n"


def generate():
    names = serve_services()
    folders = connector_folders()
    served_connectors = [n for n in names if n.startswith("connector-")]
    sandboxes = [n for n in names if n.startswith("sandbox-")]
    core = [n for n in names if n not in served_connectors and n not in sandboxes]
    missing = sorted(n for n, is_manifest in folders if not is_manifest and n not in served_connectors)
    if missing:
        sys.exit(f"connector crates without a `plugboard serve` variant: {missing}")
    connectors = dict(folders)
    unknown = [n for n in core if n not in CORE]
    if unknown:
        sys.exit(f"core services unknown to deploy/k8s/generate.py (add them to CORE): {unknown}")

    files = {}
    for name in core:
        files[f"base/services/{name}.yaml"] = document(core_service(name), HEADER)
    for name, is_manifest in connectors.items():
        files[f"base/connectors/{name}.yaml"] = document(connector(name, is_manifest), HEADER)
    for name in sandboxes:
        files[f"overlays/dev/sandboxes/{name}.yaml"] = document(sandbox(name), HEADER)
    files["base/services/kustomization.yaml"] = kustomization(
        [f"{n}.yaml" for n in core], "The core services and the gateway.")
    files["base/connectors/kustomization.yaml"] = kustomization(
        [f"{n}.yaml" for n in connectors], "One Deployment per connector (services/connector-*).")
    files["overlays/dev/sandboxes/kustomization.yaml"] = kustomization(
        [f"{n}.yaml" for n in sandboxes], "Simulated partners, for the dev overlay only.")
    return files


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed output is stale")
    args = parser.parse_args()
    files = generate()
    generated_dirs = [K8S / "base" / "services", K8S / "base" / "connectors", K8S / "overlays" / "dev" / "sandboxes"]
    on_disk = {str(p.relative_to(K8S)): p.read_text() for d in generated_dirs if d.exists() for p in d.glob("*.yaml")}
    if args.check:
        stale = []
        for path in sorted(set(files) | set(on_disk)):
            if files.get(path) != on_disk.get(path):
                stale.append(path)
                diff = difflib.unified_diff(on_disk.get(path, "").splitlines(), files.get(path, "").splitlines(),
                                            f"committed/{path}", f"generated/{path}", lineterm="")
                print("\n".join(list(diff)[:40]))
        if stale:
            sys.exit(f"deploy/k8s is stale ({', '.join(stale)}): run python3 deploy/k8s/generate.py and commit")
        print(f"deploy/k8s is up to date ({len(files)} generated files)")
        return
    for path in set(on_disk) - set(files):
        (K8S / path).unlink()
    for path, text in files.items():
        target = K8S / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    print(f"wrote {len(files)} files under deploy/k8s")


if __name__ == "__main__":
    main()
