//! Round trips, every corruption, truncation, foreign inputs, fuzzing.

use std::io::Write;

use hangar_core::blocks::{BLOCK_SIZE, BlockHash};
use hangar_core::model::{BlockDeviceMapping, EbsBlockDevice, Tag};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use crate::format::{FRAME_HEADER_LEN, FrameHeader, HEADER_LEN, MANIFEST_CHECK_LEN};
use crate::*;

fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: key.into(),
        value: value.into(),
    }
}

fn image(snapshots: Vec<(i64, u64)>) -> StoredImage {
    let snapshots: Vec<StoredSnapshot> = snapshots
        .into_iter()
        .enumerate()
        .map(|(i, (gib, count))| StoredSnapshot {
            snapshot_id: format!("snap-{i:017x}"),
            volume_size_gib: gib,
            description: Some(format!("snapshot {i}")),
            tags: vec![tag("disk", &i.to_string())],
            block_count: count,
        })
        .collect();
    let block_device_mappings = snapshots
        .iter()
        .enumerate()
        .map(|(i, s)| BlockDeviceMapping {
            device_name: format!("/dev/xvd{}", (b'a' + i as u8) as char),
            virtual_name: None,
            ebs: Some(EbsBlockDevice {
                snapshot_id: Some(s.snapshot_id.clone()),
                volume_size: Some(s.volume_size_gib),
                volume_type: Some("gp3".into()),
                delete_on_termination: Some(true),
                ..EbsBlockDevice::default()
            }),
            no_device: false,
        })
        .collect();
    StoredImage {
        image_id: "ami-0123456789abcdef0".into(),
        region: "us-east-1".into(),
        partition: "aws".into(),
        owner_id: "111111111111".into(),
        name: "test-image".into(),
        description: Some("an image with ünïcode".into()),
        architecture: "x86_64".into(),
        virtualization_type: "hvm".into(),
        hypervisor: "xen".into(),
        platform: None,
        platform_details: "Linux/UNIX".into(),
        usage_operation: "RunInstances".into(),
        root_device_name: Some("/dev/xvda".into()),
        boot_mode: Some("uefi".into()),
        ena_support: Some(true),
        sriov_net_support: Some("simple".into()),
        tpm_support: None,
        imds_support: Some("v2.0".into()),
        uefi_data: None,
        kernel_id: None,
        ramdisk_id: None,
        creation_ms: 1_700_000_000_000,
        block_device_mappings,
        tags: vec![tag("Name", "test"), tag("team", "hangar")],
        snapshots,
        stored_ms: 1_700_000_100_000,
    }
}

fn random_block(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rng.fill_bytes(&mut data);
    data
}

fn text_block(rng: &mut StdRng, len: usize) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "hangar", "image", "snapshot", "block", "the", "of", "archive", "zstd", "frame", "and",
        "volume", "\n",
    ];
    let mut data = Vec::with_capacity(len + 16);
    while data.len() < len {
        data.extend_from_slice(WORDS[rng.random_range(0..WORDS.len())].as_bytes());
        data.push(b' ');
    }
    data.truncate(len);
    data
}

fn partial_block(rng: &mut StdRng, len: usize, filled: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rng.fill_bytes(&mut data[..filled]);
    data
}

/// (snapshot, block, data) in order.
type Blocks = Vec<(u32, u64, Vec<u8>)>;

fn full_blocks() -> (StoredImage, Blocks) {
    let mut rng = StdRng::seed_from_u64(7);
    let blocks = vec![
        (0, 0, random_block(&mut rng, BLOCK_SIZE)),
        (0, 1, text_block(&mut rng, BLOCK_SIZE)),
        (0, 7, partial_block(&mut rng, BLOCK_SIZE, 4096)),
        (0, 2047, text_block(&mut rng, 1234)), // a short last block
        (1, 3, random_block(&mut rng, BLOCK_SIZE)),
        (1, 4, vec![b'a'; BLOCK_SIZE]),
        (1, 4095, partial_block(&mut rng, BLOCK_SIZE, 100)),
    ];
    (image(vec![(1, 4), (2, 3)]), blocks)
}

fn small_blocks() -> (StoredImage, Blocks) {
    let mut rng = StdRng::seed_from_u64(11);
    let blocks = vec![
        (0, 0, random_block(&mut rng, 300)),
        (0, 2, text_block(&mut rng, 700)),
        (1, 1, partial_block(&mut rng, 500, 20)),
        (1, 9, vec![7u8; 200]),
    ];
    (image(vec![(1, 2), (1, 2)]), blocks)
}

fn encode(blocks: &Blocks) -> Vec<EncodedBlock> {
    blocks
        .iter()
        .map(|(s, b, data)| {
            encode_block(*s, *b, data, BlockHash::of(data).0, DEFAULT_LEVEL).unwrap()
        })
        .collect()
}

fn write(image: &StoredImage, encoded: &[EncodedBlock]) -> (Vec<u8>, ArchiveSummary) {
    let mut writer = ArchiveWriter::new(Vec::new(), image).unwrap();
    for block in encoded {
        writer.write_block(block).unwrap();
    }
    writer.finish().unwrap()
}

fn archive(pair: (StoredImage, Blocks)) -> (StoredImage, Blocks, Vec<u8>) {
    let (image, blocks) = pair;
    let (bytes, _) = write(&image, &encode(&blocks));
    (image, blocks, bytes)
}

/// Reads everything; the blocks and the summary.
fn read_all(bytes: &[u8]) -> Result<(StoredImage, Blocks, ArchiveSummary), ArchiveError> {
    let mut reader = ArchiveReader::new(bytes)?;
    let mut blocks = Vec::new();
    while let Some(block) = reader.next_block()? {
        assert_eq!(block.sha256, BlockHash::of(&block.data).0);
        blocks.push((block.snapshot_index, block.block_index, block.data));
    }
    // Stays at the end.
    assert!(reader.next_block()?.is_none());
    let summary = reader.summary().cloned().expect("summary at the end");
    Ok((reader.image().clone(), blocks, summary))
}

fn frame_offsets(image: &StoredImage, encoded: &[EncodedBlock]) -> Vec<(usize, usize)> {
    let manifest = serde_json::to_vec(image).unwrap();
    let mut offset = HEADER_LEN + manifest.len() + MANIFEST_CHECK_LEN;
    encoded
        .iter()
        .map(|e| {
            let start = offset;
            offset += e.frame_len() as usize;
            (start, offset)
        })
        .collect()
}

fn is_corrupt_or_truncated(result: &Result<impl std::fmt::Debug, ArchiveError>) -> bool {
    matches!(
        result,
        Err(ArchiveError::Corrupt(_)) | Err(ArchiveError::Truncated)
    )
}

#[test]
fn round_trip_two_snapshots() {
    let (image, blocks) = full_blocks();
    let encoded = encode(&blocks);
    assert!(!encoded[0].is_compressed(), "random data is stored raw");
    assert!(encoded[1].is_compressed(), "text compresses");
    let (bytes, written) = write(&image, &encoded);
    assert_eq!(written.archive_bytes, bytes.len() as u64);
    assert_eq!(written.block_count, 7);
    let (read_image, read_blocks, summary) = read_all(&bytes).unwrap();
    assert_eq!(read_image, image);
    assert_eq!(read_blocks, blocks);
    assert_eq!(summary, written);
    assert_eq!(summary.snapshots[0].block_count, 4);
    assert_eq!(summary.snapshots[0].raw_bytes, 3 * BLOCK_SIZE as u64 + 1234);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ami.bin");
    std::fs::write(&path, &bytes).unwrap();
    let inspected = inspect_file(&path).unwrap();
    assert_eq!(inspected.image, image);
    assert_eq!(inspected.summary, written);
    assert!(!inspected.verified);
    let verified = verify_file(&path).unwrap();
    assert_eq!(verified.summary, written);
    assert!(verified.verified);
    // The report serializes (the CLI's --json).
    let json = serde_json::to_value(&verified).unwrap();
    assert_eq!(json["summary"]["digest"], written.digest_hex());
}

#[test]
fn empty_image_round_trips() {
    let image = image(vec![(1, 0)]);
    let (bytes, written) = write(&image, &[]);
    let (read_image, blocks, summary) = read_all(&bytes).unwrap();
    assert_eq!(read_image, image);
    assert!(blocks.is_empty());
    assert_eq!(summary, written);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ami.bin");
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(inspect_file(&path).unwrap().summary, written);
}

#[test]
fn blocks_encoded_on_other_threads() {
    let (image, blocks) = full_blocks();
    let encoded: Vec<EncodedBlock> = std::thread::scope(|scope| {
        let handles: Vec<_> = blocks
            .iter()
            .map(|(s, b, data)| {
                scope.spawn(move || {
                    encode_block(*s, *b, data, BlockHash::of(data).0, DEFAULT_LEVEL).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (bytes, _) = write(&image, &encoded);
    assert_eq!(read_all(&bytes).unwrap().1, blocks);
}

#[test]
fn reused_frame_buffers_encode_the_same_frames() {
    let (image, blocks) = full_blocks();
    let fresh = encode(&blocks);
    // Each frame encoded into the buffer of the one before (a different
    // size and content), as a store does.
    let mut reused = Vec::new();
    let mut buffer = vec![0xAB; 600_000];
    for (s, b, data) in &blocks {
        let frame =
            encode_block_into(buffer, *s, *b, data, BlockHash::of(data).0, DEFAULT_LEVEL).unwrap();
        buffer = frame.clone().into_buffer();
        reused.push(frame);
    }
    assert_eq!(
        write(&image, &reused).0,
        write(&image, &fresh).0,
        "same archive bytes"
    );
}

#[test]
fn encode_refuses_empty_and_oversized_blocks() {
    assert!(encode_block(0, 0, &[], [0; 32], 1).is_err());
    let big = vec![1u8; BLOCK_SIZE + 1];
    assert!(encode_block(0, 0, &big, [0; 32], 1).is_err());
    assert!(is_zero_block(&[0u8; 1001]));
    assert!(!is_zero_block(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 1]));
}

#[test]
fn writer_refuses_out_of_order_and_misplaced_blocks() {
    let (image, blocks) = small_blocks();
    let encoded = encode(&blocks);
    let mut writer = ArchiveWriter::new(Vec::new(), &image).unwrap();
    writer.write_block(&encoded[1]).unwrap(); // (0, 2)
    let before = writer.bytes_written();
    // (0, 0) after (0, 2); the same block again.
    for block in [&encoded[0], &encoded[1]] {
        let error = writer.write_block(block).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    }
    assert_eq!(writer.bytes_written(), before, "nothing written");
    writer.write_block(&encoded[3]).unwrap(); // (1, 9)
    // Back to snapshot 0.
    let late = encode_block(0, 5, b"late", BlockHash::of(b"late").0, 1).unwrap();
    assert!(writer.write_block(&late).is_err());
    // Fewer blocks than the manifest promises.
    assert!(writer.finish().is_err());

    let mut writer = ArchiveWriter::new(Vec::new(), &image).unwrap();
    // A snapshot the manifest does not have.
    let foreign = encode_block(2, 0, b"x", BlockHash::of(b"x").0, 1).unwrap();
    assert!(writer.write_block(&foreign).is_err());
    // Beyond the volume (1 GiB = 2048 blocks).
    let beyond = encode_block(0, 2048, b"x", BlockHash::of(b"x").0, 1).unwrap();
    assert!(writer.write_block(&beyond).is_err());
    // More than promised.
    writer.write_block(&encoded[0]).unwrap();
    writer.write_block(&encoded[1]).unwrap();
    let third = encode_block(0, 3, b"x", BlockHash::of(b"x").0, 1).unwrap();
    assert!(writer.write_block(&third).is_err());
}

#[test]
fn every_flipped_byte_is_detected() {
    let (_, _, bytes) = archive(small_blocks());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ami.bin");
    for at in 0..bytes.len() {
        for mask in [0x01u8, 0x80] {
            let mut bad = bytes.clone();
            bad[at] ^= mask;
            let result = read_all(&bad);
            assert!(result.is_err(), "flip of {mask:#x} at {at} not detected");
            if at >= 8 + 2 {
                // Past the magic and the version: corrupt or truncated.
                assert!(
                    is_corrupt_or_truncated(&result),
                    "flip at {at}: {:?}",
                    result.err()
                );
            }
            // inspect does not read frames, but must never panic.
            std::fs::write(&path, &bad).unwrap();
            let _ = inspect_file(&path);
        }
    }
}

#[test]
fn corruption_in_each_region_names_it() {
    let (image, blocks) = full_blocks();
    let encoded = encode(&blocks);
    let (bytes, _) = write(&image, &encoded);
    let frames = frame_offsets(&image, &encoded);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ami.bin");
    let check = |at: usize, expect: &str, inspect_too: bool| {
        let mut bad = bytes.clone();
        bad[at] ^= 0x10;
        match read_all(&bad) {
            Err(ArchiveError::Corrupt(message)) => {
                assert!(message.contains(expect), "{at}: {message}")
            }
            other => panic!("flip at {at}: {:?}", other.err()),
        }
        std::fs::write(&path, &bad).unwrap();
        let inspected = inspect_file(&path);
        if inspect_too {
            assert!(inspected.is_err(), "inspect missed a flip at {at}");
        }
    };
    // The manifest.
    check(HEADER_LEN + 10, "manifest", true);
    // A frame's compressed payload (text block, zstd), and a raw payload.
    check(
        frames[1].0 + FRAME_HEADER_LEN + 100,
        "frame 1 (snapshot 0 block 1)",
        false,
    );
    check(frames[0].0 + FRAME_HEADER_LEN + 100, "SHA-256", false);
    // A frame header.
    check(frames[4].0 + 9, "frame 4", false);
    // The trailer (the index, the digest) and the footer.
    let len = bytes.len();
    check(frames[6].1 + 8 + 24 * 2 + 3, "index", true);
    check(len - 64 - 5, "digest", true);
    check(len - 64 + 3, "footer", true);
    check(len - 64 + 33, "footer", true);
    check(len - 1, "footer", false);
}

#[test]
fn truncation_anywhere_is_detected() {
    let (_, _, bytes) = archive(small_blocks());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ami.bin");
    for cut in 1..bytes.len() {
        let result = read_all(&bytes[..cut]);
        assert!(
            is_corrupt_or_truncated(&result),
            "cut at {cut}: {:?}",
            result.err()
        );
        std::fs::write(&path, &bytes[..cut]).unwrap();
        assert!(inspect_file(&path).is_err(), "inspect of a cut at {cut}");
    }
    // The large archive, at a spread of cut points.
    let (_, _, bytes) = archive(full_blocks());
    for cut in (1..bytes.len())
        .step_by(4099)
        .chain(bytes.len() - 70..bytes.len())
    {
        let result = read_all(&bytes[..cut]);
        assert!(
            is_corrupt_or_truncated(&result),
            "cut at {cut}: {:?}",
            result.err()
        );
    }
    // Appending is detected too.
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(read_all(&longer), Err(ArchiveError::Corrupt(_))));
}

#[test]
fn swapped_frames_are_detected() {
    let (image, blocks) = small_blocks();
    let encoded = encode(&blocks);
    let (bytes, _) = write(&image, &encoded);
    let frames = frame_offsets(&image, &encoded);
    for (a, b) in [(0, 1), (1, 2), (2, 3), (0, 3)] {
        let mut swapped = bytes[..frames[0].0].to_vec();
        let mut order: Vec<usize> = (0..frames.len()).collect();
        order.swap(a, b);
        for i in order {
            swapped.extend_from_slice(&bytes[frames[i].0..frames[i].1]);
        }
        swapped.extend_from_slice(&bytes[frames[3].1..]);
        assert_eq!(swapped.len(), bytes.len());
        let result = read_all(&swapped);
        assert!(
            matches!(&result, Err(ArchiveError::Corrupt(m)) if m.contains("out of order")),
            "swap {a} {b}: {:?}",
            result.err()
        );
    }
}

#[test]
fn wrong_raw_sha256_is_detected() {
    let (image, blocks) = small_blocks();
    let mut encoded = encode(&blocks);
    let (_, _, data) = &blocks[2];
    let mut wrong = BlockHash::of(data).0;
    wrong[0] ^= 1;
    encoded[2] = encode_block(1, 1, data, wrong, DEFAULT_LEVEL).unwrap();
    let (bytes, _) = write(&image, &encoded);
    match read_all(&bytes) {
        Err(ArchiveError::Corrupt(m)) => {
            assert!(
                m.contains("frame 2 (snapshot 1 block 1)") && m.contains("SHA-256"),
                "{m}"
            )
        }
        other => panic!("{:?}", other.err()),
    }
    // Read unverified, the structure passes and the block's own check
    // fails, naming it; the other blocks verify.
    let mut reader = ArchiveReader::new(&bytes[..]).unwrap();
    let mut failures = Vec::new();
    while let Some(block) = reader.next_unverified().unwrap() {
        if let Err(ArchiveError::Corrupt(m)) = block.verify() {
            failures.push(m);
        }
    }
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].contains("frame 2 (snapshot 1 block 1)"),
        "{failures:?}"
    );
    assert!(reader.summary().is_some());
}

#[test]
fn foreign_files_are_not_archives() {
    let mut rng = StdRng::seed_from_u64(3);
    let random = random_block(&mut rng, 10_000);
    let zstd_file = zstd::bulk::compress(b"hello hello hello hello", 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("foreign");
    for foreign in [
        &random[..],
        &[][..],
        &zstd_file[..],
        b"{\"image_id\": \"ami-1\"}",
    ] {
        assert!(matches!(
            ArchiveReader::new(foreign),
            Err(ArchiveError::NotAnArchive)
        ));
        std::fs::write(&path, foreign).unwrap();
        assert!(matches!(
            inspect_file(&path),
            Err(ArchiveError::NotAnArchive)
        ));
        assert!(matches!(
            verify_file(&path),
            Err(ArchiveError::NotAnArchive)
        ));
    }
    // A prefix of the magic is a truncated archive.
    assert!(matches!(
        ArchiveReader::new(&b"\x89HAN"[..]),
        Err(ArchiveError::Truncated)
    ));
    // A missing file is an I/O error.
    assert!(matches!(
        inspect_file(dir.path().join("missing")),
        Err(ArchiveError::Io(_))
    ));
}

#[test]
fn future_version_is_unsupported() {
    let (_, _, mut bytes) = archive(small_blocks());
    bytes[8..10].copy_from_slice(&2u16.to_le_bytes());
    assert!(matches!(
        ArchiveReader::new(&bytes[..]),
        Err(ArchiveError::UnsupportedVersion(2))
    ));
    // Even with only the header there.
    assert!(matches!(
        ArchiveReader::new(&bytes[..12]),
        Err(ArchiveError::UnsupportedVersion(2))
    ));
}

/// Rewrites frame `n`'s header with `edit` applied, with a valid check.
fn patch_frame(bytes: &mut [u8], start: usize, edit: impl FnOnce(&mut FrameHeader)) {
    let mut raw = [0u8; FRAME_HEADER_LEN];
    raw.copy_from_slice(&bytes[start..start + FRAME_HEADER_LEN]);
    let mut header = FrameHeader::parse(&raw).unwrap();
    edit(&mut header);
    bytes[start..start + FRAME_HEADER_LEN].copy_from_slice(&header.to_bytes());
}

#[test]
fn zip_bombs_are_refused() {
    let (image, blocks) = full_blocks();
    let encoded = encode(&blocks);
    let (bytes, _) = write(&image, &encoded);
    let frames = frame_offsets(&image, &encoded);
    // Frame 5: 512 KiB of 'a', a few dozen bytes of zstd.
    assert!(encoded[5].frame_len() < 200);
    // Declared larger than a block.
    let mut bomb = bytes.clone();
    patch_frame(&mut bomb, frames[5].0, |h| {
        h.raw_len = BLOCK_SIZE as u32 * 4
    });
    match read_all(&bomb) {
        Err(ArchiveError::Corrupt(m)) => {
            assert!(m.contains("frame 5") && m.contains("declared"), "{m}")
        }
        other => panic!("{:?}", other.err()),
    }
    // Declared small, decompresses to more: stopped at the declared size.
    let mut bomb = bytes.clone();
    let stored = encoded[5].frame_len() as u32 - FRAME_HEADER_LEN as u32;
    patch_frame(&mut bomb, frames[5].0, |h| h.raw_len = stored + 1);
    match read_all(&bomb) {
        Err(ArchiveError::Corrupt(m)) => assert!(m.contains("frame 5"), "{m}"),
        other => panic!("{:?}", other.err()),
    }
}

#[test]
fn random_mutations_never_panic_or_pass() {
    let (_, _, bytes) = archive(small_blocks());
    let mut rng = StdRng::seed_from_u64(99);
    for _ in 0..3000 {
        let mut bad = bytes.clone();
        for _ in 0..rng.random_range(1..4) {
            match rng.random_range(0..5) {
                0 => {
                    let at = rng.random_range(0..bad.len());
                    bad[at] = rng.random();
                }
                1 => {
                    let at = rng.random_range(0..bad.len());
                    bad.insert(at, rng.random());
                }
                2 if bad.len() > 1 => {
                    let at = rng.random_range(0..bad.len());
                    bad.remove(at);
                }
                3 => {
                    let cut = rng.random_range(0..bad.len());
                    bad.truncate(cut);
                }
                _ => {
                    // Copy a span over another.
                    let len = rng.random_range(1..64).min(bad.len());
                    let from = rng.random_range(0..=bad.len() - len);
                    let to = rng.random_range(0..=bad.len() - len);
                    let span = bad[from..from + len].to_vec();
                    bad[to..to + len].copy_from_slice(&span);
                }
            }
            if bad.is_empty() {
                break;
            }
        }
        if read_all(&bad).is_ok() {
            assert_eq!(bad, bytes, "a mutated archive passed verification");
        }
    }
}

#[test]
fn readers_stream_from_unbuffered_inputs() {
    // One byte at a time: the reader must not depend on read sizes.
    struct Trickle<'a>(&'a [u8]);
    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }
    let (_, blocks, bytes) = archive(small_blocks());
    let mut reader = ArchiveReader::new(Trickle(&bytes)).unwrap();
    let mut read = Vec::new();
    while let Some(block) = reader.next_block().unwrap() {
        read.push((block.snapshot_index, block.block_index, block.data));
    }
    assert_eq!(read, blocks);
    let mut sink = Vec::new();
    sink.write_all(&bytes).unwrap();
    assert_eq!(sink, bytes);
}

/// A sink that keeps the frames it is handed, as the store task's parts do.
#[derive(Default)]
struct KeptFrames {
    bytes: Vec<u8>,
    frames_kept: usize,
}

impl Write for KeptFrames {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.bytes.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl FrameSink for KeptFrames {
    fn write_frame(&mut self, frame: bytes::Bytes) -> std::io::Result<()> {
        self.frames_kept += 1;
        self.bytes.extend_from_slice(&frame);
        Ok(())
    }
}

#[test]
fn owned_frames_and_reused_buffers_write_the_same_archive() {
    for (image, blocks) in [full_blocks(), small_blocks()] {
        let encoded = encode(&blocks);
        let (expected, expected_summary) = write(&image, &encoded);
        // Frames encoded into dirty buffers of every size, bigger and
        // smaller than a block, then handed over whole; the digest inline
        // and on its own thread.
        for threaded in [false, true] {
            let sink = KeptFrames::default();
            let mut writer = if threaded {
                ArchiveWriter::with_digest_thread(sink, &image).unwrap()
            } else {
                ArchiveWriter::new(sink, &image).unwrap()
            };
            let mut kept = 0;
            for (i, (s, b, data)) in blocks.iter().enumerate() {
                let dirty = vec![0xA5u8; [0, 10, BLOCK_SIZE * 2, 70_000][i % 4]];
                let block =
                    encode_block_into(dirty, *s, *b, data, BlockHash::of(data).0, DEFAULT_LEVEL)
                        .unwrap();
                assert_eq!(block.frame, encoded[i].frame, "frame {i}");
                let large = block.frame.len() >= KEEP_FRAMES_FROM;
                let back = writer.write_block_owned(block).unwrap();
                assert_eq!(back.is_none(), large, "frame {i}: kept only when large");
                kept += usize::from(large);
            }
            let (sink, summary) = writer.finish().unwrap();
            assert_eq!(sink.frames_kept, kept);
            assert_eq!(sink.bytes, expected, "threaded digest: {threaded}");
            assert_eq!(summary, expected_summary);
        }
        // Out of order is refused as by write_block, writing nothing.
        let mut writer = ArchiveWriter::new(KeptFrames::default(), &image).unwrap();
        writer.write_block_owned(encoded[1].clone()).unwrap();
        let before = writer.bytes_written();
        assert!(writer.write_block_owned(encoded[0].clone()).is_err());
        assert_eq!(writer.bytes_written(), before);
    }
}
