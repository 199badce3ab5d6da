#!/usr/bin/env bash
# Scale benchmark: enrollment cost, device listing, revocation and CRL generation with a store
# already holding N certificates (M revoked), beside the same figures on an empty store.
#
#   benches/scale.sh [N] [M]        (defaults 1000000 and 100000; needs ~4 GB of disk)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
M=${2:-100000}
BIN=$PWD/target/release/scepd
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 2; }
WORK=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT=$((20000 + RANDOM % 20000))

serve() {
  "$BIN" serve --data "$1" --listen "127.0.0.1:$PORT" --static-challenge bench --log-level warn >"$WORK/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }
# The median and the maximum of 21 timed calls of a curl request, in ms.
timed() {
  for _ in $(seq 21); do curl -s -o /dev/null -w '%{time_total}\n' "$@"; done | sort -n | awk '{a[NR]=$1*1000} END {printf "median %.2f ms, max %.2f ms", a[11], a[NR]}'
}
enroll() { "$BIN" bench --url "http://127.0.0.1:$PORT/scep" --challenge bench -n 1000 -c 4 --server-pid "$PID" --json \
  | python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.0f/s, server CPU %.2f ms/enrollment, errors %d" % (r["enrollments_per_second"], r["server_cpu_ms_per_enrollment"], sum(r["errors"].values())))'; }

echo "== empty store"
"$BIN" init --data "$WORK/empty" >/dev/null
serve "$WORK/empty"
sleep 8
echo "enrollment: $(enroll)"
stop

echo "== $N certificates, $M revoked"
"$BIN" init --data "$WORK/full" >/dev/null
/usr/bin/time -f "fill: %e s, peak RSS %M kB" "$BIN" bench-fill --data "$WORK/full" --certificates "$N" --revoked "$M" 2>&1 | tail -1
echo "store size: $(du -h "$WORK/full/scepd.redb" | cut -f1)"
serve "$WORK/full"
# Let start-up work (the first scan for the certificate gauges) finish before timing anything.
sleep 8
TOKEN=$(cat "$WORK/full/admin.token")
AUTH="Authorization: Bearer $TOKEN"
echo "first CRL ($M entries, built on demand): $(curl -s -o "$WORK/crl.der" -w '%{time_total}' "http://127.0.0.1:$PORT/crl" | awk '{printf "%.0f ms", $1*1000}'), $(openssl crl -inform DER -in "$WORK/crl.der" -noout -text | grep -c 'Serial Number') entries"
echo "enrollment: $(enroll)"
echo "GET /api/v1/certificates?device=…: $(timed -H "$AUTH" "http://127.0.0.1:$PORT/api/v1/certificates?device=fill-device-77777")"
SERIALS=$(curl -s -H "$AUTH" "http://127.0.0.1:$PORT/api/v1/certificates?device=fill-device-99999" | python3 -c 'import json,sys; print(" ".join(c["serial"] for c in json.load(sys.stdin)))')
REVOKE_TIMES=$(for s in $SERIALS; do curl -s -o /dev/null -w '%{time_total}\n' -X POST -H "$AUTH" -d '{"reason":"keyCompromise"}' "http://127.0.0.1:$PORT/api/v1/certificates/$s/revoke"; done | sort -n | awk '{a[NR]=$1*1000} END {printf "median %.2f ms, max %.2f ms (%d revocations)", a[int((NR+1)/2)], a[NR], NR}')
echo "revocation: $REVOKE_TIMES"
echo "CRL regenerated after a revocation: $(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$PORT/crl" | awk '{printf "%.0f ms", $1*1000}')"
echo "server peak RSS: $(awk '/VmHWM/{print $2" kB"}' /proc/$PID/status)"
