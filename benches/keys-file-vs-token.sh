#!/usr/bin/env bash
# Enrollment with the keys in files beside the same with the keys in a SoftHSM2 token, same
# load generator (`scepd bench --floor`: the server's CPU per enrollment and, after the load,
# the three private-key operations timed with the server's own keys), same machine, one run.
#
#   benches/keys-file-vs-token.sh [REQUESTS] [CONCURRENCY LEVELS...]
#
# Needs a release build (`cargo build --release`), softhsm2 and opensc. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
shift || true
LEVELS=${*:-4 16}
BIN=$PWD/target/release/scepd
MODULE=/usr/lib/softhsm/libsofthsm2.so
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 2; }
[ -e "$MODULE" ] || { echo "install SoftHSM2: apt-get install softhsm2" >&2; exit 2; }
WORK=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
PORT=$((20000 + RANDOM % 20000))
export SOFTHSM2_CONF=$WORK/softhsm2.conf
mkdir -p "$WORK/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' "$WORK/tokens" >"$SOFTHSM2_CONF"
softhsm2-util --init-token --free --label bench --pin 123456 --so-pin 654321 >/dev/null
printf '123456\n' >"$WORK/pin"
chmod 600 "$WORK/pin"

wait_up() { for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/scep?operation=GetCACaps" >/dev/null && return; sleep 0.1; done; echo "server did not start" >&2; exit 1; }
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }

start() { # file|token
  rm -rf "$WORK/data"
  if [ "$1" = token ]; then
    "$BIN" init --data "$WORK/data" --pkcs11-module "$MODULE" --pkcs11-token bench --pkcs11-pin-file "$WORK/pin" >/dev/null
  else
    "$BIN" init --data "$WORK/data" >/dev/null
  fi
  "$BIN" serve --data "$WORK/data" --listen "127.0.0.1:$PORT" --static-challenge bench --log-level warn \
    --pkcs11-pin-file "$WORK/pin" >"$WORK/scepd.log" 2>&1 &
  PID=$!; wait_up
}
bench() { # label concurrency
  "$BIN" bench --url "http://127.0.0.1:$PORT/scep" --challenge bench -n "$N" -c "$2" --server-pid "$PID" \
    --floor "$WORK/data" --pkcs11-pin-file "$WORK/pin" --json \
    | python3 -c 'import json,sys; r=json.load(sys.stdin); e=sum(r["errors"].values()); f=sum(r["failures_by_fail_info"].values());
print("| %s | %d | %.0f | %.2f | %.2f | %.2f | %.2f | %.2f | %d | %d |" % (sys.argv[1], r["concurrency"], r["enrollments_per_second"], r["p50_ms"], r["p99_ms"],
 r["server_cpu_ms_per_enrollment"], r["floor_ms_per_enrollment"], r["cpu_to_floor_ratio"], f, e))' "$1"
}

echo "| keys | C | enrollments/s | p50 ms | p99 ms | server CPU ms/enrollment | floor ms | CPU / floor | FAILURE | errors |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for c in $LEVELS; do
  for keys in file token; do
    start "$keys"; bench "$keys (RSA-2048)" "$c"; stop
  done
done
