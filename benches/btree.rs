//! B-tree operations: the standard workload of random 24-byte keys and
//! 150-byte values, 1,000,000 of them.
//!
//! - `memory`, `memory_1m`: the in-memory forest without filters and with a
//!   cache that holds every node, so the numbers are the B-tree's own;
//! - `disk_1m`: the same operations on a store on disk with the default
//!   options (zstd and checksum, 256 MiB cache), after a commit;
//! - `node`: encoding and decoding one full 4 KiB leaf;
//! - `clone` in both groups: an O(1) clone of the 1M-entry tree and its
//!   removal.
//!
//! `benches/store.rs` measures the background pipeline and commits.
//!
//! Run: `cargo bench --bench btree`. `LARIX_BENCH_N` changes the size.
// `criterion_group!` generates public functions without documentation.
#![allow(missing_docs)]

mod support;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use larix::{Forest, Options, Tree};
use larix_btree::Node;
use larix_nodestore::Codec;
use std::time::{Duration, Instant};
use support::{env, pairs, Pair};

fn n() -> usize {
    env("LARIX_BENCH_N", 1_000_000)
}

fn loaded(data: &[Pair]) -> (Forest, Tree) {
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
    let (forest, tree) = loaded(&data);
    tree_ops(c, "memory_1m", &forest, &tree, &data);
}

fn disk_ops(c: &mut Criterion) {
    let data = pairs(n(), 1);
    let dir = tempfile::tempdir().unwrap();
    let forest = Forest::open(dir.path(), Options::default()).unwrap();
    let tree = forest.create_tree("bench").unwrap();
    for (k, v) in &data {
        tree.insert(k, v).unwrap();
    }
    forest.commit().unwrap();
    tree_ops(c, "disk_1m", &forest, &tree, &data);
}

fn node_codec(c: &mut Criterion) {
    let mut leaf = Node::new_leaf();
    for (k, v) in pairs(64, 5) {
        if leaf.size() + k.len() + v.len() + 4 > 4096 {
            break;
        }
        if let Err(i) = leaf.search(&k) {
            leaf.insert_leaf(i, &k, &v);
        }
    }
    let mut bytes = Vec::new();
    leaf.encode(&mut bytes);
    let mut g = c.benchmark_group("node");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode_leaf_4k", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(4096);
            leaf.encode(&mut out);
            out
        })
    });
    g.bench_function("decode_leaf_4k", |b| {
        b.iter(|| Node::decode(&bytes).unwrap())
    });
    g.finish();
}

/// get, range of 10, insert and clone on a loaded tree.
fn tree_ops(c: &mut Criterion, group: &str, forest: &Forest, tree: &Tree, data: &[Pair]) {
    let mut g = c.benchmark_group(group);
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
    g.bench_function("clone_and_remove", |b| {
        b.iter(|| {
            forest.clone_tree("bench", "snapshot").unwrap();
            forest.remove_tree("snapshot").unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, bulk_insert, point_ops, disk_ops, node_codec);
criterion_main!(benches);
