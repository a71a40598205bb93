#!/usr/bin/env bash
# One-time set-up on a fresh Debian/Ubuntu machine: nats-server from the distribution, then npm ci.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v nats-server >/dev/null 2>&1; then
  echo "installing nats-server (Debian package)…"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq nats-server
fi
nats-server --version

# Debian's Chromium runs the page's browser test (test/e2e/ui-browser.test.ts); the page itself needs no build
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium (Debian package, for the browser test of the page)…"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium
fi

# The package also enables a system service on 127.0.0.1:4222 without JetStream. It may keep
# running: `tidemark up` never uses a server it did not start, and moves to a free port.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nats-server 2>/dev/null; then
  echo "note: the system nats-server service holds port 4222 (without JetStream); \`tidemark up\` will start its own on a free port and print it"
fi

npm ci --no-audit --no-fund
echo "ready: npm start   (or: npx tidemark up; npx tidemark doctor checks the set-up)"
