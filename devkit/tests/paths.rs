//! The verifier's path validation against the dev hierarchy, whose expected outcomes are known
//! by construction (and checked with `openssl verify` in `fixtures.rs`).

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{TimeZone, Utc};
use hozon_devkit::pki::TestPki;
use hozon_tsa::signer::DigestAlgorithm;
use hozon_verifier::hpki::{CertificateKind, TEST_REMOTE_SIGNATURE_POLICY};
use hozon_verifier::path::{
    validate_path, CrlSet, PathError, PathInput, Purpose, Revocation, TrustAnchors, ValidatedPath,
};
use hozon_verifier::token::SignatureAlgorithm;

fn pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    // Seed 7: arbitrary, fixed so that failures replay.
    PKI.get_or_init(|| TestPki::generate(7).unwrap())
}

fn at(y: i32, m: u32, d: u32) -> SystemTime {
    let t = Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap().timestamp() as u64;
    UNIX_EPOCH + Duration::from_secs(t)
}

fn anchors() -> TrustAnchors {
    let roots: Vec<Vec<u8>> = pki().roots().iter().map(|r| r.to_vec()).collect();
    TrustAnchors::new(&roots).unwrap()
}

fn all_crls() -> Vec<Vec<u8>> {
    pki().crls.iter().map(|c| c.der.clone()).collect()
}

fn validate(id: &str, time: SystemTime, purpose: Purpose) -> Result<ValidatedPath, PathError> {
    let chain = pki().chain(id).unwrap();
    let crls = all_crls();
    validate_path(
        &PathInput {
            end_entity: &chain[0],
            intermediates: &chain[1..],
            crls: &CrlSet::new(&crls),
            time,
            purpose,
            remote_policy: TEST_REMOTE_SIGNATURE_POLICY,
        },
        &anchors(),
    )
}

#[test]
fn current_card_signer() {
    let p = validate("doctor-01", at(2024, 6, 1), Purpose::DocumentSignature).unwrap();
    assert_eq!(p.certificates.len(), 3);
    assert!(
        p.certificates[0].subject.contains("山田 太郎"),
        "{}",
        p.certificates[0].subject
    );
    assert!(p.certificates[2].subject.contains("Test HPKI Root CA V2"));
    assert_eq!(p.kind, Some(CertificateKind::Card));
    assert_eq!(p.hc_roles, ["Medical Doctor"]);
    assert!(matches!(
        p.certificates[0].revocation,
        Revocation::NotRevoked { .. }
    ));
    assert_eq!(
        p.certificates[0].signed_with,
        Some((SignatureAlgorithm::RsaPkcs1(DigestAlgorithm::Sha256), 2048))
    );
    assert_eq!(
        p.certificates[1].signed_with,
        Some((SignatureAlgorithm::RsaPkcs1(DigestAlgorithm::Sha256), 4096))
    );
}

#[test]
fn kinds_and_roles() {
    let p = validate(
        "remote-doctor-01",
        at(2025, 1, 1),
        Purpose::DocumentSignature,
    )
    .unwrap();
    assert_eq!(p.kind, Some(CertificateKind::Remote));
    let p = validate("pharmacist-01", at(2025, 1, 1), Purpose::DocumentSignature).unwrap();
    assert_eq!(p.hc_roles, ["Pharmacist"]);
    let p = validate("tsa-1", at(2025, 1, 1), Purpose::TimeStamping).unwrap();
    assert_eq!(p.kind, None);
    assert!(p.certificates[1].subject.contains("Test TSA Root CA"));
}

#[test]
fn legacy_sha1_signer_in_its_time() {
    let p = validate(
        "legacy-doctor-01",
        at(2016, 6, 1),
        Purpose::DocumentSignature,
    )
    .unwrap();
    assert_eq!(
        p.certificates[0].signed_with,
        Some((SignatureAlgorithm::RsaPkcs1(DigestAlgorithm::Sha1), 2048))
    );
    assert_eq!(
        p.certificates[1].signed_with,
        Some((SignatureAlgorithm::RsaPkcs1(DigestAlgorithm::Sha1), 4096))
    );
    // Today its certificate (and its CA's) has long expired.
    let err = validate(
        "legacy-doctor-01",
        at(2026, 6, 1),
        Purpose::DocumentSignature,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("was not valid at 2026-06-01"),
        "{err}"
    );
}

#[test]
fn expired_and_revoked() {
    let err = validate(
        "doctor-expired",
        at(2023, 6, 15),
        Purpose::DocumentSignature,
    )
    .unwrap_err();
    assert!(
        matches!(&err, PathError::NoValidPath { reason, .. } if matches!(**reason, PathError::Expired { .. })),
        "{err}"
    );
    // Revoked on 2025-06-30: a signature before then stands (and says so), after it does not.
    let p = validate(
        "doctor-revoked",
        at(2025, 1, 10),
        Purpose::DocumentSignature,
    )
    .unwrap();
    assert_eq!(
        p.certificates[0].revocation,
        Revocation::RevokedLater {
            date: "2025-06-30T00:00:00Z".into()
        }
    );
    let err = validate(
        "doctor-revoked",
        at(2025, 8, 29),
        Purpose::DocumentSignature,
    )
    .unwrap_err();
    match err {
        PathError::Revoked { date, reason, .. } => {
            assert_eq!(date, "2025-06-30T00:00:00Z");
            assert_eq!(reason, "affiliationChanged");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn missing_pieces_and_forgeries() {
    let chain = pki().chain("doctor-01").unwrap();
    let input = |intermediates: &'static [Vec<u8>]| PathInput {
        end_entity: Box::leak(chain[0].clone().into_boxed_slice()),
        intermediates,
        crls: CrlSet::empty(),
        time: at(2024, 6, 1),
        purpose: Purpose::DocumentSignature,
        remote_policy: TEST_REMOTE_SIGNATURE_POLICY,
    };
    // Without the intermediate CA there is no path.
    let err = validate_path(&input(&[]), &anchors()).unwrap_err();
    assert!(matches!(err, PathError::NoIssuer { .. }), "{err}");
    // With only the TSA root trusted there is none either.
    let tsa_root = TrustAnchors::new(&[pki().entity("tsa-root").unwrap().cert.clone()]).unwrap();
    let ca: &'static [Vec<u8>] = Box::leak(vec![chain[1].clone()].into_boxed_slice());
    assert!(validate_path(&input(ca), &tsa_root).is_err());
    // Without CRLs the status is unknown, not good.
    let p = validate_path(&input(ca), &anchors()).unwrap();
    assert_eq!(p.certificates[0].revocation, Revocation::Unknown);

    // A certificate whose signature bits were changed is refused.
    let mut forged = chain[0].clone();
    let n = forged.len();
    forged[n - 5] ^= 0x40;
    let err = validate_path(
        &PathInput {
            end_entity: &forged,
            ..input(ca)
        },
        &anchors(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, PathError::NoValidPath { reason, .. } if matches!(**reason, PathError::BadSignature { .. })),
        "{err}"
    );
    // Garbage is a decode error, not a panic.
    assert!(matches!(
        validate_path(
            &PathInput {
                end_entity: b"junk",
                ..input(ca)
            },
            &anchors()
        ),
        Err(PathError::Decode(_))
    ));
}

/// A CA's CRL of thousands of entries: the revoked doctor is still found among them (by the
/// serial index of the decoded CRL), and the others' status still reads as not revoked.
#[test]
fn a_revoked_certificate_is_found_on_a_long_crl() {
    let padded = pki().padded_crls(2_000).unwrap();
    assert_eq!(padded.len(), pki().crls.len());
    let crls = CrlSet::new(&padded);
    assert_eq!(crls.len(), padded.len(), "every padded CRL decodes");
    let check = |id: &str, time: SystemTime| {
        let chain = pki().chain(id).unwrap();
        validate_path(
            &PathInput {
                end_entity: &chain[0],
                intermediates: &chain[1..],
                crls: &crls,
                time,
                purpose: Purpose::DocumentSignature,
                remote_policy: TEST_REMOTE_SIGNATURE_POLICY,
            },
            &anchors(),
        )
    };
    match check("doctor-revoked", at(2025, 8, 29)).unwrap_err() {
        PathError::Revoked { date, reason, .. } => {
            assert_eq!(date, "2025-06-30T00:00:00Z");
            assert_eq!(reason, "affiliationChanged");
        }
        other => panic!("{other}"),
    }
    let p = check("doctor-01", at(2026, 11, 1)).unwrap();
    assert!(matches!(
        p.certificates[0].revocation,
        Revocation::NotRevoked { .. }
    ));
}

/// Validated paths are remembered per process for the interval of time between two instants
/// at which some check changes (a validity bound, a revocation date). Each check here is made
/// at such an instant and just past it, in an order where a memo that put both in one interval
/// would answer the second from the first.
#[test]
fn a_remembered_path_does_not_outlive_a_validity_bound_or_a_revocation() {
    let second = Duration::from_secs(1);
    let expired = |r: Result<ValidatedPath, PathError>| match r {
        Err(PathError::NoValidPath { reason, .. }) => {
            matches!(*reason, PathError::Expired { .. })
        }
        Err(PathError::Expired { .. }) => true,
        _ => false,
    };
    let p = validate("doctor-01", at(2024, 6, 1), Purpose::DocumentSignature).unwrap();
    let (not_before, not_after) = (p.certificates[0].not_before, p.certificates[0].not_after);
    for _ in 0..2 {
        assert!(validate("doctor-01", not_after, Purpose::DocumentSignature).is_ok());
        assert!(expired(validate(
            "doctor-01",
            not_after + second,
            Purpose::DocumentSignature
        )));
        assert!(validate("doctor-01", not_before, Purpose::DocumentSignature).is_ok());
        assert!(expired(validate(
            "doctor-01",
            not_before - second,
            Purpose::DocumentSignature
        )));
    }
    // Revoked on 2025-06-30 00:00:00: a second before, the signature stands; at it, it does not.
    let revoked_on = Utc
        .with_ymd_and_hms(2025, 6, 30, 0, 0, 0)
        .unwrap()
        .timestamp() as u64;
    let revoked_on = UNIX_EPOCH + Duration::from_secs(revoked_on);
    for _ in 0..2 {
        let p = validate(
            "doctor-revoked",
            revoked_on - second,
            Purpose::DocumentSignature,
        )
        .unwrap();
        assert!(matches!(
            p.certificates[0].revocation,
            Revocation::RevokedLater { .. }
        ));
        assert!(matches!(
            validate("doctor-revoked", revoked_on, Purpose::DocumentSignature),
            Err(PathError::Revoked { .. })
        ));
    }
    // The same path with no CRLs is another question: its status is unknown, not the
    // "not revoked" remembered with the CRLs.
    let chain = pki().chain("doctor-01").unwrap();
    let input = PathInput {
        end_entity: &chain[0],
        intermediates: &chain[1..],
        crls: CrlSet::empty(),
        time: at(2024, 6, 1),
        purpose: Purpose::DocumentSignature,
        remote_policy: TEST_REMOTE_SIGNATURE_POLICY,
    };
    assert_eq!(
        validate_path(&input, &anchors()).unwrap().certificates[0].revocation,
        Revocation::Unknown
    );
    assert!(matches!(
        validate("doctor-01", at(2024, 6, 1), Purpose::DocumentSignature)
            .unwrap()
            .certificates[0]
            .revocation,
        Revocation::NotRevoked { .. }
    ));
}
