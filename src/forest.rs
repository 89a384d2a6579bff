//! The forest: open, create and remove trees, commit, check.

use crate::{CheckReport, Options, Result, SegmentStats, Tree};
use larix_btree::Limits;
use larix_filters::Pipeline;
use larix_nodestore::{Backend, CompactionPolicy, FileBackend, MemBackend, NodeStore, StoreConfig};
use std::path::Path;
use std::sync::Arc;

/// A set of named trees that share nodes, in one store. `Send + Sync`;
/// all methods take `&self`. Dropping it without [`Forest::commit`]
/// discards the changes made since the last commit.
pub struct Forest {
    inner: larix_btree::Forest,
    parameters: String,
}

/// Segments whose live share is below this are rewritten by
/// [`Forest::compact`].
const COMPACT_LIVE_RATIO: f64 = 0.9;

/// Counters describing a forest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Live B-tree nodes (committed or not); 0 when there are no trees.
    pub nodes: u64,
    /// Number of trees.
    pub trees: u64,
    /// Commits since the forest was opened.
    pub commits: u64,
    /// Node reads served from the decoded-node cache.
    pub cache_hits: u64,
    /// Node reads that had to go to disk (read, unfilter, decode).
    pub cache_misses: u64,
    /// Node reads served from the dirty queue (put, not yet handed to the
    /// workers).
    pub dirty_hits: u64,
    /// Node reads served from the pending buffer of an in-flight write.
    pub inflight_hits: u64,
    /// Times a caller waited for in-flight writes (backpressure or commit).
    pub inflight_waits: u64,
    /// Blobs appended to segment files.
    pub blobs_written: u64,
    /// Bytes of those blobs before filtering.
    pub bytes_unfiltered: u64,
    /// Bytes of those blobs after filtering (as written, without headers).
    pub bytes_filtered: u64,
    /// Time spent in sync calls (segments, directory, superblock).
    pub sync_time: std::time::Duration,
    /// Bytes of all segment files of the store.
    pub disk_bytes: u64,
    /// Bytes of the records (header and body) the store refers to: nodes,
    /// node-table chunks, directory, catalog, key check.
    pub live_bytes: u64,
    /// Live and total bytes of each segment file, by segment.
    pub segments: Vec<SegmentStats>,
    /// What opening the store noticed ([`Forest::warnings`]).
    pub warnings: Vec<String>,
}

impl Stats {
    /// Bytes on disk per live byte (1.0 when nothing is dead; 0.0 for a
    /// store with nothing live).
    pub fn space_amplification(&self) -> f64 {
        if self.live_bytes == 0 {
            0.0
        } else {
            self.disk_bytes as f64 / self.live_bytes as f64
        }
    }
}

impl Forest {
    /// Opens the forest stored in directory `path`, creating it (and the
    /// directory) if missing. An existing store keeps the node size and
    /// filter stack it was created with; `options` must name the same ones
    /// ([`Options::from_store`] reads them).
    ///
    /// # Errors
    /// [`crate::Error::InvalidOptions`] for an option out of range; a store
    /// error if the directory holds something else than a Larix store, was
    /// created with other parameters, cannot be decrypted with the key
    /// given, or is damaged beyond what the fallback superblock covers.
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Forest> {
        options.validate()?;
        let backend = FileBackend::open(path, true).map_err(larix_nodestore::StoreError::from)?;
        Forest::with_backend(Arc::new(backend), options)
    }

    /// Opens the forest stored in directory `path` for reading only: it
    /// writes nothing (no file is created, written, synced or removed), so
    /// a store on read-only media, a snapshot or a backup can be queried.
    /// It takes a shared lock: several readers may open a store at once,
    /// but not beside a writer. Writes, commits and compaction fail with a
    /// read-only error.
    ///
    /// # Errors
    /// As [`Forest::open`]; a store error if there is no store at `path`.
    pub fn open_read_only(path: impl AsRef<Path>, options: Options) -> Result<Forest> {
        options.validate()?;
        let backend =
            FileBackend::open_read_only(path).map_err(larix_nodestore::StoreError::from)?;
        Forest::with_config(Arc::new(backend), options, true)
    }

    /// A forest held in memory only. It runs on the same node store as a
    /// forest on disk (cache, dirty queue, workers, filters), over an
    /// in-memory backend.
    ///
    /// # Errors
    /// [`crate::Error::InvalidOptions`] if an option is out of range.
    pub fn in_memory(options: Options) -> Result<Forest> {
        Forest::with_backend(Arc::new(MemBackend::new()), options)
    }

    /// Opens the forest kept in `backend` (creating it if empty): the files
    /// of [`Forest::open`] on any storage, such as the fault-injecting
    /// [`crate::backend::FaultyBackend`] of the crash tests.
    ///
    /// # Errors
    /// As [`Forest::open`].
    pub fn with_backend(backend: Arc<dyn Backend>, options: Options) -> Result<Forest> {
        Forest::with_config(backend, options, false)
    }

    fn with_config(backend: Arc<dyn Backend>, options: Options, read_only: bool) -> Result<Forest> {
        let limits = options.validate()?;
        let pipeline = Pipeline::new(&options.filters)?;
        let parameters = parameters(limits, &pipeline);
        let config = StoreConfig {
            cache_bytes: options.cache_bytes,
            workers: options.workers,
            durability: options.durability,
            parameters: parameters.clone(),
            max_segment_bytes: options.segment_bytes,
            compaction: options.compaction.then_some(CompactionPolicy {
                max_live_ratio: options.compaction_live_ratio,
                bytes_per_commit: options.compaction_bytes_per_commit,
            }),
            read_only,
        };
        let store = NodeStore::open(backend, pipeline, config)?;
        let inner = larix_btree::Forest::new(store, limits)?;
        Ok(Forest { inner, parameters })
    }

    /// The parameters the store records and checks on every open: its node
    /// size and filter stack (names and settings, never keys), e.g.
    /// `node_size=4096;filters=zstd(level=1),checksum(crc32c)`.
    pub fn describe(&self) -> &str {
        &self.parameters
    }

    /// What opening the store noticed and worked around, one line each: a
    /// damaged newest superblock slot (the store then rolled back to the
    /// commit before it), an unreadable key check blob. Empty for a store
    /// in good order; `larix check` and `larix stats` print them.
    pub fn warnings(&self) -> Vec<String> {
        self.inner.store().warnings().to_vec()
    }

    /// Creates an empty tree called `name`.
    ///
    /// # Errors
    /// [`crate::Error::TreeExists`], [`crate::Error::InvalidTreeName`], or a
    /// store error.
    pub fn create_tree(&self, name: &str) -> Result<Tree> {
        Ok(Tree::new(self.inner.create_tree(name)?))
    }

    /// The tree called `name`, if there is one.
    ///
    /// # Errors
    /// None yet; kept fallible for stores that load the catalog lazily.
    pub fn tree(&self, name: &str) -> Result<Option<Tree>> {
        Ok(self.inner.tree(name).map(Tree::new))
    }

    /// Makes `dst` an O(1) clone of `src`: a snapshot you can also write to.
    ///
    /// # Errors
    /// [`crate::Error::TreeNotFound`] for `src`, [`crate::Error::TreeExists`]
    /// for `dst`, [`crate::Error::InvalidTreeName`], or a store error.
    pub fn clone_tree(&self, src: &str, dst: &str) -> Result<Tree> {
        Ok(Tree::new(self.inner.clone_tree(src, dst)?))
    }

    /// Removes tree `name`, freeing the nodes no other tree shares.
    ///
    /// # Errors
    /// [`crate::Error::TreeNotFound`], or a store error.
    pub fn remove_tree(&self, name: &str) -> Result<()> {
        Ok(self.inner.remove_tree(name)?)
    }

    /// The names of all trees, in order.
    pub fn tree_names(&self) -> Vec<String> {
        self.inner.tree_names()
    }

    /// Makes every change so far atomic and durable.
    ///
    /// # Errors
    /// A store error; the previous commit then stays in force.
    pub fn commit(&self) -> Result<()> {
        Ok(self.inner.commit()?)
    }

    /// Checks every tree's structure and every refcount (fsck).
    ///
    /// # Errors
    /// None yet: problems are listed in the report.
    pub fn check(&self) -> Result<CheckReport> {
        Ok(self.inner.check())
    }

    /// The forest's counters.
    pub fn stats(&self) -> Stats {
        let store = self.inner.store().stats();
        Stats {
            nodes: store.nodes,
            trees: self.inner.tree_count() as u64,
            commits: store.commits,
            cache_hits: store.cache_hits,
            cache_misses: store.cache_misses,
            dirty_hits: store.dirty_hits,
            inflight_hits: store.inflight_hits,
            inflight_waits: store.inflight_waits,
            blobs_written: store.blobs_written,
            bytes_unfiltered: store.bytes_unfiltered,
            bytes_filtered: store.bytes_filtered,
            sync_time: store.sync_time,
            disk_bytes: store.disk_bytes,
            live_bytes: store.live_bytes,
            segments: store.segments,
            warnings: self.warnings(),
        }
    }

    /// Reclaims the space of sparse segments: copies the live blobs of
    /// every segment with dead space (live share below 90%) forward,
    /// as they are, and commits; the segments emptied are removed once that
    /// commit is durable. Like [`Forest::commit`], it makes the current
    /// state of every tree the committed one.
    ///
    /// # Errors
    /// A store error; the previous commit then stays in force.
    pub fn compact(&self) -> Result<()> {
        self.inner.compact(COMPACT_LIVE_RATIO, u64::MAX)?;
        Ok(())
    }
}

/// The parameters a store records and checks on every open: the node size
/// and the filter stack (names and settings, never keys).
pub(crate) fn parameters(limits: Limits, pipeline: &Pipeline) -> String {
    format!(
        "node_size={};filters={}",
        limits.max_node(),
        pipeline.describe()
    )
}
