//! Several scepd processes on one PostgreSQL database (run when `SCEPD_TEST_DATABASE_URL` is
//! set): enrollments through every node, one challenge raced over the nodes, revocation seen
//! by the other nodes' CRL and OCSP, a node killed mid-load, PostgreSQL restarted under load,
//! and `scepd store copy` both ways.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use der::{Decode, Encode};
use scepd_ca::KeyBits;
use x509_cert::Certificate;

use crate::challenges::{add_mdm, admin_auth, api_mint, basic};
use crate::lifecycle::{crl_number, fetch_crl, list, ocsp_status};
use crate::support::requester::{recipient, Opts};
use crate::support::scratch_db::{ScratchDb, ENV};
use crate::support::server::BIN;
use crate::support::skip::skip;
use crate::support::{http, Requester, Server};

const CHALLENGE: &str = "multinode-challenge";

/// `n` nodes sharing `store_url`, each with its own copy of one data directory (as each pod of
/// the Kubernetes Deployment gets the same secret).
pub(crate) fn nodes(tmp: &Path, n: usize, store_url: &str, args: &[&str]) -> Vec<Server> {
    let mut all = vec!["--store", store_url];
    all.extend_from_slice(args);
    let first = Server::start_in(&tmp.join("node0"), &all);
    let mut nodes = vec![first];
    for i in 1..n {
        let data = tmp.join(format!("node{i}"));
        copy_secrets(nodes[0].data(), &data);
        nodes.push(Server::start_in(&data, &all));
    }
    nodes
}

/// The data directory's files (keys, certificates, tokens), modes kept; not the runtime ones.
pub(crate) fn copy_secrets(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if path.is_file() && name != "admin.url" {
            std::fs::copy(&path, to.join(&name)).unwrap();
        }
    }
}

/// What a client got for one enrollment.
#[derive(Debug, PartialEq)]
pub(crate) enum Outcome {
    /// A certificate (its serial), checked to be for this client's key and subject.
    Issued(String),
    /// A signed CertRep FAILURE (its failInfo).
    Failure(String),
    /// An HTTP error status.
    Status(u16),
    /// No answer (connection refused or reset).
    Unreachable,
}

fn serial_hex(cert: &Certificate) -> String {
    cert.tbs_certificate()
        .serial_number()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// One PKCSReq for `cn` to `scep_url`, not panicking on a failed or missing answer.
pub(crate) fn enroll(requester: &Requester, ra: &Certificate, scep_url: &str, cn: &str, challenge: &str) -> Outcome {
    let message = requester.message(&requester.csr(cn, Some(challenge)), ra, &Opts::default());
    let resp = match http::post(
        &format!("{scep_url}?operation=PKIOperation"),
        "application/x-pki-message",
        &message,
    ) {
        Ok(resp) => resp,
        Err(_) => return Outcome::Unreachable,
    };
    if resp.status != 200 {
        return Outcome::Status(resp.status);
    }
    let rep = requester.read(&resp.body);
    if rep.header.reply.pki_status.as_deref() != Some("0") {
        return Outcome::Failure(rep.header.reply.fail_info.clone().unwrap_or_default());
    }
    let cert = Certificate::from_der(&rep.certificates[0]).unwrap();
    // Never a wrong certificate: this client's key and subject.
    assert_eq!(
        cert.tbs_certificate().subject_public_key_info().to_der().unwrap(),
        requester
            .identity
            .cert
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .unwrap(),
        "a certificate for another key"
    );
    assert_eq!(
        cert.tbs_certificate().subject().to_string(),
        cn,
        "a certificate for another subject"
    );
    Outcome::Issued(serial_hex(&cert))
}

/// One sample of the node's /metrics.
pub(crate) fn metric(server: &Server, series: &str) -> u64 {
    let text = http::get(&format!("{}/metrics", server.base)).unwrap().text();
    let line = text
        .lines()
        .find(|l| l.starts_with(series))
        .unwrap_or_else(|| panic!("{series} not exported"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

pub(crate) fn listed_serials(server: &Server) -> Vec<String> {
    list(server, &[])
        .iter()
        .map(|c| c["serial"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn three_nodes_share_enrollments_challenges_revocations_and_credentials() {
    let Some(db) = ScratchDb::create("multinode::three_nodes_share_…") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    // The re-enrollment below uses the static challenge: an unbound request, allowed to supersede.
    let nodes = nodes(
        tmp.path(),
        3,
        &db.url,
        &["--static-challenge", CHALLENGE, "--unbound-reenrollment", "allow"],
    );
    let ra = recipient(&nodes[0].scep_url());

    // Concurrent enrollments through all three nodes: every certificate present once.
    let issued = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for worker in 0..6 {
            let (nodes, ra, issued) = (&nodes, &ra, &issued);
            scope.spawn(move || {
                let requester = Requester::new(KeyBits::Rsa2048);
                for i in 0..10 {
                    let node = &nodes[(worker + i) % 3];
                    match enroll(
                        &requester,
                        ra,
                        &node.scep_url(),
                        &format!("CN=node-load-{worker}-{i}"),
                        CHALLENGE,
                    ) {
                        Outcome::Issued(serial) => issued.lock().unwrap().push(serial),
                        other => panic!("{other:?}"),
                    }
                }
            });
        }
    });
    let issued = issued.into_inner().unwrap();
    assert_eq!(issued.len(), 60);
    assert_eq!(issued.iter().collect::<HashSet<_>>().len(), 60, "serials unique");
    for node in &nodes {
        let listed = listed_serials(node);
        assert_eq!(listed.len(), 60, "every node lists every certificate once");
        assert_eq!(
            listed.iter().collect::<HashSet<_>>(),
            issued.iter().collect::<HashSet<_>>()
        );
    }

    // MDM credentials made on node 0 mint on node 1; the challenge, raced by 32 clients spread
    // over the three nodes, gives exactly one certificate.
    let password = add_mdm(&nodes[0], "fleet");
    let challenge = api_mint(&nodes[1], &basic("fleet", &password), "{}");
    let requesters: Vec<Requester> = (0..32).map(|_| Requester::new(KeyBits::Rsa2048)).collect();
    let outcomes = Mutex::new(Vec::new());
    let start = std::sync::Barrier::new(32);
    std::thread::scope(|scope| {
        for (i, requester) in requesters.iter().enumerate() {
            let (nodes, ra, outcomes, challenge, start) = (&nodes, &ra, &outcomes, &challenge, &start);
            scope.spawn(move || {
                let message = requester.message(
                    &requester.csr(&format!("CN=race-{i}"), Some(challenge)),
                    ra,
                    &Opts::default(),
                );
                start.wait();
                let url = format!("{}?operation=PKIOperation", nodes[i % 3].scep_url());
                let resp = http::post(&url, "application/x-pki-message", &message).unwrap();
                assert_eq!(resp.status, 200, "{}", resp.text());
                let rep = requester.read(&resp.body);
                outcomes
                    .lock()
                    .unwrap()
                    .push((rep.header.reply.pki_status.clone(), rep.header.reply.fail_info.clone()));
            });
        }
    });
    let outcomes = outcomes.into_inner().unwrap();
    assert_eq!(
        outcomes.iter().filter(|(s, _)| s.as_deref() == Some("0")).count(),
        1,
        "{outcomes:?}"
    );
    // The losers: FAILURE badRequest, as for any challenge that is not usable.
    assert!(outcomes
        .iter()
        .filter(|(s, _)| s.as_deref() != Some("0"))
        .all(|(s, f)| s.as_deref() == Some("2") && f.as_deref() == Some("2")));
    let race_certs = list(&nodes[2], &[])
        .iter()
        .filter(|c| c["subject"].as_str().unwrap_or("").contains("race-"))
        .count();
    assert_eq!(race_certs, 1);
    // The race was decided by the database: the nodes that lost ran their transactions again,
    // and say so in their metrics.
    let conflicts: u64 = nodes
        .iter()
        .map(|n| metric(n, "scepd_store_retries_total{reason=\"conflict\"}"))
        .sum();
    assert!(conflicts > 0, "no node retried a conflicting transaction");

    // Re-enrollment on another node supersedes the device's certificate.
    let device = Requester::new(KeyBits::Rsa2048);
    let Outcome::Issued(first) = enroll(&device, &ra, &nodes[0].scep_url(), "CN=roaming-device", CHALLENGE) else {
        panic!()
    };
    let Outcome::Issued(second) = enroll(
        &Requester::new(KeyBits::Rsa2048),
        &ra,
        &nodes[1].scep_url(),
        "CN=roaming-device",
        CHALLENGE,
    ) else {
        panic!()
    };
    let on_third = list(&nodes[2], &["--device", "roaming-device"]);
    let status = |serial: &str| {
        on_third.iter().find(|c| c["serial"] == serial).unwrap()["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        (status(&first), status(&second)),
        ("superseded".into(), "active".into())
    );

    // Revoke on node A: node B's CRL and OCSP show it on the next request, and every node serves
    // the same CRL (one number, never going back whichever node is asked).
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (before, _) = fetch_crl(&nodes[1], d);
    let show = nodes[2].cli(&["cert", "show", &second]);
    assert!(show.status.success(), "{}", String::from_utf8_lossy(&show.stderr));
    let leaf = d.join("leaf.pem");
    std::fs::write(&leaf, &show.stdout).unwrap();
    assert!(ocsp_status(&nodes[1], d, &leaf).contains(": good"));
    let revoke = nodes[0].cli(&["cert", "revoke", &second, "--reason", "keyCompromise"]);
    assert!(revoke.status.success(), "{}", String::from_utf8_lossy(&revoke.stderr));
    let (after, _) = fetch_crl(&nodes[1], d);
    assert!(after.contains(&second) && after.contains("Key Compromise"), "{after}");
    assert!(crl_number(&after) > crl_number(&before));
    let status = ocsp_status(&nodes[2], d, &leaf);
    assert!(status.contains(": revoked"), "{status}");
    let numbers: Vec<u64> = nodes.iter().map(|n| crl_number(&fetch_crl(n, d).0)).collect();
    assert!(
        numbers.iter().all(|n| *n == numbers[0]),
        "every node serves the newest CRL: {numbers:?}"
    );

    // The admin token is shared: node 2's CLI token works against node 0's API.
    let token_on_0 = http::request(
        "GET",
        &format!("{}/api/v1/certificates", nodes[0].base),
        &[("Authorization", &admin_auth(&nodes[2]))],
        b"",
    )
    .unwrap();
    assert_eq!(token_on_0.status, 200);

    // A node with another CA's data directory refuses to join.
    let stranger = tmp.path().join("stranger");
    let init = Command::new(BIN)
        .args(["init", "--data", stranger.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(init.status.success());
    let out = Command::new(BIN)
        .args([
            "serve",
            "--data",
            stranger.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--store",
            &db.url,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("CA certificate differs"), "{stderr}");
}

/// Enrollments spread over two nodes, one of them killed with SIGKILL in the middle: clients
/// move to the other node (as behind a load balancer), and every certificate a client received
/// is in the store.
#[test]
fn a_node_killed_mid_load_loses_nothing_a_client_received() {
    let Some(db) = ScratchDb::create("multinode::a_node_killed_mid_load…") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes = nodes(tmp.path(), 2, &db.url, &["--static-challenge", CHALLENGE]);
    let ra = recipient(&nodes[0].scep_url());
    let urls: Vec<String> = nodes.iter().map(Server::scep_url).collect();
    let received = Mutex::new(Vec::new());
    let killed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for worker in 0..4 {
            let (urls, ra, received, killed) = (&urls, &ra, &received, &killed);
            scope.spawn(move || {
                let requester = Requester::new(KeyBits::Rsa2048);
                for i in 0..30 {
                    let cn = format!("CN=kill-{worker}-{i}");
                    // Alternate nodes; once node 0 is gone, the "load balancer" sends to node 1.
                    let first = if killed.load(Ordering::SeqCst) {
                        1
                    } else {
                        (worker + i) % 2
                    };
                    let outcome = match enroll(&requester, ra, &urls[first], &cn, CHALLENGE) {
                        Outcome::Issued(serial) => Outcome::Issued(serial),
                        _ => enroll(&requester, ra, &urls[1], &cn, CHALLENGE),
                    };
                    match outcome {
                        Outcome::Issued(serial) => received.lock().unwrap().push(serial),
                        other => panic!("node 1 failed: {other:?}"),
                    }
                }
            });
        }
        // Kill node 0 once some enrollments went through.
        let deadline = Instant::now() + Duration::from_secs(60);
        while received.lock().unwrap().len() < 30 {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(10));
        }
        nodes[0].kill();
        killed.store(true, Ordering::SeqCst);
    });
    let received = received.into_inner().unwrap();
    assert_eq!(received.len(), 120);
    let listed: HashSet<String> = listed_serials(&nodes[1]).into_iter().collect();
    for serial in &received {
        assert!(listed.contains(serial), "{serial} was received but is not in the store");
    }
    assert_eq!(received.iter().collect::<HashSet<_>>().len(), 120);
}

/// A private PostgreSQL cluster (Debian's pg_createcluster), so that restarting it disturbs no
/// other test.
pub(crate) struct PrivateCluster {
    version: String,
    name: String,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PrivateCluster {
    pub(crate) fn create() -> Option<PrivateCluster> {
        PrivateCluster::create_in(None)
    }

    /// A cluster whose data directory is in `parent` (a filesystem of the test's), or in a
    /// temporary directory.
    pub(crate) fn create_in(parent: Option<&Path>) -> Option<PrivateCluster> {
        if Command::new("pg_createcluster").arg("--version").output().is_err() {
            skip(
                "multinode::postgres_restarted…",
                "pg_createcluster (Debian's postgresql-common) is not installed",
            );
            return None;
        }
        let Some(version) = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .max_by_key(|v| v.parse::<u32>().unwrap_or(0))
        else {
            skip(
                "multinode::postgres_restarted…",
                "no PostgreSQL server under /usr/lib/postgresql (Debian's postgresql)",
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        // The postgres user runs the server: it must reach the data directory.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let name = format!("scepd_e2e_{}_{port}", std::process::id());
        let data = parent.unwrap_or(dir.path()).join("pgdata");
        let out = Command::new("pg_createcluster")
            .args([
                "--start",
                "--start-conf=manual",
                "-p",
                &port.to_string(),
                "-d",
                data.to_str().unwrap(),
                &version,
                &name,
            ])
            .args(["--", "--auth=trust"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_createcluster: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = PrivateCluster {
            version,
            name,
            port,
            _dir: dir,
        };
        cluster.wait_ready();
        Some(cluster)
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn ctl(&self, action: &str) {
        let out = Command::new("pg_ctlcluster")
            .args([
                "--skip-systemctl-redirect",
                "-m",
                "fast",
                &self.version,
                &self.name,
                action,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctlcluster {action}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while postgres::Client::connect(&self.url(), postgres::NoTls).is_err() {
            assert!(Instant::now() < deadline, "private PostgreSQL did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = Command::new("pg_dropcluster")
            .args(["--stop", &self.version, &self.name])
            .output();
    }
}

/// PostgreSQL stopped and started again while two nodes enroll: requests in between fail
/// cleanly (HTTP 503, never a 500 or a wrong certificate), and enrollment comes back without
/// restarting scepd; every certificate received is in the store.
#[test]
fn postgres_restarted_under_load_fails_cleanly_and_recovers() {
    if std::env::var(ENV).is_err() {
        skip(
            "multinode::postgres_restarted…",
            &format!("{ENV} is not set (PostgreSQL tests need a server)"),
        );
        return;
    }
    let Some(cluster) = PrivateCluster::create() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let nodes = nodes(tmp.path(), 2, &cluster.url(), &["--static-challenge", CHALLENGE]);
    let ra = recipient(&nodes[0].scep_url());
    let outcomes = Mutex::new(Vec::new());
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for worker in 0..3 {
            let (nodes, ra, outcomes, done) = (&nodes, &ra, &outcomes, &done);
            scope.spawn(move || {
                let requester = Requester::new(KeyBits::Rsa2048);
                let mut i = 0;
                while !done.load(Ordering::SeqCst) {
                    let outcome = enroll(
                        &requester,
                        ra,
                        &nodes[i % 2].scep_url(),
                        &format!("CN=pgr-{worker}-{i}"),
                        CHALLENGE,
                    );
                    outcomes.lock().unwrap().push((Instant::now(), outcome));
                    i += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
        }
        let issued = |outcomes: &Mutex<Vec<(Instant, Outcome)>>| {
            outcomes
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, o)| matches!(o, Outcome::Issued(_)))
                .count()
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while issued(&outcomes) < 20 {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(10));
        }
        cluster.ctl("stop");
        std::thread::sleep(Duration::from_secs(2));
        // While it is down, the readiness check says so.
        let ready = http::get(&format!("{}/readyz", nodes[0].base)).unwrap();
        assert_eq!(ready.status, 503, "{}", ready.text());
        cluster.ctl("start");
        cluster.wait_ready();
        let restarted = Instant::now();
        // Enrollment recovers on both nodes without restarting them.
        let before = issued(&outcomes);
        let deadline = Instant::now() + Duration::from_secs(30);
        while issued(&outcomes) < before + 20 {
            assert!(Instant::now() < deadline, "no recovery after the restart");
            std::thread::sleep(Duration::from_millis(10));
        }
        done.store(true, Ordering::SeqCst);
        let recovered_after = outcomes
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, o)| *t > restarted && matches!(o, Outcome::Issued(_)))
            .map(|(t, _)| t.duration_since(restarted))
            .min();
        eprintln!("first certificate {recovered_after:?} after PostgreSQL came back");
    });
    let outcomes = outcomes.into_inner().unwrap();
    let failed: Vec<&Outcome> = outcomes
        .iter()
        .map(|(_, o)| o)
        .filter(|o| !matches!(o, Outcome::Issued(_)))
        .collect();
    assert!(!failed.is_empty(), "the outage was seen");
    for outcome in &failed {
        match outcome {
            Outcome::Status(503) => {}
            Outcome::Failure(fail_info) => assert!(!fail_info.is_empty(), "a FAILURE names its failInfo"),
            other => panic!("a clean refusal (503 or FAILURE), not {other:?}"),
        }
    }
    let ready = http::get(&format!("{}/readyz", nodes[1].base)).unwrap();
    assert_eq!(ready.status, 200, "{}", ready.text());
    let received: Vec<&String> = outcomes
        .iter()
        .filter_map(|(_, o)| if let Outcome::Issued(s) = o { Some(s) } else { None })
        .collect();
    let listed: HashSet<String> = listed_serials(&nodes[0]).into_iter().collect();
    for serial in &received {
        assert!(
            listed.contains(*serial),
            "{serial} was received but is not in the store"
        );
    }
}

/// `scepd store copy` from an existing installation's redb to PostgreSQL and back: a node on the
/// copy serves the same certificates and CRL entries, and CRL numbers go on.
#[test]
fn store_copy_moves_an_installation_to_postgres_and_back() {
    let Some(db) = ScratchDb::create("multinode::store_copy…") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("single");
    let mut single = Server::start_in(&data, &["--static-challenge", CHALLENGE]);
    let ra = recipient(&single.scep_url());
    let requester = Requester::new(KeyBits::Rsa2048);
    let serials: Vec<String> = (0..3)
        .map(|i| {
            match enroll(
                &requester,
                &ra,
                &single.scep_url(),
                &format!("CN=copied-{i}"),
                CHALLENGE,
            ) {
                Outcome::Issued(s) => s,
                other => panic!("{other:?}"),
            }
        })
        .collect();
    // A webhook endpoint (TEST-NET-1: never answers) and the delivery of the revocation below.
    let hook = single.cli(&["webhook", "add", "https://192.0.2.10/scepd"]);
    assert!(hook.status.success(), "{}", String::from_utf8_lossy(&hook.stderr));
    assert!(single.cli(&["cert", "revoke", &serials[0]]).status.success());
    let d = tmp.path();
    let (crl_single, _) = fetch_crl(&single, d);
    let list_single = list(&single, &[]);
    let webhooks = |server: &Server, what: &[&str]| -> serde_json::Value {
        let out = server.cli(&[&["webhook"], what, &["--json"]].concat());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let ids = |deliveries: serde_json::Value| -> Vec<String> {
        let mut ids: Vec<String> = deliveries
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["event_id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let endpoints_single = webhooks(&single, &["list"]);
    let deliveries_single = ids(webhooks(&single, &["deliveries"]));
    assert_eq!(deliveries_single.len(), 1);
    single.terminate();

    let copy = |from: &str, to: &str| {
        let out = Command::new(BIN)
            .args(["store", "copy", "--from", from, "--to", to])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let redb = format!("redb:{}", data.display());
    let summary = copy(&redb, &db.url);
    assert!(summary.contains("3 certificates"), "{summary}");
    // Into a store that is not empty: refused.
    let again = Command::new(BIN)
        .args(["store", "copy", "--from", &redb, "--to", &db.url])
        .output()
        .unwrap();
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("not empty"));

    assert!(
        summary.contains("1 webhook endpoints, 1 webhook deliveries"),
        "{summary}"
    );
    let node = Server::start_in(&data, &["--static-challenge", CHALLENGE, "--store", &db.url]);
    assert_eq!(
        list(&node, &[]),
        list_single,
        "same certificates and statuses on PostgreSQL"
    );
    assert_eq!(webhooks(&node, &["list"]), endpoints_single);
    assert_eq!(
        ids(webhooks(&node, &["deliveries"])),
        deliveries_single,
        "same webhook-id"
    );
    assert!(node.cli(&["cert", "revoke", &serials[1]]).status.success());
    let (crl_pg, _) = fetch_crl(&node, d);
    assert!(crl_pg.contains(&serials[0]) && crl_pg.contains(&serials[1]));
    assert!(
        crl_number(&crl_pg) > crl_number(&crl_single),
        "CRL numbers go on from the copied store"
    );
    // Backups of a PostgreSQL store are the database's job: a clear refusal.
    let backup = node.cli(&["backup", tmp.path().join("bk").to_str().unwrap()]);
    assert!(!backup.status.success() && String::from_utf8_lossy(&backup.stderr).contains("pg_dump"));
    let mut node = node;
    node.terminate();

    // And back, into a new data directory's store.
    let back_dir = tmp.path().join("back");
    copy_secrets(&data, &back_dir);
    std::fs::remove_file(back_dir.join("scepd.redb")).unwrap();
    copy(&db.url, &format!("redb:{}", back_dir.display()));
    let back = Server::start_in(&back_dir, &["--static-challenge", CHALLENGE]);
    let statuses: Vec<String> = list(&back, &[])
        .iter()
        .map(|c| c["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(statuses.iter().filter(|s| *s == "revoked").count(), 2);
    let (crl_back, _) = fetch_crl(&back, d);
    assert!(crl_number(&crl_back) >= crl_number(&crl_pg));
}

/// `scepd db migrate` run by several processes at once on an empty database (nodes starting
/// together): every one succeeds and the schema is applied once; a schema newer than this
/// build is refused rather than misread.
#[test]
fn db_migrate_is_safe_when_nodes_start_at_once() {
    let Some(db) = ScratchDb::create("multinode::db_migrate…") else {
        return;
    };
    let runs: Vec<std::process::Child> = (0..6)
        .map(|_| {
            Command::new(BIN)
                .args(["db", "migrate", "--store", &db.url])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in runs {
        let out = run.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("schema up to date"));
    }
    let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    let versions: Vec<i64> = client
        .query("SELECT version FROM scepd_schema", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Each migration once (2: `device_bound`, issue 15; 3: `ca_rollover`, issue 18; 4:
    // webhooks, issue 19; 5: the web console's tables, issue 20).
    let known: Vec<i64> = scepd::store::postgres::schema::MIGRATIONS
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(versions, known);
    client
        .execute(
            "INSERT INTO scepd_schema (version, name, applied_at) VALUES (999, 'future', 0)",
            &[],
        )
        .unwrap();
    let out = Command::new(BIN)
        .args(["db", "migrate", "--store", &db.url])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("newer than this scepd supports"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
