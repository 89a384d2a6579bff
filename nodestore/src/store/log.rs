//! The commit log: one record per commit, made durable with one sync.
//!
//! A commit appends a record holding the caller's payload (the B-tree's
//! operations since the last commit), passed through the store's filter
//! pipeline with the record's sequence number and the store's log salt
//! bound in (`Context::new(lsn).with_tweak(..)`), so records cannot be
//! reordered, replayed or spliced from another store. The tree's nodes are
//! written later, at checkpoints (`checkpoint.rs`); recovery replays the
//! records after the newest checkpoint (`recovery.rs`).
//!
//! Invariants:
//! - **L1** Records are appended in sequence-number order, each number once
//!   per log; a record is durable only when every record before it is.
//! - **L2** A group of records (a large uncommitted change spills records
//!   before its commit) counts only if its last record carries the commit
//!   flag; records of a group that never committed are never replayed.
//! - **L3** `sync_through(n)` returns only when every record up to `n` is
//!   durable; concurrent callers share one sync (group commit), and no
//!   lock a reader or writer of the trees needs is held while it waits.
//! - **L4** A file's bytes are written ahead as zeros, in growing steps,
//!   before records land in them, so a sync of a record rarely also
//!   flushes a change of the file's size.

use super::recovery::ReplayRecord;
use super::{bump, Shared};
use crate::{
    Backend, Codec, FileId, FormatError, LogId, RecordHeader, StoreError, LOG_HEADER_LEN,
    MAX_RECORD_LEN,
};
use larix_filters::Context;
use parking_lot::{Condvar, Mutex};
use std::collections::BTreeSet;
use std::time::Instant;

/// The first step of zero-filling a log file ahead of its records.
const FIRST_PREFILL: u64 = 64 << 10;

/// The largest step of zero-filling.
const MAX_PREFILL: u64 = 4 << 20;

/// The zeros written ahead of the records: never written to, so their
/// pages stay the kernel's shared zero page. (A heap buffer of zeros that
/// is only read maps that page too, and once the allocator hands the
/// buffer's memory out again, the first write to each of its pages
/// replaces the mapping with a flush of every CPU's TLB: interrupts on
/// the readers' CPUs.)
static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

/// The top bit of the filter tweak of log records: it keeps them apart
/// from node blobs (tweak 0) under the same numbers.
const LOG_TWEAK: u64 = 1 << 63;

/// The filter context of the record `lsn` of a store whose log salt is
/// `salt`.
pub(super) fn record_context(lsn: u64, salt: u64) -> Context {
    Context::new(lsn).with_tweak(LOG_TWEAK | (salt >> 1))
}

/// The log's state: where the next record goes and what is durable.
pub(super) struct Log {
    state: Mutex<LogState>,
    /// Signalled when a sync ends.
    synced: Condvar,
    /// The store's log salt.
    pub(super) salt: u64,
}

struct LogState {
    /// The file records are appended to.
    file: LogId,
    /// Where the next record goes in it.
    end: u64,
    /// How far the file is written (records or zeros).
    prefilled: u64,
    /// The number the next record gets.
    next_lsn: u64,
    /// The first record of the group being written, if one is open.
    group: Option<u64>,
    /// The highest number appended.
    appended: u64,
    /// The highest number durable.
    durable: u64,
    /// Whether a sync is running.
    syncing: bool,
    /// Files with appended bytes not yet synced.
    unsynced: BTreeSet<LogId>,
    /// Bytes appended since the last checkpoint began, and when it began.
    since_checkpoint: u64,
    checkpoint_at: Instant,
    /// Where the records since the last checkpoint began lie (those the
    /// open replayed included): what a rollback replays.
    since_base: Vec<ReplayRecord>,
}

/// Where a log stands after recovery: the records to replay are before
/// `next_lsn`, and new records go into a new file.
#[derive(Clone, Copy, Debug)]
pub(super) struct LogStart {
    /// The file new records go to (one past every existing log file).
    pub(super) file: LogId,
    /// The number of the next record.
    pub(super) next_lsn: u64,
    /// Log bytes from before this session that the next checkpoint drops
    /// (plus one per stale file): counted as logged since the checkpoint,
    /// so a clean close checkpoints them and the size policy sees them.
    pub(super) behind: u64,
}

impl Log {
    pub(super) fn new(start: LogStart, salt: u64, replayed: Vec<ReplayRecord>) -> Log {
        Log {
            state: Mutex::new(LogState {
                file: start.file,
                end: 0,
                prefilled: 0,
                next_lsn: start.next_lsn,
                group: None,
                appended: start.next_lsn - 1,
                durable: start.next_lsn - 1,
                syncing: false,
                unsynced: BTreeSet::new(),
                since_checkpoint: start.behind,
                checkpoint_at: Instant::now(),
                since_base: replayed,
            }),
            synced: Condvar::new(),
            salt,
        }
    }

    /// Bytes appended since the last checkpoint began, and the seconds
    /// since it began.
    pub(super) fn since_checkpoint(&self) -> (u64, f64) {
        let st = self.state.lock();
        (
            st.since_checkpoint,
            st.checkpoint_at.elapsed().as_secs_f64(),
        )
    }

    /// The number the next record gets.
    pub(super) fn next_lsn(&self) -> u64 {
        self.state.lock().next_lsn
    }

    /// Whether a group is open (spilled records not yet committed).
    pub(super) fn group_open(&self) -> bool {
        self.state.lock().group.is_some()
    }

    /// The records of committed groups since the last checkpoint began, in
    /// order (L2).
    pub(super) fn committed_since_base(&self) -> Vec<ReplayRecord> {
        super::recovery::committed_groups(self.state.lock().since_base.clone())
    }

    /// Abandons the open group: the next record starts a group of its own,
    /// so the records of this one never count (L2).
    pub(super) fn abort_group(&self) {
        self.state.lock().group = None;
    }
}

impl<N: Codec> Shared<N> {
    /// Appends a record holding `payload`; `commit` closes its group (L2).
    /// The record is not durable until [`Shared::sync_log`]. Returns its
    /// number.
    ///
    /// # Errors
    /// A filter or I/O failure (latched by the caller), or a payload past
    /// the record limit.
    pub(super) fn append_log(&self, payload: &[u8], commit: bool) -> Result<u64, StoreError> {
        let log = &self.log;
        let mut st = log.state.lock();
        let lsn = st.next_lsn;
        let body = self
            .pipeline
            .encode(&record_context(lsn, log.salt), payload)?;
        let len = u32::try_from(body.len())
            .ok()
            .filter(|&l| l <= MAX_RECORD_LEN)
            .ok_or(FormatError::BlobTooLarge {
                kind: crate::BlobKind::Catalog,
                id: lsn,
                len: body.len(),
                max: MAX_RECORD_LEN.into(),
            })?;
        let group = *st.group.get_or_insert(lsn);
        let header = RecordHeader {
            commit,
            lsn,
            group,
            durable: st.durable,
            salt: log.salt,
            len,
            body_crc: crc32c::crc32c(&body),
        };
        let mut record = Vec::with_capacity(LOG_HEADER_LEN + body.len());
        record.extend_from_slice(&header.encode());
        record.extend_from_slice(&body);
        let file = FileId::Log(st.file);
        self.prefill(&mut st, record.len() as u64)?;
        self.backend
            .write_at(file, st.end, &record)
            .map_err(|e| FormatError::io(self.backend.name(file), Some(st.end), e))?;
        let at = ReplayRecord {
            file: st.file,
            offset: st.end,
            header,
        };
        st.since_base.push(at);
        st.end += record.len() as u64;
        st.next_lsn += 1;
        st.appended = lsn;
        st.since_checkpoint += record.len() as u64;
        let current = st.file;
        st.unsynced.insert(current);
        if commit {
            st.group = None;
        }
        drop(st);
        let c = &self.counters;
        bump(&c.log_records, 1);
        bump(&c.log_bytes, record.len() as u64);
        Ok(lsn)
    }

    /// Writes zeros ahead of the append position so that `need` more bytes
    /// fit in space already written (L4).
    fn prefill(&self, st: &mut LogState, need: u64) -> Result<(), StoreError> {
        if st.end + need <= st.prefilled || self.backend.appends_only() {
            return Ok(());
        }
        let step = st.prefilled.clamp(FIRST_PREFILL, MAX_PREFILL).max(need);
        let file = FileId::Log(st.file);
        let end = st.prefilled + step;
        while st.prefilled < end {
            let piece = &ZEROS[..(end - st.prefilled).min(ZEROS.len() as u64) as usize];
            self.backend
                .write_at(file, st.prefilled, piece)
                .map_err(|e| FormatError::io(self.backend.name(file), Some(st.prefilled), e))?;
            st.prefilled += piece.len() as u64;
        }
        Ok(())
    }

    /// Returns once every record up to `lsn` is durable (L3), syncing the
    /// log files that need it unless another caller's sync covers them.
    ///
    /// # Errors
    /// The sync's I/O failure.
    pub(super) fn sync_log(&self, lsn: u64) -> Result<(), StoreError> {
        let log = &self.log;
        let mut st = log.state.lock();
        loop {
            if st.durable >= lsn {
                return Ok(());
            }
            if st.syncing {
                log.synced.wait(&mut st);
                continue;
            }
            st.syncing = true;
            let target = st.appended;
            let files = std::mem::take(&mut st.unsynced);
            drop(st);
            let result = self.sync_files(&files);
            st = log.state.lock();
            st.syncing = false;
            match result {
                Ok(()) => st.durable = st.durable.max(target),
                Err(e) => {
                    st.unsynced.extend(files);
                    drop(st);
                    log.synced.notify_all();
                    return Err(e);
                }
            }
            log.synced.notify_all();
        }
    }

    fn sync_files(&self, files: &BTreeSet<LogId>) -> Result<(), StoreError> {
        for &f in files {
            let file = FileId::Log(f);
            self.timed_sync(|| match self.backend.sync(file) {
                // A checkpoint removed it: what it held is in the segments.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                r => r.map_err(|e| FormatError::io(self.backend.name(file), None, e)),
            })?;
            bump(&self.counters.log_syncs, 1);
        }
        Ok(())
    }

    /// Records that a checkpoint holding every record before `lsn` is
    /// durable: those records count as durable, wherever they were.
    pub(super) fn log_checkpointed(&self, lsn: u64) {
        let mut st = self.log.state.lock();
        st.durable = st.durable.max(lsn.saturating_sub(1));
        drop(st);
        self.log.synced.notify_all();
    }

    /// Starts a new log file for the records after this point, created
    /// and made durable (its directory entry synced) before any record
    /// lands in it. Called with no group open, at a checkpoint. Returns the
    /// new file and the number of its first record.
    ///
    /// # Errors
    /// An I/O failure creating the file.
    pub(super) fn roll_log(&self) -> Result<(LogId, u64), StoreError> {
        let mut st = self.log.state.lock();
        let next = st
            .file
            .next()
            .ok_or(FormatError::SegmentIdsExhausted { last: st.file.0 })?;
        create_log_file(&*self.backend, next)?;
        st.file = next;
        st.end = 0;
        st.prefilled = 0;
        st.since_checkpoint = 0;
        st.checkpoint_at = Instant::now();
        st.since_base.clear();
        Ok((next, st.next_lsn))
    }
}

/// Creates the empty log file `id` and makes its existence durable.
///
/// # Errors
/// An I/O failure.
pub(super) fn create_log_file(backend: &dyn Backend, id: LogId) -> Result<(), StoreError> {
    let file = FileId::Log(id);
    let io = |e| FormatError::io(backend.name(file), None, e);
    backend.write_at(file, 0, &[]).map_err(io)?;
    backend.sync(file).map_err(io)?;
    backend
        .sync_dir()
        .map_err(|e| FormatError::io("the store directory".into(), None, e).into())
}
