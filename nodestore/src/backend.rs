//! The storage backend: the only way the store touches files.
//!
//! All on-disk I/O of the store goes through the [`Backend`] trait, so that
//! tests and fuzzers can swap the file system for memory
//! ([`MemBackend`]) or for a backend that crashes and fails on demand
//! ([`FaultyBackend`](crate::FaultyBackend)).
//!
//! A store is a set of files named by [`FileId`]: one superblock and
//! numbered, append-only segments. [`FileBackend`] keeps them in one
//! directory as `superblock` and `seg-NNNNNN.lx`.
//!
//! Contract every backend keeps:
//! - `read_at` fills the whole buffer or fails; a read past the end fails
//!   with [`io::ErrorKind::UnexpectedEof`], never returns short.
//! - `write_at` creates a missing file and extends it (with zeros, if the
//!   offset lies past the end).
//! - Reading, measuring, syncing or removing a missing file fails with
//!   [`io::ErrorKind::NotFound`].
//! - Only `sync` makes a file's bytes durable, and only `sync_dir` makes
//!   the creation or removal of a file durable.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt;
use std::io;

/// The number of a segment file. Segment 0 is never used, so that an
/// all-zero node table slot can mean "free".
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct SegmentId(pub u32);

impl SegmentId {
    /// The first segment of a new store.
    pub const FIRST: SegmentId = SegmentId(1);

    /// The segment after this one, or `None` if ids are exhausted.
    pub fn next(self) -> Option<SegmentId> {
        self.0.checked_add(1).map(SegmentId)
    }
}

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "segment {:06}", self.0)
    }
}

/// The number of a commit log file. Log files are numbered in the order
/// they are started; records continue from one to the next.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct LogId(pub u32);

impl LogId {
    /// The log file after this one, or `None` if ids are exhausted.
    pub fn next(self) -> Option<LogId> {
        self.0.checked_add(1).map(LogId)
    }
}

impl fmt::Display for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "log {:06}", self.0)
    }
}

/// One of the files a store is made of.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum FileId {
    /// The file holding the two superblock slots.
    Superblock,
    /// An append-only segment file of blob records.
    Segment(SegmentId),
    /// A commit log file of records.
    Log(LogId),
}

impl FileId {
    /// The file's name inside the store directory: `superblock`,
    /// `seg-000042.lx` or `log-000007.lx`.
    pub fn file_name(self) -> String {
        match self {
            FileId::Superblock => "superblock".to_string(),
            FileId::Segment(s) => format!("seg-{:06}.lx", s.0),
            FileId::Log(l) => format!("log-{:06}.lx", l.0),
        }
    }

    /// Parses a name produced by [`FileId::file_name`]; any other name
    /// (including a non-canonical number such as `seg-1.lx`) is `None`.
    pub fn from_file_name(name: &str) -> Option<FileId> {
        if name == "superblock" {
            return Some(FileId::Superblock);
        }
        let number = |prefix: &str| -> Option<u32> {
            let digits = name.strip_prefix(prefix)?.strip_suffix(".lx")?;
            if !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            digits.parse().ok()
        };
        let id = match (number("seg-"), number("log-")) {
            (Some(n), _) => FileId::Segment(SegmentId(n)),
            (_, Some(n)) => FileId::Log(LogId(n)),
            _ => return None,
        };
        (id.file_name() == name).then_some(id)
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file_name())
    }
}

/// Where the store reads and writes its files.
///
/// Implementations are shared between threads and must make each call
/// atomic with respect to the others (a read never sees half a write that
/// has returned). See the module documentation for the full contract.
pub trait Backend: Send + Sync + 'static {
    /// Fills `buf` with the bytes of `file` starting at `offset`.
    ///
    /// # Errors
    /// [`io::ErrorKind::UnexpectedEof`] if the file ends before `buf` is
    /// full, [`io::ErrorKind::NotFound`] if the file is missing, or any
    /// other I/O error.
    fn read_at(&self, file: FileId, offset: u64, buf: &mut [u8]) -> io::Result<()>;

    /// Writes all of `data` into `file` at `offset`, creating the file if it
    /// is missing. The bytes are not durable until [`Backend::sync`].
    ///
    /// # Errors
    /// Any I/O error; part of `data` may then have been written.
    fn write_at(&self, file: FileId, offset: u64, data: &[u8]) -> io::Result<()>;

    /// The length of `file` in bytes.
    ///
    /// # Errors
    /// [`io::ErrorKind::NotFound`] if the file is missing, or any other I/O
    /// error.
    fn len(&self, file: FileId) -> io::Result<u64>;

    /// Makes every byte written to `file` so far durable.
    ///
    /// # Errors
    /// [`io::ErrorKind::NotFound`] if the file is missing, or any other I/O
    /// error.
    fn sync(&self, file: FileId) -> io::Result<()>;

    /// Makes the creation and removal of files so far durable.
    ///
    /// # Errors
    /// Any I/O error.
    fn sync_dir(&self) -> io::Result<()>;

    /// Creates `file` holding exactly `data`, replacing any file of that
    /// name, atomically: a reader (and, once [`Backend::sync_dir`] has run,
    /// a crash) finds either the old file or all of `data`, never a part.
    /// The new bytes are durable when it returns; the name, after
    /// `sync_dir`.
    ///
    /// # Errors
    /// Any I/O error; the old file is then untouched.
    fn create_whole(&self, file: FileId, data: &[u8]) -> io::Result<()>;

    /// Removes `file`.
    ///
    /// # Errors
    /// [`io::ErrorKind::NotFound`] if the file is missing, or any other I/O
    /// error.
    fn remove(&self, file: FileId) -> io::Result<()>;

    /// The store's files that exist, in ascending order (superblock, then
    /// segments, then logs).
    ///
    /// # Errors
    /// Any I/O error listing them.
    fn list(&self) -> io::Result<Vec<FileId>>;

    /// The segment files that exist, in ascending order.
    ///
    /// # Errors
    /// Any I/O error listing them.
    fn segments(&self) -> io::Result<Vec<SegmentId>> {
        Ok(self
            .list()?
            .into_iter()
            .filter_map(|f| match f {
                FileId::Segment(s) => Some(s),
                _ => None,
            })
            .collect())
    }

    /// The commit log files that exist, in ascending order.
    ///
    /// # Errors
    /// Any I/O error listing them.
    fn logs(&self) -> io::Result<Vec<LogId>> {
        Ok(self
            .list()?
            .into_iter()
            .filter_map(|f| match f {
                FileId::Log(l) => Some(l),
                _ => None,
            })
            .collect())
    }

    /// Whether files only grow at their end: a write before a file's end
    /// fails. The commit log then writes no zeros ahead of its records
    /// (L4), since it could not write over them.
    fn appends_only(&self) -> bool {
        false
    }

    /// Ends `file` where it ends now (creating it empty if missing), so
    /// that no other process can append to it: how a store on a medium
    /// without locks takes over from a writer that may still run (see
    /// `docs/design.md`, "Fencing writers"). This process never appends to
    /// it again either. Backends whose stores are locked do nothing.
    ///
    /// # Errors
    /// Any I/O error.
    fn seal(&self, _file: FileId) -> io::Result<()> {
        Ok(())
    }

    /// Whether [`Backend::prefetch`] does anything: callers skip the work
    /// of finding what to prefetch where it does not.
    fn reads_ahead(&self) -> bool {
        false
    }

    /// A hint that `len` bytes of `file` at `offset` will be read soon: a
    /// backend on a slow medium starts fetching them in the background.
    /// Never fails; a range it cannot fetch is simply read later.
    fn prefetch(&self, _file: FileId, _offset: u64, _len: u64) {}

    /// A human-readable name for `file`, for error messages.
    fn name(&self, file: FileId) -> String {
        file.file_name()
    }
}

/// A store kept in memory; `sync` and `sync_dir` do nothing.
#[derive(Debug, Default)]
pub struct MemBackend {
    files: Mutex<BTreeMap<FileId, Vec<u8>>>,
}

impl MemBackend {
    /// An empty backend with no files.
    pub fn new() -> MemBackend {
        MemBackend::default()
    }
}

impl Backend for MemBackend {
    fn read_at(&self, file: FileId, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let files = self.files.lock();
        let data = files.get(&file).ok_or_else(|| not_found(file))?;
        read_from(data, offset, buf)
    }

    fn write_at(&self, file: FileId, offset: u64, data: &[u8]) -> io::Result<()> {
        write_into(self.files.lock().entry(file).or_default(), offset, data)
    }

    fn create_whole(&self, file: FileId, data: &[u8]) -> io::Result<()> {
        self.files.lock().insert(file, data.to_vec());
        Ok(())
    }

    fn len(&self, file: FileId) -> io::Result<u64> {
        let files = self.files.lock();
        Ok(files.get(&file).ok_or_else(|| not_found(file))?.len() as u64)
    }

    fn sync(&self, file: FileId) -> io::Result<()> {
        self.len(file).map(|_| ())
    }

    fn sync_dir(&self) -> io::Result<()> {
        Ok(())
    }

    fn remove(&self, file: FileId) -> io::Result<()> {
        match self.files.lock().remove(&file) {
            Some(_) => Ok(()),
            None => Err(not_found(file)),
        }
    }

    fn list(&self) -> io::Result<Vec<FileId>> {
        Ok(self.files.lock().keys().copied().collect())
    }
}

/// The error a memory backend returns for a missing file.
pub(crate) fn not_found(file: FileId) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{file} does not exist"))
}

/// The store files among directory entry names, ascending; names that are
/// not canonical store file names are ignored.
pub(crate) fn files_from_names<'a>(names: impl Iterator<Item = &'a str>) -> Vec<FileId> {
    let mut out: Vec<FileId> = names.filter_map(FileId::from_file_name).collect();
    out.sort_unstable();
    out
}

/// Copies `data[offset..offset + buf.len()]` into `buf`, or fails with
/// `UnexpectedEof` if the range runs past the end.
pub(crate) fn read_from(data: &[u8], offset: u64, buf: &mut [u8]) -> io::Result<()> {
    let range = usize::try_from(offset)
        .ok()
        .and_then(|start| Some(start..start.checked_add(buf.len())?))
        .filter(|r| r.end <= data.len());
    match range {
        Some(r) => {
            buf.copy_from_slice(&data[r]);
            Ok(())
        }
        None => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "read past the end of the file",
        )),
    }
}

/// Writes `src` into `data` at `offset`, growing it with zeros as needed.
pub(crate) fn write_into(data: &mut Vec<u8>, offset: u64, src: &[u8]) -> io::Result<()> {
    let start = usize::try_from(offset)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
    let end = start
        .checked_add(src.len())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
    if start == data.len() {
        // An append, the common case: no zero fill to overwrite.
        data.extend_from_slice(src);
        return Ok(());
    }
    if data.len() < end {
        data.resize(end, 0);
    }
    data[start..end].copy_from_slice(src);
    Ok(())
}

/// The contract tests every backend runs (file, memory, faulty, object
/// storage), for tests only.
#[cfg(any(test, feature = "testing"))]
pub mod contract {
    use super::*;

    const SEG: FileId = FileId::Segment(SegmentId(42));

    /// The contract shared by every backend, run against `b`: what the
    /// store does with files (appends, syncs, whole superblocks, removal).
    pub fn check_contract(b: &dyn Backend) {
        let mut buf = [0u8; 4];
        assert_eq!(
            b.read_at(SEG, 0, &mut buf).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(b.len(SEG).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(b.sync(SEG).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(b.remove(SEG).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert!(b.segments().unwrap().is_empty());

        // A write past the end fills with zeros.
        b.write_at(SEG, 4, b"abcd").unwrap();
        assert_eq!(b.len(SEG).unwrap(), 8);
        let mut all = [9u8; 8];
        b.read_at(SEG, 0, &mut all).unwrap();
        assert_eq!(&all, b"\0\0\0\0abcd");
        b.write_at(SEG, 8, b"XY").unwrap();
        b.read_at(SEG, 7, &mut buf[..3]).unwrap();
        assert_eq!(&buf[..3], b"dXY");
        b.sync(SEG).unwrap();
        b.write_at(SEG, 10, b"ef").unwrap();
        b.read_at(SEG, 6, &mut buf).unwrap();
        assert_eq!(&buf, b"cdXY");
        b.read_at(SEG, 8, &mut buf).unwrap();
        assert_eq!(&buf, b"XYef");

        // A read past the end fails whole, never short.
        assert_eq!(
            b.read_at(SEG, 10, &mut buf).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );

        b.create_whole(FileId::Superblock, b"sb").unwrap();
        b.write_at(FileId::Segment(SegmentId(7)), 0, b"s").unwrap();
        b.sync(SEG).unwrap();
        b.sync(FileId::Segment(SegmentId(7))).unwrap();
        b.sync_dir().unwrap();
        assert_eq!(b.segments().unwrap(), vec![SegmentId(7), SegmentId(42)]);
        b.remove(SEG).unwrap();
        assert_eq!(b.segments().unwrap(), vec![SegmentId(7)]);
        assert_eq!(b.len(SEG).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(b.len(FileId::Superblock).unwrap(), 2);
        b.create_whole(FileId::Superblock, b"whole").unwrap();
        let mut whole = [0u8; 5];
        b.read_at(FileId::Superblock, 0, &mut whole).unwrap();
        assert_eq!(&whole, b"whole");
        assert_eq!(b.len(FileId::Superblock).unwrap(), 5);
        // A superblock slot is written in place, then synced.
        b.write_at(FileId::Superblock, 2, b"OL").unwrap();
        b.sync(FileId::Superblock).unwrap();
        b.read_at(FileId::Superblock, 0, &mut whole).unwrap();
        assert_eq!(&whole, b"whOLe");
        assert_eq!(
            b.list().unwrap(),
            vec![FileId::Superblock, FileId::Segment(SegmentId(7))]
        );
    }

    /// What a backend whose files are not [`Backend::appends_only`] adds:
    /// writes anywhere in a file.
    pub fn check_random_access(b: &dyn Backend) {
        assert!(!b.appends_only());
        b.write_at(SEG, 0, b"abcdef").unwrap();
        b.write_at(SEG, 2, b"XY").unwrap();
        let mut buf = [0u8; 4];
        b.read_at(SEG, 1, &mut buf).unwrap();
        assert_eq!(&buf, b"bXYe");
    }
}

#[cfg(test)]
pub(crate) mod tests {
    pub(crate) use super::contract::{check_contract, check_random_access};
    use super::*;
    use std::sync::Arc;

    const SEG: FileId = FileId::Segment(SegmentId(42));

    #[test]
    fn names_and_display() {
        assert_eq!(SegmentId(42).to_string(), "segment 000042");
        assert_eq!(SEG.file_name(), "seg-000042.lx");
        assert_eq!(FileId::Superblock.to_string(), "superblock");
        assert_eq!(MemBackend::new().name(SEG), "seg-000042.lx");
        assert_eq!(
            FileId::Segment(SegmentId(u32::MAX)).file_name(),
            "seg-4294967295.lx"
        );
    }

    #[test]
    fn file_names_parse_back_and_nothing_else_does() {
        for id in [
            FileId::Superblock,
            SEG,
            FileId::Segment(SegmentId(0)),
            FileId::Segment(SegmentId(1_234_567)),
            FileId::Segment(SegmentId(u32::MAX)),
        ] {
            assert_eq!(FileId::from_file_name(&id.file_name()), Some(id));
        }
        for bad in [
            "seg-1.lx",
            "seg-0000042.lx",
            "seg-+00042.lx",
            "seg-000042.lx.tmp",
            "seg-.lx",
            "seg-99999999999.lx",
            "Superblock",
            "",
        ] {
            assert_eq!(FileId::from_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn segment_id_next_stops_at_the_end() {
        assert_eq!(SegmentId(1).next(), Some(SegmentId(2)));
        assert_eq!(SegmentId(u32::MAX).next(), None);
    }

    #[test]
    fn mem_backend_keeps_the_contract() {
        check_contract(&MemBackend::new());
        check_random_access(&MemBackend::new());
    }

    #[test]
    fn backends_are_object_safe_and_shareable() {
        let b: Arc<dyn Backend> = Arc::new(MemBackend::new());
        let b2 = Arc::clone(&b);
        std::thread::spawn(move || b2.write_at(SEG, 0, b"t").unwrap())
            .join()
            .unwrap();
        assert_eq!(b.len(SEG).unwrap(), 1);
    }
}
