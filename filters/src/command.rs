//! The external command filter: a blob is piped through one Unix command on
//! encode and another on decode (for example `/usr/bin/gzip -c` /
//! `/usr/bin/gzip -dc`).
//!
//! Blob layout: whatever the encode command writes to its standard output.
//!
//! Invariants:
//! - No deadlock whatever the sizes, and no helper thread outlives a call
//!   (see [`child`] for how a run is carried out).
//! - Output is bounded: past the filter's `max_output_len`, or the call's
//!   [`Context::max_len`], the command is killed and
//!   [`FilterError::TooLarge`] is returned (a decompression bomb cannot
//!   exhaust memory).
//! - Time is bounded: a command still running `timeout` after it was
//!   started (by default [`DEFAULT_COMMAND_TIMEOUT`](crate::DEFAULT_COMMAND_TIMEOUT))
//!   is killed with its whole process group, and
//!   [`FilterError::CommandTimeout`] is returned, even if it closed its
//!   standard output and went on running.
//! - Every failure names the program, the direction and the node id; a
//!   non-zero exit also carries the exit status and the last
//!   [`STDERR_TAIL`] bytes of standard error.
//! - The program is run directly (no shell), in a process group of its own.

mod child;

use std::io;
use std::time::Duration;

use crate::{descriptor, Context, Direction, Filter, FilterError};

/// How many trailing bytes of a command's standard error an error keeps.
pub const STDERR_TAIL: usize = 500;

/// Pipes blobs through external commands.
#[derive(Debug, Clone)]
pub(crate) struct CommandFilter {
    encode: Vec<String>,
    decode: Vec<String>,
    max_output_len: usize,
    timeout: Duration,
}

impl CommandFilter {
    /// The filter's name in descriptors.
    pub(crate) const NAME: &'static str = "command";

    /// A filter running `encode` and `decode` (validated non-empty), whose
    /// output may not exceed `max_output_len` bytes and whose commands are
    /// killed `timeout` after they start.
    pub(crate) fn new(
        encode: Vec<String>,
        decode: Vec<String>,
        max_output_len: usize,
        timeout: Duration,
    ) -> Self {
        CommandFilter {
            encode,
            decode,
            max_output_len,
            timeout,
        }
    }

    /// Runs `argv` with `input` on its standard input and returns its
    /// standard output.
    fn run(
        &self,
        ctx: &Context,
        direction: Direction,
        argv: &[String],
        input: &[u8],
    ) -> Result<Vec<u8>, FilterError> {
        let Some((program, args)) = argv.split_first() else {
            return Err(FilterError::EmptyCommand { direction });
        };
        let bounds = child::Bounds {
            max_output_len: self.output_limit(ctx, direction),
            timeout: self.timeout,
        };
        let run = child::run(program, args, input, bounds).map_err(|failure| match failure {
            child::Failure::Spawn(source) => FilterError::CommandSpawn {
                node_id: ctx.node_id,
                program: program.clone(),
                direction,
                source,
            },
            child::Failure::Io(source) => self.io_error(ctx, direction, program, source),
        })?;
        self.judge(ctx, direction, program, run)
    }

    /// The result of a finished run: its output, or why it is refused.
    fn judge(
        &self,
        ctx: &Context,
        direction: Direction,
        program: &str,
        run: child::Run,
    ) -> Result<Vec<u8>, FilterError> {
        if run.timed_out {
            return Err(FilterError::CommandTimeout {
                node_id: ctx.node_id,
                program: program.to_string(),
                direction,
                timeout: self.timeout,
            });
        }
        let limit = self.output_limit(ctx, direction);
        if run.output.len() > limit {
            return Err(FilterError::TooLarge {
                node_id: ctx.node_id,
                filter: Self::NAME,
                len: run.output.len() as u64,
                limit,
            });
        }
        if !run.status.success() {
            return Err(FilterError::CommandFailed {
                node_id: ctx.node_id,
                program: program.to_string(),
                direction,
                status: run.status.to_string(),
                stderr: run.stderr_tail,
            });
        }
        match run.fed {
            // A command that succeeded without reading all of its input is
            // believed, as a shell pipeline would; what it wrote is checked
            // by whatever decodes it next.
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                Err(self.io_error(ctx, direction, program, e))
            }
            _ => Ok(run.output),
        }
    }

    /// The most output accepted: the filter's limit, and on decode also
    /// the call's bound (which concerns decoded bytes only).
    fn output_limit(&self, ctx: &Context, direction: Direction) -> usize {
        match direction {
            Direction::Encode => self.max_output_len,
            Direction::Decode => ctx.bound(self.max_output_len),
        }
    }

    /// A [`FilterError::CommandIo`] for this call.
    fn io_error(
        &self,
        ctx: &Context,
        direction: Direction,
        program: &str,
        source: io::Error,
    ) -> FilterError {
        FilterError::CommandIo {
            node_id: ctx.node_id,
            program: program.to_string(),
            direction,
            source,
        }
    }
}

impl Filter for CommandFilter {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn params(&self) -> String {
        descriptor::command_params(&self.encode, &self.decode)
    }

    fn encode(&self, ctx: &Context, input: &[u8]) -> Result<Vec<u8>, FilterError> {
        self.run(ctx, Direction::Encode, &self.encode, input)
    }

    fn decode(&self, ctx: &Context, input: &[u8]) -> Result<Vec<u8>, FilterError> {
        self.run(ctx, Direction::Decode, &self.decode, input)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::spec::DEFAULT_COMMAND_TIMEOUT;
    use crate::testing::program;

    const CTX: Context = Context::new(11);

    /// An argv whose first element is the absolute path of a system program.
    fn argv(args: &[&str]) -> Vec<String> {
        let mut argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        if let Some(first) = argv.first_mut() {
            if !first.starts_with('/') {
                *first = program(first);
            }
        }
        argv
    }

    fn filter(encode: &[&str], decode: &[&str], max_output_len: usize) -> CommandFilter {
        CommandFilter::new(
            argv(encode),
            argv(decode),
            max_output_len,
            DEFAULT_COMMAND_TIMEOUT,
        )
    }

    fn gzip() -> CommandFilter {
        filter(&["gzip", "-c"], &["gzip", "-dc"], 64 << 20)
    }

    /// Bytes that gzip cannot shrink much: a xorshift stream.
    fn noise(len: usize) -> Vec<u8> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn gzip_round_trips_small_inputs() {
        let f = gzip();
        for input in [&b""[..], b"x", b"hello, gzip"] {
            let blob = f.encode(&CTX, input).unwrap();
            assert_eq!(&blob[..2], &[0x1f, 0x8b], "not a gzip stream");
            assert_eq!(f.decode(&CTX, &blob).unwrap(), input);
        }
    }

    #[test]
    fn gzip_round_trips_4_mib_without_deadlock() {
        // Far larger than a pipe buffer in both directions: only concurrent
        // feeding and reading can finish.
        let input = noise(4 << 20);
        let f = gzip();
        let blob = f.encode(&CTX, &input).unwrap();
        assert!(blob.len() > 4 << 20, "noise should not compress");
        assert_eq!(f.decode(&CTX, &blob).unwrap(), input);
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let f = filter(&["/nonexistent/larix-no-such-program"], &["cat"], 1 << 20);
        let err = f.encode(&CTX, b"data").unwrap_err();
        assert!(matches!(err, FilterError::CommandSpawn { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("larix-no-such-program") && msg.contains("node 11"),
            "{msg}"
        );
    }

    #[test]
    fn failing_program_reports_status_and_stderr() {
        let f = filter(&["cat"], &["sh", "-c", "echo boom >&2; exit 3"], 1 << 20);
        let sh = program("sh");
        // A large input too, so the child exits while we still feed it.
        for input in [b"data".to_vec(), noise(1 << 20)] {
            let err = f.decode(&CTX, &input).unwrap_err();
            match &err {
                FilterError::CommandFailed {
                    program,
                    direction,
                    status,
                    stderr,
                    ..
                } => {
                    assert_eq!(program, &sh);
                    assert_eq!(*direction, Direction::Decode);
                    assert!(status.contains('3'), "{status}");
                    assert_eq!(stderr, "boom");
                }
                other => panic!("unexpected {other}"),
            }
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("`{sh}`"))
                    && msg.contains("exit status: 3")
                    && msg.contains("boom"),
                "{msg}"
            );
        }
    }

    #[test]
    fn gzip_rejects_garbage_with_its_stderr() {
        let err = gzip().decode(&CTX, b"this is not gzip").unwrap_err();
        match err {
            FilterError::CommandFailed {
                program, stderr, ..
            } => {
                assert_eq!(program, self::program("gzip"));
                assert!(!stderr.is_empty());
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn stderr_keeps_only_its_tail() {
        let script = "i=0; while [ $i -lt 300 ]; do echo line-$i >&2; i=$((i+1)); done; exit 1";
        let f = filter(&["sh", "-c", script], &["cat"], 1 << 20);
        match f.encode(&CTX, b"").unwrap_err() {
            FilterError::CommandFailed { stderr, .. } => {
                assert!(stderr.starts_with("..."), "{stderr}");
                assert!(stderr.ends_with("line-299"), "{stderr}");
                assert!(stderr.len() <= STDERR_TAIL + 3, "{}", stderr.len());
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn output_past_the_limit_kills_the_command() {
        // `yes` writes forever: only the limit stops it.
        let f = filter(&["yes"], &["cat"], 100_000);
        let err = f.encode(&CTX, b"").unwrap_err();
        assert!(
            matches!(
                err,
                FilterError::TooLarge {
                    limit: 100_000,
                    len: 100_001,
                    ..
                }
            ),
            "{err}"
        );
    }

    /// Issue 12 item 13: the context's bound, tighter than the filter's
    /// limit, stops the command too.
    #[test]
    fn output_past_the_context_bound_kills_the_command() {
        let f = filter(&["yes"], &["yes"], 1 << 20);
        let err = f.decode(&CTX.with_max_len(4096), b"").unwrap_err();
        assert!(
            matches!(
                err,
                FilterError::TooLarge {
                    limit: 4096,
                    len: 4097,
                    ..
                }
            ),
            "{err}"
        );
        let cat = filter(&["cat"], &["cat"], 1 << 20);
        let ok = cat.decode(&CTX.with_max_len(5), b"12345").unwrap();
        assert_eq!(ok, b"12345");
        // The bound concerns decoded bytes: encoding may produce more.
        let ok = cat.encode(&CTX.with_max_len(1), b"12345").unwrap();
        assert_eq!(ok, b"12345");
    }

    #[test]
    fn program_ignoring_its_input_is_believed() {
        let f = filter(&["echo", "fixed"], &["cat"], 1 << 20);
        assert_eq!(f.encode(&CTX, &noise(1 << 20)).unwrap(), b"fixed\n");
    }

    /// A filter whose encode command is `sh -c script`, killed after 300 ms.
    fn hanging(script: &str) -> CommandFilter {
        CommandFilter::new(
            argv(&["sh", "-c", script]),
            argv(&["cat"]),
            1 << 20,
            Duration::from_millis(300),
        )
    }

    /// Asserts that `f` times out in its encode direction, soon after 300 ms.
    fn assert_times_out(f: &CommandFilter) {
        let start = Instant::now();
        let err = f.encode(&CTX, b"input").unwrap_err();
        let elapsed = start.elapsed();
        assert!(
            matches!(
                &err,
                FilterError::CommandTimeout {
                    node_id: 11,
                    direction: Direction::Encode,
                    timeout,
                    ..
                } if *timeout == Duration::from_millis(300)
            ),
            "{err}"
        );
        assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
        let msg = err.to_string();
        assert!(msg.contains("300ms") && msg.contains("killed"), "{msg}");
    }

    /// Issue 12 item 7: a command that never exits hung the store forever.
    #[test]
    fn command_that_never_exits_times_out() {
        let f = CommandFilter::new(
            argv(&["sleep", "1000"]),
            argv(&["cat"]),
            1 << 20,
            Duration::from_millis(300),
        );
        assert_times_out(&f);
    }

    /// Issue 12 item 7: a command that closed its standard output and kept
    /// running hung the store in `child.wait()`.
    #[test]
    fn command_that_closes_stdout_and_runs_on_times_out() {
        assert_times_out(&hanging("exec >&-; exec 2>&-; sleep 1000"));
        assert_times_out(&hanging("exec >&-; sleep 1000"));
    }

    /// Issue 12 item 7: a command that exits while a background child of
    /// its own keeps standard output open hung the store reading it.
    #[test]
    fn background_grandchild_holding_stdout_times_out() {
        assert_times_out(&hanging("sleep 1000 & echo started"));
    }

    /// Issue 12 item 7: the timed-out command is killed and reaped, not left
    /// running (nor as a zombie).
    #[test]
    fn timed_out_command_is_killed_and_reaped() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!("echo $$ > {}; exec sleep 1000", pid_file.display());
        assert_times_out(&hanging(&script));
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        let proc_dir = std::path::Path::new("/proc").join(pid.trim());
        if std::path::Path::new("/proc/self").exists() {
            assert!(!proc_dir.exists(), "process {} still exists", pid.trim());
        }
    }

    /// Issue 12 item 7: a deadline does not disturb a command that finishes.
    #[test]
    fn timeout_leaves_quick_commands_alone() {
        let f = CommandFilter::new(
            argv(&["gzip", "-c"]),
            argv(&["gzip", "-dc"]),
            64 << 20,
            Duration::from_secs(20),
        );
        let input = noise(1 << 20);
        let blob = f.encode(&CTX, &input).unwrap();
        assert_eq!(f.decode(&CTX, &blob).unwrap(), input);
    }

    #[test]
    fn params_escape_argv() {
        let f = CommandFilter::new(
            argv(&["/bin/sh", "-c", "a b;c=d,(e)\\"]),
            argv(&["/usr/bin/gzip", "-dc"]),
            1,
            DEFAULT_COMMAND_TIMEOUT,
        );
        assert_eq!(
            f.params(),
            "encode=/bin/sh -c a\\ b\\;c\\=d\\,\\(e\\)\\\\;decode=/usr/bin/gzip -dc"
        );
        let split = filter(&["/a", "b"], &["/c"], 1);
        let joined = filter(&["/a b"], &["/c"], 1);
        assert_ne!(split.params(), joined.params());
        let slow = CommandFilter::new(argv(&["/a"]), argv(&["/c"]), 1, Duration::from_secs(1));
        assert_eq!(slow.params(), filter(&["/a"], &["/c"], 1).params());
    }
}
