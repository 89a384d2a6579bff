//! [`LruMap`]: decoded nodes by id in least-recently-put order, knowing
//! the bytes they hold: the dirty queue. Reads peek without reordering, so
//! they can share its lock.
//!
//! The order is a ring of `(stamp, id)` puts beside a hash map holding each
//! entry's latest stamp, so a put allocates nothing of its own (a linked
//! LRU list allocated a node per new entry, on every first change of a node
//! since the last checkpoint). A put of an entry already held leaves its
//! older ring item behind, *stale*: eviction skips items whose stamp is not
//! their entry's, and the ring is rebuilt once it holds twice the entries.
//!
//! Invariants: `bytes` is the sum of `Codec::mem_size` of the nodes held
//! (taken entries hold none); every entry has exactly one ring item with its
//! stamp, and the ring's items with current stamps are in put order.

use crate::{Codec, NodeId};
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::sync::Arc;

/// One entry: its node (`None` while lent out) and the stamp of its last
/// put.
struct Entry<N> {
    node: Option<Arc<N>>,
    stamp: u64,
}

/// An LRU map of decoded nodes that knows the bytes it holds. An entry may
/// be *taken* (its node lent to an in-place edit): it keeps its place, holds
/// no node, and is filled again by the next insert.
pub(super) struct LruMap<N> {
    map: FxHashMap<NodeId, Entry<N>>,
    /// Puts, oldest first; stale items are skipped (module documentation).
    ring: VecDeque<(u64, NodeId)>,
    next_stamp: u64,
    pub(super) bytes: usize,
}

impl<N: Codec> LruMap<N> {
    pub(super) fn new() -> Self {
        LruMap {
            map: FxHashMap::default(),
            ring: VecDeque::new(),
            next_stamp: 0,
            bytes: 0,
        }
    }

    /// The node of `id`, without making it the most recently used.
    pub(super) fn peek(&self, id: NodeId) -> Option<Arc<N>> {
        self.map.get(&id).and_then(|e| e.node.clone())
    }

    /// Whether `id` has an entry, holding its node or lent out for an edit
    /// ([`LruMap::take`]): either way a version newer than any on disk or
    /// in flight exists, so none of those may enter the clean cache (S4).
    pub(super) fn has_entry(&self, id: NodeId) -> bool {
        self.map.contains_key(&id)
    }

    /// Puts `node` under `id` as the most recent entry; returns whether
    /// `id` had an entry (see [`LruMap::has_entry`]).
    pub(super) fn insert(&mut self, id: NodeId, node: Arc<N>) -> bool {
        self.bytes += node.mem_size();
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        let (had, old) = match self.map.get_mut(&id) {
            Some(entry) => {
                entry.stamp = stamp;
                (true, entry.node.replace(node))
            }
            None => {
                let node = Some(node);
                self.map.insert(id, Entry { node, stamp });
                (false, None)
            }
        };
        if let Some(old) = old {
            self.bytes -= old.mem_size();
        }
        self.ring.push_back((stamp, id));
        if self.ring.len() > 2 * self.map.len() + 64 {
            let map = &self.map;
            self.ring
                .retain(|&(stamp, id)| map.get(&id).is_some_and(|e| e.stamp == stamp));
        }
        had
    }

    pub(super) fn remove(&mut self, id: NodeId) -> Option<Arc<N>> {
        let node = self.map.remove(&id)?.node?;
        self.bytes -= node.mem_size();
        Some(node)
    }

    /// Lends the node of `id` out, leaving its entry in place and empty.
    pub(super) fn take(&mut self, id: NodeId) -> Option<Arc<N>> {
        let node = self.map.get_mut(&id)?.node.take()?;
        self.bytes -= node.mem_size();
        Some(node)
    }

    /// Removes the entry of the ring's oldest current item, if any.
    fn pop_oldest(&mut self) -> Option<(NodeId, Option<Arc<N>>)> {
        while let Some((stamp, id)) = self.ring.pop_front() {
            if self.map.get(&id).is_some_and(|e| e.stamp == stamp) {
                let entry = self.map.remove(&id).expect("found above");
                return Some((id, entry.node));
            }
        }
        None
    }

    /// Removes the least recently used node while over `budget` (dropping
    /// taken entries on the way).
    pub(super) fn pop_over(&mut self, budget: usize) -> Option<(NodeId, Arc<N>)> {
        while self.bytes > budget {
            if let (id, Some(node)) = self.pop_oldest()? {
                self.bytes -= node.mem_size();
                return Some((id, node));
            }
        }
        None
    }

    pub(super) fn drain(&mut self) -> Vec<(NodeId, Arc<N>)> {
        let mut out = Vec::with_capacity(self.map.len());
        while let Some((id, node)) = self.pop_oldest() {
            out.extend(node.map(|node| (id, node)));
        }
        self.ring.clear();
        self.bytes = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_codec::node;

    #[test]
    fn bytes_follow_inserts_replacements_and_removals() {
        let mut m = LruMap::new();
        m.insert(NodeId(1), node(10));
        m.insert(NodeId(2), node(20));
        assert_eq!(m.bytes, 30);
        m.insert(NodeId(1), node(5));
        assert_eq!(m.bytes, 25);
        assert_eq!(m.remove(NodeId(2)).unwrap().0, 20);
        assert_eq!(m.bytes, 5);
        assert!(m.remove(NodeId(2)).is_none());
    }

    #[test]
    fn a_taken_entry_holds_nothing_until_refilled() {
        let mut m = LruMap::new();
        assert!(!m.insert(NodeId(1), node(10)), "a new entry");
        assert_eq!(m.take(NodeId(1)).unwrap().0, 10);
        assert_eq!(m.bytes, 0);
        // Lent out: no node to read, but an entry, so that no older
        // version of it enters the clean cache meanwhile (S4).
        assert!(m.peek(NodeId(1)).is_none());
        assert!(m.has_entry(NodeId(1)));
        assert!(!m.has_entry(NodeId(2)));
        assert!(m.take(NodeId(1)).is_none());
        assert!(m.insert(NodeId(1), node(7)), "the lent entry, refilled");
        assert_eq!(m.peek(NodeId(1)).unwrap().0, 7);
        assert_eq!(m.bytes, 7);
    }

    #[test]
    fn pop_over_evicts_least_recent_first_and_skips_taken_entries() {
        let mut m = LruMap::new();
        for i in 1..=4 {
            m.insert(NodeId(i), node(10));
        }
        // A re-put makes an entry the most recent; a peek does not.
        m.insert(NodeId(1), node(10));
        assert!(m.peek(NodeId(3)).is_some());
        m.take(NodeId(2));
        assert_eq!(m.pop_over(25).map(|(id, _)| id), Some(NodeId(3)));
        assert_eq!(m.pop_over(25), None);
        assert_eq!(m.bytes, 20);
        let drained: Vec<NodeId> = m.drain().into_iter().map(|(id, _)| id).collect();
        assert_eq!(drained, vec![NodeId(4), NodeId(1)]);
        assert_eq!(m.bytes, 0);
    }

    #[test]
    fn re_puts_keep_the_order_and_the_ring_bounded() {
        let mut m = LruMap::new();
        for i in 1..=3 {
            m.insert(NodeId(i), node(10));
        }
        // Each re-put of 1 leaves a stale item; the ring is rebuilt rather
        // than grown without bound.
        for _ in 0..1_000 {
            m.insert(NodeId(1), node(10));
            assert!(
                m.ring.len() <= 2 * m.map.len() + 65,
                "ring {}",
                m.ring.len()
            );
        }
        m.insert(NodeId(2), node(10));
        m.remove(NodeId(3));
        m.insert(NodeId(3), node(10));
        let order: Vec<NodeId> = std::iter::from_fn(|| m.pop_over(0).map(|(id, _)| id)).collect();
        assert_eq!(order, vec![NodeId(1), NodeId(2), NodeId(3)]);
        assert_eq!(m.bytes, 0);
        assert!(m.map.is_empty());
    }
}
