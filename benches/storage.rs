//! Storage throughput: put and get of 4 KiB zstd-compressed values, and a full snapshot scan.
//! Reported by criterion as bytes/s. Run: `cargo bench --bench storage`.
//!
//! Values are JSON-like text (FHIR MedicationRequest lines with a per-record varying part),
//! about as compressible as real documents.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use hozon_storage::{Cf, Durability, Store, Table};
use std::hint::black_box;

struct Docs;
impl Table for Docs {
    const CF: Cf = Cf::Documents;
    type Key = u64;
    type Value = Vec<u8>;
}

const VALUE: usize = 4096;
const PRELOAD: u64 = 20_000;

fn value_for(seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(VALUE);
    let mut x = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < VALUE {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(
            format!(
                "{{\"resourceType\":\"MedicationRequest\",\"id\":\"{seq}\",\"dose\":{}}}\n",
                x % 1000
            )
            .as_bytes(),
        );
    }
    out.truncate(VALUE);
    out
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("db")).unwrap();
    let mut batch = store.batch();
    for seq in 0..PRELOAD {
        batch.put::<Docs>(&seq, &value_for(seq));
        if batch.len() == 1000 {
            store.commit(batch, Durability::Buffered).unwrap();
            batch = store.batch();
        }
    }
    store.commit(batch, Durability::Buffered).unwrap();
    store.flush().unwrap();

    let mut g = c.benchmark_group("storage");
    g.throughput(Throughput::Bytes(VALUE as u64));
    let mut next = PRELOAD;
    for (name, durability) in [
        ("put_4k_buffered", Durability::Buffered),
        ("put_4k_durable", Durability::Durable),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    next += 1;
                    (next, value_for(next))
                },
                |(k, v)| {
                    let mut batch = store.batch();
                    batch.put::<Docs>(&k, &v);
                    store.commit(batch, durability).unwrap();
                },
                BatchSize::SmallInput,
            )
        });
    }
    let mut k = 0u64;
    g.bench_function("get_4k", |b| {
        b.iter(|| {
            k = (k + 7919) % PRELOAD;
            black_box(store.get::<Docs>(&k).unwrap().unwrap())
        })
    });
    g.throughput(Throughput::Bytes(VALUE as u64 * PRELOAD));
    g.sample_size(10);
    g.bench_function("snapshot_scan_20k", |b| {
        b.iter(|| {
            let snap = store.snapshot();
            let mut n = 0usize;
            for r in snap.iter::<Docs>().take(PRELOAD as usize) {
                n += r.unwrap().1.len();
            }
            black_box(n)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
