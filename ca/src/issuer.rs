//! Which CA issued a certificate, when a data directory holds several (a CA rollover).

use std::fmt;
use std::str::FromStr;

use sha1::{Digest, Sha1};
use x509_cert::Certificate;

/// A CA named by the SHA-1 of its public key (the subjectPublicKey BIT STRING's bytes): the
/// RFC 5280 §4.2.1.2 method-1 key identifier, and the `issuerKeyHash` of an OCSP request made
/// with SHA-1, so an OCSP request finds its issuer without a scan. Unlike the subject name it
/// differs between the CA generations of a rollover, which may share a name.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IssuerId([u8; 20]);

impl IssuerId {
    /// The id of the CA certificate `ca`.
    pub fn of(ca: &Certificate) -> IssuerId {
        Self::of_spki_bits(
            ca.tbs_certificate()
                .subject_public_key_info()
                .subject_public_key
                .raw_bytes(),
        )
    }

    /// The id of a CA key, from its DER SubjectPublicKeyInfo (a key waiting for its certificate).
    pub fn of_spki_der(spki: &[u8]) -> Result<IssuerId, crate::CaError> {
        let spki = <spki::SubjectPublicKeyInfoOwned as der::Decode>::from_der(spki)?;
        Ok(Self::of_spki_bits(spki.subject_public_key.raw_bytes()))
    }

    fn of_spki_bits(bits: &[u8]) -> IssuerId {
        IssuerId(Sha1::digest(bits).into())
    }

    /// The 20 bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// The id whose bytes are `bytes` (as [`IssuerId::as_bytes`] gave them).
    pub fn from_bytes(bytes: [u8; 20]) -> IssuerId {
        IssuerId(bytes)
    }

    /// Lower-case hex, as it appears in URLs and directory names.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for IssuerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for IssuerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IssuerId({})", self.to_hex())
    }
}

/// An issuer id that is not 40 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an issuer id is 40 hex digits")]
pub struct IssuerIdError;

impl FromStr for IssuerId {
    type Err = IssuerIdError;

    fn from_str(s: &str) -> Result<IssuerId, IssuerIdError> {
        let s = s.trim();
        if s.len() != 40 || !s.is_ascii() {
            return Err(IssuerIdError);
        }
        let mut out = [0u8; 20];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| IssuerIdError)?;
        }
        Ok(IssuerId(out))
    }
}

impl serde::Serialize for IssuerId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for IssuerId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<IssuerId, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_other_text() {
        let id = IssuerId([0xab; 20]);
        assert_eq!(id.to_hex().parse::<IssuerId>(), Ok(id));
        assert_eq!(id.to_hex().to_uppercase().parse::<IssuerId>(), Ok(id));
        assert!("ab".parse::<IssuerId>().is_err());
        assert!("zz".repeat(20).parse::<IssuerId>().is_err());
        assert!("é".repeat(20).parse::<IssuerId>().is_err());
    }

    #[test]
    fn a_ca_and_its_key_have_the_same_id() {
        let authority = crate::Authority::create(&crate::CaParams::default()).unwrap();
        let by_cert = IssuerId::of(&authority.ca.cert);
        let by_key = IssuerId::of_spki_der(&authority.ca.key.public_key_spki_der()).unwrap();
        assert_eq!(by_cert, by_key);
    }
}
