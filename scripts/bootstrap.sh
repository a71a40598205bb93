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

npm ci --no-audit --no-fund
echo "ready: npm start   (or: npx tidemark up)"
