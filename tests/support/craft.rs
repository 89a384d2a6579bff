//! A toolkit for building hostile or damaged stores through the format
//! modules (never by hand-coded offsets): open a closed store's files,
//! change nodes, table entries or superblock fields, and write a new
//! generation that points at the changes, the way an attacker without the
//! key (or a clumsy tool) would.

#![allow(dead_code)]

use larix_btree::Node;
use larix_filters::{Context, FilterSpec, Pipeline};
use larix_nodestore::testing::{
    no_seal, node_digest, read_blob, read_newest, write_slot, Digest, Directory, NodeTable,
    SegmentWriter, Superblock, TableEntry, DEFAULT_MAX_SEGMENT_BYTES,
};
use larix_nodestore::{Backend, BlobKind, Codec, FileBackend, FileId, NodeId};
use std::path::Path;

/// A store's committed state, opened for crafting.
pub struct Crafted {
    pub backend: FileBackend,
    pub sb: Superblock,
    pub table: NodeTable,
    pub directory: Directory,
    pipeline: Pipeline,
    writer: SegmentWriter,
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

    /// Stores `body` as the blob of `id`, as it is.
    pub fn put_blob(&mut self, id: NodeId, body: &[u8]) {
        let loc = self
            .writer
            .append(&self.backend, BlobKind::Node, id.0, body)
            .unwrap();
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

    /// Writes the changed table chunks, a directory and a new superblock
    /// generation pointing at them (with `edit` applied to it last), all
    /// synced, without a MAC.
    pub fn commit(mut self, edit: impl FnOnce(&mut Superblock)) {
        for idx in self.table.dirty_chunks() {
            let bytes = self.table.encode_chunk(idx).unwrap();
            let loc = self
                .writer
                .append(&self.backend, BlobKind::TableChunk, idx, &bytes)
                .unwrap();
            self.directory.insert(idx, loc, Digest::of(&bytes));
        }
        let body = self.directory.encode();
        let loc = self
            .writer
            .append(&self.backend, BlobKind::TableDirectory, 0, &body)
            .unwrap();
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
}
