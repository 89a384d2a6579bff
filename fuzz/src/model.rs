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
//! The rules checked (those of `tests/crash.rs`):
//! - an operation that succeeds does what the model does, and a read
//!   returns what the live model holds;
//! - an operation fails only while failures are armed (`FailAfter`), and
//!   a failed operation leaves the live trees unchanged;
//! - once the store reported a failure, no write succeeds until reopen;
//! - a commit that returned `Ok` survives any later crash (with
//!   `Durability::None`: a crash returns to one of the commits since the
//!   last durable one);
//! - a commit that returned an error may or may not have landed: the next
//!   reopen shows either the last good commit or a state a failed commit
//!   tried to write, and that one is the committed state from then on;
//! - after every reopen the trees equal the committed model exactly and
//!   `check()` is clean; `Check` and a healing `Reopen` also check the live
//!   forest.
//!
//! A broken rule is a panic, which libFuzzer reports as a crash.

use larix::backend::{Backend, FileId};
use larix::{Durability, Error, FilterSpec, Forest, Options};
use larix_nodestore::testing::{CrashMode, FaultyBackend};
use larix_nodestore::StoreError;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, PoisonError};

/// Tree slots: tree `s` is called `t{s}`.
pub const SLOTS: usize = 3;
/// The most operations one input runs.
pub const MAX_OPS: usize = 160;
/// Bytes of one operation record.
pub const RECORD: usize = 4;
/// The value tag of the prefilled tree: values of up to 60 bytes, so that
/// it is three levels deep with either node size.
const PREFILL_TAG: u8 = 60;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;
/// One optional tree per slot: the whole forest as the harness sees it.
type State = Vec<Option<Model>>;

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
            .filters(filters)
            .durability(if self.immediate {
                Durability::Immediate
            } else {
                Durability::None
            })
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
    /// Insert keys `from..from + count` (up to key 255) with `tag`.
    Fill {
        /// Tree slot.
        slot: u8,
        /// First key index.
        from: u8,
        /// Number of keys, 1..=256.
        count: u16,
        /// Value tag, 0..=85.
        tag: u8,
    },
    /// Remove `key`.
    Remove {
        /// Tree slot.
        slot: u8,
        /// Key index.
        key: u8,
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
    /// 2–8 insert, 9–10 fill, 11–13 remove, 14 remove range, 15–16 range,
    /// 17 get, 18–19 clone, 20 remove tree, 21–23 commit, 24 compact,
    /// 25–26 crash, 27 fail after, 28 failing commit, 29 reopen,
    /// 30 too large, 31 check.
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
            },
            11..=13 => Op::Remove { slot, key: b },
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
            21..=23 => Op::Commit,
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
            } => {
                let a = u16::from(slot % 3) + 3 * u16::from(tag.min(85));
                [9, a.min(255) as u8, from, (count.clamp(1, 256) - 1) as u8]
            }
            Op::Remove { slot, key } => [11, slot, key, 0],
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
    let mut h = Harness::new(config);
    for &op in &ops {
        h.apply(op);
    }
    h.apply(Op::Reopen { heal: true });
    !ops.is_empty()
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
    let options = Config {
        immediate: true,
        ..config
    }
    .options();
    let forest = Forest::with_backend(Arc::new(disk.clone()), options).expect("a new store");
    let tree = forest.create_tree(&name(0)).expect("a new tree");
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

/// The name of the tree in `slot`.
fn name(slot: u8) -> String {
    format!("t{slot}")
}

/// Key `k`: 4 to 10 bytes that sort like the numbers.
pub fn key(k: u8) -> Vec<u8> {
    let mut v = format!("k{k:03}").into_bytes();
    v.extend(std::iter::repeat_n(b'.', usize::from(k % 7)));
    v
}

/// The value of `tag` for key `k`: `tag` repeated, from empty up to the
/// largest value the entry limit allows.
fn value(k: u8, tag: u8, limit: usize) -> Vec<u8> {
    vec![tag; usize::from(tag) % (limit + 1 - key(k).len())]
}

/// The model's keys within `lo..hi` (none for an inverted range, which
/// `BTreeMap::range` would panic on and Larix treats as empty).
fn model_range(m: &Model, lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let valid = match (lo, hi) {
        (Bound::Included(a), Bound::Included(b)) => a <= b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b)) => a < b,
        _ => true,
    };
    if !valid {
        return Vec::new();
    }
    m.range::<Vec<u8>, _>((lo.clone(), hi.clone()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn as_slices(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// A short description of a state for failure messages.
fn summary(state: &State) -> String {
    let trees: Vec<String> = (0..SLOTS as u8)
        .filter_map(|s| {
            let m = state[usize::from(s)].as_ref()?;
            Some(format!("{}: {} keys", name(s), m.len()))
        })
        .collect();
    format!("[{}]", trees.join(", "))
}

/// Where two states first differ, for failure messages.
fn difference(got: &State, want: &State) -> String {
    for s in 0..SLOTS as u8 {
        let t = name(s);
        match (&got[usize::from(s)], &want[usize::from(s)]) {
            (None, None) => {}
            (Some(_), None) => return format!("{t} exists but should not"),
            (None, Some(_)) => return format!("{t} is missing"),
            (Some(g), Some(w)) => {
                if let Some((k, v)) = g.iter().find(|(k, v)| w.get(*k) != Some(v)) {
                    let want = w.get(k).map(Vec::len);
                    let k = String::from_utf8_lossy(k);
                    return format!("{t}: key {k:?} has {} value bytes, want {want:?}", v.len());
                }
                if let Some(k) = w.keys().find(|k| !g.contains_key(*k)) {
                    return format!("{t}: key {:?} is lost", String::from_utf8_lossy(k));
                }
            }
        }
    }
    "no difference".into()
}

/// Whether `e` says the store refuses writes after an earlier failure.
fn refused(e: &Error) -> bool {
    matches!(e, Error::Store(StoreError::Failed(_)))
}

/// The forest under test and its two models.
struct Harness {
    config: Config,
    disk: FaultyBackend,
    options: Options,
    forest: Option<Forest>,
    live: State,
    /// The state of the last commit that returned `Ok` (or that a reopen
    /// showed had landed).
    committed: State,
    /// The states a crash may return to: the last commit known durable and,
    /// with `Durability::None`, every commit since.
    durable: Vec<State>,
    /// The states failed commits since the last good one tried to write:
    /// any of them may have landed.
    attempted: Vec<State>,
    /// Failures are armed since the last reopen: operations may fail.
    armed: bool,
    /// The store reported a failure: no write may succeed until reopen.
    latched: bool,
}

impl Harness {
    /// A harness on a new store, or with [`Config::prefill`] on a copy of
    /// the store [`prefilled_files`] made, opened and checked.
    fn new(config: Config) -> Harness {
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
        let mut h = Harness {
            config,
            disk,
            options: config.options(),
            forest: None,
            live: state.clone(),
            committed: state.clone(),
            durable: vec![state.clone()],
            attempted: Vec::new(),
            armed: false,
            latched: false,
        };
        h.reopen(&[state], "setup");
        h
    }

    fn forest(&self) -> &Forest {
        self.forest
            .as_ref()
            .expect("the forest is open between ops")
    }

    /// Checks the outcome of an operation that changes the live state if
    /// `changes`: an error only with failures armed, success not once the
    /// store has reported a failure. `Some` if it succeeded.
    fn outcome<T>(&mut self, what: &str, changes: bool, r: Result<T, Error>) -> Option<T> {
        match r {
            Ok(v) => {
                assert!(
                    !(changes && self.latched),
                    "{what} succeeded after the store reported a failure"
                );
                Some(v)
            }
            Err(e) => {
                assert!(self.armed, "{what} failed with no fault injected: {e}");
                self.latched |= refused(&e);
                None
            }
        }
    }

    /// A read's result: `Some` to compare with the model, `None` for an
    /// error, which only an armed failure may cause.
    fn read<T>(&self, what: &str, r: Result<T, Error>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                assert!(self.armed, "{what} failed with no fault injected: {e}");
                None
            }
        }
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Create(s) => {
                let r = self.forest().create_tree(&name(s)).map(drop);
                if self.live[usize::from(s)].is_some() {
                    assert!(matches!(r, Err(Error::TreeExists { .. })), "{r:?}");
                } else if self.outcome("create", true, r).is_some() {
                    self.live[usize::from(s)] = Some(Model::new());
                }
            }
            Op::Insert { slot, key, tag } => self.insert(slot, key, tag),
            Op::Fill {
                slot,
                from,
                count,
                tag,
            } => self.fill(slot, from, count, tag),
            Op::Remove { slot, key: k } => {
                let Some(m) = self.model(slot) else {
                    return self.assert_absent(slot);
                };
                let had = m.contains_key(&key(k));
                let r = self.tree(slot).remove(&key(k));
                if let Some(existed) = self.outcome("remove", had, r) {
                    assert_eq!(existed, had, "remove of key {k} in {}", name(slot));
                    self.model_mut(slot).remove(&key(k));
                }
            }
            Op::RemoveRange { slot, lo, hi } => {
                let Some(m) = self.model(slot) else {
                    return self.assert_absent(slot);
                };
                let (lo, hi) = (lo.bound(), hi.bound());
                let doomed = model_range(m, &lo, &hi);
                let r = self
                    .tree(slot)
                    .remove_range((as_slices(&lo), as_slices(&hi)));
                if let Some(n) = self.outcome("remove_range", !doomed.is_empty(), r) {
                    assert_eq!(n, doomed.len() as u64, "remove_range {lo:?}..{hi:?}");
                    for (k, _) in doomed {
                        self.model_mut(slot).remove(&k);
                    }
                }
            }
            Op::Range {
                slot,
                lo,
                hi,
                reverse,
            } => self.range(slot, lo, hi, reverse),
            Op::Get { slot, key } => self.get(slot, key),
            Op::Clone { src, dst } => {
                let r = self.forest().clone_tree(&name(src), &name(dst)).map(drop);
                let (s, d) = (usize::from(src), usize::from(dst));
                if self.live[s].is_none() {
                    assert!(matches!(r, Err(Error::TreeNotFound { .. })), "{r:?}");
                } else if self.live[d].is_some() {
                    assert!(matches!(r, Err(Error::TreeExists { .. })), "{r:?}");
                } else if self.outcome("clone_tree", true, r).is_some() {
                    self.live[d] = self.live[s].clone();
                }
            }
            Op::RemoveTree(s) => {
                let r = self.forest().remove_tree(&name(s));
                if self.live[usize::from(s)].is_none() {
                    assert!(matches!(r, Err(Error::TreeNotFound { .. })), "{r:?}");
                } else if self.outcome("remove_tree", true, r).is_some() {
                    self.live[usize::from(s)] = None;
                }
            }
            Op::Commit => {
                let r = self.forest().commit();
                self.committed(r, true);
            }
            Op::Compact => {
                // A failure before the commit inside need not be latched.
                let r = self.forest().compact();
                self.committed(r, false);
            }
            Op::Crash(crash) => {
                // The process dies: nothing it still does reaches the disk.
                self.disk.kill();
                self.forest = None;
                self.disk.crash(crash.mode());
                let candidates = self.durable.clone();
                self.reopen(&candidates, "crash");
            }
            Op::FailAfter(n) => {
                if self.config.immediate {
                    self.disk.fail_after(u64::from(n));
                    self.armed = true;
                }
            }
            Op::FailingCommit(n) => {
                if self.config.immediate {
                    self.apply(Op::FailAfter(n));
                    self.apply(Op::Commit);
                }
            }
            Op::Reopen { heal } => {
                if heal {
                    self.disk.heal();
                    self.verify_live();
                }
                self.forest = None;
                self.disk.heal();
                let candidates = vec![self.committed.clone()];
                self.reopen(&candidates, "reopen");
            }
            Op::TooLarge { slot, key: k } => {
                if self.model(slot).is_none() {
                    return self.assert_absent(slot);
                }
                let limit = self.config.entry_limit();
                let big = vec![0xEE; limit + 1 - key(k).len()];
                let r = self.tree(slot).insert(&key(k), &big);
                match r {
                    Err(Error::EntryTooLarge { limit: l, .. }) => assert_eq!(l, limit),
                    Err(e) => assert!(self.armed, "too large an entry: {e}"),
                    Ok(()) => panic!("an entry over the limit of {limit} bytes was inserted"),
                }
            }
            Op::Check => {
                if !self.armed {
                    self.verify_live();
                }
            }
        }
    }

    fn insert(&mut self, slot: u8, k: u8, tag: u8) {
        let Some(m) = self.model(slot) else {
            return self.assert_absent(slot);
        };
        let v = value(k, tag, self.config.entry_limit());
        let changes = m.get(&key(k)) != Some(&v);
        let r = self.tree(slot).insert(&key(k), &v);
        if self.outcome("insert", changes, r).is_some() {
            self.model_mut(slot).insert(key(k), v);
        }
    }

    fn fill(&mut self, slot: u8, from: u8, count: u16, tag: u8) {
        let end = (u16::from(from) + count).min(256);
        for k in u16::from(from)..end {
            self.insert(slot, k as u8, tag);
        }
    }

    /// Reads `lo..hi` one way, counts it and asks whether it is empty.
    fn range(&mut self, slot: u8, lo: End, hi: End, reverse: bool) {
        let Some(m) = self.model(slot) else {
            return self.assert_absent(slot);
        };
        let (lo, hi) = (lo.bound(), hi.bound());
        let mut want = model_range(m, &lo, &hi);
        let bounds = (as_slices(&lo), as_slices(&hi));
        let tree = self.tree(slot);
        let iter = tree.range(bounds).expect("the tree exists");
        let got: Result<Vec<_>, Error> = if reverse {
            want.reverse();
            iter.rev().collect()
        } else {
            iter.collect()
        };
        let what = format!("range {lo:?}..{hi:?} of {}", name(slot));
        if let Some(got) = self.read(&what, got) {
            let keys = |v: &[(Vec<u8>, Vec<u8>)]| v.iter().map(|(k, _)| k.clone()).collect();
            let (g, w): (Vec<Vec<u8>>, Vec<Vec<u8>>) = (keys(&got), keys(&want));
            assert_eq!(g, w, "{what} (reverse: {reverse}): keys");
            assert!(got == want, "{what}: values differ");
        }
        if let Some(n) = self.read(&what, tree.count_range(bounds)) {
            assert_eq!(n, want.len() as u64, "count of {what}");
        }
        if let Some(empty) = self.read(&what, tree.range_is_empty(bounds)) {
            assert_eq!(empty, want.is_empty(), "emptiness of {what}");
        }
    }

    /// Reads one key, the first and the last entry.
    fn get(&mut self, slot: u8, k: u8) {
        let Some(m) = self.model(slot) else {
            return self.assert_absent(slot);
        };
        let want = m.get(&key(k)).cloned();
        let (first, last) = (
            m.first_key_value().map(|(k, v)| (k.clone(), v.clone())),
            m.last_key_value().map(|(k, v)| (k.clone(), v.clone())),
        );
        let tree = self.tree(slot);
        let t = name(slot);
        if let Some(got) = self.read("get", tree.get(&key(k))) {
            assert_eq!(got, want, "get of key {k} in {t}");
        }
        if let Some(got) = self.read("first", tree.first()) {
            assert_eq!(got, first, "first of {t}");
        }
        if let Some(got) = self.read("last", tree.last()) {
            assert_eq!(got, last, "last of {t}");
        }
    }

    /// Records the outcome of a commit (or of a compaction, which ends with
    /// one); `latches`: a failure must make the store refuse writes.
    fn committed(&mut self, r: Result<(), Error>, latches: bool) {
        match r {
            Ok(()) => {
                assert!(
                    !self.latched,
                    "commit succeeded after the store reported a failure"
                );
                self.committed = self.live.clone();
                self.attempted.clear();
                if self.config.immediate {
                    self.durable = vec![self.live.clone()];
                } else {
                    self.durable.push(self.live.clone());
                }
            }
            Err(e) => {
                assert!(self.armed, "commit failed with no fault injected: {e}");
                // A commit refused up front wrote nothing; any other failure
                // may have come after its superblock landed.
                if !refused(&e) {
                    assert!(
                        !self.latched,
                        "a commit after a failure got past the refusal: {e}"
                    );
                    self.attempted.push(self.live.clone());
                }
                self.latched |= latches;
            }
        }
    }

    fn model(&self, slot: u8) -> Option<&Model> {
        self.live[usize::from(slot)].as_ref()
    }

    fn model_mut(&mut self, slot: u8) -> &mut Model {
        self.live[usize::from(slot)]
            .as_mut()
            .expect("the caller checked the slot")
    }

    fn tree(&self, slot: u8) -> larix::Tree {
        self.forest()
            .tree(&name(slot))
            .unwrap_or_else(|e| panic!("tree({}): {e}", name(slot)))
            .unwrap_or_else(|| panic!("{} is missing", name(slot)))
    }

    fn assert_absent(&self, slot: u8) {
        let t = self
            .forest()
            .tree(&name(slot))
            .expect("tree() is infallible");
        assert!(t.is_none(), "{} exists but should not", name(slot));
    }

    /// The forest's trees as a state.
    fn read_state(forest: &Forest) -> Result<State, String> {
        let names = forest.tree_names();
        let known: Vec<String> = (0..SLOTS as u8).map(name).collect();
        if let Some(n) = names.iter().find(|n| !known.contains(n)) {
            return Err(format!("unknown tree {n:?} in {names:?}"));
        }
        let mut state = vec![None; SLOTS];
        for (s, slot) in (0..SLOTS as u8).zip(state.iter_mut()) {
            let Some(tree) = forest.tree(&name(s)).map_err(|e| e.to_string())? else {
                continue;
            };
            let entries: Result<Model, Error> =
                tree.range(..).map_err(|e| e.to_string())?.collect();
            *slot = Some(entries.map_err(|e| format!("reading {}: {e}", name(s)))?);
        }
        Ok(state)
    }

    /// With failures healed, the live forest reads back as the live model
    /// (every failed operation left it as it was) and checks clean.
    fn verify_live(&self) {
        let got = Self::read_state(self.forest()).unwrap_or_else(|e| panic!("live: {e}"));
        assert!(
            got == self.live,
            "the live forest differs from the live model: {}; got {}, want {}",
            difference(&got, &self.live),
            summary(&got),
            summary(&self.live)
        );
        let report = self.forest().check().expect("check() is infallible");
        assert!(report.is_clean(), "live check:\n{report}");
    }

    /// Opens the forest again and checks it shows one of `candidates` or
    /// the state of a failed commit; that state is committed from then on.
    fn reopen(&mut self, candidates: &[State], after: &str) {
        let forest = Forest::with_backend(Arc::new(self.disk.clone()), self.options.clone())
            .unwrap_or_else(|e| panic!("open after {after}: {e}"));
        let got = Self::read_state(&forest).unwrap_or_else(|e| panic!("after {after}: {e}"));
        let landed = candidates.contains(&got) || self.attempted.contains(&got);
        let last = candidates.last().expect("at least one candidate");
        assert!(
            landed,
            "after {after} the forest is no commit it may return to: {}; got {}, \
             want {} (or a failed commit: {:?})",
            difference(&got, last),
            summary(&got),
            summary(last),
            self.attempted.iter().map(summary).collect::<Vec<_>>()
        );
        let report = forest.check().expect("check() is infallible");
        assert!(report.is_clean(), "check after {after}:\n{report}");
        self.forest = Some(forest);
        self.live = got.clone();
        self.committed = got.clone();
        self.durable = vec![got];
        self.attempted.clear();
        self.armed = false;
        self.latched = false;
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
            let h = Harness::new(Config::decode(0x20 | u8::from(node_size == 512)));
            let levels = h.tree(0).shape().unwrap().levels.len();
            assert!(levels >= 3, "{levels} levels with {node_size}-byte nodes");
        }
    }

    #[test]
    fn values_fit_the_entry_limit() {
        for limit in [64, 128] {
            for k in 0..=255 {
                for tag in 0..=255 {
                    assert!(key(k).len() + value(k, tag, limit).len() <= limit);
                }
            }
        }
    }
}
