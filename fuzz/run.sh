#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 600), two at a time, from the committed seeds.
# Needs cargo-fuzz (`cargo install cargo-fuzz`); RUSTC_BOOTSTRAP lets it use the stable
# toolchain. Findings land in fuzz/artifacts/TARGET/; each crash becomes a regression test.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${1:-600}
export RUSTC_BOOTSTRAP=1
run() {
  mkdir -p "corpus/$1"
  cargo fuzz run -O "$1" "corpus/$1" "seeds/$1" -- -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 2>&1 | tail -n 12 > "run-$1.log"
}
run pki_message & run get_query & wait
run csr_policy & run challenge_requests & wait
grep -H -E "Done|stat::number_of_executed_units|==ERROR|SUMMARY" run-*.log || true
