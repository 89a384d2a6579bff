//! Replay speed: `replay DIR write N` commits N random 24-byte keys with
//! 150-byte values in batches of 1,000 with checkpoints held off, then
//! exits without closing the store (as a crash would leave it, the log
//! synced); `replay DIR open` reopens it and reports how long the open took
//! for how many bytes of log.
//!
//! Run: `cargo run --release --example replay -- /tmp/r write 300000 &&
//! cargo run --release --example replay -- /tmp/r open`.

use larix::{Forest, Options};
use std::time::{Duration, Instant};

fn options() -> Options {
    Options::default()
        .checkpoint_log_bytes(1 << 40)
        .checkpoint_interval(Duration::from_secs(1 << 30))
        .cache_bytes(1 << 30)
}

fn log_bytes(dir: &str) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("log-"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: replay DIR write N | replay DIR open";
    let (dir, mode) = (args.first().ok_or(usage)?, args.get(1).ok_or(usage)?);
    match mode.as_str() {
        "write" => {
            let n: u64 = args.get(2).and_then(|a| a.parse().ok()).ok_or(usage)?;
            let forest = Forest::open(dir, options())?;
            let t = forest.create_tree("t")?;
            for i in 0..n {
                let k = i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes();
                let mut key = [0u8; 24];
                key[..8].copy_from_slice(&k);
                t.insert(&key, &[i as u8; 150])?;
                if i % 1000 == 999 {
                    forest.commit()?;
                }
            }
            forest.commit()?;
            let stats = forest.stats();
            println!(
                "wrote {n} entries: {} log records, {:.1} MB of log, {} checkpoints",
                stats.log_records,
                stats.log_bytes as f64 / 1e6,
                stats.checkpoints
            );
            // Exit without closing: the next open replays the log.
            std::process::exit(0);
        }
        "open" => {
            let bytes = log_bytes(dir);
            let start = Instant::now();
            let forest = Forest::open(dir, options())?;
            let took = start.elapsed();
            let n = forest.tree("t")?.ok_or("no tree")?.count_range(..)?;
            println!(
                "opened with {n} entries from {:.1} MB of log files in {:.0} ms: {:.0} MB/s",
                bytes as f64 / 1e6,
                took.as_secs_f64() * 1e3,
                bytes as f64 / 1e6 / took.as_secs_f64()
            );
            Ok(())
        }
        _ => Err(usage.into()),
    }
}
