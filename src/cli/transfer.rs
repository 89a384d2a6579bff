//! `larix import` and `larix export`: a tree's entries to and from files,
//! in TSV or JSON lines (see [`super::format`]).
//!
//! An import is all or nothing: the first bad line stops it before the
//! commit, so the store keeps none of the file, and a store the import
//! created is removed again.

use super::args::{ExportArgs, Format, ImportArgs};
use super::error::{CliError, Result};
use super::format;
use super::progress;
use super::store;
use super::Status;
use larix::Forest;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// `larix import`: loads a file (or standard input, `-`) into a tree.
pub fn import(a: &ImportArgs, out: &mut dyn Write) -> Result<Status> {
    // Open the input before the store, so a missing file creates nothing.
    let (input, len): (Box<dyn BufRead>, Option<u64>) = if a.file == Path::new("-") {
        (Box::new(io::stdin().lock()), None)
    } else {
        let file = File::open(&a.file).map_err(|e| CliError::io(&a.file, e))?;
        let len = file.metadata().ok().map(|m| m.len());
        (Box::new(BufReader::new(file)), len)
    };
    let imported = store::change(&a.target.store, &a.filters, |forest| {
        load(forest, a, input, len)
    })?;
    writeln!(
        out,
        "imported {imported} entries into tree {:?}",
        a.target.tree
    )?;
    Ok(Status::Success)
}

/// Inserts the records of `input` (`len` bytes, if known) into the tree
/// `a` names and commits; the number of entries.
fn load(forest: &Forest, a: &ImportArgs, input: Box<dyn BufRead>, len: Option<u64>) -> Result<u64> {
    let source = if a.file == Path::new("-") {
        "standard input".to_string()
    } else {
        a.file.display().to_string()
    };
    let tree = store::tree_or_create(forest, &a.target.tree)?;
    let pb = match len {
        Some(n) => progress::byte_bar("import", n),
        None => progress::spinner("import"),
    };
    let mut imported = 0u64;
    for (i, line) in input.lines().enumerate() {
        let at = |e: &dyn std::fmt::Display| {
            CliError::BadInput(format!(
                "{source} line {}: {e}; nothing was imported",
                i + 1
            ))
        };
        let line = line.map_err(|e| at(&e))?;
        pb.inc(line.len() as u64 + 1);
        let record = line.trim_end_matches('\r');
        if record.is_empty() {
            continue;
        }
        let (key, value) = match a.format {
            Format::Tsv => format::parse_tsv(record),
            Format::Jsonl => format::parse_jsonl(record),
        }
        .map_err(|e| at(&e))?;
        tree.insert(&key, &value).map_err(|e| at(&e))?;
        imported += 1;
    }
    pb.set_message("committing");
    forest.commit()?;
    pb.finish_and_clear();
    Ok(imported)
}

/// `larix export`: writes a tree's entries, in key order, to a file or to
/// standard output.
pub fn export(a: &ExportArgs, out: &mut dyn Write) -> Result<Status> {
    let forest = store::open_read_only(&a.target.store)?;
    let tree = store::tree(&forest, &a.target.tree)?;
    let render = |key: &[u8], value: &[u8]| match a.format {
        Format::Tsv => format::tsv_line(key, value),
        Format::Jsonl => format::jsonl_line(key, value),
    };
    let Some(path) = &a.file else {
        for entry in tree.range(..)? {
            let (key, value) = entry?;
            writeln!(out, "{}", render(&key, &value))?;
        }
        return Ok(Status::Success);
    };
    refuse_inside(&a.target.store.db, path)?;
    let io_err = |e| CliError::io(path, e);
    let mut file = BufWriter::new(File::create(path).map_err(io_err)?);
    let pb = progress::bar("export", tree.count_range(..)?);
    let mut exported = 0u64;
    for entry in tree.range(..)? {
        let (key, value) = entry?;
        writeln!(file, "{}", render(&key, &value)).map_err(io_err)?;
        exported += 1;
        pb.inc(1);
    }
    file.flush().map_err(io_err)?;
    pb.finish_and_clear();
    writeln!(
        out,
        "exported {exported} entries of tree {:?} to {}",
        a.target.tree,
        path.display()
    )?;
    Ok(Status::Success)
}

/// Refuses an export to `path` if it is inside the store directory `db`,
/// where it would overwrite (or sit among) the store's files.
///
/// # Errors
/// [`CliError::BadInput`] if it is inside; [`CliError::Io`] if `db` or the
/// directory of `path` cannot be resolved.
fn refuse_inside(db: &Path, path: &Path) -> Result<()> {
    let store = fs::canonicalize(db).map_err(|e| CliError::io(db, e))?;
    if resolve(path)?.starts_with(&store) {
        return Err(CliError::BadInput(format!(
            "{} is inside the store {}; write the export elsewhere",
            path.display(),
            db.display()
        )));
    }
    Ok(())
}

/// Where creating `path` writes: the path with every symlink followed,
/// including one to a file that does not exist yet.
///
/// # Errors
/// [`CliError::Io`] if its directory cannot be resolved, or for a loop of
/// symlinks.
fn resolve(path: &Path) -> Result<PathBuf> {
    let mut path = path.to_path_buf();
    // As many links as Linux follows before it reports a loop.
    for _ in 0..40 {
        if let Ok(real) = fs::canonicalize(&path) {
            return Ok(real);
        }
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        match fs::read_link(&path) {
            Ok(target) => path = dir.join(target),
            Err(_) => {
                let real = fs::canonicalize(&dir).map_err(|e| CliError::io(&dir, e))?;
                return Ok(match path.file_name() {
                    Some(name) => real.join(name),
                    None => real,
                });
            }
        }
    }
    Err(CliError::io(
        &path,
        io::Error::other("too many levels of symbolic links"),
    ))
}
