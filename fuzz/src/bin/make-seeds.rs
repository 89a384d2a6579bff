//! Writes the seed inputs of every fuzz target to `seeds/<target>/`,
//! replacing files of the same name.
//!
//! Usage (from `fuzz/`): `cargo run --bin make-seeds`.

use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    for (target, seeds) in [
        ("decode", larix_fuzz::seeds::decode()),
        ("filters", larix_fuzz::seeds::filters()),
        ("model", larix_fuzz::seeds::model()),
    ] {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        for (name, bytes) in seeds {
            std::fs::write(dir.join(&name), &bytes)?;
            println!("{target}/{name}: {} bytes", bytes.len());
        }
    }
    Ok(())
}
