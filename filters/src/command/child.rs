//! One run of an external command: spawned in its own process group, its
//! standard input fed, its standard error drained, its standard output
//! read, and the whole group killed at a deadline.
//!
//! Invariants:
//! - No deadlock whatever the sizes: standard input is fed by one scoped
//!   thread, standard error drained by a second and standard output read by
//!   a third, while the calling thread only supervises. Every helper thread
//!   ends before [`run`] returns, and the child is always reaped.
//! - Bounded in time without polling: a fourth thread blocks in
//!   `waitid(WEXITED | WNOWAIT)` until the child exits; the calling thread
//!   waits for that exit and for the end of the output on one channel, with
//!   the deadline. At the deadline the child's whole process group is
//!   killed, so a grandchild holding a pipe open (`sh -c 'sleep 1000'`)
//!   dies with it.
//! - No signal reaches a stranger: the child is reaped (`Child::wait`) only
//!   after the last kill, and `WNOWAIT` leaves it a zombie until then, so
//!   its pid, which is also its process group id, cannot have been reused.
//! - Output is bounded: once standard output passes `max_output_len` bytes
//!   the group is killed, and at most one byte past the limit is kept.
//!
//! Limit: a descendant that leaves the process group (`setsid`) and keeps a
//! pipe open is out of reach; the run then lasts until it closes the pipe.

use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::thread::{self, Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};

use super::STDERR_TAIL;

/// The bounds one run is held to.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bounds {
    /// Standard output past this many bytes kills the command.
    pub(super) max_output_len: usize,
    /// Time from spawning after which the command is killed.
    pub(super) timeout: Duration,
}

/// How a run that could talk to its child ended.
pub(super) struct Run {
    /// Standard output, cut one byte past the limit.
    pub(super) output: Vec<u8>,
    /// The exit status.
    pub(super) status: ExitStatus,
    /// How feeding standard input ended.
    pub(super) fed: io::Result<()>,
    /// The end of standard error, lossily decoded and trimmed.
    pub(super) stderr_tail: String,
    /// Whether the deadline passed and the command was killed.
    pub(super) timed_out: bool,
}

/// Why a run has no [`Run`] to show.
#[derive(Debug)]
pub(super) enum Failure {
    /// The program could not be started.
    Spawn(io::Error),
    /// Talking to the started program failed.
    Io(io::Error),
}

/// Runs `program` with `args`, `input` on its standard input, within
/// `bounds`; the child is reaped whatever happens.
pub(super) fn run(
    program: &str,
    args: &[String],
    input: &[u8],
    bounds: Bounds,
) -> Result<Run, Failure> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(Failure::Spawn)?;
    let deadline = Instant::now().checked_add(bounds.timeout);
    let talked = match (child.stdin.take(), child.stdout.take(), child.stderr.take()) {
        (Some(stdin), Some(stdout), Some(stderr)) => {
            let pipes = Pipes {
                stdin,
                stdout,
                stderr,
            };
            talk(&mut child, pipes, input, bounds.max_output_len, deadline)
        }
        _ => Err(io::Error::other("the child's pipes were not created")),
    };
    let talked = talked.inspect_err(|_| kill(&mut child));
    let status = child.wait();
    let talked = talked.map_err(Failure::Io)?;
    Ok(Run {
        output: talked.output,
        status: status.map_err(Failure::Io)?,
        fed: talked.fed,
        stderr_tail: talked.stderr_tail,
        timed_out: talked.timed_out,
    })
}

/// The child's three pipes.
struct Pipes {
    stdin: ChildStdin,
    stdout: ChildStdout,
    stderr: ChildStderr,
}

/// What the helper threads brought back.
struct Talk {
    output: Vec<u8>,
    fed: io::Result<()>,
    stderr_tail: String,
    timed_out: bool,
}

/// What the supervising thread hears about.
enum Event {
    /// Standard output ended (or passed the limit, or failed).
    Output(io::Result<Vec<u8>>),
    /// The child exited (it is not reaped yet).
    Exited,
}

/// Starts the helper threads and supervises the child until it has exited
/// and its output has ended. On success every helper has finished and the
/// child awaits reaping; on error the caller must kill and reap it.
fn talk(
    child: &mut Child,
    pipes: Pipes,
    input: &[u8],
    max_output_len: usize,
    deadline: Option<Instant>,
) -> io::Result<Talk> {
    let pid = Pid::from_child(child);
    let (events_tx, events) = crossbeam_channel::unbounded();
    thread::scope(|scope| {
        let helpers = match start_helpers(scope, pid, pipes, input, max_output_len, events_tx) {
            Ok(helpers) => helpers,
            Err(e) => {
                // Killing the group ends the helpers already started.
                kill(child);
                return Err(e);
            }
        };
        let (output, timed_out) = supervise(child, &events, max_output_len, deadline);
        let fed = helpers
            .feeder
            .join()
            .unwrap_or_else(|_| Err(helper_panicked()));
        let tail = helpers.drainer.join().map_err(|_| helper_panicked());
        Ok(Talk {
            output: output?,
            fed,
            stderr_tail: tail??,
            timed_out,
        })
    })
}

/// The helper threads whose results come back through `join`.
struct Helpers<'scope> {
    feeder: ScopedJoinHandle<'scope, io::Result<()>>,
    drainer: ScopedJoinHandle<'scope, io::Result<String>>,
}

/// Starts the exit watcher, the output reader, the feeder and the drainer.
fn start_helpers<'scope>(
    scope: &'scope Scope<'scope, '_>,
    pid: Pid,
    pipes: Pipes,
    input: &'scope [u8],
    max_output_len: usize,
    events: Sender<Event>,
) -> io::Result<Helpers<'scope>> {
    let Pipes {
        stdin,
        stdout,
        stderr,
    } = pipes;
    let exit_events = events.clone();
    spawn(scope, "larix-command-wait", move || {
        watch_exit(pid, &exit_events)
    })?;
    spawn(scope, "larix-command-stdout", move || {
        let _ = events.send(Event::Output(read_output(stdout, max_output_len)));
    })?;
    Ok(Helpers {
        feeder: spawn(scope, "larix-command-stdin", move || feed(stdin, input))?,
        drainer: spawn(scope, "larix-command-stderr", move || stderr_tail(stderr))?,
    })
}

/// Starts a named scoped thread.
fn spawn<'scope, T: Send + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    name: &str,
    f: impl FnOnce() -> T + Send + 'scope,
) -> io::Result<ScopedJoinHandle<'scope, T>> {
    thread::Builder::new()
        .name(name.to_string())
        .spawn_scoped(scope, f)
}

/// Waits until the child has exited and its output has ended, killing its
/// process group at the deadline or as soon as the output passes
/// `max_output_len`. Returns the output and whether the deadline passed.
fn supervise(
    child: &mut Child,
    events: &Receiver<Event>,
    max_output_len: usize,
    deadline: Option<Instant>,
) -> (io::Result<Vec<u8>>, bool) {
    let mut output = None;
    let mut exited = false;
    let mut timed_out = false;
    while output.is_none() || !exited {
        let event = match next_event(events, deadline.filter(|_| !timed_out)) {
            Next::Event(event) => event,
            Next::Deadline => {
                kill(child);
                timed_out = true;
                continue;
            }
            Next::Closed => {
                // A helper died without reporting: make sure `wait` returns.
                kill(child);
                break;
            }
        };
        match event {
            Event::Exited => exited = true,
            Event::Output(read) => {
                if read.as_ref().map_or(true, |o| o.len() > max_output_len) {
                    // Stop a runaway or broken command; the feeder sees EPIPE.
                    kill(child);
                }
                output = Some(read);
            }
        }
    }
    (output.unwrap_or_else(|| Err(helper_panicked())), timed_out)
}

/// What waiting on the event channel gave.
enum Next {
    Event(Event),
    Deadline,
    Closed,
}

/// The next event, or the deadline (if any) passing first.
fn next_event(events: &Receiver<Event>, deadline: Option<Instant>) -> Next {
    let got = match deadline {
        Some(deadline) => events.recv_deadline(deadline),
        None => events.recv().map_err(|_| RecvTimeoutError::Disconnected),
    };
    match got {
        Ok(event) => Next::Event(event),
        Err(RecvTimeoutError::Timeout) => Next::Deadline,
        Err(RecvTimeoutError::Disconnected) => Next::Closed,
    }
}

/// Blocks until the child `pid` has exited, without reaping it, then says so.
fn watch_exit(pid: Pid, events: &Sender<Event>) {
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOWAIT;
    // Any error (the child reaped behind our back) also means: stop waiting.
    let _ = rustix::io::retry_on_intr(|| rustix::process::waitid(WaitId::Pid(pid), options));
    let _ = events.send(Event::Exited);
}

/// Reads standard output to its end or one byte past `max_output_len`.
fn read_output(stdout: ChildStdout, max_output_len: usize) -> io::Result<Vec<u8>> {
    let mut output = Vec::new();
    let limit = u64::try_from(max_output_len).map_or(u64::MAX, |n| n.saturating_add(1));
    stdout.take(limit).read_to_end(&mut output)?;
    Ok(output)
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

/// Kills the child's process group, and the child itself should it have
/// left the group. Safe until the child is reaped (see the module invariants).
fn kill(child: &mut Child) {
    let _ = rustix::process::kill_process_group(Pid::from_child(child), Signal::KILL);
    let _ = child.kill();
}

/// The error reported when a helper thread panicked (it never should).
fn helper_panicked() -> io::Error {
    io::Error::other("a command filter helper thread panicked")
}
