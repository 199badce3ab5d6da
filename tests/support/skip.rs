//! The one way a test says it cannot run here (a tool or a service is missing).
//!
//! Under CI (`CI=true`, as `.ci/run` is run) that is a failure: CI installs everything the tests
//! need, so a missing piece there is a broken install step, not a reason to pass. Elsewhere the
//! test may pass without running, with a loud note on stderr.

use std::io::Write;

/// Whether the environment is CI, where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Says that `test` cannot run and why: panics under CI, else writes a note straight to stderr
/// (the test harness would swallow eprintln! from a passing test). The caller returns after it.
pub fn skip(test: &str, why: &str) {
    if in_ci() {
        panic!("{test} cannot run: {why} (CI=true: nothing may be skipped; install what is missing)");
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why} (this fails when CI=true)");
}
