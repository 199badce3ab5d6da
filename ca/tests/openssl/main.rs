//! What `scepd-ca` builds — certificates, CRLs, OCSP responses, CSRs — read and verified by
//! another implementation, the `openssl` command line (the way rcgen's tests/openssl.rs does).
//! Without `openssl` these tests fail: they exist to compare with it.

mod certificates;
mod crl;
mod ocsp;
mod requests;
mod support;
