//! B-tree operations on the in-memory forest: the standard workload of
//! random 24-byte keys and 150-byte values, 1,000,000 of them. The forest
//! runs without filters and with a cache that holds every node, so these
//! numbers are the B-tree's own; `benches/store.rs` measures the store.
//!
//! Run: `cargo bench --bench btree`. `LARIX_BENCH_N` changes the size.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use larix::{Forest, Options, Tree};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

fn n() -> usize {
    std::env::var("LARIX_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn pairs(n: usize, seed: u64) -> Vec<([u8; 24], [u8; 150])> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut k = [0u8; 24];
            let mut v = [0u8; 150];
            rng.fill(&mut k[..]);
            rng.fill(&mut v[..]);
            (k, v)
        })
        .collect()
}

fn loaded(data: &[([u8; 24], [u8; 150])]) -> (Forest, Tree) {
    let options = Options::default().filters(vec![]).cache_bytes(1 << 30);
    let forest = Forest::in_memory(options).unwrap();
    let tree = forest.create_tree("bench").unwrap();
    for (k, v) in data {
        tree.insert(k, v).unwrap();
    }
    (forest, tree)
}

fn bulk_insert(c: &mut Criterion) {
    let data = pairs(n(), 1);
    let mut g = c.benchmark_group("memory");
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    g.throughput(Throughput::Elements(data.len() as u64));
    g.bench_function("insert_1m_random", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let (forest, _tree) = loaded(&data);
                total += start.elapsed();
                drop(forest);
            }
            total
        })
    });
    g.finish();
}

fn point_ops(c: &mut Criterion) {
    let data = pairs(n(), 1);
    let (_forest, tree) = loaded(&data);
    let mut g = c.benchmark_group("memory_1m");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("get_random", |b| {
        b.iter(|| {
            i = (i + 7919) % data.len();
            tree.get(&data[i].0).unwrap()
        })
    });
    g.bench_function("range_10_random", |b| {
        b.iter(|| {
            i = (i + 7919) % data.len();
            tree.range(data[i].0.as_slice()..).unwrap().take(10).count()
        })
    });
    let fresh = pairs(1_000_000, 2);
    let mut j = 0usize;
    g.bench_function("insert_into_1m", |b| {
        b.iter_batched(
            || {
                j = (j + 1) % fresh.len();
                &fresh[j]
            },
            |(k, v)| tree.insert(k, v).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bulk_insert, point_ops);
criterion_main!(benches);
