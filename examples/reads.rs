//! Times random point reads of a tree larger than the processor's caches:
//! loads N random 24-byte keys with 150-byte values in one batch, commits,
//! then reads every key in a shuffled order through one view, several
//! rounds, and prints each round's time per read and the median. A quick,
//! repeatable target for the read path's memory behaviour.
//!
//! Run: `cargo run --release --example reads -- 1000000 [--rounds N]
//! [--disk DIR] [--cache MIB] [--node-size BYTES] [--files ROOT]
//! [--scans [--scan-len L]] [--writer] [--threads T] [--view-per-read]`.
//! Without `--disk` the forest is in memory. With `--files`, the keys are
//! the paths under ROOT (at most N, in sorted walk order) with 20-byte
//! values, as in the comparison's file catalogue. With `--scans`, it then
//! times scans of ten entries (L with `--scan-len`) from half the keys.
//! With `--writer`, a second thread overwrites random loaded pairs in
//! batches of 1,000, each committed, while each round reads (the
//! comparison's "beside a writer" row, with one reader); the round then
//! also prints the batches, the clean cache's misses, the checkpoints,
//! the processor time the whole process took while the readers ran and
//! the time the writing thread took in all (it may finish a batch after
//! the readers end) and its longest commit, and the time the store's own
//! threads (workers and checkpoint) took while the readers ran, from
//! `/proc`.
//! With `--threads T`, T threads share each round's reads (each its part
//! of the order, on one view), and the time is per read of the whole
//! round. With `--view-per-read`, every read takes a view of its own (a
//! read transaction per request) and the round also prints how long
//! taking the views took: median, 99th and 99.9th percentiles, longest
//! and sum.

use larix::{Forest, Options, Tree};
use std::sync::atomic::{AtomicBool, Ordering};

// The benchmarks' data; `env` there sizes the benchmarks, not this example.
#[allow(dead_code)]
#[path = "../benches/support/mod.rs"]
mod support;
use std::time::Instant;
use support::cpu::cpu_ms;
use support::{pairs, Args};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::from_env();
    let flag = |name: &str| args.flag(name);
    let n = args.count(1_000_000);
    let rounds: usize = flag("--rounds").map_or(Ok(5), |r| r.parse())?;
    let cache_mib: usize = flag("--cache").map_or(Ok(1024), |c| c.parse())?;
    let node_size: usize = flag("--node-size").map_or(Ok(4096), |s| s.parse())?;
    let options = Options::default()
        .filters(vec![])
        .node_size(node_size)
        .cache_bytes(cache_mib << 20);
    let forest = match flag("--disk") {
        Some(dir) => {
            let _ = std::fs::remove_dir_all(&dir);
            Forest::open(&dir, options)?
        }
        None => Forest::in_memory(options)?,
    };
    let data: Vec<(Vec<u8>, Vec<u8>)> = match flag("--files") {
        Some(root) => {
            let mut out = Vec::new();
            walk(std::path::Path::new(&root), n, &mut out);
            out
        }
        None => pairs(n, 1)
            .into_iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect(),
    };
    let n = data.len();
    let tree = forest.create_tree("reads")?;
    tree.insert_batch(data.iter().map(|(k, v)| (k, v)))?;
    forest.commit()?;
    let shape = tree.shape()?;
    println!("{n} pairs in {} levels", shape.levels.len());
    for (i, l) in shape.levels.iter().enumerate() {
        println!(
            "  level {i}: {} nodes, {} entries, {:.0} bytes per entry",
            l.nodes,
            l.entries,
            l.bytes as f64 / l.entries.max(1) as f64
        );
    }
    // The reading order: a fixed shuffle (xorshift), not the load order.
    let mut order: Vec<usize> = (0..n).collect();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let writer = args.has("--writer");
    let threads: usize = flag("--threads").map_or(Ok(1), |t| t.parse())?;
    if threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    let per_read = args.has("--view-per-read");
    let mut times = Vec::with_capacity(rounds);
    for round in 0..rounds {
        // With a view per read, no view for the round: it would pin the
        // round's first state, and the writer copy all it changes.
        let view = (!per_read).then(|| tree.view()).transpose()?;
        let before = forest.stats();
        let done = AtomicBool::new(false);
        let (ns, found, busy, background, written, mut taking) = std::thread::scope(|s| {
            let overwriter = writer.then(|| s.spawn(|| overwrite(&forest, &tree, &data, &done)));
            let start = Instant::now();
            let cpu = cpu_ms("self");
            let background = background_ms();
            let part = n.div_ceil(threads);
            let readers: Vec<_> = order
                .chunks(part)
                .map(|part| {
                    let (view, data, tree) = (&view, &data, &tree);
                    s.spawn(move || {
                        let mut found = 0usize;
                        let mut taking = Vec::new();
                        for &i in part {
                            let (k, v) = &data[i];
                            let own = if per_read {
                                let t = Instant::now();
                                let own = tree.view()?;
                                taking.push(t.elapsed().as_secs_f64() * 1e6);
                                Some(own)
                            } else {
                                None
                            };
                            let view = own.as_ref().or(view.as_ref()).expect("a view");
                            let same = view.get_with(k, |value| value == v.as_slice())?;
                            found += usize::from(same == Some(true));
                        }
                        Ok::<_, larix::Error>((found, taking))
                    })
                })
                .collect();
            let (mut found, mut taking) = (0usize, Vec::new());
            for r in readers {
                let (f, t) = r.join().map_err(|_| "a reader panicked")??;
                found += f;
                taking.extend(t);
            }
            let ns = start.elapsed().as_secs_f64() * 1e9 / n as f64;
            let busy = cpu_ms("self") - cpu;
            let background = background_ms() - background;
            done.store(true, Ordering::Relaxed);
            let written = match overwriter {
                Some(h) => h.join().map_err(|_| "the writer panicked")??,
                None => (0, 0.0, 0.0),
            };
            Ok::<_, Box<dyn std::error::Error>>((ns, found, busy, background, written, taking))
        })?;
        let (batches, writer_ms, longest_ms) = written;
        if found != n {
            return Err(format!("round {round}: {found} of {n} keys found").into());
        }
        // The last view on the nodes the writer replaced since it was
        // taken: dropping it frees them.
        let t = Instant::now();
        drop(view);
        let drop_ms = t.elapsed().as_secs_f64() * 1e3;
        if writer {
            let after = forest.stats();
            let misses = after.cache_misses - before.cache_misses;
            let checkpoints = after.checkpoints - before.checkpoints;
            println!(
                "round {round}: {ns:.0} ns per read, {batches} batches beside, \
                 {misses} cache misses, {checkpoints} checkpoints, \
                 {busy:.0} ms of processor time while reading, \
                 {writer_ms:.0} ms in the writing thread \
                 (longest commit {longest_ms:.1} ms), \
                 {background:.0} ms in the store's own threads, \
                 {drop_ms:.1} ms to drop the view"
            );
        } else {
            println!("round {round}: {ns:.0} ns per read");
        }
        if per_read {
            taking.sort_by(f64::total_cmp);
            let at = |q: f64| taking[((taking.len() as f64 * q) as usize).min(taking.len() - 1)];
            println!(
                "  taking the views: median {:.2} µs, p99 {:.2} µs, p99.9 {:.0} µs, \
                 longest {:.1} ms, {:.0} ms in all",
                at(0.5),
                at(0.99),
                at(0.999),
                taking[taking.len() - 1] / 1e3,
                taking.iter().sum::<f64>() / 1e3
            );
        }
        times.push(ns);
    }
    times.sort_by(f64::total_cmp);
    println!("median of {rounds}: {:.0} ns per read", times[rounds / 2]);
    if args.has("--scans") {
        // `len` entries (ten unless `--scan-len` says) from each of n/2
        // keys, in the reading order.
        let len: usize = flag("--scan-len").map_or(Ok(10), |l| l.parse())?;
        let view = tree.view()?;
        let start = Instant::now();
        let mut seen = 0;
        for &i in order.iter().take(n / 2) {
            let mut left = len;
            seen += view.scan(data[i].0.as_slice().., |_, _| {
                left -= 1;
                if left == 0 {
                    std::ops::ControlFlow::Break(())
                } else {
                    std::ops::ControlFlow::Continue(())
                }
            })?;
        }
        let ns = start.elapsed().as_secs_f64() * 1e9 / (n / 2) as f64;
        println!("{} scans of {len} ({seen} entries): {ns:.0} ns each", n / 2);
    }
    Ok(())
}

/// Overwrites random pairs of `data` with their own values, in committed
/// batches of 1,000, until `done`; returns the batches committed, the
/// processor time the writing thread took and its longest commit, in
/// milliseconds.
fn overwrite(
    forest: &Forest,
    tree: &Tree,
    data: &[(Vec<u8>, Vec<u8>)],
    done: &AtomicBool,
) -> larix::Result<(usize, f64, f64)> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut batches = 0;
    let mut longest = 0f64;
    let cpu = cpu_ms("thread-self");
    while !done.load(Ordering::Relaxed) {
        let batch = (0..1_000).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (k, v) = &data[(x % data.len() as u64) as usize];
            (k, v)
        });
        tree.insert_batch(batch)?;
        let start = Instant::now();
        forest.commit()?;
        longest = longest.max(start.elapsed().as_secs_f64() * 1e3);
        batches += 1;
    }
    Ok((batches, cpu_ms("thread-self") - cpu, longest))
}

/// The processor time, in milliseconds, the store's own threads (its
/// workers and its checkpoint thread, named `larix-…`) have taken so far.
fn background_ms() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .filter_map(|t| t.ok())
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with("larix-"))
        })
        .map(|t| cpu_ms(&format!("self/task/{}", t.file_name().to_string_lossy())))
        .sum()
}

/// Appends the paths under `dir` (not following links), each directory's
/// entries in name order after it, with 20 bytes of value each, until
/// `out` holds `max`.
fn walk(dir: &std::path::Path, max: usize, out: &mut Vec<(Vec<u8>, Vec<u8>)>) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if out.len() >= max {
            return;
        }
        let path = e.path();
        let value = (out.len() as u64).to_le_bytes().repeat(3)[..20].to_vec();
        out.push((path.as_os_str().as_bytes().to_vec(), value));
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&path, max, out);
        }
    }
}
