//! The node store on disk: the background filter pipeline and commits.
//!
//! - `pipeline/bulk_load_commit/{none,zstd1_checksum}`: 1,000,000 random
//!   24-byte keys with 150-byte values inserted into a new store, then one
//!   durable commit; the same work with and without filters, so the ratio
//!   shows what the filters cost once the workers run them.
//! - `commit/one_insert`: the latency of a durable commit of one insert
//!   into a store of 100,000 entries.
//!
//! Run: `cargo bench --bench store`. `LARIX_BENCH_N` changes the size of
//! the bulk load, `LARIX_BENCH_CACHE_MIB` the cache (default 512 MiB, which
//! holds the million entries' nodes).
// `criterion_group!` generates public functions without documentation.
#![allow(missing_docs)]

mod support;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use larix::{FilterSpec, Forest, Options};
use std::time::{Duration, Instant};
use support::{env, pairs};

fn options(filters: Vec<FilterSpec>) -> Options {
    Options::default()
        .filters(filters)
        .cache_bytes(env("LARIX_BENCH_CACHE_MIB", 512) << 20)
}

fn bulk_load(c: &mut Criterion) {
    let data = pairs(env("LARIX_BENCH_N", 1_000_000), 1);
    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10).measurement_time(Duration::from_secs(60));
    g.throughput(Throughput::Elements(data.len() as u64));
    for (name, filters) in [
        ("none", vec![]),
        (
            "zstd1_checksum",
            vec![FilterSpec::zstd(1), FilterSpec::checksum()],
        ),
    ] {
        g.bench_function(format!("bulk_load_commit/{name}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().unwrap();
                    let start = Instant::now();
                    let forest = Forest::open(dir.path(), options(filters.clone())).unwrap();
                    let tree = forest.create_tree("bench").unwrap();
                    for (k, v) in &data {
                        tree.insert(k, v).unwrap();
                    }
                    forest.commit().unwrap();
                    total += start.elapsed();
                }
                total
            })
        });
    }
    g.finish();
}

fn commit_latency(c: &mut Criterion) {
    let data = pairs(100_000, 3);
    let dir = tempfile::tempdir().unwrap();
    let filters = vec![FilterSpec::zstd(1), FilterSpec::checksum()];
    let forest = Forest::open(dir.path(), options(filters)).unwrap();
    let tree = forest.create_tree("bench").unwrap();
    for (k, v) in &data {
        tree.insert(k, v).unwrap();
    }
    forest.commit().unwrap();
    let mut g = c.benchmark_group("commit");
    let mut i = 0usize;
    g.bench_function("one_insert", |b| {
        b.iter(|| {
            i = (i + 7919) % data.len();
            tree.insert(&data[i].0, b"changed").unwrap();
            forest.commit().unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, bulk_load, commit_latency);
criterion_main!(benches);
