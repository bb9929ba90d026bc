//! X.509 certificates and CRLs for fixtures, encoded with rasn-pkix and signed with fixture
//! RSA keys. Built by hand rather than with rcgen because the legacy CA must sign with
//! SHA-1, which rcgen and aws-lc-rs refuse to do.

use std::sync::Arc;

use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use chrono::{DateTime, Datelike, Utc};
use rand_chacha03::ChaCha20Rng;
use rasn::types::{Any, BitString, Integer, OctetString, Oid};
use rasn_pkix::{
    AlgorithmIdentifier, AttributeTypeAndValue, AuthorityKeyIdentifier, BasicConstraints,
    Certificate, CertificateList, Extension, Name, PolicyInformation, RevokedCertificate,
    SubjectPublicKeyInfo, TbsCertList, TbsCertificate, Time, Validity, Version,
};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use rsa::RsaPrivateKey;
use sha1::{Digest, Sha1};

use hozon_tsa::asn1::{
    der_tlv, positive_integer, DER_NULL, ID_CE_BASIC_CONSTRAINTS, ID_CE_EXT_KEY_USAGE,
    ID_CE_KEY_USAGE, ID_KP_TIME_STAMPING, ID_SHA1_WITH_RSA, ID_SHA256_WITH_RSA,
};
use hozon_verifier::hpki::{
    HcRole, ID_CE_CERTIFICATE_POLICIES, ID_CE_SUBJECT_DIRECTORY_ATTRIBUTES,
};

use crate::DevkitError;

/// `id-at-countryName`.
pub const ID_AT_COUNTRY: &Oid = Oid::const_new(&[2, 5, 4, 6]);
/// `id-at-organizationName`.
pub const ID_AT_ORGANIZATION: &Oid = Oid::const_new(&[2, 5, 4, 10]);
/// `id-at-organizationalUnitName`.
pub const ID_AT_ORGANIZATIONAL_UNIT: &Oid = Oid::const_new(&[2, 5, 4, 11]);
/// `id-at-commonName`.
pub const ID_AT_COMMON_NAME: &Oid = Oid::const_new(&[2, 5, 4, 3]);
/// `id-ce-subjectKeyIdentifier`.
pub const ID_CE_SUBJECT_KEY_IDENTIFIER: &Oid = Oid::const_new(&[2, 5, 29, 14]);
/// `id-ce-authorityKeyIdentifier`.
pub const ID_CE_AUTHORITY_KEY_IDENTIFIER: &Oid = Oid::const_new(&[2, 5, 29, 35]);
/// `id-ce-cRLNumber`.
pub const ID_CE_CRL_NUMBER: &Oid = Oid::const_new(&[2, 5, 29, 20]);
/// `id-ce-cRLReasons`.
pub const ID_CE_CRL_REASONS: &Oid = Oid::const_new(&[2, 5, 29, 21]);

/// The signature algorithms fixtures sign with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SigAlg {
    /// sha1WithRSAEncryption: only the legacy CA and its signers.
    Sha1Rsa,
    /// sha256WithRSAEncryption.
    Sha256Rsa,
}

impl SigAlg {
    /// The signature algorithm's OID.
    pub fn oid(self) -> &'static Oid {
        match self {
            SigAlg::Sha1Rsa => ID_SHA1_WITH_RSA,
            SigAlg::Sha256Rsa => ID_SHA256_WITH_RSA,
        }
    }

    /// `AlgorithmIdentifier` with NULL parameters, as RFC 4055 requires for PKCS#1 v1.5.
    pub fn algorithm_identifier(self) -> AlgorithmIdentifier {
        AlgorithmIdentifier {
            algorithm: self.oid().to_owned(),
            parameters: Some(Any::new(DER_NULL.to_vec())),
        }
    }

    /// The digest the algorithm uses.
    pub fn digest(self) -> hozon_tsa::signer::DigestAlgorithm {
        match self {
            SigAlg::Sha1Rsa => hozon_tsa::signer::DigestAlgorithm::Sha1,
            SigAlg::Sha256Rsa => hozon_tsa::signer::DigestAlgorithm::Sha256,
        }
    }

    /// The name openssl and reports use.
    pub fn name(self) -> &'static str {
        match self {
            SigAlg::Sha1Rsa => "sha1WithRSAEncryption",
            SigAlg::Sha256Rsa => "sha256WithRSAEncryption",
        }
    }
}

/// A fixture RSA key: RustCrypto for generation and SHA-1, aws-lc-rs for fast SHA-256
/// signatures (the corpus signs hundreds of thousands of documents).
#[derive(Clone)]
pub struct Key {
    rsa: RsaPrivateKey,
    pkcs8: Vec<u8>,
    spki: Vec<u8>,
    aws: Arc<RsaKeyPair>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key(RSA-{})", self.bits())
    }
}

impl Key {
    /// A new RSA key of `bits` bits, drawn from `rng` (so the same seed gives the same key).
    pub fn generate(rng: &mut ChaCha20Rng, bits: usize) -> Result<Key, DevkitError> {
        let rsa = RsaPrivateKey::new(rng, bits)
            .map_err(|e| DevkitError::Key(format!("RSA-{bits} generation: {e}")))?;
        Self::from_rsa(rsa)
    }

    /// The key in a DER PKCS#8 `PrivateKeyInfo`.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Key, DevkitError> {
        let rsa = RsaPrivateKey::from_pkcs8_der(der)
            .map_err(|e| DevkitError::Key(format!("not an RSA PKCS#8 key: {e}")))?;
        Self::from_rsa(rsa)
    }

    fn from_rsa(rsa: RsaPrivateKey) -> Result<Key, DevkitError> {
        let pkcs8 = rsa
            .to_pkcs8_der()
            .map_err(|e| DevkitError::Key(format!("PKCS#8 encoding: {e}")))?
            .as_bytes()
            .to_vec();
        let spki = rsa
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| DevkitError::Key(format!("SPKI encoding: {e}")))?
            .into_vec();
        let aws = RsaKeyPair::from_pkcs8(&pkcs8)
            .map_err(|e| DevkitError::Key(format!("aws-lc-rs refused the key: {e}")))?;
        Ok(Key {
            rsa,
            pkcs8,
            spki,
            aws: Arc::new(aws),
        })
    }

    /// Modulus length in bits.
    pub fn bits(&self) -> usize {
        use rsa::traits::PublicKeyParts;
        self.rsa.size() * 8
    }

    /// DER PKCS#8 `PrivateKeyInfo`.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// DER `SubjectPublicKeyInfo`.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// RFC 5280 §4.2.1.2 method (1) key identifier: SHA-1 of the subjectPublicKey bits.
    pub fn key_identifier(&self) -> Vec<u8> {
        let spki: SubjectPublicKeyInfo =
            rasn::der::decode(&self.spki).expect("an SPKI this key encoded itself decodes");
        Sha1::digest(spki.subject_public_key.as_raw_slice()).to_vec()
    }

    /// PKCS#1 v1.5 signature of `message` (hashed here) with `alg`.
    pub fn sign(&self, alg: SigAlg, message: &[u8]) -> Result<Vec<u8>, DevkitError> {
        match alg {
            SigAlg::Sha256Rsa => {
                let mut sig = vec![0; self.aws.public_modulus_len()];
                let rng = aws_lc_rs::rand::SystemRandom::new();
                self.aws
                    .sign(&RSA_PKCS1_SHA256, &rng, message, &mut sig)
                    .map_err(|e| DevkitError::Key(format!("RSA signing: {e}")))?;
                Ok(sig)
            }
            SigAlg::Sha1Rsa => {
                use rsa::signature::{SignatureEncoding, Signer};
                let key = rsa::pkcs1v15::SigningKey::<Sha1>::new(self.rsa.clone());
                let sig = key
                    .try_sign(message)
                    .map_err(|e| DevkitError::Key(format!("RSA-SHA1 signing: {e}")))?;
                Ok(sig.to_vec())
            }
        }
    }
}

/// A certificate's encoding of `t`: UTCTime through 2049, GeneralizedTime from 2050
/// (RFC 5280 §4.1.2.5).
pub fn x509_time(t: DateTime<Utc>) -> Time {
    if t.year() < 2050 {
        Time::Utc(t)
    } else {
        Time::General(t.fixed_offset())
    }
}

/// How an attribute value of a name is written.
#[derive(Clone, Copy, Debug)]
pub enum NameString {
    /// PrintableString (country codes).
    Printable,
    /// UTF8String (everything else; HPKI names are Japanese).
    Utf8,
}

/// A distinguished name from `(type, encoding, value)` triples, one RDN each, in order.
pub fn name(parts: &[(&Oid, NameString, &str)]) -> Name {
    let rdns = parts
        .iter()
        .map(|(oid, kind, value)| {
            let tag = match kind {
                NameString::Printable => 0x13,
                NameString::Utf8 => 0x0c,
            };
            rasn::types::SetOf::from_vec(vec![AttributeTypeAndValue {
                r#type: (*oid).to_owned(),
                value: Any::new(der_tlv(tag, value.as_bytes())),
            }])
            .into()
        })
        .collect();
    Name::RdnSequence(rdns)
}

/// The DER of a named-bit BIT STRING with `bits` set, trailing zero bits removed (X.690
/// §11.2.2).
pub fn named_bits(bits: &[usize]) -> Vec<u8> {
    let Some(&max) = bits.iter().max() else {
        return vec![0x03, 0x01, 0x00];
    };
    let mut bytes = vec![0u8; max / 8 + 1];
    for &b in bits {
        bytes[b / 8] |= 0x80 >> (b % 8);
    }
    let unused = 7 - (max % 8) as u8;
    let mut content = vec![unused];
    content.extend_from_slice(&bytes);
    der_tlv(0x03, &content)
}

fn extension(oid: &Oid, critical: bool, value: Vec<u8>) -> Extension {
    Extension {
        extn_id: oid.to_owned(),
        critical,
        extn_value: OctetString::from(value),
    }
}

fn encode<T: rasn::Encode>(value: &T) -> Result<Vec<u8>, DevkitError> {
    rasn::der::encode(value).map_err(|e| DevkitError::Encode(e.to_string()))
}

/// keyUsage bits (RFC 5280 §4.2.1.3).
pub mod key_usage {
    /// digitalSignature
    pub const DIGITAL_SIGNATURE: usize = 0;
    /// nonRepudiation (contentCommitment)
    pub const NON_REPUDIATION: usize = 1;
    /// keyCertSign
    pub const KEY_CERT_SIGN: usize = 5;
    /// cRLSign
    pub const CRL_SIGN: usize = 6;
}

/// Certificate extensions fixtures use.
pub mod ext {
    use super::*;

    /// basicConstraints, critical: `cA` and an optional path length.
    pub fn basic_constraints(ca: bool, path_len: Option<u32>) -> Result<Extension, DevkitError> {
        let value = encode(&BasicConstraints {
            ca,
            path_len_constraint: path_len.map(Integer::from),
        })?;
        Ok(extension(ID_CE_BASIC_CONSTRAINTS, true, value))
    }

    /// keyUsage, critical.
    pub fn key_usage(bits: &[usize]) -> Extension {
        extension(ID_CE_KEY_USAGE, true, named_bits(bits))
    }

    /// extendedKeyUsage with only id-kp-timeStamping, critical (RFC 3161 §2.3).
    pub fn time_stamping() -> Result<Extension, DevkitError> {
        let value = encode(&vec![ID_KP_TIME_STAMPING.to_owned()])?;
        Ok(extension(ID_CE_EXT_KEY_USAGE, true, value))
    }

    /// certificatePolicies naming `policies`, without qualifiers.
    pub fn certificate_policies(
        policies: &[&Oid],
        critical: bool,
    ) -> Result<Extension, DevkitError> {
        let infos: Vec<PolicyInformation> = policies
            .iter()
            .map(|p| PolicyInformation {
                policy_identifier: (*p).to_owned(),
                policy_qualifiers: None,
            })
            .collect();
        Ok(extension(
            ID_CE_CERTIFICATE_POLICIES,
            critical,
            encode(&infos)?,
        ))
    }

    /// subjectDirectoryAttributes with the ISO 17090 hcRole (not critical, as RFC 5280
    /// §4.2.1.8 requires).
    pub fn hc_role(role: HcRole) -> Result<Extension, DevkitError> {
        let value = encode(&role.actor_data())?;
        let attrs = vec![rasn_pkix::Attribute {
            r#type: hozon_verifier::hpki::ID_HCPKI_AT_HEALTHCARE_ACTOR.to_owned(),
            values: rasn::types::SetOf::from_vec(vec![Any::new(value)]),
        }];
        Ok(extension(
            ID_CE_SUBJECT_DIRECTORY_ATTRIBUTES,
            false,
            encode(&attrs)?,
        ))
    }

    /// subjectKeyIdentifier of `key`.
    pub fn subject_key_id(key: &Key) -> Result<Extension, DevkitError> {
        let value = encode(&OctetString::from(key.key_identifier()))?;
        Ok(extension(ID_CE_SUBJECT_KEY_IDENTIFIER, false, value))
    }

    /// authorityKeyIdentifier naming the key of `issuer`.
    pub fn authority_key_id(issuer: &Key) -> Result<Extension, DevkitError> {
        let value = encode(&AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::from(issuer.key_identifier())),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        })?;
        Ok(extension(ID_CE_AUTHORITY_KEY_IDENTIFIER, false, value))
    }
}

/// Everything a certificate says about its subject.
#[derive(Clone, Debug)]
pub struct CertSpec {
    /// Serial number magnitude (big-endian, 1..=20 bytes, not zero).
    pub serial: Vec<u8>,
    /// Subject name.
    pub subject: Name,
    /// Start of validity.
    pub not_before: DateTime<Utc>,
    /// End of validity.
    pub not_after: DateTime<Utc>,
    /// Extensions, in this order (subject and authority key identifiers are added).
    pub extensions: Vec<Extension>,
}

/// The issuer side of a certificate or CRL: its name, key and signature algorithm.
#[derive(Clone, Copy, Debug)]
pub struct Issuer<'a> {
    /// The issuer's subject name.
    pub name: &'a Name,
    /// The issuer's key.
    pub key: &'a Key,
    /// The algorithm it signs with.
    pub alg: SigAlg,
}

fn serial_integer(magnitude: &[u8]) -> Result<Integer, DevkitError> {
    positive_integer(magnitude, 160)
        .ok_or_else(|| DevkitError::Encode("serial must be 1..=20 non-zero bytes".into()))
}

/// Issues a certificate for `subject_key` under `issuer`; returns its DER.
pub fn issue_certificate(
    spec: &CertSpec,
    subject_key: &Key,
    issuer: Issuer<'_>,
) -> Result<Vec<u8>, DevkitError> {
    let spki: SubjectPublicKeyInfo = rasn::der::decode(subject_key.spki_der())
        .map_err(|e| DevkitError::Encode(format!("SPKI: {e}")))?;
    let mut extensions = spec.extensions.clone();
    extensions.push(ext::subject_key_id(subject_key)?);
    extensions.push(ext::authority_key_id(issuer.key)?);
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: serial_integer(&spec.serial)?,
        signature: issuer.alg.algorithm_identifier(),
        issuer: issuer.name.clone(),
        validity: Validity {
            not_before: x509_time(spec.not_before),
            not_after: x509_time(spec.not_after),
        },
        subject: spec.subject.clone(),
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions.into()),
    };
    let tbs_der = encode(&tbs)?;
    let signature = issuer.key.sign(issuer.alg, &tbs_der)?;
    encode(&Certificate {
        tbs_certificate: tbs,
        signature_algorithm: issuer.alg.algorithm_identifier(),
        signature_value: BitString::from_vec(signature),
    })
}

/// One revoked certificate on a CRL.
#[derive(Clone, Debug)]
pub struct Revocation {
    /// Serial number magnitude of the revoked certificate.
    pub serial: Vec<u8>,
    /// When it was revoked.
    pub date: DateTime<Utc>,
    /// CRLReason code (RFC 5280 §5.3.1), e.g. 3 affiliationChanged.
    pub reason: u8,
}

/// Everything a CRL says.
#[derive(Clone, Debug)]
pub struct CrlSpec {
    /// `cRLNumber`.
    pub number: u64,
    /// `thisUpdate`.
    pub this_update: DateTime<Utc>,
    /// `nextUpdate`.
    pub next_update: DateTime<Utc>,
    /// The revoked certificates.
    pub revoked: Vec<Revocation>,
}

/// Issues a v2 CRL under `issuer`; returns its DER.
pub fn issue_crl(spec: &CrlSpec, issuer: Issuer<'_>) -> Result<Vec<u8>, DevkitError> {
    let revoked = spec
        .revoked
        .iter()
        .map(|r| {
            Ok(RevokedCertificate {
                user_certificate: serial_integer(&r.serial)?,
                revocation_date: x509_time(r.date),
                crl_entry_extensions: Some(
                    vec![extension(
                        ID_CE_CRL_REASONS,
                        false,
                        vec![0x0a, 0x01, r.reason],
                    )]
                    .into(),
                ),
            })
        })
        .collect::<Result<Vec<_>, DevkitError>>()?;
    let number = encode(&Integer::from(spec.number))?;
    let tbs = TbsCertList {
        version: Version::V2,
        signature: issuer.alg.algorithm_identifier(),
        issuer: issuer.name.clone(),
        this_update: x509_time(spec.this_update),
        next_update: Some(x509_time(spec.next_update)),
        revoked_certificates: revoked,
        crl_extensions: Some(
            vec![
                ext::authority_key_id(issuer.key)?,
                extension(ID_CE_CRL_NUMBER, false, number),
            ]
            .into(),
        ),
    };
    let tbs_der = encode(&tbs)?;
    let signature = issuer.key.sign(issuer.alg, &tbs_der)?;
    encode(&CertificateList {
        tbs_cert_list: tbs,
        signature_algorithm: issuer.alg.algorithm_identifier(),
        signature: BitString::from_vec(signature),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_bit_strings_are_minimal() {
        // keyUsage nonRepudiation only: 03 02 06 40 (6 unused bits, bit 1 set).
        assert_eq!(
            named_bits(&[key_usage::NON_REPUDIATION]),
            [0x03, 0x02, 0x06, 0x40]
        );
        // keyCertSign + cRLSign: 03 02 01 06.
        assert_eq!(
            named_bits(&[key_usage::KEY_CERT_SIGN, key_usage::CRL_SIGN]),
            [0x03, 0x02, 0x01, 0x06]
        );
        assert_eq!(named_bits(&[]), [0x03, 0x01, 0x00]);
    }
}
