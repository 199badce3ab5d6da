//! `scepd bench-fill`: fills a data directory's store with N certificate records (M of them
//! revoked) through the Store trait, for the scale benchmarks. Not for production data.

use clap::Args;
use der::Encode;
use scepd_ca::{LeafRequest, Okta, Serial};

use crate::datadir::DataDir;
use crate::store::{CertRecord, Issuance, RedbStore, Store};

#[derive(Args, Debug)]
pub struct FillArgs {
    #[arg(long)]
    pub data: std::path::PathBuf,
    #[arg(long, default_value_t = 1_000_000)]
    pub certificates: u64,
    #[arg(long, default_value_t = 100_000)]
    pub revoked: u64,
    /// Certificates per device.
    #[arg(long, default_value_t = 10)]
    pub per_device: u64,
}

pub fn fill(args: &FillArgs) -> Result<(), Box<dyn std::error::Error>> {
    let dir = DataDir::new(&args.data).with_passphrase(crate::datadir::key_passphrase(None)?);
    let authority = dir.load()?;
    let store = RedbStore::open(&dir.store_path())?;
    // One real certificate's DER stands for all (the records and indexes are what scale).
    let key = scepd_ca::RsaKey::generate(scepd_ca::KeyBits::Rsa2048)?;
    let now = scepd_ca::time::unix_now();
    let der = authority
        .issue(&LeafRequest {
            serial: Serial::fresh(),
            subject: scepd_ca::name::parse("CN=fill")?,
            public_key: der::Decode::from_der(&key.public_key_spki_der())?,
            subject_alt_name: None,
            not_before: now,
            validity_days: 365,
            crl_url: None,
            ocsp_url: None,
            ca_issuers_url: None,
            okta: Okta::Plain,
        })?
        .to_der()?;
    let started = std::time::Instant::now();
    let mut done = 0u64;
    while done < args.certificates {
        let batch: Vec<Issuance> = (done..(done + 1000).min(args.certificates))
            .map(|i| {
                let serial = Serial::fresh();
                Issuance {
                    serial,
                    record: CertRecord {
                        device_id: Some(format!("fill-device-{}", i / args.per_device)),
                        transaction_id: format!("fill-{i}"),
                        ..CertRecord::issued(
                            &serial,
                            format!("CN=fill-device-{}", i / args.per_device),
                            now,
                            now + 365 * 86_400,
                            now,
                        )
                    },
                    der: der.clone(),
                    redeems: None,
                    supersede: crate::store::Supersede::Nothing,
                }
            })
            .collect();
        done += batch.len() as u64;
        store.record_issuances(&batch)?;
        if done.is_multiple_of(100_000) {
            eprintln!("{done} certificates ({:.0} s)", started.elapsed().as_secs_f64());
        }
    }
    let devices_to_revoke = args.revoked.div_ceil(args.per_device);
    for d in 0..devices_to_revoke {
        store.revoke_device(&format!("fill-device-{d}"), scepd_ca::Reason::KEY_COMPROMISE, now)?;
    }
    eprintln!(
        "{} certificates, {} revoked, in {:.0} s",
        args.certificates,
        devices_to_revoke * args.per_device,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
