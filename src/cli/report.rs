//! The tables `demo` and `bench` end with: time per phase, and the store's
//! counters.

use super::error::Result;
use super::progress;
use super::table::{self, Table};
use larix::{CheckReport, Forest, Stats};
use std::path::Path;
use std::time::{Duration, Instant};

/// One timed phase of a run.
#[derive(Debug)]
pub struct Phase {
    /// What it did.
    pub name: String,
    /// Operations (or entries) it handled.
    pub ops: u64,
    /// How long it took.
    pub time: Duration,
}

/// The phases of a run, timed as they go.
#[derive(Debug, Default)]
pub struct Phases(Vec<Phase>);

impl Phases {
    /// Runs `f`, records it as phase `name` with the operation count it
    /// returns, and passes its result on.
    pub fn time<T, E>(
        &mut self,
        name: &str,
        f: impl FnOnce() -> Result<(u64, T), E>,
    ) -> Result<T, E> {
        let start = Instant::now();
        let (ops, value) = f()?;
        self.0.push(Phase {
            name: name.to_string(),
            ops,
            time: start.elapsed(),
        });
        Ok(value)
    }

    /// The table: phase, operations, time, rate, time per operation.
    pub fn table(&self) -> Table {
        let mut t = Table::new(&["phase", "ops", "time", "ops/s", "µs/op"]);
        for p in &self.0 {
            let per_op = if p.ops == 0 {
                "-".to_string()
            } else {
                format!("{:.1}", p.time.as_secs_f64() * 1e6 / p.ops as f64)
            };
            t.row(vec![
                p.name.clone(),
                table::count(p.ops),
                table::duration(p.time),
                table::rate(p.ops, p.time),
                per_op,
            ]);
        }
        let total: Duration = self.0.iter().map(|p| p.time).sum();
        t.row(vec![
            "total".to_string(),
            String::new(),
            table::duration(total),
        ]);
        t
    }
}

/// Runs `forest.check()` as the phase "check", with a spinner.
///
/// # Errors
/// The engine's error.
pub fn check_phase(phases: &mut Phases, forest: &Forest) -> Result<CheckReport> {
    phases.time("check", || -> Result<_> {
        let pb = progress::spinner("check");
        let report = forest.check()?;
        pb.finish_and_clear();
        Ok((report.nodes, report))
    })
}

/// Where a run keeps its store, and with which filters, for its first line:
/// `store DIR (filters: zstd, checksum)` or `an in-memory store (filters:
/// none)`.
pub fn store_description(in_memory: bool, db: &Path, filters: &[&str]) -> String {
    let place = if in_memory {
        "an in-memory store".to_string()
    } else {
        format!("store {}", db.display())
    };
    let filters = if filters.is_empty() {
        "none".to_string()
    } else {
        filters.join(", ")
    };
    format!("{place} (filters: {filters})")
}

/// The store's counters as a two-column table.
pub fn stats_table(s: &Stats) -> Table {
    let compression = if s.bytes_filtered == 0 {
        "-".to_string()
    } else {
        format!(
            "{:.2}x",
            s.bytes_unfiltered as f64 / s.bytes_filtered as f64
        )
    };
    let mut t = Table::new(&["store", "value"]);
    for (name, value) in [
        ("trees", table::count(s.trees)),
        ("nodes", table::count(s.nodes)),
        ("commits", table::count(s.commits)),
        ("blobs written", table::count(s.blobs_written)),
        ("bytes before filtering", table::bytes(s.bytes_unfiltered)),
        ("bytes after filtering", table::bytes(s.bytes_filtered)),
        ("compression ratio", compression),
        ("bytes on disk", table::bytes(s.disk_bytes)),
        ("live bytes", table::bytes(s.live_bytes)),
        ("cache hits", table::count(s.cache_hits)),
        ("cache misses", table::count(s.cache_misses)),
        ("dirty-queue hits", table::count(s.dirty_hits)),
        ("in-flight hits", table::count(s.inflight_hits)),
        ("view hits", table::count(s.kept_hits)),
        ("in-flight waits", table::count(s.inflight_waits)),
        ("time in sync", table::duration(s.sync_time)),
        ("log records", table::count(s.log_records)),
        ("log bytes", table::bytes(s.log_bytes)),
        ("log syncs", table::count(s.log_syncs)),
        ("checkpoints", table::count(s.checkpoints)),
    ] {
        t.row(vec![name.to_string(), value]);
    }
    t
}
