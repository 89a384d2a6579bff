//! The range iterator: owned bounds, refilled one leaf at a time.
//!
//! The iterator holds no node and no lock between calls. Each refill takes
//! the catalog's read lock, walks from the tree's current root to the next
//! leaf with entries inside the bounds, copies a batch of them out, and
//! moves the bound past them. So it never reads a node a writer has since freed, every key
//! comes out once, in order, and the two ends never cross: what the front
//! has taken lies below what the back may take, and the reverse.

use crate::forest::Tree;
use crate::read::{self, Bounds};
use crate::Result;
use std::collections::VecDeque;
use std::ops::Bound;

/// Entries of a tree within bounds, in key order, from either end.
pub struct Range {
    tree: Tree,
    /// The birth of the tree the iterator started on: a refill after that
    /// tree was removed ends with `TreeNotFound` rather than reading a tree
    /// of the same name created since.
    birth: u64,
    bounds: Bounds,
    front: VecDeque<(Vec<u8>, Vec<u8>)>,
    back: VecDeque<(Vec<u8>, Vec<u8>)>,
    batch: usize,
    exhausted: bool,
}

/// Entries copied by the first refill; each later refill doubles it, up to
/// a whole leaf, so a short scan copies little and a long one pays one
/// descent per leaf.
const FIRST_BATCH: usize = 16;

impl Range {
    pub(crate) fn new(tree: Tree, bounds: Bounds) -> Result<Range> {
        Ok(Range {
            birth: tree.birth()?,
            tree,
            bounds,
            front: VecDeque::new(),
            back: VecDeque::new(),
            batch: FIRST_BATCH,
            exhausted: false,
        })
    }

    /// Loads the next leaf's entries at one end and narrows the bounds.
    fn refill(&mut self, reverse: bool) -> Result<()> {
        let (bounds, batch) = (&self.bounds, self.batch);
        let entries = self.tree.read_born(self.birth, |store, root| {
            read::next_leaf(store, root, bounds, reverse, batch)
        })?;
        self.batch = self.batch.saturating_mul(2);
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            self.exhausted = true;
            return Ok(());
        };
        if reverse {
            self.bounds.hi = Bound::Excluded(first.0.clone());
            self.back = entries.into();
        } else {
            self.bounds.lo = Bound::Excluded(last.0.clone());
            self.front = entries.into();
        }
        Ok(())
    }

    fn step(&mut self, reverse: bool) -> Option<Result<(Vec<u8>, Vec<u8>)>> {
        loop {
            let own = if reverse {
                &mut self.back
            } else {
                &mut self.front
            };
            let item = if reverse {
                own.pop_back()
            } else {
                own.pop_front()
            };
            if let Some(item) = item {
                return Some(Ok(item));
            }
            if self.exhausted {
                let other = if reverse {
                    &mut self.front
                } else {
                    &mut self.back
                };
                return if reverse {
                    other.pop_back()
                } else {
                    other.pop_front()
                }
                .map(Ok);
            }
            if let Err(e) = self.refill(reverse) {
                self.exhausted = true;
                self.front.clear();
                self.back.clear();
                return Some(Err(e));
            }
        }
    }
}

impl Iterator for Range {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step(false)
    }
}

impl DoubleEndedIterator for Range {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.step(true)
    }
}
