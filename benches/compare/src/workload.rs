//! The workloads, run against one engine in the engine's own process:
//! redb's published benchmark on random pairs, then a bulk load and random
//! reads of the paths and metadata of a directory tree.
//!
//! Every measurement is handed to `emit` as soon as it is taken. The data
//! is generated before any timer starts, from a fixed seed, so every engine
//! sees the same keys in the same order.

use crate::engines::{self, Compacted, Engine, Pair, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::time::Instant;

/// Writes committed one at a time.
pub const SINGLE_WRITES: usize = 1_000;
/// Batches of [`BATCH_LEN`] writes, each batch one commit.
pub const BATCHES: usize = 100;
/// Writes per batch.
pub const BATCH_LEN: usize = 1_000;
/// Entries read by each range read.
pub const RANGE_LEN: usize = 10;
/// Key and value lengths of the random workload (redb's).
pub const KEY_LEN: usize = 24;
/// See [`KEY_LEN`].
pub const VALUE_LEN: usize = 150;
/// LMDB's default key limit; longer paths are left out for every engine.
pub const MAX_PATH_KEY: usize = 511;

/// What a run of the workloads needs to know.
pub struct Config<'a> {
    /// Pairs in the bulk load.
    pub n: usize,
    /// Seed of the random data.
    pub seed: u64,
    /// Directory under which each store gets a fresh temporary directory.
    pub dir: &'a Path,
    /// The file tree walked for the second workload, if it runs.
    pub files_root: Option<&'a Path>,
    /// The most entries taken from the file tree.
    pub files_max: usize,
}

/// Receives each measurement: row key and value (ms or bytes).
pub type Emit<'a> = &'a mut dyn FnMut(&str, f64);

fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// `count` random pairs of redb's sizes.
fn random_pairs(rng: &mut StdRng, count: usize) -> Vec<Pair> {
    (0..count)
        .map(|_| {
            let mut k = vec![0u8; KEY_LEN];
            let mut v = vec![0u8; VALUE_LEN];
            rng.fill(k.as_mut_slice());
            rng.fill(v.as_mut_slice());
            (k, v)
        })
        .collect()
}

/// Fails unless `got` equals `want`: an engine returning wrong data must
/// not produce a number.
fn expect(what: &str, got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got} of {want} expected results").into())
    }
}

/// The bytes of all files under `path` (0 if it does not exist).
pub fn disk_size(path: &Path) -> u64 {
    walkdir::WalkDir::new(path)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// The peak resident memory of this process, in bytes.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Reads `pairs` from two threads, each half in its own read transaction.
fn read_two_threads(engine: &dyn Engine, pairs: &[&Pair]) -> Result<usize> {
    let (a, b) = pairs.split_at(pairs.len() / 2);
    std::thread::scope(|s| {
        let ta = s.spawn(|| engine.read(a));
        let tb = s.spawn(|| engine.read(b));
        let join = |t: std::thread::ScopedJoinHandle<'_, Result<usize>>| {
            t.join().map_err(|_| "reader thread panicked".to_string())?
        };
        Ok(join(ta)? + join(tb)?)
    })
}

/// redb's workload on random pairs, against engine `name`.
///
/// # Errors
/// An engine error, or an engine returning wrong results.
pub fn run_random(name: &str, cfg: &Config, emit: Emit) -> Result<()> {
    let n = cfg.n;
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let load = random_pairs(&mut rng, n);
    let singles = random_pairs(&mut rng, SINGLE_WRITES);
    let batches = random_pairs(&mut rng, BATCHES * BATCH_LEN);
    let mut order: Vec<&Pair> = load.iter().collect();
    order.shuffle(&mut rng);

    let root = tempfile::Builder::new()
        .prefix(&format!("compare-{name}-"))
        .tempdir_in(cfg.dir)?;
    let db_dir = root.path().join("db");
    let scratch = root.path().join("scratch");
    std::fs::create_dir_all(&scratch)?;
    let mut engine = engines::open(name, &db_dir)?;

    let t = Instant::now();
    engine.write(&load)?;
    emit("bulk_load", ms(t));
    emit("size_load", disk_size(&db_dir) as f64);

    let t = Instant::now();
    for pair in &singles {
        engine.write(std::slice::from_ref(pair))?;
    }
    emit("individual_writes", ms(t));

    let t = Instant::now();
    for batch in batches.chunks(BATCH_LEN) {
        engine.write(batch)?;
    }
    emit("batch_writes", ms(t));

    for row in ["random_reads_1", "random_reads_2"] {
        let t = Instant::now();
        let found = engine.read(&order)?;
        emit(row, ms(t));
        expect(row, found, n)?;
    }

    let starts = &order[..n / 2];
    let t = Instant::now();
    let read = engine.scan(starts, RANGE_LEN)?;
    emit("range_reads", ms(t));
    // Only a start among the last few keys can see fewer than 10 entries.
    if read + RANGE_LEN * RANGE_LEN < starts.len() * RANGE_LEN {
        return Err(format!("range reads returned only {read} entries").into());
    }

    let t = Instant::now();
    let found = read_two_threads(engine.as_ref(), &order)?;
    emit("random_reads_2t", ms(t));
    expect("random_reads_2t", found, n)?;

    let t = Instant::now();
    engine.remove(&load[..n / 2])?;
    emit("removals", ms(t));
    emit("size_removals", disk_size(&db_dir) as f64);

    let t = Instant::now();
    let compacted = engine.compact(&scratch)?;
    let elapsed = ms(t);
    match compacted {
        Compacted::InPlace => {
            emit("compaction", elapsed);
            emit("size_compacted", disk_size(&db_dir) as f64);
        }
        Compacted::Copy(file) => {
            emit("compaction", elapsed);
            emit("size_compacted", disk_size(&file) as f64);
        }
        Compacted::Unsupported => {}
    }
    // Removed keys must be gone, the others still there.
    expect("after removals", engine.read(&order[..1000.min(n)])?, {
        let removed: std::collections::HashSet<&[u8]> =
            load[..n / 2].iter().map(|(k, _)| k.as_slice()).collect();
        order[..1000.min(n)]
            .iter()
            .filter(|(k, _)| !removed.contains(k.as_slice()))
            .count()
    })?;
    drop(engine);
    root.close()?;
    Ok(())
}

/// Paths and metadata of the entries under `root` (files, directories,
/// links; not following links), in sorted walk order: key = path bytes,
/// value = size u64 | mode u32 | mtime i64, little-endian (20 bytes).
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
            let mut value = Vec::with_capacity(20);
            value.extend_from_slice(&m.size().to_le_bytes());
            value.extend_from_slice(&m.mode().to_le_bytes());
            value.extend_from_slice(&m.mtime().to_le_bytes());
            Some((e.path().as_os_str().as_bytes().to_vec(), value))
        })
        .take(max)
        .collect()
}

/// The file-tree workload: bulk load of `pairs` in walk order, one commit,
/// size on disk, then every path read once in a random order.
///
/// # Errors
/// An engine error, or an engine returning wrong results.
pub fn run_files(name: &str, cfg: &Config, pairs: &[Pair], emit: Emit) -> Result<()> {
    let mut order: Vec<&Pair> = pairs.iter().collect();
    order.shuffle(&mut StdRng::seed_from_u64(cfg.seed));
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
    emit("files_reads", ms(t));
    expect("files_reads", found, pairs.len())?;
    drop(engine);
    root.close()?;
    Ok(())
}
