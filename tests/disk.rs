//! The forest on disk: reopen gives back exactly the last commit.

use larix::{Durability, Error, FilterSpec, Forest, Options};
use larix_nodestore::testing::{CrashMode, FaultyBackend};
use std::collections::BTreeMap;
use std::sync::Arc;

fn small() -> Options {
    Options::default()
        .node_size(1024)
        .cache_bytes(64 << 10)
        .workers(2)
}

fn contents(forest: &Forest, name: &str) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let tree = forest.tree(name).unwrap().unwrap();
    tree.range(..).unwrap().map(|item| item.unwrap()).collect()
}

fn key(i: u32) -> Vec<u8> {
    format!("key-{:08}", i.wrapping_mul(2_654_435_761)).into_bytes()
}

#[test]
fn reopen_gives_back_the_committed_trees_and_clones() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = BTreeMap::new();
    let snapshot;
    {
        let forest = Forest::open(dir.path(), small()).unwrap();
        let t = forest.create_tree("files").unwrap();
        for i in 0..3000 {
            t.insert(&key(i), format!("v{i}").as_bytes()).unwrap();
            model.insert(key(i), format!("v{i}").into_bytes());
        }
        forest.commit().unwrap();
        forest.clone_tree("files", "files@1").unwrap();
        snapshot = model.clone();
        for i in (0..3000).step_by(3) {
            t.remove(&key(i)).unwrap();
            model.remove(&key(i));
        }
        for i in 3000..3500 {
            t.insert(&key(i), b"new").unwrap();
            model.insert(key(i), b"new".to_vec());
        }
        forest.commit().unwrap();
        // Changes after the last commit are dropped with the forest.
        t.insert(b"uncommitted", b"x").unwrap();
        forest.create_tree("uncommitted").unwrap();
        forest.remove_tree("files@1").unwrap();
    }
    let forest = Forest::open(dir.path(), small()).unwrap();
    assert_eq!(forest.tree_names(), vec!["files", "files@1"]);
    assert_eq!(contents(&forest, "files"), model);
    assert_eq!(contents(&forest, "files@1"), snapshot);
    let report = forest.check().unwrap();
    assert!(report.is_clean(), "{report}");
    let stats = forest.stats();
    assert!(stats.cache_misses > 0, "{stats:?}");
}

#[test]
fn a_fresh_store_reopens_empty_and_an_empty_commit_works() {
    let dir = tempfile::tempdir().unwrap();
    drop(Forest::open(dir.path(), small()).unwrap());
    let forest = Forest::open(dir.path(), small()).unwrap();
    assert!(forest.tree_names().is_empty());
    forest.commit().unwrap();
    forest.create_tree("a").unwrap();
    forest.commit().unwrap();
    forest.remove_tree("a").unwrap();
    forest.commit().unwrap();
    drop(forest);
    let forest = Forest::open(dir.path(), small()).unwrap();
    assert!(forest.tree_names().is_empty());
    assert_eq!(forest.stats().nodes, 0);
    assert!(forest.check().unwrap().is_clean());
}

#[test]
fn other_filters_or_node_size_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    drop(Forest::open(dir.path(), small()).unwrap());
    let e = Forest::open(dir.path(), small().filters(vec![FilterSpec::checksum()]))
        .err()
        .unwrap();
    assert!(e.to_string().contains("zstd(level=1)"), "{e}");
    let e = Forest::open(dir.path(), small().node_size(2048))
        .err()
        .unwrap();
    assert!(e.to_string().contains("node_size=1024"), "{e}");
    let o = Options::from_store(dir.path(), None).unwrap();
    drop(Forest::open(dir.path(), o.cache_bytes(1 << 20)).unwrap());
}

#[test]
fn a_wrong_key_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let with = |key: [u8; 32]| {
        small().filters(vec![
            FilterSpec::zstd(1),
            FilterSpec::encrypt(key),
            FilterSpec::checksum(),
        ])
    };
    {
        let forest = Forest::open(dir.path(), with([7; 32])).unwrap();
        forest
            .create_tree("secret")
            .unwrap()
            .insert(b"k", b"v")
            .unwrap();
        forest.commit().unwrap();
    }
    let e = Forest::open(dir.path(), with([8; 32])).err().unwrap();
    assert!(e.to_string().contains("wrong key"), "{e}");
    let forest = Forest::open(dir.path(), with([7; 32])).unwrap();
    let t = forest.tree("secret").unwrap().unwrap();
    assert_eq!(t.get(b"k").unwrap(), Some(b"v".to_vec()));
}

#[test]
fn foreign_files_and_missing_stores_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("superblock"), vec![0x42; 8192]).unwrap();
    let e = Forest::open(dir.path(), small()).err().unwrap();
    assert!(matches!(e, Error::Store(_)), "{e:?}");
    assert!(e.to_string().contains("not a Larix store"), "{e}");
    let file = dir.path().join("plain");
    std::fs::write(&file, b"x").unwrap();
    assert!(Forest::open(&file, small()).is_err());
    let missing = dir.path().join("missing");
    assert!(Options::from_store(&missing, None).is_err());
}

#[test]
fn non_durable_commits_become_durable_on_close() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small().durability(Durability::None);
    {
        let forest = Forest::open(dir.path(), opts.clone()).unwrap();
        let t = forest.create_tree("t").unwrap();
        for i in 0..500 {
            t.insert(&key(i), b"v").unwrap();
            if i % 100 == 99 {
                forest.commit().unwrap();
            }
        }
        assert_eq!(forest.stats().sync_time, std::time::Duration::ZERO);
    }
    let forest = Forest::open(dir.path(), opts).unwrap();
    assert_eq!(
        forest.tree("t").unwrap().unwrap().count_range(..).unwrap(),
        500
    );
    assert!(forest.check().unwrap().is_clean());
}

#[test]
fn many_commits_of_small_changes_reopen_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = BTreeMap::new();
    for round in 0..20u32 {
        let forest = Forest::open(dir.path(), small()).unwrap();
        let t = match forest.tree("t").unwrap() {
            Some(t) => t,
            None => forest.create_tree("t").unwrap(),
        };
        assert_eq!(contents(&forest, "t"), model, "round {round}");
        for i in 0..50 {
            let k = key(round * 31 + i * 7 % 400);
            if i % 4 == 0 {
                t.remove(&k).unwrap();
                model.remove(&k);
            } else {
                t.insert(&k, &round.to_le_bytes()).unwrap();
                model.insert(k, round.to_le_bytes().to_vec());
            }
            if i % 10 == 0 {
                forest.commit().unwrap();
            }
        }
        forest.commit().unwrap();
    }
}

/// A batch of removals is journaled key by key: a commit, then a crash
/// before any checkpoint, replays it.
#[test]
fn a_committed_remove_batch_survives_a_crash_through_the_log() {
    let disk = FaultyBackend::new();
    let mut model = BTreeMap::new();
    {
        let forest = Forest::with_backend(Arc::new(disk.clone()), small()).unwrap();
        let t = forest.create_tree("t").unwrap();
        for i in 0..2_000 {
            t.insert(&key(i), &i.to_le_bytes()).unwrap();
            model.insert(key(i), i.to_le_bytes().to_vec());
        }
        forest.checkpoint().unwrap();
        let checkpoints = forest.stats().checkpoints;
        let gone: Vec<Vec<u8>> = (0..3_000).step_by(3).map(key).collect();
        let removed = t.remove_batch(&gone).unwrap();
        for k in &gone {
            model.remove(k);
        }
        assert_eq!(removed, (0..2_000).step_by(3).count() as u64);
        forest.commit().unwrap();
        assert_eq!(forest.stats().checkpoints, checkpoints, "in the log only");
        // The process dies: no close, no checkpoint.
        disk.kill();
    }
    disk.crash(CrashMode::DropUnsynced);
    let forest = Forest::with_backend(Arc::new(disk.clone()), small()).unwrap();
    assert!(
        contents(&forest, "t") == model,
        "the batch's removals were lost"
    );
    assert!(forest.check().unwrap().is_clean());
}

/// A checkpoint's nodes reach the disk a worker's batch at a time: one
/// write per batch, not per node (each write of part of a page made the
/// file system zero the rest of the page first).
#[test]
fn a_checkpoint_writes_its_nodes_in_batches() {
    let disk = FaultyBackend::new();
    let options = || Options::default().node_size(1024).workers(2);
    let forest = Forest::with_backend(Arc::new(disk.clone()), options()).unwrap();
    let t = forest.create_tree("t").unwrap();
    t.insert_batch((0..20_000).map(|i| (key(i), format!("v{i}").into_bytes())))
        .unwrap();
    let (ops, blobs) = (disk.operations(), forest.stats().blobs_written);
    forest.checkpoint().unwrap();
    let written = forest.stats().blobs_written - blobs;
    let ops = disk.operations() - ops;
    assert!(written >= 300, "{written} nodes written");
    assert!(ops * 8 < written, "{ops} operations for {written} nodes");
    drop((t, forest));
    let forest = Forest::with_backend(Arc::new(disk.clone()), options()).unwrap();
    assert_eq!(contents(&forest, "t").len(), 20_000);
    assert!(forest.check().unwrap().is_clean());
}

/// Nodes pushed out of a full dirty queue reach the disk in batches too:
/// a put past the budget evicts down to a little under it.
#[test]
fn evicted_nodes_are_written_in_batches() {
    let disk = FaultyBackend::new();
    let options = || {
        Options::default()
            .node_size(1024)
            .cache_bytes(1 << 20)
            .workers(2)
    };
    let forest = Forest::with_backend(Arc::new(disk.clone()), options()).unwrap();
    let t = forest.create_tree("t").unwrap();
    let (writes, blobs) = (disk.writes(), forest.stats().blobs_written);
    for i in 0..40_000 {
        t.insert(&key(i), format!("value {i:0100}").as_bytes())
            .unwrap();
    }
    let written = forest.stats().blobs_written - blobs;
    let writes = disk.writes() - writes;
    assert!(written >= 300, "{written} nodes written");
    assert!(writes * 8 < written, "{writes} writes for {written} nodes");
    forest.commit().unwrap();
    drop((t, forest));
    let forest = Forest::with_backend(Arc::new(disk.clone()), options()).unwrap();
    assert_eq!(contents(&forest, "t").len(), 40_000);
    assert!(forest.check().unwrap().is_clean());
}
