//! The engines under test behind one small interface, [`Engine`].
//!
//! Every engine gets the same durability (each commit is synced before it
//! returns) and a comparable cache (1 GiB where the engine has one). A
//! call to [`Engine::apply`] (and so to [`Engine::write`] or
//! [`Engine::remove`]) is one transaction, committed durably before it
//! returns; reads run in one read transaction per call where the engine
//! has read transactions.

mod fjall;
mod larix;
mod lmdb;
mod redb;
mod sled;

use std::ops::Bound;
use std::path::{Path, PathBuf};

/// Errors of any engine, boxed: the harness only reports them.
pub type Error = Box<dyn std::error::Error + Send + Sync>;
/// The harness's result type.
pub type Result<T> = std::result::Result<T, Error>;
/// A key and its value.
pub type Pair = (Vec<u8>, Vec<u8>);
/// A key and its value, borrowed: many keys may share one value's bytes
/// (the large-values workload writes gigabytes from a small pool).
pub type PairRef<'a> = (&'a [u8], &'a [u8]);

/// The cache every engine is given, where it has one: redb's default.
pub const CACHE_BYTES: usize = 1 << 30;

/// What an engine's compaction produced.
pub enum Compacted {
    /// The store in its directory was compacted; measure the directory.
    InPlace,
    /// A compacted copy was written to this file; measure the file.
    Copy(PathBuf),
    /// The engine offers no compaction.
    Unsupported,
}

/// One key-value engine, opened on a directory of its own.
pub trait Engine: Sync {
    /// Inserts (or overwrites) `writes` and removes the keys of `removes`
    /// in one transaction, and commits it durably. The two share no key.
    ///
    /// # Errors
    /// Any engine error.
    fn apply(&self, writes: &[Pair], removes: &[Pair]) -> Result<()>;

    /// Inserts (or overwrites) `pairs` in one transaction and commits it
    /// durably.
    ///
    /// # Errors
    /// Any engine error.
    fn write(&self, pairs: &[Pair]) -> Result<()> {
        self.apply(pairs, &[])
    }

    /// Removes the keys of `pairs` in one transaction and commits it
    /// durably.
    ///
    /// # Errors
    /// Any engine error.
    fn remove(&self, pairs: &[Pair]) -> Result<()> {
        self.apply(&[], pairs)
    }

    /// Looks up the key of every pair (all in one read transaction) and
    /// returns how many were found with the expected value.
    ///
    /// # Errors
    /// Any engine error.
    fn read(&self, pairs: &[&Pair]) -> Result<usize>;

    /// Inserts (or overwrites) the borrowed `pairs` in one transaction and
    /// commits it durably: [`Engine::write`] without owned pairs.
    ///
    /// # Errors
    /// Any engine error.
    fn write_refs(&self, pairs: &[PairRef]) -> Result<()>;

    /// Looks up the key of every borrowed pair (all in one read
    /// transaction), reading each value whole, and returns how many were
    /// found with the expected value: [`Engine::read`] without owned
    /// pairs.
    ///
    /// # Errors
    /// Any engine error.
    fn read_refs(&self, pairs: &[PairRef]) -> Result<usize>;

    /// For every start key, reads the first `len` entries at or after it
    /// (all in one read transaction) and returns the number of entries
    /// read.
    ///
    /// # Errors
    /// Any engine error.
    fn scan(&self, starts: &[&Pair], len: usize) -> Result<usize>;

    /// For every prefix, reads all entries whose key starts with it (all
    /// prefixes in one read transaction; the empty prefix reads every
    /// entry) and returns the number of entries read per prefix, in the
    /// order of `prefixes`.
    ///
    /// # Errors
    /// Any engine error.
    fn scan_prefixes(&self, prefixes: &[&[u8]]) -> Result<Vec<usize>>;

    /// Runs the engine's compaction, if it has one; `scratch` is an empty
    /// directory for an engine that compacts into a copy.
    ///
    /// # Errors
    /// Any engine error.
    fn compact(&mut self, scratch: &Path) -> Result<Compacted>;

    /// Finishes the work the engine's last commits left running in the
    /// background, so that the next row does not pay for it: called
    /// untimed between rows. Nothing for an engine that does all of a
    /// commit's work in the commit.
    ///
    /// # Errors
    /// Any engine error.
    fn settle(&self) -> Result<()> {
        Ok(())
    }
}

/// The bounds of the keys that start with `prefix`, for an engine whose
/// range takes bounds: from `prefix` up to the smallest key after all of
/// them (`end`, from [`prefix_end`]), or to the end if there is none.
pub fn prefix_bounds<'a>(
    prefix: &'a [u8],
    end: Option<&'a [u8]>,
) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    let upper = end.map_or(Bound::Unbounded, Bound::Excluded);
    (Bound::Included(prefix), upper)
}

/// The smallest key greater than every key that starts with `prefix`:
/// `prefix` with its last byte below 255 incremented and what follows it
/// dropped; `None` if there is no such byte (every key is then either
/// below `prefix` or starts with it).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The engines and configurations the harness knows, in table order.
pub const ENGINES: &[&str] = &[
    "larix-none",
    "larix-zstd",
    "larix-zstd-enc",
    "redb",
    "lmdb",
    "sled",
    "fjall",
];

/// Whether `name` is one of the Larix configurations.
pub fn is_larix(name: &str) -> bool {
    name.starts_with("larix")
}

/// Opens engine `name` on the empty directory `dir`.
///
/// # Errors
/// An unknown name, or the engine's error.
pub fn open(name: &str, dir: &Path) -> Result<Box<dyn Engine>> {
    use ::larix::FilterSpec;
    Ok(match name {
        "larix-none" => Box::new(larix::Larix::open(dir, vec![])?),
        "larix-zstd" => Box::new(larix::Larix::open(
            dir,
            vec![FilterSpec::zstd(1), FilterSpec::checksum()],
        )?),
        "larix-zstd-enc" => Box::new(larix::Larix::open(
            dir,
            vec![
                FilterSpec::zstd(1),
                FilterSpec::encrypt([7; 32]),
                FilterSpec::checksum(),
            ],
        )?),
        "redb" => Box::new(redb::Redb::open(dir)?),
        "lmdb" => Box::new(lmdb::Lmdb::open(dir)?),
        "sled" => Box::new(sled::Sled::open(dir)?),
        "fjall" => Box::new(fjall::Fjall::open(dir)?),
        other => return Err(format!("unknown engine {other:?}").into()),
    })
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_increments_the_last_byte_below_255() {
        assert_eq!(prefix_end(b"/usr/lib/").as_deref(), Some(&b"/usr/lib0"[..]));
        assert_eq!(prefix_end(b"a\xff\xff").as_deref(), Some(&b"b"[..]));
    }

    #[test]
    fn prefix_end_of_an_unbounded_prefix_is_none() {
        assert_eq!(prefix_end(b""), None);
        assert_eq!(prefix_end(b"\xff\xff"), None);
    }
}
