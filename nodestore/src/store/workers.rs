//! The workers: threads that filter and write the nodes pushed out of the
//! dirty queue, and land each write in the node table.
//!
//! A worker takes [`Job`]s from the bounded channel, a few to a message,
//! and for each encodes the node, runs the filter pipeline and appends the
//! blob to the current segment (the writer has its own lock; a worker
//! never holds it together with the state lock). It then takes the state
//! lock to land the write: the table points at the blob only if the job is
//! still the newest launch of a live id (S5), and the node moves to the
//! clean cache unless a newer version waits in the dirty queue (S4). A
//! failure is latched (S8).

use super::inflight::Job;
use super::{bump, Shared};
use crate::{node_digest, BlobKind, Codec, Location, StoreError, TableEntry};
use crossbeam_channel::{Receiver, Sender};
use larix_filters::Context;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Jobs handed to the workers in one message, at most. A checkpoint hands
/// over tens of thousands of nodes: one message per node woke the sender
/// (blocked on the full channel) and a worker once per node: under `perf`
/// (`examples/reads --writer`), 170 of the 226 samples taken in checkpoint
/// calls (the load's and the writer's) were in the channel's send,
/// spinning and parking. With 32 to a message, a bulk load and its commit
/// took a sixth less time.
const JOB_CHUNK: usize = 32;

/// Hands jobs to the workers through `tx`, [`JOB_CHUNK`] to a message.
/// Called without the state lock: a full channel waits for workers that
/// need that lock to finish.
pub(super) fn send<N>(tx: &Sender<Vec<Job<N>>>, jobs: Vec<Job<N>>) {
    let mut jobs = jobs.into_iter();
    loop {
        let chunk: Vec<_> = jobs.by_ref().take(JOB_CHUNK).collect();
        if chunk.is_empty() {
            break;
        }
        // The workers hold the receiver until the store is dropped.
        tx.send(chunk).expect("workers outlive the store's handle");
    }
}

impl<N: Codec> Shared<N> {
    /// A worker: filters and writes jobs until the store is dropped.
    pub(super) fn work(&self, chunks: Receiver<Vec<Job<N>>>) {
        while let Ok(jobs) = chunks.recv() {
            for job in jobs {
                if self.closing.load(Ordering::Relaxed) {
                    continue;
                }
                let result = self.write_node(&job);
                self.land(job, result);
            }
        }
    }

    /// Encodes, filters and appends one node.
    fn write_node(&self, job: &Job<N>) -> Result<(Location, u64), StoreError> {
        let raw = job.node.encoded();
        let body = match self.pipeline.is_empty() {
            true => std::borrow::Cow::Borrowed(&raw[..]),
            false => self.pipeline.encode(&Context::new(job.id.0), &raw)?.into(),
        };
        let loc = self
            .writer
            .lock()
            .append(&*self.backend, BlobKind::Node, job.id.0, &body)?;
        let c = &self.counters;
        bump(&c.blobs_written, 1);
        bump(&c.bytes_unfiltered, raw.len() as u64);
        bump(&c.bytes_filtered, body.len() as u64);
        Ok((loc, node_digest(&body)))
    }

    /// Records the outcome of a write: the table points at it only if it
    /// is still the newest version of a live node.
    fn land(&self, job: Job<N>, result: Result<(Location, u64), StoreError>) {
        let mut st = self.state.lock();
        match result {
            Ok((loc, digest)) => {
                let frozen = self.land_frozen(&mut st, &job, loc, digest);
                if !frozen {
                    bump(&self.counters.bytes_evicted, loc.record_len());
                }
                if st.inflight.land_if_newest(&job) {
                    if let Some(entry) = st.table.get(job.id) {
                        let entry = TableEntry {
                            loc: Some(loc),
                            refcount: entry.refcount,
                            digest,
                        };
                        // A location the checkpoint writes leaves the live
                        // chunk as clean as it was.
                        if frozen {
                            st.table.set_unmarked(job.id, entry);
                        } else {
                            st.table.set(job.id, entry);
                        }
                    }
                    let dirty = self.dirty.read();
                    let (queued, dirty_bytes) = (dirty.has_entry(job.id), dirty.bytes);
                    drop(dirty);
                    if !queued {
                        self.cache.insert(job.id, job.node);
                        let room = self.budgets.cache_room(dirty_bytes);
                        self.cache.trim(room);
                    }
                }
            }
            Err(e) => {
                // The node stays in the in-flight map, readable, until the
                // store is reopened; the failure blocks writes and commits.
                if st.failure.is_none() {
                    st.failure = Some(Arc::new(e));
                }
            }
        }
        drop(st);
        self.settled.notify_all();
    }

    /// Gives the frozen table of a running checkpoint the location of a
    /// write it awaits, whether or not the write is still the newest (the
    /// checkpoint needs the version of the freeze); says whether it did.
    fn land_frozen(
        &self,
        st: &mut super::State<N>,
        job: &Job<N>,
        loc: Location,
        digest: u64,
    ) -> bool {
        let Some(frozen) = st.frozen.as_mut() else {
            return false;
        };
        if frozen.awaiting.get(&job.id) != Some(&job.seq) {
            return false;
        }
        frozen.awaiting.remove(&job.id);
        frozen.table.set_location(job.id, loc, digest);
        st.frozen_bytes = st.frozen_bytes.saturating_sub(job.node.mem_size());
        true
    }

    /// Latches `e`, the failure of a commit or compaction, and returns the
    /// error its caller reports ([`StoreError::CommitFailed`], sharing the
    /// cause with the latched failure).
    pub(super) fn fail(&self, e: StoreError) -> StoreError {
        let cause = Arc::new(e);
        self.latch(StoreError::CommitFailed(cause.clone()));
        StoreError::CommitFailed(cause)
    }

    pub(super) fn latch(&self, e: StoreError) {
        let mut st = self.state.lock();
        if st.failure.is_none() {
            st.failure = Some(Arc::new(e));
        }
        drop(st);
        self.settled.notify_all();
    }
}
