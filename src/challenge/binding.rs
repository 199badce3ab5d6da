//! Challenge binding: a challenge minted for a device, a subject CN or a SAN only redeems for a
//! CSR that matches — and a bound challenge binds the whole identity, not one field of it.

use const_oid::db::rfc4519;
use const_oid::ObjectIdentifier;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;

use crate::scep::csr::Csr;
use crate::store::ChallengeRecord;

/// Subject attributes a bound request may carry besides its one CN: where a device sits in the
/// organisation, nothing that names another identity (no second CN, UID, serialNumber, email).
const ALLOWED_BESIDE_CN: [ObjectIdentifier; 5] = [rfc4519::C, rfc4519::ST, rfc4519::L, rfc4519::O, rfc4519::OU];

/// The word Apple's Okta Device Trust subject puts between the computer name and the device
/// identifier: `CN=$COMPUTERNAME managementAttestation $UDID`.
const APPLE_ATTESTATION_WORD: &str = " managementAttestation ";

/// The requested subjectAltName entries, or `None` when the extension does not parse.
pub fn san_entries(csr: &Csr) -> Option<Vec<GeneralName>> {
    let Some(ext) = &csr.subject_alt_name else {
        return Some(Vec::new());
    };
    <SubjectAltName as der::Decode>::from_der(ext.extn_value.as_bytes())
        .ok()
        .map(|san| san.0)
}

/// The text of a DNS, email or URI name.
pub fn san_text(name: &GeneralName) -> Option<String> {
    match name {
        GeneralName::DnsName(s) => Some(s.to_string()),
        GeneralName::Rfc822Name(s) => Some(s.to_string()),
        GeneralName::UniformResourceIdentifier(s) => Some(s.to_string()),
        _ => None,
    }
}

/// The textual values of a CSR's requested subjectAltName.
pub fn san_values(csr: &Csr) -> Vec<String> {
    san_entries(csr)
        .unwrap_or_default()
        .iter()
        .filter_map(san_text)
        .collect()
}

/// Whether the challenge binds anything.
pub fn is_bound(record: &ChallengeRecord) -> bool {
    record.device_id.is_some() || record.subject_cn.is_some() || record.san.is_some()
}

/// Whether `cn` names `device`: equal, or Apple's `NAME managementAttestation DEVICE` (the
/// computer name is the device's own; the identifier must be the last word).
fn cn_names_device(cn: &str, device: &str) -> bool {
    cn == device
        || cn
            .strip_suffix(device)
            .and_then(|rest| rest.strip_suffix(APPLE_ATTESTATION_WORD))
            .is_some_and(|name| !name.is_empty() && !name.contains(APPLE_ATTESTATION_WORD.trim()))
}

/// Whether `csr` satisfies the challenge's bindings. An unbound challenge binds nothing. A bound
/// one requires:
///
/// - exactly one CN, and besides it only C, ST, L, O, OU (and serialNumber equal to the bound
///   device);
/// - `subject_cn`: the CN equals it;
/// - `device_id`: the CN equals it, or is Apple's `NAME managementAttestation DEVICE`, or a SAN
///   equals it;
/// - `san`: one of the SANs equals it;
/// - every SAN is a DNS, email or URI name equal to the bound `san` or `device_id`: nothing
///   beyond what was bound.
pub fn matches(record: &ChallengeRecord, csr: &Csr) -> bool {
    if !is_bound(record) {
        return true;
    }
    let mut cns = Vec::new();
    for atv in csr.subject.iter_rdn().flat_map(|rdn| rdn.iter()) {
        let value = scepd_ca::name::attribute_string(&atv.value);
        if atv.oid == rfc4519::CN {
            cns.push(value);
        } else if atv.oid == rfc4519::SERIAL_NUMBER {
            if value.is_none() || value != record.device_id {
                return false;
            }
        } else if !ALLOWED_BESIDE_CN.contains(&atv.oid) {
            return false;
        }
    }
    let [Some(cn)] = cns.as_slice() else {
        return false;
    };
    let Some(entries) = san_entries(csr) else {
        return false;
    };
    let sans: Option<Vec<String>> = entries.iter().map(san_text).collect();
    let Some(sans) = sans else {
        return false;
    };
    let bound_san = |s: &String| Some(s) == record.san.as_ref() || Some(s) == record.device_id.as_ref();
    if !sans.iter().all(bound_san) {
        return false;
    }
    if record.subject_cn.as_ref().is_some_and(|want| cn != want) {
        return false;
    }
    if record.san.as_ref().is_some_and(|want| !sans.contains(want)) {
        return false;
    }
    if let Some(device) = &record.device_id {
        if !cn_names_device(cn, device) && !sans.contains(device) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::cn_names_device;

    #[test]
    fn device_in_the_cn() {
        assert!(cn_names_device("DEV-A", "DEV-A"));
        assert!(cn_names_device("Mac-17 managementAttestation DEV-A", "DEV-A"));
        assert!(cn_names_device("John's Mac managementAttestation DEV-A", "DEV-A"));
        assert!(!cn_names_device("evil.example.com DEV-A", "DEV-A"));
        assert!(!cn_names_device(" managementAttestation DEV-A", "DEV-A"));
        assert!(!cn_names_device("DEV-A managementAttestation OTHER", "DEV-A"));
        assert!(!cn_names_device(
            "x managementAttestation y managementAttestation DEV-A",
            "DEV-A"
        ));
    }
}
