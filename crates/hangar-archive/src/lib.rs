//! The AMI archive format: the one object `<ami-id>.bin` that
//! `CreateStoreImageTask` writes into a bucket and `CreateRestoreImageTask`
//! reads back. Format only: synchronous, over `std::io`, no network.
//!
//! The layout is specified in `docs/archive-format.md` (version 1, all
//! integers little-endian): a header with magic and version, the manifest
//! (a JSON [`StoredImage`], checked by BLAKE3), one frame per non-zero block
//! in (snapshot, block) order, each compressed independently (zstd) and
//! carrying the SHA-256 of the raw block, then a trailer (per-snapshot
//! totals, the index of every frame, and the BLAKE3 digest of everything
//! before the trailer) and a fixed-size footer that locates the trailer.
//!
//! Storing: [`encode_block`] compresses one block into a ready frame and may
//! run on any thread (frames are independent); [`ArchiveWriter`] writes the
//! header, the frames in order and the trailer. Restoring: [`ArchiveReader`]
//! streams the frames back, verifying each one, and verifies the trailer
//! before it reports the end. [`inspect_file`] reads what an archive holds
//! without decompressing; [`verify_file`] checks everything.

mod encode;
mod format;
mod inspect;
mod reader;
mod writer;

#[cfg(test)]
mod tests;

use std::io;

use serde::Serialize;

pub use encode::{EncodedBlock, encode_block, encode_block_into, is_zero_block};
pub use format::FORMAT_VERSION;
pub use hangar_core::transfer::{StoredImage, StoredSnapshot};
pub use inspect::{Report, inspect_file, verify_file};
pub use reader::{ArchiveReader, DecodedBlock, UnverifiedBlock};
pub use writer::{ArchiveWriter, FrameSink, KEEP_FRAMES_FROM};

/// The default zstd level of [`encode_block`] (fast; see the benchmarks).
pub const DEFAULT_LEVEL: i32 = 1;

/// Why an archive cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The bytes do not start with the archive magic (empty, foreign file).
    #[error("not a Hangar AMI archive")]
    NotAnArchive,
    /// An archive of a format version this build cannot read.
    #[error("unsupported archive format version {0} (this build reads version {FORMAT_VERSION})")]
    UnsupportedVersion(u16),
    /// The archive ends early.
    #[error("the archive is truncated")]
    Truncated,
    /// A check failed; says what and where.
    #[error("the archive is corrupt: {0}")]
    Corrupt(String),
    /// Reading failed.
    #[error("I/O error: {0}")]
    Io(io::Error),
}

impl From<io::Error> for ArchiveError {
    fn from(error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            ArchiveError::Truncated
        } else {
            ArchiveError::Io(error)
        }
    }
}

/// What one snapshot occupies in an archive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SnapshotSummary {
    /// Frames (non-zero blocks) stored.
    pub block_count: u64,
    /// Sum of the blocks' raw lengths.
    pub raw_bytes: u64,
    /// Sum of the frames' lengths (frame headers included).
    pub stored_bytes: u64,
}

/// What an archive holds, as its trailer says (and, after a full read, as
/// verified).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArchiveSummary {
    pub format_version: u16,
    /// In the order of `StoredImage::snapshots`.
    pub snapshots: Vec<SnapshotSummary>,
    pub block_count: u64,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    /// Total length of the archive, footer included.
    pub archive_bytes: u64,
    /// BLAKE3-256 of every byte before the trailer.
    #[serde(serialize_with = "serialize_hex")]
    pub digest: [u8; 32],
}

impl ArchiveSummary {
    pub fn digest_hex(&self) -> String {
        hex::encode(self.digest)
    }

    fn from_snapshots(
        snapshots: Vec<SnapshotSummary>,
        archive_bytes: u64,
        digest: [u8; 32],
    ) -> Self {
        ArchiveSummary {
            format_version: FORMAT_VERSION,
            block_count: snapshots.iter().map(|s| s.block_count).sum(),
            raw_bytes: snapshots.iter().map(|s| s.raw_bytes).sum(),
            stored_bytes: snapshots.iter().map(|s| s.stored_bytes).sum(),
            snapshots,
            archive_bytes,
            digest,
        }
    }
}

fn serialize_hex<S: serde::Serializer>(bytes: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&hex::encode(bytes))
}
