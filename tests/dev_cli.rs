//! `hozon dev pki` and `hozon dev corpus` through the binary: the files a user gets, the
//! refusal to write into a non-empty directory, and seeds that reproduce the same bytes.

#[path = "support/cli.rs"]
mod cli;

use cli::{hozon, s};

/// `hozon dev corpus` of 25 CMS documents, seed 8, with `threads` workers, into `out`.
fn corpus(pki: &std::path::Path, out: &std::path::Path, threads: &str) -> std::process::Output {
    hozon(&[
        "dev",
        "corpus",
        "--pki",
        s(pki),
        "--count",
        "25",
        "--out",
        s(out),
        "--seed",
        "8",
        "--format",
        "cms",
        "--threads",
        threads,
    ])
}

#[test]
fn pki_then_corpus() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    let out = hozon(&["dev", "pki", "--out", s(&pki), "--seed", "3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "pki.json",
        "trust/root.pem",
        "trust/tsa-root.pem",
        "certs/doctor-01.pem",
        "keys/doctor-01.key.pem",
        "crl/ca-sha256.crl.pem",
    ] {
        assert!(pki.join(f).is_file(), "{f} missing");
    }

    // Not into a directory that holds something.
    let again = hozon(&["dev", "pki", "--out", s(&pki), "--seed", "3"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not an empty directory"));

    let corpus_dir = tmp.path().join("corpus");
    let out = corpus(&pki, &corpus_dir, "2");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("25 documents and 7 bad ones"), "{stderr}");
    let manifest = std::fs::read_to_string(corpus_dir.join("manifest.jsonl")).unwrap();
    assert_eq!(manifest.lines().count(), 32);
    assert!(corpus_dir.join("docs/000/0000024.json").is_file());

    // The same seeds give the same bytes, whatever the thread count.
    let corpus2 = tmp.path().join("corpus2");
    let out = corpus(&pki, &corpus2, "1");
    assert!(out.status.success());
    assert_eq!(
        std::fs::read(corpus_dir.join("manifest.jsonl")).unwrap(),
        std::fs::read(corpus2.join("manifest.jsonl")).unwrap()
    );
    assert_eq!(
        std::fs::read(corpus_dir.join("docs/000/0000017.json")).unwrap(),
        std::fs::read(corpus2.join("docs/000/0000017.json")).unwrap()
    );

    // A directory that is not a hierarchy is an error naming the file.
    let bad = hozon(&[
        "dev",
        "corpus",
        "--pki",
        s(tmp.path()),
        "--count",
        "1",
        "--out",
        s(&tmp.path().join("c3")),
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("pki.json"));
}
