#!/bin/sh
# Playwright's "browser executable" for the NAT test: Debian's Chromium started inside the
# network namespace named by NAT_NETNS (a client behind one of the test's NATs). Playwright
# talks to it over a pipe, so it needs no network path to the test runner.
[ -n "$NAT_NETNS" ] || { echo "chromium-in-netns.sh: NAT_NETNS is not set" >&2; exit 2; }
# exec keeps the PID: what we write here is the browser process itself.
[ -z "$NAT_PIDFILE" ] || echo $$ > "$NAT_PIDFILE"
exec ip netns exec "$NAT_NETNS" "${NAT_CHROMIUM:-/usr/bin/chromium}" "$@"
