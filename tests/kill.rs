//! Process kill: a child process commits in a loop and is killed with
//! SIGKILL at a random moment; the store must then hold exactly one
//! committed state, no older than the last commit the child reported, and
//! check clean.
//!
//! The child is this test binary run again with `LARIX_KILL_CHILD` set to
//! the store directory (or its s3:// URL, with `LARIX_KILL_ENDPOINT` the
//! object store's address). Rounds: 50 on disk and 12 on S3, or
//! `LARIX_KILL_ROUNDS`. With `LARIX_KILL_BATCHES` set, the child writes
//! each state as one batch of inline values (`Tree::insert_batch`), which
//! the write buffer holds across the commit until the next state's first
//! removal applies it.

#[cfg(feature = "s3")]
#[path = "support/moto.rs"]
mod moto;

use larix::{Forest, Options};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const KEYS: u64 = 300;

fn options() -> Options {
    Options::default()
        .node_size(512)
        .cache_bytes(64 << 10)
        .workers(2)
        .segment_bytes(256 << 10)
        // Room for a batch of `state(c, true)` (the default, a sixteenth
        // of the cache, holds none).
        .write_buffer_bytes(256 << 10)
}

/// The entries of the tree after commit `c`: which keys exist and their
/// values depend on `c`, so a mix of two commits is always detected. For
/// `batches`, twice the keys (so a state is a batch the write buffer
/// holds) and every value inline.
fn state(c: u64, batches: bool) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let keys = if batches { 2 * KEYS } else { KEYS };
    (0..keys)
        .filter(|k| !(k * 7 + c).is_multiple_of(5))
        .map(|k| {
            let key = format!("key-{k:05}").into_bytes();
            let mut value = c.to_le_bytes().to_vec();
            // Every 50th value is too large for a leaf: stored out of line.
            let len = if k.is_multiple_of(50) && !batches {
                300 + k
            } else {
                k % 40
            };
            value.extend(std::iter::repeat_n(b'v', len as usize));
            (key, value)
        })
        .collect()
}

/// The commit a store holds: `None` if it has no tree yet.
fn read_commit(forest: &Forest, batches: bool) -> Option<u64> {
    let tree = forest.tree("t").unwrap()?;
    let c = match tree.get(b"commit").unwrap() {
        Some(v) => u64::from_le_bytes(v.try_into().expect("8-byte commit number")),
        None => return Some(0),
    };
    let mut entries: BTreeMap<Vec<u8>, Vec<u8>> =
        tree.range(..).unwrap().map(|e| e.unwrap()).collect();
    entries.remove(b"commit".as_slice());
    assert_eq!(
        entries,
        state(c, batches),
        "the store mixes commits around {c}"
    );
    let snap = forest.tree("snapshot").unwrap().expect("snapshot tree");
    let s = u64::from_le_bytes(snap.get(b"commit").unwrap().unwrap().try_into().unwrap());
    assert_eq!(s, c - c % 10, "snapshot of commit {c}");
    Some(c)
}

/// Opens the store at `target`: a directory, or an s3:// URL of the
/// object store at `LARIX_KILL_ENDPOINT`.
fn open(target: &str) -> Forest {
    if !target.starts_with("s3://") {
        return Forest::open(target, options()).unwrap();
    }
    let endpoint = std::env::var("LARIX_KILL_ENDPOINT").expect("the object store's address");
    open_url(target, &endpoint)
}

/// Opens the store at s3:// URL `target` of the object store at
/// `endpoint`.
fn open_url(target: &str, endpoint: &str) -> Forest {
    let options = options()
        .storage_option("aws_endpoint", endpoint)
        .storage_option("aws_allow_http", "true")
        .storage_option("aws_access_key_id", "kill")
        .storage_option("aws_secret_access_key", "kill")
        .storage_option("aws_region", "us-east-1");
    Forest::open_url(target, options).unwrap()
}

/// The child: commits forever from the state it finds, printing each
/// commit number once it is durable.
fn child(target: &str) {
    let batches = std::env::var_os("LARIX_KILL_BATCHES").is_some();
    let forest = open(target);
    let mut c = read_commit(&forest, batches).unwrap_or(0);
    let tree = match forest.tree("t").unwrap() {
        Some(t) => t,
        None => forest.create_tree("t").unwrap(),
    };
    loop {
        c += 1;
        let (old, mut new) = (state(c - 1, batches), state(c, batches));
        for k in old.keys().filter(|k| !new.contains_key(*k)) {
            tree.remove(k).unwrap();
        }
        if batches {
            new.insert(b"commit".to_vec(), c.to_le_bytes().to_vec());
            tree.insert_batch(&new).unwrap();
        } else {
            for (k, v) in &new {
                tree.insert(k, v).unwrap();
            }
            tree.insert(b"commit", &c.to_le_bytes()).unwrap();
        }
        if c.is_multiple_of(10) {
            if forest.tree("snapshot").unwrap().is_some() {
                forest.remove_tree("snapshot").unwrap();
            }
            forest.clone_tree("t", "snapshot").unwrap();
        } else if c == 1 {
            forest.clone_tree("t", "snapshot").unwrap();
            forest
                .tree("snapshot")
                .unwrap()
                .unwrap()
                .insert(b"commit", &0u64.to_le_bytes())
                .unwrap();
        }
        forest.commit().unwrap();
        println!("committed {c}");
    }
}

#[test]
fn killed_writers_leave_exactly_one_committed_state() {
    kill_on_disk("killed_writers_leave_exactly_one_committed_state", false);
}

/// The same with each state written as one batch that the write buffer
/// holds across its commit.
#[test]
fn killed_batch_writers_leave_exactly_one_committed_state() {
    kill_on_disk(
        "killed_batch_writers_leave_exactly_one_committed_state",
        true,
    );
}

/// The test `test` on a store in a temporary directory: the child's part
/// if this process is a child, else the rounds (`batches` as for
/// [`state`]).
fn kill_on_disk(test: &str, batches: bool) {
    if let Ok(target) = std::env::var("LARIX_KILL_CHILD") {
        child(&target);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let target = path.to_str().expect("a UTF-8 temporary path");
    kill_rounds(test, target, rounds(50), None, batches);
}

/// The same on a store in S3 (moto), whose writer is killed between and
/// during its uploads.
#[cfg(feature = "s3")]
#[test]
fn killed_writers_on_s3_leave_exactly_one_committed_state() {
    if let Ok(target) = std::env::var("LARIX_KILL_CHILD") {
        child(&target);
        return;
    }
    let Some(moto) = moto::Moto::start() else {
        return;
    };
    moto.create_bucket("kill");
    kill_rounds(
        "killed_writers_on_s3_leave_exactly_one_committed_state",
        "s3://kill/store",
        rounds(12),
        Some(moto.endpoint()),
        false,
    );
}

fn rounds(default: u64) -> u64 {
    std::env::var("LARIX_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `rounds` children of the test `test` on the store at `target`,
/// killing each at a random moment and checking what it left; `endpoint`
/// is the object store's address, for an s3:// target; `batches` as for
/// [`state`].
fn kill_rounds(test: &str, target: &str, rounds: u64, endpoint: Option<String>, batches: bool) {
    let endpoint = endpoint.unwrap_or_default();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut last_reported = 0;
    let mut kills_mid_run = 0;
    for round in 0..rounds {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = Duration::from_millis(20 + rng % 300);
        let mut command = Command::new(std::env::current_exe().unwrap());
        if batches {
            command.env("LARIX_KILL_BATCHES", "1");
        }
        let mut child = command
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env("LARIX_KILL_CHILD", target)
            .env("LARIX_KILL_ENDPOINT", &endpoint)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(c) = line.strip_prefix("committed ") {
                    let _ = tx.send(c.parse::<u64>().unwrap());
                }
            }
        });
        let start = Instant::now();
        while start.elapsed() < delay {
            while let Ok(c) = rx.try_recv() {
                last_reported = last_reported.max(c);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        reader.join().unwrap();
        while let Ok(c) = rx.try_recv() {
            last_reported = last_reported.max(c);
        }
        if status.code().is_none() {
            kills_mid_run += 1;
        }
        let forest = if endpoint.is_empty() {
            open(target)
        } else {
            open_url(target, &endpoint)
        };
        let found = read_commit(&forest, batches).unwrap_or(0);
        assert!(
            found >= last_reported,
            "round {round}: store holds commit {found}, child reported {last_reported}"
        );
        let report = forest.check().unwrap();
        assert!(report.is_clean(), "round {round}: {report}");
        last_reported = found;
    }
    eprintln!("{rounds} rounds, {kills_mid_run} kills mid-run, last commit {last_reported}");
    assert!(last_reported > 0, "no child ever committed");
    assert!(kills_mid_run > 0, "no child was killed while running");
}
