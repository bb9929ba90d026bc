//! RFC 4998 hash-tree throughput, as a ratio to SHA-256 measured in the same run.
//!
//! Run: `cargo bench --bench hashtree` (env HOZON_TREE_LEAVES, default 1,000,000).
//!
//! A tree of n leaves hashes n−1 messages of 64 bytes (two SHA-256 children). Its limit is
//! therefore `openssl speed -evp sha256 -bytes 64` (per-message cost dominates), reported
//! beside the 16 KiB figure (raw throughput) for context. Printed:
//! - build: seconds for n leaves, node hashes/s, and that rate over openssl's 64-byte rate;
//! - extract: seconds to extract the reduced hash tree of every leaf, and to extract and
//!   recompute every root from them (what verifying the whole batch costs);
//! - criterion statistics for a 65,536-leaf build and for single extractions.

#[path = "support/allocator.rs"]
mod allocator;
#[path = "support/limits.rs"]
mod limits;

use std::time::Instant;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use hozon_tsa::signer::DigestAlgorithm;
use hozon_verifier::hashtree::{root_from_reduced, HashTree};

const D: DigestAlgorithm = DigestAlgorithm::Sha256;

fn leaves(n: usize) -> Vec<[u8; 32]> {
    (0..n as u64)
        .map(|i| {
            let h = D.digest(&i.to_be_bytes());
            let mut a = [0u8; 32];
            a.copy_from_slice(&h);
            a
        })
        .collect()
}

fn main() {
    let n: usize = std::env::var("HOZON_TREE_LEAVES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let small = limits::openssl_speed("sha256", 64, 2, 1);
    let large = limits::openssl_speed("sha256", 16384, 2, 1);
    let msgs_per_sec = small.map(|b| b / 64.0);
    println!(
        "openssl speed sha256: {:.0} MB/s at 64 bytes ({:.0} messages/s), {:.0} MB/s at 16 KiB",
        small.unwrap_or(0.0) / 1e6,
        msgs_per_sec.unwrap_or(0.0),
        large.unwrap_or(0.0) / 1e6
    );

    let l = leaves(n);
    let t = Instant::now();
    let tree = HashTree::build(D, &l).expect("tree builds");
    let build = t.elapsed().as_secs_f64();
    let rate = (n - 1) as f64 / build;
    println!(
        "build {n} leaves: {build:.3} s, {rate:.0} node hashes/s = {:.2} of openssl's 64-byte rate",
        msgs_per_sec.map_or(f64::NAN, |m| rate / m)
    );

    // Each reduced tree is used and dropped, as sealing does when it writes them out (keeping
    // a million of them would measure the allocator, not the tree).
    let t = Instant::now();
    for i in 0..n {
        black_box(tree.reduced(i).expect("leaf exists"));
    }
    let extract = t.elapsed().as_secs_f64();
    println!(
        "extract all {n} reduced trees: {extract:.3} s ({:.0}/s)",
        n as f64 / extract
    );

    let t = Instant::now();
    let root = tree.root().to_vec();
    let mut hashes = 0usize;
    for (i, leaf) in l.iter().enumerate() {
        let r = tree.reduced(i).expect("leaf exists");
        hashes += r.len();
        let ok = root_from_reduced(D, leaf, &r, |x| x == root.as_slice())
            .expect("well-formed")
            .is_some();
        assert!(ok, "leaf {i} does not lead to the root");
    }
    let recompute = t.elapsed().as_secs_f64();
    println!(
        "extract and recompute all {n} roots: {recompute:.3} s, {:.0} node hashes/s = {:.2} of \
         openssl's 64-byte rate",
        hashes as f64 / recompute,
        msgs_per_sec.map_or(f64::NAN, |m| hashes as f64 / recompute / m)
    );

    let mut c = Criterion::default().configure_from_args().sample_size(10);
    let mut g = c.benchmark_group("hashtree");
    let n_small = 65_536;
    let l_small = leaves(n_small);
    g.throughput(Throughput::Elements(n_small as u64 - 1));
    g.bench_with_input(BenchmarkId::new("build", n_small), &l_small, |b, l| {
        b.iter(|| HashTree::build(D, black_box(l)).expect("builds"))
    });
    let t_small = HashTree::build(D, &l_small).expect("builds");
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::new("reduced", n_small), |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 7919) % n_small;
            t_small.reduced(black_box(i)).expect("exists")
        })
    });
    g.finish();
    c.final_summary();
}
