//! The node store: cache, dirty queue, in-flight map, workers and commit.
//!
//! A [`NodeStore::get`] looks in the cache of decoded nodes, then the dirty
//! queue of recently put nodes, then the in-flight map of nodes on their way
//! to disk, then reads the blob the node table points at. A
//! [`NodeStore::put`] goes into the dirty queue, where a re-put replaces the
//! queued version; nodes pushed out of the queue (and all of them at commit)
//! enter the in-flight map and go to the worker threads, which encode them,
//! run the filter pipeline and append the blob to the current segment.
//!
//! Rules that hold under any interleaving (see `docs/design.md`, S1–S13 and
//! L1–L5, each cited where it is enforced):
//! - an id is in at most one of the cache and the dirty queue, and the cache
//!   never holds an id that is in flight: whatever a `get` finds first is
//!   the newest version;
//! - every in-flight write carries a sequence number; when it lands, it
//!   updates the node table only if its entry is still the newest version
//!   of a live id, so an older write never replaces a newer one and a freed
//!   id never comes back;
//! - the bytes of pending writes are bounded: `put` waits for the workers
//!   when the bound is passed, holding no lock a worker needs;
//! - a failure in a worker or the writer is latched: the store then refuses
//!   writes ([`NodeStore::writable`]) and commits until it is reopened, and
//!   the last commit stays on disk untouched.

use crate::stats::{bump, Striped};
use crate::{
    node_digest, read_blob, Backend, BlobKind, Codec, Damage, Directory, FileId, FormatError,
    Location, NodeId, NodeTable, SegmentId, SegmentWriter, Stats, StoreError, Superblock,
    TableEntry, DEFAULT_MAX_SEGMENT_BYTES, MAC_LEN,
};
use crossbeam_channel::{Receiver, Sender};
use larix_filters::{Context, Pipeline};
use parking_lot::{Condvar, Mutex, RwLock};
use rustc_hash::FxHashMap;
use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

mod cache;
mod checkpoint;
mod compact;
mod inflight;
mod log;
mod pins;
mod queue;
mod recovery;
#[cfg(test)]
mod test_codec;
mod workers;
use cache::Cache;
use checkpoint::Frozen;
pub use compact::{CompactionPolicy, SegmentStats, MIN_COMPACTION_BYTES_PER_COMMIT};
use inflight::{InFlight, Job};
use log::Log;
pub use pins::Pin;
use pins::Pins;
use queue::LruMap;
use recovery::ReplayRecord;

/// The plaintext of the key check blob: a wrong key (or a different filter
/// stack) fails to turn the blob back into it.
const KEY_CHECK: &[u8] = b"larix key check v1";

/// The domain of the superblock slot's MAC ([`Pipeline::mac`]).
const SUPERBLOCK_MAC_DOMAIN: &str = "larix superblock slot";

/// The seal that authenticates superblock slots under `pipeline`'s key (no
/// MAC without encryption).
fn seal(pipeline: &Pipeline) -> impl Fn(&[u8]) -> Option<[u8; MAC_LEN]> + '_ {
    move |bytes| pipeline.mac(SUPERBLOCK_MAC_DOMAIN, bytes)
}

/// Reads the blob of node `id` at `loc`, checked against the digest its
/// table entry records.
///
/// # Errors
/// [`FormatError::Blob`] with [`BlobFault::DigestMismatch`](crate::BlobFault)
/// if the body is not the one the table pins; as [`read_blob`] otherwise.
fn read_node_blob(
    backend: &dyn Backend,
    id: NodeId,
    loc: Location,
    digest: u64,
) -> Result<Vec<u8>, StoreError> {
    let body = read_blob(backend, loc, BlobKind::Node, id.0)?;
    if node_digest(&body) != digest {
        return Err(FormatError::Blob {
            file: backend.name(FileId::Segment(loc.segment)),
            offset: loc.offset,
            kind: BlobKind::Node,
            id: id.0,
            fault: crate::BlobFault::DigestMismatch,
        }
        .into());
    }
    Ok(body)
}

/// The parameters a store records (`node_size=N;filters=...`), read from
/// its newest superblock slot without the key (the slot's MAC is not
/// checked: the text is only compared, never trusted to run anything).
///
/// # Errors
/// [`StoreError::Format`]: no superblock ([`FormatError::NoSuperblock`]),
/// not a Larix store ([`FormatError::NotLarix`]), another version
/// ([`FormatError::UnsupportedVersion`]), both slots damaged
/// ([`FormatError::SuperblockDamaged`]), or an I/O failure
/// ([`FormatError::Io`]).
pub fn read_parameters(backend: &dyn Backend) -> Result<String, StoreError> {
    Ok(crate::read_newest(backend)?.parameters.as_str().to_string())
}

/// The filter context of blobs that are not nodes (the key check and the
/// catalog). Node ids start at 1, so it names no node.
const META_CONTEXT: u64 = 0;

/// A put that finds the dirty queue past its budget evicts down to the
/// budget less this fraction of it (a sixty-fourth), so that the nodes go
/// to the workers a batch at a time (`SegmentWriter::append_all`).
const EVICTION_SLACK: usize = 64;

/// Whether a commit waits for the data to reach stable storage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// A commit syncs before it returns (the segments, then the superblock
    /// slot that points at them): it survives a power loss.
    #[default]
    Immediate,
    /// A commit is atomic and consistent but writes no superblock and syncs
    /// nothing; it becomes durable with the next immediate commit or when
    /// the store is dropped. A crash returns the store to the last durable
    /// commit, never to a mix.
    None,
}

/// How to open a store.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Memory budget of decoded nodes: the cache, the dirty queue and the
    /// in-flight writes together.
    pub cache_bytes: usize,
    /// Worker threads that filter and write nodes (at least 1).
    pub workers: usize,
    /// Whether commits sync.
    pub durability: Durability,
    /// Size past which a new segment file is started.
    pub max_segment_bytes: u64,
    /// The parameters the store is recorded with (node size, filter stack);
    /// opening with different ones is an error.
    pub parameters: String,
    /// Open without writing anything: no store is created, no file
    /// written, synced or removed, and writes and commits are refused with
    /// [`StoreError::ReadOnly`]. The backend should be read-only too.
    pub read_only: bool,
    /// Compaction done by each commit, if any.
    pub compaction: Option<CompactionPolicy>,
    /// When a checkpoint is due.
    pub checkpoints: CheckpointPolicy,
    /// The most bytes a node's blob may unfilter to (the node size): a
    /// blob claiming more is refused before anything that large is
    /// allocated. `None`: the pipeline's own bound.
    pub max_node_len: Option<usize>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            cache_bytes: 64 << 20,
            workers: 1,
            durability: Durability::Immediate,
            max_segment_bytes: DEFAULT_MAX_SEGMENT_BYTES,
            parameters: String::new(),
            read_only: false,
            compaction: None,
            checkpoints: CheckpointPolicy::default(),
            max_node_len: None,
        }
    }
}

/// When a checkpoint is due: after this many bytes of log, or this long
/// after the last one if anything was logged since.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// Log bytes since the last checkpoint that make one due.
    pub log_bytes: u64,
    /// Time since the last checkpoint that makes one due.
    pub interval: std::time::Duration,
}

impl Default for CheckpointPolicy {
    /// 64 MiB or 30 s.
    fn default() -> Self {
        CheckpointPolicy {
            log_bytes: 64 << 20,
            interval: std::time::Duration::from_secs(30),
        }
    }
}

/// What the last checkpoint left on disk.
struct Committed {
    /// The last superblock written (durable once synced).
    superblock: Superblock,
    directory: Directory,
    catalog: Vec<u8>,
}

/// Everything behind the store's one lock.
struct State<N> {
    table: NodeTable,
    inflight: InFlight<N>,
    failure: Option<Arc<StoreError>>,
    committed: Committed,
    /// Where the key check blob lies now (compaction may move it).
    key_check: Option<Location>,
    /// Node bytes written (before filtering) when the last checkpoint
    /// ended.
    written_at_checkpoint: u64,
    /// Node bytes written after filtering when the last checkpoint ended.
    filtered_at_checkpoint: u64,
    /// [`Counters::bytes_evicted`] when the running checkpoint (or the
    /// last one) was frozen.
    evicted_at_freeze: u64,
    /// The state a running checkpoint froze, until its writes have landed.
    frozen: Option<Frozen<N>>,
    /// Bytes of the frozen nodes still in flight: `put` does not wait for
    /// them (they were in memory anyway).
    frozen_bytes: usize,
    /// Whether a checkpoint is running.
    checkpoint_running: bool,
    /// Segments compaction emptied: removed once a durable superblock no
    /// longer refers to them.
    obsolete: BTreeSet<SegmentId>,
    /// Retired nodes (P2), each with the number of the first pin taken
    /// after it was retired.
    retired: FxHashMap<NodeId, u64>,
    /// The same, in the order they were retired.
    retire_queue: VecDeque<(u64, NodeId)>,
}

impl<N: Codec> State<N> {
    /// The state of a store just opened on `table` and the checkpoint it
    /// recovered: nothing dirty, in flight or running.
    fn new(table: NodeTable, committed: Committed) -> Self {
        State {
            table,
            inflight: InFlight::new(),
            failure: None,
            key_check: committed.superblock.key_check,
            written_at_checkpoint: 0,
            filtered_at_checkpoint: 0,
            evicted_at_freeze: 0,
            frozen: None,
            frozen_bytes: 0,
            checkpoint_running: false,
            obsolete: BTreeSet::new(),
            retired: FxHashMap::default(),
            retire_queue: VecDeque::new(),
            committed,
        }
    }

    fn failed(&self) -> Result<(), StoreError> {
        match &self.failure {
            Some(f) => Err(StoreError::Failed(f.clone())),
            None => Ok(()),
        }
    }
}

/// Counters, updated without the lock.
#[derive(Default)]
struct Counters {
    cache_hits: Striped,
    kept_hits: Striped,
    cache_misses: AtomicU64,
    dirty_hits: Striped,
    inflight_hits: AtomicU64,
    inflight_waits: AtomicU64,
    blobs_written: AtomicU64,
    bytes_unfiltered: AtomicU64,
    bytes_filtered: AtomicU64,
    /// Record bytes of the node writes that landed for no checkpoint (a
    /// full queue's evictions).
    bytes_evicted: AtomicU64,
    sync_nanos: AtomicU64,
    commits: AtomicU64,
    log_records: AtomicU64,
    log_bytes: AtomicU64,
    log_syncs: AtomicU64,
    checkpoints: AtomicU64,
}

/// Memory budgets derived from the configured cache size. The cache and
/// the dirty queue share `resident` bytes: clean nodes are evicted first,
/// and the dirty queue may take up to `dirty` of it, so that a large
/// uncommitted change merges its re-puts in memory rather than writing each
/// version. In-flight writes have a budget of their own.
#[derive(Clone, Copy)]
struct Budgets {
    /// The configured `cache_bytes`, of which the rest are shares.
    total: usize,
    resident: usize,
    dirty: usize,
    inflight: usize,
}

impl Budgets {
    fn new(cache_bytes: usize) -> Self {
        Budgets {
            total: cache_bytes,
            resident: cache_bytes / 8 * 7,
            dirty: cache_bytes / 8 * 5,
            inflight: cache_bytes / 8,
        }
    }
}

impl Budgets {
    /// The bytes the clean cache may hold beside `dirty` bytes of dirty
    /// nodes.
    fn cache_room(&self, dirty: usize) -> usize {
        self.resident.saturating_sub(dirty)
    }
}

/// The part of the store the workers share.
struct Shared<N> {
    backend: Arc<dyn Backend>,
    pipeline: Pipeline,
    durability: Durability,
    budgets: Budgets,
    policy: Option<CompactionPolicy>,
    /// Whether the store was opened read-only.
    read_only: bool,
    /// The bound on a node's unfiltered bytes.
    max_node_len: Option<usize>,
    /// What the open noticed and worked around.
    warnings: Vec<String>,
    /// The commit log.
    log: Log,
    /// When checkpoints are due.
    checkpoints: CheckpointPolicy,
    /// Wakes the checkpoint thread; `None` once the store is closing.
    kicks: Mutex<Option<Sender<()>>>,
    /// Wakes the release thread (`store/pins.rs`); `None` once the store
    /// is closing, and in a read-only store, which has no such thread.
    releases: Mutex<Option<Sender<()>>>,
    /// The log records recovery found to replay, until taken.
    replay: Mutex<Vec<ReplayRecord>>,
    /// The live read pins.
    pins: Pins,
    cache: Cache<N>,
    /// The dirty queue: changed only with the state lock held (lock order:
    /// state, then dirty), read under its own lock, shared, so that readers
    /// of nodes not yet written do not take the state lock.
    dirty: RwLock<LruMap<N>>,
    state: Mutex<State<N>>,
    /// Signalled whenever an in-flight write lands or fails.
    settled: Condvar,
    writer: Mutex<SegmentWriter>,
    next_id: AtomicU64,
    closing: AtomicBool,
    /// Set while the caller replays the log: a read-only store then takes
    /// the replayed changes, in memory only.
    replaying: AtomicBool,
    counters: Counters,
}

/// Keeps nodes by id with their reference counts, writes them through the
/// filter pipeline in the background, and commits them with the forest
/// catalog atomically. See the module documentation.
///
/// All methods take `&self`; the store is `Send + Sync`. `get`, `put`,
/// `free` and the refcount calls may run concurrently from many threads
/// (the stress test does, on shared ids); `commit` and `compact` need the
/// store to themselves, and `release` (an in-place edit) needs the caller
/// to be the only writer and reader of that id. The B-tree guarantees both
/// with its forest lock.
pub struct NodeStore<N: Codec> {
    shared: Arc<Shared<N>>,
    /// Hands writes to the workers (`store/workers.rs`); the checkpoint
    /// thread has a sender of its own.
    jobs: Option<Sender<Vec<Job<N>>>>,
    workers: Vec<JoinHandle<()>>,
    checkpointer: Option<JoinHandle<()>>,
    releaser: Option<JoinHandle<()>>,
}

impl<N: Codec> Default for NodeStore<N> {
    fn default() -> Self {
        Self::in_memory()
    }
}

impl<N: Codec> Shared<N> {
    /// The shared part of a store opened on `backend` at the state
    /// recovery found, before any thread runs.
    fn new(
        backend: Arc<dyn Backend>,
        pipeline: Pipeline,
        config: &StoreConfig,
        recovered: recovery::Recovered,
    ) -> Self {
        let superblock = recovered.superblock;
        let writer = SegmentWriter::new(superblock.next_segment, 0, config.max_segment_bytes);
        Shared {
            backend,
            pipeline,
            durability: config.durability,
            budgets: Budgets::new(config.cache_bytes),
            policy: config.compaction,
            cache: Cache::new(),
            dirty: RwLock::new(LruMap::new()),
            next_id: AtomicU64::new(superblock.next_node.0),
            read_only: config.read_only,
            max_node_len: config.max_node_len,
            warnings: recovered.warnings,
            log: Log::new(recovered.log, superblock.log_salt, recovered.replay.clone()),
            checkpoints: config.checkpoints,
            kicks: Mutex::new(None),
            releases: Mutex::new(None),
            replay: Mutex::new(recovered.replay),
            pins: Pins::default(),
            state: Mutex::new(State::new(
                recovered.table,
                Committed {
                    superblock,
                    directory: recovered.directory,
                    catalog: recovered.catalog,
                },
            )),
            settled: Condvar::new(),
            writer: Mutex::new(writer),
            closing: AtomicBool::new(false),
            replaying: AtomicBool::new(false),
            counters: Counters::default(),
        }
    }
}

/// Starts `count` worker threads on `shared`, taking jobs from `jobs`.
///
/// # Errors
/// [`StoreError::Io`] if a thread cannot be spawned.
fn spawn_workers<N: Codec>(
    shared: &Arc<Shared<N>>,
    jobs: &Receiver<Vec<Job<N>>>,
    count: usize,
) -> Result<Vec<JoinHandle<()>>, StoreError> {
    (0..count)
        .map(|i| {
            let shared = shared.clone();
            let rx = jobs.clone();
            std::thread::Builder::new()
                .name(format!("larix-worker-{i}"))
                .spawn(move || shared.work(rx))
                .map_err(|e| StoreError::Io {
                    file: "worker thread".into(),
                    source: e,
                })
        })
        .collect()
}

/// Starts the store's `name` thread, running `run` on `shared` until the
/// sender of its wakes, put in `waker` (a field of `shared`), is dropped;
/// a wake sent while one is pending is dropped (bounded to one).
///
/// # Errors
/// [`StoreError::Io`] if the thread cannot be spawned.
fn spawn_woken<N: Codec>(
    shared: &Arc<Shared<N>>,
    name: &str,
    waker: &Mutex<Option<Sender<()>>>,
    run: impl FnOnce(&Shared<N>, Receiver<()>) + Send + 'static,
) -> Result<JoinHandle<()>, StoreError> {
    let (wake, wakes) = crossbeam_channel::bounded(1);
    *waker.lock() = Some(wake);
    let shared = shared.clone();
    std::thread::Builder::new()
        .name(format!("larix-{name}"))
        .spawn(move || run(&shared, wakes))
        .map_err(|e| StoreError::Io {
            file: format!("{name} thread"),
            source: e,
        })
}

impl<N: Codec> NodeStore<N> {
    /// An empty store on a [`MemBackend`](crate::MemBackend), without
    /// filters, with one worker and a 64 MiB cache.
    pub fn in_memory() -> Self {
        let pipeline = Pipeline::new(&[]).expect("an empty pipeline is valid");
        Self::open(
            Arc::new(crate::MemBackend::new()),
            pipeline,
            StoreConfig::default(),
        )
        .expect("a new memory backend cannot fail")
    }

    /// Opens the store on `backend`, creating it if there is none (unless
    /// `config.read_only`); see `store/recovery.rs` for the steps.
    ///
    /// # Errors
    /// - [`StoreError::Format`] if there is no store and the open is
    ///   read-only ([`FormatError::NoSuperblock`]), the superblock was lost
    ///   while segments hold data ([`FormatError::SuperblockLost`]), the
    ///   files are not a Larix store, are of another version, are damaged
    ///   beyond the fallback slot, or the node table disagrees with the
    ///   superblock ([`FormatError::TableInconsistent`]);
    /// - [`StoreError::ParametersMismatch`] if the store was created with
    ///   other parameters (filter stack, node size);
    /// - [`StoreError::WrongKey`] if the key check blob does not decode
    ///   (a wrong encryption key);
    /// - [`StoreError::MetadataDamaged`] if the catalog does not decode.
    pub fn open(
        backend: Arc<dyn Backend>,
        pipeline: Pipeline,
        config: StoreConfig,
    ) -> Result<Self, StoreError> {
        let recovered = recovery::recover(&*backend, &pipeline, &config)?;
        let shared = Arc::new(Shared::new(backend, pipeline, &config, recovered));
        let count = config.workers.max(1);
        let (jobs, queue) = crossbeam_channel::bounded(count * 4);
        let workers = spawn_workers(&shared, &queue, count)?;
        let (checkpointer, releaser) = if config.read_only {
            (None, None)
        } else {
            (
                // The checkpoint thread, and the release thread
                // (`store/pins.rs`).
                Some({
                    let jobs = jobs.clone();
                    spawn_woken(&shared, "checkpoint", &shared.kicks, move |s, kicks| {
                        s.checkpointer(kicks, &jobs)
                    })?
                }),
                Some(spawn_woken(
                    &shared,
                    "release",
                    &shared.releases,
                    Shared::releaser,
                )?),
            )
        };
        Ok(NodeStore {
            shared,
            jobs: Some(jobs),
            workers,
            checkpointer,
            releaser,
        })
    }

    /// Appends a commit log record holding `payload` (the caller's
    /// operations since the last record); `commit` ends a committed group,
    /// otherwise the record spills part of a change not yet committed. The
    /// record is durable once [`NodeStore::sync_log`] of its number
    /// returns. Call with the writer's lock held, so records follow the
    /// operations' order.
    ///
    /// # Errors
    /// A latched failure ([`StoreError::Failed`]), or a failure of the
    /// append, which is latched in turn.
    pub fn log(&self, payload: &[u8], commit: bool) -> Result<u64, StoreError> {
        self.writable()?;
        let lsn = self
            .shared
            .append_log(payload, commit)
            .map_err(|e| self.shared.fail(e))?;
        if commit {
            bump(&self.shared.counters.commits, 1);
        }
        Ok(lsn)
    }

    /// Returns once every log record up to `lsn` is durable, sharing one
    /// sync with concurrent callers (at once with [`Durability::None`]:
    /// the records become durable with a later durable commit or when the
    /// store is dropped). Call without the writer's lock, so
    /// that readers and writers go on meanwhile.
    ///
    /// # Errors
    /// A failure of the sync, which is latched.
    pub fn sync_log(&self, lsn: u64) -> Result<(), StoreError> {
        if self.shared.durability == Durability::None {
            return Ok(());
        }
        self.shared.sync_log(lsn).map_err(|e| self.shared.fail(e))
    }

    /// The number of the last log record appended (0 if none yet).
    pub fn last_lsn(&self) -> u64 {
        self.shared.log.next_lsn() - 1
    }

    /// Commits the current state by a checkpoint instead of a log record
    /// (a change too large for the log to be worth writing twice, L6):
    /// abandons the open group of records that spilled part of it (L2),
    /// then checkpoints and waits. The caller holds the writer's lock, as
    /// for [`NodeStore::checkpoint`].
    ///
    /// # Errors
    /// As for [`NodeStore::checkpoint`]; the previous commit then stays in
    /// force.
    pub fn commit_by_checkpoint(&self, catalog: &[u8]) -> Result<(), StoreError> {
        self.writable()?;
        self.shared.log.abort_group();
        self.checkpoint(catalog, true)?;
        bump(&self.shared.counters.commits, 1);
        Ok(())
    }

    /// Bytes of the dirty nodes in memory: what a checkpoint now would
    /// hand to the workers (nodes evicted since the last one are written
    /// already).
    pub fn dirty_bytes(&self) -> u64 {
        self.shared.dirty.read().bytes as u64
    }

    /// Whether a group of log records is open: part of a change was
    /// spilled to the log and not committed yet.
    pub fn log_group_open(&self) -> bool {
        self.shared.log.group_open()
    }

    /// The payloads of the committed log records since the last checkpoint
    /// began (or, before the first, since the checkpoint the store opened
    /// from), in order: replayed on that checkpoint's state, they give the
    /// state of the last commit. Each is read and unfiltered as it is
    /// reached.
    pub fn replay_since_checkpoint(&self) -> Replay<N> {
        Replay {
            shared: self.shared.clone(),
            records: self.shared.log.committed_since_base().into_iter(),
        }
    }

    /// Latches `cause`: the store refuses writes and commits until it is
    /// reopened (for a failure the caller cannot undo, such as a rollback
    /// that could not replay the log).
    pub fn fail(&self, cause: StoreError) -> StoreError {
        self.shared.fail(cause)
    }

    /// Abandons the open group of log records, if any: a change spilled
    /// and then rolled back. Its records are never replayed (L2).
    pub fn abort_log_group(&self) {
        self.shared.log.abort_group();
    }

    /// Lets the caller replay the log (see [`NodeStore::replay`]) until the
    /// guard drops: a read-only store then accepts the replayed changes,
    /// in memory only.
    pub fn begin_replay(&self) -> ReplayGuard<'_, N> {
        self.shared.replaying.store(true, Ordering::Relaxed);
        ReplayGuard { store: self }
    }

    /// Bytes logged since the last checkpoint began.
    pub fn log_since_checkpoint(&self) -> u64 {
        self.shared.log.since_checkpoint().0
    }

    /// The payloads of the committed log records after the checkpoint the
    /// store opened from, in order, for the caller to replay; empty after
    /// the first call. Each is read and unfiltered as it is reached.
    pub fn replay(&self) -> Replay<N> {
        let records = std::mem::take(&mut *self.shared.replay.lock());
        Replay {
            shared: self.shared.clone(),
            records: records.into_iter(),
        }
    }

    /// A fresh id that no node has ever had (invariant S1).
    pub fn allocate(&self) -> NodeId {
        NodeId(self.shared.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Fails if an earlier background failure makes the store refuse
    /// writes. Callers check this before a group of writes, so that a group
    /// is applied whole or not at all.
    ///
    /// # Errors
    /// [`StoreError::Failed`] with the latched failure.
    pub fn writable(&self) -> Result<(), StoreError> {
        if self.shared.read_only && !self.shared.replaying.load(Ordering::Relaxed) {
            return Err(StoreError::ReadOnly);
        }
        self.shared.state.lock().failed()
    }

    /// What the open noticed and worked around, one line each: a damaged
    /// superblock slot passed over (the commit it held is lost), an
    /// unreadable key check blob. Empty for a store in good order.
    pub fn warnings(&self) -> &[String] {
        &self.shared.warnings
    }

    /// The node stored under `id`.
    ///
    /// # Errors
    /// [`StoreError::NodeMissing`] if `id` is not live; a store error if its
    /// blob cannot be read or does not decode.
    pub fn get(&self, id: NodeId) -> Result<Arc<N>, StoreError> {
        self.get_in(id, true)
    }

    /// Whether [`NodeStore::prefetch`] does anything (see
    /// [`Backend::reads_ahead`]).
    pub fn reads_ahead(&self) -> bool {
        self.shared.backend.reads_ahead()
    }

    /// A hint that the nodes `ids` will be read soon (a scan's next
    /// leaves): on a backend that [`Backend::reads_ahead`], the blobs of
    /// those not in memory start on their way. Does nothing elsewhere.
    pub fn prefetch(&self, ids: &[NodeId]) {
        if !self.reads_ahead() {
            return;
        }
        let mut wanted = Vec::with_capacity(ids.len());
        {
            let st = self.shared.state.lock();
            for &id in ids {
                if self.shared.cache.contains(id) {
                    continue;
                }
                if let Some(loc) = st.table.get(id).and_then(|e| e.loc) {
                    wanted.push(loc);
                }
            }
        }
        for loc in wanted {
            self.shared.backend.prefetch(
                FileId::Segment(loc.segment),
                loc.offset,
                loc.record_len(),
            );
        }
    }

    /// [`NodeStore::get`] of a node read once and not kept: one read from
    /// disk does not enter the cache (the chunks of a large value, which
    /// would push out the nodes every operation needs).
    ///
    /// # Errors
    /// As [`NodeStore::get`].
    pub fn get_transient(&self, id: NodeId) -> Result<Arc<N>, StoreError> {
        self.get_in(id, false)
    }

    /// The node of `id` if the dirty queue holds it, counted. This and
    /// [`NodeStore::cache_hit`] are inlined: as closures, not inlined,
    /// they cost about 30 instructions a read (callgrind).
    #[inline(always)]
    fn dirty_hit(&self, id: NodeId) -> Option<Arc<N>> {
        let n = self.shared.dirty.read().peek(id)?;
        self.shared.counters.dirty_hits.bump(1);
        Lean::hit(true);
        Some(n)
    }

    /// The node of `id` if the clean cache holds it, counted.
    #[inline(always)]
    fn cache_hit(&self, id: NodeId) -> Option<Arc<N>> {
        let n = self.shared.cache.get(id)?;
        self.shared.counters.cache_hits.bump(1);
        Lean::hit(false);
        Some(n)
    }

    /// [`NodeStore::get`], keeping a node read from disk in the cache if
    /// `keep`.
    fn get_in(&self, id: NodeId, keep: bool) -> Result<Arc<N>, StoreError> {
        let c = &self.shared.counters;
        // The cache never holds a freed, dirty or in-flight id (S4), so a
        // hit needs neither the table nor the state lock; nor does the
        // dirty queue (the newest version, if there). An id is in at most
        // one of them, so the order of the two probes is free: the one
        // this thread's recent reads hit goes first.
        let hit = if Lean::dirty_first() {
            self.dirty_hit(id).or_else(|| self.cache_hit(id))
        } else {
            self.cache_hit(id).or_else(|| self.dirty_hit(id))
        };
        if let Some(n) = hit {
            return Ok(n);
        }
        let (node, loc, st) = loop {
            let entry = {
                let st = self.shared.state.lock();
                let Some(entry) = st.table.get(id) else {
                    return Err(StoreError::NodeMissing { id });
                };
                if let Some(n) = self.shared.dirty.read().peek(id) {
                    c.dirty_hits.bump(1);
                    return Ok(n);
                }
                if let Some(n) = st.inflight.get(id) {
                    bump(&c.inflight_hits, 1);
                    return Ok(n);
                }
                entry
            };
            let Some(loc) = entry.loc else {
                return Err(StoreError::Corrupt {
                    id,
                    cause: Damage::NoLocation,
                });
            };
            bump(&c.cache_misses, 1);
            let read = self.shared.read_node(id, loc, entry.digest);
            let st = self.shared.state.lock();
            match read {
                Ok(node) => break (Arc::new(node), loc, st),
                // A reader that holds no writer's lock (a snapshot) may race
                // compaction: the node moved and its old segment went. Read
                // it where it is now.
                Err(_) if st.table.get(id).is_some_and(|e| e.loc != Some(loc)) => continue,
                Err(e) => return Err(e),
            }
        };
        if !keep {
            return Ok(node);
        }
        let dirty = self.shared.dirty.read();
        let current = st.table.get(id).and_then(|e| e.loc) == Some(loc)
            && !dirty.has_entry(id)
            && !st.inflight.contains(id);
        let dirty_bytes = dirty.bytes;
        drop(dirty);
        if current {
            self.shared.cache.insert(id, node.clone());
            let room = self.shared.budgets.cache_room(dirty_bytes);
            drop(st);
            self.shared.cache.trim(room);
        }
        Ok(node)
    }

    /// The node as its blob on disk holds it, read and decoded afresh
    /// (bypassing the cache), or the pending version if it has not been
    /// written since it last changed. Used by the structural check.
    ///
    /// # Errors
    /// As [`NodeStore::get`].
    pub fn get_uncached(&self, id: NodeId) -> Result<Arc<N>, StoreError> {
        let loc = {
            let st = self.shared.state.lock();
            let Some(entry) = st.table.get(id) else {
                return Err(StoreError::NodeMissing { id });
            };
            if let Some(n) = self.shared.dirty.read().peek(id) {
                return Ok(n);
            }
            if let Some(n) = st.inflight.get(id) {
                return Ok(n);
            }
            entry
        };
        match loc.loc {
            Some(at) => Ok(Arc::new(self.shared.read_node(id, at, loc.digest)?)),
            None => Err(StoreError::Corrupt {
                id,
                cause: Damage::NoLocation,
            }),
        }
    }

    /// Stores `node` under `id`, replacing any earlier version. The node
    /// reaches disk in the background; `put` may wait for the workers when
    /// too many writes are pending.
    ///
    /// # Errors
    /// None at present: a background failure is latched and reported by
    /// [`NodeStore::writable`], [`NodeStore::log`] and
    /// [`NodeStore::checkpoint`]. Kept fallible for
    /// stores that report it here.
    pub fn put(&self, id: NodeId, node: Arc<N>) -> Result<(), StoreError> {
        self.put_all([(id, node)])
    }

    /// [`NodeStore::put`] of every node of `nodes`, under one lock: how a
    /// tree operation hands back the nodes it changed.
    ///
    /// # Errors
    /// As [`NodeStore::put`].
    pub fn put_all(
        &self,
        nodes: impl IntoIterator<Item = (NodeId, Arc<N>)>,
    ) -> Result<(), StoreError> {
        let jobs = {
            let mut st = self.shared.state.lock();
            let mut dirty = self.shared.dirty.write();
            for (id, node) in nodes {
                if st.table.get(id).is_none() {
                    st.table.set(
                        id,
                        TableEntry {
                            loc: None,
                            refcount: 0,
                            digest: 0,
                        },
                    );
                }
                // An id the dirty queue has an entry for (lent out for an
                // edit, or dirty) is not in the clean cache (S4).
                if !dirty.insert(id, node) {
                    self.shared.cache.remove(id);
                }
            }
            let mut jobs = Vec::new();
            // A read-only store writes nothing: replayed changes stay in
            // memory.
            let budget = if self.shared.read_only {
                usize::MAX
            } else {
                self.shared.budgets.dirty
            };
            // Past the budget, down to a little under it: the workers
            // then write a batch of nodes at a time, not one per put.
            if dirty.bytes > budget {
                let low = budget - budget / EVICTION_SLACK;
                while let Some((id, node)) = dirty.pop_over(low) {
                    jobs.push(st.inflight.launch(id, node));
                }
            }
            let room = self.shared.budgets.cache_room(dirty.bytes);
            drop(dirty);
            drop(st);
            self.shared.cache.trim(room);
            jobs
        };
        if jobs.is_empty() {
            return Ok(());
        }
        workers::send(self.jobs.as_ref().expect("workers run until drop"), jobs);
        let mut st = self.shared.state.lock();
        let over = |st: &State<N>| {
            st.inflight.bytes() > self.shared.budgets.inflight + st.frozen_bytes
                && st.failure.is_none()
        };
        if over(&st) {
            bump(&self.shared.counters.inflight_waits, 1);
            while over(&st) {
                self.shared.settled.wait(&mut st);
            }
        }
        Ok(())
    }

    /// Drops the store's own reference to each node of `ids` (from the
    /// cache or the dirty queue), under one lock, while a caller edits them
    /// in place; the caller puts them back with [`NodeStore::put_all`].
    /// Until then a `get` of one reads its last written blob, so the caller
    /// must hold the writer's lock.
    pub fn release(&self, ids: impl IntoIterator<Item = NodeId>) {
        let _st = self.shared.state.lock();
        let mut dirty = self.shared.dirty.write();
        for id in ids {
            // The cache never holds an id the dirty queue has (S4).
            if dirty.take(id).is_none() {
                self.shared.cache.remove(id);
            }
        }
    }

    /// Drops the clean cache's copy of `id`, if it has one, for a writer
    /// about to move the node's version to another id (the node is then
    /// freed or retired, which drops the copy too), unless a reader's pin
    /// may still ask for it (see `pins.rs`): the writer's handle may then
    /// be the only one left, so the edit that follows need not copy the
    /// node. A dirty node keeps its place in the dirty queue (and so its
    /// version: the edit copies it).
    pub fn uncache_moved(&self, id: NodeId) {
        if self.shared.pins.may_read(id) {
            return;
        }
        let _st = self.shared.state.lock();
        self.shared.cache.remove(id);
    }

    /// Removes `id`; later gets fail at once (invariant S2), and a write of
    /// it still in flight is ignored when it lands. A node a live pin may
    /// reach is retired instead (P2): it stays readable until the pins
    /// taken before now are dropped, but is no longer live.
    ///
    /// # Errors
    /// [`StoreError::NodeMissing`] if `id` is not live.
    pub fn free(&self, id: NodeId) -> Result<(), StoreError> {
        let mut st = self.shared.state.lock();
        let Some(entry) = st.table.get(id).filter(|_| !st.retired.contains_key(&id)) else {
            return Err(StoreError::NodeMissing { id });
        };
        if self.shared.retire(&mut st, id, entry) {
            return Ok(());
        }
        st.table.remove(id);
        self.shared.cache.remove(id);
        self.shared.dirty.write().remove(id);
        st.inflight.forget(id);
        Ok(())
    }

    /// The node stored under `id` and its reference count, read under one
    /// lock where [`NodeStore::get`] and [`NodeStore::refcount`] take
    /// two or three.
    ///
    /// # Errors
    /// As [`NodeStore::get`].
    pub fn get_counted(&self, id: NodeId) -> Result<(Arc<N>, u32), StoreError> {
        let refcount = {
            let st = self.shared.state.lock();
            let Some(entry) = st.table.get(id) else {
                return Err(StoreError::NodeMissing { id });
            };
            // A writer's nodes are mostly dirty: found under this lock.
            if let Some(n) = self.shared.dirty.read().peek(id) {
                self.shared.counters.dirty_hits.bump(1);
                return Ok((n, entry.refcount));
            }
            entry.refcount
        };
        Ok((self.get(id)?, refcount))
    }

    /// The reference count recorded for `id`.
    ///
    /// # Errors
    /// [`StoreError::NodeMissing`] if `id` is not live.
    pub fn refcount(&self, id: NodeId) -> Result<u32, StoreError> {
        self.shared
            .state
            .lock()
            .table
            .get(id)
            .map(|e| e.refcount)
            .ok_or(StoreError::NodeMissing { id })
    }

    /// Records `refcount` for `id`, creating its row if needed; a retired
    /// node given a count is live again.
    ///
    /// # Errors
    /// None at present (see [`NodeStore::put`]).
    pub fn set_refcount(&self, id: NodeId, refcount: u32) -> Result<(), StoreError> {
        self.set_refcounts([(id, refcount)])
    }

    /// [`NodeStore::set_refcount`] of every pair of `counts`, under one
    /// lock.
    ///
    /// # Errors
    /// As [`NodeStore::set_refcount`].
    pub fn set_refcounts(
        &self,
        counts: impl IntoIterator<Item = (NodeId, u32)>,
    ) -> Result<(), StoreError> {
        let mut st = self.shared.state.lock();
        for (id, refcount) in counts {
            if refcount > 0 && !st.retired.is_empty() {
                // Revived (P2): live again, so no release frees it.
                st.retired.remove(&id);
            }
            let entry = st.table.get(id);
            st.table.set(
                id,
                TableEntry {
                    loc: entry.and_then(|e| e.loc),
                    refcount,
                    digest: entry.map_or(0, |e| e.digest),
                },
            );
        }
        Ok(())
    }

    /// The ids of all live nodes, in ascending order.
    pub fn node_ids(&self) -> Vec<NodeId> {
        let st = self.shared.state.lock();
        let live = |id: &NodeId| !st.retired.contains_key(id);
        st.table.ids().filter(live).collect()
    }

    /// The number of retired nodes (P2): kept for live pins, and those
    /// the release thread has yet to free ([`NodeStore::stats`] frees
    /// them first).
    pub fn retired(&self) -> u64 {
        self.shared.state.lock().retired.len() as u64
    }

    /// The catalog bytes of the last commit (empty for a new store).
    pub fn committed_catalog(&self) -> Vec<u8> {
        self.shared.state.lock().committed.catalog.clone()
    }

    /// Counts `n` node reads a caller served from nodes it keeps itself
    /// (a view's), so that [`Stats::node_reads`] counts every read.
    pub fn count_kept_reads(&self, n: u64) {
        self.shared.counters.kept_hits.bump(n);
    }

    /// How many threads one read of many nodes (a large value's chunks)
    /// may decode them on at once: as many as the store has workers where
    /// decoding rewrites the bytes ([`Pipeline::transforms`]: decryption,
    /// decompression), else one (without filters, two threads made no
    /// measurable difference to reading large values back).
    pub fn read_threads(&self) -> usize {
        if self.shared.pipeline.transforms() {
            self.workers.len().max(1)
        } else {
            1
        }
    }

    /// The memory budget of decoded nodes the store was configured with
    /// ([`StoreConfig::cache_bytes`]), for callers that size their own
    /// memos by it.
    pub fn cache_bytes(&self) -> usize {
        self.shared.budgets.total
    }

    /// The store's counters.
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        // First, as it frees what pins dropped before this call let go
        // (`live_now`), whether or not the release thread got to it yet:
        // the counts below report it freed.
        let segments = self.segment_usage().unwrap_or_default();
        let (nodes, retired_nodes, inflight_bytes) = {
            let st = self.shared.state.lock();
            let retired = st.retired.len() as u64;
            (st.table.len() - retired, retired, st.inflight.bytes())
        };
        let disk_bytes = segments.iter().map(|u| u.total_bytes).sum();
        let live_bytes = segments.iter().map(|u| u.live_bytes).sum();
        Stats {
            nodes,
            commits: get(&c.commits),
            cache_hits: c.cache_hits.get(),
            kept_hits: c.kept_hits.get(),
            cache_misses: get(&c.cache_misses),
            dirty_hits: c.dirty_hits.get(),
            inflight_hits: get(&c.inflight_hits),
            inflight_waits: get(&c.inflight_waits),
            blobs_written: get(&c.blobs_written),
            bytes_unfiltered: get(&c.bytes_unfiltered),
            bytes_filtered: get(&c.bytes_filtered),
            sync_time: std::time::Duration::from_nanos(get(&c.sync_nanos)),
            log_records: get(&c.log_records),
            log_bytes: get(&c.log_bytes),
            log_syncs: get(&c.log_syncs),
            checkpoints: get(&c.checkpoints),
            log_since_checkpoint: self.shared.log.since_checkpoint().0,
            cached_bytes: self.shared.cache.bytes() as u64,
            dirty_bytes: self.shared.dirty.read().bytes as u64,
            inflight_bytes: inflight_bytes as u64,
            disk_bytes,
            live_bytes,
            segments,
            trees: 0,
            write_buffer_bytes: 0,
            retired_nodes,
            pins: self.shared.pins.live() as u64,
            warnings: self.shared.warnings.clone(),
        }
    }
}

impl<N: Codec> Drop for NodeStore<N> {
    /// Lets a running checkpoint finish, makes every log record durable
    /// (commits made with [`Durability::None`] included), then stops the
    /// workers (pending writes of uncommitted nodes are dropped) and the
    /// checkpoint thread.
    fn drop(&mut self) {
        let _ = self.wait_checkpoint();
        if !self.shared.read_only && self.shared.state.lock().failure.is_none() {
            // Best effort: the last durable commit stays in force if it fails.
            let _ = self.shared.sync_log(self.last_lsn());
        }
        self.shared.closing.store(true, Ordering::Relaxed);
        // The checkpoint thread first: it holds a sender of the workers'.
        drop(self.shared.kicks.lock().take());
        if let Some(c) = self.checkpointer.take() {
            let _ = c.join();
        }
        drop(self.jobs.take());
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        drop(self.shared.releases.lock().take());
        if let Some(r) = self.releaser.take() {
            let _ = r.join();
        }
    }
}

/// Ends a replay when dropped (see [`NodeStore::begin_replay`]).
pub struct ReplayGuard<'a, N: Codec> {
    store: &'a NodeStore<N>,
}

impl<N: Codec> Drop for ReplayGuard<'_, N> {
    fn drop(&mut self) {
        self.store.shared.replaying.store(false, Ordering::Relaxed);
    }
}

/// The log records to replay, read and unfiltered one by one (see
/// [`NodeStore::replay`]).
pub struct Replay<N: Codec> {
    shared: Arc<Shared<N>>,
    records: std::vec::IntoIter<ReplayRecord>,
}

impl<N: Codec> Iterator for Replay<N> {
    type Item = Result<Vec<u8>, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let r = self.records.next()?;
        Some(self.shared.read_record(r))
    }
}

impl<N: Codec> Shared<N> {
    /// Reads and unfilters the body of log record `r`.
    fn read_record(&self, r: ReplayRecord) -> Result<Vec<u8>, StoreError> {
        let file = FileId::Log(r.file);
        let mut body = vec![0u8; r.header.len as usize];
        let at = r.offset + crate::LOG_HEADER_LEN as u64;
        self.backend
            .read_at(file, at, &mut body)
            .map_err(|e| FormatError::io(self.backend.name(file), Some(at), e))?;
        self.pipeline
            .decode(&log::record_context(r.header.lsn, self.log.salt), &body)
            .map_err(|e| StoreError::MetadataDamaged {
                what: "commit log",
                cause: e.into(),
            })
    }

    /// Reads, unfilters and decodes the blob of node `id` at `loc`.
    fn read_node(&self, id: NodeId, loc: Location, digest: u64) -> Result<N, StoreError> {
        let body = read_node_blob(&*self.backend, id, loc, digest)?;
        let mut ctx = Context::new(id.0);
        if let Some(max) = self.max_node_len {
            ctx = ctx.with_max_len(max);
        }
        let raw = self
            .pipeline
            .decode_vec(&ctx, body)
            .map_err(|e| StoreError::Corrupt {
                id,
                cause: e.into(),
            })?;
        N::decode_owned(raw).map_err(|e| StoreError::Corrupt {
            id,
            cause: e.into(),
        })
    }
}

/// Where the calling thread's recent node reads were found, the clean
/// cache or the dirty queue: a two-bit saturating count, kept per thread
/// (no line shared between readers), that [`NodeStore::get`] uses to
/// probe the likelier of the two first. After a bulk load is checkpointed
/// most nodes are clean; after a run of random writes most leaves are
/// dirty until the next checkpoint, and probing the clean cache first made
/// each read of a dirty node pay a miss there before its hit.
struct Lean;

thread_local! {
    // A `const` cell with no destructor: readable and writable at any
    // point of a thread's life, teardown included.
    static LEAN: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
}

impl Lean {
    /// Whether the dirty queue should be probed first: recent reads hit
    /// it more than the cache.
    #[inline(always)]
    fn dirty_first() -> bool {
        LEAN.get() >= 2
    }

    /// A hit in the dirty queue (`dirty`) or in the clean cache.
    #[inline(always)]
    fn hit(dirty: bool) {
        let lean = LEAN.get();
        LEAN.set(if dirty {
            (lean + 1).min(3)
        } else {
            lean.saturating_sub(1)
        });
    }
}

#[cfg(test)]
mod lean_tests {
    use super::Lean;

    #[test]
    fn the_probe_order_follows_recent_hits_with_hysteresis() {
        // A fresh thread starts with the clean cache first.
        std::thread::spawn(|| {
            assert!(!Lean::dirty_first());
            Lean::hit(true);
            assert!(!Lean::dirty_first(), "one dirty hit does not switch");
            Lean::hit(true);
            assert!(Lean::dirty_first());
            Lean::hit(true);
            Lean::hit(true);
            // Saturated at three: a stray clean hit keeps the order...
            Lean::hit(false);
            assert!(Lean::dirty_first());
            // ...a second one switches it back.
            Lean::hit(false);
            assert!(!Lean::dirty_first());
            for _ in 0..5 {
                Lean::hit(false);
            }
            Lean::hit(true);
            assert!(!Lean::dirty_first(), "saturated at zero too");
        })
        .join()
        .unwrap();
    }
}
