//! GetCACaps (RFC 8894 §3.5.2): what scepd advertises. Every capability listed here is
//! exercised by a test.

/// The capabilities, one per line. `Renewal` is listed although Apple never sends RenewalReq:
/// macOS complains when it is missing.
pub const CAPABILITIES: &[&str] = &[
    "POSTPKIOperation",
    "SHA-1",
    "SHA-256",
    "SHA-512",
    "AES",
    "DES3",
    "SCEPStandard",
    "Renewal",
];

/// Listed while a next CA is prepared (RFC 8894 §3.5.2, §4.7).
pub const GET_NEXT_CA_CERT: &str = "GetNextCACert";

/// The GetCACaps body (text/plain); `next_ca`: a next CA is prepared.
pub fn body(next_ca: bool) -> String {
    let mut s = CAPABILITIES.join("\n");
    if next_ca {
        s.push('\n');
        s.push_str(GET_NEXT_CA_CERT);
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn get_next_ca_cert_is_listed_only_while_a_next_ca_exists() {
        assert!(!super::body(false).contains(super::GET_NEXT_CA_CERT));
        assert!(super::body(true).lines().any(|l| l == super::GET_NEXT_CA_CERT));
        assert!(super::body(true).ends_with('\n'));
    }
}
