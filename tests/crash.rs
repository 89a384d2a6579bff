//! Crash model test: random operations on a few trees over a
//! `FaultyBackend`, interleaved with process crashes (torn or dropped
//! unsynced writes), injected I/O failures and reopens, checked against two
//! models: the live trees and the trees of the last commit.
//!
//! Small nodes, a tiny cache and two workers keep nodes moving through the
//! dirty queue and the in-flight map all the time, so a crash catches
//! background writes half done; small segments give every commit sparse
//! segments to compact. The rules checked:
//! - a commit that returned `Ok` survives any later crash;
//! - a commit that returned an error may or may not have landed: the next
//!   reopen shows either the last good commit or the state it tried to
//!   write, and that one is the committed state from then on;
//! - an operation that returned an error changed nothing, and once a commit
//!   has failed (or the store reported a background failure) no write
//!   succeeds until the forest is reopened;
//! - after every reopen the trees equal the committed model and the
//!   structural check is clean.
//!
//! `LARIX_CRASH_CASES` raises the number of cases.

use larix::{Durability, Error, Forest, Options};
use larix_nodestore::testing::{CrashMode, FaultyBackend};
use larix_nodestore::StoreError;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

const SLOTS: usize = 3;
const KEYS: u16 = 600;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;
/// One optional tree per slot: the whole forest as the test sees it.
type State = Vec<Option<Model>>;

#[derive(Debug, Clone)]
enum Op {
    Create(usize),
    Insert(usize, u16, u8),
    Fill(usize, u16, u16, u8),
    Remove(usize, u16),
    RemoveRange(usize, Bound<u16>, Bound<u16>),
    Clone(usize, usize),
    RemoveTree(usize),
    Commit,
    /// Copy the live nodes out of sparse segments, then commit.
    Compact,
    /// Kill the process, drop the forest, crash the machine, reopen.
    Crash(CrashMode),
    /// Every backend call after the next `n` fails until the next reopen.
    FailAfter(u64),
    /// `FailAfter(n)` then `Commit`: a commit failing at any of its steps.
    FailingCommit(u64),
    /// Drop the forest and open it again; `heal` first lets the live state
    /// be read back before the drop.
    Reopen {
        heal: bool,
    },
}

fn name(s: usize) -> String {
    format!("t{s}")
}

fn key(k: u16) -> Vec<u8> {
    // Keys of varying length that still sort like the numbers.
    let mut v = format!("k{k:05}").into_bytes();
    v.extend(std::iter::repeat_n(b'.', usize::from(k % 7)));
    v
}

fn value(k: u16, tag: u8) -> Vec<u8> {
    vec![tag; usize::from(k % 23) + usize::from(tag % 5)]
}

fn bound() -> impl Strategy<Value = Bound<u16>> {
    prop_oneof![
        Just(Bound::Unbounded),
        (0..KEYS).prop_map(Bound::Included),
        (0..KEYS).prop_map(Bound::Excluded),
    ]
}

fn crash_mode() -> impl Strategy<Value = CrashMode> {
    prop_oneof![
        Just(CrashMode::DropUnsynced),
        // Torn blobs, torn table chunks (16 KiB) and torn superblock slots
        // (4 KiB) alike.
        (0usize..20_000).prop_map(|keep| CrashMode::TearLastWrite { keep }),
    ]
}

/// Operations on the trees and commits, without faults.
fn tree_op() -> impl Strategy<Value = Op> {
    let slot = 0..SLOTS;
    prop_oneof![
        3 => slot.clone().prop_map(Op::Create),
        20 => (slot.clone(), 0..KEYS, any::<u8>()).prop_map(|(s, k, t)| Op::Insert(s, k, t)),
        5 => (slot.clone(), 0..KEYS, 1u16..120, any::<u8>())
            .prop_map(|(s, k, n, t)| Op::Fill(s, k, n, t)),
        8 => (slot.clone(), 0..KEYS).prop_map(|(s, k)| Op::Remove(s, k)),
        2 => (slot.clone(), bound(), bound()).prop_map(|(s, a, b)| Op::RemoveRange(s, a, b)),
        3 => (slot.clone(), slot.clone()).prop_map(|(a, b)| Op::Clone(a, b)),
        1 => slot.prop_map(Op::RemoveTree),
        6 => Just(Op::Commit),
        2 => Just(Op::Compact),
    ]
}

/// Everything, faults included (durable commits).
fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        45 => tree_op(),
        3 => crash_mode().prop_map(Op::Crash),
        3 => (0u64..40).prop_map(Op::FailAfter),
        3 => (0u64..16).prop_map(Op::FailingCommit),
        2 => any::<bool>().prop_map(|heal| Op::Reopen { heal }),
    ]
}

/// Tree operations, crashes and clean reopens (non-durable commits).
fn op_without_failures() -> impl Strategy<Value = Op> {
    prop_oneof![
        45 => tree_op(),
        4 => crash_mode().prop_map(Op::Crash),
        2 => Just(Op::Reopen { heal: true }),
    ]
}

fn key_bound(b: Bound<u16>) -> Bound<Vec<u8>> {
    match b {
        Bound::Included(k) => Bound::Included(key(k)),
        Bound::Excluded(k) => Bound::Excluded(key(k)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn as_slices(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The model's keys within the bounds (none for an inverted range, which
/// `BTreeMap::range` would panic on and Larix treats as empty).
fn model_keys(m: &Model, lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> Vec<Vec<u8>> {
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
        .map(|(k, _)| k.clone())
        .collect()
}

/// A short description of a state for failure messages.
fn summary(state: &State) -> String {
    let trees: Vec<String> = state
        .iter()
        .enumerate()
        .filter_map(|(s, m)| m.as_ref().map(|m| format!("{}: {} keys", name(s), m.len())))
        .collect();
    format!("[{}]", trees.join(", "))
}

/// Where two states first differ, for failure messages.
fn difference(got: &State, want: &State) -> String {
    for s in 0..SLOTS {
        match (&got[s], &want[s]) {
            (None, None) => {}
            (Some(_), None) => return format!("{} exists but should not", name(s)),
            (None, Some(_)) => return format!("{} is missing", name(s)),
            (Some(g), Some(w)) => {
                let extra = g.iter().find(|(k, v)| w.get(*k) != Some(v));
                let lost = w.iter().find(|(k, _)| !g.contains_key(*k));
                if let Some((k, v)) = extra {
                    let want = w.get(k).map(|v| v.len());
                    return format!(
                        "{}: key {:?} has a value of {} bytes, expected {want:?}",
                        name(s),
                        String::from_utf8_lossy(k),
                        v.len()
                    );
                }
                if let Some((k, _)) = lost {
                    return format!("{}: key {:?} is lost", name(s), String::from_utf8_lossy(k));
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

struct Harness {
    disk: FaultyBackend,
    options: Options,
    /// Commits are durable when they return (`Durability::Immediate`).
    immediate: bool,
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
    /// The store reported a failure (a commit failed, or a write was
    /// refused): no write may succeed until the forest is reopened.
    latched: bool,
}

impl Harness {
    fn new(node_size: usize, durability: Durability) -> Result<Harness, TestCaseError> {
        let options = Options::default()
            .node_size(node_size)
            .cache_bytes(node_size * 16)
            .workers(2)
            .segment_bytes(64 << 10)
            .durability(durability);
        let disk = FaultyBackend::new();
        let forest = Forest::with_backend(Arc::new(disk.clone()), options.clone())
            .map_err(|e| TestCaseError::fail(format!("create: {e}")))?;
        let empty = vec![None; SLOTS];
        Ok(Harness {
            disk,
            options,
            immediate: durability == Durability::Immediate,
            forest: Some(forest),
            live: empty.clone(),
            committed: empty.clone(),
            durable: vec![empty],
            attempted: Vec::new(),
            armed: false,
            latched: false,
        })
    }

    fn forest(&self) -> &Forest {
        self.forest
            .as_ref()
            .expect("the forest is open between operations")
    }

    /// Checks the outcome of an operation that changes the live state if
    /// `changes`: an error is allowed only with failures armed, success
    /// not once the store has reported a failure. `Some` if it succeeded.
    fn outcome<T>(
        &mut self,
        what: &str,
        changes: bool,
        r: Result<T, Error>,
    ) -> Result<Option<T>, TestCaseError> {
        match r {
            Ok(v) => {
                prop_assert!(
                    !(changes && self.latched),
                    "{what} succeeded after the store reported a failure"
                );
                Ok(Some(v))
            }
            Err(e) => {
                prop_assert!(self.armed, "{what} failed with no fault injected: {e}");
                if refused(&e) {
                    self.latched = true;
                }
                Ok(None)
            }
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match op.clone() {
            Op::Create(s) => {
                let r = self.forest().create_tree(&name(s)).map(drop);
                if self.live[s].is_some() {
                    prop_assert!(matches!(r, Err(Error::TreeExists { .. })), "{r:?}");
                } else if self.outcome("create", true, r)?.is_some() {
                    self.live[s] = Some(Model::new());
                }
            }
            Op::Insert(s, k, t) => self.insert(s, k, t)?,
            Op::Fill(s, k, n, t) => {
                for k in k..k.saturating_add(n).min(KEYS) {
                    self.insert(s, k, t)?;
                }
            }
            Op::Remove(s, k) => {
                let Some(m) = &self.live[s] else {
                    return self.assert_absent(s);
                };
                let had = m.contains_key(&key(k));
                let r = self.tree(s)?.remove(&key(k));
                if let Some(existed) = self.outcome("remove", had, r)? {
                    prop_assert_eq!(existed, had);
                    self.model(s).remove(&key(k));
                }
            }
            Op::RemoveRange(s, a, b) => {
                let Some(m) = &self.live[s] else {
                    return self.assert_absent(s);
                };
                let (lo, hi) = (key_bound(a), key_bound(b));
                let doomed = model_keys(m, &lo, &hi);
                let r = self.tree(s)?.remove_range((as_slices(&lo), as_slices(&hi)));
                if let Some(n) = self.outcome("remove_range", !doomed.is_empty(), r)? {
                    prop_assert_eq!(n, doomed.len() as u64);
                    for k in doomed {
                        self.model(s).remove(&k);
                    }
                }
            }
            Op::Clone(a, b) => {
                let r = self.forest().clone_tree(&name(a), &name(b)).map(drop);
                if self.live[a].is_none() {
                    prop_assert!(matches!(r, Err(Error::TreeNotFound { .. })), "{r:?}");
                } else if self.live[b].is_some() {
                    prop_assert!(matches!(r, Err(Error::TreeExists { .. })), "{r:?}");
                } else if self.outcome("clone_tree", true, r)?.is_some() {
                    self.live[b] = self.live[a].clone();
                }
            }
            Op::RemoveTree(s) => {
                let r = self.forest().remove_tree(&name(s));
                if self.live[s].is_none() {
                    prop_assert!(matches!(r, Err(Error::TreeNotFound { .. })), "{r:?}");
                } else if self.outcome("remove_tree", true, r)?.is_some() {
                    self.live[s] = None;
                }
            }
            Op::Commit => {
                let r = self.forest().commit();
                self.committed(r, true)?;
            }
            Op::Compact => {
                // A failure before the commit inside need not be latched.
                let r = self.forest().compact();
                self.committed(r, false)?;
            }
            Op::Crash(mode) => {
                // The process dies: nothing it still does reaches the disk.
                self.disk.kill();
                self.forest = None;
                self.disk.crash(mode);
                let candidates = self.durable.clone();
                self.reopen(&candidates, "crash")?;
            }
            Op::FailAfter(n) => {
                self.disk.fail_after(n);
                self.armed = true;
            }
            Op::FailingCommit(n) => {
                self.apply(&Op::FailAfter(n))?;
                self.apply(&Op::Commit)?;
            }
            Op::Reopen { heal } => {
                if heal {
                    self.disk.heal();
                    self.verify_live()?;
                }
                self.forest = None;
                self.disk.heal();
                let candidates = vec![self.committed.clone()];
                self.reopen(&candidates, "reopen")?;
            }
        }
        Ok(())
    }

    fn insert(&mut self, s: usize, k: u16, t: u8) -> Result<(), TestCaseError> {
        let Some(m) = &self.live[s] else {
            return self.assert_absent(s);
        };
        let changes = m.get(&key(k)) != Some(&value(k, t));
        let r = self.tree(s)?.insert(&key(k), &value(k, t));
        if self.outcome("insert", changes, r)?.is_some() {
            self.model(s).insert(key(k), value(k, t));
        }
        Ok(())
    }

    /// Records the outcome of a commit (or of a compaction, which ends with
    /// one); `latches`: a failure must make the store refuse writes.
    fn committed(&mut self, r: Result<(), Error>, latches: bool) -> Result<(), TestCaseError> {
        match r {
            Ok(()) => {
                prop_assert!(
                    !self.latched,
                    "commit succeeded after the store reported a failure"
                );
                self.committed = self.live.clone();
                self.attempted.clear();
                if self.immediate {
                    self.durable = vec![self.live.clone()];
                } else {
                    self.durable.push(self.live.clone());
                }
            }
            Err(e) => {
                prop_assert!(self.armed, "commit failed with no fault injected: {e}");
                // A commit refused up front wrote nothing; any other failure
                // may have come after its superblock landed.
                if !refused(&e) {
                    prop_assert!(
                        !self.latched,
                        "a commit after a failure got past the refusal: {e}"
                    );
                    self.attempted.push(self.live.clone());
                }
                self.latched |= latches;
            }
        }
        Ok(())
    }

    fn tree(&self, s: usize) -> Result<larix::Tree, TestCaseError> {
        self.forest()
            .tree(&name(s))
            .map_err(|e| TestCaseError::fail(format!("tree({}): {e}", name(s))))?
            .ok_or_else(|| TestCaseError::fail(format!("{} is missing", name(s))))
    }

    fn model(&mut self, s: usize) -> &mut Model {
        self.live[s].as_mut().expect("the caller checked the slot")
    }

    fn assert_absent(&self, s: usize) -> Result<(), TestCaseError> {
        prop_assert!(self.forest().tree(&name(s)).unwrap().is_none());
        Ok(())
    }

    /// The forest's trees as the test's state, and their names.
    fn read_state(forest: &Forest) -> Result<State, TestCaseError> {
        let names = forest.tree_names();
        let known: Vec<String> = (0..SLOTS).map(name).collect();
        prop_assert!(
            names.iter().all(|n| known.contains(n)),
            "unknown trees in {names:?}"
        );
        let mut state = vec![None; SLOTS];
        for (s, slot) in state.iter_mut().enumerate() {
            let Some(tree) = forest.tree(&name(s)).unwrap() else {
                continue;
            };
            let entries: Result<Model, Error> = tree.range(..).unwrap().collect();
            let entries =
                entries.map_err(|e| TestCaseError::fail(format!("reading {}: {e}", name(s))))?;
            *slot = Some(entries);
        }
        Ok(state)
    }

    /// With failures healed, the live forest reads back as the live model:
    /// every failed operation left it as it was.
    fn verify_live(&self) -> Result<(), TestCaseError> {
        let got = Self::read_state(self.forest())?;
        prop_assert!(
            got == self.live,
            "the live forest differs from the live model: {}; got {}, want {}",
            difference(&got, &self.live),
            summary(&got),
            summary(&self.live)
        );
        let report = self.forest().check().unwrap();
        prop_assert!(report.is_clean(), "live check:\n{report}");
        Ok(())
    }

    /// Opens the forest again and checks it shows one of `candidates` or
    /// the state of a failed commit; that state is committed from then on.
    fn reopen(&mut self, candidates: &[State], after: &str) -> Result<(), TestCaseError> {
        let forest = Forest::with_backend(Arc::new(self.disk.clone()), self.options.clone())
            .map_err(|e| TestCaseError::fail(format!("open after {after}: {e}")))?;
        let got = Self::read_state(&forest)?;
        let landed = candidates.contains(&got) || self.attempted.contains(&got);
        let last = candidates.last().expect("at least one candidate");
        prop_assert!(
            landed,
            "after {after} the forest is no commit it may return to: {}; got {}, \
             want {} (or a failed commit: {:?})",
            difference(&got, last),
            summary(&got),
            summary(last),
            self.attempted.iter().map(summary).collect::<Vec<_>>()
        );
        let report = forest.check().unwrap();
        prop_assert!(report.is_clean(), "check after {after}:\n{report}");
        self.forest = Some(forest);
        self.live = got.clone();
        self.committed = got.clone();
        self.durable = vec![got];
        self.attempted.clear();
        self.armed = false;
        self.latched = false;
        Ok(())
    }
}

fn run(node_size: usize, durability: Durability, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut h = Harness::new(node_size, durability)?;
    // Start from a committed tree deep enough to have index levels.
    for op in [Op::Create(0), Op::Fill(0, 0, 300, 1), Op::Commit] {
        h.apply(&op)?;
    }
    for op in ops {
        h.apply(op)?;
    }
    h.apply(&Op::Reopen { heal: true })
}

fn cases(default: u32) -> u32 {
    std::env::var("LARIX_CRASH_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every step of a commit, failed in turn: the forest reopens to the old or
/// the new state, and whichever it shows survives a crash right after.
#[test]
fn a_commit_failing_at_any_step_reopens_to_a_state_that_survives_a_crash() {
    let options = Options::default()
        .node_size(256)
        .cache_bytes(256 * 16)
        .workers(2);
    let open = |disk: &FaultyBackend| {
        let forest = Forest::with_backend(Arc::new(disk.clone()), options.clone()).unwrap();
        let report = forest.check().unwrap();
        assert!(report.is_clean(), "{report}");
        forest
    };
    let entries = |forest: &Forest| -> Option<u64> {
        let tree = forest.tree("t").unwrap()?;
        Some(tree.count_range(..).unwrap())
    };
    for n in 0.. {
        let disk = FaultyBackend::new();
        let forest = open(&disk);
        let t = forest.create_tree("t").unwrap();
        for k in 0..100 {
            t.insert(&key(k), &value(k, 1)).unwrap();
        }
        forest.commit().unwrap();
        for k in 100..200 {
            t.insert(&key(k), &value(k, 2)).unwrap();
        }
        disk.fail_after(n);
        if forest.commit().is_ok() {
            assert!(n > 5, "a commit of 100 entries took only {n} calls");
            break;
        }
        drop(t);
        drop(forest);
        disk.heal();
        let shown = entries(&open(&disk));
        assert!(
            shown == Some(100) || shown == Some(200),
            "commit failing after {n} calls: reopened with {shown:?} entries"
        );
        disk.crash(CrashMode::DropUnsynced);
        let after = entries(&open(&disk));
        assert_eq!(
            after, shown,
            "commit failing after {n} calls: the reopened state was lost by a crash"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(128)))]

    #[test]
    fn tiny_nodes_survive_crashes_and_failures(ops in proptest::collection::vec(op(), 1..60)) {
        run(256, Durability::Immediate, &ops)?;
    }

    #[test]
    fn small_nodes_survive_crashes_and_failures(ops in proptest::collection::vec(op(), 1..60)) {
        run(1024, Durability::Immediate, &ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(48)))]

    #[test]
    fn non_durable_commits_return_to_a_durable_one(
        ops in proptest::collection::vec(op_without_failures(), 1..60),
    ) {
        run(256, Durability::None, &ops)?;
    }
}
