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
//! Metadata digests are BLAKE3, truncated to 16 bytes: a forger chooses
//! metadata plaintext, so finding another with the same digest must take
//! about 2^128 work. Node digests are XXH3-64 ([`node_digest`]): under
//! encryption a forger cannot make a node blob at all, only pick among the
//! store's own older ones.

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

/// The 8-byte digest of a node blob's body, as its table entry records it:
/// XXH3-64, about ten times cheaper than BLAKE3 on every node written and
/// read. It need not resist a forger: a node blob's contents are either
/// encrypted and authenticated (a forger cannot make one, only pick among
/// the store's own older blobs, which differ in 64 bits with certainty but
/// for chance) or, without a key, not protected against a forger at all.
pub fn node_digest(body: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(body)
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
