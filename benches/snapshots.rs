//! Read snapshots beside the writer: random point reads on a
//! [`larix::View`] from one thread, from two, and from two while a third
//! thread commits batches of overwrites. The aims (issue 15): two readers
//! at 1.8× one reader's throughput, and the writer costing them at most
//! 20%.
//!
//! The forest is on disk (a temporary directory, durable commits, no
//! filters, a 1 GiB cache that holds every node), loaded with
//! `LARIX_BENCH_N` (default 200,000) random 24-byte keys and 150-byte
//! values and committed. Each sample takes a fresh view of the tree and
//! runs every reader in a thread of its own, each reading [`READS`] loaded
//! keys of its own and checking their values; the throughput counts the
//! reads of all readers, so the ratios of the `elem/s` figures are the
//! ratios of the aims.
//!
//! - `snapshot/get_1_thread`, `snapshot/get_2_threads`: the readers alone;
//! - `snapshot/get_2_threads_writer`: the same two readers while a writer
//!   overwrites loaded pairs with their own values in batches of
//!   [`BATCH`], each batch committed, from the start of each measurement
//!   until its readers end; only the readers are timed, and the batches
//!   the writer committed are printed;
//! - `snapshot/get_2_threads_paced_writer`: the same with the writer held
//!   to [`PACED`] commits a second, as the comparison's paced row holds
//!   every engine's writer;
//! - `snapshot/view_per_get` and `snapshot/tree_get`: one thread, each
//!   read in a view of its own (a read transaction of one get, as the
//!   comparison's YCSB mix reads), against [`Tree::get`], which takes no
//!   view;
//! - `snapshot/view_scan_10`: one thread, scans of ten entries from
//!   random keys through one view (the comparison's range reads).
//!
//! Run: `cargo bench --bench snapshots`.
// `criterion_group!` generates public functions without documentation.
#![allow(missing_docs)]

mod support;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use larix::{Forest, Options, Tree, View};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::{env, pairs, Pair};

/// Point reads per reader thread per sample iteration.
const READS: usize = 20_000;
/// Overwrites per commit of the writer.
const BATCH: usize = 1_000;
/// Commits a second of the paced writer (`get_2_threads_paced_writer`),
/// as in the comparison's paced row.
const PACED: u32 = 20;

/// A forest in `dir` holding `data` in tree "bench", committed.
fn loaded(dir: &Path, data: &[Pair]) -> (Forest, Tree) {
    let options = Options::default().filters(vec![]).cache_bytes(1 << 30);
    let forest = Forest::open(dir, options).unwrap();
    let tree = forest.create_tree("bench").unwrap();
    for (k, v) in data {
        tree.insert(k, v).unwrap();
    }
    forest.commit().unwrap();
    (forest, tree)
}

/// Reader `t`'s [`READS`] pairs of `data`, read on `view` and checked.
fn read_part(view: &View, data: &[Pair], t: usize) {
    for (k, v) in data.iter().cycle().skip(t * READS).take(READS) {
        assert_eq!(view.get(k).unwrap().as_deref(), Some(&v[..]));
    }
}

/// The wall time of `threads` readers on one fresh view of `tree`.
fn read_threads(tree: &Tree, data: &[Pair], threads: usize) -> Duration {
    let view = tree.view().unwrap();
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let view = &view;
            s.spawn(move || read_part(view, data, t));
        }
    });
    start.elapsed()
}

/// Overwrites `data` with its own values, [`BATCH`] pairs per commit,
/// until `done`, starting batch k no earlier than k × `pace` after the
/// first when paced; returns the batches committed.
fn write_until(
    forest: &Forest,
    tree: &Tree,
    data: &[Pair],
    done: &AtomicBool,
    pace: Option<Duration>,
) -> u32 {
    let start = Instant::now();
    let mut batches = 0;
    for batch in data.chunks(BATCH).cycle() {
        if let Some(pace) = pace {
            let due = start + pace * batches;
            while Instant::now() < due && !done.load(Ordering::Relaxed) {
                std::thread::sleep((due - Instant::now()).min(Duration::from_millis(2)));
            }
        }
        if done.load(Ordering::Relaxed) {
            break;
        }
        for (k, v) in batch {
            tree.insert(k, v).unwrap();
        }
        forest.commit().unwrap();
        batches += 1;
    }
    batches
}

/// `iters` rounds of two readers while the writer runs (as fast as it
/// can, or at `pace`): the readers' total time, and the batches the
/// writer committed.
fn beside_writer(
    forest: &Forest,
    tree: &Tree,
    data: &[Pair],
    iters: u64,
    pace: Option<Duration>,
) -> (Duration, u32) {
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let writer = s.spawn(|| write_until(forest, tree, data, &done, pace));
        let read = (0..iters).map(|_| read_threads(tree, data, 2)).sum();
        done.store(true, Ordering::Relaxed);
        (read, writer.join().unwrap())
    })
}

fn snapshot_reads(c: &mut Criterion) {
    let data = pairs(env("LARIX_BENCH_N", 200_000), 1);
    let dir = tempfile::tempdir().unwrap();
    let (forest, tree) = loaded(dir.path(), &data);
    let mut g = c.benchmark_group("snapshot");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for (name, threads) in [("get_1_thread", 1), ("get_2_threads", 2)] {
        g.throughput(Throughput::Elements((threads * READS) as u64));
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| read_threads(&tree, &data, threads))
                    .sum()
            })
        });
    }
    g.throughput(Throughput::Elements(READS as u64));
    g.bench_function("view_per_get", |b| {
        b.iter(|| {
            for (k, v) in data.iter().take(READS) {
                let view = tree.view().unwrap();
                assert_eq!(view.get(k).unwrap().as_deref(), Some(&v[..]));
            }
        })
    });
    g.bench_function("tree_get", |b| {
        b.iter(|| {
            for (k, v) in data.iter().take(READS) {
                assert_eq!(tree.get(k).unwrap().as_deref(), Some(&v[..]));
            }
        })
    });
    // Scans of ten entries from random keys, through one view, as the
    // comparison's range reads.
    let view = tree.view().unwrap();
    g.bench_function("view_scan_10", |b| {
        b.iter(|| {
            for (k, _) in data.iter().take(READS) {
                let mut left = 10;
                let seen = view
                    .scan(k.as_slice().., |_, _| {
                        left -= 1;
                        match left {
                            0 => ControlFlow::Break(()),
                            _ => ControlFlow::Continue(()),
                        }
                    })
                    .unwrap();
                assert!(seen >= 1);
            }
        })
    });
    drop(view);
    g.throughput(Throughput::Elements((2 * READS) as u64));
    let mut writers = Vec::new();
    for (name, pace) in [
        ("get_2_threads_writer", None),
        (
            "get_2_threads_paced_writer",
            Some(Duration::from_secs(1) / PACED),
        ),
    ] {
        let (mut read, mut batches) = (Duration::ZERO, 0);
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let (time, committed) = beside_writer(&forest, &tree, &data, iters, pace);
                read += time;
                batches += committed;
                time
            })
        });
        writers.push((name, read, batches));
    }
    g.finish();
    for (name, read, batches) in writers {
        println!(
            "{name}: the writer committed {batches} batches of {BATCH} during {:.2} s of reads",
            read.as_secs_f64()
        );
    }
}

criterion_group!(benches, snapshot_reads);
criterion_main!(benches);
