//! The encryption filter: XChaCha20-Poly1305 with a fresh random nonce per
//! blob and the node id as associated data (`node_id` as u64 LE, followed by
//! [`Context::tweak`] as u64 LE when the tweak is not 0).
//!
//! Blob layout: `nonce (24 bytes) || ciphertext (len of input) || tag (16 bytes)`.
//!
//! XChaCha20's 192-bit nonce is drawn from the operating system's RNG for
//! every blob; at that size random nonces never collide in practice, however
//! many nodes one key seals (96-bit nonces would be limited to about 2^32
//! blobs per key).
//!
//! Invariants:
//! - A blob decodes only under the key, node id and tweak it was sealed
//!   with; any other key, any changed bit, any other node id or tweak give
//!   [`FilterError::Decrypt`] (the AEAD cannot tell these apart).
//! - The key never appears in `Debug` output or in [`Filter::params`]; the
//!   cipher state zeroes its copy of the key on drop, and so does the
//!   metadata MAC key derived from it ([`Filter::mac_key`]).
//! - No plaintext is returned unless the tag verified, and none longer
//!   than the call's [`Context::max_len`] is even allocated.

use std::fmt;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};

use zeroize::Zeroizing;

use crate::mac::{derive_mac_key, MAC_LEN};
use crate::{descriptor, Context, EncryptionKey, Filter, FilterError};

/// Length of the random nonce that starts every blob.
const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag that ends every blob.
const TAG_LEN: usize = 16;

/// Seals blobs with XChaCha20-Poly1305.
pub(crate) struct EncryptFilter {
    cipher: XChaCha20Poly1305,
    /// The metadata MAC key derived from the encryption key.
    mac_key: Zeroizing<[u8; MAC_LEN]>,
}

impl EncryptFilter {
    /// The filter's name in descriptors.
    pub(crate) const NAME: &'static str = "encrypt";

    /// A filter sealing under `key`.
    pub(crate) fn new(key: &EncryptionKey) -> Self {
        EncryptFilter {
            cipher: XChaCha20Poly1305::new(Key::from_slice(key.bytes())),
            mac_key: Zeroizing::new(derive_mac_key(key.bytes())),
        }
    }
}

impl fmt::Debug for EncryptFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptFilter")
            .field("algorithm", &"xchacha20poly1305")
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Filter for EncryptFilter {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn params(&self) -> String {
        descriptor::ENCRYPT_PARAMS.to_string()
    }

    fn encode(&self, ctx: &Context, input: &[u8]) -> Result<Vec<u8>, FilterError> {
        let mut out = Vec::with_capacity(NONCE_LEN + input.len() + TAG_LEN);
        out.resize(NONCE_LEN, 0);
        getrandom::getrandom(&mut out).map_err(|e| FilterError::Random {
            node_id: ctx.node_id,
            reason: e.to_string(),
        })?;
        out.extend_from_slice(input);
        let (nonce, body) = out.split_at_mut(NONCE_LEN);
        let (binding, len) = ctx.binding();
        let tag = self
            .cipher
            .encrypt_in_place_detached(XNonce::from_slice(nonce), &binding[..len], body)
            .map_err(|_| FilterError::Encrypt {
                node_id: ctx.node_id,
                len: input.len(),
            })?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    fn max_encoded_len(&self, input_len: usize) -> Option<usize> {
        input_len.checked_add(NONCE_LEN + TAG_LEN)
    }

    fn mac_key(&self) -> Option<[u8; MAC_LEN]> {
        Some(*self.mac_key)
    }

    fn decode(&self, ctx: &Context, input: &[u8]) -> Result<Vec<u8>, FilterError> {
        if input.len() < NONCE_LEN + TAG_LEN {
            return Err(FilterError::Truncated {
                node_id: ctx.node_id,
                filter: Self::NAME,
                len: input.len(),
                min: NONCE_LEN + TAG_LEN,
            });
        }
        let (nonce, rest) = input.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let limit = ctx.bound(usize::MAX);
        if ciphertext.len() > limit {
            return Err(FilterError::TooLarge {
                node_id: ctx.node_id,
                filter: Self::NAME,
                len: ciphertext.len() as u64,
                limit,
            });
        }
        let mut plain = ciphertext.to_vec();
        let (binding, len) = ctx.binding();
        self.cipher
            .decrypt_in_place_detached(
                XNonce::from_slice(nonce),
                &binding[..len],
                &mut plain,
                Tag::from_slice(tag),
            )
            .map_err(|_| FilterError::Decrypt {
                node_id: ctx.node_id,
            })?;
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(byte: u8) -> EncryptFilter {
        EncryptFilter::new(&EncryptionKey::new([byte; 32]))
    }

    const CTX: Context = Context::new(5);

    #[test]
    fn layout_and_round_trip() {
        let f = filter(1);
        let blob = f.encode(&CTX, b"secret node").unwrap();
        assert_eq!(blob.len(), NONCE_LEN + 11 + TAG_LEN);
        assert!(!blob.windows(6).any(|w| w == b"secret"), "plaintext leaked");
        assert_eq!(f.decode(&CTX, &blob).unwrap(), b"secret node");
    }

    #[test]
    fn nonces_are_fresh() {
        let f = filter(1);
        let a = f.encode(&CTX, b"same").unwrap();
        let b = f.encode(&CTX, b"same").unwrap();
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
        assert_ne!(a, b);
    }

    #[test]
    fn wrong_key_and_wrong_node_are_decrypt_errors() {
        let blob = filter(1).encode(&CTX, b"payload").unwrap();
        let err = filter(2).decode(&CTX, &blob).unwrap_err();
        assert!(matches!(err, FilterError::Decrypt { node_id: 5 }), "{err}");
        let err = filter(1).decode(&Context::new(6), &blob).unwrap_err();
        assert!(matches!(err, FilterError::Decrypt { node_id: 6 }), "{err}");
        assert!(err.to_string().contains("node 6"), "{err}");
    }

    #[test]
    fn short_blobs_are_truncated_errors() {
        let f = filter(1);
        for len in [0, 1, NONCE_LEN, NONCE_LEN + TAG_LEN - 1] {
            let err = f.decode(&CTX, &vec![0; len]).unwrap_err();
            assert!(matches!(err, FilterError::Truncated { .. }), "{len}: {err}");
        }
        let empty = f.encode(&CTX, b"").unwrap();
        assert_eq!(empty.len(), NONCE_LEN + TAG_LEN);
        assert_eq!(f.decode(&CTX, &empty).unwrap(), b"");
    }

    #[test]
    fn debug_and_params_hide_the_key() {
        let f = filter(0x7E);
        let text = format!("{f:?} {}", f.params());
        assert!(
            text.contains("redacted") && !text.contains("126") && !text.contains("7e"),
            "{text}"
        );
    }

    /// Issue 12 item 13: the plaintext is held to the context's bound.
    #[test]
    fn plaintext_past_the_context_bound_is_too_large() {
        let f = filter(1);
        let blob = f.encode(&CTX, &[3; 64]).unwrap();
        let err = f.decode(&CTX.with_max_len(63), &blob).unwrap_err();
        assert!(
            matches!(
                err,
                FilterError::TooLarge {
                    len: 64,
                    limit: 63,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(f.decode(&CTX.with_max_len(64), &blob).unwrap(), [3; 64]);
        assert_eq!(f.max_encoded_len(64), Some(blob.len()));
    }

    /// Seals `plain` the way the filter did before tweaks existed: the
    /// associated data is the node id alone.
    fn seal_old_format(key: u8, node_id: u64, plain: &[u8]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&[key; 32]));
        let nonce = [0x11u8; NONCE_LEN];
        let mut body = plain.to_vec();
        let tag = cipher
            .encrypt_in_place_detached(
                XNonce::from_slice(&nonce),
                &node_id.to_le_bytes(),
                &mut body,
            )
            .unwrap();
        [&nonce[..], &body, &tag].concat()
    }

    /// Context tweak (binding, format-compatible): tweak 0 reads blobs
    /// sealed with the node id alone as associated data, so existing stores
    /// still open.
    #[test]
    fn tweak_zero_reads_the_old_format() {
        let old = seal_old_format(1, 5, b"written long ago");
        assert_eq!(filter(1).decode(&CTX, &old).unwrap(), b"written long ago");
        let err = filter(1).decode(&CTX.with_tweak(1), &old).unwrap_err();
        assert!(matches!(err, FilterError::Decrypt { .. }), "{err}");
    }

    /// Context tweak (binding, format-compatible): a blob sealed under
    /// tweak 5 fails under tweak 0 and tweak 6.
    #[test]
    fn other_tweak_is_a_decrypt_error() {
        let f = filter(1);
        let blob = f.encode(&CTX.with_tweak(5), b"bound").unwrap();
        for tweak in [0, 6] {
            let err = f.decode(&CTX.with_tweak(tweak), &blob).unwrap_err();
            assert!(matches!(err, FilterError::Decrypt { node_id: 5 }), "{err}");
        }
        assert_eq!(f.decode(&CTX.with_tweak(5), &blob).unwrap(), b"bound");
    }
}
