//! Read snapshots: the trees of a forest as of one moment, read beside the
//! writer without any forest-wide lock.
//!
//! A [`Snapshot`] holds the roots every tree had when it was taken and a
//! [`Pin`] on the node store: the nodes those roots reach are never edited
//! in place nor freed while the pin lives (P1, P2 in `docs/design.md`), so
//! reading them needs no lock but the store's own, and nothing the writer
//! does later (writes, commits, rollbacks, removals, checkpoints,
//! compaction) changes what the snapshot shows. The pin is in memory only:
//! no checkpoint records it (P3).

use crate::diff::Diff;
use crate::forest::ForestCore;
use crate::node::{Node, Stored};
use crate::range::Range;
use crate::read::{self, Bounds};
use crate::value::ValueReader;
use crate::Result;
use larix_nodestore::{NodeId, NodeStore, Pin};
use std::collections::BTreeMap;
use std::ops::{ControlFlow, RangeBounds};
use std::sync::{Arc, OnceLock};

/// Trees pinned at one moment.
pub(crate) struct Pinned {
    /// Dropped before `forest`: the pin's release needs the store alive.
    _pin: Pin<Node>,
    trees: BTreeMap<String, NodeId>,
    forest: Arc<ForestCore>,
}

impl Pinned {
    /// Pins `trees` (names and roots) of `forest`; the caller holds the
    /// catalog locked, so no operation is half applied.
    pub(crate) fn new(
        forest: &Arc<ForestCore>,
        trees: impl IntoIterator<Item = (String, NodeId)>,
    ) -> Arc<Pinned> {
        Arc::new(Pinned {
            _pin: forest.store.pin(),
            trees: trees.into_iter().collect(),
            forest: forest.clone(),
        })
    }

    pub(crate) fn store(&self) -> &NodeStore<Node> {
        &self.forest.store
    }

    /// Whether `other` pins trees of the same forest (node ids mean the
    /// same nodes in both).
    pub(crate) fn same_forest(&self, other: &Pinned) -> bool {
        Arc::ptr_eq(&self.forest, &other.forest)
    }
}

/// Every tree of a forest as of the moment it was taken, committed or not
/// (see [`Forest::snapshot`](crate::Forest::snapshot)). Cheap to clone;
/// dropping the last handle (and the last [`View`] of it) lets the writer
/// free what only the snapshot kept.
#[derive(Clone)]
pub struct Snapshot {
    pinned: Arc<Pinned>,
}

impl Snapshot {
    pub(crate) fn new(pinned: Arc<Pinned>) -> Snapshot {
        Snapshot { pinned }
    }

    /// The names of the trees, in order.
    pub fn tree_names(&self) -> Vec<String> {
        self.pinned.trees.keys().cloned().collect()
    }

    /// The tree called `name`, as it was.
    pub fn tree(&self, name: &str) -> Option<View> {
        let (name, &root) = self.pinned.trees.get_key_value(name)?;
        Some(View::new(self.pinned.clone(), name, root))
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("trees", &self.pinned.trees)
            .finish()
    }
}

/// One tree of a [`Snapshot`], read-only, as it was when the snapshot was
/// taken. It has [`Tree`](crate::Tree)'s read methods, and keeps its
/// snapshot's nodes while it lives.
#[derive(Clone)]
pub struct View {
    pinned: Arc<Pinned>,
    name: Arc<str>,
    root: NodeId,
    /// The root and its children once read, shared by the view's clones:
    /// pinned nodes never change (P1), so point reads start below them
    /// without asking the store, and readers on several threads share no
    /// cache entry (or `Arc` count) for the nodes every read passes.
    top: Arc<Top>,
}

/// The top two levels of a view, filled as they are first read.
#[derive(Default)]
struct Top {
    root: OnceLock<Arc<Node>>,
    children: OnceLock<Box<[OnceLock<Arc<Node>>]>>,
}

impl View {
    /// The view of tree `name`, at `root`, of `pinned`.
    pub(crate) fn new(pinned: Arc<Pinned>, name: &str, root: NodeId) -> View {
        View {
            pinned,
            name: name.into(),
            root,
            top: Arc::default(),
        }
    }

    /// The tree's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn root(&self) -> NodeId {
        self.root
    }

    pub(crate) fn store(&self) -> &NodeStore<Node> {
        self.pinned.store()
    }

    pub(crate) fn pinned(&self) -> &Pinned {
        &self.pinned
    }

    /// The value of `key`.
    ///
    /// # Errors
    /// A store error.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_with(key, <[u8]>::to_vec)
    }

    /// The root node, read once.
    fn root_node(&self) -> Result<&Arc<Node>> {
        if let Some(node) = self.top.root.get() {
            return Ok(node);
        }
        let node = self.store().get(self.root)?;
        Ok(self.top.root.get_or_init(|| node))
    }

    /// `f` of the value of `key`, borrowed where the view holds it: no
    /// copy of the value is made.
    ///
    /// # Errors
    /// A store error.
    pub fn get_with<T>(&self, key: &[u8], f: impl FnOnce(&[u8]) -> T) -> Result<Option<T>> {
        let root = self.root_node()?;
        if root.is_leaf() {
            return read::value_in(self.store(), root, key, f);
        }
        let child = self.child_node(root, root.child_index(key))?;
        read::lookup_from(self.store(), child, key, f)
    }

    /// A reader over the value of `key`, for a value that should not sit
    /// in memory whole: it reads an out-of-line value chunk by chunk, and
    /// keeps this view's nodes (and so the value) while it lives.
    ///
    /// # Errors
    /// A store error.
    pub fn get_reader(&self, key: &[u8]) -> Result<Option<ValueReader>> {
        let found = read::lookup_stored(self.store(), self.root, key, |s| match s {
            Stored::Inline(v) => Err(v.to_vec()),
            Stored::Out(r) => Ok(r),
        })?;
        match found {
            None => Ok(None),
            Some(Err(inline)) => Ok(Some(ValueReader::inline(inline))),
            Some(Ok(r)) => ValueReader::out_of_line(self.pinned.clone(), r).map(Some),
        }
    }

    /// Calls `f` on each entry within `range`, in key order, its key and
    /// value borrowed (no allocation per entry, unlike [`View::range`]),
    /// until `f` returns [`ControlFlow::Break`]; returns the number of
    /// entries `f` was called on.
    ///
    /// # Errors
    /// A store error.
    pub fn scan<'a, R: RangeBounds<&'a [u8]>>(
        &self,
        range: R,
        mut f: impl FnMut(&[u8], &[u8]) -> ControlFlow<()>,
    ) -> Result<u64> {
        let root = self.root_node()?;
        let child = |j| self.child_node(root, j).map(|n| &**n);
        read::scan(
            self.store(),
            root,
            &child,
            &Bounds::from_range(&range),
            &mut f,
        )
    }

    /// Child `j` of the root, read once and checked to sit one level below.
    fn child_node(&self, root: &Node, j: usize) -> Result<&Arc<Node>> {
        let children = self
            .top
            .children
            .get_or_init(|| (0..root.len()).map(|_| OnceLock::new()).collect());
        let slot = &children[j];
        if let Some(node) = slot.get() {
            return Ok(node);
        }
        let node = read::child(self.store(), root, j)?;
        Ok(slot.get_or_init(|| node))
    }

    /// The entries within `range`, in key order; double-ended.
    ///
    /// # Errors
    /// None at present; the iterator yields store errors.
    pub fn range<'a, R: RangeBounds<&'a [u8]>>(&self, range: R) -> Result<Range> {
        Ok(Range::new(self.clone(), Bounds::from_range(&range)))
    }

    /// Number of entries within `range`.
    ///
    /// # Errors
    /// A store error.
    pub fn count_range<'a, R: RangeBounds<&'a [u8]>>(&self, range: R) -> Result<u64> {
        read::count(self.store(), self.root, &Bounds::from_range(&range))
    }

    /// True if no entry lies within `range`.
    ///
    /// # Errors
    /// A store error.
    pub fn range_is_empty<'a, R: RangeBounds<&'a [u8]>>(&self, range: R) -> Result<bool> {
        let bounds = Bounds::from_range(&range);
        read::is_empty(self.store(), self.root, &bounds)
    }

    /// The entry with the smallest key.
    ///
    /// # Errors
    /// A store error.
    pub fn first(&self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        read::next_leaf(self.store(), self.root, &Bounds::all(), false, 1).map(|mut v| v.pop())
    }

    /// The entry with the largest key.
    ///
    /// # Errors
    /// A store error.
    pub fn last(&self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        read::next_leaf(self.store(), self.root, &Bounds::all(), true, 1).map(|mut v| v.pop())
    }

    /// The changes that turn this view into `other`, in key order, never
    /// reading a subtree both share (see [`Tree::diff`](crate::Tree::diff)).
    ///
    /// # Errors
    /// None at present; the iterator yields store errors.
    pub fn diff(&self, other: &View) -> Result<Diff> {
        Ok(Diff::new(self.clone(), other.clone()))
    }

    /// The shape of the tree (see [`Tree::shape`](crate::Tree::shape)).
    ///
    /// # Errors
    /// A store error.
    pub fn shape(&self) -> Result<read::Shape> {
        Ok(read::Shape {
            node_size: self.pinned.forest.limits.max_node(),
            levels: read::shape(self.store(), self.root)?,
        })
    }
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View")
            .field("name", &self.name)
            .field("root", &self.root)
            .finish()
    }
}
