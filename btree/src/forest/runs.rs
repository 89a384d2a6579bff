//! Batches applied in runs: the pairs of a batch (`insert_runs`), its
//! removals (`remove_runs`), and a tree's write buffer, applied through
//! them when the tree is next read or written (W3). A run shares one
//! write set; a key in the leaf the key before it edited needs no descent.

use super::ForestCore;
use crate::catalog::Catalog;
use crate::journal::Op;
use crate::mutate::{self, Edit, LeafRun, Plan};
use crate::node::Stored;
use crate::read;
use crate::txn::Txn;
use crate::Result;
use parking_lot::RwLockReadGuard;

/// Pairs of a batch inserted in one write set (`Tree::insert_runs`): the
/// nodes they edit stay out of the store's dirty queue until the run ends.
const RUN_LEN: usize = 256;

impl ForestCore {
    /// Journals the insert of each of `pairs` into tree `name`, as
    /// [`ForestCore::record`].
    pub(super) fn record_inserts<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        name: &str,
        pairs: &[(K, V)],
    ) {
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
    pub(super) fn record_removes(&self, name: &str, keys: &[&[u8]]) {
        let mut journal = self.journal.lock();
        for &key in keys {
            journal.push(&Op::Remove { tree: name, key });
        }
    }

    /// Inserts `pairs` into tree `name` (sorted, every value inline, the
    /// forest holding no out-of-line value), as many as [`RUN_LEN`] in one
    /// write set: a run takes the root and the index nodes it passes out
    /// of the store once and hands them back once, where one write set per
    /// pair took them and handed them back for each. Only edits in place
    /// join a run (no shared node on the path, the leaf's first key kept):
    /// planned with every read done before the first edit, each cannot
    /// fail once begun, so a failure while planning pair k leaves pairs
    /// before it applied and nothing of pair k. A pair that must copy goes
    /// alone, in a write set of its own, as [`Tree::insert`](super::Tree::insert) would. A pair
    /// that falls in the leaf the pair before it edited, when that edit
    /// changed nothing above the leaf, is put there without a descent
    /// ([`LeafRun`]): applying 50,000 held pairs to a tree of 200,000
    /// (`examples/batches`, about four per leaf) took 218 M instructions
    /// where a descent per pair took 252 M.
    ///
    /// `settling`: the pairs are a write buffer's, journaled already, so
    /// they are not journaled again, the journal is not spilled, and a
    /// store that refuses writes is written to all the same (see
    /// [`Txn::unlatched`]).
    pub(super) fn insert_runs<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        catalog: &mut Catalog,
        name: &str,
        pairs: &[(K, V)],
        settling: bool,
    ) -> Result<()> {
        let limits = self.limits;
        let mut rest = pairs;
        while !rest.is_empty() {
            if !settling {
                self.spill_if_full(catalog)?;
            }
            let mut root = catalog.root(name)?;
            let scratch = self.scratch.lock().take().unwrap_or_default();
            let mut txn = Txn::recycled(&self.store, scratch).values(false);
            if settling {
                txn = txn.unlatched();
            }
            let mut done = 0;
            let mut failed = None;
            let mut leaf_run: Option<LeafRun> = None;
            for (k, v) in rest.iter().take(RUN_LEN) {
                let (k, v) = (k.as_ref(), v.as_ref());
                // A key in the leaf the last pair edited needs no descent.
                match leaf_run
                    .as_ref()
                    .map(|run| run.put(&mut txn, &limits, k, v))
                {
                    Some(Ok(true)) => {
                        done += 1;
                        continue;
                    }
                    Some(Err(e)) => {
                        failed = Some(e);
                        break;
                    }
                    Some(Ok(false)) | None => {}
                }
                let path = match mutate::plan_in_place(&mut txn, &limits, root, &Edit::Put(k, v)) {
                    Ok(Plan::InPlace(path)) => Some(path),
                    // A copying edit only as the write set's first.
                    Ok(Plan::Copying | Plan::Absent) if done == 0 => None,
                    Ok(Plan::Copying | Plan::Absent) => break,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                };
                let copying = path.is_none();
                leaf_run = match &path {
                    Some(path) => LeafRun::after(&txn, path)?,
                    None => None,
                };
                root = mutate::insert(&mut txn, &limits, root, k, Stored::Inline(v), path)?;
                done += 1;
                if copying {
                    break;
                }
            }
            *self.scratch.lock() = txn.apply()?;
            catalog.set_root(name, root);
            if !settling {
                self.record_inserts(name, &rest[..done]);
            }
            if let Some(e) = failed {
                return Err(e);
            }
            rest = &rest[done..];
        }
        Ok(())
    }

    /// Removes `keys` (sorted, no key twice) from tree `name`, the forest
    /// holding no out-of-line value, in runs as [`ForestCore::insert_runs`]
    /// inserts: a run of up to [`RUN_LEN`] keys in one write set, a key in
    /// the leaf the key before it edited removed without a descent
    /// ([`LeafRun::remove`]), a removal that must copy alone and first in
    /// its write set. Each removal is journaled as [`Tree::remove`](super::Tree::remove)'s; a
    /// key not in the tree changes nothing. Returns how many were there.
    /// A failure while planning key k leaves the keys before it removed
    /// and nothing of key k.
    pub(super) fn remove_runs<K: AsRef<[u8]>>(
        &self,
        catalog: &mut Catalog,
        name: &str,
        keys: &[K],
    ) -> Result<u64> {
        let limits = self.limits;
        let mut removed = 0;
        let mut rest = keys;
        let mut gone: Vec<&[u8]> = Vec::new();
        while !rest.is_empty() {
            self.spill_if_full(catalog)?;
            let mut root = catalog.root(name)?;
            let scratch = self.scratch.lock().take().unwrap_or_default();
            let mut txn = Txn::recycled(&self.store, scratch).values(false);
            let mut done = 0;
            let mut failed = None;
            let mut leaf_run: Option<LeafRun> = None;
            gone.clear();
            for k in rest.iter().take(RUN_LEN) {
                let k = k.as_ref();
                match leaf_run
                    .as_ref()
                    .map(|run| run.remove(&mut txn, &limits, k))
                {
                    Some(Ok(Some(found))) => {
                        done += 1;
                        if found {
                            gone.push(k);
                        }
                        continue;
                    }
                    Some(Err(e)) => {
                        failed = Some(e);
                        break;
                    }
                    Some(Ok(None)) | None => {}
                }
                let path = match mutate::plan_in_place(&mut txn, &limits, root, &Edit::Remove(k)) {
                    Ok(Plan::InPlace(path)) => Some(path),
                    Ok(Plan::Absent) => {
                        done += 1;
                        continue;
                    }
                    // A copying edit only as the write set's first, where
                    // the store still holds the tree as `root` has it.
                    Ok(Plan::Copying) if gone.is_empty() => {
                        match read::lookup_stored(&self.store, root, k, |_| ()) {
                            Ok(Some(())) => None,
                            Ok(None) => {
                                done += 1;
                                continue;
                            }
                            Err(e) => {
                                failed = Some(e);
                                break;
                            }
                        }
                    }
                    Ok(Plan::Copying) => break,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                };
                let copying = path.is_none();
                leaf_run = match &path {
                    Some(path) => LeafRun::after(&txn, path)?,
                    None => None,
                };
                root = mutate::remove(&mut txn, &limits, root, k, path)?;
                gone.push(k);
                done += 1;
                if copying {
                    break;
                }
            }
            *self.scratch.lock() = txn.apply()?;
            catalog.set_root(name, root);
            self.record_removes(name, &gone);
            removed += gone.len() as u64;
            if let Some(e) = failed {
                return Err(e);
            }
            rest = &rest[done..];
        }
        Ok(removed)
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
