//! ASN.1 types and object identifiers that `rasn-cms` / `rasn-pkix` do not provide, plus the
//! small DER helpers the protocol core needs.
//!
//! The RFC 3161 types themselves (`TimeStampReq`, `TimeStampResp`, `TSTInfo`, …) come from
//! [`rasn_cms::tsp`]; CMS (`ContentInfo`, `SignedData`, `SignerInfo`) from [`rasn_cms`]; X.509
//! from [`rasn_pkix`]. This module adds the RFC 2634 / RFC 5035 ESS signing-certificate
//! attributes, the RFC 4055 RSASSA-PSS parameters, the PKIFailureInfo named-bit helpers, and
//! digest/signature algorithm identifiers for [`DigestAlgorithm`] and [`SignatureScheme`].
//!
//! Every type quotes the ASN.1 it implements. All encodings are DER ([`rasn::der`]).

use rasn::prelude::*;
use rasn::types::{BitString, OctetString};
use rasn_pkix::{AlgorithmIdentifier, CertificateSerialNumber, GeneralNames, PolicyInformation};

use crate::signer::{DigestAlgorithm, SignatureScheme};

// ---------------------------------------------------------------------------------------------
// Object identifiers
// ---------------------------------------------------------------------------------------------

/// id-signedData `1.2.840.113549.1.7.2` (RFC 5652 §5.1).
pub const ID_SIGNED_DATA: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 7, 2]);
/// id-data `1.2.840.113549.1.7.1` (RFC 5652 §4).
pub const ID_DATA: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 7, 1]);
/// id-ct-TSTInfo `1.2.840.113549.1.9.16.1.4` (RFC 3161 §2.4.2).
pub const ID_CT_TST_INFO: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 9, 16, 1, 4]);
/// id-contentType `1.2.840.113549.1.9.3` (RFC 5652 §11.1).
pub const ID_CONTENT_TYPE: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 9, 3]);
/// id-messageDigest `1.2.840.113549.1.9.4` (RFC 5652 §11.2).
pub const ID_MESSAGE_DIGEST: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 9, 4]);
/// id-signingTime `1.2.840.113549.1.9.5` (RFC 5652 §11.3).
pub const ID_SIGNING_TIME: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 9, 5]);
/// id-aa-signingCertificate `1.2.840.113549.1.9.16.2.12` (RFC 2634 §5.4).
pub const ID_AA_SIGNING_CERTIFICATE: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 9, 16, 2, 12]);
/// id-aa-signingCertificateV2 `1.2.840.113549.1.9.16.2.47` (RFC 5035 §3).
pub const ID_AA_SIGNING_CERTIFICATE_V2: &Oid =
    Oid::const_new(&[1, 2, 840, 113549, 1, 9, 16, 2, 47]);
/// id-kp-timeStamping `1.3.6.1.5.5.7.3.8` (RFC 3161 §2.3, RFC 5280 §4.2.1.12).
pub const ID_KP_TIME_STAMPING: &Oid = Oid::const_new(&[1, 3, 6, 1, 5, 5, 7, 3, 8]);

/// id-ce-keyUsage `2.5.29.15`.
pub const ID_CE_KEY_USAGE: &Oid = Oid::const_new(&[2, 5, 29, 15]);
/// id-ce-basicConstraints `2.5.29.19`.
pub const ID_CE_BASIC_CONSTRAINTS: &Oid = Oid::const_new(&[2, 5, 29, 19]);
/// id-ce-extKeyUsage `2.5.29.37`.
pub const ID_CE_EXT_KEY_USAGE: &Oid = Oid::const_new(&[2, 5, 29, 37]);

/// id-sha1 `1.3.14.3.2.26`.
pub const ID_SHA1: &Oid = Oid::const_new(&[1, 3, 14, 3, 2, 26]);
/// id-sha256 `2.16.840.1.101.3.4.2.1`.
pub const ID_SHA256: &Oid = Oid::const_new(&[2, 16, 840, 1, 101, 3, 4, 2, 1]);
/// id-sha384 `2.16.840.1.101.3.4.2.2`.
pub const ID_SHA384: &Oid = Oid::const_new(&[2, 16, 840, 1, 101, 3, 4, 2, 2]);
/// id-sha512 `2.16.840.1.101.3.4.2.3`.
pub const ID_SHA512: &Oid = Oid::const_new(&[2, 16, 840, 1, 101, 3, 4, 2, 3]);
/// id-sha3-256 `2.16.840.1.101.3.4.2.8`.
pub const ID_SHA3_256: &Oid = Oid::const_new(&[2, 16, 840, 1, 101, 3, 4, 2, 8]);
/// id-sha3-512 `2.16.840.1.101.3.4.2.10`.
pub const ID_SHA3_512: &Oid = Oid::const_new(&[2, 16, 840, 1, 101, 3, 4, 2, 10]);

/// rsaEncryption `1.2.840.113549.1.1.1` (RFC 8017).
pub const ID_RSA_ENCRYPTION: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 1, 1]);
/// id-mgf1 `1.2.840.113549.1.1.8` (RFC 8017).
pub const ID_MGF1: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 1, 8]);
/// id-RSASSA-PSS `1.2.840.113549.1.1.10` (RFC 4055).
pub const ID_RSASSA_PSS: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 1, 10]);
/// sha1WithRSAEncryption `1.2.840.113549.1.1.5` (legacy; verification only).
pub const ID_SHA1_WITH_RSA: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 1, 5]);
/// sha256WithRSAEncryption `1.2.840.113549.1.1.11` (RFC 4055).
pub const ID_SHA256_WITH_RSA: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 1, 11]);
/// sha384WithRSAEncryption `1.2.840.113549.1.1.12` (RFC 4055).
pub const ID_SHA384_WITH_RSA: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 1, 12]);
/// sha512WithRSAEncryption `1.2.840.113549.1.1.13` (RFC 4055).
pub const ID_SHA512_WITH_RSA: &Oid = Oid::const_new(&[1, 2, 840, 113549, 1, 1, 13]);
/// id-ecPublicKey `1.2.840.10045.2.1` (RFC 5480).
pub const ID_EC_PUBLIC_KEY: &Oid = Oid::const_new(&[1, 2, 840, 10045, 2, 1]);
/// secp256r1 (P-256) `1.2.840.10045.3.1.7` (RFC 5480).
pub const ID_SECP256R1: &Oid = Oid::const_new(&[1, 2, 840, 10045, 3, 1, 7]);
/// secp384r1 (P-384) `1.3.132.0.34` (RFC 5480).
pub const ID_SECP384R1: &Oid = Oid::const_new(&[1, 3, 132, 0, 34]);
/// ecdsa-with-SHA256 `1.2.840.10045.4.3.2` (RFC 5758).
pub const ID_ECDSA_WITH_SHA256: &Oid = Oid::const_new(&[1, 2, 840, 10045, 4, 3, 2]);
/// ecdsa-with-SHA384 `1.2.840.10045.4.3.3` (RFC 5758).
pub const ID_ECDSA_WITH_SHA384: &Oid = Oid::const_new(&[1, 2, 840, 10045, 4, 3, 3]);
/// ecdsa-with-SHA512 `1.2.840.10045.4.3.4` (RFC 5758).
pub const ID_ECDSA_WITH_SHA512: &Oid = Oid::const_new(&[1, 2, 840, 10045, 4, 3, 4]);

/// The TSA policy used when none is configured: `1.3.6.1.4.1.32473.3161.1`.
///
/// It lies under IANA Private Enterprise Number 32473, which RFC 5612 reserves for
/// documentation and examples, so it can never collide with a real policy. It is a development
/// default only: a production TSA configures the policy OID of its own practice statement.
pub const DEFAULT_TSA_POLICY: &Oid = Oid::const_new(&[1, 3, 6, 1, 4, 1, 32473, 3161, 1]);

// ---------------------------------------------------------------------------------------------
// ESS signing-certificate attributes (RFC 2634, RFC 5035)
// ---------------------------------------------------------------------------------------------

/// The SHA-256 AlgorithmIdentifier with absent parameters, the DEFAULT of
/// `ESSCertIDv2.hashAlgorithm`.
pub fn sha256_identifier() -> AlgorithmIdentifier {
    AlgorithmIdentifier {
        algorithm: ID_SHA256.to_owned(),
        parameters: None,
    }
}

/** The signing-certificate-v2 attribute value ([RFC 5035 §3](https://www.rfc-editor.org/rfc/rfc5035#section-3)).

```text
SigningCertificateV2 ::=  SEQUENCE {
    certs        SEQUENCE OF ESSCertIDv2,
    policies     SEQUENCE OF PolicyInformation OPTIONAL
}
```
*/
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct SigningCertificateV2 {
    /// The signing certificate first, then optionally others of its path.
    pub certs: SequenceOf<EssCertIdV2>,
    /// Certificate policies (never emitted by this TSA).
    pub policies: Option<SequenceOf<PolicyInformation>>,
}

/** One certificate identifier of [`SigningCertificateV2`] ([RFC 5035 §4](https://www.rfc-editor.org/rfc/rfc5035#section-4)).

```text
ESSCertIDv2 ::=  SEQUENCE {
    hashAlgorithm           AlgorithmIdentifier
           DEFAULT {algorithm id-sha256},
    certHash                 Hash,
    issuerSerial             IssuerSerial OPTIONAL
}

Hash ::= OCTET STRING
```

In DER the `hashAlgorithm` is omitted when it equals the DEFAULT (SHA-256 with absent
parameters); rasn's encoder does so because the field carries the default below.
*/
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct EssCertIdV2 {
    /// Hash algorithm of `cert_hash`; SHA-256 when absent.
    #[rasn(default = "sha256_identifier")]
    pub hash_algorithm: AlgorithmIdentifier,
    /// Hash over the whole DER certificate.
    pub cert_hash: OctetString,
    /// Issuer and serial number of the certificate.
    pub issuer_serial: Option<IssuerSerial>,
}

/** The signing-certificate attribute value ([RFC 2634 §5.4](https://www.rfc-editor.org/rfc/rfc2634#section-5.4)).

```text
SigningCertificate ::=  SEQUENCE {
    certs        SEQUENCE OF ESSCertID,
    policies     SEQUENCE OF PolicyInformation OPTIONAL
}
```
Only read (older TSAs emit it); this TSA emits [`SigningCertificateV2`].
*/
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct SigningCertificate {
    /// The signing certificate first, then optionally others of its path.
    pub certs: SequenceOf<EssCertId>,
    /// Certificate policies.
    pub policies: Option<SequenceOf<PolicyInformation>>,
}

/** One certificate identifier of [`SigningCertificate`] ([RFC 2634 §5.4.1](https://www.rfc-editor.org/rfc/rfc2634#section-5.4.1)).

```text
ESSCertID ::=  SEQUENCE {
     certHash                 Hash,
     issuerSerial             IssuerSerial OPTIONAL
}

Hash ::= OCTET STRING -- SHA1 hash of entire certificate
```
*/
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct EssCertId {
    /// SHA-1 over the whole DER certificate.
    pub cert_hash: OctetString,
    /// Issuer and serial number of the certificate.
    pub issuer_serial: Option<IssuerSerial>,
}

/** Issuer and serial number of a certificate ([RFC 2634 §5.4.1](https://www.rfc-editor.org/rfc/rfc2634#section-5.4.1), RFC 5035 §4).

```text
IssuerSerial ::= SEQUENCE {
     issuer                   GeneralNames,
     serialNumber             CertificateSerialNumber
}
```
`issuer` holds one `directoryName`: the certificate's issuer.
*/
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct IssuerSerial {
    /// The issuer of the certificate, as a directoryName.
    pub issuer: GeneralNames,
    /// The certificate's serial number.
    pub serial_number: CertificateSerialNumber,
}

// ---------------------------------------------------------------------------------------------
// RSASSA-PSS parameters (RFC 4055)
// ---------------------------------------------------------------------------------------------

fn sha1_identifier() -> AlgorithmIdentifier {
    AlgorithmIdentifier {
        algorithm: ID_SHA1.to_owned(),
        parameters: Some(Any::new(vec![0x05, 0x00])),
    }
}

fn mgf1_sha1_identifier() -> AlgorithmIdentifier {
    AlgorithmIdentifier {
        algorithm: ID_MGF1.to_owned(),
        parameters: Some(Any::new(
            // SEQUENCE { id-sha1, NULL }
            vec![
                0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00,
            ],
        )),
    }
}

fn default_salt_length() -> u32 {
    20
}

fn default_trailer_field() -> u32 {
    1
}

/** Parameters of id-RSASSA-PSS ([RFC 4055 §3.1](https://www.rfc-editor.org/rfc/rfc4055#section-3.1); the module uses EXPLICIT TAGS).

```text
RSASSA-PSS-params  ::=  SEQUENCE  {
    hashAlgorithm      [0] HashAlgorithm DEFAULT sha1Identifier,
    maskGenAlgorithm   [1] MaskGenAlgorithm DEFAULT mgf1SHA1Identifier,
    saltLength         [2] INTEGER DEFAULT 20,
    trailerField       [3] INTEGER DEFAULT 1  }

HashAlgorithm  ::=  AlgorithmIdentifier
MaskGenAlgorithm  ::=  AlgorithmIdentifier
```
*/
#[derive(AsnType, Clone, Debug, Decode, Encode, PartialEq, Eq)]
pub struct RsassaPssParams {
    /// Message digest.
    #[rasn(tag(explicit(0)), default = "sha1_identifier")]
    pub hash_algorithm: AlgorithmIdentifier,
    /// Mask generation function: id-mgf1 with the digest as its parameter.
    #[rasn(tag(explicit(1)), default = "mgf1_sha1_identifier")]
    pub mask_gen_algorithm: AlgorithmIdentifier,
    /// Salt length in octets.
    #[rasn(tag(explicit(2)), default = "default_salt_length")]
    pub salt_length: u32,
    /// Trailer field; must be 1 (0xBC).
    #[rasn(tag(explicit(3)), default = "default_trailer_field")]
    pub trailer_field: u32,
}

// ---------------------------------------------------------------------------------------------
// Algorithm identifiers of the crate's digest and signature enums
// ---------------------------------------------------------------------------------------------

/// DER of a CMS `signingTime` value for `t` (whole seconds): UTCTime from 1950 through 2049,
/// GeneralizedTime otherwise (RFC 5652 §11.3). `None` outside what chrono can represent.
pub fn signing_time_der(t: chrono::DateTime<chrono::Utc>) -> Option<Vec<u8>> {
    use chrono::Datelike;
    let whole = chrono::DateTime::from_timestamp(t.timestamp(), 0)?;
    if (1950..=2049).contains(&whole.year()) {
        rasn::der::encode(&whole).ok()
    } else {
        rasn::der::encode(&whole.fixed_offset()).ok()
    }
}

impl IssuerSerial {
    /// The issuer and serial number of the certificate `tbs`.
    pub fn of(tbs: &rasn_pkix::TbsCertificate) -> Self {
        IssuerSerial {
            issuer: vec![rasn_pkix::GeneralName::DirectoryName(tbs.issuer.clone())],
            serial_number: tbs.serial_number.clone(),
        }
    }
}

impl SigningCertificateV2 {
    /// The attribute value identifying exactly the certificate `cert_der` (whose decoded
    /// `tbs` names its issuer and serial) by its SHA-256 hash.
    pub fn sha256_of(cert_der: &[u8], tbs: &rasn_pkix::TbsCertificate) -> Self {
        SigningCertificateV2 {
            certs: vec![EssCertIdV2 {
                hash_algorithm: sha256_identifier(),
                cert_hash: OctetString::from(DigestAlgorithm::Sha256.digest(cert_der)),
                issuer_serial: Some(IssuerSerial::of(tbs)),
            }],
            policies: None,
        }
    }
}

impl SigningCertificate {
    /// The attribute value identifying exactly the certificate `cert_der` by its SHA-1 hash
    /// (for signatures of the SHA-1 era; new ones use [`SigningCertificateV2`]).
    pub fn sha1_of(cert_der: &[u8], tbs: &rasn_pkix::TbsCertificate) -> Self {
        SigningCertificate {
            certs: vec![EssCertId {
                cert_hash: OctetString::from(DigestAlgorithm::Sha1.digest(cert_der)),
                issuer_serial: Some(IssuerSerial::of(tbs)),
            }],
            policies: None,
        }
    }
}

/// A version-1 CMS SignerInfo (RFC 5652 §5.3) naming its signer by the issuer and serial
/// number of the certificate `tbs`.
pub fn signer_info(
    tbs: &rasn_pkix::TbsCertificate,
    digest: DigestAlgorithm,
    signed_attrs: SetOf<rasn_pkix::Attribute>,
    signature_algorithm: AlgorithmIdentifier,
    signature: Vec<u8>,
    unsigned_attrs: Option<SetOf<rasn_pkix::Attribute>>,
) -> rasn_cms::SignerInfo {
    rasn_cms::SignerInfo {
        version: Integer::ONE,
        sid: rasn_cms::SignerIdentifier::IssuerAndSerialNumber(rasn_cms::IssuerAndSerialNumber {
            issuer: tbs.issuer.clone(),
            serial_number: tbs.serial_number.clone(),
        }),
        digest_algorithm: digest.algorithm_identifier(),
        signed_attrs: Some(signed_attrs),
        signature_algorithm,
        signature: OctetString::from(signature),
        unsigned_attrs,
    }
}

/// A CMS attribute (RFC 5652 §5.3) with one value, given as its DER.
pub fn attribute(oid: &Oid, value_der: Vec<u8>) -> rasn_pkix::Attribute {
    rasn_pkix::Attribute {
        r#type: oid.to_owned(),
        values: SetOf::from_vec(vec![Any::new(value_der)]),
    }
}

/// DER of the ASN.1 NULL value, the parameters of PKCS#1 v1.5 signature algorithms.
pub const DER_NULL: [u8; 2] = [0x05, 0x00];

impl DigestAlgorithm {
    /// All digests this crate knows, strongest last within each family.
    pub const ALL: [DigestAlgorithm; 6] = [
        DigestAlgorithm::Sha1,
        DigestAlgorithm::Sha256,
        DigestAlgorithm::Sha384,
        DigestAlgorithm::Sha512,
        DigestAlgorithm::Sha3_256,
        DigestAlgorithm::Sha3_512,
    ];

    /// The algorithm's object identifier.
    pub fn oid(self) -> &'static Oid {
        match self {
            Self::Sha1 => ID_SHA1,
            Self::Sha256 => ID_SHA256,
            Self::Sha384 => ID_SHA384,
            Self::Sha512 => ID_SHA512,
            Self::Sha3_256 => ID_SHA3_256,
            Self::Sha3_512 => ID_SHA3_512,
        }
    }

    /// The digest whose object identifier is `oid`, if known.
    pub fn from_oid(oid: &Oid) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.oid() == oid)
    }

    /// Length of the digest value in octets.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 | Self::Sha3_256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 | Self::Sha3_512 => 64,
        }
    }

    /// Lower-case name as openssl spells it (`sha256`, `sha3-256`), for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
            Self::Sha3_256 => "sha3-256",
            Self::Sha3_512 => "sha3-512",
        }
    }

    /// The AlgorithmIdentifier with absent parameters, as RFC 5754 §2 and RFC 8702 prescribe
    /// for CMS `digestAlgorithms` and `SignerInfo.digestAlgorithm`.
    pub fn algorithm_identifier(self) -> AlgorithmIdentifier {
        AlgorithmIdentifier {
            algorithm: self.oid().to_owned(),
            parameters: None,
        }
    }

    /// The aws-lc-rs algorithm that computes it.
    pub fn aws_lc(self) -> &'static aws_lc_rs::digest::Algorithm {
        use aws_lc_rs::digest;
        match self {
            Self::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => &digest::SHA256,
            Self::Sha384 => &digest::SHA384,
            Self::Sha512 => &digest::SHA512,
            Self::Sha3_256 => &digest::SHA3_256,
            Self::Sha3_512 => &digest::SHA3_512,
        }
    }

    /// The digest of `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        aws_lc_rs::digest::digest(self.aws_lc(), data)
            .as_ref()
            .to_vec()
    }
}

/// The PSS parameters for `digest` with MGF1 over the same digest, a salt as long as the
/// digest, and the default trailer field: the form RFC 4055 §3.1 and RFC 8017 recommend.
pub fn rsassa_pss_params(digest: DigestAlgorithm) -> RsassaPssParams {
    // The hash AlgorithmIdentifiers carry NULL parameters, as in RFC 4055's
    // sha256Identifier and in the encodings the CA/Browser Forum requires.
    let hash = AlgorithmIdentifier {
        algorithm: digest.oid().to_owned(),
        parameters: Some(Any::new(DER_NULL.to_vec())),
    };
    let hash_der = rasn::der::encode(&hash).unwrap_or_default();
    RsassaPssParams {
        mask_gen_algorithm: AlgorithmIdentifier {
            algorithm: ID_MGF1.to_owned(),
            parameters: Some(Any::new(hash_der)),
        },
        hash_algorithm: hash,
        salt_length: digest.output_len() as u32,
        trailer_field: 1,
    }
}

impl SignatureScheme {
    /// The aws-lc-rs algorithm that verifies this scheme's signatures (RSA keys of 2048 to
    /// 8192 bits; ECDSA signatures in their DER encoding).
    pub fn verification_algorithm(
        self,
    ) -> &'static dyn aws_lc_rs::signature::VerificationAlgorithm {
        use aws_lc_rs::signature as s;
        match self {
            SignatureScheme::RsaPkcs1Sha256 => &s::RSA_PKCS1_2048_8192_SHA256,
            SignatureScheme::RsaPkcs1Sha384 => &s::RSA_PKCS1_2048_8192_SHA384,
            SignatureScheme::RsaPkcs1Sha512 => &s::RSA_PKCS1_2048_8192_SHA512,
            SignatureScheme::RsaPssSha256 => &s::RSA_PSS_2048_8192_SHA256,
            SignatureScheme::RsaPssSha384 => &s::RSA_PSS_2048_8192_SHA384,
            SignatureScheme::RsaPssSha512 => &s::RSA_PSS_2048_8192_SHA512,
            SignatureScheme::EcdsaP256Sha256 => &s::ECDSA_P256_SHA256_ASN1,
            SignatureScheme::EcdsaP384Sha384 => &s::ECDSA_P384_SHA384_ASN1,
        }
    }

    /// The `signatureAlgorithm` AlgorithmIdentifier for CMS and X.509: PKCS#1 v1.5 with NULL
    /// parameters (RFC 4055 §5), RSASSA-PSS with [`rsassa_pss_params`], ECDSA without
    /// parameters (RFC 5758 §3.2).
    pub fn algorithm_identifier(self) -> AlgorithmIdentifier {
        let null = || Some(Any::new(DER_NULL.to_vec()));
        let (oid, parameters) = match self {
            Self::RsaPkcs1Sha256 => (ID_SHA256_WITH_RSA, null()),
            Self::RsaPkcs1Sha384 => (ID_SHA384_WITH_RSA, null()),
            Self::RsaPkcs1Sha512 => (ID_SHA512_WITH_RSA, null()),
            Self::RsaPssSha256 | Self::RsaPssSha384 | Self::RsaPssSha512 => {
                let params = rasn::der::encode(&rsassa_pss_params(self.digest()))
                    .map(Any::new)
                    .ok();
                (ID_RSASSA_PSS, params)
            }
            Self::EcdsaP256Sha256 => (ID_ECDSA_WITH_SHA256, None),
            Self::EcdsaP384Sha384 => (ID_ECDSA_WITH_SHA384, None),
        };
        AlgorithmIdentifier {
            algorithm: oid.to_owned(),
            parameters,
        }
    }

    /// Whether the scheme signs with an RSA key (PKCS#1 v1.5 or PSS).
    pub fn is_rsa(self) -> bool {
        !matches!(self, Self::EcdsaP256Sha256 | Self::EcdsaP384Sha384)
    }
}

// ---------------------------------------------------------------------------------------------
// PKIFailureInfo
// ---------------------------------------------------------------------------------------------

/// A PKIFailureInfo value (RFC 3161 §2.4.2, see [`rasn_cms::tsp::PkiFailureInfo`]) with the
/// single named bit `bit` set.
///
/// DER (X.690 §11.2.2) removes trailing zero bits from a named-bit BIT STRING, so the string
/// is exactly `bit + 1` bits long: badAlg(0) encodes as `03 02 07 80`, systemFailure(25) as
/// `03 05 06 00 00 00 40`.
pub fn failure_info_bits(bit: usize) -> BitString {
    let mut bits = BitString::repeat(false, bit + 1);
    bits.set(bit, true);
    bits
}

/// The named bits set in a PKIFailureInfo, in ascending order.
pub fn failure_info_set_bits(bits: &BitString) -> Vec<usize> {
    bits.iter_ones().collect()
}

// ---------------------------------------------------------------------------------------------
// DER helpers
// ---------------------------------------------------------------------------------------------

/// DER TLV: `tag`, the definite length of `content`, and `content`.
pub fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// Splits one DER TLV off the front of `input`: returns `(tag, header length, content)`.
/// Only single-octet tags and definite lengths (as DER requires) are accepted.
pub fn der_split(input: &[u8]) -> Option<(u8, usize, &[u8])> {
    let tag = *input.first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let first = *input.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > std::mem::size_of::<usize>() {
            return None;
        }
        let bytes = input.get(2..2 + n)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, 2 + n)
    };
    let content = input.get(header..header.checked_add(len)?)?;
    Some((tag, header, content))
}

/// The TLVs inside the TLV `der` (its content split into whole TLVs), as slices of it; `None`
/// if `der` or any child is not a well-formed definite-length TLV.
pub fn der_children(der: &[u8]) -> Option<Vec<&[u8]>> {
    let (_, _, mut content) = der_split(der)?;
    let mut out = Vec::new();
    while !content.is_empty() {
        let (_, header, c) = der_split(content)?;
        let (child, rest) = content.split_at(header + c.len());
        out.push(child);
        content = rest;
    }
    Some(out)
}

/// The content octets of an INTEGER's DER encoding (minimal two's complement, big-endian).
pub fn integer_content(value: &Integer) -> Vec<u8> {
    rasn::der::encode(value)
        .ok()
        .and_then(|der| der_split(&der).map(|(_, _, c)| c.to_vec()))
        .unwrap_or_default()
}

/// The INTEGER whose DER content octets are `content`; `None` if they are empty or not
/// minimal (X.690 §8.3.2: the first nine bits must not be all zeros or all ones).
pub fn integer_from_content(content: &[u8]) -> Option<Integer> {
    if let [first, second, ..] = content {
        let redundant =
            (*first == 0x00 && second & 0x80 == 0) || (*first == 0xff && second & 0x80 != 0);
        if redundant {
            return None;
        }
    }
    rasn::der::decode(&der_tlv(0x02, content)).ok()
}

/// A positive INTEGER from an unsigned big-endian magnitude (leading zero octets ignored).
/// `None` for zero or for more than `max_bits` significant bits.
pub fn positive_integer(magnitude: &[u8], max_bits: usize) -> Option<Integer> {
    let start = magnitude.iter().position(|b| *b != 0)?;
    let magnitude = &magnitude[start..];
    let bits = magnitude.len() * 8 - magnitude[0].leading_zeros() as usize;
    if bits > max_bits {
        return None;
    }
    let mut content = Vec::with_capacity(magnitude.len() + 1);
    if magnitude[0] & 0x80 != 0 {
        content.push(0);
    }
    content.extend_from_slice(magnitude);
    integer_from_content(&content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_splits_tlvs() {
        let der = [0x30, 0x06, 0x02, 0x01, 0x01, 0x04, 0x01, 0xaa];
        let c = der_children(&der).unwrap();
        assert_eq!(c, vec![&[0x02, 0x01, 0x01][..], &[0x04, 0x01, 0xaa][..]]);
        assert!(der_children(&der[..5]).is_none());
    }

    #[test]
    fn ess_cert_id_v2_omits_default_sha256() {
        let id = EssCertIdV2 {
            hash_algorithm: sha256_identifier(),
            cert_hash: OctetString::from(vec![0xAA; 32]),
            issuer_serial: None,
        };
        let der = rasn::der::encode(&id).unwrap();
        // SEQUENCE { OCTET STRING (32) }: no AlgorithmIdentifier.
        assert_eq!(&der[..4], &[0x30, 0x22, 0x04, 0x20]);
        let back: EssCertIdV2 = rasn::der::decode(&der).unwrap();
        assert_eq!(back, id);

        let sha512 = EssCertIdV2 {
            hash_algorithm: DigestAlgorithm::Sha512.algorithm_identifier(),
            ..id
        };
        let der = rasn::der::encode(&sha512).unwrap();
        assert_eq!(der[2], 0x30, "a non-default hashAlgorithm is encoded");
    }

    #[test]
    fn failure_info_is_minimal_named_bit_string() {
        assert_eq!(
            rasn::der::encode(&failure_info_bits(0)).unwrap(),
            [0x03, 0x02, 0x07, 0x80]
        );
        assert_eq!(
            rasn::der::encode(&failure_info_bits(2)).unwrap(),
            [0x03, 0x02, 0x05, 0x20]
        );
        assert_eq!(
            rasn::der::encode(&failure_info_bits(25)).unwrap(),
            [0x03, 0x05, 0x06, 0x00, 0x00, 0x00, 0x40]
        );
        assert_eq!(failure_info_set_bits(&failure_info_bits(17)), vec![17]);
    }

    #[test]
    fn pss_params_match_cabf_encoding() {
        // The encoding the Mozilla Root Store Policy §5.1.1 lists for RSASSA-PSS with SHA-256
        // (the AlgorithmIdentifier's parameters only).
        let expected = hex::decode(
            "3034a00f300d06096086480165030402010500a11c301a06092a864886f70d010108\
             300d06096086480165030402010500a203020120",
        )
        .unwrap();
        let params = rasn::der::encode(&rsassa_pss_params(DigestAlgorithm::Sha256)).unwrap();
        assert_eq!(params, expected);
        let back: RsassaPssParams = rasn::der::decode(&params).unwrap();
        assert_eq!(back, rsassa_pss_params(DigestAlgorithm::Sha256));
        // An empty SEQUENCE decodes to the SHA-1 defaults.
        let defaults: RsassaPssParams = rasn::der::decode(&[0x30, 0x00]).unwrap();
        assert_eq!(defaults.salt_length, 20);
        assert_eq!(defaults.hash_algorithm.algorithm, ID_SHA1.to_owned());
    }

    #[test]
    fn integers() {
        assert_eq!(
            integer_content(&positive_integer(&[0x80], 160).unwrap()),
            [0x00, 0x80]
        );
        assert_eq!(
            integer_content(&positive_integer(&[0, 0, 0x01, 0x02], 160).unwrap()),
            [0x01, 0x02]
        );
        assert!(positive_integer(&[0, 0], 160).is_none());
        assert!(positive_integer(&[0xff; 20], 160).is_some());
        assert!(positive_integer(&[0xff; 21], 160).is_none());
        assert!(positive_integer(&[0x01; 21], 160).is_none());
        assert!(integer_from_content(&[0x00, 0x01]).is_none(), "non-minimal");
        assert_eq!(integer_content(&Integer::from(-1)), [0xff]);
    }

    #[test]
    fn der_tlv_lengths() {
        assert_eq!(der_tlv(0x04, &[1, 2]), [0x04, 0x02, 1, 2]);
        let long = der_tlv(0x04, &[0; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        let (tag, header, content) = der_split(&long).unwrap();
        assert_eq!((tag, header, content.len()), (0x04, 4, 300));
        assert!(der_split(&long[..100]).is_none());
    }
}
