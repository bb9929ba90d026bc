//! Interoperability with OpenSSL 3 and asn1crypto.
//!
//! - Tokens from the hozon protocol core (software keys: RSA-2048 PKCS#1 v1.5 and PSS, ECDSA
//!   P-256 and P-384), for requests made by `openssl ts -query`, verify with
//!   `openssl ts -verify -in resp.tsr -data F -CAfile root.pem -untrusted tsa.pem` and with
//!   `-queryfile`, print with `openssl ts -reply -text`, and parse with asn1crypto.
//! - Tokens made by `openssl ts -reply` (with the config in [`openssl_tsa_config`]) decode
//!   with rasn and re-encode byte for byte, down to the TSTInfo and the ESS attributes.
//!
//! The PKI is made per test with the `openssl` commands documented in
//! `protocol_support::Pki`.

mod protocol_support;

use std::sync::Arc;

use hozon_tsa::asn1::{
    der_split, EssCertIdV2, SigningCertificate, SigningCertificateV2, ID_AA_SIGNING_CERTIFICATE,
    ID_AA_SIGNING_CERTIFICATE_V2,
};
use hozon_tsa::protocol::{granted_response, Accuracy, TimePrecision, TsaConfig};
use hozon_tsa::signer::{CertifiedSigner, DigestAlgorithm, SignatureScheme};
use protocol_support::{asn1crypto_parse, issue, openssl, openssl_status, KeyType, Pki};
use rasn_cms::tsp::{TimeStampResp, TstInfo};
use rasn_cms::{ContentInfo, SignedData};

/// Issues a token for `openssl ts -query -data data.txt <query_args>`, writes the response to
/// `resp.tsr`, and checks it with `openssl ts -verify` (against the data and against the
/// query; `openssl cms -verify` for RSASSA-PSS, see below) and asn1crypto. Returns the asn1crypto summary and the `openssl ts -reply -text`.
fn issue_and_verify(
    pki: &Pki,
    key: &CertifiedSigner,
    cfg: &TsaConfig,
    query_args: &[&str],
) -> (String, String) {
    pki.write("data.txt", b"hozon interop data\n");
    let req = pki.query("data.txt", query_args, "q.tsq");
    let (_, token) = issue(&req, cfg, key, &[0x01, 0x9a, 0xbc, 0xde, 0xf0]);
    pki.write("resp.tsr", &granted_response(&token));

    let ctx = format!(
        "{:?} {:?} {query_args:?}",
        pki.key_type,
        key.signer().scheme()
    );
    let pss = matches!(
        key.signer().scheme(),
        SignatureScheme::RsaPssSha256
            | SignatureScheme::RsaPssSha384
            | SignatureScheme::RsaPssSha512
    );
    if pss {
        // OpenSSL 3.0's `ts -verify` checks signatures through its PKCS7 code, which only
        // knows PKCS#1 v1.5 padding; its CMS code knows PSS. So for PSS tokens: verify the
        // SignedData with `openssl cms -verify` and compare the content it outputs with the
        // TSTInfo.
        pki.write("token.der", &token);
        let (ok, out) = openssl_status(
            pki.path(),
            &[
                "cms",
                "-verify",
                "-inform",
                "DER",
                "-in",
                "token.der",
                "-CAfile",
                "root.pem",
                "-certfile",
                "tsa.pem",
                "-purpose",
                "timestampsign",
                "-binary",
                "-out",
                "tst.der",
            ],
        );
        assert!(
            ok && out.contains("Verification successful"),
            "{ctx}: {out}"
        );
        let tst = std::fs::read(pki.file("tst.der")).unwrap();
        let ci: ContentInfo = rasn::der::decode(&token).unwrap();
        let sd: SignedData = rasn::der::decode(ci.content.as_bytes()).unwrap();
        assert_eq!(
            sd.encap_content_info.content.unwrap().as_ref(),
            &tst[..],
            "{ctx}"
        );
    } else {
        for against in [["-data", "data.txt"], ["-queryfile", "q.tsq"]] {
            let (ok, out) = openssl_status(
                pki.path(),
                &[
                    "ts",
                    "-verify",
                    "-in",
                    "resp.tsr",
                    against[0],
                    against[1],
                    "-CAfile",
                    "root.pem",
                    "-untrusted",
                    "tsa.pem",
                ],
            );
            assert!(ok && out.contains("Verification: OK"), "{ctx}: {out}");
        }
    }
    let text = openssl(pki.path(), &["ts", "-reply", "-in", "resp.tsr", "-text"]);
    assert!(text.contains("Status: Granted."), "{ctx}: {text}");
    let py = asn1crypto_parse(&pki.file("resp.tsr"));
    assert!(py.contains("status=granted"), "{ctx}: {py}");
    (py, text)
}

fn digest_flags() -> [(&'static str, DigestAlgorithm); 4] {
    [
        ("-sha256", DigestAlgorithm::Sha256),
        ("-sha384", DigestAlgorithm::Sha384),
        ("-sha512", DigestAlgorithm::Sha512),
        ("-sha3-256", DigestAlgorithm::Sha3_256),
    ]
}

fn matrix(key_type: KeyType) {
    let pki = Pki::new(key_type);
    let key = pki.certified();
    let cfg = TsaConfig::default();
    for (flag, _) in digest_flags() {
        for extra in [
            &[][..],
            &["-cert"][..],
            &["-no_nonce"][..],
            &["-cert", "-no_nonce"][..],
        ] {
            let mut args = vec![flag];
            args.extend_from_slice(extra);
            let (py, text) = issue_and_verify(&pki, &key, &cfg, &args);
            let cert_req = extra.contains(&"-cert");
            assert!(
                py.contains(&format!("certs={}", usize::from(cert_req))),
                "{py}"
            );
            assert_eq!(
                py.contains("nonce=None"),
                extra.contains(&"-no_nonce"),
                "{py}"
            );
            assert!(py.contains("version=v3"), "{py}");
            assert!(py.contains("serial=19abcdef0"), "{py}");
            assert!(py.contains("policy=1.3.6.1.4.1.32473.3161.1"), "{py}");
            assert!(py.contains("gen_time=2026-01-02T03:04:05+00:00"), "{py}");
            assert!(py.contains("ordering=False"), "{py}");
            assert!(
                py.contains(
                    "signed_attrs=content_type,message_digest,signing_certificate_v2,signing_time"
                ) || py.contains(
                    "signed_attrs=content_type,signing_time,message_digest,signing_certificate_v2"
                ),
                "{py}"
            );
            assert!(
                text.contains("Time stamp: Jan  2 03:04:05 2026 GMT"),
                "{text}"
            );
            assert!(
                text.contains("Accuracy: 0x01 seconds, unspecified millis, unspecified micros"),
                "{text}"
            );
            assert!(text.contains("Ordering: no"), "{text}");
            assert!(text.contains("TSA: unspecified"), "{text}");
        }
    }
}

#[test]
fn openssl_verifies_rsa2048_tokens() {
    matrix(KeyType::Rsa2048);
}

#[test]
fn openssl_verifies_ecdsa_p256_tokens() {
    matrix(KeyType::EcP256);
}

#[test]
fn openssl_verifies_other_schemes() {
    // RSA-PSS (SHA-256, SHA-512) and RSA PKCS#1 v1.5 SHA-384 with the same RSA key.
    let pki = Pki::new(KeyType::Rsa2048);
    let cfg = TsaConfig::default();
    for scheme in [
        SignatureScheme::RsaPssSha256,
        SignatureScheme::RsaPssSha512,
        SignatureScheme::RsaPkcs1Sha384,
    ] {
        let signer = pki.software_signer().with_scheme(scheme).unwrap();
        let key = CertifiedSigner::new(Arc::new(signer), vec![pki.tsa_der()]).unwrap();
        let (py, _) = issue_and_verify(&pki, &key, &cfg, &["-sha256", "-cert"]);
        let alg = if scheme == SignatureScheme::RsaPkcs1Sha384 {
            "sha384_rsa"
        } else {
            "rsassa_pss"
        };
        assert!(py.contains(&format!("sig_alg={alg}")), "{py}");
    }

    // ECDSA P-384 with SHA-384: a P-384 TSA key under the P-256 root.
    let pki = Pki::new(KeyType::EcP256);
    openssl(
        pki.path(),
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-384",
            "-out",
            "tsa.key",
        ],
    );
    pki.issue_cert(
        "tsa",
        "/C=JP/O=hozon test/CN=hozon test TSA P-384",
        protocol_support::TSA_EXT,
        "0x0384",
    );
    let signer = pki.software_signer();
    assert_eq!(
        hozon_tsa::signer::Signer::scheme(&signer),
        SignatureScheme::EcdsaP384Sha384
    );
    let key = CertifiedSigner::new(Arc::new(signer), vec![pki.tsa_der()]).unwrap();
    let (py, _) = issue_and_verify(&pki, &key, &cfg, &["-sha512"]);
    assert!(py.contains("sig_alg=sha384_ecdsa"), "{py}");
}

#[test]
fn openssl_reads_every_tstinfo_option() {
    let pki = Pki::new(KeyType::EcP256);
    let key = pki.certified();
    let cfg = TsaConfig {
        accuracy: Some(Accuracy {
            seconds: 2,
            millis: 500,
            micros: 7,
        }),
        ordering: true,
        include_tsa_name: true,
        include_signing_time: false,
        precision: TimePrecision::Micros,
        ..TsaConfig::default()
    };
    let (py, text) = issue_and_verify(&pki, &key, &cfg, &["-sha256", "-cert"]);
    assert!(
        text.contains("Time stamp: Jan  2 03:04:05.120456 2026 GMT"),
        "{text}"
    );
    assert!(
        text.contains("Accuracy: 0x02 seconds, 0x01F4 millis, 0x07 micros"),
        "{text}"
    );
    assert!(text.contains("Ordering: yes"), "{text}");
    assert!(
        text.contains("TSA: DirName:/C=JP/O=hozon test/CN=hozon test TSA"),
        "{text}"
    );
    assert!(py.contains("ordering=True"), "{py}");
    assert!(
        py.contains("signed_attrs=content_type,message_digest,signing_certificate_v2\n"),
        "{py}"
    );

    let millis = TsaConfig {
        precision: TimePrecision::Millis,
        accuracy: None,
        ..TsaConfig::default()
    };
    let (py, text) = issue_and_verify(&pki, &key, &millis, &["-sha384"]);
    assert!(
        text.contains("Time stamp: Jan  2 03:04:05.120 2026 GMT")
            || text.contains("Time stamp: Jan  2 03:04:05.12 2026 GMT"),
        "{text}"
    );
    assert!(text.contains("Accuracy: unspecified"), "{text}");
    assert!(py.contains("accuracy=None"), "{py}");
}

/// An openssl TSA configuration (`openssl ts -reply -config tsa.cnf`): `options` are appended
/// to the `tsa_config1` section.
fn openssl_tsa_config(pki: &Pki, options: &str) -> String {
    format!(
        "[ tsa ]\n\
         default_tsa = tsa_config1\n\
         [ tsa_config1 ]\n\
         dir = {dir}\n\
         serial = $dir/tsaserial\n\
         crypto_device = builtin\n\
         signer_cert = $dir/tsa.pem\n\
         certs = $dir/root.pem\n\
         signer_key = $dir/tsa.key\n\
         default_policy = 1.3.6.1.4.1.32473.3161.1\n\
         other_policies = 1.3.6.1.4.1.32473.3161.2\n\
         digests = sha256, sha384, sha512\n\
         {options}\n",
        dir = pki.path().display()
    )
}

/// rasn decodes `der` as `T` and re-encodes the same bytes.
fn round_trip<T: rasn::Decode + rasn::Encode>(der: &[u8], what: &str) -> T {
    let value: T = rasn::der::decode(der).unwrap_or_else(|e| panic!("{what}: {e}"));
    let again = rasn::der::encode(&value).unwrap();
    assert!(
        again == der,
        "{what}: re-encoding differs\n{}\n{}",
        hex::encode(der),
        hex::encode(&again)
    );
    value
}

/// The TLVs inside the constructed TLV `der`.
fn children(der: &[u8]) -> Option<Vec<&[u8]>> {
    let (tag, _, _) = der_split(der)?;
    if tag & 0x20 == 0 {
        return None;
    }
    hozon_tsa::asn1::der_children(der)
}

/// Whether `a` and `b` are the same DER tree except that the elements of some constructed
/// values are in another order; counts such reordered values in `reordered`.
fn same_modulo_order(a: &[u8], b: &[u8], reordered: &mut usize) -> bool {
    if a == b {
        return true;
    }
    let (Some(ca), Some(cb)) = (children(a), children(b)) else {
        return false;
    };
    if a[0] != b[0] || ca.len() != cb.len() {
        return false;
    }
    if ca
        .iter()
        .zip(&cb)
        .all(|(x, y)| same_modulo_order(x, y, reordered))
    {
        return true;
    }
    let (mut sa, mut sb) = (ca.clone(), cb.clone());
    sa.sort();
    sb.sort();
    if sa == sb {
        *reordered += 1;
        return true;
    }
    false
}

/// Tokens made by `openssl ts -reply` round-trip through rasn byte for byte at every level.
#[test]
fn rasn_round_trips_openssl_tokens() {
    let variants = [
        // signer_digest, options, query flags
        (
            "signer_digest = sha256\n\
             accuracy = secs:1, millisecs:500, microsecs:100\n\
             clock_precision_digits = 3\n\
             ordering = yes\n\
             tsa_name = yes\n\
             ess_cert_id_chain = yes\n\
             ess_cert_id_alg = sha256\n",
            &["-sha256", "-cert"][..],
        ),
        (
            "signer_digest = sha384\n\
             ess_cert_id_alg = sha1\n",
            &["-sha512", "-no_nonce"][..],
        ),
        (
            "signer_digest = sha512\n\
             accuracy = secs:0, millisecs:1\n\
             ess_cert_id_alg = sha512\n\
             ess_cert_id_chain = no\n",
            &["-sha384", "-cert", "-tspolicy", "1.3.6.1.4.1.32473.3161.2"][..],
        ),
    ];
    let mut seen_v1 = false;
    let mut seen_v2 = false;
    let mut seen_unsorted_certs = false;
    for key_type in [KeyType::Rsa2048, KeyType::EcP256] {
        let pki = Pki::new(key_type);
        pki.write("tsaserial", b"7f\n");
        pki.write("data.txt", b"openssl made this\n");
        for (i, (options, query)) in variants.iter().enumerate() {
            let ctx = format!("{key_type:?} variant {i}");
            pki.write("tsa.cnf", openssl_tsa_config(&pki, options).as_bytes());
            pki.query("data.txt", query, "o.tsq");
            let chain = if options.contains("ess_cert_id_chain = yes") {
                &["-chain", "root.pem"][..]
            } else {
                &[][..]
            };
            let mut args = vec![
                "ts",
                "-reply",
                "-config",
                "tsa.cnf",
                "-queryfile",
                "o.tsq",
                "-out",
                "o.tsr",
            ];
            args.extend_from_slice(chain);
            openssl(pki.path(), &args);
            let (ok, out) = openssl_status(
                pki.path(),
                &[
                    "ts",
                    "-verify",
                    "-in",
                    "o.tsr",
                    "-queryfile",
                    "o.tsq",
                    "-CAfile",
                    "root.pem",
                    "-untrusted",
                    "tsa.pem",
                ],
            );
            assert!(ok, "{ctx}: openssl does not verify its own token: {out}");

            let resp_der = std::fs::read(pki.file("o.tsr")).unwrap();
            let resp: TimeStampResp = round_trip(&resp_der, &format!("{ctx} TimeStampResp"));
            let token = resp.time_stamp_token.expect("granted");
            let token_der = rasn::der::encode(&token).unwrap();
            round_trip::<ContentInfo>(&token_der, &format!("{ctx} ContentInfo"));
            let sd_der = token.content.as_bytes();
            let sd: SignedData = rasn::der::decode(sd_der).unwrap();
            if sd.certificates.as_ref().map_or(0, |c| c.len()) <= 1 {
                round_trip::<SignedData>(sd_der, &format!("{ctx} SignedData"));
            } else {
                // OpenSSL writes SignedData.certificates in chain order (its PKCS7 template
                // declares the field SEQUENCE OF), which is BER but not DER: a SET OF must be
                // sorted. rasn sorts on encoding, so only the order of the certificates may
                // differ; everything else is byte-identical.
                let again = rasn::der::encode(&sd).unwrap();
                assert_ne!(
                    again, sd_der,
                    "{ctx}: expected openssl's unsorted certificate set"
                );
                let mut reordered = 0;
                assert!(same_modulo_order(sd_der, &again, &mut reordered), "{ctx}");
                assert_eq!(reordered, 1, "{ctx}: only the certificate set is reordered");
                seen_unsorted_certs = true;
            }
            let econtent = sd.encap_content_info.content.as_ref().expect("eContent");
            let tst: TstInfo = round_trip(econtent, &format!("{ctx} TSTInfo"));
            assert_eq!(tst.version, 1.into());
            for cert in sd.certificates.iter().flat_map(|c| c.iter()) {
                let der = rasn::der::encode(cert).unwrap();
                round_trip::<rasn_cms::CertificateChoices>(&der, &format!("{ctx} certificate"));
            }
            for si in sd.signer_infos.iter() {
                let der = rasn::der::encode(si).unwrap();
                round_trip::<rasn_cms::SignerInfo>(&der, &format!("{ctx} SignerInfo"));
                for attr in si.signed_attrs.iter().flat_map(|a| a.iter()) {
                    let value = attr.values.iter().next().expect("one value").as_bytes();
                    if attr.r#type == *ID_AA_SIGNING_CERTIFICATE_V2 {
                        let v2: SigningCertificateV2 =
                            round_trip(value, &format!("{ctx} SigningCertificateV2"));
                        let chain_len = if chain.is_empty() { 1 } else { 2 };
                        assert_eq!(v2.certs.len(), chain_len, "{ctx}");
                        let first: &EssCertIdV2 = &v2.certs[0];
                        let alg = DigestAlgorithm::from_oid(&first.hash_algorithm.algorithm)
                            .expect("known hash");
                        assert_eq!(
                            first.cert_hash.as_ref(),
                            alg.digest(&pki.tsa_der()),
                            "{ctx}"
                        );
                        seen_v2 = true;
                    } else if attr.r#type == *ID_AA_SIGNING_CERTIFICATE {
                        let v1: SigningCertificate =
                            round_trip(value, &format!("{ctx} SigningCertificate"));
                        assert_eq!(
                            v1.certs[0].cert_hash.as_ref(),
                            DigestAlgorithm::Sha1.digest(&pki.tsa_der()),
                            "{ctx}"
                        );
                        seen_v1 = true;
                    }
                }
            }
        }
    }
    assert!(seen_v1 && seen_v2 && seen_unsorted_certs);
}
