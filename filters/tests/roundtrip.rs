//! Property tests of the public API: every filter and every valid stack
//! round-trips arbitrary bytes, hostile blobs are refused without panicking,
//! and tampering, a wrong key or a wrong node id are detected.

use larix_filters::{Context, FilterError, FilterSpec, Pipeline};
use proptest::prelude::*;

const KEY: [u8; 32] = [0x42; 32];

/// The absolute path of the system program `name` (command filters refuse
/// relative programs), from `/usr/bin` or `/bin`.
fn program(name: &str) -> String {
    ["/usr/bin", "/bin"]
        .iter()
        .map(|dir| format!("{dir}/{name}"))
        .find(|path| std::path::Path::new(path).is_file())
        .unwrap_or_else(|| panic!("these tests need `{name}` in /usr/bin or /bin"))
}

fn gzip() -> FilterSpec {
    let gzip = program("gzip");
    FilterSpec::command(&[&gzip, "-c"], &[&gzip, "-dc"])
}

/// One filter of each kind, with the given zstd level and key.
fn single_filters(level: i32, key: [u8; 32]) -> Vec<FilterSpec> {
    vec![
        FilterSpec::zstd(level),
        FilterSpec::checksum(),
        FilterSpec::encrypt(key),
        gzip(),
    ]
}

/// A valid stack: compressors first (in either order), then encryption,
/// then the checksum, each present or not.
fn valid_stack() -> impl Strategy<Value = Vec<FilterSpec>> {
    (
        prop::option::of(1..=9i32),
        prop::bool::weighted(0.15),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<[u8; 32]>(),
    )
        .prop_map(|(zstd, command, command_first, encrypt, checksum, key)| {
            let mut specs = Vec::new();
            if command && command_first {
                specs.push(gzip());
            }
            if let Some(level) = zstd {
                specs.push(FilterSpec::zstd(level));
            }
            if command && !command_first {
                specs.push(gzip());
            }
            if encrypt {
                specs.push(FilterSpec::encrypt(key));
            }
            if checksum {
                specs.push(FilterSpec::checksum());
            }
            specs
        })
}

/// A valid stack that protects its blobs: it has encrypt or checksum.
fn protected_stack() -> impl Strategy<Value = Vec<FilterSpec>> {
    valid_stack().prop_filter("needs encrypt or checksum", |specs| {
        specs
            .iter()
            .any(|s| matches!(s, FilterSpec::Encrypt { .. } | FilterSpec::Checksum))
    })
}

/// Node bytes: arbitrary, or repetitive enough to compress.
fn node_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..4096),
        (prop::collection::vec(any::<u8>(), 1..16), 0..512usize)
            .prop_map(|(unit, n)| unit.repeat(n)),
    ]
}

/// Whether `specs` obeys the documented order rules (an independent model
/// of what `Pipeline::new` must accept).
fn model_accepts(specs: &[FilterSpec]) -> bool {
    let names: Vec<_> = specs.iter().map(|s| s.name()).collect();
    let unique = names
        .iter()
        .enumerate()
        .all(|(i, n)| !names[..i].contains(n));
    let checksum_last = match names.iter().position(|n| *n == "checksum") {
        Some(i) => i == names.len() - 1,
        None => true,
    };
    let after_encrypt_only_checksum = match names.iter().position(|n| *n == "encrypt") {
        Some(i) => names[i + 1..].iter().all(|n| *n == "checksum"),
        None => true,
    };
    unique && checksum_last && after_encrypt_only_checksum
}

proptest! {
    #[test]
    fn every_filter_round_trips(level in 1..=19i32, key in any::<[u8; 32]>(),
                                node_id in any::<u64>(), input in node_bytes()) {
        let ctx = Context::new(node_id);
        for spec in single_filters(level, key) {
            let p = Pipeline::new(&[spec]).unwrap();
            let blob = p.encode(&ctx, &input).unwrap();
            prop_assert_eq!(p.decode(&ctx, &blob).unwrap(), input.clone(), "{}", p.describe());
        }
    }

    #[test]
    fn valid_stacks_round_trip(specs in valid_stack(), node_id in any::<u64>(),
                               input in node_bytes()) {
        let p = Pipeline::new(&specs).unwrap();
        let ctx = Context::new(node_id);
        let blob = p.encode(&ctx, &input).unwrap();
        prop_assert_eq!(p.decode(&ctx, &blob).unwrap(), input, "{}", p.describe());
    }

    /// Issue 12 item 13: a context bound equal to the node's length never
    /// refuses the node's own blob, whatever the stack; one byte less does.
    #[test]
    fn valid_stacks_round_trip_under_a_tight_bound(specs in valid_stack(), node_id in any::<u64>(),
                                                   input in node_bytes()) {
        let p = Pipeline::new(&specs).unwrap();
        let ctx = Context::new(node_id).with_max_len(input.len());
        let blob = p.encode(&ctx, &input).unwrap();
        prop_assert_eq!(p.decode(&ctx, &blob).unwrap(), input.clone(), "{}", p.describe());
        if let Some(less) = input.len().checked_sub(1) {
            let err = p.decode(&Context::new(node_id).with_max_len(less), &blob).unwrap_err();
            prop_assert!(matches!(err, FilterError::TooLarge { .. }), "{}", err);
        }
    }

    #[test]
    fn new_accepts_exactly_the_documented_orders(
        picks in prop::collection::vec(0..4usize, 0..5),
    ) {
        let all = single_filters(3, KEY);
        let specs: Vec<_> = picks.iter().map(|&i| all[i].clone()).collect();
        let result = Pipeline::new(&specs);
        prop_assert_eq!(result.is_ok(), model_accepts(&specs), "{:?}", result.err());
        if let Ok(p) = result {
            let ctx = Context::new(1);
            let blob = p.encode(&ctx, b"round trip").unwrap();
            prop_assert_eq!(p.decode(&ctx, &blob).unwrap(), b"round trip");
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(specs in valid_stack(),
                                             garbage in prop::collection::vec(any::<u8>(), 0..2048)) {
        let p = Pipeline::new(&specs).unwrap();
        // Either outcome is fine; a panic or an abort is not.
        let _ = p.decode(&Context::new(7), &garbage);
    }

    #[test]
    fn any_single_bit_flip_is_detected(specs in protected_stack(), input in node_bytes(),
                                       bit in any::<prop::sample::Index>()) {
        let p = Pipeline::new(&specs).unwrap();
        let ctx = Context::new(3);
        let mut blob = p.encode(&ctx, &input).unwrap();
        let bit = bit.index(blob.len() * 8);
        blob[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(p.decode(&ctx, &blob).is_err(), "{} bit {}", p.describe(), bit);
    }

    #[test]
    fn another_key_fails(key in any::<[u8; 32]>(), other in any::<[u8; 32]>(),
                         checksum in any::<bool>(), input in node_bytes()) {
        prop_assume!(key != other);
        let stack = |key| {
            let mut specs = vec![FilterSpec::zstd(3), FilterSpec::encrypt(key)];
            if checksum {
                specs.push(FilterSpec::checksum());
            }
            Pipeline::new(&specs).unwrap()
        };
        let ctx = Context::new(9);
        let blob = stack(key).encode(&ctx, &input).unwrap();
        let err = stack(other).decode(&ctx, &blob).unwrap_err();
        prop_assert!(matches!(err, FilterError::Decrypt { node_id: 9 }), "{}", err);
    }

    #[test]
    fn blob_of_node_5_fails_as_node_6(specs in protected_stack(), input in node_bytes()) {
        let p = Pipeline::new(&specs).unwrap();
        let blob = p.encode(&Context::new(5), &input).unwrap();
        let err = p.decode(&Context::new(6), &blob).unwrap_err();
        prop_assert_eq!(err.node_id(), Some(6));
    }
}

/// 1 MiB of half-compressible bytes: text-like runs and xorshift noise.
fn one_mib() -> Vec<u8> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..1 << 20)
        .map(|i: usize| {
            if (i / 4096).is_multiple_of(2) {
                b"larix node "[i % 11]
            } else {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            }
        })
        .collect()
}

#[test]
fn every_filter_round_trips_empty_one_byte_and_one_mib() {
    let big = one_mib();
    let ctx = Context::new(12);
    for spec in single_filters(3, KEY) {
        let p = Pipeline::new(&[spec]).unwrap();
        for input in [&[][..], &[0xFF][..], &big[..]] {
            let blob = p.encode(&ctx, input).unwrap();
            assert_eq!(
                p.decode(&ctx, &blob).unwrap(),
                input,
                "{} on {} bytes",
                p.describe(),
                input.len()
            );
        }
    }
}

#[test]
fn full_stack_round_trips_one_mib() {
    let big = one_mib();
    let p = Pipeline::new(&[
        FilterSpec::zstd(3),
        FilterSpec::encrypt(KEY),
        FilterSpec::checksum(),
    ])
    .unwrap();
    let ctx = Context::new(13);
    let blob = p.encode(&ctx, &big).unwrap();
    assert!(blob.len() < big.len() * 3 / 4, "{} bytes", blob.len());
    assert_eq!(p.decode(&ctx, &blob).unwrap(), big);
}

#[test]
fn every_bit_flip_of_small_protected_blobs_is_detected() {
    let ctx = Context::new(21);
    let stacks = [
        vec![FilterSpec::checksum()],
        vec![FilterSpec::encrypt(KEY)],
        vec![
            FilterSpec::zstd(3),
            FilterSpec::encrypt(KEY),
            FilterSpec::checksum(),
        ],
    ];
    for specs in stacks {
        let p = Pipeline::new(&specs).unwrap();
        let blob = p
            .encode(&ctx, b"a small node of forty-odd bytes, say")
            .unwrap();
        for bit in 0..blob.len() * 8 {
            let mut bad = blob.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                p.decode(&ctx, &bad).is_err(),
                "{}: bit {bit} undetected",
                p.describe()
            );
        }
    }
}

#[test]
fn key_file_spec_reads_the_same_key() {
    use std::io::Write;
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "{}", "42".repeat(32)).unwrap();
    let from_file = FilterSpec::encrypt_key_file(f.path()).unwrap();
    assert_eq!(from_file, FilterSpec::encrypt(KEY));
    let ctx = Context::new(1);
    let blob = Pipeline::new(&[FilterSpec::encrypt(KEY)])
        .unwrap()
        .encode(&ctx, b"x")
        .unwrap();
    assert_eq!(
        Pipeline::new(&[from_file])
            .unwrap()
            .decode(&ctx, &blob)
            .unwrap(),
        b"x"
    );
}
