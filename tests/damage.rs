//! Damaged files: single-bit flips and truncations anywhere in a store's
//! files. Opening either falls back to the other superblock slot, or fails
//! with a typed error; reading a damaged node fails with an error naming
//! it, and `check` lists it; nothing panics, and no damage to a reachable
//! node, table chunk, catalog or superblock goes unnoticed.
//!
//! 400 flips and 100 truncations by default; `LARIX_BITFLIPS=10000` for the
//! long run (which prints its tally).

use larix::backend::{Backend, FileId};
use larix::{Forest, Options};
use larix_nodestore::testing::FaultyBackend;
use std::collections::BTreeMap;
use std::sync::Arc;

type Contents = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

fn options() -> Options {
    Options::default()
        .node_size(512)
        .cache_bytes(64 << 10)
        .workers(1)
        .compaction(false)
}

fn contents(forest: &Forest) -> larix::Result<Contents> {
    let mut all = BTreeMap::new();
    for name in forest.tree_names() {
        let tree = forest.tree(&name)?.expect("listed tree");
        let entries = tree.range(..)?.collect::<larix::Result<BTreeMap<_, _>>>()?;
        all.insert(name, entries);
    }
    Ok(all)
}

/// A store with two commits, the first checkpointed (so both superblock
/// slots are in use) and the second only in the commit log, as a crash
/// would leave it: its durable files, and the contents of each commit.
fn build() -> (Vec<(FileId, Vec<u8>)>, Contents, Contents) {
    let disk = FaultyBackend::new();
    let forest = Forest::with_backend(Arc::new(disk.clone()), options()).unwrap();
    let t = forest.create_tree("t").unwrap();
    for i in 0..400u32 {
        t.insert(format!("key-{i:04}").as_bytes(), &i.to_le_bytes().repeat(5))
            .unwrap();
    }
    // Values too large for a leaf, stored out of line: flips in their
    // chunks must be caught too.
    for i in 0..3u32 {
        t.insert(
            format!("large-{i}").as_bytes(),
            &i.to_le_bytes().repeat(700),
        )
        .unwrap();
    }
    forest.checkpoint().unwrap();
    let first = contents(&forest).unwrap();
    forest.clone_tree("t", "snap").unwrap();
    for i in (0..400u32).step_by(3) {
        t.remove(format!("key-{i:04}").as_bytes()).unwrap();
    }
    forest.commit().unwrap();
    let second = contents(&forest).unwrap();
    let image = disk
        .list()
        .unwrap()
        .into_iter()
        .filter_map(|f| Some((f, disk.durable_contents(f)?)))
        .collect();
    disk.kill();
    drop((t, forest));
    (image, first, second)
}

fn restore(image: &[(FileId, Vec<u8>)]) -> FaultyBackend {
    let disk = FaultyBackend::new();
    for (file, bytes) in image {
        disk.write_at(*file, 0, bytes).unwrap();
        disk.sync(*file).unwrap();
    }
    disk.sync_dir().unwrap();
    disk
}

/// What one damaged store did.
#[derive(Debug, Default)]
struct Tally {
    refused_at_open: usize,
    fell_back: usize,
    tail_dropped: usize,
    reported: usize,
    harmless: usize,
}

/// Opens the damaged store and classifies the outcome; panics (failing
/// the test) on undetected damage.
fn judge(disk: FaultyBackend, what: &str, first: &Contents, second: &Contents, t: &mut Tally) {
    let forest = match Forest::with_backend(Arc::new(disk), options()) {
        Ok(f) => f,
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.is_empty() && !msg.contains('\n'), "{what}: {msg:?}");
            t.refused_at_open += 1;
            return;
        }
    };
    let report = forest.check().unwrap();
    let read = contents(&forest);
    match read {
        Err(e) => {
            assert!(
                !report.is_clean(),
                "{what}: read failed ({e}) but check is clean"
            );
            t.reported += 1;
        }
        Ok(c) if !report.is_clean() => {
            // Check found damage that plain reads did not touch.
            let _ = c;
            t.reported += 1;
        }
        Ok(c) if &c == second => t.harmless += 1,
        Ok(c) if &c == first && what.starts_with("superblock") => t.fell_back += 1,
        // The second commit is the log's last record: damage to it cannot
        // be told from a torn append, and drops it as a crash would.
        Ok(c) if &c == first && what.starts_with("log-") => t.tail_dropped += 1,
        Ok(c) => panic!(
            "{what}: undetected damage: reads {} trees, check clean",
            c.len()
        ),
    }
}

#[test]
fn bit_flips_and_truncations_are_detected() {
    let flips: usize = std::env::var("LARIX_BITFLIPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let (image, first, second) = build();
    let total: usize = image.iter().map(|(_, b)| b.len()).sum();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut tally = Tally::default();
    for _ in 0..flips {
        let mut at = (next() % total as u64) as usize;
        let (file, bytes) = image
            .iter()
            .find(|(_, b)| {
                if at < b.len() {
                    true
                } else {
                    at -= b.len();
                    false
                }
            })
            .unwrap();
        let disk = restore(&image);
        let bit = (next() % 8) as u8;
        disk.flip_bit(*file, at as u64, bit).unwrap();
        let what = format!("{file} byte {at} of {} bit {bit}", bytes.len());
        judge(disk, &what, &first, &second, &mut tally);
    }
    let flipped = tally.refused_at_open
        + tally.fell_back
        + tally.tail_dropped
        + tally.reported
        + tally.harmless;
    let truncations = flips / 4;
    for _ in 0..truncations {
        let i = (next() % image.len() as u64) as usize;
        let mut damaged = image.clone();
        let keep = (next() % damaged[i].1.len().max(1) as u64) as usize;
        damaged[i].1.truncate(keep);
        let what = format!("{} truncated to {keep}", damaged[i].0);
        judge(restore(&damaged), &what, &first, &second, &mut tally);
    }
    eprintln!("{flipped} bit flips and {truncations} truncations over {total} bytes: {tally:?}");
}
