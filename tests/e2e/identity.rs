//! What a certificate may name, reproduced as an attacker tried it (issue 15): bindings that
//! bind the whole identity, device takeover with an unbound challenge, the SAN policy, refusals
//! that do not tell whether a challenge was good, log injection through request fields.
//! Issued certificates are read back with `openssl x509`.

use std::path::Path;

use scepd::scep::client::CertRep;
use scepd_ca::KeyBits;

use crate::challenges::{add_mdm, admin_auth, api_mint, basic};
use crate::lifecycle::{holder_of, list, renew};
use crate::support::requester::{recipient, Opts};
use crate::support::{http, openssl, Requester, Server};

const CHALLENGE: &str = "identity-test-static-challenge";

fn status(rep: &CertRep) -> (Option<&str>, Option<&str>, Option<&str>) {
    let r = &rep.header.reply;
    (
        r.pki_status.as_deref(),
        r.fail_info.as_deref(),
        r.fail_info_text.as_deref(),
    )
}

fn enroll_csr(server: &Server, requester: &Requester, csr: &[u8]) -> CertRep {
    let ra = recipient(&server.scep_url());
    requester.post(&server.scep_url(), &requester.message(csr, &ra, &Opts::default()))
}

fn enroll(server: &Server, requester: &Requester, subject: &str, challenge: &str) -> CertRep {
    enroll_csr(server, requester, &requester.csr(subject, Some(challenge)))
}

/// A CSR made by `openssl req` from a config's `[dn]` lines, `[attrs]` lines and extension
/// lines (the key is `client.key` in `dir`).
fn openssl_csr(dir: &Path, dn: &str, attrs: &str, extensions: &str) -> Vec<u8> {
    let config = format!(
        "[req]\nprompt = no\ndistinguished_name = dn\nattributes = attrs\nreq_extensions = ext\n\
         [dn]\n{dn}\n[attrs]\n{attrs}\n[ext]\n{extensions}\n"
    );
    openssl::write(dir, "abuse.cnf", config.as_bytes());
    openssl::run(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "client.key",
            "-config",
            "abuse.cnf",
            "-outform",
            "DER",
            "-out",
            "abuse.der",
        ],
    );
    std::fs::read(dir.join("abuse.der")).unwrap()
}

/// `openssl x509 -text` of an issued certificate.
fn cert_text(dir: &Path, der: &[u8]) -> String {
    let pem = openssl::write(dir, "issued.pem", scepd_ca::pem::encode("CERTIFICATE", der).as_bytes());
    String::from_utf8(openssl::run(
        dir,
        &["x509", "-in", pem.to_str().unwrap(), "-noout", "-text"],
    ))
    .unwrap()
}

const REFUSED: (Option<&str>, Option<&str>, Option<&str>) = (Some("2"), Some("2"), Some("challenge password rejected"));

#[test]
fn a_bound_challenge_binds_the_whole_identity_and_no_one_gets_the_ca_subject() {
    let server = Server::start(&["--static-challenge", CHALLENGE]);
    let admin = admin_auth(&server);
    let requester = Requester::new(KeyBits::Rsa2048);
    let dir = tempfile::tempdir().unwrap();

    // More names than the one bound: a second CN, a UID, a serialNumber.
    let kiosk = api_mint(&server, &admin, r#"{"subject_cn": "kiosk-07"}"#);
    let rep = enroll(
        &server,
        &requester,
        "CN=kiosk-07,CN=administrator,UID=root,serialNumber=OTHER",
        &kiosk,
    );
    assert_eq!(status(&rep), REFUSED);
    // The device as a trailing word of someone else's name.
    let dev_a = api_mint(&server, &admin, r#"{"device_id": "DEV-A"}"#);
    assert_eq!(
        status(&enroll(&server, &requester, "CN=evil.example.com DEV-A", &dev_a)),
        REFUSED
    );
    // The CA's own subject plus an extra SAN, with a challenge bound to a SAN the CSR carries.
    let dev_c = api_mint(&server, &admin, r#"{"device_id": "DEV-C"}"#);
    let ca_subject = "CN = scepd CA\nO = scepd";
    let csr = openssl_csr(
        dir.path(),
        ca_subject,
        &format!("challengePassword = {dev_c}"),
        "subjectAltName = DNS:DEV-C",
    );
    let rep = enroll_csr(&server, &requester, &csr);
    assert_eq!(status(&rep).0, Some("2"), "the CA's subject: {:?}", rep.header.reply);
    let extra = openssl_csr(
        dir.path(),
        "CN = DEV-C",
        &format!("challengePassword = {dev_c}"),
        "subjectAltName = DNS:DEV-C,DNS:intranet.example.com",
    );
    assert_eq!(
        status(&enroll_csr(&server, &requester, &extra)),
        REFUSED,
        "a SAN beyond the bound ones"
    );
    // Whatever the challenge: not even the static one issues the CA's or the RA's subject.
    for subject in ["CN = scepd CA\nO = scepd", "CN = scepd RA\nO = scepd"] {
        let csr = openssl_csr(
            dir.path(),
            subject,
            &format!("challengePassword = {CHALLENGE}"),
            "basicConstraints = CA:FALSE",
        );
        let rep = enroll_csr(&server, &requester, &csr);
        assert_eq!(
            status(&rep),
            (Some("2"), Some("2"), Some("the subject is reserved")),
            "{subject}"
        );
    }

    // The bound challenges (not spent by the refusals) still issue for exactly their identity.
    let rep = enroll(&server, &requester, "CN=kiosk-07,O=Example,OU=Kiosks", &kiosk);
    assert_eq!(status(&rep).0, Some("0"), "{:?}", rep.header.reply);
    let rep = enroll(&server, &requester, "CN=Mac-17 managementAttestation DEV-A", &dev_a);
    assert_eq!(status(&rep).0, Some("0"), "{:?}", rep.header.reply);
    let exact = openssl_csr(
        dir.path(),
        "CN = DEV-C",
        &format!("challengePassword = {dev_c}"),
        "subjectAltName = DNS:DEV-C",
    );
    let rep = enroll_csr(&server, &requester, &exact);
    assert_eq!(status(&rep).0, Some("0"), "{:?}", rep.header.reply);
    let text = cert_text(dir.path(), &rep.certificates[0]);
    assert!(
        text.contains("Subject: CN = DEV-C\n") && text.contains("DNS:DEV-C"),
        "{text}"
    );
}

/// Mints a challenge bound to `device` and enrolls `CN=device` with it.
pub(crate) fn enroll_bound(server: &Server, requester: &Requester, device: &str) -> Vec<u8> {
    let challenge = api_mint(server, &admin_auth(server), &format!(r#"{{"device_id": "{device}"}}"#));
    let rep = enroll(server, requester, &format!("CN={device}"), &challenge);
    assert_eq!(status(&rep).0, Some("0"), "{:?}", rep.header.reply);
    rep.certificates[0].clone()
}

fn statuses(server: &Server, device: &str) -> Vec<String> {
    list(server, &["--device", device])
        .iter()
        .map(|c| c["status"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_unbound_request_never_revokes_another_devices_certificate() {
    // The policies that revoke superseded certificates, at their most eager.
    let eager = [
        "--static-challenge",
        CHALLENGE,
        "--max-active-per-device",
        "1",
        "--revoke-superseded-after",
        "1s",
        "--challenge-sweep-interval",
        "1",
        "--renewal-window",
        "100",
    ];
    let server = Server::start(&eager);
    let victim = Requester::new(KeyBits::Rsa2048);
    let victim_cert = enroll_bound(&server, &victim, "victim-1");
    // The attacker holds the static challenge (as any NDES page, Jamf webhook or static-challenge
    // MDM does) and names the victim's device.
    let attacker = Requester::new(KeyBits::Rsa2048);
    let rep = enroll(&server, &attacker, "CN=victim-1", CHALLENGE);
    assert_eq!(status(&rep).0, Some("0"), "keep-both issues: {:?}", rep.header.reply);
    let attacker_cert = rep.certificates[0].clone();
    // Its certificate, renewed, replaces only itself.
    let next = Requester::new(KeyBits::Rsa2048);
    let rep = renew(
        &server,
        &holder_of(&attacker_cert, &attacker.key_pem()),
        &next.csr("CN=victim-1", None),
    );
    assert_eq!(status(&rep).0, Some("0"), "{:?}", rep.header.reply);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let certs = list(&server, &["--device", "victim-1"]);
    let victims: Vec<_> = certs
        .iter()
        .filter(|c| c["kind"] == "new")
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(victims, ["active"], "{certs:?}");
    // The victim renews as before.
    let rep = renew(
        &server,
        &holder_of(&victim_cert, &victim.key_pem()),
        &Requester::new(KeyBits::Rsa2048).csr("CN=victim-1", None),
    );
    assert_eq!(status(&rep).0, Some("0"), "{:?}", rep.header.reply);

    // allow: the unbound re-enrollment supersedes, and is audited as unbound, but never revokes.
    let mut allowing = eager.to_vec();
    allowing.extend(["--unbound-reenrollment", "allow"]);
    let server = Server::start(&allowing);
    enroll_bound(&server, &victim, "victim-2");
    assert_eq!(
        status(&enroll(&server, &attacker, "CN=victim-2", CHALLENGE)).0,
        Some("0")
    );
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(statuses(&server, "victim-2"), ["active", "superseded"]);
    let audit = String::from_utf8(server.cli(&["audit", "export"]).stdout).unwrap();
    assert!(
        audit
            .lines()
            .any(|l| l.contains("certificate.superseded") && l.contains("unbound request")),
        "{audit}"
    );
    // A bound re-enrollment is the device's own: it supersedes and the policies revoke.
    enroll_bound(&server, &victim, "victim-2");
    assert_eq!(statuses(&server, "victim-2"), ["active", "revoked", "revoked"]);

    // refuse: an unbound request for an enrolled device is refused like a bad challenge.
    let mut refusing = eager.to_vec();
    refusing.extend(["--unbound-reenrollment", "refuse"]);
    let server = Server::start(&refusing);
    enroll_bound(&server, &victim, "victim-3");
    assert_eq!(status(&enroll(&server, &attacker, "CN=victim-3", CHALLENGE)), REFUSED);
    assert_eq!(
        status(&enroll(&server, &attacker, "CN=new-device", CHALLENGE)).0,
        Some("0")
    );
    assert_eq!(statuses(&server, "victim-3"), ["active"]);
}

#[test]
fn san_policy_drops_other_names_and_sets_criticality_itself() {
    let server = Server::start(&["--static-challenge", CHALLENGE]);
    let requester = Requester::new(KeyBits::Rsa2048);
    let dir = tempfile::tempdir().unwrap();
    let sans = "subjectAltName = critical,DNS:laptop.example.com,\
                otherName:1.3.6.1.4.1.311.20.2.3;UTF8:administrator@corp.example.com,\
                IP:10.0.0.7,email:user@example.com,URI:https://device.example.com/1";
    let csr = openssl_csr(
        dir.path(),
        "CN = laptop",
        &format!("challengePassword = {CHALLENGE}"),
        sans,
    );
    let rep = enroll_csr(&server, &requester, &csr);
    assert_eq!(status(&rep).0, Some("0"), "{:?}", rep.header.reply);
    let text = cert_text(dir.path(), &rep.certificates[0]);
    assert!(
        text.contains("X509v3 Subject Alternative Name: \n"),
        "not critical when there is a subject: {text}"
    );
    assert!(
        !text.contains("othername") && !text.contains("administrator@"),
        "{text}"
    );
    for kept in [
        "DNS:laptop.example.com",
        "IP Address:10.0.0.7",
        "email:user@example.com",
        "URI:https://device.example.com/1",
    ] {
        assert!(text.contains(kept), "{kept}: {text}");
    }

    // Types and patterns from the configuration.
    let strict = Server::start(&[
        "--static-challenge",
        CHALLENGE,
        "--san-type",
        "dns",
        "--san-pattern",
        "dns:*.devices.example.com",
    ]);
    let sans = "subjectAltName = DNS:a.devices.example.com,DNS:*.example.com,DNS:intranet.example.com,\
                email:user@example.com";
    let csr = openssl_csr(
        dir.path(),
        "CN = laptop",
        &format!("challengePassword = {CHALLENGE}"),
        sans,
    );
    let rep = enroll_csr(&strict, &requester, &csr);
    assert_eq!(status(&rep).0, Some("0"), "{:?}", rep.header.reply);
    let text = cert_text(dir.path(), &rep.certificates[0]);
    assert!(text.contains("DNS:a.devices.example.com"), "{text}");
    for dropped in ["*.example.com", "intranet.example.com", "user@example.com"] {
        assert!(!text.contains(dropped), "{dropped}: {text}");
    }
}

#[test]
fn refusals_do_not_tell_whether_the_challenge_was_good() {
    let server = Server::start(&["--static-challenge", CHALLENGE]);
    let requester = Requester::new(KeyBits::Rsa2048);
    let dir = tempfile::tempdir().unwrap();
    let answer = |challenge: &str, small_key: bool| {
        let csr = if small_key {
            openssl::csr(dir.path(), "small", 1024, Some(challenge))
        } else {
            // An empty subject and no subjectAltName.
            csr_with_challenges(&requester, Default::default(), &[&[challenge]])
        };
        status(&enroll_csr(&server, &requester, &csr)).2.map(str::to_string)
    };
    assert_eq!(answer(CHALLENGE, true), answer("wrong-guess", true), "a key too small");
    assert_eq!(answer(CHALLENGE, false), answer("wrong-guess", false), "no subject");
}

/// A CSR for `requester`'s key with `subject` and a challengePassword attribute per entry of
/// `challenges`, each with the values given (`openssl req` makes neither an empty subject nor
/// a repeated attribute). The signature is checked by the server with its own code and by
/// `openssl req -verify` here.
fn csr_with_challenges(requester: &Requester, subject: x509_cert::name::Name, challenges: &[&[&str]]) -> Vec<u8> {
    use der::asn1::{Any, BitString, PrintableStringRef, SetOfVec};
    use der::{Decode, Encode};
    let key = &requester.identity.key;
    let printable = |s: &str| Any::encode_from(&PrintableStringRef::new(s).unwrap()).unwrap();
    let attributes: Vec<x509_cert::attr::Attribute> = challenges
        .iter()
        .map(|values| x509_cert::attr::Attribute {
            oid: const_oid::db::rfc2985::PKCS_9_AT_CHALLENGE_PASSWORD,
            values: SetOfVec::try_from(values.iter().map(|v| printable(v)).collect::<Vec<_>>()).unwrap(),
        })
        .collect();
    let info = x509_cert::request::CertReqInfo {
        version: x509_cert::request::Version::V1,
        subject,
        public_key: spki::SubjectPublicKeyInfoOwned::from_der(&key.public_key_spki_der()).unwrap(),
        attributes: SetOfVec::try_from(attributes).unwrap(),
    };
    let signature = key.sign_sha256(&info.to_der().unwrap()).unwrap();
    let der = x509_cert::request::CertReq {
        info,
        algorithm: spki::AlgorithmIdentifierOwned {
            oid: const_oid::db::rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
            parameters: Some(der::asn1::Null.into()),
        },
        signature: BitString::from_bytes(&signature).unwrap(),
    }
    .to_der()
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    openssl::write(dir.path(), "req.der", &der);
    let (ok, text) = openssl::try_run(
        dir.path(),
        &["req", "-inform", "DER", "-in", "req.der", "-verify", "-noout"],
    );
    assert!(ok, "{text}");
    der
}

#[test]
fn two_challenge_passwords_are_refused() {
    let server = Server::start(&["--static-challenge", CHALLENGE]);
    let requester = Requester::new(KeyBits::Rsa2048);
    let subject = || scepd_ca::name::parse("CN=twice").unwrap();
    // The binding could read one and the redemption the other: PKCS#9 makes it single-valued.
    let twice: [&[&str]; 2] = [&["wrong-guess"], &[CHALLENGE]];
    let two_values: [&[&str]; 1] = [&["wrong-guess", CHALLENGE]];
    for csr in [
        csr_with_challenges(&requester, subject(), &twice),
        csr_with_challenges(&requester, subject(), &two_values),
    ] {
        assert_eq!(
            status(&enroll_csr(&server, &requester, &csr)),
            (Some("2"), Some("2"), Some("more than one challengePassword"))
        );
    }
    let once: [&[&str]; 1] = [&[CHALLENGE]];
    let rep = enroll_csr(&server, &requester, &csr_with_challenges(&requester, subject(), &once));
    assert_eq!(status(&rep).0, Some("0"));
}

/// A Jamf SCEPChallenge webhook call (with a new MDM credential) for `payload_identifier`.
pub(crate) fn jamf_challenge(server: &Server, payload_identifier: &str) -> http::Response {
    let password = add_mdm(server, "jamf");
    let body = serde_json::json!({
        "webhook": {"webhookEvent": "SCEPChallenge"},
        "event": {"payloadIdentifier": payload_identifier, "payloadTypes": ["com.apple.security.scep"]}
    });
    http::request(
        "POST",
        &format!("{}/api/v1/webhooks/jamf/scep-challenge", server.base),
        &[("Authorization", &basic("jamf", &password))],
        body.to_string().as_bytes(),
    )
    .unwrap()
}

#[test]
fn request_fields_cannot_forge_log_lines() {
    use der::asn1::{Any, OctetString, PrintableStringRef, Utf8StringRef};
    use scepd::scep::cipher::ContentCipher;
    use scepd::scep::client::signer_cert_of;
    use scepd::scep::signed::{attribute, signed_data, SignatureAlgorithmField, Signing};
    use scepd::scep::{envelope, oids};
    let server = Server::start(&["--static-challenge", CHALLENGE]);
    let requester = Requester::new(KeyBits::Rsa2048);
    let ra = recipient(&server.scep_url());
    let forged = "x\n2026-01-01T00:00:00.000000Z  INFO FORGED: certificate revoked \u{1b}[2J";
    let sealed = envelope::seal(
        &requester.csr("CN=injector", Some(CHALLENGE)),
        ContentCipher::Aes128Cbc,
        &signer_cert_of(&ra).unwrap(),
    )
    .unwrap();
    let attrs = vec![
        attribute(
            oids::MESSAGE_TYPE,
            Any::encode_from(&PrintableStringRef::new("19").unwrap()).unwrap(),
        )
        .unwrap(),
        attribute(
            oids::TRANSACTION_ID,
            Any::encode_from(&Utf8StringRef::new(forged).unwrap()).unwrap(),
        )
        .unwrap(),
        attribute(
            oids::SENDER_NONCE,
            Any::encode_from(&OctetString::new(&b"0123456789abcdef"[..]).unwrap()).unwrap(),
        )
        .unwrap(),
    ];
    let signing = Signing {
        cert: &requester.identity.cert,
        key: &requester.identity.key,
        digest: scepd::scep::digest::DigestAlg::Sha256,
        algorithm_field: SignatureAlgorithmField::ShaWithRsa,
    };
    let message = signed_data(Some(&sealed), attrs, &signing).unwrap();
    let rep = requester.post(&server.scep_url(), &message);
    assert_eq!(
        status(&rep),
        (Some("2"), Some("2"), Some("transactionID is not printable"))
    );

    // Jamf's payloadIdentifier goes to the log too.
    let resp = jamf_challenge(&server, forged);
    assert_eq!(resp.status, 200, "{}", resp.text());
    let log = server.log_text();
    assert!(log.contains("FORGED"), "the fields are logged: {log}");
    assert!(
        !log.lines().any(|l| l.starts_with("2026-01-01") || l.contains('\u{1b}')),
        "a forged line or an escape sequence: {log}"
    );
}
