//! Issue 12 item 13: a node blob whose zstd frame declares far more than
//! the largest node a store holds (a 2 KB frame declaring 60 MiB, where
//! the largest node is a 1 MiB chunk of a large value) is refused without
//! allocating anything near what it declares. In a test binary of its own,
//! so that the peak heap use it measures is this test's alone.

#[path = "support/craft.rs"]
mod craft;

use larix::{FilterSpec, Forest, Options};
use larix_btree::Node;
use peak_alloc::PeakAlloc;

#[global_allocator]
static PEAK: PeakAlloc = PeakAlloc;

#[test]
fn a_frame_declaring_more_than_a_node_allocates_nothing_large() {
    let filters = vec![FilterSpec::zstd(1), FilterSpec::checksum()];
    let options = || {
        Options::default()
            .filters(filters.clone())
            .node_size(4096)
            .workers(1)
    };
    let dir = tempfile::tempdir().unwrap();
    let leaf = {
        let forest = Forest::open(dir.path(), options()).unwrap();
        let t = forest.create_tree("t").unwrap();
        t.insert(b"key", b"value").unwrap();
        forest.commit().unwrap();
        drop((t, forest));
        let c = craft::Crafted::open(dir.path(), &filters);
        c.ids()[0]
    };
    // A leaf of 60 MiB: one huge value, compressed to a small frame.
    {
        let mut c = craft::Crafted::open(dir.path(), &filters);
        let mut huge = Node::new_leaf();
        huge.insert_leaf(0, b"key", &vec![0u8; 60 << 20]);
        c.put_node(leaf, &huge);
        c.commit(|_| {});
    }
    let forest = Forest::open(dir.path(), options()).unwrap();
    let t = forest.tree("t").unwrap().unwrap();
    PEAK.reset_peak_usage();
    let before = PEAK.current_usage();
    let result = t.get(b"key");
    let peak = PEAK.peak_usage() - before;
    let err = match result {
        Ok(v) => panic!("the read returned {} bytes", v.map_or(0, |v| v.len())),
        Err(e) => e,
    };
    let bound = larix_btree::MAX_VALUE_NODE.to_string();
    assert!(err.to_string().contains(&bound), "{err}");
    assert!(peak < 8 << 20, "reading the blob took {peak} bytes");
}
