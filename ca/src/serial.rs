//! Certificate serial numbers: 16 random bytes, positive.

use std::fmt;

/// A certificate serial number as scepd issues it: 16 random bytes with the top bit cleared,
/// so the DER INTEGER is positive and at most 16 bytes. Uniqueness is the store's job.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(pub [u8; 16]);

impl Serial {
    pub fn random() -> Serial {
        let mut bytes = [0u8; 16];
        aws_lc_rs::rand::fill(&mut bytes).expect("system RNG");
        bytes[0] &= 0x7f;
        // Avoid a leading zero byte, so the hex form and the DER form have the same length.
        bytes[0] |= 0x40;
        Serial(bytes)
    }

    pub fn to_hex(&self) -> String {
        hex_upper(&self.0)
    }
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
            let s = Serial::random();
            assert!(s.0[0] & 0x80 == 0 && s.0[0] != 0);
            assert_eq!(s.to_hex().len(), 32);
        }
    }
}
