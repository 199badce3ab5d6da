//! The request parsers of the MDM endpoints (NDES Basic credentials, the Jamf webhook, the JSON
//! challenge API) and of the admin API (filters, serials, revocation reasons).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = scepd::api::jamf_scep_challenge(data);
    let _ = scepd::api::challenge_params(data);
    let _ = scepd::api::revocation_reason(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = scepd::api::basic_credentials(text);
        let _ = scepd::api::cert_filter(text);
        let _ = text.parse::<scepd_ca::Serial>();
        let _ = scepd::config::parse_duration(text);
    }
});
