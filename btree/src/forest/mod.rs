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

mod runs;
mod tree;

use crate::buffer::Buffer;
use crate::catalog::Catalog;
use crate::check::{self, CheckReport};
use crate::journal::{self, Journal, Op};
use crate::limits::Limits;
use crate::mutate::{Edit, Plan};
use crate::node::{self, leaf_entry_len, Node, Stored, ValueRef, MAX_VALUE_LEN, REF_LEN};
use crate::publish::{Demand, Published};
use crate::range::Range;
use crate::read::{self, Bounds};
use crate::snapshot::{MemoBudget, Snapshot, View};
use crate::txn::{Scratch, Txn};
use crate::{build, mutate, value, Error, Result};
use larix_nodestore::{NodeId, NodeStore, Pin};
use parking_lot::{Mutex, RwLock};
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
