//! Removing what a command wrote, and nothing else.
//!
//! Invariants:
//! - Only regular files are removed, and only by name: the files a store
//!   writes (`superblock`, `superblock.tmp`, `lock`, `seg-NNNNNN.lx`) and
//!   the names a caller adds (the demo's marker). Anything else in the
//!   directory stays, so there is no `remove_dir_all` here.
//! - A directory is removed only if it is empty, and only by a caller that
//!   created it.

use super::error::{CliError, Result};
use larix::backend::FileId;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// The files a store writes besides `superblock` and its segments.
const OTHER_STORE_FILES: [&str; 2] = ["superblock.tmp", "lock"];

/// True if a store writes files called `name`.
pub fn is_store_file(name: &OsStr) -> bool {
    name.to_str()
        .is_some_and(|n| OTHER_STORE_FILES.contains(&n) || FileId::from_file_name(n).is_some())
}

/// The names of the entries of `dir`; none if it does not exist.
///
/// # Errors
/// [`CliError::Io`] if `dir` exists but cannot be listed.
pub fn entries(dir: &Path) -> Result<Vec<OsString>> {
    let listing = match fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CliError::io(dir, e)),
    };
    listing
        .map(|entry| {
            entry
                .map(|e| e.file_name())
                .map_err(|e| CliError::io(dir, e))
        })
        .collect()
}

/// Removes the regular files of `dir` whose names `owned` accepts.
///
/// # Errors
/// [`CliError::Io`] for the first file that cannot be listed or removed.
pub fn remove_files(dir: &Path, owned: impl Fn(&OsStr) -> bool) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(|e| CliError::io(dir, e))? {
        let entry = entry.map_err(|e| CliError::io(dir, e))?;
        let path = entry.path();
        // The entry itself, not what a symlink points to.
        let is_file = entry
            .file_type()
            .map_err(|e| CliError::io(&path, e))?
            .is_file();
        if is_file && owned(&entry.file_name()) {
            fs::remove_file(&path).map_err(|e| CliError::io(&path, e))?;
        }
    }
    Ok(())
}

/// Removes directory `dir` if it is empty; true if it did.
///
/// # Errors
/// [`CliError::Io`] if it is empty but cannot be removed.
pub fn remove_dir_if_empty(dir: &Path) -> Result<bool> {
    match fs::remove_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::DirectoryNotEmpty => Ok(false),
        Err(e) => Err(CliError::io(dir, e)),
    }
}

/// What a directory held before a command created a store in it, so that
/// the store can be removed again if the command fails.
pub struct Before {
    dir: PathBuf,
    /// The directory did not exist: the command made it.
    made_dir: bool,
    /// The names it held (a store's files among them stay).
    names: Vec<OsString>,
}

impl Before {
    /// Notes what `dir` holds now.
    ///
    /// # Errors
    /// As [`entries`].
    pub fn note(dir: &Path) -> Result<Before> {
        Ok(Before {
            dir: dir.to_path_buf(),
            made_dir: fs::symlink_metadata(dir).is_err(),
            names: entries(dir)?,
        })
    }

    /// Removes the store files written since [`Before::note`], then the
    /// directory if the command made it and it is empty.
    ///
    /// # Errors
    /// As [`remove_files`] and [`remove_dir_if_empty`].
    pub fn restore(&self) -> Result<()> {
        if fs::symlink_metadata(&self.dir).is_err() {
            return Ok(());
        }
        remove_files(&self.dir, |name| {
            is_store_file(name) && !self.names.iter().any(|n| n == name)
        })?;
        if self.made_dir {
            remove_dir_if_empty(&self.dir)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_store_s_own_names_are_store_files() {
        for name in ["superblock", "superblock.tmp", "lock", "seg-000001.lx"] {
            assert!(is_store_file(OsStr::new(name)), "{name}");
        }
        for name in ["notes.txt", "seg-1.lx", "superblock.bak", "larix-demo"] {
            assert!(!is_store_file(OsStr::new(name)), "{name}");
        }
    }

    #[test]
    fn restore_removes_only_new_store_files() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("d");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("seg-000001.lx"), b"old").unwrap();
        let before = Before::note(&dir).unwrap();
        fs::write(dir.join("seg-000002.lx"), b"new").unwrap();
        fs::write(dir.join("notes.txt"), b"mine").unwrap();
        before.restore().unwrap();
        let mut left = entries(&dir).unwrap();
        left.sort();
        assert_eq!(left, ["notes.txt", "seg-000001.lx"]);

        let made = root.path().join("made");
        let before = Before::note(&made).unwrap();
        fs::create_dir(&made).unwrap();
        fs::write(made.join("superblock"), b"x").unwrap();
        before.restore().unwrap();
        assert!(!made.exists());
    }
}
