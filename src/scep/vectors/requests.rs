//! Each captured request decoded (BER tolerant), verified and opened by scepd's wire-format
//! code, every field compared with what OpenSSL read in it at capture time.

use der::{Decode, Encode, Tagged};
use x509_cert::certificate::{CertificateInner, Raw};

use super::{ca, policy, ra, Vector, ALL, APPLE, CERTMONGER, SCEPCLIENT, SSCEP_BER, SSCEP_DER};
use crate::scep::asn1::CertReqIn;
use crate::scep::cipher::ContentCipher;
use crate::scep::{ber, csr, envelope, request, FailInfo, MessageType};

fn check(v: &Vector) {
    let name = v.name;
    let normalized = ber::normalize(v.message).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        normalized == v.message,
        v.expected("encoding") == "der",
        "{name}: BER or DER"
    );

    let message = request::decode(v.message).unwrap_or_else(|e| panic!("{name}: {e}"));
    let header = &message.header;
    assert_eq!(
        header.message_type.map(MessageType::wire),
        Some(v.expected("message_type")),
        "{name}: messageType"
    );
    let (tag, text) = v.expected_transaction_id();
    assert_eq!(header.transaction_id.tag(), tag, "{name}: transactionID type");
    assert_eq!(header.transaction_id.value(), text, "{name}: transactionID bytes");
    assert_eq!(
        header.sender_nonce,
        v.expected_hex("sender_nonce"),
        "{name}: senderNonce"
    );
    assert_eq!(message.digest(), Some(v.expected_digest()), "{name}: digest");

    let signer = message.verify().unwrap_or_else(|r| panic!("{name}: {}", r.text));
    let signer_cert = CertificateInner::<Raw>::from_der(&signer.der).expect("signer certificate");
    assert_eq!(
        signer_cert.tbs_certificate().subject().to_string(),
        v.expected("signer_subject"),
        "{name}: signer subject"
    );
    // OpenSSL prints the serial's magnitude; the INTEGER's content may lead with a 0 byte.
    let serial = signer.issuer_and_serial.serial.as_bytes();
    let serial = serial.strip_prefix(&[0]).unwrap_or(serial);
    assert_eq!(serial, v.expected_hex("signer_serial"), "{name}: signer serial");

    // Each of the RA and the CA opens it exactly when it is one of the recipients (micromdm's
    // scepclient encrypts to both).
    let (ca, ra) = (ca(), ra());
    let recipients: Vec<&str> = v.expected("recipients").split(',').collect();
    for (who, identity) in [("ra", &ra), ("ca", &ca)] {
        let alone = envelope::open(&message.econtent, &[identity], policy(true));
        match alone {
            Ok(_) => assert!(recipients.contains(&who), "{name}: {who} opened it"),
            Err(r) => {
                assert!(!recipients.contains(&who), "{name}: {who}: {}", r.text);
                assert_eq!(r.fail_info, FailInfo::BadMessageCheck, "{name}");
            }
        }
    }
    let opened =
        envelope::open(&message.econtent, &[&ra, &ca], policy(true)).unwrap_or_else(|r| panic!("{name}: {}", r.text));
    assert_eq!(opened.cipher, v.expected_cipher(), "{name}: content cipher");

    let csr = csr::parse_and_verify(&opened.content).unwrap_or_else(|r| panic!("{name}: {}", r.text));
    assert_eq!(
        csr.subject.to_string(),
        v.expected("csr_subject"),
        "{name}: CSR subject"
    );
    assert_eq!(csr.key_bits.to_string(), v.expected("csr_key_bits"), "{name}: key size");
    assert_eq!(
        csr.challenge.as_deref(),
        Some(v.expected("challenge")),
        "{name}: challengePassword"
    );
    let version: u8 = v.expected("csr_version").parse().expect("a small version");
    let req = CertReqIn::from_der(&ber::normalize(&opened.content).expect("CSR")).expect("CSR");
    assert_eq!(req.info.version.as_bytes(), [version], "{name}: PKCS#10 version");
    assert_eq!(
        signer.spki_der == csr.public_key.to_der().expect("SPKI"),
        v.expected("signer_is_csr_key") == "yes",
        "{name}: signer key versus CSR key"
    );
}

#[test]
fn micromdm_scepclient() {
    check(&SCEPCLIENT);
}

#[test]
fn certmonger() {
    check(&CERTMONGER);
}

#[test]
fn sscep_shaped_der() {
    check(&SSCEP_DER);
}

#[test]
fn sscep_shaped_ber() {
    check(&SSCEP_BER);
}

#[test]
fn apple_shaped() {
    check(&APPLE);
}

/// RFC 8894 forbids single DES: scepclient's request opens only when the operator allows it.
#[test]
fn single_des_needs_allow_des() {
    assert_eq!(SCEPCLIENT.expected_cipher(), ContentCipher::DesCbc);
    let message = request::decode(SCEPCLIENT.message).unwrap();
    let refused = envelope::open(&message.econtent, &[&ra()], policy(false)).unwrap_err();
    assert_eq!(refused.fail_info, FailInfo::BadAlg);
}

/// A changed bit in the signature or in the signed content fails verification.
#[test]
fn tampering_is_detected() {
    for v in ALL.iter().filter(|v| v.expected("encoding") == "der") {
        // In DER the SignerInfo's signature is the last field of the message.
        let mut bytes = v.message.to_vec();
        *bytes.last_mut().unwrap() ^= 1;
        let verdict = request::decode(&bytes).unwrap().verify().map(|_| ()).unwrap_err();
        assert_eq!(verdict.fail_info, FailInfo::BadMessageCheck, "{}: signature", v.name);

        // The envelope is covered by the messageDigest attribute.
        let econtent = request::decode(v.message).unwrap().econtent;
        let at = v.message.windows(econtent.len()).position(|w| w == econtent).unwrap();
        let mut bytes = v.message.to_vec();
        bytes[at + econtent.len() / 2] ^= 1;
        let verdict = request::decode(&bytes).unwrap().verify().map(|_| ()).unwrap_err();
        assert_eq!(verdict.fail_info, FailInfo::BadMessageCheck, "{}: content", v.name);
    }
}

/// micromdm's scepclient encrypts the content key to every certificate of GetCACert: its
/// request carries two KeyTransRecipientInfos, the RA's and the CA's. The identity the caller
/// prefers opens it, whatever the order of the RecipientInfos: each case gives the other
/// identity the wrong key, so picking it would end in implicit rejection (no CSR).
#[test]
fn scepclient_is_opened_by_the_preferred_of_its_two_recipients() {
    use super::identity;
    let message = request::decode(SCEPCLIENT.message).unwrap();
    let pem = |name: &str| match name {
        "ca.pem" => include_str!("../../../tests/vectors/ca.pem"),
        "ca.key" => include_str!("../../../tests/vectors/ca.key"),
        "ra.pem" => include_str!("../../../tests/vectors/ra.pem"),
        _ => include_str!("../../../tests/vectors/ra.key"),
    };
    for (preferred, other) in [("ra", "ca"), ("ca", "ra")] {
        let right = identity(pem(&format!("{preferred}.pem")), pem(&format!("{preferred}.key")));
        let wrong_key = identity(pem(&format!("{other}.pem")), pem(&format!("{preferred}.key")));
        let opened = envelope::open(&message.econtent, &[&right, &wrong_key], policy(true))
            .unwrap_or_else(|e| panic!("{preferred} first: {e:?}"));
        csr::parse_and_verify(&opened.content).unwrap_or_else(|e| panic!("{preferred} first: {e:?}"));
    }
}
