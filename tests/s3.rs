//! Stores on an S3 object store: `moto_server` started on a free loopback
//! port for each test, and stopped by it. Where moto is not installed the
//! tests say so loudly and pass; `.ci/run` installs it and sets
//! `LARIX_REQUIRE_S3`, which turns a missing moto into a failure.

#![cfg(feature = "s3")]

#[path = "support/moto.rs"]
mod moto;

use larix::{Durability, FilterSpec, Forest, Options};
use moto::{LatencyProxy, Moto};
use std::time::Duration;

/// Options reaching the object store at `endpoint`.
fn options(endpoint: &str) -> Options {
    Options::default()
        .storage_option("aws_endpoint", endpoint)
        .storage_option("aws_allow_http", "true")
        .storage_option("aws_access_key_id", "larix-test")
        .storage_option("aws_secret_access_key", "larix-test")
        .storage_option("aws_region", "us-east-1")
        .cache_bytes(4 << 20)
}

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:08}").into_bytes()
}

fn value(i: u32) -> Vec<u8> {
    format!("value of {i} ")
        .repeat(1 + (i % 7) as usize)
        .into_bytes()
}

#[test]
fn a_store_on_s3_fills_clones_commits_and_reopens_clean() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("larix");
    let url = "s3://larix/stores/one";
    {
        let forest = Forest::open_url(url, options(&moto.endpoint())).unwrap();
        let tree = forest.create_tree("main").unwrap();
        for i in 0..5_000 {
            tree.insert(&key(i), &value(i)).unwrap();
        }
        let big = vec![7u8; 3 << 20];
        tree.insert(b"big", &big).unwrap();
        forest.clone_tree("main", "copy").unwrap();
        forest.commit().unwrap();
        // Changed after the commit, never committed: gone after reopen.
        tree.insert(b"uncommitted", b"x").unwrap();
        forest
            .tree("copy")
            .unwrap()
            .unwrap()
            .remove(&key(1))
            .unwrap();
        forest.create_tree("uncommitted").unwrap();
    }
    let forest = Forest::open_url(url, options(&moto.endpoint())).unwrap();
    assert_eq!(forest.tree_names(), vec!["copy", "main"]);
    let main = forest.tree("main").unwrap().unwrap();
    let copy = forest.tree("copy").unwrap().unwrap();
    for i in (0..5_000).step_by(97) {
        assert_eq!(main.get(&key(i)).unwrap(), Some(value(i)));
        assert_eq!(copy.get(&key(i)).unwrap(), Some(value(i)));
    }
    assert_eq!(main.get(b"uncommitted").unwrap(), None);
    assert_eq!(main.get(b"big").unwrap().map(|v| v.len()), Some(3 << 20));
    assert_eq!(main.range(..).unwrap().count(), 5_001);
    assert!(forest.check().unwrap().is_clean());

    // Checkpoints and compaction run on objects too.
    for i in 0..2_500 {
        main.remove(&key(i)).unwrap();
    }
    forest.commit().unwrap();
    forest.compact().unwrap();
    drop(main);
    drop(copy);
    drop(forest);
    let forest = Forest::open_url_read_only(url, options(&moto.endpoint())).unwrap();
    let main = forest.tree("main").unwrap().unwrap();
    assert_eq!(main.range(..).unwrap().count(), 2_501);
    assert_eq!(
        forest
            .tree("copy")
            .unwrap()
            .unwrap()
            .range(..)
            .unwrap()
            .count(),
        5_001
    );
    assert!(forest.check().unwrap().is_clean());
}

#[test]
fn commits_on_s3_survive_without_a_checkpoint() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("larix");
    let url = "s3://larix/log";
    let opts = || options(&moto.endpoint()).checkpoint_log_bytes(64 << 20);
    {
        let forest = Forest::open_url(url, opts()).unwrap();
        let tree = forest.create_tree("t").unwrap();
        forest.commit().unwrap();
        for i in 0..50 {
            tree.insert(&key(i), &value(i)).unwrap();
            forest.commit().unwrap();
        }
        // Dropped without a clean close: the log holds the commits.
        std::mem::forget(tree);
        std::mem::forget(forest);
    }
    let forest = Forest::open_url(url, opts()).unwrap();
    let tree = forest.tree("t").unwrap().unwrap();
    for i in 0..50 {
        assert_eq!(tree.get(&key(i)).unwrap(), Some(value(i)), "{i}");
    }
    assert!(forest.check().unwrap().is_clean());
}

/// With a directory cache, a store opened again reads what it read before
/// from the directory: the second cold scan makes far fewer requests.
#[test]
fn a_directory_cache_saves_the_second_scan_its_requests() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("cached");
    let proxy = LatencyProxy::start(moto.port(), Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let opts = || options(&proxy.endpoint()).object_cache_dir(dir.path().join("blocks"), 64 << 20);
    {
        let forest = Forest::open_url("s3://cached/s", opts()).unwrap();
        let tree = forest.create_tree("t").unwrap();
        // Values zstd cannot shrink: the segment spans many blocks.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for i in 0..20_000 {
            let v: Vec<u8> = (0..100)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            tree.insert(&key(i), &v).unwrap();
        }
        forest.commit().unwrap();
    }
    let scan = || {
        let before = proxy.requests();
        let forest = Forest::open_url_read_only("s3://cached/s", opts()).unwrap();
        let tree = forest.tree("t").unwrap().unwrap();
        assert_eq!(tree.range(..).unwrap().count(), 20_000);
        proxy.requests() - before
    };
    let cold = scan();
    let warm = scan();
    // The second open still lists the store and reads its superblock.
    assert!(
        cold >= 5 && warm <= 3,
        "cold scan {cold} requests, warm {warm}"
    );
    assert!(
        std::fs::read_dir(dir.path().join("blocks"))
            .unwrap()
            .count()
            > 0
    );
}

/// The backend contract every backend runs, against S3 itself.
#[test]
fn the_backend_contract_holds_on_s3() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("contract");
    let storage: Vec<(String, String)> = options(&moto.endpoint())
        .storage_options()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let backend = larix_nodestore::ObjectBackend::open_url(
        "s3://contract/c",
        &storage,
        false,
        larix_nodestore::ObjectOptions::default(),
    )
    .unwrap();
    larix_nodestore::testing::check_contract(&backend);
}

#[test]
fn two_prefixes_of_one_bucket_are_two_stores() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("shared");
    let a = Forest::open_url("s3://shared/a", options(&moto.endpoint())).unwrap();
    let b = Forest::open_url("s3://shared/a-b", options(&moto.endpoint())).unwrap();
    a.create_tree("only-in-a")
        .unwrap()
        .insert(b"k", b"a")
        .unwrap();
    b.create_tree("only-in-b")
        .unwrap()
        .insert(b"k", b"b")
        .unwrap();
    a.commit().unwrap();
    b.commit().unwrap();
    drop((a, b));
    let a = Forest::open_url("s3://shared/a", options(&moto.endpoint())).unwrap();
    let b = Forest::open_url("s3://shared/a-b", options(&moto.endpoint())).unwrap();
    assert_eq!(a.tree_names(), vec!["only-in-a"]);
    assert_eq!(b.tree_names(), vec!["only-in-b"]);
}

#[test]
fn no_object_of_an_encrypted_store_holds_plaintext() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("secret");
    let secret = b"the-plaintext-marker-that-must-not-leak";
    let opts = || {
        options(&moto.endpoint()).filters(vec![FilterSpec::zstd(1), FilterSpec::encrypt([9; 32])])
    };
    {
        let forest = Forest::open_url("s3://secret/s", opts()).unwrap();
        let tree = forest.create_tree("plaintext-tree-name").unwrap();
        for i in 0..2_000u32 {
            let mut v = secret.to_vec();
            v.extend_from_slice(&i.to_le_bytes());
            tree.insert(&key(i), &v).unwrap();
        }
        forest.commit().unwrap();
        // One more commit that stays in the log only.
        tree.insert(b"log-only-key", secret).unwrap();
        forest.commit().unwrap();
        std::mem::forget(tree);
        std::mem::forget(forest);
    }
    let objects = moto.list_objects("secret");
    assert!(objects.len() > 2, "{} objects", objects.len());
    for (name, bytes) in &objects {
        for needle in [
            &secret[..],
            b"plaintext-tree-name",
            b"key-0000",
            b"log-only-key",
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{name} holds {:?}",
                String::from_utf8_lossy(needle)
            );
        }
    }
    let forest = Forest::open_url("s3://secret/s", opts()).unwrap();
    let tree = forest.tree("plaintext-tree-name").unwrap().unwrap();
    assert_eq!(
        tree.get(b"log-only-key").unwrap().as_deref(),
        Some(&secret[..])
    );
}

#[test]
fn a_second_writer_displaces_the_first_and_never_both_commit() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("fence");
    let url = "s3://fence/s";
    let first = Forest::open_url(url, options(&moto.endpoint())).unwrap();
    let tree = first.create_tree("t").unwrap();
    tree.insert(b"first", b"1").unwrap();
    first.commit().unwrap();

    let second = Forest::open_url(url, options(&moto.endpoint())).unwrap();
    let t2 = second.tree("t").unwrap().unwrap();
    assert_eq!(t2.get(b"first").unwrap().as_deref(), Some(&b"1"[..]));

    // The displaced writer's commits fail, by log and by checkpoint.
    tree.insert(b"lost", b"x").unwrap();
    let e = first.commit().unwrap_err();
    assert!(!e.to_string().is_empty());
    assert!(first.checkpoint().is_err());

    t2.insert(b"second", b"2").unwrap();
    second.commit().unwrap();
    second.checkpoint().unwrap();
    drop((tree, first, t2, second));

    let forest = Forest::open_url_read_only(url, options(&moto.endpoint())).unwrap();
    let t = forest.tree("t").unwrap().unwrap();
    assert_eq!(t.get(b"second").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(t.get(b"lost").unwrap(), None);
    assert!(forest.check().unwrap().is_clean());
}

#[test]
fn bad_urls_and_options_are_typed_errors() {
    let opts = Options::default();
    for url in ["s3://", "ftp://x/y", "file://relative", "nothing"] {
        assert!(Forest::open_url(url, opts.clone()).is_err(), "{url}");
    }
    let e = Forest::open_url(
        "s3://bucket/p",
        Options::default().storage_option("no_such_option", "1"),
    )
    .err()
    .expect("refused");
    assert!(e.to_string().contains("no_such_option"), "{e}");
    // file:// is a directory store.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let forest = Forest::open_url(&url, Options::default()).unwrap();
    forest.create_tree("t").unwrap();
    forest.commit().unwrap();
    drop(forest);
    assert_eq!(
        Forest::open(dir.path(), Options::default())
            .unwrap()
            .tree_names(),
        vec!["t"]
    );
}

/// Through a link that delays every request by 20 ms the store still
/// works: a functional check of the latency proxy path (the timings are a
/// benchmark, `examples/s3_latency.rs`, not a test).
#[test]
fn a_store_works_through_a_slow_link() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("slow");
    let proxy = LatencyProxy::start(moto.port(), Duration::from_millis(20));
    let opts = || options(&proxy.endpoint()).durability(Durability::Immediate);
    {
        let forest = Forest::open_url("s3://slow/s", opts()).unwrap();
        let tree = forest.create_tree("t").unwrap();
        for i in 0..3_000 {
            tree.insert(&key(i), &value(i)).unwrap();
        }
        forest.commit().unwrap();
    }
    let forest = Forest::open_url("s3://slow/s", opts()).unwrap();
    let tree = forest.tree("t").unwrap().unwrap();
    let got: Vec<_> = tree.range(..).unwrap().map(|r| r.unwrap().0).collect();
    assert_eq!(got, (0..3_000).map(key).collect::<Vec<_>>());
    assert!(proxy.requests() > 3, "{}", proxy.requests());
}

/// A commit that fits the log costs one request: the log record's part.
#[test]
fn a_small_commit_costs_one_request() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("count");
    let proxy = LatencyProxy::start(moto.port(), Duration::ZERO);
    let forest = Forest::open_url("s3://count/s", options(&proxy.endpoint())).unwrap();
    let tree = forest.create_tree("t").unwrap();
    forest.commit().unwrap();
    let before = proxy.requests();
    for i in 0..20 {
        tree.insert(&key(i), &value(i)).unwrap();
        forest.commit().unwrap();
    }
    // The proxy counts a request when it forwards it; the answer of the
    // last one may still be on its way, never a request more.
    assert_eq!(proxy.requests() - before, 20);
}

/// The displaced writer fails even when the log it appends to has no
/// object yet (just after its checkpoint started a new one), and the new
/// writer commits.
#[test]
fn a_writer_displaced_right_after_its_checkpoint_fails_and_the_new_one_commits() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("fence2");
    let url = "s3://fence2/s";
    let first = Forest::open_url(url, options(&moto.endpoint())).unwrap();
    let tree = first.create_tree("t").unwrap();
    tree.insert(b"a", b"1").unwrap();
    first.commit().unwrap();
    first.checkpoint().unwrap();

    let second = Forest::open_url(url, options(&moto.endpoint())).unwrap();
    tree.insert(b"b", b"2").unwrap();
    assert!(first.commit().is_err(), "the displaced writer committed");
    let t2 = second.tree("t").unwrap().unwrap();
    t2.insert(b"c", b"3").unwrap();
    second.commit().unwrap();
    drop((tree, first, t2, second));
    let forest = Forest::open_url_read_only(url, options(&moto.endpoint())).unwrap();
    let t = forest.tree("t").unwrap().unwrap();
    assert_eq!(t.get(b"b").unwrap(), None);
    assert_eq!(t.get(b"c").unwrap().as_deref(), Some(&b"3"[..]));
}
