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

/// The GetCACaps body (text/plain).
pub fn body() -> String {
    let mut s = CAPABILITIES.join("\n");
    s.push('\n');
    s
}
