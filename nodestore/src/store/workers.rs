//! The workers: threads that filter and write the nodes pushed out of the
//! dirty queue, and land each write in the node table.
//!
//! A worker takes [`Job`]s from the bounded channel, a few to a message,
//! encodes each node and runs the filter pipeline, and appends the
//! message's blobs to the current segment in one write (of at most
//! [`WRITE_BYTES`], but for a single larger blob; the writer has its
//! own lock; a worker never holds it together with the state lock). It
//! then takes the state lock once to land the writes: the table points at
//! a blob only if its job is still the newest launch of a live id (S5),
//! and the node moves to the clean cache unless a newer version waits in
//! the dirty queue (S4). A failure is latched (S8).

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

/// The most bytes of blobs appended with one write (a single larger blob
/// still goes alone): by a worker, a compaction step and a checkpoint's
/// table chunks. What each holds at once beside the nodes themselves stays
/// bounded when the nodes are large (a large value's chunks are a mebibyte
/// each).
pub(super) const WRITE_BYTES: u64 = 1 << 20;

/// `items` in order, cut into runs whose sizes (`size`) add up to at most
/// [`WRITE_BYTES`], but for a run of one.
pub(super) fn write_runs<T>(items: &[T], size: impl Fn(&T) -> u64) -> Vec<&[T]> {
    let mut runs = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        let n = size(item);
        if i > start && bytes + n > WRITE_BYTES {
            runs.push(&items[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += n;
    }
    if start < items.len() {
        runs.push(&items[start..]);
    }
    runs
}

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
    /// A worker: filters and writes jobs until the store is dropped, a
    /// message at a time (in [`write_runs`], for large nodes).
    pub(super) fn work(&self, chunks: Receiver<Vec<Job<N>>>) {
        while let Ok(jobs) = chunks.recv() {
            if self.closing.load(Ordering::Relaxed) {
                continue;
            }
            for run in write_runs(&jobs, |job| job.node.mem_size() as u64) {
                let written = self.write_nodes(run);
                self.land(run, written);
            }
        }
    }

    /// Encodes and filters `jobs`' nodes and appends them in one write
    /// (`SegmentWriter::append_all`); returns each one's location and
    /// digest.
    fn write_nodes(&self, jobs: &[Job<N>]) -> Result<Vec<(Location, u64)>, StoreError> {
        let raws: Vec<_> = jobs.iter().map(|job| job.node.encoded()).collect();
        let bodies = jobs
            .iter()
            .zip(&raws)
            .map(|(job, raw)| match self.pipeline.is_empty() {
                true => Ok(std::borrow::Cow::Borrowed(&raw[..])),
                false => Ok(self.pipeline.encode(&Context::new(job.id.0), raw)?.into()),
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let records: Vec<_> = jobs
            .iter()
            .zip(&bodies)
            .map(|(job, body)| (BlobKind::Node, job.id.0, &body[..]))
            .collect();
        let locs = self.writer.lock().append_all(&*self.backend, &records)?;
        let c = &self.counters;
        bump(&c.blobs_written, jobs.len() as u64);
        bump(
            &c.bytes_unfiltered,
            raws.iter().map(|r| r.len() as u64).sum(),
        );
        bump(
            &c.bytes_filtered,
            bodies.iter().map(|b| b.len() as u64).sum(),
        );
        Ok(locs
            .into_iter()
            .zip(&bodies)
            .map(|(loc, body)| (loc, node_digest(body)))
            .collect())
    }

    /// Records the outcome of the writes of `jobs`: the table points at
    /// each only if it is still the newest version of a live node. A
    /// failure is latched (S8); the nodes stay in the in-flight map,
    /// readable, until the store is reopened.
    fn land(&self, jobs: &[Job<N>], written: Result<Vec<(Location, u64)>, StoreError>) {
        let mut st = self.state.lock();
        match written {
            Ok(locs) => {
                for (job, (loc, digest)) in jobs.iter().zip(locs) {
                    self.land_one(&mut st, job, loc, digest);
                }
            }
            Err(e) => {
                if st.failure.is_none() {
                    st.failure = Some(Arc::new(e));
                }
            }
        }
        drop(st);
        self.settled.notify_all();
    }

    /// Lands one write at `loc`, the state locked.
    fn land_one(&self, st: &mut super::State<N>, job: &Job<N>, loc: Location, digest: u64) {
        let frozen = self.land_frozen(st, job, loc, digest);
        if !frozen {
            bump(&self.counters.bytes_evicted, loc.record_len());
        }
        if !st.inflight.land_if_newest(job) {
            return;
        }
        if let Some(entry) = st.table.get(job.id) {
            let entry = TableEntry {
                loc: Some(loc),
                refcount: entry.refcount,
                digest,
            };
            // A location the checkpoint writes leaves the live chunk as
            // clean as it was.
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
            self.cache.insert(job.id, job.node.clone());
            let room = self.budgets.cache_room(dirty_bytes);
            self.cache.trim(room);
        }
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

#[cfg(test)]
mod tests {
    use super::{write_runs, WRITE_BYTES};

    #[test]
    fn write_runs_keep_order_within_the_byte_bound() {
        let lens = |runs: Vec<&[u64]>| runs.iter().map(|r| r.len()).collect::<Vec<_>>();
        let small = vec![WRITE_BYTES / 100; 250];
        assert_eq!(lens(write_runs(&small, |&n| n)), vec![100, 100, 50]);
        let mib = WRITE_BYTES;
        let mixed = [mib / 2, mib / 2, 1, mib * 3, 5, 5];
        assert_eq!(lens(write_runs(&mixed, |&n| n)), vec![2, 1, 1, 2]);
        let none: [u64; 0] = [];
        assert!(write_runs(&none, |&n| n).is_empty());
        let flat: Vec<u64> = write_runs(&mixed, |&n| n).concat();
        assert_eq!(flat, mixed);
    }
}
