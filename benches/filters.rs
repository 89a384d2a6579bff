//! Encode and decode throughput of each `larix-filters` filter, and of the
//! default-like stack zstd(3) + encrypt + checksum, on 16 KiB node payloads:
//! a realistic B-tree leaf (sorted paths with shared prefixes, each with a
//! structured value) and incompressible random bytes. The setup prints the
//! compression ratio of each filter on both payloads.
//!
//! Run: `cargo bench --bench filters -- --warm-up-time 1 --measurement-time 2`
// `criterion_group!` generates public functions without documentation.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use larix_filters::{Context, FilterSpec, Pipeline};
use rand::{rngs::StdRng, Rng, RngCore, SeedableRng};

/// The size of every payload: a typical node.
const NODE_SIZE: usize = 16 * 1024;

/// Appends `n` as an LEB128 varint.
fn push_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// A leaf as a B-tree would encode it: a kind byte and an entry count, then
/// for each entry a varint key length, the key (a sorted path such as
/// `/usr/share/doc/pkg-00123/file-0042.txt`), a varint value length and the
/// value (little-endian size u64, mode u32, mtime i64). Cut at 16 KiB.
fn leaf_payload() -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(0x1a41c);
    let mut out = vec![1u8, 0, 0]; // kind = leaf, entry count patched below
    let mut entries = 0u16;
    let (mut pkg, mut file) = (123u32, 0u32);
    while out.len() < NODE_SIZE {
        let key = format!("/usr/share/doc/pkg-{pkg:05}/file-{file:04}.txt");
        let size_bits: u32 = rng.gen_range(4..24);
        let size: u64 = rng.gen_range(0..1u64 << size_bits);
        let mode: u32 = if rng.gen_bool(0.1) {
            0o100755
        } else {
            0o100644
        };
        let mtime: i64 = 1_700_000_000 + rng.gen_range(0..90 * 86_400);
        push_varint(&mut out, key.len() as u64);
        out.extend_from_slice(key.as_bytes());
        push_varint(&mut out, 20);
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&mode.to_le_bytes());
        out.extend_from_slice(&mtime.to_le_bytes());
        entries += 1;
        file += 1;
        if rng.gen_bool(0.15) {
            pkg += rng.gen_range(1..4);
            file = 0;
        }
    }
    out[1..3].copy_from_slice(&entries.to_le_bytes());
    out.truncate(NODE_SIZE);
    out
}

/// 16 KiB of incompressible bytes.
fn random_payload() -> Vec<u8> {
    let mut out = vec![0u8; NODE_SIZE];
    StdRng::seed_from_u64(7).fill_bytes(&mut out);
    out
}

/// The absolute path of gzip (command programs must be absolute).
fn gzip() -> &'static str {
    ["/usr/bin/gzip", "/bin/gzip"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("/usr/bin/gzip")
}

/// The filters and stacks measured, with their labels.
fn stacks() -> Vec<(&'static str, Vec<FilterSpec>)> {
    let key = [0x5c; 32];
    vec![
        ("zstd-1", vec![FilterSpec::zstd(1)]),
        ("zstd-3", vec![FilterSpec::zstd(3)]),
        ("checksum", vec![FilterSpec::checksum()]),
        ("encrypt", vec![FilterSpec::encrypt(key)]),
        (
            "gzip-command",
            vec![FilterSpec::command(&[gzip(), "-c"], &[gzip(), "-dc"])],
        ),
        (
            "zstd-3+encrypt+checksum",
            vec![
                FilterSpec::zstd(3),
                FilterSpec::encrypt(key),
                FilterSpec::checksum(),
            ],
        ),
    ]
}

fn bench_filters(c: &mut Criterion) {
    let ctx = Context::new(0x00c0_ffee);
    let payloads = [("leaf", leaf_payload()), ("random", random_payload())];
    let pipelines: Vec<_> = stacks()
        .into_iter()
        .map(|(label, specs)| (label, Pipeline::new(&specs).expect("valid stack")))
        .collect();

    println!("filter ratios on {NODE_SIZE}-byte payloads (input bytes / blob bytes):");
    for (label, pipeline) in &pipelines {
        let ratios: Vec<String> = payloads
            .iter()
            .map(|(name, payload)| {
                let blob = pipeline.encode(&ctx, payload).expect("encode");
                format!(
                    "{name} {:.2} ({} B)",
                    payload.len() as f64 / blob.len() as f64,
                    blob.len()
                )
            })
            .collect();
        println!("  {label:<24} {}", ratios.join(", "));
    }

    for (direction, decode) in [("encode", false), ("decode", true)] {
        let mut group = c.benchmark_group(format!("filters/{direction}"));
        for (label, pipeline) in &pipelines {
            if label.contains("command") {
                // A process per call: fewer samples keep the run short.
                group.sample_size(20);
            } else {
                group.sample_size(100);
            }
            for (name, payload) in &payloads {
                group.throughput(Throughput::Bytes(payload.len() as u64));
                let id = BenchmarkId::new(*label, name);
                if decode {
                    let blob = pipeline.encode(&ctx, payload).expect("encode");
                    group.bench_with_input(id, &blob, |b, blob| {
                        b.iter(|| pipeline.decode(&ctx, black_box(blob)).expect("decode"))
                    });
                } else {
                    group.bench_with_input(id, payload, |b, payload| {
                        b.iter(|| pipeline.encode(&ctx, black_box(payload)).expect("encode"))
                    });
                }
            }
        }
        group.finish();
    }
}

criterion_group!(benches, bench_filters);
criterion_main!(benches);
