//! Read-only paths through one tree: point lookup and ordered leaf walks.
//!
//! Readers never modify anything, so they go straight to the store. A walk
//! visits, in key order (or reverse), every leaf that may hold keys inside
//! a [`Bounds`], handing the callback the matching entry positions.

use crate::node::{Expect, Node, Stored, ValueRef};
use crate::value;
use crate::{Error, Result};
use larix_nodestore::{NodeId, NodeStore};
use std::ops::{Bound, ControlFlow, Range};
use std::sync::Arc;

/// Owned key bounds of a range.
#[derive(Clone, Debug)]
pub struct Bounds {
    /// Lower bound.
    pub lo: Bound<Vec<u8>>,
    /// Upper bound.
    pub hi: Bound<Vec<u8>>,
}

impl Bounds {
    /// Copies the bounds of any range of byte slices.
    pub fn from_range<'a, R: std::ops::RangeBounds<&'a [u8]>>(range: &R) -> Bounds {
        let own = |b: Bound<&&[u8]>| match b {
            Bound::Included(k) => Bound::Included(k.to_vec()),
            Bound::Excluded(k) => Bound::Excluded(k.to_vec()),
            Bound::Unbounded => Bound::Unbounded,
        };
        Bounds {
            lo: own(range.start_bound()),
            hi: own(range.end_bound()),
        }
    }

    /// Everything.
    pub fn all() -> Bounds {
        Bounds {
            lo: Bound::Unbounded,
            hi: Bound::Unbounded,
        }
    }

    /// True if `key` is not below the lower bound.
    pub fn above_lo(&self, key: &[u8]) -> bool {
        match &self.lo {
            Bound::Included(lo) => key >= lo.as_slice(),
            Bound::Excluded(lo) => key > lo.as_slice(),
            Bound::Unbounded => true,
        }
    }

    /// True if `key` is not above the upper bound.
    pub fn below_hi(&self, key: &[u8]) -> bool {
        match &self.hi {
            Bound::Included(hi) => key <= hi.as_slice(),
            Bound::Excluded(hi) => key < hi.as_slice(),
            Bound::Unbounded => true,
        }
    }

    /// True if no key can satisfy both bounds.
    pub fn is_empty(&self) -> bool {
        match (&self.lo, &self.hi) {
            (Bound::Included(a), Bound::Included(b)) => a > b,
            (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
            | (Bound::Excluded(a), Bound::Included(b)) => a >= b,
            _ => false,
        }
    }

    /// Positions of the leaf entries inside the bounds. A leaf after the
    /// first of a walk (`later`) lies wholly past the bound the walk
    /// started from (B1), so that bound is checked against its nearest key
    /// instead of searched for: no search touches the leaf's heads, and a
    /// damaged tree's misplaced keys still stay out.
    fn in_leaf(&self, leaf: &Node, reverse: bool, later: bool) -> Range<usize> {
        let n = leaf.len();
        let start = match &self.lo {
            Bound::Unbounded => 0,
            _ if later && !reverse && n > 0 && self.above_lo(leaf.key(0)) => 0,
            Bound::Included(k) => leaf.search(k).unwrap_or_else(|i| i),
            Bound::Excluded(k) => leaf.search(k).map_or_else(|i| i, |i| i + 1),
        };
        let end = match &self.hi {
            Bound::Unbounded => n,
            _ if later && reverse && n > 0 && self.below_hi(leaf.key(n - 1)) => n,
            Bound::Included(k) => leaf.search(k).map_or_else(|i| i, |i| i + 1),
            Bound::Excluded(k) => leaf.search(k).unwrap_or_else(|i| i),
        };
        start..end.max(start)
    }

    /// Children of an index node whose subtrees may hold keys in bounds:
    /// from the child whose range holds the lower bound to the last child
    /// whose smallest key is within the upper bound (at least one).
    pub(crate) fn in_index(&self, node: &Node) -> Range<usize> {
        let start = match &self.lo {
            Bound::Included(k) | Bound::Excluded(k) => node.child_index(k),
            Bound::Unbounded => 0,
        };
        let end = match &self.hi {
            Bound::Unbounded => node.len(),
            Bound::Included(k) => node.search(k).map_or_else(|i| i, |i| i + 1),
            Bound::Excluded(k) => node.search(k).unwrap_or_else(|i| i),
        };
        start..end.max(start + 1).min(node.len())
    }
}

/// Fails unless `node` (stored under `id`) sits at `level`, the level its
/// parent requires (B2). Every descent checks it, so the levels of a walk
/// strictly decrease: a damaged or hostile store whose child pointers form
/// a cycle gives an error, never an endless walk.
///
/// # Errors
/// [`Error::LevelMismatch`].
pub(crate) fn expect_level(id: NodeId, node: &Node, level: Option<u8>) -> Result<()> {
    expect(id, node, level.map(Expect::Level))
}

/// Checks that node `id` is what its parent's pointer requires: a tree
/// node at a level (B2; any tree node for `None`, a root), a value node or
/// a chunk.
///
/// # Errors
/// [`Error::LevelMismatch`] or [`Error::NodeKind`].
pub(crate) fn expect(id: NodeId, node: &Node, want: Option<Expect>) -> Result<()> {
    let found = node.kind();
    match (want, found) {
        (None | Some(Expect::Level(_)), Expect::Level(_)) => {}
        (Some(Expect::Value), Expect::Value) | (Some(Expect::Chunk), Expect::Chunk) => {}
        (want, found) => {
            return Err(Error::NodeKind {
                id,
                expected: want.map_or("tree node", kind_name),
                found: kind_name(found),
            })
        }
    }
    match (want, found) {
        (Some(Expect::Level(l)), Expect::Level(f)) if l != f => Err(Error::LevelMismatch {
            id,
            expected: l,
            found: f,
        }),
        _ => Ok(()),
    }
}

/// What a node of kind `kind` is called in errors.
fn kind_name(kind: Expect) -> &'static str {
    match kind {
        Expect::Level(0) => "leaf",
        Expect::Level(_) => "index node",
        Expect::Value => "value node",
        Expect::Chunk => "value chunk",
    }
}

/// The level the children of index node `parent` must sit at.
pub(crate) fn child_level(parent: &Node) -> Option<u8> {
    parent.level().checked_sub(1)
}

/// Child `j` of index node `parent`, checked to sit one level below it.
///
/// # Errors
/// A store error, or [`Error::LevelMismatch`].
pub(crate) fn child(store: &NodeStore<Node>, parent: &Node, j: usize) -> Result<Arc<Node>> {
    let id = parent.child(j);
    let node = store.get(id)?;
    expect_level(id, &node, child_level(parent))?;
    Ok(node)
}

/// `f` of the value stored under `key` in the tree at `root`, the value
/// borrowed from its leaf.
pub(crate) fn lookup<T>(
    store: &NodeStore<Node>,
    root: NodeId,
    key: &[u8],
    f: impl FnOnce(&[u8]) -> T,
) -> Result<Option<T>> {
    lookup_from(store, &store.get(root)?, key, f)
}

/// `f` of the value stored under `key` in the subtree of `node`.
pub(crate) fn lookup_from<T>(
    store: &NodeStore<Node>,
    node: &Arc<Node>,
    key: &[u8],
    f: impl FnOnce(&[u8]) -> T,
) -> Result<Option<T>> {
    let leaf = leaf_for(store, node, key)?;
    value_in(store, &leaf, key, f)
}

/// `f` of the value stored under `key` in the tree at `root` as its leaf
/// stores it (no out-of-line value is read).
pub(crate) fn lookup_stored<T>(
    store: &NodeStore<Node>,
    root: NodeId,
    key: &[u8],
    f: impl FnOnce(Stored) -> T,
) -> Result<Option<T>> {
    let leaf = leaf_for(store, &store.get(root)?, key)?;
    Ok(leaf.search(key).ok().map(|i| f(leaf.stored(i))))
}

/// The leaf of the subtree of `node` that may hold `key`.
fn leaf_for(store: &NodeStore<Node>, node: &Arc<Node>, key: &[u8]) -> Result<Arc<Node>> {
    let mut node = node.clone();
    while !node.is_leaf() {
        node = child(store, &node, node.child_index(key))?;
    }
    Ok(node)
}

/// `f` of the value of `key` in leaf `leaf`: borrowed from the leaf, or
/// read whole from its chunks if it is stored out of line.
///
/// # Errors
/// A store error reading an out-of-line value.
pub(crate) fn value_in<T>(
    store: &NodeStore<Node>,
    leaf: &Node,
    key: &[u8],
    f: impl FnOnce(&[u8]) -> T,
) -> Result<Option<T>> {
    let Ok(i) = leaf.search(key) else {
        return Ok(None);
    };
    with_value(store, leaf.stored(i), f).map(Some)
}

/// `f` of a value as a leaf stores it, read from its chunks if it is
/// stored out of line.
///
/// # Errors
/// A store error reading an out-of-line value.
fn with_value<T>(store: &NodeStore<Node>, stored: Stored, f: impl FnOnce(&[u8]) -> T) -> Result<T> {
    match stored {
        Stored::Inline(v) => Ok(f(v)),
        Stored::Out(r) => Ok(f(&value::load(store, r)?)),
    }
}

/// The value of leaf entry `i`, owned.
///
/// # Errors
/// As [`with_value`].
pub(crate) fn value_at(store: &NodeStore<Node>, leaf: &Node, i: usize) -> Result<Vec<u8>> {
    match leaf.stored(i) {
        Stored::Inline(v) => Ok(v.to_vec()),
        Stored::Out(r) => value::load(store, r),
    }
}

/// What [`scan`] calls on each entry: its key and value, borrowed.
pub(crate) type Visit<'f> = dyn FnMut(&[u8], &[u8]) -> ControlFlow<()> + 'f;

/// What a leaf walk calls on each leaf: the leaf and the positions of its
/// entries within the bounds.
pub(crate) type Leaves<'f> = dyn FnMut(&Node, Range<usize>) -> ControlFlow<()> + 'f;

/// Calls `f` on each entry of the leaves `walk` visits (in key order, with
/// the positions of their entries within the bounds), its key and value
/// borrowed from the leaf, until `f` breaks; returns the number of entries
/// `f` was called on. The caller walks: a view goes down through the
/// nodes it keeps.
pub(crate) fn scan(
    store: &NodeStore<Node>,
    walk: impl FnOnce(&mut Leaves) -> Result<()>,
    f: &mut Visit,
) -> Result<u64> {
    let mut seen = 0;
    let mut failed = None;
    let mut each = |leaf: &Node, positions: Range<usize>| {
        for i in positions {
            seen += 1;
            let (key, stored) = leaf.entry(i);
            match with_value(store, stored, |v| f(key, v)) {
                Ok(flow) => flow?,
                Err(e) => {
                    failed = Some(e);
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    };
    walk(&mut each)?;
    match failed {
        Some(e) => Err(e),
        None => Ok(seen),
    }
}

/// Calls `f` on each leaf that may hold keys in `bounds`, in key order
/// (or reverse order), with the positions of its matching entries, until
/// `f` breaks.
pub(crate) fn walk(
    store: &NodeStore<Node>,
    root: NodeId,
    bounds: &Bounds,
    reverse: bool,
    f: &mut dyn FnMut(&Node, Range<usize>) -> ControlFlow<()>,
) -> Result<()> {
    walk_from(store, root, None, bounds, reverse, &mut false, f).map(|_| ())
}

/// Walks the subtree of `id`, which must sit at `level` (any for a root);
/// `later` is set once the walk has passed a leaf.
fn walk_from(
    store: &NodeStore<Node>,
    id: NodeId,
    level: Option<u8>,
    bounds: &Bounds,
    reverse: bool,
    later: &mut bool,
    f: &mut dyn FnMut(&Node, Range<usize>) -> ControlFlow<()>,
) -> Result<ControlFlow<()>> {
    if bounds.is_empty() {
        return Ok(ControlFlow::Continue(()));
    }
    let node = store.get(id)?;
    expect_level(id, &node, level)?;
    walk_node(store, &node, bounds, reverse, later, f)
}

/// [`walk_from`] of a node already read and checked; `later` is set once
/// the walk has passed a leaf.
pub(crate) fn walk_node(
    store: &NodeStore<Node>,
    node: &Node,
    bounds: &Bounds,
    reverse: bool,
    later: &mut bool,
    f: &mut Leaves,
) -> Result<ControlFlow<()>> {
    if node.is_leaf() {
        let hits = bounds.in_leaf(node, reverse, *later);
        *later = true;
        if hits.is_empty() {
            return Ok(ControlFlow::Continue(()));
        }
        return Ok(f(node, hits));
    }
    let children = bounds.in_index(node);
    let below = child_level(node);
    for k in 0..children.len() {
        let j = match reverse {
            true => children.end - 1 - k,
            false => children.start + k,
        };
        if walk_from(store, node.child(j), below, bounds, reverse, later, f)?.is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// Up to `max` entries in `bounds` nearest its lower bound (or its upper
/// bound, if `reverse`), gathered across consecutive leaves in one walk
/// and returned in key order; empty when the bounds hold nothing.
pub(crate) fn next_leaf(
    store: &NodeStore<Node>,
    root: NodeId,
    bounds: &Bounds,
    reverse: bool,
    max: usize,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::with_capacity(max.min(64));
    let mut failed = None;
    let entry = |leaf: &Node, i: usize| Ok((leaf.key(i).to_vec(), value_at(store, leaf, i)?));
    walk(store, root, bounds, reverse, &mut |leaf, hits| {
        let room = max.saturating_sub(out.len());
        // Gathered from the end if reverse, reversed below.
        let hits: Box<dyn Iterator<Item = usize>> = match reverse {
            true => Box::new(hits.rev().take(room)),
            false => Box::new(hits.take(room)),
        };
        for i in hits {
            match entry(leaf, i) {
                Ok(e) => out.push(e),
                Err(e) => {
                    failed = Some(e);
                    return ControlFlow::Break(());
                }
            }
        }
        if out.len() >= max {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    if reverse {
        out.reverse();
    }
    Ok(out)
}

/// Whether `bounds` holds no entry of the tree at `root` (no value read).
pub(crate) fn is_empty(store: &NodeStore<Node>, root: NodeId, bounds: &Bounds) -> Result<bool> {
    let mut empty = true;
    walk(store, root, bounds, false, &mut |_, hits| {
        empty = hits.is_empty();
        if empty {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    })?;
    Ok(empty)
}

/// Number of entries in `bounds`.
pub(crate) fn count(store: &NodeStore<Node>, root: NodeId, bounds: &Bounds) -> Result<u64> {
    let mut n = 0u64;
    walk(store, root, bounds, false, &mut |_, hits| {
        n += hits.len() as u64;
        ControlFlow::Continue(())
    })?;
    Ok(n)
}

/// The keys in `bounds`, in order, and, if `values`, the out-of-line
/// values they reference: what a range removal removes, in one walk.
pub(crate) fn keys(
    store: &NodeStore<Node>,
    root: NodeId,
    bounds: &Bounds,
    values: bool,
) -> Result<(Vec<Vec<u8>>, Vec<ValueRef>)> {
    let (mut keys, mut refs) = (Vec::new(), Vec::new());
    walk(store, root, bounds, false, &mut |leaf, hits| {
        for i in hits {
            keys.push(leaf.key(i).to_vec());
            refs.extend(leaf.value_ref(i).filter(|_| values));
        }
        ControlFlow::Continue(())
    })?;
    Ok((keys, refs))
}

/// The shape of a tree, from [`Tree::shape`](crate::Tree::shape).
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
    /// Their entries (key/value pairs in leaves, children in index nodes).
    pub entries: u64,
}

/// The levels of the tree at `root`, leaves first. Visits every node.
pub(crate) fn shape(store: &NodeStore<Node>, root: NodeId) -> Result<Vec<LevelShape>> {
    let mut levels = Vec::new();
    let mut frontier = vec![root];
    let mut expected = None;
    while !frontier.is_empty() {
        let mut level = LevelShape::default();
        let mut next = Vec::new();
        let mut below = None;
        for id in frontier {
            let node = store.get(id)?;
            expect_level(id, &node, expected)?;
            below = child_level(&node);
            level.nodes += 1;
            level.bytes += node.size() as u64;
            level.entries += node.len() as u64;
            if !node.is_leaf() {
                next.extend(node.children());
            }
        }
        levels.push(level);
        frontier = next;
        expected = below;
    }
    levels.reverse();
    Ok(levels)
}
