//! Seed inputs: a handful of valid encodings of every format, built with
//! the crates' own encoders so that they follow the format as it is.
//!
//! `cargo run --bin make-seeds` writes them to `seeds/<target>/`; the
//! `seeds` test checks that the committed files still decode.

use larix_btree::{Catalog, Node, Stored, ValueRef};
use larix_filters::{Context, FilterSpec, Pipeline};
use larix_nodestore::testing::{
    no_seal, node_digest, write_slot, BlobHeader, Digest, Directory, Generation, Location,
    NodeTable, Parameters, Seal, SegmentWriter, Superblock, TableEntry, CHUNK_ENTRIES,
    DEFAULT_MAX_SEGMENT_BYTES,
};
use larix_nodestore::{Backend, BlobKind, Codec, FileId, LogId, MemBackend, NodeId, SegmentId};

use crate::decode::{fuzz_seal, Format};
use crate::filters::{self, Mode, KEY};
use crate::model::{self, Config, Crash, End, Filters, Op};

/// A named seed input.
pub type Seed = (String, Vec<u8>);

/// The node id the filter seeds are sealed under.
const NODE_ID: u64 = 42;

fn loc(segment: u32, offset: u64, len: u32) -> Location {
    Location {
        segment: SegmentId(segment),
        offset,
        len,
    }
}

fn with_selector(format: Format, sealed: bool, body: &[u8]) -> Vec<u8> {
    let mut v = vec![format.selector(sealed)];
    v.extend_from_slice(body);
    v
}

/// A leaf of a few file-like entries.
pub fn sample_leaf() -> Node {
    let mut n = Node::new_leaf();
    let entries: [(&[u8], &[u8]); 4] = [
        (b"", b"the empty key"),
        (b"/etc/hosts", b"size=220"),
        (b"/etc/passwd", b"size=1400"),
        (b"/var/log/syslog", &[0xFF; 40]),
    ];
    for (i, (k, v)) in entries.iter().enumerate() {
        n.insert_leaf(i, k, v);
    }
    n
}

/// A leaf with one value stored out of line beside inline ones.
fn leaf_with_a_large_value() -> Node {
    let mut n = sample_leaf();
    let big = ValueRef {
        id: NodeId(77),
        len: 2_000_000,
    };
    n.insert_stored(2, b"/usr/lib/big.so", Stored::Out(big));
    n
}

fn sample_index() -> Node {
    let mut n = Node::new_index(1);
    for (i, (k, child)) in [(&b""[..], 7), (b"/etc/passwd", 9), (b"/var", 11)]
        .into_iter()
        .enumerate()
    {
        n.insert_child(i, k, NodeId(child));
    }
    n
}

fn sample_superblock(generation: u64) -> Superblock {
    let parameters =
        "node_size=4096;filters=zstd(level=3),encrypt(xchacha20poly1305),checksum(crc32c)";
    Superblock {
        generation: Generation(generation),
        next_node: NodeId(5000),
        next_segment: SegmentId(4),
        table_directory: Some(loc(3, 16_412, 88)),
        catalog: Some(loc(3, 0, 61)),
        key_check: Some(loc(1, 24, 56)),
        parameters: Parameters::new(parameters).expect("short parameters"),
        table_directory_digest: Digest::of(b"the table directory"),
        catalog_digest: Digest::of(b"the catalog"),
        log_file: LogId(2),
        log_start: 90 + generation,
        log_salt: 0x5EED_5A17,
    }
}

/// Entries in the first, second and last slot of chunk 5.
fn sample_table() -> NodeTable {
    let mut t = NodeTable::new();
    let first = 5 * CHUNK_ENTRIES;
    for (id, segment, offset, len, refcount) in [
        (first, 1, 0, 300, 1),
        (first + 1, 1, 324, 4000, 2),
        (first + CHUNK_ENTRIES - 1, 3, 96, 16, u32::MAX),
    ] {
        let entry = TableEntry {
            loc: Some(loc(segment, offset, len)),
            refcount,
            digest: node_digest(&id.to_le_bytes()),
        };
        t.set(NodeId(id), entry);
    }
    t
}

/// The seeds of the `decode` target.
pub fn decode() -> Vec<Seed> {
    let mut seeds = Vec::new();
    let mut add = |name: &str, format, sealed, body: &[u8]| {
        seeds.push((name.to_string(), with_selector(format, sealed, body)));
    };
    for (name, node) in [
        ("node-leaf", sample_leaf()),
        ("node-index", sample_index()),
        ("node-empty-leaf", Node::new_leaf()),
        ("node-leaf-out-of-line", leaf_with_a_large_value()),
        ("node-value-chunk", Node::chunk(b"a piece of a large value")),
        (
            "node-value-list",
            Node::value_list(3 << 20, &[NodeId(40), NodeId(41), NodeId(42)]),
        ),
    ] {
        let mut bytes = Vec::new();
        node.encode(&mut bytes);
        add(name, Format::Node, false, &bytes);
    }

    let table = sample_table();
    let mut chunk = 5u64.to_le_bytes().to_vec();
    chunk.extend(table.encode_chunk(5).expect("written entries encode"));
    add("chunk", Format::Chunk, false, &chunk);
    let mut sparse = 5u64.to_le_bytes().to_vec();
    // Slot 1: segment 1, offset 324, length 4000, refcount 2, digest
    // 0x0102030405060708.
    sparse.extend_from_slice(&1u16.to_le_bytes());
    sparse.extend_from_slice(&[1, 0, 0, 0, 68, 1, 0, 0, 160, 15, 0, 0, 2, 0, 0, 0]);
    sparse.extend_from_slice(&0x0102_0304_0506_0708u64.to_le_bytes());
    add("chunk-sparse", Format::Chunk, true, &sparse);

    let slot = sample_superblock(7).encode();
    add("slot", Format::Slot, false, &slot);
    let empty = Superblock::new(Parameters::default()).encode();
    add("slot-new-store", Format::Slot, false, &empty);
    let mac = sample_superblock(8).encode_sealed(&fuzz_seal);
    add("slot-mac", Format::Slot, false, &mac);

    let mut dir = Directory::new();
    dir.insert(0, loc(1, 0, 6148), Digest::of(b"chunk 0"));
    dir.insert(5, loc(3, 24, 6148), Digest::of(b"chunk 5"));
    let dir = dir.encode();
    add("directory", Format::Directory, false, &dir);
    add(
        "directory-sealed",
        Format::Directory,
        true,
        &dir[..dir.len() - 4],
    );

    let header = BlobHeader {
        kind: BlobKind::Node,
        id: 42,
        len: 300,
    };
    add("blob-header", Format::BlobHeader, false, &header.encode());

    let mut cat = Catalog::default();
    cat.set_root("files", NodeId(3));
    cat.set_root("files@monday", NodeId(3));
    cat.set_root("logs", NodeId(77));
    add("catalog", Format::Catalog, false, &cat.encode());

    add("segment", Format::Segment, false, &sample_segment());
    add(
        "superblock-file",
        Format::SuperblockFile,
        false,
        &sample_superblock_file(&no_seal),
    );
    add(
        "superblock-file-mac",
        Format::SuperblockFile,
        false,
        &sample_superblock_file(&fuzz_seal),
    );
    seeds
}

/// A segment of a node, a table chunk, a directory and a catalog record.
fn sample_segment() -> Vec<u8> {
    let backend = MemBackend::new();
    let mut w = SegmentWriter::new(SegmentId::FIRST, 0, DEFAULT_MAX_SEGMENT_BYTES);
    let mut node = Vec::new();
    sample_leaf().encode(&mut node);
    let records: [(BlobKind, u64, Vec<u8>); 4] = [
        (BlobKind::Node, 42, node),
        (
            BlobKind::TableChunk,
            5,
            sample_table()
                .encode_chunk(5)
                .expect("written entries encode"),
        ),
        (BlobKind::TableDirectory, 0, Directory::new().encode()),
        (BlobKind::Catalog, 0, Catalog::default().encode()),
    ];
    for (kind, id, body) in records {
        w.append(&backend, kind, id, &body)
            .expect("a memory append");
    }
    read_file(&backend, FileId::Segment(SegmentId::FIRST))
}

/// A superblock file holding generations 2 (slot 0) and 3 (slot 1),
/// sealed with `seal`.
fn sample_superblock_file(seal: Seal) -> Vec<u8> {
    let backend = MemBackend::new();
    for generation in [2, 3] {
        write_slot(&backend, &sample_superblock(generation), seal).expect("a memory write");
    }
    read_file(&backend, FileId::Superblock)
}

fn read_file(backend: &MemBackend, file: FileId) -> Vec<u8> {
    let len = backend.len(file).expect("the file exists");
    let mut bytes = vec![0; usize::try_from(len).expect("a small file")];
    backend.read_at(file, 0, &mut bytes).expect("a memory read");
    bytes
}

/// The seeds of the `filters` target. The encrypted ones hold a random
/// nonce, so they differ each time they are made.
pub fn filters() -> Vec<Seed> {
    let mut node = Vec::new();
    sample_leaf().encode(&mut node);
    let ctx = Context::new(NODE_ID);
    let blob = |specs: &[FilterSpec]| {
        let p = Pipeline::new(specs).expect("a valid pipeline");
        p.encode(&ctx, &node).expect("encode succeeds")
    };
    let zstd = blob(&[FilterSpec::zstd(3)]);
    let cases: [(&str, Mode, Vec<u8>); 8] = [
        ("zstd-frame", Mode::Zstd, zstd.clone()),
        ("checksum", Mode::Checksum, blob(&[FilterSpec::checksum()])),
        ("encrypt", Mode::Encrypt, blob(&[FilterSpec::encrypt(KEY)])),
        (
            "zstd-checksum",
            Mode::ZstdChecksum,
            blob(&[FilterSpec::zstd(3), FilterSpec::checksum()]),
        ),
        (
            "zstd-encrypt-checksum",
            Mode::Full,
            blob(&[
                FilterSpec::zstd(3),
                FilterSpec::encrypt(KEY),
                FilterSpec::checksum(),
            ]),
        ),
        ("sealed-zstd-frame", Mode::SealedZstdChecksum, zstd.clone()),
        ("sealed-full-zstd-frame", Mode::SealedFull, zstd),
        ("round-trip-node", Mode::RoundTrip, node.clone()),
    ];
    cases
        .into_iter()
        .map(|(name, mode, payload)| (name.to_string(), filters::input(mode, NODE_ID, 2, &payload)))
        .collect()
}

/// The seeds of the `model` target: short operation sequences that reach
/// every kind of operation, fault and configuration.
pub fn model() -> Vec<Seed> {
    let config = |node_size, immediate, filters, prefill| Config {
        node_size,
        immediate,
        filters,
        prefill,
    };
    let small = config(256, true, Filters::ZstdChecksum, false);
    let full = config(256, true, Filters::ZstdChecksum, true);
    // Fill one by one, or as one batch.
    let fill_as = |batch| {
        move |slot, from, count, tag| Op::Fill {
            slot,
            from,
            count,
            tag,
            batch,
        }
    };
    let (fill, batch) = (fill_as(false), fill_as(true));
    let range = |slot, lo, hi, reverse| Op::Range {
        slot,
        lo,
        hi,
        reverse,
    };
    let cases: [(&str, Config, Vec<Op>); 9] = [
        (
            "rollback",
            small,
            vec![
                fill(0, 0, 150, 4),
                Op::Commit,
                Op::Checkpoint,
                fill(0, 20, 60, 5),
                Op::Commit,
                Op::Clone { src: 0, dst: 1 },
                Op::RemoveTree(0),
                fill(1, 0, 90, 6),
                Op::Rollback,
                Op::Check,
                Op::Crash(Crash::Drop),
                Op::Check,
            ],
        ),
        (
            "trees-and-clones",
            small,
            vec![
                Op::Create(0),
                fill(0, 0, 200, 7),
                Op::Remove { slot: 0, key: 3 },
                range(0, End::Included(10), End::Excluded(90), false),
                Op::Commit,
                Op::Clone { src: 0, dst: 1 },
                Op::Insert {
                    slot: 1,
                    key: 5,
                    tag: 200,
                },
                Op::RemoveRange {
                    slot: 0,
                    lo: End::Excluded(20),
                    hi: End::Unbounded,
                },
                Op::TooLarge { slot: 1, key: 9 },
                Op::Commit,
                Op::Reopen { heal: true },
                Op::Get { slot: 1, key: 5 },
                range(1, End::Unbounded, End::Included(40), true),
                Op::Check,
            ],
        ),
        (
            "write-buffer",
            full,
            vec![
                batch(0, 10, 200, 7),
                Op::Commit,
                batch(0, 30, 130, 8),
                Op::Get { slot: 0, key: 35 },
                batch(0, 200, 150, 9),
                Op::Clone { src: 0, dst: 1 },
                batch(1, 0, 140, 10),
                Op::Commit,
                batch(1, 100, 30, 11),
                Op::Rollback,
                Op::Crash(Crash::Drop),
                range(1, End::Unbounded, End::Unbounded, false),
                Op::Check,
            ],
        ),
        (
            "crash-drops-unsynced",
            full,
            vec![
                fill(0, 0, 256, 3),
                Op::Commit,
                fill(0, 100, 50, 9),
                Op::Clone { src: 0, dst: 2 },
                Op::Crash(Crash::Drop),
                range(0, End::Unbounded, End::Unbounded, false),
            ],
        ),
        (
            "crash-tears-last-write",
            full,
            vec![
                Op::RemoveRange {
                    slot: 0,
                    lo: End::Included(50),
                    hi: End::Excluded(150),
                },
                Op::Commit,
                fill(0, 60, 30, 11),
                Op::Crash(Crash::Tear {
                    keep: 100,
                    shift: 0,
                }),
                Op::Commit,
                fill(0, 0, 40, 12),
                Op::Commit,
                Op::Crash(Crash::Tear { keep: 64, shift: 6 }),
                Op::Check,
            ],
        ),
        (
            "failing-commits",
            full,
            vec![
                fill(0, 0, 128, 2),
                Op::FailingCommit(10),
                Op::Reopen { heal: false },
                fill(0, 128, 128, 4),
                Op::FailingCommit(30),
                Op::Crash(Crash::Drop),
                Op::Get { slot: 0, key: 200 },
            ],
        ),
        (
            "failing-operations",
            full,
            vec![
                Op::FailAfter(5),
                fill(0, 0, 64, 5),
                Op::Remove { slot: 0, key: 70 },
                Op::Clone { src: 0, dst: 1 },
                Op::RemoveTree(0),
                range(0, End::Excluded(3), End::Included(200), true),
                Op::Commit,
                Op::Reopen { heal: true },
            ],
        ),
        (
            "non-durable-commits",
            config(256, false, Filters::Checksum, true),
            vec![
                fill(0, 0, 100, 6),
                Op::Commit,
                Op::Clone { src: 0, dst: 1 },
                Op::Commit,
                Op::Remove { slot: 1, key: 4 },
                Op::Crash(Crash::Tear { keep: 3, shift: 4 }),
                Op::Check,
            ],
        ),
        (
            "compaction-512",
            config(512, true, Filters::Empty, true),
            vec![
                Op::Clone { src: 0, dst: 1 },
                fill(1, 0, 256, 20),
                Op::Commit,
                Op::RemoveTree(0),
                Op::Compact,
                Op::Crash(Crash::Drop),
                Op::Create(2),
                Op::Compact,
                Op::Check,
            ],
        ),
    ];
    cases
        .into_iter()
        .map(|(name, config, ops)| (name.to_string(), model::encode(config, &ops)))
        .collect()
}
