//! The in-flight map: nodes handed to the workers and not yet landed, each
//! served from its pending buffer while it is written.
//!
//! Invariants:
//! - each launch of an id gets a sequence number no launch had before and
//!   replaces any older entry of that id, so the map holds the newest
//!   launch of every id in flight;
//! - a write lands (the caller may point the table at it) only if its entry
//!   is still there with the same number (S5): an older write landing late,
//!   or the write of an id freed meanwhile, changes nothing;
//! - `bytes` is the sum of the pending nodes' `Codec::mem_size`.

use crate::{Codec, NodeId};
use rustc_hash::FxHashMap;
use std::sync::Arc;

/// A write handed to the workers and not yet landed.
struct Pending<N> {
    seq: u64,
    node: Arc<N>,
    bytes: usize,
}

/// One node for a worker to write.
pub(super) struct Job<N> {
    pub(super) id: NodeId,
    pub(super) seq: u64,
    pub(super) node: Arc<N>,
}

/// The in-flight map; see the module documentation.
pub(super) struct InFlight<N> {
    map: FxHashMap<NodeId, Pending<N>>,
    bytes: usize,
    next_seq: u64,
}

impl<N: Codec> InFlight<N> {
    pub(super) fn new() -> Self {
        InFlight {
            map: FxHashMap::default(),
            bytes: 0,
            next_seq: 0,
        }
    }

    /// Moves `node` in as the newest version of `id`; the job is what a
    /// worker must write.
    pub(super) fn launch(&mut self, id: NodeId, node: Arc<N>) -> Job<N> {
        self.next_seq += 1;
        let seq = self.next_seq;
        let bytes = node.mem_size();
        self.bytes += bytes;
        let pending = Pending {
            seq,
            node: node.clone(),
            bytes,
        };
        if let Some(old) = self.map.insert(id, pending) {
            self.bytes -= old.bytes;
        }
        Job { id, seq, node }
    }

    /// Removes the entry of `job` if it is still the newest launch of its
    /// id, and says whether it was (S5).
    pub(super) fn land_if_newest(&mut self, job: &Job<N>) -> bool {
        let newest = self.map.get(&job.id).is_some_and(|p| p.seq == job.seq);
        if newest {
            self.forget(job.id);
        }
        newest
    }

    /// Drops the entry of `id` (freed): its write, when it lands, is
    /// ignored.
    pub(super) fn forget(&mut self, id: NodeId) {
        if let Some(p) = self.map.remove(&id) {
            self.bytes -= p.bytes;
        }
    }

    /// The pending version of `id`.
    pub(super) fn get(&self, id: NodeId) -> Option<Arc<N>> {
        self.map.get(&id).map(|p| p.node.clone())
    }

    /// Every launch in flight: id and sequence number.
    pub(super) fn launches(&self) -> impl Iterator<Item = (NodeId, u64)> + '_ {
        self.map.iter().map(|(&id, p)| (id, p.seq))
    }

    /// Whether `id` is in flight.
    pub(super) fn contains(&self, id: NodeId) -> bool {
        self.map.contains_key(&id)
    }

    /// Whether nothing is in flight.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The bytes of the pending nodes.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_codec::node;

    #[test]
    fn only_the_newest_launch_lands() {
        let mut f = InFlight::new();
        let old = f.launch(NodeId(1), node(10));
        let new = f.launch(NodeId(1), node(30));
        assert_eq!(f.bytes(), 30);
        assert_eq!(f.get(NodeId(1)).unwrap().0, 30);
        assert!(!f.land_if_newest(&old), "an older write landed");
        assert!(f.contains(NodeId(1)));
        assert!(f.land_if_newest(&new));
        assert!(f.is_empty());
        assert_eq!(f.bytes(), 0);
        assert!(!f.land_if_newest(&new), "a write landed twice");
    }

    #[test]
    fn a_forgotten_id_never_lands() {
        let mut f = InFlight::new();
        let job = f.launch(NodeId(7), node(5));
        f.forget(NodeId(7));
        assert!(f.get(NodeId(7)).is_none());
        assert!(!f.land_if_newest(&job));
        // A relaunch after the free gets a new number.
        let again = f.launch(NodeId(7), node(5));
        assert!(again.seq > job.seq);
        assert!(!f.land_if_newest(&job));
        assert!(f.land_if_newest(&again));
    }
}
