//! What the benchmarks and the examples share: the standard workload's
//! data, the environment variables that size it, the examples' command
//! line and processor time from `/proc`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The examples' only.
#[allow(dead_code)]
pub mod cpu;

/// A key/value pair of the standard workload.
pub type Pair = ([u8; 24], [u8; 150]);

/// `n` random pairs of 24-byte keys and 150-byte values from `seed`.
pub fn pairs(n: usize, seed: u64) -> Vec<Pair> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut k = [0u8; 24];
            let mut v = [0u8; 150];
            rng.fill(&mut k[..]);
            rng.fill(&mut v[..]);
            (k, v)
        })
        .collect()
}

/// The filter stack an example's `--filters` names: `none`, `zstd` (with
/// the checksum) or `zstd-encrypt` (zstd, encryption under a fixed key,
/// checksum).
#[allow(dead_code)]
pub fn filters(name: &str) -> Result<Vec<larix::FilterSpec>, String> {
    use larix::FilterSpec;
    match name {
        "none" => Ok(vec![]),
        "zstd" => Ok(vec![FilterSpec::zstd(1), FilterSpec::checksum()]),
        "zstd-encrypt" => Ok(vec![
            FilterSpec::zstd(1),
            FilterSpec::encrypt([7; 32]),
            FilterSpec::checksum(),
        ]),
        other => Err(format!("unknown filter set {other:?}")),
    }
}

/// The number in environment variable `name`, or `default`.
pub fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// An example's command line: a count first, then `--name value` flags
/// and `--name` switches. (The examples' only: the benchmarks take their
/// sizes from the environment.)
#[allow(dead_code)]
pub struct Args(Vec<String>);

#[allow(dead_code)]
impl Args {
    /// The process's arguments.
    pub fn from_env() -> Args {
        Args(std::env::args().skip(1).collect())
    }

    /// The first argument as a number, or `default`.
    pub fn count(&self, default: usize) -> usize {
        self.0
            .first()
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    }

    /// The value after flag `name`, if given.
    pub fn flag(&self, name: &str) -> Option<String> {
        let i = self.0.iter().position(|a| a == name)?;
        self.0.get(i + 1).cloned()
    }

    /// Whether switch `name` is given.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|a| a == name)
    }
}
