//! The clean cache: decoded nodes that match their blob on disk, sharded
//! by id. A hit takes its shard's lock *shared* and reorders nothing: each
//! entry has a reference bit that a hit sets (CLOCK, the second-chance
//! approximation of LRU), so readers on several threads do not serialize
//! on the cache.
//!
//! Invariants: the byte total is the sum of the shards' bytes, and each
//! shard's bytes the sum of `Codec::mem_size` of its nodes; every id in a
//! shard's map is in its ring (the ring may also hold ids since removed,
//! which eviction skips); changes that must stay atomic with the dirty
//! queue and the in-flight map (S4) are made with the store's state lock
//! held, and the lock order is state, then shard.

use crate::{Codec, NodeId};
use crossbeam_utils::CachePadded;
use parking_lot::RwLock;
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// Shards of the clean cache.
const CACHE_SHARDS: usize = 16;

/// One cached node and its reference bit.
struct Slot<N> {
    node: Arc<N>,
    referenced: AtomicBool,
}

/// One shard: the nodes, and the ring eviction sweeps.
struct Shard<N> {
    map: FxHashMap<NodeId, Slot<N>>,
    ring: VecDeque<NodeId>,
    bytes: usize,
}

impl<N: Codec> Shard<N> {
    fn insert(&mut self, id: NodeId, node: Arc<N>) {
        self.bytes += node.mem_size();
        let slot = Slot {
            node,
            referenced: AtomicBool::new(false),
        };
        match self.map.insert(id, slot) {
            Some(old) => self.bytes -= old.node.mem_size(),
            None => self.ring.push_back(id),
        }
    }

    fn remove(&mut self, id: NodeId) -> Option<Arc<N>> {
        let old = self.map.remove(&id).map(|old| {
            self.bytes -= old.node.mem_size();
            old.node
        });
        // Ids removed stay in the ring until a sweep meets them; a ring
        // grown well past the map is rebuilt.
        if self.ring.len() > 2 * self.map.len() + 64 {
            let map = &self.map;
            self.ring.retain(|id| map.contains_key(id));
        }
        old
    }

    /// Evicts one node not referenced since the sweep last passed it;
    /// returns its bytes, or `None` if the shard is empty.
    fn evict(&mut self) -> Option<usize> {
        while let Some(id) = self.ring.pop_front() {
            let Some(slot) = self.map.get(&id) else {
                continue;
            };
            if slot.referenced.swap(false, Ordering::Relaxed) {
                self.ring.push_back(id);
                continue;
            }
            let slot = self.map.remove(&id).expect("found above");
            let bytes = slot.node.mem_size();
            self.bytes -= bytes;
            return Some(bytes);
        }
        None
    }
}

/// The cache of clean decoded nodes, sharded by id. Changes that must stay
/// atomic with the dirty queue and the in-flight map (S4) are made with
/// the store's state lock held; the lock order is state, then shard.
pub(super) struct Cache<N> {
    /// Each on a cache line of its own: a hit writes its shard's lock
    /// word, which would otherwise pass a line holding its neighbours'
    /// between the cores of readers hitting different shards.
    shards: Box<[CachePadded<RwLock<Shard<N>>>]>,
    bytes: AtomicUsize,
    /// The shard the next eviction starts from.
    cursor: AtomicUsize,
}

impl<N: Codec> Cache<N> {
    pub(super) fn new() -> Self {
        Cache {
            shards: (0..CACHE_SHARDS)
                .map(|_| {
                    CachePadded::new(RwLock::new(Shard {
                        map: FxHashMap::default(),
                        ring: VecDeque::new(),
                        bytes: 0,
                    }))
                })
                .collect(),
            bytes: Default::default(),
            cursor: Default::default(),
        }
    }

    fn shard(&self, id: NodeId) -> &RwLock<Shard<N>> {
        &self.shards[(id.0 as usize) % CACHE_SHARDS]
    }

    /// The bytes of the nodes held.
    pub(super) fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The node of `id`, if cached; marks it referenced.
    pub(super) fn get(&self, id: NodeId) -> Option<Arc<N>> {
        let shard = self.shard(id).read();
        let slot = shard.map.get(&id)?;
        // Only a first hit since the last sweep writes the bit.
        if !slot.referenced.load(Ordering::Relaxed) {
            slot.referenced.store(true, Ordering::Relaxed);
        }
        Some(slot.node.clone())
    }

    /// Whether `id` is cached (without marking it referenced).
    pub(super) fn contains(&self, id: NodeId) -> bool {
        self.shard(id).read().map.contains_key(&id)
    }

    /// Applies `f` to the shard of `id`, keeping the byte total.
    fn with_shard<T>(&self, id: NodeId, f: impl FnOnce(&mut Shard<N>) -> T) -> T {
        let mut shard = self.shard(id).write();
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

    /// Removes `id`; returns its node, for the caller to drop where it
    /// holds no lock.
    pub(super) fn remove(&self, id: NodeId) -> Option<Arc<N>> {
        self.with_shard(id, |q| q.remove(id))
    }

    /// Evicts nodes not referenced lately, shard by shard, until the cache
    /// holds at most `room` bytes.
    pub(super) fn trim(&self, room: usize) {
        let mut idle = 0;
        while self.bytes() > room && idle < CACHE_SHARDS {
            let i = self.cursor.fetch_add(1, Ordering::Relaxed) % CACHE_SHARDS;
            let evicted = self.shards[i].write().evict();
            match evicted {
                Some(bytes) => {
                    self.bytes.fetch_sub(bytes, Ordering::Relaxed);
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
    fn eviction_gives_a_node_hit_since_the_last_sweep_a_second_chance() {
        let c = Cache::new();
        // Ids in one shard, so the sweep order is the insertion order.
        let ids: Vec<NodeId> = (0..4).map(|i| NodeId(i * CACHE_SHARDS as u64)).collect();
        for &id in &ids {
            c.insert(id, node(10));
        }
        assert!(c.get(ids[0]).is_some());
        c.trim(30);
        assert!(c.get(ids[0]).is_some(), "the node hit was evicted");
        assert!(c.get(ids[1]).is_none(), "the oldest node not hit stayed");
        // A removed id left in the ring is passed over.
        c.remove(ids[2]);
        c.trim(10);
        assert_eq!(c.bytes(), 10);
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
