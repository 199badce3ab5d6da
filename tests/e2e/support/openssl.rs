//! The `openssl` command line: another implementation, to make inputs and check outputs.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `openssl ARGS` in `dir`; panics with its stderr on failure.
pub fn run(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl on PATH");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `openssl ARGS` in `dir`; returns whether it succeeded and its combined output.
pub fn try_run(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl on PATH");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// A new RSA-2048 key `key` and a self-signed certificate `cert` for `subject`, valid `days`,
/// with `extra` arguments (e.g. `-addext`), made by `openssl req -x509` in `dir`.
pub fn self_signed(dir: &Path, key: &str, cert: &str, subject: &str, days: u32, extra: &[&str]) {
    let days = days.to_string();
    let args = [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-subj", subject, "-days", &days,
    ];
    run(dir, &[&args[..], extra].concat());
}

/// `openssl verify -CAfile CA LEAF` succeeds.
pub fn verifies(dir: &Path, ca_pem: &Path, leaf_pem: &Path) -> bool {
    let (ok, text) = try_run(
        dir,
        &[
            "verify",
            "-CAfile",
            ca_pem.to_str().unwrap(),
            leaf_pem.to_str().unwrap(),
        ],
    );
    ok && text.contains(": OK")
}

/// A one-line field of `openssl x509 -noout -FIELD`.
pub fn x509_field(dir: &Path, pem: &Path, field: &str) -> String {
    String::from_utf8(run(dir, &["x509", "-in", pem.to_str().unwrap(), "-noout", field]))
        .unwrap()
        .trim()
        .to_string()
}

/// The public key of a certificate, PEM (to compare with the client's key).
pub fn cert_pubkey(dir: &Path, pem: &Path) -> String {
    String::from_utf8(run(dir, &["x509", "-in", pem.to_str().unwrap(), "-noout", "-pubkey"])).unwrap()
}

pub fn key_pubkey(dir: &Path, key: &Path) -> String {
    String::from_utf8(run(dir, &["pkey", "-in", key.to_str().unwrap(), "-pubout"])).unwrap()
}

/// A new RSA key (`client.key`) and a CSR for it made by `openssl req`, DER, with an optional
/// challengePassword.
pub fn csr(dir: &Path, cn: &str, bits: u32, challenge: Option<&str>) -> Vec<u8> {
    let attrs = challenge
        .map(|c| format!("attributes = attrs\n[attrs]\nchallengePassword = {c}\n"))
        .unwrap_or_default();
    write(
        dir,
        "req.cnf",
        format!("[req]\nprompt = no\ndistinguished_name = dn\n{attrs}[dn]\nCN = {cn}\nO = scepd tests\n").as_bytes(),
    );
    run(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            &format!("rsa:{bits}"),
            "-nodes",
            "-keyout",
            "client.key",
            "-config",
            "req.cnf",
            "-outform",
            "DER",
            "-out",
            "req.der",
        ],
    );
    std::fs::read(dir.join("req.der")).unwrap()
}
