#!/usr/bin/env bash
# Two scepd binaries side by side in one run, for a change's before/after: the same load
# (`scepd bench --floor`, RSA-2048, redb with fsync), alternating A B A B … so that the machine's
# noise falls on both alike. Each run starts a fresh data directory. Besides CPU, it counts what
# does not depend on the machine's load: the server's fdatasync and pwrite64 calls and context
# switches per enrollment (`perf stat`, package linux-perf).
#
#   benches/ab-enroll.sh BIN_A BIN_B [REQUESTS] [ROUNDS] [CONCURRENCY LEVELS...]
#
# Keep the "before" binary first: cp target/release/scepd /tmp/scepd-before, change, rebuild.
# One load generator (`scepd bench`, which also measures the floor) drives both servers: B's,
# or the binary CLIENT_BIN names, so that a change to the generator does not count as the
# server's.
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1 B=$2 N=${3:-2000} ROUNDS=${4:-3}
CLIENT=${CLIENT_BIN:-$B}
shift 4 || shift $#
LEVELS=${*:-4 16}
WORK=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
PORT=$((20000 + RANDOM % 20000))
wait_up() { for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/scep?operation=GetCACaps" >/dev/null && return; sleep 0.1; done; echo "server did not start" >&2; exit 1; }

run() { # label binary concurrency
  rm -rf "$WORK/data"
  "$2" init --data "$WORK/data" >/dev/null
  "$2" serve --data "$WORK/data" --listen "127.0.0.1:$PORT" --static-challenge bench --log-level warn >"$WORK/log" 2>&1 &
  PID=$!; wait_up
  # A warm-up at C = 16 first, so that every thread the counts below follow exists already:
  # `perf stat -p` counts the threads a process has when it attaches.
  "$CLIENT" bench --url "http://127.0.0.1:$PORT/scep" --challenge bench -n 200 -c 16 >/dev/null
  perf stat -e syscalls:sys_enter_fdatasync,syscalls:sys_enter_pwrite64,context-switches -p "$PID" -o "$WORK/counts" 2>/dev/null &
  local counter=$!
  sleep 0.3
  "$CLIENT" bench --url "http://127.0.0.1:$PORT/scep" --challenge bench -n "$N" -c "$3" --server-pid "$PID" \
    --floor "$WORK/data" --json >"$WORK/result.json"
  kill -INT "$counter"; wait "$counter" 2>/dev/null || true
  python3 - "$1" "$N" "$WORK/result.json" "$WORK/counts" <<'PY'
import json, re, sys
label, n, result, counts = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
r = json.load(open(result))
assert not r["errors"] and not r["failures_by_fail_info"], r
count = {}
for line in open(counts):
    m = re.match(r"\s*([\d,]+)\s+(\S+)", line)
    if m:
        count[m.group(2)] = int(m.group(1).replace(",", "")) / n
print("| %s | %d | %.0f | %.2f | %.2f | %.3f | %.2f | %.2f | %.1f | %.1f |" % (
    label, r["concurrency"], r["enrollments_per_second"], r["p99_ms"], r["server_cpu_ms_per_enrollment"],
    r["floor_ms_per_enrollment"], r["cpu_to_floor_ratio"], count["syscalls:sys_enter_fdatasync"],
    count["syscalls:sys_enter_pwrite64"], count["context-switches"]))
PY
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
}

echo "| binary | C | enrollments/s | p99 ms | server CPU ms/enrollment | floor ms | CPU / floor | fdatasync / enrollment | pwrite64 / enrollment | context switches / enrollment |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for c in $LEVELS; do
  for _ in $(seq "$ROUNDS"); do
    run A "$A" "$c"
    run B "$B" "$c"
  done
done
