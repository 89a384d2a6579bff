//! Helpers shared by the unit tests.

/// The absolute path of the system program `name`, looked up in `/usr/bin`
/// and `/bin` (command filters refuse relative programs).
///
/// # Panics
///
/// If neither directory holds it: the test cannot run here.
pub(crate) fn program(name: &str) -> String {
    ["/usr/bin", "/bin"]
        .iter()
        .map(|dir| format!("{dir}/{name}"))
        .find(|path| std::path::Path::new(path).is_file())
        .unwrap_or_else(|| panic!("this test needs `{name}` in /usr/bin or /bin"))
}
