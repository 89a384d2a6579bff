//! The write set of one tree operation: shadowing and reference counts.
//!
//! An operation reads through the [`Txn`] and writes only into it; nothing
//! reaches the store until [`Txn::apply`]. So an operation that fails half
//! way (a missing node, an I/O error while reading a sibling) is dropped and
//! leaves the trees, the refcounts and the store exactly as they were.
//!
//! Shadowing follows Rodeh: a node with refcount 1 is edited under its own
//! id; a shared node is copied to a new id, the copy's children gain a
//! reference and the original loses one.
//!
//! The refcounts are kept here (B4 in `docs/design.md`: a stored count
//! equals the node's parent pointers plus root references, and a node is
//! stored only while that is non-zero): each method below that changes a
//! count says which pointer it stands for.

use crate::node::{Expect, Node, ValueRef};
use crate::{read, Result};
use larix_nodestore::{NodeId, NodeStore, StoreError};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::sync::Arc;

/// Pending changes of one operation, read through before the store.
pub(crate) struct Txn<'s> {
    store: &'s NodeStore<Node>,
    nodes: HashMap<NodeId, Arc<Node>>,
    refcounts: HashMap<NodeId, u32>,
    created: HashSet<NodeId>,
    freed: HashSet<NodeId>,
    /// Nodes taken out of the store's cache and dirty queue for editing in
    /// place; put back if the write set is dropped unapplied.
    taken: Vec<NodeId>,
    /// Whether leaves may hold out-of-line values, so that a leaf freed
    /// must be read for the references it drops.
    values: bool,
    /// Whether the write set goes ahead in a store that refuses writes
    /// after a failure (see [`Txn::unlatched`]).
    unlatched: bool,
}

/// The empty collections of an applied write set, kept by the forest for
/// the next operation so that one operation allocates none of them.
#[derive(Default)]
pub(crate) struct Scratch {
    nodes: HashMap<NodeId, Arc<Node>>,
    refcounts: HashMap<NodeId, u32>,
    created: HashSet<NodeId>,
    freed: HashSet<NodeId>,
    taken: Vec<NodeId>,
}

/// Entries past which a write set's collections are dropped rather than
/// kept (a tree removal's), so that a scratch holds little memory; a run
/// of a batch's inserts (`RUN_LEN` pairs, a leaf or two each) stays under
/// it.
const SCRATCH_KEEP: usize = 1024;

impl<'s> Txn<'s> {
    /// An empty write set over `store`.
    pub fn new(store: &'s NodeStore<Node>) -> Self {
        Txn::recycled(store, Scratch::default())
    }

    /// An empty write set over `store` in the collections of an applied
    /// one.
    pub fn recycled(store: &'s NodeStore<Node>, scratch: Scratch) -> Self {
        debug_assert!(scratch.nodes.is_empty() && scratch.refcounts.is_empty());
        debug_assert!(scratch.created.is_empty() && scratch.freed.is_empty());
        debug_assert!(scratch.taken.is_empty());
        Txn {
            store,
            nodes: scratch.nodes,
            refcounts: scratch.refcounts,
            created: scratch.created,
            freed: scratch.freed,
            taken: scratch.taken,
            values: true,
            unlatched: false,
        }
    }

    /// Lets the write set apply in a store that refuses writes after a
    /// failure: for one that changes no entry, only where they are held
    /// (a write buffer applied to its tree, W3), so that reads go on after
    /// a failed commit. Nothing of it reaches the disk: the store commits
    /// nothing more until it is reopened.
    pub fn unlatched(mut self) -> Self {
        self.unlatched = true;
        self
    }

    /// Fails if the store refuses writes: after a failure, unless
    /// [`Txn::unlatched`]; opened read-only, always.
    fn writable(&self) -> Result<()> {
        match self.store.writable() {
            Err(larix_nodestore::StoreError::Failed(_)) if self.unlatched => Ok(()),
            other => Ok(other?),
        }
    }

    /// Whether leaves of the forest may hold out-of-line values (the
    /// catalog knows): without any, leaves are freed without being read.
    pub fn values(mut self, values: bool) -> Self {
        self.values = values;
        self
    }

    /// Whether leaves may hold out-of-line values, as [`Txn::values`] set.
    pub fn has_values(&self) -> bool {
        self.values
    }

    /// Takes `nodes` (id and current version, read by the caller, each
    /// with refcount 1) out of the store, so that editing them copies
    /// nothing: the write set then holds the only reference (unless a
    /// write of the node is in flight, and then the edit copies). A node
    /// the write set already holds stays as it is.
    ///
    /// The caller must have done every fallible read the operation needs:
    /// after the first edit the write set cannot be rolled back. If it is
    /// dropped unapplied before any edit, the nodes go back to the store.
    pub fn take_for_edit(
        &mut self,
        nodes: impl IntoIterator<Item = (NodeId, Arc<Node>)>,
    ) -> Result<()> {
        self.writable()?;
        let first = self.taken.len();
        for (id, node) in nodes {
            // One this write set already holds (taken or created by an
            // earlier edit of a run) is out of the store: the caller's
            // handle is only a second one to the same version.
            if self.nodes.contains_key(&id) {
                continue;
            }
            self.nodes.insert(id, node);
            self.taken.push(id);
        }
        self.store.release(self.taken[first..].iter().copied());
        Ok(())
    }

    /// The current version of node `id`.
    pub fn get(&self, id: NodeId) -> Result<Arc<Node>> {
        if self.freed.contains(&id) {
            return Err(StoreError::NodeMissing { id }.into());
        }
        match self.nodes.get(&id) {
            Some(n) => Ok(n.clone()),
            None => Ok(self.store.get(id)?),
        }
    }

    /// The current version of node `id` and its reference count, as this
    /// operation sees them.
    pub fn get_counted(&self, id: NodeId) -> Result<(Arc<Node>, u32)> {
        if self.freed.contains(&id) {
            return Err(StoreError::NodeMissing { id }.into());
        }
        match (self.nodes.get(&id), self.refcounts.get(&id)) {
            (None, None) => Ok(self.store.get_counted(id)?),
            (node, rc) => {
                let node = match node {
                    Some(n) => n.clone(),
                    None => self.store.get(id)?,
                };
                let rc = match rc {
                    Some(&rc) => rc,
                    None => self.store.refcount(id)?,
                };
                Ok((node, rc))
            }
        }
    }

    /// Mutable access to node `id`, which the caller has shadowed.
    pub fn node_mut(&mut self, id: NodeId) -> Result<&mut Node> {
        debug_assert!(!self.is_frozen(id), "node {id} is frozen (P1)");
        if !self.nodes.contains_key(&id) {
            let node = self.get(id)?;
            self.nodes.insert(id, node);
        }
        let slot = self.nodes.get_mut(&id).expect("inserted above");
        Ok(Arc::make_mut(slot))
    }

    /// The reference count of `id` as this operation sees it.
    pub fn refcount(&self, id: NodeId) -> Result<u32> {
        if self.freed.contains(&id) {
            return Err(StoreError::NodeMissing { id }.into());
        }
        match self.refcounts.get(&id) {
            Some(&rc) => Ok(rc),
            None => Ok(self.store.refcount(id)?),
        }
    }

    fn set_refcount(&mut self, id: NodeId, rc: u32) {
        self.refcounts.insert(id, rc);
    }

    /// Stores a new node with refcount 1 under a fresh id: the one pointer
    /// or root reference the caller then adds (B4).
    pub fn create(&mut self, node: Node) -> NodeId {
        self.create_shared(Arc::new(node))
    }

    /// [`Txn::create`] of a version others may still hold: the first edit
    /// copies it unless this handle is the last.
    fn create_shared(&mut self, node: Arc<Node>) -> NodeId {
        let id = self.store.allocate();
        self.nodes.insert(id, node);
        self.refcounts.insert(id, 1);
        self.created.insert(id);
        id
    }

    /// Adds one reference to `id`, for a pointer or root reference the
    /// caller adds (B4).
    pub fn incref(&mut self, id: NodeId) -> Result<()> {
        let rc = self.refcount(id)?;
        self.set_refcount(id, rc + 1);
        Ok(())
    }

    /// Drops one reference to `id`; a node left with none is freed, and its
    /// children (and a leaf's out-of-line values, a value's chunks) lose a
    /// reference in turn (B4: no node is stored without a reference).
    /// Chunks are freed without being read, and so are leaves while the
    /// forest holds no out-of-line value.
    pub fn decref(&mut self, id: NodeId) -> Result<()> {
        self.decref_as(id, None)
    }

    /// Drops the reference of a leaf entry to its out-of-line value `r`
    /// (an entry overwritten or removed), freeing the value's nodes with
    /// the last reference (B4).
    pub fn decref_value(&mut self, r: ValueRef) -> Result<()> {
        self.decref_as(r.id, Some(r.expect()))
    }

    /// Reads now what [`Txn::decref_value`] of `r` will read (its
    /// refcount, and its value node if this is the last reference), so
    /// that dropping the reference after an in-place edit cannot fail.
    /// Call it only where nothing shadows the leaf in between (an in-place
    /// edit), so the count it reads is the one the drop sees.
    pub fn prefetch_value(&mut self, r: ValueRef) -> Result<()> {
        let rc = self.refcount(r.id)?;
        self.set_refcount(r.id, rc);
        if rc == 1 && r.expect() == Expect::Value {
            let node = self.get(r.id)?;
            self.nodes.insert(r.id, node);
        }
        Ok(())
    }

    /// [`Txn::decref`] of a node that must be what `expect` says (`None`:
    /// a root).
    fn decref_as(&mut self, id: NodeId, expect: Option<Expect>) -> Result<()> {
        // Each entry carries what its parent requires of it (B2), so a
        // damaged tree cannot make the walk loop.
        let mut stack = vec![(id, expect)];
        while let Some((id, expect)) = stack.pop() {
            let rc = self.refcount(id)?;
            if rc > 1 {
                self.set_refcount(id, rc - 1);
                continue;
            }
            let barren = match expect {
                Some(Expect::Chunk) => true,
                Some(Expect::Level(0)) => !self.values,
                _ => false,
            };
            if !barren {
                let node = self.get(id)?;
                read::expect(id, &node, expect)?;
                stack.extend(node.pointers().map(|(c, e)| (c, Some(e))));
            }
            self.discard(id);
        }
        Ok(())
    }

    /// Adds one reference to `id` (a root reference the caller adds, B4),
    /// bringing it back if it was freed while a pin kept it (a retired
    /// node, P2): a node revived so takes back its pointers, so its
    /// children gain a reference in turn, and are revived if retired too.
    /// Rolling back to the last commit revives its roots this way.
    pub fn revive(&mut self, id: NodeId) -> Result<()> {
        let mut stack = vec![(id, None)];
        while let Some((id, expect)) = stack.pop() {
            let rc = self.refcount(id)?;
            self.set_refcount(id, rc + 1);
            if rc > 0 || expect == Some(Expect::Chunk) {
                continue;
            }
            let node = self.get(id)?;
            read::expect(id, &node, expect)?;
            stack.extend(node.pointers().map(|(c, e)| (c, Some(e))));
        }
        Ok(())
    }

    /// Frees `id` without touching its children, whose references the
    /// caller has moved elsewhere (a merge, or a collapsed root), so their
    /// counts stay right (B4).
    pub fn discard(&mut self, id: NodeId) {
        self.nodes.remove(&id);
        self.refcounts.remove(&id);
        if !self.created.remove(&id) {
            self.freed.insert(id);
        }
    }

    /// Whether `id` is frozen by a read pin (a snapshot, a range, the last
    /// commit): it may not be edited in place (P1 in `docs/design.md`).
    pub fn is_frozen(&self, id: NodeId) -> bool {
        self.store.is_frozen(id)
    }

    /// Makes `id` safe to edit: itself if unshared and not frozen, else a
    /// private copy, which takes over the caller's reference to `id`. A
    /// shared node's copy adds a pointer to each child (B4: the children
    /// gain one each, `id` loses one); an unshared frozen node's copy takes
    /// over its pointers, and the node itself is freed (retired, P2).
    pub fn shadow(&mut self, id: NodeId) -> Result<NodeId> {
        let rc = self.refcount(id)?;
        let frozen = self.is_frozen(id);
        if rc == 1 && !frozen {
            return Ok(id);
        }
        if rc == 1 {
            let node = self.get(id)?;
            return Ok(self.relocate(id, node));
        }
        let copy = Node::clone(&*self.get(id)?);
        for child in copy.children() {
            self.incref(child)?;
        }
        self.set_refcount(id, rc - 1);
        Ok(self.create(copy))
    }

    /// Moves unshared node `id` (whose current version is `node`) to a new
    /// id, which takes over its one reference and its pointers (B4); `id`
    /// is freed (retired, if a pin keeps it: P2). Reads nothing, so it
    /// cannot fail.
    ///
    /// The version itself is not copied here: the first edit of the new id
    /// copies it only if someone else still holds it ([`Arc::make_mut`]).
    /// The store's clean copy is dropped first unless a reader's pin may
    /// still ask for it (a node only the rollback base keeps is reread from
    /// its blob if a rollback needs it), so a node the base alone froze, the
    /// common case after a checkpoint, moves without a copy; one a reader,
    /// the dirty queue or a write in flight holds is copied at its edit.
    pub fn relocate(&mut self, id: NodeId, node: Arc<Node>) -> NodeId {
        self.store.uncache_moved(id);
        let moved = self.create_shared(node);
        self.discard(id);
        moved
    }

    /// Writes every change to the store, all or nothing.
    ///
    /// # Errors
    /// [`StoreError::Failed`] if the store refuses writes after a background
    /// failure; nothing is applied then. The store's `put`, `set_refcount`
    /// and `free` do not fail for a live id once that check has passed.
    ///
    /// Returns the emptied collections for [`Txn::recycled`], unless they
    /// grew large.
    pub fn apply(mut self) -> Result<Option<Scratch>> {
        if self.taken.is_empty() {
            self.writable()?;
        }
        self.taken.clear();
        let large = self.nodes.capacity().max(self.refcounts.capacity()) > SCRATCH_KEEP
            || self.created.capacity().max(self.freed.capacity()) > SCRATCH_KEEP;
        // Counts first: a new node's row is then made once, with its count,
        // and `put_all` finds it.
        self.store.set_refcounts(self.refcounts.drain())?;
        self.store.put_all(self.nodes.drain())?;
        for id in self.freed.drain() {
            self.store.free(id)?;
        }
        self.created.clear();
        Ok((!large).then(|| Scratch {
            nodes: std::mem::take(&mut self.nodes),
            refcounts: std::mem::take(&mut self.refcounts),
            created: std::mem::take(&mut self.created),
            freed: std::mem::take(&mut self.freed),
            taken: std::mem::take(&mut self.taken),
        }))
    }
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        // Unedited (see take_for_edit): the versions that were there.
        let nodes = &mut self.nodes;
        let back = self
            .taken
            .drain(..)
            .filter_map(|id| nodes.remove(&id).map(|node| (id, node)));
        let _ = self.store.put_all(back);
    }
}
