#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (or checks the .deb given as $1) and checks what an
# operator gets: the binary, the unit (which must pass systemd-analyze verify), the config as a
# conffile, the docs, and maintainer scripts that never enable or start the service.
#   bash tests/package/run.sh                 # cargo deb --fast (release build), then check
#   bash tests/package/run.sh path/to/x.deb   # check an existing package
set -euo pipefail
cd "$(dirname "$0")/../.."
fail() { echo "FAIL: $*" >&2; exit 1; }
pass=0
ok() { echo "ok - $*"; pass=$((pass + 1)); }

deb="${1:-}"
if [ -z "$deb" ]; then
    command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
    out=$(mktemp -d)
    # CI passes CALLBOX_DEB_PROFILE=dev to package the debug build it already has (a release
    # build takes minutes on two cores); a real package uses the default release profile.
    cargo deb --fast ${CALLBOX_DEB_PROFILE:+--profile "$CALLBOX_DEB_PROFILE"} -o "$out/" >&2
    deb=$(ls "$out"/callbox_*.deb)
fi
[ -f "$deb" ] || fail "no package at $deb"
work=$(mktemp -d)
trap 'rm -rf "$work" ${out:+"$out"}' EXIT

info=$(dpkg-deb -I "$deb")
grep -q '^ Package: callbox$' <<<"$info" || fail "package name"
dpkg-deb --ctrl-tarfile "$deb" | tar -x -C "$work" ./conffiles
grep -qx '/etc/callbox/config.toml' "$work/conffiles" || fail "config.toml is not a conffile"
ok "control: package callbox, /etc/callbox/config.toml is a conffile"

contents=$(dpkg-deb -c "$deb")
for path in ./usr/bin/callbox ./usr/lib/systemd/system/callbox.service \
    ./etc/callbox/config.toml ./usr/share/doc/callbox/README.md ./usr/share/doc/callbox/docs/turn.md; do
    grep -q " $path\$" <<<"$contents" || fail "missing $path"
done
grep -q '^-rw-r----- .* ./etc/callbox/config.toml$' <<<"$contents" || fail "config.toml not 0640"
ok "contents: binary, unit, config (0640), docs"

mkdir -p "$work/control" "$work/root"
dpkg-deb -e "$deb" "$work/control"
for script in "$work"/control/{postinst,prerm,postrm}; do
    [ -f "$script" ] || continue
    sh -n "$script" || fail "$(basename "$script") is not valid sh"
    if grep -v '^[[:space:]]*#' "$script" |
        grep -Eq 'systemctl (--[a-z-]+ )*(enable|start|restart)|deb-systemd-invoke|deb-systemd-helper'; then
        fail "$(basename "$script") enables or starts the service"
    fi
done
grep -q 'try-restart' "$work/control/postinst" || fail "postinst does not restart a running service on upgrade"
ok "maintainer scripts: valid sh, never enable or start, upgrade uses try-restart"

dpkg-deb -x "$deb" "$work/root"
bin="$work/root/usr/bin/callbox"
"$bin" --version | grep -q '^callbox ' || fail "callbox --version"
if "$bin" check-config "$work/root/etc/callbox/config.toml" 2>"$work/check.err"; then
    fail "the example config passes check-config unedited: the service could start too early"
fi
grep -q 'fullchain.pem' "$work/check.err" || fail "check-config does not name the certificate"
ok "binary runs; the unedited example config is refused (names the certificate)"

unit="$work/root/usr/lib/systemd/system/callbox.service"
grep -q '^ExecStart=/usr/bin/callbox ' "$unit" || fail "unit does not run /usr/bin/callbox"
sed "s#/usr/bin/callbox#$bin#g" "$unit" >"$work/callbox.service"
verify=$(systemd-analyze verify "$work/callbox.service" 2>&1) || fail "verify: $verify"
[ -z "$verify" ] || fail "systemd-analyze verify warns: $verify"
score=$(systemd-analyze security --offline=yes "$work/callbox.service" 2>&1 | tail -1)
ok "unit passes systemd-analyze verify; $score"

echo "$pass passed, 0 failed"
