#!/usr/bin/env bash
# The NAT traversal test: two headless Chromium behind two symmetric NATs (Linux network
# namespaces) call each other through callbox alone, over IPv4 and across address families
# (IPv6-only behind NAT66 to IPv4-only, and IPv6 to IPv6). See tests/nat/README.md.
#
#   sudo bash tests/nat/run.sh            (from the repository root or anywhere)
#
# Needs root (namespaces, iptables), ip, iptables + ip6tables, node + npm, Debian's chromium. Skips (exit 0,
# loudly) only when not root or when this kernel/container cannot create network namespaces;
# anything else missing is a failure. Builds callbox if needed. Always removes every namespace,
# veth, rule and process it made, also on failure or Ctrl-C.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# Unique per run, so a leftover or a parallel run is never touched by our cleanup.
export NAT_PREFIX=${NAT_PREFIX:-cbxnat$$}

skip() {
    echo "=================================================================="
    echo "SKIPPED: NAT traversal test: $*"
    echo "=================================================================="
    exit 0
}
fail() { echo "tests/nat/run.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "needs root for network namespaces and iptables (run it with sudo)"
command -v ip >/dev/null || fail "ip (iproute2) is missing: apt-get install iproute2"
probe_ns=${NAT_PREFIX}-probe
if ! ip netns add "$probe_ns" 2>/dev/null; then
    skip "this machine cannot create network namespaces (ip netns add failed)"
fi
ip netns del "$probe_ns"

command -v iptables >/dev/null || fail "iptables is missing: apt-get install iptables"
command -v ip6tables >/dev/null || fail "ip6tables is missing: apt-get install iptables"
command -v node >/dev/null || fail "node is missing: apt-get install nodejs npm"
command -v npm >/dev/null || fail "npm is missing: apt-get install npm"
chromium=${NAT_CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || fail "$chromium is missing: apt-get install chromium (no browser is ever downloaded)"
export NAT_CHROMIUM=$chromium
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 18 ] || fail "node $node_major is too old (need 18 or later for node --test)"

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # The node test stops its own processes; this is the net for a crash or a timeout: every
    # process still inside our namespaces is stopped by PID, then the namespaces (with their veths
    # and iptables rules) are deleted.
    if [ -n "${test_pid:-}" ] && kill -0 "$test_pid" 2>/dev/null; then
        kill -TERM "$test_pid" 2>/dev/null || true # `timeout` passes it on to node
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$test_pid" 2>/dev/null || break; sleep 0.5; done
        kill -KILL "$test_pid" 2>/dev/null || true
    fi
    bash "$here/netns.sh" down || true
    if [ -n "$(ip netns list | grep "^$NAT_PREFIX-" || true)" ]; then
        echo "tests/nat/run.sh: namespaces left behind: $(ip netns list | grep "^$NAT_PREFIX-")" >&2
        rc=1
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -z "${CALLBOX_BIN:-}" ]; then
    echo "== building callbox"
    (cd "$root" && cargo build --quiet --bin callbox)
    CALLBOX_BIN=$root/target/debug/callbox
fi
[ -x "$CALLBOX_BIN" ] || fail "callbox binary $CALLBOX_BIN is missing"
export CALLBOX_BIN

if [ ! -d "$here/node_modules/playwright-core" ]; then
    echo "== installing playwright-core (the library only; the browser is Debian's chromium)"
    (cd "$here" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi

# The callbox tests drive the page with the web client's own driver (tests/browser/lib), which
# imports playwright-core from tests/browser/node_modules.
browser_dir=$root/tests/browser
if [ -f "$browser_dir/package-lock.json" ] && [ ! -d "$browser_dir/node_modules/playwright-core" ]; then
    echo "== installing the web client driver's node modules (tests/browser)"
    (cd "$browser_dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi

echo "== NAT traversal test (namespaces $NAT_PREFIX-*)"
cd "$here"
# A hard bound on the whole run; each wait inside has its own, shorter one.
# The files run one after the other; each brings up and removes its own stage (netns.sh up / up
# dual) under the same prefix.
timeout --kill-after=10 "${NAT_TEST_TIMEOUT:-420}" \
    node --test --test-concurrency=1 --test-reporter=spec \
    topology.test.mjs traversal.test.mjs dualstack.test.mjs &
test_pid=$!
wait "$test_pid"
