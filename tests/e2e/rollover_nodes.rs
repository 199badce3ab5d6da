//! CA rollover beyond one self-signed CA on one node: an externally signed next CA
//! (`ca rollover --ca-csr` → `openssl x509 -req` → `ca install-cert --next`), recorded by
//! `scepd serve` when it was installed while no server ran; and three nodes on PostgreSQL
//! switching together.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use scepd_ca::KeyBits;

use crate::multinode::{copy_secrets, enroll, nodes, Outcome};
use crate::rollover::{ca_list, caps, cli_ok, role, verify_with_own_crl};
use crate::support::requester::{recipient, Opts};
use crate::support::scratch_db::ScratchDb;
use crate::support::{http, openssl, Requester, Server};

const CHALLENGE: &str = "rollover-nodes-challenge";

/// The extensions the external root gives the next CA.
const CA_EXTENSIONS: &str = "[v3_ca]\nbasicConstraints = critical, CA:TRUE, pathlen:0\n\
keyUsage = critical, keyCertSign, cRLSign, digitalSignature\n\
subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n";

fn issue(server: &Server, requester: &Requester, cn: &str) -> Vec<u8> {
    let rep = requester.post(
        &server.scep_url(),
        &requester.message(
            &requester.csr(cn, Some(CHALLENGE)),
            &recipient(&server.scep_url()),
            &Opts::default(),
        ),
    );
    assert_eq!(
        rep.header.reply.pki_status.as_deref(),
        Some("0"),
        "{:?}",
        rep.header.reply
    );
    rep.certificates[0].clone()
}

#[test]
fn externally_signed_next_ca_installed_offline_then_activated() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let data = d.join("data");
    let args = ["--static-challenge", CHALLENGE];
    let mut server = Server::start_in(&data, &args);
    let old_leaf = openssl::write(
        d,
        "old.pem",
        scepd_ca::pem::encode(
            "CERTIFICATE",
            &issue(&server, &Requester::new(KeyBits::Rsa2048), "CN=old-device"),
        )
        .as_bytes(),
    );

    // Step one while the server runs: a key and a CSR, nothing recorded yet.
    let out = cli_ok(
        &server,
        &[
            "ca",
            "rollover",
            "--ca-csr",
            d.join("next.csr").to_str().unwrap(),
            "--ca-subject",
            "CN=scepd issuing CA 2,O=scepd",
        ],
    );
    assert!(out.contains("install-cert --next"), "{out}");
    assert!(role(&ca_list(&server), "next").is_empty());
    assert!(!caps(&server).contains("GetNextCACert"));

    // The external root signs it (OpenSSL).
    sign_externally(d, &[]);

    // Step two with the server stopped: `scepd serve` records it when it starts.
    server.terminate();
    let out = Command::new(crate::support::server::BIN)
        .args([
            "ca",
            "install-cert",
            "--next",
            "next.pem",
            "--chain",
            "root.pem",
            "--data",
            data.to_str().unwrap(),
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("records the next CA when it starts"));
    let server = Server::start_in(&data, &args);
    let list = ca_list(&server);
    let next = role(&list, "next")[0].clone();
    assert_eq!(next["subject"], "CN=scepd issuing CA 2,O=scepd");
    assert!(caps(&server).contains("GetNextCACert"));
    let audit = cli_ok(&server, &["audit", "export"]);
    assert!(audit.contains("ca.rollover"), "{audit}");

    // Activated: the new CA issues; the leaf chains to the external root.
    cli_ok(&server, &["ca", "activate-next"]);
    let leaf = openssl::write(
        d,
        "new.pem",
        scepd_ca::pem::encode(
            "CERTIFICATE",
            &issue(&server, &Requester::new(KeyBits::Rsa2048), "CN=new-device"),
        )
        .as_bytes(),
    );
    let (ok, text) = openssl::try_run(
        d,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "next.pem",
            leaf.to_str().unwrap(),
        ],
    );
    assert!(ok && text.contains(": OK"), "{text}");
    // GetCACert carries the chain (RA, the new CA, the root).
    let body = http::get(&format!("{}?operation=GetCACert", server.scep_url()))
        .unwrap()
        .body;
    assert_eq!(crate::support::requester::ca_certs(&body).len(), 3);
    // Each leaf's own CRL checks it: the new one against the new CA (under the root).
    let bundle = [
        std::fs::read(d.join("root.pem")).unwrap(),
        std::fs::read(d.join("next.pem")).unwrap(),
    ]
    .concat();
    let chain = openssl::write(d, "chain-bundle.pem", &bundle);
    let (ok, text) = verify_with_own_crl(&server.base, d, &chain, &leaf);
    assert!(ok && text.contains(": OK"), "{text}");
    let (ok, text) = verify_with_own_crl(&server.base, d, &server.ca_pem(), &old_leaf);
    assert!(ok && text.contains(": OK"), "{text}");
}

fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn served_ca_der(server: &Server) -> Vec<u8> {
    let body = http::get(&format!("{}?operation=GetCACert", server.scep_url()))
        .unwrap()
        .body;
    let certs = crate::support::requester::ca_certs(&body);
    let ca = certs
        .iter()
        .find(|c| c.tbs_certificate().subject() == c.tbs_certificate().issuer())
        .unwrap();
    der::Encode::to_der(ca).unwrap()
}

fn copy_generation(from: &Path, to: &Path, issuer: &str) {
    copy_secrets(&from.join("cas").join(issuer), &to.join("cas").join(issuer));
}

#[test]
fn three_nodes_on_postgresql_switch_together() {
    let Some(db) = ScratchDb::create("rollover::three_nodes_switch") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let nodes = nodes(tmp.path(), 3, &db.url, &["--static-challenge", CHALLENGE]);
    let old_ca = std::fs::read_to_string(nodes[0].ca_pem()).unwrap();
    let old_der = scepd_ca::pem::certificates(&old_ca).unwrap().remove(0);

    // Prepared on node 0: every node announces it (its certificates are in the store).
    cli_ok(&nodes[0], &["ca", "rollover"]);
    let next = role(&ca_list(&nodes[0]), "next")[0].clone();
    let issuer = next["issuer"].as_str().unwrap().to_string();
    let next_der = scepd_ca::pem::certificates(next["pem"].as_str().unwrap())
        .unwrap()
        .remove(0);
    for node in &nodes {
        wait_until("GetNextCACert on every node", || caps(node).contains("GetNextCACert"));
        let resp = http::get(&format!("{}?operation=GetNextCACert", node.scep_url())).unwrap();
        assert_eq!(resp.status, 200);
        let certs = crate::rollover::next_ca_certs(&resp.body);
        assert!(certs.iter().any(|c| der::Encode::to_der(c).unwrap() == next_der));
    }
    // The operator copies the new generation's files to node 1 only, for now.
    copy_generation(nodes[0].data(), nodes[1].data(), &issuer);
    wait_until("node 1 loads the next CA", || {
        role(&ca_list(&nodes[1]), "next")[0]["loaded"] == true
    });
    assert_eq!(role(&ca_list(&nodes[2]), "next")[0]["loaded"], false);

    // Scheduled a few seconds ahead: all switch at that second.
    let at = scepd_ca::time::unix_now() + 4;
    cli_ok(
        &nodes[1],
        &["ca", "activate-next", "--at", &scepd_ca::time::rfc3339(at)],
    );
    for node in &nodes {
        assert_eq!(served_ca_der(node), old_der);
    }
    while scepd_ca::time::unix_now() < at + 1 {
        std::thread::sleep(Duration::from_millis(100));
    }
    for node in &nodes[..2] {
        assert_eq!(served_ca_der(node), next_der, "switched at the scheduled moment");
        assert_eq!(http::get(&format!("{}/readyz", node.base)).unwrap().status, 200);
    }
    // Node 2 lacks the new CA's files: it says so and is taken out of service.
    let ready = http::get(&format!("{}/readyz", nodes[2].base)).unwrap();
    assert_eq!(ready.status, 503);
    assert!(ready.text().contains(&issuer), "{}", ready.text());
    // Once the files are there it loads them by itself.
    copy_generation(nodes[0].data(), nodes[2].data(), &issuer);
    wait_until("node 2 ready with the new CA", || {
        http::get(&format!("{}/readyz", nodes[2].base)).unwrap().status == 200
    });
    assert_eq!(served_ca_der(&nodes[2]), next_der);

    // Every node issues from the new CA; every node serves the same CRL of it.
    let next_pem = openssl::write(tmp.path(), "next.pem", next["pem"].as_str().unwrap().as_bytes());
    let ra = recipient(&nodes[0].scep_url());
    let mut numbers = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let requester = Requester::new(KeyBits::Rsa2048);
        let Outcome::Issued(_) = enroll(&requester, &ra, &node.scep_url(), &format!("CN=after-{i}"), CHALLENGE) else {
            panic!("node {i} refused")
        };
        let crl = http::get(&format!("{}/crl/{issuer}.crl", node.base)).unwrap();
        assert_eq!(crl.status, 200);
        let path = openssl::write(tmp.path(), &format!("crl{i}.der"), &crl.body);
        let (ok, text) = openssl::try_run(
            tmp.path(),
            &[
                "crl",
                "-inform",
                "DER",
                "-in",
                path.to_str().unwrap(),
                "-CAfile",
                next_pem.to_str().unwrap(),
                "-noout",
                "-crlnumber",
            ],
        );
        assert!(ok && text.contains("verify OK"), "{text}");
        numbers.push(text.lines().find(|l| l.starts_with("crlNumber")).unwrap().to_string());
    }
    assert!(
        numbers.windows(2).all(|w| w[0] == w[1]),
        "one CRL for all nodes: {numbers:?}"
    );
    for node in &nodes {
        let list = ca_list(node);
        assert_eq!(role(&list, "current")[0]["issuer"], issuer);
        assert_eq!(role(&list, "current")[0]["certificates"], 3);
        assert_eq!(role(&list, "retired").len(), 1);
    }
}

/// An external root (`root.pem`, made by OpenSSL) signs `DIR/next.csr` into `DIR/next.pem`
/// as a CA certificate, with the `openssl x509 -req` run under `wrapper` (e.g. faketime).
fn sign_externally(d: &Path, wrapper: &[&str]) {
    openssl::self_signed(d, "root.key", "root.pem", "/CN=External Root", 30, &[]);
    openssl::write(d, "ext.cnf", CA_EXTENSIONS.as_bytes());
    let sign = [
        "openssl",
        "x509",
        "-req",
        "-in",
        "next.csr",
        "-CA",
        "root.pem",
        "-CAkey",
        "root.key",
        "-CAcreateserial",
        "-out",
        "next.pem",
        "-days",
        "365",
        "-extfile",
        "ext.cnf",
        "-extensions",
        "v3_ca",
    ];
    let command = [wrapper, &sign[..]].concat();
    let out = Command::new(command[0])
        .args(&command[1..])
        .current_dir(d)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", command[0]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// An externally signed next CA whose validity starts later (signed here by OpenSSL under
/// faketime, two days ahead) cannot be activated before its notBefore: a CA issuing before it is
/// valid would hand out chains no client accepts. An activation scheduled after it is accepted.
#[test]
fn an_external_next_ca_is_not_activated_before_its_not_before() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let server = Server::start(&["--static-challenge", CHALLENGE]);
    cli_ok(
        &server,
        &["ca", "rollover", "--ca-csr", d.join("next.csr").to_str().unwrap()],
    );
    sign_externally(d, &["faketime", "-f", "+2d"]);
    let next = d.join("next.pem");
    cli_ok(
        &server,
        &[
            "ca",
            "install-cert",
            "--next",
            next.to_str().unwrap(),
            "--chain",
            d.join("root.pem").to_str().unwrap(),
        ],
    );

    let now = server.cli(&["ca", "activate-next"]);
    let why = String::from_utf8_lossy(&now.stderr);
    assert!(!now.status.success() && why.contains("notBefore"), "{why}");
    assert_eq!(role(&ca_list(&server), "next").len(), 1, "still the next CA");
    let later = scepd_ca::time::rfc3339(scepd_ca::time::unix_now() + 3 * 86_400);
    cli_ok(&server, &["ca", "activate-next", "--at", &later]);
    assert_eq!(role(&ca_list(&server), "next")[0]["activate_at"], later.as_str());
}
