#!/usr/bin/env bash
# Web console on a big store: the render time of each page (server side, as curl sees it on
# loopback) with N certificates (M revoked) filled by `scepd bench-fill`.
#
#   benches/console-scale.sh [N] [M]      (defaults 1000000 and 100000; needs ~3 GB of disk)
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
BASE="http://127.0.0.1:$PORT"

"$BIN" init --data "$WORK/d" >/dev/null
/usr/bin/time -f "fill: %e s" "$BIN" bench-fill --data "$WORK/d" --certificates "$N" --revoked "$M" 2>&1 | tail -1
echo "store size: $(du -h "$WORK/d/scepd.redb" | cut -f1)"
"$BIN" serve --data "$WORK/d" --listen "127.0.0.1:$PORT" --log-level warn >"$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 300); do curl -sf "$BASE/healthz" >/dev/null && break; sleep 0.1; done
# Let start-up work (the first scan for the certificate gauges) finish before timing anything.
sleep 8

# Sign in with the admin token (the sign-in form's token comes with its cookie).
JAR=$WORK/jar
TOKEN_FIELD=$(curl -s -c "$JAR" "$BASE/ui/login" | sed -n 's/.*name="login_csrf" value="\([^"]*\)".*/\1/p')
curl -s -o /dev/null -b "$JAR" -c "$JAR" --data-urlencode "login_csrf=$TOKEN_FIELD" --data-urlencode "name=" \
  --data-urlencode "password=$(cat "$WORK/d/admin.token")" "$BASE/ui/login"

# The overview's counts: one pass over the store, in the background; time until they show.
START=$(date +%s%N)
until ! curl -s -b "$JAR" "$BASE/ui/" | grep -q "Counting the certificates"; do sleep 0.1; done
echo "overview count (background, one pass): $(( ($(date +%s%N) - START) / 1000000 )) ms"

# The median and the maximum of 21 timed requests, in ms.
timed() {
  for _ in $(seq 21); do curl -s -o /dev/null -b "$JAR" -w '%{time_total}\n' "$BASE$1"; done | sort -n \
    | awk '{a[NR]=$1*1000} END {printf "median %.1f ms, max %.1f ms", a[11], a[NR]}'
}
SERIAL=$(curl -s -b "$JAR" "$BASE/ui/device?id=fill-device-77777" | sed -n 's/.*certificate?serial=\([0-9A-F]*\)".*/\1/p' | head -1)
for page in "/ui/" "/ui/devices" "/ui/devices?q=fill-device-7777" "/ui/device?id=fill-device-77777" \
  "/ui/device/revoke?id=fill-device-77777" "/ui/certificates" "/ui/certificates?status=revoked" \
  "/ui/certificates?status=expired" "/ui/certificates?q=fill-device-123" "/ui/certificates?q=no-such-subject" \
  "/ui/certificates?q=$SERIAL" "/ui/certificate?serial=$SERIAL" "/ui/certificate.pem?serial=$SERIAL" \
  "/ui/mdm" "/ui/challenges" "/ui/audit" "/ui/audit?event=certificate.revoked"; do
  echo "$page: $(timed "$page")"
done
echo "server peak RSS: $(awk '/VmHWM/{print $2" kB"}' /proc/$PID/status)"
