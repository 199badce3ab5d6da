#!/usr/bin/env bash
# Enrollment cost on a filled store against an empty one, measured alternately in one run (the
# single pair in benches/scale.sh moves by ±20 % on a shared machine). One store is filled with
# N certificates (M revoked) by the first binary; then, ROUNDS times, each binary enrolls 1,000
# times at C = 4 on a fresh empty store and on the filled one, and its peak RSS is read.
#
#   benches/scale-ab.sh BIN_A BIN_B [N] [M] [ROUNDS]    (defaults 1000000 100000 3; ~4 GB disk)
#
# Loopback only. Use one binary twice to compare empty and full alone. One load generator
# (`scepd bench`) drives both servers: B's, or the binary CLIENT_BIN names.
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1 B=$2 N=${3:-1000000} M=${4:-100000} ROUNDS=${5:-3}
CLIENT=${CLIENT_BIN:-$B}
WORK=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT=$((20000 + RANDOM % 20000))
"$A" init --data "$WORK/full" >/dev/null
"$A" bench-fill --data "$WORK/full" --certificates "$N" --revoked "$M" >/dev/null 2>&1
run() { # label binary data-directory
  "$2" serve --data "$3" --listen "127.0.0.1:$PORT" --static-challenge bench --log-level warn >"$WORK/log" 2>&1 &
  PID=$!
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  # Let start-up work (the first scan for the certificate gauges) finish before timing anything.
  sleep 8
  local result
  result=$("$CLIENT" bench --url "http://127.0.0.1:$PORT/scep" --challenge bench -n 1000 -c 4 --server-pid "$PID" --json \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.0f | %.2f" % (r["enrollments_per_second"], r["server_cpu_ms_per_enrollment"]))')
  echo "| $1 | $result | $(awk '/VmHWM/{print int($2/1024)}' "/proc/$PID/status") |"
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
}
echo "| binary, store | enrollments/s | server CPU ms/enrollment | peak RSS MB |"
echo "|---|---|---|---|"
for _ in $(seq "$ROUNDS"); do
  for label in A B; do
    bin=${!label}
    rm -rf "$WORK/empty"; "$bin" init --data "$WORK/empty" >/dev/null
    run "$label, empty" "$bin" "$WORK/empty"
    run "$label, $N certificates" "$bin" "$WORK/full"
  done
done
