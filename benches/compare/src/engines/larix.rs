//! Larix: one forest, one tree, 1 GiB of node cache, durable commits.
//! Each read call reads one snapshot of the tree ([`Tree::view`]), as the
//! peers read one read transaction: no catalog lock per key, and the
//! writer never waits for it. Writes go through `Tree::insert_batch` and
//! removals through `Tree::remove_batch` (one lock, keys in key order);
//! values are compared where they lie (`View::get_with`) and scans borrow
//! their entries (`View::scan`), as the peers' reads borrow from their
//! pages.

use super::{prefix_bounds, prefix_end, Compacted, Engine, Pair, PairRef, Result, CACHE_BYTES};
use larix::{Durability, FilterSpec, Forest, Options, Tree};
use std::ops::ControlFlow;
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
    /// A checkpoint, waited for: a commit starts one in the background
    /// when enough has changed, and its node writes would otherwise run
    /// beside the next row's readers.
    fn settle(&self) -> Result<()> {
        Ok(self.forest.checkpoint()?)
    }

    fn apply(&self, writes: &[Pair], removes: &[Pair]) -> Result<()> {
        self.tree.insert_batch(writes.iter().map(|(k, v)| (k, v)))?;
        self.tree.remove_batch(removes.iter().map(|(k, _)| k))?;
        Ok(self.forest.commit()?)
    }

    fn read(&self, pairs: &[&Pair]) -> Result<usize> {
        let view = self.tree.view()?;
        let mut found = 0;
        for (k, v) in pairs {
            found += usize::from(view.get_with(k, |value| value == v.as_slice())? == Some(true));
        }
        Ok(found)
    }

    fn write_refs(&self, pairs: &[PairRef]) -> Result<()> {
        self.tree.insert_batch(pairs.iter().copied())?;
        Ok(self.forest.commit()?)
    }

    fn read_refs(&self, pairs: &[PairRef]) -> Result<usize> {
        let view = self.tree.view()?;
        let mut found = 0;
        for (k, v) in pairs {
            found += usize::from(view.get_with(k, |value| value == *v)? == Some(true));
        }
        Ok(found)
    }

    fn scan(&self, starts: &[&Pair], len: usize) -> Result<usize> {
        let view = self.tree.view()?;
        let mut read = 0;
        for (k, _) in starts.iter().filter(|_| len > 0) {
            let mut left = len;
            read += view.scan(k.as_slice().., |key, value| {
                std::hint::black_box((key, value));
                left -= 1;
                if left == 0 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })? as usize;
        }
        Ok(read)
    }

    fn scan_prefixes(&self, prefixes: &[&[u8]]) -> Result<Vec<usize>> {
        let view = self.tree.view()?;
        let mut counts = Vec::with_capacity(prefixes.len());
        for prefix in prefixes {
            let end = prefix_end(prefix);
            let read = view.scan(prefix_bounds(prefix, end.as_deref()), |key, value| {
                std::hint::black_box((key, value));
                ControlFlow::Continue(())
            })?;
            counts.push(read as usize);
        }
        Ok(counts)
    }

    fn compact(&mut self, _scratch: &Path) -> Result<Compacted> {
        self.forest.compact()?;
        Ok(Compacted::InPlace)
    }
}
