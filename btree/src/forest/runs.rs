//! Batches applied in runs: the pairs of a batch (`insert_runs`), its
//! removals (`remove_runs`), and a tree's write buffer, applied through
//! them when the tree is next read or written (W3). A run shares one
//! write set; a key in the leaf the key before it edited needs no descent.

use super::ForestCore;
use crate::catalog::Catalog;
use crate::journal::Op;
use crate::mutate::{self, Edit, LeafRun, Path, Plan};
use crate::node::Stored;
use crate::read;
use crate::txn::Txn;
use crate::{Error, Result};
use larix_nodestore::NodeId;
use parking_lot::RwLockReadGuard;

/// Items of a batch applied in one write set ([`ForestCore::runs`]): the
/// nodes they edit stay out of the store's dirty queue until the run ends.
const RUN_LEN: usize = 256;

impl ForestCore {
    /// Journals the insert of each of `pairs` into tree `name`, as
    /// [`ForestCore::record`].
    pub(super) fn record_inserts<'p, K, V>(
        &self,
        name: &str,
        pairs: impl IntoIterator<Item = &'p (K, V)>,
    ) where
        K: AsRef<[u8]> + 'p,
        V: AsRef<[u8]> + 'p,
    {
        let mut journal = self.journal.lock();
        for (k, v) in pairs {
            journal.push(&Op::Insert {
                tree: name,
                key: k.as_ref(),
                value: v.as_ref(),
            });
        }
    }

    /// Journals the removal of each of `keys` from tree `name`, as
    /// [`ForestCore::record`].
    fn record_removes<'k>(&self, name: &str, keys: impl IntoIterator<Item = &'k [u8]>) {
        let mut journal = self.journal.lock();
        for key in keys {
            journal.push(&Op::Remove { tree: name, key });
        }
    }

    /// Applies `items` to tree `name` in runs of up to [`RUN_LEN`], each
    /// in one write set: a run takes the root and the index nodes it
    /// passes out of the store once and hands them back once, where one
    /// write set per item took them and handed them back for each. `step`
    /// plans and applies one item on the run ([`Step`]): only edits in
    /// place join a run, planned with every read done before the first
    /// edit, so each cannot fail once begun, and a failure while planning
    /// item k leaves the items before it applied and nothing of item k; an
    /// edit that must copy goes first and alone in a write set of its own.
    /// After each run, `record` journals the items that changed the tree,
    /// unless `settling`: the items are a write buffer's, journaled
    /// already, so they are not journaled again, the journal is not
    /// spilled, and a store that refuses writes is written to all the same
    /// (see [`Txn::unlatched`]). Returns how many items changed the tree.
    fn runs<T>(
        &self,
        catalog: &mut Catalog,
        name: &str,
        items: &[T],
        settling: bool,
        mut step: impl FnMut(&mut Run, &T) -> Result<Step>,
        mut record: impl FnMut(&[&T]),
    ) -> Result<u64> {
        let mut changed_total = 0;
        let mut changed: Vec<&T> = Vec::new();
        let mut rest = items;
        while !rest.is_empty() {
            if !settling {
                self.spill_if_full(catalog)?;
            }
            let root = catalog.root(name)?;
            let scratch = self.scratch.lock().take().unwrap_or_default();
            let mut txn = Txn::recycled(&self.store, scratch).values(false);
            if settling {
                txn = txn.unlatched();
            }
            let mut run = Run {
                txn,
                root,
                leaf: None,
                first: true,
            };
            let mut done = 0;
            let mut failed = None;
            changed.clear();
            for item in rest.iter().take(RUN_LEN) {
                match step(&mut run, item)? {
                    Step::Done { changed: c, alone } => {
                        done += 1;
                        run.first = false;
                        if c {
                            changed.push(item);
                        }
                        if alone {
                            break;
                        }
                    }
                    Step::Later => {
                        debug_assert!(!run.first, "an item a write set of its own refuses");
                        break;
                    }
                    Step::Failed(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            *self.scratch.lock() = run.txn.apply()?;
            catalog.set_root(name, run.root);
            if !settling {
                record(&changed);
            }
            changed_total += changed.len() as u64;
            if let Some(e) = failed {
                return Err(e);
            }
            rest = &rest[done..];
        }
        Ok(changed_total)
    }

    /// Inserts `pairs` into tree `name` (sorted, every value inline, the
    /// forest holding no out-of-line value) in runs ([`ForestCore::runs`]):
    /// a pair whose edit keeps its leaf's first key joins the run; one that
    /// must copy goes alone, as [`Tree::insert`](super::Tree::insert)
    /// would. A pair that falls in the leaf the pair before it edited, when
    /// that edit changed nothing above the leaf, is put there without a
    /// descent ([`LeafRun::put`]): applying 50,000 held pairs to a tree of
    /// 200,000 (`examples/batches`, about four per leaf) took 218 M
    /// instructions where a descent per pair took 252 M. `settling`: the
    /// pairs are a write buffer's (see [`ForestCore::runs`]).
    pub(super) fn insert_runs<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        catalog: &mut Catalog,
        name: &str,
        pairs: &[(K, V)],
        settling: bool,
    ) -> Result<()> {
        let limits = self.limits;
        let put = |run: &mut Run, (k, v): &(K, V)| {
            let (k, v) = (k.as_ref(), v.as_ref());
            if let Some(leaf) = &run.leaf {
                match leaf.put(&mut run.txn, &limits, k, v) {
                    Ok(true) => return Ok(Step::DONE),
                    Ok(false) => {}
                    Err(e) => return Ok(Step::Failed(e)),
                }
            }
            let path =
                match mutate::plan_in_place(&mut run.txn, &limits, run.root, &Edit::Put(k, v)) {
                    Ok(Plan::InPlace(path)) => Some(path),
                    Ok(Plan::Copying | Plan::Absent) if run.first => None,
                    Ok(Plan::Copying | Plan::Absent) => return Ok(Step::Later),
                    Err(e) => return Ok(Step::Failed(e)),
                };
            run.apply(path, |txn, root, path| {
                mutate::insert(txn, &limits, root, k, Stored::Inline(v), path)
            })
        };
        let record = |done: &[&(K, V)]| self.record_inserts(name, done.iter().copied());
        self.runs(catalog, name, pairs, settling, put, record)
            .map(drop)
    }

    /// Removes `keys` (sorted, no key twice) from tree `name`, the forest
    /// holding no out-of-line value, in runs ([`ForestCore::runs`]). A key
    /// in the leaf the key before it edited is removed without a descent
    /// ([`LeafRun::remove`]); a removal that must copy goes alone, once a
    /// lookup finds the key in the tree. Each removal is journaled as
    /// [`Tree::remove`](super::Tree::remove)'s; a key not in the tree
    /// changes nothing. Returns how many were there.
    pub(super) fn remove_runs<K: AsRef<[u8]>>(
        &self,
        catalog: &mut Catalog,
        name: &str,
        keys: &[K],
    ) -> Result<u64> {
        let limits = self.limits;
        let remove = |run: &mut Run, k: &K| {
            let k = k.as_ref();
            if let Some(leaf) = &run.leaf {
                match leaf.remove(&mut run.txn, &limits, k) {
                    Ok(Some(true)) => return Ok(Step::DONE),
                    Ok(Some(false)) => return Ok(Step::ABSENT),
                    Ok(None) => {}
                    Err(e) => return Ok(Step::Failed(e)),
                }
            }
            let path =
                match mutate::plan_in_place(&mut run.txn, &limits, run.root, &Edit::Remove(k)) {
                    Ok(Plan::InPlace(path)) => Some(path),
                    Ok(Plan::Absent) => return Ok(Step::ABSENT),
                    // First in the write set, where the store still holds the
                    // tree as the run's root has it.
                    Ok(Plan::Copying) if run.first => {
                        match read::lookup_stored(&self.store, run.root, k, |_| ()) {
                            Ok(Some(())) => None,
                            Ok(None) => return Ok(Step::ABSENT),
                            Err(e) => return Ok(Step::Failed(e)),
                        }
                    }
                    Ok(Plan::Copying) => return Ok(Step::Later),
                    Err(e) => return Ok(Step::Failed(e)),
                };
            run.apply(path, |txn, root, path| {
                mutate::remove(txn, &limits, root, k, path)
            })
        };
        let record = |done: &[&K]| self.record_removes(name, done.iter().map(|k| k.as_ref()));
        self.runs(catalog, name, keys, false, remove, record)
    }

    /// Applies tree `name`'s write buffer to the tree (W3), unjournaled:
    /// its pairs were journaled when buffered. On failure the buffer is
    /// put back whole, so the tree's entries stay those of W1 (pairs
    /// already applied are applied again, to the same effect).
    pub(super) fn settle(&self, catalog: &mut Catalog, name: &str) -> Result<()> {
        let Some(buffer) = catalog.take_buffer(name) else {
            return Ok(());
        };
        let applied = self.insert_runs(catalog, name, &buffer.sorted(), true);
        if applied.is_err() {
            catalog.put_buffer(name, buffer);
        }
        applied
    }

    /// [`ForestCore::settle`] of every tree.
    pub(crate) fn settle_all(&self, catalog: &mut Catalog) -> Result<()> {
        for name in catalog.buffered_trees() {
            self.settle(catalog, &name)?;
        }
        Ok(())
    }

    /// The catalog locked for sharing, tree `name`'s write buffer (every
    /// tree's, for `None`) applied first (W3).
    ///
    /// # Errors
    /// A store error while applying a buffer.
    pub(crate) fn settled(&self, name: Option<&str>) -> Result<RwLockReadGuard<'_, Catalog>> {
        let catalog = self.catalog.read();
        if !catalog.is_buffered(name) {
            return Ok(catalog);
        }
        drop(catalog);
        let mut catalog = self.write();
        match name {
            Some(name) => self.settle(&mut catalog, name)?,
            None => self.settle_all(&mut catalog)?,
        }
        Ok(catalog.downgrade())
    }
}

/// A run's write set as it is being built: the tree's root as the run
/// left it, the leaf the last item edited when that edit changed nothing
/// above the leaf, and whether the write set holds no item yet.
struct Run<'s> {
    txn: Txn<'s>,
    root: NodeId,
    leaf: Option<LeafRun>,
    first: bool,
}

impl Run<'_> {
    /// Applies the edit planned on `path` (`None`: one that copies) with
    /// `edit`, and keeps the leaf it leaves for the next item.
    fn apply(
        &mut self,
        path: Option<Path>,
        edit: impl FnOnce(&mut Txn, NodeId, Option<Path>) -> Result<NodeId>,
    ) -> Result<Step> {
        let alone = path.is_none();
        self.leaf = match &path {
            Some(path) => LeafRun::after(&self.txn, path)?,
            None => None,
        };
        self.root = edit(&mut self.txn, self.root, path)?;
        Ok(Step::Done {
            changed: true,
            alone,
        })
    }
}

/// What a run did with one item.
#[derive(Debug)]
enum Step {
    /// Done: `changed` the tree (a removal of a key not there did not);
    /// `alone`, an edit that copied, after which the run ends.
    Done { changed: bool, alone: bool },
    /// An edit that must copy, in a write set that holds items already:
    /// the run ends before it.
    Later,
    /// Planning failed, nothing of the item done: the run ends, applied,
    /// and the error is returned.
    Failed(Error),
}

impl Step {
    /// An edit in place that changed the tree.
    const DONE: Step = Step::Done {
        changed: true,
        alone: false,
    };

    /// A removal of a key the tree does not hold: nothing to do.
    const ABSENT: Step = Step::Done {
        changed: false,
        alone: false,
    };
}
