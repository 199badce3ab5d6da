//! Refusals: each bad request gets its exact answer — a signed CertRep FAILURE with the right
//! failInfo, or an HTTP 4xx when there is nothing to answer in SCEP — and the server keeps serving.

use der::{Decode, Encode};
use scepd::scep::cipher::ContentCipher;
use scepd::scep::client::signer_cert_of;
use scepd::scep::envelope;
use scepd::scep::MessageType;
use scepd_ca::KeyBits;

use crate::support::requester::{recipient, Opts};
use crate::support::{http, openssl, Requester, Server};

const CHALLENGE: &str = "negative-test-challenge";

pub(crate) fn assert_failure(rep: &scepd::scep::client::CertRep, fail_info: &str, text: &str) {
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
    assert_eq!(
        rep.header.reply.fail_info_text.as_deref(),
        Some(text),
        "{:?}",
        rep.header.reply
    );
    assert!(rep.certificates.is_empty());
}

fn still_serves(server: &Server, requester: &Requester) {
    assert_eq!(http::get(&format!("{}/healthz", server.base)).unwrap().status, 200);
    let ra = recipient(&server.scep_url());
    let rep = requester.post(
        &server.scep_url(),
        &requester.message(&requester.csr("CN=after", Some(CHALLENGE)), &ra, &Opts::default()),
    );
    assert_eq!(
        rep.header.reply.pki_status.as_deref(),
        Some("0"),
        "{:?}",
        rep.header.reply
    );
}

#[test]
fn challenge_and_key_policy_failures() {
    let server = Server::start(&["--static-challenge", CHALLENGE]);
    let ra = recipient(&server.scep_url());
    let requester = Requester::new(KeyBits::Rsa2048);
    let send = |csr: Vec<u8>, opts: &Opts| requester.post(&server.scep_url(), &requester.message(&csr, &ra, opts));

    assert_failure(
        &send(requester.csr("CN=wrong", Some("not-the-challenge")), &Opts::default()),
        "2",
        "challenge password rejected",
    );
    assert_failure(
        &send(requester.csr("CN=none", None), &Opts::default()),
        "2",
        "challenge password rejected",
    );

    // Apple: a 1024-bit CSR key (its default Keysize), signed over by a separate signer key.
    let dir = tempfile::tempdir().unwrap();
    let small = openssl::csr(dir.path(), "small", 1024, Some(CHALLENGE));
    assert_failure(&send(small, &Opts::default()), "2", "RSA key too small");

    assert_failure(
        &send(
            requester.csr("CN=des", Some(CHALLENGE)),
            &Opts {
                cipher: ContentCipher::DesCbc,
                ..Default::default()
            },
        ),
        "0",
        "single DES is not allowed",
    );
    still_serves(&server, &requester);
    assert!(server.log_text().contains("challenge_rejection=\"unknown\""));
    assert!(server.log_text().contains("challenge_rejection=\"missing\""));
    assert!(
        !server.log_text().contains(CHALLENGE),
        "the challenge must never be logged"
    );
}

#[test]
fn min_key_bits_1024_accepts_apple_default_keys() {
    let server = Server::start(&["--static-challenge", CHALLENGE, "--min-key-bits", "1024"]);
    let ra = recipient(&server.scep_url());
    let requester = Requester::new(KeyBits::Rsa2048);
    let dir = tempfile::tempdir().unwrap();
    let small = openssl::csr(dir.path(), "apple-1024", 1024, Some(CHALLENGE));
    let rep = requester.post(&server.scep_url(), &requester.message(&small, &ra, &Opts::default()));
    assert_eq!(
        rep.header.reply.pki_status.as_deref(),
        Some("0"),
        "{:?}",
        rep.header.reply
    );
}

#[test]
fn no_challenge_configured_refuses_and_insecure_mode_accepts() {
    let strict = Server::start(&[]);
    let ra = recipient(&strict.scep_url());
    let requester = Requester::new(KeyBits::Rsa2048);
    let rep = requester.post(
        &strict.scep_url(),
        &requester.message(&requester.csr("CN=x", Some("anything")), &ra, &Opts::default()),
    );
    assert_failure(&rep, "2", "challenge password rejected");

    let lab = Server::start(&["--insecure-no-challenge"]);
    let ra = recipient(&lab.scep_url());
    let rep = requester.post(
        &lab.scep_url(),
        &requester.message(&requester.csr("CN=lab", None), &ra, &Opts::default()),
    );
    assert_eq!(rep.header.reply.pki_status.as_deref(), Some("0"));
    let log = lab.log_text();
    assert!(
        log.contains("INSECURE") && log.contains("issued without a challenge"),
        "{log}"
    );
}

#[test]
fn des_refused_for_micromdm_scepclient_without_allow_des() {
    let server = Server::start(&["--static-challenge", CHALLENGE]);
    let dir = tempfile::tempdir().unwrap();
    let out = crate::clients::scepclient(dir.path(), &server.scep_url(), CHALLENGE, "des-device");
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("badAlg"), "{text}");
}

#[test]
fn tampering_and_undecryptable_envelopes() {
    let server = Server::start(&["--static-challenge", CHALLENGE]);
    let ra = recipient(&server.scep_url());
    let requester = Requester::new(KeyBits::Rsa2048);
    let csr = requester.csr("CN=tamper", Some(CHALLENGE));
    let message = requester.message(&csr, &ra, &Opts::default());

    // The signature is the last OCTET STRING of the message: flip its last byte.
    let mut bad_sig = message.clone();
    *bad_sig.last_mut().unwrap() ^= 1;
    assert_failure(
        &requester.post(&server.scep_url(), &bad_sig),
        "1",
        "pkiMessage signature does not verify",
    );

    // A byte of the signed content: the messageDigest no longer matches.
    let target = signer_cert_of(&ra).unwrap();
    let sealed = envelope::seal(&csr, ContentCipher::Aes128Cbc, &target).unwrap();
    let mut bad_content = requester.sign_envelope(&sealed, &Opts::default());
    let at = bad_content
        .windows(sealed.len())
        .position(|w| w == sealed.as_slice())
        .unwrap();
    bad_content[at + sealed.len() - 1] ^= 1;
    assert_failure(
        &requester.post(&server.scep_url(), &bad_content),
        "1",
        "pkiMessage signature does not verify",
    );

    // Implicit rejection: a bad RSA block, a wrong-length key and bad content padding all get
    // the same answer.
    let variants = [
        corrupt_key(&sealed, |k| k[10] ^= 0xff),
        corrupt_content(&sealed),
        wrong_key_length(&ra, &csr),
    ];
    for env in variants {
        let rep = requester.post(&server.scep_url(), &requester.sign_envelope(&env, &Opts::default()));
        assert_failure(&rep, "1", "cannot decrypt the request");
    }

    // No padding oracle through the other message types or the CSR checks either: well-padded
    // content that is not what the message type wants, and a CSR whose self-signature is
    // broken, get the very answer a bad padding gets.
    for message_type in [
        MessageType::GetCert,
        MessageType::GetCrl,
        MessageType::CertPoll,
        MessageType::PkcsReq,
    ] {
        let garbage = envelope::seal(b"well padded, meaningless", ContentCipher::Aes128Cbc, &target).unwrap();
        let rep = requester.post(
            &server.scep_url(),
            &requester.sign_envelope(
                &garbage,
                &Opts {
                    message_type,
                    ..Default::default()
                },
            ),
        );
        assert_failure(&rep, "1", "cannot decrypt the request");
    }
    let mut bad_csr = csr.clone();
    *bad_csr.last_mut().unwrap() ^= 1; // the CSR's own signature
    let rep = requester.post(&server.scep_url(), &requester.message(&bad_csr, &ra, &Opts::default()));
    assert_failure(&rep, "1", "cannot decrypt the request");

    // An envelope for another recipient.
    let other = Requester::new(KeyBits::Rsa2048);
    let env = envelope::seal(
        &csr,
        ContentCipher::Aes128Cbc,
        &signer_cert_of(&other.identity.cert).unwrap(),
    )
    .unwrap();
    assert_failure(
        &requester.post(&server.scep_url(), &requester.sign_envelope(&env, &Opts::default())),
        "1",
        "request is not encrypted to this CA",
    );
    still_serves(&server, &requester);
}

fn with_enveloped(sealed: &[u8], f: impl FnOnce(&mut cms::enveloped_data::EnvelopedData)) -> Vec<u8> {
    let mut ci = cms::content_info::ContentInfo::from_der(sealed).unwrap();
    let mut env: cms::enveloped_data::EnvelopedData = ci.content.decode_as().unwrap();
    f(&mut env);
    ci.content = der::asn1::Any::encode_from(&env).unwrap();
    ci.to_der().unwrap()
}

pub(crate) fn corrupt_key(sealed: &[u8], f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    with_enveloped(sealed, |env| {
        let mut infos: Vec<_> = env.recip_infos.0.iter().cloned().collect();
        if let cms::enveloped_data::RecipientInfo::Ktri(k) = &mut infos[0] {
            let mut bytes = k.enc_key.as_bytes().to_vec();
            f(&mut bytes);
            k.enc_key = der::asn1::OctetString::new(bytes).unwrap();
        }
        env.recip_infos = cms::enveloped_data::RecipientInfos(der::asn1::SetOfVec::try_from(infos).unwrap());
    })
}

pub(crate) fn corrupt_content(sealed: &[u8]) -> Vec<u8> {
    with_enveloped(sealed, |env| {
        let mut bytes = env
            .encrypted_content
            .encrypted_content
            .as_ref()
            .unwrap()
            .as_bytes()
            .to_vec();
        let n = bytes.len();
        bytes[n - 1] ^= 0x5a; // the last block holds the padding
        env.encrypted_content.encrypted_content = Some(der::asn1::OctetString::new(bytes).unwrap());
    })
}

/// A well-formed RSA block whose content-encryption key has the wrong length for the cipher.
pub(crate) fn wrong_key_length(ra: &x509_cert::Certificate, csr: &[u8]) -> Vec<u8> {
    let sealed = envelope::seal(csr, ContentCipher::Aes256Cbc, &signer_cert_of(ra).unwrap()).unwrap();
    with_enveloped(&sealed, |env| {
        env.encrypted_content.content_enc_alg.oid = scepd::scep::oids::AES128_CBC;
    })
}

#[test]
fn undecodable_requests_get_http_4xx() {
    let server = Server::start(&["--static-challenge", CHALLENGE, "--max-body-bytes", "65536"]);
    let url = format!("{}?operation=PKIOperation", server.scep_url());
    let post = |body: &[u8]| http::post(&url, "application/x-pki-message", body).unwrap();
    assert_eq!(post(b"").status, 400, "empty body");
    assert_eq!(post(b"this is not CMS").status, 400);
    let requester = Requester::new(KeyBits::Rsa2048);
    let ra = recipient(&server.scep_url());
    let message = requester.message(&requester.csr("CN=trunc", Some(CHALLENGE)), &ra, &Opts::default());
    for cut in [1, 10, message.len() / 2, message.len() - 1] {
        let resp = post(&message[..cut]);
        assert_eq!(resp.status, 400, "truncated at {cut}: {}", resp.text());
    }
    assert_eq!(post(&vec![0x30; 70_000]).status, 413, "body over the limit");
    assert_eq!(
        http::get(&format!("{}?operation=PKIOperation&message=%%%", server.scep_url()))
            .unwrap()
            .status,
        400
    );
    assert_eq!(
        http::get(&format!("{}?operation=PKIOperation", server.scep_url()))
            .unwrap()
            .status,
        400
    );
    assert_eq!(
        http::get(&format!("{}?operation=Nope", server.scep_url()))
            .unwrap()
            .status,
        400
    );
    assert_eq!(http::get(&server.scep_url()).unwrap().status, 400);
    assert_eq!(
        http::request(
            "DELETE",
            &format!("{}?operation=GetCACaps", server.scep_url()),
            &[],
            b""
        )
        .unwrap()
        .status,
        405
    );
    assert_eq!(http::get(&format!("{}/nowhere", server.base)).unwrap().status, 404);
    still_serves(&server, &requester);
}

#[test]
fn refused_challenges_are_rate_limited_per_source() {
    let server = Server::start(&["--static-challenge", CHALLENGE, "--challenge-failures-per-minute", "3"]);
    let ra = recipient(&server.scep_url());
    let requester = Requester::new(KeyBits::Rsa2048);
    for i in 0..3 {
        let rep = requester.post(
            &server.scep_url(),
            &requester.message(
                &requester.csr(&format!("CN=guess-{i}"), Some("guess")),
                &ra,
                &Opts::default(),
            ),
        );
        assert_failure(&rep, "2", "challenge password rejected");
    }
    // The fourth guess gets no CertRep now; the right challenge is still answered (issue 15:
    // a lockout must not lock out the right challenge).
    let guess = requester.message(&requester.csr("CN=guess-4", Some("guess")), &ra, &Opts::default());
    let resp = http::post(
        &format!("{}?operation=PKIOperation", server.scep_url()),
        "application/x-pki-message",
        &guess,
    )
    .unwrap();
    assert_eq!(resp.status, 429);
    assert!(resp.header("retry-after").is_some());
    let message = requester.message(&requester.csr("CN=right", Some(CHALLENGE)), &ra, &Opts::default());
    let rep = requester.post(&server.scep_url(), &message);
    assert_eq!(rep.header.reply.pki_status.as_deref(), Some("0"));
    // The other endpoints still answer.
    assert_eq!(
        http::get(&format!("{}?operation=GetCACaps", server.scep_url()))
            .unwrap()
            .status,
        200
    );
}

#[test]
fn signing_queue_overflow_answers_503_with_retry_after() {
    let server = Server::start(&["--static-challenge", CHALLENGE, "--max-queued-operations", "1"]);
    let ra = recipient(&server.scep_url());
    let requesters: Vec<Requester> = (0..4).map(|_| Requester::new(KeyBits::Rsa2048)).collect();
    let messages: Vec<Vec<u8>> = (0..64)
        .map(|i| {
            let r = &requesters[i % 4];
            r.message(&r.csr(&format!("CN=q-{i}"), Some(CHALLENGE)), &ra, &Opts::default())
        })
        .collect();
    let statuses = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for m in &messages {
            let (server, statuses) = (&server, &statuses);
            s.spawn(move || {
                let resp = http::post(
                    &format!("{}?operation=PKIOperation", server.scep_url()),
                    "application/x-pki-message",
                    m,
                )
                .unwrap();
                if resp.status == 503 {
                    assert_eq!(resp.header("retry-after"), Some("1"));
                }
                statuses.lock().unwrap().push(resp.status);
            });
        }
    });
    let statuses = statuses.into_inner().unwrap();
    assert!(statuses.iter().all(|s| *s == 200 || *s == 503), "{statuses:?}");
    assert!(
        statuses.contains(&503),
        "64 at once against 2 cores and a queue of 1 must overflow"
    );
    assert!(statuses.contains(&200));
}

#[test]
fn hostile_requests_get_exact_answers_and_the_server_stays_healthy() {
    let server = Server::start(&["--static-challenge", CHALLENGE]);
    let ra = recipient(&server.scep_url());
    let requester = Requester::new(KeyBits::Rsa2048);
    let post = |body: &[u8]| {
        http::post(
            &format!("{}?operation=PKIOperation", server.scep_url()),
            "application/x-pki-message",
            body,
        )
        .unwrap()
    };

    // A 1 MB subject and thousands of SANs: refused by policy, not signed.
    let big_cn = format!("CN={}", "x".repeat(60_000));
    let rep = requester.post(
        &server.scep_url(),
        &requester.message(&requester.csr(&big_cn, Some(CHALLENGE)), &ra, &Opts::default()),
    );
    assert_failure(&rep, "2", "subject or subjectAltName too large");
    let sans = {
        use x509_cert::ext::pkix::name::GeneralName;
        let names = (0..3000)
            .map(|i| GeneralName::DnsName(der::asn1::Ia5String::new(&format!("host-{i}.example.test")).unwrap()))
            .collect();
        x509_cert::ext::Extension {
            extn_id: const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME,
            critical: false,
            extn_value: der::asn1::OctetString::new(x509_cert::ext::pkix::SubjectAltName(names).to_der().unwrap())
                .unwrap(),
        }
    };
    let csr = scepd_ca::request::client_csr(
        &scepd_ca::name::parse("CN=many-sans").unwrap(),
        &requester.identity.key,
        Some(CHALLENGE),
        &[sans],
    )
    .unwrap();
    assert_failure(
        &requester.post(&server.scep_url(), &requester.message(&csr, &ra, &Opts::default())),
        "2",
        "subject or subjectAltName too large",
    );

    // Unknown messageType, a CertRep sent to the server: FAILURE badRequest.
    let garbage_type = requester.sign_envelope(
        &envelope::seal(b"x", ContentCipher::Aes128Cbc, &signer_cert_of(&ra).unwrap()).unwrap(),
        &Opts {
            message_type: MessageType::CertRep,
            ..Default::default()
        },
    );
    assert_failure(
        &requester.post(&server.scep_url(), &garbage_type),
        "2",
        "unsupported messageType",
    );

    // A SignedData whose content is not EnvelopedData (the CSR in the clear): badRequest.
    let csr = requester.csr("CN=clear", Some(CHALLENGE));
    let clear = requester.sign_envelope(
        &cms::content_info::ContentInfo {
            content_type: scepd::scep::oids::DATA,
            content: der::asn1::Any::encode_from(&der::asn1::OctetString::new(csr).unwrap()).unwrap(),
        }
        .to_der()
        .unwrap(),
        &Opts::default(),
    );
    assert_failure(
        &requester.post(&server.scep_url(), &clear),
        "2",
        "pkiMessage content is not EnvelopedData",
    );

    // Lengths claiming gigabytes, deep nesting, a ContentInfo of another type: HTTP 400.
    assert_eq!(
        post(&[0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x02, 0x01, 0x00]).status,
        400
    );
    let deep: Vec<u8> = std::iter::repeat_n([0x30u8, 0x80], 5000).flatten().collect();
    assert_eq!(post(&deep).status, 400);
    let enveloped_only = envelope::seal(b"x", ContentCipher::Aes128Cbc, &signer_cert_of(&ra).unwrap()).unwrap();
    assert_eq!(
        post(&enveloped_only).status,
        400,
        "EnvelopedData where SignedData belongs"
    );
    // Invalid UTF-8 and junk in the query.
    assert_eq!(
        http::get(&format!("{}?operation=%FF%FE&message=%C3%28", server.scep_url()))
            .unwrap()
            .status,
        400
    );

    // HTTP/1.1 pipelining: two requests in one write, two answers in order.
    {
        use std::io::{Read, Write};
        let host = server.base.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(host).unwrap();
        let one = format!("GET /scep?operation=GetCACaps HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let two = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        s.write_all(format!("{one}{two}").as_bytes()).unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let first = raw.find("POSTPKIOperation").unwrap();
        let second = raw.rfind("HTTP/1.1 200").unwrap();
        assert!(raw.starts_with("HTTP/1.1 200") && first < second, "{raw}");
    }
    // A slow client that never finishes its headers is dropped (slowloris), and does not
    // block anyone else.
    {
        use std::io::{Read, Write};
        let host = server.base.trim_start_matches("http://");
        let mut slow = std::net::TcpStream::connect(host).unwrap();
        slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
        assert_eq!(http::get(&format!("{}/healthz", server.base)).unwrap().status, 200);
        slow.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
        let mut buf = Vec::new();
        let _ = slow.read_to_end(&mut buf);
        assert!(
            String::from_utf8_lossy(&buf).is_empty() || String::from_utf8_lossy(&buf).contains("408"),
            "the header timeout closes the connection"
        );
    }
    still_serves(&server, &requester);
}

#[test]
fn malformed_signed_layers_get_exact_answers() {
    use der::asn1::{Any, OctetString, PrintableStringRef};
    use scepd::scep::oids;
    use scepd::scep::signed::{attribute, signed_data, SignatureAlgorithmField, Signing};
    let server = Server::start(&["--static-challenge", CHALLENGE]);
    let ra = recipient(&server.scep_url());
    let requester = Requester::new(KeyBits::Rsa2048);
    let sealed = envelope::seal(
        &requester.csr("CN=m", Some(CHALLENGE)),
        ContentCipher::Aes128Cbc,
        &signer_cert_of(&ra).unwrap(),
    )
    .unwrap();
    let printable = |s: &str| Any::encode_from(&PrintableStringRef::new(s).unwrap()).unwrap();
    let nonce = attribute(
        oids::SENDER_NONCE,
        Any::encode_from(&OctetString::new(&b"0123456789abcdef"[..]).unwrap()).unwrap(),
    )
    .unwrap();
    let tid = attribute(oids::TRANSACTION_ID, printable("malformed-1")).unwrap();
    let msg_type = attribute(oids::MESSAGE_TYPE, printable("19")).unwrap();
    let signing = Signing {
        cert: &requester.identity.cert,
        key: &requester.identity.key,
        digest: scepd::scep::digest::DigestAlg::Sha256,
        algorithm_field: SignatureAlgorithmField::ShaWithRsa,
    };
    let post = |body: &[u8]| {
        http::post(
            &format!("{}?operation=PKIOperation", server.scep_url()),
            "application/x-pki-message",
            body,
        )
        .unwrap()
    };

    // No transactionID or no messageType: nothing to answer in SCEP → 400.
    let no_tid = signed_data(Some(&sealed), vec![msg_type.clone(), nonce.clone()], &signing).unwrap();
    let resp = post(&no_tid);
    assert_eq!(resp.status, 400);
    assert!(resp.text().contains("transactionID"), "{}", resp.text());
    let no_type = signed_data(Some(&sealed), vec![tid.clone(), nonce.clone()], &signing).unwrap();
    assert_eq!(post(&no_type).status, 400);
    // No senderNonce: answered (RFC 8894 wants one; clients that omit it get an empty recipientNonce).
    let no_nonce = signed_data(Some(&sealed), vec![msg_type.clone(), tid.clone()], &signing).unwrap();
    let rep = requester.post(&server.scep_url(), &no_nonce);
    assert_eq!(rep.header.reply.pki_status.as_deref(), Some("0"));
    assert_eq!(rep.header.reply.recipient_nonce.as_deref(), Some(&[][..]));
    // Duplicate transactionID attributes: refused as a malformed message, never a crash.
    let tid2 = attribute(oids::TRANSACTION_ID, printable("malformed-2")).unwrap();
    let duplicated = signed_data(
        Some(&sealed),
        vec![msg_type.clone(), tid.clone(), tid2, nonce.clone()],
        &signing,
    );
    if let Ok(d) = duplicated {
        assert!(matches!(post(&d).status, 200 | 400));
    }

    // The signer certificate left out: FAILURE badMessageCheck.
    let full = requester.message(&requester.csr("CN=m2", Some(CHALLENGE)), &ra, &Opts::default());
    let mut ci = cms::content_info::ContentInfo::from_der(&full).unwrap();
    let mut sd: cms::signed_data::SignedData = ci.content.decode_as().unwrap();
    sd.certificates = None;
    ci.content = Any::encode_from(&sd).unwrap();
    assert_failure(
        &requester.post(&server.scep_url(), &ci.to_der().unwrap()),
        "1",
        "no signer certificate in the pkiMessage",
    );

    // An unsupported content cipher (RC2-CBC): FAILURE badAlg.
    let rc2 = with_enveloped(&sealed, |env| {
        env.encrypted_content.content_enc_alg.oid = der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.3.2")
    });
    assert_failure(
        &requester.post(&server.scep_url(), &requester.sign_envelope(&rc2, &Opts::default())),
        "0",
        "unsupported content encryption algorithm",
    );
    still_serves(&server, &requester);
}
