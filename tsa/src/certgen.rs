//! Certificates and certificate requests for a TSA key held by any [`Signer`] (PKCS#11 or
//! software), built with rcgen.
//!
//! A TSA certificate (RFC 3161 §2.3) is an end-entity certificate whose extendedKeyUsage is
//! critical and names only id-kp-timeStamping. rcgen writes extendedKeyUsage as non-critical,
//! so it is added here as a custom extension with the criticality flag set. rcgen cannot
//! express RSASSA-PSS signature algorithms either: for PSS schemes the to-be-signed
//! certificate is re-encoded with the RSASSA-PSS AlgorithmIdentifier (RFC 4055) and signed
//! afterwards. Every result is checked before it is returned: the certificate's public key is
//! the signer's and its signature verifies.

use std::sync::Mutex;

use rasn::types::{Any, BitString, Integer, Oid};
use rasn::{AsnType, Decode, Decoder, Encode, Encoder};
use rasn_pkix::AlgorithmIdentifier;
use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, IsCa, KeyIdMethod,
    KeyUsagePurpose, PublicKeyData, SerialNumber, SignatureAlgorithm, SigningKey,
};

use crate::signer::{SignatureScheme, Signer, SignerError};

/// id-kp-timeStamping (RFC 5280 §4.2.1.12).
const OID_KP_TIME_STAMPING: &Oid = Oid::const_new(&[1, 3, 6, 1, 5, 5, 7, 3, 8]);
/// id-ce-extKeyUsage.
const OID_EXT_KEY_USAGE: &[u64] = &[2, 5, 29, 37];
/// id-RSASSA-PSS (RFC 4055).
const OID_RSASSA_PSS: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 1, 10]);
/// id-mgf1 (RFC 4055).
const OID_MGF1: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 1, 8]);
const OID_SHA256: &Oid = Oid::const_new(&[2, 16, 840, 1, 101, 3, 4, 2, 1]);
const OID_SHA384: &Oid = Oid::const_new(&[2, 16, 840, 1, 101, 3, 4, 2, 2]);
const OID_SHA512: &Oid = Oid::const_new(&[2, 16, 840, 1, 101, 3, 4, 2, 3]);

/// Subject and lifetime of a TSA certificate.
#[derive(Clone, Debug)]
pub struct TsaCertParams {
    /// Subject commonName.
    pub common_name: String,
    /// Subject organizationName.
    pub organization: String,
    /// Validity from now, in days.
    pub validity_days: u32,
    /// A development certificate: the subject says so (`O=<organization> DEVELOPMENT ONLY`,
    /// `CN=<common name> (development)`), so that nobody mistakes its timestamps for real ones.
    pub development: bool,
}

/// Why a certificate or request could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertGenError {
    /// The signer failed (HSM, key).
    #[error(transparent)]
    Signer(#[from] SignerError),
    /// rcgen rejected the parameters.
    #[error("certificate encoding failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// The signer's public key is not a SubjectPublicKeyInfo this module understands.
    #[error("the signer's public key is unusable: {0}")]
    PublicKey(String),
    /// The parameters are invalid.
    #[error("invalid certificate parameters: {0}")]
    Params(String),
    /// The result failed its own check (wrong key, bad signature, undecodable DER).
    #[error("generated {what} failed its self-check: {reason}")]
    SelfCheck { what: &'static str, reason: String },
    /// PEM text could not be read.
    #[error("PEM: {0}")]
    Pem(String),
}

// ---------------------------------------------------------------------------------------------
// rcgen key over a Signer
// ---------------------------------------------------------------------------------------------

/// A [`Signer`] as an rcgen signing key ([`rcgen::SigningKey`] + [`rcgen::PublicKeyData`]),
/// so that rcgen can issue certificates, requests or CRLs with a key in an HSM.
///
/// rcgen has no RSASSA-PSS algorithms, so [`RcgenKey::new`] refuses PSS signers; the TSA
/// functions of this module handle PSS themselves.
pub struct RcgenKey<'a> {
    signer: &'a dyn Signer,
    spki: Vec<u8>,
    key_bits: Vec<u8>,
    algorithm: &'static SignatureAlgorithm,
    /// Return a dummy signature instead of signing (the caller re-signs afterwards).
    placeholder: bool,
    /// The signer's error, since rcgen's `RemoteKeyError` carries none.
    error: Mutex<Option<SignerError>>,
}

impl std::fmt::Debug for RcgenKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RcgenKey")
            .field("signer", &self.signer)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl<'a> RcgenKey<'a> {
    /// Wrap `signer`. Fails for RSASSA-PSS schemes and unreadable public keys.
    pub fn new(signer: &'a dyn Signer) -> Result<Self, CertGenError> {
        if is_pss(signer.scheme()) {
            return Err(CertGenError::Signer(SignerError::Unsupported(
                signer.scheme(),
            )));
        }
        Self::with_placeholder(signer, false)
    }

    fn with_placeholder(signer: &'a dyn Signer, placeholder: bool) -> Result<Self, CertGenError> {
        use SignatureScheme::*;
        let algorithm = match signer.scheme() {
            // For PSS the SubjectPublicKeyInfo (rsaEncryption, NULL) is the same as for
            // PKCS#1 v1.5; the signature algorithm is replaced afterwards.
            RsaPkcs1Sha256 | RsaPssSha256 | RsaPssSha384 | RsaPssSha512 => &rcgen::PKCS_RSA_SHA256,
            RsaPkcs1Sha384 => &rcgen::PKCS_RSA_SHA384,
            RsaPkcs1Sha512 => &rcgen::PKCS_RSA_SHA512,
            EcdsaP256Sha256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            EcdsaP384Sha384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        };
        let spki = signer.public_key_spki()?;
        let decoded: rasn_pkix::SubjectPublicKeyInfo = rasn::der::decode(&spki)
            .map_err(|e| CertGenError::PublicKey(format!("not a SubjectPublicKeyInfo: {e}")))?;
        let key_bits = decoded.subject_public_key.as_raw_slice().to_vec();
        Ok(Self {
            signer,
            spki,
            key_bits,
            algorithm,
            placeholder,
            error: Mutex::new(None),
        })
    }

    fn take_error(&self) -> Option<SignerError> {
        self.error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// Turn rcgen's error into ours, recovering the signer's error if that was the cause.
    fn rcgen_error(&self, e: rcgen::Error) -> CertGenError {
        match (e, self.take_error()) {
            (rcgen::Error::RemoteKeyError, Some(signer)) => CertGenError::Signer(signer),
            (e, _) => CertGenError::Rcgen(e),
        }
    }
}

impl PublicKeyData for RcgenKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.key_bits
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.algorithm
    }

    fn subject_public_key_info(&self) -> Vec<u8> {
        self.spki.clone()
    }
}

impl SigningKey for RcgenKey<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        if self.placeholder {
            return Ok(vec![0]);
        }
        self.signer.sign(msg).map_err(|e| {
            *self
                .error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
            rcgen::Error::RemoteKeyError
        })
    }
}

fn is_pss(scheme: SignatureScheme) -> bool {
    matches!(
        scheme,
        SignatureScheme::RsaPssSha256
            | SignatureScheme::RsaPssSha384
            | SignatureScheme::RsaPssSha512
    )
}

// ---------------------------------------------------------------------------------------------
// TSA certificate and request
// ---------------------------------------------------------------------------------------------

/// The subject, key usage and extended key usage shared by certificate and request.
fn tsa_params(params: &TsaCertParams) -> Result<CertificateParams, CertGenError> {
    if params.common_name.trim().is_empty() {
        return Err(CertGenError::Params("common name is empty".into()));
    }
    let mut cp = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if params.development {
        let org = if params.organization.trim().is_empty() {
            "DEVELOPMENT ONLY".to_owned()
        } else {
            format!("{} DEVELOPMENT ONLY", params.organization)
        };
        dn.push(DnType::OrganizationName, org);
        dn.push(
            DnType::CommonName,
            format!("{} (development)", params.common_name),
        );
    } else {
        if !params.organization.trim().is_empty() {
            dn.push(DnType::OrganizationName, params.organization.clone());
        }
        dn.push(DnType::CommonName, params.common_name.clone());
    }
    cp.distinguished_name = dn;
    // End entity: basicConstraints with cA absent (FALSE); rcgen writes the subject key
    // identifier only in this mode.
    cp.is_ca = IsCa::ExplicitNoCa;
    cp.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
    ];
    // extendedKeyUsage, critical, only id-kp-timeStamping (RFC 3161 §2.3).
    let eku = der(&vec![OID_KP_TIME_STAMPING.to_owned()]);
    let mut ext = CustomExtension::from_oid_content(OID_EXT_KEY_USAGE, eku);
    ext.set_criticality(true);
    cp.custom_extensions = vec![ext];
    Ok(cp)
}

/// Subject key identifier, RFC 7093 §2 method 1: the leftmost 160 bits of the SHA-256 hash of
/// the subjectPublicKey bits.
fn key_identifier(key_bits: &[u8]) -> Vec<u8> {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_bits);
    d.as_ref()[..20].to_vec()
}

/// A random positive serial number of 128 bits (well within RFC 5280's 20 octets).
fn random_serial() -> Result<SerialNumber, CertGenError> {
    let mut bytes = vec![0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| CertGenError::Params("no randomness for the serial number".into()))?;
    // Positive, and exactly 16 octets in DER.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from(bytes))
}

/// A self-signed TSA certificate for `signer`'s key (DER): end entity, keyUsage
/// digitalSignature + nonRepudiation (critical), extendedKeyUsage id-kp-timeStamping only
/// (critical), random positive serial, subject and authority key identifiers.
pub fn self_signed_tsa_certificate(
    signer: &dyn Signer,
    params: &TsaCertParams,
) -> Result<Vec<u8>, CertGenError> {
    if params.validity_days == 0 {
        return Err(CertGenError::Params("validity_days is 0".into()));
    }
    let scheme = signer.scheme();
    let key = RcgenKey::with_placeholder(signer, is_pss(scheme))?;
    let mut cp = tsa_params(params)?;
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .map_err(|e| CertGenError::Params(e.to_string()))?;
    cp.not_before = now;
    cp.not_after = now + time::Duration::days(i64::from(params.validity_days));
    cp.serial_number = Some(random_serial()?);
    cp.key_identifier_method = KeyIdMethod::PreSpecified(key_identifier(&key.key_bits));
    cp.use_authority_key_identifier_extension = true;

    let cert = cp.self_signed(&key).map_err(|e| key.rcgen_error(e))?;
    let mut der_cert = cert.der().to_vec();
    if is_pss(scheme) {
        der_cert = resign_certificate_pss(signer, &der_cert)?;
    }
    check_certificate(signer, &key.spki, &der_cert)?;
    Ok(der_cert)
}

/// A PKCS#10 request (DER) for a TSA certificate for `signer`'s key, asking for the same
/// subject, keyUsage and critical extendedKeyUsage as [`self_signed_tsa_certificate`]
/// (`validity_days` is not part of a request and is ignored).
pub fn tsa_csr(signer: &dyn Signer, params: &TsaCertParams) -> Result<Vec<u8>, CertGenError> {
    let scheme = signer.scheme();
    // The request's signature algorithm is outside the signed CertificationRequestInfo, so
    // for PSS the signer signs for real and only the outer AlgorithmIdentifier is replaced.
    let key = RcgenKey::with_placeholder(signer, false)?;
    let cp = tsa_params(params)?;
    let csr = cp.serialize_request(&key).map_err(|e| key.rcgen_error(e))?;
    let mut request: SignedEnvelope = rasn::der::decode(csr.der())
        .map_err(|e| self_check("request", format!("does not decode: {e}")))?;
    if is_pss(scheme) {
        request.algorithm = signature_algorithm(scheme);
    }
    let out = der(&request);
    check_envelope(signer, &key.spki, "request", &out)?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// DER plumbing: RSASSA-PSS algorithm identifiers, re-signing, self-checks
// ---------------------------------------------------------------------------------------------

/// `SIGNED{ToBeSigned}` (X.509 certificate, PKCS#10 request): the signed part kept as its
/// original bytes.
#[derive(AsnType, Clone, Debug, Encode, Decode)]
struct SignedEnvelope {
    to_be_signed: Any,
    algorithm: AlgorithmIdentifier,
    signature: BitString,
}

/// `RSASSA-PSS-params` (RFC 4055 §3.1); trailerField is always the default and omitted.
#[derive(AsnType, Clone, Debug, Encode, Decode)]
struct RsassaPssParams {
    #[rasn(tag(explicit(0)))]
    hash_algorithm: AlgorithmIdentifier,
    #[rasn(tag(explicit(1)))]
    mask_gen_algorithm: AlgorithmIdentifier,
    #[rasn(tag(explicit(2)))]
    salt_length: Integer,
}

fn der<T: Encode>(value: &T) -> Vec<u8> {
    // Encoding these plain values cannot fail.
    rasn::der::encode(value).expect("DER encoding of a plain value")
}

fn self_check(what: &'static str, reason: String) -> CertGenError {
    CertGenError::SelfCheck { what, reason }
}

/// The hash AlgorithmIdentifier as RFC 4055 writes it inside RSASSA-PSS-params (NULL
/// parameters, as openssl does too).
fn hash_identifier(oid: &Oid) -> AlgorithmIdentifier {
    AlgorithmIdentifier {
        algorithm: oid.to_owned(),
        parameters: Some(Any::new(vec![0x05, 0x00])),
    }
}

/// The signature AlgorithmIdentifier of `scheme` (only PSS is needed here; rcgen writes the
/// others).
fn signature_algorithm(scheme: SignatureScheme) -> AlgorithmIdentifier {
    let (hash, salt): (&Oid, u8) = match scheme {
        SignatureScheme::RsaPssSha384 => (OID_SHA384, 48),
        SignatureScheme::RsaPssSha512 => (OID_SHA512, 64),
        _ => (OID_SHA256, 32),
    };
    let params = RsassaPssParams {
        hash_algorithm: hash_identifier(hash),
        mask_gen_algorithm: AlgorithmIdentifier {
            algorithm: OID_MGF1.to_owned(),
            parameters: Some(Any::new(der(&hash_identifier(hash)))),
        },
        salt_length: Integer::from(salt),
    };
    AlgorithmIdentifier {
        algorithm: OID_RSASSA_PSS.to_owned(),
        parameters: Some(Any::new(der(&params))),
    }
}

/// Replace both signature AlgorithmIdentifiers of a certificate with RSASSA-PSS and sign
/// the re-encoded TBSCertificate.
fn resign_certificate_pss(signer: &dyn Signer, cert: &[u8]) -> Result<Vec<u8>, CertGenError> {
    let mut c: rasn_pkix::Certificate = rasn::der::decode(cert)
        .map_err(|e| self_check("certificate", format!("does not decode: {e}")))?;
    let alg = signature_algorithm(signer.scheme());
    c.tbs_certificate.signature = alg.clone();
    c.signature_algorithm = alg;
    let tbs = der(&c.tbs_certificate);
    c.signature_value = BitString::from_vec(signer.sign(&tbs)?);
    Ok(der(&c))
}

/// The certificate carries the signer's public key and its signature verifies.
fn check_certificate(signer: &dyn Signer, spki: &[u8], cert: &[u8]) -> Result<(), CertGenError> {
    let c: rasn_pkix::Certificate = rasn::der::decode(cert)
        .map_err(|e| self_check("certificate", format!("does not decode: {e}")))?;
    if der(&c.tbs_certificate.subject_public_key_info) != spki {
        return Err(self_check(
            "certificate",
            "its public key differs from the signer's (key type or curve does not fit the \
             scheme?)"
                .into(),
        ));
    }
    check_envelope(signer, spki, "certificate", cert)
}

/// The signature of a certificate or request verifies with the signer's public key.
fn check_envelope(
    signer: &dyn Signer,
    spki: &[u8],
    what: &'static str,
    der_bytes: &[u8],
) -> Result<(), CertGenError> {
    use aws_lc_rs::signature as s;
    let env: SignedEnvelope = rasn::der::decode(der_bytes)
        .map_err(|e| self_check(what, format!("does not decode: {e}")))?;
    let alg = signer.scheme().verification_algorithm();
    let spki: rasn_pkix::SubjectPublicKeyInfo = rasn::der::decode(spki)
        .map_err(|e| CertGenError::PublicKey(format!("not a SubjectPublicKeyInfo: {e}")))?;
    s::UnparsedPublicKey::new(alg, spki.subject_public_key.as_raw_slice())
        .verify(env.to_be_signed.as_bytes(), env.signature.as_raw_slice())
        .map_err(|_| {
            self_check(
                what,
                format!(
                    "its {:?} signature does not verify with the signer's public key (RSA keys \
                     must have at least 2048 bits)",
                    signer.scheme()
                ),
            )
        })
}

// ---------------------------------------------------------------------------------------------
// PEM
// ---------------------------------------------------------------------------------------------

/// PEM text with `tag`, 64-column lines and Unix line endings (as openssl writes it).
pub fn to_pem(tag: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(tag, der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// PEM (`CERTIFICATE`) of a DER certificate.
pub fn certificate_pem(der: &[u8]) -> String {
    to_pem("CERTIFICATE", der)
}

/// PEM (`CERTIFICATE REQUEST`) of a DER PKCS#10 request.
pub fn csr_pem(der: &[u8]) -> String {
    to_pem("CERTIFICATE REQUEST", der)
}

/// PEM (`PUBLIC KEY`) of a DER SubjectPublicKeyInfo.
pub fn public_key_pem(spki: &[u8]) -> String {
    to_pem("PUBLIC KEY", spki)
}

/// Every `CERTIFICATE` block of a PEM text (a chain file), DER, in order; other blocks are
/// ignored. Fails when there is none.
pub fn certificates_from_pem(text: &[u8]) -> Result<Vec<Vec<u8>>, CertGenError> {
    let blocks = pem::parse_many(text).map_err(|e| CertGenError::Pem(e.to_string()))?;
    let certs: Vec<Vec<u8>> = blocks
        .into_iter()
        .filter(|p| p.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
        .collect();
    if certs.is_empty() {
        return Err(CertGenError::Pem("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// Certificates from a file's bytes: PEM (one or more `CERTIFICATE` blocks) or a single DER
/// certificate.
pub fn certificates_from_pem_or_der(bytes: &[u8]) -> Result<Vec<Vec<u8>>, CertGenError> {
    if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        certificates_from_pem(bytes)
    } else {
        rasn::der::decode::<rasn_pkix::Certificate>(bytes)
            .map_err(|e| CertGenError::Pem(format!("neither PEM nor a DER certificate: {e}")))?;
        Ok(vec![bytes.to_vec()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pss_algorithm_identifier_matches_openssl() {
        // openssl req -x509 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32 -sha256
        let expected = hex::decode(
            "304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a06092a86\
             4886f70d010108300d06096086480165030402010500a203020120",
        )
        .unwrap();
        assert_eq!(
            der(&signature_algorithm(SignatureScheme::RsaPssSha256)),
            expected
        );
    }

    #[test]
    fn eku_extension_content() {
        let eku = der(&vec![OID_KP_TIME_STAMPING.to_owned()]);
        assert_eq!(hex::encode(eku), "300a06082b06010505070308");
    }

    #[test]
    fn pem_round_trip() {
        let text = format!("{}{}", certificate_pem(b"\x30\x00"), csr_pem(b"\x30\x01"));
        assert_eq!(
            certificates_from_pem(text.as_bytes()).unwrap(),
            vec![b"\x30\x00".to_vec()]
        );
        assert!(certificates_from_pem(csr_pem(b"x").as_bytes()).is_err());
    }
}
