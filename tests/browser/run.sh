#!/usr/bin/env bash
# Runs the web client's tests in real Chromium (and Firefox ESR for the cross-browser calls)
# against a real callbox binary.
# Installs node modules from the lockfile if missing, builds callbox (cargo build is a no-op when
# up to date), then runs unit/*.test.js (the page's state machine, no browser) and every
# test/*.test.js with node's test runner, one file at a time (two
# cores: two video calls at once would starve each other).
#
# As root, the tests run in a private network namespace holding only loopback, so WebRTC's host
# candidates and all test traffic stay on 127.0.0.1 (set CALLBOX_BROWSER_NETNS=0 to skip that).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

# The two browsers the tests drive and the Redis the cluster test starts (paths overridable);
# as root a missing one is installed.
for pair in "${CHROMIUM:-/usr/bin/chromium}:chromium" "${FIREFOX:-/usr/bin/firefox-esr}:firefox-esr" \
  "${REDIS_SERVER:-/usr/bin/redis-server}:redis-server"; do
  bin=${pair%:*} pkg=${pair##*:}
  command -v "$bin" >/dev/null && continue
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg"
  else
    echo "tests/browser: $bin not found (install the Debian package $pkg, or run ./scripts/test.sh)" >&2
    exit 1
  fi
done

cd "$here"
if [ ! -f node_modules/playwright-core/package.json ] || [ ! -f node_modules/puppeteer-core/package.json ]; then
  # The drivers only: both use Debian's browsers, never a downloaded one.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund
fi

if [ -z "${CALLBOX_BIN:-}" ]; then
  (cd "$root" && cargo build --quiet)
fi
mkdir -p "$root/test-artifacts"

tests=(unit/*.test.js test/*.test.js)
if [ "$#" -gt 0 ]; then tests=("$@"); fi
run=(node --test)
# One file at a time where the runner can be told so (Node >= 20.10; older ones already run
# one file per spare core, which on two cores is one).
if node --help 2>/dev/null | grep -q -- --test-concurrency; then run+=(--test-concurrency=1); fi
run+=("${tests[@]}")

if [ "$(id -u)" -eq 0 ] && [ "${CALLBOX_BROWSER_NETNS:-1}" != 0 ] && unshare --net -- true 2>/dev/null; then
  exec unshare --net -- sh -c 'ip link set lo up && exec "$@"' sh "${run[@]}"
fi
echo "tests/browser: running without a private network namespace (not root, or unshare unavailable)" >&2
exec "${run[@]}"
