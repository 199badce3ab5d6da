//! Distinguished names: parsing the operator's `CN=...,O=...` strings and reading CNs back.

use std::str::FromStr;

use const_oid::db::rfc4519::CN;
use der::asn1::{PrintableStringRef, TeletexStringRef, Utf8StringRef};
use der::Tagged;
use x509_cert::name::Name;

use crate::error::CaError;

/// Parses an RFC 4514 string such as `CN=scepd CA,O=Example`.
pub fn parse(dn: &str) -> Result<Name, CaError> {
    Name::from_str(dn).map_err(|e| CaError::Name(dn.to_string(), e.to_string()))
}

/// The first commonName of `name`, if it is a string type we can read.
pub fn common_name(name: &Name) -> Option<String> {
    attribute(name, CN)
}

/// The first value of attribute `oid` in `name`, if it is a string type we can read.
pub fn attribute(name: &Name, oid: const_oid::ObjectIdentifier) -> Option<String> {
    name.iter_rdn()
        .flat_map(|rdn| rdn.iter())
        .find(|atv| atv.oid == oid)
        .and_then(|atv| attribute_string(&atv.value))
}

/// Reads a DirectoryString-like attribute value as text.
pub fn attribute_string(value: &der::Any) -> Option<String> {
    match value.tag() {
        der::Tag::Utf8String => value
            .decode_as::<Utf8StringRef<'_>>()
            .ok()
            .map(|s| s.as_str().to_string()),
        der::Tag::PrintableString => value
            .decode_as::<PrintableStringRef<'_>>()
            .ok()
            .map(|s| s.as_str().to_string()),
        der::Tag::TeletexString => value
            .decode_as::<TeletexStringRef<'_>>()
            .ok()
            .map(|s| s.as_str().to_string()),
        der::Tag::Ia5String => value
            .decode_as::<der::asn1::Ia5StringRef<'_>>()
            .ok()
            .map(|s| s.as_str().to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_reads_cn() {
        let n = parse("CN=scepd CA,O=Example Corp").unwrap();
        assert_eq!(common_name(&n).as_deref(), Some("scepd CA"));
        assert!(parse("not a dn").is_err());
    }
}
