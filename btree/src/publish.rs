//! Snapshots taken while the writer is inside an operation, without
//! waiting for it.
//!
//! A reader needs the trees as of the last completed operation: between
//! operations it reads them under the catalog's read lock, but while the
//! writer holds the write lock (a batch being applied, a commit starting a
//! checkpoint) it would wait for the whole operation. So the writer, at
//! the end of an operation that readers asked for, *publishes* the state
//! it leaves: every tree's root and a pin on the nodes they reach (P1,
//! P2). The publication stays valid until the next operation ends, which
//! replaces it, and a reader that finds the write lock held takes it
//! instead of waiting (invariant R1 in `docs/design.md`).
//!
//! Publishing is on demand: a reader that found the lock held (or its
//! tree buffered) asks for it, and operations publish while a reader
//! asked since the last one ended or within [`DEMAND_WINDOW`]; one that
//! ends otherwise withdraws the publication. So a writer nobody reads
//! beside pays nothing, and one that is read beside pays a pin per
//! operation: like LMDB's and redb's writers, each operation copies the
//! nodes it changes (P1) where it would have edited its own new nodes in
//! place, and its buffered batches are applied as each operation ends.

use crate::catalog::Catalog;
use crate::forest::ForestCore;
use crate::node::Node;
use crate::snapshot::Pinned;
use crate::{Error, Result};
use larix_nodestore::{NodeId, Pin};
use parking_lot::{RwLockReadGuard, RwLockWriteGuard};
use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long after a reader last met the writer (or a buffer) operations
/// go on publishing: a reader between two requests comes back within it.
const DEMAND_WINDOW: Duration = Duration::from_millis(100);

/// When readers asked for a publication, and when the last operation
/// ended.
pub(crate) struct Demand {
    born: Instant,
    /// Nanoseconds from `born` to the last ask, plus one (0: never).
    asked: AtomicU64,
    /// The same to the end of the last operation (written by the writer
    /// only).
    ended: AtomicU64,
}

impl Demand {
    pub(crate) fn new() -> Demand {
        Demand {
            born: Instant::now(),
            asked: AtomicU64::new(0),
            ended: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_nanos()).map_or(u64::MAX, |n| n.saturating_add(1))
    }

    fn ask(&self) {
        self.asked.store(self.now(), Ordering::Relaxed);
    }

    /// Ends an operation: whether a reader asked since the last one ended,
    /// or within [`DEMAND_WINDOW`].
    fn end(&self) -> bool {
        let now = self.now();
        let asked = self.asked.load(Ordering::Relaxed);
        let ended = self.ended.swap(now, Ordering::Relaxed);
        let window = u64::try_from(DEMAND_WINDOW.as_nanos()).unwrap_or(u64::MAX);
        asked != 0 && (asked >= ended || now.saturating_sub(asked) < window)
    }
}

/// The trees as the end of an operation left them, pinned. Not a
/// [`Pinned`]: that holds the forest, which holds the publication.
pub(crate) struct Published {
    pin: Pin<Node>,
    trees: BTreeMap<String, NodeId>,
}

/// The catalog locked for writing: an operation. Ending it (the guard
/// dropped or downgraded) publishes the state it leaves if a reader asked.
pub(crate) struct CatalogWrite<'a> {
    core: &'a ForestCore,
    /// `None` only while ending.
    guard: Option<RwLockWriteGuard<'a, Catalog>>,
}

impl<'a> CatalogWrite<'a> {
    pub(crate) fn new(core: &'a ForestCore) -> CatalogWrite<'a> {
        CatalogWrite {
            core,
            guard: Some(core.catalog.write()),
        }
    }

    /// Ends the operation, keeping the catalog locked for sharing.
    pub(crate) fn downgrade(mut self) -> RwLockReadGuard<'a, Catalog> {
        let mut guard = self.guard.take().expect("an operation ends once");
        let old = self.core.publish(&mut guard);
        let read = RwLockWriteGuard::downgrade(guard);
        // The old publication's pin may free nodes: not under the lock.
        drop(old);
        read
    }
}

impl Deref for CatalogWrite<'_> {
    type Target = Catalog;

    fn deref(&self) -> &Catalog {
        self.guard.as_ref().expect("an operation ends once")
    }
}

impl DerefMut for CatalogWrite<'_> {
    fn deref_mut(&mut self) -> &mut Catalog {
        self.guard.as_mut().expect("an operation ends once")
    }
}

impl Drop for CatalogWrite<'_> {
    fn drop(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            let old = if std::thread::panicking() {
                // An operation cut short publishes nothing.
                self.core.published.lock().take()
            } else {
                self.core.publish(&mut guard)
            };
            drop(guard);
            drop(old);
        }
    }
}

/// The trees as of the last completed operation, as a reader gets them.
pub(crate) enum Current<'a> {
    /// The catalog, locked for sharing, the trees asked for unbuffered
    /// (W3).
    Locked(RwLockReadGuard<'a, Catalog>),
    /// What the last operation published, the writer being inside the
    /// next one.
    Published(Arc<Published>),
}

impl Current<'_> {
    /// The root of tree `name`.
    pub(crate) fn root(&self, name: &str) -> Result<NodeId> {
        match self {
            Current::Locked(catalog) => catalog.root(name),
            Current::Published(p) => {
                p.trees
                    .get(name)
                    .copied()
                    .ok_or_else(|| Error::TreeNotFound {
                        name: name.to_string(),
                    })
            }
        }
    }

    /// The trees `trees` (names and roots) pinned: with a new pin under the
    /// lock, or with the publication's.
    pub(crate) fn pin(
        &self,
        forest: &Arc<ForestCore>,
        trees: impl IntoIterator<Item = (String, NodeId)>,
    ) -> Arc<Pinned> {
        let pin = match self {
            Current::Locked(_) => forest.store.pin(),
            Current::Published(p) => p.pin.clone(),
        };
        Pinned::new(forest, pin, trees)
    }

    /// Every tree, with its root.
    pub(crate) fn trees(&self) -> Vec<(String, NodeId)> {
        match self {
            Current::Locked(catalog) => catalog.iter().map(|(n, r)| (n.to_string(), r)).collect(),
            Current::Published(p) => p.trees.iter().map(|(n, &r)| (n.clone(), r)).collect(),
        }
    }
}

impl ForestCore {
    /// Begins an operation: the catalog locked for writing.
    pub(crate) fn write(&self) -> CatalogWrite<'_> {
        CatalogWrite::new(self)
    }

    /// Ends an operation: publishes the state it leaves if a reader asked
    /// since the last one ended (its write buffers applied first, W3; if
    /// that fails, nothing is published), else withdraws the last
    /// publication. Returns the old publication, for the caller to drop
    /// after unlocking.
    fn publish(&self, catalog: &mut Catalog) -> Option<Arc<Published>> {
        let wanted = self.demand.end();
        // Only an operation ending (holding the write lock) replaces the
        // publication, so it stays as read here until the end.
        if let Some(p) = self.published.lock().as_ref() {
            // The same roots, unbuffered: the same entries, since an
            // operation that changes a tree copies its pinned root (P1).
            let roots = p.trees.iter().map(|(n, &r)| (n.as_str(), r));
            if !catalog.is_buffered(None) && roots.eq(catalog.iter()) {
                return None;
            }
        }
        let fresh = if wanted {
            self.settle_all(catalog).ok().map(|()| {
                Arc::new(Published {
                    pin: self.store.pin(),
                    trees: catalog.iter().map(|(n, r)| (n.to_string(), r)).collect(),
                })
            })
        } else {
            None
        };
        std::mem::replace(&mut *self.published.lock(), fresh)
    }

    /// The trees as of the last completed operation, tree `name`'s write
    /// buffer applied (every tree's, for `None`; W3). Between operations
    /// (or with nothing published) the catalog read-locked; while the
    /// writer is inside an operation, what the last one published, if it
    /// published, else the lock once the operation ends. A reader that
    /// met the writer, or a buffer, asks the next operation to publish.
    ///
    /// # Errors
    /// A store error while applying a buffer.
    pub(crate) fn current(&self, name: Option<&str>) -> Result<Current<'_>> {
        match self.catalog.try_read() {
            Some(catalog) if !catalog.is_buffered(name) => return Ok(Current::Locked(catalog)),
            // This reader applies the buffer; the next operation to end
            // applies its own, for the readers after it.
            Some(_) => self.demand.ask(),
            None => {
                self.demand.ask();
                if let Some(p) = self.published.lock().clone() {
                    return Ok(Current::Published(p));
                }
            }
        }
        Ok(Current::Locked(self.settled(name)?))
    }
}

#[cfg(test)]
mod tests {
    use crate::{Forest, Limits, Tree};
    use larix_nodestore::NodeStore;
    use std::sync::atomic::Ordering;
    use std::sync::mpsc;
    use std::time::Duration;

    fn key(i: u32) -> Vec<u8> {
        format!("key{i:05}").into_bytes()
    }

    fn forest() -> (Forest, Tree) {
        let f = Forest::new(NodeStore::in_memory(), Limits::default()).unwrap();
        let t = f.create_tree("a").unwrap();
        (f, t)
    }

    /// Runs `read` on another thread while this one holds the catalog
    /// locked for writing, as an operation in progress does, for at most
    /// `hold`; returns what `read` returned and whether it returned before
    /// the lock was let go.
    fn read_during_an_operation<T: Send + 'static>(
        tree: &Tree,
        hold: Duration,
        read: impl FnOnce(Tree) -> T + Send + 'static,
    ) -> (T, bool) {
        let (tx, rx) = mpsc::channel();
        let t = tree.clone();
        let operation = tree.shared.catalog.write();
        let reader = std::thread::spawn(move || tx.send(read(t)).unwrap());
        let prompt = rx.recv_timeout(hold);
        drop(operation);
        let got = prompt
            .map(|v| (v, true))
            .unwrap_or_else(|_| (rx.recv().unwrap(), false));
        reader.join().unwrap();
        got
    }

    /// A reader meets the writer inside an operation (with nothing
    /// published, so it waits): this thread holds the lock until the
    /// reader has asked for a publication. Returns what it read.
    fn meet_the_writer(tree: &Tree) -> Option<Vec<u8>> {
        let demand = &tree.shared.demand;
        let asked = demand.asked.load(Ordering::Relaxed);
        let t = tree.clone();
        let operation = tree.shared.catalog.write();
        let reader = std::thread::spawn(move || t.get(&key(1)).unwrap());
        let start = std::time::Instant::now();
        while demand.asked.load(Ordering::Relaxed) == asked {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the reader never asked"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!reader.is_finished(), "the reader did not wait");
        drop(operation);
        reader.join().unwrap()
    }

    /// Every key of tree `t` as a view shows it.
    fn keys(t: &Tree) -> Vec<Vec<u8>> {
        let view = t.view().unwrap();
        view.range::<std::ops::RangeFull>(..)
            .unwrap()
            .map(|e| e.unwrap().0)
            .collect()
    }

    #[test]
    fn a_reader_that_met_the_writer_reads_beside_its_next_operation_without_waiting() {
        let (f, t) = forest();
        t.insert(&key(1), b"one").unwrap();
        // Nothing published yet: the reader waits for the operation, and
        // asks for a publication.
        assert_eq!(meet_the_writer(&t).as_deref(), Some(&b"one"[..]));
        t.insert(&key(2), b"two").unwrap();
        let hold = Duration::from_secs(10);
        let (got, prompt) = read_during_an_operation(&t, hold, |t| t.get(&key(2)).unwrap());
        assert!(prompt, "a get waited for the writer's operation");
        assert_eq!(got.as_deref(), Some(&b"two"[..]));
        let (got, prompt) = read_during_an_operation(&t, hold, |t| keys(&t));
        assert!(prompt, "a view waited for the writer's operation");
        assert_eq!(got, vec![key(1), key(2)]);
        let g = f.clone();
        let (got, prompt) = read_during_an_operation(&t, hold, move |_| {
            let snap = g.snapshot().unwrap();
            (
                snap.tree_names(),
                snap.tree("a").unwrap().get(&key(1)).unwrap(),
            )
        });
        assert!(prompt, "a snapshot waited for the writer's operation");
        assert_eq!(got, (vec!["a".to_string()], Some(b"one".to_vec())));
    }

    #[test]
    fn a_reader_beside_an_operation_sees_every_operation_before_it() {
        let (f, t) = forest();
        let hold = Duration::from_secs(10);
        meet_the_writer(&t);
        for i in 0..20 {
            t.insert(&key(i), b"v").unwrap();
            if i % 3 == 0 {
                f.commit().unwrap();
            }
            if i == 10 {
                t.remove(&key(3)).unwrap();
            }
            // Whether or not it was published, the state the reader sees
            // is the one the last operation left.
            let mut want: Vec<_> = (0..=i).map(key).collect();
            if i >= 10 {
                want.retain(|k| *k != key(3));
            }
            let (got, _) = read_during_an_operation(&t, hold, |t| keys(&t));
            assert_eq!(got, want, "after operation {i}");
        }
    }

    #[test]
    fn a_buffered_batch_is_applied_by_the_operation_that_publishes_it() {
        let (_f, t) = forest();
        meet_the_writer(&t);
        let pairs: Vec<_> = (0..300).map(|i| (key(i), b"v".to_vec())).collect();
        t.insert_batch(pairs.iter().map(|(k, v)| (k, v))).unwrap();
        assert!(
            !t.shared.catalog.read().is_buffered(None),
            "the batch's operation published its pairs applied"
        );
        let (got, prompt) = read_during_an_operation(&t, Duration::from_secs(10), |t| keys(&t));
        assert!(prompt, "the view waited to apply the buffer");
        assert_eq!(got.len(), 300);
    }

    #[test]
    fn operations_nobody_reads_beside_publish_nothing() {
        let (f, t) = forest();
        let pins = t.shared.store.pins();
        for i in 0..10 {
            t.insert(&key(i), b"v").unwrap();
        }
        f.commit().unwrap();
        assert!(t.shared.published.lock().is_none());
        assert_eq!(t.shared.store.pins(), pins, "no pin beside the base");
        // A reader meets the writer: the next operation publishes, and
        // once the reader has gone for longer than the window, an
        // operation withdraws it.
        meet_the_writer(&t);
        t.insert(&key(10), b"v").unwrap();
        assert!(t.shared.published.lock().is_some());
        t.insert(&key(11), b"v").unwrap();
        std::thread::sleep(super::DEMAND_WINDOW + Duration::from_millis(50));
        t.insert(&key(12), b"v").unwrap();
        assert!(t.shared.published.lock().is_none());
        assert_eq!(t.shared.store.pins(), pins);
    }
}
