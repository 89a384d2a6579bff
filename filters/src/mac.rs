//! The metadata MAC: a keyed hash with which a store authenticates its own
//! records (superblock, catalog) under the key its blobs are encrypted
//! with, so metadata cannot be forged by someone without the key.
//!
//! `mac(domain, data) = BLAKE3-keyed(K, len(domain) as u64 LE ‖ domain ‖ data)`
//! where `K = BLAKE3-derive_key("larix 2026 metadata authentication",
//! encryption key)`.
//!
//! Invariants:
//! - The MAC key is derived from, and never equal to, the encryption key;
//!   neither appears in `Debug` output, and each copy taken to hash with is
//!   zeroed afterwards.
//! - Distinct `(domain, data)` pairs are distinct hash inputs (the domain is
//!   length-prefixed), so a MAC for one record kind never verifies another.
//! - A pipeline with no filter offering a key ([`Filter::mac_key`](crate::Filter::mac_key)) has no
//!   MAC: [`Pipeline::mac`] returns `None` rather than an unkeyed hash.

use zeroize::Zeroize;

use crate::Pipeline;

/// The BLAKE3 key-derivation context of the metadata MAC key.
pub(crate) const MAC_KEY_CONTEXT: &str = "larix 2026 metadata authentication";

/// Length of a MAC, and of its key.
pub const MAC_LEN: usize = 32;

impl Pipeline {
    /// The MAC of `data` for the record kind `domain` (e.g. `"superblock"`),
    /// under the key of the pipeline's first filter that offers one
    /// ([`Filter::mac_key`](crate::Filter::mac_key): the encryption filter). `None` when no filter
    /// does, i.e. for a pipeline without encryption.
    pub fn mac(&self, domain: &str, data: &[u8]) -> Option<[u8; MAC_LEN]> {
        let mut key = self.filters().iter().find_map(|f| f.mac_key())?;
        let mut hasher = blake3::Hasher::new_keyed(&key);
        key.zeroize();
        hasher.update(&(domain.len() as u64).to_le_bytes());
        hasher.update(domain.as_bytes());
        hasher.update(data);
        let mac = *hasher.finalize().as_bytes();
        hasher.zeroize();
        Some(mac)
    }

    /// Whether `mac` is the [`Pipeline::mac`] of `data` for `domain`,
    /// compared in constant time; `None` for a pipeline without a MAC key.
    pub fn verify_mac(&self, domain: &str, data: &[u8], mac: &[u8; MAC_LEN]) -> Option<bool> {
        let expected = blake3::Hash::from_bytes(self.mac(domain, data)?);
        Some(expected == blake3::Hash::from_bytes(*mac))
    }
}

/// The MAC key derived from an encryption key.
pub(crate) fn derive_mac_key(encryption_key: &[u8]) -> [u8; MAC_LEN] {
    blake3::derive_key(MAC_KEY_CONTEXT, encryption_key)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{Context, Filter, FilterError, FilterSpec};

    fn encrypted(key: u8) -> Pipeline {
        Pipeline::new(&[
            FilterSpec::zstd(1),
            FilterSpec::encrypt([key; 32]),
            FilterSpec::checksum(),
        ])
        .unwrap()
    }

    /// Issue 12 item 9: the MAC is keyed BLAKE3 under the derived key, over
    /// the length-prefixed domain and the data.
    #[test]
    fn mac_is_the_documented_keyed_hash() {
        let key = blake3::derive_key("larix 2026 metadata authentication", &[1; 32]);
        let mut input = 10u64.to_le_bytes().to_vec();
        input.extend_from_slice(b"superblock");
        input.extend_from_slice(b"record");
        let expected = *blake3::keyed_hash(&key, &input).as_bytes();
        assert_eq!(encrypted(1).mac("superblock", b"record"), Some(expected));
        assert_ne!(key, [1; 32]);
    }

    /// Issue 12 item 9: same key, same MAC; any other key, domain or data
    /// gives another.
    #[test]
    fn mac_depends_on_key_domain_and_data() {
        let mac = encrypted(1).mac("catalog", b"data").unwrap();
        assert_eq!(encrypted(1).mac("catalog", b"data"), Some(mac));
        let only_encrypt = Pipeline::new(&[FilterSpec::encrypt([1; 32])]).unwrap();
        assert_eq!(only_encrypt.mac("catalog", b"data"), Some(mac));
        for other in [
            encrypted(2).mac("catalog", b"data"),
            encrypted(1).mac("superblock", b"data"),
            encrypted(1).mac("catalog", b"datb"),
            encrypted(1).mac("catalog", b""),
            // The domain's length prefix keeps its bytes apart from the data's.
            encrypted(1).mac("catalo", b"gdata"),
        ] {
            assert_ne!(other, Some(mac));
            assert!(other.is_some());
        }
        assert_eq!(
            encrypted(1).verify_mac("catalog", b"data", &mac),
            Some(true)
        );
        assert_eq!(
            encrypted(2).verify_mac("catalog", b"data", &mac),
            Some(false)
        );
    }

    /// Issue 12 item 9: without encryption there is no key, hence no MAC.
    #[test]
    fn pipeline_without_encryption_has_no_mac() {
        for specs in [
            vec![],
            vec![FilterSpec::zstd(3), FilterSpec::checksum()],
            vec![FilterSpec::checksum()],
        ] {
            let p = Pipeline::new(&specs).unwrap();
            assert_eq!(p.mac("superblock", b"x"), None, "{}", p.describe());
            assert_eq!(p.verify_mac("superblock", b"x", &[0; MAC_LEN]), None);
        }
    }

    /// A custom filter offering a MAC key of its own.
    #[derive(Debug)]
    struct Keyed;

    impl Filter for Keyed {
        fn name(&self) -> &'static str {
            "keyed"
        }
        fn params(&self) -> String {
            String::new()
        }
        fn encode(&self, _: &Context, input: &[u8]) -> Result<Vec<u8>, FilterError> {
            Ok(input.to_vec())
        }
        fn decode(&self, _: &Context, input: &[u8]) -> Result<Vec<u8>, FilterError> {
            Ok(input.to_vec())
        }
        fn mac_key(&self) -> Option<[u8; MAC_LEN]> {
            Some([7; MAC_LEN])
        }
    }

    /// Issue 12 item 9: custom pipelines get a MAC through `Filter::mac_key`.
    #[test]
    fn custom_filters_offer_mac_keys() {
        let p = Pipeline::custom(vec![Arc::new(Keyed)]);
        let mut input = 1u64.to_le_bytes().to_vec();
        input.extend_from_slice(b"dx");
        let expected = *blake3::keyed_hash(&[7; MAC_LEN], &input).as_bytes();
        assert_eq!(p.mac("d", b"x"), Some(expected));
    }

    /// Issue 12 item 9: neither the encryption key nor the MAC key shows in
    /// `Debug`.
    #[test]
    fn debug_hides_the_mac_key() {
        let p = encrypted(0xA5);
        let mac_key = derive_mac_key(&[0xA5; 32]);
        let debug = format!("{p:?} {p:#?}").to_lowercase();
        let k = mac_key;
        for leak in [
            format!("{}, {}, {}", k[0], k[1], k[2]),
            format!("{:02x}{:02x}{:02x}", k[0], k[1], k[2]),
            "165, 165".to_string(),
            "a5a5".to_string(),
        ] {
            assert!(!debug.contains(&leak), "{leak} in {debug}");
        }
        assert!(debug.contains("redacted"), "{debug}");
    }
}
