//! The B-tree node: a leaf of key/value pairs or an index of key/child pairs.
//!
//! A node is kept in memory in its encoded form (the bytes that go to disk)
//! plus an offset per entry, so encoding is a copy, decoding is one
//! validating pass, and the encoded size that drives splits and merges is
//! always exact. Byte layout (see `docs/design.md`, "Node layout"):
//!
//! ```text
//! header   kind u8 | level u8 | count u32 LE
//! leaf     (kind 1) entry = varint key_len | varint (value_len << 1 | out) | key | value
//! index    (kind 2) entry = varint key_len | key | child id u64 LE
//! chunk    (kind 3, count 0) the bytes of one piece of an out-of-line value
//! value    (kind 4, count = chunks) value length u64 LE | chunk id u64 LE × count
//! ```
//!
//! A leaf value with `out` set is a [`ValueRef`] (16 bytes: the id of the
//! value's node and its length): a value too large to sit in a leaf is
//! stored out of line, in one chunk node if it fits [`CHUNK_BYTES`], else
//! in chunks listed by a value node. Value nodes and chunks are never
//! edited: a value is written once and shared by reference count like any
//! node (its leaf's copy adds a reference, its leaf's removal drops one).
//!
//! Invariants a decoded node always satisfies (the structural ones, such as
//! sorted keys, are the checker's job): leaves have level 0 and index nodes
//! level ≥ 1; every entry lies inside the buffer; the entries end exactly at
//! the end of the buffer; `count` equals the number of entries; an
//! out-of-line value is 16 bytes and longer than a chunk only if its id is
//! a value node's; a chunk holds 1 to [`CHUNK_BYTES`] bytes; a value node
//! lists 2 to 1,024 chunks, exactly as many as its length needs.

use integer_encoding::VarInt;
use larix_nodestore::{Codec, CodecError, NodeId};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::ops::Range;

/// Bytes of the node header.
pub const NODE_HEADER_LEN: usize = 6;
const KIND_LEAF: u8 = 1;
const KIND_INDEX: u8 = 2;
const KIND_CHUNK: u8 = 3;
const KIND_VALUE: u8 = 4;
const CHILD_LEN: usize = 8;

/// Bytes of one chunk of an out-of-line value (the last may hold fewer).
pub const CHUNK_BYTES: usize = 1 << 20;
/// The longest value accepted: 1 GiB.
pub const MAX_VALUE_LEN: u64 = 1 << 30;
/// Bytes of a leaf's reference to an out-of-line value.
pub const REF_LEN: usize = 16;
/// The largest node of a value (a full chunk), header included.
pub const MAX_VALUE_NODE: usize = NODE_HEADER_LEN + CHUNK_BYTES;

/// A leaf's reference to a value stored out of line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ValueRef {
    /// The chunk holding the value (one that fits a chunk), or the value
    /// node listing its chunks.
    pub id: NodeId,
    /// The value's length in bytes.
    pub len: u64,
}

impl ValueRef {
    /// The 16 bytes a leaf stores.
    pub fn to_bytes(self) -> [u8; REF_LEN] {
        let mut out = [0u8; REF_LEN];
        out[..8].copy_from_slice(&self.id.0.to_le_bytes());
        out[8..].copy_from_slice(&self.len.to_le_bytes());
        out
    }

    /// Reads the 16 bytes of a leaf's reference.
    fn from_bytes(bytes: &[u8]) -> ValueRef {
        let mut id = [0u8; 8];
        let mut len = [0u8; 8];
        id.copy_from_slice(&bytes[..8]);
        len.copy_from_slice(&bytes[8..REF_LEN]);
        ValueRef {
            id: NodeId(u64::from_le_bytes(id)),
            len: u64::from_le_bytes(len),
        }
    }

    /// What the node the reference points at must be.
    pub fn expect(self) -> Expect {
        if self.len <= CHUNK_BYTES as u64 {
            Expect::Chunk
        } else {
            Expect::Value
        }
    }
}

/// What a pointer requires of the node it points at: a tree node at a
/// level (B2), a value node, or a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// A leaf (0) or index node at this level.
    Level(u8),
    /// A value node (the chunk list of a value).
    Value,
    /// A chunk of a value.
    Chunk,
}

/// A leaf's value as stored: in the leaf, or a reference to its nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored<'a> {
    /// The value itself.
    Inline(&'a [u8]),
    /// A value stored out of line.
    Out(ValueRef),
}

/// A leaf or index node in its encoded form.
#[derive(Debug, PartialEq, Eq)]
pub struct Node {
    bytes: Vec<u8>,
    offsets: Vec<u32>,
    /// The eight bytes of each entry's key after the first `skip` as an
    /// integer ([`prefix`]): a search compares these, contiguous in
    /// memory, and reads a key's bytes only when two of them tie.
    heads: Vec<u64>,
    /// The length of the prefix every key of the node shares (that of its
    /// first and last keys, in order): paths under one directory differ
    /// only after it, so heads taken from the start would all tie.
    skip: usize,
    /// The first `skip` bytes (at most eight) as an integer ([`prefix`]),
    /// so that a search checks a key against a short shared prefix without
    /// reading the node's first key.
    shared_head: u64,
    /// The kind and level from the header, kept beside the arrays so that
    /// a descent does not read the encoded bytes' first line to learn them.
    kind: u8,
    level: u8,
}

/// Spare capacity given to a copy, so the edit that follows a shadowing
/// copy does not reallocate.
const COPY_SLACK: usize = 512;

impl Clone for Node {
    fn clone(&self) -> Self {
        let mut bytes = Vec::with_capacity(self.bytes.len() + COPY_SLACK);
        bytes.extend_from_slice(&self.bytes);
        let mut offsets = Vec::with_capacity(self.offsets.len() + 4);
        offsets.extend_from_slice(&self.offsets);
        let mut heads = Vec::with_capacity(self.heads.len() + 4);
        heads.extend_from_slice(&self.heads);
        Node {
            bytes,
            offsets,
            heads,
            skip: self.skip,
            shared_head: self.shared_head,
            kind: self.kind,
            level: self.level,
        }
    }
}

/// Appends `v` as a LEB128 varint.
fn put_varint(out: &mut Vec<u8>, v: usize) {
    let mut buf = [0u8; 10];
    let n = (v as u64).encode_var(&mut buf);
    out.extend_from_slice(&buf[..n]);
}

/// Reads a varint at `*pos` that must not exceed `limit`; advances `pos`.
#[inline]
fn get_varint(bytes: &[u8], pos: &mut usize, limit: usize) -> Option<usize> {
    let &first = bytes.get(*pos)?;
    if first < 0x80 {
        *pos += 1;
        return Some(usize::from(first)).filter(|&v| v <= limit);
    }
    let (v, n) = u64::decode_var(bytes.get(*pos..)?)?;
    *pos += n;
    usize::try_from(v).ok().filter(|&v| v <= limit)
}

/// Reads a length varint of entry `i` at `*pos` for [`Node::parse`]: it
/// must be minimal (the only encoding [`put_varint`] writes) and must not
/// exceed `limit`; advances `pos`.
fn parse_varint(bytes: &[u8], pos: &mut usize, limit: usize, i: usize) -> Result<usize, String> {
    let start = *pos;
    let v = get_varint(bytes, pos, limit)
        .ok_or_else(|| format!("entry {i} runs past the end of the node"))?;
    if *pos - start != v.required_space() {
        return Err(format!(
            "entry {i} has a length of {v} in {} bytes, not the minimal {}",
            *pos - start,
            v.required_space()
        ));
    }
    Ok(v)
}

/// The first eight bytes of `key` as a big-endian integer, zero-padded:
/// keys whose prefixes differ compare as their prefixes do (a shorter key
/// padded with zeros is below every longer key it starts, or equal to its
/// prefix, which the full comparison then decides).
#[inline]
pub(crate) fn prefix(key: &[u8]) -> u64 {
    match key.first_chunk::<8>() {
        Some(head) => u64::from_be_bytes(*head),
        None => {
            let mut head = [0u8; 8];
            head[..key.len()].copy_from_slice(key);
            u64::from_be_bytes(head)
        }
    }
}

/// Reads a length varint of a well-formed node at `*pos`, the one- and
/// two-byte forms (lengths below 16,384) without a general decoder;
/// advances `pos`.
#[inline]
fn get_len(bytes: &[u8], pos: &mut usize) -> usize {
    match bytes.get(*pos..*pos + 2) {
        Some(&[a, _]) if a < 0x80 => {
            *pos += 1;
            usize::from(a)
        }
        Some(&[a, b]) if b < 0x80 => {
            *pos += 2;
            usize::from(a & 0x7f) | usize::from(b) << 7
        }
        _ => get_varint(bytes, pos, usize::MAX).unwrap_or(0),
    }
}

/// Length of the entry that starts at byte `pos` of a well-formed node's
/// `bytes`.
fn entry_len_at(bytes: &[u8], pos: usize, leaf: bool) -> usize {
    let mut p = pos;
    let limit = bytes.len();
    let klen = get_varint(bytes, &mut p, limit).unwrap_or(0);
    let rest = if leaf {
        // The value field holds twice the length (and the out-of-line flag).
        get_varint(bytes, &mut p, usize::MAX).unwrap_or(0) >> 1
    } else {
        CHILD_LEN
    };
    p + klen + rest - pos
}

/// Encoded size of one leaf entry whose stored value is `value` (the
/// value itself, or the bytes of a [`ValueRef`]).
pub fn leaf_entry_len(key: &[u8], value: &[u8]) -> usize {
    key.len().required_space() + (value.len() << 1).required_space() + key.len() + value.len()
}

/// The index key for a leaf whose first key is `right`, following a leaf
/// whose last key is `left` (`left < right`): the shortest prefix of
/// `right` that sorts after `left`. Every key of the left leaf is below it
/// and every key of the right one at or above it (B1), and it takes no
/// more bytes than tell the two leaves apart, so index nodes hold more
/// children and trees have fewer levels.
pub fn separator<'a>(left: &[u8], right: &'a [u8]) -> &'a [u8] {
    debug_assert!(left < right);
    let common = left.iter().zip(right).take_while(|(a, b)| a == b).count();
    &right[..(common + 1).min(right.len())]
}

/// Encoded size of one index entry.
pub fn index_entry_len(key: &[u8]) -> usize {
    key.len().required_space() + key.len() + CHILD_LEN
}

impl Node {
    /// A node of the encoded `bytes` (at least a header) with no entries
    /// indexed yet.
    fn bare(bytes: Vec<u8>) -> Node {
        Node {
            kind: bytes[0],
            level: bytes[1],
            bytes,
            offsets: Vec::new(),
            heads: Vec::new(),
            skip: 0,
            shared_head: 0,
        }
    }

    fn with_header(kind: u8, level: u8) -> Node {
        let mut bytes = Vec::with_capacity(256);
        bytes.extend_from_slice(&[kind, level, 0, 0, 0, 0]);
        Node::bare(bytes)
    }

    /// An empty leaf.
    pub fn new_leaf() -> Node {
        Node::with_header(KIND_LEAF, 0)
    }

    /// An empty index node at `level` (≥ 1).
    pub fn new_index(level: u8) -> Node {
        debug_assert!(level >= 1);
        Node::with_header(KIND_INDEX, level)
    }

    /// True for a leaf.
    #[inline]
    pub fn is_leaf(&self) -> bool {
        self.kind == KIND_LEAF
    }

    /// True for a leaf or an index node; false for a value node or chunk.
    pub fn is_tree_node(&self) -> bool {
        matches!(self.kind, KIND_LEAF | KIND_INDEX)
    }

    /// A chunk of `len` zero bytes (1 to [`CHUNK_BYTES`]), to be filled
    /// through [`Node::chunk_data_mut`] (so a value read from a source is
    /// copied once, into its node).
    pub fn empty_chunk(len: usize) -> Node {
        debug_assert!(len > 0 && len <= CHUNK_BYTES);
        let mut bytes = vec![0u8; NODE_HEADER_LEN + len];
        bytes[0] = KIND_CHUNK;
        Node::bare(bytes)
    }

    /// The bytes of a chunk, to fill (empty for other nodes).
    pub fn chunk_data_mut(&mut self) -> &mut [u8] {
        match self.kind {
            KIND_CHUNK => &mut self.bytes[NODE_HEADER_LEN..],
            _ => &mut [],
        }
    }

    /// A chunk of an out-of-line value holding `data` (1 to
    /// [`CHUNK_BYTES`] bytes).
    pub fn chunk(data: &[u8]) -> Node {
        debug_assert!(!data.is_empty() && data.len() <= CHUNK_BYTES);
        let mut bytes = Vec::with_capacity(NODE_HEADER_LEN + data.len());
        bytes.extend_from_slice(&[KIND_CHUNK, 0, 0, 0, 0, 0]);
        bytes.extend_from_slice(data);
        Node::bare(bytes)
    }

    /// The value node of a value of `len` bytes held by `chunks` (2 to
    /// 1,024, as many as `len` needs).
    pub fn value_list(len: u64, chunks: &[NodeId]) -> Node {
        debug_assert_eq!(chunks_for(len), Some(chunks.len()));
        let mut bytes = Vec::with_capacity(NODE_HEADER_LEN + 8 + CHILD_LEN * chunks.len());
        bytes.extend_from_slice(&[KIND_VALUE, 0]);
        bytes.extend_from_slice(&(chunks.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&len.to_le_bytes());
        for id in chunks {
            bytes.extend_from_slice(&id.0.to_le_bytes());
        }
        Node::bare(bytes)
    }

    /// What this node is, as a pointer's [`Expect`] names it.
    pub fn kind(&self) -> Expect {
        match self.kind {
            KIND_CHUNK => Expect::Chunk,
            KIND_VALUE => Expect::Value,
            _ => Expect::Level(self.level()),
        }
    }

    /// The bytes of a chunk (empty for other nodes).
    pub fn chunk_data(&self) -> &[u8] {
        match self.kind {
            KIND_CHUNK => &self.bytes[NODE_HEADER_LEN..],
            _ => &[],
        }
    }

    /// The length of the value a value node lists (0 for other nodes).
    pub fn value_len(&self) -> u64 {
        match self.kind {
            KIND_VALUE => u64::from_le_bytes(
                self.bytes[NODE_HEADER_LEN..NODE_HEADER_LEN + 8]
                    .try_into()
                    .expect("8 bytes"),
            ),
            _ => 0,
        }
    }

    /// The chunks a value node lists, in order (none for other nodes).
    pub fn chunk_ids(&self) -> impl ExactSizeIterator<Item = NodeId> + '_ {
        let ids = match self.kind {
            KIND_VALUE => &self.bytes[NODE_HEADER_LEN + 8..],
            _ => &[],
        };
        ids.chunks_exact(CHILD_LEN)
            .map(|c| NodeId(u64::from_le_bytes(c.try_into().expect("8 bytes"))))
    }

    /// Height above the leaves: 0 for a leaf.
    pub fn level(&self) -> u8 {
        self.level
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// True when the node has no entries.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Encoded size in bytes, header included.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Byte range of entry `i`.
    fn span(&self, i: usize) -> Range<usize> {
        let end = self
            .offsets
            .get(i + 1)
            .map_or(self.bytes.len(), |&o| o as usize);
        self.offsets[i] as usize..end
    }

    /// Byte range of the key of entry `i`: the hot part of a search, so
    /// the common one-byte key length is read without a varint decoder and
    /// a leaf's value length is skipped, not decoded.
    #[inline]
    fn key_range(&self, i: usize) -> Range<usize> {
        let bytes = &self.bytes[..];
        let mut pos = self.offsets[i] as usize;
        let klen = match bytes.get(pos) {
            Some(&b) if b < 0x80 => {
                pos += 1;
                usize::from(b)
            }
            _ => get_varint(bytes, &mut pos, bytes.len()).unwrap_or(0),
        };
        if self.is_leaf() {
            // The value length: every byte but the last has its top bit.
            while bytes.get(pos).is_some_and(|&b| b >= 0x80) {
                pos += 1;
            }
            pos += 1;
        }
        pos..pos + klen
    }

    /// Key range and the position just after the key of entry `i`;
    /// for leaves the value follows.
    fn key_span(&self, i: usize) -> (Range<usize>, usize) {
        let mut pos = self.offsets[i] as usize;
        let limit = self.bytes.len();
        let klen = get_varint(&self.bytes, &mut pos, limit).unwrap_or(0);
        let vlen = if self.is_leaf() {
            get_varint(&self.bytes, &mut pos, usize::MAX).unwrap_or(0) >> 1
        } else {
            CHILD_LEN
        };
        (pos..pos + klen, vlen)
    }

    /// The key of entry `i`.
    #[inline]
    pub fn key(&self, i: usize) -> &[u8] {
        &self.bytes[self.key_range(i)]
    }

    /// The stored value of leaf entry `i`: the value itself, or the bytes
    /// of its [`ValueRef`] if it is out of line ([`Node::stored`] tells).
    pub fn value(&self, i: usize) -> &[u8] {
        debug_assert!(self.is_leaf());
        let (k, vlen) = self.key_span(i);
        &self.bytes[k.end..k.end + vlen]
    }

    /// The value of leaf entry `i` as stored.
    pub fn stored(&self, i: usize) -> Stored<'_> {
        self.entry(i).1
    }

    /// The key and the value as stored of leaf entry `i`, parsed once (a
    /// scan's step).
    pub fn entry(&self, i: usize) -> (&[u8], Stored<'_>) {
        debug_assert!(self.is_leaf());
        let bytes = &self.bytes[..];
        let mut pos = self.offsets[i] as usize;
        let klen = get_len(bytes, &mut pos);
        let field = get_len(bytes, &mut pos);
        let key = &bytes[pos..pos + klen];
        let value = &bytes[pos + klen..pos + klen + (field >> 1)];
        if field & 1 == 1 {
            (key, Stored::Out(ValueRef::from_bytes(value)))
        } else {
            (key, Stored::Inline(value))
        }
    }

    /// The reference of leaf entry `i`, if its value is out of line.
    pub fn value_ref(&self, i: usize) -> Option<ValueRef> {
        match self.stored(i) {
            Stored::Out(r) => Some(r),
            Stored::Inline(_) => None,
        }
    }

    /// The child id of index entry `i`.
    pub fn child(&self, i: usize) -> NodeId {
        debug_assert!(!self.is_leaf());
        let end = self.span(i).end;
        let mut raw = [0u8; CHILD_LEN];
        raw.copy_from_slice(&self.bytes[end - CHILD_LEN..end]);
        NodeId(u64::from_le_bytes(raw))
    }

    /// Every node this one points at: an index node's children, a leaf's
    /// out-of-line values, a value node's chunks (none for a chunk).
    pub fn children(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.pointers().map(|(id, _)| id)
    }

    /// [`Node::children`], each with what it must be.
    pub fn pointers(&self) -> impl Iterator<Item = (NodeId, Expect)> + '_ {
        let (entries, chunks) = match self.kind {
            KIND_VALUE => (0, self.chunk_ids().len()),
            KIND_CHUNK => (0, 0),
            _ => (self.len(), 0),
        };
        let below = self.level().checked_sub(1);
        let entries = (0..entries).filter_map(move |i| match below {
            Some(level) => Some((self.child(i), Expect::Level(level))),
            None => self.value_ref(i).map(|r| (r.id, r.expect())),
        });
        let chunks = self.chunk_ids().take(chunks).map(|id| (id, Expect::Chunk));
        entries.chain(chunks)
    }

    /// Binary search for `key`: `Ok(i)` if entry `i` has it, else the
    /// position where it would be inserted.
    pub fn search(&self, key: &[u8]) -> Result<usize, usize> {
        self.search_in(key, false)
    }

    /// [`Node::search`], whose first probe is the last entry if
    /// `last_first`.
    fn search_in(&self, key: &[u8], last_first: bool) -> Result<usize, usize> {
        // Most probes are decided by the first eight bytes, compared as one
        // integer; only equal prefixes compare the whole keys.
        // A key outside the prefix all keys share is before or after them
        // all.
        let rest = match self.skip {
            0 => key,
            skip @ 1..=8 => {
                let mask = u64::MAX << (64 - 8 * skip);
                match (prefix(key) & mask).cmp(&self.shared_head) {
                    Ordering::Equal if key.len() >= skip => &key[skip..],
                    // Zero-padded: a shorter key starts the shared prefix.
                    Ordering::Equal | Ordering::Less => return Err(0),
                    Ordering::Greater => return Err(self.len()),
                }
            }
            skip => {
                let shared = &self.key(0)[..skip];
                match key.get(..skip).map(|k| k.cmp(shared)) {
                    Some(Ordering::Equal) => &key[skip..],
                    Some(Ordering::Less) => return Err(0),
                    Some(Ordering::Greater) => return Err(self.len()),
                    None if key < shared => return Err(0),
                    None => return Err(self.len()),
                }
            }
        };
        let want = prefix(rest);
        debug_assert_eq!(self.heads.len(), self.len());
        let probe = |mid: usize| self.probe(mid, want, rest);
        let (mut lo, mut hi) = (0, self.len());
        if last_first && hi > 0 {
            match probe(hi - 1) {
                Ordering::Less => return Err(hi),
                Ordering::Greater => hi -= 1,
                Ordering::Equal => return Ok(hi - 1),
            }
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match probe(mid) {
                Ordering::Less => lo = mid + 1,
                Ordering::Greater => hi = mid,
                Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    /// How entry `mid`'s key compares with a key whose bytes after the
    /// node's shared prefix are `rest`, with head `want`: by the heads, and
    /// on a tie by the bytes after the prefix (which every key of the node
    /// and the key sought share). Inlined: a point read makes about two
    /// dozen probes. Comparing after the prefix, and inlining, took the
    /// file catalogue's point reads in `benches/compare` from about 2,330
    /// to 2,170 instructions each (callgrind).
    #[inline(always)]
    fn probe(&self, mid: usize, want: u64, rest: &[u8]) -> Ordering {
        debug_assert_eq!(self.heads[mid], self.head_of(mid), "stale head");
        match self.heads[mid].cmp(&want) {
            Ordering::Equal => {
                let key = self.key(mid);
                key.get(self.skip..).unwrap_or_default().cmp(rest)
            }
            decided => decided,
        }
    }

    /// The entry of an index node whose subtree may hold `key`: the last
    /// one whose key is ≤ `key`, or the first if `key` precedes them all.
    pub fn child_index(&self, key: &[u8]) -> usize {
        match self.search(key) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        }
    }

    /// [`Node::search`] for a writer, trying the last key first: an append
    /// (a key past every other, as in a sorted load) is placed with one
    /// comparison per level instead of a binary search.
    pub fn search_for_write(&self, key: &[u8]) -> Result<usize, usize> {
        // Through the last entry's head, which is almost always decisive: a
        // random key's search then reads no key bytes it would not have
        // read anyway.
        self.search_in(key, true)
    }

    /// [`Node::child_index`] through [`Node::search_for_write`].
    pub fn child_index_for_write(&self, key: &[u8]) -> usize {
        match self.search_for_write(key) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        }
    }

    /// The length of the prefix the node's first and last keys share.
    fn shared_len(&self) -> usize {
        match self.len() {
            0 => 0,
            n => {
                let (first, last) = (self.key(0), self.key(n - 1));
                first.iter().zip(last).take_while(|(a, b)| a == b).count()
            }
        }
    }

    /// The head of entry `i` for the node's `skip`.
    fn head_of(&self, i: usize) -> u64 {
        prefix(self.key(i).get(self.skip..).unwrap_or_default())
    }

    /// The head of a new entry's `key` for the node's `skip`.
    fn head_for(&self, key: &[u8]) -> u64 {
        prefix(key.get(self.skip..).unwrap_or_default())
    }

    /// Sets `skip` for the node's first and last keys after they may have
    /// changed, and recomputes every head if it moved.
    fn fix_skip(&mut self) {
        // Usually the first and last keys still share exactly `skip` bytes:
        // one comparison of those and one of the byte after says so.
        if let Some(n) = self.len().checked_sub(1) {
            let (first, last, skip) = (self.key(0), self.key(n), self.skip);
            if let (Some(f), Some(l)) = (first.get(..=skip), last.get(..=skip)) {
                if f[..skip] == l[..skip] && f[skip] != l[skip] {
                    return;
                }
            }
        }
        if self.shared_len() != self.skip {
            self.rebuild_heads();
        }
    }

    /// Sets `skip` and `shared_head` for the node's first and last keys
    /// and computes every head.
    fn rebuild_heads(&mut self) {
        let skip = self.shared_len();
        self.skip = skip;
        self.shared_head = match self.len() {
            0 => 0,
            _ => prefix(&self.key(0)[..skip.min(8)]),
        };
        let heads = (0..self.len()).map(|i| self.head_of(i)).collect();
        self.heads = heads;
    }

    fn set_count(&mut self) {
        let n = self.offsets.len() as u32;
        self.bytes[2..NODE_HEADER_LEN].copy_from_slice(&n.to_le_bytes());
    }

    /// Replaces the bytes of entries `range` with `new`, fixing offsets.
    fn splice(&mut self, range: Range<usize>, new: &[u8], new_entries: usize) {
        let start = if range.start < self.len() {
            self.offsets[range.start] as usize
        } else {
            self.bytes.len()
        };
        let end = if range.end < self.len() {
            self.offsets[range.end] as usize
        } else {
            self.bytes.len()
        };
        let old_len = self.bytes.len();
        let new_len = old_len + new.len() - (end - start);
        if new_len > old_len {
            self.grow(new_len, new_entries.saturating_sub(range.len()));
        }
        self.bytes.copy_within(end..old_len, start + new.len());
        self.bytes[start..start + new.len()].copy_from_slice(new);
        self.bytes.truncate(new_len);
        let delta = new.len() as i64 - (end - start) as i64;
        let (bytes, leaf) = (&self.bytes, self.is_leaf());
        let mut pos = start;
        let fresh = (0..new_entries).map(|_| {
            let at = pos;
            pos += entry_len_at(bytes, at, leaf);
            at as u32
        });
        let tail_from = range.start + new_entries;
        self.offsets.splice(range.clone(), fresh);
        for o in &mut self.offsets[tail_from..] {
            *o = (*o as i64 + delta) as u32;
        }
        self.heads
            .splice(range.clone(), std::iter::repeat_n(0, new_entries));
        for i in range.start..tail_from {
            self.heads[i] = self.head_of(i);
        }
        self.set_count();
        // Only a change at either end can move the shared prefix.
        if range.start == 0 || tail_from >= self.len() {
            self.fix_skip();
        }
    }

    /// Lengthens the bytes to `len` (zeros at the end) and makes room for
    /// `entries` more entries. What must reallocate gets [`COPY_SLACK`]
    /// spare bytes and a few spare entries, not the doubling a `Vec` grows
    /// by: a node decoded or moved to a new id holds no spare, and doubling
    /// would leave a 4 KiB node holding 8 KiB in the dirty queue.
    fn grow(&mut self, len: usize, entries: usize) {
        if len > self.bytes.capacity() {
            self.bytes
                .reserve_exact(len - self.bytes.len() + COPY_SLACK);
        }
        self.bytes.resize(len, 0);
        if self.offsets.len() + entries > self.offsets.capacity() {
            self.offsets.reserve_exact(entries + 4);
        }
        if self.heads.len() + entries > self.heads.capacity() {
            self.heads.reserve_exact(entries + 4);
        }
    }

    /// Inserts the leaf entry `key`/`value` at position `i`, encoded
    /// straight into the node's bytes.
    fn put_leaf_entry(&mut self, i: usize, key: &[u8], value: &[u8], out: bool) {
        let len = leaf_entry_len(key, value);
        let at = self
            .offsets
            .get(i)
            .map_or(self.bytes.len(), |&o| o as usize);
        let old_len = self.bytes.len();
        self.grow(old_len + len, 1);
        self.bytes.copy_within(at..old_len, at + len);
        let mut p = at;
        p += key.len().encode_var(&mut self.bytes[p..]);
        p += (value.len() << 1 | usize::from(out)).encode_var(&mut self.bytes[p..]);
        self.bytes[p..p + key.len()].copy_from_slice(key);
        p += key.len();
        self.bytes[p..p + value.len()].copy_from_slice(value);
        self.offsets.insert(i, at as u32);
        for o in &mut self.offsets[i + 1..] {
            *o += len as u32;
        }
        self.heads.insert(i, self.head_for(key));
        self.set_count();
        if i == 0 || i + 1 == self.len() {
            self.fix_skip();
        }
    }

    fn encode_leaf_entry(key: &[u8], value: &[u8], out: bool) -> Vec<u8> {
        let mut e = Vec::with_capacity(leaf_entry_len(key, value));
        put_varint(&mut e, key.len());
        put_varint(&mut e, value.len() << 1 | usize::from(out));
        e.extend_from_slice(key);
        e.extend_from_slice(value);
        e
    }

    fn encode_index_entry(key: &[u8], child: NodeId) -> Vec<u8> {
        let mut e = Vec::with_capacity(index_entry_len(key));
        put_varint(&mut e, key.len());
        e.extend_from_slice(key);
        e.extend_from_slice(&child.0.to_le_bytes());
        e
    }

    /// Makes room for `bytes` encoded bytes in all, so that filling the
    /// node to that size allocates nothing more.
    pub(crate) fn reserve(&mut self, bytes: usize) {
        self.bytes.reserve(bytes.saturating_sub(self.bytes.len()));
    }

    /// Appends a leaf entry after all others: `key` must be above every
    /// key of the node (B1). The node is not searchable until
    /// [`Node::finish`].
    pub(crate) fn push_leaf(&mut self, key: &[u8], value: &[u8]) {
        debug_assert!(self.is_leaf());
        self.offsets.push(self.bytes.len() as u32);
        put_varint(&mut self.bytes, key.len());
        put_varint(&mut self.bytes, value.len() << 1);
        self.bytes.extend_from_slice(key);
        self.bytes.extend_from_slice(value);
    }

    /// Appends an index entry after all others: `key` must be above every
    /// key of the node (B1). The node is not searchable until
    /// [`Node::finish`].
    pub(crate) fn push_child(&mut self, key: &[u8], child: NodeId) {
        debug_assert!(!self.is_leaf());
        self.offsets.push(self.bytes.len() as u32);
        put_varint(&mut self.bytes, key.len());
        self.bytes.extend_from_slice(key);
        self.bytes.extend_from_slice(&child.0.to_le_bytes());
    }

    /// Completes a node filled by [`Node::push_leaf`] or
    /// [`Node::push_child`]: its count, shared prefix and heads, once.
    pub(crate) fn finish(&mut self) {
        self.set_count();
        self.rebuild_heads();
    }

    /// Inserts a leaf entry at position `i`.
    pub fn insert_leaf(&mut self, i: usize, key: &[u8], value: &[u8]) {
        self.put_leaf_entry(i, key, value, false);
    }

    /// Inserts a leaf entry with `stored` as its value at position `i`.
    pub fn insert_stored(&mut self, i: usize, key: &[u8], stored: Stored) {
        match stored {
            Stored::Inline(v) => self.put_leaf_entry(i, key, v, false),
            Stored::Out(r) => self.put_leaf_entry(i, key, &r.to_bytes(), true),
        }
    }

    /// Replaces the value of leaf entry `i`.
    pub fn set_value(&mut self, i: usize, value: &[u8]) {
        self.set_stored(i, Stored::Inline(value));
    }

    /// Replaces the value of leaf entry `i` with `stored`.
    pub fn set_stored(&mut self, i: usize, stored: Stored) {
        let reference;
        let (value, out) = match stored {
            Stored::Inline(v) => (v, false),
            Stored::Out(r) => {
                reference = r.to_bytes();
                (&reference[..], true)
            }
        };
        // A value as long as the old one, and as out of line, is written
        // over it: the entry keeps its size and its key, so the offsets,
        // heads and shared prefix stay as they are.
        let (key, old_len) = self.key_span(i);
        if old_len == value.len() && matches!(self.stored(i), Stored::Out(_)) == out {
            self.bytes[key.end..key.end + old_len].copy_from_slice(value);
            return;
        }
        let e = Self::encode_leaf_entry(self.key(i), value, out);
        self.splice(i..i + 1, &e, 1);
    }

    /// Inserts an index entry at position `i`.
    pub fn insert_child(&mut self, i: usize, key: &[u8], child: NodeId) {
        self.splice(i..i, &Self::encode_index_entry(key, child), 1);
    }

    /// Replaces the key of index entry `i`.
    pub fn set_key(&mut self, i: usize, key: &[u8]) {
        let e = Self::encode_index_entry(key, self.child(i));
        self.splice(i..i + 1, &e, 1);
    }

    /// Replaces the child id of index entry `i`, in place.
    pub fn set_child(&mut self, i: usize, child: NodeId) {
        let end = self.span(i).end;
        self.bytes[end - CHILD_LEN..end].copy_from_slice(&child.0.to_le_bytes());
    }

    /// Removes entry `i`.
    pub fn remove(&mut self, i: usize) {
        self.splice(i..i + 1, &[], 0);
    }

    /// Moves entries `at..` into a new node of the same kind and level.
    pub fn split_off(&mut self, at: usize) -> Node {
        let mut right = Node::with_header(self.kind, self.level);
        if at < self.len() {
            let start = self.offsets[at] as usize;
            right.bytes.extend_from_slice(&self.bytes[start..]);
            right.offsets.extend(
                self.offsets[at..]
                    .iter()
                    .map(|&o| o - start as u32 + NODE_HEADER_LEN as u32),
            );
            right.heads = self.heads.split_off(at);
            right.skip = self.skip;
            right.shared_head = self.shared_head;
            self.bytes.truncate(start);
            self.offsets.truncate(at);
            self.set_count();
            right.set_count();
            self.fix_skip();
            right.fix_skip();
        }
        right
    }

    /// Appends all entries of `other` (same kind and level, larger keys).
    pub fn append(&mut self, other: &Node) {
        let n = self.len();
        self.splice(n..n, &other.bytes[NODE_HEADER_LEN..], other.len());
    }

    /// The split position that best balances the encoded bytes of the two
    /// halves; each half gets at least one entry when the node has two.
    pub fn balanced_split(&self) -> usize {
        let payload = self.bytes.len() - NODE_HEADER_LEN;
        let half = payload / 2;
        let mut best = (usize::MAX, 1);
        for i in 1..self.len() {
            let left = self.offsets[i] as usize - NODE_HEADER_LEN;
            let gap = left.abs_diff(payload - left);
            if gap < best.0 {
                best = (gap, i);
            }
            if left > half {
                break;
            }
        }
        best.1
    }

    /// The split position for a node that overflowed by an append (a key
    /// past all others, on the tree's right edge): the right part as small
    /// as `min` bytes (B3's lower bound) allows, so that sorted inserts
    /// leave full nodes behind them instead of half-full ones. At least
    /// 1, when the node has two entries.
    pub fn append_split(&self, min: usize) -> usize {
        let end = self.bytes.len();
        (1..self.len())
            .rev()
            .find(|&i| end - self.offsets[i] as usize + NODE_HEADER_LEN >= min)
            .unwrap_or(1)
    }

    /// Validating decoder shared by [`Codec::decode`].
    fn parse(owned: Vec<u8>) -> Result<Node, String> {
        let bytes = &owned[..];
        if bytes.len() < NODE_HEADER_LEN {
            return Err(format!(
                "{} bytes is shorter than a node header",
                bytes.len()
            ));
        }
        let (kind, level) = (bytes[0], bytes[1]);
        let count = u32::from_le_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]) as usize;
        match (kind, level) {
            (KIND_LEAF, 0) => {}
            (KIND_LEAF, l) => return Err(format!("leaf with level {l}")),
            (KIND_INDEX, 0) => return Err("index node with level 0".into()),
            (KIND_INDEX, _) => {}
            (KIND_CHUNK | KIND_VALUE, l) if l != 0 => {
                return Err(format!("value node of kind {kind} with level {l}"))
            }
            (KIND_CHUNK, _) => return Node::parse_chunk(owned, count),
            (KIND_VALUE, _) => return Node::parse_value_list(owned, count),
            (k, _) => return Err(format!("unknown node kind {k}")),
        }
        if kind == KIND_INDEX && count == 0 {
            return Err("index node with no children".into());
        }
        let min_entry = if kind == KIND_LEAF { 2 } else { 1 + CHILD_LEN };
        if count > (bytes.len() - NODE_HEADER_LEN) / min_entry {
            return Err(format!("count {count} cannot fit in {} bytes", bytes.len()));
        }
        let mut offsets = Vec::with_capacity(count);
        let mut pos = NODE_HEADER_LEN;
        let end = bytes.len();
        for i in 0..count {
            offsets.push(pos as u32);
            let bad = || format!("entry {i} runs past the end of the node");
            let klen = parse_varint(bytes, &mut pos, end, i)?;
            let rest = if kind == KIND_LEAF {
                let field = parse_varint(bytes, &mut pos, end.saturating_mul(2) + 1, i)?;
                let len = field >> 1;
                if field & 1 == 1 && len != REF_LEN {
                    return Err(format!("entry {i} is a value reference of {len} bytes"));
                }
                len
            } else {
                CHILD_LEN
            };
            pos.checked_add(klen)
                .filter(|&p| p <= end)
                .ok_or_else(bad)?;
            pos = pos
                .checked_add(klen + rest)
                .filter(|&p| p <= end)
                .ok_or_else(bad)?;
        }
        if pos != end {
            return Err(format!("{} stray bytes after {count} entries", end - pos));
        }
        let mut node = Node::bare(owned);
        node.offsets = offsets;
        node.rebuild_heads();
        let refs = (0..count).filter(|_| kind == KIND_LEAF);
        if let Some(bad) = refs.filter_map(|i| node.value_ref(i)).find(|r| !ref_ok(*r)) {
            return Err(format!(
                "a value reference of {} bytes (1 GiB at most, more than fits a leaf)",
                bad.len
            ));
        }
        Ok(node)
    }

    /// Decodes a chunk: a header with count 0, then 1 to [`CHUNK_BYTES`]
    /// bytes.
    fn parse_chunk(bytes: Vec<u8>, count: usize) -> Result<Node, String> {
        let data = bytes.len() - NODE_HEADER_LEN;
        if count != 0 || data == 0 || data > CHUNK_BYTES {
            return Err(format!("chunk of {data} bytes with count {count}"));
        }
        Ok(Node::bare(bytes))
    }

    /// Decodes a value node: its length, then exactly as many chunk ids as
    /// that length needs (2 to 1,024).
    fn parse_value_list(bytes: Vec<u8>, count: usize) -> Result<Node, String> {
        let Some(len) = bytes.get(NODE_HEADER_LEN..NODE_HEADER_LEN + 8) else {
            return Err("value node without a length".into());
        };
        let len = u64::from_le_bytes(len.try_into().expect("8 bytes"));
        let ids = bytes.len() - NODE_HEADER_LEN - 8;
        if chunks_for(len) != Some(count) || count < 2 || ids != count * CHILD_LEN {
            return Err(format!(
                "value node of {len} bytes listing {count} chunks in {ids} bytes"
            ));
        }
        Ok(Node::bare(bytes))
    }
}

/// Chunks a value of `len` bytes takes, if it may be stored out of line
/// at all (1 GiB at most).
pub fn chunks_for(len: u64) -> Option<usize> {
    (len <= MAX_VALUE_LEN).then(|| len.div_ceil(CHUNK_BYTES as u64) as usize)
}

/// Whether a reference read from a leaf is one a writer makes: a value
/// longer than a leaf holds and at most 1 GiB. (Longer than the smallest
/// node's entry limit is all a node knows.)
fn ref_ok(r: ValueRef) -> bool {
    r.len > (crate::limits::MIN_NODE_SIZE / 4) as u64 && r.len <= MAX_VALUE_LEN
}

impl Codec for Node {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.bytes);
    }

    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        Node::parse(bytes.to_vec()).map_err(CodecError)
    }

    fn decode_owned(bytes: Vec<u8>) -> Result<Self, CodecError> {
        Node::parse(bytes).map_err(CodecError)
    }

    fn encoded(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }

    fn mem_size(&self) -> usize {
        self.bytes.capacity()
            + 4 * self.offsets.capacity()
            + 8 * self.heads.capacity()
            + std::mem::size_of::<Node>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leaf(pairs: &[(&[u8], &[u8])]) -> Node {
        let mut n = Node::new_leaf();
        for (i, (k, v)) in pairs.iter().enumerate() {
            n.insert_leaf(i, k, v);
        }
        n
    }

    #[test]
    fn a_decoded_node_grows_by_a_little_not_by_doubling() {
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..20u8)
            .map(|i| (vec![b'k', i * 2], vec![i; 150]))
            .collect();
        let refs: Vec<(&[u8], &[u8])> = pairs.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        let mut n = Node::decode(&leaf(&refs).bytes).unwrap();
        let before = n.mem_size();
        n.insert_leaf(3, &[b'k', 5], &[9; 150]);
        // The entry (155 bytes), the spare and room for a few entries; a
        // doubling would add the node's whole size (over 3 KiB).
        let grown = n.mem_size() - before;
        assert!(grown <= 155 + COPY_SLACK + 12 * 5, "grew by {grown} bytes");
        // The spare takes the next small insert without a reallocation.
        let at = n.bytes.as_ptr();
        n.insert_leaf(4, &[b'k', 7], &[9; 150]);
        assert_eq!(n.bytes.as_ptr(), at);
        assert_eq!(n.value(3), &[9; 150][..]);
    }

    #[test]
    fn leaf_entries_read_back_after_edits() {
        let mut n = leaf(&[(b"a", b"1"), (b"c", b"3")]);
        n.insert_leaf(1, b"b", b"22");
        n.set_value(0, b"one");
        assert_eq!((n.key(0), n.value(0)), (&b"a"[..], &b"one"[..]));
        assert_eq!((n.key(1), n.value(1)), (&b"b"[..], &b"22"[..]));
        assert_eq!((n.key(2), n.value(2)), (&b"c"[..], &b"3"[..]));
        assert_eq!(n.search(b"bb"), Err(2));
        n.remove(1);
        assert_eq!(n.len(), 2);
        assert_eq!(n.key(1), b"c");
        let mut out = Vec::new();
        n.encode(&mut out);
        assert_eq!(Node::decode(&out).unwrap(), n);
    }

    #[test]
    fn index_entries_and_child_ids() {
        let mut n = Node::new_index(1);
        n.insert_child(0, b"", NodeId(7));
        n.insert_child(1, b"m", NodeId(9));
        n.set_key(1, b"mm");
        n.set_child(0, NodeId(11));
        assert_eq!(n.children().collect::<Vec<_>>(), [NodeId(11), NodeId(9)]);
        assert_eq!(n.child_index(b"a"), 0);
        assert_eq!(n.child_index(b"mm"), 1);
        assert_eq!(n.child_index(b"z"), 1);
        let mut out = Vec::new();
        n.encode(&mut out);
        assert_eq!(Node::decode(&out).unwrap(), n);
    }

    #[test]
    fn split_and_append_are_inverse() {
        let keys: Vec<Vec<u8>> = (0..50u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let mut n = Node::new_leaf();
        for (i, k) in keys.iter().enumerate() {
            n.insert_leaf(i, k, &[i as u8; 10]);
        }
        let whole = n.clone();
        let at = n.balanced_split();
        assert_eq!(at, 25);
        let right = n.split_off(at);
        assert_eq!(right.key(0), keys[25].as_slice());
        n.append(&right);
        assert_eq!(n, whole);
    }

    #[test]
    fn decode_rejects_damage() {
        assert!(Node::decode(&[]).is_err());
        assert!(Node::decode(&[9, 0, 0, 0, 0, 0]).is_err());
        assert!(Node::decode(&[KIND_LEAF, 1, 0, 0, 0, 0]).is_err());
        assert!(Node::decode(&[KIND_LEAF, 0, 255, 255, 255, 255]).is_err());
        let n = leaf(&[(b"key", b"value")]);
        let bytes = n.as_bytes();
        assert!(Node::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(Node::decode(&longer).is_err());
    }

    #[test]
    fn decode_rejects_non_minimal_varints() {
        // The value field is twice the value's length (2 for 1 byte).
        let minimal = [KIND_LEAF, 0, 1, 0, 0, 0, 1, 2, b'k', b'v'];
        assert!(Node::decode(&minimal).is_ok());
        // The key length 1 in two bytes, then the value field in three.
        let long_key = [KIND_LEAF, 0, 1, 0, 0, 0, 0x81, 0x00, 2, b'k', b'v'];
        let e = Node::decode(&long_key).unwrap_err().to_string();
        assert!(e.contains("not the minimal 1"), "{e}");
        let long_value = [KIND_LEAF, 0, 1, 0, 0, 0, 1, 0x82, 0x80, 0x00, b'k', b'v'];
        assert!(Node::decode(&long_value).is_err());
        // The out-of-line flag on a value that is no 16-byte reference.
        let short_ref = [KIND_LEAF, 0, 1, 0, 0, 0, 1, 3, b'k', b'v'];
        let e = Node::decode(&short_ref).unwrap_err().to_string();
        assert!(e.contains("value reference of 1 bytes"), "{e}");
        // A zero length in two bytes, in an index entry.
        let mut index = vec![KIND_INDEX, 1, 1, 0, 0, 0, 0x80, 0x00];
        index.extend_from_slice(&7u64.to_le_bytes());
        assert!(Node::decode(&index).is_err());
        index.remove(7);
        index[6] = 0;
        assert!(Node::decode(&index).is_ok());
    }

    #[test]
    fn an_index_node_without_children_does_not_decode() {
        // Every descent takes some child of an index node: one with none
        // would make it index past the end.
        let empty = [KIND_INDEX, 1, 0, 0, 0, 0];
        let e = Node::decode(&empty).unwrap_err().to_string();
        assert!(e.contains("no children"), "{e}");
        assert!(Node::decode(&[KIND_LEAF, 0, 0, 0, 0, 0]).is_ok());
    }

    proptest! {
        #[test]
        fn setting_a_value_makes_the_node_a_fresh_encoding_would(
            values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..24), 1..12),
            sets in proptest::collection::vec((0usize..12, proptest::collection::vec(any::<u8>(), 0..24), any::<bool>()), 1..20),
        ) {
            // Values as long as a reference (16 bytes) are among the lengths
            // drawn, so a value is replaced by a reference of its length.
            let keys: Vec<Vec<u8>> = (0..values.len()).map(|i| vec![b'k', i as u8]).collect();
            let mut n = Node::new_leaf();
            let mut want: Vec<(Vec<u8>, Option<ValueRef>)> = Vec::new();
            for (i, v) in values.iter().enumerate() {
                n.insert_leaf(i, &keys[i], v);
                want.push((v.clone(), None));
            }
            for (i, v, out) in sets {
                let i = i % keys.len();
                if out {
                    let r = ValueRef { id: NodeId(v.len() as u64 + 1), len: 1 << 20 };
                    n.set_stored(i, Stored::Out(r));
                    want[i] = (r.to_bytes().to_vec(), Some(r));
                } else {
                    n.set_value(i, &v);
                    want[i] = (v, None);
                }
            }
            let mut fresh = Node::new_leaf();
            for (i, (v, r)) in want.iter().enumerate() {
                match r {
                    Some(r) => fresh.insert_stored(i, &keys[i], Stored::Out(*r)),
                    None => fresh.insert_leaf(i, &keys[i], v),
                }
            }
            prop_assert_eq!(n.as_bytes(), fresh.as_bytes());
            let decoded = Node::decode(n.as_bytes()).unwrap();
            prop_assert_eq!(decoded.as_bytes(), fresh.as_bytes());
            for (i, (v, r)) in want.iter().enumerate() {
                prop_assert_eq!(n.value(i), &v[..]);
                prop_assert_eq!(n.value_ref(i), *r);
            }
        }
    }

    proptest! {
        #[test]
        fn search_matches_a_linear_scan(
            keys in proptest::collection::btree_set(proptest::collection::vec(0u8..4, 0..12), 0..40),
            probe in proptest::collection::vec(0u8..4, 0..12),
        ) {
            // Small alphabets and lengths around eight, so that prefixes tie
            // and keys are prefixes of one another.
            let keys: Vec<Vec<u8>> = keys.into_iter().collect();
            let mut n = Node::new_leaf();
            for (i, k) in keys.iter().enumerate() {
                n.insert_leaf(i, k, b"");
            }
            let want = match keys.iter().position(|k| *k >= probe) {
                Some(i) if keys[i] == probe => Ok(i),
                Some(i) => Err(i),
                None => Err(keys.len()),
            };
            prop_assert_eq!(n.search(&probe), want);
            prop_assert_eq!(n.search_for_write(&probe), want);
        }

        #[test]
        fn search_matches_a_linear_scan_under_a_shared_prefix(
            shared in proptest::collection::vec(0u8..3, 0..16),
            suffixes in proptest::collection::btree_set(proptest::collection::vec(0u8..3, 0..10), 1..40),
            probes in proptest::collection::vec((0usize..20, proptest::collection::vec(0u8..3, 0..10)), 1..20),
            cut in 0usize..40,
        ) {
            // Keys under one prefix (as paths under a directory), probed with
            // keys that keep, shorten or leave it, through edits that move
            // the node's first and last keys.
            fn linear(keys: &[Vec<u8>], probe: &[u8]) -> Result<usize, usize> {
                match keys.iter().position(|k| k.as_slice() >= probe) {
                    Some(i) if keys[i] == probe => Ok(i),
                    Some(i) => Err(i),
                    None => Err(keys.len()),
                }
            }
            let probes: Vec<Vec<u8>> = probes
                .iter()
                .map(|(p, s)| [&shared[..(*p).min(shared.len())], s].concat())
                .collect();
            let check = |n: &Node, keys: &[Vec<u8>]| -> Result<(), TestCaseError> {
                for probe in keys.iter().chain(&probes) {
                    prop_assert_eq!(n.search(probe), linear(keys, probe), "probe {:?}", probe);
                    prop_assert_eq!(n.search_for_write(probe), linear(keys, probe));
                }
                let mut out = Vec::new();
                n.encode(&mut out);
                prop_assert_eq!(&Node::decode(&out).unwrap(), n);
                Ok(())
            };
            let mut keys: Vec<Vec<u8>> = suffixes.iter().map(|s| [&shared[..], s].concat()).collect();
            let mut n = Node::new_leaf();
            for k in &keys {
                n.push_leaf(k, b"v");
            }
            n.finish();
            check(&n, &keys)?;
            // A key below them all, then removing the first and the last.
            if !keys[0].is_empty() {
                n.insert_leaf(0, b"", b"v");
                keys.insert(0, Vec::new());
                check(&n, &keys)?;
            }
            n.remove(0);
            keys.remove(0);
            check(&n, &keys)?;
            if keys.is_empty() {
                return Ok(());
            }
            n.remove(keys.len() - 1);
            keys.pop();
            check(&n, &keys)?;
            if !keys.is_empty() {
                let at = cut % keys.len();
                let right = n.split_off(at);
                let right_keys = keys.split_off(at);
                check(&n, &keys)?;
                check(&right, &right_keys)?;
                n.append(&right);
                keys.extend(right_keys);
                check(&n, &keys)?;
            }
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(n) = Node::decode(&bytes) {
                // Accepted bytes are canonical: the entries rebuild them.
                let mut rebuilt = if n.is_leaf() { Node::new_leaf() } else { Node::new_index(n.level()) };
                for i in 0..n.len() {
                    if n.is_leaf() {
                        rebuilt.insert_leaf(i, n.key(i), n.value(i));
                    } else {
                        rebuilt.insert_child(i, n.key(i), n.child(i));
                    }
                }
                prop_assert_eq!(rebuilt.as_bytes(), &bytes[..]);
            }
        }

        #[test]
        fn random_edits_round_trip(ops in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..20), proptest::collection::vec(any::<u8>(), 0..300)), 0..60)) {
            let mut n = Node::new_leaf();
            let mut model = std::collections::BTreeMap::new();
            for (k, v) in &ops {
                match n.search(k) {
                    Ok(i) => n.set_value(i, v),
                    Err(i) => n.insert_leaf(i, k, v),
                }
                model.insert(k.clone(), v.clone());
            }
            let got: Vec<(Vec<u8>, Vec<u8>)> =
                (0..n.len()).map(|i| (n.key(i).to_vec(), n.value(i).to_vec())).collect();
            let want: Vec<(Vec<u8>, Vec<u8>)> = model.into_iter().collect();
            prop_assert_eq!(got, want);
            let expected: usize = NODE_HEADER_LEN + (0..n.len()).map(|i| leaf_entry_len(n.key(i), n.value(i))).sum::<usize>();
            prop_assert_eq!(n.size(), expected);
            let mut out = Vec::new();
            n.encode(&mut out);
            prop_assert_eq!(Node::decode(&out).unwrap(), n);
        }
    }
}
