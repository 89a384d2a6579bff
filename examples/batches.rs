//! Durable commits of batches of random keys on a store on disk, after a
//! load of N entries that is checkpointed first: time per batch commit,
//! and node copies the commits cost (nodes written per batch). Both the
//! load and the batches go through `Tree::insert_batch`, as in
//! `benches/compare`.
//!
//! Run: `cargo run --release --example batches -- DIR [N] [BATCHES] [LEN]`
//! (default 1,000,000 entries, 100 batches of 1,000 keys).

use larix::{FilterSpec, Forest, Options};
use std::time::Instant;

fn key(i: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
    k
}

/// The timed part, a function of its own so that a profiler can be told
/// to count it alone (`valgrind --tool=callgrind
/// --toggle-collect='*commit_batches*'`). Returns the time spent in
/// `commit`.
#[inline(never)]
fn commit_batches(
    forest: &Forest,
    t: &larix::Tree,
    n: u64,
    batches: u64,
    len: u64,
    value: &[u8],
) -> Result<std::time::Duration, larix::Error> {
    let mut in_commit = std::time::Duration::ZERO;
    for b in 0..batches {
        let batch: Vec<[u8; 24]> = (0..len).map(|j| key(n + b * len + j)).collect();
        t.insert_batch(batch.iter().map(|k| (&k[..], value)))?;
        let c = Instant::now();
        forest.commit()?;
        in_commit += c.elapsed();
    }
    Ok(in_commit)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args
        .first()
        .ok_or("usage: batches DIR [N] [BATCHES] [LEN]")?;
    let arg = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (n, batches, len) = (arg(1, 1_000_000), arg(2, 100), arg(3, 1_000));
    let options = Options::default()
        .cache_bytes(1 << 30)
        .filters(vec![FilterSpec::zstd(1), FilterSpec::checksum()]);
    let forest = Forest::open(dir, options)?;
    let t = forest.create_tree("t")?;
    let value = [7u8; 150];
    let load: Vec<([u8; 24], &[u8])> = (0..n).map(|i| (key(i), &value[..])).collect();
    t.insert_batch(load.iter().map(|(k, v)| (&k[..], *v)))?;
    forest.checkpoint()?;
    let start = Instant::now();
    let in_commit = commit_batches(&forest, &t, n, batches, len, &value)?;
    println!("in commit: {:.1} ms", in_commit.as_secs_f64() * 1e3);
    let elapsed = start.elapsed();
    println!(
        "{batches} commits of {len} keys: {:.1} ms, {:.2} ms per commit",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e3 / batches as f64
    );
    let stats = forest.stats();
    println!(
        "nodes {}, retired {}, node reads {}, blobs written {}, checkpoints {}, cache hits {} misses {}",
        stats.nodes,
        stats.retired_nodes,
        stats.node_reads(),
        stats.blobs_written,
        stats.checkpoints,
        stats.cache_hits,
        stats.cache_misses
    );
    Ok(())
}
