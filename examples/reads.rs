//! Times random point reads of a tree larger than the processor's caches:
//! loads N random 24-byte keys with 150-byte values in one batch, commits,
//! then reads every key in a shuffled order through one view, several
//! rounds, and prints each round's time per read and the median. A quick,
//! repeatable target for the read path's memory behaviour.
//!
//! Run: `cargo run --release --example reads -- 1000000 [--rounds N]
//! [--disk DIR] [--cache MIB]`. Without `--disk` the forest is in memory.

use larix::{Forest, Options};

// The benchmarks' data; `env` there sizes the benchmarks, not this example.
#[allow(dead_code)]
#[path = "../benches/support/mod.rs"]
mod support;
use std::time::Instant;
use support::pairs;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let n: usize = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: usize = flag("--rounds").map_or(Ok(5), |r| r.parse())?;
    let cache_mib: usize = flag("--cache").map_or(Ok(1024), |c| c.parse())?;
    let options = Options::default()
        .filters(vec![])
        .cache_bytes(cache_mib << 20);
    let forest = match flag("--disk") {
        Some(dir) => {
            let _ = std::fs::remove_dir_all(&dir);
            Forest::open(&dir, options)?
        }
        None => Forest::in_memory(options)?,
    };
    let data = pairs(n, 1);
    let tree = forest.create_tree("reads")?;
    tree.insert_batch(data.iter().map(|(k, v)| (k, v)))?;
    forest.commit()?;
    let shape = tree.shape()?;
    println!("{n} pairs in {} levels", shape.levels.len());
    // The reading order: a fixed shuffle (xorshift), not the load order.
    let mut order: Vec<usize> = (0..n).collect();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let mut times = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let view = tree.view()?;
        let start = Instant::now();
        let mut found = 0usize;
        for &i in &order {
            let (k, v) = &data[i];
            found += usize::from(view.get_with(k, |value| value == v.as_slice())? == Some(true));
        }
        let ns = start.elapsed().as_secs_f64() * 1e9 / n as f64;
        if found != n {
            return Err(format!("round {round}: {found} of {n} keys found").into());
        }
        println!("round {round}: {ns:.0} ns per read");
        times.push(ns);
    }
    times.sort_by(f64::total_cmp);
    println!("median of {rounds}: {:.0} ns per read", times[rounds / 2]);
    Ok(())
}
