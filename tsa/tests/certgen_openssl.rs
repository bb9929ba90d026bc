//! TSA certificates and requests from PKCS#11 (SoftHSM2) and software keys, judged by the
//! openssl CLI:
//!
//! ```text
//! openssl x509 -in c.pem -noout -text
//! openssl verify -CAfile c.pem -purpose timestampsign c.pem
//! openssl req -in r.pem -verify -noout -text
//! ```

#[path = "../../tests/support/softhsm.rs"]
mod softhsm;

use std::path::Path;
use std::sync::Arc;

use hozon_tsa::certgen::{
    certificate_pem, certificates_from_pem, csr_pem, public_key_pem, self_signed_tsa_certificate,
    tsa_csr, CertGenError, RcgenKey, TsaCertParams,
};
use hozon_tsa::pkcs11::{keygen, KeySpec, Pkcs11Config, Pkcs11Signer, Secret};
use hozon_tsa::signer::{SignatureScheme, Signer, SignerError};
use hozon_tsa::software::{KeyKind, SoftwareSigner};
use softhsm::{openssl, softhsm, USER_PIN};

fn pkcs11_signer(spec: KeySpec, label: &str, scheme: SignatureScheme) -> Arc<dyn Signer> {
    let c = Pkcs11Config::new(
        &softhsm().module,
        "hozon-a",
        label,
        Secret::from(USER_PIN),
        scheme,
    );
    keygen(&c, spec, label, None).unwrap_or_else(|e| panic!("keygen {label}: {e}"));
    Arc::new(Pkcs11Signer::open(&c).unwrap())
}

fn dev_params() -> TsaCertParams {
    TsaCertParams {
        common_name: "hozon TSA 1".into(),
        organization: "hozon".into(),
        validity_days: 365,
        development: true,
    }
}

/// Everything openssl should say about a TSA certificate and request for `signer`.
fn check_with_openssl(dir: &Path, name: &str, signer: &dyn Signer, params: &TsaCertParams) {
    let cert = self_signed_tsa_certificate(signer, params)
        .unwrap_or_else(|e| panic!("{name}: certificate: {e}"));
    let c = dir.join(format!("{name}.pem"));
    std::fs::write(&c, certificate_pem(&cert)).unwrap();
    let c = c.to_str().unwrap();

    let text = openssl(&["x509", "-in", c, "-noout", "-text"]);
    let after = |header: &str| -> String {
        let i = text
            .find(header)
            .unwrap_or_else(|| panic!("{name}: no {header:?} in\n{text}"));
        text[i + header.len()..]
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .to_owned()
    };
    assert_eq!(
        after("X509v3 Extended Key Usage: critical"),
        "Time Stamping"
    );
    assert_eq!(
        after("X509v3 Key Usage: critical"),
        "Digital Signature, Non Repudiation"
    );
    assert_eq!(after("X509v3 Basic Constraints: critical"), "CA:FALSE");
    assert!(text.contains("X509v3 Subject Key Identifier"), "{text}");
    assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
    let expected_alg = match signer.scheme() {
        SignatureScheme::RsaPkcs1Sha256 => "sha256WithRSAEncryption",
        SignatureScheme::RsaPssSha256 => "rsassaPss",
        SignatureScheme::EcdsaP256Sha256 => "ecdsa-with-SHA256",
        SignatureScheme::EcdsaP384Sha384 => "ecdsa-with-SHA384",
        other => panic!("no expectation for {other:?}"),
    };
    assert!(
        text.contains(&format!("Signature Algorithm: {expected_alg}")),
        "{text}"
    );
    if params.development {
        assert!(
            text.contains("O = hozon DEVELOPMENT ONLY, CN = hozon TSA 1 (development)"),
            "{text}"
        );
    } else {
        assert!(!text.contains("DEVELOPMENT"), "{text}");
        assert!(text.contains("O = hozon, CN = hozon TSA 1"), "{text}");
    }
    // The certified key is the signer's.
    let pubkey = openssl(&["x509", "-in", c, "-noout", "-pubkey"]);
    assert_eq!(pubkey, public_key_pem(&signer.public_key_spki().unwrap()));

    // openssl's timestampsign purpose accepts it (self-signed, trusted as its own anchor).
    let verified = openssl(&["verify", "-CAfile", c, "-purpose", "timestampsign", c]);
    assert_eq!(verified.trim(), format!("{c}: OK"));

    let csr = tsa_csr(signer, params).unwrap_or_else(|e| panic!("{name}: request: {e}"));
    let r = dir.join(format!("{name}.csr.pem"));
    std::fs::write(&r, csr_pem(&csr)).unwrap();
    let r = r.to_str().unwrap();
    openssl(&["req", "-in", r, "-verify", "-noout"]);
    let text = openssl(&["req", "-in", r, "-noout", "-text"]);
    assert!(text.contains("Requested Extensions"), "{text}");
    assert!(
        text.contains("X509v3 Extended Key Usage: critical"),
        "{text}"
    );
    assert!(text.contains("Time Stamping"), "{text}");
    assert!(
        text.contains(&format!("Signature Algorithm: {expected_alg}")),
        "{text}"
    );
}

#[test]
fn pkcs11_keys() {
    let dir = tempfile::tempdir().unwrap();
    for (spec, label, scheme) in [
        (
            KeySpec::Rsa2048,
            "cert-rsa",
            SignatureScheme::RsaPkcs1Sha256,
        ),
        (
            KeySpec::Rsa3072,
            "cert-rsa-pss",
            SignatureScheme::RsaPssSha256,
        ),
        (
            KeySpec::EcP256,
            "cert-p256",
            SignatureScheme::EcdsaP256Sha256,
        ),
        (
            KeySpec::EcP384,
            "cert-p384",
            SignatureScheme::EcdsaP384Sha384,
        ),
    ] {
        let signer = pkcs11_signer(spec, label, scheme);
        check_with_openssl(dir.path(), label, signer.as_ref(), &dev_params());
    }
}

#[test]
fn software_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (ec, _) = SoftwareSigner::generate(KeyKind::EcP256).unwrap();
    check_with_openssl(dir.path(), "soft-p256", &ec, &dev_params());
    let (rsa, _) = SoftwareSigner::generate(KeyKind::Rsa2048).unwrap();
    let production = TsaCertParams {
        development: false,
        ..dev_params()
    };
    check_with_openssl(dir.path(), "soft-rsa", &rsa, &production);
    let rsa = rsa.with_scheme(SignatureScheme::RsaPssSha256).unwrap();
    check_with_openssl(dir.path(), "soft-rsa-pss", &rsa, &dev_params());
}

#[test]
fn serials_are_random_and_positive() {
    let (ec, _) = SoftwareSigner::generate(KeyKind::EcP256).unwrap();
    let serial = |der: &[u8]| {
        let c: rasn_pkix::Certificate = rasn::der::decode(der).unwrap();
        c.tbs_certificate.serial_number
    };
    let a = serial(&self_signed_tsa_certificate(&ec, &dev_params()).unwrap());
    let b = serial(&self_signed_tsa_certificate(&ec, &dev_params()).unwrap());
    assert_ne!(a, b);
    for s in [a, b] {
        assert!(s > rasn::types::Integer::from(0));
    }
    let pem = certificate_pem(&self_signed_tsa_certificate(&ec, &dev_params()).unwrap());
    assert_eq!(certificates_from_pem(pem.as_bytes()).unwrap().len(), 1);
}

/// A signer that fails, or that claims a scheme its key cannot do.
#[derive(Debug)]
struct Broken {
    inner: SoftwareSigner,
    scheme: SignatureScheme,
    fail: bool,
}

impl Signer for Broken {
    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
    fn public_key_spki(&self) -> Result<Vec<u8>, SignerError> {
        self.inner.public_key_spki()
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        if self.fail {
            Err(SignerError::Backend("token unplugged".into()))
        } else {
            self.inner.sign(message)
        }
    }
}

#[test]
fn signer_failures_are_reported() {
    let (ec, _) = SoftwareSigner::generate(KeyKind::EcP256).unwrap();
    let failing = Broken {
        inner: ec,
        scheme: SignatureScheme::EcdsaP256Sha256,
        fail: true,
    };
    match self_signed_tsa_certificate(&failing, &dev_params()) {
        Err(CertGenError::Signer(SignerError::Backend(m))) => assert_eq!(m, "token unplugged"),
        other => panic!("expected the signer's error, got {other:?}"),
    }
    assert!(matches!(
        tsa_csr(&failing, &dev_params()),
        Err(CertGenError::Signer(_))
    ));

    // A P-256 key claiming P-384: the certificate would name the wrong curve.
    let (ec, _) = SoftwareSigner::generate(KeyKind::EcP256).unwrap();
    let lying = Broken {
        inner: ec,
        scheme: SignatureScheme::EcdsaP384Sha384,
        fail: false,
    };
    assert!(matches!(
        self_signed_tsa_certificate(&lying, &dev_params()),
        Err(CertGenError::SelfCheck { .. })
    ));

    // rcgen cannot express PSS; the public wrapper says so.
    let (rsa, _) = SoftwareSigner::generate(KeyKind::Rsa2048).unwrap();
    let pss = rsa.with_scheme(SignatureScheme::RsaPssSha256).unwrap();
    assert!(RcgenKey::new(&pss).is_err());

    let mut empty = dev_params();
    empty.common_name = " ".into();
    assert!(matches!(
        self_signed_tsa_certificate(&pss, &empty),
        Err(CertGenError::Params(_))
    ));
}
