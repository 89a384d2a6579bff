//! Finding, opening and creating the store a command works on, and picking
//! its trees.
//!
//! Only commands that add data create a store, through [`change`], which
//! removes the store again if the command fails; the others fail with
//! [`CliError::NoStore`] on a directory without one. A new store's filters
//! come from the command's flags, an existing store's from its superblock.

use super::args::{FilterArgs, StoreArgs};
use super::cleanup::Before;
use super::error::{CliError, Result};
use larix::{FilterSpec, Forest, Options, Tree};
use std::path::Path;

/// The file every committed store holds (docs/design.md, "On-disk format").
const SUPERBLOCK: &str = "superblock";

/// True if directory `dir` holds a store.
pub fn exists(dir: &Path) -> bool {
    dir.join(SUPERBLOCK).is_file()
}

/// Opens the existing store named by `args` for reading and writing.
///
/// # Errors
/// [`CliError::NoStore`] if there is none; [`CliError::BadInput`] if a key
/// file is given for a store that is not encrypted (it would not be used,
/// and the user would believe the data encrypted); the engine's error if
/// it cannot be opened (damage, wrong or missing key, a recorded command
/// filter that `--filter-command` does not name).
pub fn open(args: &StoreArgs) -> Result<Forest> {
    let options = existing_options(args)?;
    Ok(warn(match args.url() {
        Some(url) => Forest::open_url(url, options)?,
        None => Forest::open(&args.db, options)?,
    }))
}

/// Opens the existing store named by `args` for reading only: it writes
/// nothing to the store's directory, works on read-only media, and lets
/// other readers in at once.
///
/// # Errors
/// As [`open`].
pub fn open_read_only(args: &StoreArgs) -> Result<Forest> {
    let options = existing_options(args)?;
    Ok(warn(match args.url() {
        Some(url) => Forest::open_url_read_only(url, options)?,
        None => Forest::open_read_only(&args.db, options)?,
    }))
}

/// The options an existing store was made with, the key file and command
/// filter taken from `args`, never from the store.
///
/// # Errors
/// As [`open`].
fn existing_options(args: &StoreArgs) -> Result<Options> {
    if !store_exists(args)? {
        return Err(CliError::NoStore(args.db.clone()));
    }
    let command = args.command();
    let read = |key_file: Option<&Path>| -> Result<Options> {
        Ok(match args.url() {
            Some(url) => {
                let storage = args.storage().map_err(CliError::BadInput)?;
                Options::from_url_with_command(url, &storage, key_file, command.as_ref())?
            }
            None => Options::from_store_with_command(&args.db, key_file, command.as_ref())?,
        })
    };
    // Without a key, only a store that needs none opens.
    if args.key_file.is_some() && read(None).is_ok() {
        return Err(CliError::BadInput(format!(
            "{} is not encrypted; drop --key-file",
            args.db.display()
        )));
    }
    read(args.key_file.as_deref())
}

/// True if `args` names a store that exists (a directory holding one, or
/// a URL with a superblock).
///
/// # Errors
/// The engine's error if an object store cannot be reached.
fn store_exists(args: &StoreArgs) -> Result<bool> {
    match args.url() {
        Some(url) => {
            let storage = args.storage().map_err(CliError::BadInput)?;
            Ok(Forest::exists_url(url, &storage)?)
        }
        None => Ok(exists(&args.db)),
    }
}

/// Prints what the open of `forest` warned about (a rolled-back commit, an
/// unreadable key check) to standard error, and returns it.
fn warn(forest: Forest) -> Forest {
    for w in forest.warnings() {
        eprintln!("larix: warning: {w}");
    }
    forest
}

/// Opens the store named by `args`, creating it with `filters` if missing.
///
/// # Errors
/// [`CliError::BadInput`] if filter flags are given for an existing store;
/// otherwise as [`open`] and [`new_options`].
fn open_or_create(args: &StoreArgs, filters: &FilterArgs) -> Result<Forest> {
    if !store_exists(args)? {
        let options = new_options(filters, args.key_file.as_deref(), args.command())?;
        return Ok(match args.url() {
            Some(url) => {
                let mut options = options;
                for (key, value) in args
                    .storage()
                    .map_err(CliError::BadInput)?
                    .storage_options()
                {
                    options = options.storage_option(key, value);
                }
                Forest::open_url(url, options)?
            }
            None => Forest::open(&args.db, options)?,
        });
    }
    if filters.any() {
        return Err(CliError::BadInput(format!(
            "{} already holds a store, which keeps the filters and node size it was created with; \
             drop --zstd, --no-zstd, --checksum, --no-checksum and --node-size",
            args.db.display()
        )));
    }
    open(args)
}

/// Runs `f` on the store named by `args`, created with `filters` if
/// missing. If this creates the store and then opening it or `f` fails,
/// what it created goes again: the store's files, and the directory if
/// this made it and it is left empty (see [`Before`]). A retry then starts
/// from where the user was.
///
/// # Errors
/// As [`open_or_create`], or `f`'s error.
pub fn change<T>(
    args: &StoreArgs,
    filters: &FilterArgs,
    f: impl FnOnce(&Forest) -> Result<T>,
) -> Result<T> {
    // A store in an object store is left as it is if the command fails:
    // there is no directory to restore.
    if args.url().is_some() || exists(&args.db) {
        return f(&open_or_create(args, filters)?);
    }
    let before = Before::note(&args.db)?;
    // The forest is closed when the closure returns, before any removal.
    let result = open_or_create(args, filters).and_then(|forest| f(&forest));
    if let Err(e) = &result {
        if let Err(left) = before.restore() {
            return Err(CliError::BadInput(format!(
                "{e}; removing the store this created failed too: {left}"
            )));
        }
    }
    result
}

/// The filters of a new store: zstd (level 1 unless given or turned off),
/// the `command` filter if there is one, encryption if there
/// is a key file, and a checksum unless turned off, in the order the
/// filter rules require.
///
/// # Errors
/// The engine's error for an unreadable or malformed key file.
pub fn filter_stack(
    filters: &FilterArgs,
    key_file: Option<&Path>,
    command: Option<FilterSpec>,
) -> Result<Vec<FilterSpec>> {
    let mut stack = Vec::new();
    if !filters.no_zstd {
        stack.push(FilterSpec::zstd(filters.zstd.unwrap_or(1)));
    }
    stack.extend(command);
    if let Some(path) = key_file {
        stack.push(FilterSpec::encrypt_key_file(path).map_err(larix::Error::from)?);
    }
    if !filters.no_checksum {
        stack.push(FilterSpec::checksum());
    }
    Ok(stack)
}

/// The options of a new store: [`filter_stack`] and the node size.
///
/// # Errors
/// As [`filter_stack`].
pub fn new_options(
    filters: &FilterArgs,
    key_file: Option<&Path>,
    command: Option<FilterSpec>,
) -> Result<Options> {
    let mut options = Options::default().filters(filter_stack(filters, key_file, command)?);
    if let Some(size) = filters.node_size {
        options = options.node_size(size);
    }
    Ok(options)
}

/// The tree called `name`.
///
/// # Errors
/// [`CliError::NoTree`] if there is none.
pub fn tree(forest: &Forest, name: &str) -> Result<Tree> {
    forest
        .tree(name)?
        .ok_or_else(|| CliError::NoTree(name.to_string()))
}

/// The tree called `name`, created empty if missing.
///
/// # Errors
/// The engine's error for an invalid name.
pub fn tree_or_create(forest: &Forest, name: &str) -> Result<Tree> {
    match forest.tree(name)? {
        Some(tree) => Ok(tree),
        None => Ok(forest.create_tree(name)?),
    }
}
