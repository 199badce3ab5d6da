//! Challenge binding: a challenge minted for a device, a subject CN or a SAN only redeems for a
//! CSR that matches.

use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;

use crate::scep::csr::Csr;
use crate::store::ChallengeRecord;

/// The textual values of a CSR's requested subjectAltName.
pub fn san_values(csr: &Csr) -> Vec<String> {
    let Some(ext) = &csr.subject_alt_name else {
        return Vec::new();
    };
    let Ok(san) = <SubjectAltName as der::Decode>::from_der(ext.extn_value.as_bytes()) else {
        return Vec::new();
    };
    san.0
        .iter()
        .filter_map(|n| match n {
            GeneralName::DnsName(s) => Some(s.to_string()),
            GeneralName::Rfc822Name(s) => Some(s.to_string()),
            GeneralName::UniformResourceIdentifier(s) => Some(s.to_string()),
            _ => None,
        })
        .collect()
}

/// Whether `csr` satisfies the challenge's bindings.
///
/// - `subject_cn`: the CSR's CN equals it.
/// - `san`: one of the CSR's DNS, email or URI SANs equals it.
/// - `device_id`: the CN equals it or holds it as a space-separated word (Apple profiles put the
///   UDID or serial in the CN, e.g. `CN=Mac-17 managementAttestation 0000-1111`), or a SAN
///   equals it.
pub fn matches(record: &ChallengeRecord, csr: &Csr) -> bool {
    let cn = scepd_ca::name::common_name(&csr.subject).unwrap_or_default();
    let sans = san_values(csr);
    if let Some(want) = &record.subject_cn {
        if &cn != want {
            return false;
        }
    }
    if let Some(want) = &record.san {
        if !sans.iter().any(|s| s == want) {
            return false;
        }
    }
    if let Some(device) = &record.device_id {
        let in_cn = cn == *device || cn.split_whitespace().any(|w| w == device);
        if !in_cn && !sans.iter().any(|s| s == device) {
            return false;
        }
    }
    true
}
