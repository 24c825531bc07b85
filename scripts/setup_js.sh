#!/usr/bin/env bash
# Install what the JS tests (tests/test_js.py, js/) need, idempotently: Node.js and npm, Debian's Chromium
# (the browser test drives it with playwright-core; no browser download), and js/node_modules from the
# committed js/package-lock.json. Each step runs only when its result is missing or out of date.
# ONNXKIT_SKIP_JS_SETUP=1 skips it all (the JS tests then skip and say why).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${ONNXKIT_SKIP_JS_SETUP:-0}" = 1 ] && { echo "setup_js: skipped (ONNXKIT_SKIP_JS_SETUP=1)"; exit 0; }

SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"
missing=()
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v chromium >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup_js: apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  # nodejs from some repositories brings npm itself; install npm only if it is still missing afterwards
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    $(printf '%s\n' "${missing[@]}" | grep -vx npm) >/dev/null
  command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq npm >/dev/null
fi

# npm ci when node_modules does not match the lock file (a stamp holds the lock file's hash)
stamp=js/node_modules/.onnxkit-setup-stamp
want="$(sha256sum js/package-lock.json | cut -d' ' -f1) $(node --version)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup_js: npm ci in js/"
  # onnxruntime-node's install script would fetch CUDA binaries from outside the registry: skip it (CPU is bundled)
  (cd js && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" > "$stamp"
fi
echo "setup_js: node $(node --version), $(chromium --version 2>/dev/null | head -1), js/node_modules ready"
