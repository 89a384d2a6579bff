//! The random workload, run against one engine in the engine's own
//! process: redb's published benchmark on random pairs, with a YCSB A mix
//! of reads and updates added; and what every workload shares (the
//! configuration, the timer, the checks, the sizes). The file-tree
//! workload is in [`crate::files`], the large-values one in
//! [`crate::large`].
//!
//! Every measurement is handed to `emit` as soon as it is taken. The data
//! is generated before any timer starts, from a fixed seed, so every engine
//! sees the same keys in the same order.

use crate::engines::{self, Compacted, Engine, Pair, Result};
use crate::large::Large;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::ScopedJoinHandle;
use std::time::{Duration, Instant};

#[path = "../../support/cpu.rs"]
mod cpu;
use cpu::cpu_ms;

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
/// Threads of the YCSB A mix.
pub const MIX_THREADS: usize = 2;
/// The zipfian constant of the mix's key choice (YCSB's).
pub const MIX_THETA: f64 = 0.99;

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
    /// Operations per thread of the YCSB A mix (0: no mix).
    pub mix_ops: usize,
    /// The sizes of the large-values workload, if it runs.
    pub large: Option<Large>,
}

/// Receives each measurement: row key and value (ms or bytes).
pub type Emit<'a> = &'a mut dyn FnMut(&str, f64);

/// Milliseconds since `start`.
pub fn ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// `count` random pairs of redb's sizes.
pub fn random_pairs(rng: &mut StdRng, count: usize) -> Vec<Pair> {
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
pub fn expect(what: &str, got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got} of {want} expected results").into())
    }
}

/// The bytes of all files under `path` (0 if it does not exist), holes
/// left out: a file counts its length, or the bytes allocated to it if
/// fewer (a sparse file, like fjall's journal, preallocated with
/// `set_len` to 64 MiB).
pub fn disk_size(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    walkdir::WalkDir::new(path)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len().min(m.blocks() * 512))
        .sum()
}

/// The peak resident memory of this process, in bytes.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The bytes this process has handed to write calls so far (`wchar` in
/// `/proc/self/io`: files, pipes and terminals alike, whether or not they
/// have reached the disk yet), if the kernel reports it.
pub fn written_bytes() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    let line = io.lines().find(|l| l.starts_with("wchar:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The result of a scoped thread, with a panic turned into an error.
fn join<T>(thread: ScopedJoinHandle<'_, Result<T>>) -> Result<T> {
    thread
        .join()
        .map_err(|_| "worker thread panicked".to_string())?
}

/// Reads `pairs` from two threads, each half in its own read transaction.
fn read_two_threads(engine: &dyn Engine, pairs: &[&Pair]) -> Result<(usize, f64)> {
    let (a, b) = pairs.split_at(pairs.len() / 2);
    let read = |part| {
        let cpu = cpu_ms("thread-self");
        let found = engine.read(part)?;
        Ok((found, cpu_ms("thread-self") - cpu))
    };
    std::thread::scope(|s| {
        let ta = s.spawn(|| read(a));
        let tb = s.spawn(|| read(b));
        let ((fa, ca), (fb, cb)) = (join(ta)?, join(tb)?);
        Ok((fa + fb, ca + cb))
    })
}

/// What [`read_beside_writer`] measured.
struct BesideWriter {
    /// Pairs the readers found with their expected value.
    found: usize,
    /// Milliseconds until both readers finished.
    ms: f64,
    /// Batches the writer committed meanwhile.
    batches: usize,
    /// Processor time the whole process took while the readers ran, in
    /// milliseconds (0 where `/proc` does not tell).
    cpu_ms: f64,
    /// Processor time the two reading threads took, in milliseconds.
    readers_cpu_ms: f64,
    /// Processor time the writing thread took, from its start to its end
    /// (it may finish a batch after the readers end), in milliseconds.
    writer_cpu_ms: f64,
}

/// Batches a second the paced writer beside the readers commits (row
/// `random_reads_2t_paced`): every engine's writer kept this pace beside
/// the readers here (LMDB and redb, the slowest, committed about 31 a
/// second when held to 40), so each engine's readers share the machine
/// with the same writes.
const PACED_BATCHES_PER_S: u32 = 20;

/// Reads `pairs` as [`read_two_threads`] does while a third thread writes
/// `rewrite` in batches of [`BATCH_LEN`], each batch committed, over and
/// over until the readers finish: as fast as it can, or with `pace`, at
/// most one batch started per `pace`. Only the readers are timed; the
/// engine then settles ([`Engine::settle`]), untimed, so that the next
/// row does not run beside what this writer left in the background.
fn read_beside_writer(
    engine: &dyn Engine,
    pairs: &[&Pair],
    rewrite: &[Pair],
    pace: Option<Duration>,
) -> Result<BesideWriter> {
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let cpu = cpu_ms("thread-self");
            let batches = write_until(engine, rewrite, &done, pace)?;
            Ok((batches, cpu_ms("thread-self") - cpu))
        });
        let t = Instant::now();
        let cpu = cpu_ms("self");
        let read = read_two_threads(engine, pairs);
        let elapsed = ms(t);
        let cpu = cpu_ms("self") - cpu;
        done.store(true, Ordering::Relaxed);
        let (batches, writer_cpu_ms) = join(writer)?;
        engine.settle()?;
        let (found, readers_cpu_ms) = read?;
        Ok(BesideWriter {
            found,
            readers_cpu_ms,
            ms: elapsed,
            batches,
            cpu_ms: cpu,
            writer_cpu_ms,
        })
    })
}

/// Emits the processor times of a row beside a writer: the readers', the
/// rest of the process's while they ran (the writer and the engine's own
/// threads), and, in the log only, the writing thread's own.
fn emit_cpu(row: &str, beside: &BesideWriter, emit: Emit) {
    emit(&format!("{row}_readers_cpu_ms"), beside.readers_cpu_ms);
    emit(
        &format!("{row}_others_cpu_ms"),
        (beside.cpu_ms - beside.readers_cpu_ms).max(0.0),
    );
    emit(&format!("{row}_writer_cpu_ms"), beside.writer_cpu_ms);
}

/// Commits `pairs` in batches of [`BATCH_LEN`], cycling, until `done`,
/// starting batch k no earlier than k × `pace` after the first; returns
/// the batches committed.
fn write_until(
    engine: &dyn Engine,
    pairs: &[Pair],
    done: &AtomicBool,
    pace: Option<Duration>,
) -> Result<usize> {
    let start = Instant::now();
    let mut batches = 0u32;
    for batch in pairs.chunks(BATCH_LEN).cycle() {
        if let Some(pace) = pace {
            let due = start + pace * batches;
            // Short sleeps, so that the end of the readers is seen soon.
            while Instant::now() < due && !done.load(Ordering::Relaxed) {
                std::thread::sleep((due - Instant::now()).min(Duration::from_millis(2)));
            }
        }
        if done.load(Ordering::Relaxed) {
            break;
        }
        engine.write(batch)?;
        batches += 1;
    }
    Ok(batches as usize)
}

/// The value every update of the mix writes under `key`: random bytes
/// (incompressible, like the loaded values) seeded from the key, so a
/// reader knows the two values a key can hold.
fn updated_value(key: &[u8]) -> Vec<u8> {
    let seed = key
        .iter()
        .fold(0u64, |h, &b| h.rotate_left(8) ^ u64::from(b));
    let mut value = vec![0u8; VALUE_LEN];
    StdRng::seed_from_u64(seed ^ 0x00da_7e00).fill(value.as_mut_slice());
    value
}

/// One operation of the mix, on a pair of the load (by index).
enum Op {
    /// Read the pair's key in a read transaction of its own.
    Read(usize),
    /// Write this pair (the key with its [`updated_value`]) in a durable
    /// commit of its own.
    Update(usize, Pair),
}

/// The operations of one mix thread, generated before any timer starts:
/// half reads, half updates, on keys of `load` chosen with a zipfian
/// distribution (rank r is the r-th pair generated, so the hot keys lie
/// scattered over the key space, as with YCSB's scrambled zipfian).
fn mix_ops(load: &[Pair], ops: usize, seed: u64) -> Result<Vec<Op>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let zipf = Zipf::new(load.len() as u64, MIX_THETA)?;
    Ok((0..ops)
        .map(|_| {
            let i = (zipf.sample(&mut rng) as usize - 1).min(load.len() - 1);
            if rng.gen_bool(0.5) {
                Op::Read(i)
            } else {
                let key = load[i].0.clone();
                let value = updated_value(&key);
                Op::Update(i, (key, value))
            }
        })
        .collect())
}

/// What one mix thread measured.
#[derive(Default)]
struct MixStats {
    /// The latency of every read, in µs.
    read_us: Vec<f64>,
    /// Indexes (into the load) of the pairs updated.
    updated: Vec<usize>,
}

/// Runs `ops` on `engine`, timing each read. A read that does not find the
/// loaded value looks again (untimed) for the updated one: a key only ever
/// goes from its loaded value to its updated one, so one of them is there.
fn mix_thread(engine: &dyn Engine, load: &[Pair], ops: &[Op]) -> Result<MixStats> {
    let mut stats = MixStats::default();
    for op in ops {
        match op {
            Op::Read(i) => {
                let pair = &load[*i];
                let t = Instant::now();
                let found = engine.read(&[pair])?;
                stats.read_us.push(t.elapsed().as_secs_f64() * 1e6);
                if found == 0 {
                    let updated = (pair.0.clone(), updated_value(&pair.0));
                    expect("mix read", engine.read(&[&updated])?, 1)?;
                }
            }
            Op::Update(i, pair) => {
                engine.write(std::slice::from_ref(pair))?;
                stats.updated.push(*i);
            }
        }
    }
    Ok(stats)
}

/// The `p`-quantile (0 to 1) of `sorted`, which is not empty.
fn quantile(sorted: &[f64], p: f64) -> f64 {
    let rank = (sorted.len() as f64 * p).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// YCSB workload A on the loaded pairs: [`MIX_THREADS`] threads run
/// `ops` operations each, concurrently; emits the updates per second of
/// wall time and the mean and p99 read latency. Returns the indexes of
/// the pairs updated.
///
/// # Errors
/// An engine error, or a read that finds neither value of its key.
fn run_mix(engine: &dyn Engine, load: &[Pair], cfg: &Config, emit: Emit) -> Result<HashSet<usize>> {
    let plans = (0..MIX_THREADS as u64)
        .map(|t| mix_ops(load, cfg.mix_ops, cfg.seed ^ (0x7c5b << 8) ^ t))
        .collect::<Result<Vec<_>>>()?;
    let t = Instant::now();
    let stats = std::thread::scope(|s| {
        let threads: Vec<_> = plans
            .iter()
            .map(|ops| s.spawn(|| mix_thread(engine, load, ops)))
            .collect();
        threads.into_iter().map(join).collect::<Result<Vec<_>>>()
    })?;
    Ok(emit_mix(stats, t.elapsed().as_secs_f64(), emit))
}

/// Emits the rows of a mix that took `seconds` from the `stats` of its
/// threads; returns the indexes of the pairs updated.
fn emit_mix(stats: Vec<MixStats>, seconds: f64, emit: Emit) -> HashSet<usize> {
    let (mut reads, mut updates, mut updated) = (Vec::new(), 0, HashSet::new());
    for s in stats {
        reads.extend(s.read_us);
        updates += s.updated.len();
        updated.extend(s.updated);
    }
    reads.sort_by(f64::total_cmp);
    emit("mix_updates_per_s", updates as f64 / seconds);
    if !reads.is_empty() {
        emit(
            "mix_read_us",
            reads.iter().sum::<f64>() / reads.len() as f64,
        );
        emit("mix_read_p99_us", quantile(&reads, 0.99));
    }
    updated
}

/// Checks, on the pairs of `sample`, that the removed keys (the first half
/// of `load`) are gone and the others still there, with their loaded value
/// unless the mix updated them (`updated`: indexes into `load`).
///
/// # Errors
/// An engine error, or a wrong number of loaded values found.
fn check_removals(
    engine: &dyn Engine,
    load: &[Pair],
    sample: &[&Pair],
    updated: &HashSet<usize>,
) -> Result<()> {
    let removed = &load[..load.len() / 2];
    let gone: HashSet<&[u8]> = removed
        .iter()
        .map(|(k, _)| k.as_slice())
        .chain(updated.iter().map(|&i| load[i].0.as_slice()))
        .collect();
    let want = sample
        .iter()
        .filter(|(k, _)| !gone.contains(k.as_slice()))
        .count();
    expect("after removals", engine.read(sample)?, want)
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

    let written = written_bytes();
    let t = Instant::now();
    for pair in &singles {
        engine.write(std::slice::from_ref(pair))?;
    }
    emit("individual_writes", ms(t));
    if let (Some(before), Some(after)) = (written, written_bytes()) {
        emit(
            "commit_bytes",
            (after - before) as f64 / SINGLE_WRITES as f64,
        );
    }

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
    let (found, readers_cpu_ms) = read_two_threads(engine.as_ref(), &order)?;
    emit("random_reads_2t", ms(t));
    emit("random_reads_2t_readers_cpu_ms", readers_cpu_ms);
    expect("random_reads_2t", found, n)?;

    // The writer overwrites loaded pairs with their own values: every read
    // still finds its value, and the later rows see the same data.
    let beside = read_beside_writer(engine.as_ref(), &order, &load, None)?;
    emit("random_reads_2t_writer", beside.ms);
    emit("random_reads_2t_writer_batches", beside.batches as f64);
    emit_cpu("random_reads_2t_writer", &beside, emit);
    expect("random_reads_2t_writer", beside.found, n)?;
    // The same with a writer held to one pace for every engine: the row
    // above lets each writer commit as fast as it can, so a faster writer
    // takes more of the readers' processors.
    let pace = Duration::from_secs(1) / PACED_BATCHES_PER_S;
    let paced = read_beside_writer(engine.as_ref(), &order, &load, Some(pace))?;
    emit("random_reads_2t_paced", paced.ms);
    emit("random_reads_2t_paced_batches", paced.batches as f64);
    emit_cpu("random_reads_2t_paced", &paced, emit);
    expect("random_reads_2t_paced", paced.found, n)?;

    let updated = if cfg.mix_ops > 0 {
        run_mix(engine.as_ref(), &load, cfg, emit)?
    } else {
        HashSet::new()
    };

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
    check_removals(engine.as_ref(), &load, &order[..1000.min(n)], &updated)?;
    drop(engine);
    root.close()?;
    Ok(())
}
