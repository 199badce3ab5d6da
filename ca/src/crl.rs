//! X.509 v2 CRLs (RFC 5280 §5), signed by the issuing CA.

use der::asn1::Uint;
use der::Encode;
use x509_cert::certificate::{Rfc5280, Version};
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::pkix::{CrlNumber, CrlReason};
use x509_cert::ext::Extension;
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

/// Builds and signs a CRL. The authorityKeyIdentifier is the CA's own key identifier (built
/// here rather than by x509-cert's `CrlBuilder`, which copies the issuer certificate's *own*
/// AKI — the key of the issuer's issuer — when an intermediate CA has one).
pub fn build_crl(ca: &Identity, params: &CrlParams, entries: &[RevokedEntry]) -> Result<Vec<u8>, CaError> {
    let number = CrlNumber(Uint::new(&params.number.to_be_bytes())?);
    let revoked = entries
        .iter()
        .map(|e| {
            // RFC 5280 §5.3.1: omit the reasonCode rather than write `unspecified`.
            let crl_entry_extensions = match e.reason.0 {
                CrlReason::Unspecified => None,
                reason => Some(vec![extension(&reason, false)?]),
            };
            Ok(RevokedCert {
                serial_number: SerialNumber::<Rfc5280>::new(e.serial.as_bytes())?,
                revocation_date: time::to_x509(e.revoked_at)?,
                crl_entry_extensions,
            })
        })
        .collect::<Result<Vec<_>, CaError>>()?;
    let extensions: Vec<Extension> = vec![extension(&number, false)?, aki(&ca.cert)?];
    let tbs = TbsCertList {
        version: Version::V2,
        signature: spki::AlgorithmIdentifierOwned {
            oid: const_oid::db::rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
            parameters: Some(der::asn1::Null.into()),
        },
        issuer: ca.subject().clone(),
        this_update: time::to_x509(params.this_update)?,
        next_update: Some(time::to_x509(params.next_update)?),
        revoked_certificates: if revoked.is_empty() { None } else { Some(revoked) },
        crl_extensions: Some(extensions),
    };
    let signature = ca.key.sign_sha256(&tbs.to_der()?)?;
    let crl = CertificateList {
        signature_algorithm: tbs.signature.clone(),
        tbs_cert_list: tbs,
        signature: der::asn1::BitString::from_bytes(&signature)?,
    };
    Ok(crl.to_der()?)
}
