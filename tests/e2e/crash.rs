//! Crash safety: enrollments at concurrency 8 (and revocations) while the server is killed with
//! SIGKILL at a random moment, several times. After every restart: each certificate a client
//! received is in the store; no serial twice; no challenge that produced a certificate redeems
//! again; an acknowledged revocation is still there; the CRL number never goes back.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use scepd_ca::KeyBits;

use crate::support::requester::{recipient, Opts};
use crate::support::{http, Requester, Server};

fn crl_number(server: &Server) -> u64 {
    let body = http::get(&format!("{}/crl", server.base)).unwrap().body;
    let dir = tempfile::tempdir().unwrap();
    crate::support::openssl::write(dir.path(), "c.der", &body);
    let t = String::from_utf8(crate::support::openssl::run(
        dir.path(),
        &["crl", "-inform", "DER", "-in", "c.der", "-noout", "-crlnumber"],
    ))
    .unwrap();
    u64::from_str_radix(t.trim().trim_start_matches("crlNumber=0x"), 16).unwrap()
}

fn token(server: &Server) -> String {
    format!(
        "Bearer {}",
        std::fs::read_to_string(server.data().join("admin.token"))
            .unwrap()
            .trim()
    )
}

#[test]
fn nothing_a_client_received_is_lost_across_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let requesters: Vec<Requester> = (0..8).map(|_| Requester::new(KeyBits::Rsa2048)).collect();
    let received = Mutex::new(Vec::<(String, String)>::new()); // (serial, challenge)
    let acknowledged_revocations = Mutex::new(Vec::<String>::new());
    let mut last_crl_number = 0;
    let mut seed = std::process::id() as u64;
    for round in 0..4 {
        let mut server = Server::start_in(&data, &["--challenge-failures-per-minute", "100000"]);
        let n = crl_number(&server);
        assert!(
            n > last_crl_number || round == 0,
            "CRL number went back: {n} after {last_crl_number}"
        );
        last_crl_number = n;
        // Challenges minted (and made durable) before the load.
        let auth = token(&server);
        let challenges: Vec<String> = (0..160)
            .map(|_| {
                let r = http::request(
                    "POST",
                    &format!("{}/api/v1/challenges", server.base),
                    &[("Authorization", &auth)],
                    b"{}",
                )
                .unwrap();
                serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["challenge"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1500));
        let ra = recipient(&server.scep_url());
        let stop = AtomicBool::new(false);
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let kill_after = Duration::from_millis(300 + (seed >> 33) % 900);
        std::thread::scope(|s| {
            for (w, requester) in requesters.iter().enumerate() {
                let (server, ra, received, stop, challenges) = (&server, &ra, &received, &stop, &challenges);
                s.spawn(move || {
                    for (i, challenge) in challenges.iter().enumerate().skip(w).step_by(8) {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let message = requester.message(
                            &requester.csr(&format!("CN=crash-{round}-{i}"), Some(challenge)),
                            ra,
                            &Opts::default(),
                        );
                        let Ok(resp) = http::post(
                            &format!("{}?operation=PKIOperation", server.scep_url()),
                            "application/x-pki-message",
                            &message,
                        ) else {
                            break;
                        };
                        if resp.status != 200 {
                            continue;
                        }
                        let rep = requester.read(&resp.body);
                        if rep.header.reply.pki_status.as_deref() == Some("0") {
                            let cert: x509_cert::Certificate = der::Decode::from_der(&rep.certificates[0]).unwrap();
                            received.lock().unwrap().push((
                                hex::encode_upper(cert.tbs_certificate().serial_number().as_bytes()),
                                challenge.clone(),
                            ));
                        }
                    }
                });
            }
            // Revocations in flight too.
            let (server_ref, received, acknowledged, stop, auth) =
                (&server, &received, &acknowledged_revocations, &stop, &auth);
            s.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let candidate = received.lock().unwrap().last().map(|(s, _)| s.clone());
                    if let Some(serial) = candidate {
                        let url = format!("{}/api/v1/certificates/{serial}/revoke", server_ref.base);
                        if let Ok(r) = http::request(
                            "POST",
                            &url,
                            &[("Authorization", auth)],
                            br#"{"reason":"keyCompromise"}"#,
                        ) {
                            if r.status == 200 {
                                acknowledged.lock().unwrap().push(serial);
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
            std::thread::sleep(kill_after);
            std::process::Command::new("kill")
                .args(["-9", &server.pid().to_string()])
                .status()
                .unwrap();
            stop.store(true, Ordering::SeqCst);
        });
        server.kill(); // reaps the killed process
    }

    // After the last crash: the store opens and holds everything.
    let server = Server::start_in(&data, &[]);
    assert!(crl_number(&server) > last_crl_number);
    let list: serde_json::Value = serde_json::from_slice(&server.cli(&["cert", "list", "--json"]).stdout).unwrap();
    let list = list.as_array().unwrap();
    let stored: Vec<&str> = list.iter().map(|c| c["serial"].as_str().unwrap()).collect();
    let unique: HashSet<&str> = stored.iter().copied().collect();
    assert_eq!(unique.len(), stored.len(), "a serial appears twice");
    let received = received.into_inner().unwrap();
    assert!(
        received.len() >= 8,
        "too few enrollments to mean anything: {}",
        received.len()
    );
    for (serial, _) in &received {
        assert!(
            unique.contains(serial.as_str()),
            "certificate {serial} was received but lost"
        );
    }
    for serial in acknowledged_revocations.into_inner().unwrap() {
        let c = list.iter().find(|c| c["serial"] == serial.as_str()).unwrap();
        assert_eq!(c["status"], "revoked", "acknowledged revocation of {serial} lost");
    }
    // No challenge that produced a certificate redeems again.
    let ra = recipient(&server.scep_url());
    let requester = Requester::new(KeyBits::Rsa2048);
    for (_, challenge) in received.iter().take(12) {
        let rep = requester.post(
            &server.scep_url(),
            &requester.message(&requester.csr("CN=replay", Some(challenge)), &ra, &Opts::default()),
        );
        assert_eq!(
            rep.header.reply.pki_status.as_deref(),
            Some("2"),
            "challenge redeemed twice"
        );
    }
}
