//! Reading an archive as a stream, verifying every frame and the trailer.

use std::io::{self, Read};

use sha2::{Digest, Sha256};

use crate::format::{
    BLOCK_SIZE_U32, BLOCK_SIZE_U64, CODEC_RAW, CODEC_ZSTD, FOOTER_LEN, FORMAT_VERSION,
    FRAME_HEADER_LEN, FRAME_MAGIC, Footer, FrameHeader, HEADER_LEN, MAGIC, MANIFEST_CHECK_LEN,
    MAX_MANIFEST_LEN, TRAILER_ENTRY_LEN, TRAILER_MAGIC, TRAILER_SNAPSHOT_LEN, u16_at, u32_at,
    u64_at, volume_bytes,
};
use crate::{ArchiveError, ArchiveSummary, SnapshotSummary, StoredImage};

/// One verified block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBlock {
    /// Index in `StoredImage::snapshots`.
    pub snapshot_index: u32,
    /// Byte offset in the volume / `BLOCK_SIZE`.
    pub block_index: u64,
    /// The raw block, 1 to `BLOCK_SIZE` bytes; a shorter block is followed
    /// by zeros up to the block size.
    pub data: Vec<u8>,
    /// SHA-256 of `data`, verified.
    pub sha256: [u8; 32],
}

/// One block whose frame passed every check but the SHA-256 of its data
/// ([`ArchiveReader::next_unverified`]): [`UnverifiedBlock::verify`] makes
/// it a [`DecodedBlock`]. So the hash, the costliest check, can run on
/// other threads than the one reading the archive, in parallel.
#[derive(Debug)]
pub struct UnverifiedBlock {
    pub snapshot_index: u32,
    pub block_index: u64,
    data: Vec<u8>,
    expected_sha256: [u8; 32],
    /// Where the frame was, for the error.
    place: String,
}

impl UnverifiedBlock {
    /// The SHA-256 the block's frame declares (not checked yet).
    pub fn declared_sha256(&self) -> [u8; 32] {
        self.expected_sha256
    }

    /// The block's data (not checked yet).
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Accepts the block without hashing it, because the caller compared
    /// its data byte for byte with bytes known to hash to the declared
    /// SHA-256 (see `BlockStore::refresh_if_holding_blocking`): equal bytes
    /// have equal hashes. Anything else must [`UnverifiedBlock::verify`].
    pub fn verified_by_identical_copy(self) -> DecodedBlock {
        DecodedBlock {
            snapshot_index: self.snapshot_index,
            block_index: self.block_index,
            data: self.data,
            sha256: self.expected_sha256,
        }
    }

    /// Checks the block's SHA-256 against its frame's.
    pub fn verify(self) -> Result<DecodedBlock, ArchiveError> {
        let sha256: [u8; 32] = Sha256::digest(&self.data).into();
        if sha256 != self.expected_sha256 {
            return Err(corrupt(format!(
                "{}: SHA-256 of the block does not match",
                self.place
            )));
        }
        Ok(DecodedBlock {
            snapshot_index: self.snapshot_index,
            block_index: self.block_index,
            data: self.data,
            sha256,
        })
    }
}

/// What precedes the frames, read and checked.
pub(crate) struct Prelude {
    pub version: u16,
    pub image: StoredImage,
    /// Per snapshot: frames promised and bytes the volume spans.
    pub promised: Vec<(u64, u64)>,
    /// Offset of the first frame.
    pub frames_start: u64,
    /// BLAKE3 state over every byte read so far.
    pub digest: blake3::Hasher,
}

fn corrupt(message: impl Into<String>) -> ArchiveError {
    ArchiveError::Corrupt(message.into())
}

/// Reads as much of `buf` as the input holds; returns how much.
fn read_full<R: Read>(input: &mut R, buf: &mut [u8]) -> Result<usize, ArchiveError> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ArchiveError::Io(e)),
        }
    }
    Ok(filled)
}

/// Reads and checks the header, the manifest and its check.
pub(crate) fn read_prelude<R: Read>(input: &mut R) -> Result<Prelude, ArchiveError> {
    let mut header = [0u8; HEADER_LEN];
    let got = read_full(input, &mut header)?;
    let magic_seen = got.min(MAGIC.len());
    if got == 0 || header[..magic_seen] != MAGIC[..magic_seen] {
        return Err(ArchiveError::NotAnArchive);
    }
    if got < 10 {
        return Err(ArchiveError::Truncated);
    }
    let version = u16_at(&header, 8);
    if version != FORMAT_VERSION {
        return Err(ArchiveError::UnsupportedVersion(version));
    }
    if got < HEADER_LEN {
        return Err(ArchiveError::Truncated);
    }
    let flags = u16_at(&header, 10);
    if flags != 0 {
        return Err(corrupt(format!("header: unknown flags {flags:#06x}")));
    }
    let block_size = u32_at(&header, 12);
    if block_size != BLOCK_SIZE_U32 {
        return Err(corrupt(format!(
            "header: block size {block_size}, expected {BLOCK_SIZE_U32}"
        )));
    }
    let manifest_len = u32_at(&header, 16);
    if manifest_len == 0 || manifest_len > MAX_MANIFEST_LEN {
        return Err(corrupt(format!("header: manifest length {manifest_len}")));
    }
    let mut manifest = Vec::new();
    input
        .take(u64::from(manifest_len))
        .read_to_end(&mut manifest)?;
    if manifest.len() != manifest_len as usize {
        return Err(ArchiveError::Truncated);
    }
    let mut check = [0u8; MANIFEST_CHECK_LEN];
    input.read_exact(&mut check)?;
    let mut digest = blake3::Hasher::new();
    digest.update(&header);
    digest.update(&manifest);
    if digest.finalize().as_bytes() != &check {
        return Err(corrupt(
            "manifest check mismatch (header or manifest altered)",
        ));
    }
    digest.update(&check);
    let image: StoredImage = serde_json::from_slice(&manifest)
        .map_err(|e| corrupt(format!("manifest is not a valid image description: {e}")))?;
    if u32::try_from(image.snapshots.len()).is_err() {
        return Err(corrupt("manifest: too many snapshots"));
    }
    let mut promised = Vec::with_capacity(image.snapshots.len());
    for (i, snapshot) in image.snapshots.iter().enumerate() {
        let bytes = volume_bytes(snapshot.volume_size_gib).ok_or_else(|| {
            corrupt(format!(
                "manifest: snapshot {i} has an invalid size of {} GiB",
                snapshot.volume_size_gib
            ))
        })?;
        if snapshot.block_count > bytes.div_ceil(BLOCK_SIZE_U64) {
            return Err(corrupt(format!(
                "manifest: snapshot {i} claims {} blocks in {} GiB",
                snapshot.block_count, snapshot.volume_size_gib
            )));
        }
        promised.push((snapshot.block_count, bytes));
    }
    let frames_start = (HEADER_LEN + manifest.len() + MANIFEST_CHECK_LEN) as u64;
    Ok(Prelude {
        version,
        image,
        promised,
        frames_start,
        digest,
    })
}

/// Streams an archive: [`new`] reads and checks the header and manifest,
/// [`next_block`] returns each block verified (frame header check, order,
/// bounds, decompressed length, SHA-256), and after the last frame reads
/// and checks the trailer (totals, index, digest) and the footer, and the
/// end of the input. Only then does it return `Ok(None)`: a consumer must
/// treat the blocks it got as provisional until then.
///
/// Memory: one frame at a time, plus constant state (the index is compared
/// through a hash, not kept). Wrap unbuffered inputs in a `BufReader`.
///
/// [`new`]: ArchiveReader::new
/// [`next_block`]: ArchiveReader::next_block
pub struct ArchiveReader<R: Read> {
    input: R,
    version: u16,
    image: StoredImage,
    promised: Vec<(u64, u64)>,
    position: u64,
    digest: blake3::Hasher,
    /// The index the trailer must hold, as the frames were read.
    expected_index: blake3::Hasher,
    totals: Vec<SnapshotSummary>,
    frames_read: u64,
    frames_promised: u64,
    last: Option<(u32, u64)>,
    payload: Vec<u8>,
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
    done: Option<ArchiveSummary>,
    failed: bool,
}

impl<R: Read> ArchiveReader<R> {
    /// Reads and checks the header and the manifest. `NotAnArchive` when the
    /// input does not start with the archive magic.
    pub fn new(mut input: R) -> Result<Self, ArchiveError> {
        let prelude = read_prelude(&mut input)?;
        let frames_promised = prelude.promised.iter().map(|p| p.0).sum();
        Ok(ArchiveReader {
            input,
            version: prelude.version,
            totals: vec![SnapshotSummary::default(); prelude.promised.len()],
            image: prelude.image,
            promised: prelude.promised,
            position: prelude.frames_start,
            digest: prelude.digest,
            expected_index: blake3::Hasher::new(),
            frames_read: 0,
            frames_promised,
            last: None,
            payload: Vec::new(),
            decompressor: None,
            done: None,
            failed: false,
        })
    }

    /// The image the archive describes (its manifest).
    pub fn image(&self) -> &StoredImage {
        &self.image
    }

    pub fn format_version(&self) -> u16 {
        self.version
    }

    /// The verified summary, once `next_block` has returned `Ok(None)`.
    pub fn summary(&self) -> Option<&ArchiveSummary> {
        self.done.as_ref()
    }

    /// The next verified block; `Ok(None)` once the trailer and footer are
    /// verified too. After an `Err`, every later call fails.
    pub fn next_block(&mut self) -> Result<Option<DecodedBlock>, ArchiveError> {
        match self.next_unverified()? {
            Some(block) => block.verify().map(Some).inspect_err(|_| self.failed = true),
            None => Ok(None),
        }
    }

    /// As [`ArchiveReader::next_block`], but the block's SHA-256 is left to
    /// the caller ([`UnverifiedBlock::verify`]); everything else (frame
    /// headers, order, counts, lengths, zstd, the digest of the whole, the
    /// trailer) is checked here. A caller that drops an unverified block
    /// has not read the archive's data, only its structure.
    pub fn next_unverified(&mut self) -> Result<Option<UnverifiedBlock>, ArchiveError> {
        if self.done.is_some() {
            return Ok(None);
        }
        if self.failed {
            return Err(corrupt("the archive already failed verification"));
        }
        self.failed = true;
        let result = self.step();
        if result.is_ok() {
            self.failed = false;
        }
        result
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), ArchiveError> {
        self.input.read_exact(buf)?;
        self.position += buf.len() as u64;
        Ok(())
    }

    fn step(&mut self) -> Result<Option<UnverifiedBlock>, ArchiveError> {
        let offset = self.position;
        let n = self.frames_read;
        let mut header = [0u8; FRAME_HEADER_LEN];
        self.read_exact(&mut header[..4])?;
        if header[..4] == TRAILER_MAGIC {
            if n < self.frames_promised {
                return Err(corrupt(format!(
                    "trailer at offset {offset} after {n} frames; the manifest promises {}",
                    self.frames_promised
                )));
            }
            self.read_trailer(offset)?;
            return Ok(None);
        }
        if header[..4] != FRAME_MAGIC {
            return Err(corrupt(if n < self.frames_promised {
                format!("frame {n} at offset {offset}: bad frame magic")
            } else {
                format!("offset {offset}: expected the trailer after {n} frames")
            }));
        }
        if n >= self.frames_promised {
            return Err(corrupt(format!(
                "frame {n} at offset {offset}: more frames than the manifest's {}",
                self.frames_promised
            )));
        }
        self.read_exact(&mut header[4..])?;
        let frame = FrameHeader::parse(&header)
            .map_err(|what| corrupt(format!("frame {n} at offset {offset}: {what}")))?;
        let (s, b) = (frame.snapshot_index, frame.block_index);
        let place = format!("frame {n} (snapshot {s} block {b}) at offset {offset}");
        if self.last.is_some_and(|last| (s, b) <= last) {
            return Err(corrupt(format!("{place}: out of order")));
        }
        let Some(&(promised, volume)) = self.promised.get(s as usize) else {
            return Err(corrupt(format!(
                "{place}: the manifest has {} snapshots",
                self.promised.len()
            )));
        };
        let totals = &self.totals[s as usize];
        if totals.block_count >= promised {
            return Err(corrupt(format!(
                "{place}: more than the {promised} blocks the manifest promises"
            )));
        }
        let end = b
            .checked_mul(BLOCK_SIZE_U64)
            .and_then(|start| start.checked_add(u64::from(frame.raw_len)));
        if end.is_none_or(|end| end > volume) {
            return Err(corrupt(format!(
                "{place}: beyond the volume's {volume} bytes"
            )));
        }
        self.digest.update(&header);
        let mut payload = std::mem::take(&mut self.payload);
        payload.resize(frame.stored_len as usize, 0);
        let read = self.read_exact(&mut payload);
        self.payload = payload;
        read?;
        self.digest.update(&self.payload);
        let data = match frame.codec {
            CODEC_RAW => self.payload.clone(),
            CODEC_ZSTD => {
                if self.decompressor.is_none() {
                    self.decompressor =
                        Some(zstd::bulk::Decompressor::new().map_err(ArchiveError::Io)?);
                }
                let decompressor = self.decompressor.as_mut().expect("set above");
                // Never more than the declared length (at most BLOCK_SIZE).
                let mut data = Vec::with_capacity(frame.raw_len as usize);
                let n = decompressor
                    .decompress_to_buffer(&self.payload, &mut data)
                    .map_err(|e| corrupt(format!("{place}: zstd: {e}")))?;
                if n != frame.raw_len as usize || data.len() != n {
                    return Err(corrupt(format!(
                        "{place}: decompresses to {n} bytes, declared {}",
                        frame.raw_len
                    )));
                }
                data
            }
            _ => unreachable!("FrameHeader::parse admits only known codecs"),
        };
        self.last = Some((s, b));
        self.frames_read += 1;
        let totals = &mut self.totals[s as usize];
        totals.block_count += 1;
        totals.raw_bytes += u64::from(frame.raw_len);
        totals.stored_bytes += (FRAME_HEADER_LEN + self.payload.len()) as u64;
        self.expected_index.update(&b.to_le_bytes());
        self.expected_index.update(&offset.to_le_bytes());
        Ok(Some(UnverifiedBlock {
            snapshot_index: s,
            block_index: b,
            data,
            expected_sha256: frame.raw_sha256,
            place,
        }))
    }

    /// The trailer (its magic at `trailer_offset` already read), the footer
    /// and the end of input.
    fn read_trailer(&mut self, trailer_offset: u64) -> Result<(), ArchiveError> {
        let digest: [u8; 32] = *self.digest.finalize().as_bytes();
        let mut trailer_hash = blake3::Hasher::new();
        trailer_hash.update(&TRAILER_MAGIC);
        let mut count = [0u8; 4];
        self.read_exact(&mut count)?;
        trailer_hash.update(&count);
        let count = u32::from_le_bytes(count);
        if count as usize != self.totals.len() {
            return Err(corrupt(format!(
                "trailer: {count} snapshots, the manifest has {}",
                self.totals.len()
            )));
        }
        for s in 0..self.totals.len() {
            let mut record = [0u8; TRAILER_SNAPSHOT_LEN];
            self.read_exact(&mut record)?;
            trailer_hash.update(&record);
            let said = SnapshotSummary {
                block_count: u64_at(&record, 0),
                raw_bytes: u64_at(&record, 8),
                stored_bytes: u64_at(&record, 16),
            };
            if said != self.totals[s] {
                return Err(corrupt(format!(
                    "trailer: snapshot {s} totals {said:?} do not match the frames read {:?}",
                    self.totals[s]
                )));
            }
        }
        // The index: as many entries as frames, compared through a hash.
        let mut index_hash = blake3::Hasher::new();
        let mut remaining = self.frames_read * TRAILER_ENTRY_LEN as u64;
        let mut chunk = vec![0u8; 64 * 1024];
        while remaining > 0 {
            let n = remaining.min(chunk.len() as u64) as usize;
            self.read_exact(&mut chunk[..n])?;
            trailer_hash.update(&chunk[..n]);
            index_hash.update(&chunk[..n]);
            remaining -= n as u64;
        }
        if index_hash.finalize() != self.expected_index.finalize() {
            return Err(corrupt("trailer: the index does not match the frames read"));
        }
        let mut stored_digest = [0u8; 32];
        self.read_exact(&mut stored_digest)?;
        trailer_hash.update(&stored_digest);
        if stored_digest != digest {
            return Err(corrupt(format!(
                "trailer: archive digest {} does not match the content's {}",
                hex::encode(stored_digest),
                hex::encode(digest)
            )));
        }
        let trailer_len = self.position - trailer_offset;
        let mut footer = [0u8; FOOTER_LEN];
        self.read_exact(&mut footer)?;
        let footer = Footer::parse(&footer).map_err(|what| corrupt(format!("footer: {what}")))?;
        if footer.version != self.version {
            return Err(corrupt(format!(
                "footer: version {} differs from the header's {}",
                footer.version, self.version
            )));
        }
        if footer.trailer_offset != trailer_offset || footer.trailer_len != trailer_len {
            return Err(corrupt(format!(
                "footer: trailer at {}+{}, found at {trailer_offset}+{trailer_len}",
                footer.trailer_offset, footer.trailer_len
            )));
        }
        if footer.trailer_hash != *trailer_hash.finalize().as_bytes() {
            return Err(corrupt("footer: trailer check mismatch"));
        }
        let mut extra = [0u8; 1];
        if read_full(&mut self.input, &mut extra)? != 0 {
            return Err(corrupt(format!(
                "data after the footer at offset {}",
                self.position
            )));
        }
        self.done = Some(ArchiveSummary::from_snapshots(
            std::mem::take(&mut self.totals),
            self.position,
            digest,
        ));
        Ok(())
    }
}
