# Sourced by the benchmarks that run scepd on PostgreSQL: a scratch database on the server
# $PG_URL names, recreated empty by `fresh_db` and dropped on exit (`drop_db`). $DB_URL is
# its URL.
DB=scepd_bench_$$
DB_URL=$(python3 -c 'import sys; u=sys.argv[1]; b,_,q=u.partition("?"); h=b[:b.index("/", b.index("://")+3)]; print(h+"/"+sys.argv[2]+("?"+q if q else ""))' "$PG_URL" "$DB")
fresh_db() { psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null 2>&1; }
drop_db() { psql "$PG_URL" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true; }
# CPU milliseconds (user+system) PostgreSQL's processes have used so far.
pg_cpu_ms() { local total=0; for p in $(pgrep -x postgres); do total=$((total + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $((total * 1000 / $(getconf CLK_TCK))); }
