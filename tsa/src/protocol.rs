//! The RFC 3161 protocol core: check a `TimeStampReq`, build and sign a `TSTInfo` inside a CMS
//! `SignedData`, and write `TimeStampResp`s.
//!
//! Sans-I/O and clock-free: the caller supplies the request bytes, the serial number and the
//! time ([`Issuance`]) and the key ([`CertifiedSigner`]); everything returned is DER.
//!
//! ```text
//! bytes ──check_request──▶ CheckedRequest ──issue_token(+Issuance, key)──▶ token DER
//!   │                                                                        │
//!   └─▶ Rejection ──rejection_response──▶ TimeStampResp      granted_response ◀┘
//! ```
//!
//! Decisions where RFC 3161 leaves a choice (DESIGN §3, §6):
//! - a hash algorithm with parameters other than absent or NULL is `badAlg` (the
//!   AlgorithmIdentifier as a whole is not one the TSA recognises);
//! - an imprint whose length does not fit its hash algorithm is `badDataFormat`, as Bouncy
//!   Castle's TSP server does;
//! - any request extension is `unacceptedExtension`: this TSA supports none, and never copies
//!   client extensions or policies into a token;
//! - the request must be exactly one DER value (RFC 3161 §3.4): BER forms (non-minimal
//!   INTEGERs, an explicit `certReq FALSE`, …) and trailing bytes are `badDataFormat`; so the
//!   nonce is echoed octet for octet;
//! - a request version other than 1 is `badRequest` (a version too large for the decoder's
//!   `u64`, or negative, is `badDataFormat`).

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Datelike, Utc};
use rasn::types::{Any, Integer, ObjectIdentifier, OctetString, SetOf};
use rasn_cms::tsp::{
    MessageImprint, PkiStatus, PkiStatusInfo, TimeStampReq, TimeStampResp, TstInfo,
};
use rasn_cms::{CertificateChoices, ContentInfo, EncapsulatedContentInfo, SignedData};
use rasn_pkix::{AlgorithmIdentifier, Certificate, GeneralName};

use crate::asn1::{
    attribute, der_tlv, failure_info_bits, integer_content, integer_from_content, positive_integer,
    SigningCertificateV2, DEFAULT_TSA_POLICY, DER_NULL, ID_AA_SIGNING_CERTIFICATE_V2,
    ID_CONTENT_TYPE, ID_CT_TST_INFO, ID_MESSAGE_DIGEST, ID_SIGNED_DATA, ID_SIGNING_TIME,
};
use crate::signer::{CertifiedSigner, DigestAlgorithm, SignerError};

/// Longest status text written into a rejection (longer texts are cut at a char boundary).
const MAX_STATUS_TEXT: usize = 256;

/// How finely `genTime` is given. Fractions never carry trailing zeros (DER), and a zero
/// fraction is omitted altogether.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TimePrecision {
    /// Whole seconds: `20260102030405Z`.
    #[default]
    Seconds,
    /// Up to three fraction digits: `20260102030405.12Z`.
    Millis,
    /// Up to six fraction digits: `20260102030405.123456Z`.
    Micros,
}

/// The `accuracy` field of TSTInfo (RFC 3161 §2.4.2): the time deviation the TSA vouches for.
/// Zero components are omitted; `millis` and `micros` must be at most 999.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Accuracy {
    /// Whole seconds.
    pub seconds: u32,
    /// Milliseconds, 0..=999.
    pub millis: u16,
    /// Microseconds, 0..=999.
    pub micros: u16,
}

/// What the TSA offers and how it writes tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsaConfig {
    /// Policies a request may ask for in `reqPolicy`, besides `default_policy`.
    pub policies: Vec<ObjectIdentifier>,
    /// The policy of tokens whose request names none; always accepted in `reqPolicy`.
    pub default_policy: ObjectIdentifier,
    /// Hash algorithms accepted for message imprints.
    pub accepted_digests: Vec<DigestAlgorithm>,
    /// `accuracy` of every token, or `None` to omit it.
    pub accuracy: Option<Accuracy>,
    /// `ordering` of every token (written only when true; DER omits the DEFAULT FALSE).
    pub ordering: bool,
    /// Write the `tsa` field: a directoryName with the TSA certificate's subject.
    pub include_tsa_name: bool,
    /// Add a signingTime signed attribute equal to `genTime` (to the second).
    pub include_signing_time: bool,
    /// Precision of `genTime`.
    pub precision: TimePrecision,
}

impl Default for TsaConfig {
    /// The development defaults: policy [`DEFAULT_TSA_POLICY`], SHA-256/384/512 and
    /// SHA3-256/512 imprints (never SHA-1), accuracy 1 s, no ordering, no `tsa` name,
    /// signingTime on, whole-second `genTime`.
    fn default() -> Self {
        TsaConfig {
            policies: vec![DEFAULT_TSA_POLICY.to_owned()],
            default_policy: DEFAULT_TSA_POLICY.to_owned(),
            accepted_digests: vec![
                DigestAlgorithm::Sha256,
                DigestAlgorithm::Sha384,
                DigestAlgorithm::Sha512,
                DigestAlgorithm::Sha3_256,
                DigestAlgorithm::Sha3_512,
            ],
            accuracy: Some(Accuracy {
                seconds: 1,
                millis: 0,
                micros: 0,
            }),
            ordering: false,
            include_tsa_name: false,
            include_signing_time: true,
            precision: TimePrecision::Seconds,
        }
    }
}

impl TsaConfig {
    fn offers(&self, policy: &ObjectIdentifier) -> bool {
        *policy == self.default_policy || self.policies.contains(policy)
    }
}

/// The PKIFailureInfo bit of a rejection (RFC 3161 §2.4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FailureInfo {
    /// Unrecognized or unsupported algorithm identifier (bit 0).
    BadAlg,
    /// Transaction not permitted or supported (bit 2).
    BadRequest,
    /// The data submitted has the wrong format (bit 5).
    BadDataFormat,
    /// The TSA's time source is not available (bit 14).
    TimeNotAvailable,
    /// The requested TSA policy is not supported (bit 15).
    UnacceptedPolicy,
    /// The requested extension is not supported (bit 16).
    UnacceptedExtension,
    /// The additional information requested could not be understood or is not available
    /// (bit 17).
    AddInfoNotAvailable,
    /// The request cannot be handled due to system failure (bit 25).
    SystemFailure,
}

impl FailureInfo {
    /// Every failure, in bit order.
    pub const ALL: [FailureInfo; 8] = [
        FailureInfo::BadAlg,
        FailureInfo::BadRequest,
        FailureInfo::BadDataFormat,
        FailureInfo::TimeNotAvailable,
        FailureInfo::UnacceptedPolicy,
        FailureInfo::UnacceptedExtension,
        FailureInfo::AddInfoNotAvailable,
        FailureInfo::SystemFailure,
    ];

    /// The named bit's number in PKIFailureInfo.
    pub fn bit(self) -> usize {
        match self {
            Self::BadAlg => 0,
            Self::BadRequest => 2,
            Self::BadDataFormat => 5,
            Self::TimeNotAvailable => 14,
            Self::UnacceptedPolicy => 15,
            Self::UnacceptedExtension => 16,
            Self::AddInfoNotAvailable => 17,
            Self::SystemFailure => 25,
        }
    }

    /// The failure whose named bit is `bit`.
    pub fn from_bit(bit: usize) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.bit() == bit)
    }

    /// The RFC's name of the bit (`badAlg`, …), for metrics labels and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadAlg => "badAlg",
            Self::BadRequest => "badRequest",
            Self::BadDataFormat => "badDataFormat",
            Self::TimeNotAvailable => "timeNotAvailable",
            Self::UnacceptedPolicy => "unacceptedPolicy",
            Self::UnacceptedExtension => "unacceptedExtension",
            Self::AddInfoNotAvailable => "addInfoNotAvailable",
            Self::SystemFailure => "systemFailure",
        }
    }
}

impl std::fmt::Display for FailureInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request the TSA refuses: the failure bit and a short English text for `statusString`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{failure}: {text}")]
pub struct Rejection {
    /// The PKIFailureInfo bit.
    pub failure: FailureInfo,
    /// Human-readable reason, sent to the client as `statusString`.
    pub text: String,
}

impl Rejection {
    /// A rejection with `failure` and `text`.
    pub fn new(failure: FailureInfo, text: impl Into<String>) -> Self {
        Rejection {
            failure,
            text: text.into(),
        }
    }
}

/// A request that passed [`check_request`]: everything a token needs from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedRequest {
    /// Hash algorithm of the imprint.
    pub digest: DigestAlgorithm,
    /// The hashed message (length checked against `digest`).
    pub imprint: Vec<u8>,
    /// Whether the request's hashAlgorithm carried NULL parameters (rather than none); the
    /// token's messageImprint echoes the AlgorithmIdentifier exactly as it was sent, as
    /// RFC 3161 §2.4.2 requires ("MUST have the same value").
    pub imprint_params_null: bool,
    /// The policy of the token: the requested one, or the default.
    pub policy: ObjectIdentifier,
    /// The nonce: DER INTEGER content octets, echoed verbatim.
    pub nonce: Option<Vec<u8>>,
    /// Whether the client asked for the TSA certificate in the token.
    pub cert_req: bool,
}

/// Decodes and checks a DER `TimeStampReq` against `cfg`. See the module documentation for
/// which failure bit each defect gets. Never panics.
pub fn check_request(der: &[u8], cfg: &TsaConfig) -> Result<CheckedRequest, Rejection> {
    use FailureInfo::*;
    let (req, rest) = rasn::der::decode_with_remainder::<TimeStampReq>(der).map_err(|e| {
        Rejection::new(
            BadDataFormat,
            format!("request is not a DER TimeStampReq: {e}"),
        )
    })?;
    if !rest.is_empty() {
        return Err(Rejection::new(
            BadDataFormat,
            format!("{} bytes after the TimeStampReq", rest.len()),
        ));
    }
    // rasn's DER decoder tolerates some BER (e.g. non-minimal INTEGERs). RFC 3161 §3.4 says
    // the request is DER, and the nonce must be echoed octet for octet: re-encode and compare.
    if rasn::der::encode(&req).ok().as_deref() != Some(der) {
        return Err(Rejection::new(
            BadDataFormat,
            "request is not DER-encoded (RFC 3161 §3.4)",
        ));
    }
    if req.version != 1 {
        return Err(Rejection::new(
            BadRequest,
            format!("request version {} is not supported (only v1)", req.version),
        ));
    }

    let alg = &req.message_imprint.hash_algorithm;
    let digest = DigestAlgorithm::from_oid(&alg.algorithm).ok_or_else(|| {
        Rejection::new(BadAlg, format!("unknown hash algorithm {}", alg.algorithm))
    })?;
    if !cfg.accepted_digests.contains(&digest) {
        return Err(Rejection::new(
            BadAlg,
            format!("hash algorithm {} is not accepted", digest.name()),
        ));
    }
    let imprint_params_null = match &alg.parameters {
        None => false,
        Some(p) if p.as_bytes() == DER_NULL => true,
        Some(_) => {
            return Err(Rejection::new(
                BadAlg,
                format!(
                    "hash algorithm {} must have absent or NULL parameters",
                    digest.name()
                ),
            ))
        }
    };
    let imprint = req.message_imprint.hashed_message.to_vec();
    if imprint.len() != digest.output_len() {
        return Err(Rejection::new(
            BadDataFormat,
            format!(
                "{}-byte imprint for {}, which has {} bytes",
                imprint.len(),
                digest.name(),
                digest.output_len()
            ),
        ));
    }

    let policy = match req.req_policy {
        None => cfg.default_policy.clone(),
        Some(p) if cfg.offers(&p) => p,
        Some(p) => {
            return Err(Rejection::new(
                UnacceptedPolicy,
                format!("policy {p} is not offered"),
            ))
        }
    };
    if let Some(extensions) = &req.extensions {
        let oids: Vec<String> = extensions.iter().map(|e| e.extn_id.to_string()).collect();
        return Err(Rejection::new(
            UnacceptedExtension,
            format!("no request extensions are supported ({})", oids.join(", ")),
        ));
    }

    Ok(CheckedRequest {
        digest,
        imprint,
        imprint_params_null,
        policy,
        nonce: req.nonce.as_ref().map(integer_content),
        cert_req: req.cert_req,
    })
}

/// The serial number and time of one token, chosen by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issuance {
    /// Serial number: unsigned big-endian magnitude of 1..=20 bytes, not zero; written as a
    /// positive INTEGER (a 0x00 octet is prefixed when the top bit is set).
    pub serial: Vec<u8>,
    /// The time to certify (`genTime`), truncated to the configured precision.
    pub gen_time: SystemTime,
}

/// Why a token could not be made. All of these are the TSA's fault, not the client's: answer
/// with `systemFailure` (or `timeNotAvailable` for [`TokenError::Time`]).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The key could not sign.
    #[error("signing failed: {0}")]
    Signer(#[from] SignerError),
    /// The serial number is zero, longer than 160 bits, or empty.
    #[error("invalid serial number: {0}")]
    Serial(String),
    /// The time cannot be written as a GeneralizedTime.
    #[error("invalid genTime: {0}")]
    Time(String),
    /// The configuration cannot produce a valid token.
    #[error("invalid TSA configuration: {0}")]
    Config(String),
    /// The CheckedRequest was not produced by [`check_request`] and is inconsistent.
    #[error("inconsistent request: {0}")]
    Request(String),
    /// DER encoding failed.
    #[error("DER encoding failed: {0}")]
    Encode(String),
}

impl TokenError {
    /// The failure bit to answer the client with.
    pub fn failure_info(&self) -> FailureInfo {
        match self {
            TokenError::Time(_) => FailureInfo::TimeNotAvailable,
            _ => FailureInfo::SystemFailure,
        }
    }
}

fn encode<T: rasn::Encode>(value: &T, what: &str) -> Result<Vec<u8>, TokenError> {
    rasn::der::encode(value).map_err(|e| TokenError::Encode(format!("{what}: {e}")))
}

/// `t` truncated to `precision`, as a chrono UTC time; an error before 1970 or after 9999.
fn gen_time(t: SystemTime, precision: TimePrecision) -> Result<DateTime<Utc>, TokenError> {
    let since = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| TokenError::Time("before 1970".into()))?;
    let nanos = since.subsec_nanos();
    let nanos = match precision {
        TimePrecision::Seconds => 0,
        TimePrecision::Millis => nanos - nanos % 1_000_000,
        TimePrecision::Micros => nanos - nanos % 1_000,
    };
    let secs = i64::try_from(since.as_secs()).map_err(|_| TokenError::Time("too late".into()))?;
    let dt = DateTime::from_timestamp(secs, nanos)
        .ok_or_else(|| TokenError::Time("out of range".into()))?;
    if dt.year() > 9999 {
        return Err(TokenError::Time("after year 9999".into()));
    }
    Ok(dt)
}

/// The DER of a signingTime value (RFC 5652 §11.3): UTCTime for 1950–2049, GeneralizedTime
/// otherwise, to the second, in UTC.
fn signing_time_der(t: DateTime<Utc>) -> Result<Vec<u8>, TokenError> {
    crate::asn1::signing_time_der(t).ok_or_else(|| TokenError::Time("out of range".into()))
}

fn accuracy_value(a: &Accuracy) -> Result<rasn_cms::tsp::Accuracy, TokenError> {
    if a.millis > 999 || a.micros > 999 {
        return Err(TokenError::Config(format!(
            "accuracy millis and micros must be 0..=999, got {} and {}",
            a.millis, a.micros
        )));
    }
    if a.seconds == 0 && a.millis == 0 && a.micros == 0 {
        return Err(TokenError::Config(
            "accuracy is zero; configure None to omit it".into(),
        ));
    }
    let nonzero = |v: u32| (v > 0).then(|| Integer::from(v));
    Ok(rasn_cms::tsp::Accuracy {
        seconds: nonzero(a.seconds),
        millis: nonzero(u32::from(a.millis)),
        micros: nonzero(u32::from(a.micros)),
    })
}

/// Builds the TSTInfo for `req` and signs it into a TimeStampToken: the DER of a ContentInfo
/// holding a SignedData (see the module documentation of the crate for the exact profile).
///
/// - TSTInfo: v1, `req.policy`, the imprint as sent, `iss.serial`, `genTime` per
///   `cfg.precision`, `cfg.accuracy`, `ordering` only if true, the nonce if sent, the `tsa`
///   name if configured, no extensions.
/// - SignedData v3 with one SignerInfo v1 (issuerAndSerialNumber); `certificates` holds the
///   TSA certificate only when `req.cert_req`.
/// - Signed attributes (a DER SET OF, signed as such): contentType id-ct-TSTInfo,
///   messageDigest, signingCertificateV2 (ESSCertIDv2: SHA-256 over the TSA certificate, with
///   issuerSerial) and, if configured, signingTime.
pub fn issue_token(
    req: &CheckedRequest,
    iss: &Issuance,
    cfg: &TsaConfig,
    key: &CertifiedSigner,
) -> Result<Vec<u8>, TokenError> {
    if req.imprint.len() != req.digest.output_len() {
        return Err(TokenError::Request(format!(
            "imprint of {} bytes for {}",
            req.imprint.len(),
            req.digest.name()
        )));
    }
    let cert_der = key.certificate();
    let cert: &Certificate = key.decoded_certificate();
    let tbs = &cert.tbs_certificate;

    let serial = positive_integer(&iss.serial, 160).ok_or_else(|| {
        TokenError::Serial(format!(
            "{} bytes, must be a non-zero magnitude of at most 160 bits",
            iss.serial.len()
        ))
    })?;
    let nonce = match &req.nonce {
        None => None,
        Some(bytes) => Some(integer_from_content(bytes).ok_or_else(|| {
            TokenError::Request("nonce is not a minimal INTEGER encoding".into())
        })?),
    };
    let time = gen_time(iss.gen_time, cfg.precision)?;

    let tst_info = TstInfo {
        version: Integer::ONE,
        policy: req.policy.clone(),
        message_imprint: MessageImprint {
            hash_algorithm: AlgorithmIdentifier {
                algorithm: req.digest.oid().to_owned(),
                parameters: req.imprint_params_null.then(|| Any::new(DER_NULL.to_vec())),
            },
            hashed_message: OctetString::from(req.imprint.clone()),
        },
        serial_number: serial,
        gen_time: time.fixed_offset(),
        accuracy: cfg.accuracy.as_ref().map(accuracy_value).transpose()?,
        ordering: cfg.ordering,
        nonce,
        tsa: cfg
            .include_tsa_name
            .then(|| GeneralName::DirectoryName(tbs.subject.clone())),
        extensions: None,
    };
    let tst_der = encode(&tst_info, "TSTInfo")?;

    let scheme = key.signer.scheme();
    let digest = scheme.digest();
    let ess = SigningCertificateV2::sha256_of(cert_der, tbs);
    let mut attrs = vec![
        attribute(
            ID_CONTENT_TYPE,
            encode(&ID_CT_TST_INFO.to_owned(), "contentType")?,
        ),
        attribute(ID_MESSAGE_DIGEST, der_tlv(0x04, &digest.digest(&tst_der))),
        attribute(
            ID_AA_SIGNING_CERTIFICATE_V2,
            encode(&ess, "SigningCertificateV2")?,
        ),
    ];
    if cfg.include_signing_time {
        attrs.push(attribute(ID_SIGNING_TIME, signing_time_der(time)?));
    }
    let signed_attrs = SetOf::from_vec(attrs);
    // The signature covers the DER of the attributes as a SET OF (tag 0x31, RFC 5652 §5.4);
    // the SignerInfo below carries the same content under [0] IMPLICIT. rasn's DER encoder
    // sorts SET OF elements by their encodings in both places.
    let signed_attrs_der = encode(&signed_attrs, "signed attributes")?;
    let signature = key.signer.sign(&signed_attrs_der)?;

    let signer_info = crate::asn1::signer_info(
        tbs,
        digest,
        signed_attrs,
        scheme.algorithm_identifier(),
        signature,
        None,
    );
    let signed_data = SignedData {
        version: Integer::from(3),
        digest_algorithms: SetOf::from_vec(vec![digest.algorithm_identifier()]),
        encap_content_info: EncapsulatedContentInfo {
            content_type: ID_CT_TST_INFO.to_owned(),
            content: Some(OctetString::from(tst_der)),
        },
        certificates: req.cert_req.then(|| {
            SetOf::from_vec(vec![CertificateChoices::Certificate(Box::new(
                cert.clone(),
            ))])
        }),
        crls: None,
        signer_infos: SetOf::from_vec(vec![signer_info]),
    };
    let content_info = ContentInfo {
        content_type: ID_SIGNED_DATA.to_owned(),
        content: Any::new(encode(&signed_data, "SignedData")?),
    };
    encode(&content_info, "ContentInfo")
}

/// DER of `PKIStatusInfo { status granted(0) }`.
const STATUS_GRANTED: [u8; 5] = [0x30, 0x03, 0x02, 0x01, 0x00];

/// A `TimeStampResp` with status granted(0) around `token_der` (as returned by
/// [`issue_token`]; copied verbatim).
pub fn granted_response(token_der: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(STATUS_GRANTED.len() + token_der.len());
    content.extend_from_slice(&STATUS_GRANTED);
    content.extend_from_slice(token_der);
    der_tlv(0x30, &content)
}

/// A `TimeStampResp` with status rejection(2), `r.text` as the statusString (cut to 256
/// bytes) and `r.failure` as the only failInfo bit (a DER named-bit BIT STRING, trailing zero
/// bits removed).
pub fn rejection_response(r: &Rejection) -> Vec<u8> {
    let mut text = r.text.as_str();
    if text.len() > MAX_STATUS_TEXT {
        let mut end = MAX_STATUS_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text = &text[..end];
    }
    let resp = TimeStampResp {
        status: PkiStatusInfo {
            status: PkiStatus::Rejection,
            status_string: Some(vec![text.to_owned()]),
            fail_info: Some(failure_info_bits(r.failure.bit())),
        },
        time_stamp_token: None,
    };
    rasn::der::encode(&resp).unwrap_or_else(|_| {
        // Unreachable in practice; a response without text is still a valid rejection.
        let bits = rasn::der::encode(&failure_info_bits(r.failure.bit())).unwrap_or_default();
        let mut status = vec![0x02, 0x01, 0x02];
        status.extend_from_slice(&bits);
        der_tlv(0x30, &der_tlv(0x30, &status))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_bits_and_names() {
        let bits: Vec<usize> = FailureInfo::ALL.iter().map(|f| f.bit()).collect();
        assert_eq!(bits, [0, 2, 5, 14, 15, 16, 17, 25]);
        for f in FailureInfo::ALL {
            assert_eq!(FailureInfo::from_bit(f.bit()), Some(f));
        }
        assert_eq!(FailureInfo::UnacceptedPolicy.as_str(), "unacceptedPolicy");
    }

    #[test]
    fn gen_time_precision_has_no_trailing_zeros() {
        let t = UNIX_EPOCH + std::time::Duration::new(1_767_323_045, 120_456_789);
        let enc = |p| {
            let der = rasn::der::encode(&gen_time(t, p).unwrap().fixed_offset()).unwrap();
            String::from_utf8(der[2..].to_vec()).unwrap()
        };
        assert_eq!(enc(TimePrecision::Seconds), "20260102030405Z");
        assert_eq!(enc(TimePrecision::Millis), "20260102030405.12Z");
        assert_eq!(enc(TimePrecision::Micros), "20260102030405.120456Z");
        let whole = UNIX_EPOCH + std::time::Duration::new(1_767_323_045, 999);
        let der = rasn::der::encode(
            &gen_time(whole, TimePrecision::Millis)
                .unwrap()
                .fixed_offset(),
        )
        .unwrap();
        assert_eq!(&der[2..], b"20260102030405Z");
        assert!(gen_time(
            UNIX_EPOCH - std::time::Duration::from_secs(1),
            TimePrecision::Seconds
        )
        .is_err());
    }

    #[test]
    fn signing_time_switches_to_generalized_after_2049() {
        let t = DateTime::from_timestamp(1_767_323_045, 5).unwrap();
        assert_eq!(
            signing_time_der(t).unwrap(),
            der_tlv(0x17, b"260102030405Z")
        );
        let late = DateTime::from_timestamp(2_556_143_999 + 1, 0).unwrap(); // 2051-01-01
        assert_eq!(signing_time_der(late).unwrap()[0], 0x18);
    }

    #[test]
    fn granted_wraps_token_verbatim() {
        let token = rasn::der::encode(&ContentInfo {
            content_type: crate::asn1::ID_DATA.to_owned(),
            content: Any::new(vec![0x04, 0x00]),
        })
        .unwrap();
        let resp = granted_response(&token);
        assert_eq!(
            &resp[..7],
            &[
                0x30,
                0x03 + 2 + token.len() as u8,
                0x30,
                0x03,
                0x02,
                0x01,
                0x00
            ]
        );
        assert_eq!(&resp[7..], &token[..]);
        let parsed: TimeStampResp = rasn::der::decode(&resp).unwrap();
        assert_eq!(parsed.status.status, PkiStatus::Granted);
        assert_eq!(rasn::der::encode(&parsed).unwrap(), resp);
    }

    #[test]
    fn rejection_encoding() {
        let r = Rejection::new(FailureInfo::BadAlg, "nope");
        let der = rejection_response(&r);
        let parsed: TimeStampResp = rasn::der::decode(&der).unwrap();
        assert_eq!(parsed.status.status, PkiStatus::Rejection);
        assert_eq!(
            parsed.status.status_string.unwrap(),
            vec!["nope".to_string()]
        );
        assert_eq!(
            crate::asn1::failure_info_set_bits(&parsed.status.fail_info.unwrap()),
            vec![0]
        );
        let long = Rejection::new(FailureInfo::SystemFailure, "é".repeat(300));
        let parsed: TimeStampResp = rasn::der::decode(&rejection_response(&long)).unwrap();
        assert!(parsed.status.status_string.unwrap()[0].len() <= MAX_STATUS_TEXT);
    }
}
