//! The `revoked` table's values: what a CRL needs of a revoked certificate, with its CRL entry
//! already encoded, so that rebuilding a CRL of 100,000 entries reads bytes and concatenates them
//! (issue 16: 663 ms at that size when each row was JSON to parse and an entry to encode).
//!
//! Format 1: `0x01`, notAfter (u64, big-endian), `0x00` for the original CA or `0x01` and the
//! issuer id (20 bytes), then the entry's DER. Stores written before hold JSON (`{…}`), still
//! read: its entry is encoded as it is read, until the certificate's row is written again.

use scepd_ca::crl::EncodedRevokedEntry;
use scepd_ca::{IssuerId, Reason, Serial};

use crate::store::{RevokedRow, StoreError};

const FORMAT_1: u8 = 1;

pub(super) fn encode(row: &RevokedRow) -> Vec<u8> {
    let entry = row.entry.as_der();
    let mut out = Vec::with_capacity(1 + 8 + 21 + entry.len());
    out.push(FORMAT_1);
    out.extend_from_slice(&row.not_after.to_be_bytes());
    match &row.issuer {
        None => out.push(0),
        Some(issuer) => {
            out.push(1);
            out.extend_from_slice(issuer.as_bytes());
        }
    }
    out.extend_from_slice(entry);
    out
}

pub(super) fn decode(serial: &[u8], value: &[u8]) -> Result<RevokedRow, StoreError> {
    let corrupt = |why: &str| StoreError::Corrupt(format!("revoked row: {why}"));
    let serial = Serial::try_from(serial).map_err(|e| corrupt(&e.to_string()))?;
    match value.split_first() {
        Some((&FORMAT_1, rest)) => {
            let (not_after, rest) = rest.split_at_checked(8).ok_or_else(|| corrupt("short"))?;
            let not_after = u64::from_be_bytes(not_after.try_into().expect("8 bytes"));
            let (issuer, entry) = match rest.split_first() {
                Some((0, entry)) => (None, entry),
                Some((1, rest)) => {
                    let (id, entry) = rest.split_at_checked(20).ok_or_else(|| corrupt("short issuer"))?;
                    let id: [u8; 20] = id.try_into().expect("20 bytes");
                    (Some(IssuerId::from_bytes(id)), entry)
                }
                _ => return Err(corrupt("issuer flag")),
            };
            let entry = EncodedRevokedEntry::from_der(entry.to_vec()).map_err(|e| corrupt(&e.to_string()))?;
            Ok(RevokedRow {
                serial,
                not_after,
                issuer,
                entry,
            })
        }
        Some((b'{', _)) => {
            let earlier: Earlier = super::decode(value)?;
            RevokedRow::new(
                serial,
                earlier.revoked_at,
                earlier.reason,
                earlier.not_after,
                earlier.issuer,
            )
        }
        _ => Err(corrupt("unknown format")),
    }
}

/// The JSON rows of stores written before format 1.
#[derive(serde::Deserialize)]
struct Earlier {
    revoked_at: u64,
    reason: Reason,
    not_after: u64,
    #[serde(default)]
    issuer: Option<IssuerId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serial() -> Serial {
        "0123456789ABCDEF0123456789ABCDEF".parse().unwrap()
    }

    #[test]
    fn rows_round_trip_with_and_without_an_issuer() {
        for issuer in [None, Some(IssuerId::from_bytes([7u8; 20]))] {
            let row = RevokedRow::new(serial(), 1_700_000_000, Reason::KEY_COMPROMISE, 1_800_000_000, issuer).unwrap();
            assert_eq!(decode(serial().as_bytes(), &encode(&row)).unwrap(), row);
        }
    }

    /// A row as stores before format 1 hold it reads, with the entry a new row would have.
    #[test]
    fn an_earlier_json_row_reads_with_the_same_entry() {
        let json = r#"{"serial":"0123456789ABCDEF0123456789ABCDEF","revoked_at":1700000000,"reason":"keyCompromise","not_after":1800000000}"#;
        let expected = RevokedRow::new(serial(), 1_700_000_000, Reason::KEY_COMPROMISE, 1_800_000_000, None).unwrap();
        assert_eq!(decode(serial().as_bytes(), json.as_bytes()).unwrap(), expected);
    }

    /// A damaged value is an error, never an entry that would break the CRL's framing.
    #[test]
    fn a_damaged_entry_is_refused() {
        let row = RevokedRow::new(serial(), 1_700_000_000, Reason::SUPERSEDED, 1_800_000_000, None).unwrap();
        let mut bytes = encode(&row);
        bytes.push(0);
        assert!(matches!(
            decode(serial().as_bytes(), &bytes),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            decode(serial().as_bytes(), &bytes[..12]),
            Err(StoreError::Corrupt(_))
        ));
    }
}
