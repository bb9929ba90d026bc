//! The two signature formats of a signed FHIR document (DESIGN §3), made for fixtures:
//!
//! - **JWS** (`application/jose`): RFC 7515 compact serialisation with a *detached* payload
//!   (Appendix F): `BASE64URL(header) ".." BASE64URL(signature)`, where the signature covers
//!   `BASE64URL(header) "." BASE64URL(payload)`. The protected header is
//!   `{"alg":"RS256","sigT":…,"x5c":[…]}`: `x5c` holds the signer's certificate then its CA
//!   (standard base64 DER, RFC 7515 §4.1.6); `sigT` is the claimed signing time (JAdES,
//!   ETSI TS 119 182-1 §5.2.1). Its timestamp ([`jws_timestamp_imprint`]) is kept beside the
//!   document, as JAdES' `sigTst` does it: over the ASCII of `BASE64URL(signature)`.
//! - **CMS** (`application/pkcs7-signature`): detached SignedData (RFC 5652) with one
//!   SignerInfo, i.e. CAdES-BES: signed attributes contentType (id-data), signingTime,
//!   messageDigest and signingCertificateV2 (SHA-256 ESSCertIDv2; the legacy SHA-1 signers
//!   write the v1 signingCertificate with a SHA-1 ESSCertID, as CAdES did then). With a
//!   timestamp it is CAdES-T: the unsigned attribute id-aa-signatureTimeStampToken holds an
//!   RFC 3161 token over the SignerInfo's signature octets (RFC 3161 Appendix A).
//!
//! Both sign the payload they are given: for a FHIR document, the JCS bytes of the Bundle
//! without its `signature` ([`crate::fhir::signed_bytes`]).

use std::time::{Duration, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, Utc};
use rasn::types::{Any, Integer, Oid, SetOf};
use rasn_cms::{CertificateChoices, ContentInfo, EncapsulatedContentInfo, SignedData};
use rasn_pkix::Certificate;

use hozon_tsa::asn1::{
    attribute, der_tlv, SigningCertificate, SigningCertificateV2, DEFAULT_TSA_POLICY,
    ID_AA_SIGNING_CERTIFICATE, ID_AA_SIGNING_CERTIFICATE_V2, ID_CONTENT_TYPE, ID_DATA,
    ID_MESSAGE_DIGEST, ID_SIGNED_DATA, ID_SIGNING_TIME,
};
use hozon_tsa::protocol::{issue_token, CheckedRequest, Issuance, TsaConfig};
use hozon_tsa::signer::{CertifiedSigner, DigestAlgorithm};

use crate::x509::{Key, SigAlg};
use crate::DevkitError;

/// `id-aa-signatureTimeStampToken` (RFC 3161 Appendix A, CAdES-T).
pub const ID_AA_SIGNATURE_TIME_STAMP_TOKEN: &Oid =
    Oid::const_new(&[1, 2, 840, 113549, 1, 9, 16, 2, 14]);

/// Who signs, with what, and when.
#[derive(Clone, Copy, Debug)]
pub struct SignerInput<'a> {
    /// The signing key (for a "wrong key" fixture, not the certificate's).
    pub key: &'a Key,
    /// Signature algorithm.
    pub alg: SigAlg,
    /// The signer's certificate, then its CA(s), DER.
    pub chain: &'a [Vec<u8>],
    /// The claimed signing time.
    pub signing_time: DateTime<Utc>,
}

/// A test TSA that stamps at any time the caller names (fixtures are backdated).
#[derive(Clone, Debug)]
pub struct Stamper {
    key: CertifiedSigner,
    config: TsaConfig,
}

impl Stamper {
    /// A stamper signing with `key`, writing tokens as the TSA's defaults do.
    pub fn new(key: CertifiedSigner) -> Self {
        Stamper {
            key,
            config: TsaConfig::default(),
        }
    }

    /// An RFC 3161 token (DER ContentInfo) over the SHA-256 `imprint`, with the given time
    /// and serial; it carries the TSA certificate.
    pub fn stamp(
        &self,
        imprint: &[u8],
        at: DateTime<Utc>,
        serial: &[u8],
    ) -> Result<Vec<u8>, DevkitError> {
        self.stamp_with(DigestAlgorithm::Sha256, imprint, at, serial)
    }

    /// Like [`Stamper::stamp`] for an imprint made with `digest`.
    pub fn stamp_with(
        &self,
        digest: DigestAlgorithm,
        imprint: &[u8],
        at: DateTime<Utc>,
        serial: &[u8],
    ) -> Result<Vec<u8>, DevkitError> {
        if imprint.len() != digest.output_len() {
            return Err(DevkitError::Timestamp(format!(
                "imprint of {} bytes for {}",
                imprint.len(),
                digest.name()
            )));
        }
        let req = CheckedRequest {
            digest,
            imprint: imprint.to_vec(),
            imprint_params_null: false,
            policy: DEFAULT_TSA_POLICY.to_owned(),
            nonce: None,
            cert_req: true,
        };
        let secs = u64::try_from(at.timestamp())
            .map_err(|_| DevkitError::Timestamp("time before 1970".into()))?;
        let iss = Issuance {
            serial: serial.to_vec(),
            gen_time: UNIX_EPOCH + Duration::from_secs(secs),
        };
        issue_token(&req, &iss, &self.config, &self.key)
            .map_err(|e| DevkitError::Timestamp(e.to_string()))
    }
}

fn encode<T: rasn::Encode>(value: &T, what: &str) -> Result<Vec<u8>, DevkitError> {
    rasn::der::encode(value).map_err(|e| DevkitError::Encode(format!("{what}: {e}")))
}

/// The JWS `alg` of a fixture algorithm; JOSE has none for SHA-1.
pub fn jws_alg(alg: SigAlg) -> Result<&'static str, DevkitError> {
    match alg {
        SigAlg::Sha256Rsa => Ok("RS256"),
        SigAlg::Sha1Rsa => Err(DevkitError::Key(
            "JWS has no SHA-1 RSA algorithm; legacy signers sign CMS".into(),
        )),
    }
}

/// A detached compact JWS over `payload` (see the module documentation).
pub fn jws_detached(payload: &[u8], signer: SignerInput<'_>) -> Result<String, DevkitError> {
    let header = serde_json::json!({
        "alg": jws_alg(signer.alg)?,
        "sigT": signer.signing_time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "x5c": signer.chain.iter().map(|c| STANDARD.encode(c)).collect::<Vec<_>>(),
    });
    let header_b64 = URL_SAFE_NO_PAD.encode(header.to_string());
    let signing_input = format!("{header_b64}.{}", URL_SAFE_NO_PAD.encode(payload));
    let sig = signer.key.sign(signer.alg, signing_input.as_bytes())?;
    Ok(format!("{header_b64}..{}", URL_SAFE_NO_PAD.encode(sig)))
}

/// The SHA-256 imprint a JWS signature's timestamp covers: the ASCII of its third part.
pub fn jws_timestamp_imprint(jws: &str) -> Result<Vec<u8>, DevkitError> {
    let sig = jws
        .rsplit('.')
        .next()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| DevkitError::Encode("JWS without a signature part".into()))?;
    Ok(DigestAlgorithm::Sha256.digest(sig.as_bytes()))
}

fn signing_time_value(t: DateTime<Utc>) -> Result<Vec<u8>, DevkitError> {
    hozon_tsa::asn1::signing_time_der(t)
        .ok_or_else(|| DevkitError::Encode("signing time out of range".into()))
}

/// What a CMS signature's timestamp needs: the TSA, the time and the token serial.
#[derive(Clone, Copy, Debug)]
pub struct TimestampInput<'a> {
    /// The TSA.
    pub stamper: &'a Stamper,
    /// `genTime` of the token.
    pub at: DateTime<Utc>,
    /// Serial number of the token.
    pub serial: &'a [u8],
}

/// A detached CMS SignedData over `payload` (CAdES-BES, or CAdES-T when `timestamp` is
/// given); DER ContentInfo.
pub fn cms_detached(
    payload: &[u8],
    signer: SignerInput<'_>,
    timestamp: Option<TimestampInput<'_>>,
) -> Result<Vec<u8>, DevkitError> {
    let cert_der = signer
        .chain
        .first()
        .ok_or_else(|| DevkitError::Missing("signer certificate".into()))?;
    let cert: Certificate = rasn::der::decode(cert_der)
        .map_err(|e| DevkitError::Encode(format!("signer certificate: {e}")))?;
    let tbs = &cert.tbs_certificate;
    let digest = signer.alg.digest();
    let signing_certificate = match signer.alg {
        SigAlg::Sha256Rsa => attribute(
            ID_AA_SIGNING_CERTIFICATE_V2,
            encode(
                &SigningCertificateV2::sha256_of(cert_der, tbs),
                "SigningCertificateV2",
            )?,
        ),
        SigAlg::Sha1Rsa => attribute(
            ID_AA_SIGNING_CERTIFICATE,
            encode(
                &SigningCertificate::sha1_of(cert_der, tbs),
                "SigningCertificate",
            )?,
        ),
    };
    let signed_attrs = SetOf::from_vec(vec![
        attribute(ID_CONTENT_TYPE, encode(&ID_DATA.to_owned(), "contentType")?),
        attribute(ID_SIGNING_TIME, signing_time_value(signer.signing_time)?),
        attribute(ID_MESSAGE_DIGEST, der_tlv(0x04, &digest.digest(payload))),
        signing_certificate,
    ]);
    // Signed over the DER SET OF (RFC 5652 §5.4); rasn sorts the elements the same way here
    // and inside the SignerInfo's [0] IMPLICIT.
    let signed_attrs_der = encode(&signed_attrs, "signed attributes")?;
    let signature = signer.key.sign(signer.alg, &signed_attrs_der)?;

    let unsigned_attrs = match timestamp {
        None => None,
        Some(ts) => {
            let imprint = DigestAlgorithm::Sha256.digest(&signature);
            let token = ts.stamper.stamp(&imprint, ts.at, ts.serial)?;
            Some(SetOf::from_vec(vec![attribute(
                ID_AA_SIGNATURE_TIME_STAMP_TOKEN,
                token,
            )]))
        }
    };
    let signer_info = hozon_tsa::asn1::signer_info(
        tbs,
        digest,
        signed_attrs,
        signer.alg.algorithm_identifier(),
        signature,
        unsigned_attrs,
    );
    let certificates = signer
        .chain
        .iter()
        .map(|der| {
            rasn::der::decode::<Certificate>(der)
                .map(|c| CertificateChoices::Certificate(Box::new(c)))
                .map_err(|e| DevkitError::Encode(format!("chain certificate: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let signed_data = SignedData {
        version: Integer::ONE,
        digest_algorithms: SetOf::from_vec(vec![digest.algorithm_identifier()]),
        encap_content_info: EncapsulatedContentInfo {
            content_type: ID_DATA.to_owned(),
            content: None,
        },
        certificates: Some(SetOf::from_vec(certificates)),
        crls: None,
        signer_infos: SetOf::from_vec(vec![signer_info]),
    };
    encode(
        &ContentInfo {
            content_type: ID_SIGNED_DATA.to_owned(),
            content: Any::new(encode(&signed_data, "SignedData")?),
        },
        "ContentInfo",
    )
}
