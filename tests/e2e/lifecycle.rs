//! Certificate lifecycle: re-enrollment supersedes, revocation shows in the CRL and OCSP (checked
//! with `openssl crl`, `openssl verify -crl_check` and `openssl ocsp`), RenewalReq, GetCert,
//! GetCRL, CertPoll, and state across a restart.

use std::path::Path;

use der::{Decode, Encode};
use scepd::scep::MessageType;
use scepd_ca::{Identity, KeyBits};

use crate::clients::scepclient;
use crate::identity::enroll_bound;
use crate::support::requester::{recipient, Opts};
use crate::support::{http, openssl, Requester, Server};

const CHALLENGE: &str = "lifecycle-challenge";

pub(crate) fn list(server: &Server, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["cert", "list", "--json"];
    all.extend_from_slice(args);
    let out = server.cli(&all);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

pub(crate) fn fetch_crl(server: &Server, dir: &Path) -> (String, http::Response) {
    let resp = http::get(&format!("{}/crl", server.base)).unwrap();
    assert_eq!(resp.status, 200);
    openssl::write(dir, "crl.der", &resp.body);
    openssl::run(dir, &["crl", "-inform", "DER", "-in", "crl.der", "-out", "crl.pem"]);
    // The CRL verifies with the CA.
    let (ok, text) = openssl::try_run(
        dir,
        &[
            "crl",
            "-in",
            "crl.pem",
            "-CAfile",
            server.ca_pem().to_str().unwrap(),
            "-noout",
        ],
    );
    assert!(ok && text.contains("verify OK"), "{text}");
    (
        String::from_utf8(openssl::run(dir, &["crl", "-in", "crl.pem", "-noout", "-text"])).unwrap(),
        resp,
    )
}

pub(crate) fn crl_number(text: &str) -> u64 {
    let line = text
        .lines()
        .skip_while(|l| !l.contains("X509v3 CRL Number"))
        .nth(1)
        .unwrap();
    line.trim().parse().unwrap()
}

pub(crate) fn ocsp_status(server: &Server, dir: &Path, leaf: &Path) -> String {
    ocsp_status_from(server, dir, &server.ca_pem(), leaf)
}

/// `openssl ocsp` for `leaf`, issued by the CA certificate `ca`: the verified response's text.
pub(crate) fn ocsp_status_from(server: &Server, dir: &Path, ca: &Path, leaf: &Path) -> String {
    let (ok, text) = openssl::try_run(
        dir,
        &[
            "ocsp",
            "-issuer",
            ca.to_str().unwrap(),
            "-cert",
            leaf.to_str().unwrap(),
            "-url",
            &format!("{}/ocsp", server.base),
            "-CAfile",
            ca.to_str().unwrap(),
        ],
    );
    assert!(ok, "{text}");
    assert!(text.contains("Response verify OK"), "{text}");
    assert!(!text.contains("WARNING: no nonce"), "nonce echoed: {text}");
    text
}

fn verify_crl_check(server: &Server, dir: &Path, leaf: &Path) -> (bool, String) {
    openssl::try_run(
        dir,
        &[
            "verify",
            "-crl_check",
            "-CAfile",
            server.ca_pem().to_str().unwrap(),
            "-CRLfile",
            "crl.pem",
            leaf.to_str().unwrap(),
        ],
    )
}

#[test]
fn reenroll_revoke_crl_ocsp_and_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    // scepclient re-enrolls with the static challenge: an unbound request, allowed to supersede.
    let unbound_supersedes = ["--unbound-reenrollment", "allow"];
    let mut server = Server::start_in(
        &data,
        &[
            &["--static-challenge", CHALLENGE, "--allow-des"][..],
            &unbound_supersedes,
        ]
        .concat(),
    );
    let d = tmp.path();
    // Enroll, then re-enroll the same device with a new key (what an MDM re-push does).
    let first_dir = d.join("first");
    let second_dir = d.join("second");
    for dir in [&first_dir, &second_dir] {
        std::fs::create_dir_all(dir).unwrap();
        let out = scepclient(dir, &server.scep_url(), CHALLENGE, "laptop-42");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let certs = list(&server, &["--device", "laptop-42"]);
    assert_eq!(certs.len(), 2, "a second PKCSReq for the same device is never refused");
    let (newest, older) = (&certs[0], &certs[1]);
    assert_eq!(newest["status"], "active");
    assert_eq!(newest["kind"], "reenroll");
    assert_eq!(older["status"], "superseded");
    assert_eq!(older["superseded_by"], newest["serial"]);
    let leaf_old = first_dir.join("cert.pem");
    let leaf_new = second_dir.join("cert.pem");

    // The leaves point at the CRL and OCSP here, and /ca.crt is the CA.
    let text = String::from_utf8(openssl::run(
        d,
        &["x509", "-in", leaf_new.to_str().unwrap(), "-noout", "-text"],
    ))
    .unwrap();
    assert!(
        text.contains(&format!("URI:{}/crl", server.base))
            && text.contains(&format!("OCSP - URI:{}/ocsp", server.base))
            && text.contains(&format!("CA Issuers - URI:{}/ca.crt", server.base)),
        "{text}"
    );
    let ca_der = http::get(&format!("{}/ca.crt", server.base)).unwrap();
    assert_eq!(ca_der.header("content-type"), Some("application/pkix-cert"));
    assert_eq!(
        scepd_ca::pem::encode("CERTIFICATE", &ca_der.body),
        std::fs::read_to_string(server.ca_pem()).unwrap()
    );

    let (crl_text, resp) = fetch_crl(&server, d);
    let number_before = crl_number(&crl_text);
    assert!(crl_text.contains("No Revoked Certificates"), "{crl_text}");
    for h in ["etag", "last-modified", "cache-control", "expires"] {
        assert!(resp.header(h).is_some(), "{h} missing");
    }
    assert_eq!(resp.header("content-type"), Some("application/pkix-crl"));
    assert!(ocsp_status(&server, d, &leaf_new).contains(": good"));

    // Revoke the newest with a reason (lower case with colons).
    let serial = newest["serial"].as_str().unwrap().to_string();
    let colons: String = serial
        .to_lowercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let out = server.cli(&["cert", "revoke", &colons, "--reason", "keyCompromise"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        server
            .cli(&["cert", "revoke", &serial, "--reason", "keyCompromise"])
            .status
            .success(),
        "idempotent"
    );
    let unknown = server.cli(&["cert", "revoke", &"4A".repeat(16)]);
    assert!(!unknown.status.success() && String::from_utf8_lossy(&unknown.stderr).contains("404"));

    let (crl_text, _) = fetch_crl(&server, d);
    assert!(
        crl_text.contains(&format!("Serial Number: {serial}")) && crl_text.contains("Key Compromise"),
        "{crl_text}"
    );
    let number_after = crl_number(&crl_text);
    assert!(number_after > number_before, "CRL number must increase");
    let (ok, text) = verify_crl_check(&server, d, &leaf_new);
    assert!(!ok && text.contains("certificate revoked"), "{text}");
    let (ok, text) = verify_crl_check(&server, d, &leaf_old);
    assert!(ok, "the superseded certificate stays valid: {text}");
    let revoked = ocsp_status(&server, d, &leaf_new);
    assert!(
        revoked.contains(": revoked") && revoked.contains("keyCompromise"),
        "{revoked}"
    );
    assert!(ocsp_status(&server, d, &leaf_old).contains(": good"));

    // OCSP over GET, with the request made by openssl.
    openssl::run(
        d,
        &[
            "ocsp",
            "-issuer",
            server.ca_pem().to_str().unwrap(),
            "-cert",
            leaf_new.to_str().unwrap(),
            "-reqout",
            "req.der",
            "-no_nonce",
        ],
    );
    let b64 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        std::fs::read(d.join("req.der")).unwrap(),
    );
    let resp = http::get(&format!(
        "{}/ocsp/{}",
        server.base,
        b64.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D")
    ))
    .unwrap();
    assert_eq!(resp.header("content-type"), Some("application/ocsp-response"));
    openssl::write(d, "resp.der", &resp.body);
    let (ok, text) = openssl::try_run(
        d,
        &[
            "ocsp",
            "-respin",
            "resp.der",
            "-issuer",
            server.ca_pem().to_str().unwrap(),
            "-cert",
            leaf_new.to_str().unwrap(),
            "-CAfile",
            server.ca_pem().to_str().unwrap(),
        ],
    );
    assert!(ok && text.contains(": revoked"), "{text}");

    // PEM forms, and the other CRL path.
    let pem = http::get(&format!("{}/crl?format=pem", server.base)).unwrap();
    assert!(pem.text().starts_with("-----BEGIN X509 CRL-----"));
    let pem = http::request(
        "GET",
        &format!("{}/crl/scepd.crl", server.base),
        &[("Accept", "application/x-pem-file")],
        b"",
    )
    .unwrap();
    assert!(pem.text().starts_with("-----BEGIN X509 CRL-----"));

    // Device revoke takes the superseded one too; the CRL number moves on.
    let out = server.cli(&["device", "revoke", "laptop-42", "--reason", "cessationOfOperation"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(older["serial"].as_str().unwrap()));
    let (crl_text, _) = fetch_crl(&server, d);
    let number_device = crl_number(&crl_text);
    assert!(number_device > number_after);
    assert!(crl_text.contains("Cessation Of Operation"), "{crl_text}");

    // After a crash and restart: same statuses, same CRL entries, CRL number never back.
    server.kill();
    let server = Server::start_in(
        &data,
        &[
            &["--static-challenge", CHALLENGE, "--allow-des"][..],
            &unbound_supersedes,
        ]
        .concat(),
    );
    let certs = list(&server, &["--device", "laptop-42"]);
    assert!(certs.iter().all(|c| c["status"] == "revoked"), "{certs:?}");
    assert_eq!(
        certs.iter().find(|c| c["serial"] == serial.as_str()).unwrap()["revocation_reason"],
        "keyCompromise"
    );
    // (The store keeps the published CRL: the restarted server serves that one, not an older.)
    let (crl_text, _) = fetch_crl(&server, d);
    assert!(crl_number(&crl_text) >= number_device);
    assert!(crl_text.contains(&format!("Serial Number: {serial}")));
    assert!(ocsp_status(&server, d, &leaf_old).contains(": revoked"));
}

fn enroll(server: &Server, requester: &Requester, cn: &str) -> Vec<u8> {
    let ra = recipient(&server.scep_url());
    let rep = requester.post(
        &server.scep_url(),
        &requester.message(&requester.csr(cn, Some(CHALLENGE)), &ra, &Opts::default()),
    );
    assert_eq!(
        rep.header.reply.pki_status.as_deref(),
        Some("0"),
        "{:?}",
        rep.header.reply
    );
    rep.certificates[0].clone()
}

/// A requester that signs with an issued certificate and its key (how RenewalReq is signed).
pub(crate) fn holder_of(cert_der: &[u8], key_pem: &str) -> Requester {
    let cert = x509_cert::Certificate::from_der(cert_der).unwrap();
    Requester {
        identity: Identity {
            cert,
            der: cert_der.to_vec(),
            key: Box::new(scepd_ca::RsaKey::from_pem(key_pem).unwrap()),
        },
    }
}

pub(crate) fn renew(server: &Server, holder: &Requester, csr: &[u8]) -> scepd::scep::client::CertRep {
    let ra = recipient(&server.scep_url());
    let opts = Opts {
        message_type: MessageType::RenewalReq,
        ..Default::default()
    };
    holder.post(&server.scep_url(), &holder.message(csr, &ra, &opts))
}

fn assert_failure(rep: &scepd::scep::client::CertRep, fail_info: &str) {
    assert_eq!(
        rep.header.reply.pki_status.as_deref(),
        Some("2"),
        "{:?}",
        rep.header.reply
    );
    assert_eq!(
        rep.header.reply.fail_info.as_deref(),
        Some(fail_info),
        "{:?}",
        rep.header.reply
    );
}

#[test]
fn renewal_req_window_key_and_signer_checks() {
    let server = Server::start(&["--static-challenge", CHALLENGE, "--renewal-window", "100"]);
    let original = Requester::new(KeyBits::Rsa2048);
    let cert1 = enroll(&server, &original, "CN=renewing-device");
    let holder = holder_of(&cert1, &original.key_pem());
    let next = Requester::new(KeyBits::Rsa2048);

    // A renewal keeps the identity: another subject is refused.
    let rep = renew(
        &server,
        &holder,
        &Requester::new(KeyBits::Rsa2048).csr("CN=someone-else", None),
    );
    assert_failure(&rep, "2");
    assert_eq!(
        rep.header.reply.fail_info_text.as_deref(),
        Some("a renewal must keep the subject and subjectAltName")
    );
    // The same key again is refused (allow_key_reuse is off).
    assert_failure(&renew(&server, &holder, &original.csr("CN=renewing-device", None)), "2");
    // A new key, no challenge needed: renewed, same device, the old one superseded.
    let rep = renew(&server, &holder, &next.csr("CN=renewing-device", None));
    assert_eq!(
        rep.header.reply.pki_status.as_deref(),
        Some("0"),
        "{:?}",
        rep.header.reply
    );
    let certs = list(&server, &["--device", "renewing-device"]);
    assert_eq!(certs.len(), 2);
    assert_eq!(certs[0]["kind"], "renewal");
    assert_eq!(certs[1]["status"], "superseded");

    let cert2 = rep.certificates[0].clone();
    // The superseded certificate cannot renew (it would supersede the current one).
    let again = renew(
        &server,
        &holder,
        &Requester::new(KeyBits::Rsa2048).csr("CN=renewing-device", None),
    );
    assert_eq!(
        again.header.reply.fail_info_text.as_deref(),
        Some("the certificate to renew is superseded")
    );
    // Revoked signer → refused.
    let holder2 = holder_of(&cert2, &next.key_pem());
    let serial2 = certs[0]["serial"].as_str().unwrap();
    assert!(server.cli(&["cert", "revoke", serial2]).status.success());
    assert_failure(
        &renew(
            &server,
            &holder2,
            &Requester::new(KeyBits::Rsa2048).csr("CN=renewing-device", None),
        ),
        "2",
    );

    // A signer from another CA → badRequest.
    let other_dir = tempfile::tempdir().unwrap();
    let other_data = other_dir.path().join("d");
    let init = std::process::Command::new(crate::support::server::BIN)
        .args([
            "init",
            "--data",
            other_data.to_str().unwrap(),
            "--ca-subject",
            "CN=Another CA,O=Elsewhere",
        ])
        .output()
        .unwrap();
    assert!(init.status.success());
    let other = Server::start_in(&other_data, &["--static-challenge", CHALLENGE]);
    let foreign = Requester::new(KeyBits::Rsa2048);
    let foreign_cert = enroll(&other, &foreign, "CN=foreign");
    assert_failure(
        &renew(
            &server,
            &holder_of(&foreign_cert, &foreign.key_pem()),
            &next.csr("CN=foreign", None),
        ),
        "2",
    );
    // A self-made certificate that claims this CA as issuer: unknown → badCertId.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca_subject = openssl::x509_field(d, &server.ca_pem(), "-subject")
        .trim_start_matches("subject=")
        .to_string();
    openssl::self_signed(d, "fake.key", "self.pem", "/CN=impostor", 1, &[]);
    openssl::write(d, "fake.ext", b"basicConstraints=CA:FALSE\n");
    let subj = format!(
        "/{}",
        ca_subject
            .split(", ")
            .map(|p| p.replace(" = ", "="))
            .collect::<Vec<_>>()
            .join("/")
    );
    openssl::run(
        d,
        &["req", "-new", "-key", "fake.key", "-subj", &subj, "-out", "ca-name.csr"],
    );
    openssl::run(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "ca-name.csr",
            "-signkey",
            "fake.key",
            "-days",
            "1",
            "-out",
            "fake-ca.pem",
        ],
    );
    openssl::run(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "ca-name.csr",
            "-CA",
            "fake-ca.pem",
            "-CAkey",
            "fake.key",
            "-set_serial",
            "0x4242424242424242424242424242424242",
            "-days",
            "1",
            "-out",
            "fake-leaf.pem",
            "-subj",
            "/CN=impostor",
        ],
    );
    let fake_der = scepd_ca::pem::certificates(&std::fs::read_to_string(d.join("fake-leaf.pem")).unwrap())
        .unwrap()
        .remove(0);
    let impostor = holder_of(&fake_der, &std::fs::read_to_string(d.join("fake.key")).unwrap());
    assert_failure(&renew(&server, &impostor, &next.csr("CN=impostor", None)), "4");
}

#[test]
fn renewal_outside_the_window_is_refused() {
    let server = Server::start(&["--static-challenge", CHALLENGE]);
    let original = Requester::new(KeyBits::Rsa2048);
    let cert = enroll(&server, &original, "CN=too-early");
    let rep = renew(
        &server,
        &holder_of(&cert, &original.key_pem()),
        &Requester::new(KeyBits::Rsa2048).csr("CN=too-early", None),
    );
    assert_failure(&rep, "2");
    assert_eq!(
        rep.header.reply.fail_info_text.as_deref(),
        Some("outside the renewal window")
    );
}

#[test]
fn get_cert_get_crl_and_cert_poll() {
    let server = Server::start(&["--static-challenge", CHALLENGE]);
    let requester = Requester::new(KeyBits::Rsa2048);
    let ra = recipient(&server.scep_url());
    let tid = crate::support::requester::random_id();
    let rep = requester.post(
        &server.scep_url(),
        &requester.message(
            &requester.csr("CN=queried", Some(CHALLENGE)),
            &ra,
            &Opts {
                transaction_id: &tid,
                ..Default::default()
            },
        ),
    );
    let issued = x509_cert::Certificate::from_der(&rep.certificates[0]).unwrap();
    let ias = scepd::scep::asn1::IssuerAndSerial {
        issuer: issued.tbs_certificate().issuer().clone(),
        serial: der::asn1::Int::new(issued.tbs_certificate().serial_number().as_bytes()).unwrap(),
    };
    let ias_der = ias.to_der().unwrap();

    // GetCert, checked with openssl: the CertRep verifies and decrypts to the certificate.
    let get = requester.message(
        &ias_der,
        &ra,
        &Opts {
            message_type: MessageType::GetCert,
            ..Default::default()
        },
    );
    let resp = http::post(
        &format!("{}?operation=PKIOperation", server.scep_url()),
        "application/x-pki-message",
        &get,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl::write(d, "rep.der", &resp.body);
    openssl::write(
        d,
        "signer.pem",
        scepd_ca::pem::encode("CERTIFICATE", &requester.identity.der).as_bytes(),
    );
    openssl::write(d, "signer.key", requester.key_pem().as_bytes());
    openssl::run(
        d,
        &[
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            "rep.der",
            "-CAfile",
            server.ca_pem().to_str().unwrap(),
            "-purpose",
            "any",
            "-out",
            "env.der",
        ],
    );
    openssl::run(
        d,
        &[
            "cms",
            "-decrypt",
            "-inform",
            "DER",
            "-in",
            "env.der",
            "-recip",
            "signer.pem",
            "-inkey",
            "signer.key",
            "-out",
            "certs.p7",
        ],
    );
    let printed = String::from_utf8(openssl::run(
        d,
        &["pkcs7", "-inform", "DER", "-in", "certs.p7", "-print_certs", "-noout"],
    ))
    .unwrap();
    assert!(printed.contains("CN = queried"), "{printed}");

    // GetCRL: the CRL in a certs-only SignedData; openssl reads it.
    let ca_ias = {
        let ca =
            x509_cert::Certificate::from_der(&http::get(&format!("{}/ca.crt", server.base)).unwrap().body).unwrap();
        scepd::scep::asn1::IssuerAndSerial {
            issuer: ca.tbs_certificate().issuer().clone(),
            serial: der::asn1::Int::new(ca.tbs_certificate().serial_number().as_bytes()).unwrap(),
        }
    };
    let rep = requester.post(
        &server.scep_url(),
        &requester.message(
            &ca_ias.to_der().unwrap(),
            &ra,
            &Opts {
                message_type: MessageType::GetCrl,
                ..Default::default()
            },
        ),
    );
    assert_eq!(rep.crls.len(), 1);
    openssl::write(d, "got.crl", &rep.crls[0]);
    let (ok, text) = openssl::try_run(
        d,
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "got.crl",
            "-CAfile",
            server.ca_pem().to_str().unwrap(),
            "-noout",
        ],
    );
    assert!(ok && text.contains("verify OK"), "{text}");

    // CertPoll for the issued transaction → the certificate; for an unknown one → badCertId.
    let ias_subject = {
        #[derive(der::Sequence)]
        struct IssuerAndSubject {
            issuer: x509_cert::name::Name,
            subject: x509_cert::name::Name,
        }
        IssuerAndSubject {
            issuer: issued.tbs_certificate().issuer().clone(),
            subject: issued.tbs_certificate().subject().clone(),
        }
        .to_der()
        .unwrap()
    };
    let poll = requester.post(
        &server.scep_url(),
        &requester.message(
            &ias_subject,
            &ra,
            &Opts {
                message_type: MessageType::CertPoll,
                transaction_id: &tid,
                ..Default::default()
            },
        ),
    );
    assert_eq!(poll.certificates, vec![issued.to_der().unwrap()]);
    let unknown = requester.post(
        &server.scep_url(),
        &requester.message(
            &ias_subject,
            &ra,
            &Opts {
                message_type: MessageType::CertPoll,
                ..Default::default()
            },
        ),
    );
    assert_failure(&unknown, "4");
    // GetCert for a serial never issued → badCertId.
    let missing = scepd::scep::asn1::IssuerAndSerial {
        issuer: ias.issuer.clone(),
        serial: der::asn1::Int::new(&[0x42; 16]).unwrap(),
    };
    let rep = requester.post(
        &server.scep_url(),
        &requester.message(
            &missing.to_der().unwrap(),
            &ra,
            &Opts {
                message_type: MessageType::GetCert,
                ..Default::default()
            },
        ),
    );
    assert_failure(&rep, "4");
}

#[test]
fn okta_extension_superseded_revocation_and_max_active() {
    let server = Server::start(&[
        "--static-challenge",
        CHALLENGE,
        "--revoke-superseded-after",
        "1s",
        "--challenge-sweep-interval",
        "1",
        "--okta-device-access",
    ]);
    let requester = Requester::new(KeyBits::Rsa2048);
    // Re-enrollments with challenges bound to the device: only those may cause revocations.
    let first = enroll_bound(&server, &requester, "okta-device");
    let dir = tempfile::tempdir().unwrap();
    let leaf = openssl::write(
        dir.path(),
        "leaf.pem",
        scepd_ca::pem::encode("CERTIFICATE", &first).as_bytes(),
    );
    let text = String::from_utf8(openssl::run(
        dir.path(),
        &["x509", "-in", leaf.to_str().unwrap(), "-noout", "-text"],
    ))
    .unwrap();
    assert!(
        text.contains("1.3.6.1.4.1.51150.13.1:") && text.contains("..."),
        "Okta Device Access extension: {text}"
    );
    let ext = x509_cert::Certificate::from_der(&first)
        .unwrap()
        .tbs_certificate()
        .extensions()
        .unwrap()
        .iter()
        .find(|e| e.extn_id == scepd_ca::OKTA_DEVICE_ACCESS_OID)
        .unwrap()
        .clone();
    assert_eq!(ext.extn_value.as_bytes(), &[0x02, 0x01, 0x01], "INTEGER 1");

    enroll_bound(&server, &requester, "okta-device");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let certs = list(&server, &["--device", "okta-device"]);
        if certs[1]["status"] == "revoked" {
            assert_eq!(certs[1]["revocation_reason"], "superseded");
            assert_eq!(certs[0]["status"], "active");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "superseded certificate not revoked: {certs:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }

    let capped = Server::start(&["--static-challenge", CHALLENGE, "--max-active-per-device", "1"]);
    enroll_bound(&capped, &requester, "capped");
    enroll_bound(&capped, &requester, "capped");
    let certs = list(&capped, &["--device", "capped"]);
    assert_eq!(
        (certs[0]["status"].as_str(), certs[1]["status"].as_str()),
        (Some("active"), Some("revoked"))
    );
}

#[test]
fn okta_device_access_per_challenge() {
    let server = Server::start(&[]);
    let token = std::fs::read_to_string(server.data().join("admin.token")).unwrap();
    let mint = |body: &str| {
        let r = http::request(
            "POST",
            &format!("{}/api/v1/challenges", server.base),
            &[("Authorization", &format!("Bearer {}", token.trim()))],
            body.as_bytes(),
        )
        .unwrap();
        serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["challenge"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let ra = recipient(&server.scep_url());
    let requester = Requester::new(KeyBits::Rsa2048);
    for (body, want) in [(r#"{"okta_device_access": true}"#, true), ("{}", false)] {
        let challenge = mint(body);
        let rep = requester.post(
            &server.scep_url(),
            &requester.message(&requester.csr("CN=oda", Some(&challenge)), &ra, &Opts::default()),
        );
        let cert = x509_cert::Certificate::from_der(&rep.certificates[0]).unwrap();
        let has = cert
            .tbs_certificate()
            .extensions()
            .unwrap()
            .iter()
            .any(|e| e.extn_id == scepd_ca::OKTA_DEVICE_ACCESS_OID);
        assert_eq!(has, want, "{body}");
    }
}

#[test]
fn delegated_ocsp_signer() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let init = std::process::Command::new(crate::support::server::BIN)
        .args(["init", "--data", data.to_str().unwrap(), "--ocsp-signer"])
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let meta = std::fs::metadata(data.join("ocsp.key")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    let server = Server::start_in(&data, &["--static-challenge", CHALLENGE]);
    let d = tmp.path();
    let text = String::from_utf8(openssl::run(
        d,
        &[
            "x509",
            "-in",
            data.join("ocsp.pem").to_str().unwrap(),
            "-noout",
            "-text",
        ],
    ))
    .unwrap();
    assert!(
        text.contains("OCSP Signing") && text.contains("OCSP No Check"),
        "{text}"
    );
    let requester = Requester::new(KeyBits::Rsa2048);
    let leaf = openssl::write(
        d,
        "leaf.pem",
        scepd_ca::pem::encode("CERTIFICATE", &enroll(&server, &requester, "CN=ocsp-delegated")).as_bytes(),
    );
    let status = ocsp_status(&server, d, &leaf);
    assert!(status.contains(": good"), "{status}");
}
