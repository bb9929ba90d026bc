//! Verifications per second of one signed document with its evidence record (everything
//! `hozon verify document` does after reading the files), as a ratio to the RSA-2048 verify
//! rate of aws-lc-rs measured in the same run (each verification checks about a dozen RSA
//! signatures: the document's, its signer's path, the signature timestamp's and the archive
//! timestamp's, each with their paths, and the CRLs).
//!
//! Run: `cargo bench --bench verify`. Fixtures: the dev hierarchy (seed 1) and, for each
//! signature format, the first current (SHA-256, `RS256` for JWS) document of the dev corpus (seed 1, CMS
//! only, then JWS only, which carries its signature timestamp beside it) under a
//! 1,024-document SHA-256 hash tree stamped by Test TSA 1.
//!
//! Also `verify_document` alone per second with the dev CRLs and with every CRL made
//! `HOZON_BENCH_CRL_ENTRIES` (default 20,000; 50 in the smoke run) entries longer, as a
//! national CA's CRL is: the ratio should stay near 1, since a set of CRLs is decoded once.

#[path = "support/allocator.rs"]
mod allocator;
#[path = "support/limits.rs"]
mod limits;

use std::hint::black_box;
use std::time::{Instant, SystemTime};

use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput};
use hozon_devkit::corpus::{Corpus, CorpusSpec, Format, SignatureFormat};
use hozon_devkit::pki::TestPki;
use hozon_devkit::sign::Stamper;
use hozon_tsa::signer::DigestAlgorithm;
use hozon_verifier::document::{verify_document, DocumentContext, UsagePolicy};
use hozon_verifier::ers::{evidence_record, ArchiveTimeStamp};
use hozon_verifier::hashtree::HashTree;
use hozon_verifier::hpki::TEST_REMOTE_SIGNATURE_POLICY;
use hozon_verifier::path::{CrlSet, TrustAnchors};
use hozon_verifier::policy::Policy;
use hozon_verifier::report::{verify, VerifyInput};

fn main() {
    let pki = TestPki::generate(1).expect("hierarchy");
    let rsa = limits::rsa_verify_rate(&pki, 1, 20_000);
    let mut c = Criterion::default().configure_from_args().sample_size(20);
    let mut g = c.benchmark_group("verify");
    g.throughput(Throughput::Elements(1));
    let roots: Vec<Vec<u8>> = pki.roots().iter().map(|r| r.to_vec()).collect();
    let anchors = TrustAnchors::new(&roots).expect("anchors");
    let crls: Vec<Vec<u8>> = pki.crls.iter().map(|c| c.der.clone()).collect();
    let usage = UsagePolicy::default();
    let policy = Policy::etsi();
    let stamper = Stamper::new(pki.tsa("tsa-1").expect("TSA"));
    let at = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    // National-scale CRLs: every CA's CRL with this many more entries (about 1 MB each at
    // 20,000), decoded once as ingest and bulk runs do.
    let bench = std::env::args().any(|a| a == "--bench");
    let padding = std::env::var("HOZON_BENCH_CRL_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 20_000 } else { 50 });
    let padded = pki.padded_crls(padding).expect("padded CRLs");
    let (dev_set, padded_set) = (CrlSet::new(&crls), CrlSet::new(&padded));
    for (format, wanted, name) in [
        (Format::Cms, SignatureFormat::Cms, "cms"),
        (Format::Jose, SignatureFormat::Jose, "jose"),
    ] {
        let corpus = Corpus::new(
            &pki,
            CorpusSpec {
                count: 100,
                seed: 1,
                format,
            },
        )
        .expect("corpus");
        let doc = (0..100)
            .map(|i| corpus.good(i).expect("document"))
            .find(|d| {
                d.entry.format == wanted
                    && (d.entry.algorithm.starts_with("sha256") || d.entry.algorithm == "RS256")
            })
            .expect("a current document of this format");
        let d = DigestAlgorithm::Sha256;
        let mut leaves: Vec<Vec<u8>> = (0..1023u32).map(|i| d.digest(&i.to_be_bytes())).collect();
        leaves.push(d.digest(&doc.bytes));
        let tree = HashTree::build(d, &leaves).expect("tree");
        let token = stamper.stamp(tree.root(), at, &[1]).expect("token");
        let ats = ArchiveTimeStamp::new(d, tree.reduced(1023).expect("leaf"), &token).expect("ATS");
        let record = rasn::der::encode(&evidence_record(vec![vec![ats]])).expect("record");
        let input = VerifyInput {
            evidence: Some(&record),
            anchors: &anchors,
            extra_certs: &[],
            crls: &crls,
            // A JWS carries its signature timestamp beside the document.
            side_token: doc.side_token.as_deref(),
            usage: &usage,
            remote_policy: TEST_REMOTE_SIGNATURE_POLICY,
            now: SystemTime::now(),
            policy: &policy,
        };
        assert!(
            verify(&doc.bytes, &input).is_valid(),
            "the {name} fixture verifies"
        );

        let rate = per_second(|| {
            black_box(verify(black_box(&doc.bytes), &input));
        });
        println!(
            "verify {name} document ({} bytes) + evidence: {rate:.0}/s on one thread = {:.3} of \
             aws-lc-rs RSA-2048 verify ({rsa:.0}/s), i.e. one verification costs {:.1} RSA \
             verifications",
            doc.bytes.len(),
            rate / rsa,
            rsa / rate
        );
        // The document alone (what ingest and `verify archive --signatures` do per
        // document), against the dev CRLs and against the padded ones.
        let mut rates = Vec::new();
        for set in [&dev_set, &padded_set] {
            let ctx = DocumentContext {
                anchors: &anchors,
                crls: set,
                extra_certs: &[],
                usage: &usage,
                remote_policy: TEST_REMOTE_SIGNATURE_POLICY,
                side_token: doc.side_token.as_deref(),
                now: SystemTime::now(),
            };
            verify_document(&doc.bytes, &ctx).expect("the fixture verifies");
            rates.push(per_second(|| {
                black_box(verify_document(black_box(&doc.bytes), &ctx)).ok();
            }));
        }
        println!(
            "verify_document {name}: {:.0}/s with the dev CRLs ({} bytes), {:.0}/s with every \
             CRL {padding} entries longer ({} bytes): {:.2} of the rate",
            rates[0],
            crls.iter().map(Vec::len).sum::<usize>(),
            rates[1],
            padded.iter().map(Vec::len).sum::<usize>(),
            rates[1] / rates[0]
        );
        g.bench_function(format!("document_and_evidence/{name}"), |b| {
            b.iter(|| verify(black_box(&doc.bytes), &input))
        });
    }
    g.finish();
    c.final_summary();
}

/// Calls of `f` per second on this thread, over 300 calls.
fn per_second(mut f: impl FnMut()) -> f64 {
    let n = 300;
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    n as f64 / t.elapsed().as_secs_f64()
}
