//! Loads N random 24-byte keys with 150-byte values, commits, reads them
//! back, and reports rates, peak memory and the store's counters: a quick
//! measuring and profiling target.
//!
//! Run: `cargo run --release --example load -- 1000000 [--disk DIR]
//! [--filters none|zstd|zstd-encrypt] [--cache MIB] [--workers N]
//! [--node-size BYTES] [--no-compaction] [--batch] [--remove-batch]`
//! (`--batch`: the load is one `insert_batch`). After the load it also times
//! 100 committed batches of 1,000 random inserts, then removes half the
//! keys (one `remove_batch` with `--remove-batch`), compacts, and reports
//! the space on disk against the live bytes.
//! Without `--disk` the forest is in memory.

use larix::{Forest, Options};

// The benchmarks' data; `env` there sizes the benchmarks, not this example.
#[allow(dead_code)]
#[path = "../benches/support/mod.rs"]
mod support;
use std::time::Instant;
use support::{pairs, Args};

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::from_env();
    let flag = |name: &str| args.flag(name);
    let n = args.count(1_000_000);
    let filters = support::filters(flag("--filters").as_deref().unwrap_or("zstd"))?;
    let cache_mib: usize = flag("--cache").map_or(Ok(64), |c| c.parse())?;
    let mut options = Options::default()
        .filters(filters)
        .cache_bytes(cache_mib << 20);
    if args.has("--no-compaction") {
        options = options.compaction(false);
    }
    if let Some(n) = flag("--node-size") {
        options = options.node_size(n.parse()?);
    }
    if let Some(w) = flag("--workers") {
        options = options.workers(w.parse()?);
    }

    let data = pairs(n, 1);
    let rss_data = peak_rss_mib().unwrap_or(0.0);
    let forest = match flag("--disk") {
        Some(dir) => {
            let _ = std::fs::remove_dir_all(&dir);
            Forest::open(&dir, options)?
        }
        None => Forest::in_memory(options)?,
    };
    let tree = forest.create_tree("load")?;
    let start = Instant::now();
    if args.has("--batch") {
        tree.insert_batch(data.iter().map(|(k, v)| (k, v)))?;
    } else {
        for (k, v) in &data {
            tree.insert(k, v)?;
        }
    }
    let load = start.elapsed();
    let start = Instant::now();
    forest.commit()?;
    let commit = start.elapsed();
    let start = Instant::now();
    for (k, _) in &data {
        tree.get(k)?;
    }
    let get = start.elapsed();
    let start = Instant::now();
    for (k, _) in data.iter().take(n / 2) {
        for item in tree.range(k.as_slice()..)?.take(10) {
            item?;
        }
    }
    let range = start.elapsed();
    let start = Instant::now();
    tree.insert(b"one more key", b"one more value")?;
    forest.commit()?;
    let small_commit = start.elapsed();
    let batches = pairs(100 * 1000, n as u64 + 7);
    let start = Instant::now();
    for batch in batches.chunks(1000) {
        for (k, v) in batch {
            tree.insert(k, v)?;
        }
        forest.commit()?;
    }
    let batch_time = start.elapsed();
    let start = Instant::now();
    if args.has("--remove-batch") {
        tree.remove_batch(data.iter().step_by(2).map(|(k, _)| k))?;
    } else {
        for (k, _) in data.iter().step_by(2) {
            tree.remove(k)?;
        }
    }
    forest.commit()?;
    let removal = start.elapsed();
    let before = forest.stats();
    let start = Instant::now();
    forest.compact()?;
    let compaction = start.elapsed();
    let after = forest.stats();
    println!(
        "removal of half the keys + commit: {:.2} s; on disk {:.1} MiB, live {:.1} MiB ({:.2}x)",
        removal.as_secs_f64(),
        before.disk_bytes as f64 / (1 << 20) as f64,
        before.live_bytes as f64 / (1 << 20) as f64,
        before.space_amplification()
    );
    println!(
        "compact: {:.2} s; on disk {:.1} MiB, live {:.1} MiB ({:.2}x)",
        compaction.as_secs_f64(),
        after.disk_bytes as f64 / (1 << 20) as f64,
        after.live_bytes as f64 / (1 << 20) as f64,
        after.space_amplification()
    );
    let s = forest.stats();
    println!(
        "100 batches of 1,000 inserts, each committed: {:.1} ms per batch",
        batch_time.as_secs_f64() * 1e3 / 100.0
    );
    println!(
        "{n} inserts: {:.2} s ({:.2} µs each); commit {:.3} s; load+commit {:.2} s",
        load.as_secs_f64(),
        load.as_secs_f64() * 1e6 / n as f64,
        commit.as_secs_f64(),
        (load + commit).as_secs_f64()
    );
    println!(
        "{n} gets: {:.2} µs each; {} range reads of 10: {:.2} µs each; commit of one insert: {:.2} ms",
        get.as_secs_f64() * 1e6 / n as f64,
        n / 2,
        range.as_secs_f64() * 1e6 / (n / 2).max(1) as f64,
        small_commit.as_secs_f64() * 1e3
    );
    println!(
        "peak RSS {:.0} MiB (input data {:.0} MiB, cache {cache_mib} MiB)",
        peak_rss_mib().unwrap_or(0.0),
        rss_data
    );
    println!(
        "stats: {} nodes, {} commits, cache hits {} misses {}, dirty hits {}, in-flight hits {} waits {}, {} blobs, {:.1} MiB before / {:.1} MiB after filtering, sync {:.2} s, log {:.1} MiB in {} records",
        s.nodes,
        s.commits,
        s.cache_hits,
        s.cache_misses,
        s.dirty_hits,
        s.inflight_hits,
        s.inflight_waits,
        s.blobs_written,
        s.bytes_unfiltered as f64 / (1 << 20) as f64,
        s.bytes_filtered as f64 / (1 << 20) as f64,
        s.sync_time.as_secs_f64(),
        s.log_bytes as f64 / (1 << 20) as f64,
        s.log_records
    );
    Ok(())
}
