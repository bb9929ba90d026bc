//! The token profile, checked field by field on the DER (rasn decode plus raw TLV checks),
//! the signature checked independently with aws-lc-rs over the re-tagged signed attributes,
//! and the TSA certificate checks with certificates made by `openssl x509 -req -extfile`
//! (commands in `protocol_support::Pki`).

mod protocol_support;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use aws_lc_rs::signature;
use hozon_tsa::asn1::{
    EssCertIdV2, SigningCertificateV2, ID_AA_SIGNING_CERTIFICATE_V2, ID_CONTENT_TYPE,
    ID_CT_TST_INFO, ID_MESSAGE_DIGEST, ID_SHA256, ID_SHA256_WITH_RSA, ID_SIGNED_DATA,
    ID_SIGNING_TIME,
};
use hozon_tsa::certcheck::{check_tsa_certificate, CertCheckError};
use hozon_tsa::protocol::{
    check_request, issue_token, Accuracy, CheckedRequest, FailureInfo, Issuance, TimePrecision,
    TokenError, TsaConfig,
};
use hozon_tsa::signer::{CertifiedSigner, DigestAlgorithm, Signer};
use protocol_support::{fixed_time, issue, KeyType, Pki};
use rasn::types::{ObjectIdentifier, OctetString};
use rasn_cms::tsp::{MessageImprint, TimeStampReq, TstInfo};
use rasn_cms::{CertificateChoices, ContentInfo, SignedData, SignerIdentifier};
use rasn_pkix::{AlgorithmIdentifier, Certificate, GeneralName};

/// `openssl ts -query -data data.txt -sha384 -cert -out req.tsq` over `hozon` (nonce
/// 0xB45A7389050E1BB1, so its INTEGER content is `00 b4 5a 73 89 05 0e 1b b1`).
const REQ_NONCE: &str = "30540201013041300d06096086480165030402020500043097ed51d8ed606bc98327cad5f191b8019f21e1f4642d5b8bfe4f0b2776ba4db341affbdb536f5b759c3a27aef5abb8d0020900b45a7389050e1bb10101ff";
/// `openssl ts -query -data data.txt -sha256 -no_nonce -out req.tsq` over `hozon`.
const REQ_SHA256: &str = "30360201013031300d06096086480165030402010500042094dbca79373d98f71a36d0b96e847346d49228692c68cf23de5ae1f11d97c136";

/// The children TLVs of the constructed TLV `der`.
fn children(der: &[u8]) -> Vec<&[u8]> {
    hozon_tsa::asn1::der_children(der).expect("well-formed DER")
}

struct Parsed {
    signed_data_der: Vec<u8>,
    sd: SignedData,
    tst_der: Vec<u8>,
    tst: TstInfo,
}

fn parse(token: &[u8]) -> Parsed {
    let ci: ContentInfo = rasn::der::decode(token).unwrap();
    assert_eq!(ci.content_type, *ID_SIGNED_DATA);
    assert_eq!(rasn::der::encode(&ci).unwrap(), token);
    let signed_data_der = ci.content.as_bytes().to_vec();
    let sd: SignedData = rasn::der::decode(&signed_data_der).unwrap();
    assert_eq!(
        rasn::der::encode(&sd).unwrap(),
        signed_data_der,
        "our SignedData is DER (rasn re-encodes it identically)"
    );
    let tst_der = sd.encap_content_info.content.clone().unwrap().to_vec();
    let tst: TstInfo = rasn::der::decode(&tst_der).unwrap();
    assert_eq!(rasn::der::encode(&tst).unwrap(), tst_der);
    Parsed {
        signed_data_der,
        sd,
        tst_der,
        tst,
    }
}

/// The raw `[0] IMPLICIT` signed attributes of the (only) SignerInfo.
fn raw_signed_attrs(signed_data_der: &[u8]) -> Vec<u8> {
    let sd = children(signed_data_der);
    let signer_infos = sd.last().unwrap();
    let si = children(signer_infos)[0];
    let fields = children(si);
    fields
        .iter()
        .find(|f| f[0] == 0xa0)
        .expect("signed attributes")
        .to_vec()
}

#[test]
fn rsa_token_profile() {
    let pki = Pki::new(KeyType::Rsa2048);
    let key = pki.certified();
    let cfg = TsaConfig::default();
    let req = hex::decode(REQ_NONCE).unwrap();
    let (checked, token) = issue(&req, &cfg, &key, &[0x80]);
    let p = parse(&token);
    let tsa_der = pki.tsa_der();
    let cert: Certificate = rasn::der::decode(&tsa_der).unwrap();

    // SignedData
    assert_eq!(p.sd.version, 3.into());
    let digest_algs: Vec<_> = p.sd.digest_algorithms.iter().cloned().collect();
    assert_eq!(
        digest_algs,
        vec![AlgorithmIdentifier {
            algorithm: ID_SHA256.to_owned(),
            parameters: None
        }]
    );
    assert_eq!(p.sd.encap_content_info.content_type, *ID_CT_TST_INFO);
    assert!(p.sd.crls.is_none());
    let certs: Vec<_> =
        p.sd.certificates
            .as_ref()
            .expect("certReq")
            .iter()
            .cloned()
            .collect();
    assert_eq!(certs.len(), 1, "only the TSA certificate");
    match &certs[0] {
        CertificateChoices::Certificate(c) => {
            assert_eq!(rasn::der::encode(c.as_ref()).unwrap(), tsa_der)
        }
        other => panic!("{other:?}"),
    }
    assert!(
        p.signed_data_der
            .windows(tsa_der.len())
            .any(|w| w == tsa_der),
        "certificate embedded byte for byte"
    );

    // SignerInfo
    let sis: Vec<_> = p.sd.signer_infos.iter().cloned().collect();
    assert_eq!(sis.len(), 1);
    let si = &sis[0];
    assert_eq!(si.version, 1.into());
    match &si.sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => {
            assert_eq!(ias.issuer, cert.tbs_certificate.issuer);
            assert_eq!(ias.serial_number, cert.tbs_certificate.serial_number);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(si.digest_algorithm.algorithm, *ID_SHA256);
    assert!(si.digest_algorithm.parameters.is_none());
    assert_eq!(si.signature_algorithm.algorithm, *ID_SHA256_WITH_RSA);
    assert_eq!(
        si.signature_algorithm
            .parameters
            .as_ref()
            .unwrap()
            .as_bytes(),
        [0x05, 0x00]
    );
    assert!(si.unsigned_attrs.is_none());

    // Signed attributes: raw DER is a sorted SET OF, and the signature verifies over it with
    // the tag changed to SET (0x31).
    let raw = raw_signed_attrs(&p.signed_data_der);
    let mut as_set = raw.clone();
    as_set[0] = 0x31;
    let elems = children(&as_set);
    assert_eq!(elems.len(), 4);
    assert!(elems.windows(2).all(|w| w[0] <= w[1]), "DER SET OF order");
    let spki = &cert.tbs_certificate.subject_public_key_info;
    signature::UnparsedPublicKey::new(
        &signature::RSA_PKCS1_2048_8192_SHA256,
        spki.subject_public_key.as_raw_slice(),
    )
    .verify(&as_set, si.signature.as_ref())
    .expect("signature over the DER SET");

    let attrs: Vec<_> = si.signed_attrs.as_ref().unwrap().iter().cloned().collect();
    let value = |oid: &rasn::types::Oid| -> Vec<u8> {
        let a = attrs
            .iter()
            .find(|a| a.r#type == *oid)
            .expect("attribute present");
        let vals: Vec<_> = a.values.iter().collect();
        assert_eq!(vals.len(), 1);
        vals[0].as_bytes().to_vec()
    };
    assert_eq!(
        value(ID_CONTENT_TYPE),
        rasn::der::encode(&ID_CT_TST_INFO.to_owned()).unwrap()
    );
    let md: OctetString = rasn::der::decode(&value(ID_MESSAGE_DIGEST)).unwrap();
    assert_eq!(md.as_ref(), DigestAlgorithm::Sha256.digest(&p.tst_der));
    assert_eq!(value(ID_SIGNING_TIME), b"\x17\x0d260102030405Z");
    let ess_der = value(ID_AA_SIGNING_CERTIFICATE_V2);
    let ess: SigningCertificateV2 = rasn::der::decode(&ess_der).unwrap();
    assert!(ess.policies.is_none());
    assert_eq!(ess.certs.len(), 1);
    let id: &EssCertIdV2 = &ess.certs[0];
    assert_eq!(
        id.cert_hash.as_ref(),
        DigestAlgorithm::Sha256.digest(&tsa_der)
    );
    let is = id.issuer_serial.as_ref().unwrap();
    assert_eq!(
        is.issuer,
        vec![GeneralName::DirectoryName(
            cert.tbs_certificate.issuer.clone()
        )]
    );
    assert_eq!(is.serial_number, cert.tbs_certificate.serial_number);
    // hashAlgorithm is the DEFAULT (SHA-256) and so absent: ESSCertIDv2 starts with certHash.
    let ess_cert_id = children(children(&ess_der)[0])[0];
    assert_eq!(children(ess_cert_id)[0][..2], [0x04, 0x20]);

    // TSTInfo
    let t = &p.tst;
    assert_eq!(t.version, 1.into());
    assert_eq!(t.policy, cfg.default_policy);
    assert_eq!(
        t.message_imprint.hashed_message.as_ref(),
        &checked.imprint[..]
    );
    assert_eq!(
        t.message_imprint
            .hash_algorithm
            .parameters
            .as_ref()
            .unwrap()
            .as_bytes(),
        [0x05, 0x00],
        "NULL parameters echoed as sent"
    );
    assert!(t.tsa.is_none() && t.extensions.is_none() && !t.ordering);
    let fields = children(&p.tst_der);
    let tags: Vec<u8> = fields.iter().map(|f| f[0]).collect();
    // version, policy, messageImprint, serialNumber, genTime, accuracy, nonce: no ordering
    // (DEFAULT FALSE), no tsa, no extensions.
    assert_eq!(tags, [0x02, 0x06, 0x30, 0x02, 0x18, 0x30, 0x02]);
    assert_eq!(
        fields[3],
        [0x02, 0x02, 0x00, 0x80],
        "serial 0x80 as a positive INTEGER"
    );
    assert_eq!(fields[4], b"\x18\x0f20260102030405Z");
    assert_eq!(fields[5], [0x30, 0x03, 0x02, 0x01, 0x01], "accuracy 1 s");
    assert_eq!(
        fields[6],
        hex::decode("020900b45a7389050e1bb1").unwrap(),
        "nonce verbatim"
    );
}

#[test]
fn ecdsa_token_options() {
    let pki = Pki::new(KeyType::EcP256);
    let key = pki.certified();
    let req = hex::decode(REQ_SHA256).unwrap();
    let cfg = TsaConfig {
        accuracy: Some(Accuracy {
            seconds: 0,
            millis: 250,
            micros: 0,
        }),
        ordering: true,
        include_tsa_name: true,
        include_signing_time: false,
        precision: TimePrecision::Millis,
        ..TsaConfig::default()
    };
    let (_, token) = issue(&req, &cfg, &key, &[0, 0, 0x12, 0x34]);
    let p = parse(&token);
    assert!(p.sd.certificates.is_none(), "no certReq, no certificates");
    let fields = children(&p.tst_der);
    let tags: Vec<u8> = fields.iter().map(|f| f[0]).collect();
    // …, serial, genTime, accuracy, ordering, tsa [0]: no nonce.
    assert_eq!(tags, [0x02, 0x06, 0x30, 0x02, 0x18, 0x30, 0x01, 0xa0]);
    assert_eq!(
        fields[3],
        [0x02, 0x02, 0x12, 0x34],
        "leading zero octets dropped"
    );
    assert_eq!(fields[4], b"\x18\x1220260102030405.12Z");
    assert_eq!(
        fields[5],
        [0x30, 0x04, 0x80, 0x02, 0x00, 0xfa],
        "millis [0] 250"
    );
    assert_eq!(fields[6], [0x01, 0x01, 0xff]);
    let cert: Certificate = rasn::der::decode(&pki.tsa_der()).unwrap();
    assert_eq!(
        p.tst.tsa,
        Some(GeneralName::DirectoryName(cert.tbs_certificate.subject))
    );

    let si = p.sd.signer_infos.iter().next().unwrap().clone();
    let attrs: Vec<ObjectIdentifier> = si
        .signed_attrs
        .unwrap()
        .iter()
        .map(|a| a.r#type.clone())
        .collect();
    assert_eq!(attrs.len(), 3);
    assert!(!attrs.contains(&ID_SIGNING_TIME.to_owned()));
    assert_eq!(
        si.signature_algorithm.algorithm,
        *hozon_tsa::asn1::ID_ECDSA_WITH_SHA256
    );
    assert!(si.signature_algorithm.parameters.is_none());
    let mut as_set = raw_signed_attrs(&p.signed_data_der);
    as_set[0] = 0x31;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    signature::UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_ASN1,
        spki.subject_public_key.as_raw_slice(),
    )
    .verify(&as_set, si.signature.as_ref())
    .expect("ECDSA signature over the DER SET");
}

#[test]
fn imprint_parameters_and_policy_are_echoed() {
    let pki = Pki::new(KeyType::EcP256);
    let key = pki.certified();
    let other = ObjectIdentifier::new(vec![1, 3, 6, 1, 4, 1, 32473, 3161, 2]).unwrap();
    let cfg = TsaConfig {
        policies: vec![other.clone()],
        ..TsaConfig::default()
    };
    // rasn-built request: SHA-512 with absent parameters, policy `other`.
    let req = TimeStampReq {
        version: 1,
        message_imprint: MessageImprint {
            hash_algorithm: AlgorithmIdentifier {
                algorithm: DigestAlgorithm::Sha512.oid().to_owned(),
                parameters: None,
            },
            hashed_message: OctetString::from(vec![0x5a; 64]),
        },
        req_policy: Some(other.clone()),
        nonce: Some((-5).into()),
        cert_req: false,
        extensions: None,
    };
    let (_, token) = issue(&rasn::der::encode(&req).unwrap(), &cfg, &key, &[1]);
    let t = parse(&token).tst;
    assert_eq!(
        t.message_imprint, req.message_imprint,
        "absent parameters stay absent"
    );
    assert_eq!(t.policy, other);
    assert_eq!(t.nonce, Some((-5).into()), "negative nonces are echoed too");
}

#[test]
fn serial_numbers() {
    let pki = Pki::new(KeyType::EcP256);
    let key = pki.certified();
    let cfg = TsaConfig::default();
    let req = check_request(&hex::decode(REQ_SHA256).unwrap(), &cfg).unwrap();
    let at = |serial: Vec<u8>| {
        issue_token(
            &req,
            &Issuance {
                serial,
                gen_time: fixed_time(),
            },
            &cfg,
            &key,
        )
    };
    let t = parse(&at(vec![0xff; 20]).unwrap()).tst_der;
    let serial = children(&t)[3];
    assert_eq!(
        &serial[..3],
        [0x02, 0x15, 0x00],
        "160 bits plus a sign octet"
    );
    for bad in [vec![], vec![0], vec![0, 0, 0], vec![1; 21], vec![0xff; 21]] {
        let err = at(bad.clone()).unwrap_err();
        assert!(matches!(err, TokenError::Serial(_)), "{bad:?}: {err}");
        assert_eq!(err.failure_info(), FailureInfo::SystemFailure);
    }
    // 21 octets with leading zeros are fine: the magnitude has at most 160 bits.
    let mut padded = vec![0];
    padded.extend([0xab; 20]);
    assert!(at(padded).is_ok());
}

#[test]
fn token_errors() {
    let pki = Pki::new(KeyType::EcP256);
    let key = pki.certified();
    let cfg = TsaConfig::default();
    let req = check_request(&hex::decode(REQ_SHA256).unwrap(), &cfg).unwrap();
    let iss = Issuance {
        serial: vec![1],
        gen_time: fixed_time(),
    };

    let before_1970 = Issuance {
        serial: vec![1],
        gen_time: UNIX_EPOCH - Duration::from_secs(1),
    };
    let err = issue_token(&req, &before_1970, &cfg, &key).unwrap_err();
    assert_eq!(err.failure_info(), FailureInfo::TimeNotAvailable, "{err}");

    for accuracy in [
        Accuracy {
            seconds: 0,
            millis: 1000,
            micros: 0,
        },
        Accuracy {
            seconds: 1,
            millis: 0,
            micros: 1000,
        },
        Accuracy {
            seconds: 0,
            millis: 0,
            micros: 0,
        },
    ] {
        let bad = TsaConfig {
            accuracy: Some(accuracy),
            ..TsaConfig::default()
        };
        assert!(matches!(
            issue_token(&req, &iss, &bad, &key),
            Err(TokenError::Config(_))
        ));
    }

    let inconsistent = CheckedRequest {
        imprint: vec![1; 31],
        ..req.clone()
    };
    assert!(matches!(
        issue_token(&inconsistent, &iss, &cfg, &key),
        Err(TokenError::Request(_))
    ));
    let bad_nonce = CheckedRequest {
        nonce: Some(vec![0, 1]),
        ..req.clone()
    };
    assert!(matches!(
        issue_token(&bad_nonce, &iss, &cfg, &key),
        Err(TokenError::Request(_))
    ));

    // A CertifiedSigner cannot be built around a certificate that is not DER, nor around
    // no certificate at all, so issue_token never meets one.
    assert!(matches!(
        CertifiedSigner::unchecked(key.signer().clone(), vec![vec![0x30, 0x00]]),
        Err(CertCheckError::Decode { index: 0, .. })
    ));
    assert!(matches!(
        CertifiedSigner::unchecked(key.signer().clone(), vec![]),
        Err(CertCheckError::EmptyChain)
    ));
}

#[test]
fn certificate_checks() {
    let pki = Pki::new(KeyType::Rsa2048);
    let signer = pki.software_signer();
    let tsa_der = pki.tsa_der();

    let info = check_tsa_certificate(&tsa_der, &signer).unwrap();
    assert_eq!(info.subject, "CN=hozon test TSA,O=hozon test,C=JP");
    assert_eq!(info.issuer, "CN=hozon test root,O=hozon test,C=JP");
    assert_eq!(info.serial_hex(), "7a5a00c0ffee01");
    assert_eq!(info.sha256, DigestAlgorithm::Sha256.digest(&tsa_der));
    let days = info
        .not_after
        .duration_since(info.not_before)
        .unwrap()
        .as_secs()
        / 86_400;
    assert_eq!(days, 365);

    let subject = "/C=JP/O=hozon test/CN=bad TSA";
    type Expect = fn(&CertCheckError) -> bool;
    let cases: [(&str, &str, Expect); 6] = [
        (
            "basicConstraints=critical,CA:TRUE\nextendedKeyUsage=critical,timeStamping\n",
            "CA:TRUE",
            |e| matches!(e, CertCheckError::CaCertificate),
        ),
        (
            "keyUsage=critical,digitalSignature,keyCertSign\nextendedKeyUsage=critical,timeStamping\n",
            "keyCertSign",
            |e| matches!(e, CertCheckError::KeyCertSign),
        ),
        (
            "keyUsage=critical,keyEncipherment\nextendedKeyUsage=critical,timeStamping\n",
            "keyEncipherment only",
            |e| matches!(e, CertCheckError::KeyUsageNoSignature),
        ),
        (
            "basicConstraints=critical,CA:FALSE\n",
            "no EKU",
            |e| matches!(e, CertCheckError::ExtKeyUsageMissing),
        ),
        (
            "extendedKeyUsage=timeStamping\n",
            "non-critical EKU",
            |e| matches!(e, CertCheckError::ExtKeyUsageNotCritical),
        ),
        (
            "extendedKeyUsage=critical,timeStamping,serverAuth\n",
            "extra purpose",
            |e| matches!(e, CertCheckError::ExtKeyUsageNotTimeStampingOnly(v) if v.len() == 2),
        ),
    ];
    for (i, (ext, what, expected)) in cases.iter().enumerate() {
        let der = pki.issue_cert(&format!("bad{i}"), subject, ext, &format!("{}", 100 + i));
        let err = check_tsa_certificate(&der, &signer).unwrap_err();
        assert!(expected(&err), "{what}: got {err}");
        // The message names the defect.
        assert!(!err.to_string().is_empty());
    }

    // The root certificate certifies another key.
    let err = check_tsa_certificate(&pki.root_der(), &signer).unwrap_err();
    assert!(matches!(err, CertCheckError::KeyMismatch { .. }), "{err}");
    // An EC key with the RSA TSA certificate.
    let (ec, _) =
        hozon_tsa::software::SoftwareSigner::generate(hozon_tsa::software::KeyKind::EcP256)
            .unwrap();
    let err = check_tsa_certificate(&tsa_der, &ec).unwrap_err();
    assert!(matches!(err, CertCheckError::KeyMismatch { .. }), "{err}");
    assert!(err.to_string().contains("RSA-2048"), "{err}");
    // Not a certificate.
    let err = check_tsa_certificate(&tsa_der[..100], &signer).unwrap_err();
    assert!(matches!(err, CertCheckError::Decode { .. }), "{err}");

    // CertifiedSigner::new
    let arc: Arc<dyn Signer> = Arc::new(signer);
    assert!(matches!(
        CertifiedSigner::new(arc.clone(), vec![]),
        Err(CertCheckError::EmptyChain)
    ));
    let err = CertifiedSigner::new(arc.clone(), vec![tsa_der.clone(), vec![1, 2, 3]]).unwrap_err();
    assert!(
        matches!(err, CertCheckError::Decode { index: 1, .. }),
        "{err}"
    );
    let ok = CertifiedSigner::new(arc, vec![tsa_der.clone(), pki.root_der()]).unwrap();
    assert_eq!(ok.certificate(), &tsa_der[..]);
    assert_eq!(ok.certificate_info().unwrap(), info);
}

#[test]
fn generated_software_keys_need_matching_certificates() {
    // A PSS scheme on an RSA key is accepted with an rsaEncryption certificate.
    let pki = Pki::new(KeyType::Rsa2048);
    let pss = pki
        .software_signer()
        .with_scheme(hozon_tsa::signer::SignatureScheme::RsaPssSha384)
        .unwrap();
    assert!(check_tsa_certificate(&pki.tsa_der(), &pss).is_ok());
}
