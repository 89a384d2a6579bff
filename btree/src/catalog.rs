//! The forest catalog: tree name → root node id, and its byte encoding.
//!
//! Layout (see `docs/design.md`, "Catalog"):
//!
//! ```text
//! version u8 (1 or 2) | count varint | count × (name_len varint | name UTF-8 | root u64 LE)
//! ```
//!
//! Version 2 says that leaves may hold out-of-line values (a value was
//! stored out of line since the forest was made): freeing a leaf then
//! reads it, for the values it references. The flag is sticky.
//!
//! The catalog also holds each tree's write buffer (`crate::buffer`),
//! which is never encoded: a checkpoint applies every buffer first (W3).
//!
//! Names are unique, non-empty and at most [`MAX_NAME_LEN`] bytes; entries
//! are written in strictly increasing name order (bytewise) and varints are
//! minimal. The decoder accepts nothing else, so the encoding is canonical:
//! a catalog that decodes re-encodes to the same bytes (empty bytes, the
//! catalog of a new store, aside).

use crate::buffer::Buffer;
use crate::{Error, Result};
use integer_encoding::VarInt;
use larix_nodestore::NodeId;
use std::collections::BTreeMap;

/// Longest tree name, in bytes.
pub const MAX_NAME_LEN: usize = 1024;
/// Most bytes the encoded catalog may take: well under the bound a store
/// puts on any blob it unfilters (64 MiB), so a catalog that could be
/// written can always be read back.
pub const MAX_CATALOG_LEN: usize = 32 << 20;
const VERSION: u8 = 1;
/// The version of a catalog whose leaves may hold out-of-line values.
const VERSION_VALUES: u8 = 2;

/// Tree names and their roots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    trees: BTreeMap<String, NodeId>,
    /// Bytes of the encoded entries (the header not counted).
    entry_bytes: usize,
    /// Whether leaves may hold out-of-line values.
    values: bool,
    /// The write buffers that hold pairs, by tree name.
    buffers: BTreeMap<String, Buffer>,
}

impl Catalog {
    /// The root of tree `name`.
    pub fn root(&self, name: &str) -> Result<NodeId> {
        self.trees
            .get(name)
            .copied()
            .ok_or_else(|| Error::TreeNotFound {
                name: name.to_string(),
            })
    }

    /// True if a tree is called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.trees.contains_key(name)
    }

    /// Points tree `name` at `root`, adding the tree if new.
    pub fn set_root(&mut self, name: &str, root: NodeId) {
        // Every write that changes a root lands here: no allocation then.
        if let Some(r) = self.trees.get_mut(name) {
            *r = root;
            return;
        }
        self.trees.insert(name.to_string(), root);
        self.entry_bytes += entry_len(name);
    }

    /// Whether leaves may hold out-of-line values.
    pub fn has_values(&self) -> bool {
        self.values
    }

    /// Records that leaves may now hold out-of-line values.
    pub fn mark_values(&mut self) {
        self.values = true;
    }

    /// Drops tree `name` from the catalog, with its write buffer; returns
    /// its root.
    pub fn remove(&mut self, name: &str) -> Result<NodeId> {
        let root = self.trees.remove(name).ok_or_else(|| Error::TreeNotFound {
            name: name.to_string(),
        })?;
        self.buffers.remove(name);
        self.entry_bytes -= entry_len(name);
        Ok(root)
    }

    /// Checks that a tree called `name` fits: the encoded catalog stays
    /// within [`MAX_CATALOG_LEN`].
    ///
    /// # Errors
    /// [`Error::CatalogFull`] if it would not.
    pub fn make_room(&self, name: &str) -> Result<()> {
        // The header: a version byte and a varint count.
        let bytes = self.entry_bytes + entry_len(name) + 1 + 10;
        if bytes > MAX_CATALOG_LEN {
            return Err(Error::CatalogFull {
                trees: self.trees.len(),
                limit: MAX_CATALOG_LEN,
            });
        }
        Ok(())
    }

    /// Names and roots, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, NodeId)> {
        self.trees.iter().map(|(n, &r)| (n.as_str(), r))
    }

    /// Number of trees.
    pub fn len(&self) -> usize {
        self.trees.len()
    }

    /// True when the forest has no trees.
    pub fn is_empty(&self) -> bool {
        self.trees.is_empty()
    }

    /// Whether tree `name` (any tree, for `None`) has pairs in its write
    /// buffer.
    pub(crate) fn is_buffered(&self, name: Option<&str>) -> bool {
        match name {
            _ if self.buffers.is_empty() => false,
            Some(name) => self.buffers.contains_key(name),
            None => true,
        }
    }

    /// Bytes held in the write buffers of every tree.
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.buffers.values().map(Buffer::bytes).sum()
    }

    /// The names of the trees whose write buffer holds pairs.
    pub(crate) fn buffered_trees(&self) -> Vec<String> {
        self.buffers.keys().cloned().collect()
    }

    /// Tree `name`'s write buffer, made if it had none.
    pub(crate) fn buffer_mut(&mut self, name: &str) -> &mut Buffer {
        self.buffers.entry(name.to_string()).or_default()
    }

    /// Takes tree `name`'s write buffer out of the catalog.
    pub(crate) fn take_buffer(&mut self, name: &str) -> Option<Buffer> {
        self.buffers.remove(name)
    }

    /// Puts back a write buffer [`Catalog::take_buffer`] took.
    pub(crate) fn put_buffer(&mut self, name: &str, buffer: Buffer) {
        if !buffer.is_empty() {
            self.buffers.insert(name.to_string(), buffer);
        }
    }

    /// Checks that `name` can be stored.
    pub fn validate_name(name: &str) -> Result<()> {
        let reason = if name.is_empty() {
            "a tree name cannot be empty"
        } else if name.len() > MAX_NAME_LEN {
            "a tree name is at most 1024 bytes"
        } else {
            return Ok(());
        };
        Err(Error::InvalidTreeName {
            name: name.chars().take(64).collect(),
            reason,
        })
    }

    /// The catalog's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![if self.values { VERSION_VALUES } else { VERSION }];
        out.extend_from_slice(&self.trees.len().encode_var_vec());
        for (name, root) in &self.trees {
            out.extend_from_slice(&name.len().encode_var_vec());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&root.0.to_le_bytes());
        }
        out
    }

    /// Reads a catalog; empty bytes are the empty catalog of a new store.
    /// Only the canonical encoding is accepted, so a catalog that decodes
    /// re-encodes to the very same bytes: minimal varints, names of 1 to
    /// [`MAX_NAME_LEN`] bytes of UTF-8 in strictly increasing order.
    ///
    /// # Errors
    /// [`Error::CorruptCatalog`] naming the first inconsistency.
    pub fn decode(bytes: &[u8]) -> Result<Catalog> {
        let bad = |what: &str| Error::CorruptCatalog(what.to_string());
        let Some((&version, mut rest)) = bytes.split_first() else {
            return Ok(Catalog::default());
        };
        if version != VERSION && version != VERSION_VALUES {
            return Err(bad(&format!("unknown catalog version {version}")));
        }
        let count = take_varint(&mut rest).map_err(|e| bad(&format!("tree count: {e}")))?;
        let mut catalog = Catalog {
            values: version == VERSION_VALUES,
            ..Catalog::default()
        };
        let mut last: Option<&str> = None;
        for i in 0..count {
            let len = take_varint(&mut rest).map_err(|e| bad(&format!("tree {i}: {e}")))?;
            if len == 0 {
                return Err(bad(&format!("tree {i} has an empty name")));
            }
            if len > MAX_NAME_LEN {
                return Err(bad(&format!("tree {i} has a name of {len} bytes")));
            }
            if rest.len() < len + 8 {
                return Err(bad(&format!("tree {i} runs past the end")));
            }
            let name =
                std::str::from_utf8(&rest[..len]).map_err(|_| bad("tree name is not UTF-8"))?;
            match last {
                Some(prev) if prev == name => {
                    return Err(bad(&format!("tree {name:?} appears twice")));
                }
                Some(prev) if prev > name => {
                    return Err(bad(&format!(
                        "tree {name:?} is out of order after {prev:?}"
                    )));
                }
                _ => {}
            }
            last = Some(name);
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&rest[len..len + 8]);
            catalog.set_root(name, NodeId(u64::from_le_bytes(raw)));
            rest = &rest[len + 8..];
        }
        if !rest.is_empty() {
            return Err(bad("stray bytes after the last tree"));
        }
        Ok(catalog)
    }
}

/// Takes a minimal LEB128 varint from the front of `rest`.
fn take_varint(rest: &mut &[u8]) -> std::result::Result<usize, &'static str> {
    let (v, n) = u64::decode_var(rest).ok_or("truncated length")?;
    if n != v.required_space() {
        return Err("length varint is not minimal");
    }
    *rest = &rest[n..];
    usize::try_from(v).map_err(|_| "length out of range")
}

/// Bytes of the encoded entry of a tree called `name`: its length as a
/// varint, the name, the root id.
fn entry_len(name: &str) -> usize {
    name.len().required_space() + name.len() + 8
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips() {
        let mut c = Catalog::default();
        c.set_root("files", NodeId(3));
        c.set_root("files@monday", NodeId(3));
        c.set_root("é", NodeId(9));
        c.set_root(&"n".repeat(MAX_NAME_LEN), NodeId(u64::MAX));
        let bytes = c.encode();
        let back = Catalog::decode(&bytes).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.encode(), bytes);
        assert_eq!(Catalog::decode(&[]).unwrap(), Catalog::default());
        assert_eq!(Catalog::decode(&[VERSION, 0]).unwrap(), Catalog::default());
    }

    #[test]
    fn rejects_damage() {
        let mut c = Catalog::default();
        c.set_root("t", NodeId(1));
        let bytes = c.encode();
        assert!(Catalog::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(Catalog::decode(&[2]).is_err());
        let mut dup = vec![1, 2];
        for _ in 0..2 {
            dup.extend_from_slice(&[1, b't', 1, 0, 0, 0, 0, 0, 0, 0]);
        }
        assert!(
            matches!(Catalog::decode(&dup), Err(Error::CorruptCatalog(m)) if m.contains("twice"))
        );
    }

    /// The catalog bytes of `entries` as given: names in that order, each
    /// length a one-byte varint.
    fn raw(entries: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![VERSION, entries.len() as u8];
        for (i, name) in entries.iter().enumerate() {
            out.push(name.len() as u8);
            out.extend_from_slice(name);
            out.extend_from_slice(&(i as u64 + 1).to_le_bytes());
        }
        out
    }

    fn refusal(bytes: &[u8]) -> String {
        match Catalog::decode(bytes) {
            Err(Error::CorruptCatalog(m)) => m,
            other => panic!("{bytes:?} decoded: {other:?}"),
        }
    }

    #[test]
    fn rejects_an_empty_name() {
        assert!(refusal(&raw(&[b""])).contains("empty name"));
        assert!(refusal(&raw(&[b"", b"a"])).contains("empty name"));
        assert!(Catalog::decode(&raw(&[b"a", b"b"])).is_ok());
    }

    #[test]
    fn rejects_names_out_of_order() {
        assert!(refusal(&raw(&[b"b", b"a"])).contains("out of order"));
        assert!(refusal(&raw(&[b"a", b"c", b"b"])).contains("out of order"));
        // Byte order, as the catalog writes names: "B" sorts before "a".
        assert!(refusal(&raw(&[b"a", b"B"])).contains("out of order"));
        assert!(Catalog::decode(&raw(&[b"B", b"a", b"ab"])).is_ok());
    }

    #[test]
    fn rejects_an_over_long_name() {
        let mut long = vec![VERSION, 1];
        long.extend_from_slice(&(MAX_NAME_LEN + 1).encode_var_vec());
        long.extend(std::iter::repeat_n(b'n', MAX_NAME_LEN + 1 + 8));
        assert!(refusal(&long).contains("1025 bytes"));
    }

    #[test]
    fn rejects_non_minimal_varints() {
        // The count 1 in two bytes.
        let mut count = vec![VERSION, 0x81, 0x00, 1, b't'];
        count.extend_from_slice(&[0; 8]);
        assert!(refusal(&count).contains("not minimal"));
        // The empty catalog's count 0 in two bytes.
        assert!(refusal(&[VERSION, 0x80, 0x00]).contains("not minimal"));
        // A name length of 1 in three bytes.
        let mut len = vec![VERSION, 1, 0x81, 0x80, 0x00, b't'];
        len.extend_from_slice(&[0; 8]);
        assert!(refusal(&len).contains("not minimal"));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            // Empty bytes (a new store) are the one other encoding of the
            // empty catalog.
            if let (false, Ok(c)) = (bytes.is_empty(), Catalog::decode(&bytes)) {
                prop_assert_eq!(c.encode(), bytes);
            }
        }

        #[test]
        fn encodings_are_canonical(
            trees in proptest::collection::btree_map("[a-z@é]{1,12}", any::<u64>(), 0..20),
        ) {
            let mut c = Catalog::default();
            for (name, root) in &trees {
                c.set_root(name, NodeId(*root));
            }
            let bytes = c.encode();
            let back = Catalog::decode(&bytes).unwrap();
            prop_assert_eq!(back.encode(), bytes);
            prop_assert_eq!(back, c);
        }
    }

    /// Hostile-store review: a forest of many long-named trees wrote a
    /// catalog past the 64 MiB a store unfilters, and could not reopen.
    #[test]
    fn a_catalog_never_grows_past_what_can_be_read_back() {
        let mut c = Catalog::default();
        let name = |i: usize| format!("{i:0>1024}");
        let mut i = 0;
        while c.make_room(&name(i)).is_ok() {
            c.set_root(&name(i), NodeId(1));
            i += 1;
        }
        assert!(matches!(
            c.make_room(&name(i)),
            Err(Error::CatalogFull { .. })
        ));
        assert!(c.encode().len() <= MAX_CATALOG_LEN);
        assert!(c.encode().len() > MAX_CATALOG_LEN - 2 * 1034);
        c.remove(&name(0)).unwrap();
        c.make_room(&name(i)).unwrap();
    }
}
