//! Larix: one forest, one tree, 1 GiB of node cache, durable commits.
//! Each read call reads one snapshot of the tree ([`Tree::view`]), as the
//! peers read one read transaction: no catalog lock per key, and the
//! writer never waits for it.

use super::{Compacted, Engine, Pair, Result, CACHE_BYTES};
use larix::{Durability, FilterSpec, Forest, Options, Tree};
use std::path::Path;

/// A forest with the tree the benchmark writes to.
pub struct Larix {
    forest: Forest,
    tree: Tree,
}

impl Larix {
    /// Creates a forest in `dir` with the given filter stack.
    ///
    /// # Errors
    /// Larix's error.
    pub fn open(dir: &Path, filters: Vec<FilterSpec>) -> Result<Larix> {
        let options = Options::default()
            .filters(filters)
            .cache_bytes(CACHE_BYTES)
            .durability(Durability::Immediate);
        let forest = Forest::open(dir, options)?;
        let tree = forest.create_tree("bench")?;
        forest.commit()?;
        Ok(Larix { forest, tree })
    }
}

impl Engine for Larix {
    fn write(&self, pairs: &[Pair]) -> Result<()> {
        for (k, v) in pairs {
            self.tree.insert(k, v)?;
        }
        Ok(self.forest.commit()?)
    }

    fn remove(&self, pairs: &[Pair]) -> Result<()> {
        for (k, _) in pairs {
            self.tree.remove(k)?;
        }
        Ok(self.forest.commit()?)
    }

    fn read(&self, pairs: &[&Pair]) -> Result<usize> {
        let view = self.tree.view()?;
        let mut found = 0;
        for (k, v) in pairs {
            found += usize::from(view.get(k)?.as_deref() == Some(v.as_slice()));
        }
        Ok(found)
    }

    fn scan(&self, starts: &[&Pair], len: usize) -> Result<usize> {
        let view = self.tree.view()?;
        let mut read = 0;
        for (k, _) in starts {
            for item in view.range(k.as_slice()..)?.take(len) {
                std::hint::black_box(item?);
                read += 1;
            }
        }
        Ok(read)
    }

    fn compact(&mut self, _scratch: &Path) -> Result<Compacted> {
        self.forest.compact()?;
        Ok(Compacted::InPlace)
    }
}
