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
# Usage: netns.sh up|down|status
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

PUB_A=203.0.113.1    # callbox's address (page, signaling, TURN, relays)
ROUTER_A=203.0.113.2
PUB_B=198.51.100.1
ROUTER_B=198.51.100.2
LAN_A=10.1.0 LAN_B=10.2.0

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

router() { # router ns, wan gateway, lan prefix
    local ns=$1 gw=$2 lan=$3
    nsx "$ns" sysctl -qw net.ipv4.ip_forward=1
    nsx "$ns" ip route add default via "$gw" dev wan
    nsx "$ns" iptables -t nat -A POSTROUTING -o wan -s "$lan.0/24" -j MASQUERADE --random-fully
    nsx "$ns" iptables -P FORWARD DROP
    # A chain of its own so block-udp-turn/only-tcp/open can rewrite the outbound policy alone.
    nsx "$ns" iptables -N nat-test-out
    nsx "$ns" iptables -A FORWARD -i wan -o lan -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    nsx "$ns" iptables -A FORWARD -i lan -o wan -s "$lan.0/24" -j nat-test-out
    nsx "$ns" iptables -A nat-test-out -j ACCEPT
    # Nothing from outside may address the router's private side directly.
    nsx "$ns" iptables -A INPUT -i wan -d "$lan.0/24" -j DROP
    # Unsolicited UDP to the router is dropped before its conntrack entry is confirmed, as home
    # routers do. (Answering it would leave an entry whose tuple makes a later outbound packet
    # to that peer get a different public port even under port-preserving NAT.)
    nsx "$ns" iptables -A INPUT -i wan -p udp -m conntrack --ctstate NEW -j DROP
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
    nsx "$1" ip addr add "$3" dev "$2"
    nsx "$4" ip addr add "$6" dev "$5"
    nsx "$1" ip link set "$2" up
    nsx "$4" ip link set "$5" up
}

up() {
    for ns in "$PUB" "$RA" "$RB" "$CA" "$CB"; do
        ip netns add "$ns"
        # IPv4 only. An IPv6 link-local address finishing duplicate address detection a second
        # after a link comes up is a "network change" to Chromium, which then aborts page loads
        # (net::ERR_NETWORK_CHANGED).
        nsx "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        nsx "$ns" ip link set lo up
    done
    link "$PUB" pa "$PUB_A/24" "$RA" wan "$ROUTER_A/24"
    link "$PUB" pb "$PUB_B/24" "$RB" wan "$ROUTER_B/24"
    link "$RA" lan "$LAN_A.1/24" "$CA" eth0 "$LAN_A.2/24"
    link "$RB" lan "$LAN_B.1/24" "$CB" eth0 "$LAN_B.2/24"
    nsx "$PUB" sysctl -qw net.ipv4.ip_forward=1
    router "$RA" "$PUB_A" "$LAN_A"
    router "$RB" "$PUB_B" "$LAN_B"
    nsx "$CA" ip route add default via "$LAN_A.1"
    nsx "$CB" ip route add default via "$LAN_B.1"
}

outbound() { # replace both routers' outbound policy with the given iptables rule arguments
    for ns in "$RA" "$RB"; do
        nsx "$ns" iptables -F nat-test-out
        local rule
        for rule in "$@"; do
            # shellcheck disable=SC2086 # each rule is a word list on purpose
            nsx "$ns" iptables -A nat-test-out $rule
        done
    done
}

nat_mode() {
    local flags=()
    case $1 in random) flags=(--random-fully) ;; preserve) ;; *) echo "nat-mode random|preserve" >&2; exit 2 ;; esac
    nsx "$RA" iptables -t nat -F POSTROUTING
    nsx "$RB" iptables -t nat -F POSTROUTING
    nsx "$RA" iptables -t nat -A POSTROUTING -o wan -s "$LAN_A.0/24" -j MASQUERADE "${flags[@]}"
    nsx "$RB" iptables -t nat -A POSTROUTING -o wan -s "$LAN_B.0/24" -j MASQUERADE "${flags[@]}"
    # Mappings made under the old rule would outlive it; start from a clean table.
    nsx "$RA" sh -c 'command -v conntrack >/dev/null && conntrack -F 2>/dev/null || true'
    nsx "$RB" sh -c 'command -v conntrack >/dev/null && conntrack -F 2>/dev/null || true'
}

down() {
    local ns pid
    for ns in "$CA" "$CB" "$RA" "$RB" "$PUB"; do
        ip netns list | grep -qw "^$ns" || continue
        # Anything still running in our namespaces was started by this test; stop it by PID.
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null || true; done
    done
    for ns in "$CA" "$CB" "$RA" "$RB" "$PUB"; do
        ip netns list | grep -qw "^$ns" || continue
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break
            sleep 0.2
        done
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
        # Deleting a namespace deletes its veth ends (and so their peers) and its iptables rules.
        ip netns del "$ns"
    done
}

case ${1:-} in
    up) up ;;
    down) down ;;
    status) ip netns list | grep "^$P-" || true ;;
    block-udp-turn) outbound "-p udp --dport 3478 -j DROP" "-j ACCEPT" ;;
    only-tcp) outbound "-p tcp --dport ${2:?port} -j ACCEPT" "-j DROP" ;;
    open) outbound "-j ACCEPT" ;;
    nat-mode) nat_mode "${2:-}" ;;
    *) echo "usage: $0 up|down|status|block-udp-turn|only-tcp PORT|open|nat-mode random|preserve" >&2; exit 2 ;;
esac
