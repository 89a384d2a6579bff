//! Dropping a view that kept many nodes, beside a writer: loads N random
//! 24-byte keys with 150-byte values, checkpoints, takes a view, overwrites
//! every pair and checkpoints again (the view alone then keeps the old
//! nodes), and drops the view while a second thread commits one-pair
//! writes. Prints how long the drop took, the writer's longest commit in
//! the [`WINDOW`] after the drop began (the store's release thread frees
//! the view's nodes meanwhile) and in the [`WINDOW`] before it, and the
//! writer's median commit, for several rounds.
//!
//! Run: `cargo run --release --example drops -- 1000000 [--rounds N]
//! [--disk DIR]`. Without `--disk` the forest is in memory.

use larix::{Forest, Options};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The time after the drop (and before it) in which the writer's longest
/// commit is taken: longer than freeing a view's 50,000 leaves took on
/// the dropping thread when the drop freed them itself (40-120 ms).
const WINDOW: Duration = Duration::from_millis(250);

#[allow(dead_code)]
#[path = "../benches/support/mod.rs"]
mod support;
use support::{pairs, Args};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::from_env();
    let n = args.count(1_000_000);
    let rounds: usize = args.flag("--rounds").map_or(Ok(3), |r| r.parse())?;
    let options = Options::default().filters(vec![]).cache_bytes(1 << 30);
    let forest = match args.flag("--disk") {
        Some(dir) => {
            let _ = std::fs::remove_dir_all(&dir);
            Forest::open(&dir, options)?
        }
        None => Forest::in_memory(options)?,
    };
    let data = pairs(n, 1);
    let tree = forest.create_tree("drops")?;
    tree.insert_batch(data.iter().map(|(k, v)| (k, v)))?;
    forest.checkpoint()?;
    for round in 0..rounds {
        let view = tree.view()?;
        // Every pair rewritten with a value of another length, so that
        // every leaf is copied and the view alone keeps the old ones.
        let longer: Vec<u8> = vec![round as u8; 151 + round % 2];
        tree.insert_batch(data.iter().map(|(k, _)| (k, &longer)))?;
        forest.checkpoint()?;
        let retired = forest.stats().retired_nodes;
        let done = AtomicBool::new(false);
        let (drop_at, drop_time, commits) = std::thread::scope(|s| {
            let writer = s.spawn(|| commit_until(&forest, &tree, &done));
            // Let the writer settle into its pace first.
            std::thread::sleep(WINDOW + Duration::from_millis(100));
            let drop_at = Instant::now();
            drop(view);
            let drop_time = drop_at.elapsed();
            std::thread::sleep(WINDOW + Duration::from_millis(50));
            done.store(true, Ordering::Relaxed);
            let commits = writer.join().map_err(|_| "the writer panicked")??;
            Ok::<_, Box<dyn std::error::Error>>((drop_at, drop_time, commits))
        })?;
        // The longest commit that overlaps `from..from + WINDOW`.
        let longest = |from: Instant| {
            commits
                .iter()
                .filter(|(start, took)| *start < from + WINDOW && *start + *took > from)
                .map(|&(_, took)| took)
                .max()
                .unwrap_or_default()
        };
        let (longest_after, longest_before) = (longest(drop_at), longest(drop_at - WINDOW));
        let mut all: Vec<Duration> = commits.iter().map(|&(_, took)| took).collect();
        all.sort();
        println!(
            "round {round}: {retired} retired nodes, dropped in {:.3} ms; \
             the writer's longest commit in the {} ms after {:.3} ms (in \
             the {} ms before: {:.3} ms), median {:.3} ms ({} commits)",
            drop_time.as_secs_f64() * 1e3,
            WINDOW.as_millis(),
            longest_after.as_secs_f64() * 1e3,
            WINDOW.as_millis(),
            longest_before.as_secs_f64() * 1e3,
            all[all.len() / 2].as_secs_f64() * 1e3,
            all.len()
        );
    }
    Ok(())
}

/// Commits one-pair writes until `done`; returns each commit's start and
/// duration (the insert and the commit).
fn commit_until(
    forest: &Forest,
    tree: &larix::Tree,
    done: &AtomicBool,
) -> larix::Result<Vec<(Instant, Duration)>> {
    let mut out = Vec::new();
    let mut i = 0u64;
    while !done.load(Ordering::Relaxed) {
        let start = Instant::now();
        tree.insert(&i.to_be_bytes(), b"value")?;
        forest.commit()?;
        out.push((start, start.elapsed()));
        i += 1;
    }
    Ok(out)
}
