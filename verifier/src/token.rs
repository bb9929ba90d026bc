//! Verification of one RFC 3161 time-stamp token (a CMS `ContentInfo` holding a `SignedData`
//! over a `TSTInfo`), as a client does after receiving it.
//!
//! What [`verify_token`] checks, in order:
//! 1. `ContentInfo` is id-signedData; `SignedData` is version 3 with exactly one SignerInfo
//!    (RFC 3161 §2.4.2: no signature but the TSA's), and its digest algorithm is listed in
//!    `digestAlgorithms`; `eContentType` is id-ct-TSTInfo and the `TSTInfo` (version 1) decodes.
//! 2. The signer certificate is found among the token's certificates and `extra_certs` by
//!    issuerAndSerialNumber (or subjectKeyIdentifier).
//! 3. Signed attributes: contentType = id-ct-TSTInfo; messageDigest = hash of eContent with the
//!    SignerInfo's digest algorithm; a signingCertificateV2 (RFC 5035) or signingCertificate
//!    (RFC 2634) whose first ESSCertID hashes exactly the signer certificate's DER (and names
//!    its issuer and serial, if it names any). Each attribute appears once, with one value.
//! 4. The signature, with aws-lc-rs, over the signed attributes' **original bytes** with the
//!    `[0]` tag replaced by SET (0x31), as RFC 5652 §5.4 prescribes. They are never re-encoded
//!    through rasn: its decoder re-sorts a SET OF, which would change the bytes of a token whose
//!    attributes are not in DER order.
//! 5. The certificate is a TSA certificate: end entity, critical extendedKeyUsage that is
//!    exactly id-kp-timeStamping ([`hozon_tsa::certcheck::check_tsa_profile`]). If TSTInfo
//!    names the TSA as a directoryName, it is the certificate's subject.
//! 6. The message imprint and nonce equal the expected ones, when given.
//!
//! Not checked here (later issues): the certificate path to a trust anchor, validity periods
//! and revocation, and whether the algorithms are still acceptable (the result reports them so
//! that the algorithm policy can judge).

use std::time::SystemTime;

use aws_lc_rs::signature::{self, VerificationAlgorithm};
use hozon_tsa::asn1::{
    der_children, der_split, integer_content, EssCertIdV2, IssuerSerial, RsassaPssParams,
    SigningCertificate, SigningCertificateV2, DER_NULL, ID_AA_SIGNING_CERTIFICATE,
    ID_AA_SIGNING_CERTIFICATE_V2, ID_CONTENT_TYPE, ID_CT_TST_INFO, ID_ECDSA_WITH_SHA256,
    ID_ECDSA_WITH_SHA384, ID_ECDSA_WITH_SHA512, ID_EC_PUBLIC_KEY, ID_MESSAGE_DIGEST, ID_MGF1,
    ID_RSASSA_PSS, ID_RSA_ENCRYPTION, ID_SECP256R1, ID_SECP384R1, ID_SHA1_WITH_RSA,
    ID_SHA256_WITH_RSA, ID_SHA384_WITH_RSA, ID_SHA512_WITH_RSA, ID_SIGNED_DATA, ID_SIGNING_TIME,
};
use hozon_tsa::certcheck::{check_tsa_profile, name_to_string, time_to_system, CertCheckError};
use hozon_tsa::signer::DigestAlgorithm;
use rasn::types::{ObjectIdentifier, Oid};
use rasn_cms::tsp::TstInfo;
use rasn_cms::{ContentInfo, SignedData, SignerIdentifier, SignerInfo};
use rasn_pkix::{AlgorithmIdentifier, Attribute, Certificate, GeneralName, Time};

/// Why a token does not verify. Each variant names the failed check.
#[derive(Debug, thiserror::Error)]
pub enum TokenVerifyError {
    /// A structure does not decode.
    #[error("{what} does not decode: {reason}")]
    Decode {
        /// Which structure.
        what: &'static str,
        /// The decoder's message.
        reason: String,
    },
    /// The token is not what RFC 3161 and RFC 5652 prescribe (wrong content type, version,
    /// number of signers, missing content, …).
    #[error("malformed token: {0}")]
    Malformed(String),
    /// No certificate among the token's and the extra ones matches the SignerInfo's sid.
    #[error("the signer's certificate is neither in the token nor among the extra certificates")]
    CertificateNotFound,
    /// A required signed attribute is missing.
    #[error("signed attribute {0} is missing")]
    MissingAttribute(&'static str),
    /// A signed attribute appears twice or has other than one value.
    #[error("signed attribute {0} appears more than once or has other than one value")]
    DuplicateAttribute(String),
    /// The contentType attribute is not id-ct-TSTInfo.
    #[error("contentType attribute is {0}, not id-ct-TSTInfo")]
    ContentTypeAttribute(String),
    /// messageDigest is not the hash of the TSTInfo.
    #[error("messageDigest attribute does not match the TSTInfo")]
    MessageDigest,
    /// The ESS signing-certificate attribute does not identify the signer certificate.
    #[error("signing-certificate attribute does not identify the signer certificate: {0}")]
    SigningCertificate(String),
    /// An algorithm (or its parameters) is not supported, or does not fit the key.
    #[error("unsupported algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// The signature does not verify.
    #[error("the TSA's signature does not verify")]
    BadSignature,
    /// The signer certificate is not a TSA certificate.
    #[error("signer certificate: {0}")]
    Certificate(#[from] CertCheckError),
    /// TSTInfo's `tsa` names another directory name than the certificate's subject.
    #[error("TSTInfo tsa name {tsa} is not the certificate subject {subject}")]
    TsaName {
        /// The name in TSTInfo.
        tsa: String,
        /// The certificate's subject.
        subject: String,
    },
    /// The message imprint is not the expected one.
    #[error("message imprint does not match: token has {algorithm} {imprint}")]
    ImprintMismatch {
        /// The token's hash algorithm (name or OID).
        algorithm: String,
        /// The token's hashed message, hex.
        imprint: String,
    },
    /// The nonce is absent or differs.
    #[error("nonce does not match the request's (token has {0})")]
    NonceMismatch(String),
}

/// Which ESS signing-certificate attribute identified the certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EssAttribute {
    /// signingCertificateV2 (RFC 5035), with its hash algorithm.
    V2(DigestAlgorithm),
    /// signingCertificate (RFC 2634): SHA-1.
    V1,
}

/// The signature algorithm of a verified token, as far as the algorithm policy cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    /// RSASSA-PKCS1-v1_5 with the digest.
    RsaPkcs1(DigestAlgorithm),
    /// RSASSA-PSS with the digest (MGF1 with the same digest, salt of its length).
    RsaPss(DigestAlgorithm),
    /// ECDSA with the digest.
    Ecdsa(DigestAlgorithm),
}

impl SignatureAlgorithm {
    /// The digest the signature is computed over.
    pub fn digest(self) -> DigestAlgorithm {
        match self {
            Self::RsaPkcs1(d) | Self::RsaPss(d) | Self::Ecdsa(d) => d,
        }
    }
}

/// What a verified token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedToken {
    /// `genTime`.
    pub gen_time: SystemTime,
    /// `genTime` as written (`20260102030405.12Z`).
    pub gen_time_text: String,
    /// Serial number: DER INTEGER content octets.
    pub serial: Vec<u8>,
    /// TSA policy.
    pub policy: ObjectIdentifier,
    /// Subject of the TSA certificate, RFC 4514.
    pub tsa_subject: String,
    /// Hash algorithm of the message imprint.
    pub digest: DigestAlgorithm,
    /// The hashed message.
    pub imprint: Vec<u8>,
    /// Nonce content octets, if any.
    pub nonce: Option<Vec<u8>>,
    /// The `ordering` flag.
    pub ordering: bool,
    /// Digest of the CMS signature (SignerInfo.digestAlgorithm).
    pub signer_digest: DigestAlgorithm,
    /// Signature algorithm.
    pub signature_algorithm: SignatureAlgorithm,
    /// RSA modulus size or EC field size in bits.
    pub key_bits: usize,
    /// Which ESS attribute identified the certificate (V2 preferred when both are present).
    pub ess: EssAttribute,
    /// DER of the TSA certificate that verified the signature (for path validation).
    pub certificate: Vec<u8>,
    /// DER of the TSTInfo.
    pub tst_info: Vec<u8>,
    /// DER of every certificate the token carries (for building the TSA's path).
    pub carried: Vec<Vec<u8>>,
}

fn decode<T: rasn::Decode>(der: &[u8], what: &'static str) -> Result<T, TokenVerifyError> {
    rasn::der::decode(der).map_err(|e| TokenVerifyError::Decode {
        what,
        reason: e.to_string(),
    })
}

fn malformed(s: impl Into<String>) -> TokenVerifyError {
    TokenVerifyError::Malformed(s.into())
}

fn params_absent_or_null(alg: &AlgorithmIdentifier) -> bool {
    alg.parameters
        .as_ref()
        .is_none_or(|p| p.as_bytes() == DER_NULL)
}

fn digest_of(alg: &AlgorithmIdentifier, what: &str) -> Result<DigestAlgorithm, TokenVerifyError> {
    let d = DigestAlgorithm::from_oid(&alg.algorithm).ok_or_else(|| {
        TokenVerifyError::UnsupportedAlgorithm(format!("{what} {}", alg.algorithm))
    })?;
    if !params_absent_or_null(alg) {
        return Err(TokenVerifyError::UnsupportedAlgorithm(format!(
            "{what} {} with parameters",
            d.name()
        )));
    }
    Ok(d)
}

/// Verifies `token_der` (a TimeStampToken: ContentInfo DER) — see the module documentation.
///
/// - `expected`: the hash algorithm and hashed message the token must carry;
/// - `expected_nonce`: the request's nonce (DER INTEGER content octets), which the token must
///   echo;
/// - `extra_certs`: DER certificates to look for the signer certificate in, besides those in
///   the token (needed when the request did not set certReq).
pub fn verify_token(
    token_der: &[u8],
    expected: Option<(DigestAlgorithm, &[u8])>,
    expected_nonce: Option<&[u8]>,
    extra_certs: &[Vec<u8>],
) -> Result<VerifiedToken, TokenVerifyError> {
    // 1. Envelope.
    let ci: ContentInfo = decode(token_der, "ContentInfo")?;
    if ci.content_type != *ID_SIGNED_DATA {
        return Err(malformed(format!(
            "content type {} is not id-signedData",
            ci.content_type
        )));
    }
    let sd_der = ci.content.as_bytes();
    let signed = verify_signed_data(sd_der, ID_CT_TST_INFO, None, extra_certs)?;
    if signed.version != 3 {
        return Err(malformed(format!(
            "SignedData version {} (RFC 5652 §5.1 requires 3 for id-ct-TSTInfo)",
            signed.version
        )));
    }
    let tst_der = signed.content;
    let tst: TstInfo = decode(&tst_der, "TSTInfo")?;
    if tst.version != 1.into() {
        return Err(malformed(format!("TSTInfo version {}", tst.version)));
    }
    let cert = signed.cert;
    let (signer_digest, signature_algorithm, key_bits, ess) = (
        signed.signer_digest,
        signed.signature_algorithm,
        signed.key_bits,
        signed.ess,
    );

    // 5. Certificate profile and the tsa name.
    check_tsa_profile(&cert.cert)?;
    let tsa_subject = cert.subject.clone();
    if let Some(GeneralName::DirectoryName(name)) = &tst.tsa {
        if *name != cert.cert.tbs_certificate.subject {
            return Err(TokenVerifyError::TsaName {
                tsa: name_to_string(name),
                subject: tsa_subject,
            });
        }
    }

    // 6. Imprint and nonce.
    let imprint_alg = &tst.message_imprint.hash_algorithm;
    let digest = digest_of(imprint_alg, "messageImprint hashAlgorithm")?;
    let imprint = tst.message_imprint.hashed_message.to_vec();
    if let Some((want_alg, want)) = expected {
        if want_alg != digest || want != imprint.as_slice() {
            return Err(TokenVerifyError::ImprintMismatch {
                algorithm: digest.name().into(),
                imprint: hex::encode(&imprint),
            });
        }
    }
    let nonce = tst.nonce.as_ref().map(integer_content);
    if let Some(want) = expected_nonce {
        if nonce.as_deref() != Some(want) {
            return Err(TokenVerifyError::NonceMismatch(
                nonce.as_ref().map_or("none".into(), hex::encode),
            ));
        }
    }

    let gen_time_text = rasn::der::encode(&tst.gen_time)
        .ok()
        .and_then(|d| der_split(&d).map(|(_, _, c)| String::from_utf8_lossy(c).into_owned()))
        .unwrap_or_default();
    Ok(VerifiedToken {
        gen_time: time_to_system(&Time::General(tst.gen_time)),
        gen_time_text,
        serial: integer_content(&tst.serial_number),
        policy: tst.policy.clone(),
        tsa_subject,
        digest,
        imprint,
        nonce,
        ordering: tst.ordering,
        signer_digest,
        signature_algorithm,
        key_bits,
        ess,
        certificate: cert.der.clone(),
        tst_info: tst_der,
        carried: signed.certificates.clone(),
    })
}

/// A CMS SignedData whose one SignerInfo verified (see [`verify_signed_data`]).
#[derive(Clone, Debug)]
pub(crate) struct SignedDataVerified {
    /// SignedData version.
    pub version: u64,
    /// The signed content: the eContent, or the detached content given.
    pub content: Vec<u8>,
    /// The signer's certificate (decoded once per process) with its DER.
    pub cert: crate::path::Parsed,
    /// SignerInfo.digestAlgorithm.
    pub signer_digest: DigestAlgorithm,
    /// Signature algorithm.
    pub signature_algorithm: SignatureAlgorithm,
    /// Key size.
    pub key_bits: usize,
    /// Which ESS attribute bound the certificate.
    pub ess: EssAttribute,
    /// The signature octets.
    pub signature: Vec<u8>,
    /// The signingTime attribute, if any.
    pub signing_time: Option<SystemTime>,
    /// Unsigned attributes.
    pub unsigned_attrs: Vec<Attribute>,
    /// DER of every certificate in the SignedData.
    pub certificates: Vec<Vec<u8>>,
}

/// Steps 1–4 of the module documentation for any SignedData with one SignerInfo: the
/// eContentType must be `content_type` (also in the contentType attribute); the content is
/// the eContent or, for a detached signature, `detached`; messageDigest, the ESS
/// signing-certificate binding and the signature over the original attribute bytes.
pub(crate) fn verify_signed_data(
    sd_der: &[u8],
    content_type: &Oid,
    detached: Option<&[u8]>,
    extra_certs: &[Vec<u8>],
) -> Result<SignedDataVerified, TokenVerifyError> {
    // Raw views of the SignedData, to keep the exact bytes of certificates and attributes.
    let sd_fields = der_children(sd_der).ok_or_else(|| malformed("SignedData TLVs"))?;
    let sd: SignedData = decode(&without_cert_sets(sd_der, &sd_fields)?, "SignedData")?;
    let signer_infos: Vec<&SignerInfo> = sd.signer_infos.iter().collect();
    if signer_infos.len() != 1 {
        return Err(malformed(format!(
            "{} SignerInfos; exactly one is expected",
            signer_infos.len()
        )));
    }
    let si = signer_infos[0];
    if sd.encap_content_info.content_type != *content_type {
        return Err(malformed(format!(
            "eContentType {} is not {content_type}",
            sd.encap_content_info.content_type
        )));
    }
    let content = match (&sd.encap_content_info.content, detached) {
        (Some(c), None) => c.to_vec(),
        (None, Some(d)) => d.to_vec(),
        (None, None) => return Err(malformed("no eContent (detached content)")),
        (Some(_), Some(_)) => {
            return Err(malformed(
                "eContent present where a detached signature is expected",
            ))
        }
    };

    let signer_digest = digest_of(&si.digest_algorithm, "SignerInfo digestAlgorithm")?;
    let listed = sd
        .digest_algorithms
        .iter()
        .any(|a| a.algorithm == si.digest_algorithm.algorithm && params_absent_or_null(a));
    if !listed {
        return Err(malformed(
            "SignerInfo digestAlgorithm is not in SignedData.digestAlgorithms",
        ));
    }

    let raw_certs: Vec<&[u8]> = match sd_fields.iter().find(|f| f[0] == 0xa0) {
        Some(set) => der_children(set)
            .ok_or_else(|| malformed("SignedData certificates TLVs"))?
            .into_iter()
            .filter(|c| c[0] == 0x30)
            .collect(),
        None => Vec::new(),
    };
    let raw_si = sd_fields
        .last()
        .and_then(|f| der_children(f))
        .and_then(|sis| sis.first().copied())
        .ok_or_else(|| malformed("SignerInfo TLV"))?;
    let raw_signed_attrs = der_children(raw_si)
        .ok_or_else(|| malformed("SignerInfo TLVs"))?
        .into_iter()
        .find(|f| f[0] == 0xa0)
        .ok_or(TokenVerifyError::MissingAttribute("signedAttrs"))?;

    // 2. Signer certificate.
    let cert = find_signer_certificate(si, &raw_certs, extra_certs)?;

    // 3. Signed attributes.
    let attrs: Vec<&Attribute> = si
        .signed_attrs
        .as_ref()
        .ok_or(TokenVerifyError::MissingAttribute("signedAttrs"))?
        .iter()
        .collect();
    let single = |oid: &Oid, name: &'static str| -> Result<Option<Vec<u8>>, TokenVerifyError> {
        let mut found = attrs.iter().filter(|a| a.r#type == *oid);
        let Some(a) = found.next() else {
            return Ok(None);
        };
        let values: Vec<_> = a.values.iter().collect();
        if found.next().is_some() || values.len() != 1 {
            return Err(TokenVerifyError::DuplicateAttribute(name.into()));
        }
        Ok(Some(values[0].as_bytes().to_vec()))
    };
    let content_type_attr = single(ID_CONTENT_TYPE, "contentType")?
        .ok_or(TokenVerifyError::MissingAttribute("contentType"))?;
    let content_type_attr: ObjectIdentifier = decode(&content_type_attr, "contentType attribute")?;
    if content_type_attr != *content_type {
        return Err(TokenVerifyError::ContentTypeAttribute(
            content_type_attr.to_string(),
        ));
    }
    let md = single(ID_MESSAGE_DIGEST, "messageDigest")?
        .ok_or(TokenVerifyError::MissingAttribute("messageDigest"))?;
    let md: rasn::types::OctetString = decode(&md, "messageDigest attribute")?;
    if md.as_ref() != signer_digest.digest(&content).as_slice() {
        return Err(TokenVerifyError::MessageDigest);
    }
    let v2 = single(ID_AA_SIGNING_CERTIFICATE_V2, "signingCertificateV2")?;
    let v1 = single(ID_AA_SIGNING_CERTIFICATE, "signingCertificate")?;
    let mut ess = None;
    if let Some(v1) = v1 {
        let sc: SigningCertificate = decode(&v1, "signingCertificate")?;
        let first = sc
            .certs
            .first()
            .ok_or_else(|| TokenVerifyError::SigningCertificate("no ESSCertID".into()))?;
        check_ess_id(
            DigestAlgorithm::Sha1,
            &first.cert_hash,
            first.issuer_serial.as_ref(),
            &cert,
        )?;
        ess = Some(EssAttribute::V1);
    }
    if let Some(v2) = v2 {
        let sc: SigningCertificateV2 = decode(&v2, "signingCertificateV2")?;
        let first: &EssCertIdV2 = sc
            .certs
            .first()
            .ok_or_else(|| TokenVerifyError::SigningCertificate("no ESSCertIDv2".into()))?;
        let alg = digest_of(&first.hash_algorithm, "ESSCertIDv2 hashAlgorithm")?;
        check_ess_id(alg, &first.cert_hash, first.issuer_serial.as_ref(), &cert)?;
        ess = Some(EssAttribute::V2(alg));
    }
    let ess = ess.ok_or(TokenVerifyError::MissingAttribute(
        "signingCertificateV2 or signingCertificate",
    ))?;

    // 4. Signature over the original attribute bytes, re-tagged as SET.
    let mut message = raw_signed_attrs.to_vec();
    message[0] = 0x31;
    let (alg, signature_algorithm, key_bits) =
        verification_algorithm(si, signer_digest, &cert.cert)?;
    let spki = &cert.cert.tbs_certificate.subject_public_key_info;
    if !verify_signature(
        alg,
        spki.subject_public_key.as_raw_slice(),
        &message,
        si.signature.as_ref(),
    ) {
        return Err(TokenVerifyError::BadSignature);
    }
    let signing_time = single(ID_SIGNING_TIME, "signingTime")?
        .and_then(|v| rasn::der::decode::<Time>(&v).ok())
        .map(|t| time_to_system(&t));
    let version = u64::try_from(&sd.version).unwrap_or(u64::MAX);
    Ok(SignedDataVerified {
        version,
        content,
        cert,
        signer_digest,
        signature_algorithm,
        key_bits,
        ess,
        signature: si.signature.to_vec(),
        signing_time,
        unsigned_attrs: si
            .unsigned_attrs
            .as_ref()
            .map(|a| a.to_vec().into_iter().cloned().collect())
            .unwrap_or_default(),
        certificates: raw_certs.iter().map(|c| c.to_vec()).collect(),
    })
}

/// The DER of a SignedData without its `certificates` [0] and `crls` [1] sets, for decoding:
/// certificates are used as the raw DER found beside it (and decoded once per process by the
/// path cache), CRLs are not used, so decoding them with every token would be wasted work.
/// The fields must still come in the order of RFC 5652 §5.1:
///
/// ```text
/// SignedData ::= SEQUENCE {
///   version CMSVersion,
///   digestAlgorithms DigestAlgorithmIdentifiers,
///   encapContentInfo EncapsulatedContentInfo,
///   certificates [0] IMPLICIT CertificateSet OPTIONAL,
///   crls [1] IMPLICIT RevocationInfoChoices OPTIONAL,
///   signerInfos SignerInfos }
/// ```
fn without_cert_sets(sd_der: &[u8], fields: &[&[u8]]) -> Result<Vec<u8>, TokenVerifyError> {
    // The envelope the decoder no longer sees: one SEQUENCE, minimal length (DER), nothing
    // after it.
    let (tag, header, content) =
        der_split(sd_der).ok_or_else(|| malformed("SignedData is not one TLV"))?;
    let minimal = hozon_tsa::asn1::der_tlv(tag, &[]).len()
        + match content.len() {
            0..0x80 => 0,
            n => (usize::BITS - n.leading_zeros()).div_ceil(8) as usize,
        };
    if tag != 0x30 || header != minimal || header + content.len() != sd_der.len() {
        return Err(malformed(
            "SignedData is not one DER SEQUENCE with a minimal length",
        ));
    }
    let sets: Vec<(usize, u8)> = fields
        .iter()
        .enumerate()
        .filter(|(_, f)| matches!(f[0], 0xa0 | 0xa1))
        .map(|(i, f)| (i, f[0]))
        .collect();
    let in_place = matches!(sets.as_slice(), [] | [(3, _)] | [(3, 0xa0), (4, 0xa1)]);
    if !in_place || fields.len() != 4 + sets.len() {
        return Err(malformed(
            "SignedData fields are not version, digestAlgorithms, encapContentInfo, \
             [certificates], [crls], signerInfos",
        ));
    }
    let mut content = Vec::with_capacity(sd_der.len());
    for f in fields.iter().filter(|f| !matches!(f[0], 0xa0 | 0xa1)) {
        content.extend_from_slice(f);
    }
    Ok(hozon_tsa::asn1::der_tlv(0x30, &content))
}

/// Finds the certificate the SignerInfo's sid names, decoded (with its original DER).
fn find_signer_certificate(
    si: &SignerInfo,
    raw_certs: &[&[u8]],
    extra_certs: &[Vec<u8>],
) -> Result<crate::path::Parsed, TokenVerifyError> {
    let expected_version = match &si.sid {
        SignerIdentifier::IssuerAndSerialNumber(_) => 1,
        SignerIdentifier::SubjectKeyIdentifier(_) => 3,
    };
    if si.version != expected_version.into() {
        return Err(malformed(format!(
            "SignerInfo version {} does not fit its sid (RFC 5652 §5.3)",
            si.version
        )));
    }
    let candidates = raw_certs
        .iter()
        .copied()
        .chain(extra_certs.iter().map(Vec::as_slice));
    for der in candidates {
        let Ok(parsed) = crate::path::certificate(der) else {
            continue;
        };
        let tbs = &parsed.cert.tbs_certificate;
        let matches = match &si.sid {
            SignerIdentifier::IssuerAndSerialNumber(ias) => {
                ias.serial_number == tbs.serial_number && ias.issuer == tbs.issuer
            }
            SignerIdentifier::SubjectKeyIdentifier(ski) => {
                parsed.key_identifier() == Some(&ski[..])
            }
        };
        if matches {
            return Ok(parsed);
        }
    }
    Err(TokenVerifyError::CertificateNotFound)
}

fn check_ess_id(
    alg: DigestAlgorithm,
    cert_hash: &[u8],
    issuer_serial: Option<&IssuerSerial>,
    cert: &crate::path::Parsed,
) -> Result<(), TokenVerifyError> {
    let matches = match alg {
        DigestAlgorithm::Sha256 => cert_hash == cert.sha256(),
        _ => cert_hash == alg.digest(&cert.der).as_slice(),
    };
    if !matches {
        return Err(TokenVerifyError::SigningCertificate(format!(
            "{} certHash differs from the certificate's",
            alg.name()
        )));
    }
    if let Some(is) = issuer_serial {
        let tbs = &cert.cert.tbs_certificate;
        let issuer_named = is
            .issuer
            .iter()
            .any(|g| matches!(g, GeneralName::DirectoryName(n) if *n == tbs.issuer));
        if !issuer_named || is.serial_number != tbs.serial_number {
            return Err(TokenVerifyError::SigningCertificate(
                "issuerSerial names another certificate".into(),
            ));
        }
    }
    Ok(())
}

/// Chooses the aws-lc-rs algorithm from the SignerInfo's signatureAlgorithm, its digest
/// algorithm and the certificate's key.
fn verification_algorithm(
    si: &SignerInfo,
    digest: DigestAlgorithm,
    cert: &Certificate,
) -> Result<
    (
        &'static dyn VerificationAlgorithm,
        SignatureAlgorithm,
        usize,
    ),
    TokenVerifyError,
> {
    signature_verifier(
        &si.signature_algorithm,
        Some(digest),
        &cert.tbs_certificate.subject_public_key_info,
    )
    .map_err(TokenVerifyError::UnsupportedAlgorithm)
}

/// The aws-lc-rs algorithm for a signature made with `sig_alg` by the key `spki`, what it is
/// for the algorithm policy, and the key size. `digest` is the digest a CMS SignerInfo names
/// (a combined OID must agree with it; bare rsaEncryption and id-ecPublicKey need it); for
/// certificates and CRLs it is `None`. The error says what is unsupported.
///
/// RSA keys from 1024 bits are accepted (PKCS#1 v1.5) so that old records can be read: the
/// result reports the size for the algorithm policy to judge.
pub(crate) fn signature_verifier(
    sig_alg: &AlgorithmIdentifier,
    digest: Option<DigestAlgorithm>,
    spki: &rasn_pkix::SubjectPublicKeyInfo,
) -> Result<
    (
        &'static dyn VerificationAlgorithm,
        SignatureAlgorithm,
        usize,
    ),
    String,
> {
    use DigestAlgorithm as D;
    let unsupported = |s: String| s;
    let oid = &sig_alg.algorithm;
    let key_oid = &spki.algorithm.algorithm;
    let key = spki.subject_public_key.as_raw_slice();

    // The digest a combined OID names must be the SignerInfo's.
    let named_digest = |d: DigestAlgorithm| -> Result<DigestAlgorithm, String> {
        match digest {
            Some(given) if given != d => Err(unsupported(format!(
                "signatureAlgorithm {oid} with digestAlgorithm {}",
                given.name()
            ))),
            _ => Ok(d),
        }
    };
    let given_digest = || -> Result<DigestAlgorithm, String> {
        digest.ok_or_else(|| format!("signatureAlgorithm {oid} names no digest"))
    };

    let rsa_key = *key_oid == *ID_RSA_ENCRYPTION || *key_oid == *ID_RSASSA_PSS;
    if *oid == *ID_RSASSA_PSS {
        if !rsa_key {
            return Err(unsupported("RSASSA-PSS with a non-RSA key".into()));
        }
        let params: RsassaPssParams = sig_alg
            .parameters
            .as_ref()
            .map(|p| rasn::der::decode(p.as_bytes()))
            .transpose()
            .map_err(|e| format!("RSASSA-PSS-params do not decode: {e}"))?
            .ok_or_else(|| unsupported("RSASSA-PSS without parameters".into()))?;
        let hash = digest_of(&params.hash_algorithm, "RSASSA-PSS hashAlgorithm")
            .map_err(|e| e.to_string())?;
        let mgf_ok = params.mask_gen_algorithm.algorithm == *ID_MGF1
            && params
                .mask_gen_algorithm
                .parameters
                .as_ref()
                .and_then(|p| rasn::der::decode::<AlgorithmIdentifier>(p.as_bytes()).ok())
                .is_some_and(|a| a.algorithm == *hash.oid() && params_absent_or_null(&a));
        if !mgf_ok || params.salt_length as usize != hash.output_len() || params.trailer_field != 1
        {
            return Err(unsupported(
                "RSASSA-PSS parameters other than MGF1 with the same hash and a salt of its length"
                    .into(),
            ));
        }
        let alg: &'static dyn VerificationAlgorithm = match named_digest(hash)? {
            D::Sha256 => &signature::RSA_PSS_2048_8192_SHA256,
            D::Sha384 => &signature::RSA_PSS_2048_8192_SHA384,
            D::Sha512 => &signature::RSA_PSS_2048_8192_SHA512,
            other => return Err(unsupported(format!("RSASSA-PSS with {}", other.name()))),
        };
        return Ok((alg, SignatureAlgorithm::RsaPss(hash), rsa_bits(key)));
    }

    let pkcs1 = if *oid == *ID_RSA_ENCRYPTION {
        Some(given_digest()?)
    } else if *oid == *ID_SHA256_WITH_RSA {
        Some(named_digest(D::Sha256)?)
    } else if *oid == *ID_SHA384_WITH_RSA {
        Some(named_digest(D::Sha384)?)
    } else if *oid == *ID_SHA512_WITH_RSA {
        Some(named_digest(D::Sha512)?)
    } else if *oid == *ID_SHA1_WITH_RSA {
        Some(named_digest(D::Sha1)?)
    } else {
        None
    };
    if let Some(hash) = pkcs1 {
        if *key_oid != *ID_RSA_ENCRYPTION {
            return Err(unsupported(
                "PKCS#1 v1.5 signature with a non-RSA key".into(),
            ));
        }
        if !params_absent_or_null(sig_alg) {
            return Err(unsupported(
                "PKCS#1 v1.5 signatureAlgorithm with parameters".into(),
            ));
        }
        // Keys from 1024 bits are accepted here so that old records can be read; the result
        // reports the size for the algorithm policy to judge.
        let alg: &'static dyn VerificationAlgorithm = match hash {
            D::Sha1 => &signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
            D::Sha256 => &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
            D::Sha384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            D::Sha512 => &signature::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
            other => return Err(unsupported(format!("PKCS#1 v1.5 with {}", other.name()))),
        };
        return Ok((alg, SignatureAlgorithm::RsaPkcs1(hash), rsa_bits(key)));
    }

    let ecdsa = if *oid == *ID_ECDSA_WITH_SHA256 {
        Some(named_digest(D::Sha256)?)
    } else if *oid == *ID_ECDSA_WITH_SHA384 {
        Some(named_digest(D::Sha384)?)
    } else if *oid == *ID_ECDSA_WITH_SHA512 {
        Some(named_digest(D::Sha512)?)
    } else if *oid == *ID_EC_PUBLIC_KEY {
        Some(given_digest()?)
    } else {
        None
    };
    if let Some(hash) = ecdsa {
        if *key_oid != *ID_EC_PUBLIC_KEY {
            return Err(unsupported("ECDSA signature with a non-EC key".into()));
        }
        if sig_alg.parameters.is_some() && *oid != *ID_EC_PUBLIC_KEY {
            return Err(unsupported(
                "ECDSA signatureAlgorithm with parameters".into(),
            ));
        }
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| rasn::der::decode::<ObjectIdentifier>(p.as_bytes()).ok())
            .ok_or_else(|| unsupported("EC key without a named curve".into()))?;
        let (alg, bits): (&'static dyn VerificationAlgorithm, usize) =
            match (curve == *ID_SECP256R1, curve == *ID_SECP384R1, hash) {
                (true, _, D::Sha256) => (&signature::ECDSA_P256_SHA256_ASN1, 256),
                (true, _, D::Sha384) => (&signature::ECDSA_P256_SHA384_ASN1, 256),
                (true, _, D::Sha512) => (&signature::ECDSA_P256_SHA512_ASN1, 256),
                (_, true, D::Sha256) => (&signature::ECDSA_P384_SHA256_ASN1, 384),
                (_, true, D::Sha384) => (&signature::ECDSA_P384_SHA384_ASN1, 384),
                (_, true, D::Sha512) => (&signature::ECDSA_P384_SHA512_ASN1, 384),
                _ => {
                    return Err(unsupported(format!(
                        "ECDSA on curve {curve} with {}",
                        hash.name()
                    )))
                }
            };
        return Ok((alg, SignatureAlgorithm::Ecdsa(hash), bits));
    }
    Err(unsupported(format!("signatureAlgorithm {oid}")))
}

/// A number naming the verification algorithm `alg` within this process: the algorithm
/// objects are statics, so their address does.
pub(crate) fn algorithm_id(alg: &'static dyn VerificationAlgorithm) -> usize {
    (alg as *const dyn VerificationAlgorithm).cast::<()>() as usize
}

/// Public keys parsed so far, kept per thread; emptied when this many are held.
const PARSED_KEYS: usize = 4096;

/// Whether `sig` is `alg`'s signature by `key` (a SubjectPublicKeyInfo's key bits) over
/// `msg`.
///
/// Keys are parsed once and kept (bounded, emptied when full): the same TSA, CA and signer
/// keys verify document after document, and parsing an RSA key again each time (and setting
/// up its Montgomery context) cost 3–4% of a document's verification. The cache holds
/// parsed public keys only, never verdicts: every call verifies its signature.
///
/// The cache is per thread, not shared: two threads verifying with one shared aws-lc
/// `ParsedPublicKey` contend inside it (RSA-2048 on this 2-core machine: about 60,000
/// verifications/s on two threads against 50,000 on one), while a key of each thread's own
/// reached 69,000–88,000. A bulk run verifies with the same TSA and signer keys on every
/// thread at once.
pub(crate) fn verify_signature(
    alg: &'static dyn VerificationAlgorithm,
    key: &[u8],
    msg: &[u8],
    sig: &[u8],
) -> bool {
    use std::cell::RefCell;
    use std::collections::HashMap;
    /// By algorithm, then by key bits.
    type Keys = HashMap<usize, HashMap<Box<[u8]>, signature::ParsedPublicKey>>;
    thread_local! {
        static KEYS: RefCell<Keys> = RefCell::new(HashMap::new());
    }
    KEYS.with(|keys| {
        let mut keys = keys.borrow_mut();
        let id = algorithm_id(alg);
        if let Some(parsed) = keys.get(&id).and_then(|k| k.get(key)) {
            return parsed.verify_sig(msg, sig).is_ok();
        }
        let Ok(parsed) = signature::ParsedPublicKey::new(alg, key) else {
            return false;
        };
        let ok = parsed.verify_sig(msg, sig).is_ok();
        if keys.values().map(HashMap::len).sum::<usize>() >= PARSED_KEYS {
            keys.clear();
        }
        keys.entry(id).or_default().insert(key.into(), parsed);
        ok
    })
}

/// The modulus length in bits of a DER `RSAPublicKey` (RFC 8017 A.1.1), 0 if it is not one.
///
/// ```text
/// RSAPublicKey ::= SEQUENCE {
///     modulus           INTEGER,  -- n
///     publicExponent    INTEGER   -- e
/// }
/// ```
///
/// Read from the INTEGER's content octets: decoding it into a big integer first cost 5% of
/// a document's verification.
fn rsa_bits(key: &[u8]) -> usize {
    let modulus = der_children(key)
        .filter(|c| c.len() == 2)
        .and_then(|c| der_split(c[0]))
        .filter(|(tag, _, _)| *tag == 0x02)
        .map(|(_, _, content)| content);
    modulus
        .and_then(|m| {
            m.iter()
                .position(|b| *b != 0)
                .map(|i| (m.len() - i) * 8 - m[i].leading_zeros() as usize)
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-thread key cache keeps keys, never verdicts: with the key cached, a changed
    /// message or signature still fails, on the thread that cached it and on a new one. The
    /// key pair is generated by aws-lc-rs for the test (ECDSA P-256, fixed-length signatures).
    #[test]
    fn cached_keys_verify_every_signature_again() {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let key = pair.public_key().as_ref().to_vec();
        let sig = pair.sign(&rng, b"signed").unwrap().as_ref().to_vec();
        let alg = &signature::ECDSA_P256_SHA256_FIXED;
        let check = || {
            assert!(verify_signature(alg, &key, b"signed", &sig));
            assert!(
                verify_signature(alg, &key, b"signed", &sig),
                "from the cache"
            );
            assert!(!verify_signature(alg, &key, b"changed", &sig));
            let mut bad = sig.clone();
            bad[10] ^= 1;
            assert!(!verify_signature(alg, &key, b"signed", &bad));
            assert!(
                !verify_signature(alg, &key[..40], b"signed", &sig),
                "not a key"
            );
            // The same key bits under another algorithm are another entry.
            assert!(!verify_signature(
                &signature::ECDSA_P384_SHA384_FIXED,
                &key,
                b"signed",
                &sig
            ));
            assert!(verify_signature(alg, &key, b"signed", &sig));
        };
        check();
        std::thread::scope(|s| {
            s.spawn(check);
        });
    }

    /// Keys from `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:N` written with
    /// `openssl rsa -RSAPublicKey_out -outform DER`: the modulus length read from the DER
    /// must be N, and the big-integer decoding it replaced must agree.
    #[test]
    fn rsa_bits_reads_the_modulus_length() {
        let dir = tempfile::tempdir().unwrap();
        let run = |args: &[&str]| {
            let st = std::process::Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(st.success(), "openssl {args:?}");
        };
        for bits in [1024usize, 1031, 2048, 3072] {
            let n = bits.to_string();
            let pkeyopt = format!("rsa_keygen_bits:{n}");
            run(&[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                &pkeyopt,
                "-out",
                "k.pem",
            ]);
            run(&[
                "rsa",
                "-in",
                "k.pem",
                "-RSAPublicKey_out",
                "-outform",
                "DER",
                "-out",
                "k.der",
            ]);
            let der = std::fs::read(dir.path().join("k.der")).unwrap();
            assert_eq!(rsa_bits(&der), bits);
            let k: rasn_cms::algorithms::RsaPublicKey = rasn::der::decode(&der).unwrap();
            let m = integer_content(&k.modulus);
            let i = m.iter().position(|b| *b != 0).unwrap();
            assert_eq!((m.len() - i) * 8 - m[i].leading_zeros() as usize, bits);
        }
        for garbage in [
            &[][..],
            &[0x30, 0x00],
            &[0x30, 0x03, 0x02, 0x01, 0x00],
            b"rsa",
        ] {
            assert_eq!(rsa_bits(garbage), 0);
        }
    }

    #[test]
    fn garbage_is_a_decode_error() {
        for input in [&[][..], &[0x30, 0x00], &[0x04, 0x01, 0x00], b"not a token"] {
            let err = verify_token(input, None, None, &[]).unwrap_err();
            assert!(
                matches!(err, TokenVerifyError::Decode { .. }),
                "{input:?}: {err}"
            );
        }
    }
}
