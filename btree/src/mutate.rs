//! Insert and remove: a shadowing descent, one edit at the leaf, then a
//! bottom-up pass that splits, merges and refreshes index keys.
//!
//! All changes go through a [`Txn`], so a failure anywhere leaves the store
//! untouched. Each function takes the tree's root and returns its new root.
//!
//! Invariants enforced here (`docs/design.md`): B1, as the leaf edit keeps
//! keys in order, a first index key is lowered when a smaller key enters
//! its child, and a split or a share between siblings gives the right one
//! a key between the two; B3, as oversized nodes split, underfull ones merge
//! or share with a sibling, and the root grows or collapses; B4 for the
//! references a split, merge or collapse moves (the rest is [`Txn`]'s).

use crate::limits::Limits;
use crate::node::{leaf_entry_len, separator, Node, Stored, ValueRef};
use crate::read;
use crate::txn::Txn;
use crate::Result;
use larix_nodestore::NodeId;
use smallvec::SmallVec;
use std::sync::Arc;

/// The `(index node, entry followed)` pairs of a path: as many as the
/// tree has levels above its leaves, rarely more than a few.
type Steps = SmallVec<[(NodeId, usize); 8]>;

/// A shadowed path from the root: `(index node, entry followed)` pairs,
/// and the shadowed leaf at its end.
pub(crate) struct Path {
    root: NodeId,
    steps: Steps,
    leaf: NodeId,
    /// Where the key is or would go in the leaf, if the walk searched it.
    at: Option<Result<usize, usize>>,
    /// Whether the planned edit changes nothing above the leaf: it keeps
    /// the leaf's smallest key and its size within B3's bounds.
    contained: bool,
}

impl Path {
    /// The out-of-line value the planned edit overwrites or removes, if it
    /// does: read from the leaf the plan holds, so an edit in place needs
    /// no second lookup of its key.
    pub(crate) fn replaced(&self, txn: &Txn) -> Result<Option<ValueRef>> {
        match self.at {
            Some(Ok(i)) if txn.has_values() => Ok(txn.get(self.leaf)?.value_ref(i)),
            _ => Ok(None),
        }
    }
}

/// Shadows every node from `root` down to the leaf where `key` belongs.
fn descend(txn: &mut Txn, root: NodeId, key: &[u8]) -> Result<Path> {
    let mut steps = Steps::new();
    let mut cur = root;
    let mut level = None;
    loop {
        let node = txn.get(cur)?;
        read::expect_level(cur, &node, level)?;
        if node.is_leaf() {
            return Ok(Path {
                root,
                steps,
                leaf: cur,
                at: None,
                contained: false,
            });
        }
        level = read::child_level(&node);
        let i = node.child_index_for_write(key);
        let child = node.child(i);
        drop(node);
        let shadowed = txn.shadow(child)?;
        if shadowed != child {
            txn.node_mut(cur)?.set_child(i, shadowed);
        }
        steps.push((cur, i));
        cur = shadowed;
    }
}

/// The change an operation makes to its leaf, to plan an in-place edit.
pub(crate) enum Edit<'a> {
    /// Insert or replace `key` with a value.
    Put(&'a [u8], &'a [u8]),
    /// Remove `key`, which is in the tree.
    Remove(&'a [u8]),
}

/// Prepares `txn` to edit the path to `key` in place when the edit provably
/// reads nothing more once it starts: every node on the path has refcount
/// 1 (no shadow copies, no refcount changes; a node frozen by a pin is
/// moved to a copy, which reads nothing), the leaf stays at least
/// minimal (B3 holds without a merge, which would read a sibling) and its
/// index key stays at or below its smallest key (B1 holds without index
/// key changes, which could shrink a parent). Splits only create nodes,
/// so they are allowed.
pub(crate) fn plan_in_place(
    txn: &mut Txn,
    limits: &Limits,
    root: NodeId,
    edit: &Edit,
) -> Result<Plan> {
    let key = match edit {
        Edit::Put(k, _) | Edit::Remove(k) => *k,
    };
    let mut path: SmallVec<[(NodeId, Arc<Node>); 8]> = SmallVec::new();
    let mut steps = Steps::new();
    let mut cur = root;
    let mut level = None;
    loop {
        let (node, refcount) = txn.get_counted(cur)?;
        if refcount != 1 {
            return Ok(Plan::Copying);
        }
        read::expect_level(cur, &node, level)?;
        level = read::child_level(&node);
        let next = (!node.is_leaf()).then(|| {
            let i = node.child_index_for_write(key);
            steps.push((cur, i));
            node.child(i)
        });
        path.push((cur, node));
        match next {
            Some(child) => cur = child,
            None => break,
        }
    }
    let leaf = &path.last().expect("a path has a leaf").1;
    let is_root = path.len() == 1;
    let at = leaf.search_for_write(key);
    // Whether every index key on the path stays at or below `k` (B1): the
    // search guarantees it where it took any child but the first, so only
    // first children are compared (`refresh_key` would lower their keys).
    let bounded = |k: &[u8]| {
        steps
            .iter()
            .zip(&path)
            .all(|(&(_, i), (_, node))| i > 0 || node.key(0) <= k)
    };
    // The leaf's encoded size after the edit, and whether every index key
    // above it stays a lower bound of its subtree. A new smallest key at or
    // above the leaf's index key changes nothing above; a removed smallest
    // key leaves its index key below the rest (keys are never raised).
    let (size, keys_hold) = match (edit, at) {
        (Edit::Remove(_), Err(_)) => return Ok(Plan::Absent),
        (Edit::Put(k, v), Err(i)) => (size_after_put(leaf, at, k, v), i > 0 || bounded(k)),
        (Edit::Put(k, v), Ok(_)) => (size_after_put(leaf, at, k, v), true),
        (Edit::Remove(k), Ok(i)) => (leaf.size() - leaf_entry_len(k, leaf.value(i)), true),
    };
    let in_bounds = is_root || (keys_hold && size >= limits.min_node());
    if !in_bounds {
        return Ok(Plan::Copying);
    }
    // Within `N` as well, nothing above the leaf changes (see `insert`
    // and `remove`): only the leaf is taken.
    let contained = size <= limits.max_node();
    let leaf = *path.last().map(|(id, _)| id).expect("a path has a leaf");
    if !path.iter().any(|(id, _)| txn.is_frozen(*id)) {
        if contained {
            let last = path.len() - 1;
            txn.take_for_edit(path.drain(last..))?;
        } else {
            txn.take_for_edit(path)?;
        }
        return Ok(Plan::InPlace(Path {
            root,
            steps,
            leaf,
            at: Some(at),
            contained,
        }));
    }
    // Frozen nodes (P1) are moved to copies, which need no further read;
    // the others are edited where they are. Of those, a contained edit
    // changes only the leaf and the parent of each node that moves (its
    // child's id): the rest stay in the store untaken.
    let last = path.len() - 1;
    let mut now: SmallVec<[NodeId; 8]> = path.iter().map(|(id, _)| *id).collect();
    let mut moving: SmallVec<[_; 8]> = SmallVec::new();
    let mut edited: SmallVec<[_; 8]> = SmallVec::new();
    let mut child_moves = false;
    for (d, (id, node)) in path.into_iter().enumerate().rev() {
        let frozen = txn.is_frozen(id);
        if frozen {
            moving.push((d, id, node));
        } else if !contained || d == last || child_moves {
            edited.push((id, node));
        }
        child_moves = frozen;
    }
    txn.take_for_edit(edited)?;
    let mut moved: SmallVec<[usize; 8]> = SmallVec::new();
    for (d, id, node) in moving {
        now[d] = txn.relocate(id, node);
        moved.push(d);
    }
    for (d, step) in steps.iter_mut().enumerate() {
        step.0 = now[d];
    }
    for d in moved.into_iter().filter(|&d| d > 0) {
        txn.node_mut(now[d - 1])?.set_child(steps[d - 1].1, now[d]);
    }
    Ok(Plan::InPlace(Path {
        root: now[0],
        steps,
        leaf: *now.last().expect("a path has a leaf"),
        at: Some(at),
        contained,
    }))
}

/// The leaf an edit in place left taken, while nothing above it changed:
/// a later key of a sorted run that falls in the leaf is edited there
/// without a second descent (`ForestCore::insert_runs`). Between them the
/// leaf stays unshared and unfrozen (it was taken for this write set,
/// under the catalog's write lock), and the keys routed to it stay those
/// at or above its first key and below `upper`.
pub(crate) struct LeafRun {
    leaf: NodeId,
    is_root: bool,
    /// The index key after the leaf's, in the lowest node of the path
    /// that has one: every key routed to the leaf is below it (B1). `None`
    /// on the tree's right edge.
    upper: Option<Vec<u8>>,
}

impl LeafRun {
    /// The leaf of `path`, if the edit planned on it changes nothing above
    /// the leaf (see [`Path`]'s `contained`).
    pub(crate) fn after(txn: &Txn, path: &Path) -> Result<Option<LeafRun>> {
        if !path.contained {
            return Ok(None);
        }
        let mut upper = None;
        for &(node, i) in path.steps.iter().rev() {
            let node = txn.get(node)?;
            if i + 1 < node.len() {
                upper = Some(node.key(i + 1).to_vec());
                break;
            }
        }
        Ok(Some(LeafRun {
            leaf: path.leaf,
            is_root: path.steps.is_empty(),
            upper,
        }))
    }

    /// Puts `key` with the inline `value` into the leaf if the key belongs
    /// there and the edit keeps the leaf within B3's bounds and its first
    /// key (so B1 holds above it); whether it did. When it did not, nothing
    /// changed.
    pub(crate) fn put(
        &self,
        txn: &mut Txn,
        limits: &Limits,
        key: &[u8],
        value: &[u8],
    ) -> Result<bool> {
        if self.upper.as_deref().is_some_and(|upper| key >= upper) {
            return Ok(false);
        }
        let leaf = txn.node_mut(self.leaf)?;
        let at = leaf.search_for_write(key);
        // Below the leaf's first key, the index keys above may have to be
        // lowered.
        if at == Err(0) {
            return Ok(false);
        }
        let size = size_after_put(leaf, at, key, value);
        if size > limits.max_node() || (!self.is_root && size < limits.min_node()) {
            return Ok(false);
        }
        put_at(leaf, at, key, Stored::Inline(value));
        Ok(true)
    }

    /// Removes `key` from the leaf if it belongs there and the leaf stays
    /// within B3's bounds: whether it was there (a key that belongs in the
    /// leaf and is not in it is in no other). `None` when the key lies past
    /// the leaf or its removal would leave the leaf under the minimum;
    /// nothing changed then. Keys come in increasing order from one whose
    /// descent led here, so a key below `upper` belongs here; a removed
    /// smallest key leaves the index keys above a lower bound (B1).
    pub(crate) fn remove(
        &self,
        txn: &mut Txn,
        limits: &Limits,
        key: &[u8],
    ) -> Result<Option<bool>> {
        if self.upper.as_deref().is_some_and(|upper| key >= upper) {
            return Ok(None);
        }
        let leaf = txn.node_mut(self.leaf)?;
        let Ok(i) = leaf.search_for_write(key) else {
            return Ok(Some(false));
        };
        let size = leaf.size() - leaf_entry_len(key, leaf.value(i));
        if !self.is_root && size < limits.min_node() {
            return Ok(None);
        }
        leaf.remove(i);
        Ok(Some(true))
    }
}

/// The encoded size of `leaf` once `key` is put there with `value`, where
/// a search for `key` found `at`.
fn size_after_put(leaf: &Node, at: Result<usize, usize>, key: &[u8], value: &[u8]) -> usize {
    match at {
        Ok(i) => leaf.size() - leaf_entry_len(key, leaf.value(i)) + leaf_entry_len(key, value),
        Err(_) => leaf.size() + leaf_entry_len(key, value),
    }
}

/// Puts `key` with `value` into `leaf` where a search for `key` found
/// `at` (so keys stay strictly increasing, B1); whether it went in as the
/// leaf's last entry.
fn put_at(leaf: &mut Node, at: Result<usize, usize>, key: &[u8], value: Stored) -> bool {
    match at {
        Ok(i) => {
            leaf.set_stored(i, value);
            false
        }
        Err(i) => {
            leaf.insert_stored(i, key, value);
            i + 1 == leaf.len()
        }
    }
}

/// What [`plan_in_place`] decided.
pub(crate) enum Plan {
    /// The path, taken for editing in place; the operation needs no second
    /// descent.
    InPlace(Path),
    /// The operation must shadow with copies (and may be rolled back).
    Copying,
    /// The key to remove is not in the tree; nothing was taken.
    Absent,
}

/// The root and the shadowed path to `key`: the planned one if there is
/// one (nothing to shadow on it), else a shadowing descent.
fn shadowed_path(
    txn: &mut Txn,
    root: NodeId,
    key: &[u8],
    planned: Option<Path>,
) -> Result<(NodeId, Path)> {
    match planned {
        Some(path) => Ok((path.root, path)),
        None => {
            let root = txn.shadow(root)?;
            Ok((root, descend(txn, root, key)?))
        }
    }
}

/// Inserts or replaces `key` in the tree at `root`; returns the new root.
///
/// `planned` is the path [`plan_in_place`] returned, if it did.
pub(crate) fn insert(
    txn: &mut Txn,
    limits: &Limits,
    root: NodeId,
    key: &[u8],
    value: Stored,
    planned: Option<Path>,
) -> Result<NodeId> {
    let (root, path) = shadowed_path(txn, root, key, planned)?;
    let leaf = txn.node_mut(path.leaf)?;
    let at = path.at.unwrap_or_else(|| leaf.search_for_write(key));
    let at_end = put_at(leaf, at, key, value);
    // B1 and B3 hold as they were: no node above the leaf changes.
    if path.contained {
        return Ok(root);
    }
    let rightmost = path.steps.iter().try_fold(true, |all, &(parent, i)| {
        Ok::<_, crate::Error>(all && i + 1 == txn.get(parent)?.len())
    })?;
    let split = if at_end && rightmost {
        Split::Append
    } else {
        Split::Balanced
    };
    fix_path(txn, limits, &path, split)?;
    fix_root(txn, limits, root, split)
}

/// Where an overflowing node splits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Split {
    /// Into halves of about equal bytes.
    Balanced,
    /// After an append on the tree's right edge: the right part as small
    /// as B3 allows ([`Node::append_split`]), as a sorted load wants.
    Append,
}

impl Split {
    fn at(self, node: &Node, limits: &Limits) -> usize {
        match self {
            Split::Balanced => node.balanced_split(),
            Split::Append => node.append_split(limits.min_node()),
        }
    }
}

/// Removes `key`, which the caller has seen in the tree; returns the new
/// root.
/// `planned` is as for [`insert`].
pub(crate) fn remove(
    txn: &mut Txn,
    limits: &Limits,
    root: NodeId,
    key: &[u8],
    planned: Option<Path>,
) -> Result<NodeId> {
    let (root, path) = shadowed_path(txn, root, key, planned)?;
    let leaf = txn.node_mut(path.leaf)?;
    if let Ok(i) = path.at.unwrap_or_else(|| leaf.search_for_write(key)) {
        leaf.remove(i);
    }
    if path.contained {
        return Ok(root);
    }
    fix_path(txn, limits, &path, Split::Balanced)?;
    fix_root(txn, limits, root, Split::Balanced)
}

/// Restores the size bounds (B3) and index keys (B1) along `path`, bottom
/// up.
fn fix_path(txn: &mut Txn, limits: &Limits, path: &Path, split: Split) -> Result<()> {
    for &(parent, i) in path.steps.iter().rev() {
        fix_child(txn, limits, parent, i, split)?;
    }
    Ok(())
}

/// Whether `node`, if it is not a root, breaks B3's lower bound: under
/// `N/4` bytes, or an index node with fewer than two children.
fn underfull(node: &Node, limits: &Limits) -> bool {
    node.size() < limits.min_node() || (!node.is_leaf() && node.len() < 2)
}

/// Brings child `i` of `parent` back within bounds and its key up to date.
fn fix_child(txn: &mut Txn, limits: &Limits, parent: NodeId, i: usize, split: Split) -> Result<()> {
    let child = txn.get(txn.get(parent)?.child(i))?;
    if underfull(&child, limits) {
        drop(child);
        return rebalance(txn, parent, i, limits);
    }
    drop(child);
    refresh_key(txn, parent, i)?;
    split_oversized(txn, limits, parent, i, split)
}

/// Lowers `parent`'s key for entry `i` to its child's smallest key when a
/// key below it went into that child (B1). Only the first child can gain
/// such a key: any other receives keys at or above its index key. A key
/// left below the child's smallest key (after a removal) still bounds the
/// child from below, so it stays.
fn refresh_key(txn: &mut Txn, parent: NodeId, i: usize) -> Result<()> {
    if i > 0 {
        return Ok(());
    }
    let p = txn.get(parent)?;
    let child = txn.get(p.child(0))?;
    if !child.is_empty() && p.key(0) > child.key(0) {
        drop(p);
        txn.node_mut(parent)?.set_key(0, child.key(0));
    }
    Ok(())
}

/// The index key for `right`, the sibling after `left` (B1): between two
/// leaves the shortest prefix that tells them apart ([`separator`]), else
/// the right node's first key, which already bounds its subtree from below
/// and everything before it from above.
fn index_key(left: &Node, right: &Node) -> Vec<u8> {
    match left.len().checked_sub(1) {
        Some(last) if right.is_leaf() && !right.is_empty() => {
            separator(left.key(last), right.key(0)).to_vec()
        }
        _ => right.key(0).to_vec(),
    }
}

/// Splits child `i` of `parent` until it and its new siblings fit (B3's
/// upper bound), each sibling entered under an index key between it and
/// the node before it (B1).
fn split_oversized(
    txn: &mut Txn,
    limits: &Limits,
    parent: NodeId,
    i: usize,
    split: Split,
) -> Result<()> {
    let (mut idx, mut last) = (i, i);
    while idx <= last {
        let child_id = txn.get(parent)?.child(idx);
        let fits = {
            let child = txn.get(child_id)?;
            child.size() <= limits.max_node() || child.len() < 2
        };
        if fits {
            idx += 1;
            continue;
        }
        let child = txn.node_mut(child_id)?;
        let right = child.split_off(split.at(child, limits));
        let right_key = index_key(child, &right);
        // Refcount 1: the pointer `parent` gains below (B4).
        let right_id = txn.create(right);
        txn.node_mut(parent)?
            .insert_child(idx + 1, &right_key, right_id);
        last += 1;
    }
    Ok(())
}

/// Merges child `i` of `parent` with a sibling, or shares entries with it
/// when together they would not fit in one node, so both end within B3's
/// bounds.
fn rebalance(txn: &mut Txn, parent: NodeId, i: usize, limits: &Limits) -> Result<()> {
    let p = txn.get(parent)?;
    if p.len() < 2 {
        return Ok(());
    }
    let (l, r) = if i + 1 < p.len() {
        (i, i + 1)
    } else {
        (i - 1, i)
    };
    let sibling = if l == i { r } else { l };
    let sibling_id = p.child(sibling);
    drop(p);
    let shadowed = txn.shadow(sibling_id)?;
    if shadowed != sibling_id {
        txn.node_mut(parent)?.set_child(sibling, shadowed);
    }
    let p = txn.get(parent)?;
    let (left_id, right_id) = (p.child(l), p.child(r));
    // Every key under `left` is below it, every key under `right` at or
    // above it (B1); needed only when index nodes join (below).
    let bound = (p.level() > 1).then(|| p.key(r).to_vec());
    drop(p);
    let right = txn.get(right_id)?;
    let left = txn.node_mut(left_id)?;
    let joint = left.len();
    left.append(&right);
    drop(right);
    // The right node's first key, now inside the joined node, must be above
    // every key of the left one: an index node's first key is only a lower
    // bound of its first subtree, and may lie below the parent's key. The
    // writer never leaves it there (it lowers a first key only to a key
    // routed to the node), but a store it opens may hold one.
    if let Some(bound) = bound.filter(|b| left.key(joint) < b.as_slice()) {
        left.set_key(joint, &bound);
    }
    if left.size() <= limits.max_node() {
        // `left` took over the pointers of `right`, and with them the
        // references its children count (B4).
        txn.discard(right_id);
        txn.node_mut(parent)?.remove(r);
        return refresh_key(txn, parent, l);
    }
    let second = left.split_off(left.balanced_split());
    let key = index_key(left, &second);
    *txn.node_mut(right_id)? = second;
    txn.node_mut(parent)?.set_key(r, &key);
    refresh_key(txn, parent, l)
}

/// Grows the tree by a level when the root overflows, and shrinks it while
/// the root is an index node with a single child (B3 bounds the root only
/// from above). Returns the new root.
fn fix_root(txn: &mut Txn, limits: &Limits, mut root: NodeId, split: Split) -> Result<NodeId> {
    loop {
        let node = txn.get(root)?;
        if node.size() > limits.max_node() && node.len() >= 2 {
            let level = node.level();
            let first_key = node.key(0).to_vec();
            drop(node);
            // The old root's reference moves from the tree to `top` (B4).
            let mut top = Node::new_index(level + 1);
            top.insert_child(0, &first_key, root);
            root = txn.create(top);
            split_oversized(txn, limits, root, 0, split)?;
        } else if !node.is_leaf() && node.len() == 1 {
            let child = node.child(0);
            drop(node);
            // The child's reference moves from the old root to the tree
            // (B4).
            txn.discard(root);
            root = child;
        } else {
            return Ok(root);
        }
    }
}
