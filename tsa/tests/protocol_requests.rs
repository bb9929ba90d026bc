//! Request checks: every rejection bit from crafted requests, rejection responses read by
//! `openssl ts -reply -text` and asn1crypto, and robustness against mangled input.
//!
//! Test vectors are either
//! - static DER produced by `openssl ts -query` (OpenSSL 3.0.19) over the 5-byte file
//!   `data.txt` containing `hozon` (`printf 'hozon' > data.txt`), the command next to each, or
//! - built in the test with rasn (`TimeStampReq { … }`), or
//! - hand-edited DER, described byte by byte.

mod protocol_support;

use hozon_tsa::asn1::{failure_info_set_bits, ID_SHA256};
use hozon_tsa::protocol::{check_request, rejection_response, FailureInfo, Rejection, TsaConfig};
use hozon_tsa::signer::DigestAlgorithm;
use protocol_support::{openssl, openssl_status, XorShift};
use rasn::types::{Any, ObjectIdentifier, OctetString};
use rasn_cms::tsp::{MessageImprint, PkiStatus, TimeStampReq, TimeStampResp};
use rasn_pkix::{AlgorithmIdentifier, Extension, Extensions};

/// `openssl ts -query -data data.txt -sha256 -no_nonce -out req.tsq`
const REQ_SHA256: &str = "30360201013031300d06096086480165030402010500042094dbca79373d98f71a36d0b96e847346d49228692c68cf23de5ae1f11d97c136";
/// `openssl ts -query -data data.txt -sha1 -no_nonce -out req.tsq`
const REQ_SHA1: &str =
    "30260201013021300906052b0e03021a050004146c776d8d0a7a973d46839bb6f9a3d43c537ac764";
/// `openssl ts -query -data data.txt -md5 -no_nonce -out req.tsq`
const REQ_MD5: &str =
    "30250201013020300c06082a864886f70d020505000410c6345961a693662efff28fcd40a2abac";
/// `openssl ts -query -data data.txt -sha224 -no_nonce -out req.tsq`
const REQ_SHA224: &str = "3032020101302d300d06096086480165030402040500041c0ae08dce03dd8a42f335b1e66f69371d4f5fafc9db641e4f69db7467";
/// `openssl ts -query -data data.txt -sha3-256 -no_nonce -out req.tsq`
const REQ_SHA3_256: &str = "30360201013031300d0609608648016503040208050004200cfdffcaacfc21c38c6f4a57f575eea1769318b5fab7f2ebf782f8c4813e6b27";
/// `openssl ts -query -data data.txt -sha512 -no_nonce -out req.tsq`
const REQ_SHA512: &str = "30560201013051300d060960864801650304020305000440a47b75d86b21cebdd4354c6ae1e3012ac79245efbb0be47efb80d34828e7a8e3be65d757b9f5221e7096752b92fb2c48ce2830d83ddd10e45e1ff665993ef294";
/// `openssl ts -query -data data.txt -sha256 -cert -tspolicy 1.2.3.4 -out req.tsq`
/// (nonce 0x222B11CF3574D1ED, certReq TRUE)
const REQ_POLICY: &str = "30480201013031300d06096086480165030402010500042094dbca79373d98f71a36d0b96e847346d49228692c68cf23de5ae1f11d97c13606032a03040208222b11cf3574d1ed0101ff";
/// `openssl ts -query -data data.txt -sha384 -cert -out req.tsq`
/// (nonce 0xB45A7389050E1BB1: its top bit is set, so the INTEGER content is 00 b4 5a …)
const REQ_NONCE: &str = "30540201013041300d06096086480165030402020500043097ed51d8ed606bc98327cad5f191b8019f21e1f4642d5b8bfe4f0b2776ba4db341affbdb536f5b759c3a27aef5abb8d0020900b45a7389050e1bb10101ff";

fn h(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn rejected(der: &[u8], cfg: &TsaConfig) -> Rejection {
    match check_request(der, cfg) {
        Ok(r) => panic!("accepted: {r:?}"),
        Err(r) => r,
    }
}

/// A rasn-built request: version, hash OID and parameters, imprint.
fn crafted(
    version: u64,
    oid: &rasn::types::Oid,
    params: Option<Any>,
    imprint: Vec<u8>,
) -> TimeStampReq {
    TimeStampReq {
        version,
        message_imprint: MessageImprint {
            hash_algorithm: AlgorithmIdentifier {
                algorithm: oid.to_owned(),
                parameters: params,
            },
            hashed_message: OctetString::from(imprint),
        },
        req_policy: None,
        nonce: None,
        cert_req: false,
        extensions: None,
    }
}

fn der<T: rasn::Encode>(v: &T) -> Vec<u8> {
    rasn::der::encode(v).unwrap()
}

#[test]
fn accepts_openssl_requests() {
    let cfg = TsaConfig::default();
    for (vector, digest) in [
        (REQ_SHA256, DigestAlgorithm::Sha256),
        (REQ_SHA3_256, DigestAlgorithm::Sha3_256),
        (REQ_SHA512, DigestAlgorithm::Sha512),
    ] {
        let r = check_request(&h(vector), &cfg).unwrap();
        assert_eq!(r.digest, digest);
        assert_eq!(r.imprint, digest.digest(b"hozon"));
        assert!(r.imprint_params_null, "openssl sends NULL parameters");
        assert_eq!(r.policy, cfg.default_policy);
        assert_eq!(r.nonce, None);
        assert!(!r.cert_req);
    }
    let r = check_request(&h(REQ_NONCE), &cfg).unwrap();
    assert_eq!(r.digest, DigestAlgorithm::Sha384);
    assert_eq!(r.nonce.as_deref(), Some(&h("00b45a7389050e1bb1")[..]));
    assert!(r.cert_req);
}

#[test]
fn absent_hash_parameters_are_accepted() {
    let req = crafted(1, ID_SHA256, None, vec![7; 32]);
    let r = check_request(&der(&req), &TsaConfig::default()).unwrap();
    assert!(!r.imprint_params_null);
}

#[test]
fn bad_data_format() {
    let cfg = TsaConfig::default();
    let base = h(REQ_SHA256);
    let f = |d: &[u8]| rejected(d, &cfg).failure;

    assert_eq!(f(&[]), FailureInfo::BadDataFormat, "empty body");
    assert_eq!(f(b"GET / HTTP/1.1\r\n"), FailureInfo::BadDataFormat, "text");
    assert_eq!(
        f(&base[..base.len() - 1]),
        FailureInfo::BadDataFormat,
        "truncated"
    );
    let mut trailing = base.clone();
    trailing.push(0);
    let r = rejected(&trailing, &cfg);
    assert_eq!(r.failure, FailureInfo::BadDataFormat);
    assert!(r.text.contains("after"), "{}", r.text);

    // REQ_SHA256 + a non-minimal nonce `02 02 00 01`, outer length 0x36 -> 0x3a.
    let mut nonminimal = base.clone();
    nonminimal[1] = 0x3a;
    nonminimal.extend_from_slice(&[0x02, 0x02, 0x00, 0x01]);
    assert_eq!(
        f(&nonminimal),
        FailureInfo::BadDataFormat,
        "non-minimal INTEGER"
    );
    // The same with a minimal nonce `02 01 01` (outer length 0x39) is fine.
    let mut minimal = base.clone();
    minimal[1] = 0x39;
    minimal.extend_from_slice(&[0x02, 0x01, 0x01]);
    assert_eq!(check_request(&minimal, &cfg).unwrap().nonce, Some(vec![1]));

    // REQ_SHA256 + an explicit `certReq FALSE` (`01 01 00`): BER, DER omits the DEFAULT.
    let mut explicit_false = base.clone();
    explicit_false[1] = 0x39;
    explicit_false.extend_from_slice(&[0x01, 0x01, 0x00]);
    assert_eq!(
        f(&explicit_false),
        FailureInfo::BadDataFormat,
        "DEFAULT encoded"
    );

    // REQ_SHA256 with the outer length in long form (`30 81 36`): BER, not DER.
    let mut long_len = vec![0x30, 0x81];
    long_len.extend_from_slice(&base[1..]);
    assert_eq!(f(&long_len), FailureInfo::BadDataFormat, "long-form length");

    // rasn-built: a SHA-256 imprint of 20 bytes.
    let short = crafted(1, ID_SHA256, None, vec![1; 20]);
    let r = rejected(&der(&short), &cfg);
    assert_eq!(r.failure, FailureInfo::BadDataFormat);
    assert!(r.text.contains("20-byte"), "{}", r.text);
    // … and of 33 bytes.
    let long = crafted(1, ID_SHA256, None, vec![1; 33]);
    assert_eq!(f(&der(&long)), FailureInfo::BadDataFormat);
}

#[test]
fn bad_request_for_other_versions() {
    let cfg = TsaConfig::default();
    for version in [0, 2, 3, u64::MAX] {
        let req = crafted(version, ID_SHA256, None, vec![1; 32]);
        assert_eq!(
            rejected(&der(&req), &cfg).failure,
            FailureInfo::BadRequest,
            "version {version}"
        );
    }
    // A negative version (hand-edited REQ_SHA256: `02 01 01` -> `02 01 ff`) does not decode as
    // the rasn type's u64: badDataFormat.
    let mut negative = h(REQ_SHA256);
    negative[4] = 0xff;
    assert_eq!(
        rejected(&negative, &cfg).failure,
        FailureInfo::BadDataFormat
    );
}

#[test]
fn bad_alg() {
    let cfg = TsaConfig::default();
    for (name, vector) in [("sha1", REQ_SHA1), ("md5", REQ_MD5), ("sha224", REQ_SHA224)] {
        let r = rejected(&h(vector), &cfg);
        assert_eq!(r.failure, FailureInfo::BadAlg, "{name}");
    }
    // SHA-1 is accepted only when configured.
    let sha1_cfg = TsaConfig {
        accepted_digests: vec![DigestAlgorithm::Sha1],
        ..TsaConfig::default()
    };
    assert_eq!(
        check_request(&h(REQ_SHA1), &sha1_cfg).unwrap().digest,
        DigestAlgorithm::Sha1
    );
    // An accepted-elsewhere digest that this configuration does not accept.
    assert_eq!(
        rejected(&h(REQ_SHA256), &sha1_cfg).failure,
        FailureInfo::BadAlg
    );
    // rasn-built: SHA-256 with an OCTET STRING as parameters.
    let params = crafted(
        1,
        ID_SHA256,
        Some(Any::new(vec![0x04, 0x01, 0x00])),
        vec![1; 32],
    );
    let r = rejected(&der(&params), &cfg);
    assert_eq!(r.failure, FailureInfo::BadAlg);
    assert!(r.text.contains("parameters"), "{}", r.text);
    // Unknown OID with a plausible length.
    let unknown = crafted(
        1,
        rasn::types::Oid::const_new(&[1, 2, 3, 4]),
        None,
        vec![1; 32],
    );
    assert_eq!(rejected(&der(&unknown), &cfg).failure, FailureInfo::BadAlg);
}

#[test]
fn unaccepted_policy() {
    let cfg = TsaConfig::default();
    let r = rejected(&h(REQ_POLICY), &cfg);
    assert_eq!(r.failure, FailureInfo::UnacceptedPolicy);
    assert!(r.text.contains("1.2.3.4"), "{}", r.text);

    let offered = ObjectIdentifier::new(vec![1, 2, 3, 4]).unwrap();
    let cfg = TsaConfig {
        policies: vec![cfg.default_policy.clone(), offered.clone()],
        ..cfg
    };
    let ok = check_request(&h(REQ_POLICY), &cfg).unwrap();
    assert_eq!(ok.policy, offered);
    assert_eq!(ok.nonce, Some(h("222b11cf3574d1ed")));
    // The default policy is accepted when asked for explicitly, even if not in `policies`.
    let mut req = crafted(1, ID_SHA256, None, vec![1; 32]);
    req.req_policy = Some(cfg.default_policy.clone());
    let only_default = TsaConfig {
        policies: vec![],
        ..TsaConfig::default()
    };
    assert!(check_request(&der(&req), &only_default).is_ok());
}

#[test]
fn unaccepted_extension() {
    let cfg = TsaConfig::default();
    let mut req = crafted(1, ID_SHA256, None, vec![1; 32]);
    req.extensions = Some(Extensions::from(vec![Extension {
        extn_id: ObjectIdentifier::new(vec![1, 3, 6, 1, 4, 1, 32473, 99]).unwrap(),
        critical: false,
        extn_value: OctetString::from(vec![0x05, 0x00]),
    }]));
    let r = rejected(&der(&req), &cfg);
    assert_eq!(r.failure, FailureInfo::UnacceptedExtension);
    assert!(r.text.contains("1.3.6.1.4.1.32473.99"), "{}", r.text);
}

#[test]
fn check_order_is_version_alg_length_policy_extensions() {
    let cfg = TsaConfig::default();
    let mut req = crafted(2, rasn::types::Oid::const_new(&[1, 2, 3]), None, vec![1; 3]);
    req.req_policy = Some(ObjectIdentifier::new(vec![1, 2, 9]).unwrap());
    let f = |r: &TimeStampReq| rejected(&der(r), &cfg).failure;
    assert_eq!(f(&req), FailureInfo::BadRequest);
    req.version = 1;
    assert_eq!(f(&req), FailureInfo::BadAlg);
    req.message_imprint.hash_algorithm.algorithm = ID_SHA256.to_owned();
    assert_eq!(f(&req), FailureInfo::BadDataFormat);
    req.message_imprint.hashed_message = OctetString::from(vec![1; 32]);
    assert_eq!(f(&req), FailureInfo::UnacceptedPolicy);
    req.req_policy = None;
    req.extensions = Some(Extensions::from(vec![Extension {
        extn_id: ObjectIdentifier::new(vec![1, 2, 10]).unwrap(),
        critical: true,
        extn_value: OctetString::from(vec![]),
    }]));
    assert_eq!(f(&req), FailureInfo::UnacceptedExtension);
}

/// Every failure bit: the rejection response is DER (rasn re-encodes it byte for byte), has
/// exactly that one named bit, and `openssl ts -reply -in resp.tsr -text` and asn1crypto
/// both read it.
#[test]
fn rejection_responses_parse_with_openssl_and_asn1crypto() {
    let dir = tempfile::tempdir().unwrap();
    // OpenSSL's texts for the bits (crypto/ts/ts_rsp_print.c, OpenSSL 3.0).
    let openssl_text = |f: FailureInfo| match f {
        FailureInfo::BadAlg => "unrecognized or unsupported algorithm identifier",
        FailureInfo::BadRequest => "transaction not permitted or supported",
        FailureInfo::BadDataFormat => "the data submitted has the wrong format",
        FailureInfo::TimeNotAvailable => "the TSA's time source is not available",
        FailureInfo::UnacceptedPolicy => "the requested TSA policy is not supported by the TSA",
        FailureInfo::UnacceptedExtension => "the requested extension is not supported by the TSA",
        FailureInfo::AddInfoNotAvailable => {
            "the additional information requested could not be understood or is not available"
        }
        FailureInfo::SystemFailure => "the request cannot be handled due to system failure",
    };
    let asn1crypto_name = |f: FailureInfo| match f {
        FailureInfo::BadAlg => "bad_alg",
        FailureInfo::BadRequest => "bad_request",
        FailureInfo::BadDataFormat => "bad_data_format",
        FailureInfo::TimeNotAvailable => "time_not_available",
        FailureInfo::UnacceptedPolicy => "unaccepted_policy",
        FailureInfo::UnacceptedExtension => "unaccepted_extensions", // sic, asn1crypto 1.5.1
        FailureInfo::AddInfoNotAvailable => "add_info_not_available",
        FailureInfo::SystemFailure => "system_failure",
    };
    for f in FailureInfo::ALL {
        let resp = rejection_response(&Rejection::new(f, format!("test {}", f.as_str())));
        let parsed: TimeStampResp = rasn::der::decode(&resp).unwrap();
        assert_eq!(rasn::der::encode(&parsed).unwrap(), resp);
        assert_eq!(parsed.status.status, PkiStatus::Rejection);
        let bits = parsed.status.fail_info.unwrap();
        assert_eq!(bits.len(), f.bit() + 1, "trailing zero bits removed");
        assert_eq!(failure_info_set_bits(&bits), vec![f.bit()]);

        let path = dir.path().join(format!("{}.tsr", f.as_str()));
        std::fs::write(&path, &resp).unwrap();
        let text = openssl(
            dir.path(),
            &["ts", "-reply", "-in", path.to_str().unwrap(), "-text"],
        );
        assert!(text.contains("Status: Rejected."), "{text}");
        assert!(
            text.contains(&format!("Status description: test {}", f.as_str())),
            "{text}"
        );
        assert!(
            text.contains(&format!("Failure info: {}", openssl_text(f))),
            "{f:?}: {text}"
        );

        let py = protocol_support::asn1crypto_parse(&path);
        assert!(py.contains("status=rejection"), "{py}");
        assert!(
            py.contains(&format!("fail_info=['{}']", asn1crypto_name(f))),
            "{f:?}: {py}"
        );
    }
}

/// openssl-made requests of every kind this TSA supports pass; live `openssl ts -query`.
#[test]
fn live_openssl_queries() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data.txt"), b"live data").unwrap();
    let cfg = TsaConfig::default();
    for (flag, digest) in [
        ("-sha256", DigestAlgorithm::Sha256),
        ("-sha384", DigestAlgorithm::Sha384),
        ("-sha512", DigestAlgorithm::Sha512),
        ("-sha3-256", DigestAlgorithm::Sha3_256),
        ("-sha3-512", DigestAlgorithm::Sha3_512),
    ] {
        for extra in [&[][..], &["-cert"][..], &["-no_nonce"][..]] {
            let mut args = vec!["ts", "-query", "-data", "data.txt", flag];
            args.extend_from_slice(extra);
            args.extend_from_slice(&["-out", "q.tsq"]);
            openssl(dir.path(), &args);
            let der = std::fs::read(dir.path().join("q.tsq")).unwrap();
            let r = check_request(&der, &cfg).unwrap();
            assert_eq!(r.digest, digest);
            assert_eq!(r.imprint, digest.digest(b"live data"));
            assert_eq!(r.cert_req, extra == ["-cert"]);
            assert_eq!(r.nonce.is_none(), extra == ["-no_nonce"]);
        }
    }
    // `openssl ts -query -sha1` is rejected by default.
    openssl(
        dir.path(),
        &[
            "ts", "-query", "-data", "data.txt", "-sha1", "-out", "q.tsq",
        ],
    );
    let der = std::fs::read(dir.path().join("q.tsq")).unwrap();
    assert_eq!(rejected(&der, &cfg).failure, FailureInfo::BadAlg);
    // Sanity: openssl itself reads our crafted request.
    let (ok, text) = openssl_status(dir.path(), &["ts", "-query", "-in", "q.tsq", "-text"]);
    assert!(ok && text.contains("sha1"), "{text}");
}

/// Random bytes, every truncation and every single-bit flip of valid requests, and random
/// multi-byte corruptions: no panic; truncations and random bytes are always rejected; every
/// rejection response decodes.
#[test]
fn robustness() {
    let cfg = TsaConfig::default();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let check = |input: &[u8]| -> bool {
        match check_request(input, &cfg) {
            Ok(_) => true,
            Err(r) => {
                let resp = rejection_response(&r);
                assert!(rasn::der::decode::<TimeStampResp>(&resp).is_ok());
                false
            }
        }
    };

    for _ in 0..5_000 {
        let len = rng.below(200);
        let bytes = rng.bytes(len);
        assert!(
            !check(&bytes),
            "random bytes accepted: {}",
            hex::encode(&bytes)
        );
    }
    // Random bytes behind a plausible SEQUENCE header.
    for _ in 0..5_000 {
        let len = rng.below(120);
        let mut bytes = vec![0x30, len as u8];
        bytes.extend(rng.bytes(len));
        check(&bytes);
    }
    for vector in [REQ_SHA256, REQ_NONCE, REQ_POLICY, REQ_SHA512] {
        let valid = h(vector);
        for cut in 0..valid.len() {
            assert!(!check(&valid[..cut]), "truncation to {cut} accepted");
        }
        for bit in 0..valid.len() * 8 {
            let mut flipped = valid.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            check(&flipped);
        }
        for _ in 0..3_000 {
            let mut mangled = valid.clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(mangled.len());
                mangled[i] = rng.next_u64() as u8;
            }
            if rng.below(4) == 0 {
                let at = rng.below(mangled.len());
                mangled.insert(at, rng.next_u64() as u8);
            }
            check(&mangled);
        }
    }
    // Deep nesting and huge declared lengths.
    let mut nested = [0x30, 0x80].repeat(10_000);
    nested.extend(vec![0; 20_000]);
    assert!(!check(&nested));
    assert!(!check(&[
        0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x02, 0x01, 0x01
    ]));
    assert!(!check(&[0x30, 0x89, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]));
}
