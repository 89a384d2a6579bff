//! The comparison harness: Larix (three filter configurations) against
//! redb, LMDB (heed), sled and fjall on the workload redb publishes, plus
//! a file-tree workload of real, compressible data and redb's
//! large-values workload.
//!
//! Each engine runs in a child process of its own (this program, with
//! `--child ENGINE`), so one engine's memory, caches and threads never
//! touch the next one's numbers, its peak memory can be measured, and a
//! crash fails one run of one column instead of the whole run. Each
//! engine runs `--runs` times (default 3), the engines taking turns, each
//! time in a fresh process and directory; the tables show each row's
//! median with its range. A child prints each result as a line
//! `@result ROW VALUE` on its stdout, and the error it fails with as a
//! line `@error MESSAGE`; the parent prints the table after each engine
//! and finally writes `docs/benchmarks.md` and `docs/benchmarks.svg`.

mod chart;
mod engines;
mod files;
mod large;
mod machine;
mod report;
mod rows;
mod workload;

use clap::Parser;
use engines::{Result, ENGINES};
use large::Large;
use rows::{Results, Sizes, ROWS};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Compare Larix with redb, LMDB, sled and fjall.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Pairs in the bulk load (and random reads).
    #[arg(long, default_value_t = 1_000_000)]
    n: usize,
    /// Directory under which each engine gets a fresh temporary directory
    /// [default: the system temp dir].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Runs of each engine (each in a fresh process and directory); the
    /// tables show each row's median with the smallest and largest value.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Engines to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = ENGINES.iter().map(|e| e.to_string()))]
    engines: Vec<String>,
    /// Root of the directory tree walked for the file workload.
    #[arg(long, default_value = "/usr")]
    files_root: PathBuf,
    /// The most entries the file workload takes from the walk.
    #[arg(long, default_value_t = 300_000)]
    files_max: usize,
    /// Skip the file workload.
    #[arg(long)]
    no_files: bool,
    /// Operations per thread of the YCSB A mix (2 threads; 0: no mix).
    #[arg(long, default_value_t = 10_000)]
    mix_ops: usize,
    /// Large values written by the large-values workload (redb's).
    #[arg(long, default_value_t = 4_000)]
    large_values: usize,
    /// Bytes of each large value.
    #[arg(long, default_value_t = 2_000_000)]
    large_value_bytes: usize,
    /// Small pairs (24-byte keys, 150-byte values) the large-values
    /// workload writes after the large values, in the same commit.
    #[arg(long, default_value_t = 1_000_000)]
    large_small_pairs: usize,
    /// Skip the large-values workload.
    #[arg(long)]
    no_large_values: bool,
    /// Seed of the random data.
    #[arg(long, default_value_t = 0x1a41)]
    seed: u64,
    /// Where to write benchmarks.md and benchmarks.svg.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs"))]
    out_dir: PathBuf,
    /// Print the table only; write no report.
    #[arg(long)]
    no_report: bool,
    /// Seconds after which an engine's process is killed and marked failed.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    /// Run the workloads against this one engine, in this process (used by
    /// the harness itself).
    #[arg(long, hide = true)]
    child: Option<String>,
}

impl Args {
    fn dir(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(std::env::temp_dir)
    }

    fn files_root(&self) -> Option<&Path> {
        (!self.no_files).then_some(self.files_root.as_path())
    }

    fn large(&self) -> Option<Large> {
        (!self.no_large_values).then_some(Large {
            values: self.large_values,
            value_bytes: self.large_value_bytes,
            small_pairs: self.large_small_pairs,
        })
    }
}

/// The child's side: run the workloads against `engine`, printing results.
fn child(args: &Args, engine: &str) -> Result<()> {
    let dir = args.dir();
    let cfg = workload::Config {
        n: args.n,
        seed: args.seed,
        dir: &dir,
        files_root: args.files_root(),
        files_max: args.files_max,
        mix_ops: args.mix_ops,
        large: args.large(),
    };
    let mut emit = |row: &str, value: f64| {
        let shown = match ROWS.iter().find(|r| r.key == row) {
            Some(r) => format!("{} {}", r.show(value), r.unit_name()),
            None => format!("{value}"),
        };
        eprintln!("  [{engine}] {row}: {shown}");
        println!("@result {row} {value}");
        let _ = std::io::stdout().flush();
    };
    workload::run_random(engine, &cfg, &mut emit)?;
    if let Some(root) = cfg.files_root {
        let pairs = files::file_pairs(root, cfg.files_max);
        emit("files_count", pairs.len() as f64);
        files::run_files(engine, &cfg, &pairs, &mut emit)?;
    }
    // Before the large values: the row stays the memory of the other
    // workloads (the high-water mark only ever grows).
    if let Some(rss) = workload::peak_rss() {
        emit("peak_rss", rss as f64);
    }
    if let Some(large) = &cfg.large {
        large::run_large(engine, &cfg, large, &mut emit)
            .map_err(|e| format!("large values: {e}"))?;
    }
    Ok(())
}

/// Runs `engine` in a child process, recording its results as they come.
fn run_engine(args: &Args, engine: &str, results: &mut Results) -> Result<()> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["--child", engine, "--n", &args.n.to_string()])
        .args(["--seed", &args.seed.to_string()])
        .args(["--mix-ops", &args.mix_ops.to_string(), "--dir"])
        .arg(args.dir())
        .args(["--files-max", &args.files_max.to_string(), "--files-root"])
        .arg(&args.files_root);
    if args.no_files {
        cmd.arg("--no-files");
    }
    cmd.args(["--large-values", &args.large_values.to_string()])
        .args(["--large-value-bytes", &args.large_value_bytes.to_string()])
        .args(["--large-small-pairs", &args.large_small_pairs.to_string()]);
    if args.no_large_values {
        cmd.arg("--no-large-values");
    }
    let mut process = cmd.stdout(Stdio::piped()).spawn()?;
    let stdout = process.stdout.take().ok_or("no stdout from child")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let mut error = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if let Some(message) = line.strip_prefix("@error ") {
                    error = Some(message.to_string());
                    continue;
                }
                let mut f = line.split_whitespace();
                if let (Some("@result"), Some(row), Some(value)) = (f.next(), f.next(), f.next()) {
                    results.record(engine, row, value.parse()?);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if Instant::now() > deadline => {
                process.kill()?;
                process.wait()?;
                return Err(format!("killed after {} s", args.timeout).into());
            }
            Err(_) => {}
        }
    }
    let status = process.wait()?;
    match (status.success(), error) {
        (true, _) => Ok(()),
        (false, Some(e)) => Err(format!("{e} (engine process exited with {status})").into()),
        (false, None) => Err(format!("engine process exited with {status}").into()),
    }
}

/// Run `run` of `engine`: its child process, with its failure recorded.
fn run_once(args: &Args, engine: &str, run: usize, results: &mut Results) {
    eprintln!("{engine} (run {run} of {}):", args.runs);
    if !results.engines.iter().any(|e| e == engine) {
        results.engines.push(engine.to_string());
    }
    let t = Instant::now();
    if let Err(e) = run_engine(args, engine, results) {
        eprintln!("  [{engine}] FAILED: {e}");
        results.fail(engine, run, e.to_string());
    }
    eprintln!("  [{engine}] done in {:.1} s", t.elapsed().as_secs_f64());
}

/// The command line that reproduces this run.
fn command_line() -> String {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .map(|a| if a.contains(' ') { format!("'{a}'") } else { a })
        .collect();
    if args.is_empty() {
        "cargo run --release".to_string()
    } else {
        format!("cargo run --release -- {}", args.join(" "))
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(engine) = &args.child {
        if let Err(e) = child(&args, engine) {
            eprintln!("  [{engine}] error: {e}");
            // One line, for the parent to report with the failure.
            println!("@error {}", e.to_string().replace('\n', " "));
            let _ = std::io::stdout().flush();
            std::process::exit(1);
        }
        return Ok(());
    }
    for e in &args.engines {
        if !ENGINES.contains(&e.as_str()) {
            return Err(format!("unknown engine {e:?}; known: {}", ENGINES.join(", ")).into());
        }
    }
    if args.runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    let start = Instant::now();
    let mut results = Results::default();
    let mut loads: Vec<f64> = machine::load_average().into_iter().collect();
    for run in 1..=args.runs {
        results.runs = run;
        for engine in &args.engines {
            run_once(&args, engine, run, &mut results);
            loads.extend(machine::load_average());
            let sizes = sizes(&args, &results);
            println!("\n{}", report::text_table(&results, sizes));
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    eprintln!("all engines done in {seconds:.0} s");
    if args.no_report {
        return Ok(());
    }
    std::fs::create_dir_all(&args.out_dir)?;
    let svg = args.out_dir.join("benchmarks.svg");
    let chart = match chart::draw(&results, &svg) {
        Ok(()) => Some("benchmarks.svg"),
        Err(e) => {
            eprintln!("no chart: {e}");
            None
        }
    };
    let machine = machine::Machine::probe(&args.dir());
    let files_root = args.files_root().map(|p| p.display().to_string());
    let command = command_line();
    let cx = report::Context {
        machine: &machine,
        command: &command,
        sizes: sizes(&args, &results),
        runs: args.runs,
        files_root: files_root.as_deref(),
        seconds,
        chart,
        loads: &loads,
    };
    let md = args.out_dir.join("benchmarks.md");
    std::fs::write(&md, report::markdown(&results, &cx))?;
    let show = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    eprintln!("wrote {} and {}", show(&md).display(), show(&svg).display());
    Ok(())
}

/// The sizes of the run, with the counts of the file workload any engine
/// reported (the same for every engine).
fn sizes(args: &Args, results: &Results) -> Sizes {
    let count = |row| {
        let found = results.engines.iter().find_map(|e| results.get(e, row));
        found.unwrap_or(0.0) as usize
    };
    Sizes {
        n: args.n,
        files: count("files_count"),
        scanned: count("files_scanned"),
        mix_ops: args.mix_ops,
        large: args.large(),
    }
}
