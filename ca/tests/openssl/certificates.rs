//! Certificates built by the CA crate, parsed and verified by `openssl x509` and `openssl verify`.

use der::asn1::{Ia5String, OctetString};
use der::{Decode, Encode};
use scepd_ca::{Authority, CaParams, KeyBits, LeafRequest, Okta, RsaKey, Serial, OKTA_DEVICE_ACCESS_OID};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::Extension;

use crate::support::{authority, hex_upper, Openssl, CA_SUBJECT, CA_VALIDITY_DAYS};

const DAY: u64 = 86_400;

/// `-checkend` succeeds when the certificate is still valid that many seconds from now.
fn valid_for_days(ossl: &Openssl, cert: &str, days: u64) -> bool {
    let seconds = (days * DAY).to_string();
    ossl.run(&["x509", "-noout", "-in", cert, "-checkend", &seconds])
        .status
        .success()
}

#[test]
fn ca_and_ra_certificates() {
    let ossl = Openssl::new();
    let authority = authority();
    let ra = authority.ra.as_ref().unwrap();
    let ca_pem = ossl.write_cert("ca.pem", &authority.ca.der);
    let ra_pem = ossl.write_cert("ra.pem", &ra.der);

    let ca_text = ossl.x509(&ca_pem, &["-subject", "-issuer", "-serial"]);
    assert!(ca_text.contains(&format!("subject={CA_SUBJECT}\n")), "{ca_text}");
    assert!(ca_text.contains(&format!("issuer={CA_SUBJECT}\n")), "{ca_text}");
    let serial = authority.ca.cert.tbs_certificate().serial_number().as_bytes();
    assert!(
        ca_text.contains(&format!("serial={}\n", hex_upper(serial))),
        "{ca_text}"
    );
    // RFC 5280 §4.2.1.9: a CA's basicConstraints is critical.
    let ext = ossl.x509(&ca_pem, &["-ext", "basicConstraints,keyUsage"]);
    assert!(ext.contains("Basic Constraints: critical\n    CA:TRUE"), "{ext}");
    assert!(ext.contains("Certificate Sign, CRL Sign"), "{ext}");
    assert!(!ext.contains("Key Encipherment"), "the RA decrypts, not the CA: {ext}");
    assert!(ossl
        .ok(&["verify", "-CAfile", "ca.pem", "ca.pem"])
        .contains("ca.pem: OK"));
    assert!(valid_for_days(&ossl, "ca.pem", u64::from(CA_VALIDITY_DAYS) - 1));
    assert!(!valid_for_days(&ossl, "ca.pem", u64::from(CA_VALIDITY_DAYS) + 1));

    let ra_text = ossl.x509(&ra_pem, &["-subject", "-issuer", "-ext", "basicConstraints,keyUsage"]);
    assert!(ra_text.contains("subject=CN=scepd RA,O=scepd tests\n"), "{ra_text}");
    assert!(ra_text.contains(&format!("issuer={CA_SUBJECT}\n")), "{ra_text}");
    assert!(ra_text.contains("CA:FALSE"), "{ra_text}");
    assert!(ra_text.contains("Digital Signature, Key Encipherment"), "{ra_text}");
    assert!(ossl
        .ok(&["verify", "-CAfile", "ca.pem", "ra.pem"])
        .contains("ra.pem: OK"));
    // The RA's authorityKeyIdentifier is the CA's subjectKeyIdentifier.
    let ski = ossl.x509(&ca_pem, &["-ext", "subjectKeyIdentifier"]);
    let ski = ski.lines().nth(1).unwrap().trim();
    let aki = ossl.x509(&ra_pem, &["-ext", "authorityKeyIdentifier"]);
    assert!(aki.contains(ski), "{aki} does not name {ski}");
}

#[test]
fn ca_without_ra_may_encipher() {
    let ossl = Openssl::new();
    let authority = Authority::create(&CaParams {
        subject: scepd_ca::name::parse(CA_SUBJECT).unwrap(),
        key_bits: KeyBits::Rsa2048,
        validity_days: CA_VALIDITY_DAYS,
        with_ra: false,
    })
    .unwrap();
    assert!(authority.ra.is_none());
    let ca_pem = ossl.write_cert("ca.pem", &authority.ca.der);
    let ext = ossl.x509(&ca_pem, &["-ext", "keyUsage"]);
    assert!(
        ext.contains("Digital Signature, Key Encipherment, Certificate Sign, CRL Sign"),
        "{ext}"
    );
}

fn san(dns: &str) -> Extension {
    let names = SubjectAltName(vec![GeneralName::DnsName(Ia5String::new(dns).unwrap())]);
    Extension {
        extn_id: const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME,
        critical: false,
        extn_value: OctetString::new(names.to_der().unwrap()).unwrap(),
    }
}

#[test]
fn leaf_certificate_carries_what_was_asked() {
    let ossl = Openssl::new();
    let authority = authority();
    ossl.write_cert("ca.pem", &authority.ca.der);
    let key = RsaKey::generate(KeyBits::Rsa2048).unwrap();
    ossl.write("key.pem", key.to_pkcs8_pem());
    let serial = Serial::fresh();
    let leaf = authority
        .issue(&LeafRequest {
            serial,
            subject: scepd_ca::name::parse("CN=device-1,O=Example Devices").unwrap(),
            public_key: SubjectPublicKeyInfoOwned::from_der(&key.public_key_spki_der()).unwrap(),
            subject_alt_name: Some(san("device-1.example.test")),
            not_before: scepd_ca::time::unix_now() - 60,
            validity_days: 10,
            crl_url: Some("http://scep.example.test/crl".into()),
            ocsp_url: Some("http://scep.example.test/ocsp".into()),
            ca_issuers_url: Some("http://scep.example.test/ca.cer".into()),
            okta: Okta::DeviceAccess,
        })
        .unwrap();
    let leaf_pem = ossl.write_cert("leaf.pem", &leaf.to_der().unwrap());

    let text = ossl.x509(&leaf_pem, &["-subject", "-issuer", "-serial"]);
    assert!(text.contains("subject=CN=device-1,O=Example Devices\n"), "{text}");
    assert!(text.contains(&format!("issuer={CA_SUBJECT}\n")), "{text}");
    assert!(text.contains(&format!("serial={serial}\n")), "{text}");
    let ext = ossl.x509(
        &leaf_pem,
        &[
            "-ext",
            "basicConstraints,keyUsage,extendedKeyUsage,subjectAltName,crlDistributionPoints,authorityInfoAccess",
        ],
    );
    for expected in [
        "CA:FALSE",
        "Key Usage: critical\n    Digital Signature\n",
        "TLS Web Client Authentication",
        "DNS:device-1.example.test",
        "URI:http://scep.example.test/crl",
        "OCSP - URI:http://scep.example.test/ocsp",
        "CA Issuers - URI:http://scep.example.test/ca.cer",
    ] {
        assert!(ext.contains(expected), "{expected:?} missing from\n{ext}");
    }
    // Okta Device Access: extension 1.3.6.1.4.1.51150.13.1 whose value is INTEGER 1.
    let asn1 = ossl.ok(&["asn1parse", "-in", "leaf.pem"]);
    let at = asn1
        .find(&format!(":{OKTA_DEVICE_ACCESS_OID}\n"))
        .unwrap_or_else(|| panic!("no Okta extension in\n{asn1}"));
    let value = asn1[at..].lines().nth(1).unwrap();
    assert!(value.ends_with("[HEX DUMP]:020101"), "{value}");

    let leaf_key = ossl.x509(&leaf_pem, &["-pubkey"]);
    assert_eq!(leaf_key, ossl.ok(&["pkey", "-in", "key.pem", "-pubout"]));
    let verified = ossl.ok(&["verify", "-CAfile", "ca.pem", "-purpose", "sslclient", "leaf.pem"]);
    assert!(verified.contains("leaf.pem: OK"), "{verified}");
    assert!(valid_for_days(&ossl, "leaf.pem", 9));
    assert!(!valid_for_days(&ossl, "leaf.pem", 11));
}

/// A leaf never outlives its CA.
#[test]
fn leaf_validity_is_capped_at_the_ca() {
    let ossl = Openssl::new();
    let authority = authority();
    let ca_pem = ossl.write_cert("ca.pem", &authority.ca.der);
    let days = CA_VALIDITY_DAYS * 10;
    let (leaf, _) = crate::support::leaf(&authority, Serial::fresh(), "long-lived", days);
    let leaf_pem = ossl.write_cert("leaf.pem", &leaf);
    assert_eq!(ossl.x509(&leaf_pem, &["-enddate"]), ossl.x509(&ca_pem, &["-enddate"]));
}
