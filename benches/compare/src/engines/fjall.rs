//! fjall (LSM-tree): one partition, 1 GiB block cache, its default lz4
//! block compression; each batch is committed, then the journal is
//! persisted with `PersistMode::SyncAll`.

use super::{Compacted, Engine, Pair, Result, CACHE_BYTES};
use fjall::{Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};
use std::path::Path;

/// A fjall keyspace with the partition the benchmark writes to.
pub struct Fjall {
    keyspace: Keyspace,
    partition: PartitionHandle,
}

impl Fjall {
    /// Creates a keyspace in `dir`.
    ///
    /// # Errors
    /// fjall's error.
    pub fn open(dir: &Path) -> Result<Fjall> {
        let keyspace = fjall::Config::new(dir)
            .cache_size(CACHE_BYTES as u64)
            .open()?;
        let partition = keyspace.open_partition("bench", PartitionCreateOptions::default())?;
        Ok(Fjall {
            keyspace,
            partition,
        })
    }

    /// Commits `batch` and syncs the journal.
    fn commit(&self, batch: fjall::Batch) -> Result<()> {
        batch.commit()?;
        self.keyspace.persist(PersistMode::SyncAll)?;
        Ok(())
    }
}

impl Engine for Fjall {
    fn write(&self, pairs: &[Pair]) -> Result<()> {
        let mut batch = self.keyspace.batch();
        for (k, v) in pairs {
            batch.insert(&self.partition, k.as_slice(), v.as_slice());
        }
        self.commit(batch)
    }

    fn remove(&self, pairs: &[Pair]) -> Result<()> {
        let mut batch = self.keyspace.batch();
        for (k, _) in pairs {
            batch.remove(&self.partition, k.as_slice());
        }
        self.commit(batch)
    }

    fn read(&self, pairs: &[&Pair]) -> Result<usize> {
        let mut found = 0;
        for (k, v) in pairs {
            found += usize::from(self.partition.get(k)?.as_deref() == Some(v.as_slice()));
        }
        Ok(found)
    }

    fn scan(&self, starts: &[&Pair], len: usize) -> Result<usize> {
        let mut read = 0;
        for (k, _) in starts {
            for item in self.partition.range(k.as_slice()..).take(len) {
                std::hint::black_box(item?);
                read += 1;
            }
        }
        Ok(read)
    }

    fn compact(&mut self, _scratch: &Path) -> Result<Compacted> {
        // Flush the memtable (holding the tombstones) to a segment first,
        // then merge all segments; `major_compact` is public but hidden
        // from fjall's docs.
        self.partition.rotate_memtable_and_wait()?;
        self.partition.major_compact()?;
        Ok(Compacted::InPlace)
    }
}
