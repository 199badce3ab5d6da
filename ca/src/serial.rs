//! Certificate serial numbers: 16 bytes, positive, the issuing time then 80 random bits.

use std::fmt;
use std::str::FromStr;

/// A certificate serial number as scepd keeps it: exactly 16 bytes, the content of the serial
/// INTEGER without a sign byte. The field is private, so every `Serial` has that length; those
/// scepd draws ([`Serial::fresh`]) are also positive with no leading zero byte, so their hex and
/// DER forms have the same length. Uniqueness is the store's job.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial([u8; 16]);

/// Why bytes or text are not a [`Serial`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SerialError {
    /// Not 16 bytes (32 hex digits), after an optional leading sign byte `00`.
    #[error("a serial is 16 bytes (32 hex digits)")]
    Length,
    /// Not hexadecimal.
    #[error("a serial is written in hex (colons allowed)")]
    NotHex,
}

impl Serial {
    /// A fresh serial: the bits `01`, the time in milliseconds (46 bits, which start over in
    /// the year 4199), then 80 random bits (CA/Browser Forum BR 7.1 asks for at least 64 from a
    /// CSPRNG, and serials that are not sequential). The time first makes the serials of
    /// certificates issued together neighbours in the store's B-trees, which are keyed by serial:
    /// an issuance appends at the trees' edge instead of rewriting a random leaf page of each.
    pub fn fresh() -> Serial {
        Serial::at(crate::time::unix_millis())
    }

    fn at(millis: u128) -> Serial {
        const TIME_BITS: u32 = 46;
        let time = u64::try_from(millis % (1u128 << TIME_BITS)).expect("46 bits");
        let mut bytes = [0u8; 16];
        bytes[..6].copy_from_slice(&((1u64 << TIME_BITS) | time).to_be_bytes()[2..]);
        aws_lc_rs::rand::fill(&mut bytes[6..]).expect("system RNG");
        Serial(bytes)
    }

    /// The 16 bytes, as the DER INTEGER's content.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Upper-case hex, the form `openssl x509 -serial` prints and the store keeps.
    pub fn to_hex(&self) -> String {
        hex_upper(&self.0)
    }
}

impl TryFrom<&[u8]> for Serial {
    type Error = SerialError;

    /// The content bytes of a certificate's serial INTEGER. A leading `00` sign byte (which some
    /// tools add) is accepted.
    fn try_from(bytes: &[u8]) -> Result<Serial, SerialError> {
        let bytes = match bytes {
            [0, rest @ ..] if rest.len() == 16 => rest,
            _ => bytes,
        };
        Ok(Serial(bytes.try_into().map_err(|_| SerialError::Length)?))
    }
}

impl FromStr for Serial {
    type Err = SerialError;

    /// A serial as operators type it: hex, any case, colons allowed, an optional `00` first.
    fn from_str(text: &str) -> Result<Serial, SerialError> {
        let digits: String = text.chars().filter(|c| *c != ':').collect();
        let bytes = hex_decode(&digits).ok_or(SerialError::NotHex)?;
        Serial::try_from(bytes.as_slice())
    }
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({})", self.to_hex())
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Stored and sent as its upper-case hex form (the same strings as before the type existed).
impl serde::Serialize for Serial {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Serial {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Serial, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Upper-case hex, the form `openssl x509 -serial` prints.
pub fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_is_positive_and_full_length() {
        for _ in 0..1000 {
            let s = Serial::fresh();
            assert!(s.0[0] & 0x80 == 0 && s.0[0] != 0);
            assert_eq!(s.to_hex().len(), 32);
            assert_eq!(s.to_hex().parse::<Serial>(), Ok(s));
        }
    }

    /// Serials sort by issuing time and still differ in their random part.
    #[test]
    fn serials_open_with_the_issuing_time() {
        let times = [
            1_765_000_000_000u128,
            1_765_000_000_001,
            1_765_086_400_000,
            (1 << 46) - 1,
        ];
        let serials: Vec<Serial> = times.iter().map(|&t| Serial::at(t)).collect();
        assert!(serials.windows(2).all(|w| w[0] < w[1]), "{serials:?}");
        for s in &serials {
            assert_eq!(s.0[0] & 0xc0, 0x40, "{s}");
        }
        assert_eq!(Serial::at(0).0[..6], [0x40, 0, 0, 0, 0, 0]);
        let (a, b) = (Serial::at(times[0]), Serial::at(times[0]));
        assert_eq!(a.0[..6], b.0[..6]);
        assert_ne!(a, b, "80 random bits after the time");
    }

    #[test]
    fn serials_in_any_operator_form() {
        let s = Serial([0x4a; 16]);
        assert_eq!(s.to_hex().to_lowercase().parse(), Ok(s));
        let hex = s.to_hex();
        let pairs = hex
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>();
        assert_eq!(pairs.join(":").parse(), Ok(s));
        assert_eq!(format!("00{s}").parse(), Ok(s));
        assert_eq!("xyz".parse::<Serial>(), Err(SerialError::NotHex));
        assert_eq!("abcd".parse::<Serial>(), Err(SerialError::Length));
        assert_eq!("00".repeat(15).parse::<Serial>(), Err(SerialError::Length));
    }

    #[test]
    fn der_content_with_a_sign_byte() {
        let s = Serial::fresh();
        let with_sign = [&[0u8][..], s.as_bytes()].concat();
        assert_eq!(Serial::try_from(with_sign.as_slice()), Ok(s));
        assert_eq!(Serial::try_from(&s.as_bytes()[1..]), Err(SerialError::Length));
    }
}
