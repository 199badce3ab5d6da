//! Real third-party SCEP clients from Debian packages: micromdm's `scepclient` (package `scep`)
//! and `certmonger`. Each issued certificate is checked with `openssl`.

use std::path::Path;
use std::process::Command;

use crate::support::{openssl, Server};

const CHALLENGE: &str = "client-test-challenge";

/// micromdm's scepclient: POST, single DES and SHA-1 only (so the server needs --allow-des),
/// a self-signed signer over the CSR key. It keeps csr.pem/self.pem in its working directory.
pub fn scepclient(dir: &Path, scep_url: &str, challenge: &str, cn: &str) -> std::process::Output {
    Command::new("scepclient")
        .args([
            "-server-url",
            scep_url,
            "-challenge",
            challenge,
            "-private-key",
            "key.pem",
            "-certificate",
            "cert.pem",
            "-cn",
            cn,
        ])
        .current_dir(dir)
        .output()
        .expect("scepclient (Debian package `scep`) on PATH")
}

fn check_issued(dir: &Path, server: &Server, cert: &Path, key: &Path, cn: &str) {
    assert!(
        openssl::verifies(dir, &server.ca_pem(), cert),
        "{} does not verify against the CA",
        cert.display()
    );
    let subject = openssl::x509_field(dir, cert, "-subject");
    assert!(subject.contains(&format!("CN = {cn}")), "{subject}");
    assert_eq!(
        openssl::cert_pubkey(dir, cert),
        openssl::key_pubkey(dir, key),
        "issued for another key"
    );
}

fn scepclient_enrolls(server_args: &[&str]) {
    let mut args = vec!["--static-challenge", CHALLENGE, "--allow-des"];
    args.extend_from_slice(server_args);
    let server = Server::start(&args);
    let dir = tempfile::tempdir().unwrap();
    let out = scepclient(dir.path(), &server.scep_url(), CHALLENGE, "scepclient-device");
    assert!(
        out.status.success(),
        "scepclient failed: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    check_issued(
        dir.path(),
        &server,
        &dir.path().join("cert.pem"),
        &dir.path().join("key.pem"),
        "scepclient-device",
    );
}

#[test]
fn micromdm_scepclient_enrolls_with_ra() {
    scepclient_enrolls(&[]);
}

#[test]
fn micromdm_scepclient_enrolls_with_ca_as_ra() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    assert!(Command::new(crate::support::server::BIN)
        .args(["init", "--no-ra", "--data", data.to_str().unwrap()])
        .status()
        .unwrap()
        .success());
    let server = Server::start_in(&data, &["--static-challenge", CHALLENGE, "--allow-des"]);
    let dir = tempfile::tempdir().unwrap();
    let out = scepclient(dir.path(), &server.scep_url(), CHALLENGE, "scepclient-nora");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    check_issued(
        dir.path(),
        &server,
        &dir.path().join("cert.pem"),
        &dir.path().join("key.pem"),
        "scepclient-nora",
    );
}

/// certmonger through a private daemon (tests/support/certmonger-enroll.sh): GET
/// PKIOperation (≈3.6 KB URLs), AES-256/SHA-256, and a self-signed signer certificate with a
/// 32-byte serial — longer than RFC 5280 allows, so this is the real-bytes test of that leniency.
pub fn certmonger(scep_url: &str, ca_pem: &Path, challenge: &str, cn: &str, out: &Path) -> std::process::Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/certmonger-enroll.sh");
    Command::new("bash")
        .arg(script)
        .args([scep_url, ca_pem.to_str().unwrap(), challenge, cn, out.to_str().unwrap()])
        .env("CM_TIMEOUT", "60")
        .output()
        .expect("bash")
}

fn certmonger_enrolls(data_init: &[&str], cn: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let mut init = vec!["init", "--data", data.to_str().unwrap()];
    init.extend_from_slice(data_init);
    assert!(Command::new(crate::support::server::BIN)
        .args(&init)
        .status()
        .unwrap()
        .success());
    let server = Server::start_in(&data, &["--static-challenge", CHALLENGE]);
    let out_dir = tmp.path().join("cm");
    let out = certmonger(&server.scep_url(), &server.ca_pem(), CHALLENGE, cn, &out_dir);
    assert!(
        out.status.success(),
        "certmonger failed: {}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    check_issued(
        tmp.path(),
        &server,
        &out_dir.join("cert.pem"),
        &out_dir.join("key.pem"),
        cn,
    );
    // certmonger sends PKIOperation with GET.
    assert!(server.log_text().contains("method=GET path=/scep") && server.log_text().contains("PKIOperation"));
}

#[test]
fn certmonger_enrolls_with_ra() {
    certmonger_enrolls(&[], "certmonger-device");
}

#[test]
fn certmonger_enrolls_with_ca_as_ra() {
    certmonger_enrolls(&["--no-ra"], "certmonger-nora");
}
