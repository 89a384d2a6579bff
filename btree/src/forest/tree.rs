//! The tree handle's operations: reads (each on the tree as it stands,
//! or through a snapshot), and writes, each applied under the forest's
//! lock and journaled.

use super::*;

impl Tree {
    /// The size limits of the tree's forest.
    pub fn limits(&self) -> Limits {
        self.shared.limits
    }

    /// The tree's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs one read with the catalog locked for sharing.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&NodeStore<Node>, NodeId) -> Result<T>,
    ) -> Result<T> {
        let current = self.shared.current(Some(&self.name))?;
        let root = current.root(&self.name)?;
        f(&self.shared.store, root)
    }

    /// Runs one write through a fresh [`Txn`]; applies it, moves the root
    /// and journals `op` (if `changed` says the write changed anything)
    /// only if `f` succeeds, with the catalog the caller holds locked for
    /// writing.
    fn write<T>(
        &self,
        catalog: &mut Catalog,
        op: Op,
        changed: impl FnOnce(&T) -> bool,
        f: impl FnOnce(&mut Txn, NodeId) -> Result<(NodeId, T)>,
    ) -> Result<T> {
        self.shared.settle(catalog, &self.name)?;
        let root = catalog.root(&self.name)?;
        self.shared.spill_if_full(catalog)?;
        let scratch = self.shared.scratch.lock().take().unwrap_or_default();
        let mut txn = Txn::recycled(&self.shared.store, scratch).values(catalog.has_values());
        let (new_root, out) = f(&mut txn, root)?;
        *self.shared.scratch.lock() = txn.apply()?;
        catalog.set_root(&self.name, new_root);
        if changed(&out) {
            self.shared.record(&op);
        }
        Ok(out)
    }

    /// Inserts `key` with `value`, replacing any value it had. A value too
    /// large for a leaf entry is stored out of line, in chunks (see
    /// [`Tree::insert_reader`]).
    ///
    /// # Errors
    /// [`Error::KeyTooLarge`], [`Error::ValueTooLarge`],
    /// [`Error::TreeNotFound`], or a store error; on error the tree is
    /// unchanged.
    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut catalog = self.shared.write();
        if self.check_entry(key, value.len() as u64)? {
            return self.insert_in(&mut catalog, key, value);
        }
        self.insert_out(&mut catalog, key, &mut &value[..], value.len() as u64)
    }

    /// Inserts `key` with the `len` bytes `source` yields as its value,
    /// replacing any value it had, without holding the value in memory
    /// whole: a value too large for a leaf entry is written chunk by chunk
    /// as it is read. Like every change, uncommitted until
    /// [`Forest::commit`]; a change that stores a value out of line commits
    /// by checkpoint (its chunks are written once, to the segments, never
    /// to the log).
    ///
    /// # Errors
    /// [`Error::KeyTooLarge`], [`Error::ValueTooLarge`],
    /// [`Error::ValueSource`] if `source` fails or ends before `len` bytes,
    /// [`Error::TreeNotFound`], or a store error; on error the tree and
    /// the store are unchanged.
    pub fn insert_reader(&self, key: &[u8], source: impl Read, len: u64) -> Result<()> {
        let mut source = source;
        let mut catalog = self.shared.write();
        if self.check_entry(key, len)? {
            let mut value = vec![0u8; len as usize];
            source.read_exact(&mut value).map_err(Error::ValueSource)?;
            return self.insert_in(&mut catalog, key, &value);
        }
        self.insert_out(&mut catalog, key, &mut source, len)
    }

    /// Checks `key` and a value of `len` bytes against the limits: the key
    /// at most [`Limits::max_key`], the value at most [`MAX_VALUE_LEN`].
    /// Returns whether the pair fits a leaf entry (else the value goes out
    /// of line).
    fn check_entry(&self, key: &[u8], len: u64) -> Result<bool> {
        let limits = self.shared.limits;
        if key.len() > limits.max_key() {
            return Err(Error::KeyTooLarge {
                key_len: key.len(),
                limit: limits.max_key(),
            });
        }
        if len > MAX_VALUE_LEN {
            return Err(Error::ValueTooLarge {
                value_len: len,
                limit: MAX_VALUE_LEN,
            });
        }
        Ok(key.len() as u64 + len <= limits.max_entry() as u64)
    }

    pub(super) fn insert_in(&self, catalog: &mut Catalog, key: &[u8], value: &[u8]) -> Result<()> {
        let op = Op::Insert {
            tree: &self.name,
            key,
            value,
        };
        self.write(
            catalog,
            op,
            |_| true,
            |txn, root| self.put(txn, root, key, Stored::Inline(value)),
        )
    }

    /// Writes the value `source` yields out of line and points `key` at
    /// it. The change is no longer journaled: it commits by checkpoint
    /// (L7 in `docs/design.md`).
    fn insert_out(
        &self,
        catalog: &mut Catalog,
        key: &[u8],
        source: &mut dyn Read,
        len: u64,
    ) -> Result<()> {
        catalog.root(&self.name)?;
        // W2: no buffer outlives the forest's first out-of-line value.
        self.shared.settle_all(catalog)?;
        self.shared.spill_if_full(catalog)?;
        let store = &self.shared.store;
        let (r, nodes) = value::write(store, source, len)?;
        self.shared.journal.lock().overflow();
        catalog.mark_values();
        let op = Op::Insert {
            tree: &self.name,
            key,
            value: &[],
        };
        let stored = Stored::Out(r);
        let done = self.write(
            catalog,
            op,
            |_| true,
            |txn, root| self.put(txn, root, key, stored),
        );
        if done.is_err() {
            // The value's nodes are the writer's own, referenced by nothing
            // (freed even by a store that refuses writes after a failure).
            for id in nodes {
                let _ = store.free(id);
            }
        }
        done
    }

    /// Points `key` at `stored` in the tree at `root`, dropping the
    /// reference of the value it replaces, if that was out of line.
    fn put(&self, txn: &mut Txn, root: NodeId, key: &[u8], stored: Stored) -> Result<(NodeId, ())> {
        let limits = self.shared.limits;
        let raw = match stored {
            Stored::Inline(v) => v,
            Stored::Out(_) => &[0u8; REF_LEN][..],
        };
        let path = match mutate::plan_in_place(txn, &limits, root, &Edit::Put(key, raw))? {
            Plan::InPlace(path) => Some(path),
            Plan::Copying | Plan::Absent => None,
        };
        let old = match &path {
            Some(path) => path.replaced(txn)?,
            None => self.old_value(txn, root, key)?,
        };
        if let (Some(r), Some(_)) = (old, &path) {
            txn.prefetch_value(r)?;
        }
        let root = mutate::insert(txn, &limits, root, key, stored, path)?;
        if let Some(r) = old {
            txn.decref_value(r)?;
        }
        Ok((root, ()))
    }

    /// The out-of-line value `key`'s entry references, if it does; `None`
    /// without reading anything while the forest holds no out-of-line
    /// value. Its reference is dropped after the edit that overwrites or
    /// removes the entry: a shared leaf is copied first, and the copy
    /// holds a reference of its own (B4). The edit in place reads nothing
    /// after its first change, so [`Txn::prefetch_value`] reads before it
    /// what the drop needs.
    fn old_value(&self, txn: &Txn, root: NodeId, key: &[u8]) -> Result<Option<ValueRef>> {
        if !txn.has_values() {
            return Ok(None);
        }
        let old = read::lookup_stored(&self.shared.store, root, key, |s| match s {
            Stored::Out(r) => Some(r),
            Stored::Inline(_) => None,
        })?;
        Ok(old.flatten())
    }

    /// The value of `key`.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_with(key, <[u8]>::to_vec)
    }

    /// `f` of the value of `key`, borrowed where the tree holds it: no
    /// copy of the value is made.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error.
    pub fn get_with<T>(&self, key: &[u8], f: impl FnOnce(&[u8]) -> T) -> Result<Option<T>> {
        self.read(|store, root| read::lookup(store, root, key, f))
    }

    /// A reader over the value of `key` as it is now ([`Read`] and
    /// [`std::io::Seek`]), for a value that should not sit in memory
    /// whole: an out-of-line value is read chunk by chunk. The reader keeps
    /// the value as it was (a snapshot of the tree) while it lives.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error.
    pub fn get_reader(&self, key: &[u8]) -> Result<Option<crate::ValueReader>> {
        self.view()?.get_reader(key)
    }

    /// Calls `f` on each entry within `range` of the tree as it is now (a
    /// snapshot of it, as for [`Tree::range`]), in key order, its key and
    /// value borrowed: no allocation per entry. Stops when `f` returns
    /// [`ControlFlow::Break`]; returns the number of entries `f` was called
    /// on.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error.
    pub fn scan<'a, R: RangeBounds<&'a [u8]>>(
        &self,
        range: R,
        f: impl FnMut(&[u8], &[u8]) -> ControlFlow<()>,
    ) -> Result<u64> {
        self.view()?.scan(range, f)
    }

    /// Inserts or replaces every pair of `pairs`, with the forest's lock
    /// taken once, in key order (for a pair whose key comes twice, the
    /// later one wins, as with one insert after the other). Like
    /// [`Tree::insert`], uncommitted until [`Forest::commit`].
    ///
    /// # Errors
    /// [`Error::KeyTooLarge`] or [`Error::ValueTooLarge`] for the first pair
    /// over a limit, before
    /// anything is inserted; [`Error::TreeNotFound`], or a store error,
    /// which leaves the pairs before the failing one inserted (a
    /// [`Forest::rollback`] undoes them all).
    ///
    /// A batch of at least 1 MiB into an empty tree, with every value small
    /// enough for a leaf, is built bottom up instead, each node written
    /// once and filled to about 7/8 of the node size; a store error then
    /// leaves the tree empty. Its commit is a checkpoint (`docs/design.md`,
    /// "Bulk build").
    ///
    /// Any other batch of at least 256 pairs, every value inline and no
    /// out-of-line value in the forest, is journaled and held in the
    /// tree's write buffer, within the forest's limit, and applied with
    /// the buffer by the tree's next read or other write (W1-W3 in
    /// `docs/design.md`, "Write buffer"): no node is read or written
    /// until then. A store error then comes from the operation that
    /// applies it.
    pub fn insert_batch<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<()> {
        let pairs: Vec<(K, V)> = pairs.into_iter().collect();
        let (mut inline, mut bytes) = (true, 0);
        for (k, v) in &pairs {
            let (k, v) = (k.as_ref(), v.as_ref());
            inline &= self.check_entry(k, v.len() as u64)?;
            bytes += leaf_entry_len(k, v);
        }
        let pairs = sort_pairs(pairs);
        let mut catalog = self.shared.write();
        let bulk = inline && bytes >= SPILL_BYTES;
        if bulk && !catalog.is_buffered(Some(&self.name)) && self.is_empty_in(&catalog)? {
            return self.build_in(&mut catalog, pairs);
        }
        // W2
        if inline && !catalog.has_values() {
            if self.buffer_in(&mut catalog, &pairs)? {
                return Ok(());
            }
            self.shared.settle(&mut catalog, &self.name)?;
            return self
                .shared
                .insert_runs(&mut catalog, &self.name, &pairs, false);
        }
        for (k, v) in &pairs {
            let (k, v) = (k.as_ref(), v.as_ref());
            if self.check_entry(k, v.len() as u64)? {
                self.insert_in(&mut catalog, k, v)?;
            } else {
                self.insert_out(&mut catalog, k, &mut &v[..], v.len() as u64)?;
            }
        }
        Ok(())
    }

    /// Holds `pairs` (sorted, every value inline) in the tree's write
    /// buffer, journaled, if they are at least [`BUFFER_MIN_PAIRS`] and
    /// fit within the forest's limit; applies every buffer first if they
    /// do not fit beside them. Returns whether it holds them.
    fn buffer_in<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        catalog: &mut Catalog,
        pairs: &[(K, V)],
    ) -> Result<bool> {
        catalog.root(&self.name)?;
        // A store that refuses writes refuses buffered ones too.
        self.shared.store.writable()?;
        if pairs.len() < BUFFER_MIN_PAIRS {
            return Ok(false);
        }
        let limit = self.shared.buffer_limit;
        let bytes = Buffer::cost(pairs);
        // A batch's offsets are 32-bit (`Buffer::push_batch`).
        if bytes > limit || bytes > u32::MAX as usize {
            return Ok(false);
        }
        if catalog.buffered_bytes() + bytes > limit {
            self.shared.settle_all(catalog)?;
        }
        self.shared.spill_if_full(catalog)?;
        catalog.buffer_mut(&self.name).push_batch(pairs);
        self.shared.record_inserts(&self.name, pairs);
        Ok(true)
    }

    /// Whether the tree holds nothing: its root is an empty leaf.
    fn is_empty_in(&self, catalog: &Catalog) -> Result<bool> {
        let root = self.shared.store.get(catalog.root(&self.name)?)?;
        Ok(root.is_leaf() && root.is_empty())
    }

    /// Replaces the empty tree with one built bottom up from `pairs`
    /// (sorted; for equal keys the last wins), each node written once
    /// (`build`). Such a batch would outgrow the journal anyway (L6 in
    /// `docs/design.md`: its records would be as large as its nodes), so it
    /// is not journaled: the change commits by checkpoint.
    fn build_in<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        catalog: &mut Catalog,
        mut pairs: Vec<(K, V)>,
    ) -> Result<()> {
        dedup_last(&mut pairs);
        let store = &self.shared.store;
        let old = catalog.root(&self.name)?;
        let root = build::build(store, &self.shared.limits, &pairs)?;
        let mut txn = Txn::new(store).values(catalog.has_values());
        let dropped = txn.decref(old).and_then(|()| txn.apply());
        if let Err(e) = dropped {
            let mut txn = Txn::new(store).values(false);
            let _ = txn.decref(root).and_then(|()| txn.apply());
            return Err(e);
        }
        self.shared.journal.lock().overflow();
        catalog.set_root(&self.name, root);
        Ok(())
    }

    /// Removes `key`; returns whether it was there.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error; on error the tree is
    /// unchanged.
    pub fn remove(&self, key: &[u8]) -> Result<bool> {
        self.remove_in(&mut self.shared.write(), key)
    }

    pub(super) fn remove_in(&self, catalog: &mut Catalog, key: &[u8]) -> Result<bool> {
        let limits = self.shared.limits;
        let op = Op::Remove {
            tree: &self.name,
            key,
        };
        self.write(
            catalog,
            op,
            |&existed| existed,
            |txn, root| {
                let (path, old) =
                    match mutate::plan_in_place(txn, &limits, root, &Edit::Remove(key))? {
                        Plan::Absent => return Ok((root, false)),
                        Plan::InPlace(path) => {
                            let old = path.replaced(txn)?;
                            (Some(path), old)
                        }
                        Plan::Copying => {
                            let found =
                                read::lookup_stored(&self.shared.store, root, key, |s| match s {
                                    Stored::Out(r) => Some(r),
                                    Stored::Inline(_) => None,
                                })?;
                            match found {
                                None => return Ok((root, false)),
                                Some(old) => (None, old),
                            }
                        }
                    };
                if let (Some(r), Some(_)) = (old, &path) {
                    txn.prefetch_value(r)?;
                }
                let root = mutate::remove(txn, &limits, root, key, path)?;
                if let Some(r) = old {
                    txn.decref_value(r)?;
                }
                Ok((root, true))
            },
        )
    }

    /// Removes every key of `keys` that the tree holds, with the forest's
    /// lock taken once, in key order; returns how many were there. Like
    /// [`Tree::remove`], uncommitted until [`Forest::commit`]. Keys in the
    /// same leaf are removed one after the other without a descent from
    /// the root for each (where the forest holds no out-of-line value).
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error, which leaves the keys
    /// before the failing one (in key order) removed (a
    /// [`Forest::rollback`] undoes them all).
    pub fn remove_batch<K: AsRef<[u8]>>(&self, keys: impl IntoIterator<Item = K>) -> Result<u64> {
        let mut keys: Vec<K> = keys.into_iter().collect();
        keys.sort_unstable_by(|a, b| a.as_ref().cmp(b.as_ref()));
        keys.dedup_by(|a, b| a.as_ref() == b.as_ref());
        let mut catalog = self.shared.write();
        if keys.is_empty() {
            // Nothing to remove: the write buffer stays held.
            catalog.root(&self.name)?;
            return Ok(0);
        }
        // W3: buffered pairs first.
        self.shared.settle(&mut catalog, &self.name)?;
        if !catalog.has_values() {
            return self.shared.remove_runs(&mut catalog, &self.name, &keys);
        }
        let mut removed = 0;
        for key in &keys {
            removed += u64::from(self.remove_in(&mut catalog, key.as_ref())?);
        }
        Ok(removed)
    }

    /// The changes that turn this tree into `other`, in key order: keys
    /// only here (`new` is `None`), only in `other` (`old` is `None`), or
    /// with another value there. A subtree both trees share (a clone's
    /// untouched nodes) is never read, so the cost follows the change.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`] for either tree, or a store error while
    /// applying a write buffer (W3); the iterator yields store errors.
    pub fn diff(&self, other: &Tree) -> Result<crate::Diff> {
        if !Arc::ptr_eq(&self.shared, &other.shared) {
            return Ok(crate::Diff::new(self.view()?, other.view()?));
        }
        // One pin for both, so they are compared as of one moment.
        let current = self.shared.current(None)?;
        let (a, b) = (current.root(&self.name)?, current.root(&other.name)?);
        let trees = [(self.name.to_string(), a), (other.name.to_string(), b)];
        let pinned = current.pin(&self.shared, trees);
        Ok(crate::Diff::new(
            View::new(pinned.clone(), &self.name, a),
            View::new(pinned, &other.name, b),
        ))
    }

    /// The entries within `range`, in key order; double-ended.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error while applying the tree's
    /// write buffer (W3); the iterator yields store errors.
    pub fn range<'a, R: RangeBounds<&'a [u8]>>(&self, range: R) -> Result<Range> {
        Ok(Range::new(self.view()?, Bounds::from_range(&range)))
    }

    /// The tree as it is now, pinned: a snapshot of this tree alone.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error while applying the tree's
    /// write buffer (W3).
    pub fn view(&self) -> Result<View> {
        let current = self.shared.current(Some(&self.name))?;
        let root = current.root(&self.name)?;
        let pinned = current.pin(&self.shared, [(self.name.to_string(), root)]);
        Ok(View::new(pinned, &self.name, root))
    }

    /// Number of entries within `range`.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error.
    pub fn count_range<'a, R: RangeBounds<&'a [u8]>>(&self, range: R) -> Result<u64> {
        let bounds = Bounds::from_range(&range);
        self.read(|store, root| read::count(store, root, &bounds))
    }

    /// True if no entry lies within `range`.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error.
    pub fn range_is_empty<'a, R: RangeBounds<&'a [u8]>>(&self, range: R) -> Result<bool> {
        let bounds = Bounds::from_range(&range);
        self.read(|store, root| read::is_empty(store, root, &bounds))
    }

    /// Removes every entry within `range`; returns how many there were.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error; on error the tree is
    /// unchanged.
    pub fn remove_range<'a, R: RangeBounds<&'a [u8]>>(&self, range: R) -> Result<u64> {
        self.remove_range_in(&mut self.shared.write(), range)
    }

    pub(super) fn remove_range_in<'a, R: RangeBounds<&'a [u8]>>(
        &self,
        catalog: &mut Catalog,
        range: R,
    ) -> Result<u64> {
        let limits = self.shared.limits;
        let bounds = Bounds::from_range(&range);
        let op = Op::RemoveRange {
            tree: &self.name,
            lo: borrow_bound(range.start_bound()),
            hi: borrow_bound(range.end_bound()),
        };
        self.write(
            catalog,
            op,
            |&n| n > 0,
            |txn, mut root| {
                let store = &self.shared.store;
                let (keys, values) = read::keys(store, root, &bounds, txn.has_values())?;
                for key in &keys {
                    root = mutate::remove(txn, &limits, root, key, None)?;
                }
                // After the removals, which copy shared leaves (and so add
                // references to their values) and edit nothing in place.
                for r in values {
                    txn.decref_value(r)?;
                }
                Ok((root, keys.len() as u64))
            },
        )
    }

    /// The shape of the tree: nodes, bytes and entries per level, leaves
    /// first. Reads every node.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error.
    pub fn shape(&self) -> Result<read::Shape> {
        Ok(read::Shape {
            node_size: self.shared.limits.max_node(),
            levels: self.read(read::shape)?,
        })
    }

    /// The entry with the smallest key.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error.
    pub fn first(&self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.edge(false)
    }

    /// The entry with the largest key.
    ///
    /// # Errors
    /// [`Error::TreeNotFound`], or a store error.
    pub fn last(&self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.edge(true)
    }

    fn edge(&self, last: bool) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        self.read(|store, root| Ok(read::next_leaf(store, root, &Bounds::all(), last, 1)?.pop()))
    }
}
