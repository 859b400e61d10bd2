#!/usr/bin/env bash
# Runs every callbox test, first installing (Debian packages) whatever the tests need and this
# machine lacks. The same command works as root (CI, containers: no sudo there) and as a user
# with sudo; the installs and the NAT test's network namespaces are the only steps needing root.
#
#   ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# What the tests need: "command package" pairs, one per line. A missing command installs its
# package. To add a dependency, add a line.
NEEDS="
chromium           chromium
firefox-esr        firefox-esr
turnutils_uclient  coturn
iptables           iptables
ip                 iproute2
unshare            util-linux
node               nodejs
npm                npm
systemd-analyze    systemd
dpkg-deb           dpkg
pebble             pebble
redis-server       redis-server
"

is_root() { [ "$(id -u)" -eq 0 ]; }

# Runs "$@" as root: directly when we are root, through sudo when it exists, else fails saying so.
as_root() {
  if is_root; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    echo "scripts/test.sh: needs root for: $*  (run as root, or install sudo)" >&2
    return 1
  fi
}

missing=()
while read -r cmd pkg; do
  [ -n "$cmd" ] || continue
  command -v "$cmd" >/dev/null || missing+=("$pkg")
done <<<"$NEEDS"
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
  echo "== web client in real Chromium and Firefox"
  bash tests/browser/run.sh
fi

echo "== Debian package (cargo-deb): contents, conffile, maintainer scripts, unit verifies"
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
CALLBOX_DEB_PROFILE=dev bash tests/package/run.sh

if [ -f tests/nat/run.sh ]; then
  echo "== NAT traversal through network namespaces"
  # Without root or sudo the NAT test skips loudly by itself.
  if is_root || ! command -v sudo >/dev/null; then
    bash tests/nat/run.sh
  else
    sudo bash tests/nat/run.sh
  fi
fi
