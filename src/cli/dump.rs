//! `larix dump`: a tree's size and shape — entries and their bytes, the
//! first and last key, then depth, nodes per level and how full they are.

use super::args::TreeArgs;
use super::error::Result;
use super::format::escape;
use super::store;
use super::table::{self, Table};
use super::Status;
use std::io::Write;

/// `larix dump`: prints the size and shape of one tree.
pub fn dump(a: &TreeArgs, out: &mut dyn Write) -> Result<Status> {
    let forest = store::open_read_only(&a.store)?;
    let tree = store::tree(&forest, &a.tree)?;
    let (mut entries, mut key_bytes, mut value_bytes) = (0u64, 0u64, 0u64);
    for entry in tree.range(..)? {
        let (key, value) = entry?;
        entries += 1;
        key_bytes += key.len() as u64;
        value_bytes += value.len() as u64;
    }
    writeln!(
        out,
        "tree {:?}: {} entries, {} of keys, {} of values",
        a.tree,
        table::count(entries),
        table::bytes(key_bytes),
        table::bytes(value_bytes)
    )?;
    if let (Some((first, _)), Some((last, _))) = (tree.first()?, tree.last()?) {
        writeln!(out, "first key: {}", escape(&first))?;
        writeln!(out, "last key:  {}", escape(&last))?;
    }
    let shape = tree.shape()?;
    writeln!(out, "depth: {}", shape.levels.len())?;
    let mut levels = Table::new(&["level", "nodes", "bytes", "entries", "fill"]);
    let top = shape.levels.len().saturating_sub(1);
    for (i, level) in shape.levels.iter().enumerate().rev() {
        let name = match i {
            0 if top == 0 => "0 (root, leaf)".to_string(),
            0 => "0 (leaves)".to_string(),
            i if i == top => format!("{i} (root)"),
            i => i.to_string(),
        };
        let capacity = level.nodes.saturating_mul(shape.node_size as u64);
        levels.row(vec![
            name,
            table::count(level.nodes),
            table::bytes(level.bytes),
            table::count(level.entries),
            table::ratio(level.bytes, capacity),
        ]);
    }
    write!(out, "{levels}")?;
    Ok(Status::Success)
}
