//! The committed seeds are valid encodings (so they do not rot when a
//! format changes), and every seed and regression input replays without a
//! panic. Runs on stable, without libFuzzer: `cargo test` from `fuzz/`.

use std::fs;
use std::path::{Path, PathBuf};

/// The files of `fuzz/<dir>/<target>/`, sorted; none if it is missing.
fn inputs(dir: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir).join(target);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .into_iter()
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "README.md"))
        .map(|p| {
            let bytes = fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

type Run = fn(&[u8]) -> bool;
const TARGETS: [(&str, Run); 3] = [
    ("decode", larix_fuzz::decode::run),
    ("filters", larix_fuzz::filters::run),
    ("model", larix_fuzz::model::run),
];

#[test]
fn committed_seeds_decode() {
    for (target, run) in TARGETS {
        let seeds = inputs("seeds", target);
        assert!(seeds.len() >= 5, "{target}: only {} seeds", seeds.len());
        for (path, bytes) in seeds {
            assert!(run(&bytes), "{} no longer decodes", path.display());
        }
    }
}

#[test]
fn generated_seeds_match_the_committed_ones() {
    for (target, seeds) in [
        ("decode", larix_fuzz::seeds::decode()),
        ("filters", larix_fuzz::seeds::filters()),
        ("model", larix_fuzz::seeds::model()),
    ] {
        let committed = inputs("seeds", target);
        for (name, bytes) in seeds {
            let file = committed.iter().find(|(p, _)| p.ends_with(&name));
            let (_, on_disk) = file.unwrap_or_else(|| panic!("{target}/{name} is not committed"));
            // Encrypted seeds carry a random nonce: only their length is fixed.
            if name.contains("encrypt") {
                assert_eq!(on_disk.len(), bytes.len(), "{target}/{name}");
            } else {
                assert_eq!(on_disk, &bytes, "{target}/{name} is stale: run make-seeds");
            }
        }
    }
}

#[test]
fn regressions_replay_without_panicking() {
    for (target, run) in TARGETS {
        for (_, bytes) in inputs("regressions", target) {
            run(&bytes);
        }
    }
}
