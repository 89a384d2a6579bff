//! Out-of-line values: writing a value too large for a leaf into chunks,
//! and reading it back whole or piece by piece.
//!
//! A value of `len` bytes (more than a leaf entry holds, at most
//! [`MAX_VALUE_LEN`]) is cut into chunks of [`CHUNK_BYTES`] (the last may
//! be shorter). One chunk is referenced from the leaf directly; more are
//! listed by a value node, which the leaf references. Chunks and value
//! nodes are ordinary nodes of the store: they pass the filter pipeline on
//! the workers (each bound to its own id), are counted in the node table,
//! moved by compaction, and freed with the last reference to them (B4).
//! They are never edited, so a clone shares them as it shares any node.

use crate::node::{chunks_for, Expect, Node, ValueRef, CHUNK_BYTES, MAX_VALUE_LEN};
use crate::read;
use crate::{Error, Result};
use larix_nodestore::{NodeId, NodeStore};
use std::collections::VecDeque;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

/// Writes the `len` bytes `source` yields as an out-of-line value: chunk
/// by chunk, each handed to the store as it is read (so memory holds one
/// chunk, whatever the value's size). The caller holds the writer's lock
/// and stores the reference it gets; the new nodes have refcount 1, and
/// their ids come back too, for the caller to free if it cannot store the
/// reference.
///
/// # Errors
/// [`Error::ValueTooLarge`] past [`MAX_VALUE_LEN`]; [`Error::ValueSource`]
/// if `source` fails or ends early; a store error. Every node written is
/// freed again then: a failed write leaves the store as it was.
pub(crate) fn write(
    store: &NodeStore<Node>,
    source: &mut dyn Read,
    len: u64,
) -> Result<(ValueRef, Vec<NodeId>)> {
    let Some(chunks) = chunks_for(len) else {
        return Err(Error::ValueTooLarge {
            value_len: len,
            limit: MAX_VALUE_LEN,
        });
    };
    let mut written = Vec::with_capacity(chunks + 1);
    let result = (|| {
        store.writable()?;
        let mut left = len;
        while left > 0 {
            let mut chunk = Node::empty_chunk(CHUNK_BYTES.min(left as usize));
            let data = chunk.chunk_data_mut();
            source.read_exact(data).map_err(Error::ValueSource)?;
            left -= data.len() as u64;
            written.push(put_new(store, chunk)?);
        }
        if chunks == 1 {
            return Ok(written[0]);
        }
        let list = Node::value_list(len, &written);
        let id = put_new(store, list)?;
        written.push(id);
        Ok(id)
    })();
    match result {
        Ok(id) => Ok((ValueRef { id, len }, written)),
        Err(e) => {
            for id in written {
                // A fresh id of the writer's own: freeing it cannot fail
                // but for a latched store, which refuses everything anyway.
                let _ = store.free(id);
            }
            Err(e)
        }
    }
}

/// Stores `node` under a fresh id with refcount 1.
fn put_new(store: &NodeStore<Node>, node: Node) -> Result<NodeId> {
    let id = store.allocate();
    store.put(id, Arc::new(node))?;
    store.set_refcount(id, 1)?;
    Ok(id)
}

/// The chunks of the value `r` refers to, in order, checked to add up to
/// its length.
///
/// # Errors
/// A store error, [`Error::NodeKind`], or [`Error::DamagedValue`].
pub(crate) fn chunk_ids(store: &NodeStore<Node>, r: ValueRef) -> Result<Vec<NodeId>> {
    match r.expect() {
        Expect::Chunk => Ok(vec![r.id]),
        _ => {
            let list = store.get_transient(r.id)?;
            read::expect(r.id, &list, Some(Expect::Value))?;
            if list.value_len() != r.len {
                return Err(damaged(
                    r.id,
                    format!("lists {} bytes, its leaf says {}", list.value_len(), r.len),
                ));
            }
            Ok(list.chunk_ids().collect())
        }
    }
}

/// Reads chunk `index` of the value `r`, checked to be as long as that
/// chunk must be.
fn chunk(store: &NodeStore<Node>, r: ValueRef, id: NodeId, index: usize) -> Result<Arc<Node>> {
    let node = store.get_transient(id)?;
    read::expect(id, &node, Some(Expect::Chunk))?;
    let want = chunk_len(r.len, index);
    if node.chunk_data().len() != want {
        return Err(damaged(
            r.id,
            format!(
                "chunk {index} ({id}) holds {} bytes, not {want}",
                node.chunk_data().len()
            ),
        ));
    }
    Ok(node)
}

/// Bytes of chunk `index` of a value of `len` bytes.
pub(crate) fn chunk_len(len: u64, index: usize) -> usize {
    let start = index as u64 * CHUNK_BYTES as u64;
    (len - start).min(CHUNK_BYTES as u64) as usize
}

fn damaged(id: NodeId, reason: String) -> Error {
    Error::DamagedValue { id, reason }
}

/// The whole value `r` refers to. Where decoding a chunk is costly, the
/// chunks are read on up to [`NodeStore::read_threads`] threads, each
/// filling its share of the value (a run of whole chunks) in order; memory
/// holds the value and one chunk a thread.
///
/// # Errors
/// As [`chunk_ids`], and for a chunk that cannot be read or is damaged.
pub(crate) fn load(store: &NodeStore<Node>, r: ValueRef) -> Result<Vec<u8>> {
    let ids = chunk_ids(store, r)?;
    let threads = store.read_threads().min(ids.len());
    if threads < 2 {
        let mut out = Vec::with_capacity(r.len as usize);
        for (index, &id) in ids.iter().enumerate() {
            out.extend_from_slice(chunk(store, r, id, index)?.chunk_data());
        }
        return Ok(out);
    }
    let mut out = vec![0; r.len as usize];
    let per = ids.len().div_ceil(threads);
    // Chunks `first..` of the value into `share`, which starts at chunk
    // `first` and ends at a chunk's end.
    let fill = |first: usize, share: &mut [u8]| -> Result<()> {
        for (k, to) in share.chunks_mut(CHUNK_BYTES).enumerate() {
            let index = first + k;
            // `chunk` checked the length: `to` is chunk `index` whole.
            to.copy_from_slice(chunk(store, r, ids[index], index)?.chunk_data());
        }
        Ok(())
    };
    std::thread::scope(|s| {
        let mut shares = out.chunks_mut(per * CHUNK_BYTES).enumerate();
        let (_, own) = shares.next().expect("a value of two chunks or more");
        let helpers: Vec<_> = shares
            .map(|(i, share)| {
                std::thread::Builder::new()
                    .name("larix-value-read".into())
                    .spawn_scoped(s, move || fill(i * per, share))
            })
            .collect();
        let mut result = fill(0, own);
        for helper in helpers {
            let done = match helper {
                Ok(handle) => handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(source) => Err(Error::Store(larix_nodestore::StoreError::Io {
                    file: "value read thread".into(),
                    source,
                })),
            };
            result = result.and(done);
        }
        result
    })?;
    Ok(out)
}

/// Who keeps a value's nodes readable for a [`ValueReader`]: a pinned
/// snapshot, or (for an inline value) nothing.
pub(crate) type Keeper = Arc<crate::snapshot::Pinned>;

/// A value read piece by piece: [`Read`] and [`Seek`] over the value of a
/// key as it was when the reader was made (it keeps the value's nodes, as
/// a snapshot keeps its trees). Memory holds one chunk at a time.
pub struct ValueReader {
    source: Source,
    len: u64,
    pos: u64,
}

enum Source {
    Inline(Vec<u8>),
    Chunks {
        keeper: Keeper,
        value: ValueRef,
        ids: Vec<NodeId>,
        /// The chunk last read, by index.
        current: Option<(usize, Arc<Node>)>,
        /// The chunks after it, each being read on a thread of its own
        /// where decoding is costly: as many as [`NodeStore::read_threads`],
        /// so a reader going forward decodes that many chunks at once
        /// (dropped, each waits for its thread).
        ahead: VecDeque<(usize, Ahead)>,
    },
}

/// A chunk being read on a thread of its own. Dropped unread (a seek
/// elsewhere, the reader dropped), it waits for the thread, so that no
/// thread keeps the value's nodes once its reader has let them go.
struct Ahead(Option<std::thread::JoinHandle<Result<Arc<Node>>>>);

impl Ahead {
    /// Starts reading with `read` on a new thread; `None` if none starts.
    fn start(read: impl FnOnce() -> Result<Arc<Node>> + Send + 'static) -> Option<Ahead> {
        let handle = std::thread::Builder::new()
            .name("larix-value-read".into())
            .spawn(read)
            .ok()?;
        Some(Ahead(Some(handle)))
    }

    /// The chunk, once read.
    fn wait(mut self) -> Result<Arc<Node>> {
        let handle = self.0.take().expect("taken only here and in drop");
        handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            // Whatever it read, or failed to, is not wanted.
            let _ = handle.join();
        }
    }
}

impl ValueReader {
    /// A reader over a value held in a leaf.
    pub(crate) fn inline(value: Vec<u8>) -> ValueReader {
        ValueReader {
            len: value.len() as u64,
            source: Source::Inline(value),
            pos: 0,
        }
    }

    /// A reader over the out-of-line value `value`, whose nodes `keeper`
    /// keeps.
    pub(crate) fn out_of_line(keeper: Keeper, value: ValueRef) -> Result<ValueReader> {
        let ids = chunk_ids(keeper.store(), value)?;
        Ok(ValueReader {
            source: Source::Chunks {
                keeper,
                value,
                ids,
                current: None,
                ahead: VecDeque::new(),
            },
            len: value.len,
            pos: 0,
        })
    }

    /// The value's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Debug for ValueReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValueReader")
            .field("len", &self.len)
            .field("pos", &self.pos)
            .finish()
    }
}

impl Read for ValueReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let n = match &mut self.source {
            Source::Inline(v) => {
                let from = &v[self.pos as usize..];
                let n = from.len().min(buf.len());
                buf[..n].copy_from_slice(&from[..n]);
                n
            }
            Source::Chunks {
                keeper,
                value,
                ids,
                current,
                ahead,
            } => {
                let index = (self.pos / CHUNK_BYTES as u64) as usize;
                if current.as_ref().is_none_or(|(i, _)| *i != index) {
                    let node = match ahead.pop_front() {
                        Some((i, next)) if i == index => {
                            read_ahead(keeper, *value, ids, ahead, index);
                            next.wait()
                        }
                        _ => {
                            // A seek elsewhere: what was read ahead is dropped.
                            ahead.clear();
                            read_ahead(keeper, *value, ids, ahead, index);
                            chunk(keeper.store(), *value, ids[index], index)
                        }
                    }
                    .map_err(io::Error::other)?;
                    *current = Some((index, node));
                }
                let data = current.as_ref().expect("read above").1.chunk_data();
                let from = &data[(self.pos % CHUNK_BYTES as u64) as usize..];
                let n = from.len().min(buf.len());
                buf[..n].copy_from_slice(&from[..n]);
                n
            }
        };
        self.pos += n as u64;
        Ok(n)
    }
}

/// Starts reading the chunks after chunk `index` of `value` that `ahead`
/// lacks, each on a thread of its own, up to [`NodeStore::read_threads`]
/// of them: none where decoding is cheap, and fewer where no thread starts.
fn read_ahead(
    keeper: &Keeper,
    value: ValueRef,
    ids: &[NodeId],
    ahead: &mut VecDeque<(usize, Ahead)>,
    index: usize,
) {
    let threads = keeper.store().read_threads();
    if threads < 2 {
        return;
    }
    let from = ahead.back().map_or(index, |&(i, _)| i) + 1;
    let to = ids.len().min(index + 1 + threads);
    for (next, &id) in ids.iter().enumerate().take(to).skip(from) {
        let keeper = Arc::clone(keeper);
        match Ahead::start(move || chunk(keeper.store(), value, id, next)) {
            Some(started) => ahead.push_back((next, started)),
            // The chunk is read when it is wanted.
            None => return,
        }
    }
}

impl Seek for ValueReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let Some(target) = target else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to a negative position",
            ));
        };
        self.pos = target;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    /// A chunk read ahead and dropped unread waits for its thread: a seek
    /// elsewhere dropped the first chunk read ahead without waiting, and
    /// its thread could keep the value's nodes after the reader let them
    /// go.
    #[test]
    fn a_chunk_read_ahead_and_dropped_waits_for_its_thread() {
        let done = Arc::new(AtomicBool::new(false));
        let ended = Arc::clone(&done);
        let ahead = Ahead::start(move || {
            std::thread::sleep(Duration::from_millis(50));
            ended.store(true, Ordering::SeqCst);
            Ok(Arc::new(Node::empty_chunk(1)))
        })
        .expect("a thread starts");
        drop(ahead);
        assert!(done.load(Ordering::SeqCst));
    }
}
