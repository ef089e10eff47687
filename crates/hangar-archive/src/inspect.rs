//! Whole-file entry points: inspect (header, manifest and trailer through
//! `Seek`, nothing decompressed) and verify (a full streaming read).

use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use serde::Serialize;

use crate::format::{
    BLOCK_SIZE_U64, END_MAGIC, FOOTER_LEN, FRAME_HEADER_LEN, Footer, TRAILER_ENTRY_LEN,
    TRAILER_MAGIC, TRAILER_SNAPSHOT_LEN, trailer_len, u32_at, u64_at,
};
use crate::reader::read_prelude;
use crate::{ArchiveError, ArchiveReader, ArchiveSummary, SnapshotSummary, StoredImage};

/// What an archive holds.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The manifest.
    pub image: StoredImage,
    pub summary: ArchiveSummary,
    /// `true` when every frame was decompressed and every checksum and the
    /// digest verified ([`verify_file`]); `false` for [`inspect_file`],
    /// which checks the header, manifest, trailer and footer only.
    pub verified: bool,
}

fn corrupt(message: impl Into<String>) -> ArchiveError {
    ArchiveError::Corrupt(message.into())
}

/// Reads the header and manifest, then the footer and trailer (through
/// `Seek`), without reading or decompressing frames. Checks the manifest,
/// the trailer's check, its totals against the manifest and its index for
/// consistency (order, offsets, sizes); the digest is reported, not
/// recomputed: [`verify_file`] does that.
pub fn inspect_file(path: impl AsRef<Path>) -> Result<Report, ArchiveError> {
    let file = File::open(path.as_ref()).map_err(ArchiveError::Io)?;
    let archive_bytes = file.metadata().map_err(ArchiveError::Io)?.len();
    let mut input = BufReader::new(file);
    let prelude = read_prelude(&mut input)?;
    let snapshots = prelude.image.snapshots.len() as u64;
    let blocks: u64 = prelude.promised.iter().map(|p| p.0).sum();
    let expected_trailer = trailer_len(snapshots, blocks)
        .ok_or_else(|| corrupt("manifest: impossible block counts"))?;
    let minimum = prelude
        .frames_start
        .saturating_add(expected_trailer)
        .saturating_add(FOOTER_LEN as u64);
    if archive_bytes < minimum {
        return Err(ArchiveError::Truncated);
    }
    input.seek(SeekFrom::Start(archive_bytes - FOOTER_LEN as u64))?;
    let mut footer = [0u8; FOOTER_LEN];
    input.read_exact(&mut footer)?;
    if footer[FOOTER_LEN - END_MAGIC.len()..] != END_MAGIC {
        // The usual cause: an incomplete upload or copy.
        return Err(ArchiveError::Truncated);
    }
    let footer = Footer::parse(&footer).map_err(|what| corrupt(format!("footer: {what}")))?;
    if footer.version != prelude.version {
        return Err(corrupt(format!(
            "footer: version {} differs from the header's {}",
            footer.version, prelude.version
        )));
    }
    let trailer_offset = archive_bytes - FOOTER_LEN as u64 - expected_trailer;
    if footer.trailer_len != expected_trailer || footer.trailer_offset != trailer_offset {
        return Err(corrupt(format!(
            "footer: trailer at {}+{}, expected at {trailer_offset}+{expected_trailer}",
            footer.trailer_offset, footer.trailer_len
        )));
    }
    if blocks > 0
        && trailer_offset
            < prelude
                .frames_start
                .saturating_add(blocks.saturating_mul(FRAME_HEADER_LEN as u64))
    {
        return Err(corrupt("footer: the frames cannot fit before the trailer"));
    }
    input.seek(SeekFrom::Start(trailer_offset))?;
    let mut trailer_hash = blake3::Hasher::new();
    let head_len = 8 + TRAILER_SNAPSHOT_LEN * prelude.promised.len();
    let mut head = vec![0u8; head_len];
    input.read_exact(&mut head)?;
    trailer_hash.update(&head);
    if head[..4] != TRAILER_MAGIC {
        return Err(corrupt(format!(
            "trailer at offset {trailer_offset}: bad magic"
        )));
    }
    if u32_at(&head, 4) as u64 != snapshots {
        return Err(corrupt("trailer: snapshot count differs from the manifest"));
    }
    let totals: Vec<SnapshotSummary> = head[8..]
        .chunks_exact(TRAILER_SNAPSHOT_LEN)
        .map(|r| SnapshotSummary {
            block_count: u64_at(r, 0),
            raw_bytes: u64_at(r, 8),
            stored_bytes: u64_at(r, 16),
        })
        .collect();
    // The index, streamed: per snapshot ascending block indices within the
    // volume, offsets strictly increasing from the first frame (each frame
    // at least a header and one byte), frame sizes adding up to the
    // snapshot's stored bytes.
    for (s, (t, p)) in totals.iter().zip(&prelude.promised).enumerate() {
        if t.block_count != p.0 {
            return Err(corrupt(format!(
                "trailer: snapshot {s} has {} blocks, the manifest says {}",
                t.block_count, p.0
            )));
        }
    }
    if blocks == 0 && trailer_offset != prelude.frames_start {
        return Err(corrupt(
            "footer: bytes between the manifest and the trailer",
        ));
    }
    let smallest_frame = FRAME_HEADER_LEN as u64 + 1;
    let mut stored = vec![0u64; totals.len()];
    let mut previous: Option<(usize, u64)> = None;
    let mut entry = [0u8; TRAILER_ENTRY_LEN];
    let mut frame = 0u64;
    for (s, t) in totals.iter().enumerate() {
        let mut last_block: Option<u64> = None;
        for _ in 0..t.block_count {
            input.read_exact(&mut entry)?;
            trailer_hash.update(&entry);
            let block = u64_at(&entry, 0);
            let offset = u64_at(&entry, 8);
            let offset_ok = match previous {
                None => offset == prelude.frames_start,
                Some((_, p)) => offset >= p.saturating_add(smallest_frame),
            };
            if !offset_ok
                || offset.saturating_add(smallest_frame) > trailer_offset
                || last_block.is_some_and(|l| block <= l)
                || block.saturating_mul(BLOCK_SIZE_U64) >= prelude.promised[s].1
            {
                return Err(corrupt(format!(
                    "trailer: index entry {frame} (snapshot {s} block {block} at offset {offset}) is inconsistent"
                )));
            }
            if let Some((ps, p)) = previous {
                stored[ps] += offset - p;
            }
            previous = Some((s, offset));
            last_block = Some(block);
            frame += 1;
        }
    }
    if let Some((ps, p)) = previous {
        stored[ps] += trailer_offset - p;
    }
    for (s, (t, stored)) in totals.iter().zip(&stored).enumerate() {
        if t.stored_bytes != *stored {
            return Err(corrupt(format!(
                "trailer: snapshot {s} stores {} bytes, its index spans {stored}",
                t.stored_bytes
            )));
        }
    }
    let mut digest = [0u8; 32];
    input.read_exact(&mut digest)?;
    trailer_hash.update(&digest);
    if footer.trailer_hash != *trailer_hash.finalize().as_bytes() {
        return Err(corrupt("footer: trailer check mismatch"));
    }
    Ok(Report {
        image: prelude.image,
        summary: ArchiveSummary::from_snapshots(totals, archive_bytes, digest),
        verified: false,
    })
}

/// Reads the whole archive, decompressing every frame and checking every
/// checksum, the index, the digest and the footer, without keeping
/// anything but one frame at a time.
pub fn verify_file(path: impl AsRef<Path>) -> Result<Report, ArchiveError> {
    let file = File::open(path.as_ref()).map_err(ArchiveError::Io)?;
    let mut reader = ArchiveReader::new(BufReader::with_capacity(1 << 20, file))?;
    while reader.next_block()?.is_some() {}
    let summary = reader
        .summary()
        .cloned()
        .ok_or_else(|| corrupt("no summary after the end"))?;
    Ok(Report {
        image: reader.image().clone(),
        summary,
        verified: true,
    })
}

impl Report {
    /// The report as pretty JSON: `{"image": <manifest>, "summary": ...,
    /// "verified": ...}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {} ({bytes} bytes)", UNITS[unit])
    }
}

fn or_dash(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("-")
}

/// Human-readable, for `hangar archive inspect`.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let image = &self.image;
        let summary = &self.summary;
        writeln!(
            f,
            "Hangar AMI archive, format version {}",
            summary.format_version
        )?;
        writeln!(f, "AMI:             {}", image.image_id)?;
        writeln!(f, "Name:            {}", image.name)?;
        writeln!(f, "Description:     {}", or_dash(&image.description))?;
        writeln!(f, "Region:          {}", image.region)?;
        writeln!(f, "Partition:       {}", image.partition)?;
        writeln!(f, "Owner:           {}", image.owner_id)?;
        writeln!(f, "Architecture:    {}", image.architecture)?;
        writeln!(f, "Boot mode:       {}", or_dash(&image.boot_mode))?;
        writeln!(f, "Virtualization:  {}", image.virtualization_type)?;
        writeln!(f, "Platform:        {}", image.platform_details)?;
        writeln!(f, "Root device:     {}", or_dash(&image.root_device_name))?;
        writeln!(f, "Block device mappings:")?;
        if image.block_device_mappings.is_empty() {
            writeln!(f, "  (none)")?;
        }
        for mapping in &image.block_device_mappings {
            write!(f, "  {}", mapping.device_name)?;
            if let Some(virtual_name) = &mapping.virtual_name {
                write!(f, "  {virtual_name}")?;
            }
            if mapping.no_device {
                write!(f, "  (no device)")?;
            }
            if let Some(ebs) = &mapping.ebs {
                write!(f, "  ebs")?;
                if let Some(snapshot) = &ebs.snapshot_id {
                    write!(f, " {snapshot}")?;
                }
                if let Some(gib) = ebs.volume_size {
                    write!(f, " {gib} GiB")?;
                }
                if let Some(kind) = &ebs.volume_type {
                    write!(f, " {kind}")?;
                }
                if let Some(iops) = ebs.iops {
                    write!(f, " {iops} IOPS")?;
                }
                if let Some(throughput) = ebs.throughput {
                    write!(f, " {throughput} MiB/s")?;
                }
                if ebs.encrypted == Some(true) {
                    write!(f, " encrypted")?;
                }
                if ebs.delete_on_termination == Some(true) {
                    write!(f, " delete-on-termination")?;
                }
            }
            writeln!(f)?;
        }
        writeln!(f, "Tags:")?;
        if image.tags.is_empty() {
            writeln!(f, "  (none)")?;
        }
        for tag in &image.tags {
            writeln!(f, "  {} = {}", tag.key, tag.value)?;
        }
        writeln!(f, "Snapshots:")?;
        if image.snapshots.is_empty() {
            writeln!(f, "  (none)")?;
        }
        for (i, (snapshot, stored)) in image.snapshots.iter().zip(&summary.snapshots).enumerate() {
            writeln!(
                f,
                "  [{i}] {}  {} GiB  {} blocks stored  raw {}  compressed {}",
                snapshot.snapshot_id,
                snapshot.volume_size_gib,
                stored.block_count,
                size(stored.raw_bytes),
                size(stored.stored_bytes),
            )?;
            for tag in &snapshot.tags {
                writeln!(f, "      tag {} = {}", tag.key, tag.value)?;
            }
        }
        writeln!(
            f,
            "Blocks:          {} (raw {}, compressed {})",
            summary.block_count,
            size(summary.raw_bytes),
            size(summary.stored_bytes)
        )?;
        writeln!(f, "Archive size:    {}", size(summary.archive_bytes))?;
        writeln!(f, "Digest:          blake3:{}", summary.digest_hex())?;
        write!(
            f,
            "Verified:        {}",
            if self.verified {
                "yes (every frame, checksum and the digest)"
            } else {
                "no (header, manifest, trailer and footer checked; run `hangar archive verify`)"
            }
        )
    }
}
