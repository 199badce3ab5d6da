//! CA rollover (RFC 8894 §4.7): `scepd ca rollover`, GetNextCACert checked with `openssl cms
//! -verify` against the current CA, `ca activate-next --at`, enrollments before and after with
//! micromdm's scepclient and certmonger, and every certificate of either CA checkable afterwards
//! with `openssl verify -crl_check` (the CRL fetched from the leaf's own distribution point) and
//! `openssl ocsp`; a request encrypted to the previous RA; RenewalReq, GetCert, GetCRL and
//! CertPoll across the switch; profiles, metrics, audit, restart, backup and restore.

use std::path::{Path, PathBuf};

use scepd_ca::KeyBits;

use crate::clients::scepclient;
use crate::lifecycle::{holder_of, ocsp_status_from, renew};
use crate::support::requester::{ca_certs, recipient, Opts};
use crate::support::{http, openssl, Requester, Server};

const CHALLENGE: &str = "rollover-challenge";

pub(crate) fn cli_ok(server: &Server, args: &[&str]) -> String {
    let out = server.cli(args);
    assert!(
        out.status.success(),
        "scepd {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub(crate) fn ca_list(server: &Server) -> Vec<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(&cli_ok(server, &["ca", "list", "--json"]))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

pub(crate) fn role<'a>(list: &'a [serde_json::Value], role: &str) -> Vec<&'a serde_json::Value> {
    list.iter().filter(|g| g["role"] == role).collect()
}

pub(crate) fn caps(server: &Server) -> String {
    http::get(&format!("{}?operation=GetCACaps", server.scep_url()))
        .unwrap()
        .text()
}

/// The CA certificate GetCACert names (the one without keyEncipherment when there is an RA).
fn served_ca(server: &Server) -> Vec<u8> {
    let body = http::get(&format!("{}?operation=GetCACert", server.scep_url()))
        .unwrap()
        .body;
    let certs = ca_certs(&body);
    let ca = certs
        .iter()
        .find(|c| c.tbs_certificate().subject() == c.tbs_certificate().issuer())
        .expect("the CA certificate in GetCACert");
    der::Encode::to_der(ca).unwrap()
}

fn pem_der(pem: &str) -> Vec<u8> {
    scepd_ca::pem::certificates(pem).unwrap().remove(0)
}

/// Enrolls with micromdm's scepclient in a directory of its own; returns the leaf's path.
fn enroll(server: &Server, dir: &Path, cn: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let out = scepclient(dir, &server.scep_url(), CHALLENGE, cn);
    assert!(
        out.status.success(),
        "scepclient: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    dir.join("cert.pem")
}

/// The CRL distribution point URL of a leaf, as `openssl x509 -text` prints it.
pub(crate) fn cdp(dir: &Path, leaf: &Path) -> String {
    let text = String::from_utf8(openssl::run(
        dir,
        &["x509", "-in", leaf.to_str().unwrap(), "-noout", "-text"],
    ))
    .unwrap();
    let after = text
        .split("X509v3 CRL Distribution Points")
        .nth(1)
        .expect("a CRL distribution point");
    let uri = after.split("URI:").nth(1).unwrap();
    uri.split_whitespace().next().unwrap().to_string()
}

/// `openssl verify -crl_check` of `leaf` against `ca`, with the CRL fetched from the leaf's own
/// distribution point (and verified with `ca`).
/// A server started again listens on another port: `base` replaces the URL's own.
pub(crate) fn verify_with_own_crl(base: &str, dir: &Path, ca: &Path, leaf: &Path) -> (bool, String) {
    let named = cdp(dir, leaf);
    let path = &named[named.find("/crl").expect("a /crl URL")..];
    let url = format!("{base}{path}");
    let resp = http::get(&url).unwrap();
    assert_eq!(resp.status, 200, "{url}: {}", resp.text());
    openssl::write(dir, "own.crl.der", &resp.body);
    openssl::run(
        dir,
        &["crl", "-inform", "DER", "-in", "own.crl.der", "-out", "own.crl.pem"],
    );
    let (ok, text) = openssl::try_run(
        dir,
        &["crl", "-in", "own.crl.pem", "-CAfile", ca.to_str().unwrap(), "-noout"],
    );
    assert!(
        ok && text.contains("verify OK"),
        "the CRL at {url} is not signed by its CA: {text}"
    );
    openssl::try_run(
        dir,
        &[
            "verify",
            "-crl_check",
            "-CAfile",
            ca.to_str().unwrap(),
            "-CRLfile",
            "own.crl.pem",
            leaf.to_str().unwrap(),
        ],
    )
}

fn serial_of(dir: &Path, leaf: &Path) -> String {
    openssl::x509_field(dir, leaf, "-serial")
        .trim_start_matches("serial=")
        .to_string()
}

fn issuer_id(dir: &Path, leaf: &Path) -> String {
    // The leaf's authorityKeyIdentifier is its CA's issuer id (the SHA-1 of its key).
    let text = String::from_utf8(openssl::run(
        dir,
        &[
            "x509",
            "-in",
            leaf.to_str().unwrap(),
            "-noout",
            "-ext",
            "authorityKeyIdentifier",
        ],
    ))
    .unwrap();
    text.lines()
        .nth(1)
        .unwrap()
        .trim()
        .trim_start_matches("keyid:")
        .replace(':', "")
        .to_lowercase()
}

/// The certificates GetNextCACert announces: the content of its (signed) SignedData is a
/// certs-only SignedData (RFC 8894 §4.7.1), as sscep reads it.
pub(crate) fn next_ca_certs(body: &[u8]) -> Vec<x509_cert::Certificate> {
    use der::Decode;
    let ci = cms::content_info::ContentInfo::from_der(body).unwrap();
    let sd = ci.content.decode_as::<cms::signed_data::SignedData>().unwrap();
    let content = sd.encap_content_info.econtent.expect("signed content");
    let inner = content.decode_as::<der::asn1::OctetString>().unwrap();
    ca_certs(inner.as_bytes())
}

/// GetNextCACert: signed by the current CA (`openssl cms -verify` accepts it against the
/// current CA and not against the next one), its content a certs-only SignedData with the next
/// CA and its RA (`openssl pkcs7 -print_certs`).
fn check_get_next_ca_cert(server: &Server, dir: &Path, current: &Path, next: &Path) {
    let resp = http::get(&format!("{}?operation=GetNextCACert", server.scep_url())).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.header("content-type"), Some("application/x-x509-next-ca-cert"));
    let next_der = pem_der(&std::fs::read_to_string(next).unwrap());
    let current_der = pem_der(&std::fs::read_to_string(current).unwrap());
    let announced: Vec<Vec<u8>> = next_ca_certs(&resp.body)
        .iter()
        .map(|c| der::Encode::to_der(c).unwrap())
        .collect();
    assert_eq!(announced.len(), 2, "the next CA and its RA");
    assert!(announced.contains(&next_der), "GetNextCACert lacks the next CA");
    // The outer certificates are the signer's: the current CA.
    let signer: Vec<Vec<u8>> = ca_certs(&resp.body)
        .iter()
        .map(|c| der::Encode::to_der(c).unwrap())
        .collect();
    assert_eq!(signer, vec![current_der]);
    openssl::write(dir, "next.p7", &resp.body);
    let verify = |ca: &Path| {
        openssl::try_run(
            dir,
            &[
                "cms",
                "-verify",
                "-binary",
                "-inform",
                "DER",
                "-in",
                "next.p7",
                "-CAfile",
                ca.to_str().unwrap(),
                "-out",
                "next.content",
            ],
        )
    };
    let (ok, text) = verify(next);
    assert!(
        !ok,
        "GetNextCACert must be signed by the current CA, not the next: {text}"
    );
    let (ok, text) = verify(current);
    assert!(ok && text.contains("Verification successful"), "{text}");
    // What openssl finds in the signed content: the next CA's certificates.
    let printed = String::from_utf8(openssl::run(
        dir,
        &[
            "pkcs7",
            "-inform",
            "DER",
            "-in",
            "next.content",
            "-print_certs",
            "-noout",
        ],
    ))
    .unwrap();
    assert!(
        printed.contains("scepd RA") && printed.matches("subject=").count() == 2,
        "{printed}"
    );
    assert_eq!(
        ca_certs(&std::fs::read(dir.join("next.content")).unwrap()).len(),
        2,
        "the verified content is the certs-only SignedData"
    );
}

#[test]
fn rollover_announce_activate_and_every_certificate_stays_checkable() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let data = d.join("data");
    let args = [
        "--static-challenge",
        CHALLENGE,
        "--allow-des",
        "--renewal-window",
        "100",
    ];
    let mut server = Server::start_in(&data, &args);
    let old_ca = server.ca_pem();

    // Generation one: two devices, one to be revoked.
    let a_good = enroll(&server, &d.join("a-good"), "device-a-good");
    let a_revoked = enroll(&server, &d.join("a-revoked"), "device-a-revoked");
    // One enrolled by scepd's own client code, to renew across the switch.
    let renewing = Requester::new(KeyBits::Rsa2048);
    let renewing_tid = crate::support::requester::random_id();
    let rep = renewing.post(
        &server.scep_url(),
        &renewing.message(
            &renewing.csr("CN=device-a-renew", Some(CHALLENGE)),
            &recipient(&server.scep_url()),
            &Opts {
                transaction_id: &renewing_tid,
                ..Default::default()
            },
        ),
    );
    assert_eq!(
        rep.header.reply.pki_status.as_deref(),
        Some("0"),
        "{:?}",
        rep.header.reply
    );
    let a_renew_der = rep.certificates[0].clone();
    assert!(!caps(&server).contains("GetNextCACert"));
    assert_eq!(
        http::get(&format!("{}?operation=GetNextCACert", server.scep_url()))
            .unwrap()
            .status,
        404
    );

    // Prepare the next CA while the server runs.
    let out = cli_ok(&server, &["ca", "rollover"]);
    assert!(out.contains("recorded as the next CA"), "{out}");
    let again = server.cli(&["ca", "rollover"]);
    assert!(!again.status.success(), "one next CA at a time");
    let list = ca_list(&server);
    assert_eq!(role(&list, "current").len(), 1);
    let next_entry = role(&list, "next")[0].clone();
    assert_eq!(role(&list, "current")[0]["certificates"], 3);
    assert_eq!(next_entry["certificates"], 0);
    let next_id = next_entry["issuer"].as_str().unwrap().to_string();
    assert!(data.join("cas").join(&next_id).join("ca.pem").exists());
    let next_ca = openssl::write(
        d,
        "next-ca.pem",
        cli_ok(&server, &["ca", "export", "--next"]).as_bytes(),
    );
    let old_der = pem_der(&std::fs::read_to_string(&old_ca).unwrap());
    let next_der = pem_der(&std::fs::read_to_string(&next_ca).unwrap());
    assert_eq!(
        pem_der(&std::fs::read_to_string(&next_ca).unwrap()),
        pem_der(&std::fs::read_to_string(data.join("cas").join(&next_id).join("ca.pem")).unwrap())
    );

    // During the overlap device profiles carry both CAs; the metric names both.
    let both = profile_roots(&server);
    assert!(
        both.contains(&old_der) && both.contains(&next_der) && both.len() == 2,
        "{}",
        both.len()
    );
    let metrics = http::get(&format!("{}/metrics", server.base)).unwrap().text();
    assert!(
        metrics.contains(&format!("scepd_ca_not_after_seconds{{ca=\"next\",issuer=\"{next_id}\"")),
        "{metrics}"
    );
    assert!(
        metrics.contains("scepd_ca_not_after_seconds{ca=\"current\""),
        "{metrics}"
    );

    // Announced: GetCACaps lists GetNextCACert, which the current CA signs.
    assert!(caps(&server).contains("GetNextCACert"));
    check_get_next_ca_cert(&server, d, &old_ca, &next_ca);
    // Still issuing with the current CA until activation.
    assert_eq!(served_ca(&server), pem_der(&std::fs::read_to_string(&old_ca).unwrap()));
    // A requester that read GetCACert before the switch (it encrypts to the old RA).
    let late = Requester::new(KeyBits::Rsa2048);
    let old_ra = recipient(&server.scep_url());

    // Activation scheduled a few seconds ahead: nothing changes before that moment.
    let at = scepd_ca::time::rfc3339(scepd_ca::time::unix_now() + 3);
    cli_ok(&server, &["ca", "activate-next", "--at", &at]);
    assert_eq!(served_ca(&server), pem_der(&std::fs::read_to_string(&old_ca).unwrap()));
    std::thread::sleep(std::time::Duration::from_secs(4));
    assert_eq!(served_ca(&server), pem_der(&std::fs::read_to_string(&next_ca).unwrap()));
    assert!(!caps(&server).contains("GetNextCACert"), "no next CA any more");
    let list = ca_list(&server);
    assert_eq!(role(&list, "current")[0]["issuer"], next_id);
    assert_eq!(role(&list, "retired").len(), 1);
    assert!(role(&list, "next").is_empty());
    // Profiles now name the new CA alone (and pin it).
    assert_eq!(profile_roots(&server), vec![next_der.clone()]);
    let metrics = http::get(&format!("{}/metrics", server.base)).unwrap().text();
    assert!(
        metrics.contains(&format!(
            "scepd_ca_not_after_seconds{{ca=\"current\",issuer=\"{next_id}\""
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("scepd_ca_not_after_seconds{ca=\"retired\""),
        "{metrics}"
    );

    // Generation two: new certificates come from the new CA.
    let b_good = enroll(&server, &d.join("b-good"), "device-b-good");
    let b_revoked = enroll(&server, &d.join("b-revoked"), "device-b-revoked");
    assert!(openssl::verifies(d, &next_ca, &b_good));
    assert!(!openssl::verifies(d, &old_ca, &b_good));
    // certmonger too (GET PKIOperation, AES), trusting the new CA.
    let cm = d.join("certmonger");
    let out = crate::clients::certmonger(&server.scep_url(), &next_ca, CHALLENGE, "device-certmonger", &cm);
    assert!(
        out.status.success(),
        "certmonger: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log_text()
    );
    assert!(openssl::verifies(d, &next_ca, &cm.join("cert.pem")));
    assert_eq!(issuer_id(d, &b_good), next_id);
    // The request encrypted to the old RA is still opened; the new CA issues.
    let rep = late.post(
        &server.scep_url(),
        &late.message(&late.csr("CN=late-device", Some(CHALLENGE)), &old_ra, &Opts::default()),
    );
    assert_eq!(
        rep.header.reply.pki_status.as_deref(),
        Some("0"),
        "{:?}",
        rep.header.reply
    );
    let late_leaf = openssl::write(
        d,
        "late.pem",
        scepd_ca::pem::encode("CERTIFICATE", &rep.certificates[0]).as_bytes(),
    );
    assert!(openssl::verifies(d, &next_ca, &late_leaf));

    // GetCert, GetCRL and CertPoll find a certificate of the retired CA; GetCRL answers with
    // its own issuer's CRL (and with the new CA's for one of the new CA's).
    queries_find(&server, d, &renewing, &a_renew_der, &renewing_tid, &old_ca);
    let late_der = rep.certificates[0].clone();
    let late_crl = get_crl(&server, &late, &late_der);
    openssl::write(d, "late.crl", &late_crl);
    let (ok, text) = openssl::try_run(
        d,
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "late.crl",
            "-CAfile",
            next_ca.to_str().unwrap(),
            "-noout",
        ],
    );
    assert!(ok && text.contains("verify OK"), "{text}");

    // A RenewalReq signed by a certificate of the retired CA: the new one from the current CA.
    let holder = holder_of(&a_renew_der, &renewing.key_pem());
    let fresh = Requester::new(KeyBits::Rsa2048);
    let rep = renew(&server, &holder, &fresh.csr("CN=device-a-renew", None));
    assert_eq!(
        rep.header.reply.pki_status.as_deref(),
        Some("0"),
        "{:?}",
        rep.header.reply
    );
    let renewed = openssl::write(
        d,
        "renewed.pem",
        scepd_ca::pem::encode("CERTIFICATE", &rep.certificates[0]).as_bytes(),
    );
    assert!(openssl::verifies(d, &next_ca, &renewed), "renewed by the current CA");

    // Revoke one leaf of each CA.
    for leaf in [&a_revoked, &b_revoked] {
        cli_ok(
            &server,
            &["cert", "revoke", &serial_of(d, leaf), "--reason", "keyCompromise"],
        );
    }

    // Each leaf names its own issuer's CRL: the original CA's keeps the URL it always had.
    assert_eq!(cdp(d, &a_good), format!("{}/crl", server.base));
    assert_eq!(cdp(d, &b_good), format!("{}/crl/{next_id}.crl", server.base));
    let check_all = |server: &Server| {
        for (ca, good, revoked) in [(&old_ca, &a_good, &a_revoked), (&next_ca, &b_good, &b_revoked)] {
            let (ok, text) = verify_with_own_crl(&server.base, d, ca, good);
            assert!(ok && text.contains(": OK"), "{}: {text}", good.display());
            let (ok, text) = verify_with_own_crl(&server.base, d, ca, revoked);
            assert!(
                !ok && text.contains("certificate revoked"),
                "{}: {text}",
                revoked.display()
            );
            assert!(ocsp_status_from(server, d, ca, good).contains(": good"));
            assert!(ocsp_status_from(server, d, ca, revoked).contains(": revoked"));
        }
    };
    check_all(&server);

    // A restart keeps the generations, the switch and both CRLs.
    server.terminate();
    let server = Server::start_in(&data, &args);
    assert_eq!(served_ca(&server), pem_der(&std::fs::read_to_string(&next_ca).unwrap()));
    check_all(&server);
    let list = ca_list(&server);
    let retired = role(&list, "retired")[0];
    assert_eq!(retired["certificates"], 3);
    assert_eq!(role(&list, "current")[0]["certificates"], 5);
    // The audit trail records the rollover and the activation.
    let audit = cli_ok(&server, &["audit", "export"]);
    assert!(
        audit.contains("ca.rollover") && audit.contains("ca.activated"),
        "{audit}"
    );

    // A backup carries both CAs: the restored directory serves as before.
    let backup = d.join("backup");
    cli_ok(&server, &["backup", backup.to_str().unwrap()]);
    assert!(backup.join("cas").join(&next_id).join("ca.key").exists());
    drop(server);
    let restored_dir = d.join("restored");
    let out = std::process::Command::new(crate::support::server::BIN)
        .args([
            "restore",
            "--data",
            restored_dir.to_str().unwrap(),
            backup.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let restored = Server::start_in(&restored_dir, &args);
    assert_eq!(served_ca(&restored), next_der);
    check_all(&restored);
    assert_eq!(ca_list(&restored).len(), 2);
}

fn issuer_and_serial(cert_der: &[u8]) -> Vec<u8> {
    let cert = <x509_cert::Certificate as der::Decode>::from_der(cert_der).unwrap();
    der::Encode::to_der(&scepd::scep::asn1::IssuerAndSerial {
        issuer: cert.tbs_certificate().issuer().clone(),
        serial: der::asn1::Int::new(cert.tbs_certificate().serial_number().as_bytes()).unwrap(),
    })
    .unwrap()
}

fn query(server: &Server, requester: &Requester, content: &[u8], opts: &Opts<'_>) -> scepd::scep::client::CertRep {
    let ra = recipient(&server.scep_url());
    let rep = requester.post(&server.scep_url(), &requester.message(content, &ra, opts));
    assert_eq!(
        rep.header.reply.pki_status.as_deref(),
        Some("0"),
        "{:?}",
        rep.header.reply
    );
    rep
}

/// GetCRL naming `cert`: the CRL (DER).
fn get_crl(server: &Server, requester: &Requester, cert: &[u8]) -> Vec<u8> {
    let opts = Opts {
        message_type: scepd::scep::MessageType::GetCrl,
        ..Default::default()
    };
    let rep = query(server, requester, &issuer_and_serial(cert), &opts);
    assert_eq!(rep.crls.len(), 1);
    rep.crls[0].clone()
}

/// GetCert and CertPoll find `cert` (issued for transaction `tid`); GetCRL answers with the CRL
/// of `ca`, its issuer.
fn queries_find(server: &Server, d: &Path, requester: &Requester, cert: &[u8], tid: &str, ca: &Path) {
    let get = Opts {
        message_type: scepd::scep::MessageType::GetCert,
        ..Default::default()
    };
    assert_eq!(
        query(server, requester, &issuer_and_serial(cert), &get).certificates,
        vec![cert.to_vec()]
    );
    let parsed = <x509_cert::Certificate as der::Decode>::from_der(cert).unwrap();
    #[derive(der::Sequence)]
    struct IssuerAndSubject {
        issuer: x509_cert::name::Name,
        subject: x509_cert::name::Name,
    }
    let ias = der::Encode::to_der(&IssuerAndSubject {
        issuer: parsed.tbs_certificate().issuer().clone(),
        subject: parsed.tbs_certificate().subject().clone(),
    })
    .unwrap();
    let poll = Opts {
        message_type: scepd::scep::MessageType::CertPoll,
        transaction_id: tid,
        ..Default::default()
    };
    assert_eq!(query(server, requester, &ias, &poll).certificates, vec![cert.to_vec()]);
    openssl::write(d, "queried.crl", &get_crl(server, requester, cert));
    let (ok, text) = openssl::try_run(
        d,
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "queried.crl",
            "-CAfile",
            ca.to_str().unwrap(),
            "-noout",
        ],
    );
    assert!(
        ok && text.contains("verify OK"),
        "GetCRL answered another CA's CRL: {text}"
    );
}

/// The root certificates (DER) of `scepd profile`'s trust payloads, after checking that the
/// SCEP payload pins the CA GetCACert names.
fn profile_roots(server: &Server) -> Vec<Vec<u8>> {
    let xml = cli_ok(server, &["profile", "--url", &server.scep_url(), "--challenge", "x"]);
    let profile = plist::Value::from_reader_xml(xml.as_bytes()).unwrap();
    let payloads = profile.as_dictionary().unwrap()["PayloadContent"].as_array().unwrap();
    let of_type = |t: &'static str| {
        payloads
            .iter()
            .map(|p| p.as_dictionary().unwrap())
            .filter(move |p| p["PayloadType"].as_string() == Some(t))
    };
    let roots: Vec<Vec<u8>> = of_type("com.apple.security.root")
        .map(|p| p["PayloadContent"].as_data().unwrap().to_vec())
        .collect();
    let scep = of_type("com.apple.security.scep").next().unwrap();
    let pinned = scep["PayloadContent"].as_dictionary().unwrap()["CAFingerprint"]
        .as_data()
        .unwrap()
        .to_vec();
    let served = served_ca(server);
    assert_eq!(
        pinned,
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &served).as_ref()
    );
    roots
}

/// `ScepdCaRolloverDue` fires 180 days before the current CA expires without a next CA
/// (`promtool test rules` over deploy/prometheus/scepd-rules.test.yml).
#[test]
fn rollover_alert_rule_passes_promtool() {
    let Ok(out) = std::process::Command::new("promtool")
        .args(["test", "rules", "scepd-rules.test.yml"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus"))
        .output()
    else {
        crate::support::skip::skip(
            "rollover::rollover_alert_rule_passes_promtool",
            "promtool (Debian package prometheus) is not installed",
        );
        return;
    };
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Bad input to the rollover API and commands: a clear 4xx or a non-zero exit, never a 500.
#[test]
fn rollover_refusals_are_clear() {
    let server = Server::start(&[]);
    let auth = crate::challenges::admin_auth(&server);
    let post = |path: &str, body: &str| {
        http::request(
            "POST",
            &format!("{}{path}", server.base),
            &[("authorization", auth.as_str()), ("content-type", "application/json")],
            body.as_bytes(),
        )
        .unwrap()
    };
    assert_eq!(post("/api/v1/ca/next", r#"{"issuer": "zz"}"#).status, 400);
    assert_eq!(post("/api/v1/ca/next", "not json").status, 400);
    let absent = post("/api/v1/ca/next", &format!(r#"{{"issuer": "{}"}}"#, "ab".repeat(20)));
    assert_eq!(absent.status, 409, "{}", absent.text());
    assert_eq!(post("/api/v1/ca/activate", r#"{"at": "tomorrow"}"#).status, 400);
    let none = post("/api/v1/ca/activate", "");
    assert_eq!(none.status, 409);
    assert!(none.text().contains("no next CA"), "{}", none.text());
    assert_eq!(
        http::request("GET", &format!("{}/api/v1/ca", server.base), &[], b"")
            .unwrap()
            .status,
        401
    );
    let out = server.cli(&["ca", "activate-next"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no next CA"));
    let out = server.cli(&["ca", "export", "--next"]);
    assert!(!out.status.success());
    // The original CA cannot be recorded as its own next CA.
    let original = ca_list(&server)[0]["issuer"].as_str().unwrap().to_string();
    assert_eq!(
        post("/api/v1/ca/next", &format!(r#"{{"issuer": "{original}"}}"#)).status,
        409
    );
    // Prepared; a moment before 1970 is no RFC 3339 time scepd takes.
    cli_ok(&server, &["ca", "rollover", "--no-ra", "--key-bits", "2048"]);
    let early = post("/api/v1/ca/activate", r#"{"at": "1969-12-31T23:59:59Z"}"#);
    assert_eq!(early.status, 400, "{}", early.text());
    assert!(cli_ok(&server, &["ca", "list"]).contains("next"));
    assert_eq!(
        http::get(&format!("{}/crl/{}.crl", server.base, "cd".repeat(20)))
            .unwrap()
            .status,
        200,
        "an unknown name is the original CA's CRL, as before"
    );
}

/// After any number of rollovers each certificate names, and is checked by, its own issuer's
/// CRL: three generations, a certificate of each, one revoked of each.
#[test]
fn three_generations_each_with_its_own_crl() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let server = Server::start(&["--static-challenge", CHALLENGE]);
    let mut cas = vec![server.ca_pem()];
    let mut leaves = Vec::new();
    for generation in 0..3 {
        if generation > 0 {
            cli_ok(
                &server,
                &[
                    "ca",
                    "rollover",
                    "--ca-subject",
                    &format!("CN=scepd CA {generation},O=scepd"),
                ],
            );
            let pem = cli_ok(&server, &["ca", "export", "--next"]);
            cas.push(openssl::write(d, &format!("ca{generation}.pem"), pem.as_bytes()));
            cli_ok(&server, &["ca", "activate-next"]);
        }
        let mut pair = Vec::new();
        for which in ["good", "revoked"] {
            let requester = Requester::new(KeyBits::Rsa2048);
            let rep = requester.post(
                &server.scep_url(),
                &requester.message(
                    &requester.csr(&format!("CN=gen{generation}-{which}"), Some(CHALLENGE)),
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
            let pem = scepd_ca::pem::encode("CERTIFICATE", &rep.certificates[0]);
            pair.push(openssl::write(
                d,
                &format!("gen{generation}-{which}.pem"),
                pem.as_bytes(),
            ));
        }
        cli_ok(&server, &["cert", "revoke", &serial_of(d, &pair[1])]);
        leaves.push(pair);
    }
    let list = ca_list(&server);
    assert_eq!(role(&list, "retired").len(), 2);
    assert_eq!(role(&list, "current")[0]["subject"], "CN=scepd CA 2,O=scepd");
    for (ca, pair) in cas.iter().zip(&leaves) {
        let (ok, text) = verify_with_own_crl(&server.base, d, ca, &pair[0]);
        assert!(ok && text.contains(": OK"), "{text}");
        let (ok, text) = verify_with_own_crl(&server.base, d, ca, &pair[1]);
        assert!(!ok && text.contains("certificate revoked"), "{text}");
        // Each CRL lists only its own CA's revocation.
        let crl = String::from_utf8(openssl::run(d, &["crl", "-in", "own.crl.pem", "-noout", "-text"])).unwrap();
        assert_eq!(crl.matches("Serial Number:").count(), 1, "{crl}");
        assert!(ocsp_status_from(&server, d, ca, &pair[0]).contains(": good"));
        assert!(ocsp_status_from(&server, d, ca, &pair[1]).contains(": revoked"));
    }
}

/// `scepd ca remove`: only a retired CA whose certificates have all expired goes; the original
/// and the current CA stay. A removed CA is no longer listed or served, and stays removed after
/// a restart although its files are still in the data directory.
#[test]
fn a_retired_ca_is_removed_only_once_its_certificates_expired() {
    let tmp = tempfile::tempdir().unwrap();
    let args = ["--static-challenge", CHALLENGE, "--allow-des"];
    let mut server = Server::start(&args);
    let current = |server: &Server| {
        role(&ca_list(server), "current")[0]["issuer"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let roll = |server: &Server| {
        cli_ok(server, &["ca", "rollover"]);
        cli_ok(server, &["ca", "activate-next"]);
        current(server)
    };
    let original = current(&server);
    let first = roll(&server);
    enroll(&server, &tmp.path().join("leaf"), "removal-test-device");
    let second = roll(&server);
    let third = roll(&server);
    let refused = |server: &Server, issuer: &str, why: &str| {
        let out = server.cli(&["ca", "remove", issuer]);
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && text.contains(why), "{issuer}: {text}");
    };
    refused(&server, &original, "original CA stays");
    refused(&server, &third, "is current");
    refused(&server, &first, "its last certificate expires");

    // The second CA issued nothing: it goes.
    cli_ok(&server, &["ca", "remove", &second]);
    refused(&server, &second, "no CA");
    let listed = ca_list(&server);
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(listed.iter().all(|g| g["issuer"] != second.as_str()));
    let audit = cli_ok(&server, &["audit", "export"]);
    assert!(
        audit
            .lines()
            .any(|l| l.contains("\"ca.removed\"") && l.contains(&second)),
        "{audit}"
    );

    let data = server.data().to_path_buf();
    assert!(data.join("cas").join(&second).join("ca.pem").exists());
    server.terminate();
    let server = Server::start_in(&data, &args);
    let listed = ca_list(&server);
    assert_eq!(listed.len(), 3, "not recorded again from its files: {listed:?}");
    assert_eq!(current(&server), third);
}
