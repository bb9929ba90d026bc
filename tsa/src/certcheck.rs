//! Checks that a certificate is fit to be a TSA certificate for a given key (RFC 3161 §2.3,
//! DESIGN §3): it certifies exactly the signer's public key, it is an end entity, and it carries
//! a critical extendedKeyUsage with `id-kp-timeStamping` as its only purpose.
//!
//! Pure: no clock. The validity period is returned, not judged; the caller decides what to do
//! with a certificate that is not yet or no longer valid. No path validation either (that is
//! the verifier's job).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rasn::types::{Any, ObjectIdentifier, Oid};
use rasn_pkix::{
    BasicConstraints, Certificate, ExtKeyUsageSyntax, Extension, KeyUsage, Name,
    SubjectPublicKeyInfo, Time,
};

use crate::asn1::{
    der_split, integer_content, DER_NULL, ID_CE_BASIC_CONSTRAINTS, ID_CE_EXT_KEY_USAGE,
    ID_CE_KEY_USAGE, ID_EC_PUBLIC_KEY, ID_KP_TIME_STAMPING, ID_RSASSA_PSS, ID_RSA_ENCRYPTION,
    ID_SECP256R1, ID_SECP384R1,
};
use crate::signer::{CertifiedSigner, DigestAlgorithm, SignatureScheme, Signer, SignerError};

/// What was found wrong with a TSA certificate or its chain.
#[derive(Debug, thiserror::Error)]
pub enum CertCheckError {
    /// The chain given to [`CertifiedSigner::new`] is empty.
    #[error("certificate chain is empty: the TSA certificate must come first")]
    EmptyChain,
    /// A certificate is not a DER X.509 certificate.
    #[error("certificate {index} of the chain is not a DER X.509 certificate: {reason}")]
    Decode {
        /// Position in the chain (0 = the TSA certificate).
        index: usize,
        /// The decoder's message.
        reason: String,
    },
    /// The certificate decodes, but re-encoding it does not give the same bytes (BER, not
    /// DER). Its issuer name and serial could then not be quoted byte-exactly in tokens.
    #[error("TSA certificate is not DER: re-encoding it changes its bytes")]
    NotDer,
    /// The signer could not report its public key.
    #[error("cannot read the signer's public key: {0}")]
    Signer(#[from] SignerError),
    /// The signer's public key is not a SubjectPublicKeyInfo.
    #[error("signer's public key is not a DER SubjectPublicKeyInfo: {0}")]
    SignerKey(String),
    /// The certificate certifies another key than the signer's.
    #[error("TSA certificate's public key ({cert}) is not the signer's key ({signer})")]
    KeyMismatch {
        /// Description of the certificate's key.
        cert: String,
        /// Description of the signer's key.
        signer: String,
    },
    /// The signer's scheme cannot be used with the certified key type.
    #[error("signature scheme {scheme:?} does not fit the certified key ({key})")]
    SchemeMismatch {
        /// The signer's scheme.
        scheme: SignatureScheme,
        /// Description of the certified key.
        key: String,
    },
    /// basicConstraints says cA=TRUE.
    #[error(
        "TSA certificate is a CA certificate (basicConstraints cA=TRUE); it must be an end entity"
    )]
    CaCertificate,
    /// keyUsage allows keyCertSign.
    #[error("TSA certificate's keyUsage includes keyCertSign; it must be an end entity")]
    KeyCertSign,
    /// keyUsage is present but allows neither digitalSignature nor nonRepudiation.
    #[error("TSA certificate's keyUsage allows neither digitalSignature nor nonRepudiation")]
    KeyUsageNoSignature,
    /// No extendedKeyUsage extension.
    #[error("TSA certificate has no extendedKeyUsage extension (RFC 3161 §2.3 requires id-kp-timeStamping)")]
    ExtKeyUsageMissing,
    /// extendedKeyUsage is not marked critical.
    #[error("TSA certificate's extendedKeyUsage is not marked critical (RFC 3161 §2.3)")]
    ExtKeyUsageNotCritical,
    /// extendedKeyUsage lists other purposes than id-kp-timeStamping, or not it.
    #[error("TSA certificate's extendedKeyUsage must be exactly id-kp-timeStamping, found [{}]", .0.join(", "))]
    ExtKeyUsageNotTimeStampingOnly(Vec<String>),
    /// An extension appears twice or its value does not decode.
    #[error("TSA certificate's extension {oid} is malformed: {reason}")]
    BadExtension {
        /// The extension's OID.
        oid: String,
        /// What is wrong.
        reason: String,
    },
}

/// What [`check_tsa_certificate`] learnt about a certificate that passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsaCertInfo {
    /// Subject distinguished name as an RFC 4514 string (`CN=…,O=…,C=JP`).
    pub subject: String,
    /// Issuer distinguished name as an RFC 4514 string.
    pub issuer: String,
    /// Serial number: the DER INTEGER content octets (two's complement, big-endian).
    pub serial: Vec<u8>,
    /// Start of the validity period.
    pub not_before: SystemTime,
    /// End of the validity period.
    pub not_after: SystemTime,
    /// SHA-256 over the whole certificate DER (the ESSCertIDv2 certHash).
    pub sha256: Vec<u8>,
}

impl TsaCertInfo {
    /// Serial number in lower-case hex, for logs.
    pub fn serial_hex(&self) -> String {
        hex::encode(&self.serial)
    }
}

/// Decodes a DER certificate and checks that re-encoding gives back the same bytes.
pub fn decode_certificate_der(cert_der: &[u8]) -> Result<Certificate, CertCheckError> {
    let cert: Certificate = rasn::der::decode(cert_der).map_err(|e| CertCheckError::Decode {
        index: 0,
        reason: e.to_string(),
    })?;
    match rasn::der::encode(&cert) {
        Ok(again) if again == cert_der => Ok(cert),
        _ => Err(CertCheckError::NotDer),
    }
}

/// Checks `cert_der` as the TSA certificate of `signer`; see the module documentation.
pub fn check_tsa_certificate(
    cert_der: &[u8],
    signer: &dyn Signer,
) -> Result<TsaCertInfo, CertCheckError> {
    let cert = decode_certificate_der(cert_der)?;
    let tbs = &cert.tbs_certificate;

    let signer_spki_der = signer.public_key_spki()?;
    let signer_spki: SubjectPublicKeyInfo = rasn::der::decode(&signer_spki_der)
        .map_err(|e| CertCheckError::SignerKey(e.to_string()))?;
    let cert_key = PublicKey::from_spki(&tbs.subject_public_key_info);
    let signer_key = PublicKey::from_spki(&signer_spki);
    if cert_key != signer_key {
        return Err(CertCheckError::KeyMismatch {
            cert: cert_key.describe(),
            signer: signer_key.describe(),
        });
    }
    check_scheme_fits_key(signer.scheme(), &cert_key)?;
    check_tsa_profile(&cert)?;

    Ok(TsaCertInfo {
        subject: name_to_string(&tbs.subject),
        issuer: name_to_string(&tbs.issuer),
        serial: integer_content(&tbs.serial_number),
        not_before: time_to_system(&tbs.validity.not_before),
        not_after: time_to_system(&tbs.validity.not_after),
        sha256: DigestAlgorithm::Sha256.digest(cert_der),
    })
}

/// The TSA certificate profile without the key comparison: end entity (no basicConstraints
/// cA=TRUE, no keyCertSign), keyUsage (if present) allowing signatures, and a critical
/// extendedKeyUsage that is exactly `id-kp-timeStamping`. Also used by the verifier.
pub fn check_tsa_profile(cert: &Certificate) -> Result<(), CertCheckError> {
    let extensions: &[Extension] = cert
        .tbs_certificate
        .extensions
        .as_ref()
        .map(|e| e.as_slice())
        .unwrap_or(&[]);

    if let Some(ext) = find_extension(extensions, ID_CE_BASIC_CONSTRAINTS)? {
        let bc: BasicConstraints = decode_extension(ext)?;
        if bc.ca {
            return Err(CertCheckError::CaCertificate);
        }
    }
    if let Some(ext) = find_extension(extensions, ID_CE_KEY_USAGE)? {
        let ku: KeyUsage = decode_extension(ext)?;
        let bit = |n: usize| ku.get(n).map(|b| *b).unwrap_or(false);
        // digitalSignature(0), nonRepudiation(1), keyCertSign(5)
        if bit(5) {
            return Err(CertCheckError::KeyCertSign);
        }
        if !bit(0) && !bit(1) {
            return Err(CertCheckError::KeyUsageNoSignature);
        }
    }
    let ext = find_extension(extensions, ID_CE_EXT_KEY_USAGE)?
        .ok_or(CertCheckError::ExtKeyUsageMissing)?;
    if !ext.critical {
        return Err(CertCheckError::ExtKeyUsageNotCritical);
    }
    let eku: ExtKeyUsageSyntax = decode_extension(ext)?;
    if eku.len() != 1 || eku[0] != *ID_KP_TIME_STAMPING {
        return Err(CertCheckError::ExtKeyUsageNotTimeStampingOnly(
            eku.iter().map(|o| o.to_string()).collect(),
        ));
    }
    Ok(())
}

fn find_extension<'a>(
    extensions: &'a [Extension],
    oid: &Oid,
) -> Result<Option<&'a Extension>, CertCheckError> {
    let mut found = extensions.iter().filter(|e| e.extn_id == *oid);
    let first = found.next();
    if found.next().is_some() {
        return Err(CertCheckError::BadExtension {
            oid: oid.to_string(),
            reason: "appears more than once (RFC 5280 §4.2)".into(),
        });
    }
    Ok(first)
}

fn decode_extension<T: rasn::Decode>(ext: &Extension) -> Result<T, CertCheckError> {
    rasn::der::decode(&ext.extn_value).map_err(|e| CertCheckError::BadExtension {
        oid: ext.extn_id.to_string(),
        reason: e.to_string(),
    })
}

/// A public key reduced to what identifies it, so that two SubjectPublicKeyInfo encodings of
/// one key compare equal (RSA with NULL or absent parameters, leading zeros, …).
#[derive(Debug, PartialEq, Eq)]
enum PublicKey {
    Rsa {
        modulus: Vec<u8>,
        exponent: Vec<u8>,
    },
    RsaPss {
        modulus: Vec<u8>,
        exponent: Vec<u8>,
    },
    Ec {
        curve: Option<ObjectIdentifier>,
        point: Vec<u8>,
    },
    Other {
        algorithm: ObjectIdentifier,
        key: Vec<u8>,
    },
}

impl PublicKey {
    fn from_spki(spki: &SubjectPublicKeyInfo) -> Self {
        let key_bytes = spki.subject_public_key.as_raw_slice().to_vec();
        let alg = &spki.algorithm;
        let other = || PublicKey::Other {
            algorithm: alg.algorithm.clone(),
            key: key_bytes.clone(),
        };
        if alg.algorithm == *ID_RSA_ENCRYPTION || alg.algorithm == *ID_RSASSA_PSS {
            let params_ok = alg.algorithm == *ID_RSASSA_PSS
                || alg
                    .parameters
                    .as_ref()
                    .is_none_or(|p| p.as_bytes() == DER_NULL);
            let Ok(rsa) = rasn::der::decode::<rasn_cms::algorithms::RsaPublicKey>(&key_bytes)
            else {
                return other();
            };
            if !params_ok {
                return other();
            }
            let modulus = integer_content(&rsa.modulus);
            let exponent = integer_content(&rsa.public_exponent);
            if alg.algorithm == *ID_RSASSA_PSS {
                PublicKey::RsaPss { modulus, exponent }
            } else {
                PublicKey::Rsa { modulus, exponent }
            }
        } else if alg.algorithm == *ID_EC_PUBLIC_KEY {
            let curve = alg
                .parameters
                .as_ref()
                .and_then(|p: &Any| rasn::der::decode::<ObjectIdentifier>(p.as_bytes()).ok());
            PublicKey::Ec {
                curve,
                point: key_bytes,
            }
        } else {
            other()
        }
    }

    fn describe(&self) -> String {
        match self {
            PublicKey::Rsa { modulus, .. } | PublicKey::RsaPss { modulus, .. } => {
                let bits = modulus
                    .iter()
                    .position(|b| *b != 0)
                    .map(|i| (modulus.len() - i) * 8 - modulus[i].leading_zeros() as usize)
                    .unwrap_or(0);
                let fp = DigestAlgorithm::Sha256.digest(modulus);
                format!("RSA-{bits} modulus sha256 {}", hex::encode(&fp[..8]))
            }
            PublicKey::Ec { curve, point } => {
                let fp = DigestAlgorithm::Sha256.digest(point);
                let curve = curve
                    .as_ref()
                    .map(curve_name)
                    .unwrap_or_else(|| "unnamed curve".into());
                format!("EC {curve} point sha256 {}", hex::encode(&fp[..8]))
            }
            PublicKey::Other { algorithm, .. } => format!("key of algorithm {algorithm}"),
        }
    }
}

fn curve_name(oid: &ObjectIdentifier) -> String {
    if *oid == *ID_SECP256R1 {
        "P-256".into()
    } else if *oid == *ID_SECP384R1 {
        "P-384".into()
    } else {
        oid.to_string()
    }
}

fn check_scheme_fits_key(scheme: SignatureScheme, key: &PublicKey) -> Result<(), CertCheckError> {
    use SignatureScheme::*;
    let fits = match (scheme, key) {
        (RsaPkcs1Sha256 | RsaPkcs1Sha384 | RsaPkcs1Sha512, PublicKey::Rsa { .. }) => true,
        (RsaPssSha256 | RsaPssSha384 | RsaPssSha512, PublicKey::Rsa { .. })
        | (RsaPssSha256 | RsaPssSha384 | RsaPssSha512, PublicKey::RsaPss { .. }) => true,
        (EcdsaP256Sha256, PublicKey::Ec { curve: Some(c), .. }) => *c == *ID_SECP256R1,
        (EcdsaP384Sha384, PublicKey::Ec { curve: Some(c), .. }) => *c == *ID_SECP384R1,
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(CertCheckError::SchemeMismatch {
            scheme,
            key: key.describe(),
        })
    }
}

/// An X.509 `Time` as a `SystemTime`.
pub fn time_to_system(time: &Time) -> SystemTime {
    let (secs, nanos) = match time {
        Time::Utc(t) => (t.timestamp(), t.timestamp_subsec_nanos()),
        Time::General(t) => (t.timestamp(), t.timestamp_subsec_nanos()),
    };
    let since_epoch = |s: i64| Duration::new(s.unsigned_abs(), 0);
    if secs >= 0 {
        UNIX_EPOCH + since_epoch(secs) + Duration::from_nanos(u64::from(nanos))
    } else {
        UNIX_EPOCH - since_epoch(secs) + Duration::from_nanos(u64::from(nanos))
    }
}

/// A distinguished name as an RFC 4514 string: RDNs from last to first, separated by `,`;
/// well-known attribute types by their short names, others as dotted OIDs; string values
/// escaped; values that are not strings as `#` and the hex of their DER.
pub fn name_to_string(name: &Name) -> String {
    let Name::RdnSequence(rdns) = name;
    rdns.iter()
        .rev()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| {
                    let short = attribute_short_name(&atv.r#type);
                    let value = match directory_string(atv.value.as_bytes()) {
                        Some(s) => escape_rfc4514(&s),
                        None => format!("#{}", hex::encode(atv.value.as_bytes())),
                    };
                    match short {
                        Some(s) => format!("{s}={value}"),
                        None => format!("{}={value}", atv.r#type),
                    }
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn attribute_short_name(oid: &ObjectIdentifier) -> Option<&'static str> {
    const NAMES: &[(&[u32], &str)] = &[
        (&[2, 5, 4, 3], "CN"),
        (&[2, 5, 4, 5], "serialNumber"),
        (&[2, 5, 4, 6], "C"),
        (&[2, 5, 4, 7], "L"),
        (&[2, 5, 4, 8], "ST"),
        (&[2, 5, 4, 9], "STREET"),
        (&[2, 5, 4, 10], "O"),
        (&[2, 5, 4, 11], "OU"),
        (&[2, 5, 4, 12], "title"),
        (&[0, 9, 2342, 19200300, 100, 1, 1], "UID"),
        (&[0, 9, 2342, 19200300, 100, 1, 25], "DC"),
        (&[1, 2, 840, 113549, 1, 9, 1], "emailAddress"),
    ];
    NAMES
        .iter()
        .find(|(arcs, _)| oid.as_ref() == *arcs)
        .map(|(_, n)| *n)
}

/// The text of a DER string value (UTF8String, PrintableString, IA5String, VisibleString,
/// NumericString, TeletexString as Latin-1, BMPString, UniversalString).
pub fn directory_string(der: &[u8]) -> Option<String> {
    let (tag, _, content) = der_split(der)?;
    match tag {
        0x0c => std::str::from_utf8(content).ok().map(str::to_owned),
        0x12 | 0x13 | 0x16 | 0x1a => content
            .is_ascii()
            .then(|| String::from_utf8_lossy(content).into_owned()),
        0x14 => Some(content.iter().map(|b| char::from(*b)).collect()),
        0x1e => {
            if content.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = content
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        0x1c => {
            if content.len() % 4 != 0 {
                return None;
            }
            content
                .chunks_exact(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        }
        _ => None,
    }
}

fn escape_rfc4514(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
            out.push(c);
        } else if c == '\0' {
            out.push_str("\\00");
        } else {
            out.push(c);
        }
    }
    out
}

impl CertifiedSigner {
    /// Pairs `signer` with its certificate chain (DER, the TSA certificate first, then its
    /// issuers towards the root) after [`check_tsa_certificate`] on the first certificate and
    /// a DER decode of the others. No path validation.
    pub fn new(signer: Arc<dyn Signer>, chain: Vec<Vec<u8>>) -> Result<Self, CertCheckError> {
        let first = chain.first().ok_or(CertCheckError::EmptyChain)?;
        check_tsa_certificate(first, signer.as_ref())?;
        Self::unchecked(signer, chain)
    }

    /// Like [`CertifiedSigner::new`] but without [`check_tsa_certificate`]: every certificate
    /// must still be DER, but the first need not certify the key nor be a TSA certificate.
    /// Only for test fixtures that must make tokens a verifier refuses; a TSA never uses it.
    pub fn unchecked(signer: Arc<dyn Signer>, chain: Vec<Vec<u8>>) -> Result<Self, CertCheckError> {
        let first = chain.first().ok_or(CertCheckError::EmptyChain)?;
        let decoded = decode_certificate_der(first)?;
        for (index, der) in chain.iter().enumerate().skip(1) {
            rasn::der::decode::<Certificate>(der).map_err(|e| CertCheckError::Decode {
                index,
                reason: e.to_string(),
            })?;
        }
        Ok(CertifiedSigner {
            signer,
            chain: chain.into(),
            decoded: Arc::new(decoded),
        })
    }

    /// [`check_tsa_certificate`] of the TSA certificate: its subject, validity and serial.
    pub fn certificate_info(&self) -> Result<TsaCertInfo, CertCheckError> {
        check_tsa_certificate(self.certificate(), self.signer.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(escape_rfc4514("a,b"), "a\\,b");
        assert_eq!(escape_rfc4514(" x "), "\\ x\\ ");
        assert_eq!(escape_rfc4514("#1"), "\\#1");
    }

    #[test]
    fn strings() {
        assert_eq!(
            directory_string(&[0x0c, 2, b'h', b'i']).as_deref(),
            Some("hi")
        );
        assert_eq!(directory_string(&[0x13, 1, b'J']).as_deref(), Some("J"));
        assert_eq!(
            directory_string(&[0x1e, 2, 0x30, 0x42]).as_deref(),
            Some("あ")
        );
        assert_eq!(directory_string(&[0x02, 1, 1]), None);
        assert_eq!(directory_string(&[0x0c, 5, b'h']), None);
    }

    #[test]
    fn times() {
        let t: chrono::DateTime<chrono::Utc> = chrono::DateTime::from_timestamp(-10, 0).unwrap();
        assert_eq!(
            time_to_system(&Time::Utc(t)),
            UNIX_EPOCH - Duration::from_secs(10)
        );
    }
}
