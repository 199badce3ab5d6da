//! `scepd bench`: a load generator that is a real SCEP client.
//!
//! It fetches GetCACaps and GetCACert once, builds N complete PKCSReq messages up front (keys are
//! generated before the clock starts), sends them over C concurrent keep-alive connections to any
//! SCEP URL on loopback, and validates every reply: the CertRep signature, recipientNonce, the
//! envelope, that the issued certificate chains to the CA and carries the request's key, and that
//! serials are unique. Given the server's PID it reports the server's CPU time per enrollment.

mod fill;
mod floor;
mod run;

pub use fill::{fill, FillArgs};
pub use run::{run, BenchArgs};
