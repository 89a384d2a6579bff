//! [`EncryptionKey`]: the 32-byte secret of the encryption filter, and how
//! it is read from a key file.
//!
//! Invariants:
//! - The key's bytes never reach `Debug` output, error messages or the
//!   pipeline descriptor.
//! - The bytes are overwritten with zeros when the key is dropped (copies the
//!   caller made before handing the key over are the caller's business).
//! - A key file is accepted in exactly two forms: 32 raw bytes, or 64 hex
//!   characters optionally followed by one `\n` or `\r\n`. Anything else is
//!   a [`FilterError::KeyFileFormat`] naming the file, never its contents.

use std::fmt;
use std::io::Read;
use std::path::Path;

use zeroize::Zeroize;

use crate::FilterError;

/// Length of an encryption key, in bytes.
pub const KEY_LEN: usize = 32;

/// The longest key file accepted: 64 hex characters and `\r\n`.
const MAX_KEY_FILE_LEN: usize = 2 * KEY_LEN + 2;

/// A 256-bit secret key. `Debug` prints `EncryptionKey(<redacted>)`.
#[derive(Clone, PartialEq, Eq)]
pub struct EncryptionKey([u8; KEY_LEN]);

impl EncryptionKey {
    /// Wraps raw key bytes.
    pub fn new(bytes: [u8; KEY_LEN]) -> Self {
        EncryptionKey(bytes)
    }

    /// Reads a key file: exactly 32 raw bytes, or 64 hex characters with an
    /// optional trailing newline. At most a few dozen bytes are read, however
    /// large the file is.
    ///
    /// # Errors
    ///
    /// [`FilterError::KeyFileIo`] if the file cannot be read,
    /// [`FilterError::KeyFileFormat`] if its contents have another form;
    /// both name the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, FilterError> {
        let path = path.as_ref();
        let io_err = |source| FilterError::KeyFileIo {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io_err)?;
        // One byte more than the longest valid file, to see that it is too long.
        let mut contents = Vec::with_capacity(MAX_KEY_FILE_LEN + 1);
        let read = file
            .take(MAX_KEY_FILE_LEN as u64 + 1)
            .read_to_end(&mut contents)
            .map_err(io_err);
        let parsed = read.and_then(|_| {
            parse_key_file(&contents).map_err(|reason| FilterError::KeyFileFormat {
                path: path.to_path_buf(),
                reason,
            })
        });
        contents.zeroize();
        parsed
    }

    /// The raw key bytes.
    pub(crate) fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl From<[u8; KEY_LEN]> for EncryptionKey {
    fn from(bytes: [u8; KEY_LEN]) -> Self {
        EncryptionKey::new(bytes)
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey(<redacted>)")
    }
}

impl Drop for EncryptionKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// Parses key-file contents; the error is a reason that never quotes them.
fn parse_key_file(contents: &[u8]) -> Result<EncryptionKey, String> {
    if contents.len() == KEY_LEN {
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(contents);
        return Ok(EncryptionKey(key));
    }
    let hex = contents
        .strip_suffix(b"\r\n")
        .or_else(|| contents.strip_suffix(b"\n"))
        .unwrap_or(contents);
    if hex.len() != 2 * KEY_LEN {
        return Err(if contents.len() > MAX_KEY_FILE_LEN {
            format!("more than {MAX_KEY_FILE_LEN} bytes")
        } else {
            format!("{} bytes", contents.len())
        });
    }
    let mut key = [0u8; KEY_LEN];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        match (hex_digit(pair[0]), hex_digit(pair[1])) {
            (Some(hi), Some(lo)) => key[i] = hi << 4 | lo,
            _ => {
                key.zeroize();
                return Err(format!(
                    "{} bytes, but not all hex digits (first bad pair at offset {})",
                    contents.len(),
                    2 * i
                ));
            }
        }
    }
    Ok(EncryptionKey(key))
}

/// The value of one ASCII hex digit, either case.
fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn key_file(contents: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(contents).unwrap();
        f.flush().unwrap();
        f
    }

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191A1B1C1D1E1F";

    fn counting_key() -> [u8; KEY_LEN] {
        std::array::from_fn(|i| i as u8)
    }

    #[test]
    fn raw_key_file() {
        let f = key_file(&[0xAB; KEY_LEN]);
        assert_eq!(
            EncryptionKey::from_file(f.path()).unwrap().bytes(),
            &[0xAB; KEY_LEN]
        );
    }

    #[test]
    fn hex_key_file_with_and_without_newline() {
        for suffix in ["", "\n", "\r\n"] {
            let f = key_file(format!("{HEX}{suffix}").as_bytes());
            let key = EncryptionKey::from_file(f.path()).unwrap();
            assert_eq!(key.bytes(), &counting_key(), "suffix {suffix:?}");
        }
    }

    #[test]
    fn malformed_key_files_name_the_file() {
        let double_newline = format!("{HEX}\n\n");
        let cases: &[(&[u8], &str)] = &[
            (b"", "0 bytes"),
            (&[7; 31], "31 bytes"),
            (&[7; 33], "33 bytes"),
            (
                b"zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                "hex digits",
            ),
            (&[b'a'; 200], "more than 66 bytes"),
            (double_newline.as_bytes(), "66 bytes"),
        ];
        for (contents, expected) in cases {
            let f = key_file(contents);
            let err = EncryptionKey::from_file(f.path()).unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, FilterError::KeyFileFormat { .. }), "{msg}");
            assert!(msg.contains(&f.path().display().to_string()), "{msg}");
            assert!(msg.contains(expected), "{msg} lacks {expected}");
        }
    }

    #[test]
    fn missing_key_file_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-key");
        let err = EncryptionKey::from_file(&path).unwrap_err();
        assert!(matches!(err, FilterError::KeyFileIo { .. }), "{err}");
        assert!(err.to_string().contains("no-such-key"), "{err}");
    }

    #[test]
    fn debug_hides_the_key() {
        let key = EncryptionKey::new([0x5A; KEY_LEN]);
        let text = format!("{key:?} {key:#?}");
        assert!(
            !text.contains("90") && !text.contains("5a") && !text.contains("5A"),
            "{text}"
        );
        assert!(text.contains("redacted"));
    }
}
