#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: Python venv for compiler/, Fashion-MNIST,
# Deno (from npm, pinned) and the Deno project's npm dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
DENO_VERSION=2.9.6
REDOCLY_VERSION=2.77.0
export ONNXRUNTIME_NODE_INSTALL=${ONNXRUNTIME_NODE_INSTALL:-skip}  # CPU binaries ship in the package

log() { echo "[setup] $*" >&2; }

# 1. Python (build-time compiler and its tests).
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import torch, onnx, onnxscript, onnxruntime, pytest, diffusers, transformers" 2>/dev/null; then
  log "creating .venv with compiler/requirements.txt"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r compiler/requirements.txt
fi

# 1b. The OpenAPI document's linters (tests/openapi_test.ts): openapi-spec-validator from PyPI.
dev_missing() {
  local installed
  installed=$(.venv/bin/pip freeze 2>/dev/null)
  grep -vE '^\s*(#|$)' compiler/requirements-dev.txt | while read -r req; do
    grep -qixF "$req" <<<"$installed" || echo "$req"
  done
}
if [ -n "$(dev_missing)" ]; then
  log "installing compiler/requirements-dev.txt (openapi-spec-validator)"
  .venv/bin/pip install -q --disable-pip-version-check -r compiler/requirements-dev.txt
fi

# 2. Fashion-MNIST (Debian's dataset-fashion-mnist): installed as root, unpacked into data/ otherwise.
have_data() {
  for d in "${TMDC_DATA_DIR:-}" /usr/share/datasets/fashion-mnist data/fashion-mnist; do
    [ -n "$d" ] && [ -f "$d/t10k-labels-idx1-ubyte.gz" ] && return 0
  done
  return 1
}
if ! have_data; then
  if [ "$(id -u)" = 0 ]; then
    log "installing dataset-fashion-mnist"
    apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null; }
  else
    log "unpacking dataset-fashion-mnist into data/"
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download dataset-fashion-mnist >/dev/null)
    dpkg-deb -x "$tmp"/dataset-fashion-mnist_*.deb "$tmp/x"
    mkdir -p data/fashion-mnist
    cp "$tmp"/x/usr/share/datasets/fashion-mnist/* data/fashion-mnist/
    rm -rf "$tmp"
  fi
fi

# 3. Deno from the npm registry (JSR is unreachable; npm: specifiers only).
if [ ! -x .tools/node_modules/.bin/deno ] || [ "$(.tools/node_modules/.bin/deno --version | head -1 | cut -d' ' -f2)" != "$DENO_VERSION" ]; then
  log "installing deno@$DENO_VERSION from npm"
  mkdir -p .tools
  echo '{"private":true}' > .tools/package.json
  (cd .tools && npm install --no-audit --no-fund --loglevel=error "deno@$DENO_VERSION" >/dev/null)
fi

# 3b. Redocly CLI from npm, beside deno in .tools (after it: a deno reinstall rewrites package.json).
if [ "$(.tools/node_modules/.bin/redocly --version 2>/dev/null)" != "$REDOCLY_VERSION" ]; then
  log "installing @redocly/cli@$REDOCLY_VERSION from npm"
  (cd .tools && npm install --no-audit --no-fund --loglevel=error "@redocly/cli@$REDOCLY_VERSION" >/dev/null)
fi

# 4. The Deno project's npm dependencies (versions pinned in deno.json, locked in deno.lock).
if [ -f deno.json ]; then
  .tools/node_modules/.bin/deno install --quiet --allow-scripts=npm:sharp >/dev/null
fi
