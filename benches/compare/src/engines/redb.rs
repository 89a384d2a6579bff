//! redb: one table, 1 GiB cache (its default), `Durability::Immediate`
//! (its default).

use super::{prefix_bounds, prefix_end, Compacted, Engine, Pair, PairRef, Result, CACHE_BYTES};
use redb::{Database, Durability, ReadableDatabase, TableDefinition};
use std::path::Path;

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("bench");

/// A redb database file.
pub struct Redb {
    db: Database,
}

impl Redb {
    /// Creates `dir/db.redb`.
    ///
    /// # Errors
    /// redb's error.
    pub fn open(dir: &Path) -> Result<Redb> {
        std::fs::create_dir_all(dir)?;
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(dir.join("db.redb"))?;
        Ok(Redb { db })
    }

    /// Runs `f` on the table in a durable write transaction, then commits.
    fn in_write(&self, f: impl FnOnce(&mut redb::Table<&[u8], &[u8]>) -> Result<()>) -> Result<()> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut table = txn.open_table(TABLE)?;
            f(&mut table)?;
        }
        Ok(txn.commit()?)
    }
}

impl Engine for Redb {
    fn apply(&self, writes: &[Pair], removes: &[Pair]) -> Result<()> {
        self.in_write(|t| {
            for (k, v) in writes {
                t.insert(k.as_slice(), v.as_slice())?;
            }
            for (k, _) in removes {
                t.remove(k.as_slice())?;
            }
            Ok(())
        })
    }

    fn read(&self, pairs: &[&Pair]) -> Result<usize> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TABLE)?;
        let mut found = 0;
        for (k, v) in pairs {
            if let Some(got) = table.get(k.as_slice())? {
                found += usize::from(got.value() == v.as_slice());
            }
        }
        Ok(found)
    }

    fn write_refs(&self, pairs: &[PairRef]) -> Result<()> {
        self.in_write(|t| {
            for (k, v) in pairs {
                t.insert(*k, *v)?;
            }
            Ok(())
        })
    }

    fn read_refs(&self, pairs: &[PairRef]) -> Result<usize> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TABLE)?;
        let mut found = 0;
        for (k, v) in pairs {
            if let Some(got) = table.get(*k)? {
                found += usize::from(got.value() == *v);
            }
        }
        Ok(found)
    }

    fn scan(&self, starts: &[&Pair], len: usize) -> Result<usize> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TABLE)?;
        let mut read = 0;
        for (k, _) in starts {
            for item in table.range(k.as_slice()..)?.take(len) {
                let (key, value) = item?;
                std::hint::black_box((key.value(), value.value()));
                read += 1;
            }
        }
        Ok(read)
    }

    fn scan_prefixes(&self, prefixes: &[&[u8]]) -> Result<Vec<usize>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TABLE)?;
        let mut counts = Vec::with_capacity(prefixes.len());
        for prefix in prefixes {
            let end = prefix_end(prefix);
            let mut read = 0;
            for item in table.range::<&[u8]>(prefix_bounds(prefix, end.as_deref()))? {
                let (key, value) = item?;
                std::hint::black_box((key.value(), value.value()));
                read += 1;
            }
            counts.push(read);
        }
        Ok(counts)
    }

    fn compact(&mut self, _scratch: &Path) -> Result<Compacted> {
        self.db.compact()?;
        Ok(Compacted::InPlace)
    }
}
