//! The external command filter: a blob is piped through one Unix command on
//! encode and another on decode (for example `gzip -c` / `gzip -dc`).
//!
//! Blob layout: whatever the encode command writes to its standard output.
//!
//! Invariants:
//! - No deadlock whatever the sizes: standard input is fed from its own
//!   scoped thread and standard error is drained by another, while the
//!   calling thread reads standard output. Both threads end before
//!   `encode`/`decode` returns, and the child is always waited for.
//! - Output is bounded: past the filter's `max_output_len` the child is
//!   killed and [`FilterError::TooLarge`] is returned (a decompression bomb
//!   cannot exhaust memory).
//! - Every failure names the program, the direction and the node id; a
//!   non-zero exit also carries the exit status and the last
//!   [`STDERR_TAIL`] bytes of standard error.
//! - The program is run directly (no shell), `argv[0]` looked up in `PATH`.

use std::io::{self, Read, Write};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::thread;

use crate::{Context, Direction, Filter, FilterError};

/// How many trailing bytes of a command's standard error an error keeps.
pub const STDERR_TAIL: usize = 500;

/// Pipes blobs through external commands.
#[derive(Debug, Clone)]
pub(crate) struct CommandFilter {
    encode: Vec<String>,
    decode: Vec<String>,
    max_output_len: usize,
}

impl CommandFilter {
    /// The filter's name in descriptors.
    pub(crate) const NAME: &'static str = "command";

    /// A filter running `encode` and `decode` (validated non-empty), whose
    /// output may not exceed `max_output_len` bytes.
    pub(crate) fn new(encode: Vec<String>, decode: Vec<String>, max_output_len: usize) -> Self {
        CommandFilter {
            encode,
            decode,
            max_output_len,
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
        let io_err = |source| FilterError::CommandIo {
            node_id: ctx.node_id,
            program: program.clone(),
            direction,
            source,
        };
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| FilterError::CommandSpawn {
                node_id: ctx.node_id,
                program: program.clone(),
                direction,
                source,
            })?;
        let run = match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
            (Some(stdin), Some(stdout), Some(stderr)) => talk(
                &mut child,
                input,
                stdin,
                stdout,
                stderr,
                self.max_output_len,
            ),
            _ => Err(io::Error::other("the child's pipes were not created")),
        };
        let run = match run {
            Ok(run) => run,
            Err(e) => {
                reap(&mut child);
                return Err(io_err(e));
            }
        };
        if run.output.len() > self.max_output_len {
            return Err(FilterError::TooLarge {
                node_id: ctx.node_id,
                filter: Self::NAME,
                len: run.output.len() as u64,
                limit: self.max_output_len,
            });
        }
        if !run.status.success() {
            return Err(FilterError::CommandFailed {
                node_id: ctx.node_id,
                program: program.clone(),
                direction,
                status: run.status.to_string(),
                stderr: run.stderr_tail,
            });
        }
        match run.fed {
            // A command that succeeded without reading all of its input is
            // believed, as a shell pipeline would; what it wrote is checked
            // by whatever decodes it next.
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(io_err(e)),
            _ => Ok(run.output),
        }
    }
}

/// What one run of a command produced.
struct Run {
    /// Standard output, cut one byte past the limit.
    output: Vec<u8>,
    /// The exit status.
    status: std::process::ExitStatus,
    /// How feeding standard input ended.
    fed: io::Result<()>,
    /// The end of standard error, lossily decoded and trimmed.
    stderr_tail: String,
}

/// Feeds `input` and drains standard error on scoped threads while reading
/// standard output here, then waits for the child. On error the caller must
/// still reap the child.
fn talk(
    child: &mut Child,
    input: &[u8],
    stdin: ChildStdin,
    stdout: ChildStdout,
    stderr: ChildStderr,
    max_output_len: usize,
) -> io::Result<Run> {
    thread::scope(|scope| {
        let feeder = thread::Builder::new()
            .name("larix-command-stdin".into())
            .spawn_scoped(scope, move || feed(stdin, input))?;
        let drainer = thread::Builder::new()
            .name("larix-command-stderr".into())
            .spawn_scoped(scope, move || stderr_tail(stderr));
        let drainer = match drainer {
            Ok(drainer) => drainer,
            Err(e) => {
                // Killing the child breaks the pipe the feeder writes to.
                reap(child);
                return Err(e);
            }
        };
        let mut output = Vec::new();
        let read = stdout
            .take(max_output_len as u64 + 1)
            .read_to_end(&mut output);
        if read.is_err() || output.len() > max_output_len {
            // Stop a runaway or broken command; the feeder then sees EPIPE.
            let _ = child.kill();
        }
        let status = child.wait();
        let fed = feeder.join().unwrap_or_else(|_| Err(helper_panicked()));
        let tail = drainer.join().map_err(|_| helper_panicked());
        read?;
        Ok(Run {
            output,
            status: status?,
            fed,
            stderr_tail: tail??,
        })
    })
}

/// Writes all of `input` to the child, then closes its standard input.
fn feed(mut stdin: ChildStdin, input: &[u8]) -> io::Result<()> {
    stdin.write_all(input)?;
    stdin.flush()
}

/// Reads standard error to its end, keeping only its last [`STDERR_TAIL`]
/// bytes, marked with a leading `...` when earlier bytes were dropped.
fn stderr_tail(mut stderr: ChildStderr) -> io::Result<String> {
    let mut tail = Vec::with_capacity(4 * STDERR_TAIL);
    let mut chunk = [0u8; 4096];
    let mut dropped = false;
    loop {
        let n = match stderr.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        tail.extend_from_slice(&chunk[..n]);
        if tail.len() > 2 * STDERR_TAIL {
            tail.drain(..tail.len() - STDERR_TAIL);
            dropped = true;
        }
    }
    if tail.len() > STDERR_TAIL {
        tail.drain(..tail.len() - STDERR_TAIL);
        dropped = true;
    }
    let text = String::from_utf8_lossy(&tail);
    let text = text.trim();
    Ok(if dropped {
        format!("...{text}")
    } else {
        text.to_string()
    })
}

/// Kills and waits for a child whose run went wrong, so no zombie is left.
fn reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The error reported when a helper thread panicked (it never should).
fn helper_panicked() -> io::Error {
    io::Error::other("a command filter helper thread panicked")
}

/// Escapes one argv element for the descriptor so that distinct argvs give
/// distinct text: `\`, space, `,`, `;`, `=`, `(` and `)` get a backslash,
/// control characters become `\u{..}`.
fn escape_arg(arg: &str) -> String {
    let mut out = String::with_capacity(arg.len());
    for c in arg.chars() {
        match c {
            '\\' | ' ' | ',' | ';' | '=' | '(' | ')' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out
}

/// The descriptor text of one argv: escaped elements joined by spaces.
fn describe_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|a| escape_arg(a))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Filter for CommandFilter {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn params(&self) -> String {
        format!(
            "encode={};decode={}",
            describe_argv(&self.encode),
            describe_argv(&self.decode)
        )
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
    use super::*;

    const CTX: Context = Context { node_id: 11 };

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    fn gzip() -> CommandFilter {
        CommandFilter::new(argv(&["gzip", "-c"]), argv(&["gzip", "-dc"]), 64 << 20)
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
        let f = CommandFilter::new(argv(&["larix-no-such-program"]), argv(&["cat"]), 1 << 20);
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
        let failing = argv(&["sh", "-c", "echo boom >&2; exit 3"]);
        let f = CommandFilter::new(argv(&["cat"]), failing, 1 << 20);
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
                    assert_eq!(program, "sh");
                    assert_eq!(*direction, Direction::Decode);
                    assert!(status.contains('3'), "{status}");
                    assert_eq!(stderr, "boom");
                }
                other => panic!("unexpected {other}"),
            }
            let msg = err.to_string();
            assert!(
                msg.contains("`sh`") && msg.contains("exit status: 3") && msg.contains("boom"),
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
                assert_eq!(program, "gzip");
                assert!(!stderr.is_empty());
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn stderr_keeps_only_its_tail() {
        let script = "i=0; while [ $i -lt 300 ]; do echo line-$i >&2; i=$((i+1)); done; exit 1";
        let f = CommandFilter::new(argv(&["sh", "-c", script]), argv(&["cat"]), 1 << 20);
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
        let f = CommandFilter::new(argv(&["yes"]), argv(&["cat"]), 100_000);
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

    #[test]
    fn program_ignoring_its_input_is_believed() {
        let f = CommandFilter::new(argv(&["echo", "fixed"]), argv(&["cat"]), 1 << 20);
        assert_eq!(f.encode(&CTX, &noise(1 << 20)).unwrap(), b"fixed\n");
    }

    #[test]
    fn params_escape_argv() {
        let f = CommandFilter::new(
            argv(&["sh", "-c", "a b;c=d,(e)\\"]),
            argv(&["gzip", "-dc"]),
            1,
        );
        assert_eq!(
            f.params(),
            "encode=sh -c a\\ b\\;c\\=d\\,\\(e\\)\\\\;decode=gzip -dc"
        );
        assert_eq!(gzip().params(), "encode=gzip -c;decode=gzip -dc");
        let split = CommandFilter::new(argv(&["a", "b"]), argv(&["c"]), 1);
        let joined = CommandFilter::new(argv(&["a b"]), argv(&["c"]), 1);
        assert_ne!(split.params(), joined.params());
    }
}
