//! `larix-filters`: the byte-to-byte filters every node passes through on
//! its way to disk (encode) and back (decode).
//!
//! A [`Pipeline`] is built from a list of [`FilterSpec`]s, checks that their
//! order makes sense, and runs a node's bytes through each [`Filter`] in
//! order on encode and in reverse on decode. The filters:
//!
//! | name | does | blob it produces |
//! | --- | --- | --- |
//! | `zstd` | zstd compression at a level | one zstd frame declaring its size |
//! | `checksum` | crc32c, seeded with the node id (and tweak) | payload, then 4-byte LE crc |
//! | `encrypt` | XChaCha20-Poly1305, node id (and tweak) as associated data | 24-byte nonce, ciphertext, 16-byte tag |
//! | `command` | an external Unix command each way (absolute path, time-limited) | the command's output |
//!
//! [`Pipeline::describe`] writes the text a store records for its stack and
//! [`parse_descriptor`] reads it back into [`RecordedFilter`]s, which only
//! describe: a recorded command is never run unless the caller supplies a
//! [`FilterSpec`] that [matches](RecordedFilter::matches) it.
//!
//! Invariants of the crate:
//! - It does no I/O on the store and starts no threads of its own, except
//!   the short-lived scoped threads of the command filter (feeding a
//!   command's standard input, reading its output and standard error,
//!   waiting for its exit), all ended before the call returns.
//! - A command filter call ends: a command still running after its timeout
//!   ([`DEFAULT_COMMAND_TIMEOUT`] unless set with
//!   [`FilterSpec::command_with_timeout`]) is killed with its process group
//!   and reaped, and the call fails with [`FilterError::CommandTimeout`].
//! - Decoding arbitrary bytes never panics and never allocates more than
//!   the pipeline's decoded-size limit ([`DEFAULT_MAX_DECODED_LEN`] unless
//!   set with [`Pipeline::with_max_decoded_len`]) beyond its input's size.
//!   A call's own bound ([`Context::with_max_len`], e.g. the node size)
//!   tightens that: the node bytes never exceed it, and no step allocates
//!   more than the largest encoding of a node that long.
//! - Keys never appear in `Debug` output, error messages or
//!   [`Pipeline::describe`]; that holds for the metadata MAC key too, which
//!   is derived from the encryption key and never equal to it
//!   ([`Pipeline::mac`]: `None` without encryption).
//! - Every error concerning a blob names its node id ([`FilterError`]).
//! - A blob is bound to its node id and to the [`Context::with_tweak`]
//!   tweak; tweak 0 (the default) writes and reads exactly the format of
//!   stores made before tweaks existed.
//!
//! ```
//! use larix_filters::{Context, FilterSpec, Pipeline};
//!
//! let key = [7u8; 32];
//! let pipeline = Pipeline::new(&[
//!     FilterSpec::zstd(3),
//!     FilterSpec::encrypt(key),
//!     FilterSpec::checksum(),
//! ])?;
//! let ctx = Context::new(42);
//! let blob = pipeline.encode(&ctx, b"node bytes")?;
//! assert_eq!(pipeline.decode(&ctx, &blob)?, b"node bytes");
//! assert!(pipeline.decode(&Context::new(43), &blob).is_err());
//! assert_eq!(
//!     pipeline.describe(),
//!     "zstd(level=3),encrypt(xchacha20poly1305),checksum(crc32c)"
//! );
//! # Ok::<(), larix_filters::FilterError>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod checksum;
mod command;
mod compress;
mod descriptor;
mod encrypt;
mod error;
mod filter;
mod key;
mod mac;
mod pipeline;
mod spec;
#[cfg(test)]
mod testing;

pub use command::STDERR_TAIL;
pub use descriptor::{parse_descriptor, RecordedFilter};
pub use error::{Direction, FilterError};
pub use filter::{Context, Filter};
pub use key::{EncryptionKey, KEY_LEN};
pub use mac::MAC_LEN;
pub use pipeline::Pipeline;
pub use spec::{
    FilterSpec, DEFAULT_COMMAND_TIMEOUT, DEFAULT_MAX_DECODED_LEN, ZSTD_MAX_LEVEL, ZSTD_MIN_LEVEL,
};
