//! PKCS#10 parsing and verification, and the CSR fields the policy reads (device identity,
//! SAN values, challenge binding).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(csr) = scepd::scep::csr::parse_and_verify(data) {
        let _ = scepd_ca::name::common_name(&csr.subject);
        let _ = scepd::challenge::binding::san_values(&csr);
    }
});
