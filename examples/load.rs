//! Loads N random 24-byte keys with 150-byte values into an in-memory
//! forest and reports the rate: a quick profiling target.
//!
//! Run: `cargo run --release --example load -- 1000000`.

use larix::{Forest, Options};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Instant;

fn main() -> Result<(), larix::Error> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mut rng = StdRng::seed_from_u64(1);
    let data: Vec<([u8; 24], [u8; 150])> = (0..n)
        .map(|_| {
            let (mut k, mut v) = ([0u8; 24], [0u8; 150]);
            rng.fill(&mut k[..]);
            rng.fill(&mut v[..]);
            (k, v)
        })
        .collect();
    let forest = Forest::in_memory(Options::default())?;
    let tree = forest.create_tree("load")?;
    let start = Instant::now();
    for (k, v) in &data {
        tree.insert(k, v)?;
    }
    let load = start.elapsed();
    let start = Instant::now();
    for (k, _) in &data {
        tree.get(k)?;
    }
    let get = start.elapsed();
    println!(
        "{n} inserts: {:.2} µs each; {n} gets: {:.2} µs each; {} nodes",
        load.as_secs_f64() * 1e6 / n as f64,
        get.as_secs_f64() * 1e6 / n as f64,
        forest.stats().nodes
    );
    Ok(())
}
