//! The range iterator: two cursors over one pinned tree.
//!
//! A range iterates a [`View`]: the tree as it was when the range was made,
//! pinned (P1, P2 in `docs/design.md`), so a scan beside a writer is always
//! consistent and needs no lock. Each end is a cursor that keeps the path
//! from the root to its leaf; moving on to the next leaf reads that leaf
//! (and the index nodes it enters), never the path from the root again.
//! The ends never cross: an end yields an entry only if it lies before the
//! other end's position.

use crate::node::Node;
use crate::read::{self, Bounds};
use crate::snapshot::View;
use crate::Result;
use larix_nodestore::{NodeId, NodeStore};
use std::ops::Bound;
use std::sync::Arc;

/// Entries of a tree within bounds, in key order, from either end.
pub struct Range {
    view: View,
    bounds: Bounds,
    /// The front end's path, once positioned: index nodes with the child
    /// open below, then the leaf with the position of the next entry.
    front: Option<Vec<(Arc<Node>, usize)>>,
    /// The back end's path, the same, with the leaf position one past the
    /// next entry.
    back: Option<Vec<(Arc<Node>, usize)>>,
    /// No entry is left between the ends (or an error was met).
    done: bool,
}

impl Range {
    pub(crate) fn new(view: View, bounds: Bounds) -> Range {
        Range {
            done: bounds.is_empty(),
            view,
            bounds,
            front: None,
            back: None,
        }
    }

    /// The next entry from the front (or the back), if one lies within the
    /// bounds and before the other end.
    fn step(&mut self, back: bool) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let store = self.view.store();
        let (mine, other) = if back {
            (&mut self.back, &self.front)
        } else {
            (&mut self.front, &self.back)
        };
        let path = match mine {
            Some(path) => path,
            None => mine.insert(position(store, &self.view, &self.bounds, back)?),
        };
        if !settle(store, path, back)? {
            return Ok(None);
        }
        if let Some(other) = other {
            let (front, back_path) = if back {
                (&**other, &**path)
            } else {
                (&**path, &**other)
            };
            if !before(front, back_path) {
                return Ok(None);
            }
        }
        let (leaf, i) = path.last_mut().expect("a settled path ends in a leaf");
        let at = if back { *i - 1 } else { *i };
        let key = leaf.key(at);
        let inside = if back {
            self.bounds.above_lo(key)
        } else {
            self.bounds.below_hi(key)
        };
        if !inside {
            return Ok(None);
        }
        let entry = (key.to_vec(), read::value_at(store, leaf, at)?);
        if back {
            *i -= 1;
        } else {
            *i += 1;
        }
        Ok(Some(entry))
    }

    fn next_item(&mut self, back: bool) -> Option<Result<(Vec<u8>, Vec<u8>)>> {
        if self.done {
            return None;
        }
        // When either end finds nothing more, nothing is left between the
        // ends: the front stops at the back's position or past the upper
        // bound, and everything before that was its to yield (and the
        // reverse).
        let item = self.step(back).transpose();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
            self.front = None;
            self.back = None;
        }
        item
    }
}

/// The path from the root of `view` to the first entry within `bounds`
/// (the last, for the back end); it may need [`settle`] to reach one.
fn position(
    store: &NodeStore<Node>,
    view: &View,
    bounds: &Bounds,
    back: bool,
) -> Result<Vec<(Arc<Node>, usize)>> {
    let mut path = Vec::new();
    let mut id = view.root();
    let mut level = None;
    loop {
        let node = store.get(id)?;
        read::expect_level(id, &node, level)?;
        let bound = if back { &bounds.hi } else { &bounds.lo };
        if node.is_leaf() {
            let i = match bound {
                Bound::Unbounded if back => node.len(),
                Bound::Unbounded => 0,
                Bound::Included(k) if back => node.search(k).map_or_else(|i| i, |i| i + 1),
                Bound::Excluded(k) if back => node.search(k).unwrap_or_else(|i| i),
                Bound::Included(k) => node.search(k).unwrap_or_else(|i| i),
                Bound::Excluded(k) => node.search(k).map_or_else(|i| i, |i| i + 1),
            };
            path.push((node, i));
            return Ok(path);
        }
        let c = match bound {
            Bound::Unbounded if back => node.len() - 1,
            Bound::Unbounded => 0,
            Bound::Included(k) | Bound::Excluded(k) => node.child_index(k),
        };
        if store.reads_ahead() {
            store.prefetch(&next_children(&node, c, back));
        }
        id = node.child(c);
        level = read::child_level(&node);
        path.push((node, c));
    }
}

/// Moves `path` on until its leaf has an entry at the cursor (for the back
/// end: before it), entering the next leaf (the previous one) when this
/// one is used up. Returns false at the end of the tree.
fn settle(store: &NodeStore<Node>, path: &mut Vec<(Arc<Node>, usize)>, back: bool) -> Result<bool> {
    loop {
        let Some((leaf, i)) = path.last() else {
            return Ok(false);
        };
        let used_up = if back { *i == 0 } else { *i >= leaf.len() };
        if !used_up {
            return Ok(true);
        }
        // Up to the nearest index node with a child left on this side.
        path.pop();
        loop {
            let Some((node, c)) = path.last_mut() else {
                return Ok(false);
            };
            let next = if back {
                c.checked_sub(1)
            } else {
                Some(*c + 1).filter(|&n| n < node.len())
            };
            if let Some(n) = next {
                *c = n;
                break;
            }
            path.pop();
        }
        // Down the edge of the subtree entered.
        loop {
            let (node, c) = path.last().expect("an index node was entered");
            if node.is_leaf() {
                break;
            }
            read_ahead(store, node, *c, back);
            let id = node.child(*c);
            let child = store.get(id)?;
            read::expect_level(id, &child, read::child_level(node))?;
            let i = if back && !child.is_leaf() {
                child.len() - 1
            } else if back {
                child.len()
            } else {
                0
            };
            path.push((child, i));
        }
    }
}

/// How many siblings after the child a scan enters it asks the store to
/// fetch ahead (on a backend that reads ahead; elsewhere nothing is done).
const READ_AHEAD: usize = 16;

/// The children of `node` a scan from child `c` enters next.
fn next_children(node: &Node, c: usize, back: bool) -> Vec<NodeId> {
    if back {
        (c.saturating_sub(2 * READ_AHEAD)..c)
            .rev()
            .map(|i| node.child(i))
            .collect()
    } else {
        (c + 1..node.len().min(c + 1 + 2 * READ_AHEAD))
            .map(|i| node.child(i))
            .collect()
    }
}

/// Asks the store to fetch the children of `node` the scan enters after
/// child `c` (before it, for the back end), once per window: when `c` is
/// at a window's start, the next two windows.
fn read_ahead(store: &NodeStore<Node>, node: &Node, c: usize, back: bool) {
    let step = if back { node.len() - 1 - c } else { c };
    if step % READ_AHEAD == 0 && store.reads_ahead() {
        store.prefetch(&next_children(node, c, back));
    }
}

/// Whether the front's position comes before the back's (both paths
/// through the same tree, both settled): then an entry lies between them.
fn before(front: &[(Arc<Node>, usize)], back: &[(Arc<Node>, usize)]) -> bool {
    for ((_, f), (_, b)) in front.iter().zip(back) {
        if f != b {
            return f < b;
        }
    }
    false
}

impl Iterator for Range {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_item(false)
    }
}

impl DoubleEndedIterator for Range {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.next_item(true)
    }
}
