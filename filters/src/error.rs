//! The crate's one error type, [`FilterError`].
//!
//! Invariants:
//! - Every error raised while encoding or decoding a blob names the node id
//!   it concerns, so a message read in a log says which node is damaged.
//! - No variant ever carries key material: key-file errors name the file,
//!   never its contents.
//! - Errors raised by [`Pipeline::new`](crate::Pipeline::new) name the filter
//!   and the rule it breaks.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Which way a blob was travelling when a filter failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Node bytes on their way to disk.
    Encode,
    /// Blob bytes on their way back from disk.
    Decode,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Encode => "encode",
            Direction::Decode => "decode",
        })
    }
}

/// Everything that can go wrong while building a [`Pipeline`](crate::Pipeline)
/// or running a blob through one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// The same filter appears twice in a pipeline.
    #[error(
        "invalid filter pipeline: duplicate filter `{name}` at positions {first} and {second}; \
         each filter may appear at most once"
    )]
    DuplicateFilter {
        /// The repeated filter's name.
        name: &'static str,
        /// Position (0-based) of its first occurrence.
        first: usize,
        /// Position (0-based) of its second occurrence.
        second: usize,
    },

    /// A filter is placed where it makes no sense.
    #[error("invalid filter pipeline: `{filter}` (position {position}) cannot follow `{after}`: {reason}")]
    FilterOrder {
        /// The misplaced filter's name.
        filter: &'static str,
        /// Its position (0-based) in the pipeline.
        position: usize,
        /// The earlier filter it must not follow.
        after: &'static str,
        /// Why the order is refused, and what to do instead.
        reason: &'static str,
    },

    /// A zstd compression level outside the accepted range.
    #[error(
        "invalid filter pipeline: zstd level {level} is out of range (accepted: {min}..={max})"
    )]
    ZstdLevel {
        /// The level that was asked for.
        level: i32,
        /// Smallest accepted level.
        min: i32,
        /// Largest accepted level.
        max: i32,
    },

    /// A command filter with an empty argv or an empty program name.
    #[error("invalid filter pipeline: the command filter's {direction} command is empty (argv needs a program name)")]
    EmptyCommand {
        /// Which of the two commands is empty.
        direction: Direction,
    },

    /// A command filter whose program (`argv[0]`) is not an absolute path.
    #[error(
        "invalid filter pipeline: the command filter's {direction} program `{program}` is not \
         an absolute path; give an absolute path (such as /usr/bin/gzip), since a relative one \
         runs whatever the current directory or PATH holds when the store is opened"
    )]
    RelativeCommand {
        /// Which of the two commands.
        direction: Direction,
        /// The program as given.
        program: String,
    },

    /// A descriptor (the text a store records for its filter stack) that
    /// [`Pipeline::describe`](crate::Pipeline::describe) cannot have written.
    #[error("invalid filter descriptor {text:?}: {reason}")]
    Descriptor {
        /// The descriptor text.
        text: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A key file could not be opened or read.
    #[error("cannot read encryption key file {path}: {source}")]
    KeyFileIo {
        /// The key file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// A key file was read but does not hold a key in an accepted form.
    #[error(
        "invalid encryption key file {path}: {reason} \
         (expected exactly 32 raw bytes, or 64 hex characters and an optional newline)"
    )]
    KeyFileFormat {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it (never its contents).
        reason: String,
    },

    /// A blob is shorter than the framing its filter adds.
    #[error("node {node_id}: blob too short for the {filter} filter: {len} bytes, at least {min} needed")]
    Truncated {
        /// The node the blob belongs to.
        node_id: u64,
        /// The filter whose framing is missing.
        filter: &'static str,
        /// The blob's length.
        len: usize,
        /// The smallest length the filter can decode.
        min: usize,
    },

    /// The stored checksum does not match the blob.
    #[error("node {node_id}: checksum mismatch: stored crc32c {expected:#010x}, computed {actual:#010x}")]
    ChecksumMismatch {
        /// The node the blob belongs to.
        node_id: u64,
        /// The checksum stored in the blob.
        expected: u32,
        /// The checksum computed over the blob's payload.
        actual: u32,
    },

    /// Authenticated decryption failed: wrong key, tampered blob, or a blob
    /// that belongs to another node id.
    #[error(
        "node {node_id}: decryption failed: wrong key, or the blob was altered \
         or belongs to another node"
    )]
    Decrypt {
        /// The node the blob belongs to.
        node_id: u64,
    },

    /// Encryption failed (the input exceeds what the cipher can seal).
    #[error("node {node_id}: encryption failed for a {len}-byte input")]
    Encrypt {
        /// The node being encoded.
        node_id: u64,
        /// The input's length.
        len: usize,
    },

    /// The operating system's random number generator failed.
    #[error("node {node_id}: cannot draw a random nonce: {reason}")]
    Random {
        /// The node being encoded.
        node_id: u64,
        /// The generator's error.
        reason: String,
    },

    /// zstd refused to compress.
    #[error("node {node_id}: zstd compression failed: {source}")]
    Compress {
        /// The node being encoded.
        node_id: u64,
        /// zstd's error.
        source: std::io::Error,
    },

    /// A zstd frame is malformed.
    #[error("node {node_id}: corrupt zstd frame: {reason}")]
    Decompress {
        /// The node the blob belongs to.
        node_id: u64,
        /// What is wrong with the frame.
        reason: String,
    },

    /// Decoding would produce more bytes than the pipeline allows.
    #[error("node {node_id}: {filter} output of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The node concerned.
        node_id: u64,
        /// The filter whose output is too large.
        filter: &'static str,
        /// The (declared or observed) output length.
        len: u64,
        /// The limit in force.
        limit: usize,
    },

    /// An external command could not be started.
    #[error("node {node_id}: cannot start {direction} command `{program}`: {source}")]
    CommandSpawn {
        /// The node concerned.
        node_id: u64,
        /// The program (argv\[0\]).
        program: String,
        /// Which of the two commands.
        direction: Direction,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// An external command exited unsuccessfully (this is also how a
    /// command reports input that it cannot decode).
    #[error("node {node_id}: {direction} command `{program}` failed ({status}); stderr: {stderr}")]
    CommandFailed {
        /// The node concerned.
        node_id: u64,
        /// The program (argv\[0\]).
        program: String,
        /// Which of the two commands.
        direction: Direction,
        /// Its exit status, as the platform prints it (e.g. `exit status: 3`).
        status: String,
        /// The last bytes (about 500) of its standard error, lossily decoded.
        stderr: String,
    },

    /// Piping bytes to or from an external command failed.
    #[error("node {node_id}: I/O error talking to {direction} command `{program}`: {source}")]
    CommandIo {
        /// The node concerned.
        node_id: u64,
        /// The program (argv\[0\]).
        program: String,
        /// Which of the two commands.
        direction: Direction,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// An external command was still running when its time was up; it was
    /// killed with its process group and reaped.
    #[error(
        "node {node_id}: {direction} command `{program}` did not finish within {timeout:?} \
         and was killed"
    )]
    CommandTimeout {
        /// The node concerned.
        node_id: u64,
        /// The program (argv\[0\]).
        program: String,
        /// Which of the two commands.
        direction: Direction,
        /// The time it was allowed.
        timeout: Duration,
    },
}

impl FilterError {
    /// The node id this error concerns, if it concerns one blob.
    pub fn node_id(&self) -> Option<u64> {
        match self {
            FilterError::Truncated { node_id, .. }
            | FilterError::ChecksumMismatch { node_id, .. }
            | FilterError::Decrypt { node_id }
            | FilterError::Encrypt { node_id, .. }
            | FilterError::Random { node_id, .. }
            | FilterError::Compress { node_id, .. }
            | FilterError::Decompress { node_id, .. }
            | FilterError::TooLarge { node_id, .. }
            | FilterError::CommandSpawn { node_id, .. }
            | FilterError::CommandFailed { node_id, .. }
            | FilterError::CommandIo { node_id, .. }
            | FilterError::CommandTimeout { node_id, .. } => Some(*node_id),
            FilterError::DuplicateFilter { .. }
            | FilterError::FilterOrder { .. }
            | FilterError::ZstdLevel { .. }
            | FilterError::EmptyCommand { .. }
            | FilterError::RelativeCommand { .. }
            | FilterError::Descriptor { .. }
            | FilterError::KeyFileIo { .. }
            | FilterError::KeyFileFormat { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_errors_name_their_node() {
        let e = FilterError::Decrypt { node_id: 42 };
        assert_eq!(e.node_id(), Some(42));
        assert!(e.to_string().starts_with("node 42:"), "{e}");
        let e = FilterError::ChecksumMismatch {
            node_id: 7,
            expected: 0xdead_beef,
            actual: 1,
        };
        let msg = e.to_string();
        assert!(
            msg.contains("node 7") && msg.contains("0xdeadbeef") && msg.contains("0x00000001"),
            "{msg}"
        );
    }

    #[test]
    fn pipeline_errors_have_no_node() {
        let e = FilterError::EmptyCommand {
            direction: Direction::Decode,
        };
        assert_eq!(e.node_id(), None);
        assert!(e.to_string().contains("decode command is empty"), "{e}");
    }
}
