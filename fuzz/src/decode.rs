//! The `decode` target: arbitrary bytes through every decoder of bytes
//! read from disk.
//!
//! Input layout: one selector byte, then the format's bytes. The low three
//! bits of the selector pick the [`Format`]; bit 7 ([`SEALED`]) asks the
//! harness to *seal* the bytes first, writing the checksum (and, for the
//! directory, the count; for a superblock slot, the MAC under
//! [`fuzz_seal`]) the format expects, so the fuzzer reaches the field
//! checks behind the checksum instead of stopping at it. Unsealed inputs
//! test the checksums themselves.
//!
//! The layouts are those of format version 3 (`docs/design.md`, "On-disk
//! format, version 3"): 24-byte table slots carrying a node digest,
//! 40-byte directory records carrying a chunk digest, and superblock slots
//! carrying two metadata digests, the commit log's position and a MAC.
//!
//! For every format: decoding returns an error or a value, never panics,
//! and a decoded value re-encodes to the very same bytes (node, chunk,
//! superblock slot, directory, blob header, catalog): every format is
//! canonical. (A slot's MAC is the one field a store without a key does not
//! read, so a slot re-encodes to its bytes with its own MAC.) A node is
//! also rebuilt entry by entry, which must give its bytes back (so its
//! varints are minimal). Every slot is decoded both without a key and
//! under [`fuzz_seal`]: the two agree but for the MAC check.

use larix_btree::{Catalog, Expect, Node, MAX_NAME_LEN};
use larix_nodestore::testing::{
    no_seal, read_blob, read_newest_with_fault, read_slots, scan_segment, BlobHeader, Directory,
    Location, NodeTable, Superblock, TableEntry, CHUNK_BYTES, CHUNK_ENTRIES, DIGEST_LEN,
    HEADER_LEN, MAC_LEN, MAX_BLOB_LEN, MAX_CHUNK, MAX_PARAMETERS_LEN, SLOT_LEN,
};
use larix_nodestore::{
    Backend, BlobKind, Codec, FileId, FormatError, MemBackend, NodeId, SegmentId, SlotFault,
};
use std::collections::BTreeMap;

use crate::take_u64;

/// Selector bit asking the harness to seal the input before decoding.
pub const SEALED: u8 = 0x80;

/// Bytes of one node table slot (segment, offset, length, refcount, node
/// digest).
const TABLE_SLOT_LEN: usize = (CHUNK_BYTES - 4) / CHUNK_ENTRIES as usize;

/// Bytes of one directory record (chunk index, location, chunk digest).
const DIRECTORY_RECORD_LEN: usize = 8 + 16 + DIGEST_LEN;

/// Where a superblock slot's MAC lies (before the crc).
const MAC_AT: usize = SLOT_LEN - 4 - MAC_LEN;

/// The seal of the fuzzed store with a key. The decoder treats a seal as an
/// opaque function of the slot's bytes (a store's is keyed BLAKE3); this
/// one, eight crc32c sums under different prefixes, is cheap and
/// deterministic, so a sealed input carries a MAC that verifies.
pub fn fuzz_seal(bytes: &[u8]) -> Option<[u8; MAC_LEN]> {
    let mut mac = [0u8; MAC_LEN];
    for (i, word) in (0u8..).zip(mac.chunks_exact_mut(4)) {
        let sum = crc32c::crc32c_append(crc32c::crc32c(&[i]), bytes);
        word.copy_from_slice(&sum.to_le_bytes());
    }
    Some(mac)
}

/// The formats the `decode` target feeds, by selector value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A B-tree node (`Node` through `Codec::decode`).
    Node = 0,
    /// A node table chunk: index u64 LE, then the chunk. Sealed: index,
    /// then records of slot u16 LE (mod 256) and 24 slot bytes.
    Chunk = 1,
    /// One superblock slot. Sealed: padded or cut to 4096 bytes, MAC
    /// ([`fuzz_seal`]) and crc set.
    Slot = 2,
    /// The node table directory. Sealed: count and crc set.
    Directory = 3,
    /// A blob header (bytes past 24 ignored). Sealed: crc set.
    BlobHeader = 4,
    /// The forest catalog (no checksum, so never sealed).
    Catalog = 5,
    /// A whole segment file, scanned then read record by record. Sealed:
    /// each header's crc set along the scan.
    Segment = 6,
    /// A whole superblock file (two slots), as opening a store reads it.
    /// Sealed: the MAC and crc of each complete slot set.
    SuperblockFile = 7,
}

impl Format {
    /// Every format, indexed by its selector value.
    pub const ALL: [Format; 8] = [
        Format::Node,
        Format::Chunk,
        Format::Slot,
        Format::Directory,
        Format::BlobHeader,
        Format::Catalog,
        Format::Segment,
        Format::SuperblockFile,
    ];

    /// The selector byte for this format.
    pub fn selector(self, sealed: bool) -> u8 {
        self as u8 | if sealed { SEALED } else { 0 }
    }
}

/// Runs one fuzz input. Returns whether the decoder accepted it (the seeds
/// test uses this to check that every seed is a valid encoding).
///
/// # Panics
/// When a decoder panics or breaks a promise checked here.
pub fn run(data: &[u8]) -> bool {
    let Some((&selector, body)) = data.split_first() else {
        return false;
    };
    let sealed = selector & SEALED != 0;
    match Format::ALL[usize::from(selector & 0x07)] {
        Format::Node => node(body),
        Format::Chunk => {
            let mut rest = body;
            let idx = take_u64(&mut rest);
            let bytes = if sealed {
                seal_chunk(idx, rest)
            } else {
                rest.to_vec()
            };
            chunk(idx, &bytes)
        }
        Format::Slot => slot(&seal_if(sealed, body, seal_slot)),
        Format::Directory => directory(&seal_if(sealed, body, seal_directory)),
        Format::BlobHeader => blob_header(&seal_if(sealed, body, |b| seal_header(b))),
        Format::Catalog => catalog(body),
        Format::Segment => segment(&seal_if(sealed, body, |b| seal_segment(b))),
        Format::SuperblockFile => superblock_file(&seal_if(sealed, body, |b| seal_slots(b))),
    }
}

fn seal_if(sealed: bool, body: &[u8], seal: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = body.to_vec();
    if sealed {
        seal(&mut bytes);
    }
    bytes
}

fn crc(bytes: &[u8]) -> [u8; 4] {
    crc32c::crc32c(bytes).to_le_bytes()
}

/// A decoded node must re-encode to its bytes, rebuild from its entries to
/// its bytes, answer every accessor, and survive the edits the B-tree
/// makes to nodes it reads.
fn node(bytes: &[u8]) -> bool {
    let Ok(node) = Node::decode(bytes) else {
        return false;
    };
    let mut out = Vec::new();
    node.encode(&mut out);
    assert_eq!(out, bytes, "a decoded node re-encodes to other bytes");
    if !node.is_tree_node() {
        // A chunk or a value node: rebuilt from what it holds.
        let rebuilt = match node.kind() {
            Expect::Chunk => Node::chunk(node.chunk_data()),
            _ => Node::value_list(node.value_len(), &node.chunk_ids().collect::<Vec<_>>()),
        };
        assert_eq!(
            rebuilt.as_bytes(),
            bytes,
            "a value node rebuilt has other bytes"
        );
        assert_eq!(node.children().count(), node.chunk_ids().len());
        return true;
    }
    let mut rebuilt = if node.is_leaf() {
        Node::new_leaf()
    } else {
        Node::new_index(node.level())
    };
    for i in 0..node.len() {
        if node.is_leaf() {
            rebuilt.insert_stored(i, node.key(i), node.stored(i));
        } else {
            rebuilt.insert_child(i, node.key(i), node.child(i));
        }
    }
    assert_eq!(
        rebuilt.as_bytes(),
        bytes,
        "a node rebuilt from its entries has other bytes"
    );
    assert_eq!(node.size(), bytes.len());
    let count = u32::from_le_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
    assert_eq!(node.len() as u64, u64::from(count), "entry count");
    let mut payload = 0;
    for i in 0..node.len() {
        let key = node.key(i);
        payload += key.len();
        if node.is_leaf() {
            payload += node.value(i).len();
        } else {
            payload += 8;
            let _ = node.child(i);
        }
        let _ = node.search(key);
        let _ = node.child_index(key);
    }
    assert!(payload <= bytes.len(), "entries larger than the node");
    let refs = match node.is_leaf() {
        true => (0..node.len())
            .filter(|&i| node.value_ref(i).is_some())
            .count(),
        false => node.len(),
    };
    assert_eq!(node.children().count(), refs);
    let _ = node.mem_size();

    // Split at the balanced point and append back: the same node.
    let mut left = node.clone();
    let right = left.split_off(left.balanced_split());
    left.append(&right);
    assert_eq!(left, node, "split then append changed the node");
    // An edited node is still a valid encoding (an index node keeps at
    // least one child: one without children does not decode).
    if node.len() > usize::from(!node.is_leaf()) {
        let mut shorter = node.clone();
        shorter.remove(0);
        let reread = Node::decode(shorter.as_bytes()).expect("a node minus an entry decodes");
        assert_eq!(reread, shorter);
    }
    true
}

/// Seals a chunk built from sparse slot records: slot u16 LE (mod 256)
/// then 24 slot bytes, repeated.
fn seal_chunk(idx: u64, records: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0u8; CHUNK_BYTES];
    for rec in records.chunks_exact(2 + TABLE_SLOT_LEN) {
        let s = usize::from(u16::from_le_bytes([rec[0], rec[1]])) % CHUNK_ENTRIES as usize;
        bytes[s * TABLE_SLOT_LEN..(s + 1) * TABLE_SLOT_LEN].copy_from_slice(&rec[2..]);
    }
    let sum = crc32c::crc32c_append(
        crc32c::crc32c(&idx.to_le_bytes()),
        &bytes[..CHUNK_BYTES - 4],
    );
    bytes[CHUNK_BYTES - 4..].copy_from_slice(&sum.to_le_bytes());
    bytes
}

/// Loads a chunk into a table that already holds entries, in that chunk
/// and another: an error leaves the table as it was; success replaces the
/// chunk, re-encodes to the same bytes and keeps the accounting exact.
fn chunk(idx: u64, bytes: &[u8]) -> bool {
    let other_idx = if idx == 0 { 1 } else { idx - 1 };
    let entry = |segment, len| TableEntry {
        loc: Some(Location {
            segment: SegmentId(segment),
            offset: 0,
            len,
        }),
        refcount: 1,
        digest: u64::from(segment) << 32 | u64::from(len),
    };
    let mut table = NodeTable::new();
    let other = NodeId(other_idx.min(MAX_CHUNK) * CHUNK_ENTRIES);
    table.set(other, entry(1, 10));
    if idx <= MAX_CHUNK {
        table.set(NodeId(idx * CHUNK_ENTRIES + 7), entry(2, 20));
    }
    table.mark_clean();
    let before = snapshot(&table);

    if table.load_chunk(idx, bytes).is_err() {
        assert_eq!(
            snapshot(&table),
            before,
            "a refused chunk changed the table"
        );
        return false;
    }
    assert!(idx <= MAX_CHUNK, "chunk {idx} loaded above MAX_CHUNK");
    assert_eq!(
        table.encode_chunk(idx).expect("a loaded chunk encodes"),
        bytes,
        "a loaded chunk re-encodes to other bytes"
    );
    assert!(table.dirty_chunks().is_empty(), "a loaded chunk is dirty");
    let live = bytes[..CHUNK_BYTES - 4]
        .chunks_exact(TABLE_SLOT_LEN)
        .filter(|s| s.iter().any(|&b| b != 0))
        .count();
    assert_eq!(table.chunk_len(idx), live);
    assert_eq!(table.len(), live as u64 + 1);
    check_live_bytes(&table, idx, other);

    // Reloading changes nothing; loading an all-free chunk empties it.
    table.load_chunk(idx, bytes).expect("a chunk reloads");
    assert_eq!(table.len(), live as u64 + 1);
    check_live_bytes(&table, idx, other);
    let free = NodeTable::new()
        .encode_chunk(idx)
        .expect("a free chunk encodes");
    table.load_chunk(idx, &free).expect("a free chunk loads");
    assert_eq!(table.len(), 1);
    assert_eq!(table.ids().collect::<Vec<_>>(), [other]);
    check_live_bytes(&table, idx, other);
    true
}

/// What a refused load must leave untouched.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    len: u64,
    dirty: Vec<u64>,
    entries: Vec<(NodeId, TableEntry)>,
    live_bytes: [u64; 3],
}

fn snapshot(table: &NodeTable) -> Snapshot {
    Snapshot {
        len: table.len(),
        dirty: table.dirty_chunks(),
        entries: table
            .ids()
            .filter_map(|id| Some((id, table.get(id)?)))
            .collect(),
        live_bytes: [0, 1, 2].map(|s| table.live_bytes(SegmentId(s))),
    }
}

/// `live_bytes` of every segment the table mentions equals the sum of its
/// entries' record lengths.
fn check_live_bytes(table: &NodeTable, idx: u64, other: NodeId) {
    let mut expected: BTreeMap<SegmentId, u64> = BTreeMap::new();
    let ids = (0..CHUNK_ENTRIES).map(|s| NodeId(idx * CHUNK_ENTRIES + s));
    for id in ids.chain(std::iter::once(other)) {
        if let Some(loc) = table.get(id).and_then(|e| e.loc) {
            *expected.entry(loc.segment).or_default() += loc.record_len();
        }
    }
    for s in [0, 1, 2] {
        expected.entry(SegmentId(s)).or_default();
    }
    for (seg, bytes) in expected {
        assert_eq!(table.live_bytes(seg), bytes, "live bytes of {seg}");
    }
}

/// Sets the MAC ([`fuzz_seal`]) and then the crc of one complete slot.
fn seal_one_slot(slot: &mut [u8]) {
    let mac = fuzz_seal(&slot[..MAC_AT]).expect("the fuzz seal has a key");
    slot[MAC_AT..MAC_AT + MAC_LEN].copy_from_slice(&mac);
    let sum = crc(&slot[..SLOT_LEN - 4]);
    slot[SLOT_LEN - 4..].copy_from_slice(&sum);
}

fn seal_slot(bytes: &mut Vec<u8>) {
    bytes.resize(SLOT_LEN, 0);
    seal_one_slot(bytes);
}

/// A valid slot re-encodes to its bytes (with its own MAC) and satisfies
/// the field rules; decoded under [`fuzz_seal`] it gives the same answer
/// but for the MAC check.
fn slot(bytes: &[u8]) -> bool {
    let plain = Superblock::decode(bytes);
    let keyed = Superblock::decode_sealed(bytes, &fuzz_seal);
    check_keyed(&plain, &keyed, bytes);
    match plain {
        Ok(sb) => {
            let mut mac = [0u8; MAC_LEN];
            mac.copy_from_slice(&bytes[MAC_AT..MAC_AT + MAC_LEN]);
            assert_eq!(
                sb.encode_sealed(&|_| Some(mac))[..],
                bytes[..],
                "a slot re-encodes to other bytes"
            );
            check_superblock(&sb);
            true
        }
        Err(fault) => {
            let _ = fault.to_string();
            false
        }
    }
}

/// A slot decoded under a seal: as without one, unless the slot got past
/// the version check (the MAC is checked next) and its MAC is not the
/// seal's, which makes it unauthenticated.
fn check_keyed(
    plain: &Result<Superblock, SlotFault>,
    keyed: &Result<Superblock, SlotFault>,
    bytes: &[u8],
) {
    let past_version = matches!(
        plain,
        Ok(_) | Err(SlotFault::Field(_) | SlotFault::WrongSlot { .. })
    );
    let authentic = bytes.len() == SLOT_LEN
        && fuzz_seal(&bytes[..MAC_AT]).is_some_and(|mac| bytes[MAC_AT..MAC_AT + MAC_LEN] == mac);
    if past_version && !authentic {
        assert_eq!(*keyed, Err(SlotFault::Unauthenticated), "a forged MAC");
    } else {
        assert_eq!(keyed, plain, "a seal changed more than the MAC check");
    }
}

fn check_superblock(sb: &Superblock) {
    assert!(sb.next_node.0 >= 1 && sb.next_segment.0 >= 1);
    assert!(sb.log_file.0 >= 1 && sb.log_start >= 1);
    assert!(sb.parameters.as_str().len() <= MAX_PARAMETERS_LEN);
    for loc in [sb.table_directory, sb.catalog, sb.key_check]
        .into_iter()
        .flatten()
    {
        assert!(loc.segment.0 != 0 && loc.segment < sb.next_segment);
        assert!(loc.len <= MAX_BLOB_LEN);
    }
}

/// Writes the count the length implies (cutting a partial record) and the
/// crc.
fn seal_directory(bytes: &mut Vec<u8>) {
    bytes.resize(bytes.len().max(4), 0);
    let count = (bytes.len() - 4) / DIRECTORY_RECORD_LEN;
    bytes.truncate(4 + DIRECTORY_RECORD_LEN * count);
    bytes[..4].copy_from_slice(&(count as u32).to_le_bytes());
    let sum = crc(bytes);
    bytes.extend_from_slice(&sum);
}

/// A valid directory re-encodes to its bytes, in ascending chunk order,
/// each chunk with the digest its record holds; rebuilt chunk by chunk it
/// is the same directory.
fn directory(bytes: &[u8]) -> bool {
    let Ok(dir) = Directory::decode(bytes) else {
        return false;
    };
    assert_eq!(dir.encode(), bytes, "a directory re-encodes to other bytes");
    assert_eq!(bytes.len(), 8 + DIRECTORY_RECORD_LEN * dir.len());
    let mut last = None;
    let mut rebuilt = Directory::new();
    let records = bytes[4..].chunks_exact(DIRECTORY_RECORD_LEN);
    for ((idx, loc, digest), rec) in dir.iter_pinned().zip(records) {
        assert!(last.is_none_or(|l| l < idx), "chunks out of order");
        last = Some(idx);
        assert_eq!(dir.get(idx), Some(loc));
        assert!(loc.segment.0 != 0 && loc.len <= MAX_BLOB_LEN);
        assert_eq!(
            digest.0,
            rec[DIRECTORY_RECORD_LEN - DIGEST_LEN..],
            "digest of {idx}"
        );
        assert_eq!(rebuilt.insert(idx, loc, digest), None, "chunk {idx} twice");
    }
    assert!(dir.iter().eq(dir.iter_pinned().map(|(i, l, _)| (i, l))));
    assert_eq!(rebuilt, dir, "a directory rebuilt chunk by chunk differs");
    assert_eq!(dir.is_empty(), last.is_none());
    true
}

fn seal_header(bytes: &mut [u8]) {
    if bytes.len() >= HEADER_LEN {
        let sum = crc(&bytes[..20]);
        bytes[20..24].copy_from_slice(&sum);
    }
}

/// A valid header re-encodes to its first 24 bytes.
fn blob_header(bytes: &[u8]) -> bool {
    match BlobHeader::decode(bytes) {
        Ok(h) => {
            assert_eq!(
                h.encode()[..],
                bytes[..HEADER_LEN],
                "a header re-encodes to other bytes"
            );
            assert!(h.len <= MAX_BLOB_LEN);
            assert_eq!(BlobKind::from_u8(h.kind.as_u8()), Some(h.kind));
            assert_eq!(h.record_len(), HEADER_LEN as u64 + u64::from(h.len));
            true
        }
        Err(fault) => {
            let _ = fault.to_string();
            false
        }
    }
}

/// A valid catalog re-encodes to its bytes (empty bytes, the catalog of a
/// new store, aside: they encode as version 1 with no tree).
fn catalog(bytes: &[u8]) -> bool {
    let Ok(cat) = Catalog::decode(bytes) else {
        return false;
    };
    let out = cat.encode();
    if bytes.is_empty() {
        assert!(cat.is_empty(), "empty bytes decoded to trees");
    } else {
        assert_eq!(out, bytes, "a catalog re-encodes to other bytes");
    }
    let again = Catalog::decode(&out).expect("an encoded catalog decodes");
    assert_eq!(again, cat, "a catalog changed through encode and decode");
    // Each entry takes at least a length byte and an 8-byte root.
    assert!(cat.len() <= bytes.len() / 9);
    for (name, _) in cat.iter() {
        assert!(
            (1..=MAX_NAME_LEN).contains(&name.len()),
            "name of {} bytes",
            name.len()
        );
    }
    true
}

/// Sets the crc of every header a scan would meet.
fn seal_segment(bytes: &mut [u8]) {
    let mut at = 0usize;
    while bytes.len() - at >= HEADER_LEN {
        let sum = crc(&bytes[at..at + 20]);
        bytes[at + 20..at + 24].copy_from_slice(&sum);
        let len = u32::from_le_bytes([
            bytes[at + 16],
            bytes[at + 17],
            bytes[at + 18],
            bytes[at + 19],
        ]);
        at += HEADER_LEN + len as usize;
        if at > bytes.len() {
            break;
        }
    }
}

/// Scans a segment: the records found are contiguous from offset 0, each
/// reads back through `read_blob`, and the scan stopped only where the
/// next record is invalid or torn.
fn segment(bytes: &[u8]) -> bool {
    let backend = MemBackend::new();
    let seg = SegmentId::FIRST;
    backend
        .write_at(FileId::Segment(seg), 0, bytes)
        .expect("a memory write succeeds");
    let found = scan_segment(&backend, seg).expect("a memory segment scans");
    let mut end = 0u64;
    for (header, loc) in &found {
        assert_eq!((loc.segment, loc.offset, loc.len), (seg, end, header.len));
        let body = read_blob(&backend, *loc, header.kind, header.id).expect("a scanned blob reads");
        let at = (end + HEADER_LEN as u64) as usize;
        assert_eq!(body, bytes[at..at + header.len as usize]);
        let other = if header.id == 0 { 1 } else { 0 };
        assert!(
            read_blob(&backend, *loc, header.kind, other).is_err(),
            "wrong id read"
        );
        end += header.record_len();
    }
    let rest = &bytes[end as usize..];
    if let Ok(next) = BlobHeader::decode(rest) {
        assert!(
            next.record_len() > rest.len() as u64,
            "the scan stopped early"
        );
    }
    !found.is_empty()
}

fn seal_slots(bytes: &mut [u8]) {
    for at in [0, SLOT_LEN] {
        if bytes.len() >= at + SLOT_LEN {
            seal_one_slot(&mut bytes[at..at + SLOT_LEN]);
        }
    }
}

/// Opens a superblock file as a store does, without a key and under
/// [`fuzz_seal`]: `read_newest_with_fault` agrees with the two slots
/// `read_slots` reports, and each keyed slot with its plain one.
fn superblock_file(bytes: &[u8]) -> bool {
    let backend = MemBackend::new();
    backend
        .write_at(FileId::Superblock, 0, bytes)
        .expect("a memory write succeeds");
    let plain = read_slots(&backend, &no_seal).expect("memory slots read");
    let keyed = read_slots(&backend, &fuzz_seal).expect("memory slots read");
    for (i, (p, k)) in plain.iter().zip(&keyed).enumerate() {
        if let Ok(sb) = p {
            assert_eq!(sb.generation.slot(), i, "generation in the wrong slot");
            check_superblock(sb);
        }
        let at = (i * SLOT_LEN).min(bytes.len());
        check_keyed(p, k, &bytes[at..(at + SLOT_LEN).min(bytes.len())]);
    }
    let opened = newest(&plain, read_newest_with_fault(&backend, &no_seal));
    newest(&keyed, read_newest_with_fault(&backend, &fuzz_seal));
    opened
}

/// The superblock a store opens agrees with its two slots: the newest valid
/// one, with the other's fault if it is damaged rather than empty; or the
/// error the slots call for. Returns whether it opened.
fn newest(
    slots: &[Result<Superblock, SlotFault>; 2],
    opened: Result<(Superblock, Option<SlotFault>), FormatError>,
) -> bool {
    let version = slots
        .iter()
        .any(|s| matches!(s, Err(SlotFault::Version(_))));
    let all = |ok: &dyn Fn(&SlotFault) -> bool| slots.iter().all(|s| s.as_ref().is_err_and(ok));
    match opened {
        Ok((sb, fault)) => {
            assert!(!version, "opened past a slot of another version");
            let newest = slots.iter().flatten().max_by_key(|s| s.generation);
            assert_eq!(Some(&sb), newest);
            let damaged = slots
                .iter()
                .filter_map(|s| s.as_ref().err())
                .find(|f| **f != SlotFault::Empty);
            assert_eq!(fault.as_ref(), damaged, "the fault of the other slot");
            true
        }
        Err(e) => {
            let _ = e.to_string();
            match e {
                FormatError::UnsupportedVersion { .. } => assert!(version),
                FormatError::NoSuperblock { .. } => assert!(all(&|f| *f == SlotFault::Empty)),
                FormatError::Unauthenticated { .. } => assert!(all(&|f| matches!(
                    f,
                    SlotFault::Empty | SlotFault::Unauthenticated
                ))),
                FormatError::NotLarix { .. } => {
                    assert!(all(&|f| matches!(f, SlotFault::Empty | SlotFault::Magic)));
                }
                FormatError::SuperblockDamaged { slot0, slot1, .. } => {
                    assert!(!version);
                    assert_eq!(slots[0], Err(slot0));
                    assert_eq!(slots[1], Err(slot1));
                }
                other => panic!("a memory superblock file failed to open: {other}"),
            }
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_inputs_are_refused_but_for_empty_encodings() {
        // Empty bytes are the empty catalog; sealing nothing gives the
        // all-free chunk 0 and the empty directory (a catalog has no seal).
        for f in Format::ALL {
            assert_eq!(run(&[f.selector(false)]), f == Format::Catalog, "{f:?}");
            let empty_when_sealed =
                matches!(f, Format::Chunk | Format::Directory | Format::Catalog);
            assert_eq!(run(&[f.selector(true)]), empty_when_sealed, "{f:?} sealed");
        }
        assert!(!run(&[]));
    }

    /// A slot whose MAC is not the seal's reads without a key, re-encodes
    /// with its own MAC, and is unauthenticated under the seal.
    #[test]
    fn a_slot_is_read_with_and_without_the_seal() {
        let sb = Superblock::new(Default::default());
        let mut bytes = sb.encode_sealed(&fuzz_seal).to_vec();
        assert!(slot(&bytes));
        bytes[MAC_AT] ^= 1;
        let sum = crc(&bytes[..SLOT_LEN - 4]);
        bytes[SLOT_LEN - 4..].copy_from_slice(&sum);
        assert_eq!(
            Superblock::decode_sealed(&bytes, &fuzz_seal),
            Err(SlotFault::Unauthenticated)
        );
        assert!(slot(&bytes));
        let mut file = bytes.clone();
        file.extend(sb.encode_sealed(&fuzz_seal));
        assert!(superblock_file(&file));
    }
}
