//! The `larix` command line: argument parsing, one module per group of
//! commands, and the formats and tables they print.
//!
//! Invariants:
//! - Commands write results to the `out` they are given (standard output)
//!   and progress bars to standard error; nothing else prints.
//! - Every failure is a [`CliError`] whose message fits on one line; no
//!   command panics on user input or on bytes read from disk.
//! - A command that changes data commits before it returns, and only if it
//!   succeeded, so a failed command leaves the store as it was.

pub mod args;
mod bench;
mod cleanup;
mod data;
mod demo;
mod dump;
mod error;
mod format;
mod progress;
mod report;
mod rng;
mod store;
mod table;
mod transfer;
pub use error::CliError;

use args::{Cli, Command};
use std::io::Write;

/// How a command that ran to the end went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// All good.
    Success,
    /// It ran, but found problems (`check`, or a demo or bench whose
    /// results do not add up): exit status 3.
    Problems,
}

/// Runs the command `cli` names, writing its results to `out`.
///
/// # Errors
/// Whatever stopped the command, as a [`CliError`].
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<Status, CliError> {
    match &cli.command {
        Command::Demo(a) => demo::demo(a, out),
        Command::Bench(a) => bench::bench(a, out),
        Command::Put(a) => data::put(a),
        Command::Get(a) => data::get(a, out),
        Command::Del(a) => data::del(a),
        Command::Scan(a) => data::scan(a, out),
        Command::Count(a) => data::count(a, out),
        Command::Trees(a) => data::trees(a, out),
        Command::Clone(a) => data::clone(a),
        Command::Diff(a) => data::diff(a, out),
        Command::Drop(a) => data::drop_tree(a),
        Command::Import(a) => transfer::import(a, out),
        Command::Export(a) => transfer::export(a, out),
        Command::Check(a) => data::check(a, out),
        Command::Stats(a) => data::stats(a, out),
        Command::Dump(a) => dump::dump(a, out),
        Command::Compact(a) => data::compact(a, out),
    }
}
