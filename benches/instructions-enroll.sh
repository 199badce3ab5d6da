#!/usr/bin/env bash
# An enrollment's cost in instructions, beside its floor's: a count that does not move with this
# shared machine's load, for steps too small to show through the ±10 % of CPU time
# (`benches/ab-enroll.sh`). Needs valgrind (Debian package `valgrind`).
#
#   benches/instructions-enroll.sh [BIN] [REQUESTS]       (defaults: target/release/scepd 200)
#
# The server runs under `valgrind --tool=callgrind` with counting off; after a warm-up of 20
# enrollments `callgrind_control` turns it on for REQUESTS enrollments at C = 4 and off again,
# so the count is every thread's user-space instructions for those enrollments: HTTP, the
# PKIOperation, the store, the runtime (not the kernel's). The floor is counted the same way
# inside `scepd bench --floor`'s rounds (each: the RA decrypts, the CA signs, the RA signs).
# Valgrind hides AVX-512 from aws-lc, which then takes its AVX2 path for RSA in both counts.
# KEEP=1 leaves the work directory (the callgrind files) in place for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/scepd} N=${2:-200}
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 2; }
WORK=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
PORT=$((20000 + RANDOM % 20000))
URL="http://127.0.0.1:$PORT/scep"
"$BIN" init --data "$WORK/data" >/dev/null
start() { # the command to run the server under, if any
  "$@" "$BIN" serve --data "$WORK/data" --listen "127.0.0.1:$PORT" \
    --static-challenge bench --log-level warn >"$WORK/log" 2>&1 &
  PID=$!
  for _ in $(seq 300); do curl -sf "$URL?operation=GetCACaps" >/dev/null && return; sleep 0.2; done
  echo "server did not start" >&2; exit 1
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }
total() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1 }'; }

start valgrind --tool=callgrind --callgrind-out-file="$WORK/server.out" --instr-atstart=no
"$BIN" bench --url "$URL" --challenge bench -n 20 -c 4 >/dev/null
callgrind_control -i on "$PID" >/dev/null 2>&1
"$BIN" bench --url "$URL" --challenge bench -n "$N" -c 4 --max-seconds 1200 --json >"$WORK/load.json"
callgrind_control -i off "$PID" >/dev/null 2>&1
stop
python3 - "$WORK/load.json" "$N" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["issued"] == int(sys.argv[2]) and not r["errors"] and not r["duplicate_serials"], r
PY
server=$(total "$WORK/server.out")
# The three private-key transforms of those enrollments (aws-lc's RSA with the private exponent).
private=$(callgrind_annotate --inclusive=yes "$WORK/server.out" 2>/dev/null |
  awk '/rsa_private_transform_no_self_test \[/ && !seen++ { gsub(",", "", $1); print $1 }')

# The floor, counted only inside its rounds; the rounds are the calls of the round closure.
start
valgrind --tool=callgrind --callgrind-out-file="$WORK/floor.out" --collect-atstart=no \
  --toggle-collect='scepd::bench::floor::time_operations::*' \
  "$BIN" bench --url "$URL" --challenge bench -n 4 -c 1 --server-pid "$PID" --floor "$WORK/data" --json \
  >/dev/null 2>"$WORK/floor.log"
stop
floor=$(total "$WORK/floor.out")
rounds=$(callgrind_annotate --tree=caller --inclusive=yes "$WORK/floor.out" 2>/dev/null |
  grep -E '< .*scepd::bench::floor::measure \(' | grep -oE '\([0-9]+x\)' | tr -dc '0-9\n' |
  awk '{ n += $1 } END { print n + 0 }')
[ "$rounds" -gt 0 ] || { echo "no floor rounds counted" >&2; exit 1; }

python3 - "$N" "$server" "$private" "$floor" "$rounds" <<'PY'
import sys
n, server, private, floor, rounds = (int(a) for a in sys.argv[1:])
per, floor_per = server / n, floor / rounds
print("| instructions / enrollment | of which the three private-key transforms | floor instructions / round | rounds | server / floor |")
print("|---|---|---|---|---|")
print("| %.2f M | %.2f M | %.2f M | %d | %.3f |" % (per / 1e6, private / n / 1e6, floor_per / 1e6, rounds, per / floor_per))
PY
