//! The tree handle and its range iterator.

use crate::Result;
use std::ops::RangeBounds;

/// A handle on one tree of a forest: cheap to clone, `Send + Sync`. Every
/// call acts on the tree that bears the handle's name at that moment.
#[derive(Clone)]
pub struct Tree {
    inner: larix_btree::Tree,
}

/// The shape of a tree, from [`Tree::shape`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Shape {
    /// The node size of the forest, in bytes.
    pub node_size: usize,
    /// One entry per level: `levels[0]` are the leaves, the last is the
    /// root.
    pub levels: Vec<LevelShape>,
}

/// Nodes, bytes and entries of one level of a tree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LevelShape {
    /// Nodes at this level.
    pub nodes: u64,
    /// Their encoded bytes.
    pub bytes: u64,
    /// Their entries: key/value pairs in leaves, children in index nodes.
    pub entries: u64,
}

/// The entries of a range, in key order; iterate from either end. It holds
/// no lock between items and copies its bounds.
pub struct Range {
    inner: larix_btree::RangeIter,
}

impl Tree {
    pub(crate) fn new(inner: larix_btree::Tree) -> Tree {
        Tree { inner }
    }

    /// The tree's name.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// The tree's shape: nodes, bytes and entries per level, leaves first,
    /// and the node size they are measured against. Reads every node.
    ///
    /// # Errors
    /// [`crate::Error::TreeNotFound`], or a store error.
    pub fn shape(&self) -> Result<Shape> {
        let levels = self.inner.shape()?;
        Ok(Shape {
            node_size: self.inner.limits().max_node(),
            levels: levels
                .into_iter()
                .map(|l| LevelShape {
                    nodes: l.nodes,
                    bytes: l.bytes,
                    entries: l.entries,
                })
                .collect(),
        })
    }

    /// Inserts `key` with `value`, replacing any value it had.
    ///
    /// # Errors
    /// [`crate::Error::EntryTooLarge`] if key plus value exceed a quarter of
    /// the node size, [`crate::Error::TreeNotFound`], or a store error. On
    /// error the tree is unchanged.
    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<()> {
        Ok(self.inner.insert(key, value)?)
    }

    /// The value of `key`, if present.
    ///
    /// # Errors
    /// [`crate::Error::TreeNotFound`], or a store error.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.inner.get(key)?)
    }

    /// Removes `key`; returns whether it was present.
    ///
    /// # Errors
    /// [`crate::Error::TreeNotFound`], or a store error. On error the tree
    /// is unchanged.
    pub fn remove(&self, key: &[u8]) -> Result<bool> {
        Ok(self.inner.remove(key)?)
    }

    /// The entries within `range` (`..`, `a..b`, `a..=b`, `a..`, ...).
    ///
    /// # Errors
    /// [`crate::Error::TreeNotFound`]; the iterator yields store errors.
    pub fn range<'a, R: RangeBounds<&'a [u8]>>(&self, range: R) -> Result<Range> {
        Ok(Range {
            inner: self.inner.range(range)?,
        })
    }

    /// The number of entries within `range`.
    ///
    /// # Errors
    /// [`crate::Error::TreeNotFound`], or a store error.
    pub fn count_range<'a, R: RangeBounds<&'a [u8]>>(&self, range: R) -> Result<u64> {
        Ok(self.inner.count_range(range)?)
    }

    /// True if no entry lies within `range`.
    ///
    /// # Errors
    /// [`crate::Error::TreeNotFound`], or a store error.
    pub fn range_is_empty<'a, R: RangeBounds<&'a [u8]>>(&self, range: R) -> Result<bool> {
        Ok(self.inner.range_is_empty(range)?)
    }

    /// Removes every entry within `range`; returns how many there were.
    ///
    /// # Errors
    /// [`crate::Error::TreeNotFound`], or a store error. On error the tree
    /// is unchanged.
    pub fn remove_range<'a, R: RangeBounds<&'a [u8]>>(&self, range: R) -> Result<u64> {
        Ok(self.inner.remove_range(range)?)
    }

    /// The entry with the smallest key.
    ///
    /// # Errors
    /// [`crate::Error::TreeNotFound`], or a store error.
    pub fn first(&self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        Ok(self.inner.first()?)
    }

    /// The entry with the largest key.
    ///
    /// # Errors
    /// [`crate::Error::TreeNotFound`], or a store error.
    pub fn last(&self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        Ok(self.inner.last()?)
    }
}

impl Iterator for Range {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|r| r.map_err(Into::into))
    }
}

impl DoubleEndedIterator for Range {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.inner.next_back().map(|r| r.map_err(Into::into))
    }
}
