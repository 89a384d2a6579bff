//! The [`Filter`] trait and the [`Context`] every call receives.
//!
//! A filter is a pure function of (context, bytes) in each direction.
//! Invariants every implementation keeps:
//! - `decode(ctx, encode(ctx, x)?) == x` for every input `x`, including the
//!   empty one, as long as the same context (same node id and tweak) is
//!   used.
//! - `decode` of arbitrary bytes never panics, and neither allocates for its
//!   output nor returns more than `ctx.bound(own limit)` bytes (see
//!   [`Context::bound`]), beyond a copy of its input's size.
//! - The context's bound concerns decoded output only: `encode` ignores it.
//! - `name()` and `params()` together describe the on-disk format the filter
//!   produces, and nothing secret: they are recorded in the superblock.

use crate::FilterError;

/// What a filter knows about the blob it is working on.
///
/// The node id binds a blob to its node: the encryption filter uses it as
/// associated data and the checksum filter seeds its CRC with it, so a blob
/// copied to another node id fails to decode.
///
/// The tweak, when not 0, binds a blob further (to a generation, a store, a
/// role): it joins the node id in the encryption's associated data and in
/// the checksum's seed. A tweak of 0 leaves both exactly as they were
/// before tweaks existed, so blobs written then still decode.
///
/// `max_len`, when set, bounds this call's decoded output on top of each
/// filter's own limit: a filter refuses to produce more than
/// [`Context::bound`] bytes ([`FilterError::TooLarge`]) and allocates no
/// more than that for its output. [`Pipeline::decode`](crate::Pipeline::decode)
/// holds the node bytes to the caller's bound and each intermediate output
/// to the largest encoding of a node that size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Context {
    /// The logical id of the node whose bytes are being filtered.
    pub node_id: u64,
    /// An upper bound on the decoded output of this call, if any (for
    /// instance the store's node size); `None` leaves only each filter's
    /// own limit.
    pub max_len: Option<usize>,
    /// A further value the blob is bound to; 0 (the default) binds nothing
    /// more than the node id.
    pub tweak: u64,
}

impl Context {
    /// A context for the node `node_id`: tweak 0, and no bound of its own
    /// on the decoded output.
    pub const fn new(node_id: u64) -> Self {
        Context {
            node_id,
            max_len: None,
            tweak: 0,
        }
    }

    /// This context with blobs bound to `tweak` as well as to the node id
    /// (a blob sealed under one tweak fails to decode under another).
    pub const fn with_tweak(self, tweak: u64) -> Self {
        Context { tweak, ..self }
    }

    /// The bytes a blob is bound to: the node id as u64 LE, followed by the
    /// tweak as u64 LE unless it is 0. Returns the buffer and the length
    /// used (8 or 16).
    pub(crate) fn binding(&self) -> ([u8; 16], usize) {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.node_id.to_le_bytes());
        if self.tweak == 0 {
            return (bytes, 8);
        }
        bytes[8..].copy_from_slice(&self.tweak.to_le_bytes());
        (bytes, 16)
    }

    /// This context with the decoded output bounded by `max_len` bytes.
    pub const fn with_max_len(self, max_len: usize) -> Self {
        Context {
            max_len: Some(max_len),
            ..self
        }
    }

    /// The bound a filter whose own limit is `own_limit` holds this call's
    /// output to: the smaller of `own_limit` and [`Context::max_len`].
    pub fn bound(&self, own_limit: usize) -> usize {
        self.max_len.map_or(own_limit, |max| max.min(own_limit))
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

    /// The most bytes [`encode`](Filter::encode) can produce from
    /// `input_len` bytes, if known. The pipeline uses it to bound what a
    /// later filter's `decode` may hand to this one; `None` (the default)
    /// leaves that filter with only its own limit.
    fn max_encoded_len(&self, input_len: usize) -> Option<usize> {
        let _ = input_len;
        None
    }

    /// The key of the pipeline's metadata MAC ([`Pipeline::mac`](crate::Pipeline::mac)),
    /// if this filter holds a secret to derive one from: the encryption
    /// filter offers a key derived from its own, never its own key. `None`
    /// (the default) for filters without a secret. Callers zero their copy
    /// once used.
    fn mac_key(&self) -> Option<[u8; crate::MAC_LEN]> {
        None
    }
}
