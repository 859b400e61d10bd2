#!/usr/bin/env bash
# Runs every callbox test, installing what the tests need on a fresh Debian machine:
# Chromium (browser tests), coturn's client tools (TURN interop), iproute2 and iptables (the NAT
# test's network namespaces). Needs root (or sudo) for the installs and the namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v turnutils_uclient >/dev/null || missing+=(coturn)
command -v iptables >/dev/null || missing+=(iptables)
command -v ip >/dev/null || missing+=(iproute2)
command -v node >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing test dependencies: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings

echo "== Rust unit and integration tests (real sockets, real TURN clients, coturn interop)"
cargo build
cargo test

if [ -f tests/browser/run.sh ]; then
  echo "== web client in real Chromium"
  bash tests/browser/run.sh
fi

if [ -f tests/nat/run.sh ]; then
  echo "== NAT traversal through network namespaces"
  as_root bash tests/nat/run.sh
fi
