//! Times large values: writes N random values of a given size, each under
//! a key of its own, commits, reopens the store (so nothing is in memory),
//! then reads every value whole with `get` and streams every value
//! through `get_reader`, several rounds, and prints each round's rate and
//! the median. A quick target for the large-value read path.
//!
//! Run: `cargo run --release --example values -- 200 --disk DIR
//! [--size BYTES] [--filters none|zstd|zstd-encrypt] [--workers N]
//! [--rounds R]` (default 2,000,000-byte values, as in the comparison's
//! large-values workload, zstd and checksum, 3 rounds).

use larix::{Forest, Options};
use std::io::Read;
use std::time::Instant;

// The benchmarks' command line.
#[allow(dead_code)]
#[path = "../benches/support/mod.rs"]
mod support;
use support::Args;

// The tests' incompressible bytes.
#[path = "../tests/support/noise.rs"]
mod noise;
use noise::noise;

/// Megabytes a second of `bytes` read in `secs`.
fn rate(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::from_env();
    let flag = |name: &str| args.flag(name);
    let n = args.count(200);
    let size: usize = flag("--size").map_or(Ok(2_000_000), |s| s.parse())?;
    let rounds: usize = flag("--rounds").map_or(Ok(3), |r| r.parse())?;
    let dir = flag("--disk").ok_or("--disk DIR is required")?;
    let filters = support::filters(flag("--filters").as_deref().unwrap_or("zstd"))?;
    let mut options = Options::default().filters(filters);
    if let Some(w) = flag("--workers") {
        options = options.workers(w.parse()?);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let keys: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("value-{i:06}").into_bytes())
        .collect();
    {
        let forest = Forest::open(&dir, options.clone())?;
        let tree = forest.create_tree("values")?;
        let start = Instant::now();
        for (i, key) in keys.iter().enumerate() {
            tree.insert(key, &noise(size, i as u64 + 1))?;
        }
        forest.commit()?;
        let secs = start.elapsed().as_secs_f64();
        println!("write: {:.0} MB/s", rate(n * size, secs));
    }
    let forest = Forest::open(&dir, options)?;
    let tree = forest.tree("values")?.ok_or("no tree")?;
    let (mut whole, mut streamed) = (Vec::new(), Vec::new());
    let mut buf = vec![0u8; 64 << 10];
    for round in 0..rounds {
        let start = Instant::now();
        for key in &keys {
            let value = tree.get(key)?.ok_or("value missing")?;
            assert_eq!(value.len(), size);
        }
        whole.push(rate(n * size, start.elapsed().as_secs_f64()));
        let start = Instant::now();
        for key in &keys {
            let mut reader = tree.get_reader(key)?.ok_or("value missing")?;
            let mut read = 0;
            loop {
                let got = reader.read(&mut buf)?;
                if got == 0 {
                    break;
                }
                read += got;
            }
            assert_eq!(read, size);
        }
        streamed.push(rate(n * size, start.elapsed().as_secs_f64()));
        println!(
            "round {round}: get {:.0} MB/s, get_reader {:.0} MB/s",
            whole[round], streamed[round]
        );
    }
    println!(
        "median of {rounds}: get {:.0} MB/s, get_reader {:.0} MB/s",
        median(whole),
        median(streamed)
    );
    Ok(())
}
