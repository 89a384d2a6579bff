//! The journal: the operations since the last commit log record, in the
//! byte form the log's records hold, and their decoding for replay.
//!
//! ```text
//! op := tag u8 | fields
//! 1 insert        tree, key, value
//! 2 remove        tree, key
//! 3 remove range  tree, bound lo, bound hi
//! 4 create tree   name
//! 5 clone tree    src, dst
//! 6 remove tree   name
//! bytes := len varint | len bytes
//! bound := 0 (unbounded) | 1 bytes (included) | 2 bytes (excluded)
//! ```
//!
//! A record's payload is a sequence of whole ops. Only operations that
//! succeeded are journaled, in the order they were applied (the writer's
//! lock is held from the change to the journaling), so replaying a
//! committed sequence rebuilds exactly the trees it left. Decoding is
//! total: damage is a typed error, never a panic or an allocation beyond
//! the payload.

use crate::{Error, Result};
use integer_encoding::VarInt;
use std::ops::Bound;

/// One journaled operation, borrowing its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op<'a> {
    Insert {
        tree: &'a str,
        key: &'a [u8],
        value: &'a [u8],
    },
    Remove {
        tree: &'a str,
        key: &'a [u8],
    },
    RemoveRange {
        tree: &'a str,
        lo: Bound<&'a [u8]>,
        hi: Bound<&'a [u8]>,
    },
    CreateTree {
        name: &'a str,
    },
    CloneTree {
        src: &'a str,
        dst: &'a str,
    },
    RemoveTree {
        name: &'a str,
    },
}

/// The operations since the last log record, encoded.
#[derive(Default)]
pub(crate) struct Journal {
    bytes: Vec<u8>,
    /// Bytes of this change already spilled to the log (an open group).
    spilled: u64,
    /// Set when this change outgrew the log: it commits by checkpoint,
    /// and nothing more of it is journaled.
    overflowed: bool,
    /// While set (during replay), nothing is journaled.
    pub(crate) paused: bool,
}

impl Journal {
    /// Appends `op`, unless paused or overflowed.
    pub(crate) fn push(&mut self, op: &Op) {
        if self.paused || self.overflowed {
            return;
        }
        let out = &mut self.bytes;
        match op {
            Op::Insert { tree, key, value } => {
                out.push(1);
                put(out, tree.as_bytes());
                put(out, key);
                put(out, value);
            }
            Op::Remove { tree, key } => {
                out.push(2);
                put(out, tree.as_bytes());
                put(out, key);
            }
            Op::RemoveRange { tree, lo, hi } => {
                out.push(3);
                put(out, tree.as_bytes());
                put_bound(out, *lo);
                put_bound(out, *hi);
            }
            Op::CreateTree { name } => {
                out.push(4);
                put(out, name.as_bytes());
            }
            Op::CloneTree { src, dst } => {
                out.push(5);
                put(out, src.as_bytes());
                put(out, dst.as_bytes());
            }
            Op::RemoveTree { name } => {
                out.push(6);
                put(out, name.as_bytes());
            }
        }
    }

    /// The encoded operations.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether nothing is journaled (an overflowed change is something).
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty() && !self.overflowed
    }

    /// Bytes of operations of this change: spilled and still held.
    pub(crate) fn change_bytes(&self) -> u64 {
        self.spilled + self.bytes.len() as u64
    }

    /// Forgets what is journaled, which was just spilled to the log.
    pub(crate) fn spilled(&mut self) {
        self.spilled += self.bytes.len() as u64;
        self.bytes.clear();
    }

    /// Stops journaling this change: it commits by checkpoint.
    pub(crate) fn overflow(&mut self) {
        self.overflowed = true;
        self.bytes = Vec::new();
    }

    /// Whether this change outgrew the log.
    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Forgets the change: it was committed or rolled back.
    pub(crate) fn reset(&mut self) {
        self.bytes.clear();
        self.spilled = 0;
        self.overflowed = false;
    }
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut len = [0u8; 10];
    let n = bytes.len().encode_var(&mut len);
    out.extend_from_slice(&len[..n]);
    out.extend_from_slice(bytes);
}

fn put_bound(out: &mut Vec<u8>, b: Bound<&[u8]>) {
    match b {
        Bound::Unbounded => out.push(0),
        Bound::Included(k) => {
            out.push(1);
            put(out, k);
        }
        Bound::Excluded(k) => {
            out.push(2);
            put(out, k);
        }
    }
}

/// The operations of a record's payload, in order.
pub(crate) fn decode(payload: &[u8]) -> Ops<'_> {
    Ops { rest: payload }
}

/// Iterator over the operations of a payload.
pub(crate) struct Ops<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Ops<'a> {
    type Item = Result<Op<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let op = self.op();
        if op.is_err() {
            self.rest = &[];
        }
        Some(op)
    }
}

impl<'a> Ops<'a> {
    fn op(&mut self) -> Result<Op<'a>> {
        let tag = self.byte()?;
        Ok(match tag {
            1 => Op::Insert {
                tree: self.name()?,
                key: self.bytes()?,
                value: self.bytes()?,
            },
            2 => Op::Remove {
                tree: self.name()?,
                key: self.bytes()?,
            },
            3 => Op::RemoveRange {
                tree: self.name()?,
                lo: self.bound()?,
                hi: self.bound()?,
            },
            4 => Op::CreateTree { name: self.name()? },
            5 => Op::CloneTree {
                src: self.name()?,
                dst: self.name()?,
            },
            6 => Op::RemoveTree { name: self.name()? },
            t => return Err(bad(&format!("unknown operation {t}"))),
        })
    }

    fn byte(&mut self) -> Result<u8> {
        let (&b, rest) = self.rest.split_first().ok_or_else(|| bad("truncated"))?;
        self.rest = rest;
        Ok(b)
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let (len, n) = u64::decode_var(self.rest).ok_or_else(|| bad("truncated length"))?;
        let rest = &self.rest[n..];
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= rest.len())
            .ok_or_else(|| bad("a length runs past the record"))?;
        let (bytes, rest) = rest.split_at(len);
        self.rest = rest;
        Ok(bytes)
    }

    fn name(&mut self) -> Result<&'a str> {
        std::str::from_utf8(self.bytes()?).map_err(|_| bad("a tree name is not UTF-8"))
    }

    fn bound(&mut self) -> Result<Bound<&'a [u8]>> {
        Ok(match self.byte()? {
            0 => Bound::Unbounded,
            1 => Bound::Included(self.bytes()?),
            2 => Bound::Excluded(self.bytes()?),
            t => return Err(bad(&format!("unknown bound {t}"))),
        })
    }
}

fn bad(what: &str) -> Error {
    Error::CorruptLog(what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Op<'static>> {
        vec![
            Op::Insert {
                tree: "t",
                key: b"k",
                value: b"v",
            },
            Op::Insert {
                tree: "t",
                key: b"",
                value: &[0; 300],
            },
            Op::Remove {
                tree: "t",
                key: b"k",
            },
            Op::RemoveRange {
                tree: "t",
                lo: Bound::Included(b"a"),
                hi: Bound::Excluded(b"m"),
            },
            Op::RemoveRange {
                tree: "t",
                lo: Bound::Unbounded,
                hi: Bound::Unbounded,
            },
            Op::CreateTree { name: "n" },
            Op::CloneTree { src: "t", dst: "n" },
            Op::RemoveTree { name: "n" },
        ]
    }

    #[test]
    fn operations_round_trip() {
        let mut j = Journal::default();
        for op in samples() {
            j.push(&op);
        }
        let back: Vec<Op> = decode(j.bytes()).map(|o| o.unwrap()).collect();
        assert_eq!(back, samples());
        j.reset();
        assert!(j.is_empty());
    }

    #[test]
    fn a_paused_journal_records_nothing() {
        let mut j = Journal {
            paused: true,
            ..Journal::default()
        };
        j.push(&Op::CreateTree { name: "x" });
        assert!(j.is_empty());
    }

    #[test]
    fn damage_is_an_error_never_a_panic() {
        let mut j = Journal::default();
        for op in samples() {
            j.push(&op);
        }
        let good = j.bytes().to_vec();
        for cut in 0..good.len() {
            let _ = decode(&good[..cut]).count();
        }
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0xFF;
            let _ = decode(&b).count();
        }
        assert!(decode(&[9]).next().unwrap().is_err());
        assert!(decode(&[1, 0xFF, 0xFF, 0xFF]).next().unwrap().is_err());
    }
}
