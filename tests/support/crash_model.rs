//! The crash model: a forest of a few trees over a [`FaultyBackend`],
//! driven one operation at a time and checked against two `BTreeMap`
//! models, the live trees and the trees of the last commit.
//!
//! One harness for two drivers: `tests/crash.rs` (proptest) and the fuzz
//! crate's `model` target (libFuzzer) both include this file by path
//! (`#[path = ".../tests/support/crash_model.rs"] mod crash_model;`), so it
//! uses only what both have: `larix`, `larix-nodestore` with its `testing`
//! feature, and `std`. Each driver keeps its own operations (how keys and
//! values are made, which faults it draws) and calls the methods here; a
//! broken rule is an `Err` with a message, which the proptest reports as a
//! failing case and the fuzz target as a panic.
//!
//! The rules checked:
//! - an operation that succeeds does what the model does, and a read
//!   returns what the live model holds;
//! - an operation fails only while failures are armed
//!   ([`Harness::fail_after`]), and a failed operation changes nothing;
//! - once the store reported a failure (a commit failed, or a write was
//!   refused), no write succeeds until the forest is reopened;
//! - a commit that returned `Ok` survives any later crash (with
//!   `Durability::None`: a crash returns to one of the commits since the
//!   last durable one);
//! - a commit that returned an error may or may not have landed: the next
//!   reopen shows either the last good commit or a state a failed commit
//!   tried to write, and that one is the committed state from then on;
//! - after every reopen the trees equal the committed model exactly and
//!   `check()` is clean; a healing reopen first checks the live forest
//!   against the live model;
//! - a snapshot taken at a get and held until the next crash or reopen
//!   shows, read twice at each later get, the trees of the moment it was
//!   taken, whatever the operations between did.

use larix::{Durability, Error, Forest, Options, Snapshot, Tree};
use larix_nodestore::testing::{CrashMode, FaultyBackend};
use larix_nodestore::{Backend, StoreError};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

/// What the forest is stored on, and the faults the harness injects into
/// it: a [`FaultyBackend`] (files), or an object store that fails on
/// demand (`tests/crash.rs`).
pub trait Medium {
    /// A backend on the medium, as a new open of the store gets it.
    ///
    /// # Errors
    /// If the backend cannot be opened.
    fn backend(&self) -> Checked<Arc<dyn Backend>>;
    /// The process dies: nothing it still does reaches the medium.
    fn kill(&self);
    /// The machine crashes: what was not durable goes, as `mode` says.
    fn crash(&self, mode: CrashMode);
    /// After `n` more calls, every call fails.
    fn fail_after(&self, n: u64);
    /// Disarms failures and ends a kill.
    fn heal(&self);
}

impl Medium for FaultyBackend {
    fn backend(&self) -> Checked<Arc<dyn Backend>> {
        Ok(Arc::new(self.clone()))
    }

    fn kill(&self) {
        FaultyBackend::kill(self);
    }

    fn crash(&self, mode: CrashMode) {
        FaultyBackend::crash(self, mode);
    }

    fn fail_after(&self, n: u64) {
        FaultyBackend::fail_after(self, n);
    }

    fn heal(&self) {
        FaultyBackend::heal(self);
    }
}

/// Tree slots: tree `s` is called `t{s}` ([`name`]).
pub const SLOTS: usize = 3;

/// The entries of one tree.
pub type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// One optional tree per slot: the whole forest as the harness sees it.
pub type State = Vec<Option<Model>>;

/// What a step of the harness returns: `Err` names the rule it saw broken.
pub type Checked<T = ()> = Result<T, String>;

/// Returns `Err(format!(...))` from the enclosing function unless `cond`.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// The name of the tree in `slot`.
pub fn name(slot: usize) -> String {
    format!("t{slot}")
}

/// A bound on owned keys as a bound on slices, as the tree takes it.
pub fn as_slices(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The model's entries within `lo..hi` (none for an inverted range, which
/// `BTreeMap::range` would panic on and Larix treats as empty).
pub fn model_range(m: &Model, lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> Vec<(Vec<u8>, Vec<u8>)> {
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

/// A short description of a state for failure messages.
fn summary(state: &State) -> String {
    let trees: Vec<String> = state
        .iter()
        .enumerate()
        .filter_map(|(s, m)| Some(format!("{}: {} keys", name(s), m.as_ref()?.len())))
        .collect();
    format!("[{}]", trees.join(", "))
}

/// Where two states first differ, for failure messages.
fn difference(got: &State, want: &State) -> String {
    for (s, (got, want)) in got.iter().zip(want).enumerate() {
        let t = name(s);
        match (got, want) {
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

/// The forest under test and its models.
pub struct Harness {
    disk: Box<dyn Medium>,
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
    /// The store reported a failure: no write may succeed until reopen.
    latched: bool,
    /// A snapshot taken at a get, held until the next crash or reopen,
    /// and the live state it was taken at.
    held: Option<(Snapshot, State)>,
}

impl Harness {
    /// Opens a forest of `options` with `durability` over `disk`, which
    /// holds nothing (a new store) or the durable commit of `state`, and
    /// checks that it shows `state`.
    ///
    /// # Errors
    /// If the forest fails to open, shows another state or checks unclean.
    pub fn open(
        disk: impl Medium + 'static,
        options: Options,
        durability: Durability,
        state: State,
    ) -> Checked<Harness> {
        let mut h = Harness {
            disk: Box::new(disk),
            options: options.durability(durability),
            immediate: durability == Durability::Immediate,
            forest: None,
            live: state.clone(),
            committed: state.clone(),
            durable: vec![state.clone()],
            attempted: Vec::new(),
            armed: false,
            latched: false,
            held: None,
        };
        h.reopen_to(&[state], "setup")?;
        Ok(h)
    }

    fn forest(&self) -> &Forest {
        self.forest
            .as_ref()
            .expect("the forest is open between operations")
    }

    /// Creates the tree in `slot` (refused with `TreeExists` if it exists).
    ///
    /// # Errors
    /// If the forest breaks a rule of the module documentation.
    pub fn create(&mut self, slot: usize) -> Checked {
        let r = self.forest().create_tree(&name(slot)).map(drop);
        if self.live[slot].is_some() {
            ensure!(matches!(r, Err(Error::TreeExists { .. })), "create: {r:?}");
        } else if self.outcome("create", true, r)?.is_some() {
            self.live[slot] = Some(Model::new());
        }
        Ok(())
    }

    /// Inserts `key` with `value` into the tree in `slot`.
    ///
    /// # Errors
    /// If the forest breaks a rule of the module documentation.
    pub fn insert(&mut self, slot: usize, key: &[u8], value: &[u8]) -> Checked {
        let Some(m) = &self.live[slot] else {
            return self.assert_absent(slot);
        };
        let changes = m.get(key).is_none_or(|v| v != value);
        let r = self.tree(slot)?.insert(key, value);
        if self.outcome("insert", changes, r)?.is_some() {
            self.model(slot).insert(key.to_vec(), value.to_vec());
        }
        Ok(())
    }

    /// Inserts `pairs` into the tree in `slot` as one batch. A batch the
    /// write buffer holds fails whole; one applied at once may fail after
    /// a prefix of its pairs (in key order), so a failure is checked
    /// against every prefix.
    ///
    /// # Errors
    /// If the forest breaks a rule of the module documentation.
    pub fn insert_batch(&mut self, slot: usize, pairs: &[(Vec<u8>, Vec<u8>)]) -> Checked {
        let Some(m) = &self.live[slot] else {
            return self.assert_absent(slot);
        };
        let changes = pairs.iter().any(|(k, v)| m.get(k) != Some(v));
        let r = self
            .tree(slot)?
            .insert_batch(pairs.iter().map(|(k, v)| (k, v)));
        if self.outcome("insert_batch", changes, r)?.is_some() {
            for (k, v) in pairs {
                self.model(slot).insert(k.clone(), v.clone());
            }
            return Ok(());
        }
        let mut sorted: Vec<&(Vec<u8>, Vec<u8>)> = pairs.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let what = format!("batch into {}", name(slot));
        self.accept_a_prefix(
            slot,
            sorted,
            |m, (k, v)| {
                m.insert(k.clone(), v.clone());
            },
            &what,
        )
    }

    /// Removes `key` from the tree in `slot`.
    ///
    /// # Errors
    /// If the forest breaks a rule of the module documentation.
    pub fn remove(&mut self, slot: usize, key: &[u8]) -> Checked {
        let Some(m) = &self.live[slot] else {
            return self.assert_absent(slot);
        };
        let had = m.contains_key(key);
        let r = self.tree(slot)?.remove(key);
        if let Some(existed) = self.outcome("remove", had, r)? {
            let k = String::from_utf8_lossy(key);
            ensure!(
                existed == had,
                "remove of {k:?} in {}: {existed}",
                name(slot)
            );
            self.model(slot).remove(key);
        }
        Ok(())
    }

    /// Removes `keys` from the tree in `slot` as one batch
    /// (`Tree::remove_batch`). A failed batch may have removed a prefix of
    /// its keys (in key order), so a failure is checked against every
    /// prefix.
    ///
    /// # Errors
    /// If the forest breaks a rule of the module documentation.
    pub fn remove_batch(&mut self, slot: usize, keys: &[Vec<u8>]) -> Checked {
        let Some(m) = &self.live[slot] else {
            return self.assert_absent(slot);
        };
        let mut sorted: Vec<&Vec<u8>> = keys.iter().collect();
        sorted.sort();
        sorted.dedup();
        let present = sorted
            .iter()
            .filter(|k| m.contains_key(k.as_slice()))
            .count();
        let r = self.tree(slot)?.remove_batch(keys);
        if let Some(n) = self.outcome("remove_batch", present > 0, r)? {
            ensure!(
                n == present as u64,
                "remove_batch from {}: {n} removed, want {present}",
                name(slot)
            );
            for k in &sorted {
                self.model(slot).remove(k.as_slice());
            }
            return Ok(());
        }
        let what = format!("removal batch from {}", name(slot));
        self.accept_a_prefix(
            slot,
            sorted,
            |m, k| {
                m.remove(k.as_slice());
            },
            &what,
        )
    }

    /// Removes every key within `lo..hi` from the tree in `slot`.
    ///
    /// # Errors
    /// If the forest breaks a rule of the module documentation.
    pub fn remove_range(&mut self, slot: usize, lo: Bound<Vec<u8>>, hi: Bound<Vec<u8>>) -> Checked {
        let Some(m) = &self.live[slot] else {
            return self.assert_absent(slot);
        };
        let doomed = model_range(m, &lo, &hi);
        let r = self
            .tree(slot)?
            .remove_range((as_slices(&lo), as_slices(&hi)));
        if let Some(n) = self.outcome("remove_range", !doomed.is_empty(), r)? {
            let want = doomed.len() as u64;
            ensure!(
                n == want,
                "remove_range {lo:?}..{hi:?}: {n} removed, want {want}"
            );
            for (k, _) in doomed {
                self.model(slot).remove(&k);
            }
        }
        Ok(())
    }

    /// Clones the tree in `src` as `dst`.
    ///
    /// # Errors
    /// If the forest breaks a rule of the module documentation.
    pub fn clone_tree(&mut self, src: usize, dst: usize) -> Checked {
        let r = self.forest().clone_tree(&name(src), &name(dst)).map(drop);
        if self.live[src].is_none() {
            ensure!(matches!(r, Err(Error::TreeNotFound { .. })), "clone: {r:?}");
        } else if self.live[dst].is_some() {
            ensure!(matches!(r, Err(Error::TreeExists { .. })), "clone: {r:?}");
        } else if self.outcome("clone_tree", true, r)?.is_some() {
            self.live[dst] = self.live[src].clone();
        }
        Ok(())
    }

    /// Removes the tree in `slot`.
    ///
    /// # Errors
    /// If the forest breaks a rule of the module documentation.
    pub fn remove_tree(&mut self, slot: usize) -> Checked {
        let r = self.forest().remove_tree(&name(slot));
        if self.live[slot].is_none() {
            ensure!(
                matches!(r, Err(Error::TreeNotFound { .. })),
                "remove_tree: {r:?}"
            );
        } else if self.outcome("remove_tree", true, r)?.is_some() {
            self.live[slot] = None;
        }
        Ok(())
    }

    /// Commits.
    ///
    /// # Errors
    /// If the forest breaks a rule of the module documentation.
    pub fn commit(&mut self) -> Checked {
        let r = self.forest().commit();
        self.committed(r, true)
    }

    /// Copies the live nodes out of sparse segments, then commits.
    ///
    /// # Errors
    /// If the forest breaks a rule of the module documentation.
    pub fn compact(&mut self) -> Checked {
        // A failure before the commit inside need not be latched.
        let r = self.forest().compact();
        self.committed(r, false)
    }

    /// Commits, then writes a checkpoint and waits for it.
    ///
    /// # Errors
    /// If the forest breaks a rule of the module documentation.
    pub fn checkpoint(&mut self) -> Checked {
        // A checkpoint commits first; a failure after that commit leaves it
        // in force, like a failed compaction.
        let r = self.forest().checkpoint();
        self.committed(r, false)
    }

    /// Returns every tree to the last commit; a snapshot taken before it
    /// (with no failure armed) must show the same trees after it.
    ///
    /// # Errors
    /// If the forest breaks a rule of the module documentation.
    pub fn rollback(&mut self) -> Checked {
        let before = match self.armed {
            false => {
                let snap = self.forest().snapshot().map_err(|e| e.to_string())?;
                let state = Self::read_snapshot(&snap).map_err(|e| format!("snapshot: {e}"))?;
                Some((snap, state))
            }
            true => None,
        };
        match self.forest().rollback() {
            Ok(()) => {
                ensure!(
                    !self.latched,
                    "rollback succeeded after the store reported a failure"
                );
                // A commit that failed after its record was logged left
                // that state as the last commit the forest knows.
                let got = match Self::read_state(self.forest()) {
                    Ok(got) => Some(got),
                    Err(e) if self.attempted.is_empty() => {
                        ensure!(self.armed, "reading after a rollback: {e}");
                        None
                    }
                    Err(e) => {
                        // Which commit it returned to can only be read:
                        // stop the failures (the store may have latched
                        // meanwhile, so they still count as armed).
                        ensure!(self.armed, "reading after a rollback: {e}");
                        self.disk.heal();
                        let got = Self::read_state(self.forest())
                            .map_err(|e| format!("reading after a rollback, healed: {e}"))?;
                        Some(got)
                    }
                };
                // A commit that failed after its record was logged left
                // that state as the last commit the forest knows.
                let got = got.unwrap_or_else(|| self.committed.clone());
                ensure!(
                    got == self.committed || self.attempted.contains(&got),
                    "rollback did not return to a commit: got {}, want {}",
                    summary(&got),
                    summary(&self.committed)
                );
                self.live = got;
            }
            Err(e) => {
                ensure!(
                    self.armed || self.latched,
                    "rollback failed with no fault injected: {e}"
                );
                // A failure while replaying the log is latched and leaves
                // the trees part way: only a reopen makes them whole. One
                // before it (refused, or a read failing) changed nothing.
                if matches!(e, Error::Store(StoreError::CommitFailed(_))) {
                    self.reopen(false)?;
                }
            }
        }
        if let Some((snap, state)) = before {
            let after = Self::read_snapshot(&snap).map_err(|e| format!("snapshot: {e}"))?;
            ensure!(
                after == state,
                "a rollback changed a snapshot: {}",
                difference(&after, &state)
            );
        }
        Ok(())
    }

    /// Kills the process (nothing it still does reaches the disk), drops
    /// the forest, crashes the machine with `mode` and reopens.
    ///
    /// # Errors
    /// If the reopened forest is no commit a crash may return to.
    pub fn crash(&mut self, mode: CrashMode) -> Checked {
        self.disk.kill();
        self.held = None;
        self.forest = None;
        self.disk.crash(mode);
        let candidates = self.durable.clone();
        self.reopen_to(&candidates, "crash")
    }

    /// Fails every backend call after the next `n` until the next reopen.
    pub fn fail_after(&mut self, n: u64) {
        self.disk.fail_after(n);
        self.armed = true;
    }

    /// Drops the forest and opens it again; `heal` first heals the backend
    /// and checks the live forest against the live model.
    ///
    /// # Errors
    /// If the live forest or the reopened one breaks a rule.
    pub fn reopen(&mut self, heal: bool) -> Checked {
        if heal {
            self.disk.heal();
            self.verify_live()?;
        }
        self.held = None;
        self.forest = None;
        self.disk.heal();
        let candidates = vec![self.committed.clone()];
        self.reopen_to(&candidates, "reopen")
    }

    /// The tree in `slot`, which the live model holds.
    ///
    /// # Errors
    /// If the forest has no such tree.
    pub fn tree(&self, slot: usize) -> Checked<Tree> {
        self.forest()
            .tree(&name(slot))
            .map_err(|e| format!("tree({}): {e}", name(slot)))?
            .ok_or_else(|| format!("{} is missing", name(slot)))
    }

    /// Checks that the forest has no tree in `slot`.
    ///
    /// # Errors
    /// If it has one.
    pub fn assert_absent(&self, slot: usize) -> Checked {
        let t = self.forest().tree(&name(slot)).map_err(|e| e.to_string())?;
        ensure!(t.is_none(), "{} exists but should not", name(slot));
        Ok(())
    }

    fn model(&mut self, slot: usize) -> &mut Model {
        self.live[slot]
            .as_mut()
            .expect("the caller checked the slot")
    }

    /// Checks the outcome of an operation that changes the live state if
    /// `changes`: an error only with failures armed, success not once the
    /// store has reported a failure. `Some` if it succeeded.
    fn outcome<T>(&mut self, what: &str, changes: bool, r: Result<T, Error>) -> Checked<Option<T>> {
        match r {
            Ok(v) => {
                ensure!(
                    !(changes && self.latched),
                    "{what} succeeded after the store reported a failure"
                );
                Ok(Some(v))
            }
            Err(e) => {
                ensure!(self.armed, "{what} failed with no fault injected: {e}");
                self.latched |= refused(&e);
                Ok(None)
            }
        }
    }

    /// Records the outcome of a commit (or of a compaction, which ends with
    /// one); `latches`: a failure must make the store refuse writes.
    fn committed(&mut self, r: Result<(), Error>, latches: bool) -> Checked {
        match r {
            Ok(()) => {
                ensure!(
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
                ensure!(self.armed, "commit failed with no fault injected: {e}");
                // A commit refused up front wrote nothing; any other failure
                // may have come after its superblock landed.
                if !refused(&e) {
                    ensure!(
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

    /// The forest's trees as a state.
    /// After a failed batch into the tree in `slot`: takes the forest's
    /// state as the live one if it is the live one with a prefix of
    /// `changes` (in order) made by `change`, else fails.
    fn accept_a_prefix<C>(
        &mut self,
        slot: usize,
        changes: impl IntoIterator<Item = C>,
        change: impl Fn(&mut Model, C),
        what: &str,
    ) -> Checked {
        let got = self.state_after_failed_batch()?;
        let mut want = self.live.clone();
        let mut changes = changes.into_iter();
        loop {
            if got == want {
                self.live = want;
                return Ok(());
            }
            let Some(c) = changes.next() else { break };
            change(want[slot].as_mut().expect("live"), c);
        }
        Err(format!(
            "a failed {what} left no prefix of it: {}",
            difference(&got, &self.live)
        ))
    }

    /// The forest's state after a failed batch, read with the medium
    /// healed for a moment if it must be: the failure used up the calls
    /// armed, so every call fails again after.
    fn state_after_failed_batch(&mut self) -> Checked<State> {
        match Self::read_state(self.forest()) {
            Ok(state) => Ok(state),
            Err(_) => {
                self.disk.heal();
                let state = Self::read_state(self.forest());
                self.disk.fail_after(0);
                state.map_err(|e| format!("reading after a failed batch: {e}"))
            }
        }
    }

    fn read_state(forest: &Forest) -> Checked<State> {
        let names = forest.tree_names();
        let known: Vec<String> = (0..SLOTS).map(name).collect();
        if let Some(n) = names.iter().find(|n| !known.contains(n)) {
            return Err(format!("unknown tree {n:?} in {names:?}"));
        }
        let mut state = vec![None; SLOTS];
        for (s, slot) in state.iter_mut().enumerate() {
            let Some(tree) = forest.tree(&name(s)).map_err(|e| e.to_string())? else {
                continue;
            };
            let entries: Result<Model, Error> =
                tree.range(..).map_err(|e| e.to_string())?.collect();
            *slot = Some(entries.map_err(|e| format!("reading {}: {e}", name(s)))?);
        }
        Ok(state)
    }

    /// A snapshot's trees as a state.
    fn read_snapshot(snap: &Snapshot) -> Checked<State> {
        let mut state = vec![None; SLOTS];
        for (s, slot) in state.iter_mut().enumerate() {
            let Some(view) = snap.tree(&name(s)) else {
                continue;
            };
            let entries: Result<Model, Error> =
                view.range(..).map_err(|e| e.to_string())?.collect();
            *slot = Some(entries.map_err(|e| format!("reading {}: {e}", name(s)))?);
        }
        Ok(state)
    }

    /// With failures healed, the live forest reads back as the live model
    /// (every failed operation left it as it was) and checks clean.
    ///
    /// # Errors
    /// If it differs or checks unclean.
    pub fn verify_live(&self) -> Checked {
        let got = Self::read_state(self.forest()).map_err(|e| format!("live: {e}"))?;
        ensure!(
            got == self.live,
            "the live forest differs from the live model: {}; got {}, want {}",
            difference(&got, &self.live),
            summary(&got),
            summary(&self.live)
        );
        let report = self.forest().check().map_err(|e| format!("check: {e}"))?;
        ensure!(report.is_clean(), "live check:\n{report}");
        Ok(())
    }

    /// Opens the forest again and checks it shows one of `candidates` or
    /// the state of a failed commit; that state is committed from then on.
    fn reopen_to(&mut self, candidates: &[State], after: &str) -> Checked {
        let backend = self
            .disk
            .backend()
            .map_err(|e| format!("backend after {after}: {e}"))?;
        let forest = Forest::with_backend(backend, self.options.clone())
            .map_err(|e| format!("open after {after}: {e}"))?;
        let got = Self::read_state(&forest).map_err(|e| format!("after {after}: {e}"))?;
        let landed = candidates.contains(&got) || self.attempted.contains(&got);
        let last = candidates.last().expect("at least one candidate");
        ensure!(
            landed,
            "after {after} the forest is no commit it may return to: {}; got {}, \
             want {} (or a failed commit: {:?})",
            difference(&got, last),
            summary(&got),
            summary(last),
            self.attempted.iter().map(summary).collect::<Vec<_>>()
        );
        let report = forest
            .check()
            .map_err(|e| format!("check after {after}: {e}"))?;
        ensure!(report.is_clean(), "check after {after}:\n{report}");
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

/// Reads, which only the fuzz target interleaves with the operations (the
/// proptest reads the whole forest at every reopen instead).
#[allow(
    dead_code,
    reason = "the proptest driver does not read between operations"
)]
impl Harness {
    /// Reads `lo..hi` of the tree in `slot` one way (backwards if
    /// `reverse`), counts it and asks whether it is empty.
    ///
    /// # Errors
    /// If a read disagrees with the live model, or fails unarmed.
    pub fn range(
        &mut self,
        slot: usize,
        lo: Bound<Vec<u8>>,
        hi: Bound<Vec<u8>>,
        reverse: bool,
    ) -> Checked {
        let Some(m) = &self.live[slot] else {
            return self.assert_absent(slot);
        };
        let mut want = model_range(m, &lo, &hi);
        let bounds = (as_slices(&lo), as_slices(&hi));
        let tree = self.tree(slot)?;
        let what = format!("range {lo:?}..{hi:?} of {}", name(slot));
        // Making the range applies the tree's write buffer: it may fail.
        let Some(iter) = self.read(&what, tree.range(bounds))? else {
            return Ok(());
        };
        let got: Result<Vec<_>, Error> = if reverse {
            want.reverse();
            iter.rev().collect()
        } else {
            iter.collect()
        };
        if let Some(got) = self.read(&what, got)? {
            let keys = |v: &[(Vec<u8>, Vec<u8>)]| -> Vec<Vec<u8>> {
                v.iter().map(|(k, _)| k.clone()).collect()
            };
            ensure!(
                keys(&got) == keys(&want),
                "{what} (reverse: {reverse}): keys {:?}, want {:?}",
                keys(&got),
                keys(&want)
            );
            ensure!(got == want, "{what}: values differ");
        }
        if let Some(n) = self.read(&what, tree.count_range(bounds))? {
            ensure!(
                n == want.len() as u64,
                "count of {what}: {n}, want {}",
                want.len()
            );
        }
        if let Some(empty) = self.read(&what, tree.range_is_empty(bounds))? {
            ensure!(empty == want.is_empty(), "emptiness of {what}: {empty}");
        }
        Ok(())
    }

    /// Reads `key`, the first and the last entry of the tree in `slot`.
    ///
    /// # Errors
    /// If a read disagrees with the live model, or fails unarmed.
    pub fn get(&mut self, slot: usize, key: &[u8]) -> Checked {
        let Some(m) = &self.live[slot] else {
            return self.assert_absent(slot);
        };
        let want = m.get(key).cloned();
        let entry = |(k, v): (&Vec<u8>, &Vec<u8>)| (k.clone(), v.clone());
        let (first, last) = (
            m.first_key_value().map(entry),
            m.last_key_value().map(entry),
        );
        let tree = self.tree(slot)?;
        let (t, k) = (name(slot), String::from_utf8_lossy(key));
        if let Some(got) = self.read("get", tree.get(key))? {
            ensure!(got == want, "get of {k:?} in {t}: {got:?}, want {want:?}");
        }
        if let Some(got) = self.read("first", tree.first())? {
            ensure!(got == first, "first of {t}: {got:?}, want {first:?}");
        }
        if let Some(got) = self.read("last", tree.last())? {
            ensure!(got == last, "last of {t}: {got:?}, want {last:?}");
        }
        self.read_held(slot, key)
    }

    /// Reads `key` of `slot` twice (the second read through what the first
    /// left in the view) in the held snapshot, taking one of the live state
    /// if none is held: it must show that state whatever happened since.
    fn read_held(&mut self, slot: usize, key: &[u8]) -> Checked {
        if self.held.is_none() {
            let Some(snap) = self.read("snapshot", self.forest().snapshot())? else {
                return Ok(());
            };
            self.held = Some((snap, self.live.clone()));
        }
        let (snap, state) = self.held.as_ref().expect("held above");
        let (t, k) = (name(slot), String::from_utf8_lossy(key));
        match (snap.tree(&t), &state[slot]) {
            (None, None) => {}
            (Some(view), Some(m)) => {
                let want = m.get(key).cloned();
                for pass in 0..2 {
                    if let Some(got) = self.read("held snapshot get", view.get(key))? {
                        ensure!(
                            got == want,
                            "get of {k:?} in {t} of a held snapshot, read {pass}: \
                             {got:?}, want {want:?}"
                        );
                    }
                }
            }
            (view, m) => {
                return Err(format!(
                    "a held snapshot has {t}: {}, its state: {}",
                    view.is_some(),
                    m.is_some()
                ))
            }
        }
        Ok(())
    }

    /// Inserts a key one byte over the key limit (`limit`, the entry
    /// limit, less the 16 bytes of a value reference), made from `key`:
    /// refused with `KeyTooLarge`, nothing changes.
    ///
    /// # Errors
    /// If the entry is accepted or refused otherwise.
    pub fn too_large(&mut self, slot: usize, key: &[u8], limit: usize) -> Checked {
        if self.live[slot].is_none() {
            return self.assert_absent(slot);
        }
        let key_limit = limit - 16;
        let mut big = key.to_vec();
        big.resize(key_limit + 1, 0xEE);
        match self.tree(slot)?.insert(&big, b"v") {
            Err(Error::KeyTooLarge { limit: l, .. }) => {
                ensure!(l == key_limit, "key limit {l}, want {key_limit}");
            }
            Err(e) => ensure!(self.armed, "too large a key: {e}"),
            Ok(()) => {
                return Err(format!(
                    "a key over the limit of {key_limit} bytes was inserted"
                ))
            }
        }
        Ok(())
    }

    /// With no failure armed, the live forest equals the live model and
    /// checks clean.
    ///
    /// # Errors
    /// As [`Harness::verify_live`].
    pub fn check(&self) -> Checked {
        if self.armed {
            return Ok(());
        }
        self.verify_live()
    }

    /// A read's result: `Some` to compare with the model, `None` for an
    /// error, which only an armed failure may cause.
    fn read<T>(&self, what: &str, r: Result<T, Error>) -> Checked<Option<T>> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                ensure!(self.armed, "{what} failed with no fault injected: {e}");
                Ok(None)
            }
        }
    }
}
