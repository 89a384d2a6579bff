//! Commit log records: the header that frames each record in a log file.
//!
//! ```text
//! 0   magic       4  "LXLR"
//! 4   flags       1  bit 0: the record ends a committed group
//! 5   reserved    3  zero
//! 8   lsn         8  log sequence number, one per record, consecutive
//! 16  group       8  the lsn of the first record of its group
//! 24  durable     8  the highest lsn known durable when it was written
//! 32  salt        8  the store's log salt (a store's records only)
//! 40  len         4  body length, at most MAX_RECORD_LEN
//! 44  body crc    4  crc32c of the body
//! 48  header crc  4  crc32c of bytes 0..48
//! 52  body        len bytes: the record's payload after the filter pipeline
//! ```
//!
//! A decoder checks the magic, the header crc, the reserved bytes, the
//! length bound and the body crc; it never allocates more than the length
//! bound.

use super::blob::{u32_at, u64_at};

/// Bytes of a record header.
pub const LOG_HEADER_LEN: usize = 52;

/// The magic that opens every record.
pub const LOG_MAGIC: u32 = u32::from_le_bytes(*b"LXLR");

/// The largest record body.
pub const MAX_RECORD_LEN: u32 = 64 << 20;

/// The header of one log record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// Whether the record ends a committed group.
    pub commit: bool,
    /// Its log sequence number.
    pub lsn: u64,
    /// The lsn of the first record of its group.
    pub group: u64,
    /// The highest lsn known durable when it was written.
    pub durable: u64,
    /// The store's log salt.
    pub salt: u64,
    /// Body length.
    pub len: u32,
    /// crc32c of the body.
    pub body_crc: u32,
}

/// Why bytes are not a record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderFault {
    /// Fewer bytes than a header, or an all-zero header (unwritten space).
    Short,
    /// No magic.
    Magic,
    /// The header crc does not match.
    Checksum,
    /// Reserved bits or bytes are set, or the length is past the bound.
    Field,
}

impl RecordHeader {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; LOG_HEADER_LEN] {
        let mut h = [0u8; LOG_HEADER_LEN];
        h[0..4].copy_from_slice(&LOG_MAGIC.to_le_bytes());
        h[4] = u8::from(self.commit);
        h[8..16].copy_from_slice(&self.lsn.to_le_bytes());
        h[16..24].copy_from_slice(&self.group.to_le_bytes());
        h[24..32].copy_from_slice(&self.durable.to_le_bytes());
        h[32..40].copy_from_slice(&self.salt.to_le_bytes());
        h[40..44].copy_from_slice(&self.len.to_le_bytes());
        h[44..48].copy_from_slice(&self.body_crc.to_le_bytes());
        let crc = crc32c::crc32c(&h[..48]);
        h[48..52].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Decodes a header.
    ///
    /// # Errors
    /// The [`HeaderFault`] found.
    pub fn decode(h: &[u8]) -> Result<RecordHeader, HeaderFault> {
        if h.len() < LOG_HEADER_LEN {
            return Err(HeaderFault::Short);
        }
        if u32_at(h, 0) != LOG_MAGIC {
            return Err(HeaderFault::Magic);
        }
        if u32_at(h, 48) != crc32c::crc32c(&h[..48]) {
            return Err(HeaderFault::Checksum);
        }
        let header = RecordHeader {
            commit: h[4] & 1 == 1,
            lsn: u64_at(h, 8),
            group: u64_at(h, 16),
            durable: u64_at(h, 24),
            salt: u64_at(h, 32),
            len: u32_at(h, 40),
            body_crc: u32_at(h, 44),
        };
        if h[4] > 1 || h[5..8] != [0, 0, 0] || header.len > MAX_RECORD_LEN {
            return Err(HeaderFault::Field);
        }
        Ok(header)
    }

    /// Bytes the whole record takes.
    pub fn record_len(&self) -> u64 {
        LOG_HEADER_LEN as u64 + u64::from(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RecordHeader {
        RecordHeader {
            commit: true,
            lsn: 7,
            group: 5,
            durable: 6,
            salt: 0xABCD,
            len: 300,
            body_crc: 99,
        }
    }

    #[test]
    fn headers_round_trip() {
        let h = sample();
        assert_eq!(RecordHeader::decode(&h.encode()), Ok(h));
        assert_eq!(h.record_len(), 352);
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let good = sample().encode();
        for bit in 0..LOG_HEADER_LEN * 8 {
            let mut b = good;
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(RecordHeader::decode(&b).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn faults_are_told_apart() {
        assert_eq!(RecordHeader::decode(&[0; 10]), Err(HeaderFault::Short));
        assert_eq!(
            RecordHeader::decode(&[0; LOG_HEADER_LEN]),
            Err(HeaderFault::Magic)
        );
        let mut h = sample();
        h.len = MAX_RECORD_LEN + 1;
        assert_eq!(RecordHeader::decode(&h.encode()), Err(HeaderFault::Field));
    }
}
