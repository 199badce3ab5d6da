#!/usr/bin/env bash
# Scale-out benchmark: enrollment throughput and CPU per enrollment with the embedded redb store
# (one node), and on PostgreSQL with one and with two nodes, side by side in one run on this
# machine. The load generator is `scepd bench` (a real SCEP client validating every reply);
# with two nodes, two of them run at once, each against its node with half the load.
# CPU is counted from /proc: the scepd node(s), and PostgreSQL's processes for the PostgreSQL
# runs (what a request costs the cluster as a whole).
#
#   benches/scale-out.sh POSTGRES_URL [REQUESTS] [CONCURRENCY]
#
# POSTGRES_URL names a server the script may create and drop a database on, e.g.
# postgres://postgres@127.0.0.1:5432/test. Needs a release build (`cargo build --release`).
set -euo pipefail
cd "$(dirname "$0")/.."
PG_URL=${1:?usage: benches/scale-out.sh POSTGRES_URL [REQUESTS] [CONCURRENCY]}
N=${2:-2000}
C=${3:-8}
BIN=$PWD/target/release/scepd
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 2; }
WORK=$(mktemp -d)
. benches/pg-scratch.sh
PIDS=()
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=(); }
cleanup() { stop_all; drop_db; rm -rf "$WORK"; }
trap cleanup EXIT

"$BIN" init --data "$WORK/seed" >/dev/null
# Starts node $1 (more arguments go to `scepd serve`); its port is left in $PORT.
start_node() {
  local i=$1; shift
  rm -rf "$WORK/node$i"; cp -a "$WORK/seed" "$WORK/node$i"; rm -f "$WORK/node$i/scepd.redb"
  PORT=$((20000 + RANDOM % 20000))
  "$BIN" serve --data "$WORK/node$i" --listen "127.0.0.1:$PORT" --static-challenge bench --log-level warn "$@" >"$WORK/node$i.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
}
# One run: $1 label, then the ports of the nodes; the load is split evenly over them.
run() {
  local label=$1; shift
  local ports=("$@") n=$((N / $#)) c=$((C / $#))
  # Warm-up (connections, caches), not counted.
  for i in "${!ports[@]}"; do "$BIN" bench --url "http://127.0.0.1:${ports[$i]}/scep" --challenge bench -n 50 -c 2 >/dev/null; done
  local pg_before; pg_before=$(pg_cpu_ms)
  local start; start=$(date +%s.%N)
  local benches=()
  for i in "${!ports[@]}"; do
    "$BIN" bench --url "http://127.0.0.1:${ports[$i]}/scep" --challenge bench -n "$n" -c "$c" --server-pid "${PIDS[$i]}" --json >"$WORK/r$i.json" &
    benches+=($!)
  done
  wait "${benches[@]}"
  local end; end=$(date +%s.%N)
  local pg_after; pg_after=$(pg_cpu_ms)
  python3 - "$label" "$start" "$end" "$pg_before" "$pg_after" "$WORK"/r*.json <<'PY'
import json, sys
label, start, end, pg0, pg1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
runs = [json.load(open(f)) for f in sys.argv[6:]]
issued = sum(r["issued"] for r in runs)
errors = sum(sum(r["errors"].values()) + sum(r["failures_by_fail_info"].values()) for r in runs)
dups = sum(r["duplicate_serials"] for r in runs)
node_cpu = sum(r["server_cpu_ms_per_enrollment"] * r["issued"] for r in runs) / issued
pg_cpu = (pg1 - pg0) / issued if "PostgreSQL" in label else 0.0
p99 = max(r["p99_ms"] for r in runs)
print("| %s | %d | %.0f | %.1f | %.2f | %.2f | %.2f | %d | %d |" % (label, issued, issued / (end - start), p99, node_cpu, pg_cpu, node_cpu + pg_cpu, errors, dups))
PY
  rm -f "$WORK"/r*.json
}

echo "| store, nodes | enrollments | enrollments/s | p99 ms | scepd CPU ms/enrollment | PostgreSQL CPU ms/enrollment | total CPU ms/enrollment | failures+errors | duplicate serials |"
echo "|---|---|---|---|---|---|---|---|---|"
for round in 1 2; do
  start_node 0; run "redb, 1 node" "$PORT"; stop_all
  fresh_db; start_node 0 --store "$DB_URL"; run "PostgreSQL, 1 node" "$PORT"; stop_all
  fresh_db; start_node 0 --store "$DB_URL"; p0=$PORT; start_node 1 --store "$DB_URL"; run "PostgreSQL, 2 nodes" "$p0" "$PORT"; stop_all
done
