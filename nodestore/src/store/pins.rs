//! Read pins: what keeps a past state of the nodes readable while the
//! writer goes on.
//!
//! A pin is taken at a moment when no tree operation runs (the caller
//! holds the writer's lock shared). It records its `mark`, the next node id
//! at that moment: every node live then has an id below the mark, and the
//! trees of that moment reach only such nodes. Two rules keep them as they
//! were for as long as the pin lives (`docs/design.md`, P1-P3):
//!
//! - **P1** A node whose id is below the mark of a live pin is *frozen*:
//!   the writer never edits it in place ([`NodeStore::is_frozen`]); it
//!   copies it to a new id. Refcounts may change; contents never do.
//! - **P2** A frozen node that loses its last reference is *retired*, not
//!   freed: its table entry stays, with refcount 0, so it can still be read
//!   (and is still written out, moved by compaction, evicted and reread),
//!   until no live pin taken before it was retired has a mark above its
//!   id; then it is freed. [`NodeStore::set_refcount`] of a retired node
//!   revives it.
//! - **P3** A retired node is never part of a checkpoint: the frozen table
//!   leaves it out, so no state on disk carries a trace of a pin, and a
//!   crash with live pins reopens without a leak.
//!
//! A pin is *cold* when nothing reads through it in the normal course: the
//! forest's rollback base, read only by a rollback. A node retired (or
//! moved to a new id) keeps its clean cached copy while a pin that is not
//! cold may reach it, since a reader of that pin will likely ask for it
//! again; a node only cold pins keep leaves the cache, to be reread from its
//! blob if ever needed.
//!
//! Lock order: the state lock, then the pin set's.

use super::{NodeStore, Shared, State};
use crate::{Codec, NodeId, SegmentId, TableEntry};
use crossbeam_channel::{Receiver, TrySendError};
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The most retired nodes one hold of the state lock frees
/// ([`Shared::release_retired_in_slices`]), and the most the last handle
/// of a pin frees on its own thread ([`Pin`]'s drop).
const RELEASE_SLICE: usize = 256;

/// Whether a live pin among `live` (number, mark) needs the node `id`
/// retired as number `seq` (P2): one taken before it was retired whose
/// mark is above its id.
fn needed(live: impl IntoIterator<Item = (u64, u64)>, seq: u64, id: u64) -> bool {
    live.into_iter().any(|(s, mark)| s < seq && id < mark)
}

/// The live pins.
#[derive(Default)]
pub(super) struct Pins {
    set: Mutex<PinSet>,
    /// The highest mark of a live pin (0 without one): ids below it are
    /// frozen (P1).
    frozen_below: AtomicU64,
    /// The highest mark of a live pin that is not cold (0 without one):
    /// ids below it may be read through a pin (module documentation).
    read_below: AtomicU64,
    /// Retired nodes waiting for pins to drop (kept with the state lock
    /// held): a pin dropped while there are none takes no state lock.
    retired: AtomicU64,
    /// The first of them in the order they are freed: its retirement's
    /// number and its id (kept with the state lock held). A pin dropped
    /// while another live pin still needs it frees nothing, and takes no
    /// state lock.
    front_seq: AtomicU64,
    front_id: AtomicU64,
}

#[derive(Default)]
struct PinSet {
    /// The number the next pin gets.
    next_seq: u64,
    /// Live pins: number → (mark, handles, cold).
    live: BTreeMap<u64, (u64, usize, bool)>,
}

impl Pins {
    /// Whether a live pin may reach node `id`.
    pub(super) fn protects(&self, id: NodeId) -> bool {
        id.0 < self.frozen_below.load(Ordering::Acquire)
    }

    /// Whether a live pin that is not cold may reach node `id`: a reader
    /// may still ask for its version.
    pub(super) fn may_read(&self, id: NodeId) -> bool {
        id.0 < self.read_below.load(Ordering::Acquire)
    }

    /// The number the next pin will get: a node retired now is needed by
    /// the live pins numbered below it.
    fn next_seq(&self) -> u64 {
        self.set.lock().next_seq
    }

    /// The live pins: (number, mark).
    pub(super) fn live_marks(&self) -> Vec<(u64, u64)> {
        let set = self.set.lock();
        set.live
            .iter()
            .map(|(&seq, &(mark, _, _))| (seq, mark))
            .collect()
    }

    fn add(&self, mark: u64, cold: bool) -> u64 {
        let mut set = self.set.lock();
        let seq = set.next_seq;
        set.next_seq += 1;
        set.live.insert(seq, (mark, 1, cold));
        self.frozen_below.fetch_max(mark, Ordering::AcqRel);
        if !cold {
            self.read_below.fetch_max(mark, Ordering::AcqRel);
        }
        seq
    }

    fn share(&self, seq: u64) {
        if let Some((_, handles, _)) = self.set.lock().live.get_mut(&seq) {
            *handles += 1;
        }
    }

    /// Drops one handle of pin `seq`; returns whether it was the last and
    /// retired nodes wait that no live pin may need any more: the first
    /// to free is needed by none of the pins left.
    fn remove(&self, seq: u64) -> bool {
        let mut set = self.set.lock();
        let Some((_, handles, _)) = set.live.get_mut(&seq) else {
            return false;
        };
        *handles -= 1;
        if *handles > 0 {
            return false;
        }
        set.live.remove(&seq);
        let highest = |read: bool| {
            let marks = set.live.values().filter(|&&(_, _, cold)| !(read && cold));
            marks.map(|&(mark, _, _)| mark).max().unwrap_or(0)
        };
        self.frozen_below.store(highest(false), Ordering::Release);
        self.read_below.store(highest(true), Ordering::Release);
        if self.retired.load(Ordering::Acquire) == 0 {
            return false;
        }
        // A front read as it changes (under the state lock, which a
        // release holds) at worst frees nothing or leaves the nodes to the
        // next release: a retired node stays readable until freed.
        let live = set.live.iter().map(|(&seq, &(mark, _, _))| (seq, mark));
        let front_seq = self.front_seq.load(Ordering::Acquire);
        !needed(live, front_seq, self.front_id.load(Ordering::Acquire))
    }

    /// Records the retire queue's length and first entry (the caller holds
    /// the state lock).
    fn note_queue(&self, queue: &std::collections::VecDeque<(u64, NodeId)>) {
        let (seq, id) = queue.front().map_or((0, 0), |&(seq, id)| (seq, id.0));
        self.front_seq.store(seq, Ordering::Release);
        self.front_id.store(id, Ordering::Release);
        self.retired.store(queue.len() as u64, Ordering::Release);
    }

    pub(super) fn live(&self) -> usize {
        self.set.lock().live.len()
    }
}

/// A pin on the nodes of one moment (see the module documentation).
/// Cloning shares the pin; dropping the last handle frees what only it
/// kept (a few nodes itself, more through the release thread).
pub struct Pin<N: Codec> {
    shared: Arc<Shared<N>>,
    seq: u64,
    mark: NodeId,
}

impl<N: Codec> Pin<N> {
    /// The next node id when the pin was taken: every node it keeps has a
    /// smaller one.
    pub fn mark(&self) -> NodeId {
        self.mark
    }
}

impl<N: Codec> Clone for Pin<N> {
    fn clone(&self) -> Self {
        self.shared.pins.share(self.seq);
        Pin {
            shared: self.shared.clone(),
            seq: self.seq,
            mark: self.mark,
        }
    }
}

impl<N: Codec> Drop for Pin<N> {
    /// Drops the handle. If the last one leaves retired nodes that no
    /// live pin needs, it frees them: itself if they fit in one slice, else
    /// through the release thread, so that the dropping thread (a reader,
    /// most often) never frees more than one slice.
    ///
    /// Most drops free nothing: between checkpoints the rollback base pins
    /// every node the writer copies, and the views of readers pinned after
    /// it free nothing when dropped; those take no state lock and wake no
    /// thread. Waking the thread at each of them slowed the reads of a
    /// YCSB A mix (every read a view of its own, beside a thread that
    /// updates and commits) from 6.7-8.5 µs to 11-19 µs (`benches/compare`,
    /// larix-none, alternated twice each).
    fn drop(&mut self) {
        let pins = &self.shared.pins;
        if !pins.remove(self.seq) {
            return;
        }
        if pins.retired.load(Ordering::Acquire) <= RELEASE_SLICE as u64 {
            self.shared.release_retired_in_slices();
        } else {
            self.shared.release_later();
        }
    }
}

impl<N: Codec> std::fmt::Debug for Pin<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pin")
            .field("seq", &self.seq)
            .field("mark", &self.mark)
            .finish()
    }
}

impl<N: Codec> NodeStore<N> {
    /// Pins every node live now, as it is now, until the returned pin (and
    /// its clones) are dropped (P1, P2). The caller holds the writer's lock
    /// shared: no operation may be half applied.
    pub fn pin(&self) -> Pin<N> {
        self.pin_as(false)
    }

    /// [`NodeStore::pin`] for a state nothing reads in the normal course
    /// (a rollback base): the nodes only it keeps leave the clean cache
    /// when retired or moved, and are reread from their blobs if needed.
    pub fn pin_cold(&self) -> Pin<N> {
        self.pin_as(true)
    }

    fn pin_as(&self, cold: bool) -> Pin<N> {
        let mark = self.shared.next_id.load(Ordering::Relaxed);
        let seq = self.shared.pins.add(mark, cold);
        Pin {
            shared: self.shared.clone(),
            seq,
            mark: NodeId(mark),
        }
    }

    /// Whether node `id` is frozen by a live pin: it must be copied, never
    /// edited in place (P1).
    pub fn is_frozen(&self, id: NodeId) -> bool {
        self.shared.pins.protects(id)
    }

    /// The number of live pins.
    pub fn pins(&self) -> usize {
        self.shared.pins.live()
    }
}

impl<N: Codec> Shared<N> {
    /// Retires `entry`, the entry of `id`, if a live pin may reach it
    /// (P2); returns whether it did.
    pub(super) fn retire(&self, st: &mut State<N>, id: NodeId, entry: TableEntry) -> bool {
        if !self.pins.protects(id) {
            return false;
        }
        let seq = self.pins.next_seq();
        st.table.set(
            id,
            TableEntry {
                refcount: 0,
                ..entry
            },
        );
        // A clean copy is on disk: a cold pin that needs it rereads it, and
        // the cache keeps room for live nodes; a reader's pin will likely
        // ask for it again, so it stays cached while one may (evicted like
        // any other). A dirty one stays queued, to be written like any
        // other.
        if !self.pins.may_read(id) {
            self.cache.remove(id);
        }
        st.retired.insert(id, seq);
        st.retire_queue.push_back((seq, id));
        self.pins.note_queue(&st.retire_queue);
        true
    }

    /// Whether `id` is a retired node that no pin of `live` (their
    /// [`Pins::live_marks`]) needs: the release thread frees it, once the
    /// nodes retired before it are freed.
    pub(super) fn releasable(&self, st: &State<N>, live: &[(u64, u64)], id: NodeId) -> bool {
        st.retired
            .get(&id)
            .is_some_and(|&seq| !needed(live.iter().copied(), seq, id.0))
    }

    /// The record bytes per segment of the retired nodes no live pin needs
    /// any more ([`Shared::releasable`]), weighed without freeing them (a
    /// lookup a node where freeing took 1.3-3 µs).
    pub(super) fn releasable_bytes(&self, st: &State<N>) -> FxHashMap<SegmentId, u64> {
        let live = self.pins.live_marks();
        let mut out = FxHashMap::default();
        for (&id, &seq) in &st.retired {
            if needed(live.iter().copied(), seq, id.0) {
                continue;
            }
            if let Some(loc) = st.table.get(id).and_then(|e| e.loc) {
                *out.entry(loc.segment).or_insert(0) += loc.record_len();
            }
        }
        out
    }

    /// Has the release thread free the retired nodes no live pin needs
    /// any more; a store without one (read-only, or closing) frees them
    /// here.
    fn release_later(&self) {
        let releases = self.releases.lock();
        let woken = match releases.as_ref().map(|tx| tx.try_send(())) {
            // Full: a release is due already, and covers this pin's nodes.
            Some(Ok(())) | Some(Err(TrySendError::Full(()))) => true,
            Some(Err(TrySendError::Disconnected(()))) | None => false,
        };
        drop(releases);
        if !woken {
            self.release_retired_in_slices();
        }
    }

    /// Frees what pins dropped so far let go, if anything waits for pins
    /// to drop: the release thread may not have got to it yet.
    pub(super) fn release_now(&self) {
        if self.pins.retired.load(Ordering::Acquire) > 0 {
            self.release_retired_in_slices();
        }
    }

    /// The release thread: frees the retired nodes no live pin needs any
    /// more each time a pin's last handle is dropped (while the store is
    /// open), so that a reader dropping a view that kept a whole tree's
    /// old leaves does not spend tens of milliseconds freeing them.
    pub(super) fn releaser(&self, wakes: Receiver<()>) {
        while wakes.recv().is_ok() {
            if !self.closing.load(Ordering::Relaxed) {
                self.release_retired_in_slices();
            }
        }
    }

    /// Frees the retired nodes no live pin needs any more, as
    /// [`Shared::release_retired`] does, [`RELEASE_SLICE`] at a time: the
    /// state lock is held for one slice only, and the nodes' decoded
    /// copies are dropped after it is released, so a writer waits for one
    /// slice at most while the release thread frees what a dropped view
    /// kept.
    pub(super) fn release_retired_in_slices(&self) {
        let mut freed = Vec::new();
        loop {
            let more = {
                let mut st = self.state.lock();
                self.release_retired(&mut st, RELEASE_SLICE, &mut freed)
            };
            freed.clear();
            if !more {
                return;
            }
        }
    }

    /// Frees the retired nodes no live pin needs any more, in the order
    /// they were retired, up to the first one still needed (a node is
    /// needed by a live pin taken before it was retired whose mark is above
    /// its id) or up to `limit` of them; returns whether it stopped at the
    /// limit. The decoded copies the cache and the dirty queue held go to
    /// `freed`, for the caller to drop once it has released the state lock.
    pub(super) fn release_retired(
        &self,
        st: &mut State<N>,
        limit: usize,
        freed: &mut Vec<Arc<N>>,
    ) -> bool {
        let live = self.pins.live_marks();
        let mut ids = Vec::new();
        let mut at_limit = false;
        while let Some(&(seq, id)) = st.retire_queue.front() {
            if needed(live.iter().copied(), seq, id.0) {
                break;
            }
            if ids.len() == limit {
                at_limit = true;
                break;
            }
            st.retire_queue.pop_front();
            // A node revived (and perhaps retired again since) is not this
            // retirement's to free.
            if st.retired.get(&id) == Some(&seq) {
                st.retired.remove(&id);
                st.table.remove(id);
                st.inflight.forget(id);
                freed.extend(self.cache.remove(id));
                ids.push(id);
            }
        }
        if !ids.is_empty() {
            let mut dirty = self.dirty.write();
            freed.extend(ids.iter().filter_map(|&id| dirty.remove(id)));
        }
        self.pins.note_queue(&st.retire_queue);
        at_limit
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_codec::{node, SizedNode};
    use super::Pin;
    use crate::NodeStore;
    use std::time::{Duration, Instant};

    /// A store with `n` nodes, pinned by `pins` pins taken one after the
    /// other, then freed: retired, kept for the pins.
    fn retired_under(n: usize, pins: usize) -> (NodeStore<SizedNode>, Vec<Pin<SizedNode>>) {
        let store = NodeStore::<SizedNode>::in_memory();
        let ids: Vec<_> = (0..n).map(|_| store.allocate()).collect();
        for &id in &ids {
            store.put(id, node(64)).unwrap();
        }
        let pins = (0..pins).map(|_| store.pin()).collect();
        for &id in &ids {
            store.free(id).unwrap();
        }
        assert_eq!(store.retired(), n as u64);
        (store, pins)
    }

    /// Drops `pin` on another thread while this one holds the state lock;
    /// fails if the drop waits for it.
    fn drop_without_the_state_lock(store: &NodeStore<SizedNode>, pin: Pin<SizedNode>) {
        let (dropped, done) = crossbeam_channel::bounded(1);
        let _state = store.shared.state.lock();
        std::thread::spawn(move || {
            drop(pin);
            dropped.send(()).unwrap();
        });
        done.recv_timeout(Duration::from_secs(10))
            .expect("the drop waited for the state lock");
    }

    #[test]
    fn a_pin_dropped_while_an_older_pin_needs_what_waits_takes_no_lock() {
        // A few nodes, which the last pin dropped frees itself: the newer
        // pin's drop would take the state lock if it tried.
        let (store, mut pins) = retired_under(100, 2);
        let newer = pins.pop().unwrap();
        drop_without_the_state_lock(&store, newer);
        assert_eq!(store.retired(), 100, "freed what the older pin needs");
        drop(pins);
        assert_eq!(store.retired(), 0, "the last drop left a few nodes");
        assert_eq!(store.stats().nodes, 0);
    }

    #[test]
    fn the_last_pin_dropped_leaves_the_freeing_to_the_release_thread() {
        let (store, mut pins) = retired_under(1_000, 1);
        drop_without_the_state_lock(&store, pins.pop().unwrap());
        // `retired` frees nothing itself: the release thread does.
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.retired() > 0 {
            assert!(Instant::now() < deadline, "nothing freed the retired nodes");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(store.stats().nodes, 0);
        assert_eq!(store.pins(), 0);
    }
}
