#!/usr/bin/env bash
# Where an enrollment's server CPU goes: `perf record` (package linux-perf) of a release
# `scepd serve` on a fresh data directory while `scepd bench` enrolls at concurrency C, after a
# warm-up of 200 at C = 16; then `scepd bench --floor` beside it. Loopback only.
#
#   benches/profile-enroll.sh [C] [REQUESTS] [OUT]     (defaults: 4 3000 perf.data)
#   perf report -i perf.data --no-children --sort sym
#
# SCEPD_BIN names another binary than target/release/scepd.
set -euo pipefail
cd "$(dirname "$0")/.."
C=${1:-4} N=${2:-3000} OUT=${3:-perf.data}
BIN=${SCEPD_BIN:-target/release/scepd}
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 2; }
WORK=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
PORT=$((20000 + RANDOM % 20000))
"$BIN" init --data "$WORK/data" >/dev/null
"$BIN" serve --data "$WORK/data" --listen "127.0.0.1:$PORT" --static-challenge bench --log-level warn >"$WORK/log" 2>&1 &
PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/scep?operation=GetCACaps" >/dev/null && break; sleep 0.1; done
"$BIN" bench --url "http://127.0.0.1:$PORT/scep" --challenge bench -n 200 -c 16 >/dev/null
perf record -F 2000 -e cpu-clock --call-graph dwarf,32768 -p "$PID" -o "$OUT" 2>/dev/null &
recorder=$!
sleep 0.5
"$BIN" bench --url "http://127.0.0.1:$PORT/scep" --challenge bench -n "$N" -c "$C" --server-pid "$PID" --floor "$WORK/data"
kill -INT "$recorder"; wait "$recorder" || true
