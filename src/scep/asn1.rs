//! ASN.1 shapes of our own where the `cms`/`x509-cert` types are stricter than real clients.
//!
//! Lenient for what clients send, strict for what we emit:
//! - sscep signs with a self-signed certificate whose serial is longer than the 20 bytes
//!   RFC 5280 allows, which x509-cert's default profile (and so cms's `SignedData`) rejects;
//!   request SignedData and SignerInfo are therefore read with the signer identifier and the
//!   certificates kept as raw elements, and certificates parsed with x509-cert's `Raw` profile.
//! - Apple sends PKCS#10 version 2 (x509-cert accepts only version 0).
//! - A CertRep's recipient identifier must echo that long serial, so the reply envelope is
//!   written with our own `IssuerAndSerial`, whose serial is any INTEGER.

use der::asn1::{Any, BitString, Int, ObjectIdentifier, OctetString, SetOfVec};
use der::Sequence;
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::attr::Attribute;
use x509_cert::name::Name;

/// SignedData as clients send it (RFC 5652 §5.1), certificates unparsed.
#[derive(Clone, Debug, Sequence)]
pub struct SignedDataIn {
    pub version: Int,
    pub digest_algorithms: SetOfVec<AlgorithmIdentifierOwned>,
    pub encap_content_info: EncapsulatedContentInfoIn,
    #[asn1(
        context_specific = "0",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub certificates: Option<Vec<Any>>,
    #[asn1(
        context_specific = "1",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub crls: Option<Vec<Any>>,
    pub signer_infos: SetOfVec<Any>,
}

#[derive(Clone, Debug, Sequence)]
pub struct EncapsulatedContentInfoIn {
    pub econtent_type: ObjectIdentifier,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    pub econtent: Option<OctetString>,
}

/// SignerInfo as clients send it; `sid` is a CHOICE kept raw, signed attributes are read
/// from their raw bytes separately (see `request.rs`).
#[derive(Clone, Debug, Sequence)]
pub struct SignerInfoIn {
    pub version: Int,
    pub sid: Any,
    pub digest_alg: AlgorithmIdentifierOwned,
    #[asn1(
        context_specific = "0",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub signed_attrs: Option<Vec<Attribute>>,
    pub signature_algorithm: AlgorithmIdentifierOwned,
    pub signature: OctetString,
    #[asn1(
        context_specific = "1",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub unsigned_attrs: Option<Vec<Any>>,
}

/// IssuerAndSerialNumber with a serial of any length (RFC 5652 §10.2.4).
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct IssuerAndSerial {
    pub issuer: Name,
    pub serial: Int,
}

/// PKCS#10 CertificationRequestInfo, any version, attributes optional (RFC 2986 §4.1).
#[derive(Clone, Debug, Sequence)]
pub struct CertReqInfoIn {
    pub version: Int,
    pub subject: Name,
    pub public_key: SubjectPublicKeyInfoOwned,
    #[asn1(
        context_specific = "0",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub attributes: Option<Vec<Attribute>>,
}

#[derive(Clone, Debug, Sequence)]
pub struct CertReqIn {
    pub info: CertReqInfoIn,
    pub algorithm: AlgorithmIdentifierOwned,
    pub signature: BitString,
}

/// KeyTransRecipientInfo of a reply, version 0, addressed by issuer and serial.
#[derive(Clone, Debug, Sequence)]
pub struct KeyTransRecipientOut {
    pub version: u8,
    pub rid: IssuerAndSerial,
    pub key_encryption_algorithm: AlgorithmIdentifierOwned,
    pub encrypted_key: OctetString,
}

/// EnvelopedData of a reply, one recipient. `recipient_infos` holds that one encoded
/// KeyTransRecipientInfo (a SET of one needs no sorting).
#[derive(Clone, Debug, Sequence)]
pub struct EnvelopedDataOut {
    pub version: u8,
    pub recipient_infos: SetOfVec<Any>,
    pub encrypted_content_info: EncryptedContentInfoOut,
}

#[derive(Clone, Debug, Sequence)]
pub struct EncryptedContentInfoOut {
    pub content_type: ObjectIdentifier,
    pub content_encryption_algorithm: AlgorithmIdentifierOwned,
    /// Primitive OCTET STRING: some client parsers reject a constructed one here.
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT")]
    pub encrypted_content: OctetString,
}

/// A certs-only ("degenerate") SignedData whose certificates keep the order we give them
/// (GetCACert: RA first), which a DER SET OF would not.
#[derive(Clone, Debug, Sequence)]
pub struct DegenerateSignedData {
    pub version: u8,
    pub digest_algorithms: SetOfVec<AlgorithmIdentifierOwned>,
    pub encap_content_info: EncapsulatedContentInfoIn,
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", constructed = "true")]
    pub certificates: Vec<Any>,
    #[asn1(
        context_specific = "1",
        tag_mode = "IMPLICIT",
        constructed = "true",
        optional = "true"
    )]
    pub crls: Option<Vec<Any>>,
    pub signer_infos: SetOfVec<Any>,
}
