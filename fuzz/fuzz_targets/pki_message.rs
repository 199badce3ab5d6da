//! The pkiMessage parser, BER and DER: normalization, decoding, signature verification.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = scepd::scep::ber::normalize(data);
    if let Ok(message) = scepd::scep::request::decode(data) {
        let _ = message.verify();
    }
});
