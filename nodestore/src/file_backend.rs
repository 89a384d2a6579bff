//! [`FileBackend`]: a store kept in one directory of real files.
//!
//! The directory holds `superblock` and the segment files `seg-NNNNNN.lx`
//! (see [`FileId::file_name`]). Nothing else in it is read or written.
//!
//! Invariants:
//! - **One writer.** A writable backend holds an exclusive `flock` on the
//!   store directory itself (not on a file in it, which a cleanup script
//!   could unlink and a second process recreate and lock); read-only
//!   backends hold shared locks, so several readers may share a store but
//!   never with a writer. In one process a registry of open directories
//!   refuses a conflicting open at once.
//! - **No symlinks.** The superblock and segments are opened with
//!   `O_NOFOLLOW`: a symlink planted in the directory cannot make a commit
//!   write another store's superblock or a file anywhere else.
//! - **The directory stays put.** Before a new file is created, the path is
//!   checked to still name the locked directory, so a store moved or
//!   replaced while open is an error rather than a write into a stranger's
//!   directory.
//! - **Read-only writes nothing**: no file is created, written, synced or
//!   removed, and every such call fails with
//!   [`io::ErrorKind::PermissionDenied`].

use crate::backend::files_from_names;
use crate::{Backend, FileId, FormatError};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an open retries a lock held elsewhere before it reports
/// [`FormatError::Locked`]. A child process this process forks (a command
/// filter) shares its open files until it runs its program, so a lock just
/// released by a closed store can look held for that moment.
const LOCK_PATIENCE: Duration = Duration::from_millis(1500);

/// A store kept in a directory of real files; see the module documentation.
///
/// Open file handles are cached, one per file, and shared by all threads
/// (positioned I/O needs no seek, so handles are never contended).
#[derive(Debug)]
pub struct FileBackend {
    dir: PathBuf,
    /// The store directory, opened and locked for as long as the backend
    /// lives (exclusive for a writer, shared for a reader).
    dir_handle: File,
    /// The directory's identity, to see that the path still names it.
    identity: DirIdentity,
    read_only: bool,
    handles: Mutex<HashMap<FileId, Arc<File>>>,
}

/// A directory's device and inode numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct DirIdentity {
    dev: u64,
    ino: u64,
}

impl DirIdentity {
    fn of(meta: &fs::Metadata) -> DirIdentity {
        DirIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// The store directories this process has open: a writer's count is
/// `usize::MAX`, readers count up from 1.
static OPEN_DIRS: Mutex<Option<HashMap<DirIdentity, usize>>> = Mutex::new(None);

/// Registers one more open of `id`, or `false` if it conflicts with an
/// open this process already holds.
fn register(id: DirIdentity, read_only: bool) -> bool {
    let mut guard = OPEN_DIRS.lock();
    let open = guard.get_or_insert_with(HashMap::new);
    match (open.get(&id).copied(), read_only) {
        (None, false) => {
            open.insert(id, usize::MAX);
            true
        }
        (None, true) => {
            open.insert(id, 1);
            true
        }
        (Some(n), true) if n != usize::MAX => {
            open.insert(id, n + 1);
            true
        }
        _ => false,
    }
}

/// Undoes one [`register`] of `id`.
fn unregister(id: DirIdentity) {
    let mut guard = OPEN_DIRS.lock();
    let Some(open) = guard.as_mut() else { return };
    match open.get(&id).copied() {
        Some(n) if n != usize::MAX && n > 1 => {
            open.insert(id, n - 1);
        }
        Some(_) => {
            open.remove(&id);
        }
        None => {}
    }
}

impl FileBackend {
    /// Opens the store directory `dir` for writing, creating it (and its
    /// parents) if it is missing and `create` is true, and locks it against
    /// every other handle (in this process or another) until the backend
    /// is dropped.
    ///
    /// # Errors
    /// [`FormatError::MissingDirectory`] if `dir` is missing and `create`
    /// is false; [`FormatError::Locked`] if another handle has it open;
    /// [`FormatError::Io`] if it cannot be created or is not a directory.
    pub fn open(dir: impl AsRef<Path>, create: bool) -> Result<FileBackend, FormatError> {
        Self::open_mode(dir.as_ref(), create, false)
    }

    /// Opens the store directory `dir` for reading only: it takes a shared
    /// lock (other readers may hold one too; a writer may not), and no call
    /// writes anything.
    ///
    /// # Errors
    /// As [`FileBackend::open`] without creation.
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<FileBackend, FormatError> {
        Self::open_mode(dir.as_ref(), false, true)
    }

    fn open_mode(dir: &Path, create: bool, read_only: bool) -> Result<FileBackend, FormatError> {
        let dir = dir.to_path_buf();
        let io_err = |e| FormatError::io(dir.display().to_string(), None, e);
        match fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(io_err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    "not a directory",
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !create {
                    return Err(FormatError::MissingDirectory { path: dir });
                }
                fs::create_dir_all(&dir).map_err(io_err)?;
            }
            Err(e) => return Err(io_err(e)),
        }
        let dir_handle = File::open(&dir).map_err(io_err)?;
        let meta = dir_handle.metadata().map_err(io_err)?;
        if !meta.is_dir() {
            return Err(io_err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            )));
        }
        let identity = DirIdentity::of(&meta);
        if !register(identity, read_only) {
            return Err(FormatError::Locked { path: dir });
        }
        if let Err(e) = lock(&dir_handle, read_only) {
            unregister(identity);
            return Err(match e.kind() {
                io::ErrorKind::WouldBlock => FormatError::Locked { path: dir },
                _ => io_err(e),
            });
        }
        Ok(FileBackend {
            dir,
            dir_handle,
            identity,
            read_only,
            handles: Mutex::new(HashMap::new()),
        })
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the backend was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The full path of `file`.
    pub fn path(&self, file: FileId) -> PathBuf {
        self.dir.join(file.file_name())
    }

    /// Fails if the backend is read-only.
    fn writable(&self) -> io::Result<()> {
        if self.read_only {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the store is open read-only",
            ));
        }
        Ok(())
    }

    /// Fails unless the store's path still names the locked directory.
    fn check_identity(&self) -> io::Result<()> {
        let now = fs::metadata(&self.dir)?;
        if DirIdentity::of(&now) != self.identity {
            return Err(io::Error::other(
                "the store directory was moved or replaced while open",
            ));
        }
        Ok(())
    }

    /// Opens `file` without following a symlink, for reading only or for
    /// reading and writing (creating it if `create`).
    fn open_file(&self, file: FileId, write: bool, create: bool) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(write)
            .create(create)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(self.path(file))
    }

    /// The cached handle of `file`, opening it (and creating it if
    /// `create`) on first use.
    fn handle(&self, file: FileId, create: bool) -> io::Result<Arc<File>> {
        let mut handles = self.handles.lock();
        if let Some(h) = handles.get(&file) {
            return Ok(Arc::clone(h));
        }
        if create {
            self.writable()?;
            self.check_identity()?;
        }
        let f = Arc::new(self.open_file(file, !self.read_only, create)?);
        if !f.metadata()?.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        handles.insert(file, Arc::clone(&f));
        Ok(f)
    }
}

/// Takes the directory lock, retrying for [`LOCK_PATIENCE`] while it is
/// held elsewhere.
fn lock(dir: &File, shared: bool) -> io::Result<()> {
    let start = Instant::now();
    loop {
        let result = if shared {
            dir.try_lock_shared()
        } else {
            dir.try_lock()
        };
        match result {
            Ok(()) => return Ok(()),
            Err(fs::TryLockError::WouldBlock) if start.elapsed() < LOCK_PATIENCE => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(fs::TryLockError::WouldBlock) => return Err(io::ErrorKind::WouldBlock.into()),
            Err(fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

impl Drop for FileBackend {
    fn drop(&mut self) {
        // The kernel drops the flock with the directory handle, right after.
        unregister(self.identity);
    }
}

impl Backend for FileBackend {
    fn read_at(&self, file: FileId, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.handle(file, false)?.read_exact_at(buf, offset)
    }

    fn write_at(&self, file: FileId, offset: u64, data: &[u8]) -> io::Result<()> {
        self.writable()?;
        self.handle(file, true)?.write_all_at(data, offset)
    }

    fn create_whole(&self, file: FileId, data: &[u8]) -> io::Result<()> {
        self.writable()?;
        self.check_identity()?;
        let temp = self.dir.join(format!("{}.tmp", file.file_name()));
        match fs::remove_file(&temp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temp)?;
        f.write_all_at(data, 0)?;
        f.sync_all()?;
        self.handles.lock().remove(&file);
        fs::rename(&temp, self.path(file))
    }

    fn len(&self, file: FileId) -> io::Result<u64> {
        Ok(self.handle(file, false)?.metadata()?.len())
    }

    fn sync(&self, file: FileId) -> io::Result<()> {
        self.writable()?;
        self.handle(file, false)?.sync_data()
    }

    fn sync_dir(&self) -> io::Result<()> {
        self.writable()?;
        self.dir_handle.sync_all()
    }

    fn remove(&self, file: FileId) -> io::Result<()> {
        self.writable()?;
        self.check_identity()?;
        let mut handles = self.handles.lock();
        handles.remove(&file);
        fs::remove_file(self.path(file))
    }

    fn list(&self) -> io::Result<Vec<FileId>> {
        let names = fs::read_dir(&self.dir)?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(files_from_names(names.iter().filter_map(|n| n.to_str())))
    }

    fn name(&self, file: FileId) -> String {
        self.path(file).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::tests::{check_contract, check_random_access};
    use crate::SegmentId;
    use std::os::unix::fs::symlink;

    const SEG: FileId = FileId::Segment(SegmentId(42));

    #[test]
    fn file_backend_keeps_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let b = FileBackend::open(dir.path(), false).unwrap();
        check_contract(&b);
        assert!(b.name(SEG).ends_with("seg-000042.lx"));
        // Stray files in the directory are not segments.
        fs::write(dir.path().join("seg-1.lx"), b"x").unwrap();
        fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        assert_eq!(b.segments().unwrap(), vec![SegmentId(7)]);
        let dir = tempfile::tempdir().unwrap();
        check_random_access(&FileBackend::open(dir.path(), false).unwrap());
    }

    #[test]
    fn file_backend_bytes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let b = FileBackend::open(dir.path(), false).unwrap();
            b.write_at(SEG, 0, b"durable").unwrap();
            b.sync(SEG).unwrap();
            b.sync_dir().unwrap();
        }
        let b = FileBackend::open(dir.path(), false).unwrap();
        let mut buf = [0u8; 7];
        b.read_at(SEG, 0, &mut buf).unwrap();
        assert_eq!(&buf, b"durable");
        assert_eq!(b.len(SEG).unwrap(), 7);
        assert_eq!(fs::read(b.path(SEG)).unwrap(), b"durable");
    }

    #[test]
    fn file_backend_missing_directory_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("a").join("b");
        match FileBackend::open(&missing, false) {
            Err(FormatError::MissingDirectory { path }) => assert_eq!(path, missing),
            other => panic!("expected MissingDirectory, got {other:?}"),
        }
        assert!(!missing.exists());
        let b = FileBackend::open(&missing, true).unwrap();
        assert!(missing.is_dir());
        b.write_at(FileId::Superblock, 0, b"x").unwrap();
        assert!(missing.join("superblock").is_file());
    }

    #[test]
    fn file_backend_refuses_a_plain_file_as_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        fs::write(&file, b"x").unwrap();
        let err = FileBackend::open(&file, true).unwrap_err();
        assert!(matches!(err, FormatError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("plain"), "{err}");
    }

    #[test]
    fn file_backend_locks_its_directory_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = FileBackend::open(dir.path(), true).unwrap();
        let err = FileBackend::open(dir.path(), true).unwrap_err();
        assert!(matches!(err, FormatError::Locked { .. }), "{err:?}");
        assert!(err.to_string().contains("in use"), "{err}");
        let err = FileBackend::open_read_only(dir.path()).unwrap_err();
        assert!(matches!(err, FormatError::Locked { .. }), "{err:?}");
        drop(first);
        FileBackend::open(dir.path(), false).unwrap();
    }

    /// Issue 12 item 4: deleting a lock file let a second writer in; the
    /// lock is now on the directory, which no cleanup can replace.
    #[test]
    fn no_file_in_the_directory_carries_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let first = FileBackend::open(dir.path(), true).unwrap();
        first.write_at(SEG, 0, b"x").unwrap();
        for entry in fs::read_dir(dir.path()).unwrap() {
            fs::remove_file(entry.unwrap().path()).unwrap();
        }
        let err = FileBackend::open(dir.path(), true).unwrap_err();
        assert!(matches!(err, FormatError::Locked { .. }), "{err:?}");
        // Another process's open description is refused by the kernel too.
        let other = File::open(dir.path()).unwrap();
        assert!(matches!(
            other.try_lock_shared(),
            Err(fs::TryLockError::WouldBlock)
        ));
    }

    /// Issue 12 item 6: several readers share a store; a writer waits for
    /// them all to close, and readers write nothing.
    #[test]
    fn readers_share_and_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        {
            let w = FileBackend::open(dir.path(), true).unwrap();
            w.write_at(SEG, 0, b"data").unwrap();
        }
        let r1 = FileBackend::open_read_only(dir.path()).unwrap();
        let r2 = FileBackend::open_read_only(dir.path()).unwrap();
        assert!(r1.is_read_only());
        let mut buf = [0u8; 4];
        r2.read_at(SEG, 0, &mut buf).unwrap();
        assert_eq!(&buf, b"data");
        for result in [
            r1.write_at(SEG, 0, b"x"),
            r1.write_at(FileId::Superblock, 0, b"x"),
            r1.sync(SEG),
            r1.sync_dir(),
            r1.remove(SEG),
            r1.create_whole(FileId::Superblock, b"x"),
        ] {
            let e = result.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
        }
        assert!(!dir.path().join("superblock").exists());
        assert!(matches!(
            FileBackend::open(dir.path(), false),
            Err(FormatError::Locked { .. })
        ));
        drop((r1, r2));
        FileBackend::open(dir.path(), false).unwrap();
    }

    /// Issue 12 item 4: a symlinked superblock or segment is never
    /// followed, so a commit cannot write another store's files.
    #[test]
    fn symlinks_in_the_directory_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("victim");
        fs::write(&target, b"precious").unwrap();
        let store = dir.path().join("db");
        fs::create_dir(&store).unwrap();
        symlink(&target, store.join("superblock")).unwrap();
        symlink(&target, store.join(SEG.file_name())).unwrap();
        let b = FileBackend::open(&store, false).unwrap();
        assert!(b.write_at(FileId::Superblock, 0, b"evil").is_err());
        assert!(b.write_at(SEG, 0, b"evil").is_err());
        let mut buf = [0u8; 4];
        assert!(b.read_at(SEG, 0, &mut buf).is_err());
        assert_eq!(fs::read(&target).unwrap(), b"precious");
    }

    /// A store moved away while open is not written at its old path.
    #[test]
    fn a_replaced_directory_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("db");
        let b = FileBackend::open(&store, true).unwrap();
        fs::rename(&store, dir.path().join("moved")).unwrap();
        fs::create_dir(&store).unwrap();
        let e = b.write_at(SEG, 0, b"x").unwrap_err();
        assert!(e.to_string().contains("moved or replaced"), "{e}");
        assert_eq!(fs::read_dir(&store).unwrap().count(), 0);
    }

    #[test]
    fn create_whole_replaces_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let b = FileBackend::open(dir.path(), false).unwrap();
        b.write_at(FileId::Superblock, 0, b"old contents").unwrap();
        b.create_whole(FileId::Superblock, b"new").unwrap();
        assert_eq!(fs::read(dir.path().join("superblock")).unwrap(), b"new");
        assert_eq!(b.len(FileId::Superblock).unwrap(), 3);
        assert!(!dir.path().join("superblock.tmp").exists());
    }

    /// Issue 12 item 15: a store dropped while other threads fork command
    /// filters can be reopened at once (a forked child briefly shares the
    /// locked directory handle).
    #[test]
    fn reopen_right_after_drop_while_children_are_forked() {
        let dir = tempfile::tempdir().unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let _ = std::process::Command::new("/bin/true").status();
                    }
                });
            }
            for _ in 0..200 {
                let b = FileBackend::open(dir.path(), true).unwrap();
                b.write_at(SEG, 0, b"x").unwrap();
                drop(b);
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }
}
