//! 200 enrollments at concurrency 16: 200 distinct serials, all of them in `scepd cert list`,
//! recorded in fewer durable commits than certificates (group commit).

use std::collections::HashSet;
use std::sync::Mutex;

use scepd_ca::KeyBits;

use crate::support::requester::{recipient, Opts};
use crate::support::{Requester, Server};

const CHALLENGE: &str = "concurrency-challenge";

#[test]
fn two_hundred_enrollments_at_concurrency_16() {
    let server = Server::start(&["--static-challenge", CHALLENGE]);
    let ra = recipient(&server.scep_url());
    let serials = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for worker in 0..16 {
            let (server, ra, serials) = (&server, &ra, &serials);
            scope.spawn(move || {
                // One key per worker (key generation is not what is tested); a CSR per enrollment.
                let requester = Requester::new(KeyBits::Rsa2048);
                for i in (worker..200).step_by(16) {
                    let csr = requester.csr(&format!("CN=device-{i}"), Some(CHALLENGE));
                    let rep = requester.post(&server.scep_url(), &requester.message(&csr, ra, &Opts::default()));
                    assert_eq!(
                        rep.header.reply.pki_status.as_deref(),
                        Some("0"),
                        "{:?}",
                        rep.header.reply
                    );
                    let cert: x509_cert::Certificate = der::Decode::from_der(&rep.certificates[0]).unwrap();
                    let serial: String = cert
                        .tbs_certificate()
                        .serial_number()
                        .as_bytes()
                        .iter()
                        .map(|b| format!("{b:02X}"))
                        .collect();
                    serials.lock().unwrap().push(serial);
                }
            });
        }
    });
    let serials = serials.into_inner().unwrap();
    assert_eq!(serials.len(), 200);
    let unique: HashSet<&String> = serials.iter().collect();
    assert_eq!(unique.len(), 200, "duplicate serials");
    let out = server.cli(&["cert", "list", "--json"]);
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed: HashSet<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["serial"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed.len(), 200);
    for s in &serials {
        assert!(listed.contains(s), "{s} issued but not listed");
    }
    // Sixteen clients at once on two cores: enrollments meet at the commit and share it.
    let text = crate::support::http::get(&format!("{}/metrics", server.base))
        .unwrap()
        .text();
    let commits = crate::operations::metric(&text, "scepd_issuance_commits_total");
    assert!(
        (1.0..200.0).contains(&commits),
        "{commits} commits for 200 certificates"
    );
}

/// A flood of enrollments queues on the bounded private-key pool; the accept loop and health
/// checks keep answering.
#[test]
fn healthz_answers_while_enrollment_saturates_the_cores() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let server = Server::start(&["--static-challenge", CHALLENGE]);
    let ra = recipient(&server.scep_url());
    let requesters: Vec<Requester> = (0..4).map(|_| Requester::new(KeyBits::Rsa2048)).collect();
    let messages: Vec<(usize, Vec<u8>)> = (0..240)
        .map(|i| {
            (
                i % 4,
                requesters[i % 4].message(
                    &requesters[i % 4].csr(&format!("CN=flood-{i}"), Some(CHALLENGE)),
                    &ra,
                    &Opts::default(),
                ),
            )
        })
        .collect();
    let senders_left = AtomicUsize::new(messages.chunks(10).count());
    let mut worst = std::time::Duration::ZERO;
    let mut probes = 0;
    std::thread::scope(|s| {
        for chunk in messages.chunks(10) {
            let (server, requesters, senders_left) = (&server, &requesters, &senders_left);
            s.spawn(move || {
                for (who, m) in chunk {
                    let rep = requesters[*who].post(&server.scep_url(), m);
                    assert_eq!(rep.header.reply.pki_status.as_deref(), Some("0"));
                }
                senders_left.fetch_sub(1, Ordering::SeqCst);
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        while senders_left.load(Ordering::SeqCst) > 0 {
            let t = std::time::Instant::now();
            assert_eq!(
                crate::support::http::get(&format!("{}/healthz", server.base))
                    .unwrap()
                    .status,
                200
            );
            worst = worst.max(t.elapsed());
            probes += 1;
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    });
    assert!(probes > 3, "the flood ended before it could be probed");
    // 24 senders keep both cores busy; a health check must not queue behind them.
    assert!(
        worst < std::time::Duration::from_secs(1),
        "a health check took {worst:?} under load"
    );
}
