//! Stores that someone else made, damaged or shares: crafted superblocks,
//! tables, directories and nodes (built through the format modules, see
//! `support/craft.rs`) are refused with a typed error, never code
//! execution, a panic, a hang, an allocation past the store's limits or
//! silent data loss. Each test names the item of the safety issue (#12)
//! it covers.

#[path = "support/craft.rs"]
mod craft;

use craft::Crafted;
use larix::{Error, FilterSpec, Forest, Options};
use larix_btree::Node;
use larix_nodestore::testing::{Parameters, SLOT_LEN};
use larix_nodestore::{FileId, FormatError, NodeId, StoreError};
use std::path::Path;

fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

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

/// Item 11: a damaged newest superblock slot rolls the store back to the
/// commit before it, and the open says so.
#[test]
fn a_damaged_newest_slot_is_reported() {
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
    let newest = Crafted::open(dir.path(), &[]).sb.generation;
    let path = dir.path().join(FileId::Superblock.file_name());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[newest.slot() * SLOT_LEN + 40] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let forest = Forest::open(dir.path(), plain()).unwrap();
    let warnings = forest.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("damaged"), "{warnings:?}");
    assert_eq!(forest.stats().warnings, warnings);
    let t = forest.tree("t").unwrap().unwrap();
    assert_eq!(t.get(b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(t.get(b"b").unwrap(), None);
    // The next checkpoint rewrites the damaged slot.
    forest.checkpoint().unwrap();
    drop((t, forest));
    assert!(Forest::open(dir.path(), plain())
        .unwrap()
        .warnings()
        .is_empty());
}

/// Item 12: a range iterator over a tree that is dropped (and replaced
/// by a new tree of the same name) ends with `TreeNotFound`.
#[test]
fn a_range_over_a_dropped_tree_ends() {
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
    let rest: Vec<_> = range.collect();
    assert!(
        rest.iter().all(|r| !matches!(r, Ok((_, v)) if v == b"new")),
        "the range read the new tree"
    );
    assert!(
        matches!(rest.last(), Some(Err(Error::TreeNotFound { .. }))),
        "{:?}",
        rest.last()
    );
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
    // Every node rewritten since keeps its id: point them at their older
    // blobs, with digests and table recomputed, as a forger without the
    // key can.
    let mut c = Crafted::open(dir.path(), &[]);
    let mut forged = 0;
    for (id, old) in before {
        if c.table.get(id).is_some_and(|now| now.loc != old.loc) {
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

    // A chunk changed in place fails its digest.
    let c = Crafted::open(dir.path(), &[]);
    let (idx, loc) = c.directory.iter().next().unwrap();
    let path = dir.path().join(FileId::Segment(loc.segment).file_name());
    let mut seg = std::fs::read(&path).unwrap();
    drop(c);
    // The slot bytes start after the 24-byte record header; turn one
    // entry's refcount from n to n + 1 and fix the chunk's own crc.
    let body = 24 + loc.offset as usize;
    seg[body + 12] ^= 1;
    let chunk_len = loc.len as usize;
    let mut sealed = idx.to_le_bytes().to_vec();
    sealed.extend_from_slice(&seg[body..body + chunk_len - 4]);
    let crc = crc32c(&sealed);
    seg[body + chunk_len - 4..body + chunk_len].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, seg).unwrap();
    let e = Forest::open(dir.path(), options()).err().unwrap();
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
