//! The byte layout: constants and the little-endian field helpers shared by
//! the writer and the readers. docs/archive-format.md is the specification;
//! every offset here is named there.

use hangar_core::blocks::BLOCK_SIZE;

/// Bytes 0..8 of every archive.
pub const MAGIC: [u8; 8] = *b"\x89HANGAR\n";
/// The one version this crate writes and reads.
pub const FORMAT_VERSION: u16 = 1;
/// magic(8) version(2) flags(2) block_size(4) manifest_len(4).
pub const HEADER_LEN: usize = 20;
/// BLAKE3-256 of header ‖ manifest, right after the manifest.
pub const MANIFEST_CHECK_LEN: usize = 32;
/// Upper bound of the manifest (JSON) length; larger is corrupt.
pub const MAX_MANIFEST_LEN: u32 = 16 << 20;

/// Bytes 0..4 of every frame.
pub const FRAME_MAGIC: [u8; 4] = *b"HBLK";
/// The fixed part of a frame, before its payload.
pub const FRAME_HEADER_LEN: usize = 64;
/// Payload is the raw block.
pub const CODEC_RAW: u8 = 0;
/// Payload is one or more zstd frames that decompress to the raw block.
pub const CODEC_ZSTD: u8 = 1;

/// Bytes 0..4 of the trailer.
pub const TRAILER_MAGIC: [u8; 4] = *b"HIDX";
/// Per snapshot in the trailer: block_count, raw_bytes, stored_bytes.
pub const TRAILER_SNAPSHOT_LEN: usize = 24;
/// Per block in the trailer: block_index, frame_offset.
pub const TRAILER_ENTRY_LEN: usize = 16;

/// The fixed-size end of every archive.
pub const FOOTER_LEN: usize = 64;
/// Bytes 56..64 of the footer: the last 8 bytes of every archive.
pub const END_MAGIC: [u8; 8] = *b"\x89HGREND\n";

/// Blocks are 512 KiB (as u64/u32 for arithmetic on the wire fields).
pub const BLOCK_SIZE_U64: u64 = BLOCK_SIZE as u64;
pub const BLOCK_SIZE_U32: u32 = BLOCK_SIZE as u32;
pub const GIB: u64 = 1 << 30;

/// Length of the trailer for `snapshots` snapshots and `blocks` frames:
/// magic + count + per-snapshot records + index + digest.
pub fn trailer_len(snapshots: u64, blocks: u64) -> Option<u64> {
    let per_snapshot = snapshots.checked_mul(TRAILER_SNAPSHOT_LEN as u64)?;
    let index = blocks.checked_mul(TRAILER_ENTRY_LEN as u64)?;
    8u64.checked_add(per_snapshot)?
        .checked_add(index)?
        .checked_add(32)
}

/// Bytes a snapshot of `gib` GiB spans; `None` when negative or absurd.
pub fn volume_bytes(gib: i64) -> Option<u64> {
    u64::try_from(gib).ok()?.checked_mul(GIB)
}

/// The 4-byte check that ends a frame header: the first 4 bytes of the
/// BLAKE3 hash of its bytes 0..60.
pub fn frame_header_check(header: &[u8]) -> [u8; 4] {
    let hash = blake3::hash(&header[..FRAME_HEADER_LEN - 4]);
    let mut check = [0u8; 4];
    check.copy_from_slice(&hash.as_bytes()[..4]);
    check
}

pub fn u16_at(bytes: &[u8], at: usize) -> u16 {
    let mut b = [0u8; 2];
    b.copy_from_slice(&bytes[at..at + 2]);
    u16::from_le_bytes(b)
}

pub fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

pub fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

pub fn array32_at(bytes: &[u8], at: usize) -> [u8; 32] {
    let mut b = [0u8; 32];
    b.copy_from_slice(&bytes[at..at + 32]);
    b
}

/// The parsed fixed part of a frame.
#[derive(Debug, Clone, Copy)]
pub struct FrameHeader {
    pub snapshot_index: u32,
    pub block_index: u64,
    pub raw_len: u32,
    pub stored_len: u32,
    pub codec: u8,
    pub raw_sha256: [u8; 32],
}

impl FrameHeader {
    pub fn to_bytes(self) -> [u8; FRAME_HEADER_LEN] {
        let mut b = [0u8; FRAME_HEADER_LEN];
        b[0..4].copy_from_slice(&FRAME_MAGIC);
        b[4..8].copy_from_slice(&self.snapshot_index.to_le_bytes());
        b[8..16].copy_from_slice(&self.block_index.to_le_bytes());
        b[16..20].copy_from_slice(&self.raw_len.to_le_bytes());
        b[20..24].copy_from_slice(&self.stored_len.to_le_bytes());
        b[24] = self.codec;
        // 25..28 reserved, zero.
        b[28..60].copy_from_slice(&self.raw_sha256);
        let check = frame_header_check(&b);
        b[60..64].copy_from_slice(&check);
        b
    }

    /// Parses and checks a frame header on its own (no context): magic,
    /// check, reserved bytes, codec and lengths. `Err` says what is wrong.
    pub fn parse(b: &[u8; FRAME_HEADER_LEN]) -> Result<Self, String> {
        if b[0..4] != FRAME_MAGIC {
            return Err("bad frame magic".into());
        }
        if b[60..64] != frame_header_check(b) {
            return Err("frame header check mismatch".into());
        }
        if b[25..28] != [0, 0, 0] {
            return Err("reserved frame header bytes are not zero".into());
        }
        let header = FrameHeader {
            snapshot_index: u32_at(b, 4),
            block_index: u64_at(b, 8),
            raw_len: u32_at(b, 16),
            stored_len: u32_at(b, 20),
            codec: b[24],
            raw_sha256: array32_at(b, 28),
        };
        if header.raw_len == 0 || header.raw_len > BLOCK_SIZE_U32 {
            return Err(format!(
                "declared block length {} outside 1..={BLOCK_SIZE}",
                header.raw_len
            ));
        }
        match header.codec {
            CODEC_RAW if header.stored_len != header.raw_len => Err(format!(
                "raw frame stores {} bytes for a {}-byte block",
                header.stored_len, header.raw_len
            )),
            CODEC_ZSTD if header.stored_len == 0 || header.stored_len > header.raw_len => {
                Err(format!(
                    "zstd frame of {} bytes for a {}-byte block",
                    header.stored_len, header.raw_len
                ))
            }
            CODEC_RAW | CODEC_ZSTD => Ok(header),
            other => Err(format!("unknown codec {other}")),
        }
    }
}

/// The parsed footer.
#[derive(Debug, Clone, Copy)]
pub struct Footer {
    pub trailer_hash: [u8; 32],
    pub trailer_offset: u64,
    pub trailer_len: u64,
    pub version: u16,
}

impl Footer {
    pub fn to_bytes(self) -> [u8; FOOTER_LEN] {
        let mut b = [0u8; FOOTER_LEN];
        b[0..32].copy_from_slice(&self.trailer_hash);
        b[32..40].copy_from_slice(&self.trailer_offset.to_le_bytes());
        b[40..48].copy_from_slice(&self.trailer_len.to_le_bytes());
        b[48..50].copy_from_slice(&self.version.to_le_bytes());
        // 50..56 reserved, zero.
        b[56..64].copy_from_slice(&END_MAGIC);
        b
    }

    pub fn parse(b: &[u8; FOOTER_LEN]) -> Result<Self, String> {
        if b[56..64] != END_MAGIC {
            return Err("bad end magic".into());
        }
        if b[50..56].iter().any(|&x| x != 0) {
            return Err("reserved footer bytes are not zero".into());
        }
        Ok(Footer {
            trailer_hash: array32_at(b, 0),
            trailer_offset: u64_at(b, 32),
            trailer_len: u64_at(b, 40),
            version: u16_at(b, 48),
        })
    }
}
