//! X.509 v2 CRLs (RFC 5280 §5), signed by the issuing CA.

use der::asn1::Uint;
use der::{Decode, Encode};
use x509_cert::certificate::{Rfc5280, Version};
use x509_cert::crl::{RevokedCert, TbsCertList};
use x509_cert::ext::pkix::{CrlNumber, CrlReason};
use x509_cert::serial_number::SerialNumber;

use crate::authority::Identity;
use crate::error::CaError;
use crate::extensions::{aki, extension};
use crate::reason::Reason;
use crate::serial::Serial;
use crate::time;

/// One revoked certificate.
#[derive(Clone, Copy, Debug)]
pub struct RevokedEntry {
    /// The revoked certificate's serial.
    pub serial: Serial,
    /// When it was revoked, Unix seconds.
    pub revoked_at: u64,
    /// Why.
    pub reason: Reason,
}

/// What a CRL says besides its entries.
pub struct CrlParams {
    /// The CRL number (cRLNumber extension): grows with every CRL.
    pub number: u64,
    /// thisUpdate, Unix seconds.
    pub this_update: u64,
    /// nextUpdate, Unix seconds.
    pub next_update: u64,
}

impl RevokedEntry {
    /// This entry as it appears in a CRL's revokedCertificates.
    pub fn encode(&self) -> Result<EncodedRevokedEntry, CaError> {
        // RFC 5280 §5.3.1: omit the reasonCode rather than write `unspecified`.
        let crl_entry_extensions = match self.reason.0 {
            CrlReason::Unspecified => None,
            reason => Some(vec![extension(&reason, false)?]),
        };
        let entry = RevokedCert {
            serial_number: SerialNumber::<Rfc5280>::new(self.serial.as_bytes())?,
            revocation_date: time::to_x509(self.revoked_at)?,
            crl_entry_extensions,
        };
        Ok(EncodedRevokedEntry(entry.to_der()?))
    }
}

/// One entry of a CRL's revokedCertificates, DER-encoded. A store keeps it from the revocation
/// on, so that a CRL of 100,000 entries is their concatenation and one signature, not 100,000
/// encodings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedRevokedEntry(Vec<u8>);

impl EncodedRevokedEntry {
    /// Bytes kept from [`EncodedRevokedEntry::as_der`]. They must be one DER SEQUENCE and nothing
    /// after it, so that a damaged value cannot change the framing of the CRL it goes into.
    pub fn from_der(der: Vec<u8>) -> Result<EncodedRevokedEntry, CaError> {
        let mut reader = der::SliceReader::new(&der)?;
        let header = der::Header::decode(&mut reader)?;
        header.tag().assert_eq(der::Tag::Sequence)?;
        der::Reader::read_slice(&mut reader, header.length())?;
        der::Reader::finish(reader)?;
        Ok(EncodedRevokedEntry(der))
    }

    /// The DER of the entry.
    pub fn as_der(&self) -> &[u8] {
        &self.0
    }
}

/// Builds and signs a CRL of `entries` (see [`sign_crl`]).
pub fn build_crl(ca: &Identity, params: &CrlParams, entries: &[RevokedEntry]) -> Result<Vec<u8>, CaError> {
    let encoded = entries
        .iter()
        .map(RevokedEntry::encode)
        .collect::<Result<Vec<_>, _>>()?;
    sign_crl(ca, params, &encoded)
}

/// Signs a CRL of entries encoded beforehand. The authorityKeyIdentifier is the CA's own key
/// identifier (built here rather than by x509-cert's `CrlBuilder`, which copies the issuer
/// certificate's *own* AKI — the key of the issuer's issuer — when an intermediate CA has one).
///
/// A CRL of a large installation holds 100,000 entries and more: the entries go into one buffer
/// as they are, and the signed TBSCertList is placed into the CertificateList as the bytes that
/// were signed, rather than the whole list being built as values and encoded twice (once to
/// sign, once to emit).
pub fn sign_crl(ca: &Identity, params: &CrlParams, entries: &[EncodedRevokedEntry]) -> Result<Vec<u8>, CaError> {
    let number = CrlNumber(Uint::new(&params.number.to_be_bytes())?);
    let signature_algorithm = spki::AlgorithmIdentifierOwned {
        oid: const_oid::db::rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
        parameters: Some(der::asn1::Null.into()),
    };
    let tbs_without_entries = TbsCertList::<Rfc5280> {
        version: Version::V2,
        signature: signature_algorithm.clone(),
        issuer: ca.subject().clone(),
        this_update: time::to_x509(params.this_update)?,
        next_update: Some(time::to_x509(params.next_update)?),
        revoked_certificates: None,
        crl_extensions: Some(vec![extension(&number, false)?, aki(&ca.cert)?]),
    }
    .to_der()?;
    let tbs = with_entries(&tbs_without_entries, entries)?;
    let signature = ca.key.sign_sha256(&tbs)?;
    let mut signature_fields = signature_algorithm.to_der()?;
    der::asn1::BitString::from_bytes(&signature)?.encode_to_vec(&mut signature_fields)?;
    sequence(&[&tbs, &signature_fields])
}

/// The TBSCertList `tbs` (encoded without revokedCertificates) with the SEQUENCE OF `entries`
/// inserted where RFC 5280 §5.1 puts it: after nextUpdate, before the [0] crlExtensions, which
/// is the last field. The entries are copied once, into the result.
fn with_entries(tbs: &[u8], entries: &[EncodedRevokedEntry]) -> Result<Vec<u8>, CaError> {
    if entries.is_empty() {
        return Ok(tbs.to_vec());
    }
    let (_, header_len, _) = next_tlv(tbs)?;
    let fields = &tbs[header_len..];
    let mut split = 0;
    while split < fields.len() {
        let (tag, header_len, content_len) = next_tlv(&fields[split..])?;
        if tag.is_context_specific() {
            break;
        }
        split += header_len + content_len;
    }
    let mut parts: Vec<&[u8]> = Vec::with_capacity(entries.len() + 2);
    parts.push(&fields[..split]);
    let entries_len = entries.iter().map(|e| e.0.len()).sum::<usize>();
    let entries_header = der::Header::new(der::Tag::Sequence, der::Length::try_from(entries_len)?).to_der()?;
    parts.push(&entries_header);
    parts.extend(entries.iter().map(|e| e.0.as_slice()));
    parts.push(&fields[split..]);
    sequence(&parts)
}

/// The tag, header length and contents length of the DER TLV at the start of `bytes`.
fn next_tlv(bytes: &[u8]) -> Result<(der::Tag, usize, usize), CaError> {
    let header = der::Header::decode(&mut der::SliceReader::new(bytes)?)?;
    Ok((
        header.tag(),
        usize::try_from(header.encoded_len()?)?,
        usize::try_from(header.length())?,
    ))
}

/// A DER SEQUENCE around the already encoded `parts`, written into one buffer of its exact size.
fn sequence(parts: &[&[u8]]) -> Result<Vec<u8>, CaError> {
    let contents_len = parts.iter().map(|p| p.len()).sum::<usize>();
    let header = der::Header::new(der::Tag::Sequence, der::Length::try_from(contents_len)?);
    let mut out = Vec::with_capacity(contents_len + 6);
    header.encode_to_vec(&mut out)?;
    for part in parts {
        out.extend_from_slice(part);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_entry_reads_back_and_damaged_bytes_are_refused() {
        let entry = RevokedEntry {
            serial: Serial::fresh(),
            revoked_at: 1_700_000_000,
            reason: Reason::KEY_COMPROMISE,
        }
        .encode()
        .unwrap();
        let der = entry.as_der().to_vec();
        assert_eq!(EncodedRevokedEntry::from_der(der.clone()).unwrap(), entry);
        let mut trailing = der.clone();
        trailing.push(0);
        assert!(EncodedRevokedEntry::from_der(trailing).is_err());
        assert!(EncodedRevokedEntry::from_der(der[..der.len() - 1].to_vec()).is_err());
        let mut not_a_sequence = der;
        not_a_sequence[0] = 0x02;
        assert!(EncodedRevokedEntry::from_der(not_a_sequence).is_err());
    }
}
