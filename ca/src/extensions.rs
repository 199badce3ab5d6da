//! The X.509 extensions scepd puts in the certificates it makes, and the builder profile
//! that hands them to x509-cert's `CertificateBuilder`.

use const_oid::{AssociatedOid, ObjectIdentifier};
use der::asn1::{Ia5String, OctetString};
use der::Encode;
use sha1::{Digest, Sha1};
use spki::{SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::certificate::TbsCertificate;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints, CrlDistributionPoints,
    ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::name::Name;

use crate::error::CaError;

/// Okta Device Access marks its certificates with this extension, value INTEGER 1.
pub const OKTA_DEVICE_ACCESS_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.51150.13.1");

/// Whether an issued certificate carries the Okta Device Access marker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Okta {
    #[default]
    /// No marker.
    Plain,
    /// The Okta Device Access extension (1.3.6.1.4.1.51150.13.1 = INTEGER 1).
    DeviceAccess,
}

pub(crate) fn extension<T: AssociatedOid + Encode>(value: &T, critical: bool) -> Result<Extension, CaError> {
    Ok(Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

/// RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING's bytes.
pub(crate) fn key_identifier(spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    Sha1::digest(spki.subject_public_key.raw_bytes()).to_vec()
}

pub(crate) fn ski(spki: &SubjectPublicKeyInfoOwned) -> Result<Extension, CaError> {
    extension(&SubjectKeyIdentifier(OctetString::new(key_identifier(spki))?), false)
}

/// The authorityKeyIdentifier for certificates and CRLs `issuer` signs: the issuer's own
/// subjectKeyIdentifier when it has one (an imported CA's may not be the SHA-1 of its key, and
/// OpenSSL refuses a mismatch), else the RFC 5280 method-1 identifier of its key.
pub(crate) fn aki(issuer: &x509_cert::Certificate) -> Result<Extension, CaError> {
    let tbs = issuer.tbs_certificate();
    let key_identifier = match tbs.get_extension::<SubjectKeyIdentifier>().ok().flatten() {
        Some((_, ski)) => ski.0,
        None => OctetString::new(key_identifier(tbs.subject_public_key_info()))?,
    };
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(key_identifier),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    extension(&aki, false)
}

pub(crate) fn basic_constraints(ca: bool) -> Result<Extension, CaError> {
    extension(
        &BasicConstraints {
            ca,
            path_len_constraint: if ca { Some(0) } else { None },
        },
        true,
    )
}

pub(crate) fn key_usage(usages: impl Into<der::flagset::FlagSet<KeyUsages>>) -> Result<Extension, CaError> {
    extension(&KeyUsage(usages.into()), true)
}

pub(crate) fn client_auth() -> Result<Extension, CaError> {
    extension(
        &ExtendedKeyUsage(vec![const_oid::db::rfc5280::ID_KP_CLIENT_AUTH]),
        false,
    )
}

pub(crate) fn ocsp_signing() -> Result<Extension, CaError> {
    extension(
        &ExtendedKeyUsage(vec![const_oid::db::rfc5280::ID_KP_OCSP_SIGNING]),
        false,
    )
}

/// id-pkix-ocsp-nocheck (1.3.6.1.5.5.7.48.1.5), value NULL.
pub(crate) fn ocsp_nocheck() -> Result<Extension, CaError> {
    Ok(Extension {
        extn_id: ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.5"),
        critical: false,
        extn_value: OctetString::new(der::asn1::Null.to_der()?)?,
    })
}

fn uri(url: &str) -> Result<GeneralName, CaError> {
    Ok(GeneralName::UniformResourceIdentifier(Ia5String::new(url)?))
}

pub(crate) fn crl_distribution_point(url: &str) -> Result<Extension, CaError> {
    let dp = DistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(vec![uri(url)?])),
        reasons: None,
        crl_issuer: None,
    };
    extension(&CrlDistributionPoints(vec![dp]), false)
}

pub(crate) fn authority_info_access(
    ocsp: Option<&str>,
    ca_issuers: Option<&str>,
) -> Result<Option<Extension>, CaError> {
    let mut access = Vec::new();
    if let Some(url) = ocsp {
        access.push(AccessDescription {
            access_method: const_oid::db::rfc5280::ID_AD_OCSP,
            access_location: uri(url)?,
        });
    }
    if let Some(url) = ca_issuers {
        access.push(AccessDescription {
            access_method: const_oid::db::rfc5280::ID_AD_CA_ISSUERS,
            access_location: uri(url)?,
        });
    }
    if access.is_empty() {
        return Ok(None);
    }
    Ok(Some(extension(&AuthorityInfoAccessSyntax(access), false)?))
}

pub(crate) fn okta_device_access() -> Result<Extension, CaError> {
    Ok(Extension {
        extn_id: OKTA_DEVICE_ACCESS_OID,
        critical: false,
        extn_value: OctetString::new(1u8.to_der()?)?,
    })
}

/// A builder profile whose extensions were decided before building: scepd computes them from
/// its own policy, so the profile just hands them over.
pub(crate) struct FixedProfile {
    pub issuer: Name,
    pub subject: Name,
    pub extensions: Vec<Extension>,
}

impl BuilderProfile for FixedProfile {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        _spk: SubjectPublicKeyInfoRef<'_>,
        _issuer_spk: SubjectPublicKeyInfoRef<'_>,
        _tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        Ok(self.extensions.clone())
    }
}
