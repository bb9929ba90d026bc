//! The verifier's document checks against the dev corpus: every document's outcome (valid,
//! or the error code) must be the manifest's. `check_corpus.py` checks the same manifest with
//! independent tools (fixtures.rs), so the two verifiers agree with each other too.

use std::time::SystemTime;

use hozon_devkit::corpus::{read_manifest, write_corpus, CorpusSpec, Format, Verdict};
use hozon_devkit::pki::TestPki;
use hozon_verifier::document::{verify_document, DocumentContext, UsagePolicy};
use hozon_verifier::hpki::{CertificateKind, TEST_REMOTE_SIGNATURE_POLICY};
use hozon_verifier::path::{CrlSet, TrustAnchors};

#[test]
fn every_corpus_document_gets_its_manifest_verdict() {
    // Seeds 12 and 6: arbitrary, fixed so that a failure replays.
    let pki = TestPki::generate(12).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("corpus");
    write_corpus(
        &pki,
        CorpusSpec {
            count: 200,
            seed: 6,
            format: Format::Mixed,
        },
        &out,
        |_| {},
    )
    .unwrap();
    let roots: Vec<Vec<u8>> = pki.roots().iter().map(|r| r.to_vec()).collect();
    let anchors = TrustAnchors::new(&roots).unwrap();
    // Intermediates come from the signatures themselves; CRLs from the hierarchy.
    let crl_der: Vec<Vec<u8>> = pki.crls.iter().map(|c| c.der.clone()).collect();
    let crls = CrlSet::new(&crl_der);
    let usage = UsagePolicy::default();
    let mut checked = 0;
    let mut remote = 0;
    for entry in read_manifest(&out).unwrap() {
        let bytes = std::fs::read(out.join(&entry.file)).unwrap();
        let side = entry
            .timestamp
            .as_deref()
            .filter(|t| *t != "embedded")
            .map(|t| std::fs::read(out.join(t)).unwrap());
        let ctx = DocumentContext {
            anchors: &anchors,
            crls: &crls,
            extra_certs: &[],
            usage: &usage,
            remote_policy: TEST_REMOTE_SIGNATURE_POLICY,
            side_token: side.as_deref(),
            now: SystemTime::now(),
        };
        match (verify_document(&bytes, &ctx), entry.expect) {
            (Ok(doc), Verdict::Valid) => {
                let ts = doc
                    .timestamp
                    .as_ref()
                    .expect("every corpus signature is timestamped");
                assert_eq!(doc.validated_at, ts.token.gen_time);
                assert_eq!(doc.bundle_id.as_deref(), entry.id.as_deref());
                assert_eq!(doc.doc_type.map(|t| t.as_str()), entry.doc_type.as_deref());
                assert_eq!(doc.signer.hc_roles, ["Medical Doctor"], "{}", entry.file);
                if doc.signer.kind == Some(CertificateKind::Remote) {
                    remote += 1;
                }
            }
            (Err(e), Verdict::Invalid) => {
                assert_eq!(
                    Some(e.code()),
                    entry.error.as_deref(),
                    "{}: {e}",
                    entry.file
                );
            }
            (Ok(_), Verdict::Invalid) => panic!(
                "{}: verified, but the manifest expects {:?}",
                entry.file, entry.error
            ),
            (Err(e), Verdict::Valid) => panic!("{}: {e} ({})", entry.file, e.code()),
        }
        checked += 1;
    }
    assert_eq!(checked, 214);
    assert!(remote > 10);
}
