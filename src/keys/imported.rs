//! Keys named at `scepd init` rather than made there: a key already in a token (an RFC 7512
//! URI) or in a PEM file, given for one role while the keys of the other roles are still made.

use std::path::Path;
use std::sync::Mutex;

use scepd_ca::{CaError, KeyBits, KeyGenerator, KeyRole, PrivateKey, RsaKey};

use super::pkcs11::open_key;
use super::uri::KeyUri;

/// Opens the key `spec` names: a `pkcs11:` URI (with `module` and `pin` when the URI does not
/// name its own), or else the path of a PEM private key (PKCS#8 or PKCS#1).
pub fn open_private_key(
    spec: &Path,
    module: Option<&Path>,
    pin: Option<&str>,
) -> Result<Box<dyn PrivateKey>, Box<dyn std::error::Error>> {
    match spec.to_str().filter(|s| KeyUri::is_uri(s)) {
        Some(uri) => Ok(Box::new(open_key(&KeyUri::parse(uri)?, module, pin)?)),
        None => {
            let pem = std::fs::read_to_string(spec).map_err(|e| format!("{}: {e}", spec.display()))?;
            Ok(Box::new(RsaKey::from_pem(&pem)?))
        }
    }
}

/// Hands out the imported key for its role, once, and makes the others with `generator`.
pub struct ImportedKeys<'a> {
    generator: &'a dyn KeyGenerator,
    imported: Mutex<Vec<(KeyRole, Box<dyn PrivateKey>)>>,
}

impl<'a> ImportedKeys<'a> {
    /// `imported` keys stand in for new ones of their role.
    pub fn new(generator: &'a dyn KeyGenerator, imported: Vec<(KeyRole, Box<dyn PrivateKey>)>) -> Self {
        ImportedKeys {
            generator,
            imported: Mutex::new(imported),
        }
    }
}

impl KeyGenerator for ImportedKeys<'_> {
    fn generate(&self, role: KeyRole, bits: KeyBits) -> Result<Box<dyn PrivateKey>, CaError> {
        let mut imported = self.imported.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match imported.iter().position(|(r, _)| *r == role) {
            Some(i) => Ok(imported.swap_remove(i).1),
            None => self.generator.generate(role, bits),
        }
    }
}
