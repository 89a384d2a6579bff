//! The clean cache: decoded nodes that match their blob on disk, sharded
//! by id so that a read that hits takes one shard's lock and not the
//! store's.
//!
//! Invariants: the byte total is the sum of the shards' bytes; changes that
//! must stay atomic with the dirty queue and the in-flight map (S4) are
//! made with the store's state lock held, and the lock order is state, then
//! shard.

use super::queue::LruMap;
use crate::{Codec, NodeId};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Shards of the clean cache: a read that hits takes one shard's lock and
/// not the store's.
const CACHE_SHARDS: usize = 16;

/// The cache of clean decoded nodes, sharded by id. Changes that must stay
/// atomic with the dirty queue and the in-flight map (S4) are made with
/// the store's state lock held; the lock order is state, then shard.
pub(super) struct Cache<N> {
    shards: Box<[Mutex<LruMap<N>>]>,
    bytes: AtomicUsize,
    /// The shard the next eviction starts from.
    cursor: AtomicUsize,
}

impl<N: Codec> Cache<N> {
    pub(super) fn new() -> Self {
        Cache {
            shards: (0..CACHE_SHARDS)
                .map(|_| Mutex::new(LruMap::new()))
                .collect(),
            bytes: Default::default(),
            cursor: Default::default(),
        }
    }

    pub(super) fn shard(&self, id: NodeId) -> &Mutex<LruMap<N>> {
        &self.shards[(id.0 as usize) % CACHE_SHARDS]
    }

    /// The bytes of the nodes held.
    pub(super) fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    pub(super) fn get(&self, id: NodeId) -> Option<Arc<N>> {
        self.shard(id).lock().get(id)
    }

    /// Applies `f` to the shard of `id`, keeping the byte total.
    pub(super) fn with_shard<T>(&self, id: NodeId, f: impl FnOnce(&mut LruMap<N>) -> T) -> T {
        let mut shard = self.shard(id).lock();
        let before = shard.bytes;
        let out = f(&mut shard);
        let after = shard.bytes;
        if after >= before {
            self.bytes.fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.bytes.fetch_sub(before - after, Ordering::Relaxed);
        }
        out
    }

    pub(super) fn insert(&self, id: NodeId, node: Arc<N>) {
        self.with_shard(id, |q| q.insert(id, node));
    }

    pub(super) fn remove(&self, id: NodeId) {
        self.with_shard(id, |q| q.remove(id));
    }

    /// Evicts least recently used nodes, shard by shard, until the cache
    /// holds at most `room` bytes.
    pub(super) fn trim(&self, room: usize) {
        let mut idle = 0;
        while self.bytes() > room && idle < CACHE_SHARDS {
            let i = self.cursor.fetch_add(1, Ordering::Relaxed) % CACHE_SHARDS;
            let mut shard = self.shards[i].lock();
            match shard.pop_over(0) {
                Some((_, node)) => {
                    self.bytes.fetch_sub(node.mem_size(), Ordering::Relaxed);
                    idle = 0;
                }
                None => idle += 1,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_codec::node;

    #[test]
    fn hits_misses_and_removal() {
        let c = Cache::new();
        c.insert(NodeId(3), node(100));
        assert_eq!(c.get(NodeId(3)).unwrap().0, 100);
        assert!(c.get(NodeId(4)).is_none());
        c.remove(NodeId(3));
        assert!(c.get(NodeId(3)).is_none());
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn trim_brings_every_shard_down_to_the_room() {
        let c = Cache::new();
        for i in 0..100 {
            c.insert(NodeId(i), node(10));
        }
        assert_eq!(c.bytes(), 1000);
        c.trim(250);
        assert!(c.bytes() <= 250, "{}", c.bytes());
        let left = (0..100).filter(|&i| c.get(NodeId(i)).is_some()).count();
        assert_eq!(left * 10, c.bytes());
        c.trim(0);
        assert_eq!(c.bytes(), 0);
    }
}
