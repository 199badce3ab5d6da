//! The CA generations after the original one (`scepd ca rollover`): each in its own
//! subdirectory `DIR/cas/<issuer id>/`, laid out as the data directory's own CA files are, so
//! that loading one is loading a data directory. The original CA stays where `init` put it.

use std::fs;
use std::path::Path;

use scepd_ca::{pem, Authority, CaParams, ImportWarning, IssuerId, KeyBits, KeyGenerator, KeyRole, SoftwareKeys};

use super::{io, DataDir, DataDirError};
use crate::keys::pkcs11::{Token, TokenKeys};
use crate::keys::uri::KeyUri;

/// The subdirectory holding the later CA generations.
pub const GENERATIONS_DIR: &str = "cas";

/// The CA key of a generation whose certificate an external root is signing.
const PENDING_KEY: &str = "ca.key.pending";

/// Where the current CA's key is kept, and so where the next one's is made.
pub enum KeyStoreKind {
    /// A file in the data directory.
    File,
    /// A PKCS#11 token, named by the current key's URI.
    Token(KeyUri),
}

impl DataDir {
    /// The data directory of generation `id` (keys read with the same passphrase or PIN).
    pub fn generation(&self, id: &IssuerId) -> DataDir {
        DataDir {
            root: self.root.join(GENERATIONS_DIR).join(id.to_hex()),
            passphrase: self.passphrase.clone(),
            pkcs11_pin: self.pkcs11_pin.clone(),
        }
    }

    /// The generations whose CA certificate is installed here, by directory name.
    pub fn generation_ids(&self) -> Vec<IssuerId> {
        let Ok(entries) = fs::read_dir(self.path(GENERATIONS_DIR)) else {
            return Vec::new();
        };
        let mut ids: Vec<IssuerId> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|id| self.generation(id).is_initialized())
            .collect();
        ids.sort();
        ids
    }

    /// Where the original CA's key is kept.
    pub fn key_store_kind(&self) -> Result<KeyStoreKind, DataDirError> {
        let reference = self.path("ca.key.uri");
        if !reference.exists() {
            return Ok(KeyStoreKind::File);
        }
        let text = self.read("ca.key.uri")?;
        KeyUri::parse(text.trim())
            .map(KeyStoreKind::Token)
            .map_err(|e| DataDirError::Invalid(format!("{}: {e}", reference.display())))
    }

    /// Makes keys where the current CA's key is: in the same token (found by the label its
    /// URI names, in `module` unless the URI names its own), or in this process.
    pub fn next_key_generator(&self, module: Option<&Path>) -> Result<Box<dyn KeyGenerator>, DataDirError> {
        match self.key_store_kind()? {
            KeyStoreKind::File => Ok(Box::new(SoftwareKeys)),
            KeyStoreKind::Token(uri) => {
                let module = uri.module_path.as_deref().or(module).ok_or_else(|| {
                    DataDirError::Invalid(format!(
                        "{} names no module-path: give --pkcs11-module",
                        self.path("ca.key.uri").display()
                    ))
                })?;
                let pin = self.pkcs11_pin.as_deref().map(String::as_str);
                Ok(Box::new(TokenKeys {
                    token: Token::open(module, &uri.token, pin)?,
                }))
            }
        }
    }

    /// A new self-signed next CA (and RA unless `params.with_ra` is false), keys from `keys`,
    /// written to its own generation directory.
    pub fn rollover_new(
        &self,
        params: &CaParams,
        keys: &dyn KeyGenerator,
    ) -> Result<(IssuerId, Authority), DataDirError> {
        self.require_initialized()?;
        let authority = Authority::create_with(params, keys)?;
        let id = IssuerId::of(&authority.ca.cert);
        let generation = self.generation(&id);
        generation.ensure_root()?;
        generation.save_generation(&authority)?;
        Ok((id, authority))
    }

    /// Step one of an externally signed next CA: its key (from `keys`) and a CSR for the root.
    pub fn rollover_csr(
        &self,
        subject: &str,
        bits: KeyBits,
        keys: &dyn KeyGenerator,
    ) -> Result<(IssuerId, Vec<u8>), DataDirError> {
        self.require_initialized()?;
        let key = keys.generate(KeyRole::Ca, bits)?;
        let id = IssuerId::of_spki_der(&key.public_key_spki_der())?;
        let csr = scepd_ca::request::ca_csr(&scepd_ca::name::parse(subject)?, key.as_ref())?;
        let generation = self.generation(&id);
        generation.ensure_root()?;
        generation.save_key(PENDING_KEY, key.as_ref())?;
        Ok((id, csr))
    }

    /// Step two: the certificate the root signed for a pending key, with the chain above it;
    /// the RA key (unless `with_ra` is false) comes from `keys`.
    pub fn install_next_cert(
        &self,
        cert_pem: &str,
        chain_pem: Option<&str>,
        with_ra: bool,
        keys: &dyn KeyGenerator,
    ) -> Result<(IssuerId, Authority, Vec<ImportWarning>), DataDirError> {
        self.require_initialized()?;
        let cert = pem::certificates(cert_pem)?
            .into_iter()
            .next()
            .ok_or_else(|| DataDirError::Invalid("no CERTIFICATE in the signed certificate file".into()))?;
        let parsed = <scepd_ca::Certificate as der::Decode>::from_der(&cert).map_err(scepd_ca::CaError::from)?;
        let id = IssuerId::of(&parsed);
        let generation = self.generation(&id);
        let pending = [PENDING_KEY.to_string(), format!("{PENDING_KEY}.uri")];
        if generation.is_initialized() {
            return Err(DataDirError::AlreadyInitialized(generation.root.clone()));
        }
        if !pending.iter().any(|p| generation.path(p).exists()) {
            return Err(DataDirError::Invalid(
                "no key of `scepd ca rollover --ca-csr` matches this certificate's public key".into(),
            ));
        }
        let key = generation.load_key(PENDING_KEY)?;
        let chain = chain_pem.map(pem::certificates).transpose()?.unwrap_or_default();
        let (authority, warnings) = Authority::import(&cert, key, chain, with_ra, keys)?;
        generation.save_generation(&authority)?;
        for p in pending.iter().map(|p| generation.path(p)).filter(|p| p.exists()) {
            fs::remove_file(&p).map_err(io(&p))?;
        }
        Ok((id, authority, warnings))
    }

    /// A generation's files, ca.pem last (it marks the generation installed).
    fn save_generation(&self, authority: &Authority) -> Result<(), DataDirError> {
        self.save_identities(authority)?;
        self.write_public("ca.pem", &pem::encode("CERTIFICATE", &authority.ca.der))
    }

    fn require_initialized(&self) -> Result<(), DataDirError> {
        if !self.is_initialized() {
            return Err(DataDirError::NotInitialized(self.root.clone()));
        }
        Ok(())
    }

    /// Creates the directory (0700) a file of a backup goes into, when it is a generation's.
    pub fn ensure_parent(&self, file: &str) -> Result<(), DataDirError> {
        let Some((dir, _)) = file.rsplit_once('/') else {
            return Ok(());
        };
        let path = self.path(dir);
        fs::create_dir_all(&path).map_err(io(&path))?;
        for p in [self.path(GENERATIONS_DIR), path] {
            fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o700)).map_err(io(&p))?;
        }
        Ok(())
    }

    /// The files of every generation, relative to the data directory (for backups).
    pub fn generation_files(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.path(GENERATIONS_DIR)) else {
            return Vec::new();
        };
        let mut files = Vec::new();
        for dir in entries.filter_map(Result::ok) {
            let Some(name) = dir.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name.parse::<IssuerId>().is_err() {
                continue;
            }
            let Ok(inner) = fs::read_dir(dir.path()) else {
                continue;
            };
            for file in inner.filter_map(Result::ok) {
                if let Some(f) = file.file_name().to_str().filter(|f| !f.ends_with(".tmp")) {
                    files.push(format!("{GENERATIONS_DIR}/{name}/{f}"));
                }
            }
        }
        files.sort();
        files
    }
}
