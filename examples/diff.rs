//! The cost of a diff against the cost of a scan: loads N random 24-byte
//! keys with 150-byte values, clones the tree, changes C random keys of the
//! clone (a third updated, a third removed, a third added), then times
//! `Tree::diff` (and counts its node reads) against one full scan.
//!
//! Run: `cargo run --release --example diff -- [N] [C]` (default 1,000,000
//! entries and 100 changes).

use larix::{Forest, Options};
use std::time::Instant;

// The benchmarks' data; `env` there sizes the benchmarks, not this example.
#[allow(dead_code)]
#[path = "../benches/support/mod.rs"]
mod support;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let c: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let forest = Forest::in_memory(Options::default().cache_bytes(1 << 30))?;
    let base = forest.create_tree("base")?;
    let pairs = support::pairs(n, 7);
    for (k, v) in &pairs {
        base.insert(k, v)?;
    }
    forest.commit()?;
    let changed = forest.clone_tree("base", "changed")?;
    let extra = support::pairs(c, 8);
    for i in 0..c {
        let (k, v) = &pairs[(i * 7919) % n];
        match i % 3 {
            0 => changed.insert(k, &v[..v.len() / 2])?,
            1 => {
                changed.remove(k)?;
            }
            _ => changed.insert(&extra[i].0, &extra[i].1)?,
        }
    }
    let depth = changed.shape()?.levels.len();

    let (reads, t) = (forest.stats().node_reads(), Instant::now());
    let found = base.diff(&changed)?.collect::<larix::Result<Vec<_>>>()?;
    let diff_time = t.elapsed();
    let diff_reads = forest.stats().node_reads() - reads;

    let (reads, t) = (forest.stats().node_reads(), Instant::now());
    let scanned = changed.range(..)?.count();
    let scan_time = t.elapsed();
    let scan_reads = forest.stats().node_reads() - reads;

    println!(
        "{n} entries, depth {depth}, {c} changes: diff found {} changes in {:.3} ms with {diff_reads} node reads; \
         a full scan of {scanned} entries took {:.1} ms and {scan_reads} node reads ({:.3}% of its time)",
        found.len(),
        diff_time.as_secs_f64() * 1e3,
        scan_time.as_secs_f64() * 1e3,
        100.0 * diff_time.as_secs_f64() / scan_time.as_secs_f64()
    );
    Ok(())
}
