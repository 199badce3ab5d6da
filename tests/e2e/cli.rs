//! The operator CLI: init (new, imported, two-step delegated), ca export, cert list/show.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use scepd_ca::KeyBits;

use crate::support::requester::{recipient, Opts};
use crate::support::server::BIN;
use crate::support::{openssl, Requester, Server};

const CHALLENGE: &str = "cli-test-challenge";

fn scepd(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_writes_private_keys_0600_and_export_prints_the_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let d = data.to_str().unwrap();
    let out = scepd(&[
        "init",
        "--data",
        d,
        "--key-bits",
        "3072",
        "--ca-subject",
        "CN=Test Issuing CA,O=Example",
        "--validity-days",
        "400",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    for key in ["ca.key", "ra.key", "admin.token"] {
        assert_eq!(mode(&data.join(key)), 0o600, "{key}");
    }
    let key_text = std::fs::read_to_string(data.join("ca.key")).unwrap();
    assert!(key_text.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8 PEM");
    let export = scepd(&["ca", "export", "--data", d]);
    assert!(export.status.success());
    assert_eq!(stdout(&export), std::fs::read_to_string(data.join("ca.pem")).unwrap());
    let exported = openssl::write(tmp.path(), "exported.pem", &export.stdout);
    let text = String::from_utf8(openssl::run(
        tmp.path(),
        &["x509", "-in", exported.to_str().unwrap(), "-noout", "-text"],
    ))
    .unwrap();
    assert!(
        text.contains("Public-Key: (3072 bit)") && text.contains("CN = Test Issuing CA"),
        "{text}"
    );
    assert!(
        text.contains("CA:TRUE") && text.contains("Certificate Sign, CRL Sign"),
        "{text}"
    );
    assert!(
        !text.contains("Key Encipherment"),
        "with an RA only the RA may carry keyEncipherment"
    );
    assert!(
        openssl::verifies(tmp.path(), &exported, &data.join("ra.pem")),
        "RA is issued by the CA"
    );
    // A second init refuses to overwrite.
    let again = scepd(&["init", "--data", d]);
    assert!(!again.status.success() && stderr(&again).contains("refusing to overwrite"));
    // A key readable by others is refused at start.
    std::fs::set_permissions(data.join("ca.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let serve = Command::new(BIN)
        .args(["serve", "--data", d, "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!serve.status.success());
    assert!(stderr(&serve).contains("chmod 600"), "{}", stderr(&serve));
}

/// An openssl-made root, and an intermediate signed by it with the given extensions.
fn openssl_root_and_intermediate(dir: &Path, intermediate_ext: &str, traditional_key: bool) {
    openssl::run(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "root.key",
            "-subj",
            "/CN=Enterprise Root",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            "root.pem",
        ],
    );
    let mut genrsa = vec!["genrsa", "-out", "int.key"];
    if traditional_key {
        genrsa.push("-traditional");
    }
    genrsa.push("2048");
    openssl::run(dir, &genrsa);
    openssl::run(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "int.key",
            "-subj",
            "/CN=Delegated Issuing CA/O=Example",
            "-out",
            "int.csr",
        ],
    );
    openssl::write(dir, "int.ext", intermediate_ext.as_bytes());
    openssl::run(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "int.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-CAcreateserial",
            "-days",
            "20",
            "-extfile",
            "int.ext",
            "-out",
            "int.pem",
        ],
    );
}

const CA_EXT: &str =
    "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature\n";

#[test]
fn imported_intermediate_with_pkcs1_key_issues_chained_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    openssl_root_and_intermediate(t, CA_EXT, true);
    assert!(
        std::fs::read_to_string(t.join("int.key"))
            .unwrap()
            .contains("BEGIN RSA PRIVATE KEY"),
        "PKCS#1"
    );
    let data = t.join("d");
    let out = scepd(&[
        "init",
        "--data",
        data.to_str().unwrap(),
        "--import-ca-cert",
        t.join("int.pem").to_str().unwrap(),
        "--import-ca-key",
        t.join("int.key").to_str().unwrap(),
        "--import-chain",
        t.join("root.pem").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&data.join("ca.key")), 0o600);
    let server = Server::start_in(&data, &["--static-challenge", CHALLENGE]);
    // GetCACert carries RA, the intermediate and the root.
    let body = crate::support::http::get(&format!("{}?operation=GetCACert", server.scep_url()))
        .unwrap()
        .body;
    assert_eq!(crate::support::requester::ca_certs(&body).len(), 3);
    let ra = recipient(&server.scep_url());
    let requester = Requester::new(KeyBits::Rsa2048);
    let rep = requester.post(
        &server.scep_url(),
        &requester.message(&requester.csr("CN=delegated", Some(CHALLENGE)), &ra, &Opts::default()),
    );
    let leaf = openssl::write(
        t,
        "leaf.pem",
        scepd_ca::pem::encode("CERTIFICATE", &rep.certificates[0]).as_bytes(),
    );
    let (ok, text) = openssl::try_run(
        t,
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "int.pem",
            leaf.to_str().unwrap(),
        ],
    );
    assert!(ok, "{text}");
}

#[test]
fn import_refuses_wrong_certificates_with_clear_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let import = |cert: &str, key: &str, extra: &[&str]| {
        let data = t.join(format!("d-{cert}-{key}-{}", extra.len()));
        let mut args = vec!["init", "--data", data.to_str().unwrap()];
        let (c, k) = (t.join(cert), t.join(key));
        args.extend_from_slice(&[
            "--import-ca-cert",
            c.to_str().unwrap(),
            "--import-ca-key",
            k.to_str().unwrap(),
        ]);
        args.extend_from_slice(extra);
        scepd(&args)
    };
    // Not a CA.
    openssl_root_and_intermediate(
        t,
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n",
        false,
    );
    let out = import("int.pem", "int.key", &[]);
    assert!(
        !out.status.success() && stderr(&out).contains("not a CA certificate"),
        "{}",
        stderr(&out)
    );
    // A CA without keyCertSign.
    openssl_root_and_intermediate(
        t,
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,cRLSign,digitalSignature\n",
        false,
    );
    let out = import("int.pem", "int.key", &[]);
    assert!(
        !out.status.success() && stderr(&out).contains("lacks keyCertSign"),
        "{}",
        stderr(&out)
    );
    // A key that is not the certificate's.
    openssl_root_and_intermediate(t, CA_EXT, false);
    let out = import("int.pem", "root.key", &[]);
    assert!(
        !out.status.success() && stderr(&out).contains("does not match the private key"),
        "{}",
        stderr(&out)
    );
    // A CA without keyEncipherment acting as its own RA: a warning, not a refusal.
    let out = import("int.pem", "int.key", &["--no-ra"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning") && stderr(&out).contains("keyEncipherment"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn two_step_delegated_ca_through_a_csr() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = t.join("d");
    let d = data.to_str().unwrap();
    let out = scepd(&[
        "init",
        "--data",
        d,
        "--ca-csr",
        t.join("ca.csr").to_str().unwrap(),
        "--ca-subject",
        "CN=Two Step CA,O=Example",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&data.join("ca.key.pending")), 0o600);
    let (ok, text) = openssl::try_run(t, &["req", "-in", "ca.csr", "-verify", "-noout", "-subject"]);
    assert!(ok && text.contains("Two Step CA"), "{text}");
    openssl::run(
        t,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "root.key", "-subj", "/CN=Root", "-days", "30",
            "-out", "root.pem",
        ],
    );
    openssl::write(t, "ca.ext", CA_EXT.as_bytes());
    openssl::run(
        t,
        &[
            "x509",
            "-req",
            "-in",
            "ca.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-CAcreateserial",
            "-days",
            "20",
            "-extfile",
            "ca.ext",
            "-out",
            "signed.pem",
        ],
    );
    let out = scepd(&[
        "ca",
        "install-cert",
        "--data",
        d,
        t.join("signed.pem").to_str().unwrap(),
        "--chain",
        t.join("root.pem").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!data.join("ca.key.pending").exists());
    let export = scepd(&["ca", "export", "--data", d]);
    assert_eq!(
        stdout(&export),
        std::fs::read_to_string(t.join("signed.pem"))
            .map(|s| {
                let der = scepd_ca::pem::certificates(&s).unwrap().remove(0);
                scepd_ca::pem::encode("CERTIFICATE", &der)
            })
            .unwrap()
    );
}

#[test]
fn cert_list_and_show_through_the_admin_api() {
    let server = Server::start(&["--static-challenge", CHALLENGE]);
    let ra = recipient(&server.scep_url());
    let requester = Requester::new(KeyBits::Rsa2048);
    let mut serials = Vec::new();
    for cn in ["list-a", "list-b"] {
        let rep = requester.post(
            &server.scep_url(),
            &requester.message(
                &requester.csr(&format!("CN={cn}"), Some(CHALLENGE)),
                &ra,
                &Opts::default(),
            ),
        );
        let cert: x509_cert::Certificate = der::Decode::from_der(&rep.certificates[0]).unwrap();
        serials.push(
            cert.tbs_certificate()
                .serial_number()
                .as_bytes()
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<String>(),
        );
    }
    let out = server.cli(&["cert", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    for item in list {
        for key in ["serial", "subject", "not_before", "not_after", "status", "device_id"] {
            assert!(item.get(key).is_some(), "{key} missing in {item}");
        }
        assert_eq!(item["status"], "active");
        assert!(serials.contains(&item["serial"].as_str().unwrap().to_string()));
    }
    // `cert show` accepts lower case with colons and prints the PEM.
    let colons: String = serials[0]
        .to_lowercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let show = server.cli(&["cert", "show", &colons]);
    assert!(show.status.success(), "{}", stderr(&show));
    assert!(stdout(&show).contains("status: active") && stdout(&show).contains("BEGIN CERTIFICATE"));
    let missing = server.cli(&["cert", "show", &"AB".repeat(16)]);
    assert!(!missing.status.success() && stderr(&missing).contains("404"));
    // The admin API wants the token.
    let bad = std::env::temp_dir().join(format!("bad-token-{}", std::process::id()));
    std::fs::write(&bad, "not-the-token").unwrap();
    let out = server.cli(&["cert", "list", "--token-file", bad.to_str().unwrap()]);
    assert!(
        !out.status.success() && stderr(&out).contains("401"),
        "{}",
        stderr(&out)
    );
    let resp = crate::support::http::get(&format!("{}/api/v1/certificates", server.base)).unwrap();
    assert_eq!(resp.status, 401);
    assert!(resp.header("www-authenticate").is_some());
}

#[test]
fn passphrase_encrypted_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = t.join("d");
    let pw = openssl::write(t, "pw", b"correct horse battery staple\n");
    let out = scepd(&[
        "init",
        "--data",
        data.to_str().unwrap(),
        "--key-passphrase-file",
        pw.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    for key in ["ca.key", "ra.key"] {
        let text = std::fs::read_to_string(data.join(key)).unwrap();
        assert!(text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"), "{key}");
        // OpenSSL reads it with the passphrase (PBES2).
        let (ok, err) = openssl::try_run(
            t,
            &[
                "pkey",
                "-in",
                data.join(key).to_str().unwrap(),
                "-passin",
                &format!("file:{}", pw.display()),
                "-noout",
            ],
        );
        assert!(ok, "{err}");
    }
    // Without the passphrase the server refuses to start, saying why.
    let refused = Command::new(BIN)
        .args(["serve", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(
        !refused.status.success() && stderr(&refused).contains("passphrase"),
        "{}",
        stderr(&refused)
    );
    // With it (file or environment) it serves.
    let server = Server::start_in(
        &data,
        &[
            "--static-challenge",
            CHALLENGE,
            "--key-passphrase-file",
            pw.to_str().unwrap(),
        ],
    );
    let ra = recipient(&server.scep_url());
    let requester = Requester::new(KeyBits::Rsa2048);
    let rep = requester.post(
        &server.scep_url(),
        &requester.message(&requester.csr("CN=pw", Some(CHALLENGE)), &ra, &Opts::default()),
    );
    assert_eq!(rep.header.reply.pki_status.as_deref(), Some("0"));
    drop(server);
    let wrong = Command::new(BIN)
        .args(["serve", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .env("SCEPD_KEY_PASSPHRASE", "wrong")
        .output()
        .unwrap();
    assert!(
        !wrong.status.success() && stderr(&wrong).contains("wrong passphrase"),
        "{}",
        stderr(&wrong)
    );
}
