//! The forest: named trees over one node store, and the tree handle.
//!
//! One lock guards the catalog. Writers hold it exclusively for the whole
//! operation, including [`Txn::apply`], so there is one writer per forest
//! and readers never see half an operation; readers share it.

use crate::catalog::Catalog;
use crate::check::{self, CheckReport};
use crate::limits::Limits;
use crate::mutate::{Edit, Plan};
use crate::node::Node;
use crate::range::Range;
use crate::read::{self, Bounds};
use crate::txn::Txn;
use crate::{mutate, Error, Result};
use larix_nodestore::{NodeId, NodeStore};
use parking_lot::RwLock;
use std::ops::RangeBounds;
use std::sync::Arc;

pub(crate) struct ForestCore {
    pub(crate) store: NodeStore<Node>,
    pub(crate) catalog: RwLock<Catalog>,
    limits: Limits,
}

/// A set of named copy-on-write B-trees sharing one node store.
#[derive(Clone)]
pub struct Forest {
    shared: Arc<ForestCore>,
}

/// A handle on one tree of a forest, by name. Cheap to clone; every call
/// acts on the tree that bears the name at that moment.
#[derive(Clone)]
pub struct Tree {
    pub(crate) shared: Arc<ForestCore>,
    name: Arc<str>,
}

impl Forest {
    /// A forest over `store`, with the trees of its last commit.
    ///
    /// # Errors
    /// [`Error::CorruptCatalog`] if the committed catalog cannot be read.
    pub fn new(store: NodeStore<Node>, limits: Limits) -> Result<Forest> {
        let catalog = Catalog::decode(&store.committed_catalog())?;
        Ok(Forest {
            shared: Arc::new(ForestCore {
                store,
                catalog: RwLock::new(catalog),
                limits,
            }),
        })
    }

    /// The node store underneath.
    pub fn store(&self) -> &NodeStore<Node> {
        &self.shared.store
    }

    /// The size limits in force.
    pub fn limits(&self) -> Limits {
        self.shared.limits
    }

    fn handle(&self, name: &str) -> Tree {
        Tree {
            shared: self.shared.clone(),
            name: name.into(),
        }
    }

    /// Creates an empty tree called `name`.
    ///
    /// # Errors
    /// [`Error::TreeExists`], [`Error::InvalidTreeName`], or a store error.
    pub fn create_tree(&self, name: &str) -> Result<Tree> {
        Catalog::validate_name(name)?;
        let mut catalog = self.shared.catalog.write();
        if catalog.contains(name) {
            return Err(Error::TreeExists { name: name.into() });
        }
        let mut txn = Txn::new(&self.shared.store);
        let root = txn.create(Node::new_leaf());
        txn.apply()?;
        catalog.set_root(name, root);
        Ok(self.handle(name))
    }

    /// The tree called `name`, if there is one.
    pub fn tree(&self, name: &str) -> Option<Tree> {
        self.shared
            .catalog
            .read()
            .contains(name)
            .then(|| self.handle(name))
    }

    /// Makes `dst` a clone of `src` in O(1): both share every node until
    /// one of them changes.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`] for `src`, [`Error::TreeExists`] for `dst`,
    /// [`Error::InvalidTreeName`], or a store error.
    pub fn clone_tree(&self, src: &str, dst: &str) -> Result<Tree> {
        Catalog::validate_name(dst)?;
        let mut catalog = self.shared.catalog.write();
        let root = catalog.root(src)?;
        if catalog.contains(dst) {
            return Err(Error::TreeExists { name: dst.into() });
        }
        let mut txn = Txn::new(&self.shared.store);
        txn.incref(root)?;
        txn.apply()?;
        catalog.set_root(dst, root);
        Ok(self.handle(dst))
    }

    /// Removes tree `name`, freeing the nodes no other tree shares.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error (the tree then stays).
    pub fn remove_tree(&self, name: &str) -> Result<()> {
        let mut catalog = self.shared.catalog.write();
        let root = catalog.root(name)?;
        let mut txn = Txn::new(&self.shared.store);
        txn.decref(root)?;
        txn.apply()?;
        catalog.remove(name)?;
        Ok(())
    }

    /// The number of trees.
    pub fn tree_count(&self) -> usize {
        self.shared.catalog.read().len()
    }

    /// The names of all trees, in order.
    pub fn tree_names(&self) -> Vec<String> {
        self.shared
            .catalog
            .read()
            .iter()
            .map(|(n, _)| n.to_string())
            .collect()
    }

    /// Makes the current state of every tree the committed one.
    ///
    /// # Errors
    /// A store error; the previous commit then stays in force.
    pub fn commit(&self) -> Result<()> {
        let catalog = self.shared.catalog.write();
        self.shared.store.commit(&catalog.encode())?;
        Ok(())
    }

    /// Copies the live nodes of segments whose live share is below
    /// `max_live_ratio` forward, at most `max_bytes` of them, and commits:
    /// the segments emptied are removed once that commit is durable. The
    /// current state of every tree becomes the committed one, as with
    /// [`Forest::commit`]. Returns the bytes copied.
    ///
    /// # Errors
    /// A store error; the previous commit then stays in force.
    pub fn compact(&self, max_live_ratio: f64, max_bytes: u64) -> Result<u64> {
        let catalog = self.shared.catalog.write();
        let copied = self.shared.store.compact(max_live_ratio, max_bytes)?;
        self.shared.store.commit(&catalog.encode())?;
        Ok(copied)
    }

    /// Checks the structure of every tree and every refcount.
    pub fn check(&self) -> CheckReport {
        let catalog = self.shared.catalog.read();
        check::check(&self.shared.store, &catalog, self.shared.limits)
    }
}

impl Tree {
    /// The size limits of the tree's forest.
    pub fn limits(&self) -> Limits {
        self.shared.limits
    }

    /// The tree's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The birth of the tree that bears the name now (see [`Catalog`]).
    pub(crate) fn birth(&self) -> Result<u64> {
        self.shared.catalog.read().birth(&self.name)
    }

    /// Runs one read with the catalog locked for sharing, on the tree of
    /// birth `birth` only: if the tree was removed (and perhaps another
    /// created under its name), [`Error::TreeNotFound`].
    pub(crate) fn read_born<T>(
        &self,
        birth: u64,
        f: impl FnOnce(&NodeStore<Node>, NodeId) -> Result<T>,
    ) -> Result<T> {
        let catalog = self.shared.catalog.read();
        let root = catalog.root(&self.name)?;
        if catalog.birth(&self.name)? != birth {
            return Err(Error::TreeNotFound {
                name: self.name.to_string(),
            });
        }
        f(&self.shared.store, root)
    }

    /// Runs one read with the catalog locked for sharing.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&NodeStore<Node>, NodeId) -> Result<T>,
    ) -> Result<T> {
        let catalog = self.shared.catalog.read();
        let root = catalog.root(&self.name)?;
        f(&self.shared.store, root)
    }

    /// Runs one write through a fresh [`Txn`]; applies it and moves the
    /// root only if `f` succeeds.
    fn write<T>(&self, f: impl FnOnce(&mut Txn, NodeId) -> Result<(NodeId, T)>) -> Result<T> {
        let mut catalog = self.shared.catalog.write();
        let root = catalog.root(&self.name)?;
        let mut txn = Txn::new(&self.shared.store);
        let (new_root, out) = f(&mut txn, root)?;
        txn.apply()?;
        catalog.set_root(&self.name, new_root);
        Ok(out)
    }

    /// Inserts `key` with `value`, replacing any value it had.
    ///
    /// # Errors
    /// [`Error::EntryTooLarge`], [`Error::TreeNotFound`], or a store error;
    /// on error the tree is unchanged.
    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let limits = self.shared.limits;
        if key.len() + value.len() > limits.max_entry() {
            return Err(Error::EntryTooLarge {
                key_len: key.len(),
                value_len: value.len(),
                limit: limits.max_entry(),
            });
        }
        self.write(|txn, root| {
            let path = match mutate::plan_in_place(txn, &limits, root, &Edit::Put(key, value))? {
                Plan::InPlace(path) => Some(path),
                Plan::Copying | Plan::Absent => None,
            };
            Ok((mutate::insert(txn, &limits, root, key, value, path)?, ()))
        })
    }

    /// The value of `key`.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.read(|store, root| read::lookup(store, root, key))
    }

    /// Removes `key`; returns whether it was there.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error; on error the tree is
    /// unchanged.
    pub fn remove(&self, key: &[u8]) -> Result<bool> {
        let limits = self.shared.limits;
        self.write(|txn, root| {
            let path = match mutate::plan_in_place(txn, &limits, root, &Edit::Remove(key))? {
                Plan::Absent => return Ok((root, false)),
                Plan::InPlace(path) => Some(path),
                Plan::Copying => {
                    if read::lookup(&self.shared.store, root, key)?.is_none() {
                        return Ok((root, false));
                    }
                    None
                }
            };
            Ok((mutate::remove(txn, &limits, root, key, path)?, true))
        })
    }

    /// The entries within `range`, in key order; double-ended.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`]; the iterator yields store errors.
    pub fn range<'a, R: RangeBounds<&'a [u8]>>(&self, range: R) -> Result<Range> {
        Range::new(self.clone(), Bounds::from_range(&range))
    }

    /// Number of entries within `range`.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error.
    pub fn count_range<'a, R: RangeBounds<&'a [u8]>>(&self, range: R) -> Result<u64> {
        let bounds = Bounds::from_range(&range);
        self.read(|store, root| read::count(store, root, &bounds))
    }

    /// True if no entry lies within `range`.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error.
    pub fn range_is_empty<'a, R: RangeBounds<&'a [u8]>>(&self, range: R) -> Result<bool> {
        let bounds = Bounds::from_range(&range);
        self.read(|store, root| Ok(read::next_leaf(store, root, &bounds, false, 1)?.is_empty()))
    }

    /// Removes every entry within `range`; returns how many there were.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error; on error the tree is
    /// unchanged.
    pub fn remove_range<'a, R: RangeBounds<&'a [u8]>>(&self, range: R) -> Result<u64> {
        let limits = self.shared.limits;
        let bounds = Bounds::from_range(&range);
        self.write(|txn, mut root| {
            let keys = read::keys(&self.shared.store, root, &bounds)?;
            for key in &keys {
                root = mutate::remove(txn, &limits, root, key, None)?;
            }
            Ok((root, keys.len() as u64))
        })
    }

    /// The shape of the tree: nodes, bytes and entries per level, leaves
    /// first. Reads every node.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error.
    pub fn shape(&self) -> Result<read::Shape> {
        Ok(read::Shape {
            node_size: self.shared.limits.max_node(),
            levels: self.read(read::shape)?,
        })
    }

    /// The entry with the smallest key.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error.
    pub fn first(&self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.edge(false)
    }

    /// The entry with the largest key.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error.
    pub fn last(&self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.edge(true)
    }

    fn edge(&self, last: bool) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.read(|store, root| Ok(read::next_leaf(store, root, &Bounds::all(), last, 1)?.pop()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every stored node with its refcount and bytes, and every tree root.
    fn snapshot(f: &Forest) -> (Vec<(NodeId, u32, Vec<u8>)>, Catalog) {
        let store = f.store();
        let nodes = store
            .node_ids()
            .into_iter()
            .map(|id| {
                let bytes = store.get(id).map(|n| n.as_bytes().to_vec());
                (id, store.refcount(id).unwrap(), bytes.unwrap_or_default())
            })
            .collect();
        (nodes, f.shared.catalog.read().clone())
    }

    fn key(i: u32) -> Vec<u8> {
        format!("key{i:05}").into_bytes()
    }

    /// The leaves of `tree`, left to right.
    fn leaves(f: &Forest, tree: &str) -> Vec<NodeId> {
        let mut level = vec![f.shared.catalog.read().root(tree).unwrap()];
        loop {
            let nodes: Vec<_> = level.iter().map(|&id| f.store().get(id).unwrap()).collect();
            if nodes[0].is_leaf() {
                return level;
            }
            level = nodes
                .iter()
                .flat_map(|n| n.children().collect::<Vec<_>>())
                .collect();
        }
    }

    #[test]
    fn a_read_failure_midway_changes_nothing() {
        let f = Forest::new(NodeStore::in_memory(), Limits::new(256).unwrap()).unwrap();
        let t = f.create_tree("a").unwrap();
        for i in 0..300 {
            t.insert(&key(i), b"v").unwrap();
        }
        f.clone_tree("a", "b").unwrap();
        let b = f.tree("b").unwrap();
        // Lose the second leaf, as a failed read would.
        let all = leaves(&f, "a");
        let lost = all[1];
        let first_key_lost = f.store().get(lost).unwrap().key(0).to_vec();
        let bytes = f.store().get(lost).unwrap();
        let rc = f.store().refcount(lost).unwrap();
        f.store().free(lost).unwrap();
        let before = snapshot(&f);

        // An insert whose path ends in the lost leaf: the root and index
        // nodes are shadowed (copied, since "b" shares them) before the
        // read fails.
        assert!(b.insert(&first_key_lost, b"x").is_err());
        assert_eq!(snapshot(&f), before);

        // A remove from the first leaf until it underflows, which needs its
        // lost right neighbour for the merge.
        let first_leaf = f.store().get(all[0]).unwrap();
        let doomed: Vec<Vec<u8>> = (0..first_leaf.len())
            .map(|i| first_leaf.key(i).to_vec())
            .collect();
        let mut failed = false;
        for k in &doomed {
            let snap = snapshot(&f);
            match b.remove(k) {
                Ok(_) => {}
                Err(_) => {
                    assert_eq!(snapshot(&f), snap);
                    failed = true;
                    break;
                }
            }
        }
        assert!(failed, "the merge never needed the lost leaf");

        // Put the leaf back: the forest is whole again.
        f.store().put(lost, bytes).unwrap();
        f.store().set_refcount(lost, rc).unwrap();
        let report = f.check();
        assert!(report.is_clean(), "{report}");
    }
}
