//! The directory cache of an [`ObjectBackend`](crate::ObjectBackend):
//! blocks read from an object store, kept as files in a local directory, so
//! that a store opened again does not fetch what it read before.
//!
//! A block's file is named by a hash of what identifies its bytes: the
//! store's name, the file, the part's offset, length and ETag, and the
//! block's index. Parts are never overwritten (a part name reused after
//! its file was removed has another ETag), so a name never meets other
//! bytes. A file holds the block and an xxh3 hash of it: a damaged or
//! truncated file is removed and the block fetched again. Files are
//! written to a temporary name and renamed, so a reader never sees half a
//! file. Past the bound, the oldest files (by modification time) go until
//! the directory holds three quarters of it.
//!
//! Nothing read from the store decides a path: names are hashes, made
//! here, in the directory the caller chose.

use crate::FileId;
use bytes::Bytes;
use parking_lot::Mutex;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What a block file's name ends with.
const SUFFIX: &str = ".blk";

/// The length of the hash after a block's bytes.
const HASH_LEN: usize = 8;

/// A directory of cached blocks, bounded in bytes.
pub(crate) struct DiskCache {
    dir: PathBuf,
    max_bytes: u64,
    /// The bytes of the block files, as last counted plus those written
    /// since (a block written twice counts twice until the next count).
    bytes: Mutex<u64>,
    /// Numbers temporary files, unique in this process.
    temps: AtomicU64,
}

/// The name of a block's file.
pub(crate) struct DiskKey(String);

impl DiskKey {
    /// The key of block `index` of the part at `part` (`part_len` bytes,
    /// ETag `etag`) of `file` in the store called `store`.
    pub(crate) fn new(
        store: &str,
        file: FileId,
        part: u64,
        part_len: u64,
        etag: &str,
        index: u64,
    ) -> DiskKey {
        let mut h = blake3::Hasher::new();
        for field in [
            store.as_bytes(),
            file.file_name().as_bytes(),
            etag.as_bytes(),
        ] {
            h.update(&(field.len() as u64).to_le_bytes());
            h.update(field);
        }
        for n in [part, part_len, index] {
            h.update(&n.to_le_bytes());
        }
        let hex: String = h.finalize().as_bytes()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        DiskKey(format!("{hex}{SUFFIX}"))
    }
}

impl DiskCache {
    /// The cache in `dir` (created if missing), holding at most about
    /// `max_bytes`.
    ///
    /// # Errors
    /// The directory cannot be created or read.
    pub(crate) fn open(dir: PathBuf, max_bytes: u64) -> io::Result<DiskCache> {
        fs::create_dir_all(&dir)?;
        let cache = DiskCache {
            dir,
            max_bytes,
            bytes: Mutex::new(0),
            temps: AtomicU64::new(0),
        };
        // Temporary files of a process that died while writing them.
        for entry in fs::read_dir(&cache.dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with("tmp-") {
                let _ = fs::remove_file(entry.path());
            }
        }
        cache.evict(max_bytes)?;
        Ok(cache)
    }

    fn path(&self, key: &DiskKey) -> PathBuf {
        self.dir.join(&key.0)
    }

    /// The block of `key` if its file holds `len` intact bytes; a damaged
    /// file is removed.
    pub(crate) fn read(&self, key: &DiskKey, len: u64) -> Option<Bytes> {
        let path = self.path(key);
        let mut data = fs::read(&path).ok()?;
        let body = data.len().checked_sub(HASH_LEN)?;
        let intact = body as u64 == len
            && data[body..] == xxhash_rust::xxh3::xxh3_64(&data[..body]).to_le_bytes();
        if !intact {
            let _ = fs::remove_file(&path);
            return None;
        }
        data.truncate(body);
        Some(Bytes::from(data))
    }

    /// Keeps `block` under `key`. Failures are ignored: the cache only
    /// saves requests.
    pub(crate) fn write(&self, key: &DiskKey, block: &[u8]) {
        let temp = self.dir.join(format!(
            "tmp-{}-{}",
            std::process::id(),
            self.temps.fetch_add(1, Ordering::Relaxed)
        ));
        let mut data = Vec::with_capacity(block.len() + HASH_LEN);
        data.extend_from_slice(block);
        data.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(block).to_le_bytes());
        if fs::write(&temp, &data).is_err() || fs::rename(&temp, self.path(key)).is_err() {
            let _ = fs::remove_file(&temp);
            return;
        }
        let over = {
            let mut bytes = self.bytes.lock();
            *bytes += data.len() as u64;
            *bytes > self.max_bytes
        };
        if over {
            let _ = self.evict(self.max_bytes / 4 * 3);
        }
    }

    /// Removes the oldest block files until they hold at most `target`
    /// bytes, and counts what is left.
    fn evict(&self, target: u64) -> io::Result<()> {
        let mut bytes = self.bytes.lock();
        let mut files = Vec::new();
        let mut total = 0;
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if !entry.file_name().to_string_lossy().ends_with(SUFFIX) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            total += meta.len();
            files.push((meta.modified().ok(), meta.len(), entry.path()));
        }
        files.sort();
        for (_, len, path) in files {
            if total <= target {
                break;
            }
            if remove(&path) {
                total -= len;
            }
        }
        *bytes = total;
        Ok(())
    }
}

fn remove(path: &Path) -> bool {
    fs::remove_file(path).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u64) -> DiskKey {
        DiskKey::new("s3://b/p", FileId::Superblock, 0, 100, "etag", i)
    }

    #[test]
    fn blocks_come_back_and_damage_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::open(dir.path().to_path_buf(), 1 << 20).unwrap();
        cache.write(&key(1), b"block one");
        assert_eq!(cache.read(&key(1), 9).as_deref(), Some(&b"block one"[..]));
        assert_eq!(
            cache.read(&key(1), 10),
            None,
            "a length other than expected"
        );
        cache.write(&key(2), b"block two");
        let path = cache.path(&key(2));
        let mut data = fs::read(&path).unwrap();
        data[0] ^= 1;
        fs::write(&path, &data).unwrap();
        assert_eq!(cache.read(&key(2), 9), None);
        assert!(!path.exists(), "a damaged file is removed");
        assert_eq!(cache.read(&key(3), 9), None);
    }

    #[test]
    fn the_directory_stays_within_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::open(dir.path().to_path_buf(), 10_000).unwrap();
        for i in 0..100 {
            cache.write(&key(i), &[i as u8; 1000]);
        }
        let total: u64 = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!(total <= 10_000 + 1008, "{total}");
        // The newest survive.
        assert!(cache.read(&key(99), 1000).is_some());
        // Reopening counts and bounds what is there.
        drop(cache);
        let again = DiskCache::open(dir.path().to_path_buf(), 3_000).unwrap();
        assert!(*again.bytes.lock() <= 3_000);
    }
}
