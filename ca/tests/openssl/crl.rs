//! CRLs built by the CA crate: signature, entries and reasons as `openssl crl` reads them, and
//! revocation as `openssl verify -crl_check` applies it.

use std::collections::BTreeMap;

use scepd_ca::crl::{build_crl, CrlParams, RevokedEntry};
use scepd_ca::{Reason, Serial};

use crate::support::{authority, leaf, openssl_time, printed, Openssl, CA_SUBJECT};

/// `openssl crl -text` entries: serial → (revocation date, reason text if any).
fn revoked_entries(text: &str) -> BTreeMap<String, (String, Option<String>)> {
    let Some((_, list)) = text.split_once("Revoked Certificates:") else {
        return BTreeMap::new();
    };
    list.split("Serial Number: ")
        .skip(1)
        .map(|block| {
            let mut lines = block.lines().map(str::trim);
            let serial = lines.next().unwrap().to_string();
            let date = block
                .lines()
                .find_map(|l| l.trim().strip_prefix("Revocation Date: "))
                .unwrap()
                .to_string();
            let reason = block
                .lines()
                .skip_while(|l| !l.contains("CRL Reason Code"))
                .nth(1)
                .map(|l| l.trim().to_string());
            (serial, (date, reason))
        })
        .collect()
}

#[test]
fn crl_verifies_and_lists_serials_with_reasons() {
    let ossl = Openssl::new();
    let authority = authority();
    ossl.write_cert("ca.pem", &authority.ca.der);
    let now = scepd_ca::time::unix_now();
    // (reason as scepd names it, as OpenSSL prints it; None: RFC 5280 §5.3.1 omits unspecified)
    let reasons = [
        ("keyCompromise", Some("Key Compromise")),
        ("superseded", Some("Superseded")),
        ("unspecified", None),
        ("cessationOfOperation", Some("Cessation Of Operation")),
        ("affiliationChanged", Some("Affiliation Changed")),
    ];
    let entries: Vec<RevokedEntry> = reasons
        .iter()
        .enumerate()
        .map(|(i, (name, _))| RevokedEntry {
            serial: Serial::fresh(),
            revoked_at: now - 3600 * (i as u64 + 1),
            reason: Reason::from_name(name).unwrap(),
        })
        .collect();
    let params = CrlParams {
        number: 42,
        this_update: now - 60,
        next_update: now + 86_400,
    };
    let crl = build_crl(&authority.ca, &params, &entries).unwrap();
    ossl.write("crl.der", &crl);

    let verified = ossl.ok(&["crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "ca.pem", "-noout"]);
    assert!(verified.contains("verify OK"), "{verified}");
    let fields = ossl.ok(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        "crl.der",
        "-noout",
        "-nameopt",
        "RFC2253",
        "-issuer",
        "-crlnumber",
        "-lastupdate",
        "-nextupdate",
    ]);
    for expected in [
        format!("issuer={CA_SUBJECT}\n"),
        "crlNumber=0x2A\n".to_string(),
        format!("lastUpdate={}\n", openssl_time(params.this_update)),
        format!("nextUpdate={}\n", openssl_time(params.next_update)),
    ] {
        assert!(fields.contains(&expected), "{expected:?} missing from\n{fields}");
    }

    let text = ossl.ok(&["crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text"]);
    assert!(text.contains("Version 2 (0x1)"), "{text}");
    let listed = revoked_entries(&text);
    let expected: BTreeMap<String, (String, Option<String>)> = entries
        .iter()
        .zip(reasons)
        .map(|(e, (_, printed))| {
            let when = openssl_time(e.revoked_at);
            (e.serial.to_hex(), (when, printed.map(str::to_string)))
        })
        .collect();
    assert_eq!(listed, expected, "{text}");
    // The authorityKeyIdentifier names the CA's key.
    let ca_pem = ossl.path("ca.pem");
    let ski = ossl.x509(&ca_pem, &["-ext", "subjectKeyIdentifier"]);
    let ski = ski.lines().nth(1).unwrap().trim();
    assert!(text.contains(ski), "{ski} missing from\n{text}");
}

#[test]
fn crl_signed_by_another_ca_does_not_verify() {
    let ossl = Openssl::new();
    let (ours, theirs) = (authority(), authority());
    ossl.write_cert("ca.pem", &ours.ca.der);
    let now = scepd_ca::time::unix_now();
    let params = CrlParams {
        number: 1,
        this_update: now,
        next_update: now + 3600,
    };
    ossl.write("crl.der", build_crl(&theirs.ca, &params, &[]).unwrap());
    // `openssl crl -CAfile` (3.0) reports the failure but exits 0: read what it says.
    let refused = printed(&ossl.run(&["crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "ca.pem", "-noout"]));
    assert!(
        refused.contains("verify failure") && !refused.contains("verify OK"),
        "{refused}"
    );
}

/// `openssl verify -crl_check` refuses the revoked certificate and accepts the other.
#[test]
fn revocation_applies_in_openssl_verify() {
    let ossl = Openssl::new();
    let authority = authority();
    ossl.write_cert("ca.pem", &authority.ca.der);
    let revoked_serial = Serial::fresh();
    let (revoked, _) = leaf(&authority, revoked_serial, "revoked", 7);
    let (good, _) = leaf(&authority, Serial::fresh(), "good", 7);
    ossl.write_cert("revoked.pem", &revoked);
    ossl.write_cert("good.pem", &good);
    let now = scepd_ca::time::unix_now();
    let entry = RevokedEntry {
        serial: revoked_serial,
        revoked_at: now - 10,
        reason: Reason::from_name("keyCompromise").unwrap(),
    };
    let params = CrlParams {
        number: 7,
        this_update: now - 60,
        next_update: now + 3600,
    };
    ossl.write("crl.der", build_crl(&authority.ca, &params, &[entry]).unwrap());
    ossl.ok(&["crl", "-inform", "DER", "-in", "crl.der", "-out", "crl.pem"]);
    let check = ["verify", "-crl_check", "-CRLfile", "crl.pem", "-CAfile", "ca.pem"];
    let refused = ossl.fails(&[&check[..], &["revoked.pem"]].concat());
    assert!(refused.contains("certificate revoked"), "{refused}");
    let accepted = ossl.ok(&[&check[..], &["good.pem"]].concat());
    assert!(accepted.contains("good.pem: OK"), "{accepted}");
}

/// A CRL of many entries (encoded entry by entry, then spliced into the signed TBSCertList) is
/// canonical DER — x509-cert decodes it and encodes the very same bytes — and `openssl crl`
/// verifies its signature and lists every entry.
#[test]
fn a_large_crl_is_canonical_der_that_openssl_verifies_whole() {
    use der::{Decode, Encode};
    let ossl = Openssl::new();
    let authority = authority();
    ossl.write_cert("ca.pem", &authority.ca.der);
    let now = scepd_ca::time::unix_now();
    let entries: Vec<RevokedEntry> = (0..3000u64)
        .map(|i| RevokedEntry {
            serial: Serial::fresh(),
            revoked_at: now - i,
            reason: if i % 3 == 0 {
                Reason::KEY_COMPROMISE
            } else {
                Reason::UNSPECIFIED
            },
        })
        .collect();
    let params = CrlParams {
        number: 9,
        this_update: now - 60,
        next_update: now + 86_400,
    };
    let crl = build_crl(&authority.ca, &params, &entries).unwrap();
    let decoded = x509_cert::crl::CertificateList::<x509_cert::certificate::Rfc5280>::from_der(&crl).unwrap();
    assert_eq!(decoded.to_der().unwrap(), crl);
    let listed = decoded.tbs_cert_list.revoked_certificates.as_ref().unwrap();
    assert_eq!(listed.len(), entries.len());
    assert_eq!(listed[0].serial_number.as_bytes(), entries[0].serial.as_bytes());

    ossl.write("crl.der", &crl);
    let verified = ossl.ok(&["crl", "-inform", "DER", "-in", "crl.der", "-CAfile", "ca.pem", "-noout"]);
    assert!(verified.contains("verify OK"), "{verified}");
    let text = ossl.ok(&["crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text"]);
    assert_eq!(revoked_entries(&text).len(), entries.len());
    assert_eq!(text.matches("Key Compromise").count(), 1000);
}
