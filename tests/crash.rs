//! Crash model test: random operations on a few trees over a
//! `FaultyBackend`, interleaved with process crashes (torn or dropped
//! unsynced writes), injected I/O failures and reopens, checked against two
//! models: the live trees and the trees of the last commit.
//!
//! Small nodes, a tiny cache and two workers keep nodes moving through the
//! dirty queue and the in-flight map all the time, so a crash catches
//! background writes half done; small segments give every commit sparse
//! segments to compact. The harness and the rules it checks are in
//! `support/crash_model.rs`, shared with the fuzz crate's `model` target;
//! this file draws the operations with proptest. In short:
//! - a commit that returned `Ok` survives any later crash;
//! - a commit that returned an error may or may not have landed: the next
//!   reopen shows either the last good commit or the state it tried to
//!   write, and that one is the committed state from then on;
//! - an operation that returned an error changed nothing, and once a commit
//!   has failed (or the store reported a background failure) no write
//!   succeeds until the forest is reopened;
//! - after every reopen the trees equal the committed model and the
//!   structural check is clean.
//!
//! `LARIX_CRASH_CASES` raises the number of cases.

#[path = "support/crash_model.rs"]
mod crash_model;

use crash_model::{Checked, Harness, SLOTS};
use larix::{Durability, Forest, Options, Tree};
use larix_nodestore::testing::{CrashMode, FaultyBackend};
use proptest::prelude::*;
use std::ops::Bound;
use std::sync::Arc;

const KEYS: u16 = 600;

#[derive(Debug, Clone, Copy)]
enum Op {
    Create(usize),
    Insert(usize, u16, u8),
    Fill(usize, u16, u16, u8),
    /// `Tree::insert_batch` of `n` keys from `k` on, 37 apart (modulo
    /// [`KEYS`]), values of tag `t`.
    Batch(usize, u16, u16, u8),
    Remove(usize, u16),
    /// `Tree::remove_batch` of `n` keys from `k` on, `step` apart (modulo
    /// [`KEYS`]).
    RemoveBatch(usize, u16, u16, u16),
    RemoveRange(usize, Bound<u16>, Bound<u16>),
    Clone(usize, usize),
    RemoveTree(usize),
    Commit,
    /// Every tree back to the last commit (a snapshot taken before must
    /// not change).
    Rollback,
    /// Commit, then write every node to the segments and wait.
    Checkpoint,
    /// Copy the live nodes out of sparse segments, then commit.
    Compact,
    /// Kill the process, drop the forest, crash the machine, reopen.
    Crash(CrashMode),
    /// Every backend call after the next `n` fails until the next reopen.
    FailAfter(u64),
    /// `FailAfter(n)` then `Commit`: a commit failing at any of its steps.
    FailingCommit(u64),
    /// Drop the forest and open it again; `heal` first lets the live state
    /// be read back before the drop.
    Reopen {
        heal: bool,
    },
}

fn key(k: u16) -> Vec<u8> {
    // Keys of varying length that still sort like the numbers.
    let mut v = format!("k{k:05}").into_bytes();
    v.extend(std::iter::repeat_n(b'.', usize::from(k % 7)));
    v
}

/// A short value, or for a few tags one too large for a leaf (stored out
/// of line: from a few hundred bytes to past one chunk).
fn value(k: u16, tag: u8) -> Vec<u8> {
    match tag {
        255 if k.is_multiple_of(16) => vec![tag; larix_btree::CHUNK_BYTES + usize::from(k)],
        250.. => vec![tag; 300 + 97 * usize::from(k % 40)],
        _ => vec![tag; usize::from(k % 23) + usize::from(tag % 5)],
    }
}

fn bound() -> impl Strategy<Value = Bound<u16>> {
    prop_oneof![
        Just(Bound::Unbounded),
        (0..KEYS).prop_map(Bound::Included),
        (0..KEYS).prop_map(Bound::Excluded),
    ]
}

fn crash_mode() -> impl Strategy<Value = CrashMode> {
    prop_oneof![
        Just(CrashMode::DropUnsynced),
        // Torn blobs, torn table chunks (16 KiB) and torn superblock slots
        // (4 KiB) alike.
        (0usize..20_000).prop_map(|keep| CrashMode::TearLastWrite { keep }),
    ]
}

/// Operations on the trees and commits, without faults.
fn tree_op() -> impl Strategy<Value = Op> {
    let slot = 0..SLOTS;
    prop_oneof![
        3 => slot.clone().prop_map(Op::Create),
        20 => (slot.clone(), 0..KEYS, any::<u8>()).prop_map(|(s, k, t)| Op::Insert(s, k, t)),
        5 => (slot.clone(), 0..KEYS, 1u16..120, any::<u8>())
            .prop_map(|(s, k, n, t)| Op::Fill(s, k, n, t)),
        // Batches of 256 pairs or more reach the write buffer.
        4 => (slot.clone(), 0..KEYS, 1u16..400, any::<u8>())
            .prop_map(|(s, k, n, t)| Op::Batch(s, k, n, t)),
        8 => (slot.clone(), 0..KEYS).prop_map(|(s, k)| Op::Remove(s, k)),
        2 => (slot.clone(), bound(), bound()).prop_map(|(s, a, b)| Op::RemoveRange(s, a, b)),
        3 => (slot.clone(), slot.clone()).prop_map(|(a, b)| Op::Clone(a, b)),
        1 => slot.prop_map(Op::RemoveTree),
        6 => Just(Op::Commit),
        2 => Just(Op::Rollback),
        2 => Just(Op::Checkpoint),
        2 => Just(Op::Compact),
    ]
}

/// Everything, with batches of removals among the tree operations (a
/// strategy of its own, so that the cases recorded for [`op`] still
/// replay as they were).
fn op_with_batch_removals() -> impl Strategy<Value = Op> {
    prop_oneof![
        40 => op(),
        8 => (0..SLOTS, 0..KEYS, 1u16..300, 1u16..4)
            .prop_map(|(s, k, n, step)| Op::RemoveBatch(s, k, n, step)),
    ]
}

/// Everything, faults included (durable commits).
fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        45 => tree_op(),
        3 => crash_mode().prop_map(Op::Crash),
        3 => (0u64..40).prop_map(Op::FailAfter),
        3 => (0u64..16).prop_map(Op::FailingCommit),
        2 => any::<bool>().prop_map(|heal| Op::Reopen { heal }),
    ]
}

/// Tree operations, crashes and clean reopens (non-durable commits).
fn op_without_failures() -> impl Strategy<Value = Op> {
    prop_oneof![
        45 => tree_op(),
        4 => crash_mode().prop_map(Op::Crash),
        2 => Just(Op::Reopen { heal: true }),
    ]
}

fn key_bound(b: Bound<u16>) -> Bound<Vec<u8>> {
    match b {
        Bound::Included(k) => Bound::Included(key(k)),
        Bound::Excluded(k) => Bound::Excluded(key(k)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Carries out `op` on the harness.
fn apply(h: &mut Harness, op: &Op) -> Checked {
    match *op {
        Op::Create(s) => h.create(s),
        Op::Insert(s, k, t) => h.insert(s, &key(k), &value(k, t)),
        Op::Fill(s, k, n, t) => {
            (k..k.saturating_add(n).min(KEYS)).try_for_each(|k| h.insert(s, &key(k), &value(k, t)))
        }
        Op::Batch(s, k, n, t) => {
            // Keys spread over the key space, values inline.
            let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..n)
                .map(|i| (k + i * 37) % KEYS)
                .map(|k| (key(k), value(k, t % 250)))
                .collect();
            h.insert_batch(s, &pairs)
        }
        Op::Remove(s, k) => h.remove(s, &key(k)),
        Op::RemoveBatch(s, k, n, step) => {
            let keys: Vec<Vec<u8>> = (0..n).map(|i| key((k + i * step) % KEYS)).collect();
            h.remove_batch(s, &keys)
        }
        Op::RemoveRange(s, a, b) => h.remove_range(s, key_bound(a), key_bound(b)),
        Op::Clone(a, b) => h.clone_tree(a, b),
        Op::RemoveTree(s) => h.remove_tree(s),
        Op::Commit => h.commit(),
        Op::Rollback => h.rollback(),
        Op::Checkpoint => h.checkpoint(),
        Op::Compact => h.compact(),
        Op::Crash(mode) => h.crash(mode),
        Op::FailAfter(n) => {
            h.fail_after(n);
            Ok(())
        }
        Op::FailingCommit(n) => {
            h.fail_after(n);
            h.commit()
        }
        Op::Reopen { heal } => h.reopen(heal),
    }
}

fn run(node_size: usize, durability: Durability, ops: &[Op]) -> Result<(), TestCaseError> {
    run_on(FaultyBackend::new, node_size, durability, ops)
}

/// [`run`] on the medium `medium` makes.
fn run_on<M: crash_model::Medium + 'static>(
    medium: impl Fn() -> M,
    node_size: usize,
    durability: Durability,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let options = Options::default()
        .node_size(node_size)
        .cache_bytes(node_size * 16)
        .workers(2)
        .segment_bytes(64 << 10)
        // The default (a sixteenth of the cache) would hold no batch.
        .write_buffer_bytes(64 << 10);
    let replay = || {
        let mut h = Harness::open(medium(), options, durability, vec![None; SLOTS])?;
        // Start from a committed tree deep enough to have index levels.
        for op in [Op::Create(0), Op::Fill(0, 0, 300, 1), Op::Commit] {
            apply(&mut h, &op)?;
        }
        for op in ops {
            apply(&mut h, op)?;
        }
        h.reopen(true)
    };
    replay().map_err(TestCaseError::fail)
}

fn cases(default: u32) -> u32 {
    std::env::var("LARIX_CRASH_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Opens the forest over `disk`, checked clean.
/// A store on `disk` whose tree "t" holds `loaded` (tag 1), checkpointed.
fn loaded_tree(disk: &FaultyBackend, loaded: &[u16]) -> (Forest, Tree) {
    let forest = open_checked(disk);
    let t = forest.create_tree("t").unwrap();
    for &k in loaded {
        t.insert(&key(k), &value(k, 1)).unwrap();
    }
    forest.checkpoint().unwrap();
    (forest, t)
}

/// `forest` (and its tree handle `t`) killed, the machine crashed with
/// the unsynced bytes lost, and the store opened again.
fn killed_and_reopened(disk: &FaultyBackend, forest: Forest, t: Tree) -> Forest {
    drop(t);
    disk.kill();
    drop(forest);
    disk.crash(CrashMode::DropUnsynced);
    disk.heal();
    open_checked(disk)
}

fn open_checked(disk: &FaultyBackend) -> Forest {
    let options = Options::default()
        .node_size(256)
        .cache_bytes(256 * 16)
        .workers(2);
    let forest = Forest::with_backend(Arc::new(disk.clone()), options).unwrap();
    let report = forest.check().unwrap();
    assert!(report.is_clean(), "{report}");
    forest
}

/// The number of entries of tree `t`, if it exists.
fn entries(forest: &Forest) -> Option<u64> {
    let tree = forest.tree("t").unwrap()?;
    Some(tree.count_range(..).unwrap())
}

/// A forest over a new disk with 100 entries committed and checkpointed
/// and 100 more inserted but not committed.
fn half_committed() -> (FaultyBackend, Forest) {
    let disk = FaultyBackend::new();
    let forest = open_checked(&disk);
    let t = forest.create_tree("t").unwrap();
    for k in 0..100 {
        t.insert(&key(k), &value(k, 1)).unwrap();
    }
    forest.checkpoint().unwrap();
    for k in 100..200 {
        t.insert(&key(k), &value(k, 2)).unwrap();
    }
    (disk, forest)
}

/// Drops `forest`, heals `disk` and reopens: the state shown must be one of
/// `allowed` and must survive a crash right after.
fn reopen_survives_crash(disk: &FaultyBackend, forest: Forest, allowed: &[u64], what: &str) {
    drop(forest);
    disk.heal();
    let shown = entries(&open_checked(disk));
    assert!(
        shown.is_some_and(|n| allowed.contains(&n)),
        "{what}: reopened with {shown:?} entries, want one of {allowed:?}"
    );
    disk.crash(CrashMode::DropUnsynced);
    let after = entries(&open_checked(disk));
    assert_eq!(
        after, shown,
        "{what}: the reopened state was lost by a crash"
    );
}

/// Every step of a commit (the log append and its sync), failed in turn:
/// the forest reopens to the old or the new state, and whichever it shows
/// survives a crash right after.
#[test]
fn a_commit_failing_at_any_step_reopens_to_a_state_that_survives_a_crash() {
    for n in 0.. {
        let (disk, forest) = half_committed();
        disk.fail_after(n);
        if forest.commit().is_ok() {
            assert!(n >= 2, "a commit succeeded after only {n} backend calls");
            break;
        }
        let what = format!("commit failing after {n} calls");
        reopen_survives_crash(&disk, forest, &[100, 200], &what);
    }
}

/// Every step of a checkpoint (node writes, table chunks, directory,
/// catalog, syncs, superblock, log removal), failed in turn after a durable
/// commit: nothing committed is lost, whichever step failed.
#[test]
fn a_checkpoint_failing_at_any_step_loses_no_commit() {
    for n in 0.. {
        let (disk, forest) = half_committed();
        forest.commit().unwrap();
        disk.fail_after(n);
        if forest.checkpoint().is_ok() {
            assert!(n > 5, "a checkpoint of 200 entries took only {n} calls");
            break;
        }
        let what = format!("checkpoint failing after {n} calls");
        reopen_survives_crash(&disk, forest, &[200], &what);
    }
}

/// A batch large enough to be built bottom up into an empty tree (over a
/// megabyte), with the backend failing after `n` calls for a growing `n`:
/// the build and its commit either both succeed, and every pair survives a
/// crash, or the forest reopens to the empty tree it committed or to the
/// whole batch, never to part of it.
#[test]
fn a_bulk_build_failing_at_any_step_reopens_whole_or_empty() {
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..24_000u32)
        .map(|i| (format!("bulk{i:08}").into_bytes(), vec![i as u8; 40]))
        .collect();
    let total = pairs.len() as u64;
    let mut n = 0;
    loop {
        let disk = FaultyBackend::new();
        let forest = open_checked(&disk);
        forest.create_tree("t").unwrap();
        forest.commit().unwrap();
        forest.checkpoint().unwrap();
        disk.fail_after(n);
        let t = forest.tree("t").unwrap().unwrap();
        let done = t
            .insert_batch(pairs.iter().map(|(k, v)| (k, v)))
            .and_then(|()| forest.commit());
        if done.is_ok() {
            assert!(n > 10, "a build of {total} pairs took only {n} calls");
            drop(t);
            drop(forest);
            disk.crash(CrashMode::DropUnsynced);
            let forest = open_checked(&disk);
            let t = forest.tree("t").unwrap().unwrap();
            for (k, v) in &pairs {
                assert_eq!(t.get(k).unwrap().as_ref(), Some(v));
            }
            break;
        }
        drop(t);
        let what = format!("bulk build failing after {n} calls");
        reopen_survives_crash(&disk, forest, &[0, total], &what);
        n = n * 3 / 2 + 1;
    }
}

/// A batch into a tree that holds entries (so inserted in runs, each run
/// one write set: `Tree::insert_batch`), the tree many times larger than
/// the cache, with the backend failing after `n` calls for a growing `n`:
/// a failed batch leaves exactly the pairs before some point inserted, in
/// key order, the tree checks clean, and once healed its commit survives
/// a crash.
#[test]
fn a_batch_failing_at_any_step_leaves_a_prefix_in_key_order() {
    let loaded: Vec<u16> = (0..2000).map(|i| i * 2).collect();
    // New keys between the loaded ones and overwrites of loaded ones, in
    // no order; the batch sorts them.
    let mut batch: Vec<(Vec<u8>, Vec<u8>)> = (0..500u16)
        .map(|i| {
            let k = u16::try_from(u32::from(i) * 7919 % 4000).expect("below 4000");
            (key(k), vec![b'n'; 8 + usize::from(k % 11)])
        })
        .collect();
    batch.reverse();
    let mut sorted = batch.clone();
    sorted.sort();
    let mut n = 0;
    loop {
        let disk = FaultyBackend::new();
        let (forest, t) = loaded_tree(&disk, &loaded);
        disk.fail_after(n);
        let done = t.insert_batch(batch.iter().map(|(k, v)| (k, v)));
        disk.heal();
        let applied: Vec<bool> = sorted
            .iter()
            .map(|(k, v)| t.get(k).unwrap().as_ref() == Some(v))
            .collect();
        let prefix = applied.iter().take_while(|&&a| a).count();
        assert!(
            applied[prefix..].iter().all(|&a| !a),
            "failing after {n} calls: not a prefix ({prefix} first, then {:?})",
            applied[prefix..].iter().filter(|&&a| a).count()
        );
        for &k in &loaded {
            if sorted[prefix..].iter().any(|(bk, _)| *bk == key(k)) {
                assert_eq!(t.get(&key(k)).unwrap(), Some(value(k, 1)));
            }
        }
        let report = forest.check().unwrap();
        assert!(report.is_clean(), "failing after {n} calls: {report}");
        if done.is_ok() {
            assert_eq!(prefix, sorted.len());
            assert!(n > 10, "a batch of 500 pairs took only {n} calls");
            break;
        }
        if forest.commit().is_ok() {
            let forest = killed_and_reopened(&disk, forest, t);
            let t = forest.tree("t").unwrap().unwrap();
            for (i, (k, v)) in sorted.iter().enumerate() {
                assert_eq!(t.get(k).unwrap().as_ref() == Some(v), i < prefix);
            }
        }
        n = n * 3 / 2 + 1;
    }
}

/// `Tree::remove_batch` into a tree many times larger than the cache
/// (removed in runs, each run one write set), with the backend failing
/// after `n` calls for a growing `n`: a failed batch leaves exactly the
/// keys before some point removed, in key order, the tree checks clean,
/// and once healed its commit survives a crash.
#[test]
fn a_remove_batch_failing_at_any_step_leaves_a_prefix_in_key_order() {
    let loaded: Vec<u16> = (0..2000).map(|i| i * 2).collect();
    // Loaded keys and keys never loaded (odd), in no order.
    let mut batch: Vec<u16> = (0..700u16)
        .map(|i| u16::try_from(u32::from(i) * 7919 % 4000).expect("below 4000"))
        .collect();
    batch.reverse();
    let mut present: Vec<u16> = batch.iter().copied().filter(|k| k % 2 == 0).collect();
    present.sort_unstable();
    present.dedup();
    let mut n = 0;
    loop {
        let disk = FaultyBackend::new();
        let (forest, t) = loaded_tree(&disk, &loaded);
        disk.fail_after(n);
        let done = t.remove_batch(batch.iter().map(|&k| key(k)));
        disk.heal();
        let gone: Vec<bool> = present
            .iter()
            .map(|&k| t.get(&key(k)).unwrap().is_none())
            .collect();
        let prefix = gone.iter().take_while(|&&g| g).count();
        assert!(
            gone[prefix..].iter().all(|&g| !g),
            "failing after {n} calls: not a prefix ({prefix} first, then {})",
            gone[prefix..].iter().filter(|&&g| g).count()
        );
        let report = forest.check().unwrap();
        assert!(report.is_clean(), "failing after {n} calls: {report}");
        if let Ok(removed) = done {
            assert_eq!(removed, present.len() as u64);
            assert_eq!(prefix, present.len());
            assert!(n > 10, "a batch of 700 removals took only {n} calls");
            break;
        }
        if forest.commit().is_ok() {
            let forest = killed_and_reopened(&disk, forest, t);
            let t = forest.tree("t").unwrap().unwrap();
            for (i, &k) in present.iter().enumerate() {
                assert_eq!(t.get(&key(k)).unwrap().is_none(), i < prefix, "key {k}");
            }
            for &k in loaded.iter().filter(|k| !present.contains(k)) {
                assert_eq!(t.get(&key(k)).unwrap(), Some(value(k, 1)));
            }
        }
        n = n * 3 / 2 + 1;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(128)))]

    #[test]
    fn tiny_nodes_survive_crashes_and_failures(ops in proptest::collection::vec(op(), 1..60)) {
        run(256, Durability::Immediate, &ops)?;
    }

    #[test]
    fn small_nodes_survive_crashes_and_failures(ops in proptest::collection::vec(op(), 1..60)) {
        run(1024, Durability::Immediate, &ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(48)))]

    #[test]
    fn batched_removals_survive_crashes_and_failures(
        ops in proptest::collection::vec(op_with_batch_removals(), 1..60),
    ) {
        run(256, Durability::Immediate, &ops)?;
    }

    #[test]
    fn non_durable_commits_return_to_a_durable_one(
        ops in proptest::collection::vec(op_without_failures(), 1..60),
    ) {
        run(256, Durability::None, &ops)?;
    }
}

/// The crash model on an object store that fails on demand: a failing
/// write may land or not, uploads under way land out of order, and a crash
/// keeps exactly what the store acknowledged or let land.
#[cfg(feature = "s3")]
mod on_objects {
    use super::*;
    use crash_model::Medium;
    use larix_nodestore::testing::FaultyObjectStore;
    use larix_nodestore::{Backend, ObjectOptions};

    struct Objects(FaultyObjectStore);

    impl Medium for Objects {
        fn backend(&self) -> Checked<Arc<dyn Backend>> {
            // Small parts and blocks: uploads and fetches in the background
            // all the time, and a writer held back by its uploads.
            let options = ObjectOptions {
                part_bytes: 4096,
                block_bytes: 2048,
                cache_bytes: 64 << 10,
                readahead: 2,
                uploads: 2,
                threads: 2,
                cache_dir: None,
            };
            let backend = self
                .0
                .backend("store", false, options)
                .map_err(|e| e.to_string())?;
            Ok(Arc::new(backend))
        }

        fn kill(&self) {
            self.0.kill();
        }

        /// What an object store acknowledged (or let land) stays: a crash
        /// only ends the kill.
        fn crash(&self, _mode: CrashMode) {
            self.0.heal();
        }

        fn fail_after(&self, n: u64) {
            self.0.fail_after(n);
        }

        fn heal(&self) {
            self.0.heal();
        }
    }

    /// A checkpoint failing at each of its requests in turn (segment
    /// parts, table and catalog, the superblock switch, the log removal;
    /// each failing request landing or not): the reopened store holds
    /// every commit, whichever step it died at.
    #[test]
    fn a_checkpoint_on_objects_failing_at_any_request_loses_no_commit() {
        let options = || {
            Options::default()
                .node_size(512)
                .cache_bytes(512 * 16)
                .workers(2)
        };
        for n in 0.. {
            let store = FaultyObjectStore::new(n + 1);
            let objects = Objects(store.clone());
            let forest = Forest::with_backend(objects.backend().unwrap(), options()).unwrap();
            let t = forest.create_tree("t").unwrap();
            for k in 0..100 {
                t.insert(&key(k), &value(k, 1)).unwrap();
            }
            forest.checkpoint().unwrap();
            for k in 100..200 {
                t.insert(&key(k), &value(k, 250)).unwrap();
            }
            forest.commit().unwrap();
            store.fail_after(n);
            if forest.checkpoint().is_ok() {
                // At least its last part and the superblock switch.
                assert!(n >= 2, "a checkpoint took only {n} requests");
                break;
            }
            // The process dies with the failure.
            store.kill();
            drop(t);
            drop(forest);
            store.heal();
            let forest = Forest::with_backend(objects.backend().unwrap(), options()).unwrap();
            let t = forest.tree("t").unwrap().expect("the tree was committed");
            assert_eq!(
                t.count_range(..).unwrap(),
                200,
                "checkpoint failing after {n} requests"
            );
            for k in (0..200).step_by(7) {
                let tag = if k < 100 { 1 } else { 250 };
                assert_eq!(
                    t.get(&key(k)).unwrap(),
                    Some(value(k, tag)),
                    "key {k} after {n}"
                );
            }
            let report = forest.check().unwrap();
            assert!(report.is_clean(), "after {n}: {report}");
        }
    }

    fn medium() -> impl Fn() -> Objects {
        let seeds = std::sync::atomic::AtomicU64::new(1);
        move || {
            Objects(FaultyObjectStore::new(
                seeds.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ))
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases(48)))]

        #[test]
        fn stores_on_objects_survive_crashes_and_failures(
            ops in proptest::collection::vec(op(), 1..60),
        ) {
            run_on(medium(), 1024, Durability::Immediate, &ops)?;
        }

        #[test]
        fn non_durable_commits_on_objects_return_to_a_durable_one(
            ops in proptest::collection::vec(op_without_failures(), 1..40),
        ) {
            run_on(medium(), 256, Durability::None, &ops)?;
        }
    }
}
