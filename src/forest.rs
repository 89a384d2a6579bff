//! The forest: open, create and remove trees, commit, check.

use crate::{CheckReport, Options, Result, Snapshot, Tree};
use larix_btree::Limits;
use larix_filters::Pipeline;
use larix_nodestore::{
    Backend, CheckpointPolicy, CompactionPolicy, FileBackend, MemBackend, NodeStore, StoreConfig,
};
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

/// Counters describing a forest: the store's counters, with its number
/// of trees.
pub use larix_nodestore::Stats;

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

    /// Opens the forest stored at `url`, creating it if missing, as
    /// [`Forest::open`] does for a directory:
    /// - `s3://bucket/prefix`: a store in an S3-compatible object store,
    ///   every object under `prefix` (see `docs/design.md`, "Object
    ///   storage"). [`Options::storage_option`] configures the client; the
    ///   `AWS_*` environment variables fill in the rest. Opening fences
    ///   any other writer: its next commit fails.
    /// - `file:///path`: the directory `/path`, as [`Forest::open`].
    ///
    /// # Errors
    /// As [`Forest::open`]; a store error for a URL of another scheme, a
    /// storage option the client refuses, or a store that cannot be
    /// reached.
    pub fn open_url(url: &str, options: Options) -> Result<Forest> {
        options.validate()?;
        let backend = backend_at(url, &options, false)?;
        Forest::with_config(backend, options, false)
    }

    /// [`Forest::open_url`] for reading only, as [`Forest::open_read_only`]:
    /// nothing in the store is written, and no writer is fenced.
    ///
    /// # Errors
    /// As [`Forest::open_url`]; a store error if there is no store at
    /// `url`.
    pub fn open_url_read_only(url: &str, options: Options) -> Result<Forest> {
        options.validate()?;
        let backend = backend_at(url, &options, true)?;
        Forest::with_config(backend, options, true)
    }

    /// Whether a store exists at `url` (see [`Forest::open_url`]), reached
    /// with the storage options of `options`: its superblock does.
    ///
    /// # Errors
    /// A store error for a URL that cannot be used or a store that cannot
    /// be reached.
    pub fn exists_url(url: &str, options: &Options) -> Result<bool> {
        if let Some(path) = url.strip_prefix("file://") {
            if path.starts_with('/') {
                return Ok(Path::new(path).join("superblock").is_file());
            }
        }
        let backend = backend_at(url, options, true)?;
        match backend.len(larix_nodestore::FileId::Superblock) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => {
                let e = larix_nodestore::FormatError::Io {
                    file: url.to_string(),
                    offset: None,
                    source,
                };
                Err(larix_nodestore::StoreError::from(e).into())
            }
        }
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
    /// `FaultyBackend` of the crash tests (in `larix_nodestore::testing`,
    /// behind that crate's `testing` feature).
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
            checkpoints: CheckpointPolicy {
                log_bytes: options.checkpoint_log_bytes,
                interval: options.checkpoint_interval,
            },
            max_node_len: Some(limits.max_node().max(larix_btree::MAX_VALUE_NODE)),
        };
        let store = NodeStore::open(backend, pipeline, config)?;
        let inner = match options.write_buffer_bytes {
            Some(bytes) => larix_btree::Forest::with_write_buffer(store, limits, bytes)?,
            None => larix_btree::Forest::new(store, limits)?,
        };
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
        self.inner.create_tree(name)
    }

    /// The tree called `name`, if there is one.
    ///
    /// # Errors
    /// None yet; kept fallible for stores that load the catalog lazily.
    pub fn tree(&self, name: &str) -> Result<Option<Tree>> {
        Ok(self.inner.tree(name))
    }

    /// Makes `dst` an O(1) clone of `src`: a snapshot you can also write to.
    ///
    /// # Errors
    /// [`crate::Error::TreeNotFound`] for `src`, [`crate::Error::TreeExists`]
    /// for `dst`, [`crate::Error::InvalidTreeName`], or a store error.
    pub fn clone_tree(&self, src: &str, dst: &str) -> Result<Tree> {
        self.inner.clone_tree(src, dst)
    }

    /// Removes tree `name`, freeing the nodes no other tree shares.
    ///
    /// # Errors
    /// [`crate::Error::TreeNotFound`], or a store error.
    pub fn remove_tree(&self, name: &str) -> Result<()> {
        self.inner.remove_tree(name)
    }

    /// The names of all trees, in order.
    pub fn tree_names(&self) -> Vec<String> {
        self.inner.tree_names()
    }

    /// Every tree as it is now, committed or not: a read snapshot, read
    /// beside the writer without blocking it, and unchanged by anything
    /// done later (writes, commits, rollbacks, removals, compaction).
    /// Taken while the writer is inside an operation, it shows the trees
    /// as the last operation left them, without waiting for this one to
    /// end once readers have met the writer (`docs/design.md`,
    /// "Publications"). No
    /// commit stores a trace of it; dropping the last handle (and its
    /// [`crate::View`]s) frees what only it kept: up to 256 nodes on the
    /// dropping thread, more in the store's release thread.
    ///
    /// # Errors
    /// None yet; kept fallible for stores that load the catalog lazily.
    pub fn snapshot(&self) -> Result<Snapshot> {
        self.inner.snapshot()
    }

    /// Returns every tree to the last commit: changes, new trees, clones
    /// and removals since are undone, and the nodes they made are freed.
    /// Snapshots keep showing what they showed.
    ///
    /// # Errors
    /// A store error (nothing is then undone); a read-only forest refuses.
    pub fn rollback(&self) -> Result<()> {
        self.inner.rollback()
    }

    /// Makes every change so far atomic and durable.
    ///
    /// # Errors
    /// A store error; the previous commit then stays in force.
    pub fn commit(&self) -> Result<()> {
        self.inner.commit()
    }

    /// Commits, then writes every tree's nodes to the segments as a
    /// checkpoint and waits for it; the commit log before it is dropped.
    /// Commits start checkpoints in the background on their own (see
    /// [`Options::checkpoint_log_bytes`]); this one is for a caller who
    /// wants a short replay now, say before a backup of the directory.
    ///
    /// # Errors
    /// A store error; the previous checkpoint and the log then stay in
    /// force.
    pub fn checkpoint(&self) -> Result<()> {
        self.inner.checkpoint()
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
        let mut stats = self.inner.store().stats();
        stats.trees = self.inner.tree_count() as u64;
        stats.write_buffer_bytes = self.inner.write_buffer_bytes() as u64;
        stats
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

/// The backend for the store at `url` (see [`Forest::open_url`]).
pub(crate) fn backend_at(
    url: &str,
    options: &Options,
    read_only: bool,
) -> Result<Arc<dyn Backend>> {
    use larix_nodestore::{FormatError, StoreError};
    let bad = |why: &str| {
        crate::Error::from(StoreError::from(FormatError::BadUrl {
            url: url.to_string(),
            why: why.to_string(),
        }))
    };
    if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(bad("a file:// URL names an absolute path, file:///dir"));
        }
        let backend = if read_only {
            FileBackend::open_read_only(path)
        } else {
            FileBackend::open(path, true)
        };
        return Ok(Arc::new(backend.map_err(StoreError::from)?));
    }
    if url.starts_with("s3://") {
        #[cfg(feature = "s3")]
        {
            let tuning = larix_nodestore::ObjectOptions {
                // The blocks of segments read back: a share of the budget.
                cache_bytes: (options.cache_bytes as u64 / 4).clamp(1 << 20, 64 << 20),
                cache_dir: options.object_cache.clone(),
                ..larix_nodestore::ObjectOptions::default()
            };
            let backend = larix_nodestore::ObjectBackend::open_url(
                url,
                &options.storage_options,
                read_only,
                tuning,
            )
            .map_err(StoreError::from)?;
            return Ok(Arc::new(backend));
        }
        #[cfg(not(feature = "s3"))]
        {
            let _ = (options, read_only);
            return Err(bad(
                "this build of Larix has no object storage (feature `s3`)",
            ));
        }
    }
    Err(bad(
        "the URL names no store: use s3://bucket/prefix or file:///dir",
    ))
}
