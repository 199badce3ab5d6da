//! Private keys in a PKCS#11 token (an HSM; SoftHSM2 in the tests), through `cryptoki`.
//!
//! A PKCS#11 module is initialized once per process and a login is per token per application,
//! so the open modules and tokens are process-wide: every key of one token shares one pool of
//! logged-in sessions. Sessions are not `Sync`: an operation takes one out of the pool, uses it
//! alone and puts it back, so concurrent signatures run on concurrent sessions. A session the
//! token has invalidated (token removed, reset) is dropped with the whole idle pool, and the next
//! operation opens and logs in a fresh one: service resumes by itself when the token is back.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};

use cryptoki::context::Function;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use scepd_ca::{CaError, KeyBits, KeyCustody, KeyGenerator, KeyRole, PrivateKey, SignatureHash};

use super::uri::{KeyUri, UriError};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    #[error("PKCS#11 module {module} cannot be loaded: {reason}")]
    Module { module: PathBuf, reason: String },
    #[error("PKCS#11 module {module} has no token labelled {label:?} (tokens present: {present})")]
    TokenAbsent {
        module: PathBuf,
        label: String,
        present: String,
    },
    #[error("PKCS#11 token {label:?} (module {module}): login refused: {reason}")]
    Login {
        module: PathBuf,
        label: String,
        reason: String,
    },
    #[error("PKCS#11 token {label:?} (module {module}) needs its user PIN: give --pkcs11-pin-file FILE or set SCEPD_PKCS11_PIN")]
    NoPin { module: PathBuf, label: String },
    #[error("{uri}: no such private key in token {label:?} (module {module})")]
    KeyNotFound {
        uri: String,
        label: String,
        module: PathBuf,
    },
    #[error("{uri}: {count} private keys match; add id=… to the URI")]
    KeyAmbiguous { uri: String, count: usize },
    #[error("{uri}: names no PKCS#11 module: add ?module-path=… to the URI or give --pkcs11-module")]
    NoModule { uri: String },
    #[error("{0}")]
    Uri(#[from] UriError),
    #[error("PKCS#11 token {label:?} (module {module}): {operation}: {source}")]
    Operation {
        module: PathBuf,
        label: String,
        operation: &'static str,
        source: CkError,
    },
    #[error("{0}")]
    Ca(#[from] CaError),
}

/// The modules loaded and initialized in this process, by path.
fn modules() -> &'static Mutex<HashMap<PathBuf, Pkcs11>> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    MODULES.get_or_init(Default::default)
}

/// The tokens opened in this process, by module and label.
type OpenTokens = Mutex<HashMap<(PathBuf, String), Arc<Token>>>;

fn tokens() -> &'static OpenTokens {
    static TOKENS: OnceLock<OpenTokens> = OnceLock::new();
    TOKENS.get_or_init(Default::default)
}

fn module(path: &Path) -> Result<Pkcs11, TokenError> {
    let mut modules = modules().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(ctx) = modules.get(path) {
        return Ok(ctx.clone());
    }
    let failed = |reason: String| TokenError::Module {
        module: path.to_path_buf(),
        reason,
    };
    if !path.exists() {
        return Err(failed("no such file".into()));
    }
    let ctx = Pkcs11::new(path).map_err(|e| failed(e.to_string()))?;
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(|e| failed(e.to_string()))?;
    modules.insert(path.to_path_buf(), ctx.clone());
    Ok(ctx)
}

/// How many sessions a token may have open at once: one per core for SCEP's private-key work
/// (its further permits only wait for the disk's commit; past this they wait for a session),
/// half as many for OCSP, plus the CRL signer and `/readyz`.
pub fn default_sessions() -> usize {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    cores + (cores / 2).max(1) + 2
}

/// A logged-in token and its pool of sessions.
pub struct Token {
    module: PathBuf,
    label: String,
    ctx: Pkcs11,
    /// Looked up again by label when the token comes back (it may come back in another slot).
    slot: Mutex<Slot>,
    pin: AuthPin,
    pool: Mutex<Pool>,
    returned: Condvar,
    max_sessions: usize,
    /// Held (shared) by every operation, and exclusively while the module is restarted, so that
    /// no call is inside the module when it is finalized.
    in_module: RwLock<()>,
    /// How many times the module was restarted: object handles from an earlier generation may
    /// name another object now (SoftHSM2 numbers them anew), so they are looked up again.
    generation: AtomicU64,
}

#[derive(Default)]
struct Pool {
    idle: Vec<Session>,
    /// Sessions open, idle or in use.
    open: usize,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({:?} in {})", self.label, self.module.display())
    }
}

impl Token {
    /// Opens (or finds, when this process already has) the token labelled `label` in `module`,
    /// logging in with `pin` now so that a wrong PIN fails at start-up, not at the first request.
    pub fn open(module_path: &Path, label: &str, pin: Option<&str>) -> Result<Arc<Token>, TokenError> {
        let key = (module_path.to_path_buf(), label.to_string());
        if let Some(token) = tokens().lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(token.clone());
        }
        let ctx = module(module_path)?;
        let slot = find_slot(&ctx, module_path, label)?;
        let pin = pin.ok_or_else(|| TokenError::NoPin {
            module: module_path.to_path_buf(),
            label: label.to_string(),
        })?;
        let token = Arc::new(Token {
            module: module_path.to_path_buf(),
            label: label.to_string(),
            ctx,
            slot: Mutex::new(slot),
            pin: AuthPin::from(pin.to_string()),
            pool: Mutex::new(Pool::default()),
            returned: Condvar::new(),
            max_sessions: default_sessions(),
            in_module: RwLock::new(()),
            generation: AtomicU64::new(0),
        });
        let session = token.new_session().map_err(|e| match e {
            CkError::Pkcs11(rv, _) => TokenError::Login {
                module: token.module.clone(),
                label: token.label.clone(),
                reason: login_reason(rv),
            },
            other => token.failed("open a session", other),
        })?;
        {
            let mut pool = token.lock();
            pool.open += 1;
            pool.idle.push(session);
        }
        tokens()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, token.clone());
        Ok(token)
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn module(&self) -> &Path {
        &self.module
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn failed(&self, operation: &'static str, source: CkError) -> TokenError {
        TokenError::Operation {
            module: self.module.clone(),
            label: self.label.clone(),
            operation,
            source,
        }
    }

    /// A read-write session (key generation needs one), logged in. The login is shared by
    /// every session of this process, so it is only "already logged in" after the first.
    fn new_session(&self) -> Result<Session, CkError> {
        match self.open_logged_in() {
            Err(e) if session_lost(&e) => {
                // The token went away and may be back, in another slot: find it by its label.
                if let Ok(slot) = find_slot(&self.ctx, &self.module, &self.label) {
                    *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = slot;
                }
                self.open_logged_in()
            }
            other => other,
        }
    }

    fn open_logged_in(&self) -> Result<Session, CkError> {
        let slot = *self.slot.lock().unwrap_or_else(|e| e.into_inner());
        let session = self.ctx.open_rw_session(slot)?;
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(e) => Err(e),
        }
    }

    /// Runs `operation` on a pooled session. When the token invalidated the session (removed,
    /// reset, logged out), the pool is emptied and the operation runs once more on a fresh one.
    fn with_session<T>(&self, operation: impl Fn(&Session) -> Result<T, CkError>) -> Result<T, CkError> {
        match self.attempt(&operation) {
            Err(e) if session_lost(&e) => match self.attempt(&operation) {
                Err(e) if session_lost(&e) => {
                    self.restart_module();
                    self.attempt(&operation)
                }
                other => other,
            },
            other => other,
        }
    }

    /// SoftHSM2 marks a token whose directory went away invalid for the rest of the module's
    /// life: logins fail with CKR_GENERAL_ERROR even once the files are back. Finalizing and
    /// initializing the module again makes it read the token anew. Done only when this token is
    /// the module's only one in this process, since it ends every session of the module.
    fn restart_module(&self) {
        let only_token = tokens()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .filter(|(module, _)| *module == self.module)
            .count()
            <= 1;
        if !only_token {
            return;
        }
        let _alone = self.in_module.write().unwrap_or_else(|e| e.into_inner());
        {
            let mut pool = self.lock();
            // These sessions end with the module, and the new module may hand out the same
            // handles: closing them later would close someone else's. Forget them instead.
            for session in pool.idle.drain(..) {
                std::mem::forget(session);
            }
            pool.open = 0;
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
        let _ = self.ctx.clone().finalize();
        if let Err(e) = self
            .ctx
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        {
            tracing::warn!(module = %self.module.display(), error = %e, "PKCS#11 module restart failed");
            return;
        }
        if let Ok(slot) = find_slot(&self.ctx, &self.module, &self.label) {
            *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = slot;
        }
    }

    fn attempt<T>(&self, operation: &impl Fn(&Session) -> Result<T, CkError>) -> Result<T, CkError> {
        let _in_module = self.in_module.read().unwrap_or_else(|e| e.into_inner());
        let session = self.checkout()?;
        let result = operation(&session);
        let mut pool = self.lock();
        if matches!(&result, Err(e) if session_lost(e)) {
            // Every session of this token is gone with this one.
            pool.open -= 1 + pool.idle.len();
            pool.idle.clear();
        } else {
            pool.idle.push(session);
        }
        self.returned.notify_one();
        result
    }

    fn checkout(&self) -> Result<Session, CkError> {
        let mut pool = self.lock();
        loop {
            if let Some(session) = pool.idle.pop() {
                return Ok(session);
            }
            if pool.open < self.max_sessions {
                pool.open += 1;
                drop(pool);
                return self.new_session().inspect_err(|_| {
                    self.lock().open -= 1;
                });
            }
            pool = self.returned.wait(pool).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The handle of the one private key `uri` names.
    fn find_private_key(&self, uri: &KeyUri) -> Result<ObjectHandle, TokenError> {
        let mut template = vec![Attribute::Class(ObjectClass::PRIVATE_KEY)];
        if let Some(object) = &uri.object {
            template.push(Attribute::Label(object.as_bytes().to_vec()));
        }
        if let Some(id) = &uri.id {
            template.push(Attribute::Id(id.clone()));
        }
        let found = self
            .with_session(|s| s.find_objects(&template))
            .map_err(|e| self.failed("find the key", e))?;
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(TokenError::KeyNotFound {
                uri: uri.to_string(),
                label: self.label.clone(),
                module: self.module.clone(),
            }),
            many => Err(TokenError::KeyAmbiguous {
                uri: uri.to_string(),
                count: many.len(),
            }),
        }
    }
}

fn find_slot(ctx: &Pkcs11, module: &Path, label: &str) -> Result<Slot, TokenError> {
    let failed = |e: CkError| TokenError::Module {
        module: module.to_path_buf(),
        reason: e.to_string(),
    };
    let mut present = Vec::new();
    for slot in ctx.get_slots_with_token().map_err(failed)? {
        let Ok(info) = ctx.get_token_info(slot) else { continue };
        let name = info.label().trim_end().to_string();
        if name == label {
            return Ok(slot);
        }
        present.push(format!("{name:?}"));
    }
    Err(TokenError::TokenAbsent {
        module: module.to_path_buf(),
        label: label.to_string(),
        present: if present.is_empty() {
            "none".into()
        } else {
            present.join(", ")
        },
    })
}

fn login_reason(rv: RvError) -> String {
    match rv {
        RvError::PinIncorrect => "wrong PIN (CKR_PIN_INCORRECT)".into(),
        RvError::PinLocked => "the PIN is locked (CKR_PIN_LOCKED)".into(),
        RvError::PinLenRange => "the PIN has the wrong length (CKR_PIN_LEN_RANGE)".into(),
        other => other.to_string(),
    }
}

/// Errors after which the session (and every other session of the token) is unusable.
fn session_lost(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::TokenNotPresent
                | RvError::TokenNotRecognized
                | RvError::UserNotLoggedIn
                | RvError::ObjectHandleInvalid
                | RvError::KeyHandleInvalid
                | RvError::SlotIdInvalid
                // A module restart that failed while the token was away leaves it uninitialized.
                | RvError::CryptokiNotInitialized,
            _
        )
    ) || matches!(
        e,
        // SoftHSM2's answer to a login (or a signature) after its token directory went away.
        // Not from a decryption: SoftHSM2 answers bad padding with it too, and a bad ciphertext
        // must take the implicit-rejection path, not reopen the token (nor answer differently).
        CkError::Pkcs11(RvError::GeneralError, function)
            if !matches!(function, Function::Decrypt | Function::DecryptInit)
    )
}

/// A private key that never leaves its token.
pub struct TokenKey {
    token: Arc<Token>,
    uri: KeyUri,
    /// Found again after the token lost it (removed and put back).
    /// With the token's generation it was found in.
    handle: Mutex<(u64, ObjectHandle)>,
    spki: Vec<u8>,
    bits: usize,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenKey({}, {} bits)", self.uri, self.bits)
    }
}

impl TokenKey {
    /// The key `uri` names, in `token`.
    /// The URI recorded is completed with the module path and the key's CKA_ID, so that a
    /// reference given by label alone still names this key, and in this module, after a restart.
    pub fn find(token: Arc<Token>, mut uri: KeyUri) -> Result<TokenKey, TokenError> {
        let generation = token.generation.load(Ordering::SeqCst);
        let handle = token.find_private_key(&uri)?;
        uri.module_path.get_or_insert_with(|| token.module.clone());
        if uri.id.is_none() {
            uri.id = key_id(&token, handle)?;
        }
        let (modulus, exponent) = public_numbers(&token, handle, &uri)?;
        let spki = scepd_ca::rsa_spki_der(&modulus, &exponent)?;
        let bits = modulus.iter().skip_while(|b| **b == 0).count() * 8;
        Ok(TokenKey {
            token,
            uri,
            handle: Mutex::new((generation, handle)),
            spki,
            bits,
        })
    }

    /// The key's RFC 7512 URI, as the data directory records it.
    pub fn uri(&self) -> &KeyUri {
        &self.uri
    }

    fn find_again(&self) -> Result<(u64, ObjectHandle), TokenError> {
        let generation = self.token.generation.load(Ordering::SeqCst);
        let handle = self.token.find_private_key(&self.uri)?;
        let found = (generation, handle);
        *self.handle.lock().unwrap_or_else(|e| e.into_inner()) = found;
        Ok(found)
    }

    fn run<T>(&self, operation: impl Fn(&Session, ObjectHandle) -> Result<T, CkError>) -> Result<T, CkError> {
        let (mut generation, mut handle) = *self.handle.lock().unwrap_or_else(|e| e.into_inner());
        if self.token.generation.load(Ordering::SeqCst) != generation {
            (generation, handle) = self
                .find_again()
                .map_err(|_| CkError::Pkcs11(RvError::KeyHandleInvalid, Function::FindObjects))?;
        }
        let current = |s: &Session, handle| {
            // Checked inside the session's turn, when no restart can happen meanwhile.
            if self.token.generation.load(Ordering::SeqCst) != generation {
                return Err(CkError::Pkcs11(RvError::KeyHandleInvalid, Function::Sign));
            }
            operation(s, handle)
        };
        match self.token.with_session(|s| current(s, handle)) {
            Err(e) if session_lost(&e) => {
                // The token came back with new handles: look the key up again.
                let (_, handle) = self.find_again().map_err(|_| e)?;
                self.token.with_session(|s| operation(s, handle))
            }
            other => other,
        }
    }
}

/// The key's CKA_ID, when it has a non-empty one.
fn key_id(token: &Token, handle: ObjectHandle) -> Result<Option<Vec<u8>>, TokenError> {
    let attributes = token
        .with_session(|s| s.get_attributes(handle, &[AttributeType::Id]))
        .map_err(|e| token.failed("read the key id", e))?;
    Ok(attributes.into_iter().find_map(|a| match a {
        Attribute::Id(id) if !id.is_empty() => Some(id),
        _ => None,
    }))
}

/// The modulus and public exponent: from the private key object, which carries them in every
/// token tried (SoftHSM, YubiHSM), else from the public key with the same CKA_ID.
fn public_numbers(token: &Token, handle: ObjectHandle, uri: &KeyUri) -> Result<(Vec<u8>, Vec<u8>), TokenError> {
    let read = |handle: ObjectHandle| {
        token
            .with_session(|s| s.get_attributes(handle, &[AttributeType::Modulus, AttributeType::PublicExponent]))
            .map_err(|e| token.failed("read the public key", e))
    };
    let numbers = |attributes: Vec<Attribute>| {
        let (mut n, mut e) = (None, None);
        for a in attributes {
            match a {
                Attribute::Modulus(m) => n = Some(m),
                Attribute::PublicExponent(x) => e = Some(x),
                _ => {}
            }
        }
        n.zip(e)
    };
    if let Some(found) = numbers(read(handle)?) {
        return Ok(found);
    }
    let mut template = vec![Attribute::Class(ObjectClass::PUBLIC_KEY)];
    if let Some(id) = &uri.id {
        template.push(Attribute::Id(id.clone()));
    } else if let Some(object) = &uri.object {
        template.push(Attribute::Label(object.as_bytes().to_vec()));
    }
    let public = token
        .with_session(|s| s.find_objects(&template))
        .map_err(|e| token.failed("find the public key", e))?;
    match public.first() {
        Some(h) => numbers(read(*h)?).ok_or_else(|| {
            TokenError::Ca(CaError::KeyRejected(format!(
                "{uri}: the token does not give the public key"
            )))
        }),
        None => Err(TokenError::Ca(CaError::KeyRejected(format!(
            "{uri}: the token gives neither the modulus nor a public key object"
        )))),
    }
}

impl PrivateKey for TokenKey {
    fn bits(&self) -> usize {
        self.bits
    }

    fn public_key_spki_der(&self) -> Vec<u8> {
        self.spki.clone()
    }

    fn sign(&self, hash: SignatureHash, message: &[u8]) -> Result<Vec<u8>, CaError> {
        let mechanism = match hash {
            SignatureHash::Sha256 => Mechanism::Sha256RsaPkcs,
            SignatureHash::Sha384 => Mechanism::Sha384RsaPkcs,
            SignatureHash::Sha512 => Mechanism::Sha512RsaPkcs,
        };
        self.run(|s, key| s.sign(&mechanism, key, message)).map_err(|e| {
            tracing::warn!(key = %self.uri, error = %e, "the token refused to sign");
            if session_lost(&e) {
                CaError::KeyUnavailable
            } else {
                CaError::Signing
            }
        })
    }

    fn decrypt_pkcs1(&self, ciphertext: &[u8]) -> Option<Vec<u8>> {
        self.try_decrypt_pkcs1(ciphertext).ok().flatten()
    }

    fn try_decrypt_pkcs1(&self, ciphertext: &[u8]) -> Result<Option<Vec<u8>>, CaError> {
        // A token answers bad padding with CKR_ENCRYPTED_DATA_INVALID (or another error about the
        // data): `None`, which the caller turns into the same implicit rejection as a software
        // failure. Only a token that is gone is an error. Nothing is logged for the data errors:
        // a log line per bad padding would itself be an oracle.
        match self.run(|s, key| s.decrypt(&Mechanism::RsaPkcs, key, ciphertext)) {
            Ok(plain) => Ok(Some(plain)),
            Err(e) if session_lost(&e) => {
                tracing::warn!(key = %self.uri, error = %e, "the token cannot decrypt");
                Err(CaError::KeyUnavailable)
            }
            Err(_) => Ok(None),
        }
    }

    fn custody(&self) -> KeyCustody<'_> {
        KeyCustody::Reference(self.uri.to_string())
    }
}

/// Makes key pairs in a token: the private half sensitive and never extractable.
pub struct TokenKeys {
    pub token: Arc<Token>,
}

impl KeyGenerator for TokenKeys {
    fn generate(&self, role: KeyRole, bits: KeyBits) -> Result<Box<dyn PrivateKey>, CaError> {
        let token = &self.token;
        let mut id = vec![0u8; 16];
        aws_lc_rs::rand::fill(&mut id).map_err(|_| CaError::KeyGeneration)?;
        let label = format!("scepd-{}", role.name()).into_bytes();
        let public = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::KeyType(KeyType::RSA),
            Attribute::ModulusBits(u64::from(bits.bits()).into()),
            Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
            Attribute::Verify(true),
            Attribute::Encrypt(true),
            Attribute::Label(label.clone()),
            Attribute::Id(id.clone()),
        ];
        let private = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Decrypt(true),
            Attribute::Label(label.clone()),
            Attribute::Id(id.clone()),
        ];
        token
            .with_session(|s| s.generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private))
            .map_err(|e| CaError::KeyRejected(token.failed("generate a key pair", e).to_string()))?;
        let uri = KeyUri {
            token: token.label.clone(),
            object: Some(String::from_utf8_lossy(&label).into_owned()),
            id: Some(id),
            module_path: Some(token.module.clone()),
            pin_source: None,
        };
        let key = TokenKey::find(token.clone(), uri).map_err(|e| CaError::KeyRejected(e.to_string()))?;
        Ok(Box::new(key))
    }
}

/// Opens the key `uri` names, with `module` and `pin` when the URI does not name its own.
pub fn open_key(uri: &KeyUri, module: Option<&Path>, pin: Option<&str>) -> Result<TokenKey, TokenError> {
    let module = uri
        .module_path
        .as_deref()
        .or(module)
        .ok_or_else(|| TokenError::NoModule { uri: uri.to_string() })?;
    let from_source = match (pin, &uri.pin_source) {
        (None, Some(file)) => Some(crate::datadir::read_secret_file(file).map_err(|e| TokenError::Login {
            module: module.to_path_buf(),
            label: uri.token.clone(),
            reason: format!("pin-source: {e}"),
        })?),
        _ => None,
    };
    let pin = pin.or(from_source.as_ref().and_then(|p| std::str::from_utf8(p).ok()));
    let token = Token::open(module, &uri.token, pin)?;
    TokenKey::find(token, uri.clone())
}
