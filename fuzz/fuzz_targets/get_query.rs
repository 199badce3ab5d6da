//! The GET query and base64 decoder (client quirks: raw '+', spaces, %0A, URL-safe).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let q = scepd::scep::query::parse(text);
        if let Some(m) = q.message {
            let _ = scepd::scep::query::decode_message(&m);
        }
    }
    let _ = scepd::scep::query::decode_message(data);
});
