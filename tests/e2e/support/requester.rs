//! A SCEP requester built on scepd's client-side message code (`scepd::scep::client`).
//! What it receives is checked with OpenSSL in the tests, not only by itself.

use der::{Decode, Encode};
use scepd::scep::cipher::ContentCipher;
use scepd::scep::client::{self, CertRep, RequestParams};
use scepd::scep::digest::DigestAlg;
use scepd::scep::signed::{SignatureAlgorithmField, Signing};
use scepd::scep::MessageType;
use scepd_ca::{Identity, KeyBits, RsaKey};
use x509_cert::ext::pkix::KeyUsage;
use x509_cert::Certificate;

use super::http;

pub struct Requester {
    pub identity: Identity,
}

/// How to write one request.
#[derive(Clone, Copy)]
pub struct Opts<'a> {
    pub cipher: ContentCipher,
    pub digest: DigestAlg,
    pub field: SignatureAlgorithmField,
    pub transaction_id: &'a str,
    pub nonce: &'a [u8],
    pub message_type: MessageType,
}

impl Default for Opts<'_> {
    fn default() -> Self {
        Opts {
            cipher: ContentCipher::Aes128Cbc,
            digest: DigestAlg::Sha256,
            field: SignatureAlgorithmField::ShaWithRsa,
            transaction_id: "",
            nonce: b"0123456789abcdef",
            message_type: MessageType::PkcsReq,
        }
    }
}

pub fn random_id() -> String {
    let mut b = [0u8; 16];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    hex::encode(b)
}

impl Requester {
    pub fn new(bits: KeyBits) -> Requester {
        Requester::with_key(RsaKey::generate(bits).unwrap())
    }

    /// A requester whose signer certificate is self-signed by `key` (what scepclient and
    /// certmonger do; Apple signs with a separate throwaway key).
    pub fn with_key(key: RsaKey) -> Requester {
        let cert = scepd_ca::request::self_signed(&scepd_ca::name::parse("CN=SCEP SIGNER").unwrap(), &key).unwrap();
        let der = cert.to_der().unwrap();
        Requester {
            identity: Identity {
                cert,
                der,
                key: Box::new(key),
            },
        }
    }

    pub fn key_pem(&self) -> String {
        match self.identity.key.custody() {
            scepd_ca::KeyCustody::Software(key) => key.to_pkcs8_pem(),
            _ => unreachable!("test requesters hold software keys"),
        }
    }

    pub fn csr(&self, subject: &str, challenge: Option<&str>) -> Vec<u8> {
        scepd_ca::request::client_csr(
            &scepd_ca::name::parse(subject).unwrap(),
            &self.identity.key,
            challenge,
            &[],
        )
        .unwrap()
    }

    /// Signs an already enveloped `envelope` (a ContentInfo) as a request of `opts.message_type`.
    pub fn sign_envelope(&self, envelope: &[u8], opts: &Opts<'_>) -> Vec<u8> {
        use der::asn1::{Any, OctetString, PrintableStringRef};
        use scepd::scep::oids;
        use scepd::scep::signed::{attribute, signed_data};
        let tid = if opts.transaction_id.is_empty() {
            random_id()
        } else {
            opts.transaction_id.to_string()
        };
        let any = |s: &str| Any::encode_from(&PrintableStringRef::new(s).unwrap()).unwrap();
        let attrs = vec![
            attribute(oids::MESSAGE_TYPE, any(opts.message_type.wire())).unwrap(),
            attribute(oids::TRANSACTION_ID, any(&tid)).unwrap(),
            attribute(
                oids::SENDER_NONCE,
                Any::encode_from(&OctetString::new(opts.nonce).unwrap()).unwrap(),
            )
            .unwrap(),
        ];
        let signing = Signing {
            cert: &self.identity.cert,
            key: self.identity.key.as_ref(),
            digest: opts.digest,
            algorithm_field: opts.field,
        };
        signed_data(Some(envelope), attrs, &signing).unwrap()
    }

    /// A pkiMessage carrying `content` to `recipient`.
    pub fn message(&self, content: &[u8], recipient: &Certificate, opts: &Opts<'_>) -> Vec<u8> {
        let tid = if opts.transaction_id.is_empty() {
            random_id()
        } else {
            opts.transaction_id.to_string()
        };
        let signing = Signing {
            cert: &self.identity.cert,
            key: self.identity.key.as_ref(),
            digest: opts.digest,
            algorithm_field: opts.field,
        };
        let params = RequestParams {
            message_type: opts.message_type,
            transaction_id: &tid,
            sender_nonce: opts.nonce,
            cipher: opts.cipher,
        };
        client::request(content, recipient, &signing, &params).unwrap()
    }

    pub fn read(&self, body: &[u8]) -> CertRep {
        client::read_cert_rep(body, &self.identity).expect("a verifiable CertRep")
    }

    /// POSTs a message and reads the CertRep.
    pub fn post(&self, scep_url: &str, message: &[u8]) -> CertRep {
        let resp = http::post(
            &format!("{scep_url}?operation=PKIOperation"),
            "application/x-pki-message",
            message,
        )
        .unwrap();
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.header("content-type"), Some("application/x-pki-message"));
        self.read(&resp.body)
    }
}

/// The certificate requests must be encrypted to: the one certificate of GetCACert with
/// keyEncipherment (how Apple picks it).
pub fn recipient(scep_url: &str) -> Certificate {
    let resp = http::get(&format!("{scep_url}?operation=GetCACert")).unwrap();
    assert_eq!(resp.status, 200);
    let certs = ca_certs(&resp.body);
    let mut with_ke = certs.into_iter().filter(|c| {
        c.tbs_certificate()
            .get_extension::<KeyUsage>()
            .ok()
            .flatten()
            .is_some_and(|(_, ku)| ku.key_encipherment())
    });
    let first = with_ke.next().expect("a certificate with keyEncipherment");
    assert!(
        with_ke.next().is_none(),
        "exactly one certificate may carry keyEncipherment"
    );
    first
}

/// The certificates of a GetCACert body (a DER certificate or a certs-only PKCS#7).
pub fn ca_certs(body: &[u8]) -> Vec<Certificate> {
    if let Ok(c) = Certificate::from_der(body) {
        return vec![c];
    }
    let ci = cms::content_info::ContentInfo::from_der(body).unwrap();
    let sd = ci.content.decode_as::<cms::signed_data::SignedData>().unwrap();
    sd.certificates
        .unwrap()
        .0
        .iter()
        .map(|c| match c {
            cms::cert::CertificateChoices::Certificate(c) => c.clone(),
            _ => panic!("unexpected certificate choice"),
        })
        .collect()
}
