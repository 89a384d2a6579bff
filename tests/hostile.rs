//! Stores that someone else made, damaged or shares: crafted superblocks,
//! tables, directories and nodes (built through the format modules, see
//! `support/craft.rs`) are refused with a typed error, never code
//! execution, a panic, a hang, an allocation past the store's limits or
//! silent data loss. Each test names the item of the safety issue (#12)
//! it covers.

#[path = "support/craft.rs"]
mod craft;

use craft::Crafted;
use larix::{Error, FilterSpec, Forest, Options, Problem};
use larix_btree::{Catalog, Node};
use larix_nodestore::testing::{Digest, Location, Parameters, CHUNK_ENTRIES, MAX_CHUNK};
use larix_nodestore::{
    Backend, BlobFault, BlobKind, FileId, FormatError, NodeId, SegmentId, StoreError,
};
use std::path::Path;

fn plain() -> Options {
    Options::default()
        .filters(vec![])
        .node_size(512)
        .cache_bytes(64 << 10)
        .workers(2)
}

/// A committed store in `dir` with tree `t` holding `n` entries (several
/// levels at 512-byte nodes).
fn filled(dir: &Path, options: Options, n: u32) {
    let forest = Forest::open(dir, options).unwrap();
    let t = forest.create_tree("t").unwrap();
    for i in 0..n {
        t.insert(format!("key-{i:05}").as_bytes(), b"value")
            .unwrap();
    }
    forest.commit().unwrap();
}

fn store_error(e: &Error) -> &StoreError {
    match e {
        Error::Store(s) => s,
        other => panic!("expected a store error, got {other:?}"),
    }
}

fn one_line(e: &Error) -> String {
    let text = e.to_string();
    assert!(!text.contains('\n'), "not one line: {text}");
    text
}

/// Asserts that an open failed because the catalog blob would not
/// unfilter, with a one-line error.
fn refused_as_damaged_catalog(opened: &larix::Result<Forest>) {
    let e = opened.as_ref().err().expect("the open is refused");
    assert!(
        matches!(
            store_error(e),
            StoreError::MetadataDamaged {
                what: "catalog",
                ..
            }
        ),
        "{e:?}"
    );
    one_line(e);
}

/// Item 1: a command recorded in a crafted superblock is never run;
/// `from_store` names it and asks the caller to name it too.
#[test]
fn a_recorded_command_is_never_run() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let db = dir.path().join("db");
    filled(&db, plain(), 10);
    let decode = format!("/bin/sh -c touch\\ {}\\;\\ cat", marker.display());
    let params = format!("node_size=512;filters=command(encode=/bin/cat;decode={decode})");
    Crafted::open(&db, &[]).rewrite_superblock(|sb| {
        sb.parameters = Parameters::new(params).unwrap();
    });
    let e = Options::from_store(&db, None).unwrap_err();
    assert!(matches!(e, Error::UntrustedCommand { .. }), "{e:?}");
    assert!(one_line(&e).contains("/bin/sh -c touch"), "{e}");
    // Opening with the caller's own options is a parameters mismatch.
    let e = Forest::open(&db, plain()).err().unwrap();
    assert!(
        matches!(store_error(&e), StoreError::ParametersMismatch { .. }),
        "{e:?}"
    );
    assert!(!marker.exists(), "the store's command ran");
}

/// Item 3: a lost (or blanked) superblock never makes an open create a
/// store over segments that still hold every committed node.
#[test]
fn a_lost_superblock_is_damage_not_a_new_store() {
    for blank in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path(), plain(), 300);
        let sb_path = dir.path().join("superblock");
        let saved = std::fs::read(&sb_path).unwrap();
        let segments_before = segment_files(dir.path());
        if blank {
            std::fs::write(&sb_path, vec![0u8; saved.len()]).unwrap();
        } else {
            std::fs::remove_file(&sb_path).unwrap();
        }
        let e = Forest::open(dir.path(), plain()).err().unwrap();
        assert!(
            matches!(
                store_error(&e),
                StoreError::Format(FormatError::SuperblockLost { .. })
            ),
            "{e:?}"
        );
        assert!(one_line(&e).contains("damaged store"), "{e}");
        assert_eq!(segment_files(dir.path()), segments_before);
        std::fs::write(&sb_path, &saved).unwrap();
        let forest = Forest::open(dir.path(), plain()).unwrap();
        assert_eq!(
            forest.tree("t").unwrap().unwrap().count_range(..).unwrap(),
            300
        );
        assert!(forest.check().unwrap().is_clean());
    }
}

fn segment_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("seg-"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Item 3: a creation that fails at any step (a full disk) leaves a
/// directory a later open can still create a store in.
#[test]
fn a_creation_failing_at_any_step_can_be_retried() {
    use larix_nodestore::testing::{CrashMode, FaultyBackend};
    use std::sync::Arc;
    for steps in 0..40 {
        let disk = FaultyBackend::new();
        disk.fail_after(steps);
        let first = Forest::with_backend(Arc::new(disk.clone()), plain());
        let created = first.is_ok();
        drop(first);
        disk.crash(CrashMode::DropUnsynced);
        let forest = Forest::with_backend(Arc::new(disk.clone()), plain())
            .unwrap_or_else(|e| panic!("after failing at step {steps}: {e}"));
        forest.create_tree("t").unwrap();
        forest.commit().unwrap();
        if created {
            return;
        }
    }
    panic!("creation never succeeded within 40 operations");
}

/// Item 5: a superblock whose next node id lies below live ids is refused
/// at open, before any id could be reused.
#[test]
fn a_next_node_id_below_live_ids_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), plain(), 300);
    Crafted::open(dir.path(), &[]).rewrite_superblock(|sb| sb.next_node = NodeId(1));
    let e = Forest::open(dir.path(), plain()).err().unwrap();
    assert!(
        matches!(
            store_error(&e),
            StoreError::Format(FormatError::TableInconsistent { .. })
        ),
        "{e:?}"
    );
    one_line(&e);
}

/// Item 5: child pointers that form a cycle give errors from every walk
/// (lookups, scans, counts, inserts, check, removal), never a hang or a
/// stack overflow.
#[test]
fn a_cycle_of_child_pointers_is_an_error_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), plain(), 400);
    let (root, leaf) = {
        let forest = Forest::open(dir.path(), plain()).unwrap();
        let shape = forest.tree("t").unwrap().unwrap().shape().unwrap();
        assert!(shape.levels.len() >= 2, "{shape:?}");
        drop(forest);
        let c = Crafted::open(dir.path(), &[]);
        let ids = c.ids();
        let root = ids
            .iter()
            .copied()
            .max_by_key(|&id| c.node(id).level())
            .unwrap();
        let leaf = ids
            .iter()
            .copied()
            .find(|&id| c.node(id).is_leaf())
            .unwrap();
        (root, leaf)
    };
    // The leaf becomes an index node pointing back at the root.
    let mut c = Crafted::open(dir.path(), &[]);
    let first_key = c.node(leaf).key(0).to_vec();
    let mut evil = Node::new_index(1);
    evil.insert_child(0, &first_key, root);
    c.put_node(leaf, &evil);
    c.commit(|_| {});

    let forest = Forest::open(dir.path(), plain()).unwrap();
    let t = forest.tree("t").unwrap().unwrap();
    let mut errors = 0;
    for i in 0..400 {
        if t.get(format!("key-{i:05}").as_bytes()).is_err() {
            errors += 1;
        }
    }
    assert!(errors > 0);
    assert!(t.count_range(..).is_err());
    assert!(t.range(..).unwrap().any(|r| r.is_err()));
    assert!(t.shape().is_err());
    let report = forest.check().unwrap();
    assert!(!report.is_clean());
    let insert_errors = (0..400)
        .filter(|i| t.insert(format!("key-{i:05}").as_bytes(), b"v").is_err())
        .count();
    assert!(insert_errors > 0);
    // Removal frees the leaves of level-1 nodes unread, so it may pass
    // over the crafted node; either way it ends, and what it leaves holds.
    match forest.remove_tree("t") {
        Ok(()) => assert!(forest.check().unwrap().is_clean()),
        Err(e) => assert!(one_line(&e).contains("level"), "{e}"),
    }
}

/// Item 6: a read-only open writes nothing, lets several readers in at
/// once, keeps writers out and refuses writes.
#[test]
fn read_only_opens_share_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), plain(), 100);
    let before = dir_contents(dir.path());
    {
        let a = Forest::open_read_only(dir.path(), plain()).unwrap();
        let b = Forest::open_read_only(dir.path(), plain()).unwrap();
        let t = a.tree("t").unwrap().unwrap();
        assert_eq!(t.count_range(..).unwrap(), 100);
        assert_eq!(b.tree("t").unwrap().unwrap().count_range(..).unwrap(), 100);
        assert!(a.check().unwrap().is_clean());
        for e in [
            t.insert(b"x", b"y").unwrap_err(),
            a.create_tree("u").err().unwrap(),
            a.commit().unwrap_err(),
            a.compact().unwrap_err(),
        ] {
            assert!(one_line(&e).contains("read-only"), "{e}");
        }
        let e = Forest::open(dir.path(), plain()).err().unwrap();
        assert!(one_line(&e).contains("in use"), "{e}");
    }
    assert_eq!(dir_contents(dir.path()), before);
    let empty = tempfile::tempdir().unwrap();
    assert!(Forest::open_read_only(empty.path(), plain()).is_err());
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
}

fn dir_contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap_or_default())
        })
        .collect();
    out.sort();
    out
}

/// Item 8: every option is checked at open; values at each edge are
/// accepted or refused with `InvalidOptions`, never a panic.
#[test]
fn every_option_is_checked_at_its_edges() {
    let base = || Options::default().filters(vec![]);
    let refused: Vec<(&str, Options)> = vec![
        ("node_size below", base().node_size(255)),
        ("node_size above", base().node_size((1 << 20) + 1)),
        ("no workers", base().workers(0)),
        ("too many workers", base().workers(257)),
        (
            "tiny cache",
            base().node_size(4096).cache_bytes(16 * 4096 - 1),
        ),
        ("ratio below", base().compaction_live_ratio(-0.01)),
        ("ratio above", base().compaction_live_ratio(1.01)),
        ("ratio NaN", base().compaction_live_ratio(f64::NAN)),
        ("segment below", base().segment_bytes((64 << 10) - 1)),
        ("segment above", base().segment_bytes((4 << 30) + 1)),
        (
            "compaction step below",
            base().compaction_bytes_per_commit((1 << 20) - 1),
        ),
        (
            "compaction step zero",
            base().compaction_bytes_per_commit(0),
        ),
        (
            "checkpoint log below",
            base().checkpoint_log_bytes((64 << 10) - 1),
        ),
        ("checkpoint log zero", base().checkpoint_log_bytes(0)),
        (
            "checkpoint interval zero",
            base().checkpoint_interval(std::time::Duration::ZERO),
        ),
    ];
    for (what, options) in refused {
        match Forest::in_memory(options) {
            Err(e @ Error::InvalidOptions(_)) => {
                one_line(&e);
            }
            other => panic!("{what}: expected InvalidOptions, got {:?}", other.err()),
        }
    }
    let accepted: Vec<(&str, Options)> = vec![
        (
            "node_size least",
            base().node_size(256).cache_bytes(256 * 16),
        ),
        (
            "node_size most",
            base().node_size(1 << 20).cache_bytes(16 << 20),
        ),
        ("one worker", base().workers(1)),
        ("most workers", base().workers(256)),
        ("ratio 0", base().compaction_live_ratio(0.0)),
        ("ratio 1", base().compaction_live_ratio(1.0)),
        ("segment least", base().segment_bytes(64 << 10)),
        ("segment most", base().segment_bytes(4 << 30)),
        (
            "compaction step least",
            base().compaction_bytes_per_commit(1 << 20),
        ),
        (
            "compaction step most",
            base().compaction_bytes_per_commit(u64::MAX),
        ),
        (
            "checkpoint log least",
            base().checkpoint_log_bytes(64 << 10),
        ),
        ("checkpoint log most", base().checkpoint_log_bytes(u64::MAX)),
        (
            "checkpoint interval least",
            base().checkpoint_interval(std::time::Duration::from_millis(1)),
        ),
        (
            "checkpoint interval most",
            base().checkpoint_interval(std::time::Duration::MAX),
        ),
    ];
    for (what, options) in accepted {
        let forest = Forest::in_memory(options).unwrap_or_else(|e| panic!("{what}: {e}"));
        let t = forest.create_tree("t").unwrap();
        for i in 0..200u32 {
            t.insert(&i.to_be_bytes(), b"value").unwrap();
        }
        forest.commit().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(forest.check().unwrap().is_clean(), "{what}");
    }
}

/// Item 11: a damaged newest superblock slot (torn by a crash in the
/// middle of its write, or holding a field no slot may hold) rolls the
/// store back to the commit before it, and the open says so.
#[test]
fn a_damaged_newest_slot_is_reported() {
    type Damage = fn(Crafted);
    let damages: [(&str, Damage); 2] = [
        ("torn", Crafted::tear_newest_slot),
        ("next node id 0", |c| {
            c.rewrite_superblock(|sb| sb.next_node = NodeId(0))
        }),
    ];
    for (what, damage) in damages {
        let dir = tempfile::tempdir().unwrap();
        {
            let forest = Forest::open(dir.path(), plain()).unwrap();
            let t = forest.create_tree("t").unwrap();
            t.insert(b"a", b"1").unwrap();
            forest.checkpoint().unwrap();
            t.insert(b"b", b"2").unwrap();
            forest.commit().unwrap();
            // The clean close checkpoints again: both slots in use.
        }
        damage(Crafted::open(dir.path(), &[]));
        let forest = Forest::open(dir.path(), plain()).unwrap();
        let warnings = forest.warnings();
        assert_eq!(warnings.len(), 1, "{what}: {warnings:?}");
        assert!(warnings[0].contains("damaged"), "{what}: {warnings:?}");
        assert_eq!(forest.stats().warnings, warnings, "{what}");
        let t = forest.tree("t").unwrap().unwrap();
        assert_eq!(t.get(b"a").unwrap(), Some(b"1".to_vec()), "{what}");
        assert_eq!(t.get(b"b").unwrap(), None, "{what}");
        // The next checkpoint rewrites the damaged slot.
        forest.checkpoint().unwrap();
        drop((t, forest));
        let forest = Forest::open(dir.path(), plain()).unwrap();
        assert!(forest.warnings().is_empty(), "{what}");
    }
}

/// Item 12: a range iterator over a tree that is dropped (and replaced
/// by a new tree of the same name) goes on over the tree it started on
/// (a range is a snapshot of its tree), never the new one.
#[test]
fn a_range_over_a_dropped_tree_keeps_its_tree() {
    let forest = Forest::in_memory(plain()).unwrap();
    let t = forest.create_tree("t").unwrap();
    for i in 0..500u32 {
        t.insert(&i.to_be_bytes(), b"old").unwrap();
    }
    let mut range = t.range(..).unwrap();
    assert!(range.next().unwrap().is_ok());
    forest.remove_tree("t").unwrap();
    let t2 = forest.create_tree("t").unwrap();
    for i in 0..500u32 {
        t2.insert(&i.to_be_bytes(), b"new").unwrap();
    }
    let rest: Vec<_> = range.map(|r| r.unwrap()).collect();
    assert_eq!(rest.len(), 499);
    assert!(
        rest.iter().all(|(_, v)| v == b"old"),
        "the range read the new tree"
    );
    assert!(forest.check().unwrap().is_clean());
}

/// Item 14: losing the segment with the key check blob does not lock out
/// a store without encryption; the open warns.
#[test]
fn a_lost_key_check_segment_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), plain(), 100);
    std::fs::remove_file(dir.path().join("seg-000001.lx")).unwrap();
    let forest = Forest::open(dir.path(), plain()).unwrap();
    assert!(
        forest.warnings()[0].contains("key check"),
        "{:?}",
        forest.warnings()
    );
    assert_eq!(
        forest.tree("t").unwrap().unwrap().count_range(..).unwrap(),
        100
    );
}

/// Item 15: a store is fully closed when its forest drops, even while
/// other threads fork command filters: 500 reopens without `Locked`.
#[test]
fn reopen_after_drop_beside_command_filters() {
    let Some(gzip) = ["/bin/gzip", "/usr/bin/gzip"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        panic!("gzip is needed for this test (.ci/run installs it)");
    };
    let gz = || plain().filters(vec![FilterSpec::command(&[gzip, "-c"], &[gzip, "-dc"])]);
    let dir = tempfile::tempdir().unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for n in 0..2 {
            let (dir, stop, gz) = (dir.path().join(format!("gz{n}")), &stop, &gz);
            s.spawn(move || {
                let forest = Forest::open(&dir, gz()).unwrap();
                let t = forest.create_tree("t").unwrap();
                let mut i = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    t.insert(&i.to_be_bytes(), b"gzip me").unwrap();
                    forest.commit().unwrap();
                    i += 1;
                }
            });
        }
        let handles: Vec<_> = (0..2)
            .map(|n| {
                let dir = dir.path().join(format!("plain{n}"));
                s.spawn(move || {
                    for i in 0..250u32 {
                        let forest = Forest::open(&dir, plain())
                            .unwrap_or_else(|e| panic!("reopen {i}: {e}"));
                        let t = match forest.tree("t").unwrap() {
                            Some(t) => t,
                            None => forest.create_tree("t").unwrap(),
                        };
                        t.insert(&i.to_be_bytes(), b"v").unwrap();
                        forest.commit().unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}

/// Item 9: without the key, nobody can point an encrypted store's table at
/// an older ciphertext of the same node (still on disk) and have it
/// accepted: the forged generation fails its MAC and the open keeps the
/// real newest commit, saying so; a forged table chunk fails its digest.
#[test]
fn encrypted_metadata_cannot_be_forged_without_the_key() {
    let filters = vec![
        FilterSpec::zstd(1),
        FilterSpec::encrypt([7; 32]),
        FilterSpec::checksum(),
    ];
    let options = || plain().filters(filters.clone());
    let dir = tempfile::tempdir().unwrap();
    let contents = |forest: &Forest| -> Vec<(Vec<u8>, Vec<u8>)> {
        let t = forest.tree("t").unwrap().unwrap();
        t.range(..).unwrap().map(|r| r.unwrap()).collect()
    };
    filled(dir.path(), options(), 300);
    let before = Crafted::open(dir.path(), &[]).table_entries();
    let expected = {
        let forest = Forest::open(dir.path(), options()).unwrap();
        let t = forest.tree("t").unwrap().unwrap();
        for i in 300..400 {
            t.insert(format!("key-{i:05}").as_bytes(), b"later")
                .unwrap();
        }
        forest.commit().unwrap();
        contents(&forest)
    };
    // Put back the entries of the nodes changed since (a committed node is
    // never rewritten under its id: the change copied them and freed
    // these), pointing at their older blobs, still on disk, with digests
    // and table recomputed, as a forger without the key can.
    let mut c = Crafted::open(dir.path(), &[]);
    let mut forged = 0;
    for (id, old) in before {
        if c.table.get(id).is_none_or(|now| now.loc != old.loc) {
            c.table.set(id, old);
            forged += 1;
        }
    }
    assert!(forged > 0);
    c.commit(|_| {});
    let forest = Forest::open(dir.path(), options()).unwrap();
    assert!(
        forest.warnings().iter().any(|w| w.contains("damaged")),
        "{:?}",
        forest.warnings()
    );
    assert_eq!(contents(&forest), expected);
    assert!(forest.check().unwrap().is_clean());
    // A genuine checkpoint replaces the forged slot.
    forest.compact().unwrap();
    drop(forest);

    // A chunk changed in place (one entry's refcount from n to n + 1, the
    // chunk's own crc recomputed by the table's encoder) fails its digest.
    let mut c = Crafted::open(dir.path(), &[]);
    let (id, mut entry) = c.table_entries()[0];
    entry.refcount += 1;
    c.table.set(id, entry);
    c.overwrite_chunk(id.0 / CHUNK_ENTRIES);
    drop(c);
    let e = Forest::open(dir.path(), options()).err().unwrap();
    assert!(
        matches!(
            store_error(&e),
            StoreError::Format(FormatError::Blob {
                kind: BlobKind::TableChunk,
                fault: BlobFault::DigestMismatch,
                ..
            })
        ),
        "{e:?}"
    );
    assert!(one_line(&e).contains("digest"), "{e}");
}

/// Item 7: a command filter that stops answering (here: once a file
/// exists, its decode sleeps for ever) fails the open after its timeout
/// with a typed error, instead of hanging the store.
#[test]
fn a_hanging_command_filter_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let hang = dir.path().join("hang");
    let decode = format!(
        "if [ -e '{}' ]; then exec sleep 1000; fi; exec cat",
        hang.display()
    );
    let spec = FilterSpec::command_with_timeout(
        &["/bin/cat"],
        &["/bin/sh", "-c", &decode],
        std::time::Duration::from_millis(300),
    );
    let options = || plain().filters(vec![spec.clone(), FilterSpec::checksum()]);
    let db = dir.path().join("db");
    filled(&db, options(), 50);
    std::fs::write(&hang, b"").unwrap();
    let start = std::time::Instant::now();
    let e = Forest::open(&db, options()).err().unwrap();
    assert!(
        start.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    assert!(one_line(&e).contains("did not finish within 300ms"), "{e}");
    std::fs::remove_file(&hang).unwrap();
    let forest = Forest::open(&db, options()).unwrap();
    assert_eq!(
        forest.tree("t").unwrap().unwrap().count_range(..).unwrap(),
        50
    );
}

/// Catalog bytes naming `trees` in the order given, each entry written by
/// the catalog encoder (which itself writes every name once, in order):
/// the empty catalog's header with the count set, then each one-tree
/// catalog's entry.
fn catalog_bytes(trees: &[(&str, NodeId)]) -> Vec<u8> {
    // A count below 128 is one varint byte, as the empty catalog's 0 is.
    assert!(trees.len() < 128);
    let mut out = Catalog::default().encode();
    out[1] = trees.len() as u8;
    for &(name, root) in trees {
        let mut one = Catalog::default();
        one.set_root(name, root);
        out.extend_from_slice(&one.encode()[2..]);
    }
    out
}

/// The ids of a store made by [`with_freed_tree`].
struct Ids {
    /// The root of tree `t`.
    root: NodeId,
    /// The root of a tree since removed: an id no longer live.
    freed: NodeId,
    /// The next node id to allocate.
    next: NodeId,
}

/// A committed store in `dir` with tree `t` holding 300 entries, and a
/// tree that was created, committed and removed.
fn with_freed_tree(dir: &Path) -> Ids {
    filled(dir, plain(), 300);
    Forest::open(dir, plain())
        .and_then(|f| f.create_tree("gone").and_then(|_| f.commit()))
        .unwrap();
    let freed = Crafted::open(dir, &[]).catalog().root("gone").unwrap();
    Forest::open(dir, plain())
        .and_then(|f| f.remove_tree("gone").and_then(|_| f.commit()))
        .unwrap();
    let c = Crafted::open(dir, &[]);
    assert!(c.table.get(freed).is_none());
    Ids {
        root: c.catalog().root("t").unwrap(),
        freed,
        next: c.sb.next_node,
    }
}

/// A store made by [`with_freed_tree`] in `dir` whose catalog, crafted
/// with its digest recomputed, also names tree `x` with the root `pick`
/// chooses. Open either refuses it with a one-line typed error (`None`)
/// or opens it.
fn with_crafted_root(dir: &Path, pick: fn(&Ids) -> NodeId) -> (NodeId, Option<Forest>) {
    let ids = with_freed_tree(dir);
    let bad = pick(&ids);
    let mut c = Crafted::open(dir, &[]);
    c.put_catalog(&catalog_bytes(&[("t", ids.root), ("x", bad)]));
    c.commit(|_| {});
    match Forest::open(dir, plain()) {
        Ok(forest) => (bad, Some(forest)),
        Err(e @ (Error::CorruptCatalog(_) | Error::Store(_))) => {
            one_line(&e);
            (bad, None)
        }
        Err(e) => panic!("{bad}: {e:?}"),
    }
}

/// Asserts that `e` says node `bad` is missing, in one line.
fn missing(bad: NodeId, e: Error) {
    assert!(
        matches!(store_error(&e), StoreError::NodeMissing { id } if *id == bad),
        "{bad}: {e:?}"
    );
    one_line(&e);
}

/// Item 5: a crafted catalog naming a root that is no live node and never
/// will be (id 0, a freed id, the largest id) is refused at open, or
/// every use of that tree fails with a one-line `NodeMissing` and `check`
/// reports it; the other trees stay intact.
#[test]
fn a_catalog_root_that_is_no_live_node_is_an_error() {
    let picks: [fn(&Ids) -> NodeId; 3] = [|_| NodeId(0), |ids| ids.freed, |_| NodeId(u64::MAX)];
    for pick in picks {
        let dir = tempfile::tempdir().unwrap();
        let (bad, Some(forest)) = with_crafted_root(dir.path(), pick) else {
            continue;
        };
        let x = forest.tree("x").unwrap().unwrap();
        missing(bad, x.get(b"key-00001").unwrap_err());
        missing(bad, x.insert(b"k", b"v").unwrap_err());
        missing(bad, x.count_range(..).unwrap_err());
        let report = forest.check().unwrap();
        assert!(
            report
                .problems
                .iter()
                .any(|p| matches!(p, Problem::Unreadable { id, .. } if *id == bad)),
            "{bad}: {report}"
        );
        let t = forest.tree("t").unwrap().unwrap();
        assert_eq!(t.count_range(..).unwrap(), 300, "{bad}");
    }
}

/// Item 5: a crafted catalog naming a root at or past the next node id
/// (a node not yet allocated) must not make that tree read, and write
/// into, the nodes that later get those ids: it is refused at open, or
/// the tree stays missing however many ids are allocated.
#[test]
fn a_catalog_root_past_the_next_id_never_aliases_a_new_node() {
    let picks: [fn(&Ids) -> NodeId; 2] = [|ids| ids.next, |ids| NodeId(ids.next.0 + 1000)];
    for pick in picks {
        let dir = tempfile::tempdir().unwrap();
        let (bad, Some(forest)) = with_crafted_root(dir.path(), pick) else {
            continue;
        };
        let x = forest.tree("x").unwrap().unwrap();
        missing(bad, x.get(b"u").unwrap_err());
        // Each new tree takes a fresh id for its root, up to past `bad`.
        for i in 0..1100 {
            let u = forest.create_tree(&format!("u{i:04}")).unwrap();
            u.insert(b"u", format!("{i}").as_bytes()).unwrap();
        }
        forest.commit().unwrap();
        missing(bad, x.get(b"u").unwrap_err());
        missing(bad, x.insert(b"u", b"x").unwrap_err());
        for i in 0..1100 {
            let u = forest.tree(&format!("u{i:04}")).unwrap().unwrap();
            assert_eq!(u.get(b"u").unwrap(), Some(format!("{i}").into_bytes()));
        }
    }
}

/// Item 5: a crafted catalog that names one node as the root of two
/// trees without the refcount to match opens (nothing short of a full
/// walk could tell), but `check` reports the miscount.
#[test]
fn a_catalog_sharing_a_root_uncounted_is_reported_by_check() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), plain(), 300);
    let mut c = Crafted::open(dir.path(), &[]);
    let root = c.catalog().root("t").unwrap();
    c.put_catalog(&catalog_bytes(&[("t", root), ("x", root)]));
    c.commit(|_| {});
    let forest = Forest::open(dir.path(), plain()).unwrap();
    let report = forest.check().unwrap();
    assert!(
        report.problems.iter().any(|p| matches!(
            p,
            Problem::Refcount { id, stored: 1, found: 2 } if *id == root
        )),
        "{report}"
    );
}

/// Item 5: crafted catalogs the decoder refuses (names out of order or
/// twice, an empty or over-long name, an unknown version, a count past
/// the bytes, stray bytes, garbage), each filtered as the store filters
/// its catalog and pinned by a recomputed digest, fail the open with a
/// one-line `CorruptCatalog`.
#[test]
fn a_crafted_catalog_is_refused_at_open() {
    let probe = tempfile::tempdir().unwrap();
    filled(probe.path(), plain(), 300);
    let root = Crafted::open(probe.path(), &[])
        .catalog()
        .root("t")
        .unwrap();
    let good = catalog_bytes(&[("t", root)]);
    let long = "n".repeat(larix_btree::MAX_NAME_LEN + 1);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("out of order", catalog_bytes(&[("t", root), ("a", root)])),
        ("twice", catalog_bytes(&[("t", root), ("t", root)])),
        ("empty name", catalog_bytes(&[("", root), ("t", root)])),
        ("1025 bytes", catalog_bytes(&[(&long, root), ("t", root)])),
        ("version", [&[3], &good[1..]].concat()),
        ("runs past the end", good[..good.len() - 1].to_vec()),
        ("stray bytes", [&good[..], b"x"].concat()),
        ("tree count", [&good[..1], &[0xff; 10]].concat()),
        ("version", vec![0xa5; 4096]),
    ];
    for (what, raw) in cases {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path(), plain(), 300);
        let mut c = Crafted::open(dir.path(), &[]);
        c.put_catalog(&raw);
        c.commit(|_| {});
        match Forest::open(dir.path(), plain()) {
            Err(e @ Error::CorruptCatalog(_)) => {
                assert!(one_line(&e).contains(what), "{what}: {e}");
            }
            other => panic!("{what}: expected CorruptCatalog, got {:?}", other.err()),
        }
    }
}

/// Item 5: a catalog blob the store cannot unfilter (bytes that fail the
/// checksum filter, pinned by a recomputed digest) or that is not a
/// catalog blob at all (the slot pointing at a node blob) fails the open
/// with a one-line typed error.
#[test]
fn a_catalog_blob_that_does_not_unfilter_is_refused() {
    let filters = vec![FilterSpec::checksum()];
    let options = || plain().filters(filters.clone());
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), options(), 300);
    let raw = Crafted::open(dir.path(), &filters).catalog().encode();
    // The catalog's bytes without the checksum filter's frame.
    let mut c = Crafted::open(dir.path(), &[]);
    c.put_catalog(&raw);
    c.commit(|_| {});
    refused_as_damaged_catalog(&Forest::open(dir.path(), options()));

    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), options(), 300);
    let c = Crafted::open(dir.path(), &filters);
    let (_, node) = c.table_entries()[0];
    c.commit(|sb| sb.catalog = node.loc);
    let e = Forest::open(dir.path(), options()).err().unwrap();
    assert!(
        matches!(
            store_error(&e),
            StoreError::Format(FormatError::Blob {
                kind: BlobKind::Catalog,
                fault: BlobFault::KindMismatch(BlobKind::Node),
                ..
            })
        ),
        "{e:?}"
    );
    one_line(&e);
}

/// Item 13: a catalog blob whose zstd frame decodes to more than the
/// store's 64 MiB limit (a genuine catalog of 66,000 long names,
/// compressed to a small frame) fails the open with a one-line typed
/// error instead of being unpacked.
#[test]
fn a_catalog_frame_past_the_decoded_limit_is_refused() {
    let filters = vec![FilterSpec::zstd(1)];
    let options = || plain().filters(filters.clone());
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path(), options(), 300);
    let mut c = Crafted::open(dir.path(), &filters);
    let root = c.catalog().root("t").unwrap();
    let mut huge = Catalog::default();
    let pad = "n".repeat(larix_btree::MAX_NAME_LEN - 8);
    for i in 0..66_000 {
        huge.set_root(&format!("{i:08}{pad}"), root);
    }
    let raw = huge.encode();
    assert!(raw.len() > 64 << 20);
    c.put_catalog(&raw);
    c.commit(|_| {});
    refused_as_damaged_catalog(&Forest::open(dir.path(), options()));
}

/// A crafted directory case: what it does, the change, and the typed
/// error the open must give.
type DirectoryCase = (&'static str, fn(&mut Crafted), fn(&StoreError) -> bool);

/// Whether `e` is a fault of the table chunk blob the directory names.
fn chunk_blob_fault(e: &StoreError, expected: fn(&BlobFault) -> bool) -> bool {
    matches!(e, StoreError::Format(FormatError::Blob {
        kind: BlobKind::TableChunk,
        fault,
        ..
    }) if expected(fault))
}

/// The first chunk the directory names, where it lies and its digest.
fn first_chunk(c: &Crafted) -> (u64, Location, Digest) {
    c.directory.iter_pinned().next().unwrap()
}

/// Points the first chunk of the directory at `loc`, its digest kept.
fn move_first_chunk(c: &mut Crafted, loc: Location) {
    let (idx, _, digest) = first_chunk(c);
    c.directory.insert(idx, loc, digest);
}

/// Item 5: crafted node table directories (each written as the
/// directory blob of a new generation, its digest recomputed in the slot)
/// fail the open with a one-line typed error: a chunk past the end of its
/// segment or at an offset no file has, inside another record, at a blob
/// of another kind or another index, in a segment at or past the next
/// one, under an index no chunk has, a chunk that holds ids far past the
/// next node id, and directory bytes that are garbage.
#[test]
fn a_crafted_directory_is_refused_at_open() {
    let cases: Vec<DirectoryCase> = vec![
        (
            "past the end of its segment",
            |c| {
                let (_, loc, _) = first_chunk(c);
                let end = c.backend.len(FileId::Segment(loc.segment)).unwrap();
                move_first_chunk(
                    c,
                    Location {
                        offset: end + 4096,
                        ..loc
                    },
                );
            },
            |e| chunk_blob_fault(e, |f| matches!(f, BlobFault::Truncated)),
        ),
        (
            "at the largest offset",
            |c| {
                let (_, loc, _) = first_chunk(c);
                move_first_chunk(
                    c,
                    Location {
                        offset: u64::MAX - 1,
                        ..loc
                    },
                );
            },
            |e| {
                matches!(
                    e,
                    StoreError::Format(FormatError::Blob { .. } | FormatError::Io { .. })
                )
            },
        ),
        (
            "inside another record",
            |c| {
                let (_, loc, _) = first_chunk(c);
                move_first_chunk(
                    c,
                    Location {
                        offset: loc.offset + 1,
                        ..loc
                    },
                );
            },
            |e| chunk_blob_fault(e, |f| matches!(f, BlobFault::Magic(_))),
        ),
        (
            "at a node blob",
            |c| {
                let node = c.table_entries()[0].1.loc.unwrap();
                move_first_chunk(c, node);
            },
            |e| chunk_blob_fault(e, |f| matches!(f, BlobFault::KindMismatch(BlobKind::Node))),
        ),
        (
            "at the chunk of another index",
            |c| {
                let (idx, loc, digest) = first_chunk(c);
                c.directory.remove(idx);
                c.directory.insert(idx + 7, loc, digest);
            },
            |e| chunk_blob_fault(e, |f| matches!(f, BlobFault::IdMismatch(_))),
        ),
        (
            "in a segment past the next",
            |c| {
                let (_, loc, _) = first_chunk(c);
                move_first_chunk(
                    c,
                    Location {
                        segment: SegmentId(u32::MAX),
                        ..loc
                    },
                );
            },
            |e| matches!(e, StoreError::Format(FormatError::DirectoryDamaged { .. })),
        ),
        (
            "under an index no chunk has",
            |c| {
                let idx = MAX_CHUNK + 1;
                let bytes = c.table.encode_chunk(idx).unwrap();
                let loc = c.append(BlobKind::TableChunk, idx, &bytes);
                c.directory.insert(idx, loc, Digest::of(&bytes));
            },
            |e| matches!(e, StoreError::Format(FormatError::ChunkDamaged { .. })),
        ),
        (
            "holding ids far past the next node id",
            |c| {
                let (id, entry) = c.table_entries()[0];
                c.table.remove(id);
                c.table.set(NodeId(u64::MAX), entry);
            },
            |e| matches!(e, StoreError::Format(FormatError::TableInconsistent { .. })),
        ),
        (
            "garbage",
            |c| c.put_directory_body(vec![0xa5; 4096]),
            |e| matches!(e, StoreError::Format(FormatError::DirectoryDamaged { .. })),
        ),
    ];
    for (what, craft, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path(), plain(), 300);
        let mut c = Crafted::open(dir.path(), &[]);
        craft(&mut c);
        c.commit(|_| {});
        for read_only in [true, false] {
            let opened = if read_only {
                Forest::open_read_only(dir.path(), plain())
            } else {
                Forest::open(dir.path(), plain())
            };
            let e = opened.err().unwrap_or_else(|| panic!("{what}: opened"));
            assert!(expected(store_error(&e)), "{what}: {e:?}");
            one_line(&e);
        }
    }
}
