//! The write buffer: pairs of [`Tree::insert_batch`](crate::Tree::insert_batch)
//! journaled (so committed by the log as any change) but not yet applied to
//! their tree, held in memory until something needs the tree itself.
//!
//! A batch of random keys into a large tree touches one cold leaf per key;
//! held back and applied many batches at once, in key order, neighbouring
//! keys share their leaves and index paths (`docs/design.md`, "Write
//! buffer"). Invariants:
//!
//! - W1: the entries of a tree are those of its root with the pairs of its
//!   buffer inserted in the order they were buffered, so a later pair wins.
//! - W2: a tree's buffer holds only inline values, and only while the
//!   forest holds no out-of-line value.
//! - W3: every operation on a tree other than a buffered batch (a read, a
//!   snapshot, a write, a clone) applies its buffer first; a checkpoint
//!   applies every buffer, so the catalog a checkpoint or a rollback base
//!   records has none.

/// Bytes a buffered pair costs beside its key and value: its place in
/// [`Buffer::pairs`].
const PAIR_COST: usize = std::mem::size_of::<(u32, u32, u32, u32)>();

/// The pairs buffered for one tree, in the order they were inserted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Buffer {
    /// Each batch's keys and values, back to back, in one allocation of
    /// exactly its size (one growing vector could hold twice the bytes
    /// it counts).
    batches: Vec<Vec<u8>>,
    /// Each pair's batch, where it starts there, its key's and its
    /// value's length.
    pairs: Vec<(u32, u32, u32, u32)>,
    /// Bytes of every batch.
    bytes: usize,
}

impl Buffer {
    /// Appends `pairs` as one batch (each within a leaf entry's limits).
    pub(crate) fn push_batch<K: AsRef<[u8]>, V: AsRef<[u8]>>(&mut self, pairs: &[(K, V)]) {
        let len = pairs
            .iter()
            .map(|(k, v)| k.as_ref().len() + v.as_ref().len())
            .sum();
        let mut batch = Vec::with_capacity(len);
        let index = self.batches.len() as u32;
        for (k, v) in pairs {
            let (k, v) = (k.as_ref(), v.as_ref());
            let at = batch.len() as u32;
            self.pairs.push((index, at, k.len() as u32, v.len() as u32));
            batch.extend_from_slice(k);
            batch.extend_from_slice(v);
        }
        self.bytes += len;
        self.batches.push(batch);
    }

    /// True when no pair is buffered.
    pub(crate) fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// What holding `pairs` costs: their keys and values and [`PAIR_COST`]
    /// each, as [`Buffer::bytes`] counts them.
    pub(crate) fn cost<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> usize {
        pairs
            .iter()
            .map(|(k, v)| k.as_ref().len() + v.as_ref().len() + PAIR_COST)
            .sum()
    }

    /// Memory the buffer accounts for: keys, values and [`PAIR_COST`] per
    /// pair.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes + self.pairs.len() * PAIR_COST
    }

    /// The pairs in the order buffered.
    fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.pairs.iter().map(|&(b, at, k, v)| {
            let (at, k, v) = (at as usize, k as usize, v as usize);
            let batch = &self.batches[b as usize];
            (&batch[at..at + k], &batch[at + k..at + k + v])
        })
    }

    /// The pairs in key order, one per key: the one buffered last (W1).
    pub(crate) fn sorted(&self) -> Vec<(&[u8], &[u8])> {
        // Equal keys stay in the order buffered: the last of each run wins.
        let mut pairs = crate::forest::sort_pairs(self.iter().collect());
        crate::forest::dedup_last(&mut pairs);
        pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_keeps_the_pair_buffered_last_of_each_key() {
        let mut b = Buffer::default();
        b.push_batch(&[("b", "1"), ("a", "2")]);
        b.push_batch(&[("b", "3"), ("c", "4"), ("a", "5")]);
        let got: Vec<(&[u8], &[u8])> = b.sorted();
        let want: Vec<(&[u8], &[u8])> = vec![(b"a", b"5"), (b"b", b"3"), (b"c", b"4")];
        assert_eq!(got, want);
        assert_eq!(b.bytes(), 10 + 5 * PAIR_COST);
    }
}
