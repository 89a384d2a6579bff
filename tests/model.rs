//! Model test: random operations on several trees against one `BTreeMap`
//! per tree, with tiny nodes (deep trees) and default nodes.

use larix::{Forest, Options};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::ops::Bound;

const SLOTS: usize = 3;

#[derive(Debug, Clone)]
enum Op {
    Create(usize),
    Insert(usize, u16, u8),
    Fill(usize, u16, u16, u8),
    Batch(usize, Vec<(u16, u8)>),
    Remove(usize, u16),
    Range(usize, Bound<u16>, Bound<u16>, bool),
    RemoveRange(usize, Bound<u16>, Bound<u16>),
    Clone(usize, usize),
    RemoveTree(usize),
}

fn key(k: u16) -> Vec<u8> {
    // Keys of varying length that still sort like the numbers.
    let mut v = format!("k{k:05}").into_bytes();
    v.extend(std::iter::repeat_n(b'.', usize::from(k % 7)));
    v
}

/// A short value, or for a few tags one too large for a leaf (stored out
/// of line: from a few hundred bytes to past one chunk).
fn value(k: u16, tag: u8) -> Vec<u8> {
    match tag {
        255 if k.is_multiple_of(16) => vec![tag; larix_btree::CHUNK_BYTES + usize::from(k)],
        250.. => vec![tag; 300 + 97 * usize::from(k % 40)],
        _ => vec![tag; usize::from(k % 23) + usize::from(tag % 5)],
    }
}

fn bound() -> impl Strategy<Value = Bound<u16>> {
    prop_oneof![
        Just(Bound::Unbounded),
        (0u16..1200).prop_map(Bound::Included),
        (0u16..1200).prop_map(Bound::Excluded),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let slot = 0..SLOTS;
    prop_oneof![
        2 => slot.clone().prop_map(Op::Create),
        20 => (slot.clone(), 0u16..1200, any::<u8>()).prop_map(|(s, k, t)| Op::Insert(s, k, t)),
        3 => (slot.clone(), 0u16..1200, 1u16..300, any::<u8>()).prop_map(|(s, k, n, t)| Op::Fill(s, k, n, t)),
        3 => (slot.clone(), proptest::collection::vec((0u16..1200, any::<u8>()), 0..60)).prop_map(|(s, pairs)| Op::Batch(s, pairs)),
        12 => (slot.clone(), 0u16..1200).prop_map(|(s, k)| Op::Remove(s, k)),
        4 => (slot.clone(), bound(), bound(), any::<bool>()).prop_map(|(s, a, b, r)| Op::Range(s, a, b, r)),
        3 => (slot.clone(), bound(), bound()).prop_map(|(s, a, b)| Op::RemoveRange(s, a, b)),
        3 => (slot.clone(), slot.clone()).prop_map(|(a, b)| Op::Clone(a, b)),
        1 => slot.prop_map(Op::RemoveTree),
    ]
}

fn key_bound(b: Bound<u16>) -> Bound<Vec<u8>> {
    match b {
        Bound::Included(k) => Bound::Included(key(k)),
        Bound::Excluded(k) => Bound::Excluded(key(k)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn valid(lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> bool {
    // BTreeMap::range panics on inverted or empty-excluded ranges; Larix
    // returns nothing for them, which the model mirrors.
    match (lo, hi) {
        (Bound::Included(a), Bound::Included(b)) => a <= b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b)) => a < b,
        _ => true,
    }
}

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn model_range(m: &Model, lo: &Bound<Vec<u8>>, hi: &Bound<Vec<u8>>) -> Vec<(Vec<u8>, Vec<u8>)> {
    if !valid(lo, hi) {
        return Vec::new();
    }
    m.range::<Vec<u8>, _>((lo.clone(), hi.clone()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn as_slices(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn run(node_size: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let options = Options::default()
        .node_size(node_size)
        .cache_bytes(node_size * 16)
        .workers(2);
    let forest = Forest::in_memory(options).unwrap();
    let mut models: Vec<Option<Model>> = vec![None; SLOTS];
    let name = |s: usize| format!("t{s}");
    for op in ops {
        match op.clone() {
            Op::Create(s) => {
                let r = forest.create_tree(&name(s));
                prop_assert_eq!(r.is_ok(), models[s].is_none());
                models[s].get_or_insert_with(Model::new);
            }
            Op::Insert(s, k, t) => {
                if let (Some(m), Some(tree)) = (models[s].as_mut(), forest.tree(&name(s)).unwrap())
                {
                    tree.insert(&key(k), &value(k, t)).unwrap();
                    m.insert(key(k), value(k, t));
                    let len = tree.get_with(&key(k), <[u8]>::len).unwrap();
                    prop_assert_eq!(len, Some(value(k, t).len()));
                }
            }
            Op::Batch(s, pairs) => {
                if let (Some(m), Some(tree)) = (models[s].as_mut(), forest.tree(&name(s)).unwrap())
                {
                    // Keys may repeat: the later pair wins.
                    let batch: Vec<_> = pairs.iter().map(|&(k, t)| (key(k), value(k, t))).collect();
                    tree.insert_batch(batch.iter().map(|(k, v)| (k, v)))
                        .unwrap();
                    m.extend(batch);
                }
            }
            Op::Fill(s, k, n, t) => {
                if let (Some(m), Some(tree)) = (models[s].as_mut(), forest.tree(&name(s)).unwrap())
                {
                    for k in k..k.saturating_add(n).min(1200) {
                        tree.insert(&key(k), &value(k, t)).unwrap();
                        m.insert(key(k), value(k, t));
                    }
                }
            }
            Op::Remove(s, k) => {
                if let (Some(m), Some(tree)) = (models[s].as_mut(), forest.tree(&name(s)).unwrap())
                {
                    prop_assert_eq!(tree.remove(&key(k)).unwrap(), m.remove(&key(k)).is_some());
                }
            }
            Op::Range(s, a, b, reverse) => {
                if let (Some(m), Some(tree)) = (models[s].as_ref(), forest.tree(&name(s)).unwrap())
                {
                    let (lo, hi) = (key_bound(a), key_bound(b));
                    let mut want = model_range(m, &lo, &hi);
                    let iter = tree.range((as_slices(&lo), as_slices(&hi))).unwrap();
                    let got: Vec<_> = if reverse {
                        want.reverse();
                        iter.rev().collect::<Result<_, _>>().unwrap()
                    } else {
                        iter.collect::<Result<_, _>>().unwrap()
                    };
                    prop_assert_eq!(&got, &want);
                    let mut scanned = Vec::new();
                    tree.scan((as_slices(&lo), as_slices(&hi)), |k, v| {
                        scanned.push((k.to_vec(), v.to_vec()));
                        std::ops::ControlFlow::Continue(())
                    })
                    .unwrap();
                    if reverse {
                        scanned.reverse();
                    }
                    prop_assert_eq!(&scanned, &want);
                    let count = tree.count_range((as_slices(&lo), as_slices(&hi))).unwrap();
                    prop_assert_eq!(count, want.len() as u64);
                    let empty = tree
                        .range_is_empty((as_slices(&lo), as_slices(&hi)))
                        .unwrap();
                    prop_assert_eq!(empty, want.is_empty());
                }
            }
            Op::RemoveRange(s, a, b) => {
                if let (Some(m), Some(tree)) = (models[s].as_mut(), forest.tree(&name(s)).unwrap())
                {
                    let (lo, hi) = (key_bound(a), key_bound(b));
                    let doomed = model_range(m, &lo, &hi);
                    let n = tree.remove_range((as_slices(&lo), as_slices(&hi))).unwrap();
                    prop_assert_eq!(n, doomed.len() as u64);
                    for (k, _) in doomed {
                        m.remove(&k);
                    }
                }
            }
            Op::Clone(a, b) => {
                let r = forest.clone_tree(&name(a), &name(b));
                prop_assert_eq!(r.is_ok(), models[a].is_some() && models[b].is_none());
                if r.is_ok() {
                    models[b] = models[a].clone();
                }
            }
            Op::RemoveTree(s) => {
                let r = forest.remove_tree(&name(s));
                prop_assert_eq!(r.is_ok(), models[s].take().is_some());
            }
        }
    }
    for (s, m) in models.iter().enumerate() {
        let tree = forest.tree(&name(s)).unwrap();
        prop_assert_eq!(tree.is_some(), m.is_some());
        if let (Some(m), Some(tree)) = (m, tree) {
            let got: Vec<_> = tree.range(..).unwrap().collect::<Result<_, _>>().unwrap();
            let want: Vec<_> = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(
                tree.first().unwrap(),
                m.first_key_value().map(|(k, v)| (k.clone(), v.clone()))
            );
            prop_assert_eq!(
                tree.last().unwrap(),
                m.last_key_value().map(|(k, v)| (k.clone(), v.clone()))
            );
        }
    }
    let report = forest.check().unwrap();
    prop_assert!(report.is_clean(), "{}", report);
    for (s, m) in models.iter().enumerate() {
        if m.is_some() {
            forest.remove_tree(&name(s)).unwrap();
        }
    }
    prop_assert_eq!(forest.stats().nodes, 0);
    let report = forest.check().unwrap();
    prop_assert!(report.is_clean(), "{}", report);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn tiny_nodes_match_the_model(ops in proptest::collection::vec(op(), 1..120)) {
        run(256, &ops)?;
    }

    #[test]
    fn small_nodes_match_the_model(ops in proptest::collection::vec(op(), 1..120)) {
        run(1024, &ops)?;
    }

    #[test]
    fn default_nodes_match_the_model(ops in proptest::collection::vec(op(), 1..120)) {
        run(larix_btree::DEFAULT_NODE_SIZE, &ops)?;
    }
}
