//! Commit: the protocol that makes the current nodes and catalog the
//! committed state, as a list of named phases (S6, S7, S9).
//!
//! 1. [`compact_for_commit`](NodeStore::compact_for_commit): the policy's
//!    share of compaction;
//! 2. [`drain`](NodeStore::drain): every dirty node to the workers, and a
//!    wait until every write has landed;
//! 3. [`encode_table`](NodeStore::encode_table): the changed table chunks;
//! 4. [`write_metadata`](NodeStore::write_metadata): chunks, directory and
//!    catalog appended, and the superblock that points at them;
//! 5. [`switch`](NodeStore::switch): segments synced, then the other slot
//!    written and synced (not with [`Durability::None`]);
//! 6. [`settle`](NodeStore::settle): the table marked clean, the committed
//!    state recorded, emptied segments removed.
//!
//! The forest's catalog lock is held exclusively throughout, so nothing
//! else changes the store meanwhile. Any failure is latched: the previous
//! commit stays in force on disk.

use super::{bump, compact, seal, Durability, NodeStore, Shared, META_CONTEXT};
use crate::{
    write_slot, BlobKind, Codec, Digest, Directory, FileId, FormatError, NodeId, SegmentWriter,
    StoreError, Superblock,
};
use larix_filters::Context;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// The node table as a commit writes it.
struct TableWrite {
    /// The changed chunks that hold entries, encoded.
    chunks: Vec<(u64, Vec<u8>)>,
    /// The changed chunks left without entries: dropped from the directory.
    emptied: Vec<u64>,
    /// The directory of the last commit, to update.
    directory: Directory,
    /// The last superblock written: the new one alternates slots with it.
    previous: Superblock,
}

impl<N: Codec> NodeStore<N> {
    /// Makes the current nodes and `catalog` the committed state: writes
    /// every pending node, the changed node-table chunks, the directory and
    /// the catalog, syncs them, then writes and syncs the other superblock
    /// slot. With [`Durability::None`] the superblock waits for the next
    /// durable commit (or the drop of the store) and nothing is synced.
    ///
    /// # Errors
    /// A latched background failure ([`StoreError::Failed`]) or a failure of
    /// this commit, which is latched in turn. The previous commit stays in
    /// force on disk.
    pub fn commit(&self, catalog: &[u8]) -> Result<(), StoreError> {
        match self.try_commit(catalog) {
            Err(e) if !matches!(e, StoreError::Failed(_)) => Err(self.shared.fail(e)),
            result => result,
        }
    }

    fn try_commit(&self, catalog: &[u8]) -> Result<(), StoreError> {
        self.writable()?;
        self.compact_for_commit()?;
        self.drain()?;
        let table = self.encode_table()?;
        let mut writer = self.shared.writer.lock();
        let (superblock, directory) = self.write_metadata(&mut writer, table, catalog)?;
        let durable = self.shared.durability == Durability::Immediate;
        if durable {
            self.switch(&mut writer, &superblock)?;
        }
        drop(writer);
        self.settle(superblock, directory, catalog, durable)
    }

    /// Copies about as much as this commit writes (what is dirty and what
    /// was written since the last commit), at least a little and at most
    /// the policy's bound: compaction then at most doubles the write
    /// volume, and a small commit stays small.
    fn compact_for_commit(&self) -> Result<(), StoreError> {
        let Some(policy) = self.shared.policy else {
            return Ok(());
        };
        let written = self
            .shared
            .counters
            .bytes_unfiltered
            .load(Ordering::Relaxed);
        let (dirty, since) = {
            let st = self.shared.state.lock();
            (st.dirty.bytes as u64, written - st.written_at_commit)
        };
        let budget = (dirty + since).clamp(compact::POLICY_MIN_BYTES, policy.bytes_per_commit);
        let step = self.compact_step(
            policy.max_live_ratio,
            budget,
            compact::POLICY_SEAL_MIN_BYTES,
        );
        match step {
            // A damaged live blob keeps its segment; `check` reports it.
            Ok(_) | Err(StoreError::Format(FormatError::Blob { .. })) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Hands every dirty node to the workers and waits until every write
    /// has landed (S6), or one failed.
    fn drain(&self) -> Result<(), StoreError> {
        let jobs = {
            let mut st = self.shared.state.lock();
            st.failed()?;
            let dirty = st.dirty.drain();
            dirty
                .into_iter()
                .map(|(id, node)| st.inflight.launch(id, node))
                .collect::<Vec<_>>()
        };
        self.send(jobs);
        let mut st = self.shared.state.lock();
        if !st.inflight.is_empty() && st.failure.is_none() {
            bump(&self.shared.counters.inflight_waits, 1);
            while !st.inflight.is_empty() && st.failure.is_none() {
                self.shared.settled.wait(&mut st);
            }
        }
        st.failed()
    }

    /// Encodes the table chunks changed since the last commit.
    fn encode_table(&self) -> Result<TableWrite, StoreError> {
        let st = self.shared.state.lock();
        let mut chunks = Vec::new();
        let mut emptied = Vec::new();
        for idx in st.table.dirty_chunks() {
            if st.table.chunk_len(idx) == 0 {
                emptied.push(idx);
            } else {
                chunks.push((idx, st.table.encode_chunk(idx)?));
            }
        }
        Ok(TableWrite {
            chunks,
            emptied,
            directory: st.committed.directory.clone(),
            previous: st.committed.superblock.clone(),
        })
    }

    /// Appends the chunks, the directory and the filtered catalog, and
    /// returns the superblock that points at them (each pinned by digest,
    /// S12) with the directory it describes.
    fn write_metadata(
        &self,
        writer: &mut SegmentWriter,
        table: TableWrite,
        catalog: &[u8],
    ) -> Result<(Superblock, Directory), StoreError> {
        let backend = &*self.shared.backend;
        let catalog_body = self
            .shared
            .pipeline
            .encode(&Context::new(META_CONTEXT), catalog)?;
        let TableWrite {
            chunks,
            emptied,
            mut directory,
            previous,
        } = table;
        for idx in emptied {
            directory.remove(idx);
        }
        for (idx, bytes) in &chunks {
            let loc = writer.append(backend, BlobKind::TableChunk, *idx, bytes)?;
            directory.insert(*idx, loc, Digest::of(bytes));
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
            next_node: NodeId(self.shared.next_id.load(Ordering::Relaxed)),
            next_segment: writer
                .segment()
                .next()
                .ok_or(FormatError::SegmentIdsExhausted {
                    last: writer.segment().0,
                })?,
            table_directory,
            catalog: Some(catalog_loc),
            key_check: self.shared.state.lock().key_check,
            filter_stack: previous.filter_stack.clone(),
            table_directory_digest: match table_directory {
                Some(_) => Digest::of(&directory_body),
                None => Digest::default(),
            },
            catalog_digest: Digest::of(&catalog_body),
            ..previous
        };
        Ok((superblock, directory))
    }

    /// Syncs what was appended, then writes and syncs `superblock`'s slot:
    /// from here on it is the committed state.
    fn switch(
        &self,
        writer: &mut SegmentWriter,
        superblock: &Superblock,
    ) -> Result<(), StoreError> {
        self.shared
            .timed_sync(|| writer.sync(&*self.shared.backend))?;
        self.shared.write_superblock(superblock)
    }

    /// Records the new committed state and removes the segments it no
    /// longer needs (S9).
    fn settle(
        &self,
        superblock: Superblock,
        directory: Directory,
        catalog: &[u8],
        durable: bool,
    ) -> Result<(), StoreError> {
        let mut st = self.shared.state.lock();
        st.written_at_commit = self
            .shared
            .counters
            .bytes_unfiltered
            .load(Ordering::Relaxed);
        st.table.mark_clean();
        st.committed.directory = directory;
        st.committed.catalog = catalog.to_vec();
        if durable {
            st.committed.superblock = superblock;
            st.committed.unwritten = None;
        } else {
            st.committed.unwritten = Some(superblock);
        }
        drop(st);
        bump(&self.shared.counters.commits, 1);
        if durable {
            self.shared.remove_obsolete()?;
        }
        Ok(())
    }
}

impl<N: Codec> Drop for NodeStore<N> {
    /// Stops the workers (pending writes of uncommitted nodes are dropped)
    /// and makes a commit made with [`Durability::None`] durable.
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::Relaxed);
        drop(self.jobs.take());
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        let unwritten = {
            let st = self.shared.state.lock();
            if st.failure.is_some() {
                None
            } else {
                st.committed.unwritten.clone()
            }
        };
        if let Some(sb) = unwritten {
            // Best effort: the commit is already consistent on disk, only
            // not yet pointed at; a failure here leaves the previous one.
            let mut writer = self.shared.writer.lock();
            if self.switch(&mut writer, &sb).is_ok() {
                drop(writer);
                let mut st = self.shared.state.lock();
                st.committed.superblock = sb;
                st.committed.unwritten = None;
                drop(st);
                let _ = self.shared.remove_obsolete();
            }
        }
    }
}

impl<N: Codec> Shared<N> {
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
