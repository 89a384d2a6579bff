//! Removing what a command wrote, and nothing else.
//!
//! Invariants:
//! - Only regular files are removed, and only by name: the files a store
//!   writes (`superblock`, `superblock.tmp`, `lock`, `seg-NNNNNN.lx`) and
//!   the names a caller adds (the demo's marker). Anything else in the
//!   directory stays, so there is no `remove_dir_all` here.

use super::error::{CliError, Result};
use larix::backend::FileId;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::ErrorKind;
use std::path::Path;

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
}
