#!/usr/bin/env bash
# The NAT test's stand-in for "a VPS and two VMs behind two home routers": five network
# namespaces on this machine, so the test needs no network and leaves nothing behind.
#
#   client A (10.1.0.2) -- router A [NAT] 203.0.113.2 --+
#                                                       pub: callbox on 203.0.113.1
#   client B (10.2.0.2) -- router B [NAT] 198.51.100.2 -+    (also 198.51.100.1)
#
# "pub" is both the VPS and the internet between the routers: it forwards between the two
# public links, so the routers' public addresses reach each other and a direct call would be
# possible if the NATs let it through. Each router masquerades with --random-fully (a new random
# public port for every new destination: a symmetric, port-randomising NAT) and lets in only
# replies to what went out. Nothing routes to the private subnets and no namespace has a route
# out of this little world.
#
# A second stage, `up dual`, is the same idea across address families (see dual_up below):
#
#   client A (fd00:a::2, IPv6 only) -- router A [NAT66] 2001:db8:a::2 --+
#   client B (10.2.0.2, IPv4 only)  -- router B [NAT44] 198.51.100.2 ---+ pub: callbox on
#   client C (fd00:c::2, IPv6 only) -- router C [NAT66] 2001:db8:c::2 --+ 203.0.113.1 and
#                                                                          2001:db8:1::1
#
# Usage: netns.sh up [v4|dual]|down|status
#        netns.sh block-udp-turn   drop UDP to port 3478 at both routers (TURN/TCP, TURN/TLS)
#        netns.sh only-tcp PORT    routers forward only TCP to PORT (networks that allow only 443)
#        netns.sh open             undo block-udp-turn / only-tcp
#        netns.sh nat-mode random|preserve
#                                  random: MASQUERADE --random-fully (the default, symmetric);
#                                  preserve: plain MASQUERADE, which keeps the source port, so
#                                  STUN hole punching works (the control that shows the failure
#                                  under "random" is the NAT's doing, not broken routing)
# Names come from NAT_PREFIX (default "cbxnat"), so parallel runs with different prefixes
# do not touch each other. `down` removes only namespaces with that prefix.
set -euo pipefail

P=${NAT_PREFIX:-cbxnat}
PUB=${P}-pub RA=${P}-ra RB=${P}-rb CA=${P}-ca CB=${P}-cb
# Only in the dual stage: a second IPv6-only client behind its own NAT66.
RC=${P}-rc CC=${P}-cc
ALL_NS="$CA $CB $CC $RA $RB $RC $PUB"

PUB_A=203.0.113.1    # callbox's IPv4 address (page, signaling, TURN, relays)
PUB_6=2001:db8:1::1  # callbox's IPv6 address in the dual stage
HOST_NAME=callbox.test # the dual stage's DNS name for both (per-namespace /etc/hosts)
ROUTER_A=203.0.113.2
PUB_B=198.51.100.1
ROUTER_B=198.51.100.2
LAN_A=10.1.0 LAN_B=10.2.0
# The dual stage's IPv6 side: documentation prefixes public, unique-local (fd00::/8) private.
PUB6_A=2001:db8:a ROUTER6_A=2001:db8:a::2 LAN6_A=fd00:a
PUB6_C=2001:db8:c ROUTER6_C=2001:db8:c::2 LAN6_C=fd00:c

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
exists() { ip netns list | grep -qw "^$1"; }

# The routers of the stage that is up, one "namespace firewall-tool lan-network" line each.
routers() {
    if exists "$RC"; then
        printf '%s\n' "$RA ip6tables $LAN6_A::/64" "$RB iptables $LAN_B.0/24" "$RC ip6tables $LAN6_C::/64"
    else
        printf '%s\n' "$RA iptables $LAN_A.0/24" "$RB iptables $LAN_B.0/24"
    fi
}

router() { # router ns, firewall tool (iptables|ip6tables), wan gateway, lan network
    local ns=$1 fw=$2 gw=$3 lan=$4
    if [ "$fw" = ip6tables ]; then
        nsx "$ns" sysctl -qw net.ipv6.conf.all.forwarding=1
        nsx "$ns" ip -6 route add default via "$gw" dev wan
    else
        nsx "$ns" sysctl -qw net.ipv4.ip_forward=1
        nsx "$ns" ip route add default via "$gw" dev wan
    fi
    # NAT66 too: ip6tables MASQUERADE --random-fully makes the same symmetric NAT for IPv6.
    nsx "$ns" "$fw" -t nat -A POSTROUTING -o wan -s "$lan" -j MASQUERADE --random-fully
    nsx "$ns" "$fw" -P FORWARD DROP
    # A chain of its own so block-udp-turn/only-tcp/open can rewrite the outbound policy alone.
    nsx "$ns" "$fw" -N nat-test-out
    nsx "$ns" "$fw" -A FORWARD -i wan -o lan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    nsx "$ns" "$fw" -A FORWARD -i lan -o wan -s "$lan" -j nat-test-out
    nsx "$ns" "$fw" -A nat-test-out -j ACCEPT
    # Nothing from outside may address the router's private side directly.
    nsx "$ns" "$fw" -A INPUT -i wan -d "$lan" -j DROP
    # Unsolicited UDP to the router is dropped before its conntrack entry is confirmed, as home
    # routers do. (Answering it would leave an entry whose tuple makes a later outbound packet
    # to that peer get a different public port even under port-preserving NAT.)
    nsx "$ns" "$fw" -A INPUT -i wan -p udp -m conntrack --ctstate NEW -j DROP
}

addr_add() { # ns dev address: IPv6 with nodad, so it is usable at once, never "tentative"
    case $3 in
        *:*) nsx "$1" ip addr add "$3" dev "$2" nodad ;;
        *) nsx "$1" ip addr add "$3" dev "$2" ;;
    esac
}

link() { # ns_a if_a addr_a ns_b if_b addr_b
    # Temporary names in the root namespace: short (15 characters max) and unlikely to clash.
    local id=$RANDOM$RANDOM
    local tmp_a=nat${id}a tmp_b=nat${id}b
    ip link add "$tmp_a" type veth peer name "$tmp_b"
    ip link set "$tmp_a" netns "$1"
    ip link set "$tmp_b" netns "$4"
    nsx "$1" ip link set "$tmp_a" name "$2"
    nsx "$4" ip link set "$tmp_b" name "$5"
    # No duplicate address detection on the link-local address either (see new_ns).
    nsx "$1" sysctl -qw "net.ipv6.conf.$2.accept_dad=0" 2>/dev/null || true
    nsx "$4" sysctl -qw "net.ipv6.conf.$5.accept_dad=0" 2>/dev/null || true
    addr_add "$1" "$2" "$3"
    addr_add "$4" "$5" "$6"
    nsx "$1" ip link set "$2" up
    nsx "$4" ip link set "$5" up
}

new_ns() { # ns v4|v6
    ip netns add "$1"
    if [ "$2" = v4 ]; then
        # IPv4 only. An IPv6 link-local address finishing duplicate address detection a second
        # after a link comes up is a "network change" to Chromium, which then aborts page loads
        # (net::ERR_NETWORK_CHANGED).
        nsx "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    else
        # IPv6 on, for the same reason without DAD (every address valid the moment it is added)
        # and without router advertisements (routes are static; nothing changes later).
        nsx "$1" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
            net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0
    fi
    nsx "$1" ip link set lo up
}

up() {
    for ns in "$PUB" "$RA" "$RB" "$CA" "$CB"; do new_ns "$ns" v4; done
    link "$PUB" pa "$PUB_A/24" "$RA" wan "$ROUTER_A/24"
    link "$PUB" pb "$PUB_B/24" "$RB" wan "$ROUTER_B/24"
    link "$RA" lan "$LAN_A.1/24" "$CA" eth0 "$LAN_A.2/24"
    link "$RB" lan "$LAN_B.1/24" "$CB" eth0 "$LAN_B.2/24"
    nsx "$PUB" sysctl -qw net.ipv4.ip_forward=1
    router "$RA" iptables "$PUB_A" "$LAN_A.0/24"
    router "$RB" iptables "$PUB_B" "$LAN_B.0/24"
    nsx "$CA" ip route add default via "$LAN_A.1"
    nsx "$CB" ip route add default via "$LAN_B.1"
}

# The dual stage: A and C are IPv6-only networks behind NAT66, B an IPv4-only one behind NAT44,
# callbox dual-stack in pub (its two addresses on pub's loopback, reached through pub's routes).
# A and C have no IPv4 address but loopback's and B none for IPv6 (disabled), so A/C and B share
# no address family: only a relay that takes one family in and the other out joins them.
# The clients find callbox by one name with both addresses, as a DNS name with A and AAAA
# records: `ip netns exec` mounts /etc/netns/NS/hosts over /etc/hosts.
dual_up() {
    for ns in "$PUB" "$RA" "$RC" "$CA" "$CC"; do new_ns "$ns" v6; done
    for ns in "$RB" "$CB"; do new_ns "$ns" v4; done
    addr_add "$PUB" lo "$PUB_A/32"
    addr_add "$PUB" lo "$PUB_6/128"
    link "$PUB" pa "$PUB6_A::1/64" "$RA" wan "$ROUTER6_A/64"
    link "$PUB" pb "$PUB_B/24" "$RB" wan "$ROUTER_B/24"
    link "$PUB" pc "$PUB6_C::1/64" "$RC" wan "$ROUTER6_C/64"
    link "$RA" lan "$LAN6_A::1/64" "$CA" eth0 "$LAN6_A::2/64"
    link "$RB" lan "$LAN_B.1/24" "$CB" eth0 "$LAN_B.2/24"
    link "$RC" lan "$LAN6_C::1/64" "$CC" eth0 "$LAN6_C::2/64"
    nsx "$PUB" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    router "$RA" ip6tables "$PUB6_A::1" "$LAN6_A::/64"
    router "$RB" iptables "$PUB_B" "$LAN_B.0/24"
    router "$RC" ip6tables "$PUB6_C::1" "$LAN6_C::/64"
    nsx "$CA" ip -6 route add default via "$LAN6_A::1"
    nsx "$CB" ip route add default via "$LAN_B.1"
    nsx "$CC" ip -6 route add default via "$LAN6_C::1"
    for ns in "$CA" "$CB" "$CC"; do
        mkdir -p "/etc/netns/$ns"
        # Also as "name." (fully qualified): Chromium resolves STUN/TURN hosts with a trailing dot.
        printf '127.0.0.1 localhost\n::1 localhost\n%s %s %s.\n%s %s %s.\n' \
            "$PUB_6" "$HOST_NAME" "$HOST_NAME" "$PUB_A" "$HOST_NAME" "$HOST_NAME" >"/etc/netns/$ns/hosts"
        # Whatever is not in hosts fails at once (nothing listens on loopback's port 53)
        # instead of timing out towards the machine's real nameserver, which is unreachable here.
        echo 'nameserver 127.0.0.1' >"/etc/netns/$ns/resolv.conf"
    done
    settled
}

# Every IPv6 address is usable (none "tentative", none failed DAD) before any browser starts:
# an address changing state under a running Chromium is a network change that aborts its loads.
settled() {
    local ns left
    for ns in "$PUB" "$RA" "$RC" "$CA" "$CC"; do
        for _ in $(seq 50); do
            left=$(nsx "$ns" ip -6 addr show tentative)
            [ -z "$left" ] && break
            sleep 0.1
        done
        [ -z "$left" ] || { echo "netns.sh: $ns: IPv6 addresses still tentative after 5 s:" >&2; echo "$left" >&2; exit 1; }
        if [ -n "$(nsx "$ns" ip -6 addr show dadfailed)" ]; then
            echo "netns.sh: $ns: an IPv6 address failed duplicate address detection" >&2
            exit 1
        fi
    done
}

outbound() { # replace every router's outbound policy with the given firewall rule arguments
    local ns fw lan rule
    while read -r ns fw lan; do
        nsx "$ns" "$fw" -F nat-test-out
        for rule in "$@"; do
            # shellcheck disable=SC2086 # each rule is a word list on purpose
            nsx "$ns" "$fw" -A nat-test-out $rule
        done
    done < <(routers)
}

nat_mode() {
    local flags=() ns fw lan
    case $1 in random) flags=(--random-fully) ;; preserve) ;; *) echo "nat-mode random|preserve" >&2; exit 2 ;; esac
    while read -r ns fw lan; do
        nsx "$ns" "$fw" -t nat -F POSTROUTING
        nsx "$ns" "$fw" -t nat -A POSTROUTING -o wan -s "$lan" -j MASQUERADE "${flags[@]}"
        # Mappings made under the old rule would outlive it; start from a clean table.
        local family=ipv4
        [ "$fw" = ip6tables ] && family=ipv6
        nsx "$ns" sh -c "command -v conntrack >/dev/null && conntrack -F -f $family 2>/dev/null || true"
    done < <(routers)
}

down() {
    local ns pid
    for ns in $ALL_NS; do
        exists "$ns" || continue
        # Anything still running in our namespaces was started by this test; stop it by PID.
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null || true; done
    done
    for ns in $ALL_NS; do
        # The dual stage's hosts files (the directory is ours: its name carries the prefix).
        rm -rf "/etc/netns/$ns"
        exists "$ns" || continue
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break
            sleep 0.2
        done
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        # Deleting a namespace deletes its veth ends (and so their peers) and its firewall rules.
        ip netns del "$ns"
    done
}

# up and down one at a time: on Ctrl-C both the node test's handler and run.sh's trap take the
# stage down, and two downs at once would race on the same namespaces. (A lock on this script
# itself: nothing to create or clean up.)
serialized() {
    exec 9<"${BASH_SOURCE[0]}"
    flock -w 60 9 || { echo "netns.sh: another up/down held the lock for 60 s" >&2; exit 1; }
    "$@"
}

case ${1:-} in
    up) case ${2:-v4} in v4) serialized up ;; dual) serialized dual_up ;; *) echo "up v4|dual" >&2; exit 2 ;; esac ;;
    down) serialized down ;;
    status) ip netns list | grep "^$P-" || true ;;
    block-udp-turn) outbound "-p udp --dport 3478 -j DROP" "-j ACCEPT" ;;
    only-tcp) outbound "-p tcp --dport ${2:?port} -j ACCEPT" "-j DROP" ;;
    open) outbound "-j ACCEPT" ;;
    nat-mode) nat_mode "${2:-}" ;;
    *) echo "usage: $0 up [v4|dual]|down|status|block-udp-turn|only-tcp PORT|open|nat-mode random|preserve" >&2; exit 2 ;;
esac
