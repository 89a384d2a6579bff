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
use larix_nodestore::Codec;
use larix_nodestore::{NodeId, NodeStore, Pin};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::ops::{ControlFlow, RangeBounds};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

/// Trees pinned at one moment.
pub(crate) struct Pinned {
    /// Dropped before `forest`: the pin's release needs the store alive.
    _pin: Pin<Node>,
    trees: BTreeMap<String, NodeId>,
    forest: Arc<ForestCore>,
}

impl Pinned {
    /// `trees` (names and roots) of `forest`, kept by `pin`: one taken
    /// with the catalog locked, so that no operation was half applied, or
    /// one an operation published as it ended (`crate::publish`).
    pub(crate) fn new(
        forest: &Arc<ForestCore>,
        pin: Pin<Node>,
        trees: impl IntoIterator<Item = (String, NodeId)>,
    ) -> Arc<Pinned> {
        Arc::new(Pinned {
            _pin: pin,
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
/// dropping the last handle (and the last [`View`] of it) frees what only
/// the snapshot kept (many nodes through the store's release thread).
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
    /// The nodes a point read passes, kept once read and shared by the
    /// view's clones: pinned nodes never change (P1), so point reads go
    /// down through them without asking the store, and readers on several
    /// threads share no cache entry (or `Arc` count) for the index nodes
    /// every read passes.
    top: Arc<Top>,
}

/// The nodes of a view kept as they are first read: the root and its
/// children held; below them, within a memory budget, index nodes held
/// and leaves weakly. A weak reference keeps no node in memory: while the
/// store holds the leaf it leads to it without the store's lookup (random
/// point reads of a 1,000,000-entry tree took about 6% less time), and
/// once the store has let the leaf go the read asks the store as before.
struct Top {
    root: OnceLock<Arc<Node>>,
    /// The root's children, held whatever their kind and outside the
    /// budget, each with the slots of its own children.
    children: OnceLock<Box<[Slot]>>,
    /// The bytes this view took from its forest's [`MemoBudget`].
    spent: AtomicUsize,
    budget: MemoBudget,
}

/// The slots of an index node's children, or `None` if the budget could
/// not hold them when the node was first read through.
type Kids = OnceLock<Option<Box<[Slot]>>>;

/// One child of an index node, once read: held (a child of the root, or
/// an index node, with its own children's slots), or a leaf weakly.
struct Slot {
    held: OnceLock<Held>,
    kids: Kids,
}

enum Held {
    Strong(Arc<Node>),
    Weak(Weak<Node>),
}

/// A child as a read through a view reaches it ([`View::step`]).
enum Reached<'v> {
    /// An index node the view keeps, with the slots of its children.
    Kept(&'v Arc<Node>, &'v Kids),
    /// A leaf.
    Leaf(Arc<Node>),
    /// An index node the budget could not keep: below it, reads go to the
    /// store.
    Unkept(Arc<Node>),
}

impl Slot {
    fn new() -> Slot {
        Slot {
            held: OnceLock::new(),
            kids: OnceLock::new(),
        }
    }

    /// The node the slot holds strongly, if it holds one.
    fn strong(&self) -> Option<&Arc<Node>> {
        match self.held.get()? {
            Held::Strong(node) => Some(node),
            Held::Weak(_) => None,
        }
    }

    /// Holds `node`, read for this slot, unless another reader's copy of
    /// it is held already; returns the node held.
    fn hold(&self, node: Arc<Node>) -> &Arc<Node> {
        match self.held.get_or_init(|| Held::Strong(node)) {
            Held::Strong(node) => node,
            Held::Weak(_) => unreachable!(
                "a slot holds what its parent's level gives: a child of the root or an \
                 index node strongly, a leaf below them weakly"
            ),
        }
    }
}

/// What the memory budget counts for a slot: the slot itself and the
/// allocation header a weak reference may keep once its leaf is gone
/// (about 110 bytes).
const SLOT_COST: usize = std::mem::size_of::<Slot>() + 128;

/// The memory every view of a forest may keep in slots and index nodes
/// below the top two levels, together: a quarter of the store's
/// `cache_bytes`. A view gives back what it took when its last clone is
/// dropped.
#[derive(Clone)]
pub(crate) struct MemoBudget(Arc<AtomicUsize>);

impl MemoBudget {
    pub(crate) fn new(cache_bytes: usize) -> MemoBudget {
        MemoBudget(Arc::new(AtomicUsize::new(cache_bytes / 4)))
    }

    /// The bytes left.
    #[cfg(test)]
    pub(crate) fn left(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

impl Top {
    fn new(budget: MemoBudget) -> Top {
        Top {
            root: OnceLock::new(),
            children: OnceLock::new(),
            spent: AtomicUsize::new(0),
            budget,
        }
    }

    /// Takes `bytes` from the budget, if it holds them.
    fn spend(&self, bytes: usize) -> bool {
        let taken = self
            .budget
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(bytes)
            })
            .is_ok();
        if taken {
            self.spent.fetch_add(bytes, Ordering::Relaxed);
        }
        taken
    }

    /// Slots for the `n` children of an index node, if the budget holds
    /// them.
    fn slots(&self, n: usize) -> Option<Box<[Slot]>> {
        self.spend(n * SLOT_COST)
            .then(|| (0..n).map(|_| Slot::new()).collect())
    }
}

/// The reads one call of a view served from what the view keeps, handed
/// to the store's counters once, when the call ends.
struct Kept<'a> {
    store: &'a NodeStore<Node>,
    hits: Cell<u64>,
}

impl<'a> Kept<'a> {
    fn new(store: &'a NodeStore<Node>) -> Self {
        Kept {
            store,
            hits: Cell::new(0),
        }
    }

    fn hit(&self) {
        self.hits.set(self.hits.get() + 1);
    }
}

impl Drop for Kept<'_> {
    fn drop(&mut self) {
        match self.hits.get() {
            0 => {}
            n => self.store.count_kept_reads(n),
        }
    }
}

impl Drop for Top {
    fn drop(&mut self) {
        let spent = *self.spent.get_mut();
        self.budget.0.fetch_add(spent, Ordering::Relaxed);
    }
}

impl View {
    /// The view of tree `name`, at `root`, of `pinned`.
    pub(crate) fn new(pinned: Arc<Pinned>, name: &str, root: NodeId) -> View {
        View {
            top: Arc::new(Top::new(pinned.forest.memo.clone())),
            pinned,
            name: name.into(),
            root,
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

    /// The root node, read once, and whether a read before this call read
    /// it: only then do the reads below it keep what they pass. A view
    /// read once (a read transaction of one get) would pay for slots it
    /// never uses, the root's children's and those of the node below (a
    /// view and one get on a 1,000,000-pair tree took 3.7-3.9 µs with
    /// them, 2.6-2.7 without): its first read goes down through the store.
    fn root_node(&self, kept: &Kept) -> Result<(&Arc<Node>, bool)> {
        if let Some(node) = self.top.root.get() {
            kept.hit();
            return Ok((node, true));
        }
        let node = self.store().get(self.root)?;
        Ok((self.top.root.get_or_init(|| node), false))
    }

    /// `f` of the value of `key`, borrowed where the view holds it: no
    /// copy of the value is made.
    ///
    /// # Errors
    /// A store error.
    pub fn get_with<T>(&self, key: &[u8], f: impl FnOnce(&[u8]) -> T) -> Result<Option<T>> {
        let store = self.store();
        let kept = Kept::new(store);
        let (root, keep) = self.root_node(&kept)?;
        if root.is_leaf() {
            return read::value_in(store, root, key, f);
        }
        if !keep {
            return read::lookup_from(store, root, key, f);
        }
        let (mut node, mut kids) = self.root_child(root, root.child_index(key), &kept)?;
        while !node.is_leaf() {
            match self.step(node, kids, node.child_index(key), &kept)? {
                Reached::Kept(child, its_kids) => (node, kids) = (child, its_kids),
                Reached::Leaf(leaf) => return read::value_in(store, &leaf, key, f),
                Reached::Unkept(child) => return read::lookup_from(store, &child, key, f),
            }
        }
        read::value_in(store, node, key, f)
    }

    /// Child `j` of index node `node`, whose children's slots are `kids`
    /// (taken from the budget here on the first pass through `node`): from
    /// its slot where it holds the child, else from the store, kept in its
    /// slot (an index node strongly, if the budget holds it; a leaf
    /// weakly).
    #[inline]
    fn step<'v>(
        &'v self,
        node: &Node,
        kids: &'v Kids,
        j: usize,
        kept: &Kept,
    ) -> Result<Reached<'v>> {
        let store = self.store();
        let Some(slots) = kids.get_or_init(|| self.top.slots(node.len())) else {
            return Ok(Reached::Unkept(read::child(store, node, j)?));
        };
        let slot = &slots[j];
        match slot.held.get() {
            Some(Held::Strong(child)) => {
                kept.hit();
                return Ok(Reached::Kept(child, &slot.kids));
            }
            Some(Held::Weak(leaf)) => {
                if let Some(leaf) = leaf.upgrade() {
                    kept.hit();
                    return Ok(Reached::Leaf(leaf));
                }
            }
            None => {}
        }
        let child = read::child(store, node, j)?;
        if child.is_leaf() {
            // A slot set before keeps its reference, dead once the store
            // let the leaf go: that leaf is read from the store from then
            // on, as every leaf was before views had slots.
            let _ = slot.held.set(Held::Weak(Arc::downgrade(&child)));
            return Ok(Reached::Leaf(child));
        }
        if !self.top.spend(child.mem_size()) {
            return Ok(Reached::Unkept(child));
        }
        Ok(Reached::Kept(slot.hold(child), &slot.kids))
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
        let store = self.store();
        let bounds = Bounds::from_range(&range);
        if bounds.is_empty() {
            return Ok(0);
        }
        let kept = Kept::new(store);
        let (root, keep) = self.root_node(&kept)?;
        read::scan(
            store,
            |leaves| {
                let mut later = false;
                match root.is_leaf() || !keep {
                    true => read::walk_node(store, root, &bounds, false, &mut later, leaves),
                    false => self.walk_kept(root, None, &bounds, &mut later, leaves, &kept),
                }
                .map(|_| ())
            },
            &mut f,
        )
    }

    /// [`read::walk_node`] in key order over the subtree of `node`, an
    /// index node this view keeps (the root, with `kids` `None`, or a node
    /// below it with the slots of its children), its children reached as a
    /// point read reaches them.
    fn walk_kept(
        &self,
        node: &Node,
        kids: Option<&Kids>,
        bounds: &Bounds,
        later: &mut bool,
        leaves: &mut read::Leaves,
        kept: &Kept,
    ) -> Result<ControlFlow<()>> {
        let store = self.store();
        for j in bounds.in_index(node) {
            let reached = match kids {
                None => {
                    let (child, kids) = self.root_child(node, j, kept)?;
                    Reached::Kept(child, kids)
                }
                Some(kids) => self.step(node, kids, j, kept)?,
            };
            let flow = match reached {
                Reached::Kept(child, kids) if !child.is_leaf() => {
                    self.walk_kept(child, Some(kids), bounds, later, leaves, kept)?
                }
                Reached::Kept(child, _) => {
                    read::walk_node(store, child, bounds, false, later, leaves)?
                }
                Reached::Leaf(child) | Reached::Unkept(child) => {
                    read::walk_node(store, &child, bounds, false, later, leaves)?
                }
            };
            if flow.is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Child `j` of the root, read once and checked to sit one level
    /// below, and the slots of its own children.
    fn root_child(&self, root: &Node, j: usize, kept: &Kept) -> Result<(&Arc<Node>, &Kids)> {
        let children = self
            .top
            .children
            .get_or_init(|| (0..root.len()).map(|_| Slot::new()).collect());
        let slot = &children[j];
        if let Some(node) = slot.strong() {
            kept.hit();
            return Ok((node, &slot.kids));
        }
        let node = read::child(self.store(), root, j)?;
        Ok((slot.hold(node), &slot.kids))
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

#[cfg(test)]
mod tests {
    use crate::{Forest, Limits, Tree};
    use larix_nodestore::NodeStore;
    use std::ops::{Bound, ControlFlow, RangeBounds};
    use std::sync::atomic::Ordering;

    /// Key `i` of [`deep_tree`], which maps it to `i` (little-endian).
    fn key(i: u32) -> Vec<u8> {
        format!("key-{i:06}").into_bytes()
    }

    /// A committed tree of 5,000 keys in nodes of 256 bytes: at least four
    /// levels, so that point reads pass index nodes below the root's
    /// children.
    fn deep_tree() -> (Forest, Tree) {
        let f = Forest::new(NodeStore::in_memory(), Limits::new(256).unwrap()).unwrap();
        let t = f.create_tree("t").unwrap();
        t.insert_batch((0..5_000).map(|i| (key(i), i.to_le_bytes())))
            .unwrap();
        f.commit().unwrap();
        assert!(t.shape().unwrap().levels.len() >= 4, "the test needs depth");
        (f, t)
    }

    #[test]
    fn a_view_read_once_keeps_nothing_and_the_reads_after_it_keep_what_they_pass() {
        let (_f, t) = deep_tree();
        let view = t.view().unwrap();
        let full = view.top.budget.left();
        assert_eq!(
            view.get(&key(7)).unwrap(),
            Some(7u32.to_le_bytes().to_vec())
        );
        assert!(
            view.top.children.get().is_none(),
            "the first read kept the root's children"
        );
        assert_eq!(view.top.budget.left(), full, "the first read took slots");
        assert_eq!(
            view.get(&key(9)).unwrap(),
            Some(9u32.to_le_bytes().to_vec())
        );
        assert!(
            view.top.children.get().is_some(),
            "the second read kept nothing"
        );
        assert!(
            view.top.budget.left() < full,
            "the second read took no slots"
        );
    }

    /// Ranges of [`deep_tree`]'s keys, as bounds on key numbers, with
    /// the entry after which a scan stops (`None`: it runs to the end).
    fn ranges() -> Vec<(Bound<u32>, Bound<u32>, Option<usize>)> {
        let mut x = 0x9e37_79b9u32;
        let mut next = |m: u32| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x % m
        };
        let mut out = vec![
            (Bound::Unbounded, Bound::Unbounded, None),
            (Bound::Included(4_990), Bound::Unbounded, None),
            (Bound::Unbounded, Bound::Excluded(12), None),
            (Bound::Included(300), Bound::Excluded(300), None),
        ];
        for _ in 0..300 {
            let lo = next(5_100);
            let bound = |k, open| match open {
                0 => Bound::Included(k),
                _ => Bound::Excluded(k),
            };
            let hi = lo + next(400);
            let stop = (next(3) == 0).then(|| next(40) as usize);
            out.push((bound(lo, next(2)), bound(hi, next(2)), stop));
        }
        out
    }

    fn as_slices(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
        b.as_ref().map(Vec::as_slice)
    }

    /// The keys a scan of `view` over `range` visits: compared with those
    /// of the range on the tree's keys, in order.
    fn scan_checked(view: &super::View, range: &(Bound<u32>, Bound<u32>, Option<usize>)) {
        let (lo, hi, stop) = range;
        let bound = |b: &Bound<u32>| b.map(key);
        let (lo_key, hi_key) = (bound(lo), bound(hi));
        let mut want: Vec<u32> = (0..5_000).filter(|i| (*lo, *hi).contains(i)).collect();
        if let Some(stop) = stop {
            want.truncate(stop + 1);
        }
        let mut got = Vec::new();
        let seen = view
            .scan((as_slices(&lo_key), as_slices(&hi_key)), |k, v| {
                let i = u32::from_le_bytes(v.try_into().unwrap());
                assert_eq!(k, key(i), "a value under another key");
                got.push(i);
                match Some(got.len() - 1) == *stop {
                    true => ControlFlow::Break(()),
                    false => ControlFlow::Continue(()),
                }
            })
            .unwrap();
        assert_eq!(got, want, "{range:?}");
        assert_eq!(seen, want.len() as u64, "{range:?}");
    }

    #[test]
    fn a_view_scans_through_what_it_keeps_and_keeps_what_its_scans_pass() {
        let (f, t) = deep_tree();
        let view = t.view().unwrap();
        let full = view.top.budget.left();
        scan_checked(&view, &(Bound::Included(10), Bound::Excluded(20), None));
        assert!(
            view.top.children.get().is_none(),
            "the first scan kept the root's children"
        );
        let ranges = ranges();
        for range in &ranges {
            scan_checked(&view, range);
        }
        assert!(view.top.budget.left() < full, "the scans kept nothing");
        // Every node a scan passes is counted once, by the store or as
        // kept by the view: as many as fresh views (which keep nothing)
        // count for the same scans.
        let stats = || f.store().stats();
        let (reads, hits) = (stats().node_reads(), stats().kept_hits);
        for range in &ranges {
            scan_checked(&view, range);
        }
        let kept_reads = stats().node_reads() - reads;
        assert!(
            stats().kept_hits > hits,
            "the scans read nothing through what the view keeps"
        );
        let reads = stats().node_reads();
        for range in &ranges {
            scan_checked(&t.view().unwrap(), range);
        }
        assert_eq!(kept_reads, stats().node_reads() - reads);
    }

    #[test]
    fn a_view_scans_right_when_the_budget_runs_out() {
        let (_f, t) = deep_tree();
        // No room at all, then room for a few index nodes' slots only.
        for room in [0, 3_000] {
            let view = t.view().unwrap();
            assert!(view.get(&key(0)).unwrap().is_some());
            let budget = view.top.budget.clone();
            let before = budget.left();
            budget.0.store(room, Ordering::Relaxed);
            for range in &ranges() {
                scan_checked(&view, range);
            }
            assert!(
                budget.left() <= room,
                "the budget grew while the view lived"
            );
            drop(view);
            budget.0.store(before, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_view_counts_the_reads_it_serves_and_gives_back_the_memory_it_kept() {
        let (f, t) = deep_tree();
        let levels = t.shape().unwrap().levels.len() as u64;
        let view = t.view().unwrap();
        let full = view.top.budget.left();
        for pass in 0..2 {
            let reads = f.store().stats().node_reads();
            for i in (0..5_000).rev() {
                let got = view.get(&key(i)).unwrap();
                assert_eq!(got, Some(i.to_le_bytes().to_vec()), "key {i}");
            }
            // Every node a read passes is counted once, by the store or as
            // kept by the view.
            let counted = f.store().stats().node_reads() - reads;
            assert_eq!(counted, 5_000 * levels, "pass {pass}");
        }
        assert!(
            f.store().stats().kept_hits >= 5_000 * levels,
            "the view kept nothing"
        );
        let kept = full - view.top.budget.left();
        assert!(kept > 0, "the reads kept nothing");
        let clone = view.clone();
        drop(view);
        assert_eq!(
            full - clone.top.budget.left(),
            kept,
            "a clone still holds it"
        );
        let other = t.view().unwrap();
        drop(clone);
        assert_eq!(
            other.top.budget.left(),
            full,
            "the budget was not given back"
        );
    }
}
