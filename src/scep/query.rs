//! Decoding SCEP GET requests: `?operation=...&message=...`.
//!
//! The query is parsed by hand because clients disagree with form encoding:
//! - macOS escapes only `=` (as `%3D`) and leaves `+` and `/` raw, so `+` must never be
//!   form-decoded to a space;
//! - iOS 11 turned `+` into a space, so a space inside the base64 message is read as `+`;
//! - Cisco IOS inserts `%0A` line breaks into the base64, which are skipped;
//! - some clients use the URL-safe base64 alphabet or drop the padding.

use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

use super::MalformedRequest;

/// The `operation` and the raw (percent-decoded) `message` of a query string.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Query {
    pub operation: Option<String>,
    pub message: Option<Vec<u8>>,
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `%XX` sequences only; `+` stays `+`. A malformed escape is kept literally.
pub fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

pub fn parse(query: &str) -> Query {
    let mut q = Query::default();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "operation" => q.operation = Some(String::from_utf8_lossy(&percent_decode(value)).into_owned()),
            "message" => q.message = Some(percent_decode(value)),
            _ => {}
        }
    }
    q
}

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);

/// Decodes the base64 `message` of a GET PKIOperation with the client quirks above.
pub fn decode_message(raw: &[u8]) -> Result<Vec<u8>, MalformedRequest> {
    let cleaned: Vec<u8> = raw
        .iter()
        .filter(|b| !matches!(b, b'\r' | b'\n' | b'\t'))
        .map(|b| if *b == b' ' { b'+' } else { *b })
        .collect();
    if cleaned.is_empty() {
        return Err(MalformedRequest::MissingMessage);
    }
    STANDARD
        .decode(&cleaned)
        .or_else(|_| STANDARD_LENIENT.decode(&cleaned))
        .or_else(|_| URL_SAFE.decode(&cleaned))
        .or_else(|_| URL_SAFE_LENIENT.decode(&cleaned))
        .map_err(|_| MalformedRequest::Base64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plus_is_not_a_space_and_escapes_decode() {
        let q = parse("operation=PKIOperation&message=ab+/cd%3D");
        assert_eq!(q.operation.as_deref(), Some("PKIOperation"));
        assert_eq!(q.message.as_deref(), Some(&b"ab+/cd="[..]));
    }

    #[test]
    fn message_quirks() {
        let data = [0xfbu8, 0xff, 0x3e, 0x01, 0x02];
        let std = STANDARD.encode(data); // "+/8+AQI="
        assert_eq!(decode_message(std.as_bytes()).unwrap(), data);
        // iOS 11: '+' arrived as ' '.
        assert_eq!(decode_message(std.replace('+', " ").as_bytes()).unwrap(), data);
        // Cisco: %0A line breaks.
        let cisco = format!("{}%0A{}", &std[..4], &std[4..]);
        assert_eq!(decode_message(&percent_decode(&cisco)).unwrap(), data);
        // URL-safe, unpadded.
        assert_eq!(
            decode_message(URL_SAFE.encode(data).trim_end_matches('=').as_bytes()).unwrap(),
            data
        );
        assert_eq!(decode_message(b"!!!"), Err(MalformedRequest::Base64));
        assert_eq!(decode_message(b""), Err(MalformedRequest::MissingMessage));
    }

    #[test]
    fn malformed_escapes_are_literal() {
        assert_eq!(percent_decode("a%zz%4"), b"a%zz%4");
        assert_eq!(percent_decode("%41%"), b"A%");
    }
}
