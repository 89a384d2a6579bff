//! Read snapshots, views, ranges, diffs and rollback (issue 15), against
//! `BTreeMap` models: a snapshot shows the trees of one moment whatever the
//! writer does later (P1, P2), readers on other threads never see half of
//! the writer's work, a rollback returns to the last commit in memory and on
//! disk, a crash image taken beside a live snapshot reopens without a leak
//! (P3), and dropping the last handle frees what only it kept.

use larix::{Change, Diff, Forest, Options, Snapshot, Tree, View};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

type Entries = Vec<(Vec<u8>, Vec<u8>)>;
type Model = BTreeMap<Vec<u8>, Vec<u8>>;
type Models = BTreeMap<String, Model>;

/// Small nodes (trees several levels deep after a few thousand entries), a
/// small cache (reads go to the segments) and no filters (speed).
fn small() -> Options {
    Options::default()
        .filters(vec![])
        .node_size(512)
        .cache_bytes(64 << 10)
        .workers(2)
}

/// Key `i`: keys of varying length that still sort like the numbers.
fn key(i: u32) -> Vec<u8> {
    let mut k = format!("key-{i:06}").into_bytes();
    k.extend(std::iter::repeat_n(b'.', (i % 4) as usize));
    k
}

/// A value for key `i`, different for each `tag`, of varying length (so
/// overwrites split and merge nodes).
fn value(i: u32, tag: u32) -> Vec<u8> {
    let mut v = format!("{tag:03}-{i}").into_bytes();
    v.resize(8 + ((i.wrapping_mul(7) + tag * 13) % 40) as usize, b'v');
    v
}

/// Inserts `key(i) → value(i, tag)` for every `i` of `keys` into `name`,
/// and into its model.
fn put(
    forest: &Forest,
    models: &mut Models,
    name: &str,
    keys: impl Iterator<Item = u32>,
    tag: u32,
) {
    let tree = forest.tree(name).unwrap().unwrap();
    let model = models.get_mut(name).unwrap();
    for i in keys {
        tree.insert(&key(i), &value(i, tag)).unwrap();
        model.insert(key(i), value(i, tag));
    }
}

/// Creates tree `name` (and its model) holding `keys` with `tag`.
fn create(
    forest: &Forest,
    models: &mut Models,
    name: &str,
    keys: impl Iterator<Item = u32>,
    tag: u32,
) {
    forest.create_tree(name).unwrap();
    models.insert(name.to_string(), Model::new());
    put(forest, models, name, keys, tag);
}

/// Removes `key(i)` for every `i` of `keys` from `name` and its model.
fn remove(forest: &Forest, models: &mut Models, name: &str, keys: impl Iterator<Item = u32>) {
    let tree = forest.tree(name).unwrap().unwrap();
    let model = models.get_mut(name).unwrap();
    for i in keys {
        assert_eq!(
            tree.remove(&key(i)).unwrap(),
            model.remove(&key(i)).is_some()
        );
    }
}

/// Removes `key(lo)..key(hi)` from `name` and its model.
fn remove_range(forest: &Forest, models: &mut Models, name: &str, lo: u32, hi: u32) {
    let tree = forest.tree(name).unwrap().unwrap();
    let model = models.get_mut(name).unwrap();
    let (lo, hi) = (key(lo), key(hi));
    let doomed: Vec<_> = model
        .range(lo.clone()..hi.clone())
        .map(|(k, _)| k.clone())
        .collect();
    assert!(!doomed.is_empty(), "remove_range of nothing tests nothing");
    let removed = tree.remove_range(lo.as_slice()..hi.as_slice()).unwrap();
    assert_eq!(removed, doomed.len() as u64);
    for k in doomed {
        model.remove(&k);
    }
}

fn entries(model: &Model) -> Entries {
    model.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Where two entry lists first differ, in one line.
fn first_difference(got: &Entries, want: &Entries) -> String {
    let at = got.iter().zip(want).position(|(g, w)| g != w);
    let at = at.unwrap_or(got.len().min(want.len()));
    let show = |e: Option<&(Vec<u8>, Vec<u8>)>| {
        e.map(|(k, v)| {
            format!(
                "{}={}",
                String::from_utf8_lossy(k),
                String::from_utf8_lossy(v)
            )
        })
    };
    format!(
        "{} entries, want {}; first difference at {at}: got {:?}, want {:?}",
        got.len(),
        want.len(),
        show(got.get(at)),
        show(want.get(at))
    )
}

/// Asserts that `view` shows exactly `model`: full scans both ways, a
/// bounded scan, counts, first, last, and a lookup of every key and of a
/// missing key just after each.
fn assert_view_is(view: &View, model: &Model, when: &str) {
    let name = view.name();
    let want = entries(model);
    let forward: Entries = view.range(..).unwrap().collect::<Result<_, _>>().unwrap();
    assert!(
        forward == want,
        "{when}: {name} forward: {}",
        first_difference(&forward, &want)
    );
    let mut backward: Entries = view
        .range(..)
        .unwrap()
        .rev()
        .collect::<Result<_, _>>()
        .unwrap();
    backward.reverse();
    assert!(
        backward == want,
        "{when}: {name} backward: {}",
        first_difference(&backward, &want)
    );
    assert_eq!(
        view.count_range(..).unwrap(),
        want.len() as u64,
        "{when}: {name}"
    );
    assert_eq!(
        view.range_is_empty(..).unwrap(),
        want.is_empty(),
        "{when}: {name}"
    );
    assert_eq!(
        view.first().unwrap(),
        want.first().cloned(),
        "{when}: {name}"
    );
    assert_eq!(view.last().unwrap(), want.last().cloned(), "{when}: {name}");
    if let (Some(lo), Some(hi)) = (want.get(want.len() / 3), want.get(want.len() * 2 / 3)) {
        let (lo, hi) = (lo.0.as_slice(), hi.0.as_slice());
        let inner: Entries = model
            .range::<[u8], _>((Bound::Excluded(lo), Bound::Included(hi)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let got: Entries = view
            .range((Bound::Excluded(lo), Bound::Included(hi)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            got == inner,
            "{when}: {name} bounded: {}",
            first_difference(&got, &inner)
        );
        let count = view
            .count_range((Bound::Excluded(lo), Bound::Included(hi)))
            .unwrap();
        assert_eq!(count, inner.len() as u64, "{when}: {name}");
    }
    for (k, v) in model {
        assert_eq!(view.get(k).unwrap().as_ref(), Some(v), "{when}: {name} get");
        let mut missing = k.clone();
        missing.push(0);
        assert_eq!(
            view.get(&missing).unwrap().as_ref(),
            model.get(&missing),
            "{when}: {name} get"
        );
    }
}

/// Asserts that `snapshot` holds exactly the trees of `models`.
fn assert_snapshot_is(snapshot: &Snapshot, models: &Models, when: &str) {
    let names: Vec<_> = models.keys().cloned().collect();
    assert_eq!(snapshot.tree_names(), names, "{when}: tree names");
    for (name, model) in models {
        let view = snapshot.tree(name).unwrap();
        assert_eq!(view.name(), name);
        assert_view_is(&view, model, when);
    }
    assert!(snapshot.tree("no such tree").is_none(), "{when}");
}

/// Every entry of `range`, checking that keys strictly increase.
fn scan(range: larix::Range) -> Entries {
    let got: Entries = range.collect::<Result<_, _>>().unwrap();
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "keys out of order");
    got
}

/// Every tree of `forest` as it is now.
fn read_forest(forest: &Forest) -> Models {
    let read = |name: String| {
        let tree = forest.tree(&name).unwrap().unwrap();
        let model = scan(tree.range(..).unwrap()).into_iter().collect();
        (name, model)
    };
    forest.tree_names().into_iter().map(read).collect()
}

/// Asserts that `forest` holds exactly `models`, with the entry counts
/// its trees report.
fn assert_forest_is(forest: &Forest, models: &Models, when: &str) {
    let got = read_forest(forest);
    assert!(
        got == *models,
        "{when}: the forest differs from its model: {}",
        describe(&got, models)
    );
    for (name, model) in models {
        let tree = forest.tree(name).unwrap().unwrap();
        assert_eq!(
            tree.count_range(..).unwrap(),
            model.len() as u64,
            "{when}: {name}"
        );
    }
}

/// What differs between two sets of trees, in one line.
fn describe(got: &Models, want: &Models) -> String {
    if got.keys().ne(want.keys()) {
        return format!("trees {:?}, want {:?}", got.keys(), want.keys());
    }
    let differ = got.iter().find(|(name, m)| want[*name] != **m);
    differ.map_or_else(String::new, |(name, m)| {
        format!(
            "{name}: {}",
            first_difference(&entries(m), &entries(&want[name]))
        )
    })
}

fn assert_clean(forest: &Forest) {
    let report = forest.check().unwrap();
    assert!(report.is_clean(), "{report}");
}

/// Copies every file of store directory `from` into `to`.
fn copy_store(from: &Path, to: &Path) {
    for file in std::fs::read_dir(from).unwrap() {
        let file = file.unwrap();
        if file.file_type().unwrap().is_file() {
            std::fs::copy(file.path(), to.join(file.file_name())).unwrap();
        }
    }
}

// 1. A snapshot is unchanged by anything done later.

#[test]
fn a_snapshot_is_unchanged_by_every_later_change() {
    let dir = tempfile::tempdir().unwrap();
    let forest = Forest::open(dir.path(), small().segment_bytes(256 << 10)).unwrap();
    let mut now = Models::new();
    // Even keys only, so later inserts land between them.
    create(&forest, &mut now, "a", (0..2000).map(|i| i * 2), 0);
    create(&forest, &mut now, "b", (0..1500).map(|i| i * 2), 0);
    create(&forest, &mut now, "c", (0..1500).map(|i| i * 2), 0);
    forest.commit().unwrap();
    // An uncommitted change: the snapshot shows it too.
    put(
        &forest,
        &mut now,
        "a",
        (0..2000).step_by(5).map(|i| i * 2),
        1,
    );
    let snapshot = forest.snapshot().unwrap();
    let seen = now.clone();
    for name in ["a", "b", "c"] {
        let levels = snapshot.tree(name).unwrap().shape().unwrap().levels.len();
        assert!(
            levels >= 3,
            "{name} has {levels} levels: too shallow to test much"
        );
    }
    assert_snapshot_is(&snapshot, &seen, "when taken");

    put(&forest, &mut now, "a", (0..2000).map(|i| i * 2 + 1), 2);
    put(&forest, &mut now, "a", 4000..4600, 2);
    assert_snapshot_is(&snapshot, &seen, "after inserts");
    put(&forest, &mut now, "b", (0..1500).map(|i| i * 2), 3);
    assert_snapshot_is(&snapshot, &seen, "after overwrites");
    remove(&forest, &mut now, "c", (0..1500).step_by(3).map(|i| i * 2));
    assert_snapshot_is(&snapshot, &seen, "after removes");
    remove_range(&forest, &mut now, "a", 400, 3600);
    assert_snapshot_is(&snapshot, &seen, "after remove_range");
    create(&forest, &mut now, "d", 0..500, 4);
    assert!(snapshot.tree("d").is_none());
    assert_snapshot_is(&snapshot, &seen, "after create_tree");
    forest.clone_tree("b", "b-clone").unwrap();
    now.insert("b-clone".into(), now["b"].clone());
    put(&forest, &mut now, "b-clone", (0..300).map(|i| i * 2), 5);
    remove(&forest, &mut now, "b-clone", (300..600).map(|i| i * 2));
    remove_range(&forest, &mut now, "b", 1000, 2000);
    assert_snapshot_is(&snapshot, &seen, "after clone_tree and writes to both");
    forest.remove_tree("c").unwrap();
    now.remove("c");
    assert_snapshot_is(&snapshot, &seen, "after remove_tree");
    forest.commit().unwrap();
    assert_snapshot_is(&snapshot, &seen, "after commit");

    // Undone by the rollback: the forest and the snapshot are as before.
    forest.remove_tree("a").unwrap();
    forest.create_tree("c").unwrap();
    forest.tree("d").unwrap().unwrap().remove_range(..).unwrap();
    forest.rollback().unwrap();
    assert_forest_is(&forest, &now, "after rollback");
    assert_snapshot_is(&snapshot, &seen, "after rollback");
    forest.checkpoint().unwrap();
    assert_snapshot_is(&snapshot, &seen, "after checkpoint");

    // Dead space for compaction to reclaim, then compaction itself.
    put(&forest, &mut now, "d", 0..500, 6);
    put(&forest, &mut now, "a", 0..400, 6);
    forest.remove_tree("b-clone").unwrap();
    now.remove("b-clone");
    forest.commit().unwrap();
    let segments = |forest: &Forest| -> BTreeSet<_> {
        forest.stats().segments.iter().map(|s| s.segment).collect()
    };
    let before = segments(&forest);
    forest.compact().unwrap();
    assert!(
        !before.is_subset(&segments(&forest)),
        "compaction removed no segment"
    );
    let misses = forest.stats().cache_misses;
    assert_snapshot_is(&snapshot, &seen, "after compact");
    assert!(
        forest.stats().cache_misses > misses,
        "the snapshot was read from the cache only, not from the compacted segments"
    );

    // A view outlives its snapshot handle, and the tree it shows.
    let (view_a, view_c) = (snapshot.tree("a").unwrap(), snapshot.tree("c").unwrap());
    drop(snapshot);
    forest.remove_tree("a").unwrap();
    now.remove("a");
    create(&forest, &mut now, "a", 0..300, 7);
    create(&forest, &mut now, "c", 0..10, 7);
    forest.commit().unwrap();
    forest.checkpoint().unwrap();
    forest.compact().unwrap();
    assert_view_is(&view_a, &seen["a"], "after its snapshot was dropped");
    assert_view_is(&view_c, &seen["c"], "after its snapshot was dropped");
    drop((view_a, view_c));

    assert_forest_is(&forest, &now, "at the end");
    assert_clean(&forest);
    drop(forest);
    let forest = Forest::open(dir.path(), small()).unwrap();
    assert_forest_is(&forest, &now, "reopened");
    assert_clean(&forest);
}

/// A view keeps the nodes its point reads pass (index nodes held, leaves
/// by weak references): reads through it stay right when the store evicts
/// the leaves it kept, on a tree of several levels, and later writes do not
/// reach it through what it kept.
#[test]
fn point_reads_of_a_view_stay_right_when_the_leaves_it_kept_are_evicted() {
    let options = small().cache_bytes(1 << 20);
    let forest = Forest::in_memory(options).unwrap();
    let tree = forest.create_tree("t").unwrap();
    let n = 20_000;
    tree.insert_batch((0..n).map(|i| (key(i), value(i, 1))))
        .unwrap();
    forest.commit().unwrap();
    forest.checkpoint().unwrap();
    assert!(
        tree.shape().unwrap().levels.len() >= 4,
        "the test needs depth"
    );
    let view = tree.view().unwrap();
    let mut misses = Vec::new();
    for pass in 0..3 {
        let before = forest.stats().cache_misses;
        // A stride through the keys, so that each pass evicts what the
        // one before read.
        for i in (0..n).map(|i| (i * 7_919 + pass) % n) {
            assert_eq!(view.get(&key(i)).unwrap(), Some(value(i, 1)), "key {i}");
        }
        assert_eq!(view.get(b"key-").unwrap(), None);
        assert_eq!(view.get(b"key-999999").unwrap(), None);
        misses.push(forest.stats().cache_misses - before);
        if pass == 0 {
            for i in 0..n {
                tree.insert(&key(i), &value(i, 2)).unwrap();
            }
            forest.commit().unwrap();
            forest.checkpoint().unwrap();
        }
    }
    assert!(
        misses[1..].iter().all(|&m| m > 0),
        "no leaf was evicted, so no weak reference was tested: {misses:?}"
    );
    assert_eq!(tree.get(&key(5)).unwrap(), Some(value(5, 2)));
    assert_clean(&forest);
}

/// A tree's range goes on with the tree as it was when `range` was called.
#[test]
fn a_range_iterates_the_tree_as_it_was_when_called() {
    let forest = Forest::in_memory(small()).unwrap();
    let mut now = Models::new();
    create(&forest, &mut now, "t", 0..3000, 0);
    let want = entries(&now["t"]);
    let tree = forest.tree("t").unwrap().unwrap();
    let mut range = tree.range(..).unwrap();
    let mut front: Entries = range.by_ref().take(100).collect::<Result<_, _>>().unwrap();
    let back: Entries = range
        .by_ref()
        .rev()
        .take(100)
        .collect::<Result<_, _>>()
        .unwrap();
    put(&forest, &mut now, "t", 0..3000, 1);
    tree.remove_range(key(500).as_slice()..key(2500).as_slice())
        .unwrap();
    forest.commit().unwrap();
    forest.checkpoint().unwrap();
    tree.remove_range(..).unwrap();
    front.extend(range.map(|e| e.unwrap()));
    front.extend(back.into_iter().rev());
    assert!(front == want, "{}", first_difference(&front, &want));
    assert_eq!(tree.count_range(..).unwrap(), 0);
    assert_clean(&forest);
}

// 2. Readers on other threads see whole operations only.

/// Keys of the tree the wave writer rewrites.
const WAVE_KEYS: u32 = 200;
/// Rounds the wave writer runs.
const WAVE_ROUNDS: u32 = 24;

/// The value the wave writer gives key `i` in round `round`: the round
/// first, then a length that changes with the round (splits and merges).
fn wave_value(round: u32, i: u32) -> Vec<u8> {
    let mut v = round.to_be_bytes().to_vec();
    v.resize(4 + ((round * 11 + i) % 37) as usize, b'w');
    v
}

/// The round of each entry of a scan of the wave tree; an error unless
/// every key is there with a value the writer wrote.
fn wave_rounds(entries: &[(Vec<u8>, Vec<u8>)]) -> Result<Vec<u32>, String> {
    if entries.len() != WAVE_KEYS as usize {
        return Err(format!("{} entries, want {WAVE_KEYS}", entries.len()));
    }
    let mut rounds = Vec::with_capacity(entries.len());
    for (i, (k, v)) in (0..).zip(entries) {
        if *k != key(i) {
            return Err(format!("entry {i} has key {}", String::from_utf8_lossy(k)));
        }
        let head = v.get(..4).and_then(|b| b.try_into().ok());
        let round = u32::from_be_bytes(head.ok_or("short value")?);
        if *v != wave_value(round, i) {
            return Err(format!("key {i} has a value no round wrote"));
        }
        rounds.push(round);
    }
    Ok(rounds)
}

/// Checks that a scan of the wave tree shows the state after a whole
/// number of the writer's inserts: round `r` written to a prefix of the
/// keys, round `r - 1` after it. Returns (last round, first round) seen.
fn check_wave(entries: &[(Vec<u8>, Vec<u8>)]) -> Result<(u32, u32), String> {
    let rounds = wave_rounds(entries)?;
    let (head, tail) = (rounds[0], rounds[rounds.len() - 1]);
    let monotone = rounds.windows(2).all(|w| w[0] >= w[1]);
    if !monotone || head > tail + 1 {
        return Err(format!("a mixed view: rounds {rounds:?}"));
    }
    Ok((tail, head))
}

/// Every entry of `view`, read backward, in key order.
fn read_backward(view: &View) -> Result<Entries, String> {
    let range = view.range(..).map_err(|e| e.to_string())?;
    let mut entries: Entries = range
        .rev()
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    entries.reverse();
    Ok(entries)
}

/// Checks a whole snapshot of the wave forest: tree `t` as [`check_wave`];
/// tree `prev`, the clone taken after each round, all of one round that
/// agrees with `t`.
fn check_wave_snapshot(snapshot: &Snapshot) -> Result<(), String> {
    let t = snapshot.tree("t").ok_or("no tree t")?;
    let range = t.range(..).map_err(|e| e.to_string())?;
    let scanned: Entries = range.collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    let (tail, head) = check_wave(&scanned)?;
    if t.count_range(..).map_err(|e| e.to_string())? != u64::from(WAVE_KEYS) {
        return Err("count_range disagrees with the scan".into());
    }
    let Some(prev) = snapshot.tree("prev") else {
        // Between the writer's remove_tree and clone_tree.
        return if head == tail {
            Ok(())
        } else {
            Err("no prev mid-round".into())
        };
    };
    let rounds = wave_rounds(&read_backward(&prev)?)?;
    let round = rounds[0];
    if rounds.iter().any(|&r| r != round) {
        return Err(format!("prev is mixed: {rounds:?}"));
    }
    // Mid-round, prev is the round before; between rounds, the writer may
    // have replaced it or not yet.
    let agrees = if head == tail {
        round + 1 == head || round == head
    } else {
        round == tail
    };
    if !agrees {
        return Err(format!(
            "prev holds round {round} beside t at rounds {head}/{tail}"
        ));
    }
    Ok(())
}

#[test]
fn the_wave_check_rejects_mixed_views() {
    let state = |rounds: &[u32]| -> Entries {
        (0..)
            .zip(rounds)
            .map(|(i, &r)| (key(i), wave_value(r, i)))
            .collect()
    };
    let wave = |runs: &[(u32, u32)]| -> Vec<u32> {
        runs.iter()
            .flat_map(|&(r, n)| std::iter::repeat_n(r, n as usize))
            .collect()
    };
    assert_eq!(check_wave(&state(&wave(&[(3, 50), (2, 150)]))), Ok((2, 3)));
    assert_eq!(check_wave(&state(&wave(&[(3, 200)]))), Ok((3, 3)));
    // Leaves read from two moments of the writer.
    let torn = wave(&[(3, 20), (2, 80), (3, 50), (2, 50)]);
    assert!(check_wave(&state(&torn)).is_err());
    assert!(check_wave(&state(&wave(&[(4, 10), (2, 190)]))).is_err());
    let mut missing = state(&wave(&[(3, 200)]));
    missing.remove(77);
    assert!(check_wave(&missing).is_err());
    let mut stale = state(&wave(&[(3, 200)]));
    stale[5].1 = wave_value(3, 6);
    assert!(check_wave(&stale).is_err());
}

/// A forest with the wave tree at round 0 and its clone `prev`, committed.
fn wave_forest() -> Forest {
    let forest = Forest::in_memory(small().node_size(256)).unwrap();
    let t = forest.create_tree("t").unwrap();
    for i in 0..WAVE_KEYS {
        t.insert(&key(i), &wave_value(0, i)).unwrap();
    }
    forest.clone_tree("t", "prev").unwrap();
    forest.commit().unwrap();
    forest
}

/// Waits until some reader finished a read after `*seen` reads, so reads
/// are spread over the whole run of the writer.
fn wait_for_a_read(reads: &AtomicU64, seen: &mut u64) {
    while reads.load(Ordering::Acquire) == *seen {
        std::thread::yield_now();
    }
    *seen = reads.load(Ordering::Acquire);
}

/// The writer: each round rewrites every key in order, then replaces
/// `prev` with a clone of `t`; commits every 50 inserts, checkpoints every
/// fourth round, and lets a read happen at each commit.
fn run_wave_writer(forest: &Forest, reads: &AtomicU64) {
    let t = forest.tree("t").unwrap().unwrap();
    let mut seen = 0;
    for round in 1..=WAVE_ROUNDS {
        for i in 0..WAVE_KEYS {
            t.insert(&key(i), &wave_value(round, i)).unwrap();
            if i % 50 == 49 {
                forest.commit().unwrap();
                wait_for_a_read(reads, &mut seen);
            }
        }
        forest.remove_tree("prev").unwrap();
        forest.clone_tree("t", "prev").unwrap();
        if round % 4 == 0 {
            forest.checkpoint().unwrap();
        }
    }
    forest.commit().unwrap();
}

/// Runs the wave writer beside three readers, each calling `read` until
/// the writer is done (and at least 5 times); asserts every read passed.
fn beside_the_wave_writer(read: impl Fn(&Forest, u64) -> Result<(), String> + Sync) {
    let forest = wave_forest();
    let done = AtomicBool::new(false);
    let reads = AtomicU64::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                for n in 0.. {
                    if n >= 5 && done.load(Ordering::Acquire) {
                        break;
                    }
                    // A failed read is recorded, and reading goes on: the
                    // writer waits for reads.
                    if let Err(e) = read(&forest, n) {
                        failures.lock().unwrap().push(format!("read {n}: {e}"));
                    }
                    reads.fetch_add(1, Ordering::AcqRel);
                }
            });
        }
        run_wave_writer(&forest, &reads);
        done.store(true, Ordering::Release);
    });
    let failures = failures.into_inner().unwrap();
    let total = reads.load(Ordering::Acquire);
    assert!(
        failures.is_empty(),
        "{} of {total} reads failed; the first: {}",
        failures.len(),
        failures[0]
    );
    let final_round: Entries = (0..WAVE_KEYS)
        .map(|i| (key(i), wave_value(WAVE_ROUNDS, i)))
        .collect();
    let t = forest.tree("t").unwrap().unwrap();
    assert_eq!(scan(t.range(..).unwrap()), final_round);
    assert_eq!(
        scan(forest.tree("prev").unwrap().unwrap().range(..).unwrap()),
        final_round
    );
    assert_clean(&forest);
}

#[test]
fn snapshots_on_other_threads_never_see_half_the_writers_work() {
    beside_the_wave_writer(|forest, _| {
        let snapshot = forest.snapshot().map_err(|e| e.to_string())?;
        check_wave_snapshot(&snapshot)
    });
}

#[test]
fn ranges_on_other_threads_never_see_half_the_writers_work() {
    beside_the_wave_writer(|forest, n| {
        let t = forest.tree("t").unwrap().unwrap();
        let range = t.range(..).map_err(|e| e.to_string())?;
        let mut scanned: Entries = Vec::new();
        if n % 2 == 0 {
            // Slowly, giving the writer time to change the tree meanwhile.
            for (i, entry) in range.enumerate() {
                scanned.push(entry.map_err(|e| e.to_string())?);
                if i % 20 == 0 {
                    std::thread::yield_now();
                }
            }
        } else {
            scanned = range
                .rev()
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            scanned.reverse();
        }
        check_wave(&scanned).map(drop)
    });
}

// 3. Rollback.

/// Commits trees, changes every kind of thing without committing, rolls
/// back and checks the forest is the committed one; then writes, commits
/// and (if `dir` is given) reopens.
fn rollback_returns_to_the_last_commit(forest: Forest, dir: Option<&Path>) {
    let mut committed = Models::new();
    create(&forest, &mut committed, "a", 0..1200, 0);
    create(&forest, &mut committed, "b", 0..800, 0);
    forest.commit().unwrap();
    forest.checkpoint().unwrap();
    // Commits after the checkpoint: the rollback replays them.
    put(&forest, &mut committed, "a", (0..1200).step_by(7), 1);
    create(&forest, &mut committed, "e", 0..200, 1);
    forest.commit().unwrap();
    remove(&forest, &mut committed, "b", (0..800).step_by(5));
    forest.commit().unwrap();
    let nodes = forest.stats().nodes;

    let mut changed = committed.clone();
    put(&forest, &mut changed, "a", 0..400, 2);
    create(&forest, &mut changed, "c", 0..300, 2);
    forest.clone_tree("a", "a2").unwrap();
    changed.insert("a2".into(), changed["a"].clone());
    put(&forest, &mut changed, "a2", 400..800, 3);
    forest.remove_tree("b").unwrap();
    changed.remove("b");
    remove_range(&forest, &mut changed, "a", 100, 1100);
    forest.remove_tree("e").unwrap();
    changed.remove("e");
    // A name removed and given to another tree.
    forest.clone_tree("c", "b").unwrap();
    changed.insert("b".into(), changed["c"].clone());
    assert_forest_is(&forest, &changed, "before the rollback");
    assert_ne!(forest.stats().nodes, nodes, "the changes made no nodes");

    forest.rollback().unwrap();
    assert_eq!(
        forest.tree_names(),
        committed.keys().cloned().collect::<Vec<_>>()
    );
    assert_forest_is(&forest, &committed, "after the rollback");
    assert_eq!(
        forest.stats().nodes,
        nodes,
        "the nodes made since the commit were not freed"
    );
    assert_clean(&forest);

    let mut now = committed;
    put(&forest, &mut now, "b", 800..900, 4);
    create(&forest, &mut now, "f", 0..100, 4);
    forest.commit().unwrap();
    assert_forest_is(&forest, &now, "after the commit that followed");
    assert_clean(&forest);
    let nodes = forest.stats().nodes;
    drop(forest);
    if let Some(dir) = dir {
        let forest = Forest::open(dir, small()).unwrap();
        assert_forest_is(&forest, &now, "reopened");
        assert_eq!(forest.stats().nodes, nodes);
        assert_clean(&forest);
    }
}

#[test]
fn rollback_returns_to_the_last_commit_in_memory() {
    rollback_returns_to_the_last_commit(Forest::in_memory(small()).unwrap(), None);
}

#[test]
fn rollback_returns_to_the_last_commit_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let forest = Forest::open(dir.path(), small()).unwrap();
    rollback_returns_to_the_last_commit(forest, Some(dir.path()));
}

#[test]
fn a_rolled_back_change_spilled_to_the_log_is_gone_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let options = || {
        Options::default()
            .filters(vec![])
            .workers(2)
            .cache_bytes(64 << 20)
    };
    let forest = Forest::open(dir.path(), options()).unwrap();
    let mut committed = Models::new();
    // A tree large enough that a change spread over it dirties more than
    // four times the bytes of its operations: it spills to the log rather
    // than overflowing it (L6).
    let n = 20_000u32;
    let large = |i: u32, tag: u8| vec![tag.wrapping_add(i as u8); 300];
    create(&forest, &mut committed, "t", std::iter::empty(), 0);
    let t = forest.tree("t").unwrap().unwrap();
    for i in 0..n {
        t.insert(&key(i), &large(i, 0)).unwrap();
        committed.get_mut("t").unwrap().insert(key(i), large(i, 0));
    }
    forest.commit().unwrap();
    let records = forest.stats().log_records;

    forest.create_tree("spilled").unwrap();
    for i in 0..5_000u32 {
        let i = i.wrapping_mul(7_919) % n;
        t.insert(&key(i), &large(i, 1)).unwrap();
    }
    drop(t);
    forest.remove_tree("spilled").unwrap();
    forest.create_tree("late").unwrap();
    assert!(
        forest.stats().log_records > records,
        "the uncommitted change was not spilled to the log"
    );
    forest.rollback().unwrap();
    assert_forest_is(&forest, &committed, "after the rollback");

    put(&forest, &mut committed, "t", 0..3, 1);
    forest.commit().unwrap();
    assert_forest_is(&forest, &committed, "after the commit");
    assert_clean(&forest);
    drop(forest);
    let forest = Forest::open(dir.path(), options()).unwrap();
    assert_forest_is(&forest, &committed, "reopened");
    assert_clean(&forest);
}

#[test]
fn rollback_with_nothing_changed_is_a_no_op() {
    let forest = Forest::in_memory(small()).unwrap();
    forest.rollback().unwrap();
    assert!(forest.tree_names().is_empty());

    let mut committed = Models::new();
    create(&forest, &mut committed, "a", 0..1000, 0);
    forest.commit().unwrap();
    forest.checkpoint().unwrap();
    // Log records since the checkpoint, which a rollback would replay.
    create(&forest, &mut committed, "b", 0..500, 0);
    forest.commit().unwrap();
    let before = forest.stats();
    forest.rollback().unwrap();
    let after = forest.stats();
    assert_eq!(
        (
            after.nodes,
            after.retired_nodes,
            after.pins,
            after.commits,
            after.log_records
        ),
        (
            before.nodes,
            before.retired_nodes,
            before.pins,
            before.commits,
            before.log_records
        )
    );
    assert_forest_is(&forest, &committed, "after the rollback");

    // A second rollback right after one undoes nothing more.
    put(&forest, &mut committed.clone(), "a", 0..100, 1);
    forest.rollback().unwrap();
    let nodes = forest.stats().nodes;
    forest.rollback().unwrap();
    assert_eq!(forest.stats().nodes, nodes);
    assert_forest_is(&forest, &committed, "after two rollbacks");
    assert_clean(&forest);
}

#[test]
fn rollback_keeps_what_snapshots_taken_before_it_show() {
    let forest = Forest::in_memory(small()).unwrap();
    let mut committed = Models::new();
    create(&forest, &mut committed, "a", 0..1500, 0);
    create(&forest, &mut committed, "b", 0..500, 0);
    forest.commit().unwrap();
    let at_commit = forest.snapshot().unwrap();

    let mut changed = committed.clone();
    put(&forest, &mut changed, "a", 0..1500, 1);
    forest.remove_tree("b").unwrap();
    changed.remove("b");
    create(&forest, &mut changed, "c", 0..500, 1);
    let uncommitted = forest.snapshot().unwrap();
    let view_c = uncommitted.tree("c").unwrap();

    forest.rollback().unwrap();
    assert_forest_is(&forest, &committed, "after the rollback");
    assert_snapshot_is(&at_commit, &committed, "after the rollback");
    assert_snapshot_is(&uncommitted, &changed, "after the rollback");

    let mut now = committed.clone();
    remove_range(&forest, &mut now, "a", 0, 1400);
    create(&forest, &mut now, "c", 0..50, 2);
    forest.commit().unwrap();
    forest.checkpoint().unwrap();
    assert_snapshot_is(&at_commit, &committed, "after later commits");
    assert_snapshot_is(&uncommitted, &changed, "after later commits");
    drop(uncommitted);
    assert_view_is(&view_c, &changed["c"], "after its snapshot was dropped");
    drop((view_c, at_commit));
    assert_forest_is(&forest, &now, "at the end");
    assert_clean(&forest);
}

// 4. A crash image taken beside a live snapshot (P3).

#[test]
fn a_crash_image_taken_while_a_snapshot_lives_opens_clean_without_leaks() {
    let dir = tempfile::tempdir().unwrap();
    let forest = Forest::open(dir.path(), small()).unwrap();
    let mut now = Models::new();
    create(&forest, &mut now, "a", 0..2000, 0);
    create(&forest, &mut now, "b", 0..2000, 0);
    forest.commit().unwrap();
    let snapshot = forest.snapshot().unwrap();
    let seen = now.clone();

    put(&forest, &mut now, "a", 0..2000, 1);
    forest.remove_tree("b").unwrap();
    now.remove("b");
    forest.clone_tree("a", "c").unwrap();
    now.insert("c".into(), now["a"].clone());
    remove_range(&forest, &mut now, "c", 100, 1900);
    create(&forest, &mut now, "d", 0..500, 1);
    forest.commit().unwrap();
    forest.checkpoint().unwrap();
    let stats = forest.stats();
    assert!(
        stats.retired_nodes > 0,
        "the snapshot keeps nothing: {stats:?}"
    );

    let image = tempfile::tempdir().unwrap();
    copy_store(dir.path(), image.path());
    let copy = Forest::open(image.path(), small()).unwrap();
    assert_clean(&copy);
    assert_eq!(
        copy.stats().nodes,
        stats.nodes,
        "the image leaks or lost nodes"
    );
    assert_eq!(copy.stats().retired_nodes, 0);
    assert_forest_is(&copy, &now, "the crash image");

    assert_snapshot_is(&snapshot, &seen, "after the image was taken");
    drop(snapshot);
    assert_forest_is(&forest, &now, "the original");
    assert_clean(&forest);
}

// 5. Dropping the last handle frees what only it kept (P2).

/// No checkpoint runs: the rollback base stays the state the forest opened
/// with, pinned before the snapshot, and it reaches none of the nodes the
/// snapshot kept, so they must go with the snapshot.
#[test]
fn dropping_the_last_snapshot_handle_frees_what_only_it_kept() {
    let forest = Forest::in_memory(small()).unwrap();
    let mut now = Models::new();
    create(&forest, &mut now, "t", 0..3000, 0);
    forest.commit().unwrap();
    assert_eq!(forest.stats().pins, 1, "the rollback base's pin only");
    let snapshot = forest.snapshot().unwrap();
    let view = snapshot.tree("t").unwrap();
    let seen = now.clone();
    assert_eq!(forest.stats().pins, 2);

    put(&forest, &mut now, "t", 0..3000, 1);
    remove_range(&forest, &mut now, "t", 1000, 2000);
    forest.commit().unwrap();
    assert!(forest.stats().retired_nodes > 0, "{:?}", forest.stats());
    drop(snapshot);
    // The view alone keeps the snapshot's nodes.
    forest.commit().unwrap();
    assert!(forest.stats().retired_nodes > 0, "{:?}", forest.stats());
    assert_view_is(&view, &seen["t"], "after its snapshot was dropped");
    drop(view);
    forest.commit().unwrap();
    let stats = forest.stats();
    assert_eq!(stats.retired_nodes, 0, "{stats:?}");
    assert_eq!(stats.pins, 1, "{stats:?}");
    assert_forest_is(&forest, &now, "at the end");
    assert_clean(&forest);
}

/// As above, with a checkpoint after the rewrite: the rollback base moves
/// past it, so the snapshot alone keeps the old nodes, and dropping it
/// frees them at once.
#[test]
fn dropping_the_last_snapshot_handle_after_a_checkpoint_frees_at_once() {
    drop_after_a_checkpoint(3000);
}

/// The same with thousands of retired nodes: dropping the last handle
/// frees them a slice at a time (the state lock is taken once per slice,
/// so a writer never waits for the whole release), all of them.
#[test]
fn dropping_a_snapshot_that_kept_thousands_of_nodes_frees_them_all() {
    assert!(drop_after_a_checkpoint(40_000) > 2_000);
}

/// Tree "t" of `keys` keys, checkpointed, a snapshot of it, every key
/// rewritten and checkpointed again: the snapshot alone keeps the old
/// nodes, and dropping it frees them at once. Returns how many it kept.
fn drop_after_a_checkpoint(keys: u32) -> u64 {
    let forest = Forest::in_memory(small()).unwrap();
    let mut now = Models::new();
    create(&forest, &mut now, "t", 0..keys, 0);
    forest.checkpoint().unwrap();
    let snapshot = forest.snapshot().unwrap();
    let seen = now.clone();
    put(&forest, &mut now, "t", 0..keys, 1);
    forest.checkpoint().unwrap();
    let stats = forest.stats();
    assert!(stats.retired_nodes > 0, "{stats:?}");
    assert_eq!(stats.pins, 2, "{stats:?}");
    let kept = stats.retired_nodes;
    assert_snapshot_is(&snapshot, &seen, "after the checkpoint");
    drop(snapshot);
    let stats = forest.stats();
    assert_eq!((stats.retired_nodes, stats.pins), (0, 1), "{stats:?}");
    assert_forest_is(&forest, &now, "at the end");
    assert_clean(&forest);
    kept
}

#[test]
fn ranges_and_diffs_pin_only_while_they_live() {
    let forest = Forest::in_memory(small()).unwrap();
    let mut now = Models::new();
    create(&forest, &mut now, "t", 0..2000, 0);
    forest.clone_tree("t", "u").unwrap();
    now.insert("u".into(), now["t"].clone());
    forest.checkpoint().unwrap();
    let pins = forest.stats().pins;
    let t = forest.tree("t").unwrap().unwrap();
    let u = forest.tree("u").unwrap().unwrap();
    let mut range = t.range(..).unwrap();
    let diff = t.diff(&u).unwrap();
    assert_eq!(forest.stats().pins, pins + 2);
    assert!(range.next().is_some());

    put(&forest, &mut now, "t", 0..2000, 1);
    put(&forest, &mut now, "u", 0..2000, 2);
    forest.checkpoint().unwrap();
    assert!(forest.stats().retired_nodes > 0);
    assert_eq!(range.count(), 1999);
    assert_eq!(diff.count(), 0, "the clone as it was is the same tree");
    let stats = forest.stats();
    assert_eq!((stats.pins, stats.retired_nodes), (pins, 0), "{stats:?}");
    assert_forest_is(&forest, &now, "at the end");
    assert_clean(&forest);
}

// 6. Diff against a model.

/// A key of the diff and range properties.
fn pkey(k: u16) -> Vec<u8> {
    let mut v = format!("p{k:05}").into_bytes();
    v.extend(std::iter::repeat_n(b'-', usize::from(k % 5)));
    v
}

fn pvalue(k: u16, tag: u8) -> Vec<u8> {
    vec![tag; 1 + usize::from(k % 13) + usize::from(tag % 3)]
}

#[derive(Debug, Clone)]
enum Edit {
    Put(u16, u8),
    Remove(u16),
    RemoveRange(Bound<u16>, Bound<u16>),
}

fn bound(max: u16) -> impl Strategy<Value = Bound<u16>> {
    prop_oneof![
        Just(Bound::Unbounded),
        (0..max).prop_map(Bound::Included),
        (0..max).prop_map(Bound::Excluded),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        8 => (0u16..400, any::<u8>()).prop_map(|(k, t)| Edit::Put(k, t)),
        4 => (0u16..400).prop_map(Edit::Remove),
        1 => (bound(400), bound(400)).prop_map(|(a, b)| Edit::RemoveRange(a, b)),
    ]
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    proptest::collection::vec(edit(), 0..60)
}

fn pmodel() -> impl Strategy<Value = Model> {
    proptest::collection::btree_map(0u16..400, any::<u8>(), 0..300).prop_map(|m| {
        m.into_iter()
            .map(|(k, t)| (pkey(k), pvalue(k, t)))
            .collect()
    })
}

fn key_bound(b: Bound<u16>) -> Bound<Vec<u8>> {
    b.map(pkey)
}

/// Whether `BTreeMap::range` accepts the bounds (it panics on inverted or
/// empty-excluded ones; Larix yields nothing for them).
fn valid(lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> bool {
    match (lo, hi) {
        (Bound::Included(a), Bound::Included(b)) => a <= b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b)) => a < b,
        _ => true,
    }
}

fn model_range(m: &Model, lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> Entries {
    if !valid(lo, hi) {
        return Vec::new();
    }
    m.range::<Vec<u8>, _>((lo.clone(), hi.clone()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn slices<'a>(
    lo: &'a Bound<Vec<u8>>,
    hi: &'a Bound<Vec<u8>>,
) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    (
        lo.as_ref().map(Vec::as_slice),
        hi.as_ref().map(Vec::as_slice),
    )
}

/// Applies `edit` to `tree` and `model`.
fn apply(tree: &Tree, model: &mut Model, edit: &Edit) {
    match *edit {
        Edit::Put(k, t) => {
            tree.insert(&pkey(k), &pvalue(k, t)).unwrap();
            model.insert(pkey(k), pvalue(k, t));
        }
        Edit::Remove(k) => {
            assert_eq!(
                tree.remove(&pkey(k)).unwrap(),
                model.remove(&pkey(k)).is_some()
            );
        }
        Edit::RemoveRange(a, b) => {
            let (lo, hi) = (key_bound(a), key_bound(b));
            let doomed = model_range(model, &lo, &hi);
            assert_eq!(
                tree.remove_range(slices(&lo, &hi)).unwrap(),
                doomed.len() as u64
            );
            for (k, _) in doomed {
                model.remove(&k);
            }
        }
    }
}

/// A tree `name` of `forest` holding `model`.
fn tree_of(forest: &Forest, name: &str, model: &Model) -> Tree {
    let tree = forest.create_tree(name).unwrap();
    for (k, v) in model {
        tree.insert(k, v).unwrap();
    }
    tree
}

/// The changes that turn `old` into `new`, by key.
fn model_diff(old: &Model, new: &Model) -> Vec<Change> {
    let keys: BTreeSet<&Vec<u8>> = old.keys().chain(new.keys()).collect();
    let change = |k: &Vec<u8>| {
        let (o, n) = (old.get(k), new.get(k));
        (o != n).then(|| Change {
            key: k.clone(),
            old: o.cloned(),
            new: n.cloned(),
        })
    };
    keys.into_iter().filter_map(change).collect()
}

/// Checks that `diff` yields `want`: keys strictly increasing, never
/// `old == new`, never both `None`.
fn check_diff(diff: Diff, want: &[Change]) -> Result<(), TestCaseError> {
    let got: Vec<Change> = diff.collect::<Result<_, _>>().unwrap();
    for pair in got.windows(2) {
        prop_assert!(pair[0].key < pair[1].key, "keys not strictly increasing");
    }
    for change in &got {
        prop_assert!(change.old != change.new, "old == new for {:?}", change.key);
        prop_assert!(change.old.is_some() || change.new.is_some());
    }
    prop_assert_eq!(got, want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn diff_of_changed_clones_matches_the_model(
        base in pmodel(), on_clone in edits(), on_base in edits()
    ) {
        let forest = Forest::in_memory(small().node_size(256)).unwrap();
        let a = tree_of(&forest, "a", &base);
        let b = forest.clone_tree("a", "b").unwrap();
        let (mut ma, mut mb) = (base.clone(), base);
        for e in &on_clone {
            apply(&b, &mut mb, e);
        }
        check_diff(a.diff(&b).unwrap(), &model_diff(&ma, &mb))?;
        for e in &on_base {
            apply(&a, &mut ma, e);
        }
        check_diff(a.diff(&b).unwrap(), &model_diff(&ma, &mb))?;
        check_diff(b.diff(&a).unwrap(), &model_diff(&mb, &ma))?;
        check_diff(a.diff(&a).unwrap(), &[])?;
        assert_clean(&forest);
    }

    #[test]
    fn diff_of_unrelated_trees_matches_the_model(ma in pmodel(), mb in pmodel()) {
        let forest = Forest::in_memory(small().node_size(256)).unwrap();
        let a = tree_of(&forest, "a", &ma);
        let b = tree_of(&forest, "b", &mb);
        check_diff(a.diff(&b).unwrap(), &model_diff(&ma, &mb))?;
        check_diff(b.diff(&a).unwrap(), &model_diff(&mb, &ma))?;
        // Trees of two forests: node ids mean different nodes there.
        let other = Forest::in_memory(small().node_size(256)).unwrap();
        let c = tree_of(&other, "a", &mb);
        check_diff(a.diff(&c).unwrap(), &model_diff(&ma, &mb))?;
        check_diff(a.view().unwrap().diff(&c.view().unwrap()).unwrap(), &model_diff(&ma, &mb))?;
        assert_clean(&forest);
    }

    #[test]
    fn diff_of_one_tree_across_time_matches_the_model(
        base in pmodel(), first in edits(), second in edits()
    ) {
        let forest = Forest::in_memory(small().node_size(256)).unwrap();
        let t = tree_of(&forest, "t", &base);
        let at1 = forest.snapshot().unwrap().tree("t").unwrap();
        let mut m = base.clone();
        for e in &first {
            apply(&t, &mut m, e);
        }
        let m2 = m.clone();
        let at2 = t.view().unwrap();
        forest.commit().unwrap();
        for e in &second {
            apply(&t, &mut m, e);
        }
        let at3 = forest.snapshot().unwrap().tree("t").unwrap();
        t.remove_range(..).unwrap();
        check_diff(at1.diff(&at2).unwrap(), &model_diff(&base, &m2))?;
        check_diff(at2.diff(&at3).unwrap(), &model_diff(&m2, &m))?;
        check_diff(at1.diff(&at3).unwrap(), &model_diff(&base, &m))?;
        check_diff(at3.diff(&at1).unwrap(), &model_diff(&m, &base))?;
        assert_clean(&forest);
    }

    #[test]
    fn diff_after_reopen_matches_the_model(base in pmodel(), on_clone in edits()) {
        let dir = tempfile::tempdir().unwrap();
        let mut mb = base.clone();
        {
            let forest = Forest::open(dir.path(), small().node_size(256)).unwrap();
            tree_of(&forest, "a", &base);
            let b = forest.clone_tree("a", "b").unwrap();
            for e in &on_clone {
                apply(&b, &mut mb, e);
            }
            forest.commit().unwrap();
        }
        let forest = Forest::open(dir.path(), small().node_size(256)).unwrap();
        let (a, b) = (forest.tree("a").unwrap().unwrap(), forest.tree("b").unwrap().unwrap());
        check_diff(a.diff(&b).unwrap(), &model_diff(&base, &mb))?;
        let snapshot = forest.snapshot().unwrap();
        let (va, vb) = (snapshot.tree("a").unwrap(), snapshot.tree("b").unwrap());
        check_diff(vb.diff(&va).unwrap(), &model_diff(&mb, &base))?;
        assert_clean(&forest);
    }
}

// 7. Snapshots and views can go anywhere.

/// Compiles only if `T` can be shared with and kept by other threads.
fn shareable<T: Clone + Send + Sync + 'static>(value: T) -> T {
    value
}

#[test]
fn snapshots_and_views_are_clone_send_sync_and_static() {
    let forest = Forest::in_memory(small()).unwrap();
    let mut now = Models::new();
    create(&forest, &mut now, "t", 0..100, 0);
    let snapshot = shareable(forest.snapshot().unwrap());
    let view = shareable(snapshot.tree("t").unwrap());
    let (snapshot, view) = std::thread::spawn(move || (snapshot.clone(), view.clone()))
        .join()
        .unwrap();
    drop(forest);
    assert_snapshot_is(&snapshot, &now, "after the forest handle was dropped");
    assert_view_is(&view, &now["t"], "on another thread");
}

// 8. Range cursors against a model.

/// One range query, then how to walk it: `true` takes from the front.
type Query = (Bound<u16>, Bound<u16>, Vec<bool>);

fn query() -> impl Strategy<Value = Query> {
    let near = (0u16..3000).prop_flat_map(|k| {
        // Empty and one-key ranges around one point.
        let bounds = [Bound::Included(k), Bound::Excluded(k)];
        (
            proptest::sample::select(bounds.to_vec()),
            proptest::sample::select(bounds.to_vec()),
        )
    });
    let pair = prop_oneof![3 => (bound(3000), bound(3000)), 1 => near];
    (pair, proptest::collection::vec(any::<bool>(), 0..80)).prop_map(|((a, b), m)| (a, b, m))
}

/// Walks `range` as `moves` says, then drains it from alternating ends,
/// against `want`; then both ends stay empty.
fn walk(mut range: larix::Range, want: Entries, moves: &[bool]) -> Result<(), TestCaseError> {
    let mut want: VecDeque<_> = want.into();
    let alternate = (0..).map(|n| n % 2 == 0);
    for (step, front) in moves.iter().copied().chain(alternate).enumerate() {
        let (got, expected) = if front {
            (range.next(), want.pop_front())
        } else {
            (range.next_back(), want.pop_back())
        };
        let got = got.transpose().unwrap();
        prop_assert_eq!(
            &got,
            &expected,
            "step {} from the {}",
            step,
            if front { "front" } else { "back" }
        );
        if got.is_none() && step >= moves.len() {
            break;
        }
    }
    prop_assert!(range.next().is_none() && range.next_back().is_none());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn range_cursors_on_a_deep_tree_match_the_model(
        keys in proptest::collection::btree_set(0u16..3000, 0..1500),
        queries in proptest::collection::vec(query(), 1..12),
    ) {
        let forest = Forest::in_memory(small().node_size(256)).unwrap();
        let model: Model = keys.iter().map(|&k| (pkey(k), pvalue(k, k as u8))).collect();
        let tree = tree_of(&forest, "t", &model);
        let snapshot = forest.snapshot().unwrap();
        let view = snapshot.tree("t").unwrap();
        // Later writes change neither the view nor a range taken before.
        let early = tree.range(..).unwrap();
        tree.remove_range(..).unwrap();
        walk(early, entries(&model), &[])?;
        for (lo, hi, moves) in &queries {
            let (lo, hi) = (key_bound(*lo), key_bound(*hi));
            let want = model_range(&model, &lo, &hi);
            let forward: Entries = view.range(slices(&lo, &hi)).unwrap().collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(&forward, &want, "forward {:?}..{:?}", lo, hi);
            let mut backward: Entries =
                view.range(slices(&lo, &hi)).unwrap().rev().collect::<Result<_, _>>().unwrap();
            backward.reverse();
            prop_assert_eq!(&backward, &want, "backward {:?}..{:?}", lo, hi);
            prop_assert_eq!(view.count_range(slices(&lo, &hi)).unwrap(), want.len() as u64);
            prop_assert_eq!(view.range_is_empty(slices(&lo, &hi)).unwrap(), want.is_empty());
            walk(view.range(slices(&lo, &hi)).unwrap(), want, moves)?;
        }
        assert_clean(&forest);
    }
}

/// Regression: the checkpoint's freeze had the release thread free the
/// nodes the old rollback base let go, and wrote the dirty ones still
/// queued: every version a batch copied under a snapshot since the last
/// checkpoint, dead, reached the segments (writes bounded by the copies
/// made, not by the nodes live).
#[test]
fn a_checkpoint_writes_no_node_the_snapshots_let_go() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options::default().filters(vec![]).cache_bytes(64 << 20);
    let forest = Forest::open(dir.path(), options).unwrap();
    let t = forest.create_tree("t").unwrap();
    for i in 0..20_000 {
        t.insert(&key(i), &value(i, 0)).unwrap();
    }
    forest.checkpoint().unwrap();
    // Each batch copies the leaves it changes, the last batch's copies
    // among them, for the snapshot taken before it: they are retired
    // behind the base's, and let go when the base moves.
    let mut x = 7u32;
    for round in 1..=50 {
        let snapshot = forest.snapshot().unwrap();
        let batch: Vec<(Vec<u8>, Vec<u8>)> = (0..200)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let i = (x >> 8) % 20_000;
                (key(i), value(i, round))
            })
            .collect();
        t.insert_batch(batch.iter().map(|(k, v)| (k, v))).unwrap();
        drop(snapshot);
    }
    forest.commit().unwrap();
    let before = forest.stats();
    forest.checkpoint().unwrap();
    let after = forest.stats();
    let written = after.blobs_written - before.blobs_written;
    assert!(
        written <= after.nodes,
        "the checkpoint wrote {written} nodes where {} are live",
        after.nodes
    );
    assert_clean(&forest);
}
