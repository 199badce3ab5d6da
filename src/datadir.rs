//! The data directory: where the CA, RA, admin token and store live.
//!
//! ```text
//! DIR/ca.pem  DIR/ca.key     issuing CA certificate and key (key 0600, PKCS#8 PEM)
//! DIR/ca.key.uri             instead of ca.key: the RFC 7512 URI of the key in a PKCS#11 token
//!                            (likewise ra.key.uri, ocsp.key.uri)
//! DIR/ra.pem  DIR/ra.key     RA certificate and key, unless the CA is its own RA
//! DIR/chain.pem              certificates above an imported CA, nearest first (optional)
//! DIR/ocsp.pem DIR/ocsp.key  delegated OCSP signer (optional, `init --ocsp-signer`; key 0600)
//! DIR/ca.key.pending         the CA key of a two-step setup waiting for its certificate
//! DIR/admin.token            bearer token of the admin API (0600)
//! DIR/challenge.key          HMAC key for challenges and MDM passwords (0600)
//! DIR/admin.url              where the running server's admin API listens (for the CLI)
//! DIR/public.url             the public base URL the server last ran with (for `profile odt`)
//! DIR/scepd.redb             the store
//! DIR/cas/<issuer id>/       a CA generation after the original one (`scepd ca rollover`):
//!                            ca.pem, ca.key or ca.key.uri, ra.pem, ra.key or ra.key.uri,
//!                            chain.pem; ca.key.pending while an external root signs it
//! ```

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use der::{Decode, Encode};
use scepd_ca::{pem, Authority, CaParams, Identity, ImportWarning, KeyCustody, KeyGenerator, PrivateKey, RsaKey};

use crate::keys::pkcs11::TokenError;
use crate::keys::uri::KeyUri;
use zeroize::Zeroizing;

/// Where `serve` records its public base URL.
pub const PUBLIC_URL_FILE: &str = "public.url";

mod generations;
pub use generations::{KeyStoreKind, GENERATIONS_DIR};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataDirError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Ca(#[from] scepd_ca::CaError),
    #[error("{0} is readable by group or others; run: chmod 600 {0}")]
    KeyPermissions(PathBuf),
    #[error("{0} already holds a CA; refusing to overwrite it")]
    AlreadyInitialized(PathBuf),
    #[error("{0} has no CA; run `scepd init --data {0}` first")]
    NotInitialized(PathBuf),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Token(#[from] TokenError),
    /// A file the server needs is missing, unreadable or wrong: named, with what to do.
    #[error("{}: {detail}; restore it from a `scepd backup` of this data directory", path.display())]
    Damaged { path: PathBuf, detail: String },
    #[error(
        "{} belongs to uid {owner}, but scepd runs as uid {me}: run scepd as that user (systemd User=), \
         or give it the files (chown -R)",
        path.display()
    )]
    NotOwner { path: PathBuf, owner: u32, me: u32 },
    #[error("{0}")]
    Backup(#[from] crate::backup_manifest::ManifestError),
}

pub struct DataDir {
    root: PathBuf,
    /// Encrypts the private keys at rest (PKCS#8 PBES2) when set.
    /// Cleared when dropped.
    passphrase: Option<Zeroizing<Vec<u8>>>,
    /// The user PIN of the PKCS#11 token(s) holding keys named by `*.key.uri`.
    pkcs11_pin: Option<Zeroizing<String>>,
}

/// The key passphrase: the content of `file` (without its final newline), else the
/// `SCEPD_KEY_PASSPHRASE` environment variable, else none.
pub fn key_passphrase(file: Option<&Path>) -> Result<Option<Vec<u8>>, DataDirError> {
    secret_input(file, "SCEPD_KEY_PASSPHRASE")
}

/// The PKCS#11 user PIN: the content of `file` (without its final newline), else the
/// `SCEPD_PKCS11_PIN` environment variable, else none. Never a flag value: command lines are
/// visible to every user of the machine.
pub fn pkcs11_pin(file: Option<&Path>) -> Result<Option<Zeroizing<String>>, DataDirError> {
    let Some(bytes) = secret_input(file, "SCEPD_PKCS11_PIN")? else {
        return Ok(None);
    };
    String::from_utf8(bytes)
        .map(|pin| Some(Zeroizing::new(pin)))
        .map_err(|_| DataDirError::Invalid("the PKCS#11 PIN is not UTF-8".into()))
}

/// A secret from `file`, else from the environment variable `env`, else none.
fn secret_input(file: Option<&Path>, env: &str) -> Result<Option<Vec<u8>>, DataDirError> {
    if let Some(f) = file {
        return read_secret_file(f).map(Some);
    }
    Ok(std::env::var_os(env).map(|v| std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str()).to_vec()))
}

/// A file holding one secret, without its final newline.
pub fn read_secret_file(file: &Path) -> Result<Vec<u8>, DataDirError> {
    let mut bytes = fs::read(file).map_err(io(file))?;
    while matches!(bytes.last(), Some(b'\n' | b'\r')) {
        bytes.pop();
    }
    Ok(bytes)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir {
            root: root.into(),
            passphrase: None,
            pkcs11_pin: None,
        }
    }

    /// Keys in a PKCS#11 token are opened with this user PIN.
    pub fn with_pkcs11_pin(mut self, pin: Option<Zeroizing<String>>) -> DataDir {
        self.pkcs11_pin = pin;
        self
    }

    /// Private keys are written encrypted with, and read with, `passphrase`.
    pub fn with_passphrase(mut self, passphrase: Option<Vec<u8>>) -> DataDir {
        self.passphrase = passphrase.filter(|p| !p.is_empty()).map(Zeroizing::new);
        self
    }

    /// A private key as stored: encrypted PKCS#8 when a passphrase is set.
    fn key_pem(&self, key: &RsaKey) -> Result<String, DataDirError> {
        match &self.passphrase {
            Some(p) => Ok(key.to_encrypted_pkcs8_pem(p)?),
            None => Ok(key.to_pkcs8_pem()),
        }
    }

    fn read_key(&self, name: &str) -> Result<RsaKey, DataDirError> {
        Ok(RsaKey::from_pem_with_passphrase(
            &self.read_secret(name)?,
            self.passphrase.as_deref().map(Vec::as_slice),
        )?)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub fn store_path(&self) -> PathBuf {
        self.path("scepd.redb")
    }

    pub fn is_initialized(&self) -> bool {
        self.path("ca.pem").exists()
    }

    fn ensure_root(&self) -> Result<(), DataDirError> {
        fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700)).map_err(io(&self.root))
    }

    fn read(&self, name: &str) -> Result<String, DataDirError> {
        let p = self.path(name);
        fs::read_to_string(&p).map_err(io(&p))
    }

    fn write_public(&self, name: &str, contents: &str) -> Result<(), DataDirError> {
        write_file(&self.path(name), contents.as_bytes(), 0o644)
    }

    /// Secrets are created 0600 from the start (never briefly world-readable).
    pub fn write_secret(&self, name: &str, contents: &[u8]) -> Result<(), DataDirError> {
        write_file(&self.path(name), contents, 0o600)
    }

    /// Records the public base URL the server runs with (0600, like every file scepd writes
    /// that is not a certificate), so that `scepd profile odt` can name it when no server answers.
    pub fn record_public_url(&self, url: &str) -> Result<(), DataDirError> {
        self.write_secret(PUBLIC_URL_FILE, url.as_bytes())
    }

    /// The public base URL the server last ran with, if it ever ran here.
    pub fn recorded_public_url(&self) -> Option<String> {
        let url = self.read(PUBLIC_URL_FILE).ok()?;
        Some(url.trim().to_string()).filter(|u| !u.is_empty())
    }

    /// Reads a secret, refusing one that group or others can read.
    pub fn read_secret(&self, name: &str) -> Result<String, DataDirError> {
        let p = self.path(name);
        let meta = fs::metadata(&p).map_err(io(&p))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(DataDirError::KeyPermissions(p));
        }
        self.read(name)
    }

    /// A new CA (and RA unless `params.with_ra` is false) with keys made by `keys`, plus the
    /// admin token.
    pub fn init_new(
        &self,
        params: &CaParams,
        ocsp_signer: bool,
        keys: &dyn KeyGenerator,
    ) -> Result<Authority, DataDirError> {
        self.refuse_if_initialized()?;
        self.ensure_root()?;
        let mut authority = Authority::create_with(params, keys)?;
        if ocsp_signer {
            authority.ocsp_signer = Some(authority.new_ocsp_signer_with(keys)?);
        }
        self.save(&authority)?;
        Ok(authority)
    }

    /// An imported CA certificate and key (and the chain above it); the RA and OCSP signer
    /// keys, when made, come from `keys`.
    pub fn init_import(
        &self,
        cert_pem: &str,
        key: Box<dyn PrivateKey>,
        chain_pem: Option<&str>,
        (with_ra, ocsp_signer): (bool, bool),
        keys: &dyn KeyGenerator,
    ) -> Result<(Authority, Vec<ImportWarning>), DataDirError> {
        self.refuse_if_initialized()?;
        let cert = pem::certificates(cert_pem)?
            .into_iter()
            .next()
            .ok_or_else(|| DataDirError::Invalid("no CERTIFICATE in the CA certificate file".into()))?;
        let chain = chain_pem.map(pem::certificates).transpose()?.unwrap_or_default();
        let (mut authority, warnings) = Authority::import(&cert, key, chain, with_ra, keys)?;
        if ocsp_signer {
            authority.ocsp_signer = Some(authority.new_ocsp_signer_with(keys)?);
        }
        self.ensure_root()?;
        self.save(&authority)?;
        Ok((authority, warnings))
    }

    /// Step one of a delegated CA: a key and a CSR for an external root to sign.
    pub fn init_csr(&self, subject: &str, bits: scepd_ca::KeyBits) -> Result<Vec<u8>, DataDirError> {
        self.refuse_if_initialized()?;
        self.ensure_root()?;
        let key = RsaKey::generate(bits)?;
        let csr = scepd_ca::request::ca_csr(&scepd_ca::name::parse(subject)?, &key)?;
        self.write_secret("ca.key.pending", self.key_pem(&key)?.as_bytes())?;
        Ok(csr)
    }

    /// Step two: the signed CA certificate for the pending key.
    pub fn install_cert(
        &self,
        cert_pem: &str,
        chain_pem: Option<&str>,
        with_ra: bool,
        ocsp_signer: bool,
    ) -> Result<(Authority, Vec<ImportWarning>), DataDirError> {
        let key = Box::new(self.read_key("ca.key.pending")?);
        let result = self.init_import(
            cert_pem,
            key,
            chain_pem,
            (with_ra, ocsp_signer),
            &scepd_ca::SoftwareKeys,
        )?;
        let pending = self.path("ca.key.pending");
        fs::remove_file(&pending).map_err(io(&pending))?;
        Ok(result)
    }

    fn refuse_if_initialized(&self) -> Result<(), DataDirError> {
        if self.is_initialized() {
            return Err(DataDirError::AlreadyInitialized(self.root.clone()));
        }
        Ok(())
    }

    fn save(&self, authority: &Authority) -> Result<(), DataDirError> {
        self.save_identities(authority)?;
        if !self.path("admin.token").exists() {
            self.write_secret("admin.token", new_token().as_bytes())?;
        }
        self.challenge_key()?;
        // ca.pem last: its presence marks the directory as initialized.
        self.write_public("ca.pem", &pem::encode("CERTIFICATE", &authority.ca.der))
    }

    /// The keys (or their references) and certificates of `authority`, except ca.pem.
    fn save_identities(&self, authority: &Authority) -> Result<(), DataDirError> {
        self.save_key("ca.key", authority.ca.key.as_ref())?;
        if let Some(ra) = &authority.ra {
            self.save_key("ra.key", ra.key.as_ref())?;
            self.write_public("ra.pem", &pem::encode("CERTIFICATE", &ra.der))?;
        }
        if let Some(ocsp) = &authority.ocsp_signer {
            self.save_key("ocsp.key", ocsp.key.as_ref())?;
            self.write_public("ocsp.pem", &pem::encode("CERTIFICATE", &ocsp.der))?;
        }
        if !authority.chain.is_empty() {
            let chain: String = authority.chain.iter().map(|c| pem::encode("CERTIFICATE", c)).collect();
            self.write_public("chain.pem", &chain)?;
        }
        Ok(())
    }

    /// A key as the directory keeps it: the key itself in `name`, or where it is in `name.uri`.
    fn save_key(&self, name: &str, key: &dyn PrivateKey) -> Result<(), DataDirError> {
        match key.custody() {
            KeyCustody::Software(key) => self.write_secret(name, self.key_pem(key)?.as_bytes()),
            KeyCustody::Reference(uri) => self.write_secret(&format!("{name}.uri"), format!("{uri}\n").as_bytes()),
            _ => Err(DataDirError::Invalid(format!("{name}: a key kept in an unknown way"))),
        }
    }

    /// The key saved as `name` (a file) or `name.uri` (a token).
    fn load_key(&self, name: &str) -> Result<Box<dyn PrivateKey>, DataDirError> {
        let reference = format!("{name}.uri");
        if !self.path(&reference).exists() {
            return Ok(Box::new(self.read_key(name)?));
        }
        let uri = KeyUri::parse(self.read(&reference)?.trim())
            .map_err(|e| DataDirError::Invalid(format!("{}: {e}", self.path(&reference).display())))?;
        let pin = self.pkcs11_pin.as_deref().map(String::as_str);
        Ok(Box::new(crate::keys::pkcs11::open_key(&uri, None, pin)?))
    }

    /// Loads the CA, the RA (if any) and the chain. Keys must be 0600. An error names the file
    /// and what to do.
    pub fn load(&self) -> Result<Authority, DataDirError> {
        if !self.is_initialized() {
            return Err(DataDirError::NotInitialized(self.root.clone()));
        }
        let ca = self.identity("ca.pem", "ca.key")?;
        scepd_ca::check_ca_certificate(&ca.cert, ca.key.as_ref()).map_err(|e| self.damaged("ca.pem", e))?;
        let ra = if self.path("ra.pem").exists() {
            Some(self.identity("ra.pem", "ra.key")?)
        } else {
            None
        };
        let chain = if self.path("chain.pem").exists() {
            pem::certificates(&self.read("chain.pem")?).map_err(|e| self.damaged("chain.pem", e))?
        } else {
            Vec::new()
        };
        let ocsp_signer = if self.path("ocsp.pem").exists() {
            Some(self.identity("ocsp.pem", "ocsp.key")?)
        } else {
            None
        };
        Ok(Authority {
            ca,
            ra,
            chain,
            ocsp_signer,
        })
    }

    /// The CA certificate and the chain above it (DER), without the keys.
    pub fn load_certificates(&self) -> Result<(Vec<u8>, Vec<Vec<u8>>), DataDirError> {
        if !self.is_initialized() {
            return Err(DataDirError::NotInitialized(self.root.clone()));
        }
        let ca = pem::certificates(&self.read("ca.pem")?)?
            .into_iter()
            .next()
            .ok_or_else(|| DataDirError::Invalid("ca.pem holds no certificate".into()))?;
        let chain = if self.path("chain.pem").exists() {
            pem::certificates(&self.read("chain.pem")?)?
        } else {
            Vec::new()
        };
        Ok((ca, chain))
    }

    fn identity(&self, cert_file: &str, key_file: &str) -> Result<Identity, DataDirError> {
        let der = pem::certificates(&self.read(cert_file).map_err(|e| self.needed(cert_file, e))?)
            .map_err(|e| self.damaged(cert_file, e))?
            .into_iter()
            .next()
            .ok_or_else(|| self.damaged(cert_file, "no certificate in it"))?;
        let cert = scepd_ca::Certificate::from_der(&der).map_err(|e| self.damaged(cert_file, e))?;
        let key = self.load_key(key_file).map_err(|e| self.needed(key_file, e))?;
        if cert
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(scepd_ca::CaError::from)?
            != key.public_key_spki_der()
        {
            let key_path = self.path(key_file);
            return Err(self.damaged(
                cert_file,
                format!("the certificate does not match the private key {}", key_path.display()),
            ));
        }
        Ok(Identity { cert, der, key })
    }

    /// An error reading `name`, a file the server cannot start without: missing, unreadable or
    /// undecodable means damaged (a wrong mode keeps its own message, which says what to do).
    fn needed(&self, name: &str, error: DataDirError) -> DataDirError {
        match error {
            DataDirError::Io { path, source } => DataDirError::Damaged {
                path,
                detail: source.to_string(),
            },
            DataDirError::Ca(e) => self.damaged(name, e),
            other => other,
        }
    }

    fn damaged(&self, name: &str, detail: impl std::fmt::Display) -> DataDirError {
        DataDirError::Damaged {
            path: self.path(name),
            detail: detail.to_string(),
        }
    }

    /// The directory and the files the server uses must belong to the user it runs as:
    /// otherwise it fails later, half-way (a root-run restore leaves files the service user
    /// cannot read; a directory of another user can be changed behind the CA's back). The
    /// directory may also belong to root: a volume mounted there (Kubernetes `fsGroup`) does.
    pub fn check_owner(&self) -> Result<(), DataDirError> {
        use std::os::unix::fs::MetadataExt;
        // /proc/self belongs to the process's effective user: no libc call needed.
        let me = fs::metadata("/proc/self").map_err(io(Path::new("/proc/self")))?.uid();
        let mut names = self.backup_files();
        names.push("scepd.redb");
        let paths = std::iter::once(self.root.clone()).chain(names.into_iter().map(|n| self.path(n)));
        for path in paths {
            let owner = match fs::metadata(&path) {
                Ok(meta) => meta.uid(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(DataDirError::Io { path, source }),
            };
            if owner != me && !(owner == 0 && path == self.root) {
                return Err(DataDirError::NotOwner { path, owner, me });
            }
        }
        Ok(())
    }

    /// The challenge key, created on first use (data directories from before it existed).
    pub fn challenge_key(&self) -> Result<crate::challenge::key::ChallengeKey, DataDirError> {
        if !self.path("challenge.key").exists() {
            self.write_secret(
                "challenge.key",
                crate::challenge::key::ChallengeKey::generate_secret().as_bytes(),
            )?;
        }
        let hex_secret = self.read_secret("challenge.key")?;
        let secret =
            hex::decode(hex_secret.trim()).map_err(|_| DataDirError::Invalid("challenge.key is not hex".into()))?;
        Ok(crate::challenge::key::ChallengeKey::new(&secret))
    }

    /// The files a backup carries besides the store (those that exist).
    pub fn backup_files(&self) -> Vec<&'static str> {
        [
            "ca.pem",
            "ca.key",
            "ca.key.uri",
            "ra.pem",
            "ra.key",
            "ra.key.uri",
            "chain.pem",
            "ocsp.pem",
            "ocsp.key",
            "ocsp.key.uri",
            "admin.token",
            "challenge.key",
        ]
        .into_iter()
        .filter(|f| self.path(f).exists())
        .collect()
    }

    /// Copies the backup `from` into this (empty) directory, keeping the files' modes, once
    /// every file matches the backup's checksums. `Ok(false)`: the backup has no checksums
    /// (made before they existed), so it was restored unchecked.
    pub fn restore_from(&self, from: &DataDir) -> Result<bool, DataDirError> {
        self.refuse_if_initialized()?;
        if !from.path("ca.pem").exists() || !from.path("scepd.redb").exists() {
            return Err(DataDirError::Invalid(format!(
                "{} is not a scepd backup",
                from.root.display()
            )));
        }
        // The later CA generations (`cas/<issuer id>/…`) go with the original CA.
        let generations = from.generation_files();
        let mut files = from.backup_files();
        files.push("scepd.redb");
        files.extend(generations.iter().map(String::as_str));
        let checked = crate::backup_manifest::verify(&from.root, &files)?;
        self.ensure_root()?;
        // ca.pem last: it marks the directory initialized.
        files.sort_by_key(|f| *f == "ca.pem");
        for f in files {
            self.ensure_parent(f)?;
            let mode = fs::metadata(from.path(f))
                .map_err(io(&from.path(f)))?
                .permissions()
                .mode()
                & 0o777;
            let data = fs::read(from.path(f)).map_err(io(&from.path(f)))?;
            write_file(&self.path(f), &data, mode)?;
        }
        Ok(checked)
    }

    pub fn admin_token(&self) -> Result<String, DataDirError> {
        Ok(self.read_secret("admin.token")?.trim().to_string())
    }
}

/// 32 random bytes as hex: an admin token.
pub fn new_token() -> String {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b).expect("system RNG");
    hex::encode(b)
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), DataDirError> {
    // Write to a temporary file and rename, so a crash never leaves half a key behind.
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(contents).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}
