//! `scepd bench` against a real server: every enrollment validated, and with `--floor` the
//! server's CPU per enrollment set beside its three private-key operations, timed with the
//! server's own keys.

use std::path::Path;

use crate::support::server::BIN;
use crate::support::Server;

/// Runs `scepd bench --json` with `extra` against `server` and returns its JSON summary.
pub(crate) fn bench(server: &Server, challenge: &str, extra: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let out = std::process::Command::new(BIN)
        .args(["bench", "--url", &server.scep_url(), "--challenge", challenge])
        .args(["-n", "24", "-c", "2", "--keys", "2", "--json"])
        .args(["--server-pid", &server.pid().to_string()])
        .args(extra)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "scepd bench: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// The summary says every request was issued, once, and the floor was measured with a key of
/// `bits`, before the load and after it, and averaged; returns the server-CPU-to-floor ratio.
pub(crate) fn assert_floor_measured(summary: &serde_json::Value, bits: u64) -> f64 {
    assert_eq!(summary["issued"], 24, "{summary}");
    assert_eq!(summary["duplicate_serials"], 0, "{summary}");
    assert_eq!(summary["errors"], serde_json::json!({}), "{summary}");
    assert_eq!(summary["ca_key_bits"], bits, "{summary}");
    let floor = summary["floor_ms_per_enrollment"].as_f64().unwrap();
    let cpu = summary["server_cpu_ms_per_enrollment"].as_f64().unwrap();
    let ratio = summary["cpu_to_floor_ratio"].as_f64().unwrap();
    assert!(
        floor > 0.0 && summary["floor_rounds"].as_u64().unwrap() >= 20,
        "{summary}"
    );
    let (before, after) = (
        summary["floor_before_ms"].as_f64().unwrap(),
        summary["floor_after_ms"].as_f64().unwrap(),
    );
    assert!(before > 0.0 && after > 0.0, "{summary}");
    assert!((floor - (before + after) / 2.0).abs() < 1e-9, "{summary}");
    assert!((ratio - cpu / floor).abs() < 1e-9, "{summary}");
    ratio
}

#[test]
fn bench_reports_the_server_cpu_beside_the_floor_of_its_own_keys() {
    let data = tempfile::tempdir().unwrap();
    let init = std::process::Command::new(BIN)
        .args(["init", "--data", data.path().to_str().unwrap(), "--key-bits", "3072"])
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let server = Server::start_in(data.path(), &["--static-challenge", "bench-test"]);
    let summary = bench(&server, "bench-test", &["--floor", path(data.path())], &[]);
    assert_floor_measured(&summary, 3072);
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}
