//! The CA's identities (the issuing CA and the RA that talks SCEP) and what they issue.

use der::{Decode, Encode};
use sha2::{Digest, Sha256};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::builder::CertificateBuilder;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Validity;
use x509_cert::Certificate;

use crate::error::CaError;
use crate::extensions::{self, FixedProfile, Okta};
use crate::key::KeyBits;
use crate::private_key::{KeyGenerator, KeyRole, PrivateKey, SoftwareKeys};
use crate::serial::Serial;
use crate::signer::sign_tbs;
use crate::time;

const DAY: u64 = 86_400;

/// A certificate and its private key.
pub struct Identity {
    /// The certificate.
    pub cert: Certificate,
    /// The certificate, DER-encoded (sent as is in GetCACert and CertReps).
    pub der: Vec<u8>,
    /// Its private key, in this process or in a token.
    pub key: Box<dyn PrivateKey>,
}

impl Identity {
    fn new(cert: Certificate, key: Box<dyn PrivateKey>) -> Result<Self, CaError> {
        let der = cert.to_der()?;
        Ok(Identity { cert, der, key })
    }

    /// The certificate's subject name.
    pub fn subject(&self) -> &Name {
        self.cert.tbs_certificate().subject()
    }

    /// SHA-256 of the certificate's DER.
    pub fn fingerprint_sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.der).into()
    }

    /// notAfter, Unix seconds.
    pub fn not_after(&self) -> u64 {
        time::from_x509(&self.cert.tbs_certificate().validity().not_after)
    }

    /// The keyUsage extension, when the certificate has one.
    pub fn key_usage(&self) -> Option<KeyUsage> {
        self.cert
            .tbs_certificate()
            .get_extension::<KeyUsage>()
            .ok()
            .flatten()
            .map(|(_, ku)| ku)
    }
}

/// How to make a new CA. [`CaParams::default`] is what `scepd init` and a first `scepd serve`
/// make when nothing else is asked for.
pub struct CaParams {
    /// The CA's subject name.
    pub subject: Name,
    /// The size of the CA (and RA) keys.
    pub key_bits: KeyBits,
    /// How long the CA certificate is valid.
    pub validity_days: u32,
    /// Make a separate RA certificate (the default) instead of letting the CA act as its own RA.
    pub with_ra: bool,
}

impl CaParams {
    /// The default CA subject.
    pub const DEFAULT_SUBJECT: &'static str = "CN=scepd CA,O=scepd";
    /// The default CA validity: ten years.
    pub const DEFAULT_VALIDITY_DAYS: u32 = 3650;
    /// The default key size (Okta's minimum).
    pub const DEFAULT_KEY_BITS: KeyBits = KeyBits::Rsa2048;
}

impl Default for CaParams {
    fn default() -> CaParams {
        CaParams {
            subject: crate::name::parse(Self::DEFAULT_SUBJECT).expect("the default subject parses"),
            key_bits: Self::DEFAULT_KEY_BITS,
            validity_days: Self::DEFAULT_VALIDITY_DAYS,
            with_ra: true,
        }
    }
}

/// Something about an imported CA worth telling the operator, but not worth refusing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportWarning {
    /// The CA acts as its own RA but its keyUsage lacks keyEncipherment: Apple devices may refuse it.
    CaAsRaWithoutKeyEncipherment,
    /// The CA has keyEncipherment and there is also an RA: clients that pick the encryption
    /// certificate by key usage (Apple) see two candidates.
    CaAndRaBothKeyEncipherment,
}

impl std::fmt::Display for ImportWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportWarning::CaAsRaWithoutKeyEncipherment => f.write_str(
                "the CA certificate acts as its own RA but lacks keyUsage keyEncipherment; \
                 Apple devices may refuse to enroll (consider keeping the default RA)",
            ),
            ImportWarning::CaAndRaBothKeyEncipherment => f.write_str(
                "the CA certificate carries keyEncipherment as well as the RA; Apple devices \
                 pick the encryption certificate by key usage and may pick the CA",
            ),
        }
    }
}

/// What a leaf certificate is made from; the policy decisions are already taken by the caller.
pub struct LeafRequest {
    /// The serial number, drawn by the caller (the store checks it is unique).
    pub serial: Serial,
    /// The subject, from the CSR.
    pub subject: Name,
    /// The device's public key, from the CSR.
    pub public_key: SubjectPublicKeyInfoOwned,
    /// The subjectAltName extension requested in the CSR, copied as is.
    pub subject_alt_name: Option<Extension>,
    /// notBefore, Unix seconds (already back-dated by the caller).
    pub not_before: u64,
    /// Validity from notBefore, in days.
    pub validity_days: u32,
    /// The URL put in the CRL distribution point.
    pub crl_url: Option<String>,
    /// The OCSP responder URL put in authorityInfoAccess.
    pub ocsp_url: Option<String>,
    /// The caIssuers URL put in authorityInfoAccess.
    pub ca_issuers_url: Option<String>,
    /// Whether to add the Okta Device Access marker.
    pub okta: Okta,
}

/// The issuing CA, the RA that decrypts requests and signs CertReps (or none: the CA does it),
/// and the certificates above the CA when it is an intermediate.
pub struct Authority {
    /// The issuing CA.
    pub ca: Identity,
    /// The RA, when the CA does not decrypt requests and sign CertReps itself.
    pub ra: Option<Identity>,
    /// DER certificates above the CA, nearest first.
    pub chain: Vec<Vec<u8>>,
    /// A delegated OCSP signing certificate (id-kp-OCSPSigning), when configured; otherwise the
    /// CA signs OCSP responses itself.
    pub ocsp_signer: Option<Identity>,
}

impl Authority {
    /// A new self-signed root CA, and an RA under it unless `with_ra` is false, with keys made
    /// in this process.
    pub fn create(params: &CaParams) -> Result<Authority, CaError> {
        Self::create_with(params, &SoftwareKeys)
    }

    /// [`Authority::create`] with keys made by `keys` (a token, say).
    pub fn create_with(params: &CaParams, keys: &dyn KeyGenerator) -> Result<Authority, CaError> {
        let key = keys.generate(KeyRole::Ca, params.key_bits)?;
        let spki = spki_of(key.as_ref())?;
        let mut usages = KeyUsages::KeyCertSign | KeyUsages::CRLSign | KeyUsages::DigitalSignature;
        if !params.with_ra {
            // Apple refuses a CA that is its own RA unless it may also encrypt and sign CertReps.
            usages |= KeyUsages::KeyEncipherment;
        }
        let extensions = vec![
            extensions::basic_constraints(true)?,
            extensions::key_usage(usages)?,
            extensions::ski(&spki)?,
        ];
        let now = time::unix_now();
        let cert = build(
            FixedProfile {
                issuer: params.subject.clone(),
                subject: params.subject.clone(),
                extensions,
            },
            Serial::fresh(),
            now.saturating_sub(300),
            now + u64::from(params.validity_days) * DAY,
            spki,
            key.as_ref(),
        )?;
        let ca = Identity::new(cert, key)?;
        let ra = if params.with_ra {
            Some(new_ra(&ca, params.key_bits, keys)?)
        } else {
            None
        };
        Ok(Authority {
            ca,
            ra,
            chain: Vec::new(),
            ocsp_signer: None,
        })
    }

    /// An existing (typically intermediate) CA certificate and its key; the RA's key, when one
    /// is made, comes from `keys`.
    pub fn import(
        ca_cert_der: &[u8],
        key: Box<dyn PrivateKey>,
        chain: Vec<Vec<u8>>,
        with_ra: bool,
        keys: &dyn KeyGenerator,
    ) -> Result<(Authority, Vec<ImportWarning>), CaError> {
        let cert = Certificate::from_der(ca_cert_der)?;
        check_ca_certificate(&cert, key.as_ref())?;
        let ca = Identity::new(cert, key)?;
        let mut warnings = Vec::new();
        let ca_encipherment = ca.key_usage().map(|ku| ku.key_encipherment()).unwrap_or(false);
        let ra = if with_ra {
            if ca_encipherment {
                warnings.push(ImportWarning::CaAndRaBothKeyEncipherment);
            }
            let bits = KeyBits::try_from(ca.key.bits() as u32).unwrap_or(KeyBits::Rsa2048);
            Some(new_ra(&ca, bits, keys)?)
        } else {
            if !ca_encipherment {
                warnings.push(ImportWarning::CaAsRaWithoutKeyEncipherment);
            }
            None
        };
        Ok((
            Authority {
                ca,
                ra,
                chain,
                ocsp_signer: None,
            },
            warnings,
        ))
    }

    /// A delegated OCSP signer under this CA: id-kp-OCSPSigning, and id-pkix-ocsp-nocheck so
    /// that relying parties do not ask about the signer itself (RFC 6960 §4.2.2.2.1).
    pub fn new_ocsp_signer(&self) -> Result<Identity, CaError> {
        self.new_ocsp_signer_with(&SoftwareKeys)
    }

    /// [`Authority::new_ocsp_signer`] with its key made by `keys`.
    pub fn new_ocsp_signer_with(&self, keys: &dyn KeyGenerator) -> Result<Identity, CaError> {
        let bits = KeyBits::try_from(self.ca.key.bits() as u32).unwrap_or(KeyBits::Rsa2048);
        let extra = vec![extensions::ocsp_signing()?, extensions::ocsp_nocheck()?];
        let key = keys.generate(KeyRole::Ocsp, bits)?;
        delegate(&self.ca, key, "scepd OCSP", KeyUsages::DigitalSignature.into(), extra)
    }

    /// The identity that decrypts SCEP requests and signs CertReps: the RA, or the CA itself.
    pub fn recipient(&self) -> &Identity {
        self.ra.as_ref().unwrap_or(&self.ca)
    }

    /// Issues a client certificate. The validity is capped at the CA's own notAfter.
    pub fn issue(&self, req: &LeafRequest) -> Result<Certificate, CaError> {
        let mut exts = vec![
            extensions::basic_constraints(false)?,
            extensions::key_usage(KeyUsages::DigitalSignature)?,
            extensions::client_auth()?,
            extensions::ski(&req.public_key)?,
            extensions::aki(&self.ca.cert)?,
        ];
        if let Some(san) = &req.subject_alt_name {
            exts.push(san.clone());
        }
        if let Some(url) = &req.crl_url {
            exts.push(extensions::crl_distribution_point(url)?);
        }
        if let Some(aia) = extensions::authority_info_access(req.ocsp_url.as_deref(), req.ca_issuers_url.as_deref())? {
            exts.push(aia);
        }
        if req.okta == Okta::DeviceAccess {
            exts.push(extensions::okta_device_access()?);
        }
        let not_after = (req.not_before + u64::from(req.validity_days) * DAY).min(self.ca.not_after());
        build(
            FixedProfile {
                issuer: self.ca.subject().clone(),
                subject: req.subject.clone(),
                extensions: exts,
            },
            req.serial,
            req.not_before,
            not_after,
            req.public_key.clone(),
            self.ca.key.as_ref(),
        )
    }
}

/// An RA certificate under `ca`: signs CertReps and decrypts requests, not a CA.
fn new_ra(ca: &Identity, bits: KeyBits, keys: &dyn KeyGenerator) -> Result<Identity, CaError> {
    delegate(
        ca,
        keys.generate(KeyRole::Ra, bits)?,
        "scepd RA",
        KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment,
        Vec::new(),
    )
}

/// A certificate under `ca` for one of its helpers (the RA, the OCSP signer), valid as long
/// as the CA.
fn delegate(
    ca: &Identity,
    key: Box<dyn PrivateKey>,
    cn: &str,
    usages: der::flagset::FlagSet<KeyUsages>,
    extra: Vec<Extension>,
) -> Result<Identity, CaError> {
    let spki = spki_of(key.as_ref())?;
    let subject = format!("CN={cn},{}", strip_cn(&ca.subject().to_string()));
    let subject = crate::name::parse(subject.trim_end_matches(','))?;
    let mut extensions = vec![
        extensions::basic_constraints(false)?,
        extensions::key_usage(usages)?,
        extensions::ski(&spki)?,
        extensions::aki(&ca.cert)?,
    ];
    extensions.extend(extra);
    let now = time::unix_now();
    let cert = build(
        FixedProfile {
            issuer: ca.subject().clone(),
            subject,
            extensions,
        },
        Serial::fresh(),
        now.saturating_sub(300),
        ca.not_after(),
        spki,
        ca.key.as_ref(),
    )?;
    Identity::new(cert, key)
}

/// `CN=x,O=y` → `O=y` (the RA shares the CA's organisation but has its own CN).
fn strip_cn(dn: &str) -> String {
    dn.split(',')
        .filter(|part| !part.trim_start().to_ascii_uppercase().starts_with("CN="))
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn spki_of(key: &dyn PrivateKey) -> Result<SubjectPublicKeyInfoOwned, CaError> {
    Ok(SubjectPublicKeyInfoOwned::from_der(&key.public_key_spki_der())?)
}

pub(crate) fn build(
    profile: FixedProfile,
    serial: Serial,
    not_before: u64,
    not_after: u64,
    spki: SubjectPublicKeyInfoOwned,
    signing_key: &dyn PrivateKey,
) -> Result<Certificate, CaError> {
    let validity = Validity::new(time::to_x509(not_before)?, time::to_x509(not_after)?);
    let builder = CertificateBuilder::new(profile, SerialNumber::new(serial.as_bytes())?, validity, spki)?;
    sign_tbs(builder, signing_key)
}

/// An imported CA certificate must match its key, be a CA and be allowed to sign certificates.
pub fn check_ca_certificate(cert: &Certificate, key: &dyn PrivateKey) -> Result<(), CaError> {
    let tbs = cert.tbs_certificate();
    if tbs.subject_public_key_info().algorithm.oid != const_oid::db::rfc5912::RSA_ENCRYPTION {
        return Err(CaError::NotRsa);
    }
    if tbs.subject_public_key_info().to_der()? != key.public_key_spki_der() {
        return Err(CaError::KeyMismatch);
    }
    let is_ca = tbs
        .get_extension::<BasicConstraints>()
        .ok()
        .flatten()
        .map(|(_, bc)| bc.ca)
        .unwrap_or(false);
    if !is_ca {
        return Err(CaError::NotCa);
    }
    // Without a keyUsage extension every usage is allowed (RFC 5280 §4.2.1.3).
    if let Some((_, ku)) = tbs.get_extension::<KeyUsage>().ok().flatten() {
        if !ku.key_cert_sign() {
            return Err(CaError::NoKeyCertSign);
        }
    }
    if time::from_x509(&tbs.validity().not_after) <= time::unix_now() {
        return Err(CaError::Expired);
    }
    Ok(())
}
