//! The file-tree workload, run against one engine in the engine's own
//! process: the paths and metadata of a directory tree, loaded in walk
//! order, then read back, scanned by directory, and changed in one commit.
//!
//! Everything the timed steps use (the read order, the directories to
//! scan with their expected counts, the paths to change and remove) is
//! chosen before the first timer starts, from the run's seed, so every
//! engine sees the same operations. Every step is checked: the reads must
//! find every value, each scan must count exactly the entries the sorted
//! key list holds under its directory, and after the change the engine
//! must hold exactly the changed state. A step's time is only emitted
//! once its check has passed.

use crate::engines::{self, Engine, Pair, Result};
use crate::workload::{disk_size, expect, ms, Config, Emit};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

/// LMDB's default key limit; longer paths are left out for every engine.
pub const MAX_PATH_KEY: usize = 511;
/// Bytes of a value: size u64 | mode u32 | mtime i64, little-endian.
pub const VALUE_LEN: usize = 20;
/// Directory prefix scans.
pub const PREFIX_SCANS: usize = 1_000;
/// Percentage of the loaded paths the change overwrites.
pub const CHANGED_PERCENT: usize = 10;
/// Percentage of the loaded paths the change removes (none of the
/// overwritten ones).
pub const REMOVED_PERCENT: usize = 8;
/// What the change adds to the size of each overwritten entry.
pub const GROWTH: u64 = 4_096;
/// What the change adds to the mtime of each overwritten entry (s).
pub const LATER: i64 = 3_600;

/// Paths and metadata of the entries under `root` (files, directories,
/// links; not following links), in sorted walk order: key = path bytes,
/// value = size u64 | mode u32 | mtime i64, little-endian ([`VALUE_LEN`]
/// bytes).
pub fn file_pairs(root: &Path, max: usize) -> Vec<Pair> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().as_os_str().len() <= MAX_PATH_KEY)
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            let mut value = Vec::with_capacity(VALUE_LEN);
            value.extend_from_slice(&m.size().to_le_bytes());
            value.extend_from_slice(&m.mode().to_le_bytes());
            value.extend_from_slice(&m.mtime().to_le_bytes());
            Some((e.path().as_os_str().as_bytes().to_vec(), value))
        })
        .take(max)
        .collect()
}

/// The directory of `path`: everything before its last `/` (`/` itself
/// for a path directly under the root); `None` for a path without one.
fn parent(path: &[u8]) -> Option<&[u8]> {
    let slash = path.iter().rposition(|&b| b == b'/')?;
    let dir = &path[..slash.max(1)];
    (dir != path).then_some(dir)
}

/// The prefix of the paths under directory `dir`: `dir` ending in `/`.
fn dir_prefix(dir: &[u8]) -> Vec<u8> {
    let mut prefix = dir.to_vec();
    if !prefix.ends_with(b"/") {
        prefix.push(b'/');
    }
    prefix
}

/// The number of keys of `sorted` (sorted bytewise) that start with
/// `prefix`: they lie together, from the first key not below `prefix`.
fn count_prefix(sorted: &[&[u8]], prefix: &[u8]) -> usize {
    let from = sorted.partition_point(|k| *k < prefix);
    sorted[from..]
        .iter()
        .take_while(|k| k.starts_with(prefix))
        .count()
}

/// The directory scans: [`PREFIX_SCANS`] prefixes with their expected
/// counts.
struct Scans {
    /// The paths under each directory start with this (the directory's
    /// path and a `/`); one directory may come more than once.
    prefixes: Vec<Vec<u8>>,
    /// Entries under each prefix, counted on the sorted keys.
    expected: Vec<usize>,
}

/// Chooses the directory scans: each directory is the parent of a random
/// loaded path whose parent is loaded too (so a directory comes up as
/// often as it has entries directly in it), and its expected count is
/// taken from the sorted keys (walk order is not bytewise order: `lib-a`
/// sorts before `lib/` bytewise but after `lib`'s children in the walk).
///
/// # Errors
/// No loaded path has a loaded parent (nothing to scan).
fn choose_scans(pairs: &[Pair], rng: &mut StdRng) -> Result<Scans> {
    let mut sorted: Vec<&[u8]> = pairs.iter().map(|(k, _)| k.as_slice()).collect();
    sorted.sort_unstable();
    let loaded: HashSet<&[u8]> = sorted.iter().copied().collect();
    let parents: Vec<&[u8]> = sorted
        .iter()
        .filter_map(|k| parent(k))
        .filter(|dir| loaded.contains(dir))
        .collect();
    if parents.is_empty() {
        return Err("files: no loaded path lies in a loaded directory: nothing to scan".into());
    }
    let prefixes: Vec<Vec<u8>> = (0..PREFIX_SCANS)
        .map(|_| dir_prefix(parents[rng.gen_range(0..parents.len())]))
        .collect();
    let expected = prefixes.iter().map(|p| count_prefix(&sorted, p)).collect();
    Ok(Scans { prefixes, expected })
}

/// Fails unless every scan counted exactly its expected entries.
fn check_scans(scans: &Scans, counts: &[usize]) -> Result<()> {
    expect("files_scans: scans", counts.len(), scans.expected.len())?;
    let wrong = counts.iter().zip(&scans.expected).position(|(c, e)| c != e);
    match wrong {
        None => Ok(()),
        Some(i) => Err(format!(
            "files_scans: {:?} counted {} entries, expected {}",
            String::from_utf8_lossy(&scans.prefixes[i]),
            counts[i],
            scans.expected[i]
        )
        .into()),
    }
}

/// A little-endian field of `value` at `at`.
fn field<const N: usize>(value: &[u8], at: usize) -> [u8; N] {
    let mut bytes = [0; N];
    bytes.copy_from_slice(&value[at..at + N]);
    bytes
}

/// `value` (of [`file_pairs`]) once its file has grown by [`GROWTH`]
/// bytes, [`LATER`] seconds later; the mode is kept.
fn changed_value(value: &[u8]) -> Vec<u8> {
    let size = u64::from_le_bytes(field(value, 0)).wrapping_add(GROWTH);
    let mtime = i64::from_le_bytes(field(value, 12)).wrapping_add(LATER);
    let mut out = value.to_vec();
    out[..8].copy_from_slice(&size.to_le_bytes());
    out[12..VALUE_LEN].copy_from_slice(&mtime.to_le_bytes());
    out
}

/// The change: one transaction that overwrites some loaded paths and
/// removes others.
struct Change {
    /// [`CHANGED_PERCENT`] of the paths, with their [`changed_value`], in
    /// walk order.
    writes: Vec<Pair>,
    /// Another [`REMOVED_PERCENT`], in walk order.
    removes: Vec<Pair>,
    /// Indexes of the loaded pairs neither overwritten nor removed.
    kept: Vec<usize>,
}

/// Chooses the paths to change: the loaded pairs in a random order, the
/// first [`CHANGED_PERCENT`] of them overwritten, the next
/// [`REMOVED_PERCENT`] removed.
fn choose_change(pairs: &[Pair], rng: &mut StdRng) -> Change {
    let mut shuffled: Vec<usize> = (0..pairs.len()).collect();
    shuffled.shuffle(rng);
    let changed = pairs.len() * CHANGED_PERCENT / 100;
    let removed = pairs.len() * REMOVED_PERCENT / 100;
    let pick = |from: usize, to: usize| {
        let mut picked = shuffled[from..to].to_vec();
        picked.sort_unstable();
        picked
    };
    let (writes, removes) = (pick(0, changed), pick(changed, changed + removed));
    Change {
        writes: writes
            .iter()
            .map(|&i| (pairs[i].0.clone(), changed_value(&pairs[i].1)))
            .collect(),
        removes: removes.iter().map(|&i| pairs[i].clone()).collect(),
        kept: pick(changed + removed, pairs.len()),
    }
}

/// Checks that `engine` holds exactly the state after `change`: every
/// kept pair with its loaded value, every overwritten one with its new
/// value, and no other entry (so the removed paths are gone).
///
/// # Errors
/// An engine error, or a wrong value or count.
fn check_change(engine: &dyn Engine, pairs: &[Pair], change: &Change) -> Result<()> {
    let after: Vec<&Pair> = change
        .kept
        .iter()
        .map(|&i| &pairs[i])
        .chain(&change.writes)
        .collect();
    expect(
        "files_change: values after",
        engine.read(&after)?,
        after.len(),
    )?;
    let all = engine.scan_prefixes(&[b"".as_slice()])?;
    expect("files_change: entries after", all.iter().sum(), after.len())
}

/// The file-tree workload on `pairs`: bulk load in walk order, one
/// commit, size on disk; every path read once in a random order;
/// [`PREFIX_SCANS`] directory scans; then the change in one commit.
///
/// # Errors
/// An engine error, or an engine returning wrong results.
pub fn run_files(name: &str, cfg: &Config, pairs: &[Pair], emit: Emit) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut order: Vec<&Pair> = pairs.iter().collect();
    order.shuffle(&mut rng);
    let scans = choose_scans(pairs, &mut rng)?;
    let prefixes: Vec<&[u8]> = scans.prefixes.iter().map(Vec::as_slice).collect();
    let change = choose_change(pairs, &mut rng);
    let root = tempfile::Builder::new()
        .prefix(&format!("compare-files-{name}-"))
        .tempdir_in(cfg.dir)?;
    let db_dir = root.path().join("db");
    let engine = engines::open(name, &db_dir)?;

    let t = Instant::now();
    engine.write(pairs)?;
    emit("files_load", ms(t));
    emit("files_size", disk_size(&db_dir) as f64);

    let t = Instant::now();
    let found = engine.read(&order)?;
    let elapsed = ms(t);
    expect("files_reads", found, pairs.len())?;
    emit("files_reads", elapsed);

    let t = Instant::now();
    let counts = engine.scan_prefixes(&prefixes)?;
    let elapsed = ms(t);
    check_scans(&scans, &counts)?;
    emit("files_scans", elapsed);
    emit("files_scanned", scans.expected.iter().sum::<usize>() as f64);

    let t = Instant::now();
    engine.apply(&change.writes, &change.removes)?;
    let elapsed = ms(t);
    check_change(engine.as_ref(), pairs, &change)?;
    emit("files_change", elapsed);
    drop(engine);
    root.close()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_is_the_path_before_the_last_slash() {
        assert_eq!(parent(b"/usr/lib/libc.so"), Some(&b"/usr/lib"[..]));
        assert_eq!(parent(b"/usr"), Some(&b"/"[..]));
        assert_eq!(parent(b"/"), None);
        assert_eq!(parent(b"usr"), None);
    }

    #[test]
    fn dir_prefix_ends_in_one_slash() {
        assert_eq!(dir_prefix(b"/usr"), b"/usr/");
        assert_eq!(dir_prefix(b"/"), b"/");
    }

    #[test]
    fn count_prefix_counts_what_lies_under_the_directory_only() {
        let mut keys: Vec<&[u8]> = vec![b"/a", b"/a/b", b"/a/b/c", b"/a-b", b"/a0", b"/ab"];
        keys.sort_unstable();
        assert_eq!(count_prefix(&keys, b"/a/"), 2);
        assert_eq!(count_prefix(&keys, b"/a/b/"), 1);
        assert_eq!(count_prefix(&keys, b"/"), 6);
        assert_eq!(count_prefix(&keys, b"/z/"), 0);
    }

    #[test]
    fn change_overwrites_and_removes_disjoint_shares() {
        let pairs: Vec<Pair> = (0..1_000u32)
            .map(|i| (i.to_be_bytes().to_vec(), vec![0; VALUE_LEN]))
            .collect();
        let change = choose_change(&pairs, &mut StdRng::seed_from_u64(1));
        assert_eq!(change.writes.len(), 100);
        assert_eq!(change.removes.len(), 80);
        assert_eq!(change.kept.len(), 820);
        let mut keys: Vec<&Vec<u8>> = change.writes.iter().map(|(k, _)| k).collect();
        keys.extend(change.removes.iter().map(|(k, _)| k));
        keys.extend(change.kept.iter().map(|&i| &pairs[i].0));
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), pairs.len());
        assert!(change.writes.iter().all(|(_, v)| *v != vec![0; VALUE_LEN]));
    }
}
