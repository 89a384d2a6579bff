//! Checkpoints: the protocol that makes the nodes and catalog of a
//! committed state durable in the segments, so the commit log before it
//! can go. What `commit` did before the log; now it runs in the background.
//!
//! 1. [`freeze`](NodeStore::freeze), with the forest's writer lock held at
//!    a commit boundary (so the state is a committed one): the blobs the
//!    policy's share of compaction will copy chosen, their table chunks
//!    marked changed ([`NodeStore::plan_evacuation`]); a new log file for
//!    the records after this point; a write launched for every dirty node
//!    (in the in-flight map, where reads find it); the table's changed
//!    chunks taken out as they are ([`NodeTable::extract_dirty`]); the
//!    writes the frozen table still needs locations from noted. Brief: no
//!    I/O but listing the segments and the new log file, and no wait for
//!    the workers.
//! 2. In the checkpoint thread, while tree operations go on: the launched
//!    writes handed to the workers (a full channel waits here, not under
//!    the caller's lock); the compaction step's blobs copied
//!    ([`Shared::evacuate`]), each copy filling in the frozen table as
//!    well as the live one, so the segments it empties go with this
//!    checkpoint (`docs/design.md`, "Compaction"); then
//!    [`await_frozen`](Shared::await_frozen) until every noted write has
//!    landed (each landing fills in the frozen table as well as the live
//!    one), then [`write_metadata`](Shared::write_metadata): the frozen
//!    chunks, the directory and the catalog appended, and the superblock
//!    that points at them with the log position replay starts from;
//! 3. [`switch`](Shared::switch): segments synced, then the other slot
//!    written and synced;
//! 4. [`settle`](Shared::settle): the committed state recorded; the log
//!    files before the new one and the segments compaction emptied removed.
//!
//! At most one checkpoint runs at a time. Any failure is latched: the
//! previous checkpoint and the log after it stay in force on disk.

use super::compact::{self, Evacuation};
use super::{bump, seal, NodeStore, Shared, META_CONTEXT};
use crate::format::table::CHUNK_BYTES;
use crate::{
    write_slot, BlobKind, Codec, Digest, Directory, FileId, FormatError, Location, LogId, NodeId,
    NodeTable, SegmentWriter, StoreError, Superblock,
};
use larix_filters::Context;
use rustc_hash::FxHashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// Node bytes written to segments since the last checkpoint that make one
/// due when more than the live bytes, however small the store.
const SEGMENT_GROWTH_MIN: u64 = 256 << 10;

/// A state frozen at a commit boundary, on its way to disk.
pub(super) struct Frozen<N> {
    /// The writes of the nodes dirty at the freeze, launched but not yet
    /// handed to the workers: the checkpoint thread hands them over, so
    /// that the freeze never waits for the workers (a full channel) while
    /// its caller holds the forest's writer lock.
    pub(super) jobs: Vec<super::Job<N>>,
    /// The table's chunks changed since the last checkpoint, as they were.
    pub(super) table: NodeTable,
    /// The writes (id, sequence number) whose locations `table` needs.
    pub(super) awaiting: FxHashMap<NodeId, u64>,
    /// The catalog of the frozen state.
    catalog: Vec<u8>,
    /// The next node id at the freeze.
    next_node: NodeId,
    /// The log file and record replay starts from after this checkpoint.
    log_file: LogId,
    log_start: u64,
    /// Where the key check blob lay.
    pub(super) key_check: Option<Location>,
    /// The policy's compaction step, chosen at the freeze: the checkpoint
    /// thread copies the blobs, filling in `table` as it goes.
    evacuation: Option<Evacuation>,
    /// The dirty nodes no pin needs any more, left unwritten at the freeze
    /// for the checkpoint thread to drop.
    dead: Vec<(NodeId, Arc<N>)>,
}

impl<N: Codec> NodeStore<N> {
    /// Checkpoints the current state, which the caller guarantees is a
    /// committed one (every change so far is in the log, no group is
    /// open): freezes it now and writes it in the background, or before
    /// returning if `wait`. Waits first for a checkpoint still running.
    /// The caller holds the writer's lock (no tree operation runs) until
    /// this returns.
    ///
    /// # Errors
    /// A latched failure, or a failure of the freeze (latched in turn).
    pub fn checkpoint(&self, catalog: &[u8], wait: bool) -> Result<(), StoreError> {
        self.writable()?;
        self.wait_checkpoint()?;
        self.freeze(catalog).map_err(|e| self.shared.fail(e))?;
        self.shared.kick_checkpointer();
        if wait {
            self.wait_checkpoint()?;
        }
        Ok(())
    }

    /// Whether a checkpoint is due: none is running and the log has grown
    /// past the configured size since the last one, or has grown at all and
    /// the configured interval has passed.
    pub fn checkpoint_due(&self) -> bool {
        let (grown, live) = {
            let st = self.shared.state.lock();
            if self.shared.read_only || st.checkpoint_running {
                return false;
            }
            let written = self.shared.counters.bytes_filtered.load(Ordering::Relaxed);
            let live: u64 = st.table.live_by_segment().map(|(_, b)| b).sum();
            (written - st.filtered_at_checkpoint, live)
        };
        let (bytes, secs) = self.shared.log.since_checkpoint();
        let policy = &self.shared.checkpoints;
        bytes >= policy.log_bytes
            || (bytes > 0 && secs >= policy.interval.as_secs_f64())
            // Only a checkpoint lets compaction reclaim what node writes
            // between checkpoints left dead: bound it by what is live.
            || grown >= (live / 2).max(SEGMENT_GROWTH_MIN)
    }

    /// Whether the running checkpoint is overdue: the queue's evictions
    /// written since it was frozen, which only the next checkpoint lets
    /// compaction reclaim, have passed what makes one due. A writer that
    /// outruns the checkpoint thread so waits for it at the end of a
    /// commit ([`NodeStore::wait_checkpoint`], without the forest's lock),
    /// and the segments stay bounded by the live bytes. In the compaction
    /// policy's test (a 256 KiB cache, beside the other compaction tests)
    /// the worst space amplification was 2.92-3.98 without the wait (40
    /// runs) and 2.93-3.57 with it (46 runs).
    pub fn checkpoint_overdue(&self) -> bool {
        let st = self.shared.state.lock();
        if !st.checkpoint_running {
            return false;
        }
        let evicted = self.shared.counters.bytes_evicted.load(Ordering::Relaxed);
        let live: u64 = st.table.live_by_segment().map(|(_, b)| b).sum();
        evicted - st.evicted_at_freeze >= (live / 2).max(SEGMENT_GROWTH_MIN)
    }

    /// Waits until no checkpoint runs.
    ///
    /// # Errors
    /// The latched failure, if one stopped it (or an earlier one).
    pub fn wait_checkpoint(&self) -> Result<(), StoreError> {
        let mut st = self.shared.state.lock();
        while st.checkpoint_running && st.failure.is_none() {
            self.shared.settled.wait(&mut st);
        }
        st.failed()
    }

    /// Freezes the current state for a checkpoint (L5: the caller holds the
    /// writer's lock at a commit boundary, so it is the state after the
    /// last record logged); the checkpoint thread hands the writes of the
    /// dirty nodes to the workers.
    fn freeze(&self, catalog: &[u8]) -> Result<(), StoreError> {
        let evacuation = self.plan_for_checkpoint()?;
        let (log_file, log_start) = self.shared.roll_log()?;
        let pins = self.shared.pins.live_marks();
        let mut st = self.shared.state.lock();
        st.failed()?;
        // A retired node no pin needs is not written: the release thread
        // frees it (when the base moves, every copy a batch made under a
        // snapshot since the last checkpoint; writing them wrote 6,781
        // nodes where 272 were live in `tests/snapshots.rs`), and the
        // checkpoint thread drops it (190,000 of them beside a writer of
        // 1,000-pair batches: not under the caller's lock).
        let (dirty, dead): (Vec<_>, Vec<_>) = self
            .shared
            .dirty
            .write()
            .drain()
            .into_iter()
            .partition(|&(id, _)| !self.shared.releasable(&st, &pins, id));
        let jobs: Vec<_> = dirty
            .into_iter()
            .map(|(id, node)| st.inflight.launch(id, node))
            .collect();
        let awaiting: FxHashMap<NodeId, u64> = st.inflight.launches().collect();
        st.frozen_bytes = st.inflight.bytes();
        // Every node still to land changes its location in the frozen table.
        for &id in awaiting.keys() {
            st.table.mark_dirty_id(id);
        }
        let mut table = st.table.extract_dirty();
        // No checkpoint holds a retired node (P3): it is kept for the pins
        // of this session only. The release thread frees those no pin
        // needs any more: freeing them here, under the writer's lock, made
        // this part of the freeze take 164-187 ms where it takes 54-110
        // without, for the 190,000 a writer of 1,000-pair batches beside
        // readers retires between two checkpoints (`examples/reads
        // --writer --view-per-read`).
        for &id in st.retired.keys() {
            table.remove(id);
        }
        st.evicted_at_freeze = self.shared.counters.bytes_evicted.load(Ordering::Relaxed);
        st.frozen = Some(Frozen {
            jobs,
            table,
            awaiting,
            catalog: catalog.to_vec(),
            next_node: NodeId(self.shared.next_id.load(Ordering::Relaxed)),
            log_file,
            log_start,
            key_check: st.key_check,
            evacuation,
            dead,
        });
        st.checkpoint_running = true;
        Ok(())
    }

    /// Chooses the policy's compaction step of a checkpoint: about as much
    /// as the checkpoint writes (what is dirty and what was written since
    /// the last checkpoint), at least a little and at most the policy's
    /// bound. Compaction then at most doubles the write volume, and a
    /// small checkpoint stays small.
    ///
    /// The retired nodes no pin needs any more (the old rollback base's,
    /// whose pin the caller just dropped) are weighed as dead but left to
    /// the release thread to free: freeing them here, under the writer's
    /// lock, took 250-560 ms for the 190,000 a writer of 1,000-pair
    /// batches retires between two checkpoints beside readers
    /// (`examples/reads --writer --view-per-read`).
    fn plan_for_checkpoint(&self) -> Result<Option<Evacuation>, StoreError> {
        let Some(policy) = self.shared.policy else {
            return Ok(None);
        };
        let written = self
            .shared
            .counters
            .bytes_unfiltered
            .load(Ordering::Relaxed);
        let (dirty, since) = {
            let st = self.shared.state.lock();
            let dirty = self.shared.dirty.read().bytes as u64;
            (dirty, written - st.written_at_checkpoint)
        };
        let budget = (dirty + since).clamp(compact::POLICY_MIN_BYTES, policy.bytes_per_commit);
        self.plan_evacuation(
            self.shared.segment_usage(false)?,
            policy.max_live_ratio,
            budget,
            compact::POLICY_SEAL_MIN_BYTES,
        )
        .map(Some)
    }
}

impl<N: Codec> Shared<N> {
    /// The checkpoint thread: runs each frozen checkpoint until the store
    /// is dropped, handing its writes to the workers through `jobs`.
    pub(super) fn checkpointer(
        &self,
        kicks: crossbeam_channel::Receiver<()>,
        jobs: &crossbeam_channel::Sender<Vec<super::Job<N>>>,
    ) {
        while kicks.recv().is_ok() {
            if let Err(e) = self.run_checkpoint(jobs) {
                self.latch(e);
            }
            self.state.lock().checkpoint_running = false;
            self.settled.notify_all();
        }
    }

    /// Wakes the checkpoint thread.
    fn kick_checkpointer(&self) {
        if let Some(tx) = self.kicks.lock().as_ref() {
            // The thread holds the receiver until the store is dropped.
            let _ = tx.send(());
        }
    }

    fn run_checkpoint(
        &self,
        tx: &crossbeam_channel::Sender<Vec<super::Job<N>>>,
    ) -> Result<(), StoreError> {
        let jobs = self
            .state
            .lock()
            .frozen
            .as_mut()
            .map(|f| std::mem::take(&mut f.jobs))
            .unwrap_or_default();
        super::workers::send(tx, jobs);
        // While the workers write the frozen nodes.
        let (evacuation, dead) = self
            .state
            .lock()
            .frozen
            .as_mut()
            .map(|f| (f.evacuation.take(), std::mem::take(&mut f.dead)))
            .unwrap_or_default();
        drop(dead);
        if let Some(evacuation) = evacuation {
            match self.evacuate(evacuation) {
                // A damaged live blob keeps its segment; `check` reports it.
                Ok(_) | Err(StoreError::Format(FormatError::Blob { .. })) => {}
                Err(e) => return Err(e),
            }
        }
        let frozen = self.await_frozen()?;
        let mut writer = self.writer.lock();
        let (superblock, directory) = self.write_metadata(&mut writer, &frozen)?;
        self.switch(&mut writer, &superblock)?;
        drop(writer);
        self.settle(superblock, directory, frozen)
    }

    /// Waits until every write the frozen table needs has landed (S6: the
    /// chunks a checkpoint writes hold a location for every live id), and
    /// takes the frozen state.
    fn await_frozen(&self) -> Result<Frozen<N>, StoreError> {
        let mut st = self.state.lock();
        loop {
            st.failed()?;
            let done = st.frozen.as_ref().is_none_or(|f| f.awaiting.is_empty());
            if done {
                break;
            }
            bump(&self.counters.inflight_waits, 1);
            self.settled.wait(&mut st);
        }
        st.frozen_bytes = 0;
        st.frozen.take().ok_or_else(|| StoreError::Io {
            file: "checkpoint".into(),
            source: std::io::Error::other("no frozen state to write"),
        })
    }

    /// Appends the frozen chunks, the directory and the filtered catalog,
    /// and returns the superblock that points at them (each pinned by
    /// digest, S12) with the directory it describes.
    fn write_metadata(
        &self,
        writer: &mut SegmentWriter,
        frozen: &Frozen<N>,
    ) -> Result<(Superblock, Directory), StoreError> {
        let backend = &*self.backend;
        let catalog_body = self
            .pipeline
            .encode(&Context::new(META_CONTEXT), &frozen.catalog)?;
        let (mut directory, previous) = {
            let st = self.state.lock();
            (
                st.committed.directory.clone(),
                st.committed.superblock.clone(),
            )
        };
        let (empty, full): (Vec<u64>, Vec<u64>) = frozen
            .table
            .dirty_chunks()
            .into_iter()
            .partition(|&idx| frozen.table.chunk_len(idx) == 0);
        for idx in empty {
            directory.remove(idx);
        }
        // A write's worth of chunks at a time: after random changes most
        // chunks of a large table are dirty, and a write each made
        // thousands of small writes under the segment writer's lock.
        let size = |_: &u64| CHUNK_BYTES as u64;
        for group in super::workers::write_runs(&full, size) {
            let encoded = group
                .iter()
                .map(|&idx| frozen.table.encode_chunk(idx))
                .collect::<Result<Vec<_>, _>>()?;
            let records: Vec<_> = group
                .iter()
                .zip(&encoded)
                .map(|(&idx, bytes)| (BlobKind::TableChunk, idx, &bytes[..]))
                .collect();
            let locs = writer.append_all(backend, &records)?;
            for ((&idx, bytes), loc) in group.iter().zip(&encoded).zip(locs) {
                directory.insert(idx, loc, Digest::of(bytes));
            }
        }
        let directory_body = directory.encode();
        let table_directory = if directory.is_empty() {
            None
        } else {
            Some(writer.append(backend, BlobKind::TableDirectory, 0, &directory_body)?)
        };
        let catalog_loc = writer.append(backend, BlobKind::Catalog, 0, &catalog_body)?;
        let superblock = Superblock {
            // The slot alternates with the last superblock written, so a
            // torn write can only damage the slot that is not in force.
            generation: previous.generation.next(),
            next_node: frozen.next_node,
            next_segment: writer
                .segment()
                .next()
                .ok_or(FormatError::SegmentIdsExhausted {
                    last: writer.segment().0,
                })?,
            table_directory,
            catalog: Some(catalog_loc),
            key_check: frozen.key_check,
            table_directory_digest: match table_directory {
                Some(_) => Digest::of(&directory_body),
                None => Digest::default(),
            },
            catalog_digest: Digest::of(&catalog_body),
            log_file: frozen.log_file,
            log_start: frozen.log_start,
            ..previous
        };
        Ok((superblock, directory))
    }

    /// Syncs what was appended, then writes and syncs `superblock`'s slot:
    /// from here on it is the checkpoint in force.
    fn switch(
        &self,
        writer: &mut SegmentWriter,
        superblock: &Superblock,
    ) -> Result<(), StoreError> {
        self.timed_sync(|| writer.sync(&*self.backend))?;
        self.write_superblock(superblock)
    }

    /// Records the new checkpoint and removes what it no longer needs: the
    /// log files before its own, and the segments compaction emptied (S9).
    fn settle(
        &self,
        superblock: Superblock,
        directory: Directory,
        frozen: Frozen<N>,
    ) -> Result<(), StoreError> {
        let mut st = self.state.lock();
        st.written_at_checkpoint = self.counters.bytes_unfiltered.load(Ordering::Relaxed);
        st.filtered_at_checkpoint = self.counters.bytes_filtered.load(Ordering::Relaxed);
        st.committed.directory = directory;
        st.committed.catalog = frozen.catalog;
        st.committed.superblock = superblock;
        drop(st);
        bump(&self.counters.checkpoints, 1);
        self.log_checkpointed(frozen.log_start);
        super::recovery::remove_old_logs(&*self.backend, frozen.log_file)?;
        self.remove_obsolete()
    }

    /// Runs a sync, counting the time it takes.
    pub(super) fn timed_sync(
        &self,
        f: impl FnOnce() -> Result<(), FormatError>,
    ) -> Result<(), StoreError> {
        let start = Instant::now();
        let result = f();
        bump(
            &self.counters.sync_nanos,
            start.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64,
        );
        Ok(result?)
    }

    /// Writes `sb` into its slot, sealed under the store's key, and syncs
    /// the superblock file.
    fn write_superblock(&self, sb: &Superblock) -> Result<(), StoreError> {
        let backend = &*self.backend;
        write_slot(backend, sb, &seal(&self.pipeline))?;
        self.timed_sync(|| {
            backend
                .sync(FileId::Superblock)
                .map_err(|e| FormatError::io(backend.name(FileId::Superblock), None, e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_codec::{node, SizedNode};
    use crate::format::table::CHUNK_ENTRIES;
    use crate::{FaultyBackend, NodeStore, StoreConfig};
    use larix_filters::Pipeline;
    use std::sync::Arc;
    use std::time::Duration;

    /// A checkpoint that only frees nodes writes the table chunks it
    /// changed a group at a time: one write per chunk made thousands of
    /// small writes after random changes to a large table.
    #[test]
    fn a_checkpoint_writes_the_table_chunks_in_groups() {
        let disk = FaultyBackend::new();
        let pipeline = Pipeline::new(&[]).unwrap();
        let store =
            NodeStore::<SizedNode>::open(Arc::new(disk.clone()), pipeline, StoreConfig::default())
                .unwrap();
        let chunks = 200;
        let ids: Vec<_> = (0..chunks * CHUNK_ENTRIES)
            .map(|_| {
                let id = store.allocate();
                store.put(id, node(8)).unwrap();
                id
            })
            .collect();
        store.checkpoint(b"catalog", true).unwrap();
        // One node freed in every chunk: every chunk changed, no node
        // written.
        for id in ids.iter().step_by(CHUNK_ENTRIES as usize) {
            store.free(*id).unwrap();
        }
        let writes = disk.writes();
        store.checkpoint(b"catalog", true).unwrap();
        let writes = disk.writes() - writes;
        assert!(writes < 20, "{writes} writes for {chunks} table chunks");
    }

    #[test]
    fn a_checkpoint_started_while_the_workers_are_busy_does_not_wait_for_them() {
        // One worker (the default), and more dirty nodes than its channel
        // holds.
        let store = Arc::new(NodeStore::<SizedNode>::in_memory());
        for _ in 0..5_000 {
            store.put(store.allocate(), node(64)).unwrap();
        }
        // The worker blocks on its first append while the writer's lock is
        // held here: the checkpoint's writes cannot drain.
        let appends = store.shared.writer.lock();
        let (started, done) = crossbeam_channel::bounded(1);
        let checkpointing = store.clone();
        std::thread::spawn(move || {
            let result = checkpointing.checkpoint(b"catalog", false);
            started.send(result).unwrap();
        });
        let result = done
            .recv_timeout(Duration::from_secs(10))
            .expect("the checkpoint waited for the workers");
        result.unwrap();
        drop(appends);
        store.wait_checkpoint().unwrap();
        assert_eq!(store.stats().checkpoints, 1);
    }
}
