//! The descriptor: the text a store records for its filter stack
//! ([`Pipeline::describe`](crate::Pipeline::describe)), written and read in
//! this one place.
//!
//! Grammar (all of it; nothing else is accepted):
//!
//! ```text
//! descriptor = "" | filter *("," filter)
//! filter     = "zstd(level=" LEVEL ")" | "checksum(crc32c)"
//!            | "encrypt(xchacha20poly1305)"
//!            | "command(encode=" argv ";decode=" argv ")"
//! argv       = arg *(" " arg)        ; the first arg (the program) non-empty
//! arg        = *(plain | "\" special | "\u{" HEX "}")
//! special    = "\" | " " | "," | ";" | "=" | "(" | ")"
//! ```
//!
//! `LEVEL` is a decimal in 1..=22 without sign or leading zero; `plain` is
//! any character but a special or a control character; a control character
//! is written `\u{HEX}` with lower-case hex digits and no leading zero (as
//! Rust's `char::escape_unicode` writes it).
//!
//! Invariants:
//! - Round trip: for every pipeline that [`Pipeline::new`](crate::Pipeline::new)
//!   accepts, [`parse_descriptor`] of its description yields one
//!   [`RecordedFilter`] per spec, in order, each [matching](RecordedFilter::matches)
//!   its spec, and their [`Display`](fmt::Display) texts joined by `,` give
//!   the description back.
//! - Canonical: only text that `describe` writes is accepted, so two
//!   descriptors that differ never parse alike.
//! - Never armed: a [`RecordedFilter`] only describes; nothing here turns
//!   one into a [`FilterSpec`]. A recorded command runs only if the caller
//!   supplies a spec of its own that [matches](RecordedFilter::matches) it.
//! - Malformed text is a [`FilterError::Descriptor`] whose message is one
//!   line, never a panic.

use std::fmt;

use crate::checksum::ChecksumFilter;
use crate::command::CommandFilter;
use crate::compress::ZstdFilter;
use crate::encrypt::EncryptFilter;
use crate::{FilterError, FilterSpec, ZSTD_MAX_LEVEL, ZSTD_MIN_LEVEL};

/// The checksum filter's parameters.
pub(crate) const CHECKSUM_PARAMS: &str = "crc32c";
/// The encryption filter's parameters.
pub(crate) const ENCRYPT_PARAMS: &str = "xchacha20poly1305";

/// The zstd filter's parameters.
pub(crate) fn zstd_params(level: i32) -> String {
    format!("level={level}")
}

/// The command filter's parameters: both argvs, escaped.
pub(crate) fn command_params(encode: &[String], decode: &[String]) -> String {
    format!(
        "encode={};decode={}",
        describe_argv(encode),
        describe_argv(decode)
    )
}

/// One filter as a store's descriptor records it: what the blobs were made
/// with, keys aside. It describes and is never run (see the module
/// invariants).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordedFilter {
    /// `zstd(level=L)`.
    Zstd {
        /// The compression level recorded.
        level: i32,
    },
    /// `checksum(crc32c)`.
    Checksum,
    /// `encrypt(xchacha20poly1305)`; the key is never recorded.
    Encrypt,
    /// `command(encode=…;decode=…)`.
    Command {
        /// The recorded argv of the encoding command.
        encode: Vec<String>,
        /// The recorded argv of the decoding command.
        decode: Vec<String>,
    },
}

impl RecordedFilter {
    /// The filter's name, as [`FilterSpec::name`] gives it.
    pub fn name(&self) -> &'static str {
        match self {
            RecordedFilter::Zstd { .. } => ZstdFilter::NAME,
            RecordedFilter::Checksum => ChecksumFilter::NAME,
            RecordedFilter::Encrypt => EncryptFilter::NAME,
            RecordedFilter::Command { .. } => CommandFilter::NAME,
        }
    }

    /// Whether `spec` builds this filter with the same format parameters:
    /// same zstd level, same command argvs (its timeout aside); any key
    /// matches a recorded `encrypt`, since keys are not recorded.
    pub fn matches(&self, spec: &FilterSpec) -> bool {
        match (self, spec) {
            (RecordedFilter::Zstd { level }, FilterSpec::Zstd { level: given }) => level == given,
            (RecordedFilter::Checksum, FilterSpec::Checksum) => true,
            (RecordedFilter::Encrypt, FilterSpec::Encrypt { .. }) => true,
            (
                RecordedFilter::Command { encode, decode },
                FilterSpec::Command {
                    encode: given_encode,
                    decode: given_decode,
                    ..
                },
            ) => encode == given_encode && decode == given_decode,
            _ => false,
        }
    }
}

/// `name(params)`, exactly as [`Pipeline::describe`](crate::Pipeline::describe)
/// writes the filter.
impl fmt::Display for RecordedFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let params = match self {
            RecordedFilter::Zstd { level } => zstd_params(*level),
            RecordedFilter::Checksum => CHECKSUM_PARAMS.to_string(),
            RecordedFilter::Encrypt => ENCRYPT_PARAMS.to_string(),
            RecordedFilter::Command { encode, decode } => command_params(encode, decode),
        };
        write!(f, "{}({params})", self.name())
    }
}

/// Parses a descriptor as [`Pipeline::describe`](crate::Pipeline::describe)
/// writes it into the filters it records, in encode order; `""` is the
/// empty stack. The order rules are not checked here:
/// [`Pipeline::new`](crate::Pipeline::new) checks them on the specs built
/// to match.
///
/// # Errors
///
/// [`FilterError::Descriptor`] with the text and the reason when the text
/// is not exactly what `describe` writes for some filter stack.
pub fn parse_descriptor(text: &str) -> Result<Vec<RecordedFilter>, FilterError> {
    parse(text).map_err(|reason| FilterError::Descriptor {
        text: text.to_string(),
        reason,
    })
}

/// One character of a descriptor, and whether a backslash escaped it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Token {
    c: char,
    escaped: bool,
}

impl Token {
    /// Whether this is `c`, unescaped: a delimiter of the grammar.
    fn is(self, c: char) -> bool {
        !self.escaped && self.c == c
    }
}

/// [`parse_descriptor`] with a bare reason as its error.
fn parse(text: &str) -> Result<Vec<RecordedFilter>, String> {
    let tokens = lex(text)?;
    if tokens.is_empty() {
        return Ok(Vec::new());
    }
    tokens
        .split(|t| t.is(','))
        .enumerate()
        .map(|(position, filter)| {
            parse_filter(filter).map_err(|reason| format!("filter {position}: {reason}"))
        })
        .collect()
}

/// Turns the text into tokens, resolving escapes.
fn lex(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::with_capacity(text.len());
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        let token = match c {
            '\\' => Token {
                c: unescape(&mut chars).map_err(|reason| format!("at byte {at}: {reason}"))?,
                escaped: true,
            },
            c if c.is_control() => {
                return Err(format!("at byte {at}: unescaped control character {c:?}"))
            }
            c => Token { c, escaped: false },
        };
        tokens.push(token);
    }
    Ok(tokens)
}

/// The characters the descriptor escapes with a backslash.
const SPECIALS: [char; 7] = ['\\', ' ', ',', ';', '=', '(', ')'];

/// The character an escape stands for, the backslash already read.
fn unescape(chars: &mut std::str::CharIndices<'_>) -> Result<char, String> {
    match chars.next() {
        Some((_, c)) if SPECIALS.contains(&c) => Ok(c),
        Some((_, 'u')) => unescape_unicode(chars),
        Some((_, c)) => Err(format!("{c:?} after a backslash is not an escape")),
        None => Err("the text ends with a lone backslash".to_string()),
    }
}

/// The control character of a `\u{HEX}` escape, `\u` already read.
fn unescape_unicode(chars: &mut std::str::CharIndices<'_>) -> Result<char, String> {
    if chars.next().map(|(_, c)| c) != Some('{') {
        return Err("`\\u` is not followed by `{`".to_string());
    }
    let mut hex = String::new();
    loop {
        match chars.next() {
            Some((_, '}')) => break,
            Some((_, c)) if c.is_ascii_hexdigit() && hex.len() < 6 => hex.push(c),
            _ => return Err("malformed or unterminated `\\u{…}` escape".to_string()),
        }
    }
    let c = u32::from_str_radix(&hex, 16)
        .ok()
        .and_then(char::from_u32)
        .ok_or_else(|| format!("`\\u{{{hex}}}` is not a character escape"))?;
    if !c.is_control() || c.escape_unicode().to_string() != format!("\\u{{{hex}}}") {
        return Err(format!(
            "`\\u{{{hex}}}` is not how the descriptor writes {c:?}"
        ));
    }
    Ok(c)
}

/// The text of `tokens`, which must hold no escape.
fn plain(tokens: &[Token]) -> Option<String> {
    tokens.iter().map(|t| (!t.escaped).then_some(t.c)).collect()
}

/// Parses one `name(params)`.
fn parse_filter(tokens: &[Token]) -> Result<RecordedFilter, String> {
    let open = tokens
        .iter()
        .position(|t| t.is('('))
        .ok_or("no `(` after the filter name")?;
    let (name, rest) = tokens.split_at(open);
    let name = plain(name).ok_or("escape in the filter name")?;
    let params = match rest[1..].split_last() {
        Some((close, params)) if close.is(')') => params,
        _ => return Err(format!("{name:?} does not end with `)`")),
    };
    if params.iter().any(|t| t.is('(') || t.is(')')) {
        return Err(format!(
            "unescaped parenthesis in the parameters of {name:?}"
        ));
    }
    match name.as_str() {
        "zstd" => parse_zstd(params),
        "checksum" => fixed(params, CHECKSUM_PARAMS, RecordedFilter::Checksum),
        "encrypt" => fixed(params, ENCRYPT_PARAMS, RecordedFilter::Encrypt),
        "command" => parse_command(params),
        _ => Err(format!("unknown filter {name:?}")),
    }
}

/// `filter` if `params` is exactly `expected`.
fn fixed(
    params: &[Token],
    expected: &str,
    filter: RecordedFilter,
) -> Result<RecordedFilter, String> {
    match plain(params) {
        Some(text) if text == expected => Ok(filter),
        _ => Err(format!("{} parameters are not `{expected}`", filter.name())),
    }
}

/// Parses `level=L`, L canonical and in range.
fn parse_zstd(params: &[Token]) -> Result<RecordedFilter, String> {
    let text = plain(params).ok_or("escape in the zstd parameters")?;
    let level = text
        .strip_prefix("level=")
        .ok_or("zstd parameters are not `level=L`")?;
    match level.parse::<i32>() {
        Ok(n) if n.to_string() == level && (ZSTD_MIN_LEVEL..=ZSTD_MAX_LEVEL).contains(&n) => {
            Ok(RecordedFilter::Zstd { level: n })
        }
        _ => Err(format!(
            "zstd level {level:?} is not a number in {ZSTD_MIN_LEVEL}..={ZSTD_MAX_LEVEL}"
        )),
    }
}

/// Parses `encode=ARGV;decode=ARGV`.
fn parse_command(params: &[Token]) -> Result<RecordedFilter, String> {
    let mut fields = params.split(|t| t.is(';'));
    let (Some(encode), Some(decode), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err("command parameters are not `encode=…;decode=…`".to_string());
    };
    Ok(RecordedFilter::Command {
        encode: parse_argv(encode, "encode=")?,
        decode: parse_argv(decode, "decode=")?,
    })
}

/// Parses `field` as `prefix` then an argv whose program is not empty.
fn parse_argv(field: &[Token], prefix: &str) -> Result<Vec<String>, String> {
    let argv = field
        .get(..prefix.chars().count())
        .filter(|head| plain(head).as_deref() == Some(prefix))
        .map(|head| &field[head.len()..])
        .ok_or_else(|| format!("command field does not start with `{prefix}`"))?;
    if argv.iter().any(|t| t.is('=')) {
        return Err(format!("unescaped `=` in the {prefix}… argv"));
    }
    let args: Vec<String> = argv
        .split(|t| t.is(' '))
        .map(|arg| arg.iter().map(|t| t.c).collect())
        .collect();
    if args.first().is_none_or(String::is_empty) {
        return Err(format!("the {prefix}… argv has no program"));
    }
    Ok(args)
}

/// Escapes one argv element so that distinct argvs give distinct text: the
/// specials get a backslash, control characters become `\u{..}`.
fn escape_arg(arg: &str) -> String {
    let mut out = String::with_capacity(arg.len());
    for c in arg.chars() {
        if SPECIALS.contains(&c) {
            out.push('\\');
            out.push(c);
        } else if c.is_control() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// The descriptor text of one argv: escaped elements joined by spaces.
fn describe_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|a| escape_arg(a))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::Pipeline;

    fn describe(specs: &[FilterSpec]) -> String {
        Pipeline::new(specs).unwrap().describe()
    }

    fn joined(recorded: &[RecordedFilter]) -> String {
        recorded
            .iter()
            .map(RecordedFilter::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Issue 13 item 4: the stacks `src/options.rs` tested its own parser
    /// with come back from the filters crate's parser.
    #[test]
    fn described_stacks_parse_back() {
        let cases = [
            (vec![], vec![]),
            (
                vec![FilterSpec::zstd(1), FilterSpec::checksum()],
                vec![RecordedFilter::Zstd { level: 1 }, RecordedFilter::Checksum],
            ),
            (vec![FilterSpec::checksum()], vec![RecordedFilter::Checksum]),
            (
                vec![
                    FilterSpec::zstd(22),
                    FilterSpec::encrypt([3; 32]),
                    FilterSpec::checksum(),
                ],
                vec![
                    RecordedFilter::Zstd { level: 22 },
                    RecordedFilter::Encrypt,
                    RecordedFilter::Checksum,
                ],
            ),
            (
                vec![FilterSpec::command(
                    &["/bin/sh", "-c", "a b;c=d,(e)\\\u{7}"],
                    &["/usr/bin/gzip", "-dc"],
                )],
                vec![RecordedFilter::Command {
                    encode: vec!["/bin/sh".into(), "-c".into(), "a b;c=d,(e)\\\u{7}".into()],
                    decode: vec!["/usr/bin/gzip".into(), "-dc".into()],
                }],
            ),
        ];
        for (specs, expected) in cases {
            let text = describe(&specs);
            let recorded = parse_descriptor(&text).unwrap();
            assert_eq!(recorded, expected, "{text}");
            assert_eq!(joined(&recorded), text);
        }
    }

    /// Issue 13 item 4: the descriptor's escapes, as written.
    #[test]
    fn command_text_is_escaped() {
        let text = describe(&[FilterSpec::command(
            &["/bin/sh", "-c", "a b;\u{1b}"],
            &["/a", ""],
        )]);
        assert_eq!(
            text,
            "command(encode=/bin/sh -c a\\ b\\;\\u{1b};decode=/a )"
        );
        assert_eq!(
            parse_descriptor(&text).unwrap(),
            [RecordedFilter::Command {
                encode: vec!["/bin/sh".into(), "-c".into(), "a b;\u{1b}".into()],
                decode: vec!["/a".into(), String::new()],
            }]
        );
    }

    /// Issue 13 item 4: text `describe` cannot have written is refused with
    /// a one-line reason.
    #[test]
    fn malformed_descriptors_are_refused() {
        for text in [
            "zstd(level=3",
            "zstd(level=3),",
            ",zstd(level=3)",
            "lz4()",
            "Zstd(level=3)",
            "zstd (level=3)",
            "(level=3)",
            "zstd()",
            "zstd(level=)",
            "zstd(level=03)",
            "zstd(level=+3)",
            "zstd(level=0)",
            "zstd(level=23)",
            "zstd(level=3)checksum(crc32c)",
            "zstd(level=3),,checksum(crc32c)",
            "checksum(crc32)",
            "checksum()",
            "checksum",
            "encrypt()",
            "encrypt(xchacha20poly1305\\))",
            "command(encode=/a)",
            "command(decode=/a;encode=/b)",
            "command(encode=;decode=/b)",
            "command(encode= /a;decode=/b)",
            "command(encode=/a;decode=/b;x)",
            "command(encode=/a=b;decode=/c)",
            "command(encode=/a(b;decode=/c)",
            "command(encode=/a\\q;decode=/c)",
            "command(encode=/a\\u{41};decode=/c)",
            "command(encode=/a\\u{07};decode=/c)",
            "command(encode=/a\\u{7;decode=/c)",
            "command(encode=/a\\u{1B};decode=/c)",
            "command(encode=/a\\u{d800};decode=/c)",
            "command(encode=/a\\u7;decode=/c)",
            "command(encode=/a\n;decode=/c)",
            "command(encode=/a;decode=/c)\\",
            "command(en\\code=/a;decode=/c)",
        ] {
            let err = parse_descriptor(text).unwrap_err();
            let msg = err.to_string();
            assert!(
                matches!(&err, FilterError::Descriptor { text: t, .. } if t == text),
                "{text:?}: {msg}"
            );
            assert!(!msg.contains('\n'), "{msg}");
            assert!(msg.starts_with("invalid filter descriptor"), "{msg}");
            assert_eq!(err.node_id(), None);
        }
    }

    /// Issue 13 item 4: matching compares format parameters, not keys nor
    /// command timeouts.
    #[test]
    fn matches_compares_format_parameters() {
        let zstd = RecordedFilter::Zstd { level: 3 };
        assert!(zstd.matches(&FilterSpec::zstd(3)));
        assert!(!zstd.matches(&FilterSpec::zstd(4)));
        assert!(!zstd.matches(&FilterSpec::checksum()));
        assert!(RecordedFilter::Checksum.matches(&FilterSpec::checksum()));
        assert!(RecordedFilter::Encrypt.matches(&FilterSpec::encrypt([1; 32])));
        assert!(RecordedFilter::Encrypt.matches(&FilterSpec::encrypt([2; 32])));
        assert!(!RecordedFilter::Encrypt.matches(&FilterSpec::checksum()));
        let command = RecordedFilter::Command {
            encode: vec!["/a".into(), "-c".into()],
            decode: vec!["/a".into(), "-d".into()],
        };
        let quick = std::time::Duration::from_millis(1);
        assert!(command.matches(&FilterSpec::command(&["/a", "-c"], &["/a", "-d"])));
        assert!(command.matches(&FilterSpec::command_with_timeout(
            &["/a", "-c"],
            &["/a", "-d"],
            quick
        )));
        assert!(!command.matches(&FilterSpec::command(&["/a", "-c"], &["/a", "-x"])));
        assert!(!command.matches(&FilterSpec::command(&["/a -c"], &["/a", "-d"])));
        assert!(!command.matches(&FilterSpec::zstd(3)));
        for spec in [FilterSpec::zstd(3), FilterSpec::checksum()] {
            assert_eq!(
                parse_descriptor(&describe(std::slice::from_ref(&spec))).unwrap()[0].name(),
                spec.name()
            );
        }
    }

    /// One argv element: arbitrary, or built from the characters the
    /// descriptor escapes and their neighbours.
    fn arg() -> impl Strategy<Value = String> {
        let tricky = prop::sample::select(vec![
            '\\',
            ' ',
            ',',
            ';',
            '=',
            '(',
            ')',
            '\u{0}',
            '\u{7}',
            '\n',
            '\u{7f}',
            '\u{9f}',
            'u',
            '{',
            '}',
            'é',
            '日',
            '\u{200b}',
            '\u{10ffff}',
        ]);
        prop_oneof![
            any::<String>(),
            prop::collection::vec(prop_oneof![tricky, any::<char>()], 0..8)
                .prop_map(|chars| chars.into_iter().collect()),
        ]
    }

    /// An argv whose program is an absolute path.
    fn argv() -> impl Strategy<Value = Vec<String>> {
        (arg(), prop::collection::vec(arg(), 0..4)).prop_map(|(program, mut args)| {
            args.insert(0, format!("/{program}"));
            args
        })
    }

    /// A stack `Pipeline::new` accepts, with random parameters.
    fn stack() -> impl Strategy<Value = Vec<FilterSpec>> {
        (
            prop::option::of(ZSTD_MIN_LEVEL..=ZSTD_MAX_LEVEL),
            prop::option::of((argv(), argv(), any::<bool>())),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(zstd, command, encrypt, checksum)| {
                let mut specs = Vec::new();
                let command = command.map(|(encode, decode, first)| {
                    let spec = FilterSpec::Command {
                        encode,
                        decode,
                        timeout: crate::DEFAULT_COMMAND_TIMEOUT,
                    };
                    (spec, first)
                });
                if let Some((spec, true)) = &command {
                    specs.push(spec.clone());
                }
                specs.extend(zstd.map(FilterSpec::zstd));
                if let Some((spec, false)) = command {
                    specs.push(spec);
                }
                if encrypt {
                    specs.push(FilterSpec::encrypt([5; 32]));
                }
                if checksum {
                    specs.push(FilterSpec::checksum());
                }
                specs
            })
    }

    proptest! {
        /// Issue 13 item 4: every description parses back to filters that
        /// match its specs, in order, and re-describe to the same text.
        #[test]
        fn descriptions_round_trip(specs in stack()) {
            let text = describe(&specs);
            let recorded = parse_descriptor(&text).unwrap();
            prop_assert_eq!(recorded.len(), specs.len());
            for (r, s) in recorded.iter().zip(&specs) {
                prop_assert!(r.matches(s), "{:?} vs {:?}", r, s);
            }
            prop_assert_eq!(joined(&recorded), text);
        }

        /// Issue 13 item 4: canonical: whatever a damaged description parses
        /// to re-describes to the damaged text itself, so no two texts
        /// parse alike; nothing panics.
        #[test]
        fn damaged_descriptions_parse_canonically_or_not_at_all(
            specs in stack(),
            at in any::<prop::sample::Index>(),
            insert in prop::option::of(any::<char>()),
        ) {
            let text = describe(&specs);
            let mut chars: Vec<char> = text.chars().collect();
            let i = at.index(chars.len() + 1);
            match insert {
                Some(c) => chars.insert(i, c),
                None if i < chars.len() => {
                    chars.remove(i);
                }
                None => {}
            }
            let damaged: String = chars.into_iter().collect();
            if let Ok(recorded) = parse_descriptor(&damaged) {
                prop_assert_eq!(joined(&recorded), damaged);
            }
        }
    }
}
