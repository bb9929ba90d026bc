//! PKCS#11 signing back end (production): a private key that never leaves the token.
//!
//! [`Pkcs11Signer`] implements [`Signer`] over a pool of logged-in sessions. PKCS#11 sessions are
//! single-threaded (`cryptoki::session::Session` is `Send`, not `Sync`), so every signature takes
//! a session from the pool, signs and puts it back; at most [`Pkcs11Config::sessions`] are open.
//!
//! Token facts this module relies on (checked against SoftHSM 2.6):
//! - The library is initialised once per process with `CKF_OS_LOCKING_OK`; without it SoftHSM
//!   turns its own locks off and crashes under concurrent use. Contexts are cached per module
//!   path, so several signers in one process share one initialised library.
//! - Login is per application and token, not per session: a second `C_Login` answers
//!   `CKR_USER_ALREADY_LOGGED_IN`, which is success here. (A consequence: once this process is
//!   logged in to a token, a wrong PIN given to a second signer for the same token is not
//!   noticed.) Closing the last session on a token logs the application out.
//! - Object handles stay valid only while a session on the token is open: the signer keeps its
//!   sessions open, forgets the key handle whenever the last one closes, and when a signature
//!   fails with an invalid handle or session it reopens a session, logs in, looks the key up
//!   again by label/id and retries once.
//!
//! Mechanisms: RSA PKCS#1 v1.5 and PSS hash inside the token (`CKM_SHA256_RSA_PKCS`,
//! `CKM_SHA256_RSA_PKCS_PSS`, …); ECDSA signs a digest computed here (`CKM_ECDSA`) and the raw
//! `r || s` the token returns is re-encoded as a DER `ECDSA-Sig-Value`.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::RawAuthPin;
use num_bigint::{BigInt, Sign};
use rasn::types::{Any, BitString, Integer, ObjectIdentifier, OctetString, Oid};
use rasn::{AsnType, Decode, Decoder, Encode};

use crate::signer::{SignatureScheme, Signer, SignerError};

/// rsaEncryption (PKCS #1), the SubjectPublicKeyInfo algorithm of every RSA key.
const OID_RSA_ENCRYPTION: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 1, 1]);
/// id-ecPublicKey (RFC 5480).
const OID_EC_PUBLIC_KEY: &Oid = Oid::const_new(&[1, 2, 840, 10045, 2, 1]);
/// secp256r1 / P-256 (RFC 5480).
const OID_P256: &Oid = Oid::const_new(&[1, 2, 840, 10045, 3, 1, 7]);
/// secp384r1 / P-384 (RFC 5480).
const OID_P384: &Oid = Oid::const_new(&[1, 3, 132, 0, 34]);

// ---------------------------------------------------------------------------------------------
// Secrets and configuration
// ---------------------------------------------------------------------------------------------

/// A secret such as a PKCS#11 user PIN. Its `Debug` output is redacted, it has no `Display`,
/// and its bytes are overwritten when it is dropped.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wrap secret bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// The secret bytes. Callers must not log or print them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s.into_bytes())
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.as_bytes().to_vec())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            *b = 0;
        }
        // Keep the writes from being optimised away.
        std::hint::black_box(&self.0);
    }
}

/// Remove one trailing line ending (`\n` or `\r\n`), as left by `echo` or an editor.
fn trim_newline(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    bytes
}

/// Read a PIN from environment variable `var` (one trailing newline is removed).
///
/// PINs are taken from the environment or a file, never from the command line.
pub fn pin_from_env(var: &str) -> Result<Secret, Pkcs11Error> {
    let value = std::env::var_os(var).ok_or_else(|| Pkcs11Error::PinSource {
        source_name: format!("environment variable {var}"),
        reason: "not set".into(),
    })?;
    let pin = Secret::new(trim_newline(value.into_encoded_bytes()));
    if pin.is_empty() {
        return Err(Pkcs11Error::PinSource {
            source_name: format!("environment variable {var}"),
            reason: "empty".into(),
        });
    }
    Ok(pin)
}

/// Read a PIN from the file at `path` (one trailing newline is removed). On Unix a warning is
/// logged when the file is readable by group or others.
pub fn pin_from_file(path: impl AsRef<Path>) -> Result<Secret, Pkcs11Error> {
    let path = path.as_ref();
    let err = |reason: String| Pkcs11Error::PinSource {
        source_name: format!("file {}", path.display()),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    file = %path.display(),
                    "PIN file is readable by group or others; restrict it to mode 0600"
                );
            }
        }
    }
    let pin = Secret::new(trim_newline(bytes));
    if pin.is_empty() {
        return Err(err("empty".into()));
    }
    Ok(pin)
}

/// The number of sessions a signer opens by default: two per CPU. With a token that signs
/// on the calling thread (SoftHSM), one per CPU leaves a core idle whenever a signing thread
/// is descheduled for HTTP work; with a network HSM, the spare sessions overlap its round
/// trips. Measured with `cargo bench --bench tsa_load` (RSA-2048, 16 connections, 2 cores,
/// `HOZON_LOAD_SESSIONS`): peak 0.62–0.70 of the raw sign rate with 2 sessions (3 runs),
/// 0.65–0.89, median 0.82, with 4 (6 runs).
pub fn default_sessions() -> usize {
    2 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Where the key is and how to use it.
#[derive(Clone, Debug)]
pub struct Pkcs11Config {
    /// The PKCS#11 module (shared library), e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The label of the token holding the key.
    pub token_label: String,
    /// `CKA_LABEL` of the key pair. At least one of `key_label` and `key_id` must be given;
    /// when both are, the key must match both.
    pub key_label: Option<String>,
    /// `CKA_ID` of the key pair.
    pub key_id: Option<Vec<u8>>,
    /// The user PIN (see [`pin_from_env`], [`pin_from_file`]).
    pub pin: Secret,
    /// The scheme every signature uses; it must fit the key.
    pub scheme: SignatureScheme,
    /// Maximum number of sessions (one per concurrent signature); 0 means
    /// [`default_sessions`].
    pub sessions: usize,
}

impl Pkcs11Config {
    /// A configuration for the key labelled `key_label`, with [`default_sessions`] sessions.
    pub fn new(
        module: impl Into<PathBuf>,
        token_label: impl Into<String>,
        key_label: impl Into<String>,
        pin: Secret,
        scheme: SignatureScheme,
    ) -> Self {
        Self {
            module: module.into(),
            token_label: token_label.into(),
            key_label: Some(key_label.into()),
            key_id: None,
            pin,
            scheme,
            sessions: default_sessions(),
        }
    }

    fn selector(&self) -> Result<KeySelector, Pkcs11Error> {
        if self.key_label.is_none() && self.key_id.is_none() {
            return Err(Pkcs11Error::NoKeySelector);
        }
        Ok(KeySelector {
            label: self.key_label.clone(),
            id: self.key_id.clone(),
        })
    }
}

/// The kind of key [`keygen`] makes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KeySpec {
    /// RSA, 2048-bit modulus.
    Rsa2048,
    /// RSA, 3072-bit modulus (the default: PKCS#1 v1.5 and PSS with ≥ 3000 bits have no end
    /// date in ETSI TS 119 312).
    #[default]
    Rsa3072,
    /// ECDSA on NIST P-256.
    EcP256,
    /// ECDSA on NIST P-384.
    EcP384,
}

impl KeySpec {
    /// The scheme a TSA would normally use with such a key.
    pub fn default_scheme(self) -> SignatureScheme {
        match self {
            Self::Rsa2048 | Self::Rsa3072 => SignatureScheme::RsaPkcs1Sha256,
            Self::EcP256 => SignatureScheme::EcdsaP256Sha256,
            Self::EcP384 => SignatureScheme::EcdsaP384Sha384,
        }
    }
}

impl FromStr for KeySpec {
    type Err = String;

    /// `rsa2048`, `rsa3072`, `p256` (or `ec-p256`), `p384` (or `ec-p384`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "rsa2048" | "rsa-2048" => Ok(Self::Rsa2048),
            "rsa3072" | "rsa-3072" | "rsa" => Ok(Self::Rsa3072),
            "p256" | "ec-p256" | "ecp256" | "p-256" => Ok(Self::EcP256),
            "p384" | "ec-p384" | "ecp384" | "p-384" => Ok(Self::EcP384),
            other => Err(format!(
                "unknown key type {other:?} (expected rsa2048, rsa3072, p256 or p384)"
            )),
        }
    }
}

/// Why a PKCS#11 operation failed. Messages name the module, token and key, never the PIN.
#[derive(Debug, thiserror::Error)]
pub enum Pkcs11Error {
    /// The shared library could not be loaded (missing file, wrong architecture, missing
    /// symbols).
    #[error("cannot load PKCS#11 module {}: {source}", module.display())]
    ModuleLoad { module: PathBuf, source: CkError },
    /// `C_Initialize` failed.
    #[error("PKCS#11 module {} failed to initialise: {source}", module.display())]
    Initialize { module: PathBuf, source: CkError },
    /// No slot holds an initialised token with this label.
    #[error("no token with label {label:?} in PKCS#11 module {}", module.display())]
    TokenNotFound { label: String, module: PathBuf },
    /// `CKR_PIN_INCORRECT`.
    #[error("wrong PIN for token {token:?}")]
    PinIncorrect { token: String },
    /// `CKR_PIN_LOCKED`.
    #[error("the user PIN of token {token:?} is locked")]
    PinLocked { token: String },
    /// The PIN could not be read from its source.
    #[error("cannot read the PIN from {source_name}: {reason}")]
    PinSource { source_name: String, reason: String },
    /// Neither a key label nor a key id was configured.
    #[error("no key selected: give a key label or a key id")]
    NoKeySelector,
    /// No private key matches the label/id.
    #[error("no private key with {key} on token {token:?}")]
    KeyNotFound { key: String, token: String },
    /// The public half is not on the token (needed for the SubjectPublicKeyInfo).
    #[error("no public key with {key} on token {token:?}")]
    PublicKeyNotFound { key: String, token: String },
    /// Several private keys match the label/id.
    #[error("{count} private keys match {key} on token {token:?}; select one by label and id")]
    AmbiguousKey {
        key: String,
        token: String,
        count: usize,
    },
    /// After the token invalidated the key handle, the key found again under the same
    /// label/id has another public key: the signer refuses to sign with it.
    #[error("key {key} on token {token:?} was replaced by a different key; restart with a matching certificate")]
    KeyChanged { key: String, token: String },
    /// [`keygen`] was asked for a label or id that is taken.
    #[error("a key with {key} already exists on token {token:?}")]
    KeyExists { key: String, token: String },
    /// The key cannot make signatures with the configured scheme.
    #[error("key {key} on token {token:?} is {found}, which cannot sign with {scheme:?}")]
    KeyMismatch {
        key: String,
        token: String,
        found: String,
        scheme: SignatureScheme,
    },
    /// The token returned key material this module does not understand.
    #[error("unexpected key data for {key} on token {token:?}: {reason}")]
    KeyData {
        key: String,
        token: String,
        reason: String,
    },
    /// The token returned a signature of an unexpected shape.
    #[error("token {token:?} returned a malformed signature: {reason}")]
    BadSignature { token: String, reason: String },
    /// Any other PKCS#11 failure.
    #[error("PKCS#11 {operation} on token {token:?} failed: {source}")]
    Pkcs11 {
        operation: &'static str,
        token: String,
        source: CkError,
    },
}

impl From<Pkcs11Error> for SignerError {
    fn from(e: Pkcs11Error) -> Self {
        SignerError::Backend(e.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// Library, token, login, key lookup
// ---------------------------------------------------------------------------------------------

/// The process-wide, initialised context for `module` (PKCS#11 allows one `C_Initialize` per
/// process; the cache also keeps the library loaded).
fn context(module: &Path) -> Result<Pkcs11, Pkcs11Error> {
    static CONTEXTS: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let key = module
        .canonicalize()
        .unwrap_or_else(|_| module.to_path_buf());
    let mut map = lock(CONTEXTS.get_or_init(Default::default));
    if let Some(ctx) = map.get(&key) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(module).map_err(|source| Pkcs11Error::ModuleLoad {
        module: module.to_path_buf(),
        source,
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(source) => {
            return Err(Pkcs11Error::Initialize {
                module: module.to_path_buf(),
                source,
            })
        }
    }
    map.insert(key, ctx.clone());
    Ok(ctx)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn find_slot(ctx: &Pkcs11, module: &Path, label: &str) -> Result<Slot, Pkcs11Error> {
    let ck = |operation| {
        move |source| Pkcs11Error::Pkcs11 {
            operation,
            token: label.to_owned(),
            source,
        }
    };
    let mut found = Vec::new();
    for slot in ctx
        .get_slots_with_initialized_token()
        .map_err(ck("C_GetSlotList"))?
    {
        let info = ctx.get_token_info(slot).map_err(ck("C_GetTokenInfo"))?;
        if info.label().trim_end() == label {
            found.push(slot);
        }
    }
    match found.len() {
        0 => Err(Pkcs11Error::TokenNotFound {
            label: label.to_owned(),
            module: module.to_path_buf(),
        }),
        1 => Ok(found[0]),
        n => {
            tracing::warn!(
                token = label,
                count = n,
                "several tokens share this label; using the first"
            );
            Ok(found[0])
        }
    }
}

fn login(session: &Session, pin: &Secret, token: &str) -> Result<(), Pkcs11Error> {
    let raw = RawAuthPin::new(Box::new(pin.expose().to_vec()));
    match session.login_with_raw(UserType::User, &raw) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => Err(Pkcs11Error::PinIncorrect {
            token: token.to_owned(),
        }),
        Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(Pkcs11Error::PinLocked {
            token: token.to_owned(),
        }),
        Err(source) => Err(Pkcs11Error::Pkcs11 {
            operation: "C_Login",
            token: token.to_owned(),
            source,
        }),
    }
}

/// How a key pair is found: by `CKA_LABEL`, `CKA_ID` or both.
#[derive(Clone, Debug)]
struct KeySelector {
    label: Option<String>,
    id: Option<Vec<u8>>,
}

impl KeySelector {
    fn template(&self, class: ObjectClass) -> Vec<Attribute> {
        let mut t = vec![Attribute::Class(class)];
        if let Some(label) = &self.label {
            t.push(Attribute::Label(label.as_bytes().to_vec()));
        }
        if let Some(id) = &self.id {
            t.push(Attribute::Id(id.clone()));
        }
        t
    }
}

impl fmt::Display for KeySelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.label, &self.id) {
            (Some(l), Some(id)) => write!(f, "label {l:?} and id {}", hex::encode(id)),
            (Some(l), None) => write!(f, "label {l:?}"),
            (None, Some(id)) => write!(f, "id {}", hex::encode(id)),
            (None, None) => f.write_str("no label or id"),
        }
    }
}

fn find_objects(
    session: &Session,
    template: &[Attribute],
    token: &str,
) -> Result<Vec<ObjectHandle>, Pkcs11Error> {
    session
        .find_objects(template)
        .map_err(|source| Pkcs11Error::Pkcs11 {
            operation: "C_FindObjects",
            token: token.to_owned(),
            source,
        })
}

fn find_private_key(
    session: &Session,
    selector: &KeySelector,
    token: &str,
) -> Result<ObjectHandle, Pkcs11Error> {
    let found = find_objects(session, &selector.template(ObjectClass::PRIVATE_KEY), token)?;
    match found.as_slice() {
        [] => Err(Pkcs11Error::KeyNotFound {
            key: selector.to_string(),
            token: token.to_owned(),
        }),
        [one] => Ok(*one),
        many => Err(Pkcs11Error::AmbiguousKey {
            key: selector.to_string(),
            token: token.to_owned(),
            count: many.len(),
        }),
    }
}

fn get_attributes(
    session: &Session,
    object: ObjectHandle,
    types: &[AttributeType],
    token: &str,
) -> Result<Vec<Attribute>, Pkcs11Error> {
    session
        .get_attributes(object, types)
        .map_err(|source| Pkcs11Error::Pkcs11 {
            operation: "C_GetAttributeValue",
            token: token.to_owned(),
            source,
        })
}

// ---------------------------------------------------------------------------------------------
// Public keys
// ---------------------------------------------------------------------------------------------

/// The public key of a key pair on the token, as far as this module understands keys.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PublicKey {
    Rsa { modulus: Vec<u8>, exponent: Vec<u8> },
    Ec { curve: EcCurve, point: Vec<u8> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EcCurve {
    P256,
    P384,
}

impl EcCurve {
    fn oid(self) -> &'static Oid {
        match self {
            Self::P256 => OID_P256,
            Self::P384 => OID_P384,
        }
    }

    /// Length of a field element (and of each of `r`, `s`) in bytes.
    fn field_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
        }
    }
}

impl PublicKey {
    fn describe(&self) -> String {
        match self {
            Self::Rsa { modulus, .. } => {
                let bits = BigInt::from_bytes_be(Sign::Plus, modulus).bits();
                format!("an RSA-{bits} key")
            }
            Self::Ec { curve, .. } => format!("an EC {curve:?} key"),
        }
    }

    fn fits(&self, scheme: SignatureScheme) -> bool {
        use SignatureScheme::*;
        match (self, scheme) {
            (
                Self::Rsa { .. },
                RsaPkcs1Sha256 | RsaPkcs1Sha384 | RsaPkcs1Sha512 | RsaPssSha256 | RsaPssSha384
                | RsaPssSha512,
            ) => true,
            (Self::Ec { curve, .. }, EcdsaP256Sha256) => *curve == EcCurve::P256,
            (Self::Ec { curve, .. }, EcdsaP384Sha384) => *curve == EcCurve::P384,
            _ => false,
        }
    }

    /// DER SubjectPublicKeyInfo (RFC 5280, RFC 3279, RFC 5480).
    fn spki(&self) -> Vec<u8> {
        let (algorithm, key) = match self {
            Self::Rsa { modulus, exponent } => {
                let rsa = rasn_pkix::algorithms::RsaPublicKey {
                    modulus: unsigned_integer(modulus),
                    public_exponent: unsigned_integer(exponent),
                };
                let algorithm = rasn_pkix::AlgorithmIdentifier {
                    algorithm: OID_RSA_ENCRYPTION.to_owned(),
                    parameters: Some(Any::new(vec![0x05, 0x00])),
                };
                (algorithm, der_encode(&rsa))
            }
            Self::Ec { curve, point } => {
                let algorithm = rasn_pkix::AlgorithmIdentifier {
                    algorithm: OID_EC_PUBLIC_KEY.to_owned(),
                    parameters: Some(Any::new(der_encode(&curve.oid().to_owned()))),
                };
                (algorithm, point.clone())
            }
        };
        der_encode(&rasn_pkix::SubjectPublicKeyInfo {
            algorithm,
            subject_public_key: BitString::from_vec(key),
        })
    }
}

fn der_encode<T: Encode>(value: &T) -> Vec<u8> {
    // Encoding the plain types used here (integers, OIDs, sequences of them) cannot fail.
    rasn::der::encode(value).expect("DER encoding of a plain value")
}

/// A non-negative INTEGER from unsigned big-endian bytes.
fn unsigned_integer(bytes: &[u8]) -> Integer {
    Integer::from(BigInt::from_bytes_be(Sign::Plus, bytes))
}

/// Read the public key of the pair selected by `selector`; `private` is the private key's
/// handle, used for the key type and (for RSA) as a fallback when there is no public object.
fn read_public_key(
    session: &Session,
    selector: &KeySelector,
    private: ObjectHandle,
    token: &str,
) -> Result<PublicKey, Pkcs11Error> {
    let key_data = |reason: String| Pkcs11Error::KeyData {
        key: selector.to_string(),
        token: token.to_owned(),
        reason,
    };
    let key_type = get_attributes(session, private, &[AttributeType::KeyType], token)?
        .into_iter()
        .find_map(|a| match a {
            Attribute::KeyType(t) => Some(t),
            _ => None,
        })
        .ok_or_else(|| key_data("CKA_KEY_TYPE missing".into()))?;
    let public = find_objects(session, &selector.template(ObjectClass::PUBLIC_KEY), token)?;
    if public.len() > 1 {
        return Err(key_data(format!("{} public keys match", public.len())));
    }
    if key_type == KeyType::RSA {
        // SoftHSM and most HSMs expose modulus and exponent on the private key too.
        let object = public.first().copied().unwrap_or(private);
        let attrs = get_attributes(
            session,
            object,
            &[AttributeType::Modulus, AttributeType::PublicExponent],
            token,
        )?;
        let (mut modulus, mut exponent) = (None, None);
        for a in attrs {
            match a {
                Attribute::Modulus(m) => modulus = Some(m),
                Attribute::PublicExponent(e) => exponent = Some(e),
                _ => {}
            }
        }
        match (modulus, exponent) {
            (Some(modulus), Some(exponent)) if !modulus.is_empty() && !exponent.is_empty() => {
                Ok(PublicKey::Rsa { modulus, exponent })
            }
            _ => Err(key_data(
                "RSA modulus or public exponent unavailable".into(),
            )),
        }
    } else if key_type == KeyType::EC {
        let Some(&object) = public.first() else {
            return Err(Pkcs11Error::PublicKeyNotFound {
                key: selector.to_string(),
                token: token.to_owned(),
            });
        };
        let attrs = get_attributes(
            session,
            object,
            &[AttributeType::EcParams, AttributeType::EcPoint],
            token,
        )?;
        let (mut params, mut point) = (None, None);
        for a in attrs {
            match a {
                Attribute::EcParams(p) => params = Some(p),
                Attribute::EcPoint(p) => point = Some(p),
                _ => {}
            }
        }
        let params = params.ok_or_else(|| key_data("CKA_EC_PARAMS unavailable".into()))?;
        let point = point.ok_or_else(|| key_data("CKA_EC_POINT unavailable".into()))?;
        let curve = curve_from_params(&params).map_err(key_data)?;
        let point = unwrap_ec_point(&point, curve).map_err(key_data)?;
        Ok(PublicKey::Ec { curve, point })
    } else {
        Err(key_data(format!("unsupported key type {key_type}")))
    }
}

fn curve_from_params(params: &[u8]) -> Result<EcCurve, String> {
    let oid: ObjectIdentifier = rasn::der::decode(params)
        .map_err(|_| "CKA_EC_PARAMS is not a named-curve OID".to_string())?;
    if *oid == *OID_P256 {
        Ok(EcCurve::P256)
    } else if *oid == *OID_P384 {
        Ok(EcCurve::P384)
    } else {
        Err(format!("unsupported curve {oid:?}"))
    }
}

/// `CKA_EC_POINT` is a DER OCTET STRING wrapping the uncompressed point `04 || X || Y`
/// (PKCS#11 v2.40); a few tokens return the bare point, which is accepted too.
fn unwrap_ec_point(value: &[u8], curve: EcCurve) -> Result<Vec<u8>, String> {
    let expected = 1 + 2 * curve.field_len();
    if let Ok(inner) = rasn::der::decode::<OctetString>(value) {
        if inner.len() == expected && inner[0] == 0x04 {
            return Ok(inner.to_vec());
        }
    }
    if value.len() == expected && value[0] == 0x04 {
        return Ok(value.to_vec());
    }
    Err("CKA_EC_POINT is not an uncompressed point on the key's curve".into())
}

// ---------------------------------------------------------------------------------------------
// ECDSA signature encoding
// ---------------------------------------------------------------------------------------------

/// `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` (RFC 3279 §2.2.3).
#[derive(AsnType, Encode, Decode)]
struct EcdsaSigValue {
    r: Integer,
    s: Integer,
}

/// Convert a raw PKCS#11 ECDSA signature (`r || s`, each the curve's field length) into the DER
/// `ECDSA-Sig-Value` that X.509 and CMS carry (minimal INTEGERs, a leading 0x00 where the high
/// bit is set).
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>, String> {
    if raw.is_empty() || raw.len() % 2 != 0 {
        return Err(format!(
            "raw ECDSA signature has odd or zero length {}",
            raw.len()
        ));
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    Ok(der_encode(&EcdsaSigValue {
        r: unsigned_integer(r),
        s: unsigned_integer(s),
    }))
}

// ---------------------------------------------------------------------------------------------
// The signer
// ---------------------------------------------------------------------------------------------

/// Sessions not in use, how many are open, and the private key's handle (valid while any
/// session is open; `None` means "look it up").
struct PoolState {
    idle: Vec<Session>,
    open: usize,
    key: Option<ObjectHandle>,
}

/// A [`Signer`] whose private key is in a PKCS#11 token. Cheap to share (`Arc`), safe to call
/// from many threads; each concurrent signature uses its own session.
pub struct Pkcs11Signer {
    ctx: Pkcs11,
    slot: Slot,
    module: PathBuf,
    token: String,
    selector: KeySelector,
    pin: Secret,
    scheme: SignatureScheme,
    public_key: PublicKey,
    spki: Vec<u8>,
    max_sessions: usize,
    state: Mutex<PoolState>,
    returned: Condvar,
    recoveries: AtomicU64,
}

impl fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Signer")
            .field("module", &self.module)
            .field("token", &self.token)
            .field("key", &self.selector.to_string())
            .field("scheme", &self.scheme)
            .field("max_sessions", &self.max_sessions)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Signer {
    /// Load the module, find the token, log in, find the key and check that it fits
    /// `config.scheme`. One session is opened now (and kept); more are opened on demand up
    /// to `config.sessions`.
    pub fn open(config: &Pkcs11Config) -> Result<Self, Pkcs11Error> {
        let selector = config.selector()?;
        let ctx = context(&config.module)?;
        let slot = find_slot(&ctx, &config.module, &config.token_label)?;
        let max_sessions = if config.sessions == 0 {
            default_sessions()
        } else {
            config.sessions
        };

        let token = config.token_label.clone();
        let session = open_session(&ctx, slot, &config.pin, &token, false)?;
        let key = find_private_key(&session, &selector, &token)?;
        let public_key = read_public_key(&session, &selector, key, &token)?;
        if !public_key.fits(config.scheme) {
            return Err(Pkcs11Error::KeyMismatch {
                key: selector.to_string(),
                token,
                found: public_key.describe(),
                scheme: config.scheme,
            });
        }
        let spki = public_key.spki();
        tracing::info!(
            module = %config.module.display(),
            token = %token,
            key = %selector,
            scheme = ?config.scheme,
            sessions = max_sessions,
            "PKCS#11 signer ready"
        );
        Ok(Self {
            ctx,
            slot,
            module: config.module.clone(),
            token,
            selector,
            pin: config.pin.clone(),
            scheme: config.scheme,
            public_key,
            spki,
            max_sessions,
            state: Mutex::new(PoolState {
                idle: vec![session],
                open: 1,
                key: Some(key),
            }),
            returned: Condvar::new(),
            recoveries: AtomicU64::new(0),
        })
    }

    /// The token label.
    pub fn token_label(&self) -> &str {
        &self.token
    }

    /// The maximum number of sessions (concurrent signatures).
    pub fn max_sessions(&self) -> usize {
        self.max_sessions
    }

    /// How many sessions are open now.
    pub fn open_sessions(&self) -> usize {
        lock(&self.state).open
    }

    /// How many signatures needed a fresh session and key lookup because the token had
    /// invalidated a session or the key handle (worth a metric: frequent recoveries point at
    /// something else closing sessions or logging the application out).
    pub fn recoveries(&self) -> u64 {
        self.recoveries.load(Ordering::Relaxed)
    }

    /// Close every session not in use. When that closes the last one, the token forgets the
    /// login and invalidates the key handle; the next signature opens a session, logs in and
    /// looks the key up again. Useful after a token was re-inserted, and in tests.
    pub fn close_idle_sessions(&self) {
        let idle = {
            let mut st = lock(&self.state);
            let idle = std::mem::take(&mut st.idle);
            st.open -= idle.len();
            if st.open == 0 {
                st.key = None;
            }
            idle
        };
        for s in idle {
            if let Err(e) = s.close() {
                tracing::debug!(token = %self.token, error = %e, "closing an idle session failed");
            }
        }
        self.returned.notify_all();
    }

    /// Take a session (waiting if all are busy) and the key handle valid for it.
    fn acquire(&self) -> Result<(Session, ObjectHandle), Pkcs11Error> {
        let mut st = lock(&self.state);
        let session = loop {
            if let Some(s) = st.idle.pop() {
                break s;
            }
            if st.open < self.max_sessions {
                st.open += 1;
                drop(st);
                match open_session(&self.ctx, self.slot, &self.pin, &self.token, false) {
                    Ok(s) => {
                        st = lock(&self.state);
                        break s;
                    }
                    Err(e) => {
                        self.forget_one();
                        return Err(e);
                    }
                }
            }
            st = self
                .returned
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        };
        if let Some(key) = st.key {
            return Ok((session, key));
        }
        drop(st);
        match self.lookup_key(&session) {
            Ok(key) => Ok((session, key)),
            Err(e) => {
                self.release(session);
                Err(e)
            }
        }
    }

    /// Find the private key again (handles were invalidated) and check that it is still the
    /// key whose public half this signer reported: a key replaced under the same label must
    /// not sign under the old certificate.
    fn lookup_key(&self, session: &Session) -> Result<ObjectHandle, Pkcs11Error> {
        let key = find_private_key(session, &self.selector, &self.token)?;
        let public_key = read_public_key(session, &self.selector, key, &self.token)?;
        if public_key != self.public_key {
            return Err(Pkcs11Error::KeyChanged {
                key: self.selector.to_string(),
                token: self.token.clone(),
            });
        }
        lock(&self.state).key = Some(key);
        Ok(key)
    }

    /// Put a healthy session back.
    fn release(&self, session: Session) {
        lock(&self.state).idle.push(session);
        self.returned.notify_one();
    }

    /// Account for a session that is gone (closed or never opened).
    fn forget_one(&self) {
        let mut st = lock(&self.state);
        st.open -= 1;
        if st.open == 0 {
            st.key = None;
        }
        drop(st);
        self.returned.notify_one();
    }

    /// Close a session that failed in a way that suggests it (or the key handle) is stale.
    fn discard(&self, session: Session) {
        drop(session); // C_CloseSession; an error (already closed) is logged by cryptoki
        let mut st = lock(&self.state);
        st.open -= 1;
        st.key = None;
        drop(st);
        self.returned.notify_one();
    }

    /// Open a new session (counted in the pool), log in and look the key up afresh.
    fn reopen(&self) -> Result<(Session, ObjectHandle), Pkcs11Error> {
        {
            let mut st = lock(&self.state);
            while st.open >= self.max_sessions {
                st = self
                    .returned
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            st.open += 1;
        }
        let session = match open_session(&self.ctx, self.slot, &self.pin, &self.token, false) {
            Ok(s) => s,
            Err(e) => {
                self.forget_one();
                return Err(e);
            }
        };
        match self.lookup_key(&session) {
            Ok(key) => Ok((session, key)),
            Err(e) => {
                self.release(session);
                Err(e)
            }
        }
    }

    fn mechanism(&self) -> Mechanism<'static> {
        use SignatureScheme::*;
        let pss = |hash_alg, mgf, s_len: u64| PkcsPssParams {
            hash_alg,
            mgf,
            s_len: s_len.into(),
        };
        match self.scheme {
            RsaPkcs1Sha256 => Mechanism::Sha256RsaPkcs,
            RsaPkcs1Sha384 => Mechanism::Sha384RsaPkcs,
            RsaPkcs1Sha512 => Mechanism::Sha512RsaPkcs,
            RsaPssSha256 => Mechanism::Sha256RsaPkcsPss(pss(
                MechanismType::SHA256,
                PkcsMgfType::MGF1_SHA256,
                32,
            )),
            RsaPssSha384 => Mechanism::Sha384RsaPkcsPss(pss(
                MechanismType::SHA384,
                PkcsMgfType::MGF1_SHA384,
                48,
            )),
            RsaPssSha512 => Mechanism::Sha512RsaPkcsPss(pss(
                MechanismType::SHA512,
                PkcsMgfType::MGF1_SHA512,
                64,
            )),
            EcdsaP256Sha256 | EcdsaP384Sha384 => Mechanism::Ecdsa,
        }
    }

    /// What the token is given: the message itself (it hashes), or for ECDSA our digest.
    fn token_input(&self, message: &[u8]) -> Vec<u8> {
        use aws_lc_rs::digest;
        match self.scheme {
            SignatureScheme::EcdsaP256Sha256 => {
                digest::digest(&digest::SHA256, message).as_ref().to_vec()
            }
            SignatureScheme::EcdsaP384Sha384 => {
                digest::digest(&digest::SHA384, message).as_ref().to_vec()
            }
            _ => message.to_vec(),
        }
    }

    fn finish(&self, raw: Vec<u8>) -> Result<Vec<u8>, Pkcs11Error> {
        let bad = |reason: String| Pkcs11Error::BadSignature {
            token: self.token.clone(),
            reason,
        };
        match &self.public_key {
            PublicKey::Ec { curve, .. } => {
                if raw.len() != 2 * curve.field_len() {
                    return Err(bad(format!(
                        "ECDSA signature of {} bytes, expected {}",
                        raw.len(),
                        2 * curve.field_len()
                    )));
                }
                ecdsa_raw_to_der(&raw).map_err(bad)
            }
            PublicKey::Rsa { modulus, .. } => {
                let len = modulus.iter().skip_while(|b| **b == 0).count();
                if raw.len() != len {
                    return Err(bad(format!(
                        "RSA signature of {} bytes for a {len}-byte modulus",
                        raw.len()
                    )));
                }
                Ok(raw)
            }
        }
    }

    fn sign_message(&self, message: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
        let mechanism = self.mechanism();
        let input = self.token_input(message);
        let (session, key) = self.acquire()?;
        let first = session.sign(&mechanism, key, &input);
        let raw = match first {
            Ok(raw) => {
                self.release(session);
                raw
            }
            Err(e) if is_stale(&e) => {
                tracing::warn!(
                    token = %self.token,
                    error = %e,
                    "PKCS#11 session or key handle no longer valid; reopening and retrying once"
                );
                self.recoveries.fetch_add(1, Ordering::Relaxed);
                self.discard(session);
                let (session, key) = self.reopen()?;
                match session.sign(&mechanism, key, &input) {
                    Ok(raw) => {
                        self.release(session);
                        raw
                    }
                    Err(source) => {
                        if is_stale(&source) {
                            self.discard(session);
                        } else {
                            self.release(session);
                        }
                        return Err(self.sign_error(source));
                    }
                }
            }
            Err(source) => {
                self.release(session);
                return Err(self.sign_error(source));
            }
        };
        self.finish(raw)
    }

    fn sign_error(&self, source: CkError) -> Pkcs11Error {
        Pkcs11Error::Pkcs11 {
            operation: "C_Sign",
            token: self.token.clone(),
            source,
        }
    }
}

/// Errors after which a fresh session and key lookup may succeed.
fn is_stale(e: &CkError) -> bool {
    matches!(
        e,
        CkError::Pkcs11(
            RvError::ObjectHandleInvalid
                | RvError::KeyHandleInvalid
                | RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::UserNotLoggedIn
                | RvError::DeviceRemoved
                | RvError::TokenNotPresent,
            _
        )
    )
}

fn open_session(
    ctx: &Pkcs11,
    slot: Slot,
    pin: &Secret,
    token: &str,
    read_write: bool,
) -> Result<Session, Pkcs11Error> {
    let session = if read_write {
        ctx.open_rw_session(slot)
    } else {
        ctx.open_ro_session(slot)
    }
    .map_err(|source| Pkcs11Error::Pkcs11 {
        operation: "C_OpenSession",
        token: token.to_owned(),
        source,
    })?;
    login(&session, pin, token)?;
    Ok(session)
}

impl Signer for Pkcs11Signer {
    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }

    fn public_key_spki(&self) -> Result<Vec<u8>, SignerError> {
        Ok(self.spki.clone())
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        self.sign_message(message).map_err(SignerError::from)
    }

    /// One signature per session.
    fn parallelism(&self) -> usize {
        self.max_sessions
    }
}

// ---------------------------------------------------------------------------------------------
// Key generation
// ---------------------------------------------------------------------------------------------

/// A key pair [`keygen`] made.
#[derive(Clone, Debug)]
pub struct GeneratedKey {
    /// `CKA_LABEL` of both halves.
    pub label: String,
    /// `CKA_ID` of both halves.
    pub id: Vec<u8>,
    /// DER SubjectPublicKeyInfo of the public key.
    pub spki: Vec<u8>,
}

/// Generate a key pair in the token named by `config` (its module, token label and PIN are
/// used; key label, id, scheme and sessions are ignored). The private key is a token object,
/// private, sensitive, not extractable, for signing only. `id` defaults to 16 random bytes.
/// Refuses when a key with `label` (or a private key with `id`) already exists.
pub fn keygen(
    config: &Pkcs11Config,
    spec: KeySpec,
    label: &str,
    id: Option<&[u8]>,
) -> Result<GeneratedKey, Pkcs11Error> {
    let token = config.token_label.as_str();
    let ctx = context(&config.module)?;
    let slot = find_slot(&ctx, &config.module, token)?;
    let session = open_session(&ctx, slot, &config.pin, token, true)?;

    let id = match id {
        Some(id) => id.to_vec(),
        None => {
            let mut id = vec![0u8; 16];
            aws_lc_rs::rand::fill(&mut id).map_err(|_| Pkcs11Error::KeyData {
                key: format!("label {label:?}"),
                token: token.to_owned(),
                reason: "no randomness for the key id".into(),
            })?;
            id
        }
    };
    let by_label = KeySelector {
        label: Some(label.to_owned()),
        id: None,
    };
    let by_id = KeySelector {
        label: None,
        id: Some(id.clone()),
    };
    for (selector, class) in [
        (&by_label, ObjectClass::PRIVATE_KEY),
        (&by_label, ObjectClass::PUBLIC_KEY),
        (&by_id, ObjectClass::PRIVATE_KEY),
    ] {
        if !find_objects(&session, &selector.template(class), token)?.is_empty() {
            return Err(Pkcs11Error::KeyExists {
                key: selector.to_string(),
                token: token.to_owned(),
            });
        }
    }

    let common = |private: bool| {
        vec![
            Attribute::Token(true),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(id.clone()),
            Attribute::Private(private),
        ]
    };
    let mut public_template = common(false);
    public_template.extend([Attribute::Verify(true), Attribute::Encrypt(false)]);
    let mut private_template = common(true);
    private_template.extend([
        Attribute::Sign(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Decrypt(false),
        Attribute::Derive(false),
    ]);
    let mechanism = match spec {
        KeySpec::Rsa2048 | KeySpec::Rsa3072 => {
            let bits: u64 = if spec == KeySpec::Rsa2048 { 2048 } else { 3072 };
            public_template.extend([
                Attribute::ModulusBits(bits.into()),
                Attribute::PublicExponent(vec![0x01, 0x00, 0x01]),
            ]);
            Mechanism::RsaPkcsKeyPairGen
        }
        KeySpec::EcP256 | KeySpec::EcP384 => {
            let curve = if spec == KeySpec::EcP256 {
                EcCurve::P256
            } else {
                EcCurve::P384
            };
            public_template.push(Attribute::EcParams(der_encode(&curve.oid().to_owned())));
            Mechanism::EccKeyPairGen
        }
    };
    // One key pair generation at a time in this process: SoftHSM2 stores token objects in
    // files and concurrent C_GenerateKeyPair calls can fail with CKR_GENERAL_ERROR
    // (SoftHSMv2 issue #573). Key generation is a rare, administrative operation.
    static KEYGEN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = KEYGEN.lock().unwrap_or_else(|p| p.into_inner());
    let (_, private) = session
        .generate_key_pair(&mechanism, &public_template, &private_template)
        .map_err(|source| Pkcs11Error::Pkcs11 {
            operation: "C_GenerateKeyPair",
            token: token.to_owned(),
            source,
        })?;
    let selector = KeySelector {
        label: Some(label.to_owned()),
        id: Some(id.clone()),
    };
    let spki = read_public_key(&session, &selector, private, token)?.spki();
    tracing::info!(token, key = %selector, spec = ?spec, "generated key pair");
    Ok(GeneratedKey {
        label: label.to_owned(),
        id,
        spki,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_der_minimal_integers() {
        // r has its high bit set (needs 0x00), s has leading zero bytes (must be stripped).
        let mut raw = vec![0u8; 64];
        raw[0] = 0x80;
        raw[31] = 0x01;
        raw[32 + 30] = 0x7f;
        raw[63] = 0x02;
        let der = ecdsa_raw_to_der(&raw).unwrap();
        let mut expected = vec![0x30, 0x00, 0x02, 0x21, 0x00, 0x80];
        expected.extend([0u8; 30]);
        expected.push(0x01);
        expected.extend([0x02, 0x02, 0x7f, 0x02]);
        expected[1] = (expected.len() - 2) as u8;
        assert_eq!(der, expected);
    }

    #[test]
    fn ecdsa_der_zero_and_odd() {
        assert_eq!(
            ecdsa_raw_to_der(&[0, 0]).unwrap(),
            vec![0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00]
        );
        assert!(ecdsa_raw_to_der(&[1, 2, 3]).is_err());
        assert!(ecdsa_raw_to_der(&[]).is_err());
    }

    #[test]
    fn secret_is_redacted_and_trimmed() {
        let s = Secret::new(trim_newline(b"1234\r\n".to_vec()));
        assert_eq!(s.expose(), b"1234");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        let c = Pkcs11Config::new("m.so", "t", "k", s, SignatureScheme::RsaPkcs1Sha256);
        assert!(!format!("{c:?}").contains("1234"));
    }

    #[test]
    fn ec_point_unwrap() {
        let mut point = vec![0x04];
        point.extend([7u8; 64]);
        let mut wrapped = vec![0x04, 65];
        wrapped.extend(&point);
        assert_eq!(unwrap_ec_point(&wrapped, EcCurve::P256).unwrap(), point);
        assert_eq!(unwrap_ec_point(&point, EcCurve::P256).unwrap(), point);
        assert!(unwrap_ec_point(&wrapped, EcCurve::P384).is_err());
    }

    #[test]
    fn key_spec_parse() {
        assert_eq!("P256".parse::<KeySpec>().unwrap(), KeySpec::EcP256);
        assert_eq!("rsa3072".parse::<KeySpec>().unwrap(), KeySpec::Rsa3072);
        assert!("dsa".parse::<KeySpec>().is_err());
        assert_eq!(KeySpec::default(), KeySpec::Rsa3072);
    }
}
