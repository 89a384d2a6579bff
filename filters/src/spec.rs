//! [`FilterSpec`]: the description of one filter, as a user writes it in the
//! store's options, and its turning into a runnable [`Filter`].
//!
//! Invariants:
//! - A spec compares equal to another exactly when they would build filters
//!   producing the same format with the same key: a command's timeout is
//!   not compared, since it does not change the format.
//! - `Debug` never prints key bytes (the key is an [`EncryptionKey`]).
//! - [`FilterSpec::build`] checks each spec's own parameters (zstd level
//!   range, non-empty command argv whose program is an absolute path); the
//!   order of specs is the [`Pipeline`](crate::Pipeline)'s business.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::checksum::ChecksumFilter;
use crate::command::CommandFilter;
use crate::compress::ZstdFilter;
use crate::encrypt::EncryptFilter;
use crate::{Direction, EncryptionKey, Filter, FilterError};

/// The smallest zstd level accepted.
pub const ZSTD_MIN_LEVEL: i32 = 1;
/// The largest zstd level accepted.
pub const ZSTD_MAX_LEVEL: i32 = 22;

/// The default bound on the size of any filter's decoded output: 64 MiB,
/// far above the largest node size, far below a hostile frame's claims.
pub const DEFAULT_MAX_DECODED_LEN: usize = 64 << 20;

/// How long a command filter's command may run before it is killed, unless
/// set with [`FilterSpec::command_with_timeout`]: 60 s, far longer than any
/// sane codec takes on one node, short enough that a hung command shows.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// One filter of a pipeline, with its parameters.
///
/// Equality compares what determines the format and the key, not a
/// command's timeout (see the module invariants).
#[derive(Clone, Eq, Debug)]
#[non_exhaustive]
pub enum FilterSpec {
    /// zstd compression at `level` (1..=22).
    Zstd {
        /// Compression level.
        level: i32,
    },
    /// A crc32c checksum, seeded with the node id, appended to the blob.
    Checksum,
    /// XChaCha20-Poly1305 authenticated encryption with the node id as
    /// associated data.
    Encrypt {
        /// The secret key (redacted in `Debug`).
        key: EncryptionKey,
    },
    /// An external Unix command for each direction; the blob is its
    /// standard input, the result its standard output.
    Command {
        /// argv of the encoding command; `argv[0]` must be an absolute path
        /// (never looked up in `PATH` nor in the current directory).
        encode: Vec<String>,
        /// argv of the decoding command.
        decode: Vec<String>,
        /// How long each run may take before the command is killed
        /// ([`DEFAULT_COMMAND_TIMEOUT`] unless set); not part of the format,
        /// so neither compared nor described.
        timeout: Duration,
    },
}

impl PartialEq for FilterSpec {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (FilterSpec::Zstd { level: a }, FilterSpec::Zstd { level: b }) => a == b,
            (FilterSpec::Checksum, FilterSpec::Checksum) => true,
            (FilterSpec::Encrypt { key: a }, FilterSpec::Encrypt { key: b }) => a == b,
            (
                FilterSpec::Command {
                    encode: a_encode,
                    decode: a_decode,
                    ..
                },
                FilterSpec::Command {
                    encode: b_encode,
                    decode: b_decode,
                    ..
                },
            ) => a_encode == b_encode && a_decode == b_decode,
            _ => false,
        }
    }
}

impl FilterSpec {
    /// zstd compression at `level`; checked by [`Pipeline::new`](crate::Pipeline::new).
    pub fn zstd(level: i32) -> Self {
        FilterSpec::Zstd { level }
    }

    /// A crc32c checksum; it must be the last filter of a pipeline.
    pub fn checksum() -> Self {
        FilterSpec::Checksum
    }

    /// Authenticated encryption under a 32-byte key.
    pub fn encrypt(key: [u8; 32]) -> Self {
        FilterSpec::Encrypt {
            key: EncryptionKey::new(key),
        }
    }

    /// Authenticated encryption under the key stored in `path`: exactly
    /// 32 raw bytes, or 64 hex characters and an optional newline.
    ///
    /// # Errors
    ///
    /// [`FilterError::KeyFileIo`] or [`FilterError::KeyFileFormat`], naming
    /// the file.
    pub fn encrypt_key_file(path: impl AsRef<Path>) -> Result<Self, FilterError> {
        Ok(FilterSpec::Encrypt {
            key: EncryptionKey::from_file(path)?,
        })
    }

    /// Pipes blobs through `encode` on the way to disk and through `decode`
    /// on the way back, e.g.
    /// `FilterSpec::command(&["/usr/bin/gzip", "-c"], &["/usr/bin/gzip", "-dc"])`.
    /// An empty argv, or a program that is not an absolute path, is refused
    /// by [`Pipeline::new`](crate::Pipeline::new).
    pub fn command(encode: &[&str], decode: &[&str]) -> Self {
        Self::command_with_timeout(encode, decode, DEFAULT_COMMAND_TIMEOUT)
    }

    /// [`FilterSpec::command`] whose commands are killed, and the call
    /// failed with [`FilterError::CommandTimeout`], when a run takes longer
    /// than `timeout`. The timeout is not part of the format: it is not in
    /// [`Pipeline::describe`](crate::Pipeline::describe), and specs that
    /// differ only in it compare equal.
    pub fn command_with_timeout(encode: &[&str], decode: &[&str], timeout: Duration) -> Self {
        let owned = |argv: &[&str]| argv.iter().map(|s| s.to_string()).collect();
        FilterSpec::Command {
            encode: owned(encode),
            decode: owned(decode),
            timeout,
        }
    }

    /// The name of the filter this spec builds (`"zstd"`, `"checksum"`,
    /// `"encrypt"`, `"command"`).
    pub fn name(&self) -> &'static str {
        match self {
            FilterSpec::Zstd { .. } => ZstdFilter::NAME,
            FilterSpec::Checksum => ChecksumFilter::NAME,
            FilterSpec::Encrypt { .. } => EncryptFilter::NAME,
            FilterSpec::Command { .. } => CommandFilter::NAME,
        }
    }

    /// Builds the filter, with [`DEFAULT_MAX_DECODED_LEN`] as its bound on
    /// decoded output.
    ///
    /// # Errors
    ///
    /// [`FilterError::ZstdLevel`] for a level outside
    /// [`ZSTD_MIN_LEVEL`]..=[`ZSTD_MAX_LEVEL`], [`FilterError::EmptyCommand`]
    /// for an empty argv or program name, [`FilterError::RelativeCommand`]
    /// for a program that is not an absolute path.
    pub fn build(&self) -> Result<Arc<dyn Filter>, FilterError> {
        self.build_with_limit(DEFAULT_MAX_DECODED_LEN)
    }

    /// [`build`](FilterSpec::build) with an explicit bound on decoded output.
    pub(crate) fn build_with_limit(
        &self,
        max_decoded_len: usize,
    ) -> Result<Arc<dyn Filter>, FilterError> {
        Ok(match self {
            FilterSpec::Zstd { level } => {
                if !(ZSTD_MIN_LEVEL..=ZSTD_MAX_LEVEL).contains(level) {
                    return Err(FilterError::ZstdLevel {
                        level: *level,
                        min: ZSTD_MIN_LEVEL,
                        max: ZSTD_MAX_LEVEL,
                    });
                }
                Arc::new(ZstdFilter::new(*level, max_decoded_len))
            }
            FilterSpec::Checksum => Arc::new(ChecksumFilter),
            FilterSpec::Encrypt { key } => Arc::new(EncryptFilter::new(key)),
            FilterSpec::Command {
                encode,
                decode,
                timeout,
            } => {
                check_argv(encode, Direction::Encode)?;
                check_argv(decode, Direction::Decode)?;
                Arc::new(CommandFilter::new(
                    encode.clone(),
                    decode.clone(),
                    max_decoded_len,
                    *timeout,
                ))
            }
        })
    }
}

/// Checks that `argv` names a program, by an absolute path.
fn check_argv(argv: &[String], direction: Direction) -> Result<(), FilterError> {
    let program = argv.first().map_or("", String::as_str);
    if program.is_empty() {
        return Err(FilterError::EmptyCommand { direction });
    }
    if !Path::new(program).is_absolute() {
        return Err(FilterError::RelativeCommand {
            direction,
            program: program.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_key() {
        let spec = FilterSpec::encrypt([0xC3; 32]);
        let text = format!("{spec:?}");
        assert!(
            text.contains("Encrypt") && text.contains("redacted"),
            "{text}"
        );
        assert!(
            !text.contains("195") && !text.to_lowercase().contains("c3"),
            "{text}"
        );
    }

    #[test]
    fn specs_compare_by_parameters_and_key() {
        assert_eq!(FilterSpec::zstd(3), FilterSpec::zstd(3));
        assert_ne!(FilterSpec::zstd(3), FilterSpec::zstd(4));
        assert_eq!(FilterSpec::encrypt([1; 32]), FilterSpec::encrypt([1; 32]));
        assert_ne!(FilterSpec::encrypt([1; 32]), FilterSpec::encrypt([2; 32]));
        assert_eq!(
            FilterSpec::command(&["gzip", "-c"], &["gzip", "-dc"]),
            FilterSpec::command(&["gzip", "-c"], &["gzip", "-dc"])
        );
        assert_ne!(
            FilterSpec::command(&["gzip", "-c"], &["gzip", "-dc"]),
            FilterSpec::command(&["gzip", "-c"], &["gzip", "-d"])
        );
        assert_ne!(FilterSpec::checksum(), FilterSpec::zstd(3));
    }

    /// Issue 12 item 7: the timeout is a property of the run, not of the
    /// format: equal specs, and the default is 60 s.
    #[test]
    fn command_timeout_is_not_compared() {
        let quick = FilterSpec::command_with_timeout(&["/a"], &["/b"], Duration::from_millis(5));
        assert_eq!(quick, FilterSpec::command(&["/a"], &["/b"]));
        match FilterSpec::command(&["/a"], &["/b"]) {
            FilterSpec::Command { timeout, .. } => assert_eq!(timeout, Duration::from_secs(60)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn build_checks_parameters() {
        for level in [0, -1, 23, i32::MIN, i32::MAX] {
            let err = FilterSpec::zstd(level).build().unwrap_err();
            assert!(
                matches!(err, FilterError::ZstdLevel { .. }),
                "{level}: {err}"
            );
        }
        for level in [1, 3, 22] {
            assert_eq!(FilterSpec::zstd(level).build().unwrap().name(), "zstd");
        }
        let empty_program = FilterSpec::command(&["/usr/bin/gzip"], &[""])
            .build()
            .unwrap_err();
        assert!(matches!(
            empty_program,
            FilterError::EmptyCommand {
                direction: Direction::Decode
            }
        ));
        let empty_argv = FilterSpec::command(&[], &["/usr/bin/gzip"])
            .build()
            .unwrap_err();
        assert!(matches!(
            empty_argv,
            FilterError::EmptyCommand {
                direction: Direction::Encode
            }
        ));
    }

    /// Issue 12 item 1: a relative program (`./enc`, or a bare name looked
    /// up in PATH) ran whatever the current directory held at open time.
    #[test]
    fn relative_command_programs_are_refused() {
        for (encode, decode, direction, program) in [
            ("./enc", "/bin/cat", Direction::Encode, "./enc"),
            ("gzip", "/bin/cat", Direction::Encode, "gzip"),
            ("/bin/cat", "bin/dec", Direction::Decode, "bin/dec"),
            ("/bin/cat", "../dec", Direction::Decode, "../dec"),
        ] {
            let err = FilterSpec::command(&[encode], &[decode])
                .build()
                .unwrap_err();
            match &err {
                FilterError::RelativeCommand {
                    direction: d,
                    program: p,
                } => assert_eq!((*d, p.as_str()), (direction, program)),
                other => panic!("unexpected {other}"),
            }
            let msg = err.to_string();
            assert!(
                msg.contains("absolute path") && msg.contains(program),
                "{msg}"
            );
            assert_eq!(err.node_id(), None);
        }
        assert!(FilterSpec::command(&["/bin/cat"], &["/bin/cat"])
            .build()
            .is_ok());
    }

    #[test]
    fn names_match_built_filters() {
        let specs = [
            FilterSpec::zstd(3),
            FilterSpec::checksum(),
            FilterSpec::encrypt([0; 32]),
            FilterSpec::command(&["/bin/cat"], &["/bin/cat"]),
        ];
        for spec in specs {
            assert_eq!(spec.name(), spec.build().unwrap().name());
        }
    }
}
