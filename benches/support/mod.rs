//! What the benchmarks and the `load` example share: the standard
//! workload's data and the environment variables that size it.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

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

/// The number in environment variable `name`, or `default`.
pub fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
