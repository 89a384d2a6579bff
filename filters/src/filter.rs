//! The [`Filter`] trait and the [`Context`] every call receives.
//!
//! A filter is a pure function of (context, bytes) in each direction.
//! Invariants every implementation keeps:
//! - `decode(ctx, encode(ctx, x)?) == x` for every input `x`, including the
//!   empty one, as long as the same context (same node id) is used.
//! - `decode` of arbitrary bytes never panics and never allocates more than
//!   the pipeline's decoded-size limit (plus the input's own size).
//! - `name()` and `params()` together describe the on-disk format the filter
//!   produces, and nothing secret: they are recorded in the superblock.

use crate::FilterError;

/// What a filter knows about the blob it is working on.
///
/// The node id binds a blob to its node: the encryption filter uses it as
/// associated data and the checksum filter seeds its CRC with it, so a blob
/// copied to another node id fails to decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Context {
    /// The logical id of the node whose bytes are being filtered.
    pub node_id: u64,
}

impl Context {
    /// A context for the node `node_id`.
    pub const fn new(node_id: u64) -> Self {
        Context { node_id }
    }
}

/// One byte-to-byte transformation of a node on its way to disk and back.
///
/// Implementations are shared between worker threads, hence `Send + Sync`,
/// and must not print their secrets through `Debug`.
pub trait Filter: Send + Sync + std::fmt::Debug {
    /// A stable, lower-case name: `"zstd"`, `"checksum"`, `"encrypt"`,
    /// `"command"`. Recorded in the superblock.
    fn name(&self) -> &'static str;

    /// The parameters that determine the blob format, as stable text (e.g.
    /// `"level=3"`). Never contains key material.
    fn params(&self) -> String;

    /// Transforms node bytes into the bytes handed to the next filter
    /// (or to disk).
    ///
    /// # Errors
    ///
    /// A [`FilterError`] naming `ctx.node_id` when the transformation fails
    /// (a command that cannot run, a failing random number generator...).
    fn encode(&self, ctx: &Context, input: &[u8]) -> Result<Vec<u8>, FilterError>;

    /// Reverses [`encode`](Filter::encode).
    ///
    /// # Errors
    ///
    /// A [`FilterError`] naming `ctx.node_id` when `input` is not something
    /// this filter produced for that node id with these parameters (and,
    /// for encryption, this key): truncated, corrupt, tampered, too large
    /// once decoded.
    fn decode(&self, ctx: &Context, input: &[u8]) -> Result<Vec<u8>, FilterError>;
}
