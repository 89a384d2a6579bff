//! The results as a text table (printed as the run goes) and as the
//! Markdown report `docs/benchmarks.md`. Each cell shows the median of an
//! engine's runs with their range; every comparison (ratios, the worst
//! rows, the chart) uses the medians.

use crate::engines::is_larix;
use crate::files::{CHANGED_PERCENT, GROWTH, LATER, PREFIX_SCANS, REMOVED_PERCENT};
use crate::large::{Large, POOL};
use crate::machine::Machine;
use crate::rows::{Results, Row, Sizes, ROWS};
use std::fmt::Write;

/// The Larix configurations among the engines that ran.
fn larix_engines(results: &Results) -> Vec<&str> {
    results
        .engines
        .iter()
        .map(String::as_str)
        .filter(|e| is_larix(e))
        .collect()
}

/// The cell of `engine` on `row`: the median of its runs, then in
/// parentheses the smallest and largest value where they differ as shown,
/// and how many runs measured it where some did not.
fn value_cell(results: &Results, row: &Row, engine: &str) -> String {
    let values = results.values(engine, row.key);
    let Some(median) = results.get(engine, row.key) else {
        let failed = results.failures.contains_key(engine);
        return if failed { "failed" } else { "n/a" }.into();
    };
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = (row.show(min), row.show(max));
    let mut notes = Vec::new();
    if lo != hi {
        notes.push(format!("{lo}–{hi}"));
    }
    if values.len() < results.runs {
        notes.push(format!("{} of {} runs", values.len(), results.runs));
    }
    if notes.is_empty() {
        row.show(median)
    } else {
        format!("{} ({})", row.show(median), notes.join("; "))
    }
}

/// Cells of one row: label with unit, then one cell per engine.
fn cells(results: &Results, row: &Row, sizes: Sizes) -> Vec<String> {
    let mut out = vec![format!("{} ({})", row.label(sizes), row.unit_name())];
    out.extend(results.engines.iter().map(|e| value_cell(results, row, e)));
    out
}

/// The rows measured by at least one engine.
fn present<'a>(results: &'a Results) -> impl Iterator<Item = &'a Row> + 'a {
    ROWS.iter().filter(|r| {
        results
            .engines
            .iter()
            .any(|e| results.get(e, r.key).is_some())
    })
}

/// The table as aligned plain text.
pub fn text_table(results: &Results, sizes: Sizes) -> String {
    let mut rows = vec![std::iter::once("benchmark".to_string())
        .chain(results.engines.iter().cloned())
        .collect::<Vec<_>>()];
    rows.extend(present(results).map(|r| cells(results, r, sizes)));
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            if c == 0 {
                let _ = write!(out, "{cell}{}", " ".repeat(pad));
            } else {
                let _ = write!(out, "  {}{cell}", " ".repeat(pad));
            }
        }
        out.push('\n');
    }
    out
}

/// The results table in Markdown.
fn markdown_table(results: &Results, sizes: Sizes) -> String {
    let mut out = String::from("| benchmark |");
    for e in &results.engines {
        let _ = write!(out, " {e} |");
    }
    out.push_str("\n| --- |");
    out.push_str(&" ---: |".repeat(results.engines.len()));
    out.push('\n');
    for row in present(results) {
        let c = cells(results, row, sizes);
        let _ = writeln!(out, "| {} |", c.join(" | "));
    }
    out
}

/// `value` relative to `best` on `row` (see [`Row::relative`]), formatted
/// as a ratio.
fn ratio(row: &Row, value: Option<f64>, best: f64) -> String {
    match value.map(|v| row.relative(v, best)) {
        Some(Some(r)) => format!("{r:.2}×"),
        Some(None) => "–".into(),
        None => "n/a".into(),
    }
}

/// For each compared row: the best peer, and Larix (best configuration,
/// then each) divided by it.
fn ratio_table(results: &Results, sizes: Sizes) -> String {
    let larix = larix_engines(results);
    let mut out = String::from("| benchmark | best peer | best Larix ÷ best peer |");
    for e in &larix {
        let _ = write!(out, " {e} ÷ best peer |");
    }
    out.push_str("\n| --- | --- | ---: |");
    out.push_str(&" ---: |".repeat(larix.len()));
    out.push('\n');
    for row in present(results).filter(|r| r.compared) {
        let Some((peer, best)) = results.best(row, |e| !is_larix(e)) else {
            continue;
        };
        let best_larix = results.best(row, is_larix);
        let _ = write!(
            out,
            "| {} | {peer} ({} {}) | {} |",
            row.label(sizes),
            row.show(best),
            row.unit_name(),
            match best_larix {
                Some((e, v)) => format!("{} ({e})", ratio(row, Some(v), best)),
                None => "n/a".into(),
            }
        );
        for e in &larix {
            let _ = write!(out, " {} |", ratio(row, results.get(e, row.key), best));
        }
        out.push('\n');
    }
    out
}

/// The compared rows where the best Larix configuration is furthest
/// behind the best peer, worst first.
pub fn worst_rows(results: &Results) -> Vec<(&'static Row, f64)> {
    let mut worst: Vec<_> = ROWS
        .iter()
        .filter(|r| r.compared)
        .filter_map(|r| {
            let (_, peer) = results.best(r, |e| !is_larix(e))?;
            let (_, larix) = results.best(r, is_larix)?;
            Some((r, r.relative(larix, peer)?))
        })
        .collect();
    worst.sort_by(|a, b| b.1.total_cmp(&a.1));
    worst
}

/// A sentence on Larix's compaction if it reclaimed nothing in this run
/// (it was a no-op before segment compaction was built), else nothing.
fn larix_compaction_note(results: &Results) -> String {
    let larix = larix_engines(results);
    let reclaimed_nothing = !larix.is_empty()
        && larix.iter().all(|e| {
            match (
                results.get(e, "size_removals"),
                results.get(e, "size_compacted"),
            ) {
                (Some(before), Some(after)) => after >= before,
                _ => true,
            }
        });
    if reclaimed_nothing {
        "Larix's `compact()` reclaimed nothing in this run (a no-op in this\n\
         version), so its size after compaction equals its size after removals.\n"
            .to_string()
    } else {
        String::new()
    }
}

/// The load averages of a run, and a warning when other work competed
/// for the cores.
fn load_note(loads: &[f64]) -> String {
    let Some(max) = loads.iter().copied().max_by(f64::total_cmp) else {
        return "unknown".into();
    };
    let all: Vec<String> = loads.iter().map(|l| format!("{l:.1}")).collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    // The run itself accounts for one to three runnable threads.
    let busy = if max > cores + 2.0 {
        " (other work competed for the cores: expect noise)"
    } else {
        ""
    };
    format!(
        "{} at the start and after each run of each engine{busy}",
        all.join(", ")
    )
}

/// The workload's item on the YCSB A mix (with its line break), or nothing
/// if it did not run.
fn mix_item(ops: usize) -> String {
    if ops == 0 {
        return String::new();
    }
    format!(
        "- YCSB workload A: 2 threads run {} operations each, concurrently, each
  operation a read of one key (a read transaction of its own, timed
  alone) or, with the same probability, an update of one key (a
  transaction of its own, committed); keys are chosen among the loaded
  ones with a zipfian distribution (constant 0.99, YCSB's; the hot keys
  are scattered over the key space). Reported: updates per second of
  wall time (higher is better), and the mean and 99th percentile of the
  read latencies. Every read must find its key with its loaded or its
  updated value (the value of each key's updates is fixed);
",
        crate::rows::thousands(ops as u64)
    )
}

/// The workload's paragraph on the large values (with the blank line
/// after it), or nothing if they did not run.
fn large_item(large: Option<Large>) -> String {
    let Some(large) = large else {
        return String::new();
    };
    let t = |n: usize| crate::rows::thousands(n as u64);
    format!(
        "A third workload is redb's large values (its `large_values_benchmark`),
in a fresh directory of its own: {} values of {} random bytes each, each
under a random 24-byte key of its own (the values are taken in turn from
a pool of {} random values, as redb does: all of them at once would take
{} MiB of memory), then {} random pairs of the sizes above, all in one
transaction, committed; then every pair read back in one read
transaction, each value read whole and compared with the value written;
then the size on disk. The peak memory row is measured before this
workload.

",
        t(large.values),
        t(large.value_bytes),
        t(POOL.min(large.values)),
        t(large.values.saturating_mul(large.value_bytes) >> 20),
        t(large.small_pairs),
    )
}

/// The sentence on what a cell shows, for a run of `runs` runs per engine.
fn runs_note(runs: usize) -> String {
    if runs == 1 {
        return "Each engine ran once; each cell is the value of that run.".into();
    }
    format!(
        "Each engine ran {runs} times, each time in a fresh process and a fresh
directory (the engines took turns: each run went through all of them
before the next began). Each cell is the median of the runs, with the
smallest and the largest value in parentheses (left out where they are
the same as shown); a value that only some runs measured says how many.
The ratios below and the chart compare medians."
    )
}

/// "3 runs of each engine", or "1 run of each engine".
fn runs_phrase(runs: usize) -> String {
    let s = if runs == 1 { "" } else { "s" };
    format!("{runs} run{s} of each engine")
}

/// Everything the Markdown report needs besides the results.
pub struct Context<'a> {
    /// The machine the run used.
    pub machine: &'a Machine,
    /// The command that reproduces the run.
    pub command: &'a str,
    /// Sizes of the workloads.
    pub sizes: Sizes,
    /// Runs of each engine.
    pub runs: usize,
    /// Root of the file-tree workload, if it ran.
    pub files_root: Option<&'a str>,
    /// Wall-clock time of the whole run, in seconds.
    pub seconds: f64,
    /// File name of the chart, next to the report.
    pub chart: Option<&'a str>,
    /// The one-minute load average at the start and after each engine.
    pub loads: &'a [f64],
}

/// The Markdown report.
pub fn markdown(results: &Results, cx: &Context) -> String {
    let m = cx.machine;
    let n = crate::rows::thousands(cx.sizes.n as u64);
    let mix = mix_item(cx.sizes.mix_ops);
    let large = large_item(cx.sizes.large);
    let mut out = String::new();
    let _ = write!(
        out,
        "# Benchmarks: Larix and its peers

Generated by the comparison harness in `benches/compare/` (a crate of its
own, so ordinary builds never compile the peers); rerunning it rewrites
this file and `benchmarks.svg`. Do not edit by hand.

The numbers describe the Larix of the commit they were generated on. The
on-disk node store is young and its performance is being worked on, so
expect them to change.

## Machine

| | |
| --- | --- |
| CPU | {} |
| cores | {} |
| memory | {} |
| filesystem of the stores | {} |
| kernel | {} |
| compiler | {} |
| peers | {} |
| run time | {:.0} s for the whole run ({}) |
| load average (1 min) | {} |

## Command

```sh
cd benches/compare
{}
```

## Workload

The workload redb publishes, on random 24-byte keys and 150-byte values
(incompressible) from a fixed seed; every engine runs in its own process,
in a fresh directory, deleted afterwards ({}):

- bulk load of {n} pairs in one transaction, committed;
- 1,000 individual writes of new keys, each committed; during them the
  bytes the process hands to write calls (`wchar` in `/proc/self/io`,
  counted by the kernel for every thread of the engine's process: journal,
  pages, headers, background flushes; data not yet on disk included) are
  counted and divided by 1,000;
- 100 batches of 1,000 new keys, each batch committed;
- {n} random reads of loaded keys, twice (both passes are reported; the
  second runs with whatever the first left cached), all in one read
  transaction where the engine has them;
- {} range reads of 10 entries, each from a random loaded key;
- {n} random reads from 2 threads, half each;
- the same reads again while a third thread overwrites loaded pairs
  with their own values in batches of 1,000, each batch committed, until
  both readers finish; the readers' time is reported; after each row
  beside a writer the engine settles, untimed, so that the next row does
  not run beside the work its writer left in the background (Larix
  checkpoints and waits; the peers have nothing to settle);
- the same again with the writer held to 20 batches a second (it starts
  batch k no earlier than k/20 s after the first; every engine's writer
  kept that pace here), so that every engine's readers share the machine
  with the same writes; an engine may leave part of the writes' work for
  later (Larix's write buffer holds these batches);
- for the three rows of 2 readers, the processor time (user and system,
  from `/proc`, in 10 ms ticks) the two reading threads took, and beside a
  writer also the rest of the process's while they read (the writer and
  the engine's own threads) and the batches the writer committed: where
  the readers' extra time beside a writer goes (these rows are shown, not
  compared);
{mix}- removal of half the loaded keys in one transaction, committed;
- size on disk (the sum of the sizes of the engine's files, holes of
  sparse files left out: fjall preallocates its journal files to 64 MiB
  with `set_len`) after the bulk load, after the removals, and after the
  engine's compaction.

A second workload uses real, compressible data: the paths and metadata
(size u64, mode u32, mtime i64: a 20-byte value) of {} entries under `{}`,
walked in sorted order, keys = paths (paths over 511 bytes, LMDB's key
limit, are left out):

- bulk load in one transaction in walk order, committed, then size on
  disk;
- every path read once in a random order;
- {} directory prefix scans, all in one read transaction, each reading
  every entry whose key starts with a directory's path and a `/` (all
  that lies under the directory, at any depth); each directory is the
  parent of a random loaded path, so one holding many entries comes up
  more often, and may come up more than once; {} entries are read in
  all. Each scan must count exactly the keys under its prefix in the
  sorted list of loaded keys;
- one transaction, committed, that overwrites a random {}% of the paths
  with a changed value (size {} bytes larger, mtime {} s later) and
  removes another {}%. Afterwards every other path must be read with its
  loaded value, every overwritten one with its new value, and a scan of
  all entries must count exactly these.

{large}Every value read is compared with the value written; an engine returning
anything else fails instead of producing a number.

## Configuration

Same durability everywhere: each commit is synced to disk before it
returns. Comparable caches: 1 GiB where the engine has one.

| engine | durability | cache | compression | compaction |
| --- | --- | --- | --- | --- |
| larix-none | `Durability::Immediate` (default) | `cache_bytes` 1 GiB | none (`filters(vec![])`) | `forest.compact()` |
| larix-zstd | same | same | `zstd(1), checksum()` (the default stack) | same |
| larix-zstd-enc | same | same | `zstd(1), encrypt([7; 32]), checksum()` | same |
| redb | `Durability::Immediate` (default) | 1 GiB (its default) | none | `Database::compact()` |
| lmdb (heed) | default environment flags (synced commits) | the kernel's page cache; map size 16 GiB | none | copy with `CompactionOption::Enabled`; the copy is measured |
| sled | `flush()` after each batch | `cache_capacity` 1 GiB | none | none offered: n/a |
| fjall | `persist(PersistMode::SyncAll)` after each batch | `cache_size` 1 GiB | its default: none in levels 0 and 1, lz4 below | memtable flush, then `major_compact()` |

A prefix scan uses the engine's own prefix iterator where it has one
(heed's `prefix_iter`, sled's `scan_prefix`, fjall's `prefix`); Larix and
redb read a range from the prefix up to the first key after all keys that
start with it. Every scan reads each entry's key and value.

{}Peak memory is the whole process's: it includes the generated pairs
(about {} MiB of keys and values, plus allocation overhead), the same for
every engine.

## Results

Milliseconds for times, microseconds for the latency of one read, MiB
(2^20 bytes) for sizes and KiB for the bytes written per commit: lower is
better. Operations per second (the mix's updates): higher is better.

{}

",
        m.cpu,
        m.cores,
        m.memory,
        m.filesystem,
        m.kernel,
        m.rustc,
        env!("PEER_VERSIONS"),
        cx.seconds,
        runs_phrase(cx.runs),
        load_note(cx.loads),
        cx.command,
        runs_phrase(cx.runs),
        crate::rows::thousands(cx.sizes.n as u64 / 2),
        crate::rows::thousands(cx.sizes.files as u64),
        cx.files_root.unwrap_or("(not run)"),
        crate::rows::thousands(PREFIX_SCANS as u64),
        crate::rows::thousands(cx.sizes.scanned as u64),
        CHANGED_PERCENT,
        crate::rows::thousands(GROWTH),
        crate::rows::thousands(LATER.unsigned_abs()),
        REMOVED_PERCENT,
        larix_compaction_note(results),
        ((cx.sizes.n + 101_000) * 174) >> 20,
        runs_note(cx.runs),
    );
    out.push_str(&markdown_table(results, cx.sizes));
    for (e, errors) in &results.failures {
        for (run, why) in errors {
            let why = why.replace('`', "'");
            let _ = writeln!(out, "\n{e} failed in run {run}: `{why}`");
        }
    }
    out.push_str(
        "\n## Larix relative to the best peer\n\nEach Larix median divided by the best \
         (smallest) median among redb, LMDB, sled and fjall on the same row, or, on a \
         row of operations per second, the best (largest) peer median divided by \
         Larix's: below 1× Larix is ahead, above it behind.\n\n",
    );
    out.push_str(&ratio_table(results, cx.sizes));
    let worst = worst_rows(results);
    if !worst.is_empty() {
        out.push_str("\nWhere the best Larix configuration is furthest behind the best peer:\n\n");
        for (row, r) in worst.iter().take(5) {
            let _ = writeln!(out, "- {}: {r:.1}×", row.label(cx.sizes));
        }
    }
    // The profile of each row where Larix is behind is written by hand
    // (it needs a profiler, not a timer) and kept beside the harness.
    let analysis = include_str!("../analysis.md");
    let _ = write!(out, "\n{analysis}");
    if let Some(chart) = cx.chart {
        let _ = write!(
            out,
            "\n## Chart\n\nEach bar is the engine's median divided by the best peer's on \
             that row (the other way round on a row of operations per second), log \
             scale; the line is 1×, lower is better.\n\n![Larix and its peers, \
             relative to the best peer]({chart})\n"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk_load() -> &'static Row {
        ROWS.iter().find(|r| r.key == "bulk_load").unwrap()
    }

    #[test]
    fn a_cell_shows_the_median_and_the_range() {
        let mut results = Results::default();
        results.runs = 3;
        for v in [2_260.0, 2_150.0, 2_190.0] {
            results.record("lmdb", "bulk_load", v);
        }
        assert_eq!(
            value_cell(&results, bulk_load(), "lmdb"),
            "2,190 (2,150–2,260)"
        );
    }

    #[test]
    fn a_cell_says_how_many_runs_measured_it_if_not_all() {
        let mut results = Results::default();
        results.runs = 3;
        results.record("lmdb", "bulk_load", 2_190.0);
        results.fail("lmdb", 2, "killed".into());
        assert_eq!(
            value_cell(&results, bulk_load(), "lmdb"),
            "2,190 (1 of 3 runs)"
        );
        assert_eq!(value_cell(&results, bulk_load(), "redb"), "n/a");
        let removals = ROWS.iter().find(|r| r.key == "removals").unwrap();
        assert_eq!(value_cell(&results, removals, "lmdb"), "failed");
    }

    #[test]
    fn rows_shown_but_not_compared_stay_out_of_the_ratios() {
        let mut results = Results::default();
        results.runs = 1;
        for engine in ["larix-none", "lmdb"] {
            results.engines.push(engine.into());
            results.record(engine, "bulk_load", 1_000.0);
            results.record(engine, "random_reads_2t_writer_batches", 80.0);
        }
        let sizes = Sizes {
            n: 1_000,
            files: 0,
            scanned: 0,
            mix_ops: 0,
            large: None,
        };
        assert!(markdown_table(&results, sizes).contains("batches it committed"));
        let ratios = ratio_table(&results, sizes);
        assert!(ratios.contains("bulk load"), "{ratios}");
        assert!(!ratios.contains("batches it committed"), "{ratios}");
    }

    #[test]
    fn the_large_values_paragraph_names_the_pool_actually_used() {
        assert_eq!(large_item(None), "");
        let large = Large {
            values: 20,
            value_bytes: 2_000_000,
            small_pairs: 2_000,
        };
        let text = large_item(Some(large));
        assert!(text.contains("20 values of 2,000,000 random bytes"));
        assert!(text.contains("a pool of 20 random values"));
        let large = Large {
            values: 4_000,
            ..large
        };
        assert!(large_item(Some(large)).contains("a pool of 100 random values"));
    }
}
