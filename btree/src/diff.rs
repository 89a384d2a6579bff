//! What turns one tree into another: [`Diff`], a merge of two ordered walks
//! that never reads a subtree both trees share.
//!
//! Each side is a [`Cursor`]: a stack of nodes with the position of the
//! next item in each. The next item of a side is either one entry of a
//! leaf or a whole child subtree of an index node, known by its id, its
//! level and its index key, a lower bound of its keys (B1). Both sides are always
//! positioned at the same point of the key order, so when their next items
//! are the same subtree (same node id, same store) it holds the same
//! entries on both sides and is skipped without being read. Otherwise the
//! higher subtree is opened, or an entry that precedes the other side's
//! next subtree is reported as present on one side only. The nodes read
//! therefore grow with the change (about two paths per changed key), not
//! with the trees.
//!
//! Both sides are pinned views (see `snapshot.rs`): the diff compares the
//! trees as they were when it was made, whatever the writer does meanwhile.

use crate::node::{Node, Stored};
use crate::read;
use crate::snapshot::View;
use crate::Result;
use larix_nodestore::NodeId;
use std::cmp::Ordering;
use std::sync::Arc;

/// One difference between two trees, in key order: `old` is the value in
/// the first tree, `new` in the second; never both `None`, never equal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The key.
    pub key: Vec<u8>,
    /// Its value in the first tree, if it is there.
    pub old: Option<Vec<u8>>,
    /// Its value in the second tree, if it is there.
    pub new: Option<Vec<u8>>,
}

/// The changes that turn one tree into another, in key order (see
/// [`Tree::diff`](crate::Tree::diff)).
pub struct Diff {
    old: Cursor,
    new: Cursor,
    /// Both trees live in the same store, so equal ids are equal nodes.
    same_store: bool,
    done: bool,
}

/// What comes next on one side.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Front {
    /// A whole subtree: its root and level.
    Sub(NodeId, u8),
    /// The entry at this position of the top leaf.
    Entry,
    /// Nothing: the side is exhausted.
    End,
}

/// What one step of the merge did.
enum Step {
    /// It opened or skipped something.
    Moved,
    /// It found a change.
    Change(Change),
    /// Both sides are exhausted.
    End,
}

/// One side of a diff: the pinned tree, and the path to its next item.
struct Cursor {
    view: View,
    /// The root, until it is opened.
    root: Option<NodeId>,
    /// Open nodes, each with the position of its next item.
    stack: Vec<(Arc<Node>, usize)>,
}

impl Cursor {
    fn new(view: View) -> Cursor {
        Cursor {
            root: Some(view.root()),
            view,
            stack: Vec::new(),
        }
    }

    /// The next item, popping exhausted nodes.
    fn front(&mut self) -> Front {
        if let Some(root) = self.root {
            return Front::Sub(root, u8::MAX);
        }
        while let Some((node, i)) = self.stack.last() {
            if *i < node.len() {
                return if node.is_leaf() {
                    Front::Entry
                } else {
                    Front::Sub(node.child(*i), node.level() - 1)
                };
            }
            self.stack.pop();
        }
        Front::End
    }

    /// A lower bound of the keys the next subtree holds: its index key (the
    /// empty key for the root).
    fn sub_min(&self) -> &[u8] {
        match (self.root, self.stack.last()) {
            (None, Some((node, i))) => node.key(*i),
            _ => &[],
        }
    }

    /// The entry the front is at (front must be [`Front::Entry`]), its
    /// value as the leaf stores it.
    fn entry(&self) -> (&[u8], Stored<'_>) {
        let (leaf, i) = self.stack.last().expect("an entry is in a leaf");
        (leaf.key(*i), leaf.stored(*i))
    }

    /// The value of the entry the front is at, read whole.
    fn value(&self) -> Result<Vec<u8>> {
        let (leaf, i) = self.stack.last().expect("an entry is in a leaf");
        read::value_at(self.view.store(), leaf, *i)
    }

    /// The entry the front is at, copied, and moves past it.
    fn take_entry(&mut self) -> Result<(Vec<u8>, Vec<u8>)> {
        let owned = (self.entry().0.to_vec(), self.value()?);
        self.skip();
        Ok(owned)
    }

    /// Moves past the front item.
    fn skip(&mut self) {
        if self.root.take().is_none() {
            if let Some((_, i)) = self.stack.last_mut() {
                *i += 1;
            }
        }
    }

    /// Opens the front subtree: reads its root node (one node read).
    fn open(&mut self, id: NodeId, level: u8) -> Result<()> {
        let node = self.view.store().get(id)?;
        let expected = (level != u8::MAX).then_some(level);
        read::expect_level(id, &node, expected)?;
        self.skip();
        self.stack.push((node, 0));
        Ok(())
    }
}

impl Diff {
    pub(crate) fn new(old: View, new: View) -> Diff {
        Diff {
            same_store: old.pinned().same_forest(new.pinned()),
            old: Cursor::new(old),
            new: Cursor::new(new),
            done: false,
        }
    }

    /// One step of the merge.
    fn step(&mut self) -> Result<Step> {
        let (a, b) = (self.old.front(), self.new.front());
        match (a, b) {
            (Front::End, Front::End) => return Ok(Step::End),
            (Front::Sub(x, _), Front::Sub(y, _)) if x == y && self.same_store => {
                self.old.skip();
                self.new.skip();
            }
            (Front::Sub(x, lx), Front::Sub(y, ly)) => {
                if lx >= ly {
                    self.old.open(x, lx)?;
                } else {
                    self.new.open(y, ly)?;
                }
            }
            (Front::Sub(x, lx), other) => {
                if other == Front::Entry && self.new.entry().0 < self.old.sub_min() {
                    return Ok(Step::Change(self.only_new()?));
                }
                self.old.open(x, lx)?;
            }
            (other, Front::Sub(y, ly)) => {
                if other == Front::Entry && self.old.entry().0 < self.new.sub_min() {
                    return Ok(Step::Change(self.only_old()?));
                }
                self.new.open(y, ly)?;
            }
            (Front::Entry, Front::End) => return Ok(Step::Change(self.only_old()?)),
            (Front::End, Front::Entry) => return Ok(Step::Change(self.only_new()?)),
            (Front::Entry, Front::Entry) => {
                return Ok(self.compare_entries()?.map_or(Step::Moved, Step::Change))
            }
        }
        Ok(Step::Moved)
    }

    /// Both fronts are entries: the smaller key is on one side only, or an
    /// equal key may have changed its value.
    /// Out-of-line values are compared by reference where the reference
    /// decides (the same value node of one store is the same value), else
    /// read and compared by content.
    fn compare_entries(&mut self) -> Result<Option<Change>> {
        let ((ka, va), (kb, vb)) = (self.old.entry(), self.new.entry());
        let change = match ka.cmp(kb) {
            Ordering::Less => return self.only_old().map(Some),
            Ordering::Greater => return self.only_new().map(Some),
            Ordering::Equal => match (va, vb) {
                (Stored::Inline(a), Stored::Inline(b)) => (a != b).then(|| Change {
                    key: ka.to_vec(),
                    old: Some(a.to_vec()),
                    new: Some(b.to_vec()),
                }),
                (Stored::Out(a), Stored::Out(b)) if a == b && self.same_store => None,
                _ => {
                    let key = ka.to_vec();
                    let (a, b) = (self.old.value()?, self.new.value()?);
                    (a != b).then_some(Change {
                        key,
                        old: Some(a),
                        new: Some(b),
                    })
                }
            },
        };
        self.old.skip();
        self.new.skip();
        Ok(change)
    }

    fn only_old(&mut self) -> Result<Change> {
        let (key, value) = self.old.take_entry()?;
        Ok(Change {
            key,
            old: Some(value),
            new: None,
        })
    }

    fn only_new(&mut self) -> Result<Change> {
        let (key, value) = self.new.take_entry()?;
        Ok(Change {
            key,
            old: None,
            new: Some(value),
        })
    }
}

impl Iterator for Diff {
    type Item = Result<Change>;

    fn next(&mut self) -> Option<Result<Change>> {
        while !self.done {
            match self.step() {
                Ok(Step::Moved) => {}
                Ok(Step::Change(change)) => return Some(Ok(change)),
                Ok(Step::End) => self.done = true,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Forest, Limits, Tree};
    use larix_nodestore::NodeStore;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn forest() -> Forest {
        Forest::new(NodeStore::in_memory(), Limits::new(256).unwrap()).unwrap()
    }

    fn key(i: u32) -> Vec<u8> {
        format!("k{:06}", i.wrapping_mul(2_654_435_761) % 1_000_000).into_bytes()
    }

    /// The changes between two models, as `diff` must report them.
    fn model_diff(a: &BTreeMap<Vec<u8>, Vec<u8>>, b: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<Change> {
        let keys: std::collections::BTreeSet<&Vec<u8>> = a.keys().chain(b.keys()).collect();
        keys.into_iter()
            .filter(|k| a.get(*k) != b.get(*k))
            .map(|k| Change {
                key: k.clone(),
                old: a.get(k).cloned(),
                new: b.get(k).cloned(),
            })
            .collect()
    }

    fn contents(t: &Tree) -> BTreeMap<Vec<u8>, Vec<u8>> {
        t.range(..).unwrap().map(|e| e.unwrap()).collect()
    }

    fn diff(a: &Tree, b: &Tree) -> Vec<Change> {
        a.diff(b).unwrap().map(|c| c.unwrap()).collect()
    }

    #[test]
    fn a_clone_with_a_few_changes_reads_only_their_paths() {
        let f = forest();
        let t = f.create_tree("t").unwrap();
        for i in 0..20_000 {
            t.insert(&key(i), b"value").unwrap();
        }
        let before = f.clone_tree("t", "before").unwrap();
        for i in 0..10 {
            t.insert(&key(i * 997), b"changed").unwrap();
            t.remove(&key(i * 991 + 1)).unwrap();
            t.insert(format!("new{i}").as_bytes(), b"added").unwrap();
        }
        let want = model_diff(&contents(&before), &contents(&t));
        let reads = f.store().stats().node_reads();
        assert_eq!(diff(&before, &t), want);
        let used = f.store().stats().node_reads() - reads;
        let depth = t.shape().unwrap().levels.len() as u64;
        // 30 changed keys, two paths each at most, plus the siblings a split
        // or merge touched; the tree has about 1,000 nodes.
        assert!(
            used <= 30 * 2 * depth + 60,
            "{used} node reads, depth {depth}"
        );
        assert!(diff(&t, &t).is_empty());
        assert!(diff(&before, &f.clone_tree("t", "same").unwrap()).len() == want.len());
    }

    #[test]
    fn unrelated_trees_and_empty_ones_compare_entry_by_entry() {
        let f = forest();
        let (a, b, e) = (
            f.create_tree("a").unwrap(),
            f.create_tree("b").unwrap(),
            f.create_tree("e").unwrap(),
        );
        for i in 0..3_000 {
            a.insert(&key(i), &i.to_le_bytes()).unwrap();
            if i % 3 != 0 {
                b.insert(&key(i), &(i % 7).to_le_bytes()).unwrap();
            }
        }
        assert_eq!(diff(&a, &b), model_diff(&contents(&a), &contents(&b)));
        assert_eq!(diff(&e, &a).len(), 3_000);
        assert!(diff(&e, &e).is_empty());
        // Trees of two forests share no nodes even where ids coincide.
        let g = forest();
        let c = g.create_tree("a").unwrap();
        c.insert(b"x", b"1").unwrap();
        assert_eq!(diff(&a, &c), model_diff(&contents(&a), &contents(&c)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Random changes to a clone: the diff equals the model's, whatever
        /// splits and merges the changes caused.
        #[test]
        fn diff_matches_the_model(
            base in 0u32..2_000,
            ops in proptest::collection::vec((0u32..3_000, any::<bool>(), any::<u8>()), 0..300),
        ) {
            let f = forest();
            let t = f.create_tree("t").unwrap();
            for i in 0..base {
                t.insert(&key(i), &[1; 20]).unwrap();
            }
            let old = f.clone_tree("t", "old").unwrap();
            for (k, insert, v) in ops {
                if insert {
                    t.insert(&key(k), &vec![v; usize::from(v % 40)]).unwrap();
                } else {
                    t.remove(&key(k)).unwrap();
                }
            }
            let want = model_diff(&contents(&old), &contents(&t));
            prop_assert_eq!(diff(&old, &t), want);
            let back = model_diff(&contents(&t), &contents(&old));
            prop_assert_eq!(diff(&t, &old), back);
            prop_assert!(f.check().is_clean());
        }
    }
}
