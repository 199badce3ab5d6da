//! Abuse resistance of the transport and the limits, reproduced as an attacker tried it
//! (issue 15): lockouts must not lock out the right credential, a burst is counted as it
//! arrives, forwarded addresses only from trusted proxies, one source cannot hold every
//! connection, OCSP cannot starve enrollment, field and header sizes, file modes.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use scepd_ca::KeyBits;

use crate::challenges::{add_mdm, admin_auth, api_mint, basic};
use crate::identity::jamf_challenge;
use crate::support::requester::{recipient, Opts};
use crate::support::{http, openssl, Requester, Server};

const CHALLENGE: &str = "abuse-test-static-challenge";

fn get_with(server: &Server, path: &str, headers: &[(&str, &str)]) -> http::Response {
    http::request("GET", &format!("{}{path}", server.base), headers, b"").unwrap()
}

fn pki_post(server: &Server, message: &[u8]) -> http::Response {
    http::post(
        &format!("{}?operation=PKIOperation", server.scep_url()),
        "application/x-pki-message",
        message,
    )
    .unwrap()
}

fn pki_status(requester: &Requester, resp: &http::Response) -> String {
    assert_eq!(resp.status, 200, "{}", resp.text());
    requester.read(&resp.body).header.reply.pki_status.unwrap_or_default()
}

#[test]
fn the_right_credential_gets_in_after_a_lockout() {
    let server = Server::start(&[
        "--static-challenge",
        CHALLENGE,
        "--auth-failures-per-minute",
        "3",
        "--challenge-failures-per-minute",
        "3",
    ]);
    // The admin token: three wrong ones, then 429 for the next wrong one, and the right one works
    // (with the scheme in lower case too: RFC 9110 makes it case-insensitive).
    for expected in [401, 401, 401, 429] {
        let resp = get_with(&server, "/api/v1/certificates", &[("Authorization", "Bearer wrong")]);
        assert_eq!(resp.status, expected);
    }
    let token = admin_auth(&server);
    assert_eq!(
        get_with(&server, "/api/v1/certificates", &[("Authorization", &token)]).status,
        200
    );
    let lower = token.replacen("Bearer", "bearer", 1);
    assert_eq!(
        get_with(&server, "/api/v1/certificates", &[("Authorization", &lower)]).status,
        200
    );

    // An MDM credential: the failures of one name do not lock out another, and the right
    // password of the locked-out name still works.
    let password = add_mdm(&server, "jamf");
    let fleet = add_mdm(&server, "fleet");
    for expected in [401, 401, 401, 429] {
        let resp = get_with(
            &server,
            "/certsrv/mscep_admin/",
            &[("Authorization", &basic("jamf", "wrong"))],
        );
        assert_eq!(resp.status, expected);
    }
    let ndes = |auth: &str| get_with(&server, "/certsrv/mscep_admin/", &[("Authorization", auth)]).status;
    assert_eq!(ndes(&basic("jamf", &password)), 200);
    assert_eq!(ndes(&basic("fleet", &fleet)), 200);
    assert_eq!(ndes(&basic("fleet", &fleet).replacen("Basic", "basic", 1)), 200);

    // The SCEP endpoint: past the limit a wrong challenge gets 429, the right one a certificate.
    let ra = recipient(&server.scep_url());
    let requester = Requester::new(KeyBits::Rsa2048);
    let message =
        |challenge: &str| requester.message(&requester.csr("CN=locked", Some(challenge)), &ra, &Opts::default());
    for _ in 0..3 {
        assert_eq!(pki_status(&requester, &pki_post(&server, &message("guess"))), "2");
    }
    let resp = pki_post(&server, &message("guess"));
    assert_eq!(resp.status, 429);
    assert!(resp.header("retry-after").is_some());
    assert_eq!(pki_status(&requester, &pki_post(&server, &message(CHALLENGE))), "0");
}

#[test]
fn forwarded_addresses_are_believed_from_trusted_proxies_only() {
    // Loopback is the proxy here; its clients are told apart by the header.
    let behind_proxy = Server::start(&["--auth-failures-per-minute", "2", "--trusted-proxy", "127.0.0.1"]);
    let attempt = |server: &Server, headers: &[(&str, &str)]| {
        let mut all = vec![("Authorization", "Bearer wrong")];
        all.extend_from_slice(headers);
        get_with(server, "/api/v1/certificates", &all).status
    };
    let attacker = [("X-Forwarded-For", "198.51.100.66")];
    assert_eq!(
        [
            attempt(&behind_proxy, &attacker),
            attempt(&behind_proxy, &attacker),
            attempt(&behind_proxy, &attacker)
        ],
        [401, 401, 429]
    );
    // Another client behind the same proxy is not locked out, in either header.
    assert_eq!(attempt(&behind_proxy, &[("X-Forwarded-For", "198.51.100.7")]), 401);
    assert_eq!(
        attempt(
            &behind_proxy,
            &[("Forwarded", "for=\"[2001:db8::7]:4711\";proto=https")]
        ),
        401
    );
    assert!(behind_proxy.log_text().contains("client=198.51.100.66"));

    // Without the proxy configured, the header is whatever a client wrote: not believed.
    let direct = Server::start(&["--auth-failures-per-minute", "2"]);
    attempt(&direct, &[("X-Forwarded-For", "198.51.100.1")]);
    attempt(&direct, &[("X-Forwarded-For", "198.51.100.2")]);
    assert_eq!(attempt(&direct, &[("X-Forwarded-For", "198.51.100.3")]), 429);
}

#[test]
fn a_burst_of_wrong_challenges_is_counted_as_it_arrives() {
    let server = Server::start(&["--static-challenge", CHALLENGE, "--challenge-failures-per-minute", "30"]);
    let ra = recipient(&server.scep_url());
    let requester = Requester::new(KeyBits::Rsa2048);
    let messages: Vec<Vec<u8>> = (0..150)
        .map(|i| {
            requester.message(
                &requester.csr(&format!("CN=burst-{i}"), Some("guess")),
                &ra,
                &Opts::default(),
            )
        })
        .collect();
    let barrier = std::sync::Barrier::new(messages.len());
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = messages
            .iter()
            .map(|m| {
                let (server, barrier) = (&server, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    pki_post(server, m).status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let answered = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!(
        answered <= 30 && answered + limited == statuses.len(),
        "{answered} answered, {limited} 429"
    );
}

#[test]
fn one_source_cannot_hold_every_connection() {
    let server = Server::start(&["--max-connections", "50"]);
    let addr: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    // 50 idle sockets from another loopback address, opened with a source address of its own.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let idle: Vec<tokio::net::TcpStream> = runtime.block_on(async {
        let mut idle = Vec::new();
        for _ in 0..50 {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
            if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_secs(2), socket.connect(addr)).await {
                idle.push(stream);
            }
        }
        idle
    });
    // The health check (from 127.0.0.1) still gets a connection and an answer.
    let (tx, rx) = std::sync::mpsc::channel();
    let url = format!("{}/healthz", server.base);
    std::thread::spawn(move || {
        let _ = tx.send(http::get(&url).map(|r| r.status).ok());
    });
    let answered = rx.recv_timeout(Duration::from_secs(5));
    drop(idle);
    assert_eq!(answered, Ok(Some(200)), "/healthz while one source holds 50 sockets");
}

#[test]
fn ocsp_floods_cannot_starve_enrollment_and_nonce_less_answers_are_cached() {
    let server = Server::start(&["--static-challenge", CHALLENGE, "--max-queued-operations", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let requester = Requester::new(KeyBits::Rsa2048);
    let ra = recipient(&server.scep_url());
    let rep = requester.post(
        &server.scep_url(),
        &requester.message(&requester.csr("CN=ocsp-leaf", Some(CHALLENGE)), &ra, &Opts::default()),
    );
    let leaf = openssl::write(
        dir.path(),
        "leaf.pem",
        scepd_ca::pem::encode("CERTIFICATE", &rep.certificates[0]).as_bytes(),
    );
    let ca = server.ca_pem();
    let request = |name: &str, nonce: &str| {
        openssl::run(
            dir.path(),
            &[
                "ocsp",
                "-issuer",
                ca.to_str().unwrap(),
                "-cert",
                leaf.to_str().unwrap(),
                nonce,
                "-reqout",
                name,
            ],
        );
        std::fs::read(dir.path().join(name)).unwrap()
    };
    let with_nonce = request("nonce.der", "-nonce");
    let ocsp = |body: &[u8]| http::post(&format!("{}/ocsp", server.base), "application/ocsp-request", body);

    // 200 OCSP requests (each with a nonce: each needs a signature) while devices enroll.
    let enrolled: Vec<u16> = std::thread::scope(|s| {
        for _ in 0..200 {
            let (ocsp, body) = (&ocsp, &with_nonce);
            s.spawn(move || ocsp(body));
        }
        std::thread::sleep(Duration::from_millis(100));
        (0..3)
            .map(|i| {
                let m = requester.message(
                    &requester.csr(&format!("CN=during-{i}"), Some(CHALLENGE)),
                    &ra,
                    &Opts::default(),
                );
                pki_post(&server, &m).status
            })
            .collect()
    });
    assert_eq!(enrolled, [200, 200, 200], "enrollment during an OCSP flood");

    // A nonce-less request is answered from the cache (the same signed bytes a second later)
    // until a revocation.
    let plain = request("plain.der", "-no_nonce");
    let first = ocsp(&plain).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let second = ocsp(&plain).unwrap();
    assert_eq!(first.body, second.body, "cached");
    let serial = openssl::x509_field(dir.path(), &leaf, "-serial");
    let serial = serial.trim().trim_start_matches("serial=").to_string();
    assert!(server.cli(&["cert", "revoke", &serial]).status.success());
    let third = ocsp(&plain).unwrap();
    openssl::write(dir.path(), "resp.der", &third.body);
    let text = String::from_utf8(openssl::run(
        dir.path(),
        &[
            "ocsp",
            "-respin",
            "resp.der",
            "-issuer",
            ca.to_str().unwrap(),
            "-cert",
            leaf.to_str().unwrap(),
            "-CAfile",
            ca.to_str().unwrap(),
            "-no_nonce",
        ],
    ))
    .unwrap();
    assert!(text.contains(": revoked"), "{text}");
}

#[test]
fn binding_fields_are_capped() {
    let server = Server::start(&[]);
    let admin = admin_auth(&server);
    let mint = |body: String| {
        http::request(
            "POST",
            &format!("{}/api/v1/challenges", server.base),
            &[("Authorization", &admin), ("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .unwrap()
        .status
    };
    let long = "x".repeat(60_000);
    for field in ["device_id", "subject_cn", "san"] {
        assert_eq!(mint(format!(r#"{{"{field}": "{long}"}}"#)), 400, "{field}");
        assert_eq!(mint(format!(r#"{{"{field}": "{}"}}"#, "x".repeat(256))), 201, "{field}");
    }
    api_mint(&server, &admin, "{}");
    assert_eq!(jamf_challenge(&server, &long).status, 400);
}

#[test]
fn the_head_limit_is_the_documented_64_kib() {
    let server = Server::start(&[]);
    let header = |size: usize| {
        let value = "a".repeat(size);
        get_with(&server, "/healthz", &[("X-Padding", &value)]).status
    };
    assert_eq!(header(60 * 1024), 200);
    assert_eq!(header(70 * 1000), 431);
}

#[test]
fn store_files_and_backups_are_private() {
    let server = Server::start(&["--static-challenge", CHALLENGE]);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&server.data().join("scepd.redb")), 0o600);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("backup");
    let b = server.cli(&["backup", out.to_str().unwrap()]);
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    assert_eq!(mode(&out.join("scepd.redb")), 0o600);
}

#[test]
fn the_static_challenge_can_come_from_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("challenge");
    std::fs::write(&file, format!("{CHALLENGE}\n")).unwrap();
    let server = Server::start(&["--static-challenge-file", file.to_str().unwrap()]);
    let requester = Requester::new(KeyBits::Rsa2048);
    let ra = recipient(&server.scep_url());
    let m = requester.message(&requester.csr("CN=from-file", Some(CHALLENGE)), &ra, &Opts::default());
    assert_eq!(pki_status(&requester, &pki_post(&server, &m)), "0");
    // Not in the command line other local users can read.
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", server.pid())).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains(CHALLENGE));
    // Both at once is a configuration error.
    let out = std::process::Command::new(crate::support::server::BIN)
        .args(["config", "check", "--static-challenge", "x", "--static-challenge-file"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
}
