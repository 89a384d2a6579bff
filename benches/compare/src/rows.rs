//! The rows of the results table: what each measurement is called, its
//! unit, and the results of a run (engine × row → one value per run,
//! shown as their median).

use crate::files::{CHANGED_PERCENT, PREFIX_SCANS, REMOVED_PERCENT};
use crate::large::Large;
use std::collections::BTreeMap;

/// How a row's values are measured and shown.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Unit {
    /// Wall-clock milliseconds.
    Ms,
    /// Wall-clock microseconds (a latency of one operation).
    Us,
    /// Bytes, shown in MiB.
    Bytes,
    /// Bytes, shown in KiB (an amount per operation).
    SmallBytes,
    /// Operations per second: the one unit where higher is better.
    PerSecond,
    /// A count of things (batches).
    Count,
}

impl Unit {
    /// Whether a larger value is the better one.
    pub fn higher_is_better(self) -> bool {
        self == Unit::PerSecond
    }
}

/// One row of the table.
pub struct Row {
    /// Stable key, used between the harness and its engine processes.
    pub key: &'static str,
    /// Unit of the values.
    pub unit: Unit,
    /// Whether the row enters the chart and the "furthest behind the best
    /// peer" list (see [`Row::relative`] for rows where higher is better).
    pub compared: bool,
}

const fn row(key: &'static str, unit: Unit, compared: bool) -> Row {
    Row {
        key,
        unit,
        compared,
    }
}

/// All rows, in table order.
pub const ROWS: &[Row] = &[
    row("bulk_load", Unit::Ms, true),
    row("individual_writes", Unit::Ms, true),
    row("commit_bytes", Unit::SmallBytes, true),
    row("batch_writes", Unit::Ms, true),
    row("random_reads_1", Unit::Ms, true),
    row("random_reads_2", Unit::Ms, true),
    row("range_reads", Unit::Ms, true),
    row("random_reads_2t", Unit::Ms, true),
    row("random_reads_2t_writer", Unit::Ms, true),
    row("random_reads_2t_paced", Unit::Ms, true),
    row("random_reads_2t_readers_cpu_ms", Unit::Ms, false),
    row("random_reads_2t_writer_readers_cpu_ms", Unit::Ms, false),
    row("random_reads_2t_writer_others_cpu_ms", Unit::Ms, false),
    row("random_reads_2t_writer_batches", Unit::Count, false),
    row("random_reads_2t_paced_readers_cpu_ms", Unit::Ms, false),
    row("random_reads_2t_paced_others_cpu_ms", Unit::Ms, false),
    row("random_reads_2t_paced_batches", Unit::Count, false),
    row("mix_updates_per_s", Unit::PerSecond, true),
    row("mix_read_us", Unit::Us, true),
    row("mix_read_p99_us", Unit::Us, true),
    row("removals", Unit::Ms, true),
    row("compaction", Unit::Ms, true),
    row("size_load", Unit::Bytes, true),
    row("size_removals", Unit::Bytes, true),
    row("size_compacted", Unit::Bytes, true),
    row("files_load", Unit::Ms, true),
    row("files_reads", Unit::Ms, true),
    row("files_scans", Unit::Ms, true),
    row("files_change", Unit::Ms, true),
    row("files_size", Unit::Bytes, true),
    row("large_write", Unit::Ms, true),
    row("large_read", Unit::Ms, true),
    row("large_size", Unit::Bytes, true),
    row("peak_rss", Unit::Bytes, true),
];

/// The sizes of a run, to name the rows.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Pairs in the bulk load.
    pub n: usize,
    /// Entries in the file-tree workload (0 if it did not run).
    pub files: usize,
    /// Entries the directory scans of the file-tree workload read in all.
    pub scanned: usize,
    /// Operations per thread of the YCSB A mix.
    pub mix_ops: usize,
    /// The sizes of the large-values workload, if it runs.
    pub large: Option<Large>,
}

impl Row {
    /// The row's label for a run of the given sizes.
    pub fn label(&self, s: Sizes) -> String {
        let n = thousands(s.n as u64);
        let half = thousands(s.n as u64 / 2);
        let files = thousands(s.files as u64);
        let mix = format!("YCSB A, 2 threads × {} ops", thousands(s.mix_ops as u64));
        let large = s.large.unwrap_or_default();
        let (values, small) = (
            thousands(large.values as u64),
            thousands(large.small_pairs as u64),
        );
        match self.key {
            "bulk_load" => format!("bulk load ({n} pairs, 1 commit)"),
            "individual_writes" => "individual writes (1,000 commits)".into(),
            "commit_bytes" => "written per individual write (wchar)".into(),
            "batch_writes" => "batch writes (100 commits × 1,000)".into(),
            "random_reads_1" => format!("random reads ({n}), pass 1"),
            "random_reads_2" => format!("random reads ({n}), pass 2"),
            "range_reads" => format!("range reads ({half} × 10 entries)"),
            "random_reads_2t" => format!("random reads, 2 threads ({n} total)"),
            "random_reads_2t_writer" => {
                format!("random reads, 2 threads ({n} total), beside a writer")
            }
            "random_reads_2t_paced" => {
                format!("random reads, 2 threads ({n} total), beside a writer at 20 commits/s")
            }
            "random_reads_2t_readers_cpu_ms" => {
                format!("random reads, 2 threads ({n} total): the readers' processor time")
            }
            "random_reads_2t_writer_readers_cpu_ms" => {
                "beside a writer: the readers' processor time".into()
            }
            "random_reads_2t_writer_others_cpu_ms" => {
                "beside a writer: the rest of the process's processor time".into()
            }
            "random_reads_2t_writer_batches" => "beside a writer: batches it committed".into(),
            "random_reads_2t_paced_readers_cpu_ms" => {
                "beside the paced writer: the readers' processor time".into()
            }
            "random_reads_2t_paced_others_cpu_ms" => {
                "beside the paced writer: the rest of the process's processor time".into()
            }
            "random_reads_2t_paced_batches" => {
                "beside the paced writer: batches it committed".into()
            }
            "mix_updates_per_s" => format!("{mix}: updates"),
            "mix_read_us" => format!("{mix}: read latency, mean"),
            "mix_read_p99_us" => format!("{mix}: read latency, p99"),
            "removals" => format!("removals ({half}, 1 commit)"),
            "compaction" => "compaction".into(),
            "size_load" => "size after bulk load".into(),
            "size_removals" => "size after removals".into(),
            "size_compacted" => "size after compaction".into(),
            "files_load" => format!("files: bulk load ({files} paths)"),
            "files_reads" => format!("files: random reads ({files})"),
            "files_scans" => format!(
                "files: {} directory prefix scans ({} entries)",
                thousands(PREFIX_SCANS as u64),
                thousands(s.scanned as u64)
            ),
            "files_change" => {
                format!("files: change {CHANGED_PERCENT}%, remove {REMOVED_PERCENT}%, 1 commit")
            }
            "files_size" => "files: size after load".into(),
            "large_write" => format!(
                "large values: write + commit ({values} × {} bytes, then {small} pairs, 1 commit)",
                thousands(large.value_bytes as u64)
            ),
            "large_read" => format!("large values: read back ({values} large, {small} small)"),
            "large_size" => "large values: size after the workload".into(),
            "peak_rss" if s.large.is_some() => {
                "peak memory (RSS, whole process, before the large values)".into()
            }
            "peak_rss" => "peak memory (RSS, whole process)".into(),
            other => other.into(),
        }
    }

    /// A label of at most a few words, for the chart.
    pub fn short(&self) -> &'static str {
        match self.key {
            "bulk_load" => "bulk load",
            "individual_writes" => "individual writes",
            "commit_bytes" => "bytes per commit",
            "batch_writes" => "batch writes",
            "random_reads_1" => "reads pass 1",
            "random_reads_2" => "reads pass 2",
            "range_reads" => "range reads",
            "random_reads_2t" => "reads 2 threads",
            "random_reads_2t_writer" => "reads 2 threads + writer",
            "random_reads_2t_paced" => "reads 2 threads + paced writer",
            "mix_updates_per_s" => "mix updates/s",
            "mix_read_us" => "mix read mean",
            "mix_read_p99_us" => "mix read p99",
            "removals" => "removals",
            "compaction" => "compaction",
            "size_load" => "size loaded",
            "size_removals" => "size after removals",
            "size_compacted" => "size compacted",
            "files_load" => "files load",
            "files_reads" => "files reads",
            "files_scans" => "files prefix scans",
            "files_change" => "files change",
            "files_size" => "files size",
            "large_write" => "large values write",
            "large_read" => "large values read",
            "large_size" => "large values size",
            "peak_rss" => "peak RSS",
            other => other,
        }
    }

    /// `value` in the row's unit for display.
    pub fn show(&self, value: f64) -> String {
        match self.unit {
            Unit::Ms | Unit::Us if value < 10.0 => format!("{value:.1}"),
            Unit::Ms | Unit::Us | Unit::PerSecond | Unit::Count => thousands(value.round() as u64),
            Unit::Bytes => format!("{:.1}", value / (1 << 20) as f64),
            Unit::SmallBytes => format!("{:.1}", value / 1024.0),
        }
    }

    /// The unit as shown in a table cell's header.
    pub fn unit_name(&self) -> &'static str {
        match self.unit {
            Unit::Ms => "ms",
            Unit::Us => "µs",
            Unit::Bytes => "MiB",
            Unit::SmallBytes => "KiB",
            Unit::PerSecond => "ops/s",
            Unit::Count => "count",
        }
    }

    /// How far `value` is from `best` as a cost: `value / best` where
    /// lower is better, `best / value` where higher is better, so below 1
    /// is always ahead of `best` and above 1 behind it. `None` unless both
    /// are positive.
    pub fn relative(&self, value: f64, best: f64) -> Option<f64> {
        if value <= 0.0 || best <= 0.0 {
            return None;
        }
        Some(if self.unit.higher_is_better() {
            best / value
        } else {
            value / best
        })
    }
}

/// `n` with commas between groups of three digits.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The median of `values`, which is not empty: the middle value, or the
/// mean of the two middle ones.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// The results of a run of the harness: per (engine, row key) the value
/// of each run of the engine that measured it, and the engines that
/// failed, with their errors.
#[derive(Default)]
pub struct Results {
    /// Engines in the order they ran.
    pub engines: Vec<String>,
    /// Runs of each engine begun so far: a value measured by fewer runs
    /// is marked as such.
    pub runs: usize,
    values: BTreeMap<(String, String), Vec<f64>>,
    /// Engine → the runs (numbered from 1) that did not finish, each with
    /// its error.
    pub failures: BTreeMap<String, Vec<(usize, String)>>,
}

impl Results {
    /// Records one measurement of one run.
    pub fn record(&mut self, engine: &str, row: &str, value: f64) {
        let values = self.values.entry((engine.into(), row.into()));
        values.or_default().push(value);
    }

    /// Records that run `run` (from 1) of `engine` failed with `error`.
    pub fn fail(&mut self, engine: &str, run: usize, error: String) {
        let errors = self.failures.entry(engine.into()).or_default();
        errors.push((run, error));
    }

    /// The values of `row` for `engine`, one per run that measured it.
    pub fn values(&self, engine: &str, row: &str) -> &[f64] {
        self.values
            .get(&(engine.into(), row.into()))
            .map_or(&[], Vec::as_slice)
    }

    /// The median of `row` for `engine` over its runs, if it was measured.
    pub fn get(&self, engine: &str, row: &str) -> Option<f64> {
        let values = self.values(engine, row);
        (!values.is_empty()).then(|| median(values))
    }

    /// The best median of `row` among the engines `pick` accepts (the
    /// smallest, or the largest where higher is better), with the engine
    /// holding it.
    pub fn best(&self, row: &Row, pick: impl Fn(&str) -> bool) -> Option<(&str, f64)> {
        let values = self
            .engines
            .iter()
            .filter(|e| pick(e))
            .filter_map(|e| Some((e.as_str(), self.get(e, row.key)?)));
        if row.unit.higher_is_better() {
            values.max_by(|a, b| a.1.total_cmp(&b.1))
        } else {
            values.min_by(|a, b| a.1.total_cmp(&b.1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_is_the_middle_value_or_the_mean_of_the_two() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[7.0]), 7.0);
    }

    #[test]
    fn results_keep_every_run_and_report_the_median() {
        let mut results = Results::default();
        for v in [30.0, 10.0, 20.0] {
            results.record("lmdb", "bulk_load", v);
        }
        assert_eq!(results.values("lmdb", "bulk_load"), &[30.0, 10.0, 20.0]);
        assert_eq!(results.get("lmdb", "bulk_load"), Some(20.0));
        assert_eq!(results.get("lmdb", "removals"), None);
    }
}
