//! `larix bench`: the standard workload — random 24-byte keys and 150-byte
//! values — in six phases, timed:
//!
//! | phase | operations |
//! | --- | --- |
//! | bulk load | N inserts, then one commit |
//! | durable writes | N/100 (1 to 1,000) inserts, each committed |
//! | batch writes | N/10 inserts, committed every 1,000 |
//! | random reads | N gets of keys present |
//! | range reads | N/100 (at least 1) scans of 100 entries from a random key |
//! | removals | N/10 removals of keys present, then one commit |
//!
//! then a structural check. Keys and values come from a fixed-seed
//! generator, so every run does the same work. A disk store goes in a
//! directory the bench creates and removes afterwards (unless `--keep`).

use super::args::BenchArgs;
use super::error::{CliError, Result};
use super::progress;
use super::report::{check_phase, stats_table, store_description, Phases};
use super::rng::Rng;
use super::store;
use super::table;
use super::Status;
use larix::{Forest, Tree};
use std::fs;
use std::io::Write;
use std::path::PathBuf;

/// Bytes of every key.
const KEY_LEN: usize = 24;
/// Bytes of every value.
const VALUE_LEN: usize = 150;
/// Inserts per commit in the batch phase.
const BATCH: u64 = 1000;
/// Entries read by each scan of the range phase.
const SCAN_LEN: usize = 100;

/// The keys written so far and the generator that makes more.
struct Workload {
    rng: Rng,
    keys: Vec<[u8; KEY_LEN]>,
}

impl Workload {
    /// Inserts a new random entry into `tree`.
    fn insert_new(&mut self, tree: &Tree) -> Result<()> {
        let mut key = [0u8; KEY_LEN];
        let mut value = [0u8; VALUE_LEN];
        self.rng.fill(&mut key);
        self.rng.fill(&mut value);
        tree.insert(&key, &value)?;
        self.keys.push(key);
        Ok(())
    }

    /// A key present in the tree, picked at random.
    fn existing(&mut self) -> [u8; KEY_LEN] {
        let i = self.rng.below(self.keys.len() as u64) as usize;
        self.keys.get(i).copied().unwrap_or_default()
    }
}

/// Removes the bench's directory when dropped, if it made one and is not
/// told to keep it.
struct Scratch(Option<PathBuf>);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            // Best effort: the results are printed already.
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// `larix bench`.
pub fn bench(a: &BenchArgs, out: &mut dyn Write) -> Result<Status> {
    let (options, names) = bench_options(a)?;
    if !a.in_memory && a.db.exists() {
        return Err(CliError::BadInput(format!(
            "{} already exists; bench needs a directory it can create and remove (pass --db NEW_DIR)",
            a.db.display()
        )));
    }
    // Declared before the forest, so it is dropped (and removes the
    // directory) after the forest is closed.
    let _scratch = Scratch((!a.in_memory && !a.keep).then(|| a.db.clone()));
    let forest = if a.in_memory {
        Forest::in_memory(options)?
    } else {
        Forest::open(&a.db, options)?
    };
    writeln!(
        out,
        "Larix bench: {} entries of {KEY_LEN}-byte keys and {VALUE_LEN}-byte values, {}",
        table::count(a.n),
        store_description(a.in_memory, &a.db, &names)
    )?;
    out.flush()?;

    let tree = forest.create_tree("bench")?;
    let mut w = Workload {
        rng: Rng::new(0xbe9c),
        keys: Vec::new(),
    };
    let mut phases = Phases::default();
    write_phases(&forest, &tree, &mut w, &mut phases, a.n)?;
    let missing = read_phases(&forest, &tree, &mut w, &mut phases, a.n)?;
    let report = check_phase(&mut phases, &forest)?;

    writeln!(out, "\n{}", phases.table())?;
    write!(out, "{}", stats_table(&forest.stats()))?;
    writeln!(out, "\ncheck: {report}")?;
    if missing > 0 {
        writeln!(
            out,
            "{missing} keys written by the bench were missing when read or removed"
        )?;
    }
    Ok(if report.is_clean() && missing == 0 {
        Status::Success
    } else {
        Status::Problems
    })
}

/// The options of the bench store and the names of its filters.
///
/// # Errors
/// As [`store::filter_stack`].
fn bench_options(a: &BenchArgs) -> Result<(larix::Options, Vec<&'static str>)> {
    let stack = if a.no_filters {
        Vec::new()
    } else {
        store::filter_stack(&a.filters, a.key_file.as_deref(), None)?
    };
    let names = stack.iter().map(|f| f.name()).collect();
    let mut options = larix::Options::default().filters(stack);
    if let Some(size) = a.filters.node_size {
        options = options.node_size(size);
    }
    Ok((options, names))
}

/// The write phases: bulk load, durable writes, batch writes.
///
/// # Errors
/// The engine's error.
fn write_phases(
    forest: &Forest,
    tree: &Tree,
    w: &mut Workload,
    phases: &mut Phases,
    n: u64,
) -> Result<()> {
    phases.time("bulk load", || -> Result<_> {
        let pb = progress::bar("bulk load", n);
        for _ in 0..n {
            w.insert_new(tree)?;
            pb.inc(1);
        }
        pb.set_message("committing");
        forest.commit()?;
        pb.finish_and_clear();
        Ok((n, ()))
    })?;
    let durable = (n / 100).clamp(1, 1000);
    phases.time("durable writes", || -> Result<_> {
        let pb = progress::bar("durable", durable);
        for _ in 0..durable {
            w.insert_new(tree)?;
            forest.commit()?;
            pb.inc(1);
        }
        pb.finish_and_clear();
        Ok((durable, ()))
    })?;
    let batched = n / 10;
    phases.time("batch writes", || -> Result<_> {
        let pb = progress::bar("batch", batched);
        for i in 1..=batched {
            w.insert_new(tree)?;
            if i % BATCH == 0 || i == batched {
                forest.commit()?;
            }
            pb.inc(1);
        }
        pb.finish_and_clear();
        Ok((batched, ()))
    })?;
    Ok(())
}

/// The read phases and the removals; returns how many keys the bench wrote
/// were missing when read or removed.
///
/// # Errors
/// The engine's error.
fn read_phases(
    forest: &Forest,
    tree: &Tree,
    w: &mut Workload,
    phases: &mut Phases,
    n: u64,
) -> Result<u64> {
    let mut missing = 0u64;
    phases.time("random reads", || -> Result<_> {
        let pb = progress::bar("reads", n);
        for _ in 0..n {
            if tree.get(&w.existing())?.is_none() {
                missing += 1;
            }
            pb.inc(1);
        }
        pb.finish_and_clear();
        Ok((n, ()))
    })?;
    let scans = (n / 100).max(1);
    phases.time("range reads", || -> Result<_> {
        let pb = progress::bar("scans", scans);
        for _ in 0..scans {
            let from = w.existing();
            for entry in tree.range(from.as_slice()..)?.take(SCAN_LEN) {
                entry?;
            }
            pb.inc(1);
        }
        pb.finish_and_clear();
        Ok((scans, ()))
    })?;
    let removals = (n / 10).min(w.keys.len() as u64);
    phases.time("removals", || -> Result<_> {
        let pb = progress::bar("removals", removals);
        for key in w.keys.iter().take(removals as usize) {
            if !tree.remove(key)? {
                missing += 1;
            }
            pb.inc(1);
        }
        forest.commit()?;
        pb.finish_and_clear();
        Ok((removals, ()))
    })?;
    Ok(missing)
}
