#!/usr/bin/env bash
# callbox's signaling relay against the Spanish seed tutorial's Node server, same load for both
# (benches/signaling_vs_node.rs). Installs the `ws` npm package into bench/.node (git-ignored),
# writes the tutorial's server exactly as given (only its port is replaced, here, at run time),
# raises the open-file limit for 10,000 connections, and prints callbox | Node | ratio.
#   bash bench/signaling.sh                  # n = 100, 1000, 10000
#   BENCH_SIZES=1000 bash bench/signaling.sh
#   BENCH_IDLE_ONLY=1 BENCH_SIZES=1000 bash bench/signaling.sh  # login + idle memory only
#   CALLBOX_BIN=/path/to/other/callbox bash bench/signaling.sh  # another build of callbox
#   BENCH_NODE=0 bash bench/signaling.sh                         # callbox only
# CARGO_TARGET_DIR is honoured as cargo honours it.
set -euo pipefail
cd "$(dirname "$0")/.."
seed=$(ls /work/shared/seeds/001_*.txt 2>/dev/null | head -1 || true)
seed=${SEED_001:-$seed}
node_dir=bench/.node
mkdir -p "$node_dir"
if [ ! -d "$node_dir/node_modules/ws" ]; then
  npm install --silent --prefix "$node_dir" ws@8 >/dev/null
fi
# The tutorial's complete server: from the line after "El siguiente es el código completo de
# nuestro servidor de señalización:" to the end of sendTo().
awk '/código completo de nuestro servidor de señalización/ {on=1; next}
     on {print} on && /^function sendTo/ {f=1} f && /^}/ {exit}' "$seed" \
  | sed 's/port: 9090/port: Number(process.env.PORT)/' > "$node_dir/server.js"
grep -q "process.env.PORT" "$node_dir/server.js"
# 10,000 clients on each side: raise the soft limit as far as the hard one allows.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
export NODE_SERVER="$PWD/$node_dir/server.js" NODE_PATH="$PWD/$node_dir/node_modules"
# Without NODE_SERVER the bench leaves the Node column empty.
if [ "${BENCH_NODE:-1}" = 0 ]; then unset NODE_SERVER; fi
echo "machine: $(nproc) cores, $(uname -r), $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "callbox: ${CALLBOX_BIN:-the build of this tree} ($(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
cargo bench --bench signaling_vs_node
