//! Running the `openssl` command line in a scratch directory, and the CA the tests share.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use der::{Decode, Encode};
use scepd_ca::{Authority, CaParams, KeyBits, LeafRequest, Okta, RsaKey, Serial};
use spki::SubjectPublicKeyInfoOwned;

/// A scratch directory to write DER/PEM into and run `openssl` in.
pub struct Openssl {
    dir: tempfile::TempDir,
}

impl Openssl {
    /// Panics when there is no `openssl` command: these tests exist to compare with it.
    pub fn new() -> Openssl {
        match Command::new("openssl").arg("version").output() {
            Ok(out) if out.status.success() => {}
            _ => panic!("the `openssl` command line is needed by these tests (apt-get install openssl)"),
        }
        Openssl {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).expect("write");
        path
    }

    /// Writes a DER certificate as PEM.
    pub fn write_cert(&self, name: &str, der: &[u8]) -> PathBuf {
        self.write(name, scepd_ca::pem::encode("CERTIFICATE", der))
    }

    /// Runs `openssl ARGS` in the scratch directory.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run openssl")
    }

    /// Runs `openssl ARGS`, which must succeed; returns what it printed (stdout, then stderr).
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let text = printed(&out);
        assert!(out.status.success(), "openssl {} failed:\n{text}", args.join(" "));
        text
    }

    /// Runs `openssl ARGS`, which must fail; returns what it printed.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let text = printed(&out);
        assert!(!out.status.success(), "openssl {} succeeded:\n{text}", args.join(" "));
        text
    }

    /// `openssl x509 -noout ARGS -in FILE`.
    pub fn x509(&self, file: &Path, args: &[&str]) -> String {
        let mut all = vec!["x509", "-noout", "-nameopt", "RFC2253", "-in", file.to_str().unwrap()];
        all.extend_from_slice(args);
        self.ok(&all)
    }
}

/// What a run printed: stdout, then stderr.
pub fn printed(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub const CA_SUBJECT: &str = "CN=Test CA,O=scepd tests";
pub const CA_VALIDITY_DAYS: u32 = 30;

/// A new root CA with an RA.
pub fn authority() -> Authority {
    Authority::create(&CaParams {
        subject: scepd_ca::name::parse(CA_SUBJECT).unwrap(),
        key_bits: KeyBits::Rsa2048,
        validity_days: CA_VALIDITY_DAYS,
        with_ra: true,
    })
    .unwrap()
}

/// A client certificate (DER) with the given serial, CN and validity and no URLs, and its key.
pub fn leaf(authority: &Authority, serial: Serial, cn: &str, validity_days: u32) -> (Vec<u8>, RsaKey) {
    let key = RsaKey::generate(KeyBits::Rsa2048).unwrap();
    let cert = authority
        .issue(&LeafRequest {
            serial,
            subject: scepd_ca::name::parse(&format!("CN={cn}")).unwrap(),
            public_key: SubjectPublicKeyInfoOwned::from_der(&key.public_key_spki_der()).unwrap(),
            subject_alt_name: None,
            not_before: scepd_ca::time::unix_now() - 60,
            validity_days,
            crl_url: None,
            ocsp_url: None,
            ca_issuers_url: None,
            okta: Okta::Plain,
        })
        .unwrap();
    (cert.to_der().unwrap(), key)
}

/// Upper-case hex without separators, as `openssl x509 -serial` prints a serial.
pub fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// An X.509 time as OpenSSL prints it (`Dec  2 11:45:00 2026 GMT`).
pub fn openssl_time(unix_seconds: u64) -> String {
    let format =
        time::macros::format_description!("[month repr:short] [day padding:space] [hour]:[minute]:[second] [year] GMT");
    time::OffsetDateTime::from_unix_timestamp(unix_seconds as i64)
        .unwrap()
        .format(&format)
        .unwrap()
}
