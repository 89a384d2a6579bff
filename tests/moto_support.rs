//! The S3 test support itself: `tests/support/moto.rs` starts moto, sets
//! up and reads buckets, and its latency proxy forwards requests. Skipped,
//! with a loud message, where `moto_server` is not installed (unless
//! `LARIX_REQUIRE_S3` is set).

#[path = "support/moto.rs"]
mod moto;

use moto::{http_request, LatencyProxy, Moto};
use std::time::Duration;

/// A bucket starts empty, and an object put in it lists back with its
/// bytes.
#[test]
fn moto_stores_and_lists_objects() {
    let Some(moto) = Moto::start() else { return };
    // "b1" would do for S3 tests elsewhere, but bucket names need three
    // characters at least and moto enforces it.
    moto.create_bucket("bk1");
    assert!(moto.list_objects("bk1").is_empty());

    moto.put_object("bk1", "dir/a.seg", b"first object\0\xff");
    moto.put_object("bk1", "top", b"");
    assert_eq!(
        moto.list_objects("bk1"),
        vec![
            ("dir/a.seg".to_string(), b"first object\0\xff".to_vec()),
            ("top".to_string(), Vec::new()),
        ]
    );
    // Overwriting an object is allowed (moto refuses it to anonymous
    // requests; the helpers send an Authorization header).
    moto.put_object("bk1", "top", b"second");
    assert_eq!(moto.get_object("bk1", "top"), Some(b"second".to_vec()));
    assert_eq!(moto.get_object("bk1", "missing"), None);
}

/// A listing longer than one page follows the continuation tokens (with
/// pages of two keys here; `list_objects` asks for moto's maximum, 1000).
#[test]
fn moto_lists_past_one_page() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("many");
    let keys: Vec<String> = (0..5).map(|i| format!("k{i}")).collect();
    for key in &keys {
        moto.put_object("many", key, key.as_bytes());
    }
    assert_eq!(moto.list_keys("many", 2), keys);
    assert_eq!(moto.list_keys("many", 5), keys);
    let listed = moto.list_objects("many");
    let expected: Vec<(String, Vec<u8>)> = keys
        .iter()
        .map(|k| (k.clone(), k.clone().into_bytes()))
        .collect();
    assert_eq!(listed, expected);
}

/// Requests through the latency proxy reach moto and are counted.
#[test]
fn latency_proxy_forwards_to_moto() {
    let Some(moto) = Moto::start() else { return };
    let proxy = LatencyProxy::start(moto.port(), Duration::from_millis(20));
    assert_eq!(
        proxy.endpoint(),
        format!("http://127.0.0.1:{}", proxy.port())
    );

    let (status, body) = http_request(proxy.port(), "PUT", "/viaproxy", b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(proxy.requests() >= 1);

    let (status, _) = http_request(proxy.port(), "PUT", "/viaproxy/obj", b"through the proxy");
    assert_eq!(status, 200);
    let (status, body) = http_request(proxy.port(), "GET", "/viaproxy/obj", b"");
    assert_eq!((status, body), (200, b"through the proxy".to_vec()));
    assert!(proxy.requests() >= 3);

    // And the bucket is really in moto, not in the proxy.
    assert_eq!(
        moto.list_objects("viaproxy"),
        vec![("obj".to_string(), b"through the proxy".to_vec())]
    );
}
