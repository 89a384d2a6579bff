//! Durable one-key commits on a store on disk: time per commit and bytes
//! the process writes per commit (`wchar` of `/proc/self/io`), after a
//! load of N entries that is checkpointed first. Run under `strace -f -c
//! -e trace=fsync,fdatasync` with two values of COMMITS to count syncs per
//! commit.
//!
//! Run: `cargo run --release --example commits -- DIR [N] [COMMITS]`
//! (default 100,000 entries and 1,000 commits).

use larix::{Forest, Options};
use std::time::Instant;

fn wchar() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("wchar: ").map(|v| v.trim().parse().ok()))
                .flatten()
        })
        .unwrap_or(0)
}

fn key(i: u64) -> [u8; 24] {
    let mut k = [0u8; 24];
    k[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
    k
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args.first().ok_or("usage: commits DIR [N] [COMMITS]")?;
    let n: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let commits: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let forest = Forest::open(dir, Options::default())?;
    let t = match forest.tree("t")? {
        Some(t) => t,
        None => forest.create_tree("t")?,
    };
    for i in 0..n {
        t.insert(&key(i), &[7u8; 150])?;
    }
    forest.checkpoint()?;
    let (start, written) = (Instant::now(), wchar());
    let before = forest.stats();
    for i in 0..commits {
        t.insert(&key(n + i), &[8u8; 150])?;
        forest.commit()?;
    }
    let elapsed = start.elapsed();
    let after = forest.stats();
    let per = |x: u64| x as f64 / commits.max(1) as f64;
    println!(
        "{commits} one-key durable commits on {n} entries: {:.1} us each, \
         {:.0} bytes written each (wchar), {:.2} log syncs each, {} checkpoints",
        elapsed.as_secs_f64() * 1e6 / commits.max(1) as f64,
        per(wchar() - written),
        per(after.log_syncs - before.log_syncs),
        after.checkpoints - before.checkpoints,
    );
    Ok(())
}
