//! Signed FHIR documents (DESIGN §3): a Bundle carrying `Bundle.signature`, whose signature
//! covers the RFC 8785 (JCS) canonical JSON of the Bundle without `signature`.
//!
//! [`verify_document`] checks, in order, and stops at the first failure (each has a stable
//! code, [`DocumentError::code`], which the dev corpus' manifest uses):
//! 1. the bytes are JSON, a `Bundle`, with a `signature` whose `data` is base64;
//! 2. the signature over the JCS bytes: `application/jose` (compact JWS, detached payload,
//!    key from `x5c[0]`; RS/PS/ES 256–512) or `application/pkcs7-signature` (detached CMS
//!    SignedData: messageDigest, ESS signing-certificate binding, signature over the original
//!    signed-attribute bytes);
//! 3. the signature timestamp, if any: the CAdES-T unsigned attribute, or for JWS the token
//!    kept beside the document, over the signature (CMS: its octets; JWS: the ASCII of its
//!    third part); the token is verified and its TSA's path validated at its `genTime`;
//! 4. the signer's certificate path ([`crate::path`]) at the *signing time*: the timestamp's
//!    `genTime` when there is one, otherwise the verification time (a claimed signing time —
//!    `sigT`, signingTime — is reported but never trusted);
//! 5. the usage restriction: a remote-signature certificate may sign only the document types
//!    of [`UsagePolicy`] (by default e-prescriptions and referral letters).

use std::time::SystemTime;

use crate::json::Json;
use aws_lc_rs::signature::{self, VerificationAlgorithm};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hozon_tsa::asn1::{ID_DATA, ID_SIGNED_DATA};
use hozon_tsa::signer::DigestAlgorithm;
use rasn::types::Oid;
use rasn_cms::ContentInfo;
use serde_json::Value;

use crate::hpki::{CertificateKind, DocumentType};
use crate::path::{
    validate_path, CrlSet, PathError, PathInput, Purpose, TrustAnchors, ValidatedPath,
};
use crate::token::{
    verify_signed_data, verify_token, SignatureAlgorithm, TokenVerifyError, VerifiedToken,
};

/// `id-aa-signatureTimeStampToken` (RFC 3161 Appendix A).
pub const ID_AA_SIGNATURE_TIME_STAMP_TOKEN: &Oid =
    Oid::const_new(&[1, 2, 840, 113549, 1, 9, 16, 2, 14]);

/// `Bundle.signature.sigFormat` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignatureFormat {
    /// `application/jose`.
    Jose,
    /// `application/pkcs7-signature`.
    Cms,
}

/// Which document types a remote-signature certificate may sign (card signatures may sign
/// anything).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsagePolicy {
    /// Types a remote-signature certificate may sign.
    pub remote_allowed: Vec<DocumentType>,
}

impl Default for UsagePolicy {
    /// The HPKI expert meeting's conclusion: e-prescriptions and referral letters.
    fn default() -> Self {
        UsagePolicy {
            remote_allowed: vec![DocumentType::Prescription, DocumentType::Referral],
        }
    }
}

impl UsagePolicy {
    /// Whether a signer of `kind` may sign a document of `doc_type`.
    pub fn permits(&self, kind: Option<CertificateKind>, doc_type: Option<DocumentType>) -> bool {
        match kind {
            Some(CertificateKind::Remote) => {
                doc_type.is_some_and(|t| self.remote_allowed.contains(&t))
            }
            _ => true,
        }
    }
}

/// Everything besides the document that verification needs.
#[derive(Clone, Copy, Debug)]
pub struct DocumentContext<'a> {
    /// Trust anchors (HPKI roots and TSA roots).
    pub anchors: &'a TrustAnchors,
    /// CRLs, decoded once for all the documents verified against them.
    pub crls: &'a CrlSet,
    /// Further certificates for path building (intermediate CAs), DER.
    pub extra_certs: &'a [Vec<u8>],
    /// The usage restriction.
    pub usage: &'a UsagePolicy,
    /// The policy OID marking remote-signature certificates.
    pub remote_policy: &'a Oid,
    /// A JWS signature's timestamp token, kept beside the document.
    pub side_token: Option<&'a [u8]>,
    /// The verification time (used when there is no signature timestamp).
    pub now: SystemTime,
}

/// Why a document does not verify.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// Not JSON.
    #[error("not JSON: {0}")]
    NotJson(String),
    /// JSON, but not a FHIR Bundle.
    #[error("not a FHIR Bundle (resourceType {0})")]
    NotABundle(String),
    /// No `Bundle.signature`.
    #[error("the Bundle has no signature")]
    NoSignature,
    /// The signature element or its data is malformed.
    #[error("malformed signature: {0}")]
    MalformedSignature(String),
    /// A sigFormat or algorithm this verifier does not support.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The signature does not verify over the document.
    #[error("the signature does not verify: {0}")]
    SignatureInvalid(String),
    /// The CMS messageDigest is not the hash of the document: it was changed after signing.
    #[error("the document was changed after signing (CMS messageDigest differs)")]
    DigestMismatch,
    /// The signature timestamp is bad.
    #[error("signature timestamp: {0}")]
    Timestamp(String),
    /// The signer's certificate path failed.
    #[error("signer certificate: {0}")]
    Certificate(#[from] PathError),
    /// A remote-signature certificate signed a document type it may not sign.
    #[error("a remote-signature certificate may not sign a {doc_type} (usage restriction)")]
    UsageNotPermitted {
        /// The document type, or "document of unknown type".
        doc_type: String,
    },
}

impl DocumentError {
    /// Stable code (as in the dev corpus' manifest).
    pub fn code(&self) -> &'static str {
        match self {
            DocumentError::NotJson(_) => "not-json",
            DocumentError::NotABundle(_) => "not-a-bundle",
            DocumentError::NoSignature => "unsigned",
            DocumentError::MalformedSignature(_) => "malformed-signature",
            DocumentError::Unsupported(_) => "unsupported",
            DocumentError::SignatureInvalid(_) => "signature-invalid",
            DocumentError::DigestMismatch => "digest-mismatch",
            DocumentError::Timestamp(_) => "timestamp-invalid",
            DocumentError::Certificate(e) => path_code(e),
            DocumentError::UsageNotPermitted { .. } => "usage-not-permitted",
        }
    }
}

fn path_code(e: &PathError) -> &'static str {
    match e {
        PathError::Expired { .. } => "certificate-expired",
        PathError::Revoked { .. } => "certificate-revoked",
        PathError::NoValidPath { reason, .. } => path_code(reason),
        _ => "untrusted-certificate",
    }
}

/// The signature timestamp of a document, verified.
#[derive(Clone, Debug)]
pub struct SignatureTimestamp {
    /// The token.
    pub token: VerifiedToken,
    /// Its TSA's path, validated at `genTime`.
    pub tsa_path: ValidatedPath,
}

/// A document that verified.
#[derive(Clone, Debug)]
pub struct VerifiedDocument {
    /// `Bundle.id`.
    pub bundle_id: Option<String>,
    /// The document type from `Composition.type`, if known.
    pub doc_type: Option<DocumentType>,
    /// The `Composition.type` code as written.
    pub doc_type_code: Option<String>,
    /// Signature format.
    pub format: SignatureFormat,
    /// Signature algorithm and key size.
    pub algorithm: (SignatureAlgorithm, usize),
    /// The signer's validated path.
    pub signer: ValidatedPath,
    /// The signing time the signature claims (sigT, signingTime), not trusted.
    pub claimed_time: Option<SystemTime>,
    /// The signature timestamp.
    pub timestamp: Option<SignatureTimestamp>,
    /// The time the signer's path was validated at.
    pub validated_at: SystemTime,
    /// The JCS bytes the signature covers.
    pub signed_bytes_len: usize,
}

/// RFC 8785 canonical JSON of `bundle` without its `signature` member, for building
/// documents. It goes through the [`Json`] tree and [`crate::jcs`], while verification
/// writes the JCS straight from the text ([`crate::canonical`]): two implementations, which
/// every document of the dev corpus holds to each other.
pub fn signed_bytes(bundle: &Value) -> Vec<u8> {
    let text = serde_json::to_vec(bundle).unwrap_or_default();
    Json::parse(&text)
        .map(|json| signed_json(&json))
        .unwrap_or_default()
}

/// RFC 8785 canonical JSON of the parsed `bundle` without its `signature` member.
fn signed_json(bundle: &Json<'_>) -> Vec<u8> {
    match bundle {
        Json::Object(members) => crate::jcs::object_without(members, "signature"),
        other => crate::jcs::to_vec(other),
    }
}

/// The fields of a Bundle that verification reads, picked out of its text while it is
/// canonicalized ([`crate::canonical`]): each as the text of its value.
#[derive(Default)]
struct BundleFields<'a> {
    resource_type: Option<&'a str>,
    id: Option<&'a str>,
    /// Whether the Bundle has a `signature` member.
    signature: bool,
    /// `signature.sigFormat` and `signature.data`.
    sig_format: Option<&'a str>,
    sig_data: Option<&'a str>,
    /// The entry being read.
    entry: usize,
    /// `entry[i].resource.resourceType` and `entry[i].resource.type`, by entry.
    resource_types: Vec<(usize, &'a str)>,
    types: Vec<(usize, &'a str)>,
}

impl BundleFields<'_> {
    const ROOT: u32 = 1;
    const RESOURCE_TYPE: u32 = 2;
    const ID: u32 = 3;
    const SIGNATURE: u32 = 4;
    const ENTRIES: u32 = 5;
    const ENTRY: u32 = 6;
    const RESOURCE: u32 = 7;
    const ENTRY_RESOURCE_TYPE: u32 = 8;
    const ENTRY_TYPE: u32 = 9;
    const SIG_FORMAT: u32 = 10;
    const SIG_DATA: u32 = 11;

    /// `Composition.type.coding[].code` of the first entry whose resource is a Composition.
    fn composition_type(&self) -> Option<String> {
        let (entry, _) = self
            .resource_types
            .iter()
            .find(|(_, t)| json_str(t).as_deref() == Some("Composition"))?;
        let (_, text) = self.types.iter().find(|(e, _)| e == entry)?;
        Json::parse(text.as_bytes())
            .ok()?
            .get("coding")?
            .as_array()?
            .iter()
            .find_map(|c| c.get("code").and_then(Json::as_str).map(str::to_owned))
    }
}

impl<'a> crate::canonical::Watch<'a> for BundleFields<'a> {
    fn root(&mut self) -> u32 {
        Self::ROOT
    }

    fn member(&mut self, parent: u32, name: &str) -> u32 {
        match (parent, name) {
            (Self::ROOT, "resourceType") => Self::RESOURCE_TYPE,
            (Self::ROOT, "id") => Self::ID,
            (Self::ROOT, "signature") => Self::SIGNATURE,
            (Self::ROOT, "entry") => Self::ENTRIES,
            (Self::ENTRY, "resource") => Self::RESOURCE,
            (Self::RESOURCE, "resourceType") => Self::ENTRY_RESOURCE_TYPE,
            (Self::RESOURCE, "type") => Self::ENTRY_TYPE,
            (Self::SIGNATURE, "sigFormat") => Self::SIG_FORMAT,
            (Self::SIGNATURE, "data") => Self::SIG_DATA,
            _ => 0,
        }
    }

    fn element(&mut self, parent: u32, index: usize) -> u32 {
        if parent == Self::ENTRIES {
            self.entry = index;
            Self::ENTRY
        } else {
            0
        }
    }

    fn value(&mut self, state: u32, text: &'a str) {
        match state {
            Self::RESOURCE_TYPE => self.resource_type = Some(text),
            Self::ID => self.id = Some(text),
            Self::SIGNATURE => self.signature = true,
            Self::SIG_FORMAT => self.sig_format = Some(text),
            Self::SIG_DATA => self.sig_data = Some(text),
            Self::ENTRY_RESOURCE_TYPE => self.resource_types.push((self.entry, text)),
            Self::ENTRY_TYPE => self.types.push((self.entry, text)),
            _ => {}
        }
    }
}

/// The string a JSON value's text (valid JSON, as the canonicalizer hands it over) holds, if
/// it is a string: borrowed as it is when it has no escapes.
fn json_str(text: &str) -> Option<std::borrow::Cow<'_, str>> {
    if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        if !inner.contains('\\') {
            return Some(std::borrow::Cow::Borrowed(inner));
        }
    }
    match Json::parse(text.as_bytes()).ok()? {
        Json::String(s) => Some(s),
        _ => None,
    }
}

struct SignatureResult {
    format: SignatureFormat,
    algorithm: (SignatureAlgorithm, usize),
    signer_cert: Vec<u8>,
    carried_certs: Vec<Vec<u8>>,
    claimed_time: Option<SystemTime>,
    /// The token and the bytes its imprint must cover.
    timestamp: Option<(Vec<u8>, Vec<u8>)>,
}

/// Verifies one signed FHIR document; see the module documentation.
pub fn verify_document(
    bytes: &[u8],
    ctx: &DocumentContext<'_>,
) -> Result<VerifiedDocument, DocumentError> {
    // The JCS bytes the signature covers, and the fields read below, in one pass.
    let mut fields = BundleFields::default();
    let payload = crate::canonical::canonicalize(bytes, Some("signature"), &mut fields)
        .map_err(|e| DocumentError::NotJson(e.to_string()))?;
    let resource_type = fields.resource_type.and_then(json_str);
    let resource_type = resource_type.as_deref().unwrap_or("absent");
    if resource_type != "Bundle" {
        return Err(DocumentError::NotABundle(resource_type.to_owned()));
    }
    // `signature.sigFormat` and `.data` were picked out with the rest (only when `signature`
    // is an object: its members are watched, an array's elements are not).
    if !fields.signature {
        return Err(DocumentError::NoSignature);
    }
    let sig_format = fields
        .sig_format
        .and_then(json_str)
        .ok_or_else(|| DocumentError::MalformedSignature("no sigFormat".into()))?;
    let data = fields
        .sig_data
        .and_then(json_str)
        .ok_or_else(|| DocumentError::MalformedSignature("no data".into()))?;
    let data = STANDARD
        .decode(data.as_bytes())
        .map_err(|e| DocumentError::MalformedSignature(format!("data is not base64: {e}")))?;

    let result = match sig_format.as_ref() {
        "application/jose" => verify_jws(&data, &payload, ctx)?,
        "application/pkcs7-signature" => verify_cms(&data, &payload, ctx)?,
        other => return Err(DocumentError::Unsupported(format!("sigFormat {other}"))),
    };

    let timestamp = match &result.timestamp {
        None => None,
        Some((token, covered)) => Some(verify_signature_timestamp(token, covered, ctx)?),
    };
    let validated_at = timestamp
        .as_ref()
        .map(|t| t.token.gen_time)
        .unwrap_or(ctx.now);
    let mut intermediates = result.carried_certs.clone();
    intermediates.extend_from_slice(ctx.extra_certs);
    let signer = validate_path(
        &PathInput {
            end_entity: &result.signer_cert,
            intermediates: &intermediates,
            crls: ctx.crls,
            time: validated_at,
            purpose: Purpose::DocumentSignature,
            remote_policy: ctx.remote_policy,
        },
        ctx.anchors,
    )?;
    let doc_type_code = fields.composition_type();
    let doc_type = doc_type_code.as_deref().and_then(DocumentType::from_loinc);
    if !ctx.usage.permits(signer.kind, doc_type) {
        return Err(DocumentError::UsageNotPermitted {
            doc_type: doc_type.map_or_else(
                || {
                    format!(
                        "document of type {}",
                        doc_type_code.as_deref().unwrap_or("unknown")
                    )
                },
                |t| t.as_str().to_owned(),
            ),
        });
    }
    Ok(VerifiedDocument {
        bundle_id: fields.id.and_then(json_str).map(|s| s.into_owned()),
        doc_type,
        doc_type_code,
        format: result.format,
        algorithm: result.algorithm,
        signer,
        claimed_time: result.claimed_time,
        timestamp,
        validated_at,
        signed_bytes_len: payload.len(),
    })
}

fn verify_signature_timestamp(
    token: &[u8],
    covered: &[u8],
    ctx: &DocumentContext<'_>,
) -> Result<SignatureTimestamp, DocumentError> {
    let t = verify_token(token, None, None, ctx.extra_certs)
        .map_err(|e| DocumentError::Timestamp(e.to_string()))?;
    if t.imprint != t.digest.digest(covered) {
        return Err(DocumentError::Timestamp(
            "the token does not cover this signature".into(),
        ));
    }
    let tsa_path = validate_path(
        &PathInput {
            end_entity: &t.certificate,
            intermediates: ctx.extra_certs,
            crls: ctx.crls,
            time: t.gen_time,
            purpose: Purpose::TimeStamping,
            remote_policy: ctx.remote_policy,
        },
        ctx.anchors,
    )
    .map_err(|e| DocumentError::Timestamp(format!("TSA certificate: {e}")))?;
    Ok(SignatureTimestamp { token: t, tsa_path })
}

fn jws_algorithm(alg: &str) -> Option<(&'static dyn VerificationAlgorithm, SignatureAlgorithm)> {
    use DigestAlgorithm as D;
    Some(match alg {
        "RS256" => (
            &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
            SignatureAlgorithm::RsaPkcs1(D::Sha256),
        ),
        "RS384" => (
            &signature::RSA_PKCS1_2048_8192_SHA384,
            SignatureAlgorithm::RsaPkcs1(D::Sha384),
        ),
        "RS512" => (
            &signature::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
            SignatureAlgorithm::RsaPkcs1(D::Sha512),
        ),
        "PS256" => (
            &signature::RSA_PSS_2048_8192_SHA256,
            SignatureAlgorithm::RsaPss(D::Sha256),
        ),
        "PS384" => (
            &signature::RSA_PSS_2048_8192_SHA384,
            SignatureAlgorithm::RsaPss(D::Sha384),
        ),
        "PS512" => (
            &signature::RSA_PSS_2048_8192_SHA512,
            SignatureAlgorithm::RsaPss(D::Sha512),
        ),
        "ES256" => (
            &signature::ECDSA_P256_SHA256_FIXED,
            SignatureAlgorithm::Ecdsa(D::Sha256),
        ),
        "ES384" => (
            &signature::ECDSA_P384_SHA384_FIXED,
            SignatureAlgorithm::Ecdsa(D::Sha384),
        ),
        _ => return None,
    })
}

fn verify_jws(
    data: &[u8],
    payload: &[u8],
    ctx: &DocumentContext<'_>,
) -> Result<SignatureResult, DocumentError> {
    let malformed = |s: &str| DocumentError::MalformedSignature(format!("JWS: {s}"));
    let text = std::str::from_utf8(data).map_err(|_| malformed("not ASCII"))?;
    let parts: Vec<&str> = text.trim().split('.').collect();
    let [header_b64, payload_b64, sig_b64] = parts[..] else {
        return Err(malformed("not a compact serialisation (three parts)"));
    };
    // The JWS signing input, `header.payload` (RFC 7515 §5.2), with the payload encoded
    // straight into it.
    let mut signing_input = String::with_capacity(header_b64.len() + 1 + payload.len() * 4 / 3 + 4);
    signing_input.push_str(header_b64);
    signing_input.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut signing_input);
    let payload_expected = &signing_input[header_b64.len() + 1..];
    if !payload_b64.is_empty() && payload_b64 != payload_expected {
        return Err(DocumentError::SignatureInvalid(
            "the JWS carries another payload than this document".into(),
        ));
    }
    let header: Value = URL_SAFE_NO_PAD
        .decode(header_b64)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or_else(|| malformed("protected header is not base64url JSON"))?;
    if let Some(crit) = header.get("crit") {
        return Err(DocumentError::Unsupported(format!(
            "JWS critical header parameters {crit}"
        )));
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("no alg"))?;
    let (verifier, sig_alg) =
        jws_algorithm(alg).ok_or_else(|| DocumentError::Unsupported(format!("JWS alg {alg}")))?;
    let x5c: Vec<Vec<u8>> = header
        .get("x5c")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("no x5c certificate chain"))?
        .iter()
        .map(|c| c.as_str().and_then(|s| STANDARD.decode(s).ok()))
        .collect::<Option<_>>()
        .ok_or_else(|| malformed("x5c entry is not base64"))?;
    let signer_cert = x5c.first().cloned().ok_or_else(|| malformed("empty x5c"))?;
    let cert = crate::path::certificate(&signer_cert)
        .map_err(|e| malformed(&format!("x5c[0] is not a certificate: {e}")))?;
    let spki = &cert.cert.tbs_certificate.subject_public_key_info;
    let sig = URL_SAFE_NO_PAD
        .decode(sig_b64)
        .map_err(|_| malformed("signature is not base64url"))?;
    if !crate::token::verify_signature(
        verifier,
        spki.subject_public_key.as_raw_slice(),
        signing_input.as_bytes(),
        &sig,
    ) {
        return Err(DocumentError::SignatureInvalid(format!(
            "{alg} with x5c[0]'s key"
        )));
    }
    let key_bits = crate::token::signature_verifier(
        &rasn_pkix::AlgorithmIdentifier {
            algorithm: spki.algorithm.algorithm.clone(),
            parameters: None,
        },
        Some(sig_alg.digest()),
        spki,
    )
    .map(|(_, _, bits)| bits)
    .unwrap_or(0);
    let claimed_time = header
        .get("sigT")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .and_then(|t| u64::try_from(t.timestamp()).ok())
        .map(|s| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s));
    Ok(SignatureResult {
        format: SignatureFormat::Jose,
        algorithm: (sig_alg, key_bits),
        signer_cert,
        carried_certs: x5c[1..].to_vec(),
        claimed_time,
        timestamp: ctx
            .side_token
            .map(|t| (t.to_vec(), sig_b64.as_bytes().to_vec())),
    })
}

fn verify_cms(
    data: &[u8],
    payload: &[u8],
    ctx: &DocumentContext<'_>,
) -> Result<SignatureResult, DocumentError> {
    let ci: ContentInfo = rasn::der::decode(data)
        .map_err(|e| DocumentError::MalformedSignature(format!("CMS ContentInfo: {e}")))?;
    if ci.content_type != *ID_SIGNED_DATA {
        return Err(DocumentError::MalformedSignature(format!(
            "CMS content type {} is not signedData",
            ci.content_type
        )));
    }
    let signed = verify_signed_data(
        ci.content.as_bytes(),
        ID_DATA,
        Some(payload),
        ctx.extra_certs,
    )
    .map_err(|e| match e {
        TokenVerifyError::MessageDigest => DocumentError::DigestMismatch,
        TokenVerifyError::BadSignature => {
            DocumentError::SignatureInvalid("CMS signature over the signed attributes".into())
        }
        TokenVerifyError::UnsupportedAlgorithm(a) => DocumentError::Unsupported(a),
        other => DocumentError::MalformedSignature(format!("CMS: {other}")),
    })?;
    let mut timestamp = None;
    for attr in &signed.unsigned_attrs {
        if attr.r#type == *ID_AA_SIGNATURE_TIME_STAMP_TOKEN {
            let token = attr
                .values
                .iter()
                .next()
                .map(|v| v.as_bytes().to_vec())
                .ok_or_else(|| DocumentError::Timestamp("empty signatureTimeStampToken".into()))?;
            if timestamp.is_some() {
                return Err(DocumentError::Timestamp(
                    "more than one signature timestamp".into(),
                ));
            }
            timestamp = Some((token, signed.signature.clone()));
        }
    }
    Ok(SignatureResult {
        format: SignatureFormat::Cms,
        algorithm: (signed.signature_algorithm, signed.key_bits),
        signer_cert: signed.cert.der.clone(),
        carried_certs: signed.certificates.clone(),
        claimed_time: signed.signing_time,
        timestamp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JCS of `json` as verification makes it (straight from the text), checked against
    /// the tree path that signing uses.
    fn jcs(json: &str) -> String {
        let v = Json::parse(json.as_bytes()).unwrap();
        let text = crate::canonical::canonicalize(json.as_bytes(), None, &mut ()).unwrap();
        assert_eq!(text, crate::jcs::to_vec(&v), "{json}");
        String::from_utf8(text).unwrap()
    }

    /// RFC 8785 §3.2.2 (the input of the RFC, byte for byte) and §3.2.3 (property sorting by
    /// UTF-16 code units: the emoji's surrogate pair sorts before U+FB33).
    #[test]
    fn jcs_matches_rfc_8785_examples() {
        let input = r#"{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}"#;
        assert_eq!(
            jcs(input),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
        let sorting = r#"{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "1": "One",
  "\ud83d\ude00": "Emoji: Grinning Face",
  "\u0080": "Control",
  "\u00f6": "Latin Small Letter O With Diaeresis"
}"#;
        let out = jcs(sorting);
        let order: Vec<&str> = [
            "Carriage Return",
            "One",
            "Control",
            "Latin Small Letter O With Diaeresis",
            "Euro Sign",
            "Emoji: Grinning Face",
            "Hebrew Letter Dalet With Dagesh",
        ]
        .to_vec();
        let positions: Vec<usize> = order.iter().map(|s| out.find(s).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{out}");
    }

    /// Numbers from RFC 8785 Appendix B (ES6 Number.prototype.toString).
    #[test]
    fn jcs_numbers_follow_es6() {
        for (input, want) in [
            ("0", "0"),
            ("-0", "0"),
            ("1e21", "1e+21"),
            ("1e20", "100000000000000000000"),
            ("5e-324", "5e-324"),
            ("9007199254740992", "9007199254740992"),
            ("295147905179352830000", "295147905179352830000"),
            ("0.000001", "0.000001"),
            ("1e-7", "1e-7"),
        ] {
            assert_eq!(jcs(&format!("[{input}]")), format!("[{want}]"), "{input}");
        }
    }

    #[test]
    fn usage_policy_default() {
        let p = UsagePolicy::default();
        let remote = Some(CertificateKind::Remote);
        assert!(p.permits(remote, Some(DocumentType::Prescription)));
        assert!(p.permits(remote, Some(DocumentType::Referral)));
        assert!(!p.permits(remote, Some(DocumentType::DischargeSummary)));
        assert!(!p.permits(remote, None));
        assert!(p.permits(
            Some(CertificateKind::Card),
            Some(DocumentType::DischargeSummary)
        ));
    }

    #[test]
    fn malformed_inputs_are_named() {
        let anchors = TrustAnchors::default();
        let usage = UsagePolicy::default();
        let ctx = DocumentContext {
            anchors: &anchors,
            crls: CrlSet::empty(),
            extra_certs: &[],
            usage: &usage,
            remote_policy: crate::hpki::TEST_REMOTE_SIGNATURE_POLICY,
            side_token: None,
            now: SystemTime::now(),
        };
        let code = |b: &[u8]| verify_document(b, &ctx).unwrap_err().code();
        assert_eq!(code(b"{not json"), "not-json");
        // Two signatures (or two of any member) are two readings of one document.
        let twice = br#"{"resourceType":"Bundle","signature":{"data":"AAAA"},"signature":{}}"#;
        let err = verify_document(twice, &ctx).unwrap_err();
        assert_eq!(err.code(), "not-json");
        assert!(
            err.to_string()
                .contains("duplicate member name \"signature\""),
            "{err}"
        );
        assert_eq!(code(br#"{"resourceType":"Patient"}"#), "not-a-bundle");
        assert_eq!(code(br#"{"resourceType":"Bundle"}"#), "unsigned");
        assert_eq!(
            code(br#"{"resourceType":"Bundle","signature":{"sigFormat":"application/jose","data":"@@"}}"#),
            "malformed-signature"
        );
        assert_eq!(
            code(br#"{"resourceType":"Bundle","signature":{"sigFormat":"application/jose","data":"eyJ9"}}"#),
            "malformed-signature"
        );
        assert_eq!(
            code(br#"{"resourceType":"Bundle","signature":{"sigFormat":"text/plain","data":"AAAA"}}"#),
            "unsupported"
        );
        assert_eq!(
            code(br#"{"resourceType":"Bundle","signature":{"sigFormat":"application/pkcs7-signature","data":"AAAA"}}"#),
            "malformed-signature"
        );
        // `sigFormat` and `data` are read from the signature object itself only, and escaped
        // strings are read by what they hold.
        let message = |b: &[u8]| verify_document(b, &ctx).unwrap_err().to_string();
        for elsewhere in [
            br#"{"resourceType":"Bundle","signature":[{"sigFormat":"application/jose","data":"AAAA"}]}"#.as_slice(),
            br#"{"resourceType":"Bundle","signature":{"x":{"sigFormat":"application/jose","data":"AAAA"}}}"#,
            br#"{"resourceType":"Bundle","signature":"application/jose","sigFormat":"application/jose"}"#,
            br#"{"resourceType":"Bundle","signature":{"sigFormat":7,"data":"AAAA"}}"#,
        ] {
            assert!(message(elsewhere).contains("no sigFormat"), "{}", message(elsewhere));
        }
        let escaped = br#"{"resourceType":"Bundle","signature":{"sigFormat":"application\/pkcs7-signature","data":"\u0041AAA"}}"#;
        assert!(
            message(escaped).contains("CMS ContentInfo"),
            "{}",
            message(escaped)
        );
    }
}
