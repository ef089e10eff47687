//! Store and restore tasks: the [`ImageTransfer`] that `hangar-core`'s task
//! runner calls for `TaskWork::StoreImage` and `TaskWork::RestoreImage`.
//!
//! **Store.** The task re-checks what the request checked (the image is
//! available, its snapshots exist and are complete, the owner may still
//! write to the bucket), builds the archive manifest ([`StoredImage`]), and
//! streams the archive (`hangar-archive`) into the bucket through a
//! multipart upload: block maps are read a page at a time, blocks are read
//! and compressed in groups, `parallelism` groups at a time (in order), frames are kept as
//! they were encoded in a list of chunks, and every `part_size` bytes a part
//! (a list of chunks) is uploaded. Memory is bounded by the blocks in flight
//! and the parts in flight. Between parts the task
//! checks that the image, its snapshots and the owner's access to the
//! bucket are still there, and fails with a reason that says what went
//! away. The upload is completed only when the archive is whole, then the
//! object is checked (size and ETag); a failed task aborts its upload, so
//! no partial object is ever visible. The upload ID is kept in the task:
//! a task resumed after a crash writes its parts again into the same
//! upload (parts replace parts), and its progress never goes backwards.
//!
//! **Restore.** The object is read as a stream on a blocking thread by
//! `hangar-archive`'s reader, which verifies every frame (length and
//! SHA-256) and, at the end, the index and the digest of the whole; blocks
//! flow through a bounded channel into the snapshots (block store, then
//! block map). The snapshots become `completed` and the image `available`
//! only after the reader has verified the trailer; any failure makes every
//! snapshot `error` and the image `failed` with the reason.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use hangar_archive::{
    ArchiveError, ArchiveReader, ArchiveWriter, EncodedBlock, FrameSink, UnverifiedBlock,
    encode_block_into,
};
use hangar_core::access::actions;
use hangar_core::blocks::BlockHash;
use hangar_core::buckets::BucketError;
use hangar_core::model::{Bucket, Image, ImageState, SnapshotState, Tag, Task, TaskWork};
use hangar_core::repo::ZERO_BLOCK;
use hangar_core::transfer::{
    ImageTransfer, ObjectBackend, RestoredBlock, StoredImage, StoredSnapshot,
};
use hangar_core::{Caller, Error, Hangar};

/// Knobs of the transfer work.
#[derive(Debug, Clone)]
pub struct TransferOptions {
    /// Bytes per uploaded part (at least 5 MiB, S3's minimum).
    pub part_size: usize,
    /// zstd level of block frames.
    pub compression_level: i32,
    /// Groups of blocks (`ENCODE_GROUP` each) read and compressed at once.
    pub parallelism: usize,
}

impl Default for TransferOptions {
    fn default() -> Self {
        Self {
            part_size: 16 * 1024 * 1024,
            compression_level: 1,
            parallelism: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .saturating_mul(2)
                .clamp(2, 8),
        }
    }
}

/// The store and restore work, over one object backend.
pub struct Transfer {
    backend: Arc<dyn ObjectBackend>,
    options: TransferOptions,
}

impl Transfer {
    pub fn new(backend: Arc<dyn ObjectBackend>, options: TransferOptions) -> Self {
        Self { backend, options }
    }
}

/// Block map entries read per page.
const MAP_PAGE: usize = 1000;

fn failed(reason: impl Into<String>) -> Error {
    Error::TaskFailed(reason.into())
}

fn owner_of(task: &Task) -> Caller {
    Caller {
        account_id: task.owner_id.clone(),
        region: task.region.clone(),
    }
}

/// The archive on its way into parts: the frames themselves, as they were
/// encoded (no copy into a part buffer, which cost a store a pass over
/// every byte and the page faults of fresh part buffers), and small pieces
/// (header, manifest, trailer, small frames: see `KEEP_FRAMES_FROM`)
/// copied into a staging buffer.
/// A part is a list of chunks; the chunk at a part boundary is split
/// without copying. Buffers of uploaded parts come back to the frame pool
/// ([`PartBuffer::give_back`]) for the next blocks to be encoded into.
#[derive(Clone, Default)]
struct PartBuffer {
    inner: Arc<Mutex<Chunks>>,
    frames: FramePool,
}

#[derive(Default)]
struct Chunks {
    chunks: std::collections::VecDeque<bytes::Bytes>,
    staged: Vec<u8>,
    len: usize,
}

impl Chunks {
    fn seal_staged(&mut self) {
        if !self.staged.is_empty() {
            let staged = std::mem::take(&mut self.staged);
            self.chunks.push_back(bytes::Bytes::from(staged));
        }
    }
}

impl Write for PartBuffer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| std::io::Error::other("part buffer poisoned"))?;
        inner.staged.extend_from_slice(data);
        inner.len += data.len();
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl FrameSink for PartBuffer {
    fn write_frame(&mut self, frame: bytes::Bytes) -> std::io::Result<()> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| std::io::Error::other("part buffer poisoned"))?;
        inner.seal_staged();
        inner.len += frame.len();
        inner.chunks.push_back(frame);
        Ok(())
    }
}

impl PartBuffer {
    fn new(frames: FramePool) -> Self {
        PartBuffer {
            inner: Arc::default(),
            frames,
        }
    }

    fn len(&self) -> usize {
        self.inner.lock().map(|inner| inner.len).unwrap_or(0)
    }

    /// Takes the first `at_most` bytes out, as chunks.
    fn take(&self, at_most: usize) -> Vec<bytes::Bytes> {
        let Ok(mut inner) = self.inner.lock() else {
            return Vec::new();
        };
        inner.seal_staged();
        let mut part = Vec::new();
        let mut taken = 0;
        while taken < at_most {
            let Some(mut chunk) = inner.chunks.pop_front() else {
                break;
            };
            if taken + chunk.len() > at_most {
                let rest = chunk.split_off(at_most - taken);
                inner.chunks.push_front(rest);
            }
            taken += chunk.len();
            part.push(chunk);
        }
        inner.len -= taken;
        part
    }

    /// Returns an uploaded part's buffers to the frame pool (each once no
    /// one else holds it: the halves of a split chunk come back with the
    /// later of their parts).
    fn give_back(&self, part: Vec<bytes::Bytes>) {
        for chunk in part {
            if let Ok(buffer) = chunk.try_into_mut() {
                self.frames.give_back(buffer.into());
            }
        }
    }
}

fn part_len(part: &[bytes::Bytes]) -> usize {
    part.iter().map(bytes::Bytes::len).sum()
}

thread_local! {
    /// The block read buffer of each blocking thread, reused block after
    /// block (see `BlockStore::get_blocking_into`).
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Frame buffers of uploaded parts, for the next blocks to be encoded
/// into: memory already touched, where a fresh 512 KiB frame per block
/// page-faults on every page of it.
#[derive(Clone, Default)]
struct FramePool(Arc<Mutex<Vec<Vec<u8>>>>);

/// Frame buffers kept: the frames of the parts in flight (each part holds
/// up to `part_size` / 512 KiB of them) come back when those parts are
/// uploaded; more than this are freed. Bounds the pool to about 64 MiB.
const SPARE_FRAMES: usize = 128;

impl FramePool {
    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .ok()
            .and_then(|mut spare| spare.pop())
            .unwrap_or_default()
    }

    fn give_back(&self, frame: Vec<u8>) {
        // Only buffers a block's frame fits in without growing.
        if frame.capacity() < hangar_core::blocks::BLOCK_SIZE {
            return;
        }
        if let Ok(mut spare) = self.0.lock()
            && spare.len() < SPARE_FRAMES
        {
            spare.push(frame);
        }
    }
}

/// S3 metadata values must be header-safe: printable ASCII is kept, other
/// bytes are percent-encoded (UTF-8).
fn header_safe(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if (0x20..0x7f).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn iso8601(ms: i64) -> String {
    hangar_core::timefmt::iso_millis(ms)
}

/// One snapshot of the image being stored: its record's ID and map.
struct SourceSnapshot {
    snapshot_id: String,
}

impl Transfer {
    /// The bucket, if the task's owner may still write `key` into it.
    async fn writable_bucket(
        &self,
        hangar: &Hangar,
        owner: &Caller,
        bucket: &str,
        key: &str,
    ) -> Result<Bucket, Error> {
        self.backend
            .bucket(hangar, owner, bucket, actions::PUT_OBJECT, key)
            .await
            .map_err(|error| match error {
                BucketError::NoSuchBucket(_) => {
                    failed(format!("The bucket {bucket} was deleted during the task"))
                }
                BucketError::AccessDenied(_) => failed(format!(
                    "Access to the bucket {bucket} was lost during the task"
                )),
                other => Error::Internal(other.to_string()),
            })
    }

    /// The image and its snapshots, still as the task needs them.
    async fn check_source(
        &self,
        hangar: &Hangar,
        image_id: &str,
        snapshots: &[SourceSnapshot],
    ) -> Result<Image, Error> {
        let image = hangar.image_record(image_id).await?;
        let Some(image) = image.filter(|image| image.state == ImageState::Available) else {
            return Err(failed(format!(
                "The image {image_id} was deregistered during the task"
            )));
        };
        for snapshot in snapshots {
            let record = hangar.snapshot_record(&snapshot.snapshot_id).await?;
            if !record.is_some_and(|record| record.state == SnapshotState::Completed) {
                return Err(failed(format!(
                    "The snapshot {} of {image_id} was deleted during the task",
                    snapshot.snapshot_id
                )));
            }
        }
        Ok(image)
    }

    /// The manifest of `image` and the snapshots it names, in mapping order.
    async fn manifest(
        &self,
        hangar: &Hangar,
        image: &Image,
    ) -> Result<(StoredImage, Vec<SourceSnapshot>, u64), Error> {
        let mut snapshots = Vec::new();
        let mut stored = Vec::new();
        let mut total_blocks = 0u64;
        for mapping in &image.block_device_mappings {
            let Some(snapshot_id) = mapping.ebs.as_ref().and_then(|ebs| ebs.snapshot_id.clone())
            else {
                continue;
            };
            if snapshots
                .iter()
                .any(|known: &SourceSnapshot| known.snapshot_id == snapshot_id)
            {
                continue;
            }
            let Some(record) = hangar.snapshot_record(&snapshot_id).await? else {
                return Err(failed(format!(
                    "The snapshot {snapshot_id} of {} no longer exists",
                    image.image_id
                )));
            };
            let mut count = 0u64;
            let mut start = 0i64;
            loop {
                let page = hangar.block_entries(&snapshot_id, start, MAP_PAGE).await?;
                let complete = page.len() < MAP_PAGE;
                for (index, hash) in &page {
                    if hash != ZERO_BLOCK {
                        count += 1;
                    }
                    start = index + 1;
                }
                if complete {
                    break;
                }
            }
            total_blocks += count;
            stored.push(StoredSnapshot {
                snapshot_id: snapshot_id.clone(),
                volume_size_gib: record.volume_size_gib,
                description: record.description.clone(),
                tags: record.tags.clone(),
                block_count: count,
            });
            snapshots.push(SourceSnapshot { snapshot_id });
        }
        let manifest = StoredImage {
            image_id: image.image_id.clone(),
            region: image.region.clone(),
            partition: hangar.settings().partition.clone(),
            owner_id: image.owner_id.clone(),
            name: image.name.clone(),
            description: image.description.clone(),
            architecture: image.architecture.clone(),
            virtualization_type: image.virtualization_type.clone(),
            hypervisor: image.hypervisor.clone(),
            platform: image.platform.clone(),
            platform_details: image.platform_details.clone(),
            usage_operation: image.usage_operation.clone(),
            root_device_name: image.root_device_name.clone(),
            boot_mode: image.boot_mode.clone(),
            ena_support: image.ena_support,
            sriov_net_support: image.sriov_net_support.clone(),
            tpm_support: image.tpm_support.clone(),
            imds_support: image.imds_support.clone(),
            uefi_data: image.uefi_data.clone(),
            kernel_id: image.kernel_id.clone(),
            ramdisk_id: image.ramdisk_id.clone(),
            creation_ms: image.creation_ms,
            block_device_mappings: image.block_device_mappings.clone(),
            tags: image.tags.clone(),
            snapshots: stored,
            stored_ms: 0,
        };
        Ok((manifest, snapshots, total_blocks))
    }

    async fn store_inner(
        &self,
        hangar: &Hangar,
        task: &mut Task,
        upload_slot: &mut Option<(Bucket, String, String)>,
    ) -> Result<(), Error> {
        let TaskWork::StoreImage {
            image_id,
            bucket,
            object_key,
            object_tags,
            upload_id,
        } = task.work.clone()
        else {
            return Err(Error::Internal("not a store task".into()));
        };
        let owner = owner_of(task);
        let bucket_record = self
            .writable_bucket(hangar, &owner, &bucket, &object_key)
            .await?;
        let image = match hangar.image_record(&image_id).await? {
            Some(image) if image.state == ImageState::Available => image,
            // Deregistered before the task began (the runner may pick the
            // task up a moment after the request): the same reason as a
            // deregistration during the work.
            Some(image) if image.state == ImageState::Deregistered => {
                return Err(failed(format!(
                    "The image {image_id} was deregistered before the task started"
                )));
            }
            _ => {
                return Err(failed(format!(
                    "The image {image_id} is no longer available"
                )));
            }
        };
        let (mut manifest, snapshots, total_blocks) = self.manifest(hangar, &image).await?;
        manifest.stored_ms = task.created_ms;
        self.check_source(hangar, &image_id, &snapshots).await?;

        // The upload: the task's own (resumed, with the parts the store
        // already holds), or a new one.
        let mut stored_parts: BTreeMap<i32, (String, i64)> = BTreeMap::new();
        let resumed = match upload_id {
            Some(upload_id) => match self
                .backend
                .list_parts(&bucket_record, &object_key, &upload_id)
                .await
            {
                Ok(listed) => {
                    stored_parts = listed
                        .into_iter()
                        .map(|(number, etag, size)| (number, (etag, size)))
                        .collect();
                    Some(upload_id)
                }
                Err(BucketError::NoSuchUpload(_)) => None,
                Err(error) => {
                    // The upload cannot be continued: drop it rather than
                    // leave it behind, and start a new one.
                    tracing::warn!(%error, upload_id, "cannot list the parts of the task's upload; starting a new upload");
                    if let Err(error) = self
                        .backend
                        .abort_upload(&bucket_record, &object_key, &upload_id)
                        .await
                    {
                        tracing::warn!(%error, upload_id, "cannot abort the task's earlier upload");
                    }
                    None
                }
            },
            None => None,
        };
        let upload_id = match resumed {
            Some(upload_id) => upload_id,
            None => {
                let metadata = BTreeMap::from([
                    ("ami-name".to_owned(), header_safe(&image.name)),
                    (
                        "ami-description".to_owned(),
                        header_safe(image.description.as_deref().unwrap_or("")),
                    ),
                    ("ami-creation-date".to_owned(), iso8601(image.creation_ms)),
                    ("ami-owner-account".to_owned(), image.owner_id.clone()),
                    ("ami-store-date".to_owned(), iso8601(task.created_ms)),
                    ("ami-id".to_owned(), image.image_id.clone()),
                    ("ami-region".to_owned(), image.region.clone()),
                ]);
                let tags: BTreeMap<String, String> = object_tags
                    .iter()
                    .map(|Tag { key, value }| (key.clone(), value.clone()))
                    .collect();
                let upload_id = self
                    .backend
                    .create_upload(&bucket_record, &object_key, metadata, tags)
                    .await
                    .map_err(|error| failed(format!("Cannot start the upload: {error}")))?;
                task.work = TaskWork::StoreImage {
                    image_id: image_id.clone(),
                    bucket: bucket.clone(),
                    object_key: object_key.clone(),
                    object_tags: object_tags.clone(),
                    upload_id: Some(upload_id.clone()),
                };
                hangar.save_task(task).await?;
                upload_id
            }
        };
        *upload_slot = Some((bucket_record.clone(), object_key.clone(), upload_id.clone()));

        let spare_frames = FramePool::default();
        let buffer = PartBuffer::new(spare_frames.clone());
        let mut writer = ArchiveWriter::with_digest_thread(buffer.clone(), &manifest)
            .map_err(|error| Error::Internal(format!("archive: {error}")))?;
        // Two loops run side by side: the producer encodes blocks into the
        // archive and hands full parts over; the consumer checks the source
        // and the bucket, starts each part's upload and reports progress.
        // So the producer never waits for the database, only for a part
        // upload slot (the channel holds one part).
        let (part_tx, part_rx) = tokio::sync::mpsc::channel::<(Vec<bytes::Bytes>, u64)>(1);
        let handed_over = || failed("The part uploads stopped");
        let produce = async {
            let part_tx = part_tx;
            let mut blocks_done: u64 = 0;
            let mut parts_sent: u64 = 0;
            for (snapshot_index, snapshot) in snapshots.iter().enumerate() {
                let mut start = 0i64;
                loop {
                    let page = hangar
                        .block_entries(&snapshot.snapshot_id, start, MAP_PAGE)
                        .await?;
                    let complete = page.len() < MAP_PAGE;
                    if let Some((last, _)) = page.last() {
                        start = last + 1;
                    }
                    let wanted: Vec<(i64, BlockHash)> = page
                        .into_iter()
                        .filter(|(_, hash)| hash != ZERO_BLOCK)
                        .map(|(index, hash)| {
                            BlockHash::from_hex(&hash)
                                .map(|hash| (index, hash))
                                .ok_or_else(|| {
                                    Error::Internal(format!(
                                        "block map of {} holds a bad hash",
                                        snapshot.snapshot_id
                                    ))
                                })
                        })
                        .collect::<Result<_, Error>>()?;
                    let level = self.options.compression_level;
                    let snapshot_id = snapshot.snapshot_id.clone();
                    let snapshot_index = u32::try_from(snapshot_index).unwrap_or(u32::MAX);
                    // Blocks go to the blocking threads a group at a time:
                    // one hop per block cost a thread switch per 512 KiB.
                    let groups: Vec<Vec<(i64, BlockHash)>> = wanted
                        .chunks(ENCODE_GROUP)
                        .map(<[(i64, BlockHash)]>::to_vec)
                        .collect();
                    let mut frames = futures::stream::iter(groups.into_iter().map(|group| {
                        let blocks = hangar.blocks().clone();
                        let snapshot_id = snapshot_id.clone();
                        let spare = spare_frames.clone();
                        async move {
                            let cannot_read =
                                move |index: i64, error: hangar_core::blocks::BlockError| {
                                    failed(format!(
                                        "Cannot read block {index} of {snapshot_id}: {error}"
                                    ))
                                };
                            let encode =
                                move |index: i64,
                                      hash: BlockHash,
                                      data: &[u8],
                                      spare: &FramePool| {
                                    encode_block_into(
                                        spare.take(),
                                        snapshot_index,
                                        u64::try_from(index).unwrap_or(0),
                                        data,
                                        hash.0,
                                        level,
                                    )
                                    .map_err(|error| Error::Internal(format!("archive: {error}")))
                                };
                            // Local blocks: read (into this thread's buffer),
                            // verified and compressed in one blocking hop per
                            // group; other engines read asynchronously.
                            let local = blocks.clone();
                            let local_group = group.clone();
                            let local_spare = spare.clone();
                            let local_cannot_read = cannot_read.clone();
                            let encoded = tokio::task::spawn_blocking(move || {
                                READ_BUFFER.with(|buffer| {
                                    let mut buffer = buffer.borrow_mut();
                                    let mut frames = Vec::with_capacity(local_group.len());
                                    for (index, hash) in local_group {
                                        let frame = match local
                                            .get_blocking_into(&hash, &mut buffer)?
                                        {
                                            Ok(()) => encode(index, hash, &buffer, &local_spare),
                                            Err(error) => Err(local_cannot_read(index, error)),
                                        };
                                        match frame {
                                            Ok(frame) => frames.push(frame),
                                            Err(error) => return Some(Err(error)),
                                        }
                                    }
                                    Some(Ok(frames))
                                })
                            })
                            .await
                            .map_err(|error| Error::Internal(error.to_string()))?;
                            match encoded {
                                Some(frames) => frames,
                                None => {
                                    let data = futures::future::try_join_all(group.iter().map(
                                        |(index, hash)| {
                                            let blocks = blocks.clone();
                                            let cannot_read = cannot_read.clone();
                                            async move {
                                                blocks
                                                    .get(hash)
                                                    .await
                                                    .map_err(|error| cannot_read(*index, error))
                                            }
                                        },
                                    ))
                                    .await?;
                                    tokio::task::spawn_blocking(move || {
                                        group
                                            .into_iter()
                                            .zip(data)
                                            .map(|((index, hash), data)| {
                                                encode(index, hash, &data, &spare)
                                            })
                                            .collect::<Result<Vec<EncodedBlock>, Error>>()
                                    })
                                    .await
                                    .map_err(|error| Error::Internal(error.to_string()))?
                                }
                            }
                        }
                    }))
                    .buffered(self.options.parallelism);
                    while let Some(group) = frames.try_next().await? {
                        for frame in group {
                            if let Some(copied) = writer
                                .write_block_owned(frame)
                                .map_err(|error| Error::Internal(format!("archive: {error}")))?
                            {
                                spare_frames.give_back(copied);
                            }
                            blocks_done += 1;
                            if buffer.len() >= self.options.part_size {
                                let data = buffer.take(self.options.part_size);
                                parts_sent += 1;
                                part_tx
                                    .send((data, blocks_done))
                                    .await
                                    .map_err(|_| handed_over())?;
                            }
                        }
                    }
                    if complete {
                        break;
                    }
                }
            }
            let (_, summary) = writer
                .finish()
                .map_err(|error| Error::Internal(format!("archive: {error}")))?;
            // The last part (any size) and whatever a full buffer left.
            loop {
                let data = buffer.take(self.options.part_size);
                if data.is_empty() && parts_sent > 0 {
                    break;
                }
                parts_sent += 1;
                part_tx
                    .send((data, blocks_done))
                    .await
                    .map_err(|_| handed_over())?;
                if buffer.len() == 0 {
                    break;
                }
            }
            Ok::<_, Error>(summary)
        };
        let consume = async {
            // Owned, so that a failed consumer closes the channel and the
            // producer's next send fails instead of waiting forever.
            let mut part_rx = part_rx;
            let mut parts: Vec<(i32, String)> = Vec::new();
            let mut in_flight: std::collections::VecDeque<UploadHandle> =
                std::collections::VecDeque::new();
            let mut next_part: i32 = 0;
            let mut uploaded: u64 = 0;
            while let Some((data, blocks_done)) = part_rx.recv().await {
                uploaded += part_len(&data) as u64;
                next_part += 1;
                self.check_source(hangar, &image_id, &snapshots).await?;
                self.writable_bucket(hangar, &owner, &bucket, &object_key)
                    .await?;
                // Parts upload in the background (encrypted and fsynced
                // there) while the next one is encoded; at most
                // `UPLOADS_IN_FLIGHT` at a time.
                // A resumed task keeps a part the store already holds
                // when it is byte for byte this one (the archive of the
                // same image encodes the same), where the backend can tell.
                let (kept, data) = self
                    .already_stored(stored_parts.get(&next_part), data)
                    .await?;
                if let Some(etag) = kept {
                    parts.push((next_part, etag));
                    buffer.give_back(data);
                    let progress = (blocks_done * 100 / total_blocks.max(1)) as i64;
                    hangar.report_task_progress(task, progress).await?;
                    continue;
                }
                if in_flight.len() >= UPLOADS_IN_FLIGHT
                    && let Some(oldest) = in_flight.pop_front()
                {
                    parts.push(finish_upload(oldest, &bucket).await?);
                }
                in_flight.push_back(self.spawn_upload(
                    &bucket_record,
                    &object_key,
                    &upload_id,
                    next_part,
                    data,
                    &buffer,
                ));
                let progress = (blocks_done * 100 / total_blocks.max(1)) as i64;
                hangar.report_task_progress(task, progress).await?;
            }
            while let Some(handle) = in_flight.pop_front() {
                parts.push(finish_upload(handle, &bucket).await?);
            }
            // Kept parts were listed as they came, uploads as they ended.
            parts.sort_by_key(|(number, _)| *number);
            Ok::<_, Error>((parts, uploaded))
        };
        let (produced, consumed) = futures::join!(produce, consume);
        // The consumer's error first: the producer's is then only that the
        // uploads stopped.
        let (parts, uploaded) = consumed?;
        let summary = produced?;
        self.check_source(hangar, &image_id, &snapshots).await?;
        self.writable_bucket(hangar, &owner, &bucket, &object_key)
            .await?;
        // Completing is irreversible: only while this node still holds the
        // task's lease (a node that lost it waits here until its run is
        // dropped, and the new holder completes the upload).
        hangar.confirm_task_lease(task).await?;
        let object = self
            .backend
            .complete_upload(&bucket_record, &object_key, &upload_id, parts)
            .await
            .map_err(|error| upload_failure(&bucket, error))?;
        *upload_slot = None;
        // Completed only over a complete object.
        let expected = i64::try_from(uploaded).unwrap_or(i64::MAX);
        let head = self
            .backend
            .head_object(&bucket_record, &object_key)
            .await
            .map_err(|error| upload_failure(&bucket, error))?;
        if object.size != expected
            || head.as_ref().map(|head| head.etag.as_str()) != Some(object.etag.as_str())
        {
            return Err(failed(format!(
                "The stored object {object_key} is not the {expected} bytes written"
            )));
        }
        tracing::info!(
            image_id,
            bucket,
            object_key,
            bytes = uploaded,
            blocks = summary.block_count,
            "store task finished"
        );
        Ok(())
    }
}

impl Transfer {
    /// The ETag of the part the store holds under this number, when it
    /// holds exactly `data` (same size, same ETag as the backend computes
    /// it); `None` when the part must be sent. `data` comes back either way.
    async fn already_stored(
        &self,
        stored: Option<&(String, i64)>,
        data: Vec<bytes::Bytes>,
    ) -> Result<(Option<String>, Vec<bytes::Bytes>), Error> {
        let Some((etag, size)) = stored else {
            return Ok((None, data));
        };
        if usize::try_from(*size).ok() != Some(part_len(&data)) {
            return Ok((None, data));
        }
        let backend = self.backend.clone();
        // Hashing a part is milliseconds of CPU: off the runtime's threads.
        let (computed, data) = tokio::task::spawn_blocking(move || {
            let computed = backend.part_etag(&data);
            (computed, data)
        })
        .await
        .map_err(|error| Error::Internal(error.to_string()))?;
        let kept = computed
            .filter(|computed| computed.eq_ignore_ascii_case(etag))
            .map(|_| etag.clone());
        Ok((kept, data))
    }
}

/// The blocking half of restoring one block of snapshot `snapshot_id`:
/// its SHA-256 is checked and it is written on the calling thread (one hop
/// per block; the batch's blocks hash and write in parallel, beside the
/// archive's reader). A full block the store already holds is compared with
/// its copy instead (and that copy's time refreshed): the same bytes, so the
/// same hash, for a fraction of a SHA-256. `Ok(value)` is the map value of
/// a written block; `Err(block)` a block still to write with
/// [`Hangar::put_restored_block`], from engines without blocking writes.
fn verify_and_write(
    blocks: &dyn hangar_core::blocks::BlockStore,
    snapshot_id: &str,
    volume_size_gib: i64,
    index: i64,
    block: UnverifiedBlock,
    object_key: &str,
) -> Result<Result<String, RestoredBlock>, Error> {
    let declared = BlockHash(block.declared_sha256());
    let full = block.data().len() == hangar_core::blocks::BLOCK_SIZE;
    if full && let Some(Ok(true)) = blocks.refresh_if_holding_blocking(&declared, block.data()) {
        let block = block.verified_by_identical_copy();
        return Hangar::restore_block_held(snapshot_id, volume_size_gib, index, block.sha256)
            .map(Ok);
    }
    let block = block
        .verify()
        .map_err(|error| failed(describe(&error, object_key)))?;
    let restored = Hangar::restored_block(
        snapshot_id,
        volume_size_gib,
        index,
        block.data,
        block.sha256,
    )?;
    let RestoredBlock::Write { hash, data } = &restored else {
        return Ok(Ok(ZERO_BLOCK.to_owned()));
    };
    match blocks.put_blocking(hash, data) {
        Some(written) => {
            written?;
            Ok(Ok(hash.to_hex()))
        }
        None => Ok(Err(restored)),
    }
}

/// Blocks read and compressed per blocking hop of a store task.
const ENCODE_GROUP: usize = 8;

/// Parts uploading at once while the archive is being encoded.
const UPLOADS_IN_FLIGHT: usize = 2;

type UploadHandle = tokio::task::JoinHandle<Result<(i32, String), BucketError>>;

impl Transfer {
    fn spawn_upload(
        &self,
        bucket: &Bucket,
        key: &str,
        upload_id: &str,
        part_number: i32,
        data: Vec<bytes::Bytes>,
        recycle: &PartBuffer,
    ) -> UploadHandle {
        let backend = self.backend.clone();
        let (bucket, key, upload_id) = (bucket.clone(), key.to_owned(), upload_id.to_owned());
        let recycle = recycle.clone();
        tokio::spawn(async move {
            let etag = backend
                .upload_part(&bucket, &key, &upload_id, part_number, data.clone())
                .await?;
            // The backend is done with them: the buffers serve other frames.
            recycle.give_back(data);
            Ok((part_number, etag))
        })
    }
}

async fn finish_upload(handle: UploadHandle, bucket: &str) -> Result<(i32, String), Error> {
    handle
        .await
        .map_err(|error| Error::Internal(error.to_string()))?
        .map_err(|error| upload_failure(bucket, error))
}

fn upload_failure(bucket: &str, error: BucketError) -> Error {
    match error {
        BucketError::NoSuchBucket(_) => {
            failed(format!("The bucket {bucket} was deleted during the task"))
        }
        BucketError::NoSuchUpload(_) => failed(format!(
            "The upload into {bucket} was aborted during the task"
        )),
        BucketError::AccessDenied(_) => failed(format!(
            "Access to the bucket {bucket} was lost during the task"
        )),
        other => failed(format!("Writing to the bucket {bucket} failed: {other}")),
    }
}

#[async_trait]
impl ImageTransfer for Transfer {
    async fn store(&self, hangar: &Hangar, task: &mut Task) -> Result<(), Error> {
        let mut upload = None;
        let outcome = self.store_inner(hangar, task, &mut upload).await;
        if outcome.is_err()
            && let Some((bucket, key, upload_id)) = upload
            && let Err(error) = self.backend.abort_upload(&bucket, &key, &upload_id).await
        {
            tracing::warn!(%error, upload_id, "cannot abort the upload of a failed store task");
        }
        outcome
    }

    async fn restore(&self, hangar: &Hangar, task: &mut Task) -> Result<(), Error> {
        let TaskWork::RestoreImage {
            image_id,
            snapshot_ids,
            ..
        } = task.work.clone()
        else {
            return Err(Error::Internal("not a restore task".into()));
        };
        match self.restore_inner(hangar, task).await {
            Ok(()) => Ok(()),
            Err(error) => {
                let reason = match &error {
                    Error::TaskFailed(reason) => reason.clone(),
                    other => format!("The restore failed: {other}"),
                };
                hangar
                    .fail_restore(&image_id, &snapshot_ids, &reason)
                    .await?;
                Err(failed(reason))
            }
        }
    }

    fn objects(&self) -> Option<&dyn ObjectBackend> {
        Some(self.backend.as_ref())
    }

    async fn inspect(&self, bucket: &Bucket, key: &str) -> Result<StoredImage, Error> {
        let (_, reader) = self
            .backend
            .open_object(bucket, key, 0)
            .await
            .map_err(|error| match error {
                BucketError::NoSuchKey(_) => Error::InvalidParameterValue(format!(
                    "The object {key} does not exist in the bucket {}",
                    bucket.name
                )),
                other => Error::Internal(other.to_string()),
            })?;
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || match ArchiveReader::new(reader) {
            Ok(reader) => Ok(reader.image().clone()),
            Err(error) => Err(Error::InvalidParameterValue(format!(
                "The object {key} is not an AMI archive stored by CreateStoreImageTask: {error}"
            ))),
        })
        .await
        .map_err(|error| Error::Internal(error.to_string()))?
    }
}

/// Blocks written per batch of a restore (one map transaction each).
const RESTORE_BATCH: usize = 16;

/// What the reader thread sends: the manifest first, then blocks.
enum Decoded {
    Manifest(Box<StoredImage>),
    /// A block whose SHA-256 the writers check (in parallel, on blocking
    /// threads) before it is stored.
    Block {
        block: UnverifiedBlock,
        /// Object bytes consumed so far, for progress.
        position: u64,
    },
}

fn describe(error: &ArchiveError, key: &str) -> String {
    match error {
        ArchiveError::NotAnArchive => format!("The object {key} is not an AMI archive"),
        ArchiveError::Truncated => format!("The object {key} is truncated"),
        other => format!("The object {key} is corrupt: {other}"),
    }
}

impl Transfer {
    async fn restore_inner(&self, hangar: &Hangar, task: &mut Task) -> Result<(), Error> {
        let TaskWork::RestoreImage {
            image_id,
            bucket,
            object_key,
            snapshot_ids,
            snapshot_tags,
        } = task.work.clone()
        else {
            return Err(Error::Internal("not a restore task".into()));
        };
        let owner = owner_of(task);
        let bucket_record = self
            .backend
            .bucket(hangar, &owner, &bucket, actions::GET_OBJECT, &object_key)
            .await
            .map_err(|error| failed(format!("Cannot read the bucket {bucket}: {error}")))?;
        let (object, reader) = self
            .backend
            .open_object(&bucket_record, &object_key, 0)
            .await
            .map_err(|error| failed(format!("Cannot read {object_key}: {error}")))?;
        let total = u64::try_from(object.size).unwrap_or(1).max(1);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Decoded, String>>(8);
        let key = object_key.clone();
        let reading = tokio::task::spawn_blocking(move || {
            let counting = CountingReader::new(reader);
            let position = counting.position.clone();
            let mut archive = match ArchiveReader::new(counting) {
                Ok(archive) => archive,
                Err(error) => {
                    let _ = tx.blocking_send(Err(describe(&error, &key)));
                    return;
                }
            };
            if tx
                .blocking_send(Ok(Decoded::Manifest(Box::new(archive.image().clone()))))
                .is_err()
            {
                return;
            }
            loop {
                match archive.next_unverified() {
                    Ok(Some(block)) => {
                        let message = Decoded::Block {
                            block,
                            position: position.load(std::sync::atomic::Ordering::Relaxed),
                        };
                        if tx.blocking_send(Ok(message)).is_err() {
                            return;
                        }
                    }
                    // The trailer and the digest are verified: done.
                    Ok(None) => return,
                    Err(error) => {
                        let _ = tx.blocking_send(Err(describe(&error, &key)));
                        return;
                    }
                }
            }
        });

        let manifest = match rx.recv().await {
            Some(Ok(Decoded::Manifest(manifest))) => manifest,
            Some(Err(reason)) => return Err(failed(reason)),
            _ => return Err(failed(format!("The object {object_key} ended early"))),
        };
        if manifest.snapshots.len() != snapshot_ids.len() {
            return Err(failed(format!(
                "The object {object_key} no longer holds the image it held when the restore was requested"
            )));
        }
        for (stored, snapshot_id) in manifest.snapshots.iter().zip(&snapshot_ids) {
            let mut tags = stored.tags.clone();
            for tag in &snapshot_tags {
                tags.retain(|existing| existing.key != tag.key);
                tags.push(tag.clone());
            }
            hangar
                .begin_restored_snapshot(
                    &owner,
                    snapshot_id,
                    stored.volume_size_gib,
                    format!(
                        "Created by CreateRestoreImageTask({image_id}) from {} ({})",
                        stored.snapshot_id, manifest.image_id
                    ),
                    tags,
                )
                .await?;
        }
        // Blocks are written in batches: the reader thread decodes ahead
        // through the channel, in order; each batch's block files are made
        // durable concurrently, then its map entries are recorded in one
        // transaction per snapshot, all under the block write guard (as
        // `PutSnapshotBlock` holds it from block to map entry). Two batches
        // are in flight at a time.
        let blocks = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|message| (message, rx))
        });
        let manifest = &manifest;
        let snapshot_ids_ref = &snapshot_ids;
        let object_key_ref = &object_key;
        let writes = blocks
            .ready_chunks(RESTORE_BATCH)
            .map(|batch| async move {
                let mut pending = Vec::with_capacity(batch.len());
                for message in batch {
                    match message {
                        Ok(Decoded::Block { block, position }) => {
                            let index = usize::try_from(block.snapshot_index).unwrap_or(usize::MAX);
                            let (Some(stored), Some(snapshot_id)) =
                                (manifest.snapshots.get(index), snapshot_ids_ref.get(index))
                            else {
                                return Err(failed(format!(
                                    "The object {object_key_ref} names a snapshot it does not hold"
                                )));
                            };
                            pending.push((
                                snapshot_id.clone(),
                                stored.volume_size_gib,
                                i64::try_from(block.block_index).unwrap_or(i64::MAX),
                                block,
                                position,
                            ));
                        }
                        Ok(Decoded::Manifest(_)) => {}
                        Err(reason) => return Err(failed(reason)),
                    }
                }
                let _writing = hangar.block_write_guard().await;
                let put_ms = hangar.block_write_started();
                let written = futures::future::try_join_all(pending.into_iter().map(
                    |(snapshot_id, volume_size_gib, index, block, position)| async move {
                        let blocks = hangar.blocks().clone();
                        let snapshot = snapshot_id.clone();
                        let key = object_key_ref.clone();
                        let corrupt = |error| match error {
                            Error::Internal(detail) => {
                                failed(format!("The object {object_key_ref} is corrupt: {detail}"))
                            }
                            other => other,
                        };
                        let restored = tokio::task::spawn_blocking(move || {
                            verify_and_write(
                                blocks.as_ref(),
                                &snapshot,
                                volume_size_gib,
                                index,
                                block,
                                &key,
                            )
                        })
                        .await
                        .map_err(|error| Error::Internal(error.to_string()))?
                        .map_err(corrupt)?;
                        let value = match restored {
                            Ok(value) => value,
                            Err(unwritten) => hangar
                                .put_restored_block(unwritten)
                                .await
                                .map_err(corrupt)?,
                        };
                        Ok::<_, Error>((snapshot_id, index, value, position))
                    },
                ))
                .await?;
                let mut by_snapshot: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
                let mut furthest = 0u64;
                for (snapshot_id, index, value, position) in written {
                    by_snapshot
                        .entry(snapshot_id)
                        .or_default()
                        .push((index, value));
                    furthest = furthest.max(position);
                }
                for (snapshot_id, entries) in by_snapshot {
                    hangar
                        .restore_map_entries(&snapshot_id, &entries, put_ms)
                        .await?;
                }
                Ok::<_, Error>(furthest)
            })
            .buffer_unordered(2);
        // Progress goes to the task from a second future polled beside the
        // writes: awaiting the database between two polls of the writes
        // could wait for the one write connection a suspended batch holds.
        let (progress_tx, mut progress_rx) = tokio::sync::watch::channel(0i64);
        let consume = async move {
            let mut writes = std::pin::pin!(writes);
            let mut done = 0u64;
            while let Some(position) = writes.try_next().await? {
                done = done.max(position);
                let progress = i64::try_from(done * 100 / total).unwrap_or(99);
                progress_tx.send_if_modified(|current| {
                    let newer = progress >= *current + 5;
                    if newer {
                        *current = progress;
                    }
                    newer
                });
            }
            Ok::<(), Error>(())
        };
        let snapshot_ids_progress = &snapshot_ids;
        let report = async {
            while progress_rx.changed().await.is_ok() {
                let progress = *progress_rx.borrow_and_update();
                hangar.report_task_progress(task, progress).await?;
                hangar
                    .report_restore_progress(snapshot_ids_progress, progress)
                    .await?;
            }
            Ok::<(), Error>(())
        };
        let (written, reported) = futures::join!(consume, report);
        written?;
        reported?;
        reading
            .await
            .map_err(|error| Error::Internal(error.to_string()))?;
        hangar.finish_restore(&image_id, &snapshot_ids).await?;
        tracing::info!(image_id, bucket, object_key, "restore task finished");
        Ok(())
    }
}

/// Counts the bytes a reader has given, for progress.
struct CountingReader<R> {
    inner: R,
    position: Arc<std::sync::atomic::AtomicU64>,
}

impl<R> CountingReader<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            position: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }
}

impl<R: std::io::Read> std::io::Read for CountingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.position
            .fetch_add(read as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A part's bytes in one piece.
    fn contiguous(part: &[bytes::Bytes]) -> Vec<u8> {
        part.iter()
            .flat_map(|chunk| chunk.iter().copied())
            .collect()
    }

    #[test]
    fn part_buffer_hands_out_parts_in_order() {
        let mut buffer = PartBuffer::default();
        buffer.write_all(b"abcdefghij").expect("write");
        assert_eq!(contiguous(&buffer.take(4)), b"abcd");
        assert_eq!(buffer.len(), 6);
        assert_eq!(contiguous(&buffer.take(100)), b"efghij");
        assert_eq!(buffer.len(), 0);
    }

    #[test]
    fn frames_are_kept_not_copied_and_come_back_after_upload() {
        let frames = FramePool::default();
        let mut buffer = PartBuffer::new(frames.clone());
        buffer.write_all(b"head").expect("write");
        let size = hangar_core::blocks::BLOCK_SIZE + 64;
        let big = vec![1u8; size];
        let big_allocation = big.as_ptr();
        buffer.write_frame(bytes::Bytes::from(big)).expect("frame");
        // What is not kept is copied.
        buffer.write_all(&[2u8; 100]).expect("write");
        assert_eq!(buffer.len(), 4 + size + 100);
        // A part boundary inside the big frame splits it without a copy.
        let first = buffer.take(4 + 1000);
        assert_eq!(first.len(), 2);
        assert_eq!(&first[0][..], b"head");
        assert_eq!(first[1].as_ptr(), big_allocation);
        assert_eq!(first[1].len(), 1000);
        let second = buffer.take(1 << 20);
        assert_eq!(part_len(&second), size - 1000 + 100);
        let mut expected = vec![1u8; size - 1000];
        expected.extend_from_slice(&[2u8; 100]);
        assert_eq!(contiguous(&second), expected);
        assert_eq!(buffer.len(), 0);
        // The big frame's buffer is pooled once both halves are uploaded.
        buffer.give_back(first);
        assert!(frames.0.lock().expect("lock").is_empty());
        buffer.give_back(second);
        let pooled = frames.take();
        assert_eq!(pooled.as_ptr(), big_allocation);
        assert!(pooled.capacity() >= size);
    }

    #[test]
    fn metadata_values_are_header_safe() {
        assert_eq!(header_safe("plain name 1.0"), "plain name 1.0");
        assert_eq!(header_safe("é%\n"), "%C3%A9%25%0A");
    }
}
