//! Options for opening a forest, as a builder.

use crate::{Error, Result};
use larix_btree::{Limits, DEFAULT_NODE_SIZE, MAX_NODE_SIZE, MIN_NODE_SIZE};
use larix_filters::{FilterSpec, RecordedFilter};
pub use larix_nodestore::Durability;

/// The most background filter threads a forest runs.
pub const MAX_WORKERS: usize = 256;

/// The smallest cache, in nodes of the configured size: the dirty queue and
/// the in-flight writes must each hold a few nodes.
pub const MIN_CACHE_NODES: usize = 16;

pub use larix_nodestore::MIN_COMPACTION_BYTES_PER_COMMIT;

/// The smallest [`Options::checkpoint_log_bytes`] accepted.
pub const MIN_CHECKPOINT_LOG_BYTES: u64 = 64 << 10;

/// How to open a forest. Start from [`Options::default`] and change what
/// you need; values are checked when the forest opens.
#[derive(Clone, Debug)]
pub struct Options {
    pub(crate) node_size: usize,
    pub(crate) cache_bytes: usize,
    pub(crate) workers: usize,
    pub(crate) durability: Durability,
    pub(crate) filters: Vec<FilterSpec>,
    pub(crate) compaction: bool,
    pub(crate) segment_bytes: u64,
    pub(crate) compaction_live_ratio: f64,
    pub(crate) compaction_bytes_per_commit: u64,
    pub(crate) checkpoint_log_bytes: u64,
    pub(crate) checkpoint_interval: std::time::Duration,
    pub(crate) storage_options: Vec<(String, String)>,
    pub(crate) object_cache: Option<(std::path::PathBuf, u64)>,
    pub(crate) write_buffer_bytes: Option<usize>,
}

impl Default for Options {
    /// 4 KiB nodes, a 256 MiB cache, one worker per core, durable commits,
    /// zstd level 1 and a checksum on every node.
    fn default() -> Self {
        Options {
            node_size: DEFAULT_NODE_SIZE,
            cache_bytes: 256 << 20,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            durability: Durability::Immediate,
            filters: vec![FilterSpec::zstd(1), FilterSpec::checksum()],
            compaction: true,
            segment_bytes: 64 << 20,
            compaction_live_ratio: 0.5,
            compaction_bytes_per_commit: 16 << 20,
            checkpoint_log_bytes: 64 << 20,
            checkpoint_interval: std::time::Duration::from_secs(30),
            storage_options: Vec::new(),
            object_cache: None,
            write_buffer_bytes: None,
        }
    }
}

impl Options {
    /// The largest encoded node, in bytes: 256 B to 1 MiB. A key plus its
    /// value may take up to a quarter of it.
    pub fn node_size(mut self, bytes: usize) -> Self {
        self.node_size = bytes;
        self
    }

    /// The memory budget of decoded nodes, in bytes: the cache of clean
    /// nodes, the dirty queue of uncommitted ones (up to 5/8 of it) and the
    /// writes in flight (1/8) together. Views and snapshots may keep up to
    /// a quarter as much again, together, of the index nodes and leaf
    /// references their point reads pass (`docs/design.md`).
    pub fn cache_bytes(mut self, bytes: usize) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// The most bytes of batched pairs the trees hold back, together,
    /// before applying them (`docs/design.md`, "Write buffer"): the pairs
    /// of a [`Tree::insert_batch`](crate::Tree::insert_batch) of at least
    /// 256 pairs, every value inline, are journaled and kept in memory
    /// (each its key, its value and 16 bytes) until a read, a snapshot,
    /// another kind of write, a checkpoint or a full buffer applies the
    /// tree's buffer in key order.
    /// 0 applies every batch at once. By default a sixteenth of
    /// [`Options::cache_bytes`], at most 64 MiB; the buffers take this
    /// memory beside the cache's.
    pub fn write_buffer_bytes(mut self, bytes: usize) -> Self {
        self.write_buffer_bytes = Some(bytes);
        self
    }

    /// The number of background filter threads (at least 1).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Whether commits sync to stable storage.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The filters every node passes through on its way to disk, in order.
    pub fn filters(mut self, filters: Vec<FilterSpec>) -> Self {
        self.filters = filters;
        self
    }

    /// The options an existing store was created with: its node size and
    /// filter stack, read from its superblock (without writing anything). A
    /// store with an encryption filter needs `key_file` (32 raw bytes or 64
    /// hex characters); one without refuses a key file, so that nobody
    /// believes plaintext is encrypted. A store that pipes its nodes
    /// through a command is refused: see
    /// [`Options::from_store_with_command`].
    ///
    /// # Errors
    /// A store error if `path` holds no readable store;
    /// [`Error::InvalidOptions`] if the store is encrypted and no key file
    /// is given (or the reverse), or its filter stack cannot be rebuilt;
    /// [`Error::UntrustedCommand`] if the store records a command filter.
    pub fn from_store(
        path: impl AsRef<std::path::Path>,
        key_file: Option<&std::path::Path>,
    ) -> Result<Options> {
        Options::from_store_with_command(path, key_file, None)
    }

    /// [`Options::from_store`] for a store whose nodes pass through an
    /// external command: `command` (a [`FilterSpec::command`]) must name
    /// the very command the store records. Larix never runs a command it
    /// read from a store, since whoever made the store chose it.
    ///
    /// # Errors
    /// As [`Options::from_store`]; [`Error::UntrustedCommand`] if the store
    /// records a command and `command` is missing or names another one;
    /// [`Error::InvalidOptions`] if `command` is given for a store that
    /// records none.
    pub fn from_store_with_command(
        path: impl AsRef<std::path::Path>,
        key_file: Option<&std::path::Path>,
        command: Option<&FilterSpec>,
    ) -> Result<Options> {
        use larix_nodestore::{read_parameters, FileBackend, StoreError};
        let backend = FileBackend::open_read_only(path).map_err(StoreError::from)?;
        Options::from_parameters(&read_parameters(&backend)?, key_file, command)
    }

    /// [`Options::from_store_with_command`] for the store at `url` (see
    /// [`crate::Forest::open_url`]), reached with the storage options of
    /// `storage` (which the options returned keep).
    ///
    /// # Errors
    /// As [`Options::from_store_with_command`]; a store error for a URL
    /// that cannot be used.
    pub fn from_url_with_command(
        url: &str,
        storage: &Options,
        key_file: Option<&std::path::Path>,
        command: Option<&FilterSpec>,
    ) -> Result<Options> {
        let backend = crate::forest::backend_at(url, storage, true)?;
        let text = larix_nodestore::read_parameters(&*backend)?;
        let mut options = Options::from_parameters(&text, key_file, command)?;
        options.storage_options = storage.storage_options.clone();
        Ok(options)
    }

    /// A setting of the object store a URL names (for
    /// [`crate::Forest::open_url`]): one of the `object_store` crate's
    /// configuration keys for S3, such as `aws_endpoint`,
    /// `aws_allow_http`, `aws_access_key_id`, `aws_secret_access_key` or
    /// `aws_region`. The standard `AWS_*` environment variables fill in
    /// what is not given; a key the S3 client does not know is refused
    /// when the store opens.
    pub fn storage_option(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let key = key.into();
        self.storage_options.retain(|(k, _)| *k != key);
        self.storage_options.push((key, value.into()));
        self
    }

    /// For a store in an object store ([`crate::Forest::open_url`]): keep
    /// the blocks read from it in the local directory `dir` as well (made
    /// if missing), at most about `max_bytes` of them, so that a store
    /// opened again, by this process or another, does not fetch them
    /// again. A damaged file there is noticed and fetched again. Without
    /// it, blocks are cached in memory only, for the life of the forest.
    pub fn object_cache_dir(mut self, dir: impl Into<std::path::PathBuf>, max_bytes: u64) -> Self {
        self.object_cache = Some((dir.into(), max_bytes));
        self
    }

    /// The storage options set with [`Options::storage_option`], in order.
    pub fn storage_options(&self) -> impl Iterator<Item = (&str, &str)> {
        self.storage_options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Options from a parameter string as a store records it
    /// (`node_size=N;filters=name(params),...`).
    fn from_parameters(
        text: &str,
        key_file: Option<&std::path::Path>,
        command: Option<&FilterSpec>,
    ) -> Result<Options> {
        let bad = |why: &str| Error::InvalidOptions(format!("stored parameters {text:?}: {why}"));
        let rest = text
            .strip_prefix("node_size=")
            .ok_or_else(|| bad("no node size"))?;
        let (size, filters) = rest
            .split_once(";filters=")
            .ok_or_else(|| bad("no filter list"))?;
        let node_size = size.parse().map_err(|_| bad("node size is not a number"))?;
        let mut specs = Vec::new();
        for recorded in larix_filters::parse_descriptor(filters)? {
            specs.push(match &recorded {
                RecordedFilter::Zstd { level } => FilterSpec::zstd(*level),
                RecordedFilter::Checksum => FilterSpec::checksum(),
                RecordedFilter::Encrypt => {
                    let path = key_file.ok_or_else(|| {
                        Error::InvalidOptions(
                            "the store is encrypted: a key file is needed to open it".into(),
                        )
                    })?;
                    FilterSpec::encrypt_key_file(path)?
                }
                // Never armed from the store's text: only the caller's own,
                // identical command runs.
                RecordedFilter::Command { encode, decode } => match command {
                    Some(spec) if recorded.matches(spec) => spec.clone(),
                    _ => {
                        return Err(Error::UntrustedCommand {
                            encode: encode.join(" "),
                            decode: decode.join(" "),
                        })
                    }
                },
                other => return Err(bad(&format!("unknown filter {}", other.name()))),
            });
        }
        let has = |name| specs.iter().any(|s| s.name() == name);
        if key_file.is_some() && !has("encrypt") {
            return Err(Error::InvalidOptions(
                "the store is not encrypted: a key file would not be used, so none is accepted"
                    .into(),
            ));
        }
        if command.is_some() && !has("command") {
            return Err(Error::InvalidOptions(
                "the store has no command filter: drop the command".into(),
            ));
        }
        Ok(Options::default().node_size(node_size).filters(specs))
    }

    /// The size past which a new segment file is started (default 64 MiB,
    /// at least 64 KiB): compaction rewrites whole segments, so smaller
    /// segments reclaim space in smaller steps.
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// Whether each commit also compacts sparse segments (on by default):
    /// it copies the live blobs of segments whose live share is below
    /// [`Options::compaction_live_ratio`], at most
    /// [`Options::compaction_bytes_per_commit`] per commit.
    pub fn compaction(mut self, on: bool) -> Self {
        self.compaction = on;
        self
    }

    /// The live share (0.0 to 1.0, default 0.5) under which a segment is
    /// rewritten by the compaction each commit does.
    pub fn compaction_live_ratio(mut self, ratio: f64) -> Self {
        self.compaction_live_ratio = ratio;
        self
    }

    /// The most bytes the compaction of one commit copies (default 16 MiB):
    /// the bound on the write rate compaction adds. Within it a commit
    /// copies about as much as it writes itself, and at least 1 MiB.
    pub fn compaction_bytes_per_commit(mut self, bytes: u64) -> Self {
        self.compaction_bytes_per_commit = bytes;
        self
    }

    /// The commit log bytes after which a commit starts a checkpoint in the
    /// background (default 64 MiB, at least 64 KiB): the trees' nodes are
    /// written to the segments and the log before is dropped. Larger means
    /// fewer node writes and a longer replay after a crash.
    pub fn checkpoint_log_bytes(mut self, bytes: u64) -> Self {
        self.checkpoint_log_bytes = bytes;
        self
    }

    /// The time after which a commit starts a checkpoint if anything was
    /// logged since the last one (default 30 s, at least 1 ms).
    pub fn checkpoint_interval(mut self, interval: std::time::Duration) -> Self {
        self.checkpoint_interval = interval;
        self
    }

    /// The B-tree size limits these options give.
    ///
    /// # Errors
    /// [`Error::InvalidOptions`] naming the value out of range.
    pub(crate) fn validate(&self) -> Result<Limits> {
        if !(0.0..=1.0).contains(&self.compaction_live_ratio) {
            return Err(Error::InvalidOptions(format!(
                "compaction_live_ratio {} is outside 0.0..=1.0",
                self.compaction_live_ratio
            )));
        }
        if !(64 << 10..=4 << 30).contains(&self.segment_bytes) {
            return Err(Error::InvalidOptions(format!(
                "segment_bytes {} is outside 64 KiB..=4 GiB",
                self.segment_bytes
            )));
        }
        if !(1..=MAX_WORKERS).contains(&self.workers) {
            return Err(Error::InvalidOptions(format!(
                "workers {} is outside 1..={MAX_WORKERS}",
                self.workers
            )));
        }
        if self.compaction_bytes_per_commit < MIN_COMPACTION_BYTES_PER_COMMIT {
            return Err(Error::InvalidOptions(format!(
                "compaction_bytes_per_commit {} is below the least a commit copies, \
                 {MIN_COMPACTION_BYTES_PER_COMMIT} bytes",
                self.compaction_bytes_per_commit
            )));
        }
        if self.checkpoint_log_bytes < MIN_CHECKPOINT_LOG_BYTES {
            return Err(Error::InvalidOptions(format!(
                "checkpoint_log_bytes {} is below {MIN_CHECKPOINT_LOG_BYTES}",
                self.checkpoint_log_bytes
            )));
        }
        if self.checkpoint_interval < std::time::Duration::from_millis(1) {
            return Err(Error::InvalidOptions(format!(
                "checkpoint_interval {:?} is below 1 ms",
                self.checkpoint_interval
            )));
        }
        let limits = Limits::new(self.node_size).ok_or_else(|| {
            Error::InvalidOptions(format!(
                "node_size {} is outside {MIN_NODE_SIZE}..={MAX_NODE_SIZE} bytes",
                self.node_size
            ))
        })?;
        let least_cache = MIN_CACHE_NODES * self.node_size;
        if self.cache_bytes < least_cache {
            return Err(Error::InvalidOptions(format!(
                "cache_bytes {} is below {MIN_CACHE_NODES} nodes of {} bytes ({least_cache} bytes)",
                self.cache_bytes, self.node_size
            )));
        }
        Ok(limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use larix_filters::Pipeline;

    fn describe(specs: &[FilterSpec]) -> String {
        format!(
            "node_size=4096;filters={}",
            Pipeline::new(specs).unwrap().describe()
        )
    }

    fn round_trip(specs: Vec<FilterSpec>, command: Option<&FilterSpec>) -> Vec<FilterSpec> {
        let o = Options::from_parameters(&describe(&specs), None, command).unwrap();
        assert_eq!(o.node_size, 4096);
        o.filters
    }

    #[test]
    fn stored_parameters_give_back_the_filters() {
        for specs in [
            vec![],
            vec![FilterSpec::zstd(1), FilterSpec::checksum()],
            vec![FilterSpec::checksum()],
        ] {
            assert_eq!(round_trip(specs.clone(), None), specs);
        }
    }

    /// Issue 12 item 1: a command recorded in a store is never armed from
    /// the store's text; only the caller's own, identical command is used.
    #[test]
    fn a_recorded_command_needs_the_callers_own() {
        let gz = FilterSpec::command(&["/bin/sh", "-c", "a b;c=d,(e)\\"], &["/bin/gzip", "-dc"]);
        let text = describe(std::slice::from_ref(&gz));
        match Options::from_parameters(&text, None, None) {
            Err(Error::UntrustedCommand { encode, decode }) => {
                assert_eq!(encode, "/bin/sh -c a b;c=d,(e)\\");
                assert_eq!(decode, "/bin/gzip -dc");
            }
            other => panic!("expected UntrustedCommand, got {other:?}"),
        }
        let other = FilterSpec::command(&["/bin/cat"], &["/bin/gzip", "-dc"]);
        assert!(matches!(
            Options::from_parameters(&text, None, Some(&other)),
            Err(Error::UntrustedCommand { .. })
        ));
        assert_eq!(round_trip(vec![gz.clone()], Some(&gz)), vec![gz.clone()]);
        let plain = describe(&[FilterSpec::checksum()]);
        assert!(matches!(
            Options::from_parameters(&plain, None, Some(&gz)),
            Err(Error::InvalidOptions(_))
        ));
    }

    /// Issue 12 item 10: a key file for an unencrypted store is refused,
    /// not silently ignored.
    #[test]
    fn a_key_file_for_a_plain_store_is_refused() {
        let plain = describe(&[FilterSpec::checksum()]);
        let e =
            Options::from_parameters(&plain, Some(std::path::Path::new("k")), None).unwrap_err();
        assert!(e.to_string().contains("not encrypted"), "{e}");
    }

    #[test]
    fn an_encrypted_store_needs_a_key_file() {
        let text = "node_size=4096;filters=encrypt(xchacha20poly1305),checksum(crc32c)";
        let e = Options::from_parameters(text, None, None).unwrap_err();
        assert!(e.to_string().contains("key file"), "{e}");
    }

    #[test]
    fn malformed_parameters_are_refused() {
        for text in [
            "",
            "node_size=x;filters=",
            "node_size=4096",
            "node_size=4096;filters=zstd(level=3",
            "node_size=4096;filters=zstd(level=3),",
            "node_size=4096;filters=lz4()",
        ] {
            assert!(
                Options::from_parameters(text, None, None).is_err(),
                "{text}"
            );
        }
    }
}
