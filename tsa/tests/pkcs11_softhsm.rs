//! `Pkcs11Signer` and `keygen` against a real SoftHSM2 token; signatures checked with aws-lc-rs
//! and, for two of them, `openssl dgst -verify`. Tests run one at a time
//! ([`softhsm::exclusive`]): several share a token, and SoftHSM2 is not safe for that.

#[path = "../../tests/support/softhsm.rs"]
mod softhsm;

use std::sync::Arc;

use hozon_tsa::pkcs11::{
    keygen, pin_from_env, pin_from_file, KeySpec, Pkcs11Config, Pkcs11Error, Pkcs11Signer, Secret,
};
use hozon_tsa::signer::{SignatureScheme, Signer};
use softhsm::{openssl, softhsm, to_pem, verify, USER_PIN};

fn config(token: &str, key: &str, scheme: SignatureScheme, sessions: usize) -> Pkcs11Config {
    let mut c = Pkcs11Config::new(
        &softhsm().module,
        token,
        key,
        Secret::from(USER_PIN),
        scheme,
    );
    c.sessions = sessions;
    c
}

/// keygen for every key size/curve and a signature with every scheme the key supports.
#[test]
fn keygen_and_sign_every_scheme() {
    let _hsm = softhsm::exclusive();
    use SignatureScheme::*;
    let cases: &[(KeySpec, &str, &[SignatureScheme])] = &[
        (
            KeySpec::Rsa2048,
            "rsa2048",
            &[
                RsaPkcs1Sha256,
                RsaPkcs1Sha384,
                RsaPkcs1Sha512,
                RsaPssSha256,
                RsaPssSha384,
                RsaPssSha512,
            ],
        ),
        (
            KeySpec::Rsa3072,
            "rsa3072",
            &[RsaPkcs1Sha256, RsaPssSha256, RsaPssSha512],
        ),
        (KeySpec::EcP256, "p256", &[EcdsaP256Sha256]),
        (KeySpec::EcP384, "p384", &[EcdsaP384Sha384]),
    ];
    let message = b"TSTInfo signed attributes stand-in";
    for &(spec, label, schemes) in cases {
        let generated = keygen(
            &config("hozon-a", label, spec.default_scheme(), 1),
            spec,
            label,
            None,
        )
        .unwrap_or_else(|e| panic!("keygen {spec:?}: {e}"));
        assert_eq!(generated.id.len(), 16);
        for &scheme in schemes {
            let signer = Pkcs11Signer::open(&config("hozon-a", label, scheme, 2))
                .unwrap_or_else(|e| panic!("open {label} {scheme:?}: {e}"));
            let spki = signer.public_key_spki().unwrap();
            assert_eq!(spki, generated.spki, "SPKI read back equals keygen's");
            let sig = signer.sign(message).unwrap();
            verify(&spki, scheme, message, &sig).unwrap();
            // A different message must not verify (the token really signed ours).
            assert!(verify(&spki, scheme, b"other", &sig).is_err());
        }
    }
}

/// The same signatures verify with the openssl CLI (SPKI written as PEM).
#[test]
fn openssl_verifies_ecdsa_and_pss() {
    let _hsm = softhsm::exclusive();
    let dir = tempfile::tempdir().unwrap();
    let message = b"hozon openssl interop";
    let msg_path = dir.path().join("msg");
    std::fs::write(&msg_path, message).unwrap();

    for (spec, label, scheme, extra) in [
        (
            KeySpec::EcP256,
            "ossl-p256",
            SignatureScheme::EcdsaP256Sha256,
            &[][..],
        ),
        (
            KeySpec::Rsa2048,
            "ossl-rsa",
            SignatureScheme::RsaPssSha256,
            &[
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:32",
                "-sigopt",
                "rsa_mgf1_md:sha256",
            ][..],
        ),
    ] {
        let c = config("hozon-a", label, scheme, 1);
        keygen(&c, spec, label, Some(label.as_bytes())).unwrap();
        let signer = Pkcs11Signer::open(&c).unwrap();
        let sig = signer.sign(message).unwrap();
        let pub_path = dir.path().join(format!("{label}.pem"));
        let sig_path = dir.path().join(format!("{label}.sig"));
        std::fs::write(
            &pub_path,
            to_pem("PUBLIC KEY", &signer.public_key_spki().unwrap()),
        )
        .unwrap();
        std::fs::write(&sig_path, &sig).unwrap();
        let mut args = vec![
            "dgst",
            "-sha256",
            "-verify",
            pub_path.to_str().unwrap(),
            "-signature",
            sig_path.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args.push(msg_path.to_str().unwrap());
        assert!(openssl(&args).contains("Verified OK"));
        // And the key the openssl CLI sees is the expected one.
        let text = openssl(&[
            "pkey",
            "-pubin",
            "-in",
            pub_path.to_str().unwrap(),
            "-noout",
            "-text",
        ]);
        match spec {
            KeySpec::EcP256 => assert!(text.contains("prime256v1"), "{text}"),
            _ => assert!(text.contains("2048 bit"), "{text}"),
        }
    }
}

/// Several threads share one signer with fewer sessions than threads.
#[test]
fn concurrent_signing_through_a_small_pool() {
    let _hsm = softhsm::exclusive();
    for (spec, label, scheme, threads, sessions) in [
        (
            KeySpec::EcP256,
            "conc-p256",
            SignatureScheme::EcdsaP256Sha256,
            8,
            3,
        ),
        (
            KeySpec::Rsa2048,
            "conc-rsa",
            SignatureScheme::RsaPkcs1Sha256,
            4,
            2,
        ),
    ] {
        let c = config("hozon-a", label, scheme, sessions);
        keygen(&c, spec, label, None).unwrap();
        let signer = Arc::new(Pkcs11Signer::open(&c).unwrap());
        let spki = signer.public_key_spki().unwrap();
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let signer = Arc::clone(&signer);
                std::thread::spawn(move || {
                    (0..200)
                        .map(|i| {
                            let msg = format!("thread {t} message {i}").into_bytes();
                            let sig = signer.sign(&msg).expect("sign");
                            (msg, sig)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut count = 0;
        for h in handles {
            for (msg, sig) in h.join().expect("signing thread panicked") {
                verify(&spki, scheme, &msg, &sig).unwrap();
                count += 1;
            }
        }
        assert_eq!(count, threads * 200);
        let open = signer.open_sessions();
        assert!(
            (1..=sessions).contains(&open),
            "{open} sessions open, pool of {sessions}"
        );
    }
}

/// Closing every session logs the application out and invalidates the key handle (SoftHSM);
/// the next signature logs in and looks the key up again.
#[test]
fn signs_after_all_sessions_closed() {
    let _hsm = softhsm::exclusive();
    let scheme = SignatureScheme::EcdsaP256Sha256;
    let c = config("hozon-b", "reopen", scheme, 2);
    keygen(&c, KeySpec::EcP256, "reopen", None).unwrap();
    let signer = Pkcs11Signer::open(&c).unwrap();
    let spki = signer.public_key_spki().unwrap();
    verify(&spki, scheme, b"one", &signer.sign(b"one").unwrap()).unwrap();
    for round in 0..3 {
        signer.close_idle_sessions();
        assert_eq!(signer.open_sessions(), 0);
        let msg = format!("after close {round}");
        let sig = signer.sign(msg.as_bytes()).unwrap();
        verify(&spki, scheme, msg.as_bytes(), &sig).unwrap();
        assert_eq!(signer.open_sessions(), 1);
    }
    // The key was looked up again before signing, not after a failure.
    assert_eq!(signer.recoveries(), 0);
}

/// A second context on the same (already initialised) library, as another component of the
/// process would have, and the slot of token `label` in it.
fn second_context(label: &str) -> (cryptoki::context::Pkcs11, cryptoki::slot::Slot) {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    let ctx = Pkcs11::new(&softhsm().module).unwrap();
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).unwrap().label() == label)
        .unwrap();
    (ctx, slot)
}

/// Someone else in the process logs the token out under the signer's feet (its pooled sessions
/// stay open but lose access to the private key): the signer reopens, logs in, looks the key
/// up again and retries.
#[test]
fn retries_after_external_logout() {
    let _hsm = softhsm::exclusive();
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;

    let scheme = SignatureScheme::RsaPkcs1Sha256;
    let c = config("hozon-c", "logout", scheme, 2);
    keygen(&c, KeySpec::Rsa2048, "logout", None).unwrap();
    let signer = Pkcs11Signer::open(&c).unwrap();
    let spki = signer.public_key_spki().unwrap();
    verify(&spki, scheme, b"before", &signer.sign(b"before").unwrap()).unwrap();

    let (ctx, slot) = second_context("hozon-c");
    for round in 0..2 {
        let other = ctx.open_ro_session(slot).unwrap();
        // Logged in already (login is per application); log the whole application out.
        let _ = other.login(UserType::User, Some(&AuthPin::from(USER_PIN)));
        other.logout().unwrap();
        drop(other);
        let msg = format!("after logout {round}");
        let sig = signer
            .sign(msg.as_bytes())
            .unwrap_or_else(|e| panic!("sign after logout: {e}"));
        verify(&spki, scheme, msg.as_bytes(), &sig).unwrap();
        assert_eq!(signer.recoveries(), round + 1);
    }
}

/// The key is deleted and another one made under the same label: the signer notices (its
/// handle is invalid), finds the new key, sees that its public key differs and refuses.
#[test]
fn refuses_a_replaced_key() {
    let _hsm = softhsm::exclusive();
    use cryptoki::object::Attribute;
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;

    let scheme = SignatureScheme::EcdsaP256Sha256;
    let c = config("hozon-f", "rotated", scheme, 1);
    keygen(&c, KeySpec::EcP256, "rotated", None).unwrap();
    let signer = Pkcs11Signer::open(&c).unwrap();
    let spki = signer.public_key_spki().unwrap();
    verify(&spki, scheme, b"before", &signer.sign(b"before").unwrap()).unwrap();

    let (ctx, slot) = second_context("hozon-f");
    let rw = ctx.open_rw_session(slot).unwrap();
    let _ = rw.login(UserType::User, Some(&AuthPin::from(USER_PIN)));
    let objects = rw
        .find_objects(&[Attribute::Label(b"rotated".to_vec())])
        .unwrap();
    assert_eq!(objects.len(), 2);
    for o in objects {
        rw.destroy_object(o).unwrap();
    }
    drop(rw);
    let replacement = keygen(&c, KeySpec::EcP256, "rotated", None).unwrap();
    assert_ne!(replacement.spki, spki);

    match signer.sign(b"after") {
        Err(e) => assert!(e.to_string().contains("replaced by a different key"), "{e}"),
        Ok(_) => panic!("signed with a replaced key"),
    }
    assert_eq!(signer.recoveries(), 1);
}

#[test]
fn wrong_pin_is_reported() {
    let _hsm = softhsm::exclusive();
    // hozon-d is used by no other test, so this process is not logged in to it (a login is
    // per application: once logged in, PKCS#11 does not check a second PIN).
    let mut c = config("hozon-d", "none", SignatureScheme::RsaPkcs1Sha256, 1);
    c.pin = Secret::from("0000");
    match Pkcs11Signer::open(&c) {
        Err(Pkcs11Error::PinIncorrect { token }) => assert_eq!(token, "hozon-d"),
        other => panic!("expected PinIncorrect, got {other:?}"),
    }
    let e = keygen(&c, KeySpec::EcP256, "x", None).unwrap_err();
    assert!(matches!(e, Pkcs11Error::PinIncorrect { .. }), "{e}");
    assert!(e.to_string().contains("wrong PIN"), "{e}");
    assert!(!e.to_string().contains("0000"));
}

#[test]
fn unknown_token_key_and_module_are_reported() {
    let _hsm = softhsm::exclusive();
    let scheme = SignatureScheme::RsaPkcs1Sha256;
    match Pkcs11Signer::open(&config("no-such-token", "k", scheme, 1)) {
        Err(Pkcs11Error::TokenNotFound { label, .. }) => assert_eq!(label, "no-such-token"),
        other => panic!("expected TokenNotFound, got {other:?}"),
    }
    match Pkcs11Signer::open(&config("hozon-e", "no-such-key", scheme, 1)) {
        Err(e @ Pkcs11Error::KeyNotFound { .. }) => {
            assert!(e.to_string().contains("no-such-key"), "{e}")
        }
        other => panic!("expected KeyNotFound, got {other:?}"),
    }
    let mut by_id = config("hozon-e", "x", scheme, 1);
    by_id.key_label = None;
    by_id.key_id = Some(vec![0xde, 0xad]);
    match Pkcs11Signer::open(&by_id) {
        Err(e @ Pkcs11Error::KeyNotFound { .. }) => assert!(e.to_string().contains("dead")),
        other => panic!("expected KeyNotFound, got {other:?}"),
    }
    by_id.key_id = None;
    assert!(matches!(
        Pkcs11Signer::open(&by_id),
        Err(Pkcs11Error::NoKeySelector)
    ));

    let mut bad_module = config("hozon-e", "k", scheme, 1);
    bad_module.module = "/nonexistent/libpkcs11.so".into();
    assert!(matches!(
        Pkcs11Signer::open(&bad_module),
        Err(Pkcs11Error::ModuleLoad { .. })
    ));
}

#[test]
fn key_scheme_mismatch_and_duplicate_label() {
    let _hsm = softhsm::exclusive();
    let c = config("hozon-e", "ec-only", SignatureScheme::EcdsaP256Sha256, 1);
    keygen(&c, KeySpec::EcP256, "ec-only", None).unwrap();
    for wrong in [
        SignatureScheme::RsaPkcs1Sha256,
        SignatureScheme::EcdsaP384Sha384,
    ] {
        match Pkcs11Signer::open(&config("hozon-e", "ec-only", wrong, 1)) {
            Err(Pkcs11Error::KeyMismatch { scheme, .. }) => assert_eq!(scheme, wrong),
            other => panic!("expected KeyMismatch, got {other:?}"),
        }
    }
    match keygen(&c, KeySpec::Rsa2048, "ec-only", None) {
        Err(Pkcs11Error::KeyExists { .. }) => {}
        other => panic!("expected KeyExists, got {other:?}"),
    }
    // Selecting by id as well as label works.
    let g = keygen(&c, KeySpec::EcP256, "ec-two", Some(b"\x01\x02")).unwrap();
    let mut both = config("hozon-e", "ec-two", SignatureScheme::EcdsaP256Sha256, 1);
    both.key_id = Some(g.id.clone());
    let signer = Pkcs11Signer::open(&both).unwrap();
    assert_eq!(signer.public_key_spki().unwrap(), g.spki);
    // The same id again is refused.
    assert!(matches!(
        keygen(&c, KeySpec::EcP256, "ec-three", Some(b"\x01\x02")),
        Err(Pkcs11Error::KeyExists { .. })
    ));
}

#[test]
fn pin_sources() {
    let _hsm = softhsm::exclusive();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pin");
    std::fs::write(&file, "5678\n").unwrap();
    assert_eq!(pin_from_file(&file).unwrap().expose(), b"5678");
    std::fs::write(&file, "\n").unwrap();
    assert!(matches!(
        pin_from_file(&file),
        Err(Pkcs11Error::PinSource { .. })
    ));
    assert!(pin_from_file(dir.path().join("missing")).is_err());

    std::env::set_var("HOZON_TEST_PIN_SOURCES", "24680\n");
    let pin = pin_from_env("HOZON_TEST_PIN_SOURCES").unwrap();
    assert_eq!(pin.expose(), b"24680");
    assert_eq!(format!("{pin:?}"), "Secret(<redacted>)");
    match pin_from_env("HOZON_TEST_PIN_UNSET_VARIABLE") {
        Err(e @ Pkcs11Error::PinSource { .. }) => {
            assert!(e.to_string().contains("HOZON_TEST_PIN_UNSET_VARIABLE"))
        }
        other => panic!("expected PinSource, got {other:?}"),
    }
}
