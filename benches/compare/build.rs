//! Records the versions of the peers, from this crate's `Cargo.lock`, so
//! the report names exactly what ran (`PEER_VERSIONS`).

fn main() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let mut versions = Vec::new();
    let mut name = "";
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = n.trim_matches('"');
        } else if let Some(v) = line.strip_prefix("version = ") {
            if [
                "redb",
                "heed",
                "lmdb-master-sys",
                "sled",
                "fjall",
                "lsm-tree",
            ]
            .contains(&name)
            {
                versions.push(format!("{name} {}", v.trim_matches('"')));
            }
        }
    }
    println!("cargo:rustc-env=PEER_VERSIONS={}", versions.join(", "));
}
