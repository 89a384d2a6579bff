//! Stress test of the in-flight rules: four threads re-put, free and read
//! a small set of ids through a tiny cache while three workers write them
//! through a filter that sleeps, so nodes pile up in the dirty queue and
//! the in-flight map and land out of order.
//!
//! Each id has a mutex in the test, so that "the newest version" of an id
//! is well defined; different ids run concurrently. Checked throughout:
//! - a get returns exactly the version last put (S3), whether it is served
//!   from the cache, the dirty queue, the in-flight map or the disk;
//! - a freed id reads as missing at once and stays missing until it is put
//!   again, however late an older write of it lands (S2);
//! - refcounts read back as set.
//!
//! Between rounds the store commits, and twice it is dropped and reopened:
//! every id must then hold its newest version (freed ones missing). The
//! counters must show that reads were served from, and callers waited for,
//! the in-flight map.
//!
//! `LARIX_STRESS_SEED` picks another seed; a failure message names it.

use larix_filters::{Context, Filter, FilterError, Pipeline};
use larix_nodestore::{
    Backend, Codec, CodecError, MemBackend, NodeId, NodeStore, StoreConfig, StoreError,
};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const IDS: usize = 32;
const THREADS: usize = 4;
const OPS_PER_THREAD_PER_ROUND: usize = 1000;
const ROUNDS: usize = 6;

/// SplitMix64: a small, good enough generator for choosing operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A node that knows which id and version it is, padded to a length that
/// varies with both, so the budgets see nodes of different sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TestNode {
    id: u64,
    version: u64,
    padding: Vec<u8>,
}

fn pad_byte(id: u64, version: u64, i: usize) -> u8 {
    (id.wrapping_mul(31) ^ version.wrapping_mul(7) ^ i as u64) as u8
}

impl TestNode {
    fn new(id: NodeId, version: u64) -> TestNode {
        let len = 16 + ((version.wrapping_mul(37) + id.0) % 400) as usize;
        TestNode {
            id: id.0,
            version,
            padding: (0..len).map(|i| pad_byte(id.0, version, i)).collect(),
        }
    }
}

impl Codec for TestNode {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.padding.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.padding);
    }

    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let err = |why: &str| CodecError(format!("test node: {why}"));
        if bytes.len() < 20 {
            return Err(err("shorter than its header"));
        }
        let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
        let (id, version) = (u64_at(0), u64_at(8));
        let len = u32::from_le_bytes(bytes[16..20].try_into().unwrap()) as usize;
        let padding = &bytes[20..];
        if padding.len() != len {
            return Err(err("padding length does not match"));
        }
        if padding
            .iter()
            .enumerate()
            .any(|(i, &b)| b != pad_byte(id, version, i))
        {
            return Err(err("padding does not match its id and version"));
        }
        Ok(TestNode {
            id,
            version,
            padding: padding.to_vec(),
        })
    }

    fn mem_size(&self) -> usize {
        48 + self.padding.len()
    }
}

/// A filter that takes 0–2 ms to encode (so writes land out of order) and
/// binds each blob to its node id; decoding checks the id and strips it.
#[derive(Debug, Default)]
struct SlowFilter {
    calls: AtomicU64,
}

impl Filter for SlowFilter {
    fn name(&self) -> &'static str {
        "slow"
    }

    fn params(&self) -> String {
        "sleep=0..2ms".into()
    }

    fn encode(&self, ctx: &Context, input: &[u8]) -> Result<Vec<u8>, FilterError> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        let micros = Rng(n ^ ctx.node_id.rotate_left(17)).below(2001);
        std::thread::sleep(Duration::from_micros(micros));
        let mut out = ctx.node_id.to_le_bytes().to_vec();
        out.extend_from_slice(input);
        Ok(out)
    }

    fn decode(&self, ctx: &Context, input: &[u8]) -> Result<Vec<u8>, FilterError> {
        let Some((tag, body)) = input.split_first_chunk::<8>() else {
            return Err(FilterError::Truncated {
                node_id: ctx.node_id,
                filter: "slow",
                len: input.len(),
                min: 8,
            });
        };
        let stored = u64::from_le_bytes(*tag);
        if stored != ctx.node_id {
            return Err(FilterError::ChecksumMismatch {
                node_id: ctx.node_id,
                expected: stored as u32,
                actual: ctx.node_id as u32,
            });
        }
        Ok(body.to_vec())
    }
}

fn pipeline() -> Pipeline {
    Pipeline::custom(vec![Arc::new(SlowFilter::default())])
}

fn config() -> StoreConfig {
    StoreConfig {
        // 4 KiB of cache, 2 KiB of dirty queue, 2 KiB in flight: a handful
        // of nodes each.
        cache_bytes: 8 << 10,
        workers: 3,
        parameters: format!("stress;filters={}", pipeline().describe()),
        ..StoreConfig::default()
    }
}

/// What the test last did to an id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Slot {
    /// Never put.
    #[default]
    Unused,
    /// Put with this version and refcount.
    Live { version: u64, refcount: u32 },
    /// Freed since its last put.
    Freed,
}

struct Test {
    seed: u64,
    ids: Vec<NodeId>,
    slots: Vec<Mutex<Slot>>,
    versions: AtomicU64,
}

impl Test {
    /// Asserts that the store holds what `slot` says about `ids[i]`.
    fn expect(&self, store: &NodeStore<TestNode>, i: usize, slot: Slot, when: &str) {
        let id = self.ids[i];
        let seed = self.seed;
        match slot {
            Slot::Live { version, refcount } => {
                let node = store
                    .get(id)
                    .unwrap_or_else(|e| panic!("seed {seed}, {when}: get {id}: {e}"));
                assert_eq!(
                    (node.id, node.version),
                    (id.0, version),
                    "seed {seed}, {when}: {id} read back another version"
                );
                assert_eq!(
                    store.refcount(id).unwrap(),
                    refcount,
                    "seed {seed}, {when}: refcount of {id}"
                );
            }
            Slot::Unused | Slot::Freed => {
                let got = store.get(id).map(|n| n.version);
                assert!(
                    matches!(got, Err(StoreError::NodeMissing { .. })),
                    "seed {seed}, {when}: {id} ({slot:?}) read as {got:?}"
                );
                assert!(store.refcount(id).is_err(), "seed {seed}, {when}: {id}");
            }
        }
    }

    /// One thread's share of a round.
    fn worker(&self, store: &NodeStore<TestNode>, thread: usize, round: usize) {
        let mut rng =
            Rng(self.seed ^ ((round * THREADS + thread) as u64).wrapping_mul(0x1234_5679));
        for _ in 0..OPS_PER_THREAD_PER_ROUND {
            let i = rng.below(IDS as u64) as usize;
            let id = self.ids[i];
            let mut slot = self.slots[i].lock();
            match rng.below(10) {
                0..=5 => {
                    let version = self.versions.fetch_add(1, Ordering::Relaxed);
                    let refcount = rng.below(4) as u32 + 1;
                    store.put(id, Arc::new(TestNode::new(id, version))).unwrap();
                    store.set_refcount(id, refcount).unwrap();
                    *slot = Slot::Live { version, refcount };
                    self.expect(store, i, *slot, "right after put");
                }
                6 => {
                    let r = store.free(id);
                    if matches!(*slot, Slot::Live { .. }) {
                        r.unwrap_or_else(|e| panic!("seed {}: free {id}: {e}", self.seed));
                        *slot = Slot::Freed;
                        self.expect(store, i, *slot, "right after free");
                        if rng.below(4) == 0 {
                            // Longer than any encode: a write of the freed
                            // version still in flight has landed by now.
                            std::thread::sleep(Duration::from_micros(2500));
                            self.expect(store, i, *slot, "after late writes landed");
                        }
                    } else {
                        assert!(
                            matches!(r, Err(StoreError::NodeMissing { .. })),
                            "seed {}: freeing {id} ({:?}) twice: {r:?}",
                            self.seed,
                            *slot
                        );
                    }
                }
                _ => self.expect(store, i, *slot, "a later get"),
            }
        }
    }

    fn expect_all(&self, store: &NodeStore<TestNode>, when: &str) {
        for i in 0..IDS {
            self.expect(store, i, *self.slots[i].lock(), when);
        }
        let live: Vec<NodeId> = (0..IDS)
            .filter(|&i| matches!(*self.slots[i].lock(), Slot::Live { .. }))
            .map(|i| self.ids[i])
            .collect();
        assert_eq!(store.node_ids(), live, "seed {}, {when}", self.seed);
        assert_eq!(store.stats().nodes, live.len() as u64);
    }
}

#[test]
fn gets_see_the_newest_version_and_freed_ids_stay_freed() {
    let started = Instant::now();
    let seed = std::env::var("LARIX_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_1A21);
    let backend: Arc<dyn Backend> = Arc::new(MemBackend::new());
    let mut store = NodeStore::open(backend.clone(), pipeline(), config()).unwrap();
    let ids: Vec<NodeId> = (0..IDS).map(|_| store.allocate()).collect();
    let test = Test {
        seed,
        ids,
        slots: (0..IDS).map(|_| Mutex::new(Slot::Unused)).collect(),
        versions: AtomicU64::new(1),
    };
    let (mut inflight_hits, mut inflight_waits) = (0, 0);
    for round in 0..ROUNDS {
        std::thread::scope(|s| {
            for thread in 0..THREADS {
                let (test, store) = (&test, &store);
                s.spawn(move || test.worker(store, thread, round));
            }
        });
        test.expect_all(&store, "after the round");
        store
            .checkpoint(format!("round {round}").as_bytes(), true)
            .unwrap();
        test.expect_all(&store, "after commit");
        if round % 2 == 1 {
            let stats = store.stats();
            inflight_hits += stats.inflight_hits;
            inflight_waits += stats.inflight_waits;
            drop(store);
            store = NodeStore::open(backend.clone(), pipeline(), config()).unwrap();
            assert_eq!(
                store.committed_catalog(),
                format!("round {round}").as_bytes()
            );
            test.expect_all(&store, "after reopen");
        }
    }
    let stats = store.stats();
    inflight_hits += stats.inflight_hits;
    inflight_waits += stats.inflight_waits;
    eprintln!(
        "{} versions, {inflight_hits} in-flight hits, {inflight_waits} in-flight waits, {:?}",
        test.versions.load(Ordering::Relaxed) - 1,
        started.elapsed()
    );
    assert!(
        inflight_hits > 0,
        "no read was served from the in-flight map"
    );
    assert!(inflight_waits > 0, "no caller waited for in-flight writes");
}
