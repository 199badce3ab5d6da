//! OCSP: requests made by `openssl ocsp` read by the CA crate, and its responses (good, revoked,
//! unknown; signed by the CA or by a delegated signer) verified and read by `openssl ocsp`.

use scepd_ca::ocsp::{build_response, error_response, parse_request, serial_if_issued_by, CertStatus, ResponseStatus};
use scepd_ca::{Authority, Identity, Reason, Serial};

use crate::support::{authority, leaf, openssl_time, printed, Openssl};

/// A CA with one good and one revoked certificate, and a serial it never issued.
struct Fixture {
    ossl: Openssl,
    authority: Authority,
    good: Serial,
    revoked: Serial,
    /// `-serial` argument for the serial that was never issued.
    unknown: String,
    revoked_at: u64,
}

fn fixture() -> Fixture {
    let ossl = Openssl::new();
    let authority = authority();
    ossl.write_cert("ca.pem", &authority.ca.der);
    let (good, revoked) = (Serial::fresh(), Serial::fresh());
    ossl.write_cert("good.pem", &leaf(&authority, good, "good", 7).0);
    ossl.write_cert("revoked.pem", &leaf(&authority, revoked, "revoked", 7).0);
    Fixture {
        ossl,
        authority,
        good,
        revoked,
        unknown: format!("0x{}", Serial::fresh()),
        revoked_at: scepd_ca::time::unix_now() - 600,
    }
}

impl Fixture {
    /// The certificates asked about, as `openssl ocsp` arguments.
    fn ids(&self) -> Vec<&str> {
        vec![
            "-issuer",
            "ca.pem",
            "-cert",
            "good.pem",
            "-cert",
            "revoked.pem",
            "-serial",
            &self.unknown,
        ]
    }

    /// Answers an OCSP request (DER) as scepd's responder would, signed by `signer`.
    fn answer(&self, request: &[u8], signer: &Identity, include_signer_cert: bool) -> Vec<u8> {
        let parsed = parse_request(request).unwrap();
        let answers: Vec<_> = parsed
            .cert_ids
            .iter()
            .map(|id| {
                let serial = serial_if_issued_by(id, &self.authority.ca.cert).expect("a CertID naming our CA");
                let status = if serial == self.good {
                    CertStatus::Good
                } else if serial == self.revoked {
                    CertStatus::Revoked {
                        at: self.revoked_at,
                        reason: Reason::from_name("keyCompromise").unwrap(),
                    }
                } else {
                    CertStatus::Unknown
                };
                (id.clone(), status)
            })
            .collect();
        assert_eq!(answers.len(), 3);
        let now = scepd_ca::time::unix_now();
        build_response(
            signer,
            include_signer_cert,
            &answers,
            parsed.nonce.as_deref(),
            now,
            now + 3600,
        )
        .unwrap()
    }

    /// `openssl ocsp` makes a request (CertIDs hashed with `digest`, and a nonce), the CA crate
    /// answers it, and `openssl ocsp` reads the answer with `verify_args`. Returns what it
    /// printed when checking the signature and the nonce against the request, then what it
    /// printed for the status of each certificate. (Two runs: given `-cert`, `openssl ocsp`
    /// builds a new request with a new nonce instead of reading `-reqin`.)
    fn round_trip(
        &self,
        digest: &str,
        signer: &Identity,
        include_signer_cert: bool,
        verify_args: &[&str],
    ) -> (String, String) {
        let mut ids = vec![digest];
        ids.extend(self.ids());
        let mut ask = vec!["ocsp", "-reqout", "req.der"];
        ask.extend(&ids);
        self.ossl.ok(&ask);
        let request = std::fs::read(self.ossl.path("req.der")).unwrap();
        self.ossl
            .write("resp.der", self.answer(&request, signer, include_signer_cert));
        let mut verify = vec!["ocsp", "-respin", "resp.der", "-reqin", "req.der"];
        verify.extend(verify_args);
        let mut statuses = vec!["ocsp", "-respin", "resp.der", "-no_nonce"];
        statuses.extend(verify_args);
        statuses.extend(&ids);
        (printed(&self.ossl.run(&verify)), printed(&self.ossl.run(&statuses)))
    }

    /// The statuses `openssl ocsp` printed are the ones the CA gave.
    fn check_statuses(&self, printed: &str) {
        assert!(printed.contains("good.pem: good\n"), "{printed}");
        assert!(printed.contains("revoked.pem: revoked\n"), "{printed}");
        assert!(printed.contains("Reason: keyCompromise\n"), "{printed}");
        let revoked_at = format!("Revocation Time: {}\n", openssl_time(self.revoked_at));
        assert!(printed.contains(&revoked_at), "{printed}");
        assert!(printed.contains(&format!("{}: unknown\n", self.unknown)), "{printed}");
    }
}

/// The signature verifies and the request's nonce is echoed.
fn check_verified(printed: &str) {
    assert!(printed.contains("Response verify OK"), "{printed}");
    assert!(!printed.contains("Nonce Verify error"), "{printed}");
    assert!(!printed.contains("WARNING: no nonce"), "{printed}");
}

/// CertIDs hashed with SHA-1 (OpenSSL's default) or SHA-256 both name the CA.
#[test]
fn ca_signed_responses_verify_with_va_file() {
    let f = fixture();
    for digest in ["-sha1", "-sha256"] {
        let (verified, statuses) = f.round_trip(digest, &f.authority.ca, false, &["-VAfile", "ca.pem"]);
        check_verified(&verified);
        f.check_statuses(&statuses);
    }
}

/// A delegated OCSP signer's response carries its certificate and chains to the CA.
#[test]
fn delegated_signer_responses_verify_with_ca_file() {
    let f = fixture();
    let signer = f.authority.new_ocsp_signer().unwrap();
    let signer_pem = f.ossl.write_cert("ocsp.pem", &signer.der);
    let ext = f.ossl.x509(&signer_pem, &["-ext", "extendedKeyUsage,noCheck"]);
    assert!(ext.contains("OCSP Signing") && ext.contains("No Check"), "{ext}");
    let (verified, statuses) = f.round_trip("-sha1", &signer, true, &["-CAfile", "ca.pem"]);
    check_verified(&verified);
    f.check_statuses(&statuses);
}

#[test]
fn response_signed_by_another_ca_does_not_verify() {
    let f = fixture();
    let other = authority();
    let (verified, _) = f.round_trip("-sha1", &other.ca, false, &["-VAfile", "ca.pem", "-CAfile", "ca.pem"]);
    assert!(verified.contains("Response Verify Failure"), "{verified}");
    assert!(!verified.contains("Response verify OK"), "{verified}");
}

#[test]
fn error_responses() {
    let ossl = Openssl::new();
    for (status, printed_as) in [
        (ResponseStatus::MalformedRequest, "malformedrequest (1)"),
        (ResponseStatus::InternalError, "internalerror (2)"),
        (ResponseStatus::TryLater, "trylater (3)"),
        (ResponseStatus::Unauthorized, "unauthorized (6)"),
    ] {
        ossl.write("err.der", error_response(status));
        let text = printed(&ossl.run(&["ocsp", "-respin", "err.der", "-resp_text", "-noverify"]));
        assert!(text.contains(&format!("Responder Error: {printed_as}")), "{text}");
    }
}
