//! Space reclamation: compaction keeps the files close to the live data
//! and loses nothing, whenever it is interrupted.

use larix::{Forest, Options};
use larix_nodestore::testing::{CrashMode, FaultyBackend};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

fn key(i: u32) -> Vec<u8> {
    format!("{:08x}", i.wrapping_mul(2_654_435_761)).into_bytes()
}

fn options() -> Options {
    Options::default()
        .node_size(1024)
        .cache_bytes(256 << 10)
        .workers(2)
        .segment_bytes(256 << 10)
}

fn contents(forest: &Forest) -> BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>> {
    forest
        .tree_names()
        .into_iter()
        .map(|name| {
            let t = forest.tree(&name).unwrap().unwrap();
            let entries = t.range(..).unwrap().map(|e| e.unwrap()).collect();
            (name, entries)
        })
        .collect()
}

fn assert_clean(forest: &Forest) {
    let report = forest.check().unwrap();
    assert!(report.is_clean(), "{report}");
}

/// A forest in `dir` holding tree `t` with 20,000 entries, made durable by
/// `persist` (a commit or a checkpoint), then every second one removed and
/// committed.
fn half_removed(dir: &Path, options: Options, persist: fn(&Forest) -> larix::Result<()>) -> Forest {
    let forest = Forest::open(dir, options).unwrap();
    let t = forest.create_tree("t").unwrap();
    for i in 0..20_000 {
        t.insert(&key(i), &[7u8; 40]).unwrap();
    }
    persist(&forest).unwrap();
    for i in (0..20_000).step_by(2) {
        t.remove(&key(i)).unwrap();
    }
    forest.commit().unwrap();
    forest
}

/// Asserts that the segments hold at most 1.3 times the live bytes.
fn assert_near_live(after: &larix::Stats) {
    assert!(
        after.space_amplification() <= 1.3,
        "disk {} live {} ({:.2}x)",
        after.disk_bytes,
        after.live_bytes,
        after.space_amplification()
    );
}

/// Checks `forest`, closes it, and reopens `dir` with `options` to the same
/// contents, clean; returns the reopened forest.
fn reopens_equal(dir: &Path, forest: Forest, options: Options) -> Forest {
    let expected = contents(&forest);
    assert_clean(&forest);
    drop(forest);
    let forest = Forest::open(dir, options).unwrap();
    assert_eq!(contents(&forest), expected);
    assert_clean(&forest);
    forest
}

#[test]
fn compact_after_removing_half_keeps_disk_near_live() {
    let dir = tempfile::tempdir().unwrap();
    let forest = half_removed(dir.path(), options().compaction(false), Forest::commit);
    let before = forest.stats();
    assert!(before.space_amplification() > 1.5, "{before:?}");
    forest.compact().unwrap();
    let after = forest.stats();
    assert_near_live(&after);
    assert!(
        after.disk_bytes < before.disk_bytes / 2,
        "{before:?} {after:?}"
    );
    let forest = reopens_equal(dir.path(), forest, options());
    assert_eq!(
        forest.tree("t").unwrap().unwrap().count_range(..).unwrap(),
        10_000
    );
}

/// Bytes of every file in `dir`: segments, log files, superblock.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

/// Regression: with a cache large enough to hold every change since the
/// last checkpoint, `compact` chose its segments before those changes were
/// written, then wrote them in its checkpoint: the segments it left were
/// mostly dead (2.2x the live bytes where 1.0x was due).
#[test]
fn compact_with_changes_in_memory_leaves_no_dead_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let options = options().cache_bytes(64 << 20).compaction(false);
    let forest = half_removed(dir.path(), options.clone(), Forest::checkpoint);
    forest.compact().unwrap();
    let after = forest.stats();
    assert_near_live(&after);
    let files = dir_bytes(dir.path());
    assert!(
        files as f64 <= 1.3 * after.live_bytes as f64 + 64.0 * 1024.0,
        "files {files} live {}",
        after.live_bytes
    );
    reopens_equal(dir.path(), forest, options);
}

#[test]
fn the_commit_policy_bounds_space_amplification() {
    let dir = tempfile::tempdir().unwrap();
    let forest = Forest::open(dir.path(), options().segment_bytes(128 << 10)).unwrap();
    let t = forest.create_tree("t").unwrap();
    let mut rng = 12345u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for i in 0..10_000 {
        let v: Vec<u8> = (0..5).flat_map(|_| next().to_le_bytes()).collect();
        t.insert(&key(i), &v).unwrap();
    }
    // The load, checkpointed: what a commit did before the commit log.
    forest.checkpoint().unwrap();
    let mut worst = 0.0f64;
    for _ in 0..150 {
        for _ in 0..100 {
            let i = (next() % 10_000) as u32;
            let v: Vec<u8> = (0..5).flat_map(|_| next().to_le_bytes()).collect();
            t.insert(&key(i), &v).unwrap();
        }
        forest.commit().unwrap();
        worst = worst.max(forest.stats().space_amplification());
    }
    let stats = forest.stats();
    // Between checkpoints, nodes evicted from the small cache are written
    // and left dead by their next rewrite; a checkpoint is due once that
    // could reach half the live bytes, and its compaction rewrites the
    // segments under half live: about 1 + 1/2 + 1, measured 2.75 here.
    assert!(
        worst < 3.0,
        "space amplification reached {worst:.2}; now {:.2} over {} segments",
        stats.space_amplification(),
        stats.segments.len()
    );
    assert!(stats.segments.len() > 3, "{stats:?}");
    eprintln!("worst space amplification {worst:.2}");
    assert_clean(&forest);
}

/// Crashes a compaction after each of many numbers of I/O operations;
/// every reopen must give back the last commit, clean, with no segment
/// that nothing refers to.
#[test]
fn a_crash_anywhere_in_a_compaction_loses_nothing() {
    let mut k = 0;
    loop {
        let backend = FaultyBackend::new();
        let open = || Forest::with_backend(Arc::new(backend.clone()), options().compaction(false));
        let forest = open().unwrap();
        let t = forest.create_tree("t").unwrap();
        for i in 0..1_500 {
            t.insert(&key(i), &[1u8; 40]).unwrap();
        }
        forest.commit().unwrap();
        forest.clone_tree("t", "snap").unwrap();
        for i in (0..1_500).step_by(2) {
            t.remove(&key(i)).unwrap();
        }
        forest.commit().unwrap();
        let committed = contents(&forest);
        backend.fail_after(k);
        let finished = forest.compact().is_ok();
        backend.kill();
        drop((t, forest));
        backend.crash(if k % 2 == 0 {
            CrashMode::DropUnsynced
        } else {
            CrashMode::TearLastWrite {
                keep: k as usize % 29,
            }
        });
        let forest = open().unwrap();
        assert_eq!(contents(&forest), committed, "crash after {k} operations");
        assert_clean(&forest);
        let stats = forest.stats();
        for s in &stats.segments {
            assert!(
                s.live_bytes > 0,
                "segment {} leaked after {k} operations: {stats:?}",
                s.segment
            );
        }
        if finished {
            assert!(stats.space_amplification() <= 1.3, "{stats:?}");
            break;
        }
        k += 1 + k / 4;
    }
}
