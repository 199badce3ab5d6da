//! RFC 7512 PKCS#11 URIs naming a private key: `pkcs11:token=L;object=O;id=%01%02;type=private`
//! with optional `?module-path=/path/to/module.so&pin-source=file:/path/to/pin`.
//!
//! Only the attributes scepd uses are kept; any other path attribute (manufacturer, serial, …)
//! is accepted and ignored, as RFC 7512 §2.3 allows a consumer to do for attributes it does not
//! filter on. `pin-value` is refused: a PIN does not belong in a file or a command line.

use std::fmt;
use std::path::PathBuf;

/// The parts of a PKCS#11 URI that find a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyUri {
    /// CKA_LABEL of the token.
    pub token: String,
    /// CKA_LABEL of the key, when given.
    pub object: Option<String>,
    /// CKA_ID of the key, when given.
    pub id: Option<Vec<u8>>,
    /// The module to load, when given.
    pub module_path: Option<PathBuf>,
    /// Where the PIN is read from (`file:` or a bare path), when given.
    pub pin_source: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum UriError {
    #[error("not a PKCS#11 URI (it must start with \"pkcs11:\")")]
    Scheme,
    #[error("PKCS#11 URI: malformed percent-encoding in {0:?}")]
    Encoding(String),
    #[error("PKCS#11 URI: no token=… attribute (the token's label)")]
    NoToken,
    #[error("PKCS#11 URI: neither object=… nor id=… names the key")]
    NoObject,
    #[error("PKCS#11 URI: type={0} does not name a private key")]
    NotPrivate(String),
    #[error("PKCS#11 URI: pin-value is refused; use pin-source=file:… or --pkcs11-pin-file")]
    PinValue,
}

impl KeyUri {
    /// Is `text` meant as a PKCS#11 URI (rather than a file name)?
    pub fn is_uri(text: &str) -> bool {
        text.starts_with("pkcs11:")
    }

    pub fn parse(text: &str) -> Result<KeyUri, UriError> {
        let rest = text.trim().strip_prefix("pkcs11:").ok_or(UriError::Scheme)?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut uri = KeyUri {
            token: String::new(),
            object: None,
            id: None,
            module_path: None,
            pin_source: None,
        };
        let mut token = None;
        for (name, value) in attributes(path, ';') {
            match name {
                "token" => token = Some(text_value(value)?),
                "object" => uri.object = Some(text_value(value)?),
                "id" => uri.id = Some(decode(value)?),
                "type" if value != "private" => return Err(UriError::NotPrivate(value.to_string())),
                _ => {}
            }
        }
        for (name, value) in attributes(query, '&') {
            match name {
                "module-path" => uri.module_path = Some(PathBuf::from(text_value(value)?)),
                "pin-source" => {
                    let source = text_value(value)?;
                    uri.pin_source = Some(PathBuf::from(source.strip_prefix("file:").unwrap_or(&source)));
                }
                "pin-value" => return Err(UriError::PinValue),
                _ => {}
            }
        }
        uri.token = token.filter(|t| !t.is_empty()).ok_or(UriError::NoToken)?;
        if uri.object.is_none() && uri.id.is_none() {
            return Err(UriError::NoObject);
        }
        Ok(uri)
    }
}

/// The canonical form scepd writes: every byte outside RFC 7512's unreserved set escaped.
impl fmt::Display for KeyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pkcs11:token={}", encode(self.token.as_bytes()))?;
        if let Some(object) = &self.object {
            write!(f, ";object={}", encode(object.as_bytes()))?;
        }
        if let Some(id) = &self.id {
            let hex: String = id.iter().map(|b| format!("%{b:02X}")).collect();
            write!(f, ";id={hex}")?;
        }
        f.write_str(";type=private")?;
        let mut sep = '?';
        if let Some(module) = &self.module_path {
            write!(f, "{sep}module-path={}", encode(module.to_string_lossy().as_bytes()))?;
            sep = '&';
        }
        if let Some(pin) = &self.pin_source {
            write!(f, "{sep}pin-source=file:{}", encode(pin.to_string_lossy().as_bytes()))?;
        }
        Ok(())
    }
}

fn attributes(text: &str, separator: char) -> impl Iterator<Item = (&str, &str)> {
    text.split(separator)
        .filter(|a| !a.is_empty())
        .map(|a| a.split_once('=').unwrap_or((a, "")))
}

fn text_value(value: &str) -> Result<String, UriError> {
    String::from_utf8(decode(value)?).map_err(|_| UriError::Encoding(value.to_string()))
}

fn decode(value: &str) -> Result<Vec<u8>, UriError> {
    let bad = || UriError::Encoding(value.to_string());
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value.get(i + 1..i + 3).ok_or_else(bad)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc7512_examples_and_round_trips() {
        let uri = KeyUri::parse(
            "pkcs11:token=my%20ca;manufacturer=SoftHSM;object=issuing;id=%01%a2;type=private\
             ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin",
        )
        .unwrap();
        assert_eq!(uri.token, "my ca");
        assert_eq!(uri.object.as_deref(), Some("issuing"));
        assert_eq!(uri.id.as_deref(), Some(&[0x01, 0xa2][..]));
        assert_eq!(uri.module_path, Some(PathBuf::from("/usr/lib/softhsm/libsofthsm2.so")));
        assert_eq!(uri.pin_source, Some(PathBuf::from("/run/pin")));
        assert_eq!(KeyUri::parse(&uri.to_string()).unwrap(), uri);
    }

    #[test]
    fn refuses_what_cannot_name_a_private_key() {
        assert_eq!(KeyUri::parse("file:/x"), Err(UriError::Scheme));
        assert_eq!(KeyUri::parse("pkcs11:object=a"), Err(UriError::NoToken));
        assert_eq!(KeyUri::parse("pkcs11:token=t"), Err(UriError::NoObject));
        assert_eq!(
            KeyUri::parse("pkcs11:token=t;object=a;type=cert"),
            Err(UriError::NotPrivate("cert".into()))
        );
        assert_eq!(
            KeyUri::parse("pkcs11:token=t;object=a?pin-value=1234"),
            Err(UriError::PinValue)
        );
        assert!(matches!(
            KeyUri::parse("pkcs11:token=t;id=%zz"),
            Err(UriError::Encoding(_))
        ));
    }
}
