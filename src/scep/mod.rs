//! The SCEP wire format (RFC 8894), sans-IO: bytes in, typed messages out, and back.
//!
//! Nothing here does I/O or knows about HTTP, the store or policy. [`request`] decodes and
//! verifies a pkiMessage, [`envelope`] opens and seals the enveloped content, [`csr`] reads
//! PKCS#10, [`reply`] builds CertReps and certs-only bodies, [`query`] decodes GET requests.

pub mod asn1;
pub mod ber;
pub mod caps;
pub mod cipher;
pub mod client;
pub mod csr;
pub mod digest;
pub mod envelope;
pub mod oids;
pub mod query;
pub mod reply;
pub mod request;
pub mod signed;
#[cfg(test)]
mod vectors;

use thiserror::Error;

/// SCEP messageType values (RFC 8894 §3.2.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    CertRep,
    RenewalReq,
    PkcsReq,
    CertPoll,
    GetCert,
    GetCrl,
}

impl MessageType {
    pub fn from_wire(s: &str) -> Option<MessageType> {
        Some(match s.trim() {
            "3" => MessageType::CertRep,
            "17" => MessageType::RenewalReq,
            "19" => MessageType::PkcsReq,
            "20" => MessageType::CertPoll,
            "21" => MessageType::GetCert,
            "22" => MessageType::GetCrl,
            _ => return None,
        })
    }

    pub fn wire(self) -> &'static str {
        match self {
            MessageType::CertRep => "3",
            MessageType::RenewalReq => "17",
            MessageType::PkcsReq => "19",
            MessageType::CertPoll => "20",
            MessageType::GetCert => "21",
            MessageType::GetCrl => "22",
        }
    }

    /// A label for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            MessageType::CertRep => "CertRep",
            MessageType::RenewalReq => "RenewalReq",
            MessageType::PkcsReq => "PKCSReq",
            MessageType::CertPoll => "CertPoll",
            MessageType::GetCert => "GetCert",
            MessageType::GetCrl => "GetCRL",
        }
    }
}

/// pkiStatus (RFC 8894 §3.2.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PkiStatus {
    Success,
    Failure,
    Pending,
}

impl PkiStatus {
    pub fn wire(self) -> &'static str {
        match self {
            PkiStatus::Success => "0",
            PkiStatus::Failure => "2",
            PkiStatus::Pending => "3",
        }
    }
}

/// failInfo (RFC 8894 §3.2.1.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailInfo {
    BadAlg,
    BadMessageCheck,
    BadRequest,
    BadTime,
    BadCertId,
}

impl FailInfo {
    pub fn wire(self) -> &'static str {
        match self {
            FailInfo::BadAlg => "0",
            FailInfo::BadMessageCheck => "1",
            FailInfo::BadRequest => "2",
            FailInfo::BadTime => "3",
            FailInfo::BadCertId => "4",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FailInfo::BadAlg => "badAlg",
            FailInfo::BadMessageCheck => "badMessageCheck",
            FailInfo::BadRequest => "badRequest",
            FailInfo::BadTime => "badTime",
            FailInfo::BadCertId => "badCertId",
        }
    }
}

/// A request that can be answered in SCEP, but only with FAILURE: the failInfo and a short
/// failInfoText for the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub fail_info: FailInfo,
    pub text: &'static str,
}

impl Rejection {
    pub const fn new(fail_info: FailInfo, text: &'static str) -> Rejection {
        Rejection { fail_info, text }
    }
}

/// A body that cannot be answered in SCEP at all (no transactionID to echo, not CMS):
/// the HTTP adapter turns it into a 400.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum MalformedRequest {
    #[error("empty request body")]
    Empty,
    #[error("not a BER/DER encoded message: {0}")]
    Encoding(#[from] ber::BerError),
    #[error("not a CMS SignedData pkiMessage")]
    NotSignedData,
    #[error("pkiMessage has no signer")]
    NoSigner,
    #[error("pkiMessage lacks the {0} attribute")]
    MissingAttribute(&'static str),
    #[error("bad base64 in the message parameter")]
    Base64,
    #[error("missing message parameter")]
    MissingMessage,
}
