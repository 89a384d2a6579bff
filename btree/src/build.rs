//! Bulk build: a tree made bottom up from sorted pairs, each node written
//! once and filled to [`FILL`] of the node size, for a large batch into an
//! empty tree (a load, a restore, a catalogue written in one go).
//!
//! Inserting such a batch one pair at a time walks the tree per pair and
//! splits each leaf as it overflows; here the leaves are cut from the
//! sorted pairs and each level of index nodes from the level below, so a
//! pair costs its encoding and nothing else.
//!
//! Invariants (`docs/design.md`): B1, as the pairs are in order, a leaf is
//! entered under the shortest key above the leaf before it and an index
//! node under its first key; B2, as each level is built from the
//! one below; B3, by the cut below (the argument is in "Bulk build");
//! B4, as every node is created with refcount 1 and has one parent, or is
//! the root. Nodes go to the store a group at a time, so the store's
//! budgets bound the memory the build takes; on a failure the nodes made
//! so far are freed and the tree is unchanged (B5).

use crate::limits::Limits;
use crate::node::{index_entry_len, leaf_entry_len, separator, Node};
use crate::Result;
use larix_nodestore::{NodeId, NodeStore};
use std::sync::Arc;

/// The share of the node size a built node is filled to, in eighths: full
/// enough to read fast and keep the store small, with room for a few
/// later inserts before a leaf splits.
const FILL: usize = 7;

/// Nodes handed to the store under one lock.
const GROUP: usize = 64;

/// One entry of the level being cut into nodes.
trait Entry {
    /// The entry's encoded length.
    fn len(&self) -> usize;
    /// Appends the entry to `node`.
    fn push(&self, node: &mut Node);
}

impl<K: AsRef<[u8]>, V: AsRef<[u8]>> Entry for (K, V) {
    fn len(&self) -> usize {
        leaf_entry_len(self.0.as_ref(), self.1.as_ref())
    }
    fn push(&self, node: &mut Node) {
        node.push_leaf(self.0.as_ref(), self.1.as_ref());
    }
}

/// A built child: its index key and id, an entry of the level above.
struct Child {
    key: Vec<u8>,
    id: NodeId,
}

impl Entry for Child {
    fn len(&self) -> usize {
        index_entry_len(&self.key)
    }
    fn push(&self, node: &mut Node) {
        node.push_child(&self.key, self.id);
    }
}

/// Builds a tree holding `pairs`, which must be in strictly increasing key
/// order, each small enough for a leaf entry, and at least one; returns
/// its root, with refcount 1 and referenced by nothing yet.
///
/// # Errors
/// A store error; the nodes built so far are freed.
pub(crate) fn build<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    store: &NodeStore<Node>,
    limits: &Limits,
    pairs: &[(K, V)],
) -> Result<NodeId> {
    debug_assert!(!pairs.is_empty());
    debug_assert!(pairs.windows(2).all(|w| w[0].0.as_ref() < w[1].0.as_ref()));
    let mut out = Output {
        store,
        group: Vec::with_capacity(GROUP),
        made: Vec::new(),
        last_key: Vec::new(),
    };
    let built = (|| {
        let mut level = cut(&mut out, limits, pairs, Node::new_leaf)?;
        let mut height = 0u8;
        while level.len() > 1 {
            height += 1;
            level = cut(&mut out, limits, &level, || Node::new_index(height))?;
        }
        out.flush()?;
        Ok(level[0].id)
    })();
    if built.is_err() {
        out.group.clear();
        for id in out.made {
            // Referenced by nothing, so freeing them is all there is to
            // undo (a store that latched a failure still frees).
            let _ = store.free(id);
        }
    }
    built
}

/// Where built nodes go: a group at a time to the store.
struct Output<'s> {
    store: &'s NodeStore<Node>,
    group: Vec<(NodeId, Arc<Node>)>,
    /// Every node handed to the store, to free on a failure.
    made: Vec<NodeId>,
    /// The last key of the leaf stored last (empty before the first).
    last_key: Vec<u8>,
}

impl Output<'_> {
    /// Stores `node` under a fresh id (with the rest of its group).
    fn add(&mut self, mut node: Node) -> Result<Child> {
        node.finish();
        let id = self.store.allocate();
        // A leaf after another is entered under the shortest key between
        // them; an index node under its first key.
        let key = match node.is_leaf() && !self.last_key.is_empty() {
            true => separator(&self.last_key, node.key(0)).to_vec(),
            false => node.key(0).to_vec(),
        };
        if node.is_leaf() {
            self.last_key.clear();
            self.last_key.extend_from_slice(node.key(node.len() - 1));
        }
        self.group.push((id, Arc::new(node)));
        if self.group.len() == GROUP {
            self.flush()?;
        }
        Ok(Child { key, id })
    }

    /// Hands the group to the store, each node with refcount 1.
    fn flush(&mut self) -> Result<()> {
        if self.group.is_empty() {
            return Ok(());
        }
        self.store.writable()?;
        let ids: Vec<NodeId> = self.group.iter().map(|(id, _)| *id).collect();
        self.made.extend_from_slice(&ids);
        self.store.put_all(self.group.drain(..))?;
        self.store
            .set_refcounts(ids.into_iter().map(|id| (id, 1)))?;
        Ok(())
    }
}

/// Cuts one level's `entries` into nodes made by `new`, each filled until
/// the next entry would take it past [`FILL`] eighths of the node size,
/// and stores them; returns the level above's entries.
///
/// B3: each node but the last is cut past `FILL/8·N − N/4` bytes (an entry
/// is at most `N/4`), above the lower bound `N/4`. The last one, if below
/// `N/4`, is joined to the one before; if the two exceed `N` they are
/// split where their bytes balance, which leaves each at least
/// `(N − N/4)/2` and at most `(FILL/8·N + N/2)/2`, both within bounds.
fn cut<E: Entry>(
    out: &mut Output,
    limits: &Limits,
    entries: &[E],
    new: impl Fn() -> Node,
) -> Result<Vec<Child>> {
    let fill = limits.max_node() / 8 * FILL;
    let new = || {
        let mut node = new();
        node.reserve(limits.max_node());
        node
    };
    let mut above = Vec::new();
    // The node before `node`, held back until `node` is known not to be
    // the last (which may need joining to it).
    let mut prev: Option<Node> = None;
    let mut node = new();
    for e in entries {
        if !node.is_empty() && node.size() + e.len() > fill {
            if let Some(p) = prev.replace(std::mem::replace(&mut node, new())) {
                above.push(out.add(p)?);
            }
        }
        e.push(&mut node);
    }
    match prev {
        Some(mut p) if node.size() < limits.min_node() => {
            p.finish();
            node.finish();
            p.append(&node);
            if p.size() > limits.max_node() {
                let right = p.split_off(p.balanced_split());
                above.push(out.add(p)?);
                above.push(out.add(right)?);
            } else {
                above.push(out.add(p)?);
            }
        }
        Some(p) => {
            above.push(out.add(p)?);
            above.push(out.add(node)?);
        }
        None => above.push(out.add(node)?),
    }
    Ok(above)
}

#[cfg(test)]
mod tests {
    use crate::{Forest, Limits, Tree};
    use larix_nodestore::NodeStore;
    use std::collections::BTreeMap;

    type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

    /// `n` pairs in no order, of every length a leaf entry allows at
    /// `limits`, with about one key in eight given twice.
    fn pairs(limits: Limits, n: usize, seed: u64) -> Pairs {
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut out: Pairs = Vec::with_capacity(n);
        for _ in 0..n {
            if !out.is_empty() && next() % 8 == 0 {
                let again = out[next() as usize % out.len()].0.clone();
                out.push((again, next().to_le_bytes().to_vec()));
                continue;
            }
            let klen = 1 + next() as usize % limits.max_key().min(40);
            let vlen = next() as usize % (limits.max_entry() - klen).min(120);
            let key = (0..klen).map(|_| next() as u8).collect();
            let value = (0..vlen).map(|_| next() as u8).collect();
            out.push((key, value));
        }
        out
    }

    /// What a tree holds after `pairs` go in one by one.
    fn model(pairs: &Pairs) -> Vec<(Vec<u8>, Vec<u8>)> {
        let map: BTreeMap<_, _> = pairs.iter().cloned().collect();
        map.into_iter().collect()
    }

    fn contents(tree: &Tree) -> Vec<(Vec<u8>, Vec<u8>)> {
        tree.range::<std::ops::RangeFull>(..)
            .unwrap()
            .map(|e| e.unwrap())
            .collect()
    }

    #[test]
    fn a_large_batch_into_an_empty_tree_is_built_in_bounds_each_node_once() {
        for (node_size, n) in [(256, 40_000), (1024, 25_000), (4096, 20_000)] {
            let limits = Limits::new(node_size).unwrap();
            let f = Forest::new(NodeStore::in_memory(), limits).unwrap();
            let t = f.create_tree("t").unwrap();
            let batch = pairs(limits, n, node_size as u64);
            let first_id = f.store().allocate().0;
            t.insert_batch(batch.iter().map(|(k, v)| (k, v))).unwrap();
            let report = f.check();
            assert!(report.is_clean(), "node size {node_size}: {report}");
            assert_eq!(contents(&t), model(&batch), "node size {node_size}");
            // Built, not inserted: the tree's nodes are the ids allocated
            // after `first_id`, one each, with none made and dropped.
            let shape = t.shape().unwrap();
            let nodes: u64 = shape.levels.iter().map(|l| l.nodes).sum();
            assert!(
                shape.levels.len() >= 3,
                "node size {node_size}: too small a test"
            );
            assert_eq!(f.store().allocate().0 - first_id - 1, nodes);
            assert_eq!(f.store().stats().nodes, nodes);
            // Filled past 5/8 of the node size on average, leaves and index
            // (on a level of a few nodes, the last two may be balanced).
            for level in shape.levels.iter().filter(|l| l.nodes >= 8) {
                let fill = level.bytes as f64 / (level.nodes * node_size as u64) as f64;
                assert!(fill > 0.625, "node size {node_size}: fill {fill}");
            }
        }
    }

    #[test]
    fn a_built_tree_takes_later_changes_and_rolls_back() {
        let limits = Limits::new(512).unwrap();
        let f = Forest::new(NodeStore::in_memory(), limits).unwrap();
        let t = f.create_tree("t").unwrap();
        f.commit().unwrap();
        let committed = f.store().stats().nodes;
        let before = t.view().unwrap();
        let batch = pairs(limits, 30_000, 7);
        t.insert_batch(batch.iter().map(|(k, v)| (k, v))).unwrap();
        assert_eq!(
            before.range(..).unwrap().count(),
            0,
            "a snapshot saw the build"
        );

        // The built tree takes inserts and removals like any other.
        let mut expected: BTreeMap<_, _> = model(&batch).into_iter().collect();
        let more = pairs(limits, 2_000, 8);
        for (i, (k, v)) in more.iter().enumerate() {
            if i % 3 == 0 {
                let gone = expected.keys().nth(i).cloned().unwrap();
                assert!(t.remove(&gone).unwrap());
                expected.remove(&gone);
            } else {
                t.insert(k, v).unwrap();
                expected.insert(k.clone(), v.clone());
            }
        }
        assert!(f.check().is_clean());
        assert_eq!(contents(&t), expected.into_iter().collect::<Vec<_>>());

        // Uncommitted: a rollback empties the tree again.
        drop(before);
        f.rollback().unwrap();
        assert_eq!(contents(&t), vec![]);
        assert_eq!(f.store().stats().nodes, committed);
        assert!(f.check().is_clean());
    }

    #[test]
    fn small_batches_and_batches_into_a_full_tree_are_inserted() {
        let limits = Limits::new(512).unwrap();
        let f = Forest::new(NodeStore::in_memory(), limits).unwrap();
        let t = f.create_tree("t").unwrap();
        let small = pairs(limits, 100, 3);
        t.insert_batch(small.iter().map(|(k, v)| (k, v))).unwrap();
        let large = pairs(limits, 30_000, 4);
        t.insert_batch(large.iter().map(|(k, v)| (k, v))).unwrap();
        let mut all = small.clone();
        all.extend(large);
        assert!(f.check().is_clean());
        assert_eq!(contents(&t), model(&all));
    }
}
