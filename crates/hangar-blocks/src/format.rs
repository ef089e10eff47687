//! The persisted block format and key layout, shared by every engine.
//!
//! A stored block is one object (or file). Version 2, written since
//! session 10:
//!
//! ```text
//! offset 0  4 bytes  magic "HGBK"
//! offset 4  1 byte   format version (2)
//! offset 5  4 bytes  content length, u32 little-endian
//! offset 9  4 bytes  CRC32C (Castagnoli) of the block's 32-byte SHA-256
//!                    followed by its content, u32 little-endian
//! offset 13 ...      the block's content, exactly `length` bytes
//! ```
//!
//! Version 1 (still read) has no CRC field: its content starts at offset 9.
//!
//! Every read checks a version 2 block's CRC32C, and re-hashes a version 1
//! block with SHA-256, so damage is an error, never data. The SHA-256 is the
//! block's identity and is computed (or checked) when the block is written;
//! at rest, what can happen to a block is an accident (a flipped bit, a cut
//! or torn file, a file under another block's name), and the CRC32C, which
//! covers the name's hash too, catches every one of those at more than ten
//! times SHA-256's speed: re-hashing every read was a third of the CPU of a
//! store task and of EBS reads. A deliberate rewrite by someone who can
//! write the data directory is out of its reach (as it is of the records
//! beside it).
//!
//! and lives at `<prefix>/blocks/<first 2 hex digits>/<64 hex digits>`: the
//! 256-way fan-out keeps directories (and S3 listing ranges) small, and
//! because the directory is the name's own first two digits, the keys'
//! lexicographic order is the hashes' order.

use hangar_core::blocks::{BlockError, BlockHash};

/// The first four bytes of every stored block.
pub const MAGIC: [u8; 4] = *b"HGBK";
/// The version of the format written; bumped if the layout ever changes.
pub const FORMAT_VERSION: u8 = 2;
/// Bytes before the content: magic, version, length, CRC32C.
pub const HEADER_LEN: usize = 13;
/// Bytes before the content in version 1 (no CRC32C).
pub const HEADER_LEN_V1: usize = 9;
/// The top-level directory (key segment) under an engine's prefix.
pub const BLOCKS_DIR: &str = "blocks";
/// Name prefix of a write in progress; anything so named is a crash leftover
/// once no write is running (at start-up).
pub const TMP_PREFIX: &str = ".tmp-";

/// CRC32C of the block's hash and content: what version 2 stores.
fn crc32c(hash: &BlockHash, content: &[u8]) -> u32 {
    let mut digest = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
    digest.update(&hash.0);
    digest.update(content);
    // A 32-bit CRC in the low half of the u64.
    digest.finalize() as u32
}

/// The header for `content`; `Backend` if its length overflows u32.
pub(crate) fn encode_header(
    hash: &BlockHash,
    content: &[u8],
) -> Result<[u8; HEADER_LEN], BlockError> {
    let len = u32::try_from(content.len()).map_err(|_| {
        BlockError::Backend(format!(
            "block {} is {} bytes, more than the format's 4 GiB limit",
            hash.to_hex(),
            content.len()
        ))
    })?;
    let mut header = [0u8; HEADER_LEN];
    header[..4].copy_from_slice(&MAGIC);
    header[4] = FORMAT_VERSION;
    header[5..9].copy_from_slice(&len.to_le_bytes());
    header[9..].copy_from_slice(&crc32c(hash, content).to_le_bytes());
    Ok(header)
}

/// How a block's content is checked on read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Version 1: the SHA-256 of the content must be the block's hash.
    Sha256,
    /// Version 2: the stored CRC32C of hash and content.
    Crc32c(u32),
}

/// A decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    /// Bytes of the header (9 or 13).
    pub header_len: usize,
    /// Bytes of content.
    pub len: usize,
    pub check: Check,
}

/// The header's length, from its first five bytes (magic and version);
/// `None` for a wrong magic or an unknown version.
pub(crate) fn header_len(prefix: &[u8]) -> Option<usize> {
    if prefix.len() < 5 || prefix[..4] != MAGIC {
        return None;
    }
    match prefix[4] {
        1 => Some(HEADER_LEN_V1),
        2 => Some(HEADER_LEN),
        _ => None,
    }
}

/// The header of a stored object whose first bytes are `header` (at least
/// the header's length), checked against the object's total size; `None`
/// (corrupt) on a wrong magic, an unknown version, or a size that does not
/// match (a truncated or padded object).
pub(crate) fn decode_header(header: &[u8], object_size: u64) -> Option<Header> {
    let header_len = header_len(header)?;
    let header = header.get(..header_len)?;
    let len = u32::from_le_bytes([header[5], header[6], header[7], header[8]]);
    let check = if header_len == HEADER_LEN {
        Check::Crc32c(u32::from_le_bytes([
            header[9], header[10], header[11], header[12],
        ]))
    } else {
        Check::Sha256
    };
    (object_size == header_len as u64 + u64::from(len)).then_some(Header {
        header_len,
        len: len as usize,
        check,
    })
}

/// The lowercase hex name of `hash`, checked to be a plain 64-digit name so a
/// key or path built from it can never leave its fan-out directory.
pub(crate) fn block_name(hash: &BlockHash) -> String {
    let name = hash.to_hex();
    assert!(
        is_block_name(&name),
        "a block name is 64 lowercase hex digits, got {name:?}"
    );
    name
}

/// True for a canonical block name: exactly 64 lowercase hex digits.
pub fn is_block_name(name: &str) -> bool {
    name.len() == 64
        && name
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

/// The block a file called `name` in fan-out directory `dir` holds, if it is
/// one: a canonical name whose first two digits are `dir`.
pub(crate) fn parse_block_name(dir: &str, name: &str) -> Option<BlockHash> {
    if !is_block_name(name) || !name.starts_with(dir) || dir.len() != 2 {
        return None;
    }
    BlockHash::from_hex(name)
}

/// True for a fan-out directory name: two lowercase hex digits.
pub(crate) fn is_fanout_name(name: &str) -> bool {
    name.len() == 2
        && name
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

/// Checks `content` as its header says (CRC32C, or SHA-256 for version 1)
/// and hands it back, or `Corrupt`.
pub(crate) fn verified(
    hash: &BlockHash,
    content: Vec<u8>,
    check: Check,
) -> Result<Vec<u8>, BlockError> {
    check_content(hash, &content, check)?;
    Ok(content)
}

/// [`verified`] on a borrowed buffer.
pub(crate) fn check_content(
    hash: &BlockHash,
    content: &[u8],
    check: Check,
) -> Result<(), BlockError> {
    let good = match check {
        Check::Sha256 => BlockHash::of(content) == *hash,
        Check::Crc32c(stored) => crc32c(hash, content) == stored,
    };
    if good {
        Ok(())
    } else {
        Err(corrupt(hash, "content does not match its checksum"))
    }
}

pub(crate) fn corrupt(hash: &BlockHash, why: &str) -> BlockError {
    let hex = hash.to_hex();
    tracing::warn!(block = %hex, why, "corrupt block");
    BlockError::Corrupt(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrip() {
        let content = vec![7u8; 524_288];
        let hash = BlockHash::of(&content);
        let header = encode_header(&hash, &content).unwrap();
        assert_eq!(&header[..4], b"HGBK");
        assert_eq!(header[4], 2);
        assert_eq!(&header[5..9], &524_288u32.to_le_bytes());
        let decoded = decode_header(&header, 13 + 524_288).unwrap();
        assert_eq!(decoded.len, 524_288);
        assert_eq!(decoded.header_len, 13);
        assert!(verified(&hash, content, decoded.check).is_ok());
    }

    #[test]
    fn version_1_headers_are_read_and_hashed() {
        let hash = BlockHash::of(b"data");
        let mut v1 = [0u8; 9];
        v1[..4].copy_from_slice(b"HGBK");
        v1[4] = 1;
        v1[5..9].copy_from_slice(&4u32.to_le_bytes());
        let decoded = decode_header(&v1, 13).unwrap();
        assert_eq!((decoded.header_len, decoded.len), (9, 4));
        assert_eq!(decoded.check, Check::Sha256);
        assert_eq!(
            verified(&hash, b"data".to_vec(), decoded.check).unwrap(),
            b"data"
        );
        assert_eq!(
            verified(&hash, b"date".to_vec(), decoded.check),
            Err(BlockError::Corrupt(hash.to_hex()))
        );
    }

    #[test]
    fn header_rejects_damage() {
        let hash = BlockHash::of(b"0123456789");
        let header = encode_header(&hash, b"0123456789").unwrap();
        // Truncated or padded object.
        assert_eq!(decode_header(&header, 22), None);
        assert_eq!(decode_header(&header, 24), None);
        // Short header.
        assert_eq!(decode_header(&header[..12], 23), None);
        // Wrong magic, unknown version.
        let mut bad = header;
        bad[0] = b'X';
        assert_eq!(decode_header(&bad, 23), None);
        let mut bad = header;
        bad[4] = 3;
        assert_eq!(decode_header(&bad, 23), None);
        assert_eq!(decode_header(&header, 23).map(|h| h.len), Some(10));
    }

    #[test]
    fn names() {
        let hash = BlockHash::of(b"hello");
        let name = block_name(&hash);
        assert!(is_block_name(&name));
        assert_eq!(parse_block_name("2c", &name), Some(hash));
        assert_eq!(parse_block_name("2d", &name), None);
        assert_eq!(parse_block_name("2c", &name.to_uppercase()), None);
        assert_eq!(parse_block_name("2c", &format!("{name}#1")), None);
        assert_eq!(parse_block_name("2c", ".tmp-2c"), None);
        assert!(is_fanout_name("0f"));
        assert!(!is_fanout_name("0F"));
        assert!(!is_fanout_name(".."));
    }

    #[test]
    fn verification() {
        let hash = BlockHash::of(b"data");
        let check = decode_header(&encode_header(&hash, b"data").unwrap(), 17)
            .unwrap()
            .check;
        assert_eq!(verified(&hash, b"data".to_vec(), check).unwrap(), b"data");
        // A flipped bit, and the right content under another block's name.
        assert_eq!(
            verified(&hash, b"date".to_vec(), check),
            Err(BlockError::Corrupt(hash.to_hex()))
        );
        let other = BlockHash::of(b"other");
        assert_eq!(
            verified(&other, b"data".to_vec(), check),
            Err(BlockError::Corrupt(other.to_hex()))
        );
    }
}
