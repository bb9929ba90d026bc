//! Certificate path validation: the subset of RFC 5280 §6 that signed medical records and
//! their timestamps need. Pure: the caller supplies the certificates, trust anchors, CRLs and
//! the time; nothing is fetched.
//!
//! [`validate_path`] builds a path from the end-entity certificate through the candidate
//! intermediates (those the signature carried, plus any given) to a trust anchor, trying
//! every issuer whose name matches (and whose subjectKeyIdentifier matches the child's
//! authorityKeyIdentifier, when both are present), depth-first, at most eight certificates.
//! On the path it checks:
//! - each signature, with the issuer's key (aws-lc-rs; RSA from 1024 bits for old records);
//! - that every certificate, the anchor included, is valid at the given time (the "shell
//!   model": what HPKI prescribes for signatures verified at their signing time);
//! - basicConstraints (cA for issuers, pathLenConstraint) and keyUsage (keyCertSign for
//!   issuers; for the end entity, what the [`Purpose`] needs);
//! - that every critical extension is one this module understands;
//! - revocation, from the CRLs given: a CRL is used only if its issuer is the certificate's
//!   issuer and its signature verifies with the issuer's key; a certificate listed with a
//!   revocation date at or before the time is revoked. A certificate whose issuer has no CRL
//!   here has [`Revocation::Unknown`] status: reported, and left to the caller to judge.
//!
//! The result names the path, the end entity's certificate policies, HPKI hcRole and kind
//! (card or remote signature), and every signature algorithm and key size used, for the
//! algorithm policy.

use std::time::SystemTime;

use hozon_tsa::certcheck::{name_to_string, time_to_system, CertCheckError};
use rasn::types::{ObjectIdentifier, Oid};
use rasn_pkix::{
    AuthorityKeyIdentifier, BasicConstraints, Certificate, CertificateList, Extension, KeyUsage,
    PolicyInformation,
};

use crate::hpki;
use crate::report::fmt_time;
use crate::token::{signature_verifier, SignatureAlgorithm};

const ID_CE_SUBJECT_KEY_IDENTIFIER: &Oid = Oid::const_new(&[2, 5, 29, 14]);
const ID_CE_KEY_USAGE: &Oid = Oid::const_new(&[2, 5, 29, 15]);
const ID_CE_SUBJECT_ALT_NAME: &Oid = Oid::const_new(&[2, 5, 29, 17]);
const ID_CE_ISSUER_ALT_NAME: &Oid = Oid::const_new(&[2, 5, 29, 18]);
const ID_CE_BASIC_CONSTRAINTS: &Oid = Oid::const_new(&[2, 5, 29, 19]);
const ID_CE_CRL_DISTRIBUTION_POINTS: &Oid = Oid::const_new(&[2, 5, 29, 31]);
const ID_CE_AUTHORITY_KEY_IDENTIFIER: &Oid = Oid::const_new(&[2, 5, 29, 35]);
const ID_CE_EXT_KEY_USAGE: &Oid = Oid::const_new(&[2, 5, 29, 37]);
const ID_PE_AUTHORITY_INFO_ACCESS: &Oid = Oid::const_new(&[1, 3, 6, 1, 5, 5, 7, 1, 1]);

/// Longest path tried (end entity and anchor included).
const MAX_PATH: usize = 8;

/// What the end-entity certificate is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// A signature on a document: keyUsage, if present, must allow nonRepudiation or
    /// digitalSignature.
    DocumentSignature,
    /// A timestamp: keyUsage, if present, must allow digitalSignature or nonRepudiation
    /// (the TSA profile, EKU included, is checked with the token).
    TimeStamping,
}

/// Why no acceptable path exists.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// A certificate does not decode.
    #[error("certificate does not decode: {0}")]
    Decode(String),
    /// No issuer found for a certificate (the path ends without a trust anchor).
    #[error("no path to a trust anchor: no issuer found for {subject} (issuer {issuer})")]
    NoIssuer {
        /// The certificate whose issuer is missing.
        subject: String,
        /// The issuer name it names.
        issuer: String,
    },
    /// Issuers were found, but none could be used; the first reason is given.
    #[error("no valid path from {subject}: {reason}")]
    NoValidPath {
        /// The end entity.
        subject: String,
        /// Why the best candidate failed.
        reason: Box<PathError>,
    },
    /// A signature on a certificate does not verify.
    #[error("the signature on {subject} does not verify with {issuer}'s key")]
    BadSignature {
        /// The certificate.
        subject: String,
        /// The issuer.
        issuer: String,
    },
    /// An unsupported signature algorithm.
    #[error("{subject}: {reason}")]
    Algorithm {
        /// The certificate.
        subject: String,
        /// What is unsupported.
        reason: String,
    },
    /// A certificate was not valid at the time.
    #[error("{subject} was not valid at {at}: valid {not_before} to {not_after}")]
    Expired {
        /// The certificate.
        subject: String,
        /// The time checked.
        at: String,
        /// Start of validity.
        not_before: String,
        /// End of validity.
        not_after: String,
    },
    /// An issuer is not a CA, or its path length is exceeded.
    #[error("{subject} may not issue certificates: {reason}")]
    NotCa {
        /// The issuer.
        subject: String,
        /// Why.
        reason: String,
    },
    /// keyUsage does not allow the use.
    #[error("{subject}: keyUsage does not allow {needed}")]
    KeyUsage {
        /// The certificate.
        subject: String,
        /// What was needed.
        needed: &'static str,
    },
    /// A critical extension this verifier does not understand.
    #[error("{subject} has a critical extension this verifier does not understand: {oid}")]
    UnknownCriticalExtension {
        /// The certificate.
        subject: String,
        /// The extension.
        oid: String,
    },
    /// An extension does not decode.
    #[error("{subject}: extension {oid} does not decode")]
    BadExtension {
        /// The certificate.
        subject: String,
        /// The extension.
        oid: String,
    },
    /// The certificate was revoked at or before the time.
    #[error("{subject} was revoked on {date} (reason {reason})")]
    Revoked {
        /// The certificate.
        subject: String,
        /// Revocation date.
        date: String,
        /// CRLReason, or "unspecified".
        reason: String,
    },
}

/// A trust anchor store: self-signed or configured root certificates (DER).
#[derive(Clone, Debug, Default)]
pub struct TrustAnchors {
    anchors: Vec<Parsed>,
}

/// A decoded certificate with its DER: shared (cloning it is a reference count) and kept in a
/// small per-process cache, since the same CA and TSA certificates come with every document
/// of a bulk run or an ingest.
#[derive(Clone, Debug)]
pub(crate) struct Parsed(std::sync::Arc<ParsedCert>);

#[derive(Debug)]
pub(crate) struct ParsedCert {
    pub(crate) der: Vec<u8>,
    pub(crate) cert: Certificate,
    /// The TBSCertificate exactly as it appears in `der`: what the signature covers.
    tbs: std::ops::Range<usize>,
    /// The subject as RFC 4514 text, for reports and errors.
    pub(crate) subject: String,
    /// The serial number's content octets in hex ([`serial_hex`]).
    serial: String,
    /// subjectKeyIdentifier and authorityKeyIdentifier's keyIdentifier (for issuer matching).
    ski: Option<Vec<u8>>,
    aki: Option<Vec<u8>>,
    /// SHA-256 of `der` (ESS certificate ids, archive object ids), computed when first asked.
    sha256: std::sync::OnceLock<[u8; 32]>,
    /// The issuer keys this certificate's signature verified under: see [`Memo`].
    verified: Memo,
}

/// The keys (with the verification algorithm) under which the signature of one cached
/// certificate or CRL verified. The signed bytes and the signature are fixed by the DER the
/// object is cached under, so a key found here means exactly this signature by exactly this
/// key over exactly these bytes verified before: the same CA certificates and CRLs come with
/// every document, and would otherwise cost an RSA verification (often RSA-4096) each time.
/// Failures are not remembered. At most [`MEMO_KEYS`] keys are kept per object.
#[derive(Debug, Default)]
struct Memo(std::sync::Mutex<Vec<(usize, Box<[u8]>)>>);

/// Keys remembered per certificate or CRL (one issuer is normal; a re-keyed CA may add one).
const MEMO_KEYS: usize = 4;

impl Memo {
    /// Whether `sig` by `key` over `msg` verifies with `alg`, from memory when it did before.
    fn verify(
        &self,
        alg: &'static dyn aws_lc_rs::signature::VerificationAlgorithm,
        key: &[u8],
        msg: &[u8],
        sig: &[u8],
    ) -> bool {
        let id = crate::token::algorithm_id(alg);
        let known = |m: &Vec<(usize, Box<[u8]>)>| m.iter().any(|(a, k)| *a == id && **k == *key);
        if self.0.lock().is_ok_and(|m| known(&m)) {
            return true;
        }
        let ok = crate::token::verify_signature(alg, key, msg, sig);
        if ok {
            if let Ok(mut m) = self.0.lock() {
                if m.len() < MEMO_KEYS && !known(&m) {
                    m.push((id, key.into()));
                }
            }
        }
        ok
    }
}

impl std::ops::Deref for Parsed {
    type Target = ParsedCert;
    fn deref(&self) -> &ParsedCert {
        &self.0
    }
}

/// Decoded certificates kept per process before the cache is emptied.
const CERT_CACHE: usize = 4096;
/// Decoded CRLs kept (a national CA's CRL can be megabytes).
const CRL_CACHE: usize = 32;

/// A per-process cache of values decoded from DER, keyed by the DER.
///
/// Buckets are chosen by the DER's length and last 32 octets (for a certificate or CRL, the
/// end of its signature value, as good as random) instead of a hash of the whole DER: a
/// national CA's CRL can be megabytes, and it is looked up for every document. A lookup then
/// compares whole DER only within its bucket.
type DerCache<T> = std::sync::OnceLock<std::sync::Mutex<DerMap<T>>>;

type DerMap<T> = std::collections::HashMap<(usize, [u8; 32]), Vec<(Box<[u8]>, T)>>;

/// Entries kept in one bucket (more means DER crafted to share a length and an ending).
const BUCKET_MAX: usize = 8;

/// The bucket of `der` in a [`DerCache`].
fn der_bucket(der: &[u8]) -> (usize, [u8; 32]) {
    let mut tail = [0u8; 32];
    let n = der.len().min(32);
    tail[..n].copy_from_slice(&der[der.len() - n..]);
    (der.len(), tail)
}

/// `cache[der]`, or `parse(der)` remembered there (failures are not remembered); the cache is
/// emptied when it holds `bound` entries.
fn cached<T: Clone>(
    cache: &DerCache<T>,
    bound: usize,
    der: &[u8],
    parse: impl FnOnce(&[u8]) -> Result<T, PathError>,
) -> Result<T, PathError> {
    let cache = cache.get_or_init(Default::default);
    let bucket = der_bucket(der);
    let hit = cache.lock().ok().and_then(|c| {
        c.get(&bucket)?
            .iter()
            .find(|(k, _)| **k == *der)
            .map(|(_, v)| v.clone())
    });
    if let Some(v) = hit {
        return Ok(v);
    }
    let v = parse(der)?;
    if let Ok(mut c) = cache.lock() {
        if c.len() >= bound {
            c.clear();
        }
        let entries = c.entry(bucket).or_default();
        if entries.len() >= BUCKET_MAX {
            entries.clear();
        }
        if !entries.iter().any(|(k, _)| **k == *der) {
            entries.push((der.into(), v.clone()));
        }
    }
    Ok(v)
}

/// A decoded CRL with the DER of its signed part (what its signature covers).
#[derive(Debug)]
struct ParsedCrl {
    crl: CertificateList,
    tbs: Vec<u8>,
    /// thisUpdate, as reports print it.
    this_update: String,
    /// The issuer keys its signature verified under.
    verified: Memo,
    /// Index into `revokedCertificates` by serial number ([`serial_hex`], as [`ParsedCert`]
    /// keeps it; the first entry where a serial is listed twice): a national
    /// CA's CRL lists tens of thousands, and every certificate of every path is looked up.
    revoked: std::collections::HashMap<String, usize>,
}

/// CRLs decoded once, to check many paths against (an ingest or bulk run checks every
/// document against the same set).
///
/// Finding a CRL given as DER in the process' cache costs a comparison of its whole DER, and
/// a national CA's CRL can be megabytes: with five CRLs of 20,000 entries (about 1 MB each),
/// that made a document's verification 20 times slower. A set is decoded when it is built;
/// CRLs that do not decode are left out, as [`validate_path`] always ignored them.
#[derive(Clone, Debug, Default)]
pub struct CrlSet(std::sync::Arc<[std::sync::Arc<ParsedCrl>]>);

impl CrlSet {
    /// The CRLs `der` that decode.
    pub fn new(der: &[Vec<u8>]) -> CrlSet {
        CrlSet(der.iter().filter_map(|d| parsed_crl(d).ok()).collect())
    }

    /// The empty set (no revocation information).
    pub fn empty() -> &'static CrlSet {
        static EMPTY: std::sync::OnceLock<CrlSet> = std::sync::OnceLock::new();
        EMPTY.get_or_init(CrlSet::default)
    }

    /// The CRLs `der` that decode (through the process' cache), then this set's.
    pub fn after(&self, der: &[Vec<u8>]) -> CrlSet {
        CrlSet(
            der.iter()
                .filter_map(|d| parsed_crl(d).ok())
                .chain(self.0.iter().cloned())
                .collect(),
        )
    }

    /// Number of CRLs in the set.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A serial number as [`ParsedCert`] keeps it and a decoded CRL indexes it: the hex of its
/// content octets (the same for equal numbers, however the DER was read).
fn serial_hex(serial: &rasn::types::Integer) -> String {
    hex::encode(hozon_tsa::asn1::integer_content(serial))
}

impl ParsedCrl {
    /// The entry listing the certificate with serial number `serial` ([`serial_hex`]), if any.
    fn entry(&self, serial: &str) -> Option<&rasn_pkix::RevokedCertificate> {
        self.revoked
            .get(serial)
            .and_then(|&i| self.crl.tbs_cert_list.revoked_certificates.get(i))
    }
}

fn parsed_crl(der: &[u8]) -> Result<std::sync::Arc<ParsedCrl>, PathError> {
    static CRLS: DerCache<std::sync::Arc<ParsedCrl>> = std::sync::OnceLock::new();
    cached(&CRLS, CRL_CACHE, der, |der| {
        let crl: CertificateList =
            rasn::der::decode(der).map_err(|e| PathError::Decode(e.to_string()))?;
        let tbs =
            rasn::der::encode(&crl.tbs_cert_list).map_err(|e| PathError::Decode(e.to_string()))?;
        let this_update = fmt_time(time_to_system(&crl.tbs_cert_list.this_update));
        let mut revoked = std::collections::HashMap::new();
        for (i, r) in crl.tbs_cert_list.revoked_certificates.iter().enumerate() {
            revoked.entry(serial_hex(&r.user_certificate)).or_insert(i);
        }
        Ok(std::sync::Arc::new(ParsedCrl {
            crl,
            tbs,
            this_update,
            verified: Memo::default(),
            revoked,
        }))
    })
}

/// The certificate `der`, decoded once per process (see [`Parsed`]).
pub(crate) fn certificate(der: &[u8]) -> Result<Parsed, PathError> {
    Parsed::new(der)
}

impl Parsed {
    fn new(der: &[u8]) -> Result<Parsed, PathError> {
        static CERTS: DerCache<Parsed> = std::sync::OnceLock::new();
        cached(&CERTS, CERT_CACHE, der, |der| {
            let cert: Certificate =
                rasn::der::decode(der).map_err(|e| PathError::Decode(e.to_string()))?;
            // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }: the
            // first element, where it lies in the DER the decoder just accepted.
            let tbs = hozon_tsa::asn1::der_children(der)
                .and_then(|children| children.first().copied())
                .map(|t| {
                    let start = t.as_ptr() as usize - der.as_ptr() as usize;
                    start..start + t.len()
                })
                .ok_or_else(|| PathError::Decode("certificate without a TBSCertificate".into()))?;
            // Computed once per certificate, not once per document that carries it.
            let subject = name_to_string(&cert.tbs_certificate.subject);
            let serial = serial_hex(&cert.tbs_certificate.serial_number);
            let ext = |oid: &Oid| {
                cert.tbs_certificate
                    .extensions
                    .as_ref()
                    .and_then(|exts| exts.iter().find(|e| e.extn_id == *oid))
            };
            let ski = ext(ID_CE_SUBJECT_KEY_IDENTIFIER)
                .and_then(|e| rasn::der::decode::<rasn::types::OctetString>(&e.extn_value).ok())
                .map(|k| k.to_vec());
            let aki = ext(ID_CE_AUTHORITY_KEY_IDENTIFIER)
                .and_then(|e| rasn::der::decode::<AuthorityKeyIdentifier>(&e.extn_value).ok())
                .and_then(|a| a.key_identifier.map(|k| k.to_vec()));
            Ok(Parsed(std::sync::Arc::new(ParsedCert {
                der: der.to_vec(),
                cert,
                tbs,
                subject,
                serial,
                ski,
                aki,
                sha256: std::sync::OnceLock::new(),
                verified: Memo::default(),
            })))
        })
    }

    /// SHA-256 of the certificate's DER.
    pub(crate) fn sha256(&self) -> [u8; 32] {
        *self.0.sha256.get_or_init(|| {
            let mut h = [0u8; 32];
            h.copy_from_slice(
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.der).as_ref(),
            );
            h
        })
    }

    /// The subjectKeyIdentifier, if the certificate has one that decodes.
    pub(crate) fn key_identifier(&self) -> Option<&[u8]> {
        self.ski.as_deref()
    }

    fn subject(&self) -> String {
        self.subject.clone()
    }

    /// notBefore and notAfter.
    fn validity(&self) -> (SystemTime, SystemTime) {
        let v = &self.cert.tbs_certificate.validity;
        (time_to_system(&v.not_before), time_to_system(&v.not_after))
    }

    /// The signed part of the certificate, as it appears in it.
    fn tbs(&self) -> &[u8] {
        &self.der[self.tbs.clone()]
    }

    fn extension(&self, oid: &Oid) -> Option<&Extension> {
        self.cert
            .tbs_certificate
            .extensions
            .as_ref()
            .and_then(|exts| exts.iter().find(|e| e.extn_id == *oid))
    }

    fn decode_ext<T: rasn::Decode>(&self, oid: &Oid) -> Result<Option<T>, PathError> {
        match self.extension(oid) {
            None => Ok(None),
            Some(e) => {
                rasn::der::decode(&e.extn_value)
                    .map(Some)
                    .map_err(|_| PathError::BadExtension {
                        subject: self.subject(),
                        oid: oid.to_string(),
                    })
            }
        }
    }

    fn may_issue(&self, child: &Parsed) -> bool {
        if self.cert.tbs_certificate.subject != child.cert.tbs_certificate.issuer {
            return false;
        }
        match (&child.aki, &self.ski) {
            (Some(aki), Some(ski)) => aki == ski,
            _ => true,
        }
    }
}

impl TrustAnchors {
    /// Anchors from DER certificates; an entry that does not decode is an error.
    pub fn new(ders: &[Vec<u8>]) -> Result<Self, PathError> {
        Ok(TrustAnchors {
            anchors: ders
                .iter()
                .map(|d| Parsed::new(d))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Number of anchors.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }
}

/// A certificate's revocation status at the time checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// A CRL of its issuer was given, verifies, and does not list it (as of `this_update`).
    NotRevoked {
        /// The CRL's thisUpdate.
        this_update: String,
    },
    /// Listed, but revoked after the time checked (a signature made before then stands).
    RevokedLater {
        /// The revocation date.
        date: String,
    },
    /// No usable CRL of its issuer was given.
    Unknown,
}

/// One certificate of a validated path.
#[derive(Clone, Debug)]
pub struct PathCertificate {
    /// Subject, RFC 4514.
    pub subject: String,
    /// Serial, hex.
    pub serial: String,
    /// Validity.
    pub not_before: SystemTime,
    /// Validity.
    pub not_after: SystemTime,
    /// The algorithm of the signature *on* this certificate, and the signer's key size
    /// (`None` for the anchor, whose self-signature is not relied on).
    pub signed_with: Option<(SignatureAlgorithm, usize)>,
    /// Revocation status (`Unknown` for the anchor, which is trusted as configured).
    pub revocation: Revocation,
    /// DER.
    pub der: Vec<u8>,
    /// SHA-256 of `der` (computed once per process per certificate).
    pub sha256: [u8; 32],
}

/// A path that validated.
#[derive(Clone, Debug)]
pub struct ValidatedPath {
    /// End entity first, trust anchor last.
    pub certificates: Vec<PathCertificate>,
    /// The end entity's certificate policies.
    pub policies: Vec<ObjectIdentifier>,
    /// The end entity's hcRole codes ("Medical Doctor" …), if it has any.
    pub hc_roles: Vec<String>,
    /// Card or remote signature, by the remote-signature policy marker; `None` when the
    /// certificate carries no HPKI policy at all.
    pub kind: Option<hpki::CertificateKind>,
}

/// Input of [`validate_path`].
#[derive(Clone, Copy, Debug)]
pub struct PathInput<'a> {
    /// The end-entity certificate, DER.
    pub end_entity: &'a [u8],
    /// Candidate intermediates, DER (any order; unused ones are ignored).
    pub intermediates: &'a [Vec<u8>],
    /// CRLs.
    pub crls: &'a CrlSet,
    /// The time at which the path must be valid.
    pub time: SystemTime,
    /// What the end entity is used for.
    pub purpose: Purpose,
    /// The policy marking remote-signature certificates.
    pub remote_policy: &'a Oid,
}

/// Validates a path for `input.end_entity` to one of `anchors`; see the module
/// documentation.
pub fn validate_path(
    input: &PathInput<'_>,
    anchors: &TrustAnchors,
) -> Result<ValidatedPath, PathError> {
    let ee = Parsed::new(input.end_entity)?;
    let intermediates: Vec<Parsed> = input
        .intermediates
        .iter()
        .filter_map(|d| Parsed::new(d).ok())
        .collect();
    let ctx = Ctx {
        intermediates: &intermediates,
        anchors: &anchors.anchors,
        crls: &input.crls.0,
        time: input.time,
    };
    let key = PathKey::new(&ee, &ctx, input);
    if let Some(path) = paths().remembered(&key, input.time) {
        return Ok(path.as_ref().clone());
    }
    let mut path = vec![ee.clone()];
    let mut first_error: Option<PathError> = None;
    if ctx.extend(&mut path, &mut first_error) {
        let validated = ctx.finish(&path, input)?;
        paths().remember(key, &ee, &ctx, input.time, &validated);
        return Ok(validated);
    }
    Err(match first_error {
        Some(PathError::NoIssuer { .. }) | None => PathError::NoIssuer {
            subject: ee.subject(),
            issuer: name_to_string(&ee.cert.tbs_certificate.issuer),
        },
        Some(e) => PathError::NoValidPath {
            subject: ee.subject(),
            reason: Box::new(e),
        },
    })
}

/// Paths that validated, remembered per process with the times they hold for.
///
/// An ingest or a bulk run validates the same few paths (a doctor's certificate under its CA,
/// the TSA's) for every document, only at another time each (the document's timestamp), and
/// building and checking a path again was a tenth of a document's verification. The outcome
/// depends on the time only through comparisons with fixed instants: each certificate's
/// notBefore (valid from it on) and notAfter (invalid from just after it), and each
/// revocation date a CRL of the set gives for one of the certificates (revoked from it on).
/// Between two consecutive such instants every comparison comes out the same, so one
/// validation answers for every time in that interval. The instants are collected from every
/// candidate certificate (ee, intermediates, anchors) and every CRL entry for any of their
/// serial numbers, more than the comparisons can reach, which only cuts intervals finer.
///
/// The inputs are keyed by the addresses of their decoded forms (the process' certificate and
/// CRL caches hand out one shared value per DER). An entry holds weak references to them:
/// an allocation with a weak reference is not freed, so its address cannot be reused by
/// another certificate or CRL while it is in a key, yet a decoded CRL (megabytes for a
/// national CA) is not kept alive by the memo once the caches and the callers drop it; bulk
/// runs over years of documents meet many captured CRLs. Failures are not remembered: their
/// messages name the time, and they are rare.
struct PathMemo(std::sync::Mutex<std::collections::HashMap<PathKey, PathEntry>>);

/// Keys remembered before the memo is emptied.
const PATH_MEMO: usize = 1024;
/// Intervals remembered per key (a bulk run meets one or two per path).
const PATH_INTERVALS: usize = 16;

fn paths() -> &'static PathMemo {
    static PATHS: std::sync::OnceLock<PathMemo> = std::sync::OnceLock::new();
    PATHS.get_or_init(|| PathMemo(Default::default()))
}

/// What [`validate_path`]'s outcome depends on besides the time: the decoded end entity,
/// intermediates (in order: path building tries them in order), CRLs and anchors, by address;
/// the purpose and the remote-signature policy.
#[derive(PartialEq, Eq, Hash)]
struct PathKey {
    objects: Vec<usize>,
    purpose: Purpose,
    remote_policy: ObjectIdentifier,
}

impl PathKey {
    fn new(ee: &Parsed, ctx: &Ctx<'_>, input: &PathInput<'_>) -> PathKey {
        let addr = |p: &Parsed| std::sync::Arc::as_ptr(&p.0) as usize;
        let mut objects =
            Vec::with_capacity(4 + ctx.intermediates.len() + ctx.crls.len() + ctx.anchors.len());
        objects.extend([ctx.intermediates.len(), ctx.crls.len(), ctx.anchors.len()]);
        objects.push(addr(ee));
        objects.extend(ctx.intermediates.iter().map(addr));
        objects.extend(ctx.crls.iter().map(|c| std::sync::Arc::as_ptr(c) as usize));
        objects.extend(ctx.anchors.iter().map(addr));
        PathKey {
            objects,
            purpose: input.purpose,
            remote_policy: input.remote_policy.to_owned(),
        }
    }
}

struct PathEntry {
    /// The decoded inputs the key's addresses point at: their allocations stay reserved.
    _inputs: (
        Vec<std::sync::Weak<ParsedCert>>,
        Vec<std::sync::Weak<ParsedCrl>>,
    ),
    /// The instants at which some comparison of the validation changes, sorted.
    instants: Vec<SystemTime>,
    /// Validated paths by interval: index `i` is `[instants[i-1], instants[i])`.
    paths: Vec<(usize, std::sync::Arc<ValidatedPath>)>,
}

/// The interval of `instants` that `time` falls in.
fn interval(instants: &[SystemTime], time: SystemTime) -> usize {
    instants.partition_point(|i| *i <= time)
}

impl PathMemo {
    fn remembered(&self, key: &PathKey, time: SystemTime) -> Option<std::sync::Arc<ValidatedPath>> {
        let memo = self.0.lock().ok()?;
        let entry = memo.get(key)?;
        let i = interval(&entry.instants, time);
        entry
            .paths
            .iter()
            .find(|(j, _)| *j == i)
            .map(|(_, p)| p.clone())
    }

    fn remember(
        &self,
        key: PathKey,
        ee: &Parsed,
        ctx: &Ctx<'_>,
        time: SystemTime,
        path: &ValidatedPath,
    ) {
        let Ok(mut memo) = self.0.lock() else {
            return;
        };
        if memo.len() >= PATH_MEMO && !memo.contains_key(&key) {
            memo.clear();
        }
        let entry = memo.entry(key).or_insert_with(|| PathEntry::new(ee, ctx));
        let i = interval(&entry.instants, time);
        if entry.paths.len() >= PATH_INTERVALS {
            entry.paths.clear();
        }
        if !entry.paths.iter().any(|(j, _)| *j == i) {
            entry.paths.push((i, std::sync::Arc::new(path.clone())));
        }
    }
}

impl PathEntry {
    /// An entry for the inputs of `ctx` with end entity `ee`, with no path yet.
    fn new(ee: &Parsed, ctx: &Ctx<'_>) -> PathEntry {
        let certs: Vec<&Parsed> = std::iter::once(ee)
            .chain(ctx.intermediates)
            .chain(ctx.anchors)
            .collect();
        let mut instants = Vec::with_capacity(certs.len() * 2);
        for c in &certs {
            let (not_before, not_after) = c.validity();
            instants.push(not_before);
            instants.push(not_after + std::time::Duration::from_nanos(1));
            instants.extend(
                ctx.crls
                    .iter()
                    .filter_map(|crl| crl.entry(&c.serial))
                    .map(|r| time_to_system(&r.revocation_date)),
            );
        }
        instants.sort_unstable();
        instants.dedup();
        PathEntry {
            _inputs: (
                certs
                    .iter()
                    .map(|c| std::sync::Arc::downgrade(&c.0))
                    .collect(),
                ctx.crls.iter().map(std::sync::Arc::downgrade).collect(),
            ),
            instants,
            paths: Vec::new(),
        }
    }
}

struct Ctx<'a> {
    intermediates: &'a [Parsed],
    anchors: &'a [Parsed],
    crls: &'a [std::sync::Arc<ParsedCrl>],
    time: SystemTime,
}

impl Ctx<'_> {
    /// Depth-first: extends `path` (child last) to an anchor. Returns whether it got there;
    /// keeps the first failure in `err`.
    fn extend(&self, path: &mut Vec<Parsed>, err: &mut Option<PathError>) -> bool {
        let child = path.last().cloned().expect("path is never empty");
        for anchor in self.anchors.iter().filter(|a| a.may_issue(&child)) {
            match self.check_link(&child, anchor, path.len() - 1, true) {
                Ok(()) => {
                    path.push(anchor.clone());
                    return true;
                }
                Err(e) => {
                    err.get_or_insert(e);
                }
            }
        }
        if path.len() + 1 >= MAX_PATH {
            return false;
        }
        for ca in self.intermediates.iter().filter(|c| c.may_issue(&child)) {
            if path.iter().any(|p| p.der == ca.der) {
                continue;
            }
            match self.check_link(&child, ca, path.len() - 1, false) {
                Ok(()) => {
                    path.push(ca.clone());
                    if self.extend(path, err) {
                        return true;
                    }
                    path.pop();
                }
                Err(e) => {
                    err.get_or_insert(e);
                }
            }
        }
        err.get_or_insert(PathError::NoIssuer {
            subject: child.subject(),
            issuer: name_to_string(&child.cert.tbs_certificate.issuer),
        });
        false
    }

    /// Checks that `issuer` may have issued `child` at the time: signature, validity of both
    /// (the anchor's too), CA constraints, key usage, critical extensions of the issuer.
    /// `below` is the number of non-self-issued intermediates below the issuer.
    fn check_link(
        &self,
        child: &Parsed,
        issuer: &Parsed,
        below: usize,
        is_anchor: bool,
    ) -> Result<(), PathError> {
        verify_signed(child, issuer)?;
        check_validity(child, self.time)?;
        check_validity(issuer, self.time)?;
        check_critical(issuer)?;
        let bc: Option<BasicConstraints> = issuer.decode_ext(ID_CE_BASIC_CONSTRAINTS)?;
        match bc {
            Some(bc) if bc.ca => {
                if let Some(max) = bc.path_len_constraint {
                    if rasn::types::Integer::from(below as u64) > max {
                        return Err(PathError::NotCa {
                            subject: issuer.subject(),
                            reason: format!("pathLenConstraint {max}, {below} below it"),
                        });
                    }
                }
            }
            // A v1 root without extensions is accepted as an anchor (configured trust).
            None if is_anchor && issuer.cert.tbs_certificate.extensions.is_none() => {}
            _ => {
                return Err(PathError::NotCa {
                    subject: issuer.subject(),
                    reason: "basicConstraints cA is not set".into(),
                })
            }
        }
        if let Some(ku) = issuer.decode_ext::<KeyUsage>(ID_CE_KEY_USAGE)? {
            if !bit(&ku, 5) {
                return Err(PathError::KeyUsage {
                    subject: issuer.subject(),
                    needed: "keyCertSign",
                });
            }
        }
        Ok(())
    }

    fn revocation(&self, cert: &Parsed, issuer: &Parsed) -> Result<Revocation, PathError> {
        let mut status = Revocation::Unknown;
        for parsed in self.crls {
            let (crl, tbs) = (&parsed.crl, &parsed.tbs);
            if crl.tbs_cert_list.issuer != cert.cert.tbs_certificate.issuer {
                continue;
            }
            let verified = signature_verifier(
                &crl.signature_algorithm,
                None,
                &issuer.cert.tbs_certificate.subject_public_key_info,
            )
            .ok()
            .is_some_and(|(alg, _, _)| {
                parsed.verified.verify(
                    alg,
                    issuer
                        .cert
                        .tbs_certificate
                        .subject_public_key_info
                        .subject_public_key
                        .as_raw_slice(),
                    tbs,
                    crl.signature.as_raw_slice(),
                )
            });
            if !verified {
                continue;
            }
            match parsed.entry(&cert.serial) {
                Some(r) => {
                    let date = time_to_system(&r.revocation_date);
                    if date <= self.time {
                        return Err(PathError::Revoked {
                            subject: cert.subject(),
                            date: fmt_time(date),
                            reason: crl_reason(r),
                        });
                    }
                    status = Revocation::RevokedLater {
                        date: fmt_time(date),
                    };
                }
                None => {
                    if status == Revocation::Unknown {
                        status = Revocation::NotRevoked {
                            this_update: parsed.this_update.clone(),
                        };
                    }
                }
            }
        }
        Ok(status)
    }

    fn finish(&self, path: &[Parsed], input: &PathInput<'_>) -> Result<ValidatedPath, PathError> {
        let ee = &path[0];
        check_critical(ee)?;
        if let Some(ku) = ee.decode_ext::<KeyUsage>(ID_CE_KEY_USAGE)? {
            let ok = match input.purpose {
                Purpose::DocumentSignature | Purpose::TimeStamping => bit(&ku, 0) || bit(&ku, 1),
            };
            if !ok {
                return Err(PathError::KeyUsage {
                    subject: ee.subject(),
                    needed: "digitalSignature or nonRepudiation",
                });
            }
        }
        let mut certificates = Vec::with_capacity(path.len());
        for (i, p) in path.iter().enumerate() {
            let issuer = path.get(i + 1);
            let (signed_with, revocation) = match issuer {
                Some(iss) => (
                    signature_verifier(
                        &p.cert.signature_algorithm,
                        None,
                        &iss.cert.tbs_certificate.subject_public_key_info,
                    )
                    .ok()
                    .map(|(_, a, bits)| (a, bits)),
                    self.revocation(p, iss)?,
                ),
                None => (None, Revocation::Unknown),
            };
            let (not_before, not_after) = p.validity();
            certificates.push(PathCertificate {
                subject: p.subject(),
                serial: p.serial.clone(),
                not_before,
                not_after,
                signed_with,
                revocation,
                der: p.der.clone(),
                sha256: p.sha256(),
            });
        }
        let policies: Vec<ObjectIdentifier> = ee
            .decode_ext::<Vec<PolicyInformation>>(hpki::ID_CE_CERTIFICATE_POLICIES)?
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.policy_identifier)
            .collect();
        let hpki_policy = policies
            .iter()
            .any(|p| p.starts_with(hpki::HPKI_POLICY_ARC) || **p == *input.remote_policy);
        let kind = hpki_policy.then(|| {
            if policies.iter().any(|p| **p == *input.remote_policy) {
                hpki::CertificateKind::Remote
            } else {
                hpki::CertificateKind::Card
            }
        });
        Ok(ValidatedPath {
            certificates,
            hc_roles: hc_roles(ee),
            policies,
            kind,
        })
    }
}

fn bit(bits: &KeyUsage, n: usize) -> bool {
    bits.get(n).map(|b| *b).unwrap_or(false)
}

fn crl_reason(r: &rasn_pkix::RevokedCertificate) -> String {
    const NAMES: [&str; 11] = [
        "unspecified",
        "keyCompromise",
        "cACompromise",
        "affiliationChanged",
        "superseded",
        "cessationOfOperation",
        "certificateHold",
        "unused",
        "removeFromCRL",
        "privilegeWithdrawn",
        "aACompromise",
    ];
    r.crl_entry_extensions
        .as_ref()
        .and_then(|exts| {
            exts.iter()
                .find(|e| e.extn_id == *Oid::const_new(&[2, 5, 29, 21]))
        })
        .and_then(|e| e.extn_value.get(2).copied())
        .and_then(|code| NAMES.get(code as usize).copied())
        .unwrap_or("unspecified")
        .to_owned()
}

fn verify_signed(child: &Parsed, issuer: &Parsed) -> Result<(), PathError> {
    let spki = &issuer.cert.tbs_certificate.subject_public_key_info;
    let (alg, _, _) =
        signature_verifier(&child.cert.signature_algorithm, None, spki).map_err(|reason| {
            PathError::Algorithm {
                subject: child.subject(),
                reason,
            }
        })?;
    if child.verified.verify(
        alg,
        spki.subject_public_key.as_raw_slice(),
        child.tbs(),
        child.cert.signature_value.as_raw_slice(),
    ) {
        Ok(())
    } else {
        Err(PathError::BadSignature {
            subject: child.subject(),
            issuer: issuer.subject(),
        })
    }
}

fn check_validity(c: &Parsed, at: SystemTime) -> Result<(), PathError> {
    let (nb, na) = c.validity();
    if at < nb || at > na {
        return Err(PathError::Expired {
            subject: c.subject(),
            at: fmt_time(at),
            not_before: fmt_time(nb),
            not_after: fmt_time(na),
        });
    }
    Ok(())
}

fn check_critical(c: &Parsed) -> Result<(), PathError> {
    let known: [&Oid; 11] = [
        ID_CE_SUBJECT_KEY_IDENTIFIER,
        ID_CE_KEY_USAGE,
        ID_CE_SUBJECT_ALT_NAME,
        ID_CE_ISSUER_ALT_NAME,
        ID_CE_BASIC_CONSTRAINTS,
        ID_CE_CRL_DISTRIBUTION_POINTS,
        ID_CE_AUTHORITY_KEY_IDENTIFIER,
        ID_CE_EXT_KEY_USAGE,
        ID_PE_AUTHORITY_INFO_ACCESS,
        hpki::ID_CE_CERTIFICATE_POLICIES,
        hpki::ID_CE_SUBJECT_DIRECTORY_ATTRIBUTES,
    ];
    for e in c
        .cert
        .tbs_certificate
        .extensions
        .iter()
        .flat_map(|exts| exts.iter())
    {
        if e.critical && !known.iter().any(|k| e.extn_id == **k) {
            return Err(PathError::UnknownCriticalExtension {
                subject: c.subject(),
                oid: e.extn_id.to_string(),
            });
        }
    }
    Ok(())
}

fn hc_roles(c: &Parsed) -> Vec<String> {
    let Ok(Some(attrs)) =
        c.decode_ext::<Vec<rasn_pkix::Attribute>>(hpki::ID_CE_SUBJECT_DIRECTORY_ATTRIBUTES)
    else {
        return Vec::new();
    };
    let mut roles = Vec::new();
    for a in attrs
        .iter()
        .filter(|a| a.r#type == *hpki::ID_HCPKI_AT_HEALTHCARE_ACTOR)
    {
        for v in a.values.iter() {
            // HCActorData (SET OF HCActor), or a bare HCActor as some issuers write it.
            let actors: Vec<hpki::HcActor> =
                match rasn::der::decode::<hpki::HcActorData>(v.as_bytes()) {
                    Ok(set) => set.into_vec(),
                    Err(_) => rasn::der::decode::<hpki::HcActor>(v.as_bytes())
                        .map(|a| vec![a])
                        .unwrap_or_default(),
                };
            for actor in actors {
                if let Some(coded) = actor.coded_data {
                    roles.push(coded.code_data_value);
                }
            }
        }
    }
    roles
}

impl From<CertCheckError> for PathError {
    fn from(e: CertCheckError) -> Self {
        PathError::Decode(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DER sharing a length and an ending share a bucket, and are still told apart by their
    /// whole bytes; a hit does not parse again; a crowded bucket stays bounded.
    #[test]
    fn der_cache_compares_whole_der_within_a_bucket() {
        static CACHE: DerCache<u32> = std::sync::OnceLock::new();
        let tail = [7u8; 40];
        let a = [&[1u8, 2, 3][..], &tail].concat();
        let b = [&[9u8, 2, 3][..], &tail].concat();
        assert_eq!(der_bucket(&a), der_bucket(&b));
        assert_eq!(cached(&CACHE, 100, &a, |_| Ok(1)).unwrap(), 1);
        assert_eq!(cached(&CACHE, 100, &b, |_| Ok(2)).unwrap(), 2);
        let again = |der: &[u8]| {
            cached(&CACHE, 100, der, |_| -> Result<u32, PathError> {
                panic!("a cached value was parsed again")
            })
            .unwrap()
        };
        assert_eq!((again(&a), again(&b)), (1, 2));
        // Failures are not remembered.
        let c = [&[5u8, 2, 3][..], &tail].concat();
        assert!(cached(&CACHE, 100, &c, |_| Err(PathError::Decode("bad".into()))).is_err());
        assert_eq!(cached(&CACHE, 100, &c, |_| Ok(3)).unwrap(), 3);
        // Many colliding entries: the bucket is emptied, never grows past its bound.
        for i in 0..40u8 {
            let d = [&[i, 0xee][..], &tail[1..]].concat();
            cached(&CACHE, 100, &d, |_| Ok(u32::from(i))).unwrap();
        }
        let map = CACHE.get().unwrap().lock().unwrap();
        assert!(map.values().all(|v| v.len() <= BUCKET_MAX));
    }
}
