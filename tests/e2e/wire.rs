//! The wire format against the real server: every cipher, digest and encoding variant, with
//! inputs made by `openssl req` / `openssl cms` and replies checked by `openssl cms`.

use std::path::Path;

use scepd::scep::cipher::ContentCipher;
use scepd::scep::digest::DigestAlg;
use scepd::scep::signed::SignatureAlgorithmField;
use scepd_ca::KeyBits;

use crate::support::requester::{ca_certs, random_id, recipient, Opts};
use crate::support::{ber, http, openssl, Requester, Server};

const CHALLENGE: &str = "wire-test-challenge";

fn server() -> Server {
    Server::start(&["--static-challenge", CHALLENGE])
}

/// `openssl cms -encrypt` of `content` to the RA (DER, or BER with `-stream`).
fn openssl_envelope(dir: &Path, content: &[u8], ra_pem: &Path, cipher_flag: &str, stream: bool) -> Vec<u8> {
    openssl::write(dir, "content.der", content);
    let mut args = vec![
        "cms",
        "-encrypt",
        "-binary",
        "-in",
        "content.der",
        "-outform",
        "DER",
        "-out",
        "env.der",
        cipher_flag,
    ];
    if stream {
        args.push("-stream");
    }
    args.push(ra_pem.to_str().unwrap());
    openssl::run(dir, &args);
    std::fs::read(dir.join("env.der")).unwrap()
}

/// Checks a SUCCESS reply with OpenSSL: the CertRep signature verifies up to the CA, the
/// envelope decrypts with the requester's key, and the certificate verifies against the CA and
/// carries `key_pem`'s public key. Returns the certificate, PEM.
fn check_success_with_openssl(
    dir: &Path,
    server: &Server,
    requester: &Requester,
    reply: &[u8],
    client_key: &Path,
) -> String {
    openssl::write(dir, "rep.der", reply);
    openssl::write(
        dir,
        "signer.pem",
        scepd_ca::pem::encode("CERTIFICATE", &requester.identity.der).as_bytes(),
    );
    openssl::write(dir, "signer.key", requester.key_pem().as_bytes());
    let ca = server.ca_pem();
    openssl::run(
        dir,
        &[
            "cms",
            "-verify",
            "-inform",
            "DER",
            "-in",
            "rep.der",
            "-CAfile",
            ca.to_str().unwrap(),
            "-purpose",
            "any",
            "-out",
            "env.der",
        ],
    );
    openssl::run(
        dir,
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
    let pem = String::from_utf8(openssl::run(
        dir,
        &["pkcs7", "-inform", "DER", "-in", "certs.p7", "-print_certs"],
    ))
    .unwrap();
    let leaf = openssl::write(dir, "leaf.pem", pem.as_bytes());
    assert!(openssl::verifies(dir, &ca, &leaf), "issued certificate does not verify");
    assert_eq!(openssl::cert_pubkey(dir, &leaf), openssl::key_pubkey(dir, client_key));
    pem
}

#[test]
fn openssl_made_requests_every_cipher_digest_and_encoding() {
    let server = server();
    let ra = recipient(&server.scep_url());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ra_pem = openssl::write(
        d,
        "ra.pem",
        scepd_ca::pem::encode("CERTIFICATE", &der::Encode::to_der(&ra).unwrap()).as_bytes(),
    );
    let requester = Requester::new(KeyBits::Rsa2048);
    let csr = openssl::csr(d, "openssl-client", 2048, Some(CHALLENGE));
    let cases = [
        ("-aes128", false, DigestAlg::Sha256, SignatureAlgorithmField::ShaWithRsa),
        (
            "-aes192",
            true,
            DigestAlg::Sha384,
            SignatureAlgorithmField::RsaEncryption,
        ),
        ("-aes256", false, DigestAlg::Sha512, SignatureAlgorithmField::ShaWithRsa),
        (
            "-aes256",
            true,
            DigestAlg::Sha256,
            SignatureAlgorithmField::RsaEncryption,
        ),
        (
            "-des3",
            false,
            DigestAlg::Sha256,
            SignatureAlgorithmField::RsaEncryption,
        ),
        ("-des3", true, DigestAlg::Sha512, SignatureAlgorithmField::ShaWithRsa),
    ];
    for (cipher, stream, digest, field) in cases {
        let envelope = openssl_envelope(d, &csr, &ra_pem, cipher, stream);
        let opts = Opts {
            digest,
            field,
            ..Default::default()
        };
        let message = requester.sign_envelope(&envelope, &opts);
        let resp = http::post(
            &format!("{}?operation=PKIOperation", server.scep_url()),
            "application/x-pki-message",
            &message,
        )
        .unwrap();
        assert_eq!(resp.status, 200);
        let rep = requester.read(&resp.body);
        assert_eq!(
            rep.header.reply.pki_status.as_deref(),
            Some("0"),
            "{cipher} stream={stream} {digest:?}: {:?}",
            rep.header.reply
        );
        let pem = check_success_with_openssl(d, &server, &requester, &resp.body, &d.join("client.key"));
        assert!(
            openssl::x509_field(d, &d.join("leaf.pem"), "-subject").contains("CN = openssl-client"),
            "{pem}"
        );
    }
}

#[test]
fn ber_streamed_outer_message_and_apple_short_nonce() {
    let server = server();
    let ra = recipient(&server.scep_url());
    let requester = Requester::new(KeyBits::Rsa2048);
    let csr = requester.csr("CN=ber-client", Some(CHALLENGE));
    // Apple sends an 8-byte senderNonce.
    let nonce = *b"appl8byt";
    let message = requester.message(
        &csr,
        &ra,
        &Opts {
            nonce: &nonce,
            ..Default::default()
        },
    );
    let streamed = ber::streamed(&message, 100);
    assert_ne!(streamed, message);
    let rep = requester.post(&server.scep_url(), &streamed);
    assert_eq!(rep.header.reply.pki_status.as_deref(), Some("0"));
    assert_eq!(rep.header.reply.recipient_nonce.as_deref(), Some(&nonce[..]));
    assert_ne!(rep.header.sender_nonce, nonce.to_vec(), "senderNonce must be fresh");
    assert_eq!(rep.certificates.len(), 1);
}

#[test]
fn get_pki_operation_with_client_base64_quirks_and_every_path() {
    use base64::Engine;
    let server = server();
    let ra = recipient(&server.scep_url());
    let requester = Requester::new(KeyBits::Rsa2048);
    /// How one client writes the base64 message into the query string.
    type Encoder = fn(&str) -> String;
    let encoders: [(&str, Encoder); 4] = [
        // macOS: only '=' escaped, '+' and '/' raw.
        ("macOS", |b| b.replace('=', "%3D")),
        // iOS 11: '+' became a space (sent as %20).
        ("iOS 11", |b| b.replace('+', "%20").replace('=', "%3D")),
        // Cisco: %0A line breaks every 64 characters.
        ("Cisco", |b| {
            b.as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join("%0A")
                .replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3D")
        }),
        // URL-safe alphabet, unpadded.
        ("url-safe", |b| {
            b.replace('+', "-").replace('/', "_").trim_end_matches('=').to_string()
        }),
    ];
    let paths = ["/scep", "/scep/pkiclient.exe", "/cgi-bin/pkiclient.exe", "/scep"];
    for ((name, encode), path) in encoders.into_iter().zip(paths) {
        let csr = requester.csr(&format!("CN=get-{}", name.replace(' ', "")), Some(CHALLENGE));
        let message = requester.message(&csr, &ra, &Opts::default());
        let b64 = base64::engine::general_purpose::STANDARD.encode(&message);
        assert!(
            b64.contains('+') || b64.contains('/'),
            "want a message that exercises the quirks"
        );
        let url = format!("{}{path}?operation=PKIOperation&message={}", server.base, encode(&b64));
        let resp = http::get(&url).unwrap();
        assert_eq!(resp.status, 200, "{name}: {}", resp.text());
        let rep = requester.read(&resp.body);
        assert_eq!(
            rep.header.reply.pki_status.as_deref(),
            Some("0"),
            "{name}: {:?}",
            rep.header.reply
        );
    }
}

/// Apple sends PKCS#10 version 2. (The other leniency, a signer certificate serial longer than
/// RFC 5280 allows, is exercised with real bytes by certmonger in `clients.rs`.)
#[test]
fn csr_version_2_is_accepted() {
    let server = server();
    let ra = recipient(&server.scep_url());
    let requester = Requester::new(KeyBits::Rsa2048);
    let csr = csr_with_version(&requester, "CN=csr-v2", 2);
    let rep = requester.post(&server.scep_url(), &requester.message(&csr, &ra, &Opts::default()));
    assert_eq!(
        rep.header.reply.pki_status.as_deref(),
        Some("0"),
        "{:?}",
        rep.header.reply
    );
}

/// A CSR whose version field is `version` (Apple sends 2), re-signed.
fn csr_with_version(requester: &Requester, subject: &str, version: u8) -> Vec<u8> {
    use der::{Decode, Encode};
    use scepd::scep::asn1::CertReqIn;
    let csr = requester.csr(subject, Some(CHALLENGE));
    let mut req = CertReqIn::from_der(&csr).unwrap();
    req.info.version = der::asn1::Int::new(&[version]).unwrap();
    let info = req.info.to_der().unwrap();
    req.signature = der::asn1::BitString::from_bytes(&requester.identity.key.sign_sha256(&info).unwrap()).unwrap();
    req.to_der().unwrap()
}

#[test]
fn retried_transaction_gets_the_same_certificate() {
    let server = server();
    let ra = recipient(&server.scep_url());
    let requester = Requester::new(KeyBits::Rsa2048);
    let csr = requester.csr("CN=retry", Some(CHALLENGE));
    let tid = random_id();
    let opts = Opts {
        transaction_id: &tid,
        ..Default::default()
    };
    let first = requester.post(&server.scep_url(), &requester.message(&csr, &ra, &opts));
    let second = requester.post(&server.scep_url(), &requester.message(&csr, &ra, &opts));
    assert_eq!(first.certificates, second.certificates);
    assert_eq!(second.header.transaction_id_text(), tid);
    // The same transactionID with another CSR is refused.
    let other = requester.csr("CN=retry-other", Some(CHALLENGE));
    let third = requester.post(&server.scep_url(), &requester.message(&other, &ra, &opts));
    assert_eq!(third.header.reply.pki_status.as_deref(), Some("2"));
    assert_eq!(third.header.reply.fail_info.as_deref(), Some("2"));
}

#[test]
fn ca_caps_and_ca_cert_with_and_without_ra() {
    let server = server();
    let caps = http::get(&format!("{}?operation=GetCACaps", server.scep_url())).unwrap();
    assert_eq!(caps.status, 200);
    assert!(caps.header("content-type").unwrap().starts_with("text/plain"));
    let lines: Vec<&str> = std::str::from_utf8(&caps.body).unwrap().lines().collect();
    for cap in [
        "POSTPKIOperation",
        "SHA-1",
        "SHA-256",
        "SHA-512",
        "AES",
        "DES3",
        "SCEPStandard",
        "Renewal",
    ] {
        assert!(lines.contains(&cap), "{cap} missing from {lines:?}");
    }

    // Default: an RA. A certs-only PKCS#7, RA first, only the RA with keyEncipherment.
    let cacert = http::get(&format!("{}?operation=GetCACert&message=ignored", server.scep_url())).unwrap();
    assert_eq!(cacert.header("content-type"), Some("application/x-x509-ca-ra-cert"));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl::write(d, "ca.p7", &cacert.body);
    let printed = String::from_utf8(openssl::run(
        d,
        &["pkcs7", "-inform", "DER", "-in", "ca.p7", "-print_certs", "-noout"],
    ))
    .unwrap();
    let subjects: Vec<&str> = printed.lines().filter(|l| l.starts_with("subject=")).collect();
    assert!(
        subjects[0].contains("scepd RA") && subjects[1].contains("scepd CA"),
        "{subjects:?}"
    );
    assert_eq!(ca_certs(&cacert.body).len(), 2);
    recipient(&server.scep_url()); // exactly one keyEncipherment certificate

    // --no-ra: the CA certificate alone, with digitalSignature and keyEncipherment.
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let out = std::process::Command::new(crate::support::server::BIN)
        .args(["init", "--data", data.to_str().unwrap(), "--no-ra"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let no_ra = Server::start_in(&data, &["--static-challenge", CHALLENGE]);
    let cacert = http::get(&format!("{}?operation=GetCACert", no_ra.scep_url())).unwrap();
    assert_eq!(cacert.header("content-type"), Some("application/x-x509-ca-cert"));
    openssl::write(d, "ca.der", &cacert.body);
    let text = String::from_utf8(openssl::run(
        d,
        &[
            "x509",
            "-inform",
            "DER",
            "-in",
            "ca.der",
            "-noout",
            "-ext",
            "keyUsage,basicConstraints",
        ],
    ))
    .unwrap();
    assert!(
        text.contains("Digital Signature") && text.contains("Key Encipherment") && text.contains("Certificate Sign"),
        "{text}"
    );
    assert!(text.contains("critical") && text.contains("CA:TRUE"), "{text}");
    // And enrollment works against it (the reply is signed by the CA itself).
    let ra = recipient(&no_ra.scep_url());
    let requester = Requester::new(KeyBits::Rsa2048);
    let rep = requester.post(
        &no_ra.scep_url(),
        &requester.message(&requester.csr("CN=no-ra", Some(CHALLENGE)), &ra, &Opts::default()),
    );
    assert_eq!(rep.header.reply.pki_status.as_deref(), Some("0"));
}

#[test]
fn issued_certificate_profile() {
    let server = Server::start(&[
        "--static-challenge",
        CHALLENGE,
        "--cert-validity-days",
        "30",
        "--public-url",
        "http://scep.example.test",
    ]);
    let ra = recipient(&server.scep_url());
    let requester = Requester::new(KeyBits::Rsa2048);
    let san = {
        use x509_cert::ext::pkix::name::GeneralName;
        use x509_cert::ext::pkix::SubjectAltName;
        let san = SubjectAltName(vec![GeneralName::DnsName(
            der::asn1::Ia5String::new("device.example.test").unwrap(),
        )]);
        x509_cert::ext::Extension {
            extn_id: const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME,
            critical: false,
            extn_value: der::asn1::OctetString::new(der::Encode::to_der(&san).unwrap()).unwrap(),
        }
    };
    let csr = scepd_ca::request::client_csr(
        &scepd_ca::name::parse("CN=profile,O=Example").unwrap(),
        &requester.identity.key,
        Some(CHALLENGE),
        &[san],
    )
    .unwrap();
    let rep = requester.post(
        &server.scep_url(),
        &requester.message(
            &csr,
            &ra,
            &Opts {
                cipher: ContentCipher::Aes256Cbc,
                ..Default::default()
            },
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let leaf = openssl::write(
        d,
        "leaf.pem",
        scepd_ca::pem::encode("CERTIFICATE", &rep.certificates[0]).as_bytes(),
    );
    let text = String::from_utf8(openssl::run(d, &["x509", "-in", "leaf.pem", "-noout", "-text"])).unwrap();
    for want in [
        "Digital Signature",
        "TLS Web Client Authentication",
        "DNS:device.example.test",
        "URI:http://scep.example.test/crl",
        "X509v3 Subject Key Identifier",
        "X509v3 Authority Key Identifier",
        "CN = profile",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    assert!(text.contains("X509v3 Key Usage: critical"), "{text}");
    let serial = openssl::x509_field(d, &leaf, "-serial");
    assert_eq!(
        serial.trim_start_matches("serial=").len(),
        32,
        "16-byte serial: {serial}"
    );
    // Validity: 30 days (plus the 5-minute back-dating).
    let start = openssl::x509_field(d, &leaf, "-startdate");
    let end = openssl::x509_field(d, &leaf, "-enddate");
    let parse = |s: &str| {
        time::PrimitiveDateTime::parse(
            s.split('=').nth(1).unwrap().trim_end_matches(" GMT"),
            &time::macros::format_description!(
                "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year]"
            ),
        )
        .unwrap()
    };
    let days = (parse(&end) - parse(&start)).whole_days();
    assert_eq!(days, 30, "{start} {end}");
}
