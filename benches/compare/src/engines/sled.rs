//! sled: the default tree, 1 GiB cache; each batch is applied atomically
//! and then flushed (synced) to disk.

use super::{Compacted, Engine, Pair, PairRef, Result, CACHE_BYTES};
use sled::{Batch, Db};
use std::path::Path;

/// A sled database.
pub struct Sled {
    db: Db,
}

impl Sled {
    /// Creates a database in `dir`.
    ///
    /// # Errors
    /// sled's error.
    pub fn open(dir: &Path) -> Result<Sled> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES as u64)
            .open()?;
        Ok(Sled { db })
    }

    /// Applies `batch` atomically and syncs it.
    fn commit(&self, batch: Batch) -> Result<()> {
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }
}

impl Engine for Sled {
    fn apply(&self, writes: &[Pair], removes: &[Pair]) -> Result<()> {
        let mut batch = Batch::default();
        for (k, v) in writes {
            batch.insert(k.as_slice(), v.as_slice());
        }
        for (k, _) in removes {
            batch.remove(k.as_slice());
        }
        self.commit(batch)
    }

    fn read(&self, pairs: &[&Pair]) -> Result<usize> {
        let mut found = 0;
        for (k, v) in pairs {
            found += usize::from(self.db.get(k)?.as_deref() == Some(v.as_slice()));
        }
        Ok(found)
    }

    fn write_refs(&self, pairs: &[PairRef]) -> Result<()> {
        let mut batch = Batch::default();
        for (k, v) in pairs {
            batch.insert(*k, *v);
        }
        self.commit(batch)
    }

    fn read_refs(&self, pairs: &[PairRef]) -> Result<usize> {
        let mut found = 0;
        for (k, v) in pairs {
            found += usize::from(self.db.get(k)?.as_deref() == Some(*v));
        }
        Ok(found)
    }

    fn scan(&self, starts: &[&Pair], len: usize) -> Result<usize> {
        let mut read = 0;
        for (k, _) in starts {
            for item in self.db.range::<&[u8], _>(k.as_slice()..).take(len) {
                std::hint::black_box(item?);
                read += 1;
            }
        }
        Ok(read)
    }

    fn scan_prefixes(&self, prefixes: &[&[u8]]) -> Result<Vec<usize>> {
        let mut counts = Vec::with_capacity(prefixes.len());
        for prefix in prefixes {
            let mut read = 0;
            for item in self.db.scan_prefix(prefix) {
                std::hint::black_box(item?);
                read += 1;
            }
            counts.push(read);
        }
        Ok(counts)
    }

    fn compact(&mut self, _scratch: &Path) -> Result<Compacted> {
        // sled cleans its segments in the background; it has no call for it.
        Ok(Compacted::Unsupported)
    }
}
