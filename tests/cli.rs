//! The `larix` binary, run as a user would: every command's output and exit
//! status, and the bad inputs that must end in one line on standard error
//! (a missing store, tree or key, bad hex, a wrong key file, a damaged
//! file, a bad argument) rather than a panic.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use tempfile::TempDir;

/// Runs `larix` with `args`, and `stdin` as its standard input.
fn run_with_input(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_larix"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the larix binary runs");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin)
        .expect("stdin accepts the input");
    child.wait_with_output().expect("larix finishes")
}

fn run(args: &[&str]) -> Output {
    run_with_input(args, b"")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `larix` with `args`, expects success, and returns standard output.
fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "larix {args:?} failed with {:?}: {}",
        out.status.code(),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs `larix` with `args`, expects exit status `code` and exactly one
/// line on standard error, and returns that line.
fn fails_with(code: i32, args: &[&str]) -> String {
    let out = run(args);
    assert_one_line_error(&out, code, args)
}

fn fails(args: &[&str]) -> String {
    fails_with(1, args)
}

fn assert_one_line_error(out: &Output, code: i32, args: &[&str]) -> String {
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "larix {args:?}: stdout {:?}, stderr {err:?}",
        text(&out.stdout)
    );
    assert_eq!(
        err.lines().count(),
        1,
        "larix {args:?}: not one line: {err:?}"
    );
    assert!(err.starts_with("larix: "), "{err:?}");
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "{err:?}"
    );
    err
}

/// A temporary directory and the path of a store inside it.
struct Scratch {
    dir: TempDir,
    db: String,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = dir.path().join("db").to_string_lossy().into_owned();
        Scratch { dir, db }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn file(&self, name: &str, contents: &[u8]) -> String {
        let path = self.path(name);
        fs::write(&path, contents).expect("a file in the scratch directory");
        path.to_string_lossy().into_owned()
    }

    /// `larix check` on the store: clean.
    fn assert_clean(&self) {
        let report = ok(&["check", "--db", &self.db]);
        assert!(report.contains(": 0 problems"), "{report}");
    }
}

/// A store with tree `main` holding `a`, `ab`, `abc`, `b`, `c`.
fn sample() -> Scratch {
    let s = Scratch::new();
    for k in ["a", "ab", "abc", "b", "c"] {
        ok(&["put", "--db", &s.db, k, &format!("value of {k}")]);
    }
    s
}

const SUBCOMMANDS: [&str; 17] = [
    "demo", "bench", "put", "get", "del", "scan", "count", "trees", "clone", "diff", "drop",
    "import", "export", "check", "stats", "dump", "compact",
];

#[test]
fn every_command_has_help_with_an_example() {
    assert!(ok(&["--help"]).contains("Example"));
    for cmd in SUBCOMMANDS {
        let help = ok(&[cmd, "--help"]);
        assert!(help.contains("Example"), "larix {cmd} --help: {help}");
        assert!(help.contains("Usage: larix"), "larix {cmd} --help: {help}");
    }
}

#[test]
fn no_arguments_print_help_and_exit_2() {
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("Usage"));
}

#[test]
fn put_get_del_round_trip() {
    let s = sample();
    assert_eq!(ok(&["get", "--db", &s.db, "ab"]), "value of ab\n");
    ok(&["put", "--db", &s.db, "ab", "replaced"]);
    assert_eq!(ok(&["get", "--db", &s.db, "ab"]), "replaced\n");
    ok(&["del", "--db", &s.db, "ab"]);
    let err = fails(&["get", "--db", &s.db, "ab"]);
    assert!(
        err.contains("key \"ab\" not found in tree \"main\""),
        "{err}"
    );
    let err = fails(&["del", "--db", &s.db, "ab"]);
    assert!(err.contains("not found"), "{err}");
    // The empty key and the empty value are ordinary.
    ok(&["put", "--db", &s.db, "", ""]);
    assert_eq!(ok(&["get", "--db", &s.db, ""]), "\n");
    assert_eq!(ok(&["count", "--db", &s.db]), "5\n");
    s.assert_clean();
}

#[test]
fn hex_keys_and_values_and_escaped_text() {
    let s = Scratch::new();
    ok(&["put", "--db", &s.db, "--hex", "ff00", "0a09"]);
    assert_eq!(ok(&["get", "--db", &s.db, "--hex", "FF00"]), "0a09\n");
    assert_eq!(ok(&["scan", "--db", &s.db]), "\\xff\\u{0}\t\\n\\t\n");
    assert_eq!(ok(&["scan", "--db", &s.db, "--hex"]), "ff00\t0a09\n");
    let err = fails(&["put", "--db", &s.db, "--hex", "zz", "00"]);
    assert!(err.contains("invalid hex in key"), "{err}");
    let err = fails(&["get", "--db", &s.db, "--hex", "abc"]);
    assert!(err.contains("odd number of digits"), "{err}");
    let err = fails(&["scan", "--db", &s.db, "--hex", "--prefix", "xy"]);
    assert!(err.contains("--prefix"), "{err}");
    s.assert_clean();
}

#[test]
fn scan_and_count_select_ranges() {
    let s = sample();
    let keys = |out: String| -> Vec<String> {
        out.lines()
            .map(|l| l.split('\t').next().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(
        keys(ok(&["scan", "--db", &s.db])),
        ["a", "ab", "abc", "b", "c"]
    );
    assert_eq!(
        ok(&["scan", "--db", &s.db, "--prefix", "ab"]),
        "ab\tvalue of ab\nabc\tvalue of abc\n"
    );
    assert_eq!(
        keys(ok(&["scan", "--db", &s.db, "--from", "ab", "--to", "b"])),
        ["ab", "abc"]
    );
    assert_eq!(
        keys(ok(&["scan", "--db", &s.db, "--reverse", "--limit", "2"])),
        ["c", "b"]
    );
    assert_eq!(
        keys(ok(&[
            "scan",
            "--db",
            &s.db,
            "--prefix",
            "a",
            "--from",
            "ab",
            "--reverse"
        ])),
        ["abc", "ab"]
    );
    assert_eq!(ok(&["scan", "--db", &s.db, "--from", "x", "--to", "a"]), "");
    assert_eq!(ok(&["count", "--db", &s.db, "--prefix", "a"]), "3\n");
    assert_eq!(ok(&["count", "--db", &s.db, "--from", "b"]), "2\n");
    let err = fails_with(2, &["scan", "--db", &s.db, "--limit", "many"]);
    assert!(err.contains("--limit"), "{err}");
}

#[test]
fn trees_clone_and_drop() {
    let s = sample();
    ok(&["put", "--db", &s.db, "--tree", "other", "k", "v"]);
    assert_eq!(ok(&["trees", "--db", &s.db]), "main\nother\n");
    ok(&["clone", "--db", &s.db, "main", "main@monday"]);
    ok(&["del", "--db", &s.db, "a"]);
    assert_eq!(
        ok(&["get", "--db", &s.db, "--tree", "main@monday", "a"]),
        "value of a\n"
    );
    assert_eq!(
        ok(&["count", "--db", &s.db, "--tree", "main@monday"]),
        "5\n"
    );
    assert_eq!(ok(&["count", "--db", &s.db]), "4\n");
    let err = fails(&["clone", "--db", &s.db, "main", "other"]);
    assert!(err.contains("already exists"), "{err}");
    let err = fails(&["clone", "--db", &s.db, "nope", "x"]);
    assert!(err.contains("tree \"nope\" does not exist"), "{err}");
    ok(&["drop", "--db", &s.db, "main@monday"]);
    assert_eq!(ok(&["trees", "--db", &s.db]), "main\nother\n");
    let err = fails(&["drop", "--db", &s.db, "main@monday"]);
    assert!(err.contains("does not exist"), "{err}");
    s.assert_clean();
}

#[test]
fn export_and_import_round_trip_in_both_formats() {
    let s = sample();
    ok(&["put", "--db", &s.db, "--hex", "ff", "00"]);
    ok(&["put", "--db", &s.db, "tab\there", "line\nbreak"]);
    let all = ok(&["scan", "--db", &s.db, "--hex"]);
    for format in ["tsv", "jsonl"] {
        let exported = ok(&["export", "--db", &s.db, "--format", format]);
        assert_eq!(exported.lines().count(), 7, "{exported}");
        let file = s.file(&format!("dump.{format}"), exported.as_bytes());
        let tree = format!("copy-{format}");
        let said = ok(&[
            "import", "--db", &s.db, "--tree", &tree, "--format", format, &file,
        ]);
        assert!(said.contains("imported 7 entries"), "{said}");
        assert_eq!(ok(&["scan", "--db", &s.db, "--hex", "--tree", &tree]), all);
    }
    let jsonl = ok(&["export", "--db", &s.db, "--format", "jsonl"]);
    assert!(
        jsonl.contains(r#"{"key":"a","value":"value of a"}"#),
        "{jsonl}"
    );
    assert!(jsonl.contains(r#""key_hex":"ff""#), "{jsonl}");
    // To a file, and from standard input.
    let path = s.path("out.tsv");
    let said = ok(&["export", "--db", &s.db, path.to_str().unwrap_or_default()]);
    assert!(said.contains("exported 7 entries"), "{said}");
    let tsv = fs::read(&path).expect("the export file");
    let out = run_with_input(&["import", "--db", &s.db, "--tree", "stdin", "-"], &tsv);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(ok(&["count", "--db", &s.db, "--tree", "stdin"]), "7\n");
    s.assert_clean();
}

#[test]
fn a_bad_import_line_imports_nothing() {
    let s = sample();
    let file = s.file("bad.tsv", b"61\t62\n63\tzz\n");
    let err = fails(&["import", "--db", &s.db, "--tree", "t", &file]);
    assert!(
        err.contains("line 2") && err.contains("invalid hex in value"),
        "{err}"
    );
    assert_eq!(ok(&["trees", "--db", &s.db]), "main\n");
    let file = s.file("bad.jsonl", b"{\"key\": \"k\"}\n");
    let err = fails(&["import", "--db", &s.db, "--format", "jsonl", &file]);
    assert!(err.contains("line 1") && err.contains("\"value\""), "{err}");
    let file = s.file("bad2.jsonl", b"not json\n");
    let err = fails(&["import", "--db", &s.db, "--format", "jsonl", &file]);
    assert!(err.contains("invalid JSON"), "{err}");
    let missing = s.path("missing.tsv");
    let other = s.path("other-db");
    let other = other.to_string_lossy();
    let err = fails(&[
        "import",
        "--db",
        &other,
        missing.to_str().unwrap_or_default(),
    ]);
    assert!(err.contains("missing.tsv"), "{err}");
    assert!(
        !Path::new(other.as_ref()).exists(),
        "a failed import created a store"
    );
    assert_eq!(ok(&["count", "--db", &s.db]), "5\n");
    s.assert_clean();
}

/// Issue 12 item 14: a failed import into a new directory left an empty
/// store behind.
#[test]
fn a_failed_import_removes_the_store_it_created() {
    let s = Scratch::new();
    let db = Path::new(&s.db);
    let bad = s.file("bad.tsv", b"61\t62\nnot a record\n");
    let err = fails(&["import", "--db", &s.db, &bad]);
    assert!(err.contains("line 2"), "{err}");
    assert!(!db.exists(), "a failed import left {:?}", fs::read_dir(db));
    fails(&["put", "--db", &s.db, &"x".repeat(10_000), "v"]);
    assert!(!db.exists(), "a failed put left {:?}", fs::read_dir(db));
    // A directory that was there stays, with what it held.
    fs::create_dir(db).expect("a directory");
    fs::write(db.join("notes.txt"), b"mine").expect("a file");
    fails(&["import", "--db", &s.db, &bad]);
    let left: Vec<_> = fs::read_dir(db)
        .expect("the directory")
        .map(|e| e.expect("an entry").file_name())
        .collect();
    assert_eq!(left, ["notes.txt"]);
    let good = s.file("good.tsv", b"61\t62\n");
    ok(&["import", "--db", &s.db, &good]);
    assert_eq!(ok(&["get", "--db", &s.db, "a"]), "b\n");
    s.assert_clean();
}

/// Issue 12 item 14: a repeated "key" or "value" in a JSON-lines record
/// silently won over the first.
#[test]
fn duplicate_json_fields_are_refused() {
    let s = sample();
    for (line, error) in [
        (
            r#"{"key": "x", "key": "y", "value": "v"}"#,
            "duplicate field \"key\"",
        ),
        (
            r#"{"key": "x", "value": "v", "value": "w"}"#,
            "duplicate field \"value\"",
        ),
        (
            r#"{"key": "x", "k\u0065y": "y", "value": "v"}"#,
            "duplicate field \"key\"",
        ),
        (
            r#"{"key": "x", "key_hex": "79", "value": "v"}"#,
            "\"key_hex\"",
        ),
    ] {
        let file = s.file(
            "dup.jsonl",
            format!("{{\"key\": \"fine\", \"value\": \"1\"}}\n{line}\n").as_bytes(),
        );
        let err = fails(&[
            "import", "--db", &s.db, "--tree", "t", "--format", "jsonl", &file,
        ]);
        assert!(
            err.contains("line 2") && err.contains(error),
            "{line}: {err}"
        );
    }
    assert_eq!(ok(&["trees", "--db", &s.db]), "main\n");
    s.assert_clean();
}

/// Issue 12 item 14: `export` into the store's own directory overwrote its
/// superblock.
#[test]
fn export_refuses_paths_inside_the_store() {
    let s = sample();
    let db = Path::new(&s.db);
    let mut paths = vec![
        db.join("superblock"),
        db.join("new.tsv"),
        s.path("db/../db/out.tsv"),
    ];
    #[cfg(unix)]
    {
        let link = s.path("link");
        std::os::unix::fs::symlink(db.join("superblock"), &link).expect("a symlink");
        paths.push(link);
        let dangling = s.path("dangling");
        std::os::unix::fs::symlink(db.join("fresh.tsv"), &dangling).expect("a symlink");
        paths.push(dangling);
    }
    for inside in paths {
        let inside = inside.to_string_lossy().into_owned();
        let err = fails(&["export", "--db", &s.db, &inside]);
        assert!(err.contains("inside the store"), "{inside}: {err}");
    }
    assert!(!db.join("new.tsv").exists() && !db.join("fresh.tsv").exists());
    assert_eq!(ok(&["get", "--db", &s.db, "a"]), "value of a\n");
    s.assert_clean();
    let outside = s.path("out.tsv").to_string_lossy().into_owned();
    ok(&["export", "--db", &s.db, &outside]);
    assert_eq!(
        fs::read_to_string(&outside)
            .expect("the export")
            .lines()
            .count(),
        5
    );
}

#[test]
fn stats_and_dump_describe_the_store() {
    let s = Scratch::new();
    let lines: String = (0..400)
        .map(|i| format!("{:08x}\t{:064x}\n", i, i))
        .collect();
    let file = s.file("load.tsv", lines.as_bytes());
    ok(&["import", "--db", &s.db, "--node-size", "512", &file]);
    let stats = ok(&["stats", "--db", &s.db]);
    assert!(
        stats.contains("nodes") && stats.contains("bytes on disk"),
        "{stats}"
    );
    assert!(
        stats
            .lines()
            .any(|l| l.starts_with("main") && l.ends_with("400")),
        "{stats}"
    );
    assert!(stats.contains("space amplification"), "{stats}");
    // The import closed cleanly, so its checkpoint left no log to replay.
    assert!(
        stats
            .lines()
            .any(|l| l.starts_with("log since last checkpoint") && l.ends_with(" 0 B")),
        "{stats}"
    );
    for i in 0..200 {
        ok(&["del", "--db", &s.db, "--hex", &format!("{i:08x}")]);
    }
    let compact = ok(&["compact", "--db", &s.db]);
    assert!(
        compact.contains("before") && compact.contains("after"),
        "{compact}"
    );
    let dump = ok(&["dump", "--db", &s.db]);
    assert!(dump.contains("200 entries"), "{dump}");
    assert!(dump.contains("depth: "), "{dump}");
    assert!(
        dump.contains("(leaves)") && dump.contains("(root)"),
        "{dump}"
    );
    s.assert_clean();
}

#[test]
fn a_missing_store_is_one_line_for_every_command() {
    let s = Scratch::new();
    let db = s.db.as_str();
    for args in [
        &["get", "--db", db, "k"][..],
        &["del", "--db", db, "k"],
        &["scan", "--db", db],
        &["count", "--db", db],
        &["trees", "--db", db],
        &["clone", "--db", db, "a", "b"],
        &["drop", "--db", db, "a"],
        &["export", "--db", db],
        &["check", "--db", db],
        &["stats", "--db", db],
        &["dump", "--db", db],
        &["compact", "--db", db],
    ] {
        let err = fails(args);
        assert!(err.contains("no Larix store at"), "{args:?}: {err}");
    }
    assert!(
        !Path::new(db).exists(),
        "a read-only command created a store"
    );
}

#[test]
fn a_missing_tree_is_one_line_for_every_command() {
    let s = sample();
    let db = s.db.as_str();
    for args in [
        &["get", "--db", db, "--tree", "nope", "k"][..],
        &["del", "--db", db, "--tree", "nope", "k"],
        &["scan", "--db", db, "--tree", "nope"],
        &["count", "--db", db, "--tree", "nope"],
        &["export", "--db", db, "--tree", "nope"],
        &["dump", "--db", db, "--tree", "nope"],
        &["drop", "--db", db, "nope"],
    ] {
        let err = fails(args);
        assert!(
            err.contains("tree \"nope\" does not exist"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn key_files_are_needed_and_checked() {
    let s = Scratch::new();
    let right = s.file("right.key", &[7u8; 32]);
    let wrong = s.file("wrong.key", format!("{}\n", "ab".repeat(32)).as_bytes());
    let malformed = s.file("malformed.key", b"too short");
    ok(&[
        "put",
        "--db",
        &s.db,
        "--key-file",
        &right,
        "secret",
        "value",
    ]);
    assert_eq!(
        ok(&["get", "--db", &s.db, "--key-file", &right, "secret"]),
        "value\n"
    );
    let err = fails(&["get", "--db", &s.db, "--key-file", &wrong, "secret"]);
    assert!(err.contains("key"), "{err}");
    let err = fails(&["get", "--db", &s.db, "secret"]);
    assert!(err.contains("key"), "{err}");
    let err = fails(&["get", "--db", &s.db, "--key-file", &malformed, "secret"]);
    assert!(err.contains("malformed.key"), "{err}");
    let missing = s.path("missing.key");
    let err = fails(&[
        "get",
        "--db",
        &s.db,
        "--key-file",
        missing.to_str().unwrap_or_default(),
        "secret",
    ]);
    assert!(err.contains("missing.key"), "{err}");
    let err = fails(&[
        "put",
        "--db",
        &s.path("new").to_string_lossy(),
        "--key-file",
        &malformed,
        "k",
        "v",
    ]);
    assert!(err.contains("malformed.key"), "{err}");
    // The data is not in the clear on disk.
    for entry in fs::read_dir(&s.db).expect("the store directory").flatten() {
        let bytes = fs::read(entry.path()).expect("a store file");
        assert!(
            !bytes.windows(6).any(|w| w == b"secret"),
            "{:?}",
            entry.path()
        );
    }
    let report = ok(&["check", "--db", &s.db, "--key-file", &right]);
    assert!(report.contains(": 0 problems"), "{report}");
}

/// Issue 12 item 10: `--key-file` on an unencrypted store was ignored, so
/// a user could believe plaintext was encrypted.
#[test]
fn a_key_file_for_an_unencrypted_store_is_refused() {
    let s = sample();
    let key = s.file("k.key", &[7u8; 32]);
    let refused = format!("{} is not encrypted; drop --key-file", s.db);
    let err = fails(&["put", "--db", &s.db, "--key-file", &key, "k", "v"]);
    assert!(err.contains(&refused), "{err}");
    let err = fails(&["get", "--db", &s.db, "--key-file", &key, "a"]);
    assert!(err.contains(&refused), "{err}");
    let err = fails(&["get", "--db", &s.db, "--key-file", &key, "k"]);
    assert!(err.contains(&refused), "{err}");
    assert_eq!(ok(&["count", "--db", &s.db]), "5\n");
    s.assert_clean();
}

#[test]
fn a_damaged_superblock_is_one_line() {
    let s = sample();
    fs::write(Path::new(&s.db).join("superblock"), vec![0x5a; 8192]).expect("overwrite");
    for args in [
        &["get", "--db", s.db.as_str(), "a"][..],
        &["check", "--db", &s.db],
        &["put", "--db", &s.db, "k", "v"],
    ] {
        fails(args);
    }
}

/// Flips the last byte of the body of every node record in the store's
/// segments (docs/design.md, "Blob record": a 24-byte header with magic
/// `LXBL`, kind 1 for nodes, body length at offset 16).
fn damage_every_node(db: &str) {
    for entry in fs::read_dir(db).expect("the store directory").flatten() {
        if !entry.file_name().to_string_lossy().starts_with("seg-") {
            continue;
        }
        let mut bytes = fs::read(entry.path()).expect("a segment");
        let mut at = 0;
        while at + 24 <= bytes.len() && &bytes[at..at + 4] == b"LXBL" {
            let len = u32::from_le_bytes(bytes[at + 16..at + 20].try_into().unwrap()) as usize;
            if bytes[at + 4] == 1 && len > 0 && at + 24 + len <= bytes.len() {
                bytes[at + 24 + len - 1] ^= 0xff;
            }
            at += 24 + len;
        }
        fs::write(entry.path(), bytes).expect("rewrite a segment");
    }
}

#[test]
fn check_exits_3_on_damaged_nodes() {
    let s = sample();
    s.assert_clean();
    damage_every_node(&s.db);
    let out = run(&["check", "--db", &s.db]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(report.contains("cannot be read"), "{report}");
    let err = fails(&["get", "--db", &s.db, "a"]);
    assert!(err.contains("node"), "{err}");
}

#[test]
fn bad_arguments_are_usage_errors() {
    let s = sample();
    let err = fails_with(2, &["get", "--db", &s.db, "--bogus", "k"]);
    assert!(err.contains("--bogus"), "{err}");
    let err = fails_with(2, &["get", "k"]);
    assert!(err.contains("--db"), "{err}");
    let err = fails_with(2, &["put", "--db", &s.db, "--zstd", "99", "k", "v"]);
    assert!(err.contains("--zstd"), "{err}");
    fails_with(2, &["export", "--db", &s.db, "--format", "xml"]);
    fails_with(2, &["frobnicate"]);
    let err = fails(&["put", "--db", &s.db, "--zstd", "9", "k", "v"]);
    assert!(err.contains("already holds a store"), "{err}");
    let big = "x".repeat(10_000);
    let err = fails(&["put", "--db", &s.db, &big, "v"]);
    assert!(err.contains("too large"), "{err}");
    let new_db = s.path("tiny").to_string_lossy().into_owned();
    let err = fails(&["put", "--db", &new_db, "--node-size", "10", "k", "v"]);
    assert!(err.contains("node_size"), "{err}");
    s.assert_clean();
}

/// Issue 12 item 14: `trees` printed names as they are, so a newline in a
/// name looked like two trees.
#[test]
fn tree_names_are_printed_escaped() {
    let s = sample();
    ok(&["put", "--db", &s.db, "--tree", "two\nlines", "k", "v"]);
    ok(&["put", "--db", &s.db, "--tree", "back\\slash\ttab", "k", "v"]);
    assert_eq!(
        ok(&["trees", "--db", &s.db]),
        "back\\\\slash\\ttab\nmain\ntwo\\nlines\n"
    );
    let stats = ok(&["stats", "--db", &s.db]);
    assert!(stats.contains("two\\nlines"), "{stats}");
    let help = ok(&["trees", "--help"]);
    assert!(help.contains("escaped") && help.contains("\\n"), "{help}");
    s.assert_clean();
}

/// Issue 12 item 14: a key, value or bound that is not UTF-8 got clap's
/// error, which does not say how to pass such bytes.
#[cfg(unix)]
#[test]
fn non_utf8_arguments_point_to_hex() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let s = sample();
    let bad = || OsString::from_vec(b"caf\xe9".to_vec());
    let arg = |a: &str| OsString::from(a);
    let db = || arg(&s.db);
    for (args, what) in [
        (vec![arg("put"), arg("--db"), db(), bad(), arg("v")], "key"),
        (
            vec![arg("put"), arg("--db"), db(), arg("k"), bad()],
            "value",
        ),
        (vec![arg("get"), arg("--db"), db(), bad()], "key"),
        (vec![arg("del"), arg("--db"), db(), bad()], "key"),
        (
            vec![arg("scan"), arg("--db"), db(), arg("--prefix"), bad()],
            "--prefix",
        ),
        (
            vec![arg("count"), arg("--db"), db(), arg("--from"), bad()],
            "--from",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_larix"))
            .args(&args)
            .output()
            .expect("larix runs");
        let err = assert_one_line_error(&out, 1, &["(arguments not UTF-8)"]);
        let expected = format!("{what} is not valid UTF-8; pass bytes as hex with --hex");
        assert!(err.contains(&expected), "{args:?}: {err}");
    }
    assert_eq!(ok(&["count", "--db", &s.db]), "5\n");
    s.assert_clean();
}

/// A small directory tree to walk: nested directories, files, a symlink.
fn populate(root: &Path) {
    for d in 0..6 {
        let dir = root.join(format!("dir{d}")).join("sub");
        fs::create_dir_all(&dir).expect("a directory");
        for f in 0..40 {
            fs::write(dir.join(format!("file{f:02}")), vec![b'x'; f * 10]).expect("a file");
        }
    }
    #[cfg(unix)]
    std::os::unix::fs::symlink("/nonexistent", root.join("dangling")).expect("a symlink");
}

#[test]
fn demo_walks_snapshots_changes_and_diffs() {
    let s = Scratch::new();
    let walked = s.path("walked");
    populate(&walked);
    let walked = walked.to_string_lossy().into_owned();
    let out = ok(&["demo", "--db", &s.db, "--path", &walked]);
    for expected in [
        "stored 254 entries",
        "cloned \"files\" as \"files@before\"",
        "exactly the changes made",
        ": 0 problems",
        "compression ratio",
        "bytes after filtering",
        "in-flight hits",
        "diff",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    // A second run replaces the previous demo store.
    let again = ok(&["demo", "--db", &s.db, "--path", &walked, "--limit", "100"]);
    assert!(again.contains("stored 100 entries"), "{again}");
    assert_eq!(ok(&["trees", "--db", &s.db]), "files\nfiles@before\n");
    s.assert_clean();
    // In memory, and without filters.
    let mem = ok(&["demo", "--in-memory", "--no-zstd", "--path", &walked]);
    assert!(mem.contains("exactly the changes made"), "{mem}");
}

#[test]
fn demo_leaves_other_directories_alone() {
    let s = sample();
    let walked = s.path("walked");
    populate(&walked);
    let walked = walked.to_string_lossy().into_owned();
    let err = fails(&["demo", "--db", &s.db, "--path", &walked]);
    assert!(err.contains("a store the demo did not create"), "{err}");
    let err = fails(&["demo", "--db", &walked, "--path", &walked]);
    assert!(err.contains("not a Larix store"), "{err}");
    let missing = s.path("missing");
    let err = fails(&[
        "demo",
        "--in-memory",
        "--path",
        missing.to_str().unwrap_or_default(),
    ]);
    assert!(err.contains("missing"), "{err}");
    assert_eq!(ok(&["count", "--db", &s.db]), "5\n");
}

/// Issue 12 item 2: `demo --db` deleted a user's store whose only tree was
/// `files` (the README's own example), or that had no trees at all.
#[test]
fn demo_refuses_stores_it_did_not_create() {
    let s = Scratch::new();
    let walked = s.path("walked");
    populate(&walked);
    let walked = walked.to_string_lossy().into_owned();
    ok(&["put", "--db", &s.db, "--tree", "files", "mine", "precious"]);
    let treeless = s.path("treeless").to_string_lossy().into_owned();
    ok(&["put", "--db", &treeless, "k", "v"]);
    ok(&["drop", "--db", &treeless, "main"]);
    for db in [&s.db, &treeless] {
        let err = fails(&["demo", "--db", db, "--path", &walked]);
        assert!(
            err.contains("holds a store the demo did not create; choose another --db"),
            "{err}"
        );
    }
    assert_eq!(
        ok(&["get", "--db", &s.db, "--tree", "files", "mine"]),
        "precious\n"
    );
    s.assert_clean();
    assert_eq!(ok(&["trees", "--db", &treeless]), "");
}

/// Issue 12 item 2: a demo rerun removed the whole directory, files the
/// demo never wrote included; now a stray file survives the rerun.
#[test]
fn demo_reruns_remove_only_what_the_demo_wrote() {
    let s = Scratch::new();
    let walked = s.path("walked");
    populate(&walked);
    let walked = walked.to_string_lossy().into_owned();
    ok(&["demo", "--db", &s.db, "--path", &walked, "--limit", "50"]);
    let db = Path::new(&s.db);
    assert!(db.join("larix-demo").is_file(), "the demo wrote no marker");
    fs::write(db.join("notes.txt"), b"mine").expect("a stray file");
    fs::create_dir(db.join("keep")).expect("a stray directory");
    let again = ok(&["demo", "--db", &s.db, "--path", &walked, "--limit", "60"]);
    assert!(again.contains("stored 60 entries"), "{again}");
    assert_eq!(
        fs::read(db.join("notes.txt")).expect("the stray file"),
        b"mine"
    );
    assert!(db.join("keep").is_dir(), "the stray directory is gone");
    assert_eq!(ok(&["trees", "--db", &s.db]), "files\nfiles@before\n");
    s.assert_clean();
    let third = ok(&["demo", "--db", &s.db, "--path", &walked, "--limit", "70"]);
    assert!(third.contains("stored 70 entries"), "{third}");
    s.assert_clean();
}

#[test]
fn bench_runs_every_phase_and_cleans_up() {
    let s = Scratch::new();
    let out = ok(&["bench", "--n", "2000", "--db", &s.db]);
    for phase in [
        "bulk load",
        "durable writes",
        "batch writes",
        "random reads",
        "range reads",
        "removals",
        ": 0 problems",
    ] {
        assert!(out.contains(phase), "missing {phase:?} in:\n{out}");
    }
    assert!(!Path::new(&s.db).exists(), "bench left its directory");
    let mem = ok(&["bench", "--n", "500", "--in-memory", "--no-filters"]);
    assert!(mem.contains("filters: none"), "{mem}");
    fs::create_dir(&s.db).expect("a directory");
    let err = fails(&["bench", "--n", "10", "--db", &s.db]);
    assert!(err.contains("already exists"), "{err}");
    assert!(
        Path::new(&s.db).exists(),
        "bench removed a directory it did not make"
    );
}

/// The absolute path of gzip, which `.ci/run` installs.
fn gzip() -> &'static str {
    ["/bin/gzip", "/usr/bin/gzip"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("gzip is needed for this test (.ci/run installs it)")
}

/// Issue 12 item 1: a store that records a command filter opens only when
/// the user names the very same commands with `--filter-command`; without
/// it, or with other commands, the refusal is one line naming the
/// command the store wants, and nothing runs.
#[test]
fn a_command_filter_store_needs_the_users_own_command() {
    let s = Scratch::new();
    let (encode, decode) = (format!("{} -c", gzip()), format!("{} -dc", gzip()));
    let named = ["--filter-command", encode.as_str(), decode.as_str()];
    fn with<'a>(args: &[&'a str], named: &[&'a str]) -> Vec<&'a str> {
        [args, named].concat()
    }
    ok(&with(&["put", "--db", &s.db, "k", "v"], &named));
    assert_eq!(ok(&with(&["get", "--db", &s.db, "k"], &named)), "v\n");
    let err = fails(&["get", "--db", &s.db, "k"]);
    assert!(
        err.contains("--filter-command") && err.contains(&decode),
        "{err}"
    );
    let other = ["--filter-command", "/bin/cat", "/bin/cat"];
    let err = fails(&with(&["get", "--db", &s.db, "k"], &other));
    assert!(err.contains(&decode), "{err}");
    let report = ok(&with(&["check", "--db", &s.db], &named));
    assert!(report.contains(": 0 problems"), "{report}");
}

/// Every file of the store in `db`: name, length and contents.
fn snapshot_files(db: &str) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = fs::read_dir(db)
        .expect("the store directory")
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, fs::read(e.path()).expect("a store file"))
        })
        .collect();
    files.sort();
    files
}

/// Issue 12 item 6: the read commands open the store read-only: they write
/// nothing (so they work on read-only media, beside other readers), even
/// on a store left with commits only in its log.
#[test]
fn read_commands_write_nothing() {
    let s = sample();
    let before = snapshot_files(&s.db);
    let db = s.db.as_str();
    for args in [
        &["get", "--db", db, "a"][..],
        &["scan", "--db", db],
        &["count", "--db", db],
        &["trees", "--db", db],
        &["check", "--db", db],
        &["stats", "--db", db],
        &["dump", "--db", db],
        &["export", "--db", db],
    ] {
        ok(args);
        assert!(
            snapshot_files(db) == before,
            "larix {args:?} changed the store's files"
        );
    }
}

/// Issue 12 items 11 and 14: an open that had to work around damage (here
/// the lost key check segment) says so: a warning on standard error for
/// every command, and a line in `check` and `stats`.
#[test]
fn warnings_from_the_open_are_shown() {
    let s = sample();
    fs::remove_file(Path::new(&s.db).join("seg-000001.lx")).expect("the key check segment");
    for cmd in ["check", "stats"] {
        let out = run(&[cmd, "--db", &s.db]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).starts_with("larix: warning: "),
            "{cmd}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stdout).contains("warning: "),
            "{cmd}: {}",
            text(&out.stdout)
        );
    }
    assert_eq!(ok(&["get", "--db", &s.db, "a"]), "value of a\n");
}

/// `larix diff`: `+`, `-` and `~` lines in key order between a tree and
/// its clone, hex on request, counts with `--count`; a missing tree is one
/// line.
#[test]
fn diff_lists_the_changes_between_two_trees() {
    let s = sample();
    ok(&["clone", "--db", &s.db, "main", "before"]);
    ok(&["put", "--db", &s.db, "ab", "new value"]);
    ok(&["put", "--db", &s.db, "aa", "added"]);
    ok(&["del", "--db", &s.db, "c"]);
    let out = ok(&["diff", "--db", &s.db, "before", "main"]);
    assert_eq!(
        out,
        "+ aa\tadded\n~ ab\tvalue of ab\tnew value\n- c\tvalue of c\n"
    );
    let out = ok(&["diff", "--db", &s.db, "--count", "before", "main"]);
    assert_eq!(out, "1 added, 1 removed, 1 changed\n");
    let out = ok(&["diff", "--db", &s.db, "--hex", "main", "before"]);
    assert!(out.starts_with("- 6161\t"), "{out}");
    assert_eq!(ok(&["diff", "--db", &s.db, "main", "main"]), "");
    fails(&["diff", "--db", &s.db, "main", "nope"]);
}

/// Issue 17: `put --file` stores a file's bytes as the value (out of line
/// when large) and `get --output` writes them back, byte for byte.
#[test]
fn put_file_and_get_output_round_trip_a_large_value() {
    let s = Scratch::new();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let bytes: Vec<u8> = (0..(3 << 20) + 1234)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let input = s.file("big.bin", &bytes);
    ok(&[
        "put", "--db", &s.db, "--tree", "files", "big", "--file", &input,
    ]);
    let output = s.path("copy.bin");
    let out = output.to_string_lossy().into_owned();
    ok(&[
        "get", "--db", &s.db, "--tree", "files", "big", "--output", &out,
    ]);
    assert!(fs::read(&output).unwrap() == bytes, "the copy differs");
    // A small value goes to a file as it is, without a newline.
    ok(&["put", "--db", &s.db, "--tree", "files", "small", "tiny"]);
    ok(&[
        "get", "--db", &s.db, "--tree", "files", "small", "--output", &out,
    ]);
    assert_eq!(fs::read(&output).unwrap(), b"tiny");
    let missing = s.path("no such file").to_string_lossy().into_owned();
    let err = fails(&["put", "--db", &s.db, "k", "--file", &missing]);
    assert!(err.contains("no such file"), "{err}");
    let err = fails(&[
        "get", "--db", &s.db, "--tree", "files", "nope", "--output", &out,
    ]);
    assert!(err.contains("not found"), "{err}");
    fails_with(2, &["put", "--db", &s.db, "k", "v", "--file", &input]);
    s.assert_clean();
}

#[cfg(feature = "s3")]
#[path = "support/moto.rs"]
mod moto;

/// The commands take `--db s3://bucket/prefix` wherever they take a
/// directory, configured by `--storage-option`.
#[cfg(feature = "s3")]
#[test]
fn commands_work_on_a_store_in_s3() {
    let Some(moto) = moto::Moto::start() else {
        return;
    };
    moto.create_bucket("cli");
    let endpoint = format!("aws_endpoint={}", moto.endpoint());
    let with = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        for o in [
            endpoint.as_str(),
            "aws_allow_http=true",
            "aws_access_key_id=cli",
            "aws_secret_access_key=cli",
            "aws_region=us-east-1",
        ] {
            all.push("--storage-option".into());
            all.push(o.into());
        }
        all
    };
    let run_ok = |args: &[&str]| {
        let all = with(args);
        ok(&all.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let db = "s3://cli/store";
    let e = fails(
        &with(&["get", "--db", db, "k"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(e.contains("no Larix store"), "{e}");
    run_ok(&["put", "--db", db, "k1", "v1"]);
    run_ok(&["put", "--db", db, "k2", "v2"]);
    run_ok(&["clone", "--db", db, "main", "snap"]);
    run_ok(&["put", "--db", db, "k3", "v3"]);
    assert_eq!(run_ok(&["get", "--db", db, "k2"]), "v2\n");
    assert_eq!(run_ok(&["trees", "--db", db]), "main\nsnap\n");
    assert_eq!(run_ok(&["count", "--db", db, "--tree", "snap"]), "2\n");
    let diff = run_ok(&["diff", "--db", db, "snap", "main"]);
    assert!(diff.contains("+ k3"), "{diff}");
    assert!(run_ok(&["check", "--db", db]).contains("0 problems"));
    run_ok(&["stats", "--db", db]);
    let bad = fails(&["trees", "--db", db, "--storage-option", "nonsense"]);
    assert!(bad.contains("KEY=VALUE"), "{bad}");
}
