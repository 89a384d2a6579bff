//! Digests that pin every blob a superblock refers to to its exact bytes.
//!
//! The superblock records the digest of the table directory and of the
//! catalog; the directory records the digest of each table chunk; each
//! table entry records a short digest of its node's blob. So from a slot
//! that verifies, every byte read is the byte written by that commit: an
//! older blob of the same node, chunk or catalog put in its place (still on
//! disk, or copied from elsewhere) fails to verify. With an encryption key
//! the slot itself carries a MAC (`superblock.rs`), which makes the whole
//! chain authenticated.
//!
//! Digests are BLAKE3, truncated: 16 bytes for metadata, whose plaintext a
//! forger can choose, so finding another with the same digest takes about
//! 2^128 work; 8 bytes for node blobs, which under encryption a forger
//! cannot make at all, only pick among the store's own older ones.

use std::fmt;

/// A 16-byte digest of a metadata blob's body (chunk, directory, catalog).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Digest(pub [u8; DIGEST_LEN]);

/// Bytes of a [`Digest`].
pub const DIGEST_LEN: usize = 16;

impl Digest {
    /// The digest of `body`.
    pub fn of(body: &[u8]) -> Digest {
        let full = blake3::hash(body);
        let mut d = [0u8; DIGEST_LEN];
        d.copy_from_slice(&full.as_bytes()[..DIGEST_LEN]);
        Digest(d)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…")
    }
}

/// The 8-byte digest of a node blob's body, as its table entry records it.
pub fn node_digest(body: &[u8]) -> u64 {
    let full = blake3::hash(body);
    let mut d = [0u8; 8];
    d.copy_from_slice(&full.as_bytes()[..8]);
    u64::from_le_bytes(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_tell_bodies_apart() {
        assert_eq!(Digest::of(b"a"), Digest::of(b"a"));
        assert_ne!(Digest::of(b"a"), Digest::of(b"b"));
        assert_ne!(node_digest(b""), node_digest(b"\0"));
        assert_eq!(Digest::of(b"abc").to_string().len(), 16 + "…".len());
    }
}
