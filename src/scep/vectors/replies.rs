//! What scepd answers the captured requests with: byte for byte where the bytes are
//! deterministic, otherwise by structure, read back with the `cms` crate's parser as well as
//! scepd's own.

use cms::cert::CertificateChoices;
use cms::enveloped_data::{EnvelopedData, RecipientIdentifier, RecipientInfo};
use cms::signed_data::SignedData;
use der::asn1::OctetString;
use der::{Decode, Encode, Tagged};
use rsa::pkcs8::DecodePrivateKey;
use scepd_ca::{Authority, Certificate, Identity, LeafRequest, Okta, Serial};

use super::{ca, policy, ra, Vector, ALL, APPLE, APPLE_SIGNER_CERT, APPLE_SIGNER_KEY};
use crate::scep::cipher::ContentCipher;
use crate::scep::digest::DigestAlg;
use crate::scep::reply::{self, Outcome};
use crate::scep::{caps, csr, envelope, oids, request, FailInfo, MessageType};

#[test]
fn get_ca_caps_body() {
    // RFC 8894 §3.5.2 keywords, one per line, each line ending in LF.
    assert_eq!(
        caps::body(false),
        "POSTPKIOperation\nSHA-1\nSHA-256\nSHA-512\nAES\nDES3\nSCEPStandard\nRenewal\n"
    );
}

/// GetCACert with an RA: the certs-only SignedData is exactly what `openssl crl2pkcs7` makes of
/// the RA and the CA, in that order.
#[test]
fn get_ca_cert_body_is_openssl_crl2pkcs7() {
    let (ca, ra) = (ca(), ra());
    let body = reply::certs_only(&[&ra.der, &ca.der], &[]).unwrap();
    assert_eq!(body, include_bytes!("../../../tests/vectors/getcacert-ra.p7b"));
}

/// Checks a CertRep answering `v`, signed by `signer`, and returns it decoded by scepd.
fn check_cert_rep(v: &Vector, rep: &[u8], signer: &Identity, status: &str) -> request::PkiMessage {
    let name = v.name;
    let decoded = request::decode(rep).unwrap();
    assert_eq!(decoded.verify().unwrap().der, signer.der, "{name}: signed by the RA");
    assert_eq!(decoded.digest(), Some(DigestAlg::Sha256), "{name}");
    let header = &decoded.header;
    assert_eq!(header.message_type, Some(MessageType::CertRep), "{name}");
    assert_eq!(header.reply.pki_status.as_deref(), Some(status), "{name}");
    let (tag, text) = v.expected_transaction_id();
    assert_eq!(
        (header.transaction_id.tag(), header.transaction_id.value()),
        (tag, text),
        "{name}: transactionID echoed byte for byte"
    );
    let request_nonce = v.expected_hex("sender_nonce");
    assert_eq!(header.reply.recipient_nonce.as_ref(), Some(&request_nonce), "{name}");
    assert_eq!(header.sender_nonce.len(), 16, "{name}: fresh senderNonce");
    assert_ne!(header.sender_nonce, request_nonce, "{name}: fresh senderNonce");
    check_signer_info(rep, signer);
    decoded
}

/// Reads the CertRep with the `cms` crate: one SignerInfo with SHA-256 and `rsaEncryption` (what
/// Apple, NDES and cryptlib write), whose PKCS#1 v1.5 signature — deterministic — is exactly the
/// signer key's signature over the DER of the signed attributes, and whose messageDigest is that
/// of the eContent.
fn check_signer_info(rep: &[u8], signer: &Identity) {
    let ci = cms::content_info::ContentInfo::from_der(rep).unwrap();
    assert_eq!(ci.content_type, oids::SIGNED_DATA);
    let sd: SignedData = ci.content.decode_as().unwrap();
    assert_eq!(sd.signer_infos.0.len(), 1);
    let si = sd.signer_infos.0.get(0).unwrap();
    assert_eq!(si.digest_alg.oid, oids::SHA256);
    assert_eq!(si.signature_algorithm.oid, oids::RSA_ENCRYPTION);
    let attrs = si.signed_attrs.as_ref().unwrap();
    let expected = signer.key.sign_sha256(&attrs.to_der().unwrap()).unwrap();
    assert_eq!(si.signature.as_bytes(), expected.as_slice());
    // FAILURE and PENDING carry an empty eContent (certmonger refuses a CertRep without one).
    let econtent = sd.encap_content_info.econtent.expect("eContent");
    let econtent = econtent.decode_as::<OctetString>().unwrap();
    let digest = attrs.iter().find(|a| a.oid == oids::MESSAGE_DIGEST).unwrap();
    let digest = digest.values.get(0).unwrap().decode_as::<OctetString>().unwrap();
    assert_eq!(digest.as_bytes(), DigestAlg::Sha256.digest(econtent.as_bytes()));
}

#[test]
fn failure_and_pending_for_every_vector() {
    let ra = ra();
    for v in &ALL {
        let header = request::decode(v.message).unwrap().header;
        let failure = Outcome::Failure {
            fail_info: FailInfo::BadRequest,
            text: "challenge password rejected",
        };
        let rep = reply::cert_rep(&header, &failure, &ra).unwrap();
        let decoded = check_cert_rep(v, &rep, &ra, "2");
        assert_eq!(decoded.header.reply.fail_info.as_deref(), Some("2"), "{}", v.name);
        assert_eq!(
            decoded.header.reply.fail_info_text.as_deref(),
            Some("challenge password rejected")
        );
        assert!(decoded.econtent.is_empty(), "{}: FAILURE carries no envelope", v.name);

        let rep = reply::cert_rep(&header, &Outcome::Pending, &ra).unwrap();
        let decoded = check_cert_rep(v, &rep, &ra, "3");
        assert_eq!(decoded.header.reply.fail_info, None, "{}", v.name);
        assert!(decoded.econtent.is_empty(), "{}: PENDING carries no envelope", v.name);
    }
}

/// Opens a reply's envelope as a client would, with the `cms` crate's parser and the `rsa`
/// crate, which (unlike aws-lc-rs) takes a 1024-bit key: checks that it is addressed to `cert`,
/// and returns the cipher and the content.
fn open_as_client(econtent: &[u8], cert_pem: &str, key_pem: &str) -> (ContentCipher, Vec<u8>) {
    let ci = cms::content_info::ContentInfo::from_der(econtent).unwrap();
    assert_eq!(ci.content_type, oids::ENVELOPED_DATA);
    let env: EnvelopedData = ci.content.decode_as().unwrap();
    let [RecipientInfo::Ktri(ktri)] = env.recip_infos.0.as_slice() else {
        panic!("one key-transport recipient")
    };
    let RecipientIdentifier::IssuerAndSerialNumber(rid) = &ktri.rid else {
        panic!("recipient named by issuer and serial")
    };
    let cert = Certificate::from_der(&scepd_ca::pem::decode(cert_pem).unwrap().1).unwrap();
    assert_eq!(&rid.issuer, cert.tbs_certificate().issuer());
    assert_eq!(&rid.serial_number, cert.tbs_certificate().serial_number());
    let key = rsa::PrivateKey::from_pkcs8_der(&scepd_ca::pem::decode(key_pem).unwrap().1).unwrap();
    let cek = key.decrypt(rsa::Pkcs1v15Encrypt, ktri.enc_key.as_bytes()).unwrap();
    let eci = &env.encrypted_content;
    let cipher = ContentCipher::from_oid(&eci.content_enc_alg.oid).unwrap();
    let iv: OctetString = eci.content_enc_alg.parameters.as_ref().unwrap().decode_as().unwrap();
    let ciphertext = eci.encrypted_content.as_ref().unwrap().as_bytes();
    (cipher, cipher.decrypt(&cek, iv.as_bytes(), ciphertext).unwrap())
}

/// SUCCESS to the Apple-shaped request: the certificate is enveloped to the request's signer
/// certificate (its own 1024-bit key, not the CSR key) with the request's cipher.
#[test]
fn success_is_enveloped_to_the_apple_signer() {
    let request = request::decode(APPLE.message).unwrap();
    let signer = request.verify().unwrap();
    let authority = Authority {
        ca: ca(),
        ra: Some(ra()),
        chain: Vec::new(),
        ocsp_signer: None,
    };
    let opened = envelope::open(&request.econtent, &[authority.recipient()], policy(false)).unwrap();
    let csr = csr::parse_and_verify(&opened.content).unwrap();
    let leaf = authority
        .issue(&LeafRequest {
            serial: Serial::fresh(),
            subject: csr.subject.clone(),
            public_key: csr.public_key.clone(),
            subject_alt_name: None,
            not_before: scepd_ca::time::unix_now(),
            validity_days: 30,
            crl_url: None,
            ocsp_url: None,
            ca_issuers_url: None,
            okta: Okta::Plain,
        })
        .unwrap();
    let content = reply::certs_only(&[&leaf.to_der().unwrap()], &[]).unwrap();
    let enveloped = envelope::seal(&content, opened.cipher, signer).unwrap();
    let outcome = Outcome::Success { enveloped: &enveloped };
    let rep = reply::cert_rep(&request.header, &outcome, authority.recipient()).unwrap();

    let decoded = check_cert_rep(&APPLE, &rep, authority.recipient(), "0");
    assert_eq!(decoded.econtent, enveloped);
    let (cipher, reopened) = open_as_client(&decoded.econtent, APPLE_SIGNER_CERT, APPLE_SIGNER_KEY);
    assert_eq!(cipher, APPLE.expected_cipher());
    assert_eq!(reopened, content);
    let sd: SignedData = cms::content_info::ContentInfo::from_der(&reopened)
        .unwrap()
        .content
        .decode_as()
        .unwrap();
    let certs: Vec<_> = sd.certificates.unwrap().0.into_vec();
    assert_eq!(certs, vec![CertificateChoices::Certificate(leaf)]);
}
