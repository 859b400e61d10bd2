#!/usr/bin/env bash
# callbox's TURN relay against coturn (Debian's `turnserver`), same load for both: coturn's own
# `turnutils_uclient` with `turnutils_peer` as the echo peer, on loopback, on the same ports,
# one server at a time. Prints coturn | callbox | ratio for server CPU per relayed message
# (on-CPU nanoseconds of all the server's threads, /proc/PID/task/*/schedstat: a row relays
# only a few thousand messages, so 10 ms ticks would quantise it to ~1 µs/msg; a relayed
# message is one datagram crossing
# the relay, so an echoed message counts twice), relayed messages per second (wall time of
# the uclient run, connect included) and loss; then allocations per second and memory per
# allocation (benches/turn_allocs.rs). A few minutes in all.
#   bash bench/turn.sh
#   BENCH_ROWS="udp-ch-50-100 udp-flood" bash bench/turn.sh     # a subset of the matrix
#   BENCH_SERVERS=callbox bash bench/turn.sh                    # one server only
#   CALLBOX_BIN=/path/to/other/callbox bash bench/turn.sh         # another build of callbox
#   BENCH_NO_BUILD=1 bash bench/turn.sh                          # use the binaries as built
# Binaries are looked for under $CARGO_TARGET_DIR (default target/).
set -euo pipefail
cd "$(dirname "$0")/.."

is_root() { [ "$(id -u)" = 0 ]; }
as_root() { if is_root; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "bench/turn.sh: needs root for: $*" >&2; return 1; fi; }
if ! command -v turnserver >/dev/null || ! command -v turnutils_uclient >/dev/null; then
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq coturn
fi
if [ -z "${BENCH_NO_BUILD:-}" ]; then
  cargo build --release --quiet
  cargo build --release --quiet --bench turn_allocs
fi
# Honour the caller's target directory (a worktree builds into its own).
target=${CARGO_TARGET_DIR:-target}
CALLBOX_BIN=${CALLBOX_BIN:-$target/release/callbox}
allocs_bin=$(ls -t "$target"/release/deps/turn_allocs-* | grep -v '\.d$' | head -1)

PORT=${BENCH_TURN_PORT:-34780} PEER_PORT=${BENCH_PEER_PORT:-34800}
RELAY_MIN=50000 RELAY_MAX=59999 SECRET=bench-secret-$RANDOM$RANDOM USER=bench PASS=benchpass
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# name: processes x uclient arguments (-c: no RTCP allocation; -z pacing in ms, 0 = as fast
# as it can). 50 clients are 5 processes of 10 on 127.0.R.11-15: callbox's built-in
# per-address limit on unauthenticated requests (20, then 2/s) would otherwise make the 50
# first Allocates of one address wait, and uclient gives up.
declare -A ROW=(
  [udp-ch-1-100]="1 -m 1 -n 1000 -z 2 -l 100"
  [udp-ch-10-100]="1 -m 10 -n 400 -z 5 -l 100"
  [udp-ch-50-100]="5 -m 10 -n 200 -z 5 -l 100"
  [udp-ch-50-1000]="5 -m 10 -n 200 -z 5 -l 1000"
  [udp-send-50-100]="5 -s -m 10 -n 200 -z 5 -l 100"
  [udp-send-10-1000]="1 -s -m 10 -n 400 -z 5 -l 1000"
  [udp-flood]="1 -m 10 -n 1000 -z 0 -l 100"
  [tcp-ch-10-100]="1 -t -m 10 -n 400 -z 5 -l 100"
  [tcp-ch-50-100]="5 -t -m 10 -n 200 -z 5 -l 100"
  [tcp-flood]="1 -t -m 10 -n 1000 -z 0 -l 100"
)
ORDER="udp-ch-1-100 udp-ch-10-100 udp-ch-50-100 udp-ch-50-1000 udp-send-50-100 udp-send-10-1000 udp-flood tcp-ch-10-100 tcp-ch-50-100 tcp-flood"
ROWS=${BENCH_ROWS:-$ORDER}

# On-CPU ns of every live thread of $1 (a thread that ends mid-row takes its share with it:
# both servers keep their worker threads for the whole run).
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f", s}'; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
wait_port() { for _ in $(seq 50); do ss -Hlun "sport = :$PORT" | grep -q . && return 0; sleep 0.1; done
  echo "bench/turn.sh: nothing listens on $PORT" >&2; return 1; }

start_coturn() {
  turnserver -n --listening-ip=127.0.0.1 --listening-port="$PORT" --relay-ip=127.0.0.1 \
    --min-port=$RELAY_MIN --max-port=$RELAY_MAX --use-auth-secret --static-auth-secret="$SECRET" \
    --realm=bench --no-tls --no-dtls --no-cli --allow-loopback-peers --no-multicast-peers \
    --total-quota=0 --user-quota=0 --log-file=stdout --simple-log --no-stdout-log >/dev/null 2>&1 &
  server=$!
}

start_callbox() {
  cat > "$work/callbox.toml" <<TOML
[server]
public_host = "127.0.0.1"
listen = "127.0.0.1:0"
[tls]
enabled = false
[turn]
realm = "bench"
listen_udp = ["127.0.0.1:$PORT"]
listen_tcp = ["127.0.0.1:$PORT"]
listen_tls = []
on_https_port = false
relay_ips = ["127.0.0.1"]
relay_port_min = $RELAY_MIN
relay_port_max = $RELAY_MAX
allow_peers = ["127.0.0.0/8"]
max_allocations_per_user = 100000
max_allocations_per_ip = 100000
max_allocations = 100000
max_clients = 100000
[[turn.users]]
name = "$USER"
password = "$PASS"
TOML
  CALLBOX_LOG=warn "$CALLBOX_BIN" --config "$work/callbox.toml" >/dev/null 2>&1 &
  server=$!
}

# run_matrix NAME AUTH...: one line per row to $work/NAME.tsv: row, µs/msg, msg/s, loss %.
run_matrix() {
  local name=$1; shift
  "start_$name"; pids+=("$server"); wait_port
  turnutils_peer -L 127.0.0.2 -p "$PEER_PORT" >/dev/null 2>&1 & local peer=$!; pids+=("$peer")
  sleep 0.3
  local r=0
  for row in $ROWS; do
    local t0 w0 t1 w1 procs args up=()
    # Fresh source addresses per row: the allocations of earlier rows live on (uclient does
    # not delete them), and callbox holds at most 64 UDP sessions per client address.
    r=$((r + 1))
    read -r procs args <<<"${ROW[$row]}"
    t0=$(cpu_ns "$server"); w0=$(date +%s.%N)
    for i in $(seq "$procs"); do
      timeout 120 turnutils_uclient -p "$PORT" "$@" -L "127.0.$r.1$i" -e 127.0.0.2 \
        -r "$PEER_PORT" -c $args 127.0.0.1 > "$work/out.$i" 2>&1 &
      up+=($!)
    done
    wait "${up[@]}" || true
    t1=$(cpu_ns "$server"); w1=$(date +%s.%N)
    cat "$work"/out.* | awk -v row="$row" -v dt=$((t1 - t0)) -v w0="$w0" -v w1="$w1" '
      /tot_send_msgs=.*tot_recv_msgs=/ && !/msz=/ { gsub(/[^0-9 =]/, " "); split($0, f, "=");
        split(f[2], s, " "); split(f[3], r, " "); sent += s[1]; msgs += s[1] + r[1] }
      /Total lost packets/ { lost += $6 }
      END { if (msgs == 0) { print row "\tfail\tfail\tfail"; exit }
        printf "%s\t%.2f\t%.0f\t%.2f\n", row, dt / 1000 / msgs, msgs / (w1 - w0),
          100 * lost / sent }' >> "$work/$name.tsv"
    rm -f "$work"/out.*
    echo "  $name $(tail -1 "$work/$name.tsv")" >&2
  done
  "$allocs_bin" "127.0.0.1:$PORT" "$server" "$@" > "$work/$name.allocs" || true
  kill "$peer" "$server"; wait "$peer" "$server" 2>/dev/null || true
}

echo "machine: $(nproc) cores, $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC'), $(turnserver --version 2>/dev/null | head -1 || echo coturn)"
touch "$work/coturn.tsv" "$work/callbox.tsv" "$work/coturn.allocs" "$work/callbox.allocs"
for s in ${BENCH_SERVERS:-coturn callbox}; do
  case $s in
    coturn) run_matrix coturn -W "$SECRET" -u "$USER" ;;
    callbox) run_matrix callbox -u "$USER" -w "$PASS" ;;
  esac
done

printf '\n| %-34s | %10s | %10s | %6s |\n|---|---|---|---|\n' figure coturn callbox ratio
for row in $ROWS; do
  IFS=$'\t' read -r _ cu cm cl < <(grep "^$row"$'\t' "$work/coturn.tsv" || echo "$row - - -")
  IFS=$'\t' read -r _ bu bm bl < <(grep "^$row"$'\t' "$work/callbox.tsv" || echo "$row - - -")
  for fig in "µs CPU/msg:$cu:$bu" "msg/s:$cm:$bm" "loss %:$cl:$bl"; do
    IFS=: read -r what a b <<<"$fig"
    ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { if (a + 0 > 0) printf "%.2f", b / a; else print "-" }')
    printf '| %-34s | %10s | %10s | %6s |\n' "$row $what" "$a" "$b" "$ratio"
  done
done
for fig in "allocs/s" "µs CPU/alloc" "alloc failures" "held allocations" "bytes RSS/alloc"; do
  a=$(awk -F'\t' -v f="$fig" '$1 == f {print $2}' "$work/coturn.allocs")
  b=$(awk -F'\t' -v f="$fig" '$1 == f {print $2}' "$work/callbox.allocs")
  ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { if (a + 0 > 0) printf "%.2f", b / a; else print "-" }')
  printf '| %-34s | %10s | %10s | %6s |\n' "$fig" "${a:--}" "${b:--}" "$ratio"
done
