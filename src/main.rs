//! `larix`: the command-line interface to a Larix store — data commands,
//! a demo and a benchmark (see `larix --help`, and `src/cli/`).
//!
//! Exit status: 0 on success, 1 on an error (one line on standard error,
//! `larix: <message>`), 2 on a usage error, 3 when `check` (or a demo or
//! bench) finds problems.
#![forbid(unsafe_code)]

mod cli;

use clap::error::ErrorKind;
use clap::Parser;
use cli::args::Cli;
use cli::Status;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    // A bug must still end in one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("larix: internal error: {}{at}", one_line(&what));
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    let mut out = BufWriter::new(io::stdout().lock());
    let result = cli::run(&cli, &mut out).and_then(|status| {
        out.flush()?;
        Ok(status)
    });
    match result {
        Ok(Status::Success) => ExitCode::SUCCESS,
        Ok(Status::Problems) => ExitCode::from(3),
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            // Show what was written before the failure, then the error.
            let _ = out.flush();
            eprintln!("larix: {}", one_line(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}

/// Prints what clap has to say: help and version as they are, a usage
/// error as one line.
fn usage_error(e: &clap::Error) -> ExitCode {
    let code = ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
    if !e.use_stderr() || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let _ = e.print();
        return code;
    }
    // The first paragraph of clap's message, without "error: ", the tips
    // and the usage block.
    let text = e.render().to_string();
    let first = text.split("\n\n").next().unwrap_or_default();
    let message = first.trim().trim_start_matches("error:").trim();
    eprintln!("larix: {} (see --help)", one_line(message));
    code
}

/// `text` on one line: its lines trimmed and joined with `; `, or with a
/// space after a line ending in a colon.
fn one_line(text: &str) -> String {
    let mut joined = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !joined.is_empty() {
            joined.push_str(if joined.ends_with(':') { " " } else { "; " });
        }
        joined.push_str(line);
    }
    joined
}
