//! [`ObjectBackend`]: a store kept in an object store (AWS S3 and the
//! stores that speak its protocol: MinIO, Ceph, Garage, R2), through the
//! `object_store` crate.
//!
//! Objects are immutable, so a store file is a chain of *parts*, each an
//! object named `PREFIX/FILE/OFFSET` (the file's name, then the part's
//! first byte offset as 16 hex digits). Appends are staged in memory; a
//! file's staged bytes become a part when they pass
//! [`ObjectOptions::part_bytes`] (uploaded in the background, on the
//! backend's own runtime, while the store carries on) or at
//! [`Backend::sync`] (uploaded before it returns). Parts are created with
//! `If-None-Match: *`: no object is ever overwritten, so two processes that
//! both think they own a store collide with an error instead of mixing
//! their bytes.
//!
//! The superblock is one object, `PREFIX/superblock`, replaced whole at
//! each sync with a conditional put on the ETag this backend last saw
//! (`If-Match`), or `If-None-Match: *` when the store is created. The
//! switch is atomic, and it fences writers: a writable open rewrites the
//! superblock at once (with a fresh random nonce, so its ETag changes), so
//! a writer it displaced fails at its next checkpoint; and recovery seals
//! the commit log files that writer may append to ([`Backend::seal`]: an
//! empty part at a file's end takes the name its next part would need), so
//! its next commit fails too. Never do two writers both commit.
//!
//! Reads of uploaded parts go through a bounded cache of blocks
//! ([`ObjectOptions::block_bytes`], [`ObjectOptions::cache_bytes`]), each
//! block one ranged GET; when a file is read block after block, the next
//! [`ObjectOptions::readahead`] blocks are fetched in the background.
//! Bytes not yet uploaded are served from memory.
//!
//! Contract differences from a file system (see [`Backend`]): files are
//! append-only (a write before the end fails with
//! [`io::ErrorKind::InvalidInput`]; a write past the end fills with
//! zeros); an empty file exists only in this backend's memory (it has no
//! part, and reopening does not find it); removal and creation are durable
//! when the call returns, so `sync_dir` does nothing.

use crate::object_cache::{DiskCache, DiskKey};
use crate::stats::bump;
use crate::{Backend, FileId, FormatError};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use parking_lot::{Condvar, Mutex};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::runtime::Runtime;

/// The name of the superblock object under the store's prefix.
const SUPERBLOCK: &str = "superblock";

/// What the superblock object starts with, before its nonce and the
/// superblock file's bytes.
const SUPERBLOCK_MAGIC: &[u8; 8] = b"LXSBOBJ1";

/// The length of the random nonce that makes every superblock put change
/// the object's ETag.
const NONCE_LEN: usize = 16;

/// The largest superblock object read: the two slots are far smaller, so
/// a larger object is damage, refused before it is fetched.
const MAX_SUPERBLOCK_OBJECT: u64 = 1 << 20;

/// Tuning of an [`ObjectBackend`].
#[derive(Clone, Debug)]
pub struct ObjectOptions {
    /// Staged bytes of one file past which a part is cut and uploaded in
    /// the background.
    pub part_bytes: usize,
    /// The unit of reading: one ranged GET fetches a block (or what is
    /// left of a part).
    pub block_bytes: u64,
    /// The bound on the memory the block cache holds.
    pub cache_bytes: u64,
    /// How many blocks ahead a sequential reader fetches in the
    /// background.
    pub readahead: u64,
    /// Uploads of one file under way at most: a writer that gets ahead by
    /// more waits for the oldest (memory stays below about
    /// `part_bytes × (uploads + 1)` per file written).
    pub uploads: usize,
    /// Worker threads of the backend's runtime (uploads, fetches).
    pub threads: usize,
    /// A local directory keeping blocks read from the store, so that a
    /// store opened again does not fetch them again, and the bound on
    /// its bytes; `None`: blocks are kept in memory only.
    pub cache_dir: Option<(PathBuf, u64)>,
}

impl Default for ObjectOptions {
    fn default() -> ObjectOptions {
        ObjectOptions {
            part_bytes: 8 << 20,
            block_bytes: 256 << 10,
            cache_bytes: 64 << 20,
            readahead: 8,
            uploads: 4,
            threads: 4,
            cache_dir: None,
        }
    }
}

/// Requests an [`ObjectBackend`] has made, and the bytes they moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ObjectCounts {
    /// Object creations and replacements (parts, seals, the superblock).
    pub puts: u64,
    /// Whole and ranged reads.
    pub gets: u64,
    /// Listing requests (one per page the store returns).
    pub lists: u64,
    /// Object deletions.
    pub deletes: u64,
    /// Bytes uploaded.
    pub bytes_up: u64,
    /// Bytes downloaded.
    pub bytes_down: u64,
    /// Block reads served by the cache or a fetch already under way.
    pub cache_hits: u64,
    /// Blocks read from the directory cache instead of the store.
    pub disk_hits: u64,
}

#[derive(Default)]
struct Counters {
    puts: AtomicU64,
    gets: AtomicU64,
    lists: AtomicU64,
    deletes: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    cache_hits: AtomicU64,
    disk_hits: AtomicU64,
}

/// A store kept in an object store; see the module documentation.
pub struct ObjectBackend {
    inner: Arc<Inner>,
    /// Owned outside `inner` so that no task can hold the last reference
    /// to it (a runtime must not be dropped from one of its own threads).
    runtime: Runtime,
}

struct Inner {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// How messages name the store (its URL).
    name: String,
    read_only: bool,
    options: ObjectOptions,
    files: Mutex<HashMap<FileId, ObjFile>>,
    /// Signalled whenever an upload is settled.
    settled: Condvar,
    superblock: Mutex<SuperblockObject>,
    cache: Mutex<BlockCache>,
    /// The directory cache, if one was asked for.
    disk: Option<DiskCache>,
    counters: Counters,
    /// Numbers the files' lives, so that a file removed and made again
    /// never meets the old one's cached blocks.
    lives: AtomicU64,
}

/// The superblock file, kept whole in memory.
#[derive(Default)]
struct SuperblockObject {
    /// The file's bytes (without the object's magic and nonce), or `None`
    /// if there is no superblock.
    content: Option<Vec<u8>>,
    /// The ETag of the object as this backend last wrote or read it.
    etag: Option<String>,
    /// Written since the last put.
    dirty: bool,
}

/// One store file other than the superblock.
struct ObjFile {
    /// Which life of this file id it is (see [`Inner::lives`]).
    life: u64,
    /// Uploaded parts, contiguous from offset 0: offset → length.
    parts: BTreeMap<u64, u64>,
    /// The ETags of uploaded parts, by offset, where the store gave one:
    /// with its name, what identifies a part's bytes in the directory
    /// cache.
    etags: HashMap<u64, Arc<str>>,
    /// Where the uploaded parts end.
    uploaded: u64,
    /// Parts handed to the runtime and not yet known to be stored, in
    /// order; reads of their bytes are served from here.
    uploading: Vec<Upload>,
    /// Bytes after the uploads, not yet handed to one.
    staged: Vec<u8>,
    /// An upload of this file failed: every later sync fails too.
    failed: Option<String>,
}

struct Upload {
    offset: u64,
    data: Bytes,
    task: Option<tokio::task::JoinHandle<Result<Option<Arc<str>>, object_store::Error>>>,
}

impl ObjFile {
    fn new(life: u64) -> ObjFile {
        ObjFile {
            life,
            parts: BTreeMap::new(),
            etags: HashMap::new(),
            uploaded: 0,
            uploading: Vec::new(),
            staged: Vec::new(),
            failed: None,
        }
    }

    /// The file's length: uploaded, uploading and staged bytes.
    fn len(&self) -> u64 {
        self.staged_at() + self.staged.len() as u64
    }

    /// Extends the uploaded parts along `listed` from where they end: the
    /// chain stops at a gap (an upload whose predecessor never landed) or
    /// a seal, and what lies past it is not part of the file. Returns
    /// whether it stopped at a seal.
    fn chain(&mut self, listed: &BTreeMap<u64, Listed>) -> bool {
        while let Some(part) = listed.get(&self.uploaded) {
            if part.len == 0 {
                return true;
            }
            self.parts.insert(part.offset, part.len);
            if let Some(etag) = &part.etag {
                self.etags.insert(part.offset, Arc::clone(etag));
            }
            self.uploaded += part.len;
        }
        false
    }

    /// Where the staged bytes start.
    fn staged_at(&self) -> u64 {
        self.uploading
            .last()
            .map_or(self.uploaded, |u| u.offset + u.data.len() as u64)
    }
}

/// A part as a listing shows it.
struct Listed {
    file: FileId,
    offset: u64,
    len: u64,
    etag: Option<Arc<str>>,
}

/// An ETag as the cache keys it: without the quotes some stores add.
fn etag_key(etag: &str) -> Arc<str> {
    Arc::from(etag.trim_matches('"'))
}

/// Cached blocks of uploaded parts, least recently used first out, and the
/// fetches under way.
struct BlockCache {
    blocks: lru::LruCache<BlockKey, Bytes>,
    bytes: u64,
    fetching: HashMap<BlockKey, Arc<Fetch>>,
    /// The last block each file life had read, to see sequential reading.
    last_read: HashMap<u64, BlockKey>,
}

/// A block: the file's life, its part's offset, and the block's index in
/// the part.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct BlockKey {
    life: u64,
    part: u64,
    index: u64,
}

/// A block fetch under way; readers that need it wait on `done`.
#[derive(Default)]
struct Fetch {
    result: Mutex<Option<Result<Bytes, String>>>,
    done: Condvar,
}

impl Fetch {
    fn wait(&self) -> Result<Bytes, String> {
        let mut r = self.result.lock();
        while r.is_none() {
            self.done.wait(&mut r);
        }
        r.clone().expect("set above")
    }

    fn finish(&self, result: Result<Bytes, String>) {
        *self.result.lock() = Some(result);
        self.done.notify_all();
    }
}

impl fmt::Debug for ObjectBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectBackend")
            .field("name", &self.inner.name)
            .field("read_only", &self.inner.read_only)
            .finish_non_exhaustive()
    }
}

/// Splits `s3://bucket/some/prefix` into the bucket URL and the prefix.
fn split_url(url: &str) -> Result<(String, String), FormatError> {
    let bad = |why: &str| FormatError::BadUrl {
        url: url.to_string(),
        why: why.to_string(),
    };
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| bad("only s3:// URLs name an object store"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(bad("the bucket name is missing"));
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|p| p == "." || p == "..") {
        return Err(bad("the prefix may not hold `.` or `..` parts"));
    }
    Ok((format!("s3://{bucket}"), prefix.to_string()))
}

impl ObjectBackend {
    /// Opens the store at `url` (`s3://bucket/prefix`), configured by
    /// `options` (the `object_store` crate's S3 configuration keys, such
    /// as `aws_endpoint` or `aws_region`) over the standard `AWS_*`
    /// environment variables.
    ///
    /// # Errors
    /// [`FormatError::BadUrl`] for a URL or option the S3 client refuses;
    /// as [`ObjectBackend::open`] otherwise.
    pub fn open_url(
        url: &str,
        options: &[(String, String)],
        read_only: bool,
        tuning: ObjectOptions,
    ) -> Result<ObjectBackend, FormatError> {
        use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
        let (bucket, prefix) = split_url(url)?;
        let bad = |why: String| FormatError::BadUrl {
            url: url.to_string(),
            why,
        };
        let mut builder = AmazonS3Builder::from_env().with_url(bucket);
        for (key, value) in options {
            let key: AmazonS3ConfigKey = key
                .parse()
                .map_err(|_| bad(format!("`{key}` is not an S3 storage option")))?;
            builder = builder.with_config(key, value);
        }
        let store = builder.build().map_err(|e| bad(e.to_string()))?;
        ObjectBackend::open(Arc::new(store), &prefix, url, read_only, tuning)
    }

    /// Opens the store under `prefix` of `store`. A writable open fences
    /// any other writer of the store (see the module documentation).
    /// `name` is how messages name the store.
    ///
    /// # Errors
    /// [`FormatError::Io`] if the store cannot be listed or read, or the
    /// fencing writes fail.
    pub fn open(
        store: Arc<dyn ObjectStore>,
        prefix: &str,
        name: &str,
        read_only: bool,
        options: ObjectOptions,
    ) -> Result<ObjectBackend, FormatError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.threads.max(1))
            .thread_name("larix-object")
            .enable_all()
            .build()
            .map_err(|e| FormatError::io(name.to_string(), None, e))?;
        let cache = BlockCache {
            blocks: lru::LruCache::unbounded(),
            bytes: 0,
            fetching: HashMap::new(),
            last_read: HashMap::new(),
        };
        let disk = match &options.cache_dir {
            Some((dir, max)) => Some(
                DiskCache::open(dir.clone(), *max)
                    .map_err(|e| FormatError::io(dir.display().to_string(), None, e))?,
            ),
            None => None,
        };
        let backend = ObjectBackend {
            inner: Arc::new(Inner {
                store,
                prefix: Path::from(prefix),
                name: name.to_string(),
                read_only,
                options,
                files: Mutex::new(HashMap::new()),
                settled: Condvar::new(),
                superblock: Mutex::new(SuperblockObject::default()),
                cache: Mutex::new(cache),
                disk,
                counters: Counters::default(),
                lives: AtomicU64::new(1),
            }),
            runtime,
        };
        let io = |e| FormatError::io(name.to_string(), None, e);
        backend.load().map_err(io)?;
        if !read_only {
            backend.fence().map_err(io)?;
        }
        Ok(backend)
    }

    /// The requests made so far.
    pub fn counts(&self) -> ObjectCounts {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ObjectCounts {
            puts: get(&c.puts),
            gets: get(&c.gets),
            lists: get(&c.lists),
            deletes: get(&c.deletes),
            bytes_up: get(&c.bytes_up),
            bytes_down: get(&c.bytes_down),
            cache_hits: get(&c.cache_hits),
            disk_hits: get(&c.disk_hits),
        }
    }

    /// Lists every part and reads the superblock object.
    fn load(&self) -> io::Result<()> {
        let inner = &self.inner;
        let mut found: HashMap<FileId, BTreeMap<u64, Listed>> = HashMap::new();
        for part in self.list_parts(None)? {
            found
                .entry(part.file)
                .or_default()
                .insert(part.offset, part);
        }
        let mut files = inner.files.lock();
        for (file, parts) in found {
            let life = inner.lives.fetch_add(1, Ordering::Relaxed);
            let mut f = ObjFile::new(life);
            f.chain(&parts);
            files.insert(file, f);
        }
        drop(files);
        let sb = self.read_superblock_object()?;
        *inner.superblock.lock() = sb;
        Ok(())
    }

    /// The parts under the prefix (of one file, or all). Objects that are
    /// not parts are ignored.
    fn list_parts(&self, file: Option<FileId>) -> io::Result<Vec<Listed>> {
        let inner = &self.inner;
        let prefix = match file {
            Some(f) => inner.prefix.clone().join(f.file_name()),
            None => inner.prefix.clone(),
        };
        bump(&inner.counters.lists, 1);
        let metas: Vec<object_store::ObjectMeta> = self
            .runtime
            .block_on(inner.store.list(Some(&prefix)).try_collect())
            .map_err(to_io)?;
        let base: Vec<_> = inner.prefix.parts().collect();
        let mut out = Vec::new();
        for meta in metas {
            let parts: Vec<_> = meta.location.parts().collect();
            let Some(rest) = parts.strip_prefix(base.as_slice()) else {
                continue;
            };
            let [name, offset] = rest else {
                continue;
            };
            let (Some(id), Some(offset)) = (
                FileId::from_file_name(name.as_ref()),
                parse_offset(offset.as_ref()),
            ) else {
                continue;
            };
            if id != FileId::Superblock {
                out.push(Listed {
                    file: id,
                    offset,
                    len: meta.size,
                    etag: meta.e_tag.as_deref().map(etag_key),
                });
            }
        }
        Ok(out)
    }

    /// Reads the superblock object, if there is one.
    fn read_superblock_object(&self) -> io::Result<SuperblockObject> {
        let inner = &self.inner;
        let path = inner.prefix.clone().join(SUPERBLOCK);
        bump(&inner.counters.gets, 1);
        let head = match self.runtime.block_on(inner.store.head(&path)) {
            Ok(h) => h,
            Err(object_store::Error::NotFound { .. }) => return Ok(SuperblockObject::default()),
            Err(e) => return Err(to_io(e)),
        };
        if head.size > MAX_SUPERBLOCK_OBJECT {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the superblock object holds {} bytes, too many", head.size),
            ));
        }
        bump(&inner.counters.gets, 1);
        let got = self
            .runtime
            .block_on(async {
                let r = inner.store.get(&path).await?;
                let etag = r.meta.e_tag.clone();
                Ok::<_, object_store::Error>((r.bytes().await?, etag))
            })
            .map_err(to_io)?;
        let (bytes, etag) = got;
        bump(&inner.counters.bytes_down, bytes.len() as u64);
        let header = SUPERBLOCK_MAGIC.len() + NONCE_LEN;
        if bytes.len() < header || &bytes[..SUPERBLOCK_MAGIC.len()] != SUPERBLOCK_MAGIC {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the superblock object is not a Larix superblock",
            ));
        }
        Ok(SuperblockObject {
            content: Some(bytes[header..].to_vec()),
            etag,
            dirty: false,
        })
    }

    /// Fences other writers: rewrites the superblock, so that a displaced
    /// writer's next switch fails. (Recovery then seals the log files it
    /// may append to, [`Backend::seal`], so that its next commit fails.)
    fn fence(&self) -> io::Result<()> {
        if self.inner.superblock.lock().content.is_some() {
            self.inner.superblock.lock().dirty = true;
            self.put_superblock()?;
        }
        Ok(())
    }

    /// Creates an empty part at the end of `file` (at 0 if it has none),
    /// so that nobody can append to it; if a writer appended first, learns
    /// its parts and tries again at the new end.
    fn seal_file(&self, file: FileId) -> io::Result<()> {
        loop {
            let end = {
                let mut files = self.inner.files.lock();
                let f = files.entry(file).or_insert_with(|| {
                    ObjFile::new(self.inner.lives.fetch_add(1, Ordering::Relaxed))
                });
                if !f.staged.is_empty() || !f.uploading.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{file} is being written: it cannot be sealed"),
                    ));
                }
                f.uploaded
            };
            match self.put_part(file, end, Bytes::new()) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            let parts: BTreeMap<u64, Listed> = self
                .list_parts(Some(file))?
                .into_iter()
                .map(|p| (p.offset, p))
                .collect();
            let mut files = self.inner.files.lock();
            let f = files.get_mut(&file).expect("entered above");
            if f.chain(&parts) {
                // Sealed by someone else at the same moment.
                return Ok(());
            }
        }
    }

    /// Creates the part of `file` at `offset` (never replacing one).
    fn put_part(&self, file: FileId, offset: u64, data: Bytes) -> io::Result<()> {
        let inner = &self.inner;
        self.runtime
            .block_on(put_part(
                Arc::clone(&inner.store),
                part_path(&inner.prefix, file, offset),
                data,
                Arc::clone(inner),
            ))
            .map(|_| ())
            .map_err(to_io)
    }

    /// Puts the superblock object if it changed, conditional on the ETag
    /// last seen (or on there being none).
    fn put_superblock(&self) -> io::Result<()> {
        let inner = &self.inner;
        let mut sb = inner.superblock.lock();
        if !sb.dirty {
            return Ok(());
        }
        let content = sb.content.clone().unwrap_or_default();
        let mut object = Vec::with_capacity(SUPERBLOCK_MAGIC.len() + NONCE_LEN + content.len());
        object.extend_from_slice(SUPERBLOCK_MAGIC);
        object.extend_from_slice(&nonce());
        object.extend_from_slice(&content);
        let mode = match &sb.etag {
            Some(etag) => PutMode::Update(UpdateVersion {
                e_tag: Some(etag.clone()),
                version: None,
            }),
            None => PutMode::Create,
        };
        let len = object.len() as u64;
        let path = inner.prefix.clone().join(SUPERBLOCK);
        bump(&inner.counters.puts, 1);
        let result = self.runtime.block_on(inner.store.put_opts(
            &path,
            PutPayload::from(object),
            PutOptions::from(mode),
        ));
        match result {
            Ok(r) => {
                bump(&inner.counters.bytes_up, len);
                sb.etag = r.e_tag;
                sb.dirty = false;
                Ok(())
            }
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. },
            ) => Err(io::Error::other(format!(
                "{}: another writer has opened this store since this one did; \
                 this writer can commit nothing more",
                inner.name
            ))),
            Err(e) => Err(to_io(e)),
        }
    }

    fn writable(&self) -> io::Result<()> {
        if self.inner.read_only {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "the store is open read-only",
            ));
        }
        Ok(())
    }

    /// Hands `file`'s staged bytes to a background upload.
    fn start_upload(&self, f: &mut ObjFile, file: FileId) {
        let data = Bytes::from(std::mem::take(&mut f.staged));
        let offset = f.staged_at();
        let inner = &self.inner;
        let task = self.runtime.spawn(put_part(
            Arc::clone(&inner.store),
            part_path(&inner.prefix, file, offset),
            data.clone(),
            Arc::clone(inner),
        ));
        f.uploading.push(Upload {
            offset,
            data,
            task: Some(task),
        });
    }

    /// Waits until at most `keep` uploads of `file` are under way, oldest
    /// first, recording the parts they stored.
    ///
    /// # Errors
    /// The error of a failed upload, now and at every later call: what
    /// follows a part that never landed can never be stored.
    fn settle(&self, file: FileId, keep: usize) -> io::Result<()> {
        let inner = &self.inner;
        let mut files = inner.files.lock();
        loop {
            let f = files.get_mut(&file).ok_or_else(|| not_found(file))?;
            if let Some(e) = &f.failed {
                return Err(io::Error::other(e.clone()));
            }
            if f.uploading.len() <= keep {
                return Ok(());
            }
            let (life, offset) = (f.life, f.uploading[0].offset);
            let Some(task) = f.uploading[0].task.take() else {
                // Another thread waits for this upload.
                inner.settled.wait(&mut files);
                continue;
            };
            drop(files);
            let result = self.runtime.block_on(task);
            files = inner.files.lock();
            let f = files.get_mut(&file).filter(|f| {
                f.life == life && f.uploading.first().is_some_and(|u| u.offset == offset)
            });
            if let Some(f) = f {
                match result {
                    Ok(Ok(etag)) => {
                        let u = f.uploading.remove(0);
                        if let Some(etag) = etag {
                            f.etags.insert(u.offset, etag);
                        }
                        f.parts.insert(u.offset, u.data.len() as u64);
                        f.uploaded = u.offset + u.data.len() as u64;
                    }
                    Ok(Err(e)) => {
                        f.failed = Some(format!("{}: an upload failed: {e}", self.name(file)))
                    }
                    Err(e) => {
                        f.failed = Some(format!("{}: an upload failed: {e}", self.name(file)))
                    }
                }
            }
            inner.settled.notify_all();
        }
    }

    /// Reads `buf.len()` bytes of uploaded parts of `file` at `offset`.
    fn read_uploaded(
        &self,
        file: FileId,
        life: u64,
        parts: &[(u64, u64)],
        mut offset: u64,
        buf: &mut [u8],
    ) -> io::Result<()> {
        let block = self.inner.options.block_bytes.max(1);
        let mut done = 0;
        while done < buf.len() {
            let &(part, part_len) = parts
                .iter()
                .rev()
                .find(|(p, _)| *p <= offset)
                .expect("offset lies in the uploaded parts");
            let index = (offset - part) / block;
            let key = BlockKey { life, part, index };
            let bytes = self.block(file, key, part_len, true)?;
            let within = (offset - part - index * block) as usize;
            let n = (bytes.len() - within).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&bytes[within..within + n]);
            done += n;
            offset += n as u64;
        }
        Ok(())
    }

    /// The bytes of block `key` of a part `part_len` long: from the cache,
    /// from a fetch under way, or fetched now. A reader (`wait`) also
    /// starts the readahead when it reads sequentially.
    fn block(&self, file: FileId, key: BlockKey, part_len: u64, wait: bool) -> io::Result<Bytes> {
        self.block_joining(file, key, part_len, wait, true)
    }

    /// [`ObjectBackend::block`]; a reader that joined a fetch under way
    /// (`join`: a readahead's, or another reader's) and saw it fail
    /// fetches the block again itself, once: a failed request it did not
    /// make is not its failure (a readahead started while the store
    /// failed, ending after it recovered, failed the next read).
    fn block_joining(
        &self,
        file: FileId,
        key: BlockKey,
        part_len: u64,
        wait: bool,
        join: bool,
    ) -> io::Result<Bytes> {
        let inner = &self.inner;
        let mut cache = inner.cache.lock();
        if wait {
            let previous = cache.last_read.insert(key.life, key);
            let sequential = previous.is_some_and(|p| {
                (p.part == key.part && p.index + 1 == key.index)
                    || (p.part < key.part && key.index == 0)
            });
            if sequential {
                drop(cache);
                self.read_ahead(file, key, part_len);
                cache = inner.cache.lock();
            }
        }
        if let Some(b) = cache.blocks.get(&key) {
            bump(&inner.counters.cache_hits, 1);
            return Ok(b.clone());
        }
        let joined = cache.fetching.get(&key).filter(|_| join).map(Arc::clone);
        let fetch = match &joined {
            Some(f) => {
                bump(&inner.counters.cache_hits, 1);
                Arc::clone(f)
            }
            None => {
                let fetch = Arc::new(Fetch::default());
                cache.fetching.insert(key, Arc::clone(&fetch));
                let start = key.index * inner.options.block_bytes.max(1);
                let end = (start + inner.options.block_bytes.max(1)).min(part_len);
                let path = part_path(&inner.prefix, file, key.part);
                let task_inner = Arc::clone(inner);
                let task_fetch = Arc::clone(&fetch);
                // Lock order: the cache, then the files (nothing takes
                // them the other way round).
                let on_disk = inner.disk.as_ref().and_then(|_| {
                    let files = inner.files.lock();
                    let f = files.get(&file).filter(|f| f.life == key.life)?;
                    let etag = f.etags.get(&key.part)?;
                    Some(DiskKey::new(
                        &inner.name,
                        file,
                        key.part,
                        part_len,
                        etag,
                        key.index,
                    ))
                });
                self.runtime.spawn(async move {
                    let disk = task_inner.disk.as_ref().zip(on_disk.as_ref());
                    if let Some(bytes) = disk.and_then(|(d, k)| d.read(k, end - start)) {
                        bump(&task_inner.counters.disk_hits, 1);
                        task_inner.fetched(key, Ok(bytes), &task_fetch);
                        return;
                    }
                    bump(&task_inner.counters.gets, 1);
                    let r = task_inner.store.get_range(&path, start..end).await;
                    if let (Ok(bytes), Some((d, k))) = (&r, disk) {
                        d.write(k, bytes);
                    }
                    task_inner.fetched(key, r, &task_fetch);
                });
                fetch
            }
        };
        drop(cache);
        if !wait {
            return Ok(Bytes::new());
        }
        match fetch.wait() {
            Err(_) if joined.is_some() => self.block_joining(file, key, part_len, wait, false),
            r => r.map_err(io::Error::other),
        }
    }

    /// Starts fetches of the blocks after `key`, in its part and the
    /// parts after it.
    fn read_ahead(&self, file: FileId, key: BlockKey, part_len: u64) {
        let block = self.inner.options.block_bytes.max(1);
        let ahead = self.inner.options.readahead;
        let parts: Vec<(u64, u64)> = {
            let files = self.inner.files.lock();
            let Some(f) = files.get(&file).filter(|f| f.life == key.life) else {
                return;
            };
            f.parts
                .range(key.part..)
                .map(|(&o, &l)| (o, l))
                .take(1 + ahead as usize)
                .collect()
        };
        let mut left = ahead;
        let mut next = (key.part, key.index + 1, part_len);
        let mut rest = parts.into_iter().skip(1);
        while left > 0 {
            let (part, index, len) = next;
            if index * block >= len {
                match rest.next() {
                    Some((p, l)) => next = (p, 0, l),
                    None => return,
                }
                continue;
            }
            let k = BlockKey {
                life: key.life,
                part,
                index,
            };
            let _ = self.block(file, k, len, false);
            left -= 1;
            next = (part, index + 1, len);
        }
    }
}

impl Inner {
    /// Stores a fetched block and wakes its readers.
    fn fetched(&self, key: BlockKey, r: Result<Bytes, object_store::Error>, fetch: &Fetch) {
        let mut cache = self.cache.lock();
        cache.fetching.remove(&key);
        let r = match r {
            Ok(b) => {
                bump(&self.counters.bytes_down, b.len() as u64);
                cache.bytes += b.len() as u64;
                if let Some(old) = cache.blocks.put(key, b.clone()) {
                    cache.bytes -= old.len() as u64;
                }
                while cache.bytes > self.options.cache_bytes {
                    match cache.blocks.pop_lru() {
                        Some((_, old)) => cache.bytes -= old.len() as u64,
                        None => break,
                    }
                }
                Ok(b)
            }
            Err(e) => Err(e.to_string()),
        };
        drop(cache);
        fetch.finish(r);
    }
}

/// Creates one part object, counting the request.
async fn put_part(
    store: Arc<dyn ObjectStore>,
    path: Path,
    data: Bytes,
    inner: Arc<Inner>,
) -> Result<Option<Arc<str>>, object_store::Error> {
    let len = data.len() as u64;
    bump(&inner.counters.puts, 1);
    let r = store
        .put_opts(
            &path,
            PutPayload::from(data),
            PutOptions::from(PutMode::Create),
        )
        .await?;
    bump(&inner.counters.bytes_up, len);
    Ok(r.e_tag.as_deref().map(etag_key))
}

fn part_path(prefix: &Path, file: FileId, offset: u64) -> Path {
    prefix
        .clone()
        .join(file.file_name())
        .join(format!("{offset:016x}"))
}

fn parse_offset(s: &str) -> Option<u64> {
    if s.len() != 16
        || !s
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// A random nonce (from the operating system's generator, via the hasher
/// seeds the standard library draws from it).
fn nonce() -> [u8; NONCE_LEN] {
    use std::hash::{BuildHasher, Hasher};
    let mut out = [0u8; NONCE_LEN];
    for chunk in out.chunks_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0);
        chunk.copy_from_slice(&h.finish().to_le_bytes()[..chunk.len()]);
    }
    out
}

fn to_io(e: object_store::Error) -> io::Error {
    let kind = match &e {
        object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
        object_store::Error::AlreadyExists { .. } => io::ErrorKind::AlreadyExists,
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => io::ErrorKind::PermissionDenied,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

fn not_found(file: FileId) -> io::Error {
    crate::backend::not_found(file)
}

impl Backend for ObjectBackend {
    fn read_at(&self, file: FileId, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let eof = || {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end of the file",
            )
        };
        if file == FileId::Superblock {
            let sb = self.inner.superblock.lock();
            let content = sb.content.as_ref().ok_or_else(|| not_found(file))?;
            return crate::backend::read_from(content, offset, buf);
        }
        let end = offset.checked_add(buf.len() as u64).ok_or_else(eof)?;
        let files = self.inner.files.lock();
        let f = files.get(&file).ok_or_else(|| not_found(file))?;
        if end > f.len() {
            return Err(eof());
        }
        // Copy what is still in memory (uploading or staged) now; read the
        // uploaded part of the range after letting go of the lock.
        let copy_from = |start: u64, bytes: &[u8], buf: &mut [u8]| {
            let (lo, hi) = (offset.max(start), end.min(start + bytes.len() as u64));
            if lo < hi {
                buf[(lo - offset) as usize..(hi - offset) as usize]
                    .copy_from_slice(&bytes[(lo - start) as usize..(hi - start) as usize]);
            }
        };
        for u in &f.uploading {
            copy_from(u.offset, &u.data, buf);
        }
        copy_from(f.staged_at(), &f.staged, buf);
        if offset >= f.uploaded {
            return Ok(());
        }
        let life = f.life;
        let parts: Vec<(u64, u64)> = f.parts.iter().map(|(&o, &l)| (o, l)).collect();
        let upto = (end.min(f.uploaded) - offset) as usize;
        drop(files);
        self.read_uploaded(file, life, &parts, offset, &mut buf[..upto])
    }

    fn write_at(&self, file: FileId, offset: u64, data: &[u8]) -> io::Result<()> {
        self.writable()?;
        if file == FileId::Superblock {
            let mut sb = self.inner.superblock.lock();
            let content = sb.content.get_or_insert_with(Vec::new);
            crate::backend::write_into(content, offset, data)?;
            sb.dirty = true;
            return Ok(());
        }
        let mut files = self.inner.files.lock();
        let f = files
            .entry(file)
            .or_insert_with(|| ObjFile::new(self.inner.lives.fetch_add(1, Ordering::Relaxed)));
        if let Some(e) = &f.failed {
            return Err(io::Error::other(e.clone()));
        }
        let len = f.len();
        if offset < len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{file}: object storage files are append-only (a write at {offset} before the end, {len})"),
            ));
        }
        f.staged.resize(f.staged.len() + (offset - len) as usize, 0);
        f.staged.extend_from_slice(data);
        if f.staged.len() < self.inner.options.part_bytes {
            return Ok(());
        }
        self.start_upload(f, file);
        // Memory stays bounded: past the limit, wait for the oldest.
        let keep = self.inner.options.uploads.max(1);
        if f.uploading.len() <= keep {
            return Ok(());
        }
        drop(files);
        self.settle(file, keep)
    }

    fn create_whole(&self, file: FileId, data: &[u8]) -> io::Result<()> {
        self.writable()?;
        if file != FileId::Superblock {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "only the superblock is written whole",
            ));
        }
        {
            let mut sb = self.inner.superblock.lock();
            sb.content = Some(data.to_vec());
            sb.dirty = true;
        }
        self.put_superblock()
    }

    fn len(&self, file: FileId) -> io::Result<u64> {
        if file == FileId::Superblock {
            let sb = self.inner.superblock.lock();
            return Ok(sb.content.as_ref().ok_or_else(|| not_found(file))?.len() as u64);
        }
        let files = self.inner.files.lock();
        Ok(files.get(&file).ok_or_else(|| not_found(file))?.len())
    }

    fn sync(&self, file: FileId) -> io::Result<()> {
        self.writable()?;
        if file == FileId::Superblock {
            if self.inner.superblock.lock().content.is_none() {
                return Err(not_found(file));
            }
            return self.put_superblock();
        }
        // Cut the staged bytes into one last upload, then wait for every
        // upload of the file.
        {
            let mut files = self.inner.files.lock();
            let f = files.get_mut(&file).ok_or_else(|| not_found(file))?;
            if let Some(e) = &f.failed {
                return Err(io::Error::other(e.clone()));
            }
            if !f.staged.is_empty() {
                self.start_upload(f, file);
            }
        }
        self.settle(file, 0)
    }

    fn sync_dir(&self) -> io::Result<()> {
        self.writable()
    }

    fn remove(&self, file: FileId) -> io::Result<()> {
        self.writable()?;
        if file == FileId::Superblock {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the superblock object is never removed",
            ));
        }
        if self.inner.files.lock().remove(&file).is_none() {
            return Err(not_found(file));
        }
        let inner = &self.inner;
        for part in self.list_parts(Some(file))? {
            bump(&inner.counters.deletes, 1);
            let path = part_path(&inner.prefix, file, part.offset);
            match self.runtime.block_on(inner.store.delete(&path)) {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(to_io(e)),
            }
        }
        Ok(())
    }

    fn list(&self) -> io::Result<Vec<FileId>> {
        let mut out: Vec<FileId> = self.inner.files.lock().keys().copied().collect();
        if self.inner.superblock.lock().content.is_some() {
            out.push(FileId::Superblock);
        }
        out.sort_unstable();
        Ok(out)
    }

    fn appends_only(&self) -> bool {
        true
    }

    fn reads_ahead(&self) -> bool {
        true
    }

    fn seal(&self, file: FileId) -> io::Result<()> {
        self.writable()?;
        if file == FileId::Superblock {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the superblock is switched, not sealed",
            ));
        }
        self.seal_file(file)
    }

    fn prefetch(&self, file: FileId, offset: u64, len: u64) {
        let block = self.inner.options.block_bytes.max(1);
        let end = offset.saturating_add(len);
        let (life, parts): (u64, Vec<(u64, u64)>) = {
            let files = self.inner.files.lock();
            let Some(f) = files.get(&file) else { return };
            let first = f.parts.range(..=offset).next_back().map_or(0, |(&o, _)| o);
            let parts = f
                .parts
                .range(first..end.min(f.uploaded))
                .map(|(&o, &l)| (o, l))
                .collect();
            (f.life, parts)
        };
        for (part, part_len) in parts {
            let lo = offset.max(part) - part;
            let hi = end.min(part + part_len) - part;
            if lo >= hi {
                continue;
            }
            for index in lo / block..=(hi - 1) / block {
                let key = BlockKey { life, part, index };
                // Not waited for: an error shows when the block is read.
                let _ = self.block(file, key, part_len, false);
            }
        }
    }

    fn name(&self, file: FileId) -> String {
        format!(
            "{}/{}",
            self.inner.name.trim_end_matches('/'),
            file.file_name()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::tests::check_contract;
    use object_store::memory::InMemory;

    fn backend(store: &Arc<InMemory>, prefix: &str) -> ObjectBackend {
        let store: Arc<dyn ObjectStore> = Arc::clone(store) as Arc<dyn ObjectStore>;
        ObjectBackend::open(store, prefix, "mem://", false, small()).unwrap()
    }

    fn small() -> ObjectOptions {
        ObjectOptions {
            part_bytes: 64,
            block_bytes: 16,
            cache_bytes: 64,
            readahead: 2,
            uploads: 2,
            threads: 2,
            cache_dir: None,
        }
    }

    #[test]
    fn object_backend_keeps_the_contract() {
        check_contract(&backend(&Arc::new(InMemory::new()), "store"));
        // And over the fault-injecting store, with no fault armed.
        let faulty = crate::object_faulty::FaultyObjectStore::new(3);
        check_contract(&faulty.backend("store", false, small()).unwrap());
    }

    #[test]
    fn bytes_survive_reopening_across_parts_and_blocks() {
        let mem = Arc::new(InMemory::new());
        let seg = FileId::Segment(crate::SegmentId(3));
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        {
            let b = backend(&mem, "p");
            for chunk in data.chunks(37) {
                let at = b.len(seg).unwrap_or(0);
                b.write_at(seg, at, chunk).unwrap();
                // A writer ahead of its uploads waits for them.
                let files = b.inner.files.lock();
                assert!(files[&seg].uploading.len() <= small().uploads);
            }
            // Readable before and after the sync, in memory or not.
            let mut buf = vec![0; 300];
            b.read_at(seg, 500, &mut buf).unwrap();
            assert_eq!(buf, data[500..800]);
            b.sync(seg).unwrap();
            b.read_at(seg, 10, &mut buf).unwrap();
            assert_eq!(buf, data[10..310]);
        }
        let b = backend(&mem, "p");
        assert_eq!(b.len(seg).unwrap(), 1000);
        let mut all = vec![0; 1000];
        b.read_at(seg, 0, &mut all).unwrap();
        assert_eq!(all, data);
        assert!(b.counts().gets > 1000 / 16 / 2, "{:?}", b.counts());
        // Two prefixes of one bucket are two stores.
        let other = backend(&mem, "p2");
        assert_eq!(other.list().unwrap(), vec![]);
    }

    #[test]
    fn a_prefetched_range_is_read_from_memory() {
        let mem = Arc::new(InMemory::new());
        let seg = FileId::Segment(crate::SegmentId(2));
        let data: Vec<u8> = (0..400u32).map(|i| i as u8).collect();
        {
            let b = backend(&mem, "p");
            b.write_at(seg, 0, &data).unwrap();
            b.sync(seg).unwrap();
        }
        // No sequential readahead: every fetch here is the prefetch's.
        let options = ObjectOptions {
            readahead: 0,
            ..small()
        };
        let b = ObjectBackend::open(mem, "p", "mem://", false, options).unwrap();
        assert!(b.reads_ahead());
        b.prefetch(seg, 100, 40);
        b.prefetch(seg, 1000, 40); // past the end: nothing to fetch
                                   // Let the background fetches land, then read without a request.
        let mut buf = [0u8; 40];
        for _ in 0..200 {
            if b.inner.cache.lock().fetching.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let fetched = b.counts().gets;
        b.read_at(seg, 100, &mut buf).unwrap();
        assert_eq!(&buf[..], &data[100..140]);
        assert_eq!(b.counts().gets, fetched);
        assert!(b.counts().cache_hits >= 3, "{:?}", b.counts());
    }

    #[test]
    fn a_failed_upload_fails_every_later_sync() {
        let faulty = crate::object_faulty::FaultyObjectStore::new(7);
        let b = faulty.backend("p", false, small()).unwrap();
        let seg = FileId::Segment(crate::SegmentId(1));
        b.write_at(seg, 0, b"first").unwrap();
        b.sync(seg).unwrap();
        faulty.fail_after(0);
        b.write_at(seg, 5, b"second").unwrap();
        assert!(b.sync(seg).is_err());
        faulty.heal();
        // What follows a part that may never have landed is never stored.
        let e = b.write_at(seg, 11, b"third").unwrap_err();
        assert!(e.to_string().contains("an upload failed"), "{e}");
        assert!(b.sync(seg).is_err());
        // A new open sees what landed, in order: never a part past a gap.
        let again = faulty.backend("p", true, small()).unwrap();
        let len = again.len(seg).unwrap();
        assert!(len == 5 || len == 11, "{len}");
        // A killed process reaches nothing, not even a listing.
        let before = faulty.requests();
        faulty.kill();
        assert!(faulty.backend("p", true, small()).is_err());
        assert!(faulty.requests() > before);
    }

    #[test]
    fn a_reader_that_joined_a_failed_fetch_fetches_again() {
        let faulty = crate::object_faulty::FaultyObjectStore::new(11);
        let seg = FileId::Segment(crate::SegmentId(6));
        let data: Vec<u8> = (0..200u32).map(|i| (i * 3) as u8).collect();
        {
            let b = faulty.backend("p", false, small()).unwrap();
            b.write_at(seg, 0, &data).unwrap();
            b.sync(seg).unwrap();
        }
        let options = ObjectOptions {
            readahead: 0,
            ..small()
        };
        let b = Arc::new(faulty.backend("p", true, options).unwrap());
        // A prefetch made while the store fails, held in flight...
        faulty.hold_gets();
        faulty.fail_after(0);
        b.prefetch(seg, 32, 16);
        let until = |what: &str, done: &dyn Fn() -> bool| {
            for _ in 0..2000 {
                if done() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            panic!("{what} never happened");
        };
        until("the prefetch's request", &|| faulty.gets_held() == 1);
        // ...and a read, after the store recovered, that joins it.
        faulty.heal();
        let joins = b.counts().cache_hits;
        let reader = {
            let b = Arc::clone(&b);
            std::thread::spawn(move || {
                let mut buf = [0u8; 16];
                b.read_at(seg, 32, &mut buf).map(|()| buf)
            })
        };
        until("the read joining the fetch", &|| {
            b.counts().cache_hits > joins
        });
        faulty.release_gets();
        // The prefetch's failure is not the reader's: it fetched again.
        let read = reader.join().unwrap().unwrap();
        assert_eq!(&read[..], &data[32..48]);
    }

    #[test]
    fn a_reopened_store_reads_from_its_directory_cache() {
        let mem = Arc::new(InMemory::new());
        let dir = tempfile::tempdir().unwrap();
        let seg = FileId::Segment(crate::SegmentId(4));
        let data: Vec<u8> = (0..500u32).map(|i| (i % 253) as u8).collect();
        let options = || ObjectOptions {
            readahead: 0,
            cache_dir: Some((dir.path().to_path_buf(), 1 << 20)),
            ..small()
        };
        let open = || {
            let store: Arc<dyn ObjectStore> = Arc::clone(&mem) as Arc<dyn ObjectStore>;
            ObjectBackend::open(store, "p", "mem://", false, options()).unwrap()
        };
        {
            let b = open();
            b.write_at(seg, 0, &data).unwrap();
            b.sync(seg).unwrap();
        }
        let mut all = vec![0; 500];
        let first = open();
        first.read_at(seg, 0, &mut all).unwrap();
        assert_eq!(all, data);
        let fetched = first.counts();
        assert!(fetched.gets >= 500 / 16, "{fetched:?}");
        drop(first);
        // Opened again: every block comes from the directory.
        let second = open();
        let before = second.counts().gets;
        all.fill(0);
        second.read_at(seg, 0, &mut all).unwrap();
        assert_eq!(all, data);
        assert_eq!(second.counts().gets, before, "{:?}", second.counts());
        assert!(second.counts().disk_hits >= 500 / 16);
    }

    #[test]
    fn hostile_objects_are_refused_or_ignored() {
        let mem = Arc::new(InMemory::new());
        let put = |key: &str, bytes: Vec<u8>| {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(mem.put(&Path::from(key), PutPayload::from(bytes)))
                .unwrap();
        };
        let open = || {
            let store: Arc<dyn ObjectStore> = Arc::clone(&mem) as Arc<dyn ObjectStore>;
            ObjectBackend::open(store, "p", "mem://", true, small())
        };
        // Objects that are not parts are not files.
        put("p/notes.txt", b"x".to_vec());
        put("p/seg-000001.lx/12", b"short offset".to_vec());
        put("p/seg-1.lx/0000000000000000", b"bad name".to_vec());
        put("p/seg-000002.lx/000000000000000A", b"upper case".to_vec());
        put(
            "p/seg-000003.lx/0000000000000000/deeper",
            b"nested".to_vec(),
        );
        put(
            "p2/seg-000004.lx/0000000000000000",
            b"another store".to_vec(),
        );
        assert_eq!(open().unwrap().list().unwrap(), vec![]);
        // A superblock object that is not one, or too large to be one.
        put("p/superblock", b"garbage".to_vec());
        let e = open().unwrap_err().to_string();
        assert!(e.contains("not a Larix superblock"), "{e}");
        put(
            "p/superblock",
            vec![0; (MAX_SUPERBLOCK_OBJECT + 1) as usize],
        );
        let e = open().unwrap_err().to_string();
        assert!(e.contains("too many"), "{e}");
    }

    #[test]
    fn writes_before_the_end_are_refused() {
        let b = backend(&Arc::new(InMemory::new()), "p");
        let seg = FileId::Segment(crate::SegmentId(1));
        b.write_at(seg, 0, b"abcd").unwrap();
        let e = b.write_at(seg, 2, b"xy").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn unsynced_bytes_are_gone_after_reopening() {
        let mem = Arc::new(InMemory::new());
        let seg = FileId::Segment(crate::SegmentId(1));
        {
            let b = backend(&mem, "p");
            b.write_at(seg, 0, b"durable").unwrap();
            b.sync(seg).unwrap();
            b.write_at(seg, 7, b"lost").unwrap();
        }
        let b = backend(&mem, "p");
        assert_eq!(b.len(seg).unwrap(), 7);
    }

    #[test]
    fn a_second_writer_fences_the_first() {
        let mem = Arc::new(InMemory::new());
        let log = FileId::Log(crate::LogId(4));
        let first = backend(&mem, "p");
        first.create_whole(FileId::Superblock, b"slots").unwrap();
        first.write_at(log, 0, b"record one").unwrap();
        first.sync(log).unwrap();

        let second = backend(&mem, "p");
        // What recovery does on a backend that appends only.
        second.seal(log).unwrap();
        second.seal(FileId::Log(crate::LogId(5))).unwrap();
        assert_eq!(second.len(FileId::Log(crate::LogId(5))).unwrap(), 0);
        let mut buf = [0u8; 5];
        second.read_at(FileId::Superblock, 0, &mut buf).unwrap();
        assert_eq!(&buf, b"slots");
        assert_eq!(second.len(log).unwrap(), 10);

        // The first writer can neither commit to its log nor switch the
        // superblock any more.
        first.write_at(log, 10, b"record two").unwrap();
        assert!(first.sync(log).is_err());
        first.write_at(FileId::Superblock, 0, b"SLOTS").unwrap();
        let e = first.sync(FileId::Superblock).unwrap_err();
        assert!(e.to_string().contains("another writer"), "{e}");

        // The second one can.
        second.write_at(FileId::Superblock, 0, b"SLOTS").unwrap();
        second.sync(FileId::Superblock).unwrap();
        let third = ObjectBackend::open(
            Arc::clone(&mem) as Arc<dyn ObjectStore>,
            "p",
            "mem://",
            true,
            small(),
        )
        .unwrap();
        third.read_at(FileId::Superblock, 0, &mut buf).unwrap();
        assert_eq!(&buf, b"SLOTS");
        assert_eq!(third.len(log).unwrap(), 10);
        assert_eq!(
            third.write_at(log, 10, b"x").unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
    }

    #[test]
    fn urls_are_checked() {
        assert_eq!(
            split_url("s3://bucket/a/b/").unwrap(),
            ("s3://bucket".to_string(), "a/b".to_string())
        );
        assert_eq!(
            split_url("s3://bucket").unwrap(),
            ("s3://bucket".to_string(), String::new())
        );
        for bad in ["s3://", "s3:///x", "http://x/y", "s3://b/../x", "bucket/x"] {
            assert!(split_url(bad).is_err(), "{bad}");
        }
    }
}
