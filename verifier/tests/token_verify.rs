//! `verify_token` against tokens from the hozon TSA core and from `openssl ts -reply`, and
//! against every single-byte corruption of such tokens.
//!
//! The PKI is made per test with the openssl CLI (commands in [`Pki::new`]); requests come
//! from `openssl ts -query`.

#[path = "../../tsa/tests/protocol_support/mod.rs"]
mod protocol_support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use hozon_tsa::protocol::{check_request, issue_token, Issuance, TsaConfig};
use hozon_tsa::signer::{CertifiedSigner, DigestAlgorithm, SignatureScheme, Signer};
use hozon_tsa::software::SoftwareSigner;
use hozon_verifier::token::{
    verify_token, EssAttribute, SignatureAlgorithm, TokenVerifyError, VerifiedToken,
};
use protocol_support::openssl;

const TSA_EXT: &str = "basicConstraints=critical,CA:FALSE\n\
keyUsage=critical,digitalSignature\n\
extendedKeyUsage=critical,timeStamping\n\
subjectKeyIdentifier=hash\n";

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// ```text
    /// openssl genpkey <alg> -out root.key
    /// openssl req -x509 -new -key root.key -subj "/CN=verifier test root" -days 30 \
    ///     -addext basicConstraints=critical,CA:TRUE -out root.pem
    /// openssl genpkey <alg> -out tsa.key
    /// openssl req -new -key tsa.key -subj "/O=hozon test/CN=verifier test TSA" -out tsa.csr
    /// openssl x509 -req -in tsa.csr -CA root.pem -CAkey root.key -set_serial 0x99 -days 30 \
    ///     -extfile tsa.ext -out tsa.pem        # tsa.ext = TSA_EXT
    /// openssl x509 -in tsa.pem -outform DER -out tsa.der
    /// ```
    fn new(alg: &[&str]) -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
        };
        let d = pki.dir.path();
        openssl(d, &[&["genpkey"], alg, &["-out", "root.key"]].concat());
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                "root.key",
                "-subj",
                "/CN=verifier test root",
                "-days",
                "30",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-out",
                "root.pem",
            ],
        );
        openssl(d, &[&["genpkey"], alg, &["-out", "tsa.key"]].concat());
        pki.cert("tsa", TSA_EXT);
        pki
    }

    fn rsa() -> Pki {
        Pki::new(&["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
    }

    fn ec() -> Pki {
        Pki::new(&["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])
    }

    /// A certificate for tsa.key with the given extensions: `<name>.pem`, returns the DER.
    fn cert(&self, name: &str, ext: &str) -> Vec<u8> {
        let d = self.dir.path();
        std::fs::write(d.join(format!("{name}.ext")), ext).unwrap();
        openssl(
            d,
            &[
                "req",
                "-new",
                "-key",
                "tsa.key",
                "-subj",
                "/O=hozon test/CN=verifier test TSA",
                "-out",
                "tsa.csr",
            ],
        );
        let (pem, der, ext) = (
            format!("{name}.pem"),
            format!("{name}.der"),
            format!("{name}.ext"),
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "tsa.csr",
                "-CA",
                "root.pem",
                "-CAkey",
                "root.key",
                "-set_serial",
                "0x99",
                "-days",
                "30",
                "-extfile",
                &ext,
                "-out",
                &pem,
            ],
        );
        openssl(d, &["x509", "-in", &pem, "-outform", "DER", "-out", &der]);
        std::fs::read(d.join(der)).unwrap()
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn tsa_der(&self) -> Vec<u8> {
        std::fs::read(self.path().join("tsa.der")).unwrap()
    }

    fn signer(&self) -> SoftwareSigner {
        SoftwareSigner::load(self.path().join("tsa.key")).unwrap()
    }

    /// `openssl ts -query -data data.txt <args> -out q.tsq`: the request DER.
    fn query(&self, args: &[&str]) -> Vec<u8> {
        std::fs::write(self.path().join("data.txt"), DATA).unwrap();
        openssl(
            self.path(),
            &[
                &["ts", "-query", "-data", "data.txt"],
                args,
                &["-out", "q.tsq"],
            ]
            .concat(),
        );
        std::fs::read(self.path().join("q.tsq")).unwrap()
    }
}

const DATA: &[u8] = b"verifier test data\n";

struct Issued {
    token: Vec<u8>,
    digest: DigestAlgorithm,
    nonce: Option<Vec<u8>>,
}

/// A token from the hozon TSA core for `openssl ts -query <args>`.
fn hozon_token(pki: &Pki, key: &CertifiedSigner, args: &[&str]) -> Issued {
    let cfg = TsaConfig {
        include_tsa_name: true,
        ..TsaConfig::default()
    };
    let req = check_request(&pki.query(args), &cfg).unwrap();
    let token = issue_token(
        &req,
        &Issuance {
            serial: vec![0x0a, 0xbc],
            gen_time: UNIX_EPOCH + Duration::new(1_767_323_045, 0),
        },
        &cfg,
        key,
    )
    .unwrap();
    Issued {
        token,
        digest: req.digest,
        nonce: req.nonce,
    }
}

fn verify(issued: &Issued, extra: &[Vec<u8>]) -> Result<VerifiedToken, TokenVerifyError> {
    let imprint = issued.digest.digest(DATA);
    verify_token(
        &issued.token,
        Some((issued.digest, &imprint)),
        issued.nonce.as_deref(),
        extra,
    )
}

#[test]
fn verifies_hozon_tokens() {
    type Case = (
        &'static str,
        fn() -> Pki,
        Option<SignatureScheme>,
        SignatureAlgorithm,
    );
    let cases: [Case; 4] = [
        (
            "rsa",
            Pki::rsa,
            None,
            SignatureAlgorithm::RsaPkcs1(DigestAlgorithm::Sha256),
        ),
        (
            "rsa-pss",
            Pki::rsa,
            Some(SignatureScheme::RsaPssSha384),
            SignatureAlgorithm::RsaPss(DigestAlgorithm::Sha384),
        ),
        (
            "rsa-sha512",
            Pki::rsa,
            Some(SignatureScheme::RsaPkcs1Sha512),
            SignatureAlgorithm::RsaPkcs1(DigestAlgorithm::Sha512),
        ),
        (
            "ec",
            Pki::ec,
            None,
            SignatureAlgorithm::Ecdsa(DigestAlgorithm::Sha256),
        ),
    ];
    for (name, make, scheme, expected_alg) in cases {
        let pki = make();
        let mut signer = pki.signer();
        if let Some(s) = scheme {
            signer = signer.with_scheme(s).unwrap();
        }
        let key = CertifiedSigner::new(Arc::new(signer), vec![pki.tsa_der()]).unwrap();
        for args in [
            &["-sha256", "-cert"][..],
            &["-sha3-512", "-cert", "-no_nonce"][..],
        ] {
            let issued = hozon_token(&pki, &key, args);
            let v = verify(&issued, &[]).unwrap_or_else(|e| panic!("{name} {args:?}: {e}"));
            assert_eq!(v.gen_time, UNIX_EPOCH + Duration::from_secs(1_767_323_045));
            assert_eq!(v.gen_time_text, "20260102030405Z");
            assert_eq!(v.serial, [0x0a, 0xbc]);
            assert_eq!(v.policy, TsaConfig::default().default_policy);
            assert_eq!(v.tsa_subject, "CN=verifier test TSA,O=hozon test");
            assert_eq!(v.digest, issued.digest);
            assert_eq!(v.nonce, issued.nonce);
            assert_eq!(v.signature_algorithm, expected_alg, "{name}");
            assert_eq!(v.ess, EssAttribute::V2(DigestAlgorithm::Sha256));
            assert_eq!(v.certificate, pki.tsa_der());
            assert_eq!(v.key_bits, if name == "ec" { 256 } else { 2048 });
        }

        // Without certReq the certificate must come from extra_certs.
        let issued = hozon_token(&pki, &key, &["-sha384"]);
        assert!(matches!(
            verify(&issued, &[]),
            Err(TokenVerifyError::CertificateNotFound)
        ));
        let v = verify(&issued, &[vec![1, 2, 3], pki.tsa_der()]).unwrap();
        assert_eq!(v.digest, DigestAlgorithm::Sha384);

        // Wrong expectations.
        let other = DigestAlgorithm::Sha384.digest(b"other data");
        let err = verify_token(
            &issued.token,
            Some((DigestAlgorithm::Sha384, &other)),
            None,
            &[pki.tsa_der()],
        )
        .unwrap_err();
        assert!(
            matches!(err, TokenVerifyError::ImprintMismatch { .. }),
            "{err}"
        );
        let same = DigestAlgorithm::Sha384.digest(DATA);
        let err = verify_token(
            &issued.token,
            Some((DigestAlgorithm::Sha512, &same)),
            None,
            &[pki.tsa_der()],
        )
        .unwrap_err();
        assert!(
            matches!(err, TokenVerifyError::ImprintMismatch { .. }),
            "{err}"
        );
        let err =
            verify_token(&issued.token, None, Some(&[1, 2, 3]), &[pki.tsa_der()]).unwrap_err();
        assert!(matches!(err, TokenVerifyError::NonceMismatch(_)), "{err}");
        let no_nonce = hozon_token(&pki, &key, &["-sha256", "-no_nonce"]);
        let err = verify_token(&no_nonce.token, None, Some(&[1]), &[pki.tsa_der()]).unwrap_err();
        assert!(
            matches!(err, TokenVerifyError::NonceMismatch(ref s) if s == "none"),
            "{err}"
        );
    }
}

/// A token signed by a key whose certificate lacks the timeStamping EKU is refused, even
/// though its signature and ESS binding are fine.
#[test]
fn refuses_non_tsa_certificates() {
    let pki = Pki::ec();
    let no_eku = pki.cert("noeku", "basicConstraints=critical,CA:FALSE\n");
    // Bypass CertifiedSigner::new's check to make such a token at all.
    let key = CertifiedSigner::unchecked(Arc::new(pki.signer()), vec![no_eku]).unwrap();
    let issued = hozon_token(&pki, &key, &["-sha256", "-cert"]);
    let err = verify(&issued, &[]).unwrap_err();
    assert!(
        matches!(
            err,
            TokenVerifyError::Certificate(hozon_tsa::certcheck::CertCheckError::ExtKeyUsageMissing)
        ),
        "{err}"
    );
}

fn children(der: &[u8]) -> Vec<&[u8]> {
    hozon_tsa::asn1::der_children(der).expect("well-formed DER")
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("found")
}

/// Signed attributes that are not in DER order (as some signers write them) verify, because
/// the signature is checked over their original bytes; re-encoding them through rasn would
/// sort them and break the signature.
#[test]
fn verifies_over_original_attribute_order() {
    let pki = Pki::rsa();
    let signer = pki.signer();
    let key = CertifiedSigner::new(Arc::new(pki.signer()), vec![pki.tsa_der()]).unwrap();
    let issued = hozon_token(&pki, &key, &["-sha256", "-cert"]);
    let mut token = issued.token.clone();

    // Locate the [0] signed attributes and the signature in the token.
    let ci = children(&token)[1].to_vec(); // [0] EXPLICIT
    let sd = children(&ci)[0].to_vec();
    let si = children(children(&sd).last().unwrap())[0].to_vec();
    let fields = children(&si);
    let attrs = fields.iter().find(|f| f[0] == 0xa0).unwrap().to_vec();
    let sig = fields[fields.len() - 1].to_vec(); // OCTET STRING signature (no unsigned attrs)
    assert_eq!(sig[0], 0x04);

    // Reverse the attribute order (same length), sign the reversed SET, patch both in place.
    let mut elems: Vec<Vec<u8>> = children(&attrs).iter().map(|e| e.to_vec()).collect();
    elems.reverse();
    let header = attrs.len() - elems.iter().map(Vec::len).sum::<usize>();
    let mut reordered = attrs[..header].to_vec();
    reordered.extend(elems.concat());
    let mut as_set = reordered.clone();
    as_set[0] = 0x31;
    let new_sig = signer.sign(&as_set).unwrap();
    let sig_header = sig.len() - new_sig.len();
    let at = find(&token, &attrs);
    token[at..at + attrs.len()].copy_from_slice(&reordered);
    let at = find(&token, &sig);
    token[at + sig_header..at + sig.len()].copy_from_slice(&new_sig);

    let patched = Issued { token, ..issued };
    verify(&patched, &[]).expect("verifies over the original (unsorted) bytes");
}

fn openssl_tsa_config(dir: &Path, options: &str) -> String {
    format!(
        "[ tsa ]\ndefault_tsa = c\n[ c ]\n\
         serial = {d}/serial\ncrypto_device = builtin\n\
         signer_cert = {d}/tsa.pem\nsigner_key = {d}/tsa.key\n\
         default_policy = 1.2.3.4.1\ndigests = sha256, sha384, sha512\n{options}\n",
        d = dir.display()
    )
}

/// Tokens from `openssl ts -reply -config tsa.cnf -queryfile q.tsq [-chain root.pem]`.
fn openssl_token(pki: &Pki, options: &str, query: &[&str], chain: bool) -> Issued {
    let d = pki.path();
    std::fs::write(d.join("serial"), "01\n").unwrap();
    std::fs::write(d.join("tsa.cnf"), openssl_tsa_config(d, options)).unwrap();
    let req = pki.query(query);
    let mut args = vec![
        "ts",
        "-reply",
        "-config",
        "tsa.cnf",
        "-queryfile",
        "q.tsq",
        "-token_out",
        "-out",
        "token.der",
    ];
    if chain {
        args.extend_from_slice(&["-chain", "root.pem"]);
    }
    openssl(d, &args);
    let checked = check_request(
        &req,
        &TsaConfig {
            policies: vec![],
            ..TsaConfig::default()
        },
    )
    .unwrap();
    Issued {
        token: std::fs::read(d.join("token.der")).unwrap(),
        digest: checked.digest,
        nonce: checked.nonce,
    }
}

#[test]
fn verifies_openssl_tokens() {
    for (name, make) in [("rsa", Pki::rsa as fn() -> Pki), ("ec", Pki::ec)] {
        let pki = make();
        let cases = [
            (
                "signer_digest = sha256\ness_cert_id_alg = sha256\ness_cert_id_chain = yes\n\
                 ordering = yes\ntsa_name = yes\naccuracy = secs:1\nclock_precision_digits = 2\n",
                &["-sha256", "-cert"][..],
                true,
                EssAttribute::V2(DigestAlgorithm::Sha256),
            ),
            (
                "signer_digest = sha384\ness_cert_id_alg = sha1\n",
                &["-sha512", "-cert"][..],
                false,
                EssAttribute::V1,
            ),
            (
                "signer_digest = sha512\ness_cert_id_alg = sha512\n",
                &["-sha384", "-no_nonce"][..],
                false,
                EssAttribute::V2(DigestAlgorithm::Sha512),
            ),
        ];
        for (options, query, chain, ess) in cases {
            let issued = openssl_token(&pki, options, query, chain);
            let extra = if query.contains(&"-cert") {
                vec![]
            } else {
                vec![pki.tsa_der()]
            };
            let v = verify(&issued, &extra).unwrap_or_else(|e| panic!("{name} {options}: {e}"));
            assert_eq!(v.ess, ess, "{name} {options}");
            assert_eq!(
                v.serial,
                [0x02],
                "openssl increments the serial file before use"
            );
            assert_eq!(v.policy.to_string(), "1.2.3.4.1");
            assert_eq!(v.tsa_subject, "CN=verifier test TSA,O=hozon test");
            assert_eq!(v.ordering, options.contains("ordering = yes"));
            assert_eq!(v.certificate, pki.tsa_der());
        }
    }
}

/// Every single-byte change of a token makes verification fail (three masks per byte). The
/// tokens carry only the TSA certificate: further certificates in `certificates` (a chain
/// added with `openssl ts -reply -chain`) are unsigned hints, so changing them does not
/// invalidate a token (path validation, a later issue, checks them on their own).
fn assert_every_flip_fails(issued: &Issued, extra: &[Vec<u8>], step: usize, what: &str) {
    verify(issued, extra).unwrap_or_else(|e| panic!("{what}: unmodified token fails: {e}"));
    let mut checked = 0;
    for i in (0..issued.token.len()).step_by(step) {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut token = issued.token.clone();
            token[i] ^= mask;
            let flipped = Issued {
                token,
                digest: issued.digest,
                nonce: issued.nonce.clone(),
            };
            if let Ok(v) = verify(&flipped, extra) {
                panic!(
                    "{what}: byte {i} ^ {mask:#04x} of {} still verifies: {v:?}",
                    issued.token.len()
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 100, "{what}: {checked}");
}

#[test]
fn every_byte_flip_fails() {
    let pki = Pki::rsa();
    let key = CertifiedSigner::new(Arc::new(pki.signer()), vec![pki.tsa_der()]).unwrap();
    let with_cert = hozon_token(&pki, &key, &["-sha256", "-cert"]);
    assert_every_flip_fails(&with_cert, &[], 1, "hozon RSA token with certificate");

    let pki = Pki::ec();
    let key = CertifiedSigner::new(Arc::new(pki.signer()), vec![pki.tsa_der()]).unwrap();
    let without_cert = hozon_token(&pki, &key, &["-sha512"]);
    assert_every_flip_fails(&without_cert, &[pki.tsa_der()], 1, "hozon ECDSA token");

    let openssl_made = openssl_token(
        &pki,
        "signer_digest = sha256\ness_cert_id_alg = sha256\n",
        &["-sha256", "-cert"],
        false,
    );
    assert_every_flip_fails(&openssl_made, &[], 2, "openssl ECDSA token");
}
