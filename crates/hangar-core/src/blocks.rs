//! The block store: where snapshot data lives, in 512 KiB blocks named by the
//! SHA-256 of their content. Content addressing gives copy-on-write for free
//! (two maps that hold the same data at an index point at the same block),
//! makes writes idempotent, and lets every read verify the data against its
//! name. Engines: local files (default) and, later, an S3 bucket.

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The EBS direct APIs' block size.
pub const BLOCK_SIZE: usize = 524_288;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlockHash(pub [u8; 32]);

impl BlockHash {
    pub fn of(data: &[u8]) -> Self {
        Self(Sha256::digest(data).into())
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (index, slot) in bytes.iter_mut().enumerate() {
            *slot = u8::from_str_radix(text.get(index * 2..index * 2 + 2)?, 16).ok()?;
        }
        Some(Self(bytes))
    }
}

pub fn is_all_zero(data: &[u8]) -> bool {
    data.iter().all(|byte| *byte == 0)
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BlockError {
    #[error("block {0} not found")]
    NotFound(String),
    /// The stored bytes do not hash to the block's name.
    #[error("block {0} is corrupt: its content does not match its checksum")]
    Corrupt(String),
    #[error("block store failure: {0}")]
    Backend(String),
}

impl From<BlockError> for crate::Error {
    fn from(error: BlockError) -> Self {
        crate::Error::Internal(error.to_string())
    }
}

/// A stored block as the collector sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlock {
    pub hash: BlockHash,
    /// When it was last written, for the collector's grace period.
    pub modified_ms: i64,
}

#[async_trait]
pub trait BlockStore: Send + Sync + 'static {
    /// Stores `data` under `hash` (the caller computed it). Idempotent; the
    /// block is durable when this returns. Storing a block that already
    /// exists refreshes its modified time: the collector relies on that to
    /// never take a block that a new map entry is about to reference.
    async fn put(&self, hash: &BlockHash, data: Vec<u8>) -> Result<(), BlockError>;

    /// Reads a block and verifies it against its hash: a mismatch is
    /// `Corrupt`, never data.
    async fn get(&self, hash: &BlockHash) -> Result<Vec<u8>, BlockError>;

    /// As [`BlockStore::get`], on the calling thread, for engines whose
    /// blocks are local files; `None` from engines without a blocking read
    /// (callers then use `get`). Only for threads that may block
    /// (`spawn_blocking`): a task that reads many blocks and works on each
    /// (the store task compresses them) does both in one hop instead of
    /// three.
    fn get_blocking(&self, hash: &BlockHash) -> Option<Result<Vec<u8>, BlockError>> {
        let mut content = Vec::new();
        self.get_blocking_into(hash, &mut content)
            .map(|read| read.map(|()| content))
    }

    /// [`BlockStore::get_blocking`] into `content` (cleared first), so a
    /// caller reading many blocks on one thread reuses one buffer (a fresh
    /// 512 KiB buffer per block costs its page faults every time). The one
    /// method engines with blocking reads implement.
    fn get_blocking_into(
        &self,
        hash: &BlockHash,
        content: &mut Vec<u8>,
    ) -> Option<Result<(), BlockError>> {
        let _ = (hash, content);
        None
    }

    /// As [`BlockStore::put`], on the calling thread, for engines whose
    /// blocks are local files; `None` (nothing written) from the others,
    /// whose callers then use `put`. Only for threads that may block: a
    /// restore verifies and writes each block in one hop instead of two.
    fn put_blocking(&self, hash: &BlockHash, data: &[u8]) -> Option<Result<(), BlockError>> {
        let _ = (hash, data);
        None
    }

    /// When the store holds a good copy of `hash` whose content is exactly
    /// `data`, refreshes its time (as a put would) and answers `true`: the
    /// caller then knows that `data` hashes to `hash` without hashing it,
    /// since every block was hashed when it was written. `false` when it
    /// holds no such copy (none, a damaged one, or other bytes). On the
    /// calling thread, for engines whose blocks are local files; `None`
    /// from the others. Restores use it: a 512 KiB comparison costs a
    /// fraction of a SHA-256.
    fn refresh_if_holding_blocking(
        &self,
        hash: &BlockHash,
        data: &[u8],
    ) -> Option<Result<bool, BlockError>> {
        let _ = (hash, data);
        None
    }

    async fn delete(&self, hash: &BlockHash) -> Result<(), BlockError>;

    /// Stored blocks with hash greater than `after`, in hash order, at most
    /// `limit`.
    async fn list(
        &self,
        after: Option<&BlockHash>,
        limit: usize,
    ) -> Result<Vec<StoredBlock>, BlockError>;

    /// Removes leftovers of interrupted writes (called at start-up). Returns
    /// how many were removed.
    async fn sweep_incomplete(&self) -> Result<usize, BlockError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_roundtrip() {
        let hash = BlockHash::of(b"hello");
        assert_eq!(
            hash.to_hex(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(BlockHash::from_hex(&hash.to_hex()), Some(hash));
        assert_eq!(BlockHash::from_hex("zz"), None);
    }

    #[test]
    fn zero_detection() {
        assert!(is_all_zero(&[0; 16]));
        assert!(!is_all_zero(&[0, 0, 1]));
    }
}
