//! Counts and times every private-key operation, wherever the key is (a file or a token):
//! the one wrapper the served authority's keys go through.

use std::time::Instant;

use prometheus::{HistogramVec, IntCounterVec};
use scepd_ca::{Authority, CaError, Identity, KeyCustody, KeyRole, PrivateKey, SignatureHash};

use crate::metrics::Metrics;

/// A key whose operations land in `scepd_key_operations_total{key,op,result}` and
/// `scepd_key_operation_duration_seconds{key,op}`.
#[derive(Debug)]
pub struct MeteredKey {
    role: KeyRole,
    inner: Box<dyn PrivateKey>,
    operations: IntCounterVec,
    duration: HistogramVec,
}

impl MeteredKey {
    fn observe<T>(&self, op: &str, run: impl FnOnce() -> Result<T, CaError>) -> Result<T, CaError> {
        let started = Instant::now();
        let result = run();
        let key = self.role.name();
        self.duration
            .with_label_values(&[key, op])
            .observe(started.elapsed().as_secs_f64());
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.operations.with_label_values(&[key, op, outcome]).inc();
        result
    }
}

impl PrivateKey for MeteredKey {
    fn bits(&self) -> usize {
        self.inner.bits()
    }

    fn public_key_spki_der(&self) -> Vec<u8> {
        self.inner.public_key_spki_der()
    }

    fn sign(&self, hash: SignatureHash, message: &[u8]) -> Result<Vec<u8>, CaError> {
        self.observe("sign", || self.inner.sign(hash, message))
    }

    fn decrypt_pkcs1(&self, ciphertext: &[u8]) -> Option<Vec<u8>> {
        self.try_decrypt_pkcs1(ciphertext).ok().flatten()
    }

    /// A ciphertext the key refused counts as `ok`: the metrics are public, and counting bad
    /// padding apart would make them a padding oracle. `error` is the key itself failing.
    fn try_decrypt_pkcs1(&self, ciphertext: &[u8]) -> Result<Option<Vec<u8>>, CaError> {
        self.observe("decrypt", || self.inner.try_decrypt_pkcs1(ciphertext))
    }

    fn custody(&self) -> KeyCustody<'_> {
        self.inner.custody()
    }
}

fn metered(identity: Identity, role: KeyRole, metrics: &Metrics) -> Identity {
    let key = MeteredKey {
        role,
        inner: identity.key,
        operations: metrics.key_operations.clone(),
        duration: metrics.key_duration.clone(),
    };
    Identity {
        key: Box::new(key),
        ..identity
    }
}

/// The authority with each of its keys metered under its role.
pub fn meter(authority: Authority, metrics: &Metrics) -> Authority {
    Authority {
        ca: metered(authority.ca, KeyRole::Ca, metrics),
        ra: authority.ra.map(|ra| metered(ra, KeyRole::Ra, metrics)),
        ocsp_signer: authority.ocsp_signer.map(|o| metered(o, KeyRole::Ocsp, metrics)),
        ..authority
    }
}
