//! What a requester makes with the CA crate (PKCS#10 requests, the self-signed signer
//! certificate), verified by `openssl req` and `openssl verify`.

use der::asn1::{Ia5String, OctetString};
use der::Encode;
use scepd_ca::{KeyBits, RsaKey};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::Extension;

use crate::support::Openssl;

fn req_text(ossl: &Openssl, file: &str) -> String {
    ossl.ok(&[
        "req", "-inform", "DER", "-in", file, "-noout", "-verify", "-subject", "-nameopt", "RFC2253", "-text",
    ])
}

#[test]
fn client_csr_with_challenge_and_san() {
    let ossl = Openssl::new();
    let key = RsaKey::generate(KeyBits::Rsa2048).unwrap();
    ossl.write("key.pem", key.to_pkcs8_pem());
    let names = SubjectAltName(vec![GeneralName::DnsName(
        Ia5String::new("device.example.test").unwrap(),
    )]);
    let san = Extension {
        extn_id: const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME,
        critical: false,
        extn_value: OctetString::new(names.to_der().unwrap()).unwrap(),
    };
    let subject = scepd_ca::name::parse("CN=device,O=Example Devices").unwrap();
    let csr = scepd_ca::request::client_csr(&subject, &key, Some("s3cretChallenge"), &[san]).unwrap();
    ossl.write("csr.der", csr);

    let text = req_text(&ossl, "csr.der");
    for expected in [
        "self-signature verify OK",
        "subject=CN=device,O=Example Devices\n",
        "challengePassword        :s3cretChallenge",
        "DNS:device.example.test",
        "Public-Key: (2048 bit)",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from\n{text}");
    }
    let csr_key = ossl.ok(&["req", "-inform", "DER", "-in", "csr.der", "-noout", "-pubkey"]);
    assert_eq!(csr_key, ossl.ok(&["pkey", "-in", "key.pem", "-pubout"]));
}

/// The CSR of a two-step delegated CA asks for a CA certificate.
#[test]
fn ca_csr_asks_for_a_ca() {
    let ossl = Openssl::new();
    let key = RsaKey::generate(KeyBits::Rsa2048).unwrap();
    let subject = scepd_ca::name::parse("CN=Issuing CA,O=Example").unwrap();
    ossl.write("ca.csr", scepd_ca::request::ca_csr(&subject, &key).unwrap());
    let text = req_text(&ossl, "ca.csr");
    for expected in [
        "self-signature verify OK",
        "subject=CN=Issuing CA,O=Example\n",
        "CA:TRUE, pathlen:0",
        "Digital Signature, Certificate Sign, CRL Sign",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from\n{text}");
    }
}

/// The throwaway certificate a SCEP client signs its request with is correctly self-signed.
#[test]
fn self_signed_signer_certificate() {
    let ossl = Openssl::new();
    let key = RsaKey::generate(KeyBits::Rsa2048).unwrap();
    let subject = scepd_ca::name::parse("CN=SCEP SIGNER").unwrap();
    let cert = scepd_ca::request::self_signed(&subject, &key).unwrap();
    let pem = ossl.write_cert("signer.pem", &cert.to_der().unwrap());
    let text = ossl.x509(&pem, &["-subject", "-issuer"]);
    assert!(
        text.contains("subject=CN=SCEP SIGNER\nissuer=CN=SCEP SIGNER\n"),
        "{text}"
    );
    let verified = ossl.ok(&["verify", "-check_ss_sig", "-CAfile", "signer.pem", "signer.pem"]);
    assert!(verified.contains("signer.pem: OK"), "{verified}");
}
