//! Errors of the on-disk layer: I/O through a [`Backend`](crate::Backend)
//! and bytes that do not decode as a blob record, a superblock slot, a node
//! table chunk or the table directory.
//!
//! Decoders that see bytes without knowing where they came from return a
//! small fault value ([`BlobFault`], [`SlotFault`]); the code that read the
//! bytes wraps it in a [`FormatError`] naming the file (by
//! [`Backend::name`](crate::Backend::name)) and the offset, chunk or node id
//! involved. Nothing here panics on bad bytes.

use crate::{BlobKind, NodeId};
use std::io;
use std::path::PathBuf;
use thiserror::Error;

/// Everything that can go wrong reading or writing the store's files.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The operating system (or an injected fault) failed an I/O call.
    #[error("I/O error on {file}{}: {source}", at_offset(.offset))]
    Io {
        /// The file, as [`Backend::name`](crate::Backend::name) names it.
        file: String,
        /// Where in the file, when the call had an offset.
        offset: Option<u64>,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The store's directory does not exist and creating it was not asked
    /// for.
    #[error("store directory {} does not exist", .path.display())]
    MissingDirectory {
        /// The directory looked for.
        path: PathBuf,
    },
    /// Another handle (in this process or another) has the store open.
    #[error("store directory {} is in use by another handle", .path.display())]
    Locked {
        /// The store directory.
        path: PathBuf,
    },
    /// An object store URL or storage option that cannot be used.
    #[error("cannot open {url}: {why}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// A blob record read from a segment is not the one its location
    /// promised, or is damaged.
    #[error("{kind} blob {id} at {file} offset {offset}: {fault}")]
    Blob {
        /// The segment file.
        file: String,
        /// Offset of the record's header.
        offset: u64,
        /// The kind of blob that was expected there.
        kind: BlobKind,
        /// The id that was expected (node id, chunk index or 0).
        id: u64,
        /// What is wrong with it.
        #[source]
        fault: BlobFault,
    },
    /// A blob is too large to be written as one record.
    #[error("{kind} blob {id} is {len} bytes, more than the limit of {max}")]
    BlobTooLarge {
        /// The kind of blob.
        kind: BlobKind,
        /// Its id (node id, chunk index or 0).
        id: u64,
        /// Its length in bytes.
        len: usize,
        /// The largest body a record may have.
        max: u64,
    },
    /// Segment ids would overflow `u32`.
    #[error("segment ids are exhausted (after segment {last})")]
    SegmentIdsExhausted {
        /// The last segment id in use.
        last: u32,
    },
    /// The superblock file is missing or both of its slots are empty: there
    /// is no committed store here.
    #[error("{file} holds no superblock: no store was ever committed here")]
    NoSuperblock {
        /// The superblock file.
        file: String,
    },
    /// The superblock is missing or blank while segment files still hold
    /// committed data: it was lost, and creating a store would destroy the
    /// data, so the store is left as it is.
    #[error(
        "damaged store: {file} is missing or blank but {segments} segment file(s) hold data; \
         refusing to create a store over them (restore the superblock from a backup)"
    )]
    SuperblockLost {
        /// The superblock file.
        file: String,
        /// How many segment files the directory holds.
        segments: usize,
    },
    /// The node table disagrees with the superblock that points at it.
    #[error("damaged store: the node table disagrees with the superblock: {reason}")]
    TableInconsistent {
        /// What disagrees.
        reason: String,
    },
    /// No superblock slot's MAC verifies under the key given: the key is
    /// wrong, or the superblock was forged.
    #[error(
        "{file}: no superblock slot verifies under the key given (a wrong key, or a forged superblock)"
    )]
    Unauthenticated {
        /// The superblock file.
        file: String,
    },
    /// A commit log record that was durable cannot be read: the log is
    /// damaged before its tail.
    #[error("damaged commit log: {file}: record {lsn} was durable but cannot be read")]
    LogDamaged {
        /// The log file.
        file: String,
        /// The record that cannot be read.
        lsn: u64,
    },
    /// Neither superblock slot carries the Larix magic.
    #[error("{file} is not a Larix store (no slot carries the Larix magic)")]
    NotLarix {
        /// The superblock file.
        file: String,
    },
    /// The newest readable slot was written by a format version this build
    /// does not read.
    #[error("{file} uses format version {version}; this build reads version {supported}")]
    UnsupportedVersion {
        /// The superblock file.
        file: String,
        /// The version found.
        version: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// Both superblock slots are invalid, and not merely empty.
    #[error("both superblock slots of {file} are damaged: slot 0: {slot0}; slot 1: {slot1}")]
    SuperblockDamaged {
        /// The superblock file.
        file: String,
        /// Why slot 0 was rejected.
        slot0: SlotFault,
        /// Why slot 1 was rejected.
        slot1: SlotFault,
    },
    /// A filter stack descriptor is longer than a superblock slot can hold.
    #[error("filter stack descriptor is {len} bytes, more than the limit of {max}")]
    DescriptorTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A node table chunk does not decode.
    #[error("node table chunk {chunk} is damaged: {reason}")]
    ChunkDamaged {
        /// The chunk index (node id / 1024).
        chunk: u64,
        /// What the decoder found.
        reason: String,
    },
    /// The node table directory does not decode.
    #[error("node table directory is damaged: {reason}")]
    DirectoryDamaged {
        /// What the decoder found.
        reason: String,
    },
    /// A node table entry cannot be encoded: it has no location yet, or its
    /// location does not fit the fixed slot. This is a bug in the caller.
    #[error("node table entry of {id} cannot be encoded: {reason}")]
    EntryUnencodable {
        /// The node.
        id: NodeId,
        /// Why.
        reason: &'static str,
    },
}

fn at_offset(offset: &Option<u64>) -> String {
    match offset {
        Some(o) => format!(" at offset {o}"),
        None => String::new(),
    }
}

impl FormatError {
    /// Wraps an I/O error with the file and offset it concerns.
    pub(crate) fn io(file: String, offset: Option<u64>, source: io::Error) -> Self {
        FormatError::Io {
            file,
            offset,
            source,
        }
    }
}

/// Why bytes are not a valid blob record (header and body).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BlobFault {
    /// Fewer bytes than a header.
    #[error("only {0} bytes, a blob header needs 24")]
    ShortHeader(usize),
    /// The header does not start with the blob magic.
    #[error("bad magic {0:#010x}")]
    Magic(u32),
    /// The header's checksum does not match its bytes.
    #[error("header checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// The checksum in the header.
        stored: u32,
        /// The checksum of the header's bytes.
        computed: u32,
    },
    /// The kind byte names no known blob kind.
    #[error("unknown blob kind {0}")]
    UnknownKind(u8),
    /// The reserved header bytes are not zero.
    #[error("reserved header bytes are not zero")]
    Reserved,
    /// The recorded body length is beyond the limit.
    #[error("body length {len} exceeds the limit of {max} bytes")]
    TooLarge {
        /// The recorded length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The body does not match the digest that pins it: damage, or an
    /// older or foreign blob put in its place.
    #[error("its body does not match its digest (damaged or replaced)")]
    DigestMismatch,
    /// The record holds another kind of blob.
    #[error("found a {0} blob instead")]
    KindMismatch(BlobKind),
    /// The record holds another id.
    #[error("found id {0} instead")]
    IdMismatch(u64),
    /// The record's body length is not the one the location records.
    #[error("body length is {found}, the location says {expected}")]
    LenMismatch {
        /// The length the location records.
        expected: u32,
        /// The length in the header.
        found: u32,
    },
    /// The record runs past the end of the file.
    #[error("the record runs past the end of the file")]
    Truncated,
}

/// Why a superblock slot was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SlotFault {
    /// The slot was never written: missing, or all zero bytes (of any
    /// length).
    #[error("empty")]
    Empty,
    /// The slot is not exactly one slot long (a torn or truncated file).
    #[error("{0} bytes instead of 4096")]
    Length(usize),
    /// The slot does not start with the superblock magic.
    #[error("bad magic")]
    Magic,
    /// The slot was written by another format version.
    #[error("format version {0}")]
    Version(u32),
    /// The slot's checksum does not match its bytes.
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// The checksum in the slot.
        stored: u32,
        /// The checksum of the slot's bytes.
        computed: u32,
    },
    /// The slot's checksum matches but a field is out of range.
    #[error("{0}")]
    Field(String),
    /// The slot's MAC does not verify under the key given.
    #[error("its MAC does not verify under the key given")]
    Unauthenticated,
    /// A valid slot sits where its generation does not belong.
    #[error("generation {generation} found in slot {slot}")]
    WrongSlot {
        /// The generation recorded.
        generation: u64,
        /// The slot it was found in.
        slot: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_message_names_file_and_offset() {
        let e = FormatError::io(
            "seg-000007.lx".into(),
            Some(96),
            io::Error::other("injected failure"),
        );
        assert_eq!(
            e.to_string(),
            "I/O error on seg-000007.lx at offset 96: injected failure"
        );
        let e = FormatError::io("superblock".into(), None, io::Error::other("x"));
        assert_eq!(e.to_string(), "I/O error on superblock: x");
    }

    #[test]
    fn blob_message_names_kind_id_file_and_offset() {
        let e = FormatError::Blob {
            file: "seg-000001.lx".into(),
            offset: 48,
            kind: BlobKind::Node,
            id: 42,
            fault: BlobFault::IdMismatch(43),
        };
        assert_eq!(
            e.to_string(),
            "node blob 42 at seg-000001.lx offset 48: found id 43 instead"
        );
    }
}
