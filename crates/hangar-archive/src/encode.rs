//! Encoding one block into one frame, on any thread.

use std::cell::RefCell;
use std::io;

use hangar_core::blocks::BLOCK_SIZE;

use crate::format::{CODEC_RAW, CODEC_ZSTD, FRAME_HEADER_LEN, FrameHeader};

/// One block as a complete frame (header and payload), ready for
/// [`crate::ArchiveWriter::write_block`].
#[derive(Debug, Clone)]
pub struct EncodedBlock {
    pub(crate) header: FrameHeader,
    /// The whole frame: the 64-byte header then the payload.
    pub(crate) frame: Vec<u8>,
}

impl EncodedBlock {
    pub fn snapshot_index(&self) -> u32 {
        self.header.snapshot_index
    }

    pub fn block_index(&self) -> u64 {
        self.header.block_index
    }

    /// Length of the raw block.
    pub fn raw_len(&self) -> u32 {
        self.header.raw_len
    }

    pub fn raw_sha256(&self) -> [u8; 32] {
        self.header.raw_sha256
    }

    /// `false` when zstd did not make the block smaller and it is stored raw.
    pub fn is_compressed(&self) -> bool {
        self.header.codec == CODEC_ZSTD
    }

    /// Bytes this frame takes in the archive (header included).
    pub fn frame_len(&self) -> u64 {
        self.frame.len() as u64
    }

    /// The frame's buffer, once written, for [`encode_block_into`] to fill
    /// again.
    pub fn into_buffer(self) -> Vec<u8> {
        self.frame
    }
}

thread_local! {
    /// One zstd context per thread and level, reused across blocks.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
}

/// True when every byte is zero: such blocks are never stored (an absent
/// block reads as zeros).
pub fn is_zero_block(raw: &[u8]) -> bool {
    // Word-wise: several GB/s, negligible next to compression.
    let (chunks, rest) = raw.as_chunks::<8>();
    chunks.iter().all(|c| u64::from_ne_bytes(*c) == 0) && rest.iter().all(|&b| b == 0)
}

/// Compresses block `block_index` of snapshot `snapshot_index` (its index in
/// `StoredImage::snapshots`) into an independent frame at zstd `level`
/// ([`crate::DEFAULT_LEVEL`] is 1). When zstd does not make it smaller the
/// block is stored raw. `raw_sha256` must be the SHA-256 of `raw` (the block
/// store's `BlockHash`); it is not recomputed here, and a wrong one makes
/// the archive fail verification on restore. Runs on any thread.
///
/// `Err` (`InvalidInput`) when `raw` is empty or longer than `BLOCK_SIZE`.
pub fn encode_block(
    snapshot_index: u32,
    block_index: u64,
    raw: &[u8],
    raw_sha256: [u8; 32],
    level: i32,
) -> io::Result<EncodedBlock> {
    encode_block_into(
        Vec::new(),
        snapshot_index,
        block_index,
        raw,
        raw_sha256,
        level,
    )
}

/// [`encode_block`] into `buffer` (its content is discarded; its allocation
/// is reused, see [`EncodedBlock::into_buffer`]): a store encodes thousands
/// of blocks, and a fresh 512 KiB frame each time page-faults on every page.
pub fn encode_block_into(
    buffer: Vec<u8>,
    snapshot_index: u32,
    block_index: u64,
    raw: &[u8],
    raw_sha256: [u8; 32],
    level: i32,
) -> io::Result<EncodedBlock> {
    if raw.is_empty() || raw.len() > BLOCK_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a block is 1 to {BLOCK_SIZE} bytes, not {}", raw.len()),
        ));
    }
    let raw_len = raw.len() as u32;
    let mut frame = buffer;
    frame.clear();
    frame.resize(FRAME_HEADER_LEN, 0);
    frame.reserve(raw.len());
    // zstd writes after the header, into the buffer's spare capacity: no
    // zero-filling of the payload first (a memset of every block).
    let mut destination = std::io::Cursor::new(frame);
    destination.set_position(FRAME_HEADER_LEN as u64);
    let compressed = COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let ready = match slot.as_mut() {
            Some((current, compressor)) if *current == level => Some(compressor),
            _ => {
                *slot = zstd::bulk::Compressor::new(level)
                    .ok()
                    .map(|compressor| (level, compressor));
                slot.as_mut().map(|(_, compressor)| compressor)
            }
        };
        let compressor = ready?;
        compressor.compress_to_buffer(raw, &mut destination).ok()
    });
    let mut frame = destination.into_inner();
    // The payload must be strictly smaller than the block to be worth it.
    let (codec, stored_len) = match compressed {
        Some(n) if n > 0 && n < raw.len() && frame.len() == FRAME_HEADER_LEN + n => (CODEC_ZSTD, n),
        _ => {
            frame.truncate(FRAME_HEADER_LEN);
            frame.resize(FRAME_HEADER_LEN, 0);
            frame.extend_from_slice(raw);
            (CODEC_RAW, raw.len())
        }
    };
    let header = FrameHeader {
        snapshot_index,
        block_index,
        raw_len,
        stored_len: stored_len as u32,
        codec,
        raw_sha256,
    };
    frame[..FRAME_HEADER_LEN].copy_from_slice(&header.to_bytes());
    Ok(EncodedBlock { header, frame })
}
