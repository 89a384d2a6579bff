//! LMDB through heed: the unnamed database, default (durable) environment
//! flags, a 16 GiB map; its cache is the kernel's page cache.

use super::{Compacted, Engine, Pair, PairRef, Result};
use heed::types::Bytes;
use heed::{CommitOrAbort, CompactionOption, Database, Env, EnvOpenOptions};
use std::ops::Bound;
use std::path::Path;

/// An LMDB environment and its one database.
pub struct Lmdb {
    env: Env,
    db: Database<'static, Bytes, Bytes>,
}

impl Lmdb {
    /// Creates an environment in `dir`.
    ///
    /// # Errors
    /// LMDB's error.
    pub fn open(dir: &Path) -> Result<Lmdb> {
        std::fs::create_dir_all(dir)?;
        // SAFETY: the environment is opened once, in a fresh directory, by
        // this process only, which is what heed's `open` requires.
        let env = unsafe { EnvOpenOptions::new().map_size(16 << 30).open(dir)? };
        let txn = env.write_txn()?;
        // A database handle outlives its creating transaction only once
        // that transaction is committed, which this call does.
        let db = env
            .create_databases_and_commit(txn, |opener, txn| {
                let db = opener.create_database::<Bytes, Bytes>(txn, None)?;
                Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit(db))
            })?
            .unwrap_commit();
        Ok(Lmdb { env, db })
    }
}

/// Reads every entry of `items`; returns how many there were.
fn read_all<T>(items: impl Iterator<Item = heed::Result<T>>) -> Result<usize> {
    let mut read = 0;
    for item in items {
        std::hint::black_box(item?);
        read += 1;
    }
    Ok(read)
}

impl Engine for Lmdb {
    fn apply(&self, writes: &[Pair], removes: &[Pair]) -> Result<()> {
        let mut txn = self.env.write_txn()?;
        for (k, v) in writes {
            self.db.put(&mut txn, k, v)?;
        }
        for (k, _) in removes {
            self.db.delete(&mut txn, k)?;
        }
        Ok(txn.commit()?)
    }

    fn read(&self, pairs: &[&Pair]) -> Result<usize> {
        let txn = self.env.read_txn()?;
        let mut found = 0;
        for (k, v) in pairs {
            found += usize::from(self.db.get(&txn, k)? == Some(v.as_slice()));
        }
        Ok(found)
    }

    fn write_refs(&self, pairs: &[PairRef]) -> Result<()> {
        let mut txn = self.env.write_txn()?;
        for (k, v) in pairs {
            self.db.put(&mut txn, k, v)?;
        }
        Ok(txn.commit()?)
    }

    fn read_refs(&self, pairs: &[PairRef]) -> Result<usize> {
        let txn = self.env.read_txn()?;
        let mut found = 0;
        for (k, v) in pairs {
            found += usize::from(self.db.get(&txn, k)? == Some(*v));
        }
        Ok(found)
    }

    fn scan(&self, starts: &[&Pair], len: usize) -> Result<usize> {
        let txn = self.env.read_txn()?;
        let mut read = 0;
        for (k, _) in starts {
            let from = (Bound::Included(k.as_slice()), Bound::Unbounded);
            for item in self.db.range(&txn, &from)?.take(len) {
                std::hint::black_box(item?);
                read += 1;
            }
        }
        Ok(read)
    }

    fn scan_prefixes(&self, prefixes: &[&[u8]]) -> Result<Vec<usize>> {
        let txn = self.env.read_txn()?;
        let mut counts = Vec::with_capacity(prefixes.len());
        for prefix in prefixes {
            // LMDB refuses an empty key, even as a bound to position a
            // cursor: the empty prefix is every entry.
            counts.push(if prefix.is_empty() {
                read_all(self.db.iter(&txn)?)?
            } else {
                read_all(self.db.prefix_iter(&txn, prefix)?)?
            });
        }
        Ok(counts)
    }

    fn compact(&mut self, scratch: &Path) -> Result<Compacted> {
        let copy = scratch.join("data.mdb");
        self.env.copy_to_path(&copy, CompactionOption::Enabled)?;
        Ok(Compacted::Copy(copy))
    }
}
