//! A description of the machine a run used: CPU, cores, memory, kernel,
//! and the filesystem holding the stores.

use std::path::Path;

/// What the report says about the machine.
pub struct Machine {
    /// CPU model name from `/proc/cpuinfo`.
    pub cpu: String,
    /// Cores available to the process.
    pub cores: usize,
    /// Total memory, from `/proc/meminfo`.
    pub memory: String,
    /// Kernel release.
    pub kernel: String,
    /// Filesystem type, device and mount point of the stores' directory.
    pub filesystem: String,
    /// `rustc --version`, if rustc is on the path.
    pub rustc: String,
}

/// The one-minute load average, from `/proc/loadavg`: other work on the
/// machine during a run shows here.
pub fn load_average() -> Option<f64> {
    read("/proc/loadavg")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The value of the first `key: value` line of `text` with this key.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find(|l| l.split(':').next().map(str::trim) == Some(key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim())
}

/// The mount holding `dir`: the longest mount point that prefixes it.
fn filesystem(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mounts = read("/proc/mounts");
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4 && dir.starts_with(f[1])).then(|| (f[0], f[1], f[2], f[3]))
        })
        .max_by_key(|(_, point, _, _)| point.len())
        .map_or_else(
            || "unknown".to_string(),
            |(dev, point, fs, opts)| format!("{fs} on {dev} at {point} ({opts})"),
        )
}

impl Machine {
    /// Describes this machine, with the filesystem of `dir`.
    pub fn probe(dir: &Path) -> Machine {
        let cpuinfo = read("/proc/cpuinfo");
        let meminfo = read("/proc/meminfo");
        let memory = field(&meminfo, "MemTotal")
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or_else(
                || "unknown".to_string(),
                |kib| format!("{:.1} GiB", kib as f64 / (1 << 20) as f64),
            );
        let rustc = std::process::Command::new("rustc")
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        Machine {
            cpu: field(&cpuinfo, "model name")
                .unwrap_or("unknown")
                .to_string(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            filesystem: filesystem(dir),
            rustc,
        }
    }
}
