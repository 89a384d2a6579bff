//! The command line's error type: every way a command fails, each with a
//! message that fits on one line after `larix: `.

use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a command failed.
#[derive(Debug, Error)]
pub enum CliError {
    /// The engine refused or failed.
    #[error(transparent)]
    Larix(#[from] larix::Error),
    /// A read-only command named a directory that holds no store.
    #[error("no Larix store at {}", .0.display())]
    NoStore(PathBuf),
    /// The named tree is not in the store.
    #[error("tree {0:?} does not exist")]
    NoTree(String),
    /// The key is not in the tree.
    #[error("key {key} not found in tree {tree:?}")]
    NoKey {
        /// The key as the user wrote it.
        key: String,
        /// The tree searched.
        tree: String,
    },
    /// A key, value or record the user gave cannot be read.
    #[error("{0}")]
    BadInput(String),
    /// Reading or writing a file failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Writing to standard output failed (a closed pipe is not reported).
    #[error("writing output: {0}")]
    Output(std::io::Error),
}

/// Shorthand for results of commands.
pub type Result<T, E = CliError> = std::result::Result<T, E>;

impl CliError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> CliError {
        CliError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// True if this is output going to a reader that has gone away, as in
    /// `larix scan | head`: not worth a message.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

impl From<std::io::Error> for CliError {
    /// Output errors: the only I/O without a file name to report.
    fn from(e: std::io::Error) -> Self {
        CliError::Output(e)
    }
}
