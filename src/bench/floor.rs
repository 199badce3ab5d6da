//! The floor of an enrollment: its three private-key operations — the RA decrypts the request's
//! content key, the CA signs the certificate, the RA signs the CertRep — timed with the server's
//! own keys (file or token) from its data directory, so that `scepd bench --floor DIR` reports
//! the server's CPU per enrollment beside what its cryptography alone costs, measured on the
//! same machine in the same run.

use std::path::Path;
use std::time::Instant;

use scepd_ca::{Authority, PrivateKey};

use crate::datadir::DataDir;

/// What the three operations cost, per enrollment.
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    /// CPU milliseconds of this thread per enrollment's three operations (wall milliseconds when
    /// the kernel does not report thread CPU time).
    pub ms_per_enrollment: f64,
    /// Rounds of three operations measured.
    pub rounds: u32,
    /// The CA key's size.
    pub ca_bits: usize,
}

/// The floor timed before the load and again after it.
#[derive(Debug, Clone, Copy)]
pub struct Bracketed {
    pub before: Floor,
    pub after: Floor,
}

impl Bracketed {
    /// The mean of the two readings: what the operations cost while the load ran, as well as
    /// this machine's drift allows.
    pub fn ms_per_enrollment(&self) -> f64 {
        (self.before.ms_per_enrollment + self.after.ms_per_enrollment) / 2.0
    }
}

/// Loads the keys of the data directory `data` (a token's PIN from `pin_file` or
/// `SCEPD_PKCS11_PIN`) and times their three operations for at least `seconds`.
pub fn measure(data: &Path, pin_file: Option<&Path>, seconds: f64) -> Result<Floor, Box<dyn std::error::Error>> {
    let dir = DataDir::new(data).with_pkcs11_pin(crate::datadir::pkcs11_pin(pin_file)?);
    let authority = dir.load()?;
    time_operations(&authority, seconds)
}

fn time_operations(authority: &Authority, seconds: f64) -> Result<Floor, Box<dyn std::error::Error>> {
    let ca = authority.ca.key.as_ref();
    // Without an RA the CA decrypts and signs CertReps itself, as the server does.
    let ra: &dyn PrivateKey = authority.ra.as_ref().map_or(ca, |ra| ra.key.as_ref());
    let content_key = crate::scep::envelope::random_bytes(16);
    let encrypted = crate::scep::envelope::encrypt_key(&ra.public_key_spki_der(), &content_key)
        .ok_or("cannot encrypt to the RA's public key")?;
    // Sizes of what the server signs: a leaf's TBSCertificate, a CertRep's signed attributes.
    let tbs_certificate = crate::scep::envelope::random_bytes(900);
    let signed_attributes = crate::scep::envelope::random_bytes(250);
    let round = || -> Result<(), Box<dyn std::error::Error>> {
        let opened = ra.try_decrypt_pkcs1(&encrypted)?.ok_or("the RA key did not decrypt")?;
        if opened != content_key {
            return Err("the RA key decrypted to something else".into());
        }
        ca.sign_sha256(&tbs_certificate)?;
        ra.sign_sha256(&signed_attributes)?;
        Ok(())
    };
    round()?; // warm-up: a token's first session, caches
    let (wall, cpu) = (Instant::now(), thread_cpu_ns());
    let mut rounds = 0u32;
    while rounds < 20 || wall.elapsed().as_secs_f64() < seconds {
        round()?;
        rounds += 1;
    }
    let elapsed_ns = match (cpu, thread_cpu_ns()) {
        (Some(before), Some(after)) => (after - before) as f64,
        _ => wall.elapsed().as_nanos() as f64,
    };
    Ok(Floor {
        ms_per_enrollment: elapsed_ns / 1e6 / f64::from(rounds),
        rounds,
        ca_bits: ca.bits(),
    })
}

/// Nanoseconds this thread has run on a CPU (the first field of /proc/thread-self/schedstat).
/// A token module that does its work on threads of its own would hide it here: SoftHSM2 and
/// the HSMs scepd documents work on the caller's thread.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use scepd_ca::{CaParams, SoftwareKeys};

    #[test]
    fn the_floor_of_a_fresh_rsa_2048_ca_is_three_operations_of_plausible_cost() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        data.init_new(&CaParams::default(), false, &SoftwareKeys).unwrap();
        let floor = measure(dir.path(), None, 0.2).unwrap();
        assert_eq!(floor.ca_bits, 2048);
        assert!(floor.rounds >= 20);
        assert!(floor.ms_per_enrollment > 0.0, "{floor:?}");
    }
}
