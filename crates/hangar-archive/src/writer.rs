//! Writing an archive: header and manifest, frames in order, trailer and
//! footer.

use std::io::{self, Write};

use bytes::Bytes;

use crate::encode::EncodedBlock;
use crate::format::{
    BLOCK_SIZE_U32, BLOCK_SIZE_U64, FORMAT_VERSION, FRAME_HEADER_LEN, Footer, FrameHeader,
    HEADER_LEN, MAGIC, MAX_MANIFEST_LEN, TRAILER_ENTRY_LEN, TRAILER_MAGIC, volume_bytes,
};
use crate::{ArchiveSummary, SnapshotSummary, StoredImage};

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// Writes one archive to `out`, streaming: header and manifest in [`new`],
/// frames in (snapshot, block) ascending order in [`write_block`], trailer
/// and footer in [`finish`]. Every byte goes through the BLAKE3 digest on
/// the way. Holds 16 bytes per frame (the index) until `finish`.
///
/// The manifest's `block_count` of each snapshot is a promise: exactly that
/// many frames must follow for it, or `finish` refuses.
///
/// After an error the writer refuses everything: drop it (and the partial
/// output).
///
/// [`new`]: ArchiveWriter::new
/// [`write_block`]: ArchiveWriter::write_block
/// [`finish`]: ArchiveWriter::finish
pub struct ArchiveWriter<W: Write> {
    out: W,
    digest: Digest,
    written: u64,
    /// Per snapshot: promised frames, and bytes the volume spans.
    promised: Vec<(u64, u64)>,
    totals: Vec<SnapshotSummary>,
    /// (block_index, frame_offset) per frame, little-endian, in order.
    index: Vec<u8>,
    last: Option<(u32, u64)>,
    failed: bool,
}

impl<W: Write> ArchiveWriter<W> {
    /// Writes the header and the manifest (`image` as JSON).
    pub fn new(out: W, image: &StoredImage) -> io::Result<Self> {
        Self::with_digest(out, image, Digest::Inline(Box::default()))
    }

    /// As [`ArchiveWriter::new`], with the BLAKE3 digest of the whole
    /// computed on a thread of its own, fed in order: the digest is one
    /// serial pass over every byte, which would otherwise hold up whoever
    /// appends the frames (a store task hands frames over as fast as its
    /// encoders make them).
    pub fn with_digest_thread(out: W, image: &StoredImage) -> io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Bytes>(DIGEST_QUEUE);
        let handle = std::thread::Builder::new()
            .name("archive-digest".into())
            .spawn(move || {
                let mut hasher = blake3::Hasher::new();
                for bytes in rx {
                    hasher.update(&bytes);
                }
                hasher
            })?;
        Self::with_digest(
            out,
            image,
            Digest::Thread {
                tx: Some(tx),
                handle: Some(handle),
            },
        )
    }

    fn with_digest(out: W, image: &StoredImage, digest: Digest) -> io::Result<Self> {
        let mut promised = Vec::with_capacity(image.snapshots.len());
        if u32::try_from(image.snapshots.len()).is_err() {
            return Err(invalid("too many snapshots".into()));
        }
        for (i, snapshot) in image.snapshots.iter().enumerate() {
            let bytes = volume_bytes(snapshot.volume_size_gib).ok_or_else(|| {
                invalid(format!(
                    "snapshot {i}: invalid size {} GiB",
                    snapshot.volume_size_gib
                ))
            })?;
            if snapshot.block_count > bytes.div_ceil(BLOCK_SIZE_U64) {
                return Err(invalid(format!(
                    "snapshot {i}: {} blocks do not fit in {} GiB",
                    snapshot.block_count, snapshot.volume_size_gib
                )));
            }
            promised.push((snapshot.block_count, bytes));
        }
        let manifest = serde_json::to_vec(image).map_err(io::Error::other)?;
        let manifest_len = u32::try_from(manifest.len())
            .ok()
            .filter(|&n| n <= MAX_MANIFEST_LEN)
            .ok_or_else(|| invalid(format!("manifest of {} bytes", manifest.len())))?;
        let mut header = [0u8; HEADER_LEN];
        header[0..8].copy_from_slice(&MAGIC);
        header[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        // 10..12: flags, zero.
        header[12..16].copy_from_slice(&BLOCK_SIZE_U32.to_le_bytes());
        header[16..20].copy_from_slice(&manifest_len.to_le_bytes());
        let mut check = blake3::Hasher::new();
        check.update(&header);
        check.update(&manifest);
        let mut writer = ArchiveWriter {
            out,
            digest,
            written: 0,
            totals: vec![SnapshotSummary::default(); promised.len()],
            promised,
            index: Vec::new(),
            last: None,
            failed: false,
        };
        writer.put(&header)?;
        writer.put(&manifest)?;
        writer.put(check.finalize().as_bytes())?;
        Ok(writer)
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other("the archive writer failed earlier"));
        }
        self.failed = true;
        self.out.write_all(bytes)?;
        self.digest.update(bytes)?;
        self.failed = false;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Appends one frame. Frames must come in strictly ascending (snapshot,
    /// block) order, within the snapshot's size and its promised count;
    /// anything else is refused with `InvalidInput` (nothing written).
    pub fn write_block(&mut self, block: &EncodedBlock) -> io::Result<()> {
        self.check_block(block)?;
        let offset = self.written;
        self.put(&block.frame)?;
        self.account_block(&block.header, block.frame.len() as u64, offset);
        Ok(())
    }

    fn check_block(&self, block: &EncodedBlock) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other("the archive writer failed earlier"));
        }
        let header = &block.header;
        let position = (header.snapshot_index, header.block_index);
        if self.last.is_some_and(|last| position <= last) {
            return Err(invalid(format!(
                "block {} of snapshot {} after block {} of snapshot {}: out of order",
                position.1,
                position.0,
                self.last.map_or(0, |l| l.1),
                self.last.map_or(0, |l| l.0),
            )));
        }
        let s = header.snapshot_index as usize;
        let Some(&(promised, volume)) = self.promised.get(s) else {
            return Err(invalid(format!(
                "snapshot {s} is not in the manifest ({} snapshots)",
                self.promised.len()
            )));
        };
        if self.totals[s].block_count >= promised {
            return Err(invalid(format!(
                "snapshot {s}: more than the {promised} blocks the manifest promises"
            )));
        }
        let end = header
            .block_index
            .checked_mul(BLOCK_SIZE_U64)
            .and_then(|start| start.checked_add(u64::from(header.raw_len)));
        if end.is_none_or(|end| end > volume) {
            return Err(invalid(format!(
                "snapshot {s}: block {} lies beyond the volume's {volume} bytes",
                header.block_index
            )));
        }
        Ok(())
    }

    /// Records a frame of `frame_len` bytes written at `offset`: order,
    /// totals and index.
    fn account_block(&mut self, header: &FrameHeader, frame_len: u64, offset: u64) {
        let s = header.snapshot_index as usize;
        self.last = Some((header.snapshot_index, header.block_index));
        let totals = &mut self.totals[s];
        totals.block_count += 1;
        totals.raw_bytes += u64::from(header.raw_len);
        totals.stored_bytes += frame_len;
        self.index.reserve(TRAILER_ENTRY_LEN);
        self.index
            .extend_from_slice(&header.block_index.to_le_bytes());
        self.index.extend_from_slice(&offset.to_le_bytes());
        debug_assert_eq!(
            frame_len,
            (FRAME_HEADER_LEN + header.stored_len as usize) as u64
        );
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Writes the trailer (totals, index, digest) and the footer, flushes,
    /// and returns the output and what was written. `InvalidInput` when a
    /// snapshot got fewer frames than its manifest `block_count`.
    pub fn finish(mut self) -> io::Result<(W, ArchiveSummary)> {
        if self.failed {
            return Err(io::Error::other("the archive writer failed earlier"));
        }
        for (s, (totals, &(promised, _))) in self.totals.iter().zip(&self.promised).enumerate() {
            if totals.block_count != promised {
                return Err(invalid(format!(
                    "snapshot {s}: {} blocks written, the manifest promises {promised}",
                    totals.block_count
                )));
            }
        }
        let digest: [u8; 32] = self.digest.finalize()?;
        let trailer_offset = self.written;
        let mut trailer_hash = blake3::Hasher::new();
        let mut head = Vec::with_capacity(8 + 24 * self.totals.len());
        head.extend_from_slice(&TRAILER_MAGIC);
        head.extend_from_slice(&(self.totals.len() as u32).to_le_bytes());
        for totals in &self.totals {
            head.extend_from_slice(&totals.block_count.to_le_bytes());
            head.extend_from_slice(&totals.raw_bytes.to_le_bytes());
            head.extend_from_slice(&totals.stored_bytes.to_le_bytes());
        }
        let index = std::mem::take(&mut self.index);
        for part in [&head[..], &index[..], &digest[..]] {
            trailer_hash.update(part);
            self.failed = true;
            self.out.write_all(part)?;
            self.failed = false;
            self.written += part.len() as u64;
        }
        let footer = Footer {
            trailer_hash: *trailer_hash.finalize().as_bytes(),
            trailer_offset,
            trailer_len: self.written - trailer_offset,
            version: FORMAT_VERSION,
        };
        self.out.write_all(&footer.to_bytes())?;
        self.written += footer.to_bytes().len() as u64;
        self.out.flush()?;
        let summary = ArchiveSummary::from_snapshots(self.totals, self.written, digest);
        Ok((self.out, summary))
    }
}

/// An output that can keep a frame instead of copying it: the store
/// task's parts hold frames as they were encoded, so the biggest stream of
/// bytes in a store is never copied into a part buffer.
pub trait FrameSink: Write {
    /// Appends a whole frame, keeping it.
    fn write_frame(&mut self, frame: Bytes) -> io::Result<()>;
}

/// Frames shorter than this are copied into the output rather than kept
/// (see [`ArchiveWriter::write_block_owned`]): a compressible block's frame
/// is a few KiB, and keeping it would keep its 512 KiB buffer alive.
pub const KEEP_FRAMES_FROM: usize = 64 * 1024;

impl<W: FrameSink> ArchiveWriter<W> {
    /// [`ArchiveWriter::write_block`], handing the frame to the output
    /// instead of copying it. Frames shorter than [`KEEP_FRAMES_FROM`] are
    /// copied, and their buffer comes back (for the next block to be
    /// encoded into); `None` when the output kept it.
    pub fn write_block_owned(&mut self, block: EncodedBlock) -> io::Result<Option<Vec<u8>>> {
        self.check_block(&block)?;
        let offset = self.written;
        let header = block.header;
        let len = block.frame.len() as u64;
        self.failed = true;
        let back = if block.frame.len() < KEEP_FRAMES_FROM {
            self.out.write_all(&block.frame)?;
            self.digest.update(&block.frame)?;
            Some(block.frame)
        } else {
            let frame = Bytes::from(block.frame);
            self.digest.update_shared(&frame)?;
            self.out.write_frame(frame)?;
            None
        };
        self.failed = false;
        self.written += len;
        self.account_block(&header, len, offset);
        Ok(back)
    }
}

/// Frames queued for the digest thread, at most.
const DIGEST_QUEUE: usize = 64;

/// The whole-archive BLAKE3, inline or on a thread of its own.
enum Digest {
    Inline(Box<blake3::Hasher>),
    Thread {
        tx: Option<std::sync::mpsc::SyncSender<Bytes>>,
        handle: Option<std::thread::JoinHandle<blake3::Hasher>>,
    },
}

impl Digest {
    fn update(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Digest::Inline(hasher) => {
                hasher.update(bytes);
                Ok(())
            }
            Digest::Thread { .. } => self.send(Bytes::copy_from_slice(bytes)),
        }
    }

    fn update_shared(&mut self, bytes: &Bytes) -> io::Result<()> {
        match self {
            Digest::Inline(hasher) => {
                hasher.update(bytes);
                Ok(())
            }
            Digest::Thread { .. } => self.send(bytes.clone()),
        }
    }

    fn send(&mut self, bytes: Bytes) -> io::Result<()> {
        let Digest::Thread { tx: Some(tx), .. } = self else {
            return Err(io::Error::other("the archive digest is finished"));
        };
        tx.send(bytes)
            .map_err(|_| io::Error::other("the archive digest thread stopped"))
    }

    fn finalize(&mut self) -> io::Result<[u8; 32]> {
        match self {
            Digest::Inline(hasher) => Ok(*hasher.finalize().as_bytes()),
            Digest::Thread { tx, handle } => {
                drop(tx.take());
                let hasher = handle
                    .take()
                    .ok_or_else(|| io::Error::other("the archive digest is finished"))?
                    .join()
                    .map_err(|_| io::Error::other("the archive digest thread panicked"))?;
                Ok(*hasher.finalize().as_bytes())
            }
        }
    }
}
