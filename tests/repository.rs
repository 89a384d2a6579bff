//! The repository's own hygiene: issue 12 item 16, lock files stay out of
//! git (they record registry addresses). Skipped, with a line saying so,
//! outside a git checkout (a source tarball) or where git is missing.

use std::path::Path;
use std::process::Command;

/// Issue 12 item 16: `benches/compare/Cargo.lock` was tracked; no
/// `Cargo.lock` may be, and `.gitignore` keeps every one out.
#[test]
fn no_lock_file_is_tracked() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let listed = Command::new("git")
        .args(["ls-files"])
        .current_dir(root)
        .output();
    let Some(listed) = listed.ok().filter(|o| o.status.success()) else {
        eprintln!("not a git checkout (or no git): skipped");
        return;
    };
    let files = String::from_utf8_lossy(&listed.stdout);
    let locks: Vec<&str> = files
        .lines()
        .filter(|f| f.ends_with("Cargo.lock"))
        .collect();
    assert!(locks.is_empty(), "tracked lock files: {locks:?}");
    let ignore = std::fs::read_to_string(root.join(".gitignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l.trim() == "Cargo.lock"),
        ".gitignore does not ignore every Cargo.lock"
    );
}
