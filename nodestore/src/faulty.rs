//! A backend for tests that loses unsynced bytes and fails on demand.
//!
//! [`FaultyBackend`] keeps its files in memory and remembers, for every
//! file, the bytes written and the bytes known durable apart. A simulated
//! [`crash`](FaultyBackend::crash) throws away what a real machine could
//! lose; [`fail_after`](FaultyBackend::fail_after) makes every call fail
//! after a number of successful ones, the way a dying disk does;
//! [`kill`](FaultyBackend::kill) makes every call fail at once, the way the
//! disk looks to a process that has died: nothing it does any more reaches
//! the files.
//!
//! All clones share the same files, so a test keeps one handle, gives a
//! clone to the store, drops the store, crashes the handle and opens a new
//! store on a clone of it:
//!
//! ```ignore
//! // Needs the `testing` feature (doctests build without it).
//! use larix_nodestore::testing::{CrashMode, FaultyBackend};
//! use larix_nodestore::{Backend, FileId};
//! use std::sync::Arc;
//!
//! let disk = FaultyBackend::new();
//! let store_backend: Arc<dyn Backend> = Arc::new(disk.clone());
//! store_backend.write_at(FileId::Superblock, 0, b"lost").unwrap();
//! drop(store_backend);
//! disk.crash(CrashMode::DropUnsynced);
//! assert!(disk.contents(FileId::Superblock).is_none());
//! ```
//!
//! The durability model (stricter than most file systems, on purpose):
//! - `write_at` bytes become durable only when their file is `sync`ed;
//! - a file created by `write_at` survives a crash only once `sync_dir`
//!   has run after its creation (its bytes still need `sync`);
//! - `remove` is durable at once;
//! - a crash undoes everything else, heals injected failures and ends a
//!   [`kill`](FaultyBackend::kill) (the machine restarts).
//!
//! A crash of the process that uses a store is thus simulated by
//! `kill()`, dropping the store (whose background threads may still be
//! writing: those writes now fail), then `crash(mode)` and opening anew.

use crate::backend::{not_found, read_from, write_into};
use crate::{Backend, FileId};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

/// What survives a simulated crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// Every file reverts to its last synced bytes.
    DropUnsynced,
    /// As [`CrashMode::DropUnsynced`], except that the most recent write not
    /// yet synced survives in part: its first `keep` bytes (clamped to its
    /// length) land, as a torn write would.
    TearLastWrite {
        /// How many leading bytes of the write survive.
        keep: usize,
    },
}

/// An in-memory backend that can crash and fail on demand; see the module
/// documentation. Cloning shares the files.
#[derive(Clone, Debug, Default)]
pub struct FaultyBackend {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    files: BTreeMap<FileId, FaultyFile>,
    /// Sequence number of the last write, to find the most recent one.
    writes: u64,
    /// Successful calls left before every call fails; `None`: never fail.
    fail_after: Option<u64>,
    /// Calls made so far, failed ones included.
    operations: u64,
    /// Set by [`FaultyBackend::kill`]: every call fails.
    killed: bool,
}

#[derive(Debug, Default)]
struct FaultyFile {
    /// The bytes as written.
    data: Vec<u8>,
    /// The bytes known durable.
    synced: Vec<u8>,
    /// Whether the file's directory entry is durable.
    durable_entry: bool,
    /// Writes since the last sync, oldest first.
    pending: Vec<PendingWrite>,
    /// Set by `create_whole` until the next `sync_dir`: what a crash
    /// brings back (the durable bytes of the file it replaced, or nothing).
    replaced: Option<Option<Vec<u8>>>,
}

#[derive(Debug)]
struct PendingWrite {
    seq: u64,
    offset: u64,
    bytes: Vec<u8>,
}

impl State {
    /// Counts one call and fails it if failures are armed and due.
    fn gate(&mut self) -> io::Result<()> {
        self.operations += 1;
        if self.killed {
            return Err(io::Error::other("the process using the backend was killed"));
        }
        match self.fail_after {
            Some(0) => Err(io::Error::other("injected failure")),
            Some(n) => {
                self.fail_after = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn file(&self, file: FileId) -> io::Result<&FaultyFile> {
        self.files.get(&file).ok_or_else(|| not_found(file))
    }
}

impl FaultyBackend {
    /// An empty backend with no files and no failures armed.
    pub fn new() -> FaultyBackend {
        FaultyBackend::default()
    }

    /// Simulates a power loss: every file reverts to its durable state as
    /// `mode` says, files whose creation was never made durable vanish, and
    /// injected failures and a [`kill`](FaultyBackend::kill) are healed
    /// (the machine restarts).
    ///
    /// # Panics
    /// If another handle to the files lives: a store still open (a forest
    /// or a tree handle not dropped) would go on writing after the restart,
    /// and its late writes would land in the files the next open reads.
    pub fn crash(&self, mode: CrashMode) {
        assert_eq!(
            Arc::strong_count(&self.state),
            1,
            "crash() while another handle to the files lives: drop every store \
             (forest and tree handles) that uses this backend first"
        );
        let mut st = self.state.lock();
        let torn = match mode {
            CrashMode::DropUnsynced => None,
            CrashMode::TearLastWrite { keep } => {
                let latest = st
                    .files
                    .iter()
                    .filter_map(|(id, f)| f.pending.last().map(|w| (w.seq, *id)))
                    .max();
                latest.and_then(|(_, id)| {
                    let mut w = st.files.get_mut(&id)?.pending.pop()?;
                    w.bytes.truncate(keep);
                    Some((id, w))
                })
            }
        };
        for f in st.files.values_mut() {
            if let Some(before) = f.replaced.take() {
                // The rename never became durable: the old file is back.
                f.durable_entry = before.is_some();
                f.synced = before.unwrap_or_default();
            }
            f.data.clone_from(&f.synced);
            f.pending.clear();
        }
        st.files.retain(|_, f| f.durable_entry);
        if let Some((id, w)) = torn {
            if let Some(f) = st.files.get_mut(&id) {
                // The surviving prefix reached the disk: it is now durable.
                write_into(&mut f.data, w.offset, &w.bytes)
                    .expect("the offset was accepted when it was written");
                f.synced.clone_from(&f.data);
            }
        }
        st.fail_after = None;
        st.killed = false;
    }

    /// Simulates the death of the process using the backend: from now on
    /// every call fails with an [`io::ErrorKind::Other`] error and changes
    /// nothing, so no write of a store still running in the background
    /// reaches the files. Lasts until [`crash`](FaultyBackend::crash) or
    /// [`heal`](FaultyBackend::heal). Files already written keep their
    /// written and durable bytes.
    pub fn kill(&self) {
        self.state.lock().killed = true;
    }

    /// After `n` more successful calls, every call fails with an
    /// [`io::ErrorKind::Other`] error "injected failure", until
    /// [`heal`](FaultyBackend::heal) or [`crash`](FaultyBackend::crash).
    /// `fail_after(0)` fails the very next call.
    pub fn fail_after(&self, n: u64) {
        self.state.lock().fail_after = Some(n);
    }

    /// Disarms injected failures and ends a [`kill`](FaultyBackend::kill).
    pub fn heal(&self) {
        let mut st = self.state.lock();
        st.fail_after = None;
        st.killed = false;
    }

    /// The number of backend calls made so far, failed ones included
    /// ([`Backend::name`] is not counted).
    pub fn operations(&self) -> u64 {
        self.state.lock().operations
    }

    /// Writes (`write_at` calls that succeeded) made so far.
    pub fn writes(&self) -> u64 {
        self.state.lock().writes
    }

    /// The current bytes of `file` as a reader sees them, or `None` if it
    /// does not exist. Not counted as an operation.
    pub fn contents(&self, file: FileId) -> Option<Vec<u8>> {
        self.state.lock().files.get(&file).map(|f| f.data.clone())
    }

    /// The bytes of `file` that would survive a crash now, or `None` if the
    /// file would not. Not counted as an operation.
    pub fn durable_contents(&self, file: FileId) -> Option<Vec<u8>> {
        let st = self.state.lock();
        st.files
            .get(&file)
            .filter(|f| f.durable_entry)
            .map(|f| f.synced.clone())
    }

    /// Flips bit `bit` (0..8) of the byte at `offset` of `file`, in the
    /// written and the durable bytes alike: damage on the medium. Not
    /// counted as an operation.
    ///
    /// # Errors
    /// [`io::ErrorKind::NotFound`] if the file is missing,
    /// [`io::ErrorKind::InvalidInput`] if `offset` is past its end or
    /// `bit` is not below 8.
    pub fn flip_bit(&self, file: FileId, offset: u64, bit: u8) -> io::Result<()> {
        let mut st = self.state.lock();
        let f = st.files.get_mut(&file).ok_or_else(|| not_found(file))?;
        let at = usize::try_from(offset).ok().filter(|&o| o < f.data.len());
        let (Some(at), true) = (at, bit < 8) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no such bit in the file",
            ));
        };
        f.data[at] ^= 1 << bit;
        if let Some(b) = f.synced.get_mut(at) {
            *b ^= 1 << bit;
        }
        Ok(())
    }
}

impl Backend for FaultyBackend {
    fn read_at(&self, file: FileId, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let mut st = self.state.lock();
        st.gate()?;
        read_from(&st.file(file)?.data, offset, buf)
    }

    fn write_at(&self, file: FileId, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut st = self.state.lock();
        st.gate()?;
        st.writes += 1;
        let seq = st.writes;
        let f = st.files.entry(file).or_default();
        write_into(&mut f.data, offset, data)?;
        f.pending.push(PendingWrite {
            seq,
            offset,
            bytes: data.to_vec(),
        });
        Ok(())
    }

    fn create_whole(&self, file: FileId, data: &[u8]) -> io::Result<()> {
        let mut st = self.state.lock();
        st.gate()?;
        let old = st.files.remove(&file);
        let before = match old {
            Some(f) if f.replaced.is_some() => f.replaced.and_then(|b| b),
            Some(f) if f.durable_entry => Some(f.synced),
            _ => None,
        };
        st.files.insert(
            file,
            FaultyFile {
                data: data.to_vec(),
                synced: data.to_vec(),
                durable_entry: true,
                pending: Vec::new(),
                replaced: Some(before),
            },
        );
        Ok(())
    }

    fn len(&self, file: FileId) -> io::Result<u64> {
        let mut st = self.state.lock();
        st.gate()?;
        Ok(st.file(file)?.data.len() as u64)
    }

    fn sync(&self, file: FileId) -> io::Result<()> {
        let mut st = self.state.lock();
        st.gate()?;
        let f = st.files.get_mut(&file).ok_or_else(|| not_found(file))?;
        for w in f.pending.drain(..) {
            write_into(&mut f.synced, w.offset, &w.bytes)?;
        }
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut st = self.state.lock();
        st.gate()?;
        for f in st.files.values_mut() {
            f.durable_entry = true;
            f.replaced = None;
        }
        Ok(())
    }

    fn remove(&self, file: FileId) -> io::Result<()> {
        let mut st = self.state.lock();
        st.gate()?;
        match st.files.remove(&file) {
            Some(_) => Ok(()),
            None => Err(not_found(file)),
        }
    }

    fn list(&self) -> io::Result<Vec<FileId>> {
        let mut st = self.state.lock();
        st.gate()?;
        Ok(st.files.keys().copied().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SegmentId;
    use proptest::prelude::*;

    const A: FileId = FileId::Segment(SegmentId(1));
    const B: FileId = FileId::Segment(SegmentId(2));

    fn read_all(b: &FaultyBackend, file: FileId) -> Vec<u8> {
        let mut buf = vec![0; b.len(file).unwrap() as usize];
        b.read_at(file, 0, &mut buf).unwrap();
        buf
    }

    /// `A` holds "synced" durably, then gets an unsynced write.
    fn disk_with_synced_a() -> FaultyBackend {
        let b = FaultyBackend::new();
        b.write_at(A, 0, b"synced").unwrap();
        b.sync(A).unwrap();
        b.sync_dir().unwrap();
        b
    }

    /// The module documentation's example.
    #[test]
    fn faulty_backend_keeps_the_contract() {
        crate::backend::tests::check_contract(&FaultyBackend::new());
        crate::backend::tests::check_random_access(&FaultyBackend::new());
    }

    #[test]
    fn an_unsynced_file_is_lost_by_a_crash() {
        let disk = FaultyBackend::new();
        let store_backend: Arc<dyn Backend> = Arc::new(disk.clone());
        store_backend
            .write_at(FileId::Superblock, 0, b"lost")
            .unwrap();
        drop(store_backend);
        disk.crash(CrashMode::DropUnsynced);
        assert!(disk.contents(FileId::Superblock).is_none());
    }

    #[test]
    fn drop_unsynced_loses_exactly_the_unsynced_writes() {
        let b = disk_with_synced_a();
        b.write_at(A, 6, b"+more").unwrap();
        b.write_at(A, 0, b"S").unwrap();
        assert_eq!(read_all(&b, A), b"Synced+more");
        b.crash(CrashMode::DropUnsynced);
        assert_eq!(read_all(&b, A), b"synced");
    }

    #[test]
    fn synced_writes_survive_and_later_ones_do_not() {
        let b = disk_with_synced_a();
        b.write_at(A, 6, b"-1").unwrap();
        b.sync(A).unwrap();
        b.write_at(A, 8, b"-2").unwrap();
        b.crash(CrashMode::DropUnsynced);
        assert_eq!(read_all(&b, A), b"synced-1");
    }

    #[test]
    fn a_file_never_dir_synced_vanishes() {
        let b = disk_with_synced_a();
        b.write_at(B, 0, b"new").unwrap();
        b.sync(B).unwrap();
        assert!(b.durable_contents(B).is_none());
        b.crash(CrashMode::DropUnsynced);
        assert_eq!(b.len(B).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(b.segments().unwrap(), vec![SegmentId(1)]);
    }

    #[test]
    fn a_dir_synced_but_unsynced_file_survives_empty() {
        let b = FaultyBackend::new();
        b.write_at(B, 0, b"new").unwrap();
        b.sync_dir().unwrap();
        b.crash(CrashMode::DropUnsynced);
        assert_eq!(b.len(B).unwrap(), 0);
    }

    #[test]
    fn create_whole_is_undone_by_a_crash_before_sync_dir() {
        let b = disk_with_synced_a();
        b.create_whole(A, b"new").unwrap();
        assert_eq!(read_all(&b, A), b"new");
        b.crash(CrashMode::DropUnsynced);
        assert_eq!(b.durable_contents(A).unwrap(), b"synced");
        b.create_whole(B, b"fresh").unwrap();
        b.crash(CrashMode::TearLastWrite { keep: 2 });
        assert!(b.contents(B).is_none());
        b.create_whole(A, b"new").unwrap();
        b.sync_dir().unwrap();
        b.crash(CrashMode::DropUnsynced);
        assert_eq!(b.contents(A).unwrap(), b"new");
    }

    #[test]
    fn remove_is_immediate_and_durable() {
        let b = disk_with_synced_a();
        b.remove(A).unwrap();
        b.crash(CrashMode::DropUnsynced);
        assert!(b.contents(A).is_none());
    }

    #[test]
    fn tear_last_write_keeps_a_prefix_of_the_latest_unsynced_write() {
        let b = disk_with_synced_a();
        b.write_at(A, 6, b"AAAA").unwrap();
        b.write_at(A, 10, b"BBBB").unwrap();
        b.crash(CrashMode::TearLastWrite { keep: 2 });
        // The earlier unsynced write is lost, so the torn prefix lands past
        // a hole of zeros.
        assert_eq!(read_all(&b, A), b"synced\0\0\0\0BB");
    }

    #[test]
    fn tear_picks_the_latest_write_across_files() {
        let b = disk_with_synced_a();
        b.write_at(B, 0, b"bb").unwrap();
        b.sync(B).unwrap();
        b.sync_dir().unwrap();
        b.write_at(B, 2, b"late-B").unwrap();
        b.write_at(A, 6, b"latest-A").unwrap();
        b.crash(CrashMode::TearLastWrite { keep: 3 });
        assert_eq!(read_all(&b, A), b"syncedlat");
        assert_eq!(read_all(&b, B), b"bb");
    }

    #[test]
    fn tear_clamps_keep_to_the_write_length() {
        let b = disk_with_synced_a();
        b.write_at(A, 0, b"XY").unwrap();
        b.crash(CrashMode::TearLastWrite { keep: 1000 });
        assert_eq!(read_all(&b, A), b"XYnced");
        // The surviving bytes are durable now.
        b.crash(CrashMode::DropUnsynced);
        assert_eq!(read_all(&b, A), b"XYnced");
    }

    #[test]
    fn tear_with_nothing_unsynced_is_drop_unsynced() {
        let b = disk_with_synced_a();
        b.crash(CrashMode::TearLastWrite { keep: 3 });
        assert_eq!(read_all(&b, A), b"synced");
    }

    #[test]
    fn fail_after_fails_the_next_call_past_n_until_healed() {
        let b = disk_with_synced_a();
        b.fail_after(3);
        let mut buf = [0u8; 1];
        b.read_at(A, 0, &mut buf).unwrap();
        b.len(A).unwrap();
        b.write_at(A, 0, b"s").unwrap();
        for _ in 0..3 {
            let e = b.sync(A).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::Other);
            assert_eq!(e.to_string(), "injected failure");
        }
        assert!(b.segments().is_err());
        assert!(b.sync_dir().is_err());
        b.heal();
        b.sync(A).unwrap();
    }

    #[test]
    fn a_failed_write_changes_nothing() {
        let b = disk_with_synced_a();
        b.fail_after(0);
        assert!(b.write_at(A, 0, b"XXXXXX").is_err());
        assert!(b.write_at(B, 0, b"new").is_err());
        b.heal();
        assert_eq!(read_all(&b, A), b"synced");
        assert!(b.contents(B).is_none());
    }

    #[test]
    fn crash_heals_injected_failures() {
        let b = disk_with_synced_a();
        b.fail_after(0);
        b.crash(CrashMode::DropUnsynced);
        assert_eq!(read_all(&b, A), b"synced");
    }

    #[test]
    #[should_panic(expected = "another handle to the files lives")]
    fn a_crash_while_a_store_still_holds_the_files_is_refused() {
        let b = disk_with_synced_a();
        let store = b.clone();
        b.crash(CrashMode::DropUnsynced);
        drop(store);
    }

    #[test]
    fn kill_fails_every_call_and_changes_nothing() {
        let b = disk_with_synced_a();
        b.write_at(A, 6, b"+unsynced").unwrap();
        let store = b.clone();
        b.kill();
        let mut buf = [0u8; 1];
        assert!(store.read_at(A, 0, &mut buf).is_err());
        assert!(store.write_at(A, 0, b"X").is_err());
        assert!(store.write_at(B, 0, b"new").is_err());
        assert!(store.len(A).is_err());
        assert!(store.sync(A).is_err());
        assert!(store.sync_dir().is_err());
        assert!(store.remove(A).is_err());
        let e = store.segments().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Other);
        // Nothing the dead process tried reached the files.
        assert_eq!(b.contents(A).unwrap(), b"synced+unsynced");
        assert_eq!(b.durable_contents(A).unwrap(), b"synced");
        assert!(b.contents(B).is_none());
    }

    #[test]
    fn crash_ends_a_kill_and_drops_what_was_unsynced() {
        let b = disk_with_synced_a();
        b.write_at(A, 6, b"+unsynced").unwrap();
        b.kill();
        b.crash(CrashMode::DropUnsynced);
        assert_eq!(read_all(&b, A), b"synced");
        b.write_at(A, 6, b"+again").unwrap();
        assert_eq!(read_all(&b, A), b"synced+again");
    }

    #[test]
    fn a_kill_keeps_the_tear_to_writes_made_before_it() {
        let b = disk_with_synced_a();
        b.write_at(A, 6, b"before").unwrap();
        b.kill();
        assert!(b.write_at(A, 12, b"after").is_err());
        b.crash(CrashMode::TearLastWrite { keep: 3 });
        assert_eq!(read_all(&b, A), b"syncedbef");
    }

    #[test]
    fn heal_ends_a_kill_and_an_armed_failure() {
        let b = disk_with_synced_a();
        b.fail_after(0);
        b.kill();
        assert!(b.len(A).is_err());
        b.heal();
        assert_eq!(b.len(A).unwrap(), 6);
        b.write_at(A, 0, b"S").unwrap();
        assert_eq!(read_all(&b, A), b"Synced");
    }

    #[test]
    fn clones_share_files_and_outlive_each_other() {
        let b = FaultyBackend::new();
        let store: Arc<dyn Backend> = Arc::new(b.clone());
        store.write_at(A, 0, b"kept").unwrap();
        store.sync(A).unwrap();
        store.sync_dir().unwrap();
        store.write_at(A, 4, b"lost").unwrap();
        drop(store);
        b.crash(CrashMode::DropUnsynced);
        let reopened: Arc<dyn Backend> = Arc::new(b.clone());
        let mut buf = [0u8; 4];
        reopened.read_at(A, 0, &mut buf).unwrap();
        assert_eq!(&buf, b"kept");
        assert_eq!(reopened.len(A).unwrap(), 4);
    }

    #[test]
    fn operations_are_counted_including_failures() {
        let b = FaultyBackend::new();
        b.write_at(A, 0, b"x").unwrap();
        let _ = b.name(A);
        b.fail_after(0);
        let _ = b.len(A);
        assert_eq!(b.operations(), 2);
    }

    #[test]
    fn flip_bit_damages_written_and_durable_bytes() {
        let b = disk_with_synced_a();
        b.flip_bit(A, 0, 5).unwrap();
        assert_eq!(read_all(&b, A), b"Synced");
        b.crash(CrashMode::DropUnsynced);
        assert_eq!(read_all(&b, A), b"Synced");
        assert!(b.flip_bit(A, 6, 0).is_err());
        assert!(b.flip_bit(A, 0, 8).is_err());
        assert!(b.flip_bit(B, 0, 0).is_err());
    }

    /// A reference model of one file: each write is a step; a crash keeps
    /// the synced steps.
    #[derive(Debug, Clone)]
    enum Step {
        Write(u8, Vec<u8>),
        Sync,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0u8..32, proptest::collection::vec(any::<u8>(), 1..8))
                .prop_map(|(o, d)| Step::Write(o, d)),
            Just(Step::Sync),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn crash_keeps_exactly_the_synced_prefix_of_history(
            steps in proptest::collection::vec(step(), 0..24),
            keep in 0usize..10,
            tear in any::<bool>(),
        ) {
            let b = FaultyBackend::new();
            b.write_at(A, 0, b"").unwrap();
            b.sync_dir().unwrap();
            let mut durable = Vec::new();
            let mut current = Vec::new();
            let mut last_unsynced: Option<(u8, Vec<u8>)> = None;
            for s in &steps {
                match s {
                    Step::Write(o, d) => {
                        b.write_at(A, u64::from(*o), d).unwrap();
                        write_into(&mut current, u64::from(*o), d).unwrap();
                        last_unsynced = Some((*o, d.clone()));
                    }
                    Step::Sync => {
                        b.sync(A).unwrap();
                        durable = current.clone();
                        last_unsynced = None;
                    }
                }
            }
            prop_assert_eq!(b.contents(A).unwrap(), current);
            let mode = if tear {
                CrashMode::TearLastWrite { keep }
            } else {
                CrashMode::DropUnsynced
            };
            b.crash(mode);
            let mut expected = durable;
            if let (true, Some((o, d))) = (tear, last_unsynced) {
                let n = keep.min(d.len());
                write_into(&mut expected, u64::from(o), &d[..n]).unwrap();
            }
            prop_assert_eq!(b.contents(A).unwrap(), expected);
        }
    }
}
