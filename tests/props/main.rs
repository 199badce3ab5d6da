//! Property tests (stable Rust, in the normal suite) over everything that reads untrusted
//! bytes: no input makes a parser panic, and the BER normalizer is idempotent on its output.

use proptest::prelude::*;
use scepd::scep::{ber, csr, query, request};

/// Mutations of a real pkiMessage keep the fuzzing near the interesting structure.
fn real_message() -> Vec<u8> {
    use scepd::scep::cipher::ContentCipher;
    use scepd::scep::client::{self, RequestParams};
    use scepd::scep::digest::DigestAlg;
    use scepd::scep::signed::{SignatureAlgorithmField, Signing};
    use scepd::scep::MessageType;
    let key = scepd_ca::RsaKey::generate(scepd_ca::KeyBits::Rsa2048).unwrap();
    let cert = scepd_ca::request::self_signed(&scepd_ca::name::parse("CN=prop").unwrap(), &key).unwrap();
    let csr = scepd_ca::request::client_csr(&scepd_ca::name::parse("CN=prop").unwrap(), &key, Some("c"), &[]).unwrap();
    let signing = Signing {
        cert: &cert,
        key: &key,
        digest: DigestAlg::Sha256,
        algorithm_field: SignatureAlgorithmField::RsaEncryption,
    };
    let params = RequestParams {
        message_type: MessageType::PkcsReq,
        transaction_id: "t",
        sender_nonce: b"n",
        cipher: ContentCipher::Aes128Cbc,
    };
    client::request(&csr, &cert, &signing, &params).unwrap()
}

fn message() -> &'static [u8] {
    static M: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    M.get_or_init(real_message)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn ber_normalize_never_panics_and_is_idempotent(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(der) = ber::normalize(&bytes) {
            prop_assert_eq!(ber::normalize(&der).unwrap(), der);
        }
    }

    #[test]
    fn pki_message_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        if let Ok(m) = request::decode(&bytes) {
            let _ = m.verify();
        }
    }

    #[test]
    fn mutated_real_messages_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>()) {
        let mut m = message().to_vec();
        for (i, b) in flips {
            let i = i.index(m.len());
            m[i] ^= b;
        }
        let m = &m[..cut.index(m.len() + 1)];
        if let Ok(parsed) = request::decode(m) {
            let _ = parsed.verify();
        }
    }

    #[test]
    fn csr_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let _ = csr::parse_and_verify(&bytes);
    }

    #[test]
    fn get_query_decoding_never_panics(q in ".{0,300}") {
        let parsed = query::parse(&q);
        if let Some(m) = parsed.message {
            let _ = query::decode_message(&m);
        }
    }

    #[test]
    fn challenge_api_body_parsing_never_panics(body in ".{0,300}") {
        let _ = scepd::api::revocation_reason(body.as_bytes());
        let _ = scepd::api::jamf_scep_challenge(body.as_bytes());
        let _ = scepd::api::challenge_params(body.as_bytes());
        let _ = scepd::api::basic_credentials(&body);
        let _ = scepd::api::cert_filter(&body);
        let _ = body.parse::<scepd_ca::Serial>();
    }
}
