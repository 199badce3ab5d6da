#!/usr/bin/env bash
# Side-by-side load benchmark: scepd and micromdm's scepserver (Debian package `scep`), same
# load generator (`scepd bench`: a real SCEP client that validates every reply), same machine,
# fresh data directory / depot for every run, RSA-2048 CA on both, POST, AES-128/SHA-256.
#
#   benches/load-vs-micromdm.sh [REQUESTS] [CONCURRENCY LEVELS...]
#
# Each scepd row also gives its floor (`scepd bench --floor`: the three private-key operations of
# an enrollment timed with that server's own keys, after the load) and the server's CPU per
# enrollment divided by it. With PG_URL set (e.g. postgres://postgres@127.0.0.1:5432/postgres)
# a row on a scratch PostgreSQL database follows, its CPU counted with PostgreSQL's.
#
# Needs a release build (`cargo build --release`) and `scepserver`. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
shift || true
LEVELS=${*:-1 4 16 64}
BIN=$PWD/target/release/scepd
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 2; }
command -v scepserver >/dev/null || { echo "install micromdm's scepserver: apt-get install scep" >&2; exit 2; }
WORK=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
PORT=$((20000 + RANDOM % 20000))

wait_up() { for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/scep?operation=GetCACaps" >/dev/null && return; sleep 0.1; done; echo "server did not start" >&2; exit 1; }
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }

start_scepd() { # key bits [serve flags...]
  rm -rf "$WORK/scepd"
  "$BIN" init --data "$WORK/scepd" --key-bits "$1" >/dev/null
  shift
  "$BIN" serve --data "$WORK/scepd" --listen "127.0.0.1:$PORT" --static-challenge bench --log-level warn "$@" >"$WORK/scepd.log" 2>&1 &
  PID=$!; wait_up
}
start_micromdm() {
  rm -rf "$WORK/mm"; mkdir -p "$WORK/mm"
  (cd "$WORK/mm" && scepserver ca -init -keySize 2048 >/dev/null 2>&1)
  (cd "$WORK/mm" && exec scepserver -port "$PORT" -challenge bench -depot ./depot >"$WORK/mm.log" 2>&1) &
  PID=$!; wait_up
  # scepserver is started through a subshell: measure the server process itself.
  PID=$(pgrep -f "scepserver -port $PORT" | head -1)
}
# One table row from `scepd bench --json` on stdin; $1 the label, $2 CPU milliseconds spent
# outside the server process during the run (PostgreSQL's), added to the server's.
row() {
  python3 -c 'import json,sys; r=json.load(sys.stdin); e=sum(r["errors"].values()); f=sum(r["failures_by_fail_info"].values())
cpu, floor = r["server_cpu_ms_per_enrollment"], r.get("floor_ms_per_enrollment")
if cpu is not None: cpu += float(sys.argv[2]) / max(r["issued"], 1)
fmt = lambda v: "-" if v is None else "%.2f" % v
print("| %s | %d | %.0f | %.2f | %.2f | %s | %s | %s | %d | %d | %d |" % (sys.argv[1], r["concurrency"], r["enrollments_per_second"], r["p50_ms"], r["p99_ms"],
 fmt(cpu), fmt(floor), fmt(cpu / floor if cpu is not None and floor else None), f, e, r["duplicate_serials"]))' "$1" "${2:-0}"
}
bench() { # concurrency [bench flags...]
  local c=$1; shift
  "$BIN" bench --url "http://127.0.0.1:$PORT/scep" --challenge bench -n "$N" -c "$c" --server-pid "$PID" --json "$@"
}

echo "| server | C | enrollments/s | p50 ms | p99 ms | server CPU ms/enrollment | floor ms | CPU / floor | FAILURE | errors | duplicate serials |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for c in $LEVELS; do
  start_scepd 2048; bench "$c" --floor "$WORK/scepd" | row "scepd (RSA-2048 CA)"; stop
  start_micromdm; bench "$c" | row "micromdm scepserver 2.1.0"; stop
done
for bits in 3072 4096; do
  start_scepd "$bits"; bench 4 --floor "$WORK/scepd" | row "scepd (RSA-$bits CA)"; stop
done
if [ -n "${PG_URL:-}" ]; then
  . benches/pg-scratch.sh
  trap 'cleanup; drop_db' EXIT
  fresh_db
  start_scepd 2048 --store "$DB_URL"
  before=$(pg_cpu_ms)
  out=$(bench 4 --floor "$WORK/scepd")
  echo "$out" | row "scepd on PostgreSQL (RSA-2048 CA; CPU with PostgreSQL's)" $(( $(pg_cpu_ms) - before ))
  stop
fi
