//! OCSP (RFC 6960): reading requests and building signed responses.
//!
//! The types follow RFC 6960 §4 (the module uses EXPLICIT tags). They are written here because
//! the `x509-ocsp` crate is still on the older RustCrypto generation (der 0.7), which must not
//! be mixed with this one.

use const_oid::ObjectIdentifier;
use der::asn1::{BitString, GeneralizedTime, Int, Null, OctetString};
use der::{Choice, Decode, Encode, Enumerated, Sequence};
use sha1::{Digest, Sha1};
use sha2::Sha256;
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::CrlReason;
use x509_cert::ext::{Extension, Extensions};
use x509_cert::name::Name;
use x509_cert::Certificate;

use crate::authority::Identity;
use crate::error::CaError;
use crate::reason::Reason;
use crate::serial::Serial;
use crate::time;

/// id-pkix-ocsp-basic: the response type scepd sends.
pub const ID_PKIX_OCSP_BASIC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.1");
/// id-pkix-ocsp-nonce: the request extension echoed in the response.
pub const ID_PKIX_OCSP_NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");
const SHA1_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
/// RFC 6960 CertID: which certificate a request asks about.
pub struct CertId {
    /// The hash used for the two hashes below.
    pub hash_algorithm: AlgorithmIdentifierOwned,
    /// Hash of the issuer's DN.
    pub issuer_name_hash: OctetString,
    /// Hash of the issuer's public key.
    pub issuer_key_hash: OctetString,
    /// The certificate's serial.
    pub serial_number: Int,
}

#[derive(Clone, Debug, Sequence)]
struct Request {
    req_cert: CertId,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    single_request_extensions: Option<Extensions>,
}

#[derive(Clone, Debug, Sequence)]
struct TbsRequest {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", default = "Default::default")]
    version: u8,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    requestor_name: Option<GeneralName>,
    request_list: Vec<Request>,
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", optional = "true")]
    request_extensions: Option<Extensions>,
}

#[derive(Clone, Debug, Sequence)]
struct OcspRequest {
    tbs_request: TbsRequest,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    optional_signature: Option<der::Any>,
}

/// What an OCSP request asks.
#[derive(Debug)]
pub struct ParsedRequest {
    /// The certificates asked about.
    pub cert_ids: Vec<CertId>,
    /// The nonce extension's value, to echo.
    pub nonce: Option<Vec<u8>>,
}

/// Reads a DER OCSPRequest (signature, if any, ignored: RFC 6960 lets a responder accept unsigned requests).
pub fn parse_request(der: &[u8]) -> Result<ParsedRequest, CaError> {
    let req = OcspRequest::from_der(der)?;
    let nonce = req
        .tbs_request
        .request_extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == ID_PKIX_OCSP_NONCE)
        .map(|e| e.extn_value.as_bytes().to_vec());
    Ok(ParsedRequest {
        cert_ids: req.tbs_request.request_list.into_iter().map(|r| r.req_cert).collect(),
        nonce,
    })
}

/// The serial a CertID asks about, if the CertID names `ca` as the issuer (by the hashes of its
/// name and key, with SHA-1 — OpenSSL's default — or SHA-256), and the serial is one scepd issues.
pub fn serial_if_issued_by(id: &CertId, ca: &Certificate) -> Option<Serial> {
    let tbs = ca.tbs_certificate();
    let name = tbs.subject().to_der().ok()?;
    let key = tbs.subject_public_key_info().subject_public_key.raw_bytes();
    let (name_hash, key_hash): (Vec<u8>, Vec<u8>) = match id.hash_algorithm.oid {
        SHA1_OID => (Sha1::digest(&name).to_vec(), Sha1::digest(key).to_vec()),
        SHA256_OID => (Sha256::digest(&name).to_vec(), Sha256::digest(key).to_vec()),
        _ => return None,
    };
    (id.issuer_name_hash.as_bytes() == name_hash && id.issuer_key_hash.as_bytes() == key_hash)
        .then(|| Serial::try_from(id.serial_number.as_bytes()).ok())
        .flatten()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Enumerated)]
#[repr(u8)]
/// RFC 6960 OCSPResponseStatus.
pub enum ResponseStatus {
    /// A signed answer follows.
    Successful = 0,
    /// The request did not parse.
    MalformedRequest = 1,
    /// The responder failed.
    InternalError = 2,
    /// Busy: ask again later.
    TryLater = 3,
    /// The responder does not answer for this CA.
    Unauthorized = 6,
}

#[derive(Clone, Debug, Sequence)]
struct ResponseBytes {
    response_type: ObjectIdentifier,
    response: OctetString,
}

#[derive(Clone, Debug, Sequence)]
struct OcspResponse {
    response_status: ResponseStatus,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    response_bytes: Option<ResponseBytes>,
}

#[derive(Clone, Debug, Choice)]
enum ResponderId {
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", constructed = "true")]
    ByName(Name),
    #[asn1(context_specific = "2", tag_mode = "EXPLICIT", constructed = "true")]
    ByKey(OctetString),
}

#[derive(Clone, Debug, Sequence)]
struct RevokedInfo {
    revocation_time: GeneralizedTime,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    revocation_reason: Option<CrlReason>,
}

#[derive(Clone, Debug, Choice)]
enum CertStatusField {
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT")]
    Good(Null),
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", constructed = "true")]
    Revoked(RevokedInfo),
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT")]
    Unknown(Null),
}

#[derive(Clone, Debug, Sequence)]
struct SingleResponse {
    cert_id: CertId,
    cert_status: CertStatusField,
    this_update: GeneralizedTime,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    next_update: Option<GeneralizedTime>,
}

#[derive(Clone, Debug, Sequence)]
struct ResponseData {
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", default = "Default::default")]
    version: u8,
    responder_id: ResponderId,
    produced_at: GeneralizedTime,
    responses: Vec<SingleResponse>,
    #[asn1(context_specific = "1", tag_mode = "EXPLICIT", optional = "true")]
    response_extensions: Option<Extensions>,
}

#[derive(Clone, Debug, Sequence)]
struct BasicOcspResponse {
    tbs_response_data: ResponseData,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    certs: Option<Vec<Certificate>>,
}

/// The status of one certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertStatus {
    /// Issued and not revoked.
    Good,
    /// Revoked.
    Revoked {
        /// When, Unix seconds.
        at: u64,
        /// Why.
        reason: Reason,
    },
    /// Not issued by this CA, as far as the responder knows.
    Unknown,
}

/// An OCSP response without a body (malformedRequest, internalError, tryLater, unauthorized).
pub fn error_response(status: ResponseStatus) -> Vec<u8> {
    OcspResponse {
        response_status: status,
        response_bytes: None,
    }
    .to_der()
    .expect("a status encodes")
}

/// A successful, signed response. `signer` is the CA or a delegated OCSP signer (whose
/// certificate is then included); `now`/`next_update` are Unix seconds.
pub fn build_response(
    signer: &Identity,
    include_signer_cert: bool,
    answers: &[(CertId, CertStatus)],
    nonce: Option<&[u8]>,
    now: u64,
    next_update: u64,
) -> Result<Vec<u8>, CaError> {
    let produced_at = time::to_generalized(now)?;
    let responses = answers
        .iter()
        .map(|(id, status)| {
            let cert_status = match status {
                CertStatus::Good => CertStatusField::Good(Null),
                CertStatus::Unknown => CertStatusField::Unknown(Null),
                CertStatus::Revoked { at, reason } => CertStatusField::Revoked(RevokedInfo {
                    revocation_time: time::to_generalized(*at)?,
                    revocation_reason: (reason.0 != CrlReason::Unspecified).then_some(reason.0),
                }),
            };
            Ok(SingleResponse {
                cert_id: id.clone(),
                cert_status,
                this_update: produced_at,
                next_update: Some(time::to_generalized(next_update)?),
            })
        })
        .collect::<Result<Vec<_>, CaError>>()?;
    let response_extensions = nonce
        .map(|n| -> Result<Extensions, CaError> {
            Ok(vec![Extension {
                extn_id: ID_PKIX_OCSP_NONCE,
                critical: false,
                extn_value: OctetString::new(n)?,
            }])
        })
        .transpose()?;
    let key_hash = Sha1::digest(
        signer
            .cert
            .tbs_certificate()
            .subject_public_key_info()
            .subject_public_key
            .raw_bytes(),
    );
    let data = ResponseData {
        version: 0,
        responder_id: ResponderId::ByKey(OctetString::new(key_hash.to_vec())?),
        produced_at,
        responses,
        response_extensions,
    };
    let signature = signer.key.sign_sha256(&data.to_der()?)?;
    let basic = BasicOcspResponse {
        tbs_response_data: data,
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: const_oid::db::rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
            parameters: Some(Null.into()),
        },
        signature: BitString::from_bytes(&signature)?,
        certs: include_signer_cert.then(|| vec![signer.cert.clone()]),
    };
    let response = OcspResponse {
        response_status: ResponseStatus::Successful,
        response_bytes: Some(ResponseBytes {
            response_type: ID_PKIX_OCSP_BASIC,
            response: OctetString::new(basic.to_der()?)?,
        }),
    };
    Ok(response.to_der()?)
}
