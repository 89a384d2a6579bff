//! The write buffer (`docs/design.md`, "Write buffer"): batches held back
//! and applied later must never show: every read, snapshot, write, clone,
//! rollback, checkpoint, close and crash sees the tree as if each batch
//! had been applied when it was inserted.

use larix::{Durability, Forest, Options, Tree};
use larix_nodestore::testing::{CrashMode, FaultyBackend};
use std::collections::BTreeMap;
use std::sync::Arc;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn k(i: u32) -> Vec<u8> {
    // Spread over the key space, so a batch touches many leaves.
    format!("key{:08}", i.wrapping_mul(2_654_435_761) % 100_000_000).into_bytes()
}

fn v(i: u32, round: u32) -> Vec<u8> {
    format!("value {i} of round {round}").into_bytes()
}

fn options() -> Options {
    Options::default()
        .node_size(1024)
        .write_buffer_bytes(1 << 20)
}

fn all(t: &Tree) -> Model {
    t.range(..).unwrap().collect::<Result<_, _>>().unwrap()
}

fn assert_clean(f: &Forest) {
    let report = f.check().unwrap();
    assert!(report.is_clean(), "{report}");
}

/// A tree of 2,000 pairs, committed, and its model.
fn loaded(f: &Forest, name: &str) -> (Tree, Model) {
    let t = f.create_tree(name).unwrap();
    let mut m = Model::new();
    for i in 0..2_000 {
        t.insert(&k(i), &v(i, 0)).unwrap();
        m.insert(k(i), v(i, 0));
    }
    f.commit().unwrap();
    (t, m)
}

/// Inserts pairs `from..to` of `round` as one batch into `t` and `m`.
fn batch(t: &Tree, m: &mut Model, from: u32, to: u32, round: u32) {
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = (from..to).map(|i| (k(i), v(i, round))).collect();
    t.insert_batch(pairs.iter().map(|(k, v)| (k, v))).unwrap();
    m.extend(pairs);
}

#[test]
fn a_buffered_batch_reads_no_node_until_a_read_applies_it() {
    let f = Forest::in_memory(options()).unwrap();
    let (t, mut m) = loaded(&f, "t");
    let reads = f.stats().node_reads();
    batch(&t, &mut m, 1_500, 2_500, 1);
    batch(&t, &mut m, 2_300, 2_600, 2);
    assert_eq!(f.stats().node_reads(), reads, "the batches were held back");
    // 1,300 pairs of 11-byte keys, values of 20 to 22 bytes.
    let held = f.stats().write_buffer_bytes;
    assert!((1_300 * 47..=1_300 * 49).contains(&held), "{held}");
    f.commit().unwrap();
    let logged = f.stats().log_bytes;
    // The first read applies both, the later pair winning.
    assert_eq!(t.get(&k(2_450)).unwrap(), Some(v(2_450, 2)));
    assert!(f.stats().node_reads() > reads);
    assert_eq!(f.stats().write_buffer_bytes, 0);
    assert_eq!(all(&t), m);
    // Applying journaled nothing: the commit after it logs no record.
    f.commit().unwrap();
    assert_eq!(f.stats().log_bytes, logged);
    assert_clean(&f);
}

/// A batch of removals applies the tree's buffer first (a removal must
/// see the buffered pairs), but an empty one changes nothing and applies
/// nothing: the comparison's writer, which removed an empty batch after
/// each batch it inserted, applied its buffer at every commit.
#[test]
fn a_remove_batch_applies_the_buffer_only_if_it_removes() {
    let f = Forest::in_memory(options()).unwrap();
    let (t, mut m) = loaded(&f, "t");
    batch(&t, &mut m, 1_500, 2_500, 1);
    let held = f.stats().write_buffer_bytes;
    assert!(held > 0);
    assert_eq!(t.remove_batch(Vec::<Vec<u8>>::new()).unwrap(), 0);
    assert_eq!(f.stats().write_buffer_bytes, held);
    // A buffered key, removed: the buffer is applied first.
    assert_eq!(t.remove_batch([k(2_400), k(9_999)]).unwrap(), 1);
    m.remove(&k(2_400));
    assert_eq!(f.stats().write_buffer_bytes, 0);
    assert_eq!(all(&t), m);
    assert_clean(&f);
}

/// Checks that a batch of pairs `from..to` into a loaded tree of a forest
/// of `options` is applied at once: it reads nodes.
fn assert_applied_at_once(options: Options, from: u32, to: u32) {
    let f = Forest::in_memory(options).unwrap();
    let (t, mut m) = loaded(&f, "t");
    let reads = f.stats().node_reads();
    batch(&t, &mut m, from, to, 1);
    assert!(f.stats().node_reads() > reads, "the batch was applied");
    assert_eq!(f.stats().write_buffer_bytes, 0);
    assert_eq!(all(&t), m);
}

#[test]
fn a_short_batch_is_applied_at_once() {
    assert_applied_at_once(options(), 5_000, 5_010);
}

#[test]
fn a_limit_of_zero_applies_every_batch_at_once() {
    assert_applied_at_once(options().write_buffer_bytes(0), 1_500, 2_500);
}

#[test]
fn a_full_buffer_is_applied_before_it_takes_more() {
    // Each batch of 300 pairs takes about 300 * (11 + 21 + 16) bytes.
    let f = Forest::in_memory(options().write_buffer_bytes(32 << 10)).unwrap();
    let (t, mut m) = loaded(&f, "t");
    let reads = f.stats().node_reads();
    batch(&t, &mut m, 3_000, 3_300, 1);
    batch(&t, &mut m, 3_300, 3_600, 1);
    assert_eq!(f.stats().node_reads(), reads, "two batches fit");
    batch(&t, &mut m, 3_600, 3_900, 1);
    assert!(f.stats().node_reads() > reads, "the third did not");
    assert_eq!(all(&t), m);
    assert_clean(&f);
}

#[test]
fn every_other_operation_sees_the_buffered_pairs() {
    let f = Forest::in_memory(options()).unwrap();
    let (t, mut m) = loaded(&f, "t");
    let other = f.create_tree("other").unwrap();

    batch(&t, &mut m, 1_800, 2_100, 1);
    t.remove(&k(1_950)).unwrap();
    m.remove(&k(1_950));
    assert_eq!(all(&t), m, "a removal after a batch");

    batch(&t, &mut m, 0, 300, 2);
    t.insert(&k(10), b"single").unwrap();
    m.insert(k(10), b"single".to_vec());
    assert_eq!(t.get(&k(10)).unwrap(), Some(b"single".to_vec()));

    batch(&t, &mut m, 100, 400, 3);
    let (lo, hi) = (
        k(150),
        k(150).into_iter().chain([0xff]).collect::<Vec<u8>>(),
    );
    let removed = t.remove_range(lo.as_slice()..hi.as_slice()).unwrap();
    assert_eq!(removed, 1);
    m.remove(&k(150));

    batch(&t, &mut m, 300, 600, 4);
    let clone = f.clone_tree("t", "c").unwrap();
    assert_eq!(all(&clone), m, "a clone");

    batch(&t, &mut m, 1_000, 1_300, 5);
    let snap = f.snapshot().unwrap();
    batch(&t, &mut m, 1_300, 1_600, 6);
    let view = t.view().unwrap();
    let diff: Vec<_> = clone.diff(&t).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(diff.len(), 600, "the diff from the clone: rounds 5 and 6");
    let then = snap.tree("t").unwrap();
    assert_eq!(then.get(&k(1_100)).unwrap(), Some(v(1_100, 5)));
    assert_eq!(then.get(&k(1_400)).unwrap(), Some(v(1_400, 0)));
    assert_eq!(view.get(&k(1_400)).unwrap(), Some(v(1_400, 6)));
    assert_eq!(t.count_range(..).unwrap(), m.len() as u64);

    // A batch into another tree, then one removed with its buffer.
    let mut o = Model::new();
    batch(&other, &mut o, 0, 300, 7);
    batch(&clone, &mut Model::new(), 0, 300, 8);
    f.remove_tree("c").unwrap();
    assert_eq!(all(&other), o);
    assert_eq!(all(&t), m);
    assert_clean(&f);
}

#[test]
fn rollback_keeps_committed_batches_and_drops_the_rest() {
    let f = Forest::in_memory(options()).unwrap();
    let (t, mut m) = loaded(&f, "t");
    batch(&t, &mut m, 1_000, 3_000, 1);
    f.commit().unwrap();
    let committed = m.clone();
    batch(&t, &mut m, 2_000, 4_000, 2);
    f.rollback().unwrap();
    assert_eq!(all(&t), committed);
    assert_clean(&f);
}

#[test]
fn committed_batches_survive_a_crash_and_a_clean_close() {
    let disk = FaultyBackend::new();
    let open = || Forest::with_backend(Arc::new(disk.clone()), options()).unwrap();
    let f = open();
    let (t, mut m) = loaded(&f, "t");
    batch(&t, &mut m, 1_000, 3_000, 1);
    f.commit().unwrap();
    // Uncommitted: gone after the crash.
    batch(&t, &mut Model::new(), 3_000, 4_000, 2);
    // Nothing more reaches the disk, then what was not synced is lost.
    disk.kill();
    drop((t, f));
    disk.crash(CrashMode::DropUnsynced);

    let f = open();
    let t = f.tree("t").unwrap().unwrap();
    assert_eq!(all(&t), m);
    assert_clean(&f);
    batch(&t, &mut m, 5_000, 6_000, 3);
    f.commit().unwrap();
    drop((t, f));
    // The clean close applied the buffer and checkpointed: nothing to
    // replay.
    let f = open();
    assert_eq!(f.stats().log_bytes, 0, "a checkpoint at close");
    assert_eq!(all(&f.tree("t").unwrap().unwrap()), m);
    assert_clean(&f);
}

#[test]
fn checkpoints_apply_the_buffers_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let f = Forest::open(&path, options().durability(Durability::None)).unwrap();
    let (t, mut m) = loaded(&f, "t");
    batch(&t, &mut m, 1_000, 3_000, 1);
    f.checkpoint().unwrap();
    batch(&t, &mut m, 3_000, 3_500, 2);
    f.compact().unwrap();
    drop((t, f));
    let f = Forest::open(&path, options()).unwrap();
    assert_eq!(all(&f.tree("t").unwrap().unwrap()), m);
    assert_clean(&f);
}

#[test]
fn a_read_only_forest_refuses_a_batch_it_would_hold() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let (t, m) = {
        let f = Forest::open(&path, options()).unwrap();
        let (_, m) = loaded(&f, "t");
        drop(f);
        let f = Forest::open_read_only(&path, options()).unwrap();
        (f.tree("t").unwrap().unwrap(), m)
    };
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = (5_000..5_300).map(|i| (k(i), v(i, 1))).collect();
    let e = t
        .insert_batch(pairs.iter().map(|(k, v)| (k, v)))
        .unwrap_err();
    assert!(e.to_string().contains("read-only"), "{e}");
    assert_eq!(all(&t), m);
}

/// A batch applied leaf by leaf (several of its sorted pairs edit the
/// leaf the one before edited, without a second descent) still keeps
/// every node within its bounds: long values overwritten with one-byte
/// ones shrink leaves under their lower bound, which a merge must mend,
/// and new keys between the loaded ones grow leaves past their upper
/// bound, which a split must mend.
#[test]
fn a_buffered_batch_applied_leaf_by_leaf_keeps_every_node_in_bounds() {
    let f = Forest::in_memory(options()).unwrap();
    let t = f.create_tree("t").unwrap();
    let mut m = Model::new();
    let long = vec![b'x'; 120];
    for i in 0..2_000u32 {
        let key = format!("key{:06}", i * 2).into_bytes();
        t.insert(&key, &long).unwrap();
        m.insert(key, long.clone());
    }
    f.commit().unwrap();
    // Every loaded key gets a one-byte value: each leaf loses most of its
    // bytes to pairs that fall in it.
    let short: Vec<(Vec<u8>, Vec<u8>)> = m.keys().map(|k| (k.clone(), b"s".to_vec())).collect();
    t.insert_batch(short.iter().map(|(k, v)| (k, v))).unwrap();
    m.extend(short);
    assert!(f.stats().write_buffer_bytes > 0, "the batch was held");
    assert_eq!(all(&t), m);
    assert_clean(&f);
    // Keys between the loaded ones, with long values: each leaf grows.
    let grown: Vec<(Vec<u8>, Vec<u8>)> = (0..2_000u32)
        .map(|i| (format!("key{:06}", i * 2 + 1).into_bytes(), long.clone()))
        .collect();
    t.insert_batch(grown.iter().map(|(k, v)| (k, v))).unwrap();
    m.extend(grown);
    assert_eq!(all(&t), m);
    assert_clean(&f);
    f.commit().unwrap();
    assert_clean(&f);
}
