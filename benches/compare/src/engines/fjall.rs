//! fjall (LSM-tree): one keyspace, 1 GiB block cache, its default block
//! compression (none in levels 0 and 1, lz4 below); each batch is
//! committed, then the journal is persisted with `PersistMode::SyncAll`.

use super::{Compacted, Engine, Pair, PairRef, Result, CACHE_BYTES};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, OwnedWriteBatch, PersistMode};
use std::path::Path;

/// A fjall database with the keyspace the benchmark writes to.
pub struct Fjall {
    db: Database,
    keyspace: Keyspace,
}

impl Fjall {
    /// Creates a database in `dir`.
    ///
    /// # Errors
    /// fjall's error.
    pub fn open(dir: &Path) -> Result<Fjall> {
        let db = Database::builder(dir)
            .cache_size(CACHE_BYTES as u64)
            .open()?;
        let keyspace = db.keyspace("bench", KeyspaceCreateOptions::default)?;
        Ok(Fjall { db, keyspace })
    }

    /// Commits `batch` and syncs the journal.
    fn commit(&self, batch: OwnedWriteBatch) -> Result<()> {
        batch.commit()?;
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }
}

impl Engine for Fjall {
    fn apply(&self, writes: &[Pair], removes: &[Pair]) -> Result<()> {
        let mut batch = self.db.batch();
        for (k, v) in writes {
            batch.insert(&self.keyspace, k.as_slice(), v.as_slice());
        }
        for (k, _) in removes {
            batch.remove(&self.keyspace, k.as_slice());
        }
        self.commit(batch)
    }

    fn read(&self, pairs: &[&Pair]) -> Result<usize> {
        let mut found = 0;
        for (k, v) in pairs {
            found += usize::from(self.keyspace.get(k)?.as_deref() == Some(v.as_slice()));
        }
        Ok(found)
    }

    fn write_refs(&self, pairs: &[PairRef]) -> Result<()> {
        let mut batch = self.db.batch();
        for (k, v) in pairs {
            batch.insert(&self.keyspace, *k, *v);
        }
        self.commit(batch)
    }

    fn read_refs(&self, pairs: &[PairRef]) -> Result<usize> {
        let mut found = 0;
        for (k, v) in pairs {
            found += usize::from(self.keyspace.get(k)?.as_deref() == Some(*v));
        }
        Ok(found)
    }

    fn scan(&self, starts: &[&Pair], len: usize) -> Result<usize> {
        let mut read = 0;
        for (k, _) in starts {
            for item in self.keyspace.range(k.as_slice()..).take(len) {
                std::hint::black_box(item.into_inner()?);
                read += 1;
            }
        }
        Ok(read)
    }

    fn scan_prefixes(&self, prefixes: &[&[u8]]) -> Result<Vec<usize>> {
        let mut counts = Vec::with_capacity(prefixes.len());
        for prefix in prefixes {
            let mut read = 0;
            for item in self.keyspace.prefix(prefix) {
                std::hint::black_box(item.into_inner()?);
                read += 1;
            }
            counts.push(read);
        }
        Ok(counts)
    }

    fn compact(&mut self, _scratch: &Path) -> Result<Compacted> {
        // Flush the memtable (holding the tombstones) to a segment first,
        // then merge all segments; `major_compact` is public but hidden
        // from fjall's docs.
        self.keyspace.rotate_memtable_and_wait()?;
        self.keyspace.major_compact()?;
        Ok(Compacted::InPlace)
    }
}
