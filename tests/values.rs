//! Large values: stored out of line in chunks, through the filters, shared
//! by clones, freed with the last tree that holds them.

use larix::{Error, FilterSpec, Forest, Options, Tree};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

#[path = "support/noise.rs"]
mod support;
use support::noise;

const KEY: [u8; 32] = [7; 32];

/// The three filter stacks every size is tried with.
fn stacks() -> Vec<(&'static str, Vec<FilterSpec>)> {
    vec![
        ("none", vec![]),
        (
            "zstd+checksum",
            vec![FilterSpec::zstd(1), FilterSpec::checksum()],
        ),
        (
            "zstd+encrypt+checksum",
            vec![
                FilterSpec::zstd(1),
                FilterSpec::encrypt(KEY),
                FilterSpec::checksum(),
            ],
        ),
    ]
}

fn options(filters: Vec<FilterSpec>) -> Options {
    Options::default()
        .node_size(4096)
        .cache_bytes(4 << 20)
        .workers(2)
        .filters(filters)
}

/// `len` bytes of English-like text (compressible).
fn text(len: usize) -> Vec<u8> {
    let words = [
        "the ", "forest ", "of ", "trees ", "shares ", "nodes ", "and ", "clones ", "cost ",
        "nothing ", "backup ", "chunk ",
    ];
    let mut out = Vec::with_capacity(len + 16);
    let mut x = 0x9E37_79B9u32;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.extend_from_slice(words[(x % words.len() as u32) as usize].as_bytes());
    }
    out.truncate(len);
    out
}

/// Bytes of every file under `dir`.
fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                disk_bytes(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

fn assert_clean(f: &Forest) {
    let report = f.check().unwrap();
    assert!(report.is_clean(), "{report}");
}

/// The sizes of the acceptance list: 0 B, node/8, node/4 + 1, a few
/// nodes, 100 KB, 1 MiB, 8 MiB, 64 MiB (and one past a chunk).
fn sizes() -> Vec<usize> {
    vec![
        0,
        512,
        1025,
        3 * 4096 + 7,
        100_000,
        1 << 20,
        (1 << 20) + 1,
        8 << 20,
        64 << 20,
    ]
}

fn check_all(t: &Tree, want: &[(Vec<u8>, Vec<u8>)], stack: &str) {
    for (k, v) in want {
        let got = t
            .get(k)
            .unwrap()
            .unwrap_or_else(|| panic!("{stack}: key missing"));
        assert!(got == *v, "{stack}: value of {} bytes differs", v.len());
    }
    let forward: Vec<_> = t.range(..).unwrap().map(Result::unwrap).collect();
    assert!(forward == want, "{stack}: forward range differs");
    let mut backward: Vec<_> = t.range(..).unwrap().rev().map(Result::unwrap).collect();
    backward.reverse();
    assert!(backward == want, "{stack}: backward range differs");
}

#[test]
fn values_of_every_size_round_trip_through_every_filter_stack() {
    for (name, filters) in stacks() {
        let dir = tempfile::tempdir().unwrap();
        let mut want = Vec::new();
        {
            let f = Forest::open(dir.path(), options(filters.clone())).unwrap();
            let t = f.create_tree("v").unwrap();
            for (i, len) in sizes().into_iter().enumerate() {
                let key = format!("value-{i:02}").into_bytes();
                let value = noise(len, i as u64 + 1);
                t.insert(&key, &value).unwrap();
                want.push((key, value));
            }
            check_all(&t, &want, name);
            f.commit().unwrap();
            check_all(&t, &want, name);
            assert_clean(&f);
        }
        let f = Forest::open(dir.path(), options(filters)).unwrap();
        check_all(&f.tree("v").unwrap().unwrap(), &want, name);
        assert_clean(&f);
    }
}

#[test]
fn a_reader_streams_a_value_and_seeks() {
    // With a filter the reader reads chunks ahead on other threads.
    for (_, filters) in stacks() {
        reader_streams_a_value_and_seeks(options(filters));
    }
}

fn reader_streams_a_value_and_seeks(options: Options) {
    let f = Forest::in_memory(options).unwrap();
    let t = f.create_tree("v").unwrap();
    let value = noise(3 * (1 << 20) + 12_345, 9);
    t.insert_reader(b"big", &value[..], value.len() as u64)
        .unwrap();
    t.insert(b"small", b"inline").unwrap();
    let mut r = t.get_reader(b"big").unwrap().unwrap();
    assert_eq!(r.len(), value.len() as u64);
    let mut all = Vec::new();
    r.read_to_end(&mut all).unwrap();
    assert!(all == value);
    // Across a chunk boundary, from the end, past the end.
    let at = (1 << 20) - 5;
    r.seek(SeekFrom::Start(at)).unwrap();
    let mut ten = [0u8; 10];
    r.read_exact(&mut ten).unwrap();
    assert_eq!(ten[..], value[at as usize..at as usize + 10]);
    r.seek(SeekFrom::End(-3)).unwrap();
    let mut tail = Vec::new();
    r.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, value[value.len() - 3..]);
    assert!(r
        .seek(SeekFrom::Current(-(value.len() as i64) - 1))
        .is_err());
    r.seek(SeekFrom::Start(u64::MAX / 2)).unwrap();
    assert_eq!(r.read(&mut ten).unwrap(), 0);
    // The reader keeps the value it was made on.
    t.remove(b"big").unwrap();
    let mut again = Vec::new();
    r.seek(SeekFrom::Start(0)).unwrap();
    r.read_to_end(&mut again).unwrap();
    assert!(again == value);
    let mut small = String::new();
    t.get_reader(b"small")
        .unwrap()
        .unwrap()
        .read_to_string(&mut small)
        .unwrap();
    assert_eq!(small, "inline");
    assert!(t.get_reader(b"none").unwrap().is_none());
    drop(r);
    assert_clean(&f);
}

/// A reader that fails after `ok` bytes.
struct Failing {
    ok: usize,
}

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.ok == 0 {
            return Err(std::io::Error::other("the source broke"));
        }
        let n = buf.len().min(self.ok);
        buf[..n].fill(1);
        self.ok -= n;
        Ok(n)
    }
}

#[test]
fn a_failed_insert_changes_nothing() {
    let f = Forest::in_memory(options(vec![])).unwrap();
    let t = f.create_tree("v").unwrap();
    t.insert(b"kept", &noise(2 << 20, 1)).unwrap();
    f.commit().unwrap();
    let nodes = f.stats().nodes;
    let err = t
        .insert_reader(b"kept", Failing { ok: 3 << 20 }, 5 << 20)
        .unwrap_err();
    assert!(matches!(err, Error::ValueSource(_)), "{err:?}");
    assert!(err.to_string().contains("the source broke"), "{err}");
    // A source that ends early.
    let err = t
        .insert_reader(b"kept", &[0u8; 4000][..], 5000)
        .unwrap_err();
    assert!(matches!(err, Error::ValueSource(_)), "{err:?}");
    assert_eq!(t.get(b"kept").unwrap().unwrap(), noise(2 << 20, 1));
    assert_eq!(f.stats().nodes, nodes);
    assert_clean(&f);
}

#[test]
fn overwriting_and_removing_free_the_chunks() {
    let f = Forest::in_memory(options(vec![])).unwrap();
    let t = f.create_tree("v").unwrap();
    let base = f.stats().nodes;
    t.insert(b"a", &noise(5 << 20, 1)).unwrap();
    t.insert(b"b", &noise(100_000, 2)).unwrap();
    assert_clean(&f);
    t.insert(b"a", b"small now").unwrap();
    t.insert(b"b", &noise(3 << 20, 3)).unwrap();
    assert_clean(&f);
    assert!(t.remove(b"b").unwrap());
    assert_clean(&f);
    assert_eq!(f.stats().nodes, base);
    for i in 0..20u32 {
        t.insert(&i.to_be_bytes(), &noise(70_000, u64::from(i)))
            .unwrap();
    }
    assert_eq!(
        t.remove_range(2u32.to_be_bytes().as_slice()..18u32.to_be_bytes().as_slice())
            .unwrap(),
        16
    );
    assert_clean(&f);
    f.remove_tree("v").unwrap();
    assert_eq!(f.stats().nodes, 0);
    assert_clean(&f);
}

#[test]
fn clones_share_values_and_the_last_tree_frees_them() {
    let dir = tempfile::tempdir().unwrap();
    let f = Forest::open(dir.path(), options(vec![FilterSpec::checksum()])).unwrap();
    let t = f.create_tree("t0").unwrap();
    for i in 0..12u32 {
        t.insert(&i.to_be_bytes(), &noise(4 << 20, u64::from(i)))
            .unwrap();
    }
    f.commit().unwrap();
    let before = disk_bytes(dir.path());
    assert!(before > 48 << 20, "{before}");
    for c in 1..=5 {
        let clone = f.clone_tree("t0", &format!("t{c}")).unwrap();
        // Each clone changes one value of its own: only that is copied.
        clone.insert(&0u32.to_be_bytes(), b"changed").unwrap();
        f.commit().unwrap();
    }
    let after = disk_bytes(dir.path());
    assert!(
        after - before < 4 << 20,
        "five clones grew the store by {} bytes",
        after - before
    );
    let t3 = f.tree("t3").unwrap().unwrap();
    assert_eq!(
        t3.get(&5u32.to_be_bytes()).unwrap().unwrap(),
        noise(4 << 20, 5)
    );
    let d: Vec<_> = t.diff(&t3).unwrap().map(Result::unwrap).collect();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].new.as_deref(), Some(&b"changed"[..]));
    assert_eq!(d[0].old.as_deref(), Some(&noise(4 << 20, 0)[..]));
    assert_clean(&f);
    for name in f.tree_names() {
        f.remove_tree(&name).unwrap();
    }
    f.commit().unwrap();
    f.compact().unwrap();
    f.compact().unwrap();
    assert_clean(&f);
    assert_eq!(f.stats().nodes, 0);
    let emptied = disk_bytes(dir.path());
    assert!(
        emptied < 4 << 20,
        "{emptied} bytes left after removing every tree"
    );
}

#[test]
fn an_encrypted_value_leaves_no_plaintext_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let marker = b"PLAINTEXT-MARKER-".repeat(4);
    let mut value = text(3 << 20);
    for at in (0..value.len() - marker.len()).step_by(100_000) {
        value[at..at + marker.len()].copy_from_slice(&marker);
    }
    {
        let filters = stacks().remove(2).1;
        let f = Forest::open(dir.path(), options(filters)).unwrap();
        f.create_tree("v")
            .unwrap()
            .insert(b"secret", &value)
            .unwrap();
        f.commit().unwrap();
    }
    for entry in walk(dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker),
            "plaintext in {}",
            entry.display()
        );
    }
}

#[test]
fn a_damaged_chunk_read_beside_the_others_fails_the_read() {
    // Read on a second thread where decoding is costly (zstd here), whole
    // or streamed: a flip in the value's last chunk must fail the read
    // there with a typed error, and leave the store readable.
    let dir = tempfile::tempdir().unwrap();
    let value = noise(4 << 20, 9);
    let filters = stacks().remove(1).1;
    {
        let f = Forest::open(dir.path(), options(filters.clone())).unwrap();
        let t = f.create_tree("v").unwrap();
        t.insert(b"big", &value).unwrap();
        t.insert(b"small", b"kept").unwrap();
        f.commit().unwrap();
        assert!(t.get(b"big").unwrap().unwrap() == value);
    }
    // zstd keeps incompressible bytes as they are: find them on disk.
    let probe = &value[(7 << 19)..(7 << 19) + 64];
    let mut flipped = 0;
    for path in walk(dir.path()) {
        let mut bytes = std::fs::read(&path).unwrap();
        if let Some(at) = bytes.windows(probe.len()).position(|w| w == probe) {
            bytes[at + 10] ^= 0x20;
            std::fs::write(&path, &bytes).unwrap();
            flipped += 1;
        }
    }
    assert_eq!(flipped, 1, "the chunk's bytes were found once on disk");
    let f = Forest::open(dir.path(), options(filters)).unwrap();
    let t = f.tree("v").unwrap().unwrap();
    let e = t.get(b"big").unwrap_err();
    assert!(e.to_string().contains("node"), "{e}");
    // Streamed, the chunk is read ahead on another thread: the same.
    let mut streamed = Vec::new();
    let mut reader = t.get_reader(b"big").unwrap().unwrap();
    let e = reader.read_to_end(&mut streamed).unwrap_err();
    assert!(e.to_string().contains("node"), "{e}");
    assert_eq!(streamed[..], value[..streamed.len()]);
    assert!(
        streamed.len() >= 3 << 20,
        "the chunks before the damage read"
    );
    assert_eq!(t.get(b"small").unwrap().unwrap(), b"kept");
    assert!(!f.check().unwrap().is_clean());
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn text_values_compress() {
    let dir = tempfile::tempdir().unwrap();
    let value = text(64 << 20);
    {
        let filters = vec![FilterSpec::zstd(3), FilterSpec::checksum()];
        let f = Forest::open(dir.path(), options(filters)).unwrap();
        f.create_tree("v").unwrap().insert(b"text", &value).unwrap();
        f.commit().unwrap();
    }
    let on_disk = disk_bytes(dir.path());
    assert!(
        on_disk < value.len() as u64 / 3,
        "64 MiB of text take {on_disk} bytes"
    );
}

#[test]
fn an_uncommitted_value_is_gone_after_reopen_and_a_rollback() {
    let dir = tempfile::tempdir().unwrap();
    {
        let f = Forest::open(dir.path(), options(vec![])).unwrap();
        let t = f.create_tree("v").unwrap();
        t.insert(b"small", b"committed").unwrap();
        f.commit().unwrap();
        t.insert(b"big", &noise(3 << 20, 4)).unwrap();
        f.rollback().unwrap();
        assert_eq!(t.get(b"big").unwrap(), None);
        assert_clean(&f);
        t.insert(b"big", &noise(3 << 20, 5)).unwrap();
    }
    let f = Forest::open(dir.path(), options(vec![])).unwrap();
    let t = f.tree("v").unwrap().unwrap();
    assert_eq!(t.get(b"big").unwrap(), None);
    assert_eq!(t.get(b"small").unwrap().unwrap(), b"committed");
    assert_clean(&f);
    assert_eq!(f.stats().nodes, 1);
}

#[test]
fn a_snapshot_keeps_a_value_its_tree_dropped() {
    let f = Forest::in_memory(options(vec![])).unwrap();
    let t = f.create_tree("v").unwrap();
    let value = noise(2 << 20, 8);
    t.insert(b"k", &value).unwrap();
    let snap = f.snapshot().unwrap();
    t.remove(b"k").unwrap();
    f.commit().unwrap();
    let view = snap.tree("v").unwrap();
    assert_eq!(view.get(b"k").unwrap().unwrap(), value);
    let mut seen = 0;
    view.scan(.., |_, v| {
        assert_eq!(v.len(), value.len());
        seen += 1;
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(seen, 1);
    drop(view);
    drop(snap);
    assert_eq!(f.stats().nodes, 1);
    assert_clean(&f);
}

#[test]
fn a_value_reader_can_go_to_another_thread() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<larix::ValueReader>();
    let f = Forest::in_memory(options(vec![])).unwrap();
    let t = f.create_tree("v").unwrap();
    let value = noise(1_500_000, 3);
    t.insert(b"k", &value).unwrap();
    let mut r = t.get_reader(b"k").unwrap().unwrap();
    let got = std::thread::spawn(move || {
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        out
    })
    .join()
    .unwrap();
    assert!(got == value);
}

/// A chunk is larger than the whole memory budget of a small cache: it
/// goes to the workers at once and the writer never waits on itself.
#[test]
fn values_larger_than_the_cache_are_written_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let opts = || options(vec![FilterSpec::checksum()]).cache_bytes(64 << 10);
    let value = noise(5 << 20, 11);
    {
        let f = Forest::open(dir.path(), opts()).unwrap();
        let t = f.create_tree("v").unwrap();
        t.insert(b"big", &value).unwrap();
        f.commit().unwrap();
        assert!(t.get(b"big").unwrap().unwrap() == value);
    }
    let f = Forest::open(dir.path(), opts()).unwrap();
    assert!(f.tree("v").unwrap().unwrap().get(b"big").unwrap().unwrap() == value);
    assert_clean(&f);
}
