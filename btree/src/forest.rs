//! The forest: named trees over one node store, and the tree handle.
//!
//! One lock guards the catalog. Writers hold it exclusively for the whole
//! operation, including [`Txn::apply`] and the journaling of the operation,
//! so there is one writer per forest, readers never see half an operation
//! (they share the lock), and the journal holds the operations in the order
//! they were applied.
//!
//! Commits: [`Forest::commit`] appends the journal to the store's commit log
//! as one record with the lock held, then waits for the record to be durable
//! without it. The trees' nodes reach the segments at checkpoints, which the
//! commit starts when the store says one is due. Opening replays the log
//! records after the last checkpoint; dropping the last handle of a forest
//! with nothing uncommitted checkpoints it.

use crate::buffer::Buffer;
use crate::catalog::Catalog;
use crate::check::{self, CheckReport};
use crate::journal::{self, Journal, Op};
use crate::limits::Limits;
use crate::mutate::{Edit, LeafRun, Plan};
use crate::node::{self, leaf_entry_len, Node, Stored, ValueRef, MAX_VALUE_LEN, REF_LEN};
use crate::publish::{Demand, Published};
use crate::range::Range;
use crate::read::{self, Bounds};
use crate::snapshot::{MemoBudget, Snapshot, View};
use crate::txn::{Scratch, Txn};
use crate::{build, mutate, value, Error, Result};
use larix_nodestore::{NodeId, NodeStore, Pin};
use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use std::io::Read;
use std::ops::{Bound, ControlFlow, RangeBounds};
use std::sync::Arc;

pub(crate) struct ForestCore {
    pub(crate) store: NodeStore<Node>,
    /// Locked for writing only through [`ForestCore::write`], whose end
    /// keeps the publication right (R1).
    pub(crate) catalog: RwLock<Catalog>,
    /// The operations since the last log record; locked only with the
    /// catalog locked for writing.
    journal: Mutex<Journal>,
    /// The state of the last checkpoint, from which [`Forest::rollback`]
    /// replays the log to the last commit; locked only with the catalog
    /// locked for writing.
    base: Mutex<Base>,
    /// The collections of the last write set applied, for the next one;
    /// locked only with the catalog locked for writing.
    scratch: Mutex<Option<Scratch>>,
    pub(crate) limits: Limits,
    /// What the views of the forest may keep of the nodes they read.
    pub(crate) memo: MemoBudget,
    /// Most bytes the write buffers hold together (0: batches are applied
    /// at once).
    buffer_limit: usize,
    /// The state the last operation left, if a reader asked for it
    /// (`crate::publish`); locked only for a moment.
    pub(crate) published: Mutex<Option<Arc<Published>>>,
    /// When a reader last asked operations to publish.
    pub(crate) demand: Demand,
}

/// The catalog of the last checkpoint (or of the one the forest opened
/// from), and the pin that keeps every node it reaches as it was (P1, P2),
/// so a rollback can bring it back. Pinned once per checkpoint, not per
/// commit: between checkpoints the writer edits its own new nodes in place.
struct Base {
    catalog: Catalog,
    _pin: Option<Pin<Node>>,
}

/// Journal bytes past which the operations so far are spilled to the log as
/// a record of a group not yet committed, so an uncommitted change of any
/// size takes bounded memory.
const SPILL_BYTES: usize = 1 << 20;

/// Pairs of a batch inserted in one write set (`Tree::insert_runs`): the
/// nodes they edit stay out of the store's dirty queue until the run ends.
const RUN_LEN: usize = 256;

/// Fewest pairs of a batch the write buffer holds: a shorter one is
/// applied at once. Holding it would gain little (it touches few leaves)
/// and would make the tree's next reader take the write lock to apply it
/// (a YCSB-style mix of one-pair updates and reads: mean read latency 6.8
/// µs, 14 with one-pair batches buffered; medians of three runs).
const BUFFER_MIN_PAIRS: usize = 256;

/// A change whose operations take at least one byte per this many bytes of
/// dirty nodes commits by checkpoint rather than by the log.
const OVERFLOW_SHARE: u64 = 4;

impl ForestCore {
    /// Journals `op`, which was just applied (the caller holds the catalog
    /// locked for writing).
    fn record(&self, op: &Op) {
        self.journal.lock().push(op);
    }

    /// Journals the insert of each of `pairs` into tree `name`, as
    /// [`ForestCore::record`].
    fn record_inserts<K: AsRef<[u8]>, V: AsRef<[u8]>>(&self, name: &str, pairs: &[(K, V)]) {
        let mut journal = self.journal.lock();
        for (k, v) in pairs {
            journal.push(&Op::Insert {
                tree: name,
                key: k.as_ref(),
                value: v.as_ref(),
            });
        }
    }

    fn record_removes(&self, name: &str, keys: &[&[u8]]) {
        let mut journal = self.journal.lock();
        for &key in keys {
            journal.push(&Op::Remove { tree: name, key });
        }
    }

    /// Makes `catalog` (the state now, with the catalog locked for
    /// writing) the base a rollback starts from.
    fn set_base(&self, catalog: &Catalog) {
        // The new pin before the old one goes, so nothing the new one
        // keeps is released in between.
        let pin = self.store.pin_cold();
        *self.base.lock() = Base {
            catalog: catalog.clone(),
            _pin: Some(pin),
        };
    }

    /// Checkpoints the state now (a committed one), and makes it the base
    /// of rollbacks. The base moves first: the nodes only the old base
    /// kept are freed, so the checkpoint's compaction sees them dead. (A
    /// failed checkpoint latches the store, which then refuses rollbacks.)
    fn checkpoint(
        &self,
        catalog: &Catalog,
        wait: bool,
    ) -> std::result::Result<(), larix_nodestore::StoreError> {
        debug_assert!(
            !catalog.is_buffered(None),
            "W3: a checkpoint holds no buffer"
        );
        self.set_base(catalog);
        self.store.checkpoint(&catalog.encode(), wait)
    }

    /// Spills the journal to the log if it is past [`SPILL_BYTES`]; called
    /// before an operation is applied, so a failed spill changes nothing.
    ///
    /// A change whose operations reach a [`OVERFLOW_SHARE`]th of the dirty
    /// nodes' bytes stops journaling instead (L6 in `docs/design.md`): its
    /// commit checkpoints, which writes those nodes once, where logging it
    /// would write the change twice (a bulk load: each insert's record is
    /// about as large as its share of the nodes).
    ///
    /// The write buffers are applied first, so that the dirty nodes
    /// weighed include the ones their pairs make.
    fn spill_if_full(&self, catalog: &mut Catalog) -> Result<()> {
        if self.journal.lock().bytes().len() < SPILL_BYTES {
            return Ok(());
        }
        self.settle_all(catalog)?;
        let mut journal = self.journal.lock();
        if journal.bytes().len() >= SPILL_BYTES {
            if journal.change_bytes() * OVERFLOW_SHARE >= self.store.dirty_bytes() {
                journal.overflow();
            } else {
                self.store.log(journal.bytes(), false)?;
                journal.spilled();
            }
        }
        Ok(())
    }

    /// Commits the current state (the caller holds the catalog locked for
    /// writing): appends the journal as a committed log record and returns
    /// its number to make durable, or, for a change that overflowed the
    /// journal, checkpoints and returns `None`.
    fn commit_locked(&self, catalog: &mut Catalog) -> Result<Option<u64>> {
        let store = &self.store;
        if self.journal.lock().overflowed() {
            // Before anything is written: a failure leaves the last commit.
            self.settle_all(catalog)?;
        }
        let mut journal = self.journal.lock();
        if journal.overflowed() {
            self.set_base(catalog);
            // On failure the store is latched, and the change stays
            // overflowed: a close does not checkpoint it.
            store
                .commit_by_checkpoint(&catalog.encode())
                .map_err(after_logging)?;
            journal.reset();
            return Ok(None);
        }
        if journal.is_empty() && !store.log_group_open() {
            return Ok(Some(store.last_lsn()));
        }
        let lsn = store.log(journal.bytes(), true)?;
        journal.reset();
        Ok(Some(lsn))
    }

    /// Inserts `pairs` into tree `name` (sorted, every value inline, the
    /// forest holding no out-of-line value), as many as [`RUN_LEN`] in one
    /// write set: a run takes the root and the index nodes it passes out
    /// of the store once and hands them back once, where one write set per
    /// pair took them and handed them back for each. Only edits in place
    /// join a run (no shared node on the path, the leaf's first key kept):
    /// planned with every read done before the first edit, each cannot
    /// fail once begun, so a failure while planning pair k leaves pairs
    /// before it applied and nothing of pair k. A pair that must copy goes
    /// alone, in a write set of its own, as [`Tree::insert`] would. A pair
    /// that falls in the leaf the pair before it edited, when that edit
    /// changed nothing above the leaf, is put there without a descent
    /// ([`LeafRun`]): applying 50,000 held pairs to a tree of 200,000
    /// (`examples/batches`, about four per leaf) took 218 M instructions
    /// where a descent per pair took 252 M.
    ///
    /// `settling`: the pairs are a write buffer's, journaled already, so
    /// they are not journaled again, the journal is not spilled, and a
    /// store that refuses writes is written to all the same (see
    /// [`Txn::unlatched`]).
    fn insert_runs<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        catalog: &mut Catalog,
        name: &str,
        pairs: &[(K, V)],
        settling: bool,
    ) -> Result<()> {
        let limits = self.limits;
        let mut rest = pairs;
        while !rest.is_empty() {
            if !settling {
                self.spill_if_full(catalog)?;
            }
            let mut root = catalog.root(name)?;
            let scratch = self.scratch.lock().take().unwrap_or_default();
            let mut txn = Txn::recycled(&self.store, scratch).values(false);
            if settling {
                txn = txn.unlatched();
            }
            let mut done = 0;
            let mut failed = None;
            let mut leaf_run: Option<LeafRun> = None;
            for (k, v) in rest.iter().take(RUN_LEN) {
                let (k, v) = (k.as_ref(), v.as_ref());
                // A key in the leaf the last pair edited needs no descent.
                match leaf_run
                    .as_ref()
                    .map(|run| run.put(&mut txn, &limits, k, v))
                {
                    Some(Ok(true)) => {
                        done += 1;
                        continue;
                    }
                    Some(Err(e)) => {
                        failed = Some(e);
                        break;
                    }
                    Some(Ok(false)) | None => {}
                }
                let path = match mutate::plan_in_place(&mut txn, &limits, root, &Edit::Put(k, v)) {
                    Ok(Plan::InPlace(path)) => Some(path),
                    // A copying edit only as the write set's first.
                    Ok(Plan::Copying | Plan::Absent) if done == 0 => None,
                    Ok(Plan::Copying | Plan::Absent) => break,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                };
                let copying = path.is_none();
                leaf_run = match &path {
                    Some(path) => LeafRun::after(&txn, path)?,
                    None => None,
                };
                root = mutate::insert(&mut txn, &limits, root, k, Stored::Inline(v), path)?;
                done += 1;
                if copying {
                    break;
                }
            }
            *self.scratch.lock() = txn.apply()?;
            catalog.set_root(name, root);
            if !settling {
                self.record_inserts(name, &rest[..done]);
            }
            if let Some(e) = failed {
                return Err(e);
            }
            rest = &rest[done..];
        }
        Ok(())
    }

    /// Removes `keys` (sorted, no key twice) from tree `name`, the forest
    /// holding no out-of-line value, in runs as [`ForestCore::insert_runs`]
    /// inserts: a run of up to [`RUN_LEN`] keys in one write set, a key in
    /// the leaf the key before it edited removed without a descent
    /// ([`LeafRun::remove`]), a removal that must copy alone and first in
    /// its write set. Each removal is journaled as [`Tree::remove`]'s; a
    /// key not in the tree changes nothing. Returns how many were there.
    /// A failure while planning key k leaves the keys before it removed
    /// and nothing of key k.
    fn remove_runs<K: AsRef<[u8]>>(
        &self,
        catalog: &mut Catalog,
        name: &str,
        keys: &[K],
    ) -> Result<u64> {
        let limits = self.limits;
        let mut removed = 0;
        let mut rest = keys;
        let mut gone: Vec<&[u8]> = Vec::new();
        while !rest.is_empty() {
            self.spill_if_full(catalog)?;
            let mut root = catalog.root(name)?;
            let scratch = self.scratch.lock().take().unwrap_or_default();
            let mut txn = Txn::recycled(&self.store, scratch).values(false);
            let mut done = 0;
            let mut failed = None;
            let mut leaf_run: Option<LeafRun> = None;
            gone.clear();
            for k in rest.iter().take(RUN_LEN) {
                let k = k.as_ref();
                match leaf_run
                    .as_ref()
                    .map(|run| run.remove(&mut txn, &limits, k))
                {
                    Some(Ok(Some(found))) => {
                        done += 1;
                        if found {
                            gone.push(k);
                        }
                        continue;
                    }
                    Some(Err(e)) => {
                        failed = Some(e);
                        break;
                    }
                    Some(Ok(None)) | None => {}
                }
                let path = match mutate::plan_in_place(&mut txn, &limits, root, &Edit::Remove(k)) {
                    Ok(Plan::InPlace(path)) => Some(path),
                    Ok(Plan::Absent) => {
                        done += 1;
                        continue;
                    }
                    // A copying edit only as the write set's first, where
                    // the store still holds the tree as `root` has it.
                    Ok(Plan::Copying) if gone.is_empty() => {
                        match read::lookup_stored(&self.store, root, k, |_| ()) {
                            Ok(Some(())) => None,
                            Ok(None) => {
                                done += 1;
                                continue;
                            }
                            Err(e) => {
                                failed = Some(e);
                                break;
                            }
                        }
                    }
                    Ok(Plan::Copying) => break,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                };
                let copying = path.is_none();
                leaf_run = match &path {
                    Some(path) => LeafRun::after(&txn, path)?,
                    None => None,
                };
                root = mutate::remove(&mut txn, &limits, root, k, path)?;
                gone.push(k);
                done += 1;
                if copying {
                    break;
                }
            }
            *self.scratch.lock() = txn.apply()?;
            catalog.set_root(name, root);
            self.record_removes(name, &gone);
            removed += gone.len() as u64;
            if let Some(e) = failed {
                return Err(e);
            }
            rest = &rest[done..];
        }
        Ok(removed)
    }

    /// Applies tree `name`'s write buffer to the tree (W3), unjournaled:
    /// its pairs were journaled when buffered. On failure the buffer is
    /// put back whole, so the tree's entries stay those of W1 (pairs
    /// already applied are applied again, to the same effect).
    fn settle(&self, catalog: &mut Catalog, name: &str) -> Result<()> {
        let Some(buffer) = catalog.take_buffer(name) else {
            return Ok(());
        };
        let applied = self.insert_runs(catalog, name, &buffer.sorted(), true);
        if applied.is_err() {
            catalog.put_buffer(name, buffer);
        }
        applied
    }

    /// [`ForestCore::settle`] of every tree.
    pub(crate) fn settle_all(&self, catalog: &mut Catalog) -> Result<()> {
        for name in catalog.buffered_trees() {
            self.settle(catalog, &name)?;
        }
        Ok(())
    }

    /// The catalog locked for sharing, tree `name`'s write buffer (every
    /// tree's, for `None`) applied first (W3).
    ///
    /// # Errors
    /// A store error while applying a buffer.
    pub(crate) fn settled(&self, name: Option<&str>) -> Result<RwLockReadGuard<'_, Catalog>> {
        let catalog = self.catalog.read();
        if !catalog.is_buffered(name) {
            return Ok(catalog);
        }
        drop(catalog);
        let mut catalog = self.write();
        match name {
            Some(name) => self.settle(&mut catalog, name)?,
            None => self.settle_all(&mut catalog)?,
        }
        Ok(catalog.downgrade())
    }
}

impl Drop for ForestCore {
    /// A clean close: with nothing uncommitted, checkpoint what the log
    /// holds, so the next open has nothing to replay.
    fn drop(&mut self) {
        // Its pin first, so that the close's checkpoint frees what only it kept.
        drop(self.published.get_mut().take());
        let clean = self.journal.get_mut().is_empty() && !self.store.log_group_open();
        if clean && self.store.log_since_checkpoint() > 0 {
            let mut catalog = std::mem::take(self.catalog.get_mut());
            if self.settle_all(&mut catalog).is_err() {
                // The log still holds every commit: the next open replays it.
                return;
            }
            let catalog = catalog.encode();
            // Best effort: the log still holds every commit if it fails.
            let _ = self.store.checkpoint(&catalog, true);
        }
    }
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
        let buffer = default_write_buffer(store.cache_bytes());
        Forest::with_write_buffer(store, limits, buffer)
    }

    /// [`Forest::new`], the trees' write buffers holding at most
    /// `buffer_bytes` together (0: every batch is applied at once).
    ///
    /// # Errors
    /// As [`Forest::new`].
    pub fn with_write_buffer(
        store: NodeStore<Node>,
        limits: Limits,
        buffer_bytes: usize,
    ) -> Result<Forest> {
        let catalog = Catalog::decode(&store.committed_catalog())?;
        check_roots(&catalog, &store)?;
        let forest = Forest {
            shared: Arc::new(ForestCore {
                memo: MemoBudget::new(store.cache_bytes()),
                store,
                catalog: RwLock::new(catalog),
                journal: Mutex::new(Journal::default()),
                scratch: Mutex::new(None),
                base: Mutex::new(Base {
                    catalog: Catalog::default(),
                    _pin: None,
                }),
                limits,
                buffer_limit: buffer_bytes,
                published: Mutex::new(None),
                demand: Demand::new(),
            }),
        };
        forest.shared.set_base(&forest.shared.catalog.read());
        forest.replay()?;
        Ok(forest)
    }

    /// Replays the commit log records after the last checkpoint: each
    /// operation again, unjournaled (they are in the log already).
    fn replay(&self) -> Result<()> {
        let mut catalog = self.shared.write();
        self.replay_in(&mut catalog, self.store().replay())
    }

    /// Applies the operations of the log records `records`, unjournaled,
    /// with the catalog the caller holds locked for writing.
    fn replay_in(
        &self,
        catalog: &mut Catalog,
        records: impl Iterator<Item = std::result::Result<Vec<u8>, larix_nodestore::StoreError>>,
    ) -> Result<()> {
        self.shared.journal.lock().paused = true;
        let _replaying = self.store().begin_replay();
        let result = (|| {
            for payload in records {
                let payload = payload?;
                for op in journal::decode(&payload) {
                    self.apply(catalog, op?)?;
                }
            }
            Ok(())
        })();
        self.shared.journal.lock().paused = false;
        result.map_err(|e| match e {
            e @ (Error::Store(_) | Error::CorruptLog(_)) => e,
            other => Error::CorruptLog(format!("replay failed: {other}")),
        })
    }

    /// Applies one journaled operation, with the catalog the caller holds
    /// locked for writing.
    fn apply(&self, catalog: &mut Catalog, op: Op) -> Result<()> {
        let c = catalog;
        match op {
            Op::Insert { tree, key, value } => self.handle(tree).insert_in(c, key, value),
            Op::Remove { tree, key } => self.handle(tree).remove_in(c, key).map(drop),
            Op::RemoveRange { tree, lo, hi } => {
                self.handle(tree).remove_range_in(c, (lo, hi)).map(drop)
            }
            Op::CreateTree { name } => self.create_in(c, name),
            Op::CloneTree { src, dst } => self.clone_in(c, src, dst),
            Op::RemoveTree { name } => self.remove_tree_in(c, name),
        }
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
    /// [`Error::TreeExists`], [`Error::InvalidTreeName`],
    /// [`Error::CatalogFull`], or a store error.
    pub fn create_tree(&self, name: &str) -> Result<Tree> {
        self.create_in(&mut self.shared.write(), name)?;
        Ok(self.handle(name))
    }

    /// [`Forest::create_tree`], with the catalog the caller holds locked
    /// for writing.
    fn create_in(&self, catalog: &mut Catalog, name: &str) -> Result<()> {
        Catalog::validate_name(name)?;
        if catalog.contains(name) {
            return Err(Error::TreeExists { name: name.into() });
        }
        catalog.make_room(name)?;
        self.shared.spill_if_full(catalog)?;
        let mut txn = Txn::new(&self.shared.store);
        // Refcount 1: the new tree's root reference (B4).
        let root = txn.create(Node::new_leaf());
        txn.apply()?;
        catalog.set_root(name, root);
        self.shared.record(&Op::CreateTree { name });
        Ok(())
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
    /// [`Error::InvalidTreeName`], [`Error::CatalogFull`], or a store error.
    pub fn clone_tree(&self, src: &str, dst: &str) -> Result<Tree> {
        self.clone_in(&mut self.shared.write(), src, dst)?;
        Ok(self.handle(dst))
    }

    /// [`Forest::clone_tree`], with the catalog held as for
    /// [`Forest::create_in`].
    fn clone_in(&self, catalog: &mut Catalog, src: &str, dst: &str) -> Result<()> {
        Catalog::validate_name(dst)?;
        catalog.root(src)?;
        if catalog.contains(dst) {
            return Err(Error::TreeExists { name: dst.into() });
        }
        catalog.make_room(dst)?;
        // The clone shares the source's nodes: its buffer goes into them.
        self.shared.settle(catalog, src)?;
        let root = catalog.root(src)?;
        self.shared.spill_if_full(catalog)?;
        let mut txn = Txn::new(&self.shared.store);
        // The clone's root reference (B4).
        txn.incref(root)?;
        txn.apply()?;
        catalog.set_root(dst, root);
        self.shared.record(&Op::CloneTree { src, dst });
        Ok(())
    }

    /// Removes tree `name`, freeing the nodes no other tree shares.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error (the tree then stays).
    pub fn remove_tree(&self, name: &str) -> Result<()> {
        self.remove_tree_in(&mut self.shared.write(), name)
    }

    /// [`Forest::remove_tree`], with the catalog held as for
    /// [`Forest::create_in`].
    fn remove_tree_in(&self, catalog: &mut Catalog, name: &str) -> Result<()> {
        let root = catalog.root(name)?;
        self.shared.spill_if_full(catalog)?;
        let mut txn = Txn::new(&self.shared.store).values(catalog.has_values());
        // Drops the tree's root reference (B4), freeing what no other tree
        // shares.
        txn.decref(root)?;
        txn.apply()?;
        catalog.remove(name)?;
        self.shared.record(&Op::RemoveTree { name });
        Ok(())
    }

    /// Memory held by the trees' write buffers: pairs of batches not yet
    /// applied to their trees (`docs/design.md`, "Write buffer").
    pub fn write_buffer_bytes(&self) -> usize {
        self.shared.catalog.read().buffered_bytes()
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

    /// Every tree as it is now (committed or not), readable beside the
    /// writer without any forest-wide lock; nothing done later changes
    /// what it shows. Beside an operation, the trees as the last one left
    /// them: its publication, if it published (`crate::publish`), else
    /// once this one ends.
    ///
    /// # Errors
    /// A store error while applying a write buffer (W3).
    pub fn snapshot(&self) -> Result<Snapshot> {
        let current = self.shared.current(None)?;
        Ok(Snapshot::new(current.pin(&self.shared, current.trees())))
    }

    /// Returns every tree to the last commit: trees created, cloned,
    /// changed or removed since come back as they were then, and the
    /// nodes made since are freed. Snapshots taken meanwhile keep showing
    /// what they showed.
    ///
    /// The trees go back to the last checkpoint, which is pinned (P1, P2),
    /// and the commit log since it is replayed: the cost follows the log
    /// since the checkpoint, not the change undone.
    ///
    /// # Errors
    /// A store error before anything is undone (the forest is then
    /// unchanged: reading the log is one of them), or
    /// [`larix_nodestore::StoreError::ReadOnly`]. A failure while
    /// replaying the log's operations (reading a node) is latched: the forest then refuses writes
    /// until it is reopened, and the last commit stays on disk.
    pub fn rollback(&self) -> Result<()> {
        let store = &self.shared.store;
        store.writable()?;
        let mut catalog = self.shared.write();
        let records = {
            let mut journal = self.shared.journal.lock();
            if journal.is_empty() && !store.log_group_open() {
                return Ok(());
            }
            // Read first, so that a failing read of the log changes nothing
            // (at most the checkpoint policy's log size in memory).
            let records = store
                .replay_since_checkpoint()
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let base = self.shared.base.lock();
            let mut txn = Txn::new(store).values(catalog.has_values());
            // The base's roots first, so what both states share keeps its
            // references (B4).
            for (_, root) in base.catalog.iter() {
                txn.revive(root)?;
            }
            for (_, root) in catalog.iter() {
                txn.decref(root)?;
            }
            txn.apply()?;
            *catalog = base.catalog.clone();
            journal.reset();
            // Spilled records of the change rolled back are never replayed
            // (L2): the next record starts a group of its own.
            store.abort_log_group();
            records
        };
        let replayed = self.replay_in(&mut catalog, records.into_iter().map(Ok));
        replayed.map_err(|e| {
            let cause = larix_nodestore::StoreError::Io {
                file: "commit log".into(),
                source: std::io::Error::other(format!("rollback could not replay the log: {e}")),
            };
            Error::Store(store.fail(cause))
        })
    }

    /// Makes the current state of every tree the committed one.
    ///
    /// # Errors
    /// A store error; the previous commit then stays in force.
    pub fn commit(&self) -> Result<()> {
        self.shared.store.writable()?;
        let lsn = {
            let mut catalog = self.shared.write();
            let Some(lsn) = self.shared.commit_locked(&mut catalog)? else {
                return Ok(());
            };
            // A buffer that cannot be applied leaves the checkpoint for
            // later: the log holds the commit.
            if self.shared.store.checkpoint_due() && self.shared.settle_all(&mut catalog).is_ok() {
                self.shared
                    .checkpoint(&catalog, false)
                    .map_err(after_logging)?;
            }
            lsn
        };
        // Readers and writers go on while the record is made durable.
        self.shared.store.sync_log(lsn).map_err(after_logging)?;
        // A writer that outruns the checkpoint thread waits for it. The
        // commit is durable: a checkpoint that fails meanwhile is latched
        // and refuses the next operation, not this one.
        if self.shared.store.checkpoint_overdue() {
            let _ = self.shared.store.wait_checkpoint();
        }
        Ok(())
    }

    /// Commits, then makes the current state of every tree a checkpoint
    /// and waits for it: the log before it is dropped.
    ///
    /// # Errors
    /// A store error; the previous checkpoint and the log then stay in
    /// force.
    pub fn checkpoint(&self) -> Result<()> {
        self.shared.store.writable()?;
        let mut catalog = self.shared.write();
        self.shared.settle_all(&mut catalog)?;
        if self.shared.commit_locked(&mut catalog)?.is_some() {
            self.shared
                .checkpoint(&catalog, true)
                .map_err(after_logging)?;
        }
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
        self.shared.store.writable()?;
        let mut catalog = self.shared.write();
        self.shared.settle_all(&mut catalog)?;
        // A change committed by checkpoint has reached the segments already.
        let logged = self.shared.commit_locked(&mut catalog)?.is_some();
        let store = &self.shared.store;
        let copied = (|| {
            // Every change first reaches the segments, so that they are
            // judged by what is live after it, not before.
            if logged {
                self.shared.checkpoint(&catalog, true)?;
            }
            let copied = store.compact(max_live_ratio, max_bytes)?;
            self.shared.checkpoint(&catalog, true)?;
            Ok(copied)
        })()
        .map_err(after_logging)?;
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

    /// Runs one read with the catalog locked for sharing.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&NodeStore<Node>, NodeId) -> Result<T>,
    ) -> Result<T> {
        let current = self.shared.current(Some(&self.name))?;
        let root = current.root(&self.name)?;
        f(&self.shared.store, root)
    }

    /// Runs one write through a fresh [`Txn`]; applies it, moves the root
    /// and journals `op` (if `changed` says the write changed anything)
    /// only if `f` succeeds, with the catalog the caller holds locked for
    /// writing.
    fn write<T>(
        &self,
        catalog: &mut Catalog,
        op: Op,
        changed: impl FnOnce(&T) -> bool,
        f: impl FnOnce(&mut Txn, NodeId) -> Result<(NodeId, T)>,
    ) -> Result<T> {
        self.shared.settle(catalog, &self.name)?;
        let root = catalog.root(&self.name)?;
        self.shared.spill_if_full(catalog)?;
        let scratch = self.shared.scratch.lock().take().unwrap_or_default();
        let mut txn = Txn::recycled(&self.shared.store, scratch).values(catalog.has_values());
        let (new_root, out) = f(&mut txn, root)?;
        *self.shared.scratch.lock() = txn.apply()?;
        catalog.set_root(&self.name, new_root);
        if changed(&out) {
            self.shared.record(&op);
        }
        Ok(out)
    }

    /// Inserts `key` with `value`, replacing any value it had. A value too
    /// large for a leaf entry is stored out of line, in chunks (see
    /// [`Tree::insert_reader`]).
    ///
    /// # Errors
    /// [`Error::KeyTooLarge`], [`Error::ValueTooLarge`],
    /// [`Error::TreeNotFound`], or a store error; on error the tree is
    /// unchanged.
    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut catalog = self.shared.write();
        if self.check_entry(key, value.len() as u64)? {
            return self.insert_in(&mut catalog, key, value);
        }
        self.insert_out(&mut catalog, key, &mut &value[..], value.len() as u64)
    }

    /// Inserts `key` with the `len` bytes `source` yields as its value,
    /// replacing any value it had, without holding the value in memory
    /// whole: a value too large for a leaf entry is written chunk by chunk
    /// as it is read. Like every change, uncommitted until
    /// [`Forest::commit`]; a change that stores a value out of line commits
    /// by checkpoint (its chunks are written once, to the segments, never
    /// to the log).
    ///
    /// # Errors
    /// [`Error::KeyTooLarge`], [`Error::ValueTooLarge`],
    /// [`Error::ValueSource`] if `source` fails or ends before `len` bytes,
    /// [`Error::TreeNotFound`], or a store error; on error the tree and
    /// the store are unchanged.
    pub fn insert_reader(&self, key: &[u8], source: impl Read, len: u64) -> Result<()> {
        let mut source = source;
        let mut catalog = self.shared.write();
        if self.check_entry(key, len)? {
            let mut value = vec![0u8; len as usize];
            source.read_exact(&mut value).map_err(Error::ValueSource)?;
            return self.insert_in(&mut catalog, key, &value);
        }
        self.insert_out(&mut catalog, key, &mut source, len)
    }

    /// Checks `key` and a value of `len` bytes against the limits: the key
    /// at most [`Limits::max_key`], the value at most [`MAX_VALUE_LEN`].
    /// Returns whether the pair fits a leaf entry (else the value goes out
    /// of line).
    fn check_entry(&self, key: &[u8], len: u64) -> Result<bool> {
        let limits = self.shared.limits;
        if key.len() > limits.max_key() {
            return Err(Error::KeyTooLarge {
                key_len: key.len(),
                limit: limits.max_key(),
            });
        }
        if len > MAX_VALUE_LEN {
            return Err(Error::ValueTooLarge {
                value_len: len,
                limit: MAX_VALUE_LEN,
            });
        }
        Ok(key.len() as u64 + len <= limits.max_entry() as u64)
    }

    fn insert_in(&self, catalog: &mut Catalog, key: &[u8], value: &[u8]) -> Result<()> {
        let op = Op::Insert {
            tree: &self.name,
            key,
            value,
        };
        self.write(
            catalog,
            op,
            |_| true,
            |txn, root| self.put(txn, root, key, Stored::Inline(value)),
        )
    }

    /// Writes the value `source` yields out of line and points `key` at
    /// it. The change is no longer journaled: it commits by checkpoint
    /// (L7 in `docs/design.md`).
    fn insert_out(
        &self,
        catalog: &mut Catalog,
        key: &[u8],
        source: &mut dyn Read,
        len: u64,
    ) -> Result<()> {
        catalog.root(&self.name)?;
        // W2: no buffer outlives the forest's first out-of-line value.
        self.shared.settle_all(catalog)?;
        self.shared.spill_if_full(catalog)?;
        let store = &self.shared.store;
        let (r, nodes) = value::write(store, source, len)?;
        self.shared.journal.lock().overflow();
        catalog.mark_values();
        let op = Op::Insert {
            tree: &self.name,
            key,
            value: &[],
        };
        let stored = Stored::Out(r);
        let done = self.write(
            catalog,
            op,
            |_| true,
            |txn, root| self.put(txn, root, key, stored),
        );
        if done.is_err() {
            // The value's nodes are the writer's own, referenced by nothing
            // (freed even by a store that refuses writes after a failure).
            for id in nodes {
                let _ = store.free(id);
            }
        }
        done
    }

    /// Points `key` at `stored` in the tree at `root`, dropping the
    /// reference of the value it replaces, if that was out of line.
    fn put(&self, txn: &mut Txn, root: NodeId, key: &[u8], stored: Stored) -> Result<(NodeId, ())> {
        let limits = self.shared.limits;
        let raw = match stored {
            Stored::Inline(v) => v,
            Stored::Out(_) => &[0u8; REF_LEN][..],
        };
        let path = match mutate::plan_in_place(txn, &limits, root, &Edit::Put(key, raw))? {
            Plan::InPlace(path) => Some(path),
            Plan::Copying | Plan::Absent => None,
        };
        let old = match &path {
            Some(path) => path.replaced(txn)?,
            None => self.old_value(txn, root, key)?,
        };
        if let (Some(r), Some(_)) = (old, &path) {
            txn.prefetch_value(r)?;
        }
        let root = mutate::insert(txn, &limits, root, key, stored, path)?;
        if let Some(r) = old {
            txn.decref_value(r)?;
        }
        Ok((root, ()))
    }

    /// The out-of-line value `key`'s entry references, if it does; `None`
    /// without reading anything while the forest holds no out-of-line
    /// value. Its reference is dropped after the edit that overwrites or
    /// removes the entry: a shared leaf is copied first, and the copy
    /// holds a reference of its own (B4). The edit in place reads nothing
    /// after its first change, so [`Txn::prefetch_value`] reads before it
    /// what the drop needs.
    fn old_value(&self, txn: &Txn, root: NodeId, key: &[u8]) -> Result<Option<ValueRef>> {
        if !txn.has_values() {
            return Ok(None);
        }
        let old = read::lookup_stored(&self.shared.store, root, key, |s| match s {
            Stored::Out(r) => Some(r),
            Stored::Inline(_) => None,
        })?;
        Ok(old.flatten())
    }

    /// The value of `key`.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_with(key, <[u8]>::to_vec)
    }

    /// `f` of the value of `key`, borrowed where the tree holds it: no
    /// copy of the value is made.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error.
    pub fn get_with<T>(&self, key: &[u8], f: impl FnOnce(&[u8]) -> T) -> Result<Option<T>> {
        self.read(|store, root| read::lookup(store, root, key, f))
    }

    /// A reader over the value of `key` as it is now ([`Read`] and
    /// [`std::io::Seek`]), for a value that should not sit in memory
    /// whole: an out-of-line value is read chunk by chunk. The reader keeps
    /// the value as it was (a snapshot of the tree) while it lives.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error.
    pub fn get_reader(&self, key: &[u8]) -> Result<Option<crate::ValueReader>> {
        self.view()?.get_reader(key)
    }

    /// Calls `f` on each entry within `range` of the tree as it is now (a
    /// snapshot of it, as for [`Tree::range`]), in key order, its key and
    /// value borrowed: no allocation per entry. Stops when `f` returns
    /// [`ControlFlow::Break`]; returns the number of entries `f` was called
    /// on.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error.
    pub fn scan<'a, R: RangeBounds<&'a [u8]>>(
        &self,
        range: R,
        f: impl FnMut(&[u8], &[u8]) -> ControlFlow<()>,
    ) -> Result<u64> {
        self.view()?.scan(range, f)
    }

    /// Inserts or replaces every pair of `pairs`, with the forest's lock
    /// taken once, in key order (for a pair whose key comes twice, the
    /// later one wins, as with one insert after the other). Like
    /// [`Tree::insert`], uncommitted until [`Forest::commit`].
    ///
    /// # Errors
    /// [`Error::KeyTooLarge`] or [`Error::ValueTooLarge`] for the first pair
    /// over a limit, before
    /// anything is inserted; [`Error::TreeNotFound`], or a store error,
    /// which leaves the pairs before the failing one inserted (a
    /// [`Forest::rollback`] undoes them all).
    ///
    /// A batch of at least 1 MiB into an empty tree, with every value small
    /// enough for a leaf, is built bottom up instead, each node written
    /// once and filled to about 7/8 of the node size; a store error then
    /// leaves the tree empty. Its commit is a checkpoint (`docs/design.md`,
    /// "Bulk build").
    ///
    /// Any other batch of at least 256 pairs, every value inline and no
    /// out-of-line value in the forest, is journaled and held in the
    /// tree's write buffer, within the forest's limit, and applied with
    /// the buffer by the tree's next read or other write (W1-W3 in
    /// `docs/design.md`, "Write buffer"): no node is read or written
    /// until then. A store error then comes from the operation that
    /// applies it.
    pub fn insert_batch<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<()> {
        let pairs: Vec<(K, V)> = pairs.into_iter().collect();
        let (mut inline, mut bytes) = (true, 0);
        for (k, v) in &pairs {
            let (k, v) = (k.as_ref(), v.as_ref());
            inline &= self.check_entry(k, v.len() as u64)?;
            bytes += leaf_entry_len(k, v);
        }
        let pairs = sort_pairs(pairs);
        let mut catalog = self.shared.write();
        let bulk = inline && bytes >= SPILL_BYTES;
        if bulk && !catalog.is_buffered(Some(&self.name)) && self.is_empty_in(&catalog)? {
            return self.build_in(&mut catalog, pairs);
        }
        // W2
        if inline && !catalog.has_values() {
            if self.buffer_in(&mut catalog, &pairs)? {
                return Ok(());
            }
            self.shared.settle(&mut catalog, &self.name)?;
            return self
                .shared
                .insert_runs(&mut catalog, &self.name, &pairs, false);
        }
        for (k, v) in &pairs {
            let (k, v) = (k.as_ref(), v.as_ref());
            if self.check_entry(k, v.len() as u64)? {
                self.insert_in(&mut catalog, k, v)?;
            } else {
                self.insert_out(&mut catalog, k, &mut &v[..], v.len() as u64)?;
            }
        }
        Ok(())
    }

    /// Holds `pairs` (sorted, every value inline) in the tree's write
    /// buffer, journaled, if they are at least [`BUFFER_MIN_PAIRS`] and
    /// fit within the forest's limit; applies every buffer first if they
    /// do not fit beside them. Returns whether it holds them.
    fn buffer_in<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        catalog: &mut Catalog,
        pairs: &[(K, V)],
    ) -> Result<bool> {
        catalog.root(&self.name)?;
        // A store that refuses writes refuses buffered ones too.
        self.shared.store.writable()?;
        if pairs.len() < BUFFER_MIN_PAIRS {
            return Ok(false);
        }
        let limit = self.shared.buffer_limit;
        let bytes = Buffer::cost(pairs);
        // A batch's offsets are 32-bit (`Buffer::push_batch`).
        if bytes > limit || bytes > u32::MAX as usize {
            return Ok(false);
        }
        if catalog.buffered_bytes() + bytes > limit {
            self.shared.settle_all(catalog)?;
        }
        self.shared.spill_if_full(catalog)?;
        catalog.buffer_mut(&self.name).push_batch(pairs);
        self.shared.record_inserts(&self.name, pairs);
        Ok(true)
    }

    /// Whether the tree holds nothing: its root is an empty leaf.
    fn is_empty_in(&self, catalog: &Catalog) -> Result<bool> {
        let root = self.shared.store.get(catalog.root(&self.name)?)?;
        Ok(root.is_leaf() && root.is_empty())
    }

    /// Replaces the empty tree with one built bottom up from `pairs`
    /// (sorted; for equal keys the last wins), each node written once
    /// (`build`). Such a batch would outgrow the journal anyway (L6 in
    /// `docs/design.md`: its records would be as large as its nodes), so it
    /// is not journaled: the change commits by checkpoint.
    fn build_in<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        catalog: &mut Catalog,
        mut pairs: Vec<(K, V)>,
    ) -> Result<()> {
        dedup_last(&mut pairs);
        let store = &self.shared.store;
        let old = catalog.root(&self.name)?;
        let root = build::build(store, &self.shared.limits, &pairs)?;
        let mut txn = Txn::new(store).values(catalog.has_values());
        let dropped = txn.decref(old).and_then(|()| txn.apply());
        if let Err(e) = dropped {
            let mut txn = Txn::new(store).values(false);
            let _ = txn.decref(root).and_then(|()| txn.apply());
            return Err(e);
        }
        self.shared.journal.lock().overflow();
        catalog.set_root(&self.name, root);
        Ok(())
    }

    /// Removes `key`; returns whether it was there.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error; on error the tree is
    /// unchanged.
    pub fn remove(&self, key: &[u8]) -> Result<bool> {
        self.remove_in(&mut self.shared.write(), key)
    }

    fn remove_in(&self, catalog: &mut Catalog, key: &[u8]) -> Result<bool> {
        let limits = self.shared.limits;
        let op = Op::Remove {
            tree: &self.name,
            key,
        };
        self.write(
            catalog,
            op,
            |&existed| existed,
            |txn, root| {
                let (path, old) =
                    match mutate::plan_in_place(txn, &limits, root, &Edit::Remove(key))? {
                        Plan::Absent => return Ok((root, false)),
                        Plan::InPlace(path) => {
                            let old = path.replaced(txn)?;
                            (Some(path), old)
                        }
                        Plan::Copying => {
                            let found =
                                read::lookup_stored(&self.shared.store, root, key, |s| match s {
                                    Stored::Out(r) => Some(r),
                                    Stored::Inline(_) => None,
                                })?;
                            match found {
                                None => return Ok((root, false)),
                                Some(old) => (None, old),
                            }
                        }
                    };
                if let (Some(r), Some(_)) = (old, &path) {
                    txn.prefetch_value(r)?;
                }
                let root = mutate::remove(txn, &limits, root, key, path)?;
                if let Some(r) = old {
                    txn.decref_value(r)?;
                }
                Ok((root, true))
            },
        )
    }

    /// Removes every key of `keys` that the tree holds, with the forest's
    /// lock taken once, in key order; returns how many were there. Like
    /// [`Tree::remove`], uncommitted until [`Forest::commit`]. Keys in the
    /// same leaf are removed one after the other without a descent from
    /// the root for each (where the forest holds no out-of-line value).
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error, which leaves the keys
    /// before the failing one (in key order) removed (a
    /// [`Forest::rollback`] undoes them all).
    pub fn remove_batch<K: AsRef<[u8]>>(&self, keys: impl IntoIterator<Item = K>) -> Result<u64> {
        let mut keys: Vec<K> = keys.into_iter().collect();
        keys.sort_unstable_by(|a, b| a.as_ref().cmp(b.as_ref()));
        keys.dedup_by(|a, b| a.as_ref() == b.as_ref());
        let mut catalog = self.shared.write();
        if keys.is_empty() {
            // Nothing to remove: the write buffer stays held.
            catalog.root(&self.name)?;
            return Ok(0);
        }
        // W3: buffered pairs first.
        self.shared.settle(&mut catalog, &self.name)?;
        if !catalog.has_values() {
            return self.shared.remove_runs(&mut catalog, &self.name, &keys);
        }
        let mut removed = 0;
        for key in &keys {
            removed += u64::from(self.remove_in(&mut catalog, key.as_ref())?);
        }
        Ok(removed)
    }

    /// The changes that turn this tree into `other`, in key order: keys
    /// only here (`new` is `None`), only in `other` (`old` is `None`), or
    /// with another value there. A subtree both trees share (a clone's
    /// untouched nodes) is never read, so the cost follows the change.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`] for either tree, or a store error while
    /// applying a write buffer (W3); the iterator yields store errors.
    pub fn diff(&self, other: &Tree) -> Result<crate::Diff> {
        if !Arc::ptr_eq(&self.shared, &other.shared) {
            return Ok(crate::Diff::new(self.view()?, other.view()?));
        }
        // One pin for both, so they are compared as of one moment.
        let current = self.shared.current(None)?;
        let (a, b) = (current.root(&self.name)?, current.root(&other.name)?);
        let trees = [(self.name.to_string(), a), (other.name.to_string(), b)];
        let pinned = current.pin(&self.shared, trees);
        Ok(crate::Diff::new(
            View::new(pinned.clone(), &self.name, a),
            View::new(pinned, &other.name, b),
        ))
    }

    /// The entries within `range`, in key order; double-ended.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error while applying the tree's
    /// write buffer (W3); the iterator yields store errors.
    pub fn range<'a, R: RangeBounds<&'a [u8]>>(&self, range: R) -> Result<Range> {
        Ok(Range::new(self.view()?, Bounds::from_range(&range)))
    }

    /// The tree as it is now, pinned: a snapshot of this tree alone.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error while applying the tree's
    /// write buffer (W3).
    pub fn view(&self) -> Result<View> {
        let current = self.shared.current(Some(&self.name))?;
        let root = current.root(&self.name)?;
        let pinned = current.pin(&self.shared, [(self.name.to_string(), root)]);
        Ok(View::new(pinned, &self.name, root))
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
        self.read(|store, root| read::is_empty(store, root, &bounds))
    }

    /// Removes every entry within `range`; returns how many there were.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error; on error the tree is
    /// unchanged.
    pub fn remove_range<'a, R: RangeBounds<&'a [u8]>>(&self, range: R) -> Result<u64> {
        self.remove_range_in(&mut self.shared.write(), range)
    }

    fn remove_range_in<'a, R: RangeBounds<&'a [u8]>>(
        &self,
        catalog: &mut Catalog,
        range: R,
    ) -> Result<u64> {
        let limits = self.shared.limits;
        let bounds = Bounds::from_range(&range);
        let op = Op::RemoveRange {
            tree: &self.name,
            lo: borrow_bound(range.start_bound()),
            hi: borrow_bound(range.end_bound()),
        };
        self.write(
            catalog,
            op,
            |&n| n > 0,
            |txn, mut root| {
                let store = &self.shared.store;
                let (keys, values) = read::keys(store, root, &bounds, txn.has_values())?;
                for key in &keys {
                    root = mutate::remove(txn, &limits, root, key, None)?;
                }
                // After the removals, which copy shared leaves (and so add
                // references to their values) and edit nothing in place.
                for r in values {
                    txn.decref_value(r)?;
                }
                Ok((root, keys.len() as u64))
            },
        )
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

/// The bytes a forest over a store of `cache_bytes` lets its write buffers
/// hold, together, unless told otherwise: a sixteenth of the cache, at
/// most 64 MiB.
fn default_write_buffer(cache_bytes: usize) -> usize {
    (cache_bytes / 16).min(64 << 20)
}

/// Keeps one pair of each run of equal keys in sorted `pairs`: the last
/// (the first stays in place and takes the last's pair).
pub(crate) fn dedup_last<K: AsRef<[u8]>, V>(pairs: &mut Vec<(K, V)>) {
    pairs.dedup_by(|later, kept| {
        let equal = later.0.as_ref() == kept.0.as_ref();
        if equal {
            std::mem::swap(later, kept);
        }
        equal
    });
}

/// `pairs` in key order, equal keys in the order given (so that the later
/// pair wins). Sorts the keys' first eight bytes as integers, with their
/// positions, and compares whole keys only where those tie: a sort of the
/// pairs themselves would follow two pointers per comparison. Input
/// already in order is returned as it is; otherwise the integers are
/// sorted unstably (their positions make them distinct): on the random
/// batches of `examples/batches` the stable sort, which merges runs
/// already in order, took a third more instructions, and even on a write
/// buffer's sorted batches it saved little (3 M of 218 M applying 50,000
/// held pairs).
pub(crate) fn sort_pairs<K: AsRef<[u8]>, V>(pairs: Vec<(K, V)>) -> Vec<(K, V)> {
    if pairs.is_sorted_by(|a, b| a.0.as_ref() <= b.0.as_ref()) {
        return pairs;
    }
    let mut order: Vec<(u64, usize)> = pairs
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (node::prefix(k.as_ref()), i))
        .collect();
    // By head, then position: a total order, so an unstable sort keeps
    // equal keys in the order given. Keys that share a head (rare but for
    // long common prefixes) are then ordered by the whole key.
    order.sort_unstable();
    for run in order.chunk_by_mut(|a, b| a.0 == b.0) {
        if run.len() > 1 {
            run.sort_unstable_by(|a, b| {
                pairs[a.1]
                    .0
                    .as_ref()
                    .cmp(pairs[b.1].0.as_ref())
                    .then(a.1.cmp(&b.1))
            });
        }
    }
    let mut slots: Vec<Option<(K, V)>> = pairs.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|(_, i)| slots[i].take())
        .collect()
}

/// A range bound over `&[u8]`, borrowed from one over `&&[u8]`.
fn borrow_bound<'a>(b: Bound<&&'a [u8]>) -> Bound<&'a [u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k),
        Bound::Excluded(k) => Bound::Excluded(k),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// A store error met after this call appended to the log: even a refusal
/// (a failure latched meanwhile) is then a failed commit, whose record may
/// still land, and not a commit refused before it wrote anything.
fn after_logging(e: larix_nodestore::StoreError) -> Error {
    use larix_nodestore::StoreError;
    match e {
        StoreError::Failed(cause) => Error::Store(StoreError::CommitFailed(cause)),
        other => Error::Store(other),
    }
}

/// Refuses a committed catalog that names a root the node table does not
/// hold: at a checkpoint every root is live (B4), so such a root was
/// crafted or damaged, and taken at its word it would alias the next node
/// allocated, a node of another tree.
///
/// # Errors
/// [`Error::CorruptCatalog`] naming the tree and the id.
fn check_roots(catalog: &Catalog, store: &NodeStore<Node>) -> Result<()> {
    for (name, root) in catalog.iter() {
        if store.refcount(root).is_err() {
            return Err(Error::CorruptCatalog(format!(
                "tree {name:?} has root {root}, which is no live node"
            )));
        }
    }
    Ok(())
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

    /// A forest of 256-byte nodes with tree "a" holding `key(0..n)`.
    fn small_tree(n: u32) -> (Forest, Tree) {
        let f = Forest::new(NodeStore::in_memory(), Limits::new(256).unwrap()).unwrap();
        let t = f.create_tree("a").unwrap();
        for i in 0..n {
            t.insert(&key(i), b"v").unwrap();
        }
        (f, t)
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
    fn sorted_pairs_match_a_stable_sort_of_the_whole_keys() {
        // Keys that tie in their first eight bytes, keys shorter than
        // eight bytes and keys ending in zeros (which pad the same), each
        // given more than once, tagged with their position.
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for len in [0, 3, 8, 12] {
            let pairs: Vec<(Vec<u8>, usize)> = (0..2_000)
                .map(|i| {
                    let mut k = b"prefix--".to_vec();
                    k.truncate(len.min(8));
                    let extra = next() as usize % 4;
                    k.extend((0..extra).map(|_| [0u8, 1, b'a'][next() as usize % 3]));
                    (k, i)
                })
                .collect();
            let mut expected = pairs.clone();
            expected.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(sort_pairs(pairs), expected, "prefix length {len}");
        }
        let sorted: Vec<(Vec<u8>, usize)> = (0..100).map(|i| (key(i), i as usize)).collect();
        assert_eq!(sort_pairs(sorted.clone()), sorted);
    }

    #[test]
    fn a_read_failure_midway_changes_nothing() {
        let (f, _) = small_tree(300);
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

    /// `n` random 24-byte keys (xorshift from `seed`).
    fn random_keys(n: usize, seed: u64) -> Vec<[u8; 24]> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                let mut k = [0u8; 24];
                for chunk in k.chunks_mut(8) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    chunk.copy_from_slice(&x.to_le_bytes());
                }
                k
            })
            .collect()
    }

    /// The average encoded entry of the level above the leaves, in bytes.
    fn index_entry_bytes(t: &Tree) -> f64 {
        let shape = t.shape().unwrap();
        let level = shape.levels[1];
        (level.bytes - level.nodes * crate::node::NODE_HEADER_LEN as u64) as f64
            / level.entries as f64
    }

    #[test]
    fn leaves_are_entered_under_the_shortest_keys_between_them() {
        // 30,000 random 24-byte keys: neighbouring leaves differ within the
        // first three bytes, so their index entries (a length byte, the key
        // and an 8-byte child id) take about 12 bytes, where whole keys take
        // 33. One by one (splits and, after removals, merges and shares)
        // and in one batch (the bulk build).
        let keys = random_keys(30_000, 7);
        let f = Forest::new(NodeStore::in_memory(), Limits::new(4096).unwrap()).unwrap();
        let one = f.create_tree("one").unwrap();
        for k in &keys {
            one.insert(k, b"value").unwrap();
        }
        let batch = f.create_tree("batch").unwrap();
        batch
            .insert_batch(keys.iter().map(|k| (k, b"value")))
            .unwrap();
        for t in [&one, &batch] {
            let bytes = index_entry_bytes(t);
            assert!(bytes < 14.0, "{bytes} bytes per index entry");
        }
        for k in keys.iter().step_by(3) {
            one.remove(k).unwrap();
            batch.remove(k).unwrap();
        }
        let report = f.check();
        assert!(report.is_clean(), "{report}");
        for (i, k) in keys.iter().enumerate() {
            let want = (i % 3 != 0).then(|| b"value".to_vec());
            assert_eq!(one.get(k).unwrap(), want);
            assert_eq!(batch.get(k).unwrap(), want);
        }
    }

    #[test]
    fn the_checker_finds_index_keys_outside_their_children() {
        let (f, _) = small_tree(300);
        assert!(f.check().is_clean());
        let all = leaves(&f, "a");
        let parent_of_leaves = |f: &Forest| {
            let mut id = f.shared.catalog.read().root("a").unwrap();
            loop {
                let node = f.store().get(id).unwrap();
                if node.level() == 1 {
                    return (id, node);
                }
                id = node.child(0);
            }
        };
        let (parent, node) = parent_of_leaves(&f);
        let (first, second) = (
            f.store().get(all[0]).unwrap(),
            f.store().get(all[1]).unwrap(),
        );
        let restore = node.clone();
        // A key above the second leaf's smallest key.
        let mut above = second.key(0).to_vec();
        above.push(0xff);
        // A key not above the first leaf's largest key.
        let below = first.key(first.len() - 1).to_vec();
        type Found = fn(&check::Problem) -> bool;
        let cases: [(Vec<u8>, Found); 2] = [
            (above, |p| matches!(p, check::Problem::IndexKey { .. })),
            (below, |p| matches!(p, check::Problem::OutOfRange { .. })),
        ];
        for (bad, expected) in cases {
            let mut n = (*node).clone();
            n.set_key(1, &bad);
            f.store().put(parent, Arc::new(n)).unwrap();
            let report = f.check();
            assert_eq!(report.problems.len(), 1, "{report}");
            assert!(expected(&report.problems[0]), "{report}");
            assert_eq!(report.problems[0].invariant(), "B1");
        }
        f.store().put(parent, restore).unwrap();
        assert!(f.check().is_clean());
    }

    #[test]
    fn separators_stay_bounds_through_merges_and_shares() {
        // Small nodes and keys that share long prefixes in bunches, inserted
        // and removed at random: leaves and index nodes split, merge and
        // share over and over, with separators of every length; the tree
        // must match a model and pass the check throughout.
        let f = Forest::new(NodeStore::in_memory(), Limits::new(256).unwrap()).unwrap();
        let t = f.create_tree("t").unwrap();
        let mut model = std::collections::BTreeMap::new();
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..6_000 {
            let dir = next() % 7;
            let name = next() % 300;
            let key = format!("dir{dir}/{}/file{name}", "sub".repeat((dir % 3) as usize));
            if next() % 3 == 0 {
                assert_eq!(
                    t.remove(key.as_bytes()).unwrap(),
                    model.remove(&key).is_some()
                );
            } else {
                let value = round.to_string();
                t.insert(key.as_bytes(), value.as_bytes()).unwrap();
                model.insert(key, value);
            }
            if round % 500 == 499 {
                let report = f.check();
                assert!(report.is_clean(), "round {round}: {report}");
            }
        }
        let all: Vec<(Vec<u8>, Vec<u8>)> = t.range(..).unwrap().map(|e| e.unwrap()).collect();
        let want: Vec<(Vec<u8>, Vec<u8>)> = model
            .into_iter()
            .map(|(k, v)| (k.into_bytes(), v.into_bytes()))
            .collect();
        assert_eq!(all, want);
        assert!(t.shape().unwrap().levels.len() >= 3);
    }

    #[test]
    fn a_first_key_below_its_parents_key_is_raised_when_nodes_join() {
        // Writers never leave an index node's first key below its parent's
        // key for it, but a store may (a lower first key still bounds the
        // node's keys, so the check passes). When such a node joins its
        // left sibling, its first key lands among the sibling's keys and
        // must be raised, or the joined node would misroute keys.
        let n = 3_000;
        let (f, t) = small_tree(n);
        let root_id = f.shared.catalog.read().root("a").unwrap();
        let root = f.store().get(root_id).unwrap();
        assert!(root.level() >= 2 && root.len() >= 2);
        let (left, right) = (root.child(0), root.child(1));
        // The right node's first key lowered to the left subtree's first
        // key: still at most every key below it.
        let low = f.store().get(left).unwrap().key(0).to_vec();
        let mut lowered = (*f.store().get(right).unwrap()).clone();
        lowered.set_key(0, &low);
        f.store().put(right, Arc::new(lowered)).unwrap();
        assert!(f.check().is_clean());
        // Empty the right node's subtree until it joins the left one.
        let from = root.key(1).to_vec();
        let upto = root.key(2.min(root.len() - 1)).to_vec();
        let doomed: Vec<u32> = (0..n)
            .filter(|&i| key(i) >= from && (root.len() == 2 || key(i) < upto))
            .collect();
        for &i in &doomed {
            assert!(t.remove(&key(i)).unwrap());
            let report = f.check();
            assert!(report.is_clean(), "after removing key {i}: {report}");
        }
        for i in 0..n {
            let want = (!doomed.contains(&i)).then(|| b"v".to_vec());
            assert_eq!(t.get(&key(i)).unwrap(), want, "key {i}");
        }
    }

    #[test]
    fn a_leaf_only_the_rollback_base_froze_moves_to_its_new_id_uncopied() {
        let (f, t) = small_tree(300);
        // The checkpoint pins its state as the rollback base: every node is
        // frozen (P1) and clean, in the cache.
        f.checkpoint().unwrap();
        let old = leaves(&f, "a")[2];
        let at = f.store().get(old).unwrap().as_bytes().as_ptr();
        let k = f.store().get(old).unwrap().key(1).to_vec();
        // A value of the same length: the edit changes the bytes in place.
        t.insert(&k, b"w").unwrap();
        let new = leaves(&f, "a")[2];
        assert_ne!(new, old, "a frozen leaf is edited under a new id");
        let moved = f.store().get(new).unwrap();
        assert_eq!(
            moved.as_bytes().as_ptr(),
            at,
            "the version moved, not copied"
        );
        drop(moved);
        // The old version is still what a rollback returns to.
        t.insert(&k, b"x").unwrap();
        f.rollback().unwrap();
        assert_eq!(t.get(&k).unwrap(), Some(b"v".to_vec()));
        assert!(f.check().is_clean());
    }

    #[test]
    fn a_leaf_a_view_may_read_stays_cached_when_the_writer_moves_it() {
        let (f, t) = small_tree(300);
        f.checkpoint().unwrap();
        let view = t.view().unwrap();
        let old = leaves(&f, "a")[2];
        let k = f.store().get(old).unwrap().key(1).to_vec();
        assert_eq!(view.get(&k).unwrap(), Some(b"v".to_vec()));
        t.insert(&k, b"w").unwrap();
        assert_ne!(leaves(&f, "a")[2], old);
        // The view reads the old version from the cache, not from disk.
        let misses = f.store().stats().cache_misses;
        assert_eq!(view.get(&k).unwrap(), Some(b"v".to_vec()));
        assert_eq!(f.store().stats().cache_misses, misses);
        assert_eq!(t.get(&k).unwrap(), Some(b"w".to_vec()));
        drop(view);
        f.commit().unwrap();
        assert!(f.check().is_clean());
    }
}
