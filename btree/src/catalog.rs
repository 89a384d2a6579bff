//! The forest catalog: tree name → root node id, and its byte encoding.
//!
//! Layout (see `docs/design.md`, "Catalog"):
//!
//! ```text
//! version u8 (= 1) | count varint | count × (name_len varint | name UTF-8 | root u64 LE)
//! ```
//!
//! Names are unique, non-empty and at most [`MAX_NAME_LEN`] bytes; entries
//! are written in name order.

use crate::{Error, Result};
use integer_encoding::VarInt;
use larix_nodestore::NodeId;
use std::collections::BTreeMap;

/// Longest tree name, in bytes.
pub const MAX_NAME_LEN: usize = 1024;
const VERSION: u8 = 1;

/// Tree names and their roots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    trees: BTreeMap<String, NodeId>,
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
        self.trees.insert(name.to_string(), root);
    }

    /// Drops tree `name` from the catalog; returns its root.
    pub fn remove(&mut self, name: &str) -> Result<NodeId> {
        self.trees.remove(name).ok_or_else(|| Error::TreeNotFound {
            name: name.to_string(),
        })
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
        let mut out = vec![VERSION];
        out.extend_from_slice(&self.trees.len().encode_var_vec());
        for (name, root) in &self.trees {
            out.extend_from_slice(&name.len().encode_var_vec());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&root.0.to_le_bytes());
        }
        out
    }

    /// Reads a catalog; empty bytes are the empty catalog of a new store.
    ///
    /// # Errors
    /// [`Error::CorruptCatalog`] naming the first inconsistency.
    pub fn decode(bytes: &[u8]) -> Result<Catalog> {
        let bad = |what: &str| Error::CorruptCatalog(what.to_string());
        let Some((&version, mut rest)) = bytes.split_first() else {
            return Ok(Catalog::default());
        };
        if version != VERSION {
            return Err(bad(&format!("unknown catalog version {version}")));
        }
        let take_varint = |rest: &mut &[u8]| -> Result<usize> {
            let (v, n) = u64::decode_var(rest).ok_or_else(|| bad("truncated length"))?;
            *rest = &rest[n..];
            usize::try_from(v).map_err(|_| bad("length out of range"))
        };
        let count = take_varint(&mut rest)?;
        let mut trees = BTreeMap::new();
        for _ in 0..count {
            let len = take_varint(&mut rest)?;
            if len > MAX_NAME_LEN || rest.len() < len + 8 {
                return Err(bad("tree entry runs past the end"));
            }
            let name =
                std::str::from_utf8(&rest[..len]).map_err(|_| bad("tree name is not UTF-8"))?;
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&rest[len..len + 8]);
            if trees
                .insert(name.to_string(), NodeId(u64::from_le_bytes(raw)))
                .is_some()
            {
                return Err(bad(&format!("tree {name:?} appears twice")));
            }
            rest = &rest[len + 8..];
        }
        if !rest.is_empty() {
            return Err(bad("stray bytes after the last tree"));
        }
        Ok(Catalog { trees })
    }
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
        c.set_root("", NodeId(9));
        assert_eq!(Catalog::decode(&c.encode()).unwrap(), c);
        assert_eq!(Catalog::decode(&[]).unwrap(), Catalog::default());
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

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = Catalog::decode(&bytes);
        }
    }
}
