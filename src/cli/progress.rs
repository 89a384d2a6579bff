//! Progress bars on standard error. indicatif hides them when standard
//! error is not a terminal, so scripts and tests see clean output.

use indicatif::{ProgressBar, ProgressStyle};
use std::time::Duration;

/// A bar for a phase of `len` steps, labelled `phase`.
pub fn bar(phase: &str, len: u64) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{prefix:>12} [{bar:30}] {human_pos}/{human_len} {per_sec:0} eta {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(len)
        .with_style(style)
        .with_prefix(phase.to_string())
}

/// A bar for a phase that reads `len` bytes, labelled `phase`.
pub fn byte_bar(phase: &str, len: u64) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(len)
        .with_style(style)
        .with_prefix(phase.to_string())
}

/// A spinner for a phase whose length is unknown (a walk, a commit); it
/// counts what [`ProgressBar::inc`] reports and ticks on its own.
pub fn spinner(phase: &str) -> ProgressBar {
    let style = ProgressStyle::with_template("{prefix:>12} {spinner} {human_pos} {msg} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let pb = ProgressBar::new_spinner()
        .with_style(style)
        .with_prefix(phase.to_string());
    pb.enable_steady_tick(Duration::from_millis(100));
    pb
}
