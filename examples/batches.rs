//! Durable commits of batches of random keys on a store on disk, after a
//! load of N entries that is checkpointed first: time per batch commit,
//! and node copies the commits cost (nodes written per batch), then the
//! time of the next read, which applies what the write buffer held back
//! (`--no-buffer` turns the buffer off). Both the
//! load and the batches go through `Tree::insert_batch`, as in
//! `benches/compare`.
//!
//! Run: `cargo run --release --example batches -- DIR [N] [BATCHES] [LEN]
//! [--random] [--overwrite] [--no-buffer]` (default 1,000,000 entries, 100 batches of 1,000 keys).
//! With `--overwrite` the batches give loaded keys, in a scattered order,
//! new values of the same length (the comparison's writer beside the
//! readers overwrites loaded pairs); otherwise they insert new keys.
//! Keys are spread by a multiplicative hash in their first eight bytes and
//! values are all alike, unless `--random` makes every byte of both random
//! (as in `benches/compare`).

use larix::{FilterSpec, Forest, Options};
use std::time::Instant;

/// A pair of the workload: a 24-byte key and a 150-byte value.
type Pair = ([u8; 24], [u8; 150]);

/// Pair `i`: its key spread by a multiplicative hash (the rest zeros) and a
/// constant value, or, with `random`, every byte from a generator seeded by
/// `i`.
fn pair(i: u64, random: bool) -> Pair {
    let mut k = [0u8; 24];
    let mut v = [7u8; 150];
    if random {
        let mut x = i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut next = move || {
            // splitmix64
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        for chunk in k.chunks_mut(8).chain(v.chunks_mut(8)) {
            let r = next().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    } else {
        k[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
    }
    (k, v)
}

/// The timed part, a function of its own so that a profiler can be told
/// to count it alone (`valgrind --tool=callgrind
/// --toggle-collect='*commit_batches*'`). Returns the time spent in
/// `commit`.
#[inline(never)]
fn commit_batches(
    forest: &Forest,
    t: &larix::Tree,
    pairs: &[Pair],
    len: usize,
) -> Result<std::time::Duration, larix::Error> {
    let mut in_commit = std::time::Duration::ZERO;
    for batch in pairs.chunks(len) {
        t.insert_batch(batch.iter().map(|(k, v)| (&k[..], &v[..])))?;
        let c = Instant::now();
        forest.commit()?;
        in_commit += c.elapsed();
    }
    Ok(in_commit)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let random = all.iter().any(|a| a == "--random");
    let overwrite = all.iter().any(|a| a == "--overwrite");
    let args: Vec<&String> = all.iter().filter(|a| !a.starts_with("--")).collect();
    let dir = args
        .first()
        .ok_or("usage: batches DIR [N] [BATCHES] [LEN] [--random] [--overwrite] [--no-buffer]")?;
    let arg = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (n, batches, len) = (arg(1, 1_000_000), arg(2, 100), arg(3, 1_000));
    let mut options = Options::default();
    if all.iter().any(|a| a == "--no-buffer") {
        options = options.write_buffer_bytes(0);
    }
    let options = options
        .cache_bytes(1 << 30)
        .filters(vec![FilterSpec::zstd(1), FilterSpec::checksum()]);
    let forest = Forest::open(dir.as_str(), options)?;
    let t = forest.create_tree("t")?;
    let load: Vec<Pair> = (0..n).map(|i| pair(i, random)).collect();
    t.insert_batch(load.iter().map(|(k, v)| (&k[..], &v[..])))?;
    forest.checkpoint()?;
    let more: Vec<Pair> = if overwrite {
        // Loaded keys in a scattered order, each with a value of the same
        // length that differs in its first byte.
        (0..batches * len)
            .map(|i| {
                let (k, mut v) = pair(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % n.max(1), random);
                v[0] ^= 1;
                (k, v)
            })
            .collect()
    } else {
        (n..n + batches * len).map(|i| pair(i, random)).collect()
    };
    let start = Instant::now();
    let in_commit = commit_batches(&forest, &t, &more, len.max(1) as usize)?;
    println!("in commit: {:.1} ms", in_commit.as_secs_f64() * 1e3);
    let elapsed = start.elapsed();
    println!(
        "{batches} commits of {len} keys: {:.1} ms, {:.2} ms per commit",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e3 / batches as f64
    );
    // What the write buffer held back is applied by the next read.
    let held = forest.stats().write_buffer_bytes;
    println!(
        "held in the write buffer: {:.1} MiB",
        held as f64 / f64::from(1 << 20)
    );
    let start = Instant::now();
    t.first()?;
    println!(
        "the next read (applying the write buffer): {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
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
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    println!(
        "decoded nodes in memory: {:.1} MiB clean, {:.1} MiB dirty, {:.1} MiB in flight",
        mib(stats.cached_bytes),
        mib(stats.dirty_bytes),
        mib(stats.inflight_bytes)
    );
    Ok(())
}
