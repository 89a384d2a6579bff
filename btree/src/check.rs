//! The structural checker: everything the B-tree promises, verified.
//!
//! It walks every tree once (a shared node is read once and its summary
//! reused), and reports each problem it finds instead of stopping at the
//! first: unsorted keys, index keys above the smallest key below them, keys outside their parent's range, levels that do not step down by
//! one (so leaves at different depths), nodes outside the size bounds,
//! refcounts that differ from the number of parent pointers (+1 per root),
//! out-of-line values whose nodes do not hold what their reference says,
//! and stored nodes that no tree reaches.

use crate::catalog::Catalog;
use crate::limits::Limits;
use crate::node::{Expect, Node, ValueRef};
use crate::value;
use larix_nodestore::{NodeId, NodeStore};
use std::collections::HashMap;
use std::fmt;

/// One thing wrong with the forest.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// A node could not be read.
    Unreadable {
        /// The node.
        id: NodeId,
        /// The store's error.
        error: String,
    },
    /// Keys of a node are not strictly increasing.
    Unsorted {
        /// The node.
        id: NodeId,
        /// Position of the first key not above its predecessor.
        position: usize,
    },
    /// A node encodes to more than the node size.
    Oversized {
        /// The node.
        id: NodeId,
        /// Its encoded size.
        size: usize,
        /// The node size.
        max: usize,
    },
    /// A non-root node is below the minimum fill, or an index node below a
    /// parent has fewer than two children.
    Underfull {
        /// The node.
        id: NodeId,
        /// Its encoded size.
        size: usize,
        /// Its entry count.
        entries: usize,
    },
    /// An index key is above the smallest key of its subtree.
    IndexKey {
        /// The index node.
        parent: NodeId,
        /// The child the key belongs to.
        child: NodeId,
    },
    /// A subtree holds a key not below the next index key of its parent.
    OutOfRange {
        /// The index node.
        parent: NodeId,
        /// The child whose keys overlap its right neighbour's.
        child: NodeId,
    },
    /// A child's level is not one below its parent's.
    Level {
        /// The index node.
        parent: NodeId,
        /// The child.
        child: NodeId,
        /// The parent's level.
        parent_level: u8,
        /// The child's level.
        child_level: u8,
    },
    /// A stored refcount differs from the pointers found.
    Refcount {
        /// The node.
        id: NodeId,
        /// The count in the store.
        stored: u32,
        /// Parent pointers plus root references found.
        found: u32,
    },
    /// A stored node that no tree reaches.
    Unreachable {
        /// The node.
        id: NodeId,
    },
    /// A pointer leads to a node of the wrong kind (a value chunk where a
    /// tree node belongs, a leaf where a value belongs).
    Kind {
        /// The node.
        id: NodeId,
        /// What the pointer requires.
        expected: &'static str,
        /// What the node is.
        found: &'static str,
    },
    /// An out-of-line value's nodes do not hold what its reference says.
    Value {
        /// The value's node (its chunk, or its value node).
        id: NodeId,
        /// What is wrong.
        reason: String,
    },
}

impl Problem {
    /// The invariant of `docs/design.md` the problem breaks.
    pub fn invariant(&self) -> &'static str {
        match self {
            Problem::Unreadable { .. } => "S12",
            Problem::Unsorted { .. } | Problem::IndexKey { .. } | Problem::OutOfRange { .. } => {
                "B1"
            }
            Problem::Level { .. } | Problem::Kind { .. } => "B2",
            Problem::Value { .. } => "V1",
            Problem::Oversized { .. } | Problem::Underfull { .. } => "B3",
            Problem::Refcount { .. } | Problem::Unreachable { .. } => "B4",
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unreadable { id, error } => write!(f, "{id} cannot be read: {error}"),
            Problem::Unsorted { id, position } => {
                write!(f, "{id}: key {position} is not above the key before it")
            }
            Problem::Oversized { id, size, max } => {
                write!(f, "{id} is {size} bytes, over the node size of {max}")
            }
            Problem::Underfull { id, size, entries } => {
                write!(f, "{id} is underfull: {size} bytes in {entries} entries")
            }
            Problem::IndexKey { parent, child } => write!(
                f,
                "{parent}: the key for child {child} is above the smallest key below it"
            ),
            Problem::OutOfRange { parent, child } => write!(
                f,
                "{parent}: child {child} holds keys not below the next index key"
            ),
            Problem::Level {
                parent,
                child,
                parent_level,
                child_level,
            } => write!(
                f,
                "{parent} at level {parent_level} points to {child} at level {child_level}"
            ),
            Problem::Refcount { id, stored, found } => write!(
                f,
                "{id} has refcount {stored} but {found} references point to it"
            ),
            Problem::Unreachable { id } => write!(f, "{id} is stored but no tree reaches it"),
            Problem::Kind {
                id,
                expected,
                found,
            } => write!(f, "{id} is a {found} where a {expected} belongs"),
            Problem::Value { id, reason } => write!(f, "value {id}: {reason}"),
        }?;
        write!(f, " ({})", self.invariant())
    }
}

/// The result of a full check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Every problem found.
    pub problems: Vec<Problem>,
    /// Trees checked.
    pub trees: usize,
    /// Distinct nodes read.
    pub nodes: u64,
}

impl CheckReport {
    /// True when nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "checked {} trees, {} nodes: {} problems",
            self.trees,
            self.nodes,
            self.problems.len()
        )?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// What a parent needs to know about a checked subtree.
#[derive(Clone)]
struct Summary {
    min: Option<Vec<u8>>,
    max: Option<Vec<u8>>,
    level: u8,
    size: usize,
    len: usize,
    underfull: bool,
}

struct Checker<'a> {
    store: &'a NodeStore<Node>,
    limits: Limits,
    seen: HashMap<NodeId, Option<Summary>>,
    found: HashMap<NodeId, u32>,
    problems: Vec<Problem>,
}

/// Checks every tree of `catalog` in `store` and the store's refcounts.
pub(crate) fn check(store: &NodeStore<Node>, catalog: &Catalog, limits: Limits) -> CheckReport {
    let mut c = Checker {
        store,
        limits,
        seen: HashMap::new(),
        found: HashMap::new(),
        problems: Vec::new(),
    };
    for (_, root) in catalog.iter() {
        *c.found.entry(root).or_default() += 1;
        c.visit(root, None);
    }
    c.check_refcounts();
    CheckReport {
        problems: c.problems,
        trees: catalog.len(),
        nodes: c.seen.len() as u64,
    }
}

impl Checker<'_> {
    /// Checks the subtree of `id`, which its parent needs at `level`. A node
    /// at another level is not descended into (its edge is reported as a
    /// B2 problem), so levels strictly decrease along the recursion: its
    /// depth is at most 256 and a cycle of child pointers ends it.
    fn visit(&mut self, id: NodeId, level: Option<u8>) -> Option<Summary> {
        if let Some(s) = self.seen.get(&id) {
            return s.clone();
        }
        let summary = match self.store.get_uncached(id) {
            Ok(node) if !node.is_tree_node() => {
                self.problems.push(Problem::Kind {
                    id,
                    expected: "tree node",
                    found: "value node or chunk",
                });
                None
            }
            Ok(node) if level.is_some_and(|l| l != node.level()) => Some(Summary {
                min: None,
                max: None,
                level: node.level(),
                size: node.size(),
                len: node.len(),
                underfull: false,
            }),
            Ok(node) => Some(self.check_node(id, &node)),
            Err(e) => {
                self.problems.push(Problem::Unreadable {
                    id,
                    error: e.to_string(),
                });
                None
            }
        };
        self.seen.insert(id, summary.clone());
        summary
    }

    fn check_node(&mut self, id: NodeId, node: &Node) -> Summary {
        if let Some(position) = (1..node.len()).find(|&i| node.key(i - 1) >= node.key(i)) {
            self.problems.push(Problem::Unsorted { id, position });
        }
        if node.size() > self.limits.max_node() {
            self.problems.push(Problem::Oversized {
                id,
                size: node.size(),
                max: self.limits.max_node(),
            });
        }
        let underfull = node.size() < self.limits.min_node() || (!node.is_leaf() && node.len() < 2);
        // A leaf's smallest key is its first; an index node's is that of its
        // first subtree (its own first key only bounds it from below).
        let mut summary = Summary {
            min: (node.is_leaf() && !node.is_empty()).then(|| node.key(0).to_vec()),
            max: None,
            level: node.level(),
            size: node.size(),
            len: node.len(),
            underfull,
        };
        if node.is_leaf() {
            summary.max = node.len().checked_sub(1).map(|i| node.key(i).to_vec());
            for r in (0..node.len()).filter_map(|i| node.value_ref(i)) {
                *self.found.entry(r.id).or_default() += 1;
                self.visit_value(r);
            }
            return summary;
        }
        for j in 0..node.len() {
            let child = node.child(j);
            *self.found.entry(child).or_default() += 1;
            let Some(s) = self.visit(child, node.level().checked_sub(1)) else {
                continue;
            };
            self.check_edge(id, node, j, child, &s);
            if j == 0 {
                summary.min = s.min.clone();
            }
            if j + 1 == node.len() {
                summary.max = s.max;
            }
        }
        summary
    }

    /// Checks the nodes of out-of-line value `r` once: a chunk as long as
    /// the value, or a value node of its length whose chunks hold it.
    fn visit_value(&mut self, r: ValueRef) {
        if self.seen.insert(r.id, None).is_some() {
            return;
        }
        let Some(node) = self.read_part(r.id, r.expect()) else {
            return;
        };
        if r.expect() == Expect::Chunk {
            self.check_chunk(r.id, &node, r.len as usize);
            return;
        }
        if node.value_len() != r.len {
            self.problems.push(Problem::Value {
                id: r.id,
                reason: format!("lists {} bytes, its leaf says {}", node.value_len(), r.len),
            });
            return;
        }
        for (index, chunk) in node.chunk_ids().enumerate() {
            *self.found.entry(chunk).or_default() += 1;
            if self.seen.insert(chunk, None).is_some() {
                continue;
            }
            if let Some(data) = self.read_part(chunk, Expect::Chunk) {
                self.check_chunk(chunk, &data, value::chunk_len(r.len, index));
            }
        }
    }

    /// Reads (and so verifies) a node of a value, which must be `want`.
    fn read_part(&mut self, id: NodeId, want: Expect) -> Option<std::sync::Arc<Node>> {
        match self.store.get_uncached(id) {
            Ok(node) if node.kind() == want => Some(node),
            Ok(_) => {
                self.problems.push(Problem::Kind {
                    id,
                    expected: match want {
                        Expect::Chunk => "value chunk",
                        _ => "value node",
                    },
                    found: "node of another kind",
                });
                None
            }
            Err(e) => {
                self.problems.push(Problem::Unreadable {
                    id,
                    error: e.to_string(),
                });
                None
            }
        }
    }

    fn check_chunk(&mut self, id: NodeId, node: &Node, want: usize) {
        if node.chunk_data().len() != want {
            self.problems.push(Problem::Value {
                id,
                reason: format!("holds {} bytes, not {want}", node.chunk_data().len()),
            });
        }
    }

    fn check_edge(&mut self, parent: NodeId, node: &Node, j: usize, child: NodeId, s: &Summary) {
        if s.level + 1 != node.level() {
            self.problems.push(Problem::Level {
                parent,
                child,
                parent_level: node.level(),
                child_level: s.level,
            });
        }
        if s.underfull {
            self.problems.push(Problem::Underfull {
                id: child,
                size: s.size,
                entries: s.len,
            });
        }
        if s.min.as_deref().is_some_and(|m| node.key(j) > m) {
            self.problems.push(Problem::IndexKey { parent, child });
        }
        if j + 1 < node.len() && s.max.as_deref().is_some_and(|m| m >= node.key(j + 1)) {
            self.problems.push(Problem::OutOfRange { parent, child });
        }
    }

    fn check_refcounts(&mut self) {
        let mut found: Vec<_> = self.found.iter().map(|(&id, &n)| (id, n)).collect();
        found.sort_unstable();
        for (id, n) in found {
            if let Ok(stored) = self.store.refcount(id) {
                if stored != n {
                    self.problems.push(Problem::Refcount {
                        id,
                        stored,
                        found: n,
                    });
                }
            }
        }
        for id in self.store.node_ids() {
            if !self.found.contains_key(&id) {
                self.problems.push(Problem::Unreachable { id });
            }
        }
    }
}
