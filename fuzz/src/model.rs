//! The `model` target: random operations on a few trees of a forest over
//! the fault-injecting [`FaultyBackend`], checked against two `BTreeMap`
//! models: the live trees and the trees of the last commit.
//!
//! Input layout: one [`Config`] byte, then 4-byte records `[op, a, b, c]`
//! (a short last record is padded with zeros), at most [`MAX_OPS`] of them.
//! `op % 32` picks the operation ([`Op::decode`]); `a`, `b`, `c` are its
//! arguments. Fixed-size records keep the fuzzer's mutations aligned with
//! operations. Keys come from a space of 256 ([`key`]), so operations
//! collide; nodes of 256 or 512 bytes and a cache of 16 nodes make trees a
//! few levels deep and keep nodes moving through the dirty queue and the
//! in-flight map, so a crash catches background writes half done.
//!
//! The harness and the rules it checks are those of `tests/crash.rs`, in
//! one file both include: `tests/support/crash_model.rs`. In short: every
//! operation and read agrees with the live model and fails only while
//! failures are armed (`FailAfter`), a failed operation changes nothing, no
//! write succeeds once the store reported a failure, a commit that returned
//! `Ok` survives any later crash, one that failed may or may not have
//! landed, and after every reopen the trees equal the committed model and
//! `check()` is clean; `Check` and a healing `Reopen` also check the live
//! forest.
//!
//! A broken rule is a panic, which libFuzzer reports as a crash.

#[path = "../../tests/support/crash_model.rs"]
mod crash_model;

use crash_model::{Checked, Harness, Model};
use larix::backend::{Backend, FileId};
use larix::{Durability, FilterSpec, Forest, Options};
use larix_nodestore::testing::{CrashMode, FaultyBackend};
use std::ops::Bound;
use std::sync::{Arc, Mutex, PoisonError};

pub use crash_model::SLOTS;

/// The most operations one input runs.
pub const MAX_OPS: usize = 160;
/// Bytes of one operation record.
pub const RECORD: usize = 4;
/// The value tag of the prefilled tree: values of up to 60 bytes, so that
/// it is three levels deep with either node size.
const PREFILL_TAG: u8 = 60;

/// The filter stack of the forest under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filters {
    /// `zstd(3), checksum` (the default stack).
    ZstdChecksum,
    /// `checksum` alone.
    Checksum,
    /// No filter: node bytes are stored as they are.
    Empty,
}

/// How the forest is opened, from the first input byte.
///
/// Bit 0: 512-byte nodes (else 256). Bits 1 and 2 both set:
/// `Durability::None`, under which the failure operations do nothing
/// (as in `tests/crash.rs`). Bits 3–4: filters (0–1 `zstd, checksum`,
/// 2 `checksum`, 3 none). Bit 5: start from a committed tree `t0` holding
/// all 256 keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Node size in bytes: 256 or 512.
    pub node_size: usize,
    /// Whether a commit is durable when it returns.
    pub immediate: bool,
    /// The filter stack.
    pub filters: Filters,
    /// Start from a committed, full tree `t0`.
    pub prefill: bool,
}

impl Config {
    /// The configuration byte `b` selects.
    pub fn decode(b: u8) -> Config {
        Config {
            node_size: if b & 1 == 0 { 256 } else { 512 },
            immediate: b & 0b110 != 0b110,
            filters: match (b >> 3) & 3 {
                0 | 1 => Filters::ZstdChecksum,
                2 => Filters::Checksum,
                _ => Filters::Empty,
            },
            prefill: b & 0x20 != 0,
        }
    }

    /// The byte that decodes to this configuration (node size other than
    /// 512 encodes as 256).
    pub fn encode(self) -> u8 {
        let filters = match self.filters {
            Filters::ZstdChecksum => 0,
            Filters::Checksum => 2,
            Filters::Empty => 3,
        };
        u8::from(self.node_size == 512)
            | if self.immediate { 0 } else { 0b110 }
            | filters << 3
            | u8::from(self.prefill) << 5
    }

    fn options(self) -> Options {
        let filters = match self.filters {
            Filters::ZstdChecksum => vec![FilterSpec::zstd(3), FilterSpec::checksum()],
            Filters::Checksum => vec![FilterSpec::checksum()],
            Filters::Empty => Vec::new(),
        };
        Options::default()
            .node_size(self.node_size)
            .cache_bytes(self.node_size * 16)
            .workers(2)
            .segment_bytes(64 << 10)
            // The default (a sixteenth of the cache) would hold no batch.
            .write_buffer_bytes(64 << 10)
            .filters(filters)
    }

    fn durability(self) -> Durability {
        if self.immediate {
            Durability::Immediate
        } else {
            Durability::None
        }
    }

    /// The largest key plus value length a tree accepts.
    fn entry_limit(self) -> usize {
        self.node_size / 4
    }
}

/// One end of a key range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// No bound.
    Unbounded,
    /// Up to and including the key.
    Included(u8),
    /// Up to but excluding the key.
    Excluded(u8),
}

impl End {
    fn decode(kind: u8, k: u8) -> End {
        match kind % 3 {
            0 => End::Unbounded,
            1 => End::Included(k),
            _ => End::Excluded(k),
        }
    }

    /// Kind (0–2) and key byte.
    fn encode(self) -> (u8, u8) {
        match self {
            End::Unbounded => (0, 0),
            End::Included(k) => (1, k),
            End::Excluded(k) => (2, k),
        }
    }

    fn bound(self) -> Bound<Vec<u8>> {
        match self {
            End::Unbounded => Bound::Unbounded,
            End::Included(k) => Bound::Included(key(k)),
            End::Excluded(k) => Bound::Excluded(key(k)),
        }
    }
}

/// How a simulated machine crash treats the writes not yet synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crash {
    /// Every unsynced write is lost.
    Drop,
    /// The last unsynced write keeps its first `keep << shift` bytes
    /// (`shift` < 8): torn blobs, table chunks (16 KiB) and superblock
    /// slots (4 KiB) alike.
    Tear {
        /// Kept bytes, before the shift.
        keep: u8,
        /// Left shift of `keep`, 0..8.
        shift: u8,
    },
}

impl Crash {
    fn mode(self) -> CrashMode {
        match self {
            Crash::Drop => CrashMode::DropUnsynced,
            Crash::Tear { keep, shift } => CrashMode::TearLastWrite {
                keep: usize::from(keep) << shift,
            },
        }
    }
}

/// One operation of the model. Slots are below [`SLOTS`], keys index
/// [`key`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Create tree `slot` (an error if it exists).
    Create(u8),
    /// Insert `key` with the value of `tag` ([`value`]).
    Insert {
        /// Tree slot.
        slot: u8,
        /// Key index.
        key: u8,
        /// Value tag.
        tag: u8,
    },
    /// Insert keys `from..from + count` (up to key 255) with `tag` one by
    /// one, or as a batch (`Tree::insert_batch`) twice as long: keys
    /// `from + i` (modulo 256) for `i` below `2 × count`, the second lap
    /// with the next tag (so a batch of 128 keys or more reaches the
    /// write buffer, whose smallest batch is 256 pairs).
    Fill {
        /// Tree slot.
        slot: u8,
        /// First key index.
        from: u8,
        /// Number of keys, 1..=256.
        count: u16,
        /// Value tag, 0..=85.
        tag: u8,
        /// As one batch.
        batch: bool,
    },
    /// Remove `key`.
    Remove {
        /// Tree slot.
        slot: u8,
        /// Key index.
        key: u8,
    },
    /// Remove keys `from + 2i` (modulo 256) for `i` below `count` as one
    /// batch (`Tree::remove_batch`): past 128 keys the batch repeats keys.
    RemoveBatch {
        /// Tree slot.
        slot: u8,
        /// First key index.
        from: u8,
        /// Number of keys, 1..=256.
        count: u16,
    },
    /// Remove every key within `lo..hi`.
    RemoveRange {
        /// Tree slot.
        slot: u8,
        /// Lower end.
        lo: End,
        /// Upper end.
        hi: End,
    },
    /// Read `lo..hi` (backwards if `reverse`), its count and emptiness.
    Range {
        /// Tree slot.
        slot: u8,
        /// Lower end.
        lo: End,
        /// Upper end.
        hi: End,
        /// Iterate from the upper end.
        reverse: bool,
    },
    /// Read `key`, the first and the last entry.
    Get {
        /// Tree slot.
        slot: u8,
        /// Key index.
        key: u8,
    },
    /// Clone tree `src` as `dst`.
    Clone {
        /// Source slot.
        src: u8,
        /// Destination slot.
        dst: u8,
    },
    /// Remove tree `slot`.
    RemoveTree(u8),
    /// Commit.
    Commit,
    /// Every tree back to the last commit.
    Rollback,
    /// Commit, then write a checkpoint and wait for it.
    Checkpoint,
    /// Compact sparse segments, which commits.
    Compact,
    /// Kill the process, drop the forest, crash the machine, reopen.
    Crash(Crash),
    /// Every backend call after the next `n` (< 64) fails until reopen.
    FailAfter(u8),
    /// `FailAfter(n)` then `Commit`: a commit failing at one of its steps.
    FailingCommit(u8),
    /// Drop the forest and open it again; `heal` first heals the backend
    /// and checks the live forest against the live model.
    Reopen {
        /// Heal and check the live forest before the drop.
        heal: bool,
    },
    /// Insert an entry one byte over the limit: refused, nothing changes.
    TooLarge {
        /// Tree slot.
        slot: u8,
        /// Key index.
        key: u8,
    },
    /// With no failure armed, the live forest equals the live model and
    /// `check()` is clean.
    Check,
}

impl Op {
    /// The operation a record encodes. Opcodes `op % 32`: 0–1 create,
    /// 2–8 insert, 9 fill, 10 fill as a batch, 11–12 remove, 13 remove a
    /// batch, 14 remove range, 15–16 range,
    /// 17 get, 18–19 clone, 20 remove tree, 21 commit, 22 rollback, 23 checkpoint,
    /// 24 compact, 25–26 crash, 27 fail after, 28 failing commit,
    /// 29 reopen, 30 too large, 31 check.
    pub fn decode([op, a, b, c]: [u8; RECORD]) -> Op {
        let slot = a % SLOTS as u8;
        let (lo, hi) = (End::decode(a / 3, b), End::decode(a / 9, c));
        match op % 32 {
            0 | 1 => Op::Create(slot),
            2..=8 => Op::Insert {
                slot,
                key: b,
                tag: c,
            },
            9 | 10 => Op::Fill {
                slot,
                from: b,
                count: u16::from(c) + 1,
                tag: a / 3,
                batch: op % 32 == 10,
            },
            11 | 12 => Op::Remove { slot, key: b },
            13 => Op::RemoveBatch {
                slot,
                from: b,
                count: u16::from(c) + 1,
            },
            14 => Op::RemoveRange { slot, lo, hi },
            15 | 16 => Op::Range {
                slot,
                lo,
                hi,
                reverse: (a / 27) % 2 == 1,
            },
            17 => Op::Get { slot, key: b },
            18 | 19 => Op::Clone {
                src: slot,
                dst: b % SLOTS as u8,
            },
            20 => Op::RemoveTree(slot),
            21 => Op::Commit,
            22 => Op::Rollback,
            23 => Op::Checkpoint,
            24 => Op::Compact,
            25 | 26 => Op::Crash(if a & 1 == 0 {
                Crash::Drop
            } else {
                Crash::Tear {
                    keep: b,
                    shift: (a >> 1) % 8,
                }
            }),
            27 => Op::FailAfter(a % 64),
            28 => Op::FailingCommit(a % 64),
            29 => Op::Reopen { heal: a & 1 == 1 },
            30 => Op::TooLarge { slot, key: b },
            _ => Op::Check,
        }
    }

    /// A record that decodes to this operation, for seeds. Arguments out
    /// of their documented ranges are reduced as decoding would.
    pub fn encode(self) -> [u8; RECORD] {
        let ends = |slot: u8, lo: End, hi: End| {
            let ((lk, lb), (hk, hb)) = (lo.encode(), hi.encode());
            (slot % 3 + 3 * lk + 9 * hk, lb, hb)
        };
        match self {
            Op::Create(s) => [0, s, 0, 0],
            Op::Insert { slot, key, tag } => [2, slot, key, tag],
            Op::Fill {
                slot,
                from,
                count,
                tag,
                batch,
            } => {
                let a = u16::from(slot % 3) + 3 * u16::from(tag.min(85));
                let code = 9 + u8::from(batch);
                [
                    code,
                    a.min(255) as u8,
                    from,
                    (count.clamp(1, 256) - 1) as u8,
                ]
            }
            Op::Remove { slot, key } => [11, slot, key, 0],
            Op::RemoveBatch { slot, from, count } => {
                [13, slot, from, (count.clamp(1, 256) - 1) as u8]
            }
            Op::RemoveRange { slot, lo, hi } => {
                let (a, b, c) = ends(slot, lo, hi);
                [14, a, b, c]
            }
            Op::Range {
                slot,
                lo,
                hi,
                reverse,
            } => {
                let (a, b, c) = ends(slot, lo, hi);
                [15, a + 27 * u8::from(reverse), b, c]
            }
            Op::Get { slot, key } => [17, slot, key, 0],
            Op::Clone { src, dst } => [18, src, dst, 0],
            Op::RemoveTree(s) => [20, s, 0, 0],
            Op::Commit => [21, 0, 0, 0],
            Op::Rollback => [22, 0, 0, 0],
            Op::Checkpoint => [23, 0, 0, 0],
            Op::Compact => [24, 0, 0, 0],
            Op::Crash(Crash::Drop) => [25, 0, 0, 0],
            Op::Crash(Crash::Tear { keep, shift }) => [25, 1 | (shift % 8) << 1, keep, 0],
            Op::FailAfter(n) => [27, n, 0, 0],
            Op::FailingCommit(n) => [28, n, 0, 0],
            Op::Reopen { heal } => [29, u8::from(heal), 0, 0],
            Op::TooLarge { slot, key } => [30, slot, key, 0],
            Op::Check => [31, 0, 0, 0],
        }
    }
}

/// The configuration and operations of an input; `None` for empty input.
pub fn decode(data: &[u8]) -> Option<(Config, Vec<Op>)> {
    let (&config, rest) = data.split_first()?;
    let ops = rest
        .chunks(RECORD)
        .take(MAX_OPS)
        .map(|r| {
            let mut rec = [0u8; RECORD];
            rec[..r.len()].copy_from_slice(r);
            Op::decode(rec)
        })
        .collect();
    Some((Config::decode(config), ops))
}

/// The input that decodes to `config` and `ops`.
pub fn encode(config: Config, ops: &[Op]) -> Vec<u8> {
    let mut out = vec![config.encode()];
    for op in ops {
        out.extend_from_slice(&op.encode());
    }
    out
}

/// Runs one fuzz input. Returns whether it held at least one operation.
///
/// # Panics
/// When the forest breaks one of the rules in the module documentation.
pub fn run(data: &[u8]) -> bool {
    let Some((config, ops)) = decode(data) else {
        return false;
    };
    if let Err(broken) = replay(config, &ops) {
        panic!("{broken}");
    }
    !ops.is_empty()
}

/// Opens the store of `config`, runs `ops` and a healing reopen.
fn replay(config: Config, ops: &[Op]) -> Checked {
    let mut h = open(config)?;
    for &op in ops {
        apply(&mut h, config, op)?;
    }
    h.reopen(true)
}

/// A harness on a new store, or with [`Config::prefill`] on a copy of the
/// store [`prefilled_files`] made, opened and checked.
fn open(config: Config) -> Checked<Harness> {
    let disk = FaultyBackend::new();
    let mut state = vec![None; SLOTS];
    if config.prefill {
        for (file, bytes) in prefilled_files(config) {
            disk.write_at(file, 0, &bytes).expect("a memory write");
            disk.sync(file).expect("a memory sync");
        }
        disk.sync_dir().expect("a memory sync");
        state[0] = Some(prefilled_tree(config));
    }
    Harness::open(disk, config.options(), config.durability(), state)
}

/// Carries out `op` on the harness.
fn apply(h: &mut Harness, config: Config, op: Op) -> Checked {
    let limit = config.entry_limit();
    match op {
        Op::Create(s) => h.create(s.into()),
        Op::Insert { slot, key: k, tag } => h.insert(slot.into(), &key(k), &value(k, tag, limit)),
        Op::Fill {
            slot,
            from,
            count,
            tag,
            batch,
        } => {
            if batch {
                let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..2 * count)
                    .map(|i| {
                        let k = (u16::from(from) + i) as u8;
                        let tag = if i < count { tag } else { (tag + 1) % 86 };
                        (key(k), value(k, tag, limit))
                    })
                    .collect();
                return h.insert_batch(slot.into(), &pairs);
            }
            let end = (u16::from(from) + count).min(256);
            (u16::from(from)..end).try_for_each(|k| {
                let k = k as u8;
                h.insert(slot.into(), &key(k), &value(k, tag, limit))
            })
        }
        Op::Remove { slot, key: k } => h.remove(slot.into(), &key(k)),
        Op::RemoveBatch { slot, from, count } => {
            let keys: Vec<Vec<u8>> = (0..count)
                .map(|i| key(from.wrapping_add((2 * i) as u8)))
                .collect();
            h.remove_batch(slot.into(), &keys)
        }
        Op::RemoveRange { slot, lo, hi } => h.remove_range(slot.into(), lo.bound(), hi.bound()),
        Op::Range {
            slot,
            lo,
            hi,
            reverse,
        } => h.range(slot.into(), lo.bound(), hi.bound(), reverse),
        Op::Get { slot, key: k } => h.get(slot.into(), &key(k)),
        Op::Clone { src, dst } => h.clone_tree(src.into(), dst.into()),
        Op::RemoveTree(s) => h.remove_tree(s.into()),
        Op::Commit => h.commit(),
        Op::Rollback => h.rollback(),
        Op::Checkpoint => h.checkpoint(),
        Op::Compact => h.compact(),
        Op::Crash(crash) => h.crash(crash.mode()),
        // Under Durability::None nothing fails (as in tests/crash.rs).
        Op::FailAfter(_) | Op::FailingCommit(_) if !config.immediate => Ok(()),
        Op::FailAfter(n) => {
            h.fail_after(n.into());
            Ok(())
        }
        Op::FailingCommit(n) => {
            h.fail_after(n.into());
            h.commit()
        }
        Op::Reopen { heal } => h.reopen(heal),
        Op::TooLarge { slot, key: k } => h.too_large(slot.into(), &key(k), limit),
        Op::Check => h.check(),
    }
}

/// The tree `t0` of [`Config::prefill`]: every key, with the value of
/// [`PREFILL_TAG`].
fn prefilled_tree(config: Config) -> Model {
    let limit = config.entry_limit();
    (0..=255)
        .map(|k| (key(k), value(k, PREFILL_TAG, limit)))
        .collect()
}

/// The durable files of a store of `config`'s node size and filters whose
/// one commit holds [`prefilled_tree`]. Made once per process and kind of
/// store, so that an input does not pay for 256 inserts.
fn prefilled_files(config: Config) -> Vec<(FileId, Vec<u8>)> {
    type Made = Vec<((usize, Filters), Vec<(FileId, Vec<u8>)>)>;
    static MADE: Mutex<Made> = Mutex::new(Vec::new());
    let kind = (config.node_size, config.filters);
    let mut made = MADE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, files)) = made.iter().find(|(k, _)| *k == kind) {
        return files.clone();
    }
    let disk = FaultyBackend::new();
    let options = config.options().durability(Durability::Immediate);
    let forest = Forest::with_backend(Arc::new(disk.clone()), options).expect("a new store");
    let tree = forest
        .create_tree(&crash_model::name(0))
        .expect("a new tree");
    for (k, v) in prefilled_tree(config) {
        tree.insert(&k, &v).expect("an insert into memory");
    }
    forest.commit().expect("a commit to memory");
    drop((tree, forest));
    let segments = disk.segments().expect("memory segments");
    let files: Vec<(FileId, Vec<u8>)> = std::iter::once(FileId::Superblock)
        .chain(segments.into_iter().map(FileId::Segment))
        .filter_map(|f| Some((f, disk.durable_contents(f)?)))
        .collect();
    made.push((kind, files.clone()));
    files
}

/// Key `k`: 4 to 10 bytes that sort like the numbers.
pub fn key(k: u8) -> Vec<u8> {
    let mut v = format!("k{k:03}").into_bytes();
    v.extend(std::iter::repeat_n(b'.', usize::from(k % 7)));
    v
}

/// The value of `tag` for key `k`: `tag` repeated, from empty up to the
/// largest value the entry limit allows, or for a few tags a value too
/// large for a leaf (stored out of line; for one tag and a few keys, past
/// one chunk).
fn value(k: u8, tag: u8, limit: usize) -> Vec<u8> {
    match tag {
        255 if k.is_multiple_of(32) => vec![tag; larix_btree::CHUNK_BYTES + usize::from(k)],
        248.. => vec![tag; limit + 1 + 61 * usize::from(k % 50)],
        _ => vec![tag; usize::from(tag) % (limit + 1 - key(k).len())],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_encode() {
        for op in 0..=255u8 {
            for a in [0, 1, 2, 5, 26, 27, 53, 80, 200, 255] {
                let rec = [op, a, 77, 250];
                let decoded = Op::decode(rec);
                assert_eq!(Op::decode(decoded.encode()), decoded, "{rec:?}");
            }
        }
        for b in 0..=255u8 {
            let c = Config::decode(b);
            assert_eq!(Config::decode(c.encode()), c, "config {b}");
        }
    }

    #[test]
    fn a_prefilled_tree_has_index_levels() {
        for node_size in [256, 512] {
            let h = open(Config::decode(0x20 | u8::from(node_size == 512))).unwrap();
            let levels = h.tree(0).unwrap().shape().unwrap().levels.len();
            assert!(levels >= 3, "{levels} levels with {node_size}-byte nodes");
        }
    }

    #[test]
    fn values_fit_a_leaf_but_for_the_large_tags() {
        for limit in [64, 128] {
            for k in 0..=255 {
                for tag in 0..=255 {
                    let fits = key(k).len() + value(k, tag, limit).len() <= limit;
                    assert_eq!(fits, tag < 248, "key {k}, tag {tag}");
                }
            }
        }
    }
}
