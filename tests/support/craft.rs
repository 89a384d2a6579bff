//! A toolkit for building hostile or damaged stores through the format
//! modules (never by hand-coded offsets): open a closed store's files,
//! change nodes, table entries or superblock fields, and write a new
//! generation that points at the changes, the way an attacker without the
//! key (or a clumsy tool) would.

#![allow(dead_code)]

use larix_btree::{Catalog, Node};
use larix_filters::{Context, FilterSpec, Pipeline};
use larix_nodestore::testing::{
    no_seal, node_digest, read_blob, read_newest, write_slot, Digest, Directory, Generation,
    Location, NodeTable, SegmentWriter, Superblock, TableEntry, DEFAULT_MAX_SEGMENT_BYTES,
    HEADER_LEN, SLOT_LEN,
};
use larix_nodestore::{Backend, BlobKind, Codec, FileBackend, FileId, NodeId};
use std::path::Path;

/// The context the store filters its metadata blobs (key check, catalog)
/// with: node ids start at 1, so 0 is no node's.
pub const META_CONTEXT: u64 = 0;

/// A store's committed state, opened for crafting.
pub struct Crafted {
    pub backend: FileBackend,
    pub sb: Superblock,
    pub table: NodeTable,
    pub directory: Directory,
    pipeline: Pipeline,
    writer: SegmentWriter,
    /// The directory blob's body the next commit writes, if not the
    /// encoding of `directory`.
    directory_body: Option<Vec<u8>>,
}

impl Crafted {
    /// Opens the store in `dir` (closed by its owner) whose nodes pass
    /// through `filters`. The superblock's MAC is not checked: an attacker
    /// has no key.
    pub fn open(dir: &Path, filters: &[FilterSpec]) -> Crafted {
        let backend = FileBackend::open(dir, false).unwrap();
        let sb = read_newest(&backend).unwrap();
        let mut table = NodeTable::new();
        let mut directory = Directory::new();
        if let Some(loc) = sb.table_directory {
            let body = read_blob(&backend, loc, BlobKind::TableDirectory, 0).unwrap();
            directory = Directory::decode(&body).unwrap();
            for (idx, loc) in directory.iter() {
                let bytes = read_blob(&backend, loc, BlobKind::TableChunk, idx).unwrap();
                table.load_chunk(idx, &bytes).unwrap();
            }
        }
        let writer = SegmentWriter::new(sb.next_segment, 0, DEFAULT_MAX_SEGMENT_BYTES);
        Crafted {
            backend,
            sb,
            table,
            directory,
            pipeline: Pipeline::new(filters).unwrap(),
            writer,
            directory_body: None,
        }
    }

    /// Every live id with its table entry.
    pub fn table_entries(&self) -> Vec<(NodeId, TableEntry)> {
        self.table
            .ids()
            .map(|id| (id, self.table.get(id).unwrap()))
            .collect()
    }

    /// The ids of the live nodes.
    pub fn ids(&self) -> Vec<NodeId> {
        self.table.ids().collect()
    }

    /// The node stored under `id`.
    pub fn node(&self, id: NodeId) -> Node {
        let loc = self.table.get(id).unwrap().loc.unwrap();
        let body = read_blob(&self.backend, loc, BlobKind::Node, id.0).unwrap();
        let raw = self.pipeline.decode(&Context::new(id.0), &body).unwrap();
        Node::decode(&raw).unwrap()
    }

    /// Stores `node` under `id` (filtered as the store filters nodes),
    /// keeping its refcount.
    pub fn put_node(&mut self, id: NodeId, node: &Node) {
        let mut raw = Vec::new();
        node.encode(&mut raw);
        let body = self.pipeline.encode(&Context::new(id.0), &raw).unwrap();
        self.put_blob(id, &body);
    }

    /// Appends `body` as a blob of `kind` and `id`, as it is, to the
    /// segment the next commit writes; returns where it lies.
    pub fn append(&mut self, kind: BlobKind, id: u64, body: &[u8]) -> Location {
        self.writer.append(&self.backend, kind, id, body).unwrap()
    }

    /// Stores `body` as the blob of `id`, as it is.
    pub fn put_blob(&mut self, id: NodeId, body: &[u8]) {
        let loc = self.append(BlobKind::Node, id.0, body);
        let refcount = self.table.get(id).map_or(1, |e| e.refcount);
        self.table.set(
            id,
            TableEntry {
                loc: Some(loc),
                refcount,
                digest: node_digest(body),
            },
        );
    }

    /// The committed catalog, read and unfiltered as the store reads it
    /// (empty if there is none).
    pub fn catalog(&self) -> Catalog {
        let Some(loc) = self.sb.catalog else {
            return Catalog::default();
        };
        let body = read_blob(&self.backend, loc, BlobKind::Catalog, 0).unwrap();
        let raw = self
            .pipeline
            .decode(&Context::new(META_CONTEXT), &body)
            .unwrap();
        Catalog::decode(&raw).unwrap()
    }

    /// Makes `raw` the catalog of the next commit: filtered as the store
    /// filters its catalog, and pinned by its digest.
    pub fn put_catalog(&mut self, raw: &[u8]) {
        let body = self
            .pipeline
            .encode(&Context::new(META_CONTEXT), raw)
            .unwrap();
        self.put_catalog_blob(&body);
    }

    /// Makes `body`, as it is, the catalog blob of the next commit, pinned
    /// by its digest.
    pub fn put_catalog_blob(&mut self, body: &[u8]) {
        let loc = self.append(BlobKind::Catalog, 0, body);
        self.sb.catalog = Some(loc);
        self.sb.catalog_digest = Digest::of(body);
    }

    /// Makes `body`, as it is, the directory blob of the next commit
    /// (pinned by its digest) instead of the encoding of `directory`.
    pub fn put_directory_body(&mut self, body: Vec<u8>) {
        self.directory_body = Some(body);
    }

    /// Writes chunk `idx` of `table`, as it is now, over the chunk's
    /// committed blob body in place (its record header unchanged): the
    /// directory still pins the old body's digest.
    pub fn overwrite_chunk(&self, idx: u64) {
        let loc = self.directory.get(idx).unwrap();
        let bytes = self.table.encode_chunk(idx).unwrap();
        assert_eq!(bytes.len(), loc.len as usize, "a chunk's length is fixed");
        let file = FileId::Segment(loc.segment);
        let at = loc.offset + HEADER_LEN as u64;
        self.backend.write_at(file, at, &bytes).unwrap();
        self.backend.sync(file).unwrap();
    }

    /// Writes the changed table chunks, a directory and a new superblock
    /// generation pointing at them (with `edit` applied to it last), all
    /// synced, without a MAC.
    pub fn commit(mut self, edit: impl FnOnce(&mut Superblock)) {
        for idx in self.table.dirty_chunks() {
            let bytes = self.table.encode_chunk(idx).unwrap();
            let loc = self.append(BlobKind::TableChunk, idx, &bytes);
            self.directory.insert(idx, loc, Digest::of(&bytes));
        }
        let body = match self.directory_body.take() {
            Some(body) => body,
            None => self.directory.encode(),
        };
        let loc = self.append(BlobKind::TableDirectory, 0, &body);
        self.writer.sync(&self.backend).unwrap();
        let mut sb = self.sb.clone();
        sb.generation = sb.generation.next();
        sb.table_directory = Some(loc);
        sb.table_directory_digest = Digest::of(&body);
        sb.next_segment = self.writer.segment().next().unwrap();
        edit(&mut sb);
        write_slot(&self.backend, &sb, &no_seal).unwrap();
        self.backend.sync(FileId::Superblock).unwrap();
    }

    /// Rewrites the newest superblock slot in place with `edit` applied.
    pub fn rewrite_superblock(self, edit: impl FnOnce(&mut Superblock)) {
        let mut sb = self.sb.clone();
        edit(&mut sb);
        write_slot(&self.backend, &sb, &no_seal).unwrap();
        self.backend.sync(FileId::Superblock).unwrap();
    }

    /// Tears the newest superblock slot the way a crash in the middle of
    /// writing it would: the first half of a later generation's slot (one
    /// that selects the same slot) over it, the rest as it was.
    pub fn tear_newest_slot(self) {
        let mut later = self.sb.clone();
        later.generation = Generation(self.sb.generation.0 + 2);
        let bytes = later.encode();
        let at = (self.sb.generation.slot() * SLOT_LEN) as u64;
        self.backend
            .write_at(FileId::Superblock, at, &bytes[..SLOT_LEN / 2])
            .unwrap();
        self.backend.sync(FileId::Superblock).unwrap();
    }
}
