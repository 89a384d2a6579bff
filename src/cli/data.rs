//! The data commands: `put`, `get`, `del`, `scan`, `count`, `trees`,
//! `clone`, `drop`, `check` and `stats`. Each opens the store, does one
//! thing, and commits before returning if it changed anything.

use super::args::{
    CloneArgs, DiffArgs, DropArgs, GetArgs, KeyArgs, PutArgs, RangeQuery, ScanArgs, StoreArgs,
};
use super::error::{CliError, Result};
use super::format::{escape, Codec};
use super::store;
use super::table::{self, Table};
use super::Status;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::ops::Bound;

/// `larix put`: inserts or replaces one entry.
pub fn put(a: &PutArgs) -> Result<Status> {
    let codec = Codec {
        hex: a.encoding.hex,
    };
    let key = codec.parse(&a.key, "key")?;
    let value = match (&a.value, &a.file) {
        (Some(v), _) => Some(codec.parse(v, "value")?),
        (None, _) => None,
    };
    // Opened before the store, so a missing file creates no store.
    let file = match &a.file {
        Some(path) => {
            let file = File::open(path).map_err(|e| CliError::io(path, e))?;
            let len = file.metadata().map_err(|e| CliError::io(path, e))?.len();
            Some((path, file, len))
        }
        None => None,
    };
    store::change(&a.target.store, &a.filters, |forest| {
        let tree = store::tree_or_create(forest, &a.target.tree)?;
        match (&value, file) {
            (Some(value), _) => tree.insert(&key, value)?,
            (None, Some((path, file, len))) => tree
                .insert_reader(&key, BufReader::new(file), len)
                .map_err(|e| match e {
                    larix::Error::ValueSource(source) => CliError::io(path, source),
                    other => other.into(),
                })?,
            (None, None) => unreachable!("clap requires a value or --file"),
        }
        Ok(forest.commit()?)
    })?;
    Ok(Status::Success)
}

/// `larix get`: prints the value of one key, or writes it to a file.
pub fn get(a: &GetArgs, out: &mut dyn Write) -> Result<Status> {
    let k = &a.key;
    let codec = Codec {
        hex: k.encoding.hex,
    };
    let key = codec.parse(&k.key, "key")?;
    let forest = store::open_read_only(&k.target.store)?;
    let tree = store::tree(&forest, &k.target.tree)?;
    let missing = || CliError::NoKey {
        key: codec.quote(&key),
        tree: k.target.tree.clone(),
    };
    if let Some(path) = &a.output {
        let mut reader = tree.get_reader(&key)?.ok_or_else(missing)?;
        let mut file = File::create(path).map_err(|e| CliError::io(path, e))?;
        // A failed read is the store's, a failed write the file's.
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = reader.read(&mut buf).map_err(store_read)?;
            if n == 0 {
                break;
            }
            file.write_all(&buf[..n])
                .map_err(|e| CliError::io(path, e))?;
        }
        file.sync_all().map_err(|e| CliError::io(path, e))?;
        return Ok(Status::Success);
    }
    let value = tree.get(&key)?.ok_or_else(missing)?;
    writeln!(out, "{}", codec.show(&value))?;
    Ok(Status::Success)
}

/// The error of a [`larix::ValueReader`] read: the store's, which the
/// reader carries inside an I/O error.
fn store_read(e: std::io::Error) -> CliError {
    match e.into_inner().map(|inner| inner.downcast::<larix::Error>()) {
        Some(Ok(store)) => (*store).into(),
        Some(Err(other)) => CliError::BadInput(format!("reading the value: {other}")),
        None => CliError::BadInput("reading the value failed".into()),
    }
}

/// `larix del`: removes one key; a missing key is an error.
pub fn del(a: &KeyArgs) -> Result<Status> {
    let codec = Codec {
        hex: a.encoding.hex,
    };
    let key = codec.parse(&a.key, "key")?;
    let forest = store::open(&a.target.store)?;
    if !store::tree(&forest, &a.target.tree)?.remove(&key)? {
        return Err(CliError::NoKey {
            key: codec.quote(&key),
            tree: a.target.tree.clone(),
        });
    }
    forest.commit()?;
    Ok(Status::Success)
}

/// The keys a `--prefix`, `--from` and `--to` select: the intersection of
/// all three.
struct KeyRange {
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
}

impl KeyRange {
    /// The range of `q`, its keys read with `codec`.
    fn new(q: &RangeQuery, codec: Codec) -> Result<KeyRange> {
        let mut range = KeyRange {
            lower: Bound::Unbounded,
            upper: Bound::Unbounded,
        };
        if let Some(p) = &q.prefix {
            let prefix = codec.parse(p, "--prefix")?;
            if let Some(end) = prefix_end(&prefix) {
                range.upper = Bound::Excluded(end);
            }
            range.lower = Bound::Included(prefix);
        }
        if let Some(from) = &q.from {
            let from = codec.parse(from, "--from")?;
            if !matches!(&range.lower, Bound::Included(l) if *l >= from) {
                range.lower = Bound::Included(from);
            }
        }
        if let Some(to) = &q.to {
            let to = codec.parse(to, "--to")?;
            if !matches!(&range.upper, Bound::Excluded(u) if *u <= to) {
                range.upper = Bound::Excluded(to);
            }
        }
        Ok(range)
    }

    /// The bounds as the tree's range calls take them.
    fn bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        (
            self.lower.as_ref().map(Vec::as_slice),
            self.upper.as_ref().map(Vec::as_slice),
        )
    }
}

/// The smallest key above every key starting with `prefix`, or `None` if
/// there is none (the prefix is all `0xff`).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&b| b != 0xff)?;
    let mut end = prefix[..=last].to_vec();
    end[last] += 1;
    Some(end)
}

/// `larix scan`: prints the entries of a range, `key TAB value` each.
pub fn scan(a: &ScanArgs, out: &mut dyn Write) -> Result<Status> {
    let q = &a.range;
    let codec = Codec {
        hex: q.encoding.hex,
    };
    let range = KeyRange::new(q, codec)?;
    let forest = store::open_read_only(&q.target.store)?;
    let entries = store::tree(&forest, &q.target.tree)?.range(range.bounds())?;
    let limit = a
        .limit
        .map_or(usize::MAX, |n| n.try_into().unwrap_or(usize::MAX));
    let iter: Box<dyn Iterator<Item = _>> = if a.reverse {
        Box::new(entries.rev())
    } else {
        Box::new(entries)
    };
    for entry in iter.take(limit) {
        let (key, value) = entry?;
        writeln!(out, "{}\t{}", codec.show(&key), codec.show(&value))?;
    }
    Ok(Status::Success)
}

/// `larix count`: prints the number of entries in a range.
pub fn count(q: &RangeQuery, out: &mut dyn Write) -> Result<Status> {
    let codec = Codec {
        hex: q.encoding.hex,
    };
    let range = KeyRange::new(q, codec)?;
    let forest = store::open_read_only(&q.target.store)?;
    let n = store::tree(&forest, &q.target.tree)?.count_range(range.bounds())?;
    writeln!(out, "{n}")?;
    Ok(Status::Success)
}

/// `larix trees`: lists the tree names, escaped so that each is one line.
pub fn trees(a: &StoreArgs, out: &mut dyn Write) -> Result<Status> {
    for name in store::open_read_only(a)?.tree_names() {
        writeln!(out, "{}", escape(name.as_bytes()))?;
    }
    Ok(Status::Success)
}

/// `larix clone`: makes `dst` a snapshot of `src`.
pub fn clone(a: &CloneArgs) -> Result<Status> {
    let forest = store::open(&a.store)?;
    forest.clone_tree(&a.src, &a.dst)?;
    forest.commit()?;
    Ok(Status::Success)
}

/// `larix diff`: prints the changes from one tree to another.
pub fn diff(a: &DiffArgs, out: &mut dyn Write) -> Result<Status> {
    let codec = Codec {
        hex: a.encoding.hex,
    };
    let forest = store::open_read_only(&a.store)?;
    let (old, new) = (store::tree(&forest, &a.old)?, store::tree(&forest, &a.new)?);
    let (mut added, mut removed, mut changed) = (0u64, 0u64, 0u64);
    for change in old.diff(&new)? {
        let larix::Change { key, old, new } = change?;
        let line = match (old, new) {
            (None, Some(v)) => {
                added += 1;
                format!("+ {}\t{}", codec.show(&key), codec.show(&v))
            }
            (Some(v), None) => {
                removed += 1;
                format!("- {}\t{}", codec.show(&key), codec.show(&v))
            }
            (Some(was), Some(is)) => {
                changed += 1;
                let (k, was, is) = (codec.show(&key), codec.show(&was), codec.show(&is));
                format!("~ {k}\t{was}\t{is}")
            }
            (None, None) => continue,
        };
        if !a.count {
            writeln!(out, "{line}")?;
        }
    }
    if a.count {
        writeln!(out, "{added} added, {removed} removed, {changed} changed")?;
    }
    Ok(Status::Success)
}

/// `larix drop`: removes a tree.
pub fn drop_tree(a: &DropArgs) -> Result<Status> {
    let forest = store::open(&a.store)?;
    forest.remove_tree(&a.tree)?;
    forest.commit()?;
    Ok(Status::Success)
}

/// `larix check`: prints the check report; [`Status::Problems`] if it
/// lists any.
pub fn check(a: &StoreArgs, out: &mut dyn Write) -> Result<Status> {
    let forest = store::open_read_only(a)?;
    for w in forest.warnings() {
        writeln!(out, "warning: {w}")?;
    }
    let report = forest.check()?;
    writeln!(out, "{report}")?;
    Ok(if report.is_clean() {
        Status::Success
    } else {
        Status::Problems
    })
}

/// `larix stats`: prints the store's counters and each tree's size.
pub fn stats(a: &StoreArgs, out: &mut dyn Write) -> Result<Status> {
    let forest = store::open_read_only(a)?;
    let s = forest.stats();
    let mut counters = Table::new(&["store", "value"]);
    for (name, value) in [
        ("trees", table::count(s.trees)),
        ("nodes", table::count(s.nodes)),
        ("bytes on disk", table::bytes(s.disk_bytes)),
        ("live bytes", table::bytes(s.live_bytes)),
        ("live share", table::ratio(s.live_bytes, s.disk_bytes)),
        (
            "space amplification",
            format!("{:.2}x", s.space_amplification()),
        ),
        ("segments", table::count(s.segments.len() as u64)),
        (
            "log since last checkpoint",
            table::bytes(s.log_since_checkpoint),
        ),
    ] {
        counters.row(vec![name.to_string(), value]);
    }
    write!(out, "{counters}")?;
    let mut segments = Table::new(&["segment", "live", "total", "live share"]);
    for seg in &s.segments {
        segments.row(vec![
            seg.segment.to_string(),
            table::bytes(seg.live_bytes),
            table::bytes(seg.total_bytes),
            table::ratio(seg.live_bytes, seg.total_bytes),
        ]);
    }
    write!(out, "\n{segments}")?;
    let mut sizes = Table::new(&["tree", "entries"]);
    for name in forest.tree_names() {
        let n = store::tree(&forest, &name)?.count_range(..)?;
        sizes.row(vec![escape(name.as_bytes()), table::count(n)]);
    }
    write!(out, "\n{sizes}")?;
    for w in &s.warnings {
        writeln!(out, "\nwarning: {w}")?;
    }
    Ok(Status::Success)
}

/// `larix compact`: rewrites sparse segments and prints the space on disk
/// before and after.
pub fn compact(a: &StoreArgs, out: &mut dyn Write) -> Result<Status> {
    let forest = store::open(a)?;
    let before = forest.stats();
    forest.compact()?;
    let after = forest.stats();
    let mut t = Table::new(&["", "on disk", "live", "segments", "amplification"]);
    for (name, s) in [("before", &before), ("after", &after)] {
        t.row(vec![
            name.to_string(),
            table::bytes(s.disk_bytes),
            table::bytes(s.live_bytes),
            table::count(s.segments.len() as u64),
            format!("{:.2}x", s.space_amplification()),
        ]);
    }
    write!(out, "{t}")?;
    Ok(Status::Success)
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_is_the_first_key_past_the_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
