//! The node store, kept in memory.
//!
//! This is the store's interface as the B-tree sees it. The table maps each
//! live id to its node and reference count; the committed catalog is kept
//! apart from the working one so that a commit switches it in one step.

use crate::{Codec, NodeId, StoreError, StoreStats};
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One row of the node table.
struct Entry<N> {
    node: Option<Arc<N>>,
    refcount: u32,
}

/// Keeps nodes by id, with their reference counts, and the forest catalog.
///
/// All methods take `&self`; the store is `Send + Sync` and serialises its
/// own state. The caller (the B-tree) keeps to one writer at a time.
pub struct NodeStore<N> {
    table: RwLock<FxHashMap<NodeId, Entry<N>>>,
    next_id: AtomicU64,
    catalog: Mutex<Vec<u8>>,
    commits: AtomicU64,
}

impl<N: Codec> Default for NodeStore<N> {
    fn default() -> Self {
        Self::in_memory()
    }
}

impl<N: Codec> NodeStore<N> {
    /// An empty store held in memory.
    pub fn in_memory() -> Self {
        NodeStore {
            table: RwLock::new(FxHashMap::default()),
            next_id: AtomicU64::new(1),
            catalog: Mutex::new(Vec::new()),
            commits: AtomicU64::new(0),
        }
    }

    /// A fresh id that no node has ever had (invariant S1).
    pub fn allocate(&self) -> NodeId {
        NodeId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// The node stored under `id`.
    ///
    /// # Errors
    /// [`StoreError::NodeMissing`] if `id` is not live.
    pub fn get(&self, id: NodeId) -> Result<Arc<N>, StoreError> {
        self.table
            .read()
            .get(&id)
            .and_then(|e| e.node.clone())
            .ok_or(StoreError::NodeMissing { id })
    }

    /// Stores `node` under `id`, replacing any earlier version.
    ///
    /// # Errors
    /// None from the memory store; kept fallible for stores that latch
    /// background failures.
    pub fn put(&self, id: NodeId, node: Arc<N>) -> Result<(), StoreError> {
        let mut table = self.table.write();
        table
            .entry(id)
            .or_insert(Entry {
                node: None,
                refcount: 0,
            })
            .node = Some(node);
        Ok(())
    }

    /// Removes `id` and its table row; later gets fail (invariant S2).
    ///
    /// # Errors
    /// [`StoreError::NodeMissing`] if `id` is not live.
    pub fn free(&self, id: NodeId) -> Result<(), StoreError> {
        match self.table.write().remove(&id) {
            Some(_) => Ok(()),
            None => Err(StoreError::NodeMissing { id }),
        }
    }

    /// The reference count recorded for `id`.
    ///
    /// # Errors
    /// [`StoreError::NodeMissing`] if `id` is not live.
    pub fn refcount(&self, id: NodeId) -> Result<u32, StoreError> {
        self.table
            .read()
            .get(&id)
            .map(|e| e.refcount)
            .ok_or(StoreError::NodeMissing { id })
    }

    /// Records `refcount` for `id`, creating its row if needed.
    ///
    /// # Errors
    /// None from the memory store.
    pub fn set_refcount(&self, id: NodeId, refcount: u32) -> Result<(), StoreError> {
        self.table
            .write()
            .entry(id)
            .or_insert(Entry {
                node: None,
                refcount: 0,
            })
            .refcount = refcount;
        Ok(())
    }

    /// The ids of all live nodes, in ascending order.
    pub fn node_ids(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self.table.read().keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// The catalog bytes of the last commit (empty for a new store).
    pub fn committed_catalog(&self) -> Vec<u8> {
        self.catalog.lock().clone()
    }

    /// Makes the current nodes and `catalog` the committed state.
    ///
    /// # Errors
    /// None from the memory store.
    pub fn commit(&self, catalog: &[u8]) -> Result<(), StoreError> {
        *self.catalog.lock() = catalog.to_vec();
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The store's counters.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            nodes: self.table.read().len() as u64,
            commits: self.commits.load(Ordering::Relaxed),
        }
    }
}
