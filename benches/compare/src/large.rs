//! redb's large-values workload, run against one engine in the engine's
//! own process: [`Large::values`] values of [`Large::value_bytes`] random
//! bytes each, then [`Large::small_pairs`] pairs of the random workload's
//! sizes, all written in one transaction and committed; then everything
//! read back, in one read transaction, and the size on disk measured.
//!
//! As in redb's `large_values_benchmark`, the large values are taken in
//! turn from a pool of [`POOL`] random values (4,000 distinct 2 MB values
//! would hold 8 GB in memory before any engine copies them); every large
//! value has a key of its own. Each value is incompressible on its own,
//! and the copies of one pool value lie [`POOL`] values (200 MB at the
//! default size) apart, further than any engine's compression looks.
//! The data is generated before any timer starts, from the run's seed.

use crate::engines::{self, PairRef, Result};
use crate::workload::{disk_size, expect, ms, random_pairs, Config, Emit, KEY_LEN};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Instant;

/// Distinct large values, used in turn (redb's pool of 100).
pub const POOL: usize = 100;
/// Mixed into the run's seed, so this workload's keys are not the
/// random workload's.
const SEED_SALT: u64 = 0x1a2e_0000;

/// The sizes of the large-values workload.
#[derive(Clone, Copy, Debug, Default)]
pub struct Large {
    /// Large values written.
    pub values: usize,
    /// Bytes of each large value.
    pub value_bytes: usize,
    /// Small pairs (24-byte keys, 150-byte values) written after them.
    pub small_pairs: usize,
}

/// The pool the large values are taken from: up to [`POOL`] values of
/// `bytes` random bytes.
fn value_pool(rng: &mut StdRng, large: &Large) -> Vec<Vec<u8>> {
    (0..POOL.min(large.values))
        .map(|_| {
            let mut value = vec![0u8; large.value_bytes];
            rng.fill(value.as_mut_slice());
            value
        })
        .collect()
}

/// The large-values workload against engine `name`: the large values,
/// then the small pairs, in one transaction, committed; every pair read
/// back (each value read whole and compared with the value written, so
/// its length too); then the size on disk. A step's time is only emitted
/// once its check has passed.
///
/// # Errors
/// An engine error (Larix refuses values over its entry limit until it
/// stores large values out of line), or an engine returning wrong
/// results.
pub fn run_large(name: &str, cfg: &Config, large: &Large, emit: Emit) -> Result<()> {
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ SEED_SALT);
    let pool = value_pool(&mut rng, large);
    let keys: Vec<[u8; KEY_LEN]> = (0..large.values).map(|_| rng.gen()).collect();
    let small = random_pairs(&mut rng, large.small_pairs);
    let pairs: Vec<PairRef> = keys
        .iter()
        .zip(pool.iter().cycle())
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .chain(small.iter().map(|(k, v)| (k.as_slice(), v.as_slice())))
        .collect();

    let root = tempfile::Builder::new()
        .prefix(&format!("compare-large-{name}-"))
        .tempdir_in(cfg.dir)?;
    let db_dir = root.path().join("db");
    let engine = engines::open(name, &db_dir)?;

    let t = Instant::now();
    engine.write_refs(&pairs)?;
    emit("large_write", ms(t));

    let t = Instant::now();
    let found = engine.read_refs(&pairs)?;
    let elapsed = ms(t);
    expect("large_read", found, pairs.len())?;
    emit("large_read", elapsed);
    emit("large_size", disk_size(&db_dir) as f64);
    drop(engine);
    root.close()?;
    Ok(())
}
