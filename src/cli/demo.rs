//! `larix demo`: what Larix is for, the way Obnam used larch.
//!
//! It walks a real directory tree and stores one entry per file (key = its
//! path, value = a [`Record`] of size, mode and modification time),
//! commits, clones the tree as a snapshot, changes a share of the entries,
//! finds the difference by walking the snapshot and the tree side by side,
//! checks the store, and prints the time of each phase and the store's
//! counters.
//!
//! The changes are pseudo-random but the same on every run; the difference
//! found must match them exactly, and the check must be clean, or the demo
//! exits with status 3.
//!
//! The demo replaces only a store it made: it marks each store directory
//! it creates with the file [`MARKER`], and refuses a directory holding a
//! store without it, or anything else without it. Replacing removes the
//! store's files and the marker, nothing else (see [`super::cleanup`]).

use super::args::DemoArgs;
use super::cleanup;
use super::error::{CliError, Result};
use super::format::escape;
use super::progress;
use super::report::{check_phase, stats_table, store_description, Phases};
use super::rng::Rng;
use super::store;
use super::table;
use super::Status;
use indicatif::ProgressBar;
use larix::{Forest, Tree};
use std::fs::{self, Metadata};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// The tree the walk fills.
const TREE: &str = "files";
/// The snapshot taken before the changes.
const SNAPSHOT: &str = "files@before";
/// Appended to a path to make the key of an added entry.
const ADDED_SUFFIX: &[u8] = b".larix-new";
/// Entries of each kind the difference lists by name.
const SHOWN: usize = 5;

/// The value stored for each path: 20 bytes, little-endian —
/// `size u64 | mode u32 | mtime i64` (seconds since the Unix epoch,
/// negative before it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Record {
    size: u64,
    mode: u32,
    mtime: i64,
}

impl Record {
    /// The record of a file's metadata (not following symlinks).
    fn of(meta: &Metadata) -> Record {
        let mtime = meta
            .modified()
            .ok()
            .map_or(0, |t| match t.duration_since(UNIX_EPOCH) {
                Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                Err(before) => -i64::try_from(before.duration().as_secs()).unwrap_or(i64::MAX),
            });
        Record {
            size: meta.len(),
            mode: mode(meta),
            mtime,
        }
    }

    fn encode(self) -> [u8; 20] {
        let mut b = [0u8; 20];
        b[..8].copy_from_slice(&self.size.to_le_bytes());
        b[8..12].copy_from_slice(&self.mode.to_le_bytes());
        b[12..].copy_from_slice(&self.mtime.to_le_bytes());
        b
    }

    /// The record in `bytes`, if they are one.
    fn decode(bytes: &[u8]) -> Option<Record> {
        let b: &[u8; 20] = bytes.try_into().ok()?;
        let (size, rest) = b.split_at(8);
        let (mode, mtime) = rest.split_at(4);
        Some(Record {
            size: u64::from_le_bytes(size.try_into().ok()?),
            mode: u32::from_le_bytes(mode.try_into().ok()?),
            mtime: i64::from_le_bytes(mtime.try_into().ok()?),
        })
    }
}

#[cfg(unix)]
fn mode(meta: &Metadata) -> u32 {
    std::os::unix::fs::MetadataExt::mode(meta)
}

#[cfg(not(unix))]
fn mode(meta: &Metadata) -> u32 {
    if meta.is_dir() {
        0o040_755
    } else {
        0o100_644
    }
}

/// A path's bytes, as the key of its entry.
#[cfg(unix)]
fn path_key(path: &Path) -> Vec<u8> {
    std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()).to_vec()
}

#[cfg(not(unix))]
fn path_key(path: &Path) -> Vec<u8> {
    path.to_string_lossy().into_owned().into_bytes()
}

/// What a walk found.
#[derive(Default)]
struct Walk {
    entries: Vec<(Vec<u8>, Record)>,
    /// Entries and directories that could not be read, skipped.
    unreadable: u64,
}

/// Walks `root` depth first in name order, without following symlinks,
/// until `limit` entries.
fn walk(root: &Path, limit: u64, pb: &ProgressBar) -> Walk {
    let mut w = Walk::default();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        if w.entries.len() as u64 >= limit {
            break;
        }
        let Ok(meta) = fs::symlink_metadata(&path) else {
            w.unreadable += 1;
            continue;
        };
        w.entries.push((path_key(&path), Record::of(&meta)));
        pb.inc(1);
        if !meta.is_dir() {
            continue;
        }
        let Ok(dir) = fs::read_dir(&path) else {
            w.unreadable += 1;
            continue;
        };
        let mut children: Vec<PathBuf> = Vec::new();
        for entry in dir {
            match entry {
                Ok(e) => children.push(e.path()),
                Err(_) => w.unreadable += 1,
            }
        }
        children.sort_unstable_by(|a, b| b.cmp(a));
        stack.extend(children);
    }
    w
}

/// Inserts `key`, returning false if it is too large to store.
fn insert(tree: &Tree, key: &[u8], value: &[u8]) -> Result<bool> {
    match tree.insert(key, value) {
        Ok(()) => Ok(true),
        Err(larix::Error::KeyTooLarge { .. }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The changes made after the snapshot.
#[derive(Debug, Default, PartialEq, Eq)]
struct Changes {
    added: u64,
    removed: u64,
    changed: u64,
}

/// Changes about 5% of `keys` (new size and mtime), removes about 2%, and
/// adds about 2% new entries next to existing ones.
fn change(tree: &Tree, keys: &[(Vec<u8>, Record)], pb: &ProgressBar) -> Result<Changes> {
    let mut rng = Rng::new(0x1a21);
    let mut c = Changes::default();
    for (key, record) in keys {
        match rng.below(100) {
            0..=4 => {
                let newer = Record {
                    size: record.size + 1 + rng.below(4096),
                    mtime: record.mtime + 60,
                    ..*record
                };
                tree.insert(key, &newer.encode())?;
                c.changed += 1;
            }
            5..=6 if tree.remove(key)? => c.removed += 1,
            7..=8 => {
                let new_key = [key.as_slice(), ADDED_SUFFIX].concat();
                if tree.get(&new_key)?.is_none() && insert(tree, &new_key, &record.encode())? {
                    c.added += 1;
                }
            }
            _ => {}
        }
        pb.inc(1);
    }
    Ok(c)
}

/// The difference between two trees: counts, and the first few of each.
#[derive(Default)]
struct Diff {
    counts: Changes,
    added: Vec<Vec<u8>>,
    removed: Vec<Vec<u8>>,
    changed: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>,
    /// Nodes the diff read.
    reads: u64,
}

/// The changes from `old` to `new`, found by [`Tree::diff`], which skips
/// every subtree the two share: its cost follows the change.
fn diff(old: &Tree, new: &Tree, pb: &ProgressBar) -> Result<Diff> {
    let mut d = Diff::default();
    for change in old.diff(new)? {
        let larix::Change { key, old, new } = change?;
        pb.inc(1);
        match (old, new) {
            (Some(_), None) => {
                d.counts.removed += 1;
                if d.removed.len() < SHOWN {
                    d.removed.push(key);
                }
            }
            (None, Some(_)) => {
                d.counts.added += 1;
                if d.added.len() < SHOWN {
                    d.added.push(key);
                }
            }
            (Some(was), Some(is)) => {
                d.counts.changed += 1;
                if d.changed.len() < SHOWN {
                    d.changed.push((key, was, is));
                }
            }
            (None, None) => {}
        }
    }
    Ok(d)
}

/// A record's value for the difference listing.
fn show_record(bytes: &[u8]) -> String {
    match Record::decode(bytes) {
        Some(r) => format!("size {} mode {:o} mtime {}", r.size, r.mode, r.mtime),
        None => format!("{} bytes", bytes.len()),
    }
}

/// The file the demo writes into the directory of each store it creates;
/// only a directory holding it, with [`MARKER_TEXT`], is one the demo may
/// empty.
const MARKER: &str = "larix-demo";
/// The marker's contents.
const MARKER_TEXT: &str = "This store was made by `larix demo`; the next demo run replaces it.\n";

/// A new demo store: in memory, or in `a.db` (see [`clear_store_dir`]).
fn fresh_store(a: &DemoArgs) -> Result<Forest> {
    let options = store::new_options(&a.filters, a.key_file.as_deref(), None)?;
    if a.in_memory {
        return Ok(Forest::in_memory(options)?);
    }
    clear_store_dir(&a.db)?;
    Ok(Forest::open(&a.db, options)?)
}

/// Makes `db` ready for a new demo store, marked as the demo's: creates it
/// if missing, or removes the previous demo store in it (its files and the
/// marker; anything else stays).
///
/// # Errors
/// [`CliError::BadInput`] if `db` holds a store without the marker, or
/// other files and no marker; [`CliError::Io`] if it cannot be changed.
fn clear_store_dir(db: &Path) -> Result<()> {
    let marker = db.join(MARKER);
    let marked = fs::symlink_metadata(&marker).is_ok_and(|m| m.is_file())
        && fs::read_to_string(&marker).is_ok_and(|text| text == MARKER_TEXT);
    if marked {
        cleanup::remove_files(db, |name| cleanup::is_store_file(name) || name == MARKER)?;
    } else if store::exists(db) {
        return Err(CliError::BadInput(format!(
            "{} holds a store the demo did not create; choose another --db",
            db.display()
        )));
    } else if !cleanup::entries(db)?.is_empty() {
        return Err(CliError::BadInput(format!(
            "{} exists and is not a Larix store; choose another --db",
            db.display()
        )));
    }
    fs::create_dir_all(db).map_err(|e| CliError::io(db, e))?;
    fs::write(&marker, MARKER_TEXT).map_err(|e| CliError::io(&marker, e))
}

/// `larix demo`.
pub fn demo(a: &DemoArgs, out: &mut dyn Write) -> Result<Status> {
    fs::symlink_metadata(&a.path).map_err(|e| CliError::io(&a.path, e))?;
    let forest = fresh_store(a)?;
    announce(a, out)?;
    let mut phases = Phases::default();
    let tree = forest.create_tree(TREE)?;
    let loaded = walk_and_load(a, &forest, &tree, &mut phases, out)?;

    let snapshot = phases.time("snapshot", || -> Result<_> {
        let pb = progress::spinner("snapshot");
        let snapshot = forest.clone_tree(TREE, SNAPSHOT)?;
        forest.commit()?;
        pb.finish_and_clear();
        Ok((1, snapshot))
    })?;
    writeln!(
        out,
        "cloned {TREE:?} as {SNAPSHOT:?} (O(1): one root reference)"
    )?;

    let made = phases.time("change", || -> Result<_> {
        let pb = progress::bar("change", loaded.len() as u64);
        let made = change(&tree, &loaded, &pb)?;
        pb.finish_and_clear();
        Ok((loaded.len() as u64, made))
    })?;
    commit(
        &forest,
        &mut phases,
        "commit changes",
        made.added + made.removed + made.changed,
    )?;
    writeln!(
        out,
        "changed {TREE:?}: {} updated, {} removed, {} added",
        table::count(made.changed),
        table::count(made.removed),
        table::count(made.added)
    )?;
    out.flush()?;

    let found = phases.time("diff", || -> Result<_> {
        let pb = progress::bar("diff", made.added + made.removed + made.changed);
        let reads = forest.stats().node_reads();
        let mut found = diff(&snapshot, &tree, &pb)?;
        found.reads = forest.stats().node_reads() - reads;
        pb.finish_and_clear();
        let c = &found.counts;
        Ok((c.added + c.removed + c.changed, found))
    })?;
    print_diff(out, &found, &made)?;

    let clean = checkpoint_and_check(&forest, phases, out)?;
    Ok(if clean && found.counts == made {
        Status::Success
    } else {
        Status::Problems
    })
}

/// Writes a checkpoint (the nodes reach the segments only then, so the
/// figures show the store as it lies on disk), checks the forest, and
/// prints the check, the phases and the store's counters; returns whether
/// the check was clean.
///
/// # Errors
/// The engine's error, or a failed write to `out`.
fn checkpoint_and_check(forest: &Forest, mut phases: Phases, out: &mut dyn Write) -> Result<bool> {
    phases.time("checkpoint", || -> Result<_> {
        forest.checkpoint()?;
        Ok((1, ()))
    })?;
    let report = check_phase(&mut phases, forest)?;
    writeln!(out, "check: {report}")?;
    writeln!(out, "\n{}", phases.table())?;
    write!(out, "{}", stats_table(&forest.stats()))?;
    Ok(report.is_clean())
}

/// Says what the demo is about to do, with which filters.
///
/// # Errors
/// As [`store::filter_stack`], or a failed write to `out`.
fn announce(a: &DemoArgs, out: &mut dyn Write) -> Result<()> {
    let filters: Vec<&str> = store::filter_stack(&a.filters, a.key_file.as_deref(), None)?
        .iter()
        .map(|f| f.name())
        .collect();
    writeln!(
        out,
        "Larix demo: {} into tree {TREE:?} of {}",
        a.path.display(),
        store_description(a.in_memory, &a.db, &filters)
    )?;
    out.flush()?;
    Ok(())
}

/// Walks `a.path`, stores an entry per file in `tree` and commits; returns
/// the entries stored.
///
/// # Errors
/// The engine's error, or a failed write to `out`.
fn walk_and_load(
    a: &DemoArgs,
    forest: &Forest,
    tree: &Tree,
    phases: &mut Phases,
    out: &mut dyn Write,
) -> Result<Vec<(Vec<u8>, Record)>> {
    let walked = phases.time("walk", || -> Result<_> {
        let pb = progress::spinner("walk");
        let w = walk(&a.path, a.limit, &pb);
        pb.finish_and_clear();
        Ok((w.entries.len() as u64, w))
    })?;
    let loaded = phases.time("load", || -> Result<_> {
        let pb = progress::bar("load", walked.entries.len() as u64);
        let mut loaded = Vec::with_capacity(walked.entries.len());
        for (key, record) in &walked.entries {
            if insert(tree, key, &record.encode())? {
                loaded.push((key.clone(), *record));
            }
            pb.inc(1);
        }
        pb.finish_and_clear();
        Ok((loaded.len() as u64, loaded))
    })?;
    let too_long = walked.entries.len() - loaded.len();
    commit(forest, phases, "commit", loaded.len() as u64)?;
    writeln!(
        out,
        "stored {} entries ({} unreadable and {} with too long a path skipped)",
        table::count(loaded.len() as u64),
        table::count(walked.unreadable),
        table::count(too_long as u64)
    )?;
    Ok(loaded)
}

/// Commits as a timed phase with a spinner; `ops` is the entries it makes
/// durable.
fn commit(forest: &Forest, phases: &mut Phases, name: &str, ops: u64) -> Result<()> {
    phases.time(name, || -> Result<_> {
        let pb = progress::spinner(name);
        forest.commit()?;
        pb.finish_and_clear();
        Ok((ops, ()))
    })
}

/// Prints the difference found and whether it matches the changes made.
fn print_diff(out: &mut dyn Write, found: &Diff, made: &Changes) -> Result<()> {
    writeln!(
        out,
        "difference {SNAPSHOT:?} -> {TREE:?}, found by a diff that skips what the trees share \
         ({} node reads):",
        table::count(found.reads)
    )?;
    for key in &found.added {
        writeln!(out, "  + {}", escape(key))?;
    }
    for key in &found.removed {
        writeln!(out, "  - {}", escape(key))?;
    }
    for (key, was, is) in &found.changed {
        writeln!(
            out,
            "  ~ {}: {} -> {}",
            escape(key),
            show_record(was),
            show_record(is)
        )?;
    }
    let c = &found.counts;
    writeln!(
        out,
        "  {} added, {} removed, {} changed: {}",
        table::count(c.added),
        table::count(c.removed),
        table::count(c.changed),
        if c == made {
            "exactly the changes made"
        } else {
            "NOT the changes made"
        }
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let r = Record {
            size: 1 << 40,
            mode: 0o100_644,
            mtime: -5,
        };
        assert_eq!(Record::decode(&r.encode()), Some(r));
        assert_eq!(Record::decode(b"short"), None);
    }

    #[test]
    fn diff_finds_exactly_the_changes() {
        let forest = Forest::in_memory(larix::Options::default().node_size(512)).unwrap();
        let tree = forest.create_tree(TREE).unwrap();
        let keys: Vec<(Vec<u8>, Record)> = (0..2000u64)
            .map(|i| {
                let r = Record {
                    size: i,
                    mode: 0,
                    mtime: 0,
                };
                tree.insert(format!("/f{i:05}").as_bytes(), &r.encode())
                    .unwrap();
                (format!("/f{i:05}").into_bytes(), r)
            })
            .collect();
        let snapshot = forest.clone_tree(TREE, SNAPSHOT).unwrap();
        let made = change(&tree, &keys, &ProgressBar::hidden()).unwrap();
        assert!(made.added > 0 && made.removed > 0 && made.changed > 0);
        let found = diff(&snapshot, &tree, &ProgressBar::hidden()).unwrap();
        assert_eq!(found.counts, made);
        assert!(found.added.len() <= SHOWN);
        assert!(forest.check().unwrap().is_clean());
    }
}
