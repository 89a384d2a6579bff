//! Processor time from `/proc`, for the examples and the peer comparison
//! (which includes this file by path: it is a crate of its own).

/// The processor time, user and system, of `/proc/<of>` in milliseconds
/// (`self` for the process, `thread-self` for the calling thread), at the
/// kernel's usual 100 ticks a second; 0 where `/proc` does not tell.
pub fn cpu_ms(of: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{of}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: f64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<f64>().ok())
        .sum();
    ticks * 10.0
}
