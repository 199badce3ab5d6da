#!/usr/bin/env bash
# Side-by-side load benchmark: scepd and micromdm's scepserver (Debian package `scep`), same
# load generator (`scepd bench`: a real SCEP client that validates every reply), same machine,
# fresh data directory / depot for every run, RSA-2048 CA on both, POST, AES-128/SHA-256.
#
#   benches/load-vs-micromdm.sh [REQUESTS] [CONCURRENCY LEVELS...]
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

start_scepd() { # key bits
  rm -rf "$WORK/scepd"
  "$BIN" init --data "$WORK/scepd" --key-bits "$1" >/dev/null
  "$BIN" serve --data "$WORK/scepd" --listen "127.0.0.1:$PORT" --static-challenge bench --log-level warn >"$WORK/scepd.log" 2>&1 &
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
bench() { # label concurrency
  "$BIN" bench --url "http://127.0.0.1:$PORT/scep" --challenge bench -n "$N" -c "$2" --server-pid "$PID" --json \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); e=sum(r["errors"].values()); f=sum(r["failures_by_fail_info"].values());
print("| %s | %d | %.0f | %.2f | %.2f | %s | %d | %d | %d |" % (sys.argv[1], r["concurrency"], r["enrollments_per_second"], r["p50_ms"], r["p99_ms"],
 "%.2f" % r["server_cpu_ms_per_enrollment"] if r["server_cpu_ms_per_enrollment"] is not None else "-", f, e, r["duplicate_serials"]))' "$1"
}

echo "| server | C | enrollments/s | p50 ms | p99 ms | server CPU ms/enrollment | FAILURE | errors | duplicate serials |"
echo "|---|---|---|---|---|---|---|---|---|"
for c in $LEVELS; do
  start_scepd 2048; bench "scepd (RSA-2048 CA)" "$c"; stop
  start_micromdm; bench "micromdm scepserver 2.1.0" "$c"; stop
done
for bits in 3072 4096; do
  start_scepd "$bits"; bench "scepd (RSA-$bits CA)" 4; stop
done
