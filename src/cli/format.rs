//! Bytes as the command line reads and writes them: hex, escaped text, and
//! the two record formats of `import` and `export`.
//!
//! - Text output escapes what would break a line: `\t`, `\n`, `\r`, `\\`,
//!   other control characters and bytes that are not UTF-8 as `\xNN`. One
//!   entry is always one line; `--hex` gives the exact bytes.
//! - TSV records are `hex key TAB hex value`.
//! - JSON-lines records are `{"key": TEXT, "value": TEXT}`, with `key_hex` /
//!   `value_hex` (hex strings) in place of bytes that are not UTF-8. A
//!   record naming a field twice is refused, not read as its last value.

use super::error::{CliError, Result};
use serde_json::{Map, Value};
use std::ffi::OsStr;
use std::fmt::Write as _;

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The bytes of hex string `s` (either case); `what` names it in errors.
///
/// # Errors
/// [`CliError::BadInput`] for an odd length or a character that is not a
/// hex digit.
pub fn from_hex(s: &str, what: &str) -> Result<Vec<u8>> {
    let digits = s.as_bytes();
    let pairs = digits.chunks_exact(2);
    if !pairs.remainder().is_empty() {
        return Err(CliError::BadInput(format!(
            "invalid hex in {what}: odd number of digits ({})",
            digits.len()
        )));
    }
    let digit = |i: usize| -> Result<u8> {
        let c = digits[i];
        (c as char).to_digit(16).map(|d| d as u8).ok_or_else(|| {
            let shown = s.get(i..).and_then(|r| r.chars().next()).unwrap_or('?');
            CliError::BadInput(format!(
                "invalid hex in {what}: {shown:?} at position {i} is not a hex digit"
            ))
        })
    };
    (0..pairs.len())
        .map(|j| Ok((digit(2 * j)? << 4) | digit(2 * j + 1)?))
        .collect()
}

/// `bytes` as one line of text: UTF-8 as it is, with line-breaking
/// characters, backslashes and non-UTF-8 bytes escaped.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => {
                    let _ = write!(out, "\\u{{{:x}}}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// How keys and values typed on the command line become bytes, and how
/// stored bytes are printed.
#[derive(Clone, Copy, Debug)]
pub struct Codec {
    /// Hex in and out, rather than text.
    pub hex: bool,
}

impl Codec {
    /// The bytes of command-line argument `arg`; `what` names it in errors.
    ///
    /// # Errors
    /// [`CliError::BadInput`] for bad hex, or an argument that is not
    /// UTF-8 (bytes that are not text are given as hex).
    pub fn parse(self, arg: &OsStr, what: &str) -> Result<Vec<u8>> {
        let arg = arg.to_str().ok_or_else(|| {
            CliError::BadInput(if self.hex {
                format!("invalid hex in {what}: it is not valid UTF-8")
            } else {
                format!("{what} is not valid UTF-8; pass bytes as hex with --hex")
            })
        })?;
        if self.hex {
            from_hex(arg, what)
        } else {
            Ok(arg.as_bytes().to_vec())
        }
    }

    /// `bytes` as printed: hex, or escaped text.
    pub fn show(self, bytes: &[u8]) -> String {
        if self.hex {
            to_hex(bytes)
        } else {
            escape(bytes)
        }
    }

    /// A key for an error message: quoted text, or hex.
    pub fn quote(self, bytes: &[u8]) -> String {
        if self.hex {
            to_hex(bytes)
        } else {
            format!("\"{}\"", escape(bytes))
        }
    }
}

/// One TSV record line (without the newline).
pub fn tsv_line(key: &[u8], value: &[u8]) -> String {
    format!("{}\t{}", to_hex(key), to_hex(value))
}

/// The entry of TSV record `line`.
///
/// # Errors
/// [`CliError::BadInput`] if the line is not two hex fields.
pub fn parse_tsv(line: &str) -> Result<(Vec<u8>, Vec<u8>)> {
    let (k, v) = line
        .split_once('\t')
        .ok_or_else(|| CliError::BadInput("expected hex key, tab, hex value".to_string()))?;
    Ok((from_hex(k, "key")?, from_hex(v.trim_end(), "value")?))
}

/// One JSON-lines record (without the newline).
pub fn jsonl_line(key: &[u8], value: &[u8]) -> String {
    let mut obj = Map::new();
    for (name, bytes) in [("key", key), ("value", value)] {
        match std::str::from_utf8(bytes) {
            Ok(text) => obj.insert(name.to_string(), Value::from(text)),
            Err(_) => obj.insert(format!("{name}_hex"), Value::from(to_hex(bytes))),
        };
    }
    Value::Object(obj).to_string()
}

/// The entry of JSON-lines record `line`.
///
/// # Errors
/// [`CliError::BadInput`] if it is not an object with a key and a value.
pub fn parse_jsonl(line: &str) -> Result<(Vec<u8>, Vec<u8>)> {
    let value: Value =
        serde_json::from_str(line).map_err(|e| CliError::BadInput(format!("invalid JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| CliError::BadInput("expected a JSON object".to_string()))?;
    // The map keeps only the last of repeated names: find them in the text.
    let names = member_names(line);
    if let Some(repeated) = (1..names.len()).find(|&i| names[..i].contains(&names[i])) {
        return Err(CliError::BadInput(format!(
            "duplicate field {:?}",
            names[repeated]
        )));
    }
    let field = |name: &str| -> Result<Vec<u8>> {
        let hex_name = format!("{name}_hex");
        match (obj.get(name), obj.get(&hex_name)) {
            (Some(Value::String(s)), None) => Ok(s.as_bytes().to_vec()),
            (None, Some(Value::String(s))) => from_hex(s, &hex_name),
            (None, None) => Err(CliError::BadInput(format!(
                "missing \"{name}\" or \"{hex_name}\""
            ))),
            _ => Err(CliError::BadInput(format!(
                "expected one string field \"{name}\" or \"{hex_name}\""
            ))),
        }
    };
    Ok((field("key")?, field("value")?))
}

/// The member names of the JSON object `text` (valid JSON, as
/// `serde_json` has already parsed it), decoded, in order and with
/// repeats; members of nested objects are not included.
fn member_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut depth = 0usize;
    let mut expect_name = false;
    let mut chars = text.char_indices();
    while let Some((start, c)) = chars.next() {
        match c {
            '{' | '[' => {
                depth += 1;
                expect_name = c == '{' && depth == 1;
            }
            '}' | ']' => depth = depth.saturating_sub(1),
            ',' => expect_name = depth == 1,
            '"' => {
                let end = string_end(&mut chars).unwrap_or(text.len());
                if expect_name {
                    names.extend(serde_json::from_str::<String>(&text[start..end]).ok());
                    expect_name = false;
                }
            }
            _ => {}
        }
    }
    names
}

/// Consumes the rest of a JSON string whose opening quote was just read;
/// the byte offset just past its closing quote.
fn string_end(chars: &mut std::str::CharIndices) -> Option<usize> {
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '"' => return Some(i + 1),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_names_bad_digits() {
        assert_eq!(
            from_hex(&to_hex(b"\x00\xffab"), "key").unwrap(),
            b"\x00\xffab"
        );
        assert_eq!(from_hex("ABcd", "key").unwrap(), vec![0xab, 0xcd]);
        let odd = from_hex("abc", "key").unwrap_err().to_string();
        assert!(odd.contains("odd number"), "{odd}");
        let bad = from_hex("zz", "value").unwrap_err().to_string();
        assert!(bad.contains("'z' at position 0"), "{bad}");
        let multibyte = from_hex("aéb", "key").unwrap_err().to_string();
        assert!(multibyte.contains("'é' at position 1"), "{multibyte}");
    }

    /// Issue 12 item 14: an argument that is not UTF-8 names `--hex`.
    #[cfg(unix)]
    #[test]
    fn arguments_that_are_not_utf8_point_to_hex() {
        use std::os::unix::ffi::OsStrExt;
        let arg = OsStr::from_bytes(b"caf\xe9");
        let text = Codec { hex: false }.parse(arg, "key").unwrap_err();
        assert_eq!(
            text.to_string(),
            "key is not valid UTF-8; pass bytes as hex with --hex"
        );
        let hex = Codec { hex: true }.parse(arg, "key").unwrap_err();
        assert!(hex.to_string().starts_with("invalid hex in key"), "{hex}");
        let ok = Codec { hex: false }.parse(OsStr::new("café"), "key");
        assert_eq!(ok.unwrap(), "café".as_bytes());
    }

    #[test]
    fn escaping_keeps_one_line() {
        assert_eq!(escape(b"a\tb\nc\\d"), "a\\tb\\nc\\\\d");
        assert_eq!(escape(b"\x01\xffok"), "\\u{1}\\xffok");
        assert_eq!(escape("héllo".as_bytes()), "héllo");
    }

    #[test]
    fn records_round_trip() {
        for (k, v) in [
            (&b"key"[..], &b"value"[..]),
            (b"\xff\x00", b""),
            (b"", b"\n\""),
        ] {
            assert_eq!(
                parse_tsv(&tsv_line(k, v)).unwrap(),
                (k.to_vec(), v.to_vec())
            );
            assert_eq!(
                parse_jsonl(&jsonl_line(k, v)).unwrap(),
                (k.to_vec(), v.to_vec())
            );
        }
        assert!(jsonl_line(b"\xff", b"v").contains("key_hex"));
        assert!(parse_jsonl("{\"key\": \"k\"}").is_err());
        assert!(parse_jsonl("[1]").is_err());
        assert!(parse_tsv("abc").is_err());
    }

    #[test]
    fn member_names_are_the_top_level_ones_decoded() {
        let text = r#"{"a": {"a": 1, "b": [{"c": 2}]}, "k\u0065y": "}\",{\"x\":", "z": [1, "y"]}"#;
        assert_eq!(member_names(text), ["a", "key", "z"]);
        assert_eq!(member_names("{}"), Vec::<String>::new());
        let err = parse_jsonl(r#"{"key": "k", "value": "v", "key": "j"}"#).unwrap_err();
        assert!(err.to_string().contains("duplicate field \"key\""), "{err}");
        assert!(parse_jsonl(r#"{"key": "k", "value": {"a": 1, "a": 2}}"#).is_err());
        assert!(parse_jsonl(r#"{"key": "k", "value": "v", "note": {"a": 1, "a": 2}}"#).is_ok());
    }
}
