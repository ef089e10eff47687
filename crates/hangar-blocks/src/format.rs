//! The persisted block format and key layout, shared by every engine.
//!
//! A stored block is one object (or file):
//!
//! ```text
//! offset 0  4 bytes  magic "HGBK"
//! offset 4  1 byte   format version (1)
//! offset 5  4 bytes  content length, u32 little-endian
//! offset 9  ...      the block's content, exactly `length` bytes
//! ```
//!
//! and lives at `<prefix>/blocks/<first 2 hex digits>/<64 hex digits>`: the
//! 256-way fan-out keeps directories (and S3 listing ranges) small, and
//! because the directory is the name's own first two digits, the keys'
//! lexicographic order is the hashes' order.

use hangar_core::blocks::{BlockError, BlockHash};

/// The first four bytes of every stored block.
pub const MAGIC: [u8; 4] = *b"HGBK";
/// The version of the format above; bumped if the layout ever changes.
pub const FORMAT_VERSION: u8 = 1;
/// Bytes before the content: magic, version, length.
pub const HEADER_LEN: usize = 9;
/// The top-level directory (key segment) under an engine's prefix.
pub const BLOCKS_DIR: &str = "blocks";
/// Name prefix of a write in progress; anything so named is a crash leftover
/// once no write is running (at start-up).
pub const TMP_PREFIX: &str = ".tmp-";

/// The header for `len` content bytes; `Backend` if `len` overflows u32.
pub(crate) fn encode_header(hash: &BlockHash, len: usize) -> Result<[u8; HEADER_LEN], BlockError> {
    let len = u32::try_from(len).map_err(|_| {
        BlockError::Backend(format!(
            "block {} is {len} bytes, more than the format's 4 GiB limit",
            hash.to_hex()
        ))
    })?;
    let mut header = [0u8; HEADER_LEN];
    header[..4].copy_from_slice(&MAGIC);
    header[4] = FORMAT_VERSION;
    header[5..].copy_from_slice(&len.to_le_bytes());
    Ok(header)
}

/// The content length a header announces, checked against the stored
/// object's total size; `None` (corrupt) on a wrong magic, an unknown
/// version, or a size that does not match (a truncated or padded object).
pub(crate) fn decode_header(header: &[u8], object_size: u64) -> Option<usize> {
    let header: &[u8; HEADER_LEN] = header.get(..HEADER_LEN)?.try_into().ok()?;
    if header[..4] != MAGIC || header[4] != FORMAT_VERSION {
        return None;
    }
    let len = u32::from_le_bytes([header[5], header[6], header[7], header[8]]);
    (object_size == HEADER_LEN as u64 + u64::from(len)).then_some(len as usize)
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

/// Checks `content` against `hash` (one SHA-256 pass) and hands it back, or
/// `Corrupt`.
pub(crate) fn verified(hash: &BlockHash, content: Vec<u8>) -> Result<Vec<u8>, BlockError> {
    if BlockHash::of(&content) == *hash {
        Ok(content)
    } else {
        Err(corrupt(hash, "content does not match its hash"))
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
        let hash = BlockHash::of(b"x");
        let header = encode_header(&hash, 524_288).unwrap();
        assert_eq!(&header[..4], b"HGBK");
        assert_eq!(header[4], 1);
        assert_eq!(&header[5..], &524_288u32.to_le_bytes());
        assert_eq!(decode_header(&header, 9 + 524_288), Some(524_288));
    }

    #[test]
    fn header_rejects_damage() {
        let hash = BlockHash::of(b"x");
        let header = encode_header(&hash, 10).unwrap();
        // Truncated or padded object.
        assert_eq!(decode_header(&header, 18), None);
        assert_eq!(decode_header(&header, 20), None);
        // Short header.
        assert_eq!(decode_header(&header[..8], 19), None);
        // Wrong magic, unknown version.
        let mut bad = header;
        bad[0] = b'X';
        assert_eq!(decode_header(&bad, 19), None);
        let mut bad = header;
        bad[4] = 2;
        assert_eq!(decode_header(&bad, 19), None);
        assert_eq!(decode_header(&header, 19), Some(10));
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
        assert_eq!(verified(&hash, b"data".to_vec()).unwrap(), b"data");
        assert_eq!(
            verified(&hash, b"date".to_vec()),
            Err(BlockError::Corrupt(hash.to_hex()))
        );
    }
}
