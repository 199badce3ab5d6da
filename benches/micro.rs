//! Micro-benchmarks of the enrollment path, with the same backends the server uses:
//! `cargo bench --bench micro`. See BENCHMARKS.md.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use der::Encode;
use scepd::challenge::key::ChallengeKey;
use scepd::challenge::ChallengePolicy;
use scepd::metrics::Metrics;
use scepd::scep::cipher::ContentCipher;
use scepd::scep::client::{self, signer_cert_of, RequestParams};
use scepd::scep::digest::DigestAlg;
use scepd::scep::envelope::{self, CipherPolicy};
use scepd::scep::reply::{self, Outcome};
use scepd::scep::signed::{SignatureAlgorithmField, Signing};
use scepd::scep::{csr, request, MessageType};
use scepd::service::{ChallengeTtl, DeviceIdField, Lifecycle, Policy, ScepService};
use scepd::store::RedbStore;
use scepd_ca::{Authority, CaParams, Identity, KeyBits, LeafRequest, Okta, RsaKey, Serial};

const CHALLENGE: &str = "bench-challenge";

fn authority(bits: KeyBits) -> Authority {
    Authority::create(&CaParams {
        subject: scepd_ca::name::parse("CN=Bench CA,O=scepd").unwrap(),
        key_bits: bits,
        validity_days: 3650,
        with_ra: true,
    })
    .unwrap()
}

fn requester() -> Identity {
    let key = RsaKey::generate(KeyBits::Rsa2048).unwrap();
    let cert = scepd_ca::request::self_signed(&scepd_ca::name::parse("CN=bench signer").unwrap(), &key).unwrap();
    Identity {
        der: cert.to_der().unwrap(),
        cert,
        key: Box::new(key),
    }
}

fn pkcs_req(
    recipient: &x509_cert::Certificate,
    who: &Identity,
    cipher: ContentCipher,
    digest: DigestAlg,
    tid: &str,
) -> Vec<u8> {
    let csr = scepd_ca::request::client_csr(
        &scepd_ca::name::parse(&format!("CN={tid}")).unwrap(),
        &who.key,
        Some(CHALLENGE),
        &[],
    )
    .unwrap();
    let signing = Signing {
        cert: &who.cert,
        key: who.key.as_ref(),
        digest,
        algorithm_field: SignatureAlgorithmField::RsaEncryption,
    };
    let params = RequestParams {
        message_type: MessageType::PkcsReq,
        transaction_id: tid,
        sender_nonce: &[7; 16],
        cipher,
    };
    client::request(&csr, recipient, &signing, &params).unwrap()
}

fn cipher_policy() -> CipherPolicy {
    CipherPolicy {
        allow_des: false,
        rejection_secret: [9; 32],
    }
}

fn policy(dir: &std::path::Path) -> Policy {
    Policy {
        challenge: ChallengePolicy::new(Some(CHALLENGE), false, ChallengeKey::new(b"bench")),
        cipher: cipher_policy(),
        min_key_bits: 2048,
        cert_validity_days: 365,
        not_before_backdate_seconds: 300,
        crl_url: Some("http://127.0.0.1/crl".into()),
        challenge_ttl: ChallengeTtl {
            default_seconds: 3600,
            max_seconds: 86400,
        },
        lifecycle: Lifecycle {
            device_id_field: DeviceIdField::CommonName,
            max_valid_per_device: None,
            revoke_superseded_after: None,
            renewal_window_percent: 33,
            allow_key_reuse: false,
            okta_device_access: false,
            crl_next_update_seconds: 86400,
            crl_keep_expired_seconds: 0,
            ocsp_url: Some("http://127.0.0.1/ocsp".into()),
            ca_issuers_url: Some("http://127.0.0.1/ca.crt".into()),
            unbound_reenrollment: Default::default(),
        },
        data_dir: dir.to_path_buf(),
        public_url: "http://127.0.0.1".into(),
        san: Default::default(),
    }
}

/// The three RSA private-key operations of an enrollment, alone: the floor of its cost.
fn rsa_operations(c: &mut Criterion) {
    for bits in [KeyBits::Rsa2048, KeyBits::Rsa3072, KeyBits::Rsa4096] {
        let auth = authority(bits);
        let name = format!("rsa{}", auth.ca.key.bits());
        let ra = auth.recipient();
        let target = signer_cert_of(&ra.cert).unwrap();
        let sealed = envelope::seal(b"0123456789abcdef", ContentCipher::Aes128Cbc, &target).unwrap();
        let ci: cms::content_info::ContentInfo = der::Decode::from_der(&sealed).unwrap();
        let env: cms::enveloped_data::EnvelopedData = ci.content.decode_as().unwrap();
        let enc_key = match env.recip_infos.0.iter().next().unwrap() {
            cms::enveloped_data::RecipientInfo::Ktri(k) => k.enc_key.as_bytes().to_vec(),
            _ => unreachable!(),
        };
        let tbs = vec![0x5au8; 900]; // about a leaf certificate's TBS
        let attrs = vec![0xa5u8; 300]; // about a CertRep's signed attributes
        let mut g = c.benchmark_group(format!("rsa_private_ops/{name}"));
        g.bench_function("decrypt_cek", |b| b.iter(|| ra.key.decrypt_pkcs1(&enc_key).unwrap()));
        g.bench_function("sign_certificate", |b| {
            b.iter(|| auth.ca.key.sign_sha256(&tbs).unwrap())
        });
        g.bench_function("sign_certrep", |b| b.iter(|| ra.key.sign_sha256(&attrs).unwrap()));
        g.finish();
    }
}

fn parse_verify_decrypt(c: &mut Criterion) {
    let auth = authority(KeyBits::Rsa2048);
    let who = requester();
    let mut g = c.benchmark_group("parse_verify_decrypt");
    for (label, cipher, digest) in [
        ("aes128_sha256", ContentCipher::Aes128Cbc, DigestAlg::Sha256),
        ("des3_sha512", ContentCipher::DesEde3Cbc, DigestAlg::Sha512),
    ] {
        let message = pkcs_req(&auth.recipient().cert, &who, cipher, digest, "t");
        g.bench_function(label, |b| {
            b.iter(|| {
                let m = request::decode(&message).unwrap();
                m.verify().unwrap();
                let opened = envelope::open(&m.econtent, &[auth.recipient()], cipher_policy()).unwrap();
                csr::parse_and_verify(&opened.content).unwrap()
            })
        });
    }
    g.finish();
}

fn build_certificate_and_certrep(c: &mut Criterion) {
    let auth = authority(KeyBits::Rsa2048);
    let who = requester();
    let spki: spki::SubjectPublicKeyInfoOwned = der::Decode::from_der(&who.key.public_key_spki_der()).unwrap();
    let leaf = || LeafRequest {
        serial: Serial::fresh(),
        subject: scepd_ca::name::parse("CN=device").unwrap(),
        public_key: spki.clone(),
        subject_alt_name: None,
        not_before: scepd_ca::time::unix_now(),
        validity_days: 365,
        crl_url: Some("http://127.0.0.1/crl".into()),
        ocsp_url: Some("http://127.0.0.1/ocsp".into()),
        ca_issuers_url: Some("http://127.0.0.1/ca.crt".into()),
        okta: Okta::Plain,
    };
    c.bench_function("build_certificate", |b| b.iter(|| auth.issue(&leaf()).unwrap()));
    let cert = auth.issue(&leaf()).unwrap().to_der().unwrap();
    let message = pkcs_req(
        &auth.recipient().cert,
        &who,
        ContentCipher::Aes128Cbc,
        DigestAlg::Sha256,
        "t",
    );
    let header = request::decode(&message).unwrap().header;
    let signer = signer_cert_of(&who.cert).unwrap();
    c.bench_function("build_success_certrep", |b| {
        b.iter(|| {
            let certs = reply::certs_only(&[&cert], &[]).unwrap();
            let enveloped = envelope::seal(&certs, ContentCipher::Aes128Cbc, &signer).unwrap();
            reply::cert_rep(&header, &Outcome::Success { enveloped: &enveloped }, auth.recipient()).unwrap()
        })
    });
}

/// A whole enrollment in process: decode, verify, decrypt, policy, issue, durable store
/// commit, CertRep.
fn full_enrollment(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let auth = authority(KeyBits::Rsa2048);
    let ra_cert = auth.recipient().cert.clone();
    let store = Arc::new(RedbStore::open(&dir.path().join("scepd.redb")).unwrap());
    let service = ScepService::new(auth, store, policy(dir.path()), Arc::new(Metrics::new())).unwrap();
    let who = requester();
    let mut n = 0u64;
    let origin = scepd::service::Origin::new("127.0.0.1", 0);
    c.bench_function("full_enrollment", |b| {
        b.iter_batched(
            || {
                n += 1;
                pkcs_req(
                    &ra_cert,
                    &who,
                    ContentCipher::Aes128Cbc,
                    DigestAlg::Sha256,
                    &format!("e{n}"),
                )
            },
            |message| {
                let reply = service.pki_operation(&message, &origin).unwrap();
                assert!(reply.fail_info.is_none());
                reply
            },
            BatchSize::SmallInput,
        )
    });
}

/// The implicit rejection, timed: opening an envelope whose RSA block is valid, whose padding is
/// bad, and whose unwrapped key has the wrong length should cost the same (the replies are
/// identical; tests/e2e/negative.rs checks that).
fn implicit_rejection_timing(c: &mut Criterion) {
    let auth = authority(KeyBits::Rsa2048);
    let target = signer_cert_of(&auth.recipient().cert).unwrap();
    let content = vec![0x42u8; 600]; // about a CSR
    let valid = envelope::seal(&content, ContentCipher::Aes128Cbc, &target).unwrap();
    let rewrite = |sealed: &[u8], f: &dyn Fn(&mut cms::enveloped_data::EnvelopedData)| -> Vec<u8> {
        let mut ci: cms::content_info::ContentInfo = der::Decode::from_der(sealed).unwrap();
        let mut env: cms::enveloped_data::EnvelopedData = ci.content.decode_as().unwrap();
        f(&mut env);
        ci.content = der::asn1::Any::encode_from(&env).unwrap();
        ci.to_der().unwrap()
    };
    let bad_padding = rewrite(&valid, &|env| {
        let mut infos: Vec<_> = env.recip_infos.0.iter().cloned().collect();
        if let cms::enveloped_data::RecipientInfo::Ktri(k) = &mut infos[0] {
            let mut b = k.enc_key.as_bytes().to_vec();
            b[3] ^= 0xff;
            k.enc_key = der::asn1::OctetString::new(b).unwrap();
        }
        env.recip_infos = cms::enveloped_data::RecipientInfos(der::asn1::SetOfVec::try_from(infos).unwrap());
    });
    let wrong_length = rewrite(
        &envelope::seal(&content, ContentCipher::Aes256Cbc, &target).unwrap(),
        &|env| {
            env.encrypted_content.content_enc_alg.oid = scepd::scep::oids::AES128_CBC;
        },
    );
    let identities = [auth.recipient()];
    let mut g = c.benchmark_group("implicit_rejection");
    for (label, sealed) in [
        ("valid", &valid),
        ("bad_padding", &bad_padding),
        ("wrong_key_length", &wrong_length),
    ] {
        g.bench_function(label, |b| {
            b.iter(|| envelope::open(sealed, &identities, cipher_policy()))
        });
    }
    g.finish();
}

/// Signing a CRL of 100,000 revoked certificates (the scale benchmark's revocations), one in ten
/// with a reason code: the encoding and the one signature, without the store.
fn crl_100k(c: &mut Criterion) {
    use scepd_ca::crl::{build_crl, CrlParams, RevokedEntry};
    use scepd_ca::Reason;
    let auth = authority(KeyBits::Rsa2048);
    let entries: Vec<RevokedEntry> = (0..100_000u64)
        .map(|i| RevokedEntry {
            serial: Serial::try_from(&[&[0x4a; 8][..], &i.to_be_bytes()].concat()[..]).unwrap(),
            revoked_at: 1_800_000_000 + i,
            reason: if i % 10 == 0 {
                Reason::KEY_COMPROMISE
            } else {
                Reason::UNSPECIFIED
            },
        })
        .collect();
    let params = CrlParams {
        number: 7,
        this_update: 1_800_000_000,
        next_update: 1_800_086_400,
    };
    c.bench_function("crl_100k_entries", |b| {
        b.iter(|| build_crl(&auth.ca, &params, &entries).unwrap())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(4));
    targets = rsa_operations, parse_verify_decrypt, build_certificate_and_certrep, full_enrollment, implicit_rejection_timing, crl_100k
}
criterion_main!(benches);
