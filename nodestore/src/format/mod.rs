//! The on-disk format: blob records in segment files, the two-slot
//! superblock, the node table's chunks and directory, the digests that pin
//! them, and the errors of reading them. Every byte layout is drawn in
//! `docs/design.md` ("On-disk format"); every decoder here is total (no
//! panic, no allocation beyond its input's declared and checked size).

pub(crate) mod blob;
pub(crate) mod digest;
pub(crate) mod directory;
pub(crate) mod error;
pub(crate) mod log;
pub(crate) mod segment;
pub(crate) mod superblock;
pub(crate) mod table;
