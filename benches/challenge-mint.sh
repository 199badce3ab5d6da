#!/usr/bin/env bash
# Challenge-minting benchmark over HTTP keep-alive: the NDES page (GET, Basic auth) and the JSON
# API (POST /api/v1/challenges), each driven by wrk with 16 keep-alive connections on loopback.
# The server and the load generator share this machine's cores, as the issue asks.
#
#   benches/challenge-mint.sh [SECONDS] [CONNECTIONS] [POSTGRES_URL]
#
# With POSTGRES_URL (a server it may create and drop a database on), the server runs on a
# PostgreSQL store instead of the embedded one.
# Needs wrk (Debian package `wrk`) and a release build (`cargo build --release`); SCEPD_BIN
# names another binary (an earlier build, for a before/after).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-10}
CONNECTIONS=${2:-16}
PG_URL=${3:-}
BIN=${SCEPD_BIN:-target/release/scepd}
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 2; }
command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)" >&2; exit 2; }

WORK=$(mktemp -d)
PID=
STORE=()
if [ -n "$PG_URL" ]; then . benches/pg-scratch.sh; STORE=(--store "$DB_URL"); else drop_db() { :; }; fresh_db() { :; }; fi
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; wait 2>/dev/null; drop_db; rm -rf "$WORK"' EXIT

cat >"$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"ttl_seconds": 3600}'
wrk.headers["Content-Type"] = "application/json"
LUA

# A fresh server (and store) for each endpoint, so that neither run inherits the other's
# hundreds of thousands of challenges.
start_server() {
  [ -n "$PID" ] && { kill $PID; wait $PID 2>/dev/null || true; }
  rm -rf "$WORK/data"
  fresh_db
  PORT=$((20000 + RANDOM % 20000))
  "$BIN" serve --data "$WORK/data" --listen "127.0.0.1:$PORT" --log-level warn "${STORE[@]}" >"$WORK/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 100); do [ -f "$WORK/data/admin.url" ] && curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  PASSWORD=$("$BIN" mdm add bench --data "$WORK/data" | tail -n 1)
  AUTH="Authorization: Basic $(printf 'bench:%s' "$PASSWORD" | base64 -w0)"
  if [ -n "$PG_URL" ]; then PG_CPU_START=$(pg_cpu_ms); fi
}

report_server() {
  echo "server CPU (utime+stime): $(awk '{print ($14+$15)*10}' /proc/$PID/stat) ms, RSS: $(awk '/VmRSS/{print $2" kB"}' /proc/$PID/status)"
  if [ -n "$PG_URL" ]; then echo "PostgreSQL CPU during the run: $(( $(pg_cpu_ms) - PG_CPU_START )) ms"; fi
}

start_server
echo "== NDES page: GET /certsrv/mscep_admin/ (${CONNECTIONS} connections, ${SECONDS_PER_RUN}s)"
wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -H "$AUTH" "http://127.0.0.1:$PORT/certsrv/mscep_admin/"
report_server
echo
start_server
echo "== JSON API: POST /api/v1/challenges (${CONNECTIONS} connections, ${SECONDS_PER_RUN}s)"
wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -H "$AUTH" -s "$WORK/post.lua" "http://127.0.0.1:$PORT/api/v1/challenges"
report_server
