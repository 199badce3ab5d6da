//! Webhooks, end to end: the real scepd, real SCEP clients, and a receiver on loopback that
//! verifies every request with the `standardwebhooks` Python package (not scepd's code).
//! Also the pull side: `cert list --expiring-within` and `GET /api/v1/certificates?expiring_within=`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use scepd_ca::KeyBits;
use serde_json::Value;

use crate::challenges::admin_auth;
use crate::clients::scepclient;
use crate::lifecycle::list;
use crate::multinode::{copy_secrets, enroll, metric, Outcome};
use crate::support::requester::recipient;
use crate::support::scratch_db::ScratchDb;
use crate::support::skip::skip;
use crate::support::{http, Requester, Server};

const CHALLENGE: &str = "webhook-test-challenge";

/// The Python receiver (`support/webhook_receiver.py`), killed when dropped.
struct Receiver {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Receiver {
    /// None (after `skip`) when Python's `standardwebhooks` is missing.
    fn start(dir: &Path, test: &str) -> Option<Receiver> {
        Receiver::start_on(dir, test, 0)
    }

    fn start_on(dir: &Path, test: &str, port: u16) -> Option<Receiver> {
        Receiver::start_with(dir, test, port, &[])
    }

    /// With more arguments (`--tls-cert`, `--tls-key`).
    fn start_with(dir: &Path, test: &str, port: u16, extra: &[&str]) -> Option<Receiver> {
        let available = Command::new("python3")
            .args(["-c", "import standardwebhooks"])
            .status()
            .is_ok_and(|s| s.success());
        if !available {
            skip(
                test,
                "python3 with the `standardwebhooks` package (pip install standardwebhooks)",
            );
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let port_file = dir.join("port");
        let _ = std::fs::remove_file(&port_file);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/support/webhook_receiver.py");
        let child = Command::new("python3")
            .arg(script)
            .args(["--port-file", port_file.to_str().unwrap()])
            .args(["--secrets", dir.join("secrets").to_str().unwrap()])
            .args(["--log", dir.join("log.jsonl").to_str().unwrap()])
            .args(["--status-file", dir.join("status").to_str().unwrap()])
            .args(["--delay-file", dir.join("delay").to_str().unwrap()])
            .args(["--port", &port.to_string()])
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .expect("python3");
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                break p.trim().parse().unwrap();
            }
            assert!(Instant::now() < deadline, "the receiver did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        Some(Receiver {
            child,
            dir: dir.to_path_buf(),
            port,
        })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn set_secrets(&self, secrets: &[&str]) {
        std::fs::write(self.dir.join("secrets"), secrets.join("\n")).unwrap();
    }

    /// The HTTP status the receiver answers (after checking the signature).
    fn answer(&self, status: u16) {
        std::fs::write(self.dir.join("status"), status.to_string()).unwrap();
    }

    /// How long the receiver waits before answering.
    fn delay(&self, seconds: u64) {
        std::fs::write(self.dir.join("delay"), seconds.to_string()).unwrap();
    }

    /// Every request received so far.
    fn log(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("log.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits until `done` holds for the log; returns it.
    fn wait(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = self.log();
            if done(&log) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; received:\n{}",
                serde_json::to_string_pretty(&log).unwrap()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Accepted requests (2xx) of event type `t`.
fn delivered<'a>(log: &'a [Value], t: &str) -> Vec<&'a Value> {
    log.iter()
        .filter(|e| e["status"] == 200 && e["body"]["type"] == t)
        .collect()
}

/// `scepd webhook add ARGS`: the secret, from the last line.
fn add_webhook(server: &Server, args: &[&str]) -> String {
    let mut all = vec!["webhook", "add"];
    all.extend_from_slice(args);
    let out = server.cli(&all);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let secret = stdout.lines().last().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{stdout}");
    secret
}

fn cli_json(server: &Server, args: &[&str]) -> Value {
    let out = server.cli(args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn scepclient_enroll(server: &Server, dir: &Path, cn: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let out = scepclient(dir, &server.scep_url(), CHALLENGE, cn);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
}

#[test]
fn issue_reenroll_revoke_and_rotation_are_signed_events() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(receiver) = Receiver::start(&tmp.path().join("rx"), "webhooks::issue_reenroll_revoke…") else {
        return;
    };
    let server = Server::start(&[
        "--static-challenge",
        CHALLENGE,
        "--allow-des",
        "--unbound-reenrollment",
        "allow",
    ]);
    let secret = add_webhook(&server, &[&receiver.url(), "--description", "SIEM"]);
    receiver.set_secrets(&[&secret]);
    let listed = cli_json(&server, &["webhook", "list", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(!listed.to_string().contains(&secret[6..]), "list shows no secret");
    assert_eq!(listed[0]["url"], receiver.url());

    // Enroll with scepclient: certificate.issued (new).
    scepclient_enroll(&server, &tmp.path().join("first"), "laptop-7");
    let log = receiver.wait("certificate.issued", |l| !delivered(l, "certificate.issued").is_empty());
    let first = delivered(&log, "certificate.issued")[0].clone();
    assert_eq!(first["verified_with"], serde_json::json!([0]));
    let data = &first["body"]["data"];
    assert_eq!(data["kind"], "new");
    assert_eq!(data["device_id"], "laptop-7");
    assert!(data["subject"].as_str().unwrap().contains("laptop-7"));
    let certs = list(&server, &[]);
    assert_eq!(data["serial"], certs[0]["serial"]);
    assert_eq!(data["not_after"], certs[0]["not_after"]);
    let issuer = data["issuer"].as_str().unwrap();
    assert!(!issuer.is_empty() && issuer.contains("CN="), "{issuer}");
    let first_serial = data["serial"].as_str().unwrap().to_string();

    // Re-enroll: certificate.issued (re-enrollment) and certificate.superseded (the first).
    scepclient_enroll(&server, &tmp.path().join("second"), "laptop-7");
    let log = receiver.wait("re-enrollment events", |l| {
        delivered(l, "certificate.issued").len() == 2 && delivered(l, "certificate.superseded").len() == 1
    });
    let second = delivered(&log, "certificate.issued")[1];
    assert_eq!(second["body"]["data"]["kind"], "re-enrollment");
    let superseded = delivered(&log, "certificate.superseded")[0];
    assert_eq!(superseded["body"]["data"]["serial"], first_serial.as_str());
    assert_eq!(
        superseded["body"]["data"]["superseded_by"],
        second["body"]["data"]["serial"]
    );
    // One event, one id; two events, two ids.
    assert_ne!(second["id"], superseded["id"]);

    // Revoke: certificate.revoked with the reason and who.
    let second_serial = second["body"]["data"]["serial"].as_str().unwrap().to_string();
    let out = server.cli(&["cert", "revoke", &second_serial, "--reason", "keyCompromise"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = receiver.wait("certificate.revoked", |l| {
        !delivered(l, "certificate.revoked").is_empty()
    });
    let revoked = &delivered(&log, "certificate.revoked")[0]["body"]["data"];
    assert_eq!(revoked["serial"], second_serial.as_str());
    assert_eq!(revoked["reason"], "keyCompromise");
    assert_eq!(revoked["revoked_by"], "admin");

    // Rotation: both secrets sign during the overlap; each verifies on its own.
    let out = server.cli(&["webhook", "rotate", listed[0]["id"].as_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let new_secret = stdout.lines().last().unwrap().to_string();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret, "{stdout}");
    receiver.set_secrets(&[&secret, &new_secret]);
    scepclient_enroll(&server, &tmp.path().join("third"), "laptop-8");
    let log = receiver.wait("an event after rotation", |l| {
        delivered(l, "certificate.issued").len() == 3
    });
    let after = delivered(&log, "certificate.issued")[2];
    assert_eq!(after["signatures"], 2, "both signatures during the overlap");
    assert_eq!(after["verified_with"], serde_json::json!([0, 1]));
    // The new secret alone verifies too (a receiver that already switched).
    receiver.set_secrets(&[&new_secret]);
    server.cli(&["cert", "revoke", &first_serial]);
    let log = receiver.wait("a revocation after the switch", |l| {
        delivered(l, "certificate.revoked").len() == 2
    });

    // Adding and rotating are on the audit trail, by the admin token, with the endpoint's id.
    let audit = server.cli(&["audit", "export"]);
    let audit = String::from_utf8(audit.stdout).unwrap();
    let id = listed[0]["id"].as_str().unwrap();
    for event in ["webhook.added", "webhook.rotated"] {
        let entry = audit
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|e| e["event"] == event)
            .unwrap_or_else(|| panic!("{event} missing:\n{audit}"));
        assert_eq!(entry["actor"], "admin", "{entry}");
        assert!(entry["detail"].as_str().unwrap().starts_with(id), "{entry}");
        // Scheme, host and port only: a receiver's path or query may carry a credential.
        assert!(!entry["detail"].as_str().unwrap().contains("/hook"), "{entry}");
    }
    assert!(!audit.contains("whsec_"), "no secret on the audit trail");

    // Every request verified; no secret of any kind in any body.
    assert!(log.iter().all(|e| e["status"] == 200), "{log:?}");
    let all = serde_json::to_string(&log).unwrap();
    assert!(!all.contains(CHALLENGE) && !all.contains("whsec_") && !all.contains("PRIVATE KEY"));
    let deliveries = cli_json(&server, &["webhook", "deliveries", "--json"]);
    assert!(deliveries
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["status"] == "delivered"));
    assert_eq!(metric(&server, "scepd_webhook_deliveries_total{result=\"dead\"}"), 0);
}

#[test]
fn a_failing_receiver_gets_retries_with_the_same_id_then_dead_letter_and_retry_by_hand() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(receiver) = Receiver::start(&tmp.path().join("rx"), "webhooks::a_failing_receiver…") else {
        return;
    };
    let server = Server::start(&[
        "--static-challenge",
        CHALLENGE,
        "--webhook-retry-initial",
        "1s",
        "--webhook-retry-for",
        "6s",
    ]);
    let secret = add_webhook(&server, &[&receiver.url(), "--events", "certificate.issued"]);
    receiver.set_secrets(&[&secret]);
    receiver.answer(503);
    let requester = Requester::new(KeyBits::Rsa2048);
    let ra = recipient(&server.scep_url());
    assert!(matches!(
        enroll(&requester, &ra, &server.scep_url(), "CN=dev-retry", CHALLENGE),
        Outcome::Issued(_)
    ));
    // Retried with backoff, the same webhook-id each time, until the retry period ends.
    let failed = loop {
        let list = cli_json(&server, &["webhook", "deliveries", "--failed", "--json"]);
        if let Some(d) = list.as_array().unwrap().first() {
            break d.clone();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let log = receiver.log();
    assert!(log.len() >= 3, "retried: {log:?}");
    assert!(log.iter().all(|e| e["id"] == log[0]["id"] && e["status"] == 503));
    assert_eq!(failed["event_id"], log[0]["id"]);
    assert_eq!(failed["last_status"], 503);
    assert!(failed["attempts"].as_u64().unwrap() >= 3);
    // Each attempt is signed afresh (a new timestamp), and always verifies.
    assert!(log.iter().all(|e| e["verified_with"] == serde_json::json!([0])));
    assert!(metric(&server, "scepd_webhook_deliveries_total{result=\"dead\"}") == 1);

    // The receiver is back; a retry by hand delivers with the same id.
    receiver.answer(200);
    let out = server.cli(&["webhook", "retry", failed["id"].as_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = receiver.wait("the retried delivery", |l| {
        !delivered(l, "certificate.issued").is_empty()
    });
    assert_eq!(delivered(&log, "certificate.issued")[0]["id"], failed["event_id"]);
    assert!(cli_json(&server, &["webhook", "deliveries", "--failed", "--json"])
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn an_event_committed_before_a_sigkill_is_delivered_after_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(receiver) = Receiver::start(&tmp.path().join("rx"), "webhooks::an_event_committed…") else {
        return;
    };
    let data = tmp.path().join("data");
    let args = ["--static-challenge", CHALLENGE, "--webhook-retry-initial", "1s"];
    let mut server = Server::start_in(&data, &args);
    let secret = add_webhook(&server, &[&receiver.url()]);
    receiver.set_secrets(&[&secret]);
    receiver.answer(503);
    let requester = Requester::new(KeyBits::Rsa2048);
    let ra = recipient(&server.scep_url());
    let Outcome::Issued(serial) = enroll(&requester, &ra, &server.scep_url(), "CN=dev-crash", CHALLENGE) else {
        panic!("not issued");
    };
    receiver.wait("a first (refused) attempt", |l| !l.is_empty());
    server.kill();
    receiver.answer(200);
    let server = Server::start_in(&data, &args);
    let log = receiver.wait("delivery after the restart", |l| {
        !delivered(l, "certificate.issued").is_empty()
    });
    let ok = delivered(&log, "certificate.issued")[0];
    assert_eq!(ok["body"]["data"]["serial"], serial.as_str());
    assert_eq!(ok["id"], log[0]["id"], "the same webhook-id before and after the crash");
    drop(server);
}

#[test]
fn a_certificate_within_the_lead_time_is_announced_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(receiver) = Receiver::start(&tmp.path().join("rx"), "webhooks::a_certificate_within…") else {
        return;
    };
    let data = tmp.path().join("data");
    // One-day certificates, announced two days ahead: at once.
    let args = [
        "--static-challenge",
        CHALLENGE,
        "--cert-validity-days",
        "1",
        "--webhook-expiring-lead",
        "2d",
    ];
    let mut server = Server::start_in(&data, &args);
    let secret = add_webhook(&server, &[&receiver.url(), "--events", "certificate.expiring"]);
    receiver.set_secrets(&[&secret]);
    let requester = Requester::new(KeyBits::Rsa2048);
    let ra = recipient(&server.scep_url());
    let Outcome::Issued(serial) = enroll(&requester, &ra, &server.scep_url(), "CN=dev-short", CHALLENGE) else {
        panic!("not issued");
    };
    let Outcome::Issued(revoked) = enroll(&requester, &ra, &server.scep_url(), "CN=dev-revoked", CHALLENGE) else {
        panic!("not issued");
    };
    assert!(server.cli(&["cert", "revoke", &revoked]).status.success());
    // The worker looks for them when it starts (and every minute): restart to have it look now.
    server.terminate();
    let mut server = Server::start_in(&data, &args);
    let log = receiver.wait("certificate.expiring", |l| {
        !delivered(l, "certificate.expiring").is_empty()
    });
    let event = &delivered(&log, "certificate.expiring")[0]["body"]["data"];
    assert_eq!(event["serial"], serial.as_str());
    assert!(event["not_after"].as_str().unwrap() > event["not_before"].as_str().unwrap());
    // Another restart (another node, as far as the store knows) does not announce it again.
    server.terminate();
    let server = Server::start_in(&data, &args);
    std::thread::sleep(Duration::from_secs(4));
    let log = receiver.log();
    assert_eq!(delivered(&log, "certificate.expiring").len(), 1, "{log:?}");
    assert_eq!(log.len(), 1, "the revoked certificate is not announced: {log:?}");
    drop(server);
}

#[test]
fn refused_challenges_are_summarized_and_the_ca_announced_once() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(receiver) = Receiver::start(&tmp.path().join("rx"), "webhooks::refused_challenges…") else {
        return;
    };
    let data = tmp.path().join("data");
    // A lead time longer than the CA's life: the CA is "expiring" from the start.
    let args = [
        "--static-challenge",
        CHALLENGE,
        "--webhook-rejection-summary-interval",
        "2s",
        "--webhook-expiring-lead",
        "36500d",
    ];
    let mut server = Server::start_in(&data, &args);
    let secret = add_webhook(
        &server,
        &[&receiver.url(), "--events", "challenge.rejected,ca.expiring"],
    );
    receiver.set_secrets(&[&secret]);
    let requester = Requester::new(KeyBits::Rsa2048);
    let ra = recipient(&server.scep_url());
    let wrong = "not-the-challenge-4711";
    for i in 0..3 {
        let outcome = enroll(&requester, &ra, &server.scep_url(), &format!("CN=bad-{i}"), wrong);
        assert!(matches!(outcome, Outcome::Failure(_)), "{outcome:?}");
    }
    let total = |l: &[Value]| -> u64 {
        delivered(l, "challenge.rejected")
            .iter()
            .map(|e| e["body"]["data"]["count"].as_u64().unwrap())
            .sum()
    };
    let log = receiver.wait("a challenge.rejected summary", |l| total(l) >= 3);
    assert_eq!(total(&log), 3);
    let summary = &delivered(&log, "challenge.rejected")[0]["body"]["data"];
    assert!(summary["by_source"]["127.0.0.1"].as_u64().unwrap() >= 1, "{summary}");
    assert!(
        summary["by_reason"].as_object().is_some_and(|m| !m.is_empty()),
        "{summary}"
    );
    assert!(
        !serde_json::to_string(&log).unwrap().contains(wrong),
        "never the challenge"
    );

    // The CA comes within the lead time: announced once, across restarts.
    server.terminate();
    let mut server = Server::start_in(&data, &args);
    let log = receiver.wait("ca.expiring", |l| !delivered(l, "ca.expiring").is_empty());
    let ca = &delivered(&log, "ca.expiring")[0]["body"]["data"];
    let ca_pem = std::fs::read_to_string(server.ca_pem()).unwrap();
    assert!(!ca_pem.is_empty());
    assert_eq!(ca["sha256"].as_str().unwrap().len(), 64);
    assert!(ca["subject"].as_str().unwrap().contains("CN="));
    server.terminate();
    let server = Server::start_in(&data, &args);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(delivered(&receiver.log(), "ca.expiring").len(), 1);
    drop(server);
}

/// A test CA and a server certificate for 127.0.0.1 only (not `localhost`), by openssl.
fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use crate::support::openssl;
    openssl::self_signed(
        dir,
        "ca.key",
        "ca.pem",
        "/CN=webhook test CA",
        2,
        &[
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    );
    let run = |args: &[&str]| {
        openssl::run(dir, args);
    };
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.pem",
        "-days",
        "2",
        "-extfile",
        "ext",
    ]);
    (dir.join("ca.pem"), dir.join("srv.pem"), dir.join("srv.key"))
}

#[test]
fn https_receivers_are_verified_and_redirects_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls_files(tmp.path());
    let Some(receiver) = Receiver::start_with(
        &tmp.path().join("rx"),
        "webhooks::https_receivers…",
        0,
        &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
    ) else {
        return;
    };
    let server = Server::start(&[
        "--static-challenge",
        CHALLENGE,
        "--webhook-ca-file",
        ca.to_str().unwrap(),
    ]);
    let good = format!("https://127.0.0.1:{}/hook", receiver.port);
    let secret = add_webhook(&server, &[&good, "--events", "certificate.issued"]);
    // The same receiver by a name its certificate does not carry: TLS must refuse it.
    add_webhook(
        &server,
        &[
            &format!("https://localhost:{}/hook", receiver.port),
            "--events",
            "certificate.issued",
        ],
    );
    receiver.set_secrets(&[&secret]);
    let requester = Requester::new(KeyBits::Rsa2048);
    let ra = recipient(&server.scep_url());
    assert!(matches!(
        enroll(&requester, &ra, &server.scep_url(), "CN=tls-1", CHALLENGE),
        Outcome::Issued(_)
    ));
    let log = receiver.wait("delivery over TLS", |l| !delivered(l, "certificate.issued").is_empty());
    assert_eq!(
        log.len(),
        1,
        "the misnamed endpoint never reached the receiver: {log:?}"
    );
    let deliveries = || cli_json(&server, &["webhook", "deliveries", "--json"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        let list = deliveries();
        if let Some(d) = list
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["attempts"].as_u64() >= Some(1) && d["status"] == "pending")
        {
            break d.clone();
        }
        assert!(Instant::now() < deadline, "{list}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let error = refused["last_error"].as_str().unwrap();
    assert!(
        error.contains("TLS") && error.to_lowercase().contains("certificate"),
        "{error}"
    );

    // A redirect is a failure, and is not followed.
    receiver.answer(302);
    assert!(matches!(
        enroll(&requester, &ra, &server.scep_url(), "CN=tls-2", CHALLENGE),
        Outcome::Issued(_)
    ));
    let log = receiver.wait("the redirected attempt", |l| l.iter().any(|e| e["status"] == 302));
    std::thread::sleep(Duration::from_secs(1));
    let redirected: Vec<_> = receiver.log().into_iter().filter(|e| e["status"] == 302).collect();
    assert_eq!(redirected.len(), 1, "one attempt, no follow-up request: {log:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = deliveries();
        if list
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["last_status"] == 302 && d["status"] == "pending")
        {
            break;
        }
        assert!(Instant::now() < deadline, "{list}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn unsafe_targets_are_refused() {
    let server = Server::start(&[]);
    for (url, extra, why) in [
        ("http://hooks.example.com/in", None, "https"),
        ("https://169.254.169.254/latest/meta-data/", None, "link-local"),
        ("http://169.254.169.254/", Some("--allow-http"), "link-local"),
        ("https://[fe80::1]/in", None, "link-local"),
        ("https://[fd00:ec2::254]/", None, "metadata"),
        ("ftp://example.com/", None, "URL"),
    ] {
        let mut args = vec!["webhook", "add", url];
        args.extend(extra);
        let out = server.cli(&args);
        assert!(!out.status.success(), "{url} was accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(why), "{url}: {stderr}");
    }
    // Through the API too, answered 400.
    let resp = http::request(
        "POST",
        &format!("{}/api/v1/webhooks", server.base),
        &[
            ("authorization", &admin_auth(&server)),
            ("content-type", "application/json"),
        ],
        br#"{"url": "http://10.0.0.1/in"}"#,
    )
    .unwrap();
    assert_eq!(resp.status, 400, "{}", resp.text());
    // Without the token: refused like every admin route.
    let resp = http::get(&format!("{}/api/v1/webhooks", server.base)).unwrap();
    assert_eq!(resp.status, 401);
    // Allowed: https anywhere, http to loopback, http elsewhere with --allow-http.
    add_webhook(&server, &["https://hooks.example.com/in"]);
    add_webhook(&server, &["http://localhost:9/in"]);
    add_webhook(&server, &["http://10.0.0.1/in", "--allow-http"]);
    assert_eq!(
        cli_json(&server, &["webhook", "list", "--json"])
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let unknown = server.cli(&[
        "webhook",
        "add",
        "https://x.example/",
        "--events",
        "certificate.exploded",
    ]);
    assert!(!unknown.status.success());
}

#[test]
fn expiring_certificates_are_listed_by_cli_and_api() {
    let server = Server::start(&["--static-challenge", CHALLENGE, "--cert-validity-days", "20"]);
    let requester = Requester::new(KeyBits::Rsa2048);
    let ra = recipient(&server.scep_url());
    let mut serials = Vec::new();
    for cn in ["CN=exp-a", "CN=exp-b"] {
        let Outcome::Issued(serial) = enroll(&requester, &ra, &server.scep_url(), cn, CHALLENGE) else {
            panic!("not issued");
        };
        serials.push(serial);
    }
    let revoke = server.cli(&["cert", "revoke", &serials[1]]);
    assert!(revoke.status.success());
    // 20-day certificates: within 30 days, not within 12 hours; revoked ones never.
    let soon = list(&server, &["--expiring-within", "30d"]);
    assert_eq!(soon.len(), 1, "{soon:?}");
    assert_eq!(soon[0]["serial"], serials[0].as_str());
    assert_eq!(soon[0]["status"], "active");
    assert!(list(&server, &["--expiring-within", "12h"]).is_empty());
    let auth = admin_auth(&server);
    let api = |query: &str| {
        http::request(
            "GET",
            &format!("{}/api/v1/certificates?{query}", server.base),
            &[("authorization", &auth)],
            b"",
        )
        .unwrap()
    };
    let resp = api("expiring_within=30d");
    assert_eq!(resp.status, 200);
    let v: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    let by_device: Value = serde_json::from_slice(&api("expiring_within=21d&device=exp-b").body).unwrap();
    assert_eq!(by_device, serde_json::json!([]), "exp-b is revoked");
    assert_eq!(api("expiring_within=soon").status, 400);
    assert_eq!(api("expiring_within=30d&status=revoked").status, 400);
    let bad = server.cli(&["cert", "list", "--expiring-within", "1fortnight"]);
    assert!(!bad.status.success());
}

#[test]
fn three_nodes_on_postgres_deliver_every_event_under_load() {
    let Some(db) = ScratchDb::create("webhooks::three_nodes_on_postgres…") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let Some(receiver) = Receiver::start(&tmp.path().join("rx"), "webhooks::three_nodes_on_postgres…") else {
        return;
    };
    let args = [
        "--store",
        db.url.as_str(),
        "--static-challenge",
        CHALLENGE,
        "--webhook-retry-initial",
        "1s",
    ];
    let first = Server::start_in(&tmp.path().join("node0"), &args);
    let mut nodes = vec![first];
    for i in 1..3 {
        let data = tmp.path().join(format!("node{i}"));
        copy_secrets(nodes[0].data(), &data);
        nodes.push(Server::start_in(&data, &args));
    }
    // Added through one node, used by all (the store is shared).
    let secret = add_webhook(&nodes[1], &[&receiver.url(), "--events", "certificate.issued"]);
    receiver.set_secrets(&[&secret]);
    let ra = recipient(&nodes[0].scep_url());
    let per_thread = 15;
    let outcomes: Vec<Outcome> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|t| {
                let (nodes, ra) = (&nodes, &ra);
                s.spawn(move || {
                    let requester = Requester::new(KeyBits::Rsa2048);
                    (0..per_thread)
                        .map(|i| {
                            let node = &nodes[(t + i) % nodes.len()];
                            enroll(&requester, ra, &node.scep_url(), &format!("CN=load-{t}-{i}"), CHALLENGE)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let serials: Vec<String> = outcomes
        .iter()
        .map(|o| match o {
            Outcome::Issued(serial) => serial.clone(),
            other => {
                let logs: Vec<String> = nodes
                    .iter()
                    .map(|n| {
                        n.log_text()
                            .lines()
                            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .collect();
                panic!("{other:?}; the nodes' warnings:\n{}", logs.join("\n---\n"))
            }
        })
        .collect();
    let log = receiver.wait("every event", |l| {
        let got: std::collections::HashSet<&str> = delivered(l, "certificate.issued")
            .iter()
            .filter_map(|e| e["body"]["data"]["serial"].as_str())
            .collect();
        serials.iter().all(|s| got.contains(s.as_str()))
    });
    let ids: Vec<&str> = log.iter().filter_map(|e| e["id"].as_str()).collect();
    let unique: std::collections::HashSet<&str> = ids.iter().copied().collect();
    let duplicates = ids.len() - unique.len();
    eprintln!(
        "three nodes: {} events, {} requests, {duplicates} duplicates",
        serials.len(),
        ids.len()
    );
    assert_eq!(unique.len(), serials.len(), "one id per event");
    assert!(duplicates * 10 <= serials.len(), "few duplicates: {duplicates}");
    assert!(log.iter().all(|e| e["verified_with"] == serde_json::json!([0])));
    // Each node delivered some (they share the outbox), none dead-lettered.
    let per_node: Vec<u64> = nodes
        .iter()
        .map(|n| metric(n, "scepd_webhook_deliveries_total{result=\"delivered\"}"))
        .collect();
    eprintln!("delivered per node: {per_node:?}");
    assert!(per_node.iter().sum::<u64>() as usize >= unique.len());
}

#[test]
fn a_node_killed_mid_delivery_leaves_its_claims_to_another() {
    let Some(db) = ScratchDb::create("webhooks::a_node_killed_mid_delivery…") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let Some(receiver) = Receiver::start(&tmp.path().join("rx"), "webhooks::a_node_killed_mid_delivery…") else {
        return;
    };
    let args = ["--store", db.url.as_str(), "--static-challenge", CHALLENGE];
    let first = Server::start_in(&tmp.path().join("node0"), &args);
    copy_secrets(first.data(), &tmp.path().join("node1"));
    let mut second = Server::start_in(&tmp.path().join("node1"), &args);
    let secret = add_webhook(&first, &[&receiver.url(), "--events", "certificate.issued"]);
    receiver.set_secrets(&[&secret]);
    // A slow receiver: claims stay in flight for a while.
    receiver.delay(5);
    let requester = Requester::new(KeyBits::Rsa2048);
    let ra = recipient(&first.scep_url());
    let serials: Vec<String> = (0..50)
        .map(
            |i| match enroll(&requester, &ra, &first.scep_url(), &format!("CN=kill-{i}"), CHALLENGE) {
                Outcome::Issued(serial) => serial,
                other => panic!("{other:?}"),
            },
        )
        .collect();
    // Wait until both nodes hold claims (at most 32 each at once), then kill one of them.
    let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let owners: i64 = client
            .query_one(
                "SELECT count(DISTINCT lease_owner) FROM webhook_deliveries WHERE status = 'pending' AND lease_owner IS NOT NULL",
                &[],
            )
            .unwrap()
            .get(0);
        if owners == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the nodes never both claimed");
        std::thread::sleep(Duration::from_millis(100));
    }
    second.kill();
    receiver.delay(0);
    // The survivor delivers its own claims, then the dead node's once their lease runs out.
    let log = receiver.wait("every event despite the killed node", |l| {
        let got: HashSet<&str> = delivered(l, "certificate.issued")
            .iter()
            .filter_map(|e| e["body"]["data"]["serial"].as_str())
            .collect();
        serials.iter().all(|s| got.contains(s.as_str()))
    });
    let ids: Vec<&str> = log.iter().filter_map(|e| e["id"].as_str()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    eprintln!(
        "killed mid-delivery: {} events, {} requests, {} duplicates (same webhook-id)",
        serials.len(),
        ids.len(),
        ids.len() - unique.len()
    );
    assert_eq!(unique.len(), serials.len());
    // What the dead node had in flight may have reached the receiver, but was never recorded:
    // the survivor sends it again (same webhook-id) once the lease (60 s) runs out.
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let pending: i64 = client
            .query_one(
                "SELECT count(*) FROM webhook_deliveries WHERE status <> 'delivered'",
                &[],
            )
            .unwrap()
            .get(0);
        if pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{pending} deliveries never completed");
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = receiver.log();
    let ids: Vec<&str> = log.iter().filter_map(|e| e["id"].as_str()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    eprintln!(
        "after the lease ran out: {} requests, {} duplicates (same webhook-id)",
        ids.len(),
        ids.len() - unique.len()
    );
    assert_eq!(unique.len(), serials.len(), "no event invented");
    assert!(ids.len() - unique.len() <= 32, "duplicates only of what was in flight");
    drop(first);
}
