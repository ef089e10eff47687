//! [`ObjectBlockStore`]: the block store over any `object_store` backend.

use std::collections::BinaryHeap;
use std::fmt;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, TryStreamExt};
use hangar_core::blocks::{BlockError, BlockHash, BlockStore, StoredBlock};
use object_store::path::Path;
use object_store::{
    GetResult, GetResultPayload, ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload,
};

use crate::format::{
    BLOCKS_DIR, HEADER_LEN, HEADER_LEN_V1, TMP_PREFIX, block_name, check_content, corrupt,
    decode_header, encode_header, header_len, is_fanout_name, parse_block_name, verified,
};

/// A [`BlockStore`] over any [`ObjectStore`] (in memory, local files, and
/// later S3), under a key prefix.
///
/// Keys are `<prefix>/blocks/<first 2 hex>/<64 hex>`; objects carry the
/// [`format`](mod@crate::format) header. `put` always writes, even when the block
/// exists (see the crate docs for why); `get` verifies the header, the size and
/// the SHA-256 of the content.
#[derive(Clone)]
pub struct ObjectBlockStore {
    store: Arc<dyn ObjectStore>,
    /// `<prefix>/blocks`.
    blocks: Path,
}

impl fmt::Debug for ObjectBlockStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectBlockStore")
            .field("store", &format_args!("{}", self.store))
            .field("blocks", &self.blocks.as_ref())
            .finish()
    }
}

impl ObjectBlockStore {
    /// A block store keeping its blocks under `<prefix>/blocks/` in `store`;
    /// an empty prefix puts them at `blocks/`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: impl Into<Path>) -> Self {
        Self::with_blocks_path(store, prefix.into().join(BLOCKS_DIR))
    }

    /// A block store whose fan-out directories sit right under `blocks`
    /// (the local engine, whose root is itself the blocks directory).
    pub(crate) fn with_blocks_path(store: Arc<dyn ObjectStore>, blocks: Path) -> Self {
        Self { store, blocks }
    }

    /// The backend this store writes to.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The key of `hash`: `<prefix>/blocks/<first 2 hex>/<64 hex>`. The name
    /// is asserted to be 64 lowercase hex digits, so no key can leave the
    /// prefix.
    pub fn key_for(&self, hash: &BlockHash) -> Path {
        let name = block_name(hash);
        self.blocks.clone().join(&name[..2]).join(name)
    }

    /// The key of an object named `name` in the fan-out directory of `hash`
    /// (the conformance suite plants leftovers there).
    pub(crate) fn fanout_key(&self, hash: &BlockHash, name: &str) -> Path {
        let hex = block_name(hash);
        self.blocks.clone().join(&hex[..2]).join(name)
    }

    /// The `n` smallest blocks of one fan-out directory's listing (which
    /// comes in no particular order), above `after`, in hash order. Keeps at
    /// most `n` entries in memory.
    async fn smallest_in_dir(
        &self,
        dir_name: &str,
        mut listing: BoxStream<'static, object_store::Result<ObjectMeta>>,
        after: Option<&BlockHash>,
        n: usize,
    ) -> Result<Vec<StoredBlock>, BlockError> {
        let dir = self.blocks.clone().join(dir_name);
        // A max-heap on the hash: the top is the first to drop once full.
        let mut heap: BinaryHeap<(BlockHash, i64)> = BinaryHeap::with_capacity(n.min(4096) + 1);
        while let Some(meta) = listing.try_next().await.map_err(backend)? {
            let Some(hash) = block_in(&dir, dir_name, &meta.location) else {
                continue;
            };
            if after.is_some_and(|after| hash <= *after) {
                continue;
            }
            if heap.len() == n && heap.peek().is_some_and(|(top, _)| hash >= *top) {
                continue;
            }
            heap.push((hash, meta.last_modified.timestamp_millis()));
            if heap.len() > n {
                heap.pop();
            }
        }
        Ok(heap
            .into_sorted_vec()
            .into_iter()
            .map(|(hash, modified_ms)| StoredBlock { hash, modified_ms })
            .collect())
    }
}

/// The block `location` holds if it is a block key directly in `dir`.
fn block_in(dir: &Path, dir_name: &str, location: &Path) -> Option<BlockHash> {
    let mut parts = location.prefix_match(dir)?;
    let name = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    parse_block_name(dir_name, name.as_ref())
}

fn backend(error: object_store::Error) -> BlockError {
    BlockError::Backend(error.to_string())
}

fn joined(error: tokio::task::JoinError) -> BlockError {
    BlockError::Backend(format!("block store task failed: {error}"))
}

/// Reads and verifies a block from an open file (the local backend hands
/// back the file itself): the content is read straight into the returned
/// buffer and checked once. Blocking.
pub(crate) fn read_file(
    hash: &BlockHash,
    file: std::fs::File,
    result_range: std::ops::Range<u64>,
    object_size: u64,
) -> Result<Vec<u8>, BlockError> {
    let mut content = Vec::new();
    read_file_into(hash, file, result_range, object_size, &mut content)?;
    Ok(content)
}

/// As [`read_file`], into `content` (cleared first), so a caller reading
/// many blocks reuses one buffer.
pub(crate) fn read_file_into(
    hash: &BlockHash,
    mut file: std::fs::File,
    result_range: std::ops::Range<u64>,
    object_size: u64,
    content: &mut Vec<u8>,
) -> Result<(), BlockError> {
    let io = |error: std::io::Error| BlockError::Backend(format!("reading block: {error}"));
    file.seek(SeekFrom::Start(result_range.start)).map_err(io)?;
    let mut header = [0u8; HEADER_LEN];
    let short = |error: std::io::Error| {
        if error.kind() == std::io::ErrorKind::UnexpectedEof {
            corrupt(hash, "shorter than its header")
        } else {
            io(error)
        }
    };
    file.read_exact(&mut header[..HEADER_LEN_V1])
        .map_err(short)?;
    let header_len = header_len(&header).ok_or_else(|| corrupt(hash, "bad header"))?;
    file.read_exact(&mut header[HEADER_LEN_V1..header_len])
        .map_err(short)?;
    let decoded = decode_header(&header[..header_len], object_size)
        .ok_or_else(|| corrupt(hash, "bad header or size"))?;
    let len = decoded.len;
    content.clear();
    content.reserve(len);
    (&mut file)
        .take(len as u64)
        .read_to_end(content)
        .map_err(io)?;
    if content.len() != len {
        return Err(corrupt(hash, "shorter than its header says"));
    }
    check_content(hash, content, decoded.check)
}

/// Reads and verifies a block from a byte stream: one copy, from the
/// backend's chunks into the returned buffer.
async fn read_stream(
    hash: &BlockHash,
    mut stream: BoxStream<'static, object_store::Result<Bytes>>,
    object_size: u64,
) -> Result<Vec<u8>, BlockError> {
    let mut header = Vec::with_capacity(HEADER_LEN);
    // The header's length once its version is in.
    let mut wanted = HEADER_LEN_V1;
    // The content and the length its header announces, once the header is in.
    let mut content: Option<(Vec<u8>, usize)> = None;
    let mut check = None;
    while let Some(chunk) = stream.try_next().await.map_err(backend)? {
        let mut chunk: &[u8] = &chunk;
        while content.is_none() && !chunk.is_empty() {
            let take = (wanted - header.len()).min(chunk.len());
            header.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if header.len() < wanted {
                continue;
            }
            let full = header_len(&header).ok_or_else(|| corrupt(hash, "bad header"))?;
            if header.len() < full {
                wanted = full;
                continue;
            }
            let decoded = decode_header(&header, object_size)
                .ok_or_else(|| corrupt(hash, "bad header or size"))?;
            check = Some(decoded.check);
            content = Some((Vec::with_capacity(decoded.len), decoded.len));
        }
        if let Some((content, len)) = content.as_mut() {
            if content.len() + chunk.len() > *len {
                return Err(corrupt(hash, "longer than its header says"));
            }
            content.extend_from_slice(chunk);
        }
    }
    let (content, len) = content.ok_or_else(|| corrupt(hash, "shorter than its header"))?;
    if content.len() != len {
        return Err(corrupt(hash, "shorter than its header says"));
    }
    let check = check.ok_or_else(|| corrupt(hash, "shorter than its header"))?;
    let hash = *hash;
    tokio::task::spawn_blocking(move || verified(&hash, content, check))
        .await
        .map_err(joined)?
}

impl ObjectBlockStore {
    async fn read(&self, hash: &BlockHash, result: GetResult) -> Result<Vec<u8>, BlockError> {
        let size = result.meta.size;
        match result.payload {
            GetResultPayload::File(file, _path) => {
                let hash = *hash;
                let range = result.range;
                tokio::task::spawn_blocking(move || read_file(&hash, file, range, size))
                    .await
                    .map_err(joined)?
            }
            GetResultPayload::Stream(stream) => read_stream(hash, stream, size).await,
        }
    }
}

#[async_trait]
impl BlockStore for ObjectBlockStore {
    async fn put(&self, hash: &BlockHash, data: Vec<u8>) -> Result<(), BlockError> {
        debug_assert_eq!(BlockHash::of(&data), *hash, "put with a wrong hash");
        let header = encode_header(hash, &data)?;
        // Two chunks, no copy of the content here (a backend may still
        // gather them, as the in-memory one does).
        let payload = PutPayload::from_iter([Bytes::copy_from_slice(&header), Bytes::from(data)]);
        self.store
            .put(&self.key_for(hash), payload)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn get(&self, hash: &BlockHash) -> Result<Vec<u8>, BlockError> {
        let result = match self.store.get(&self.key_for(hash)).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(BlockError::NotFound(hash.to_hex()));
            }
            Err(error) => return Err(backend(error)),
        };
        self.read(hash, result).await
    }

    async fn delete(&self, hash: &BlockHash) -> Result<(), BlockError> {
        match self.store.delete(&self.key_for(hash)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(backend(error)),
        }
    }

    /// Walks the fan-out directories in order from `after`'s, and stops once
    /// `limit` blocks are found. `ObjectStore::list` promises no order, so
    /// each directory visited is listed in full while keeping only the
    /// `limit` smallest entries: memory stays O(`limit`), and the work per
    /// call is one delimiter listing plus the directories touched (about
    /// `limit / (blocks / 256) + 1` of them), not the whole store.
    async fn list(
        &self,
        after: Option<&BlockHash>,
        limit: usize,
    ) -> Result<Vec<StoredBlock>, BlockError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let top = self
            .store
            .list_with_delimiter(Some(&self.blocks))
            .await
            .map_err(backend)?;
        let mut dirs: Vec<String> = top
            .common_prefixes
            .iter()
            .filter_map(|dir| dir.filename().map(str::to_owned))
            .filter(|name| is_fanout_name(name))
            .collect();
        dirs.sort_unstable();
        dirs.dedup();

        let after_name = after.map(block_name);
        let first_dir = after_name.as_deref().map(|name| &name[..2]);
        let mut blocks = Vec::new();
        for dir_name in dirs
            .iter()
            .filter(|dir_name| first_dir.is_none_or(|first| dir_name.as_str() >= first))
        {
            let dir = self.blocks.clone().join(dir_name.as_str());
            let (listing, after_here) = match after {
                Some(after) if first_dir == Some(dir_name.as_str()) => (
                    self.store
                        .list_with_offset(Some(&dir), &self.key_for(after)),
                    Some(after),
                ),
                _ => (self.store.list(Some(&dir)), None),
            };
            let found = self
                .smallest_in_dir(dir_name, listing, after_here, limit - blocks.len())
                .await?;
            blocks.extend(found);
            if blocks.len() >= limit {
                break;
            }
        }
        Ok(blocks)
    }

    /// Deletes objects named `.tmp-*` under the prefix. Object stores write
    /// atomically, so nothing this engine writes leaves one; the sweep is
    /// there for engines (and tests) that stage writes under such names.
    async fn sweep_incomplete(&self) -> Result<usize, BlockError> {
        let leftovers: Vec<Path> = self
            .store
            .list(Some(&self.blocks))
            .try_filter_map(|meta| async move {
                let is_leftover = meta
                    .location
                    .filename()
                    .is_some_and(|name| name.starts_with(TMP_PREFIX));
                Ok(is_leftover.then_some(meta.location))
            })
            .try_collect()
            .await
            .map_err(backend)?;
        let mut removed = 0;
        for location in leftovers {
            match self.store.delete(&location).await {
                Ok(()) => removed += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(backend(error)),
            }
        }
        if removed > 0 {
            tracing::info!(removed, "removed leftovers of interrupted block writes");
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use object_store::memory::InMemory;

    #[test]
    fn keys() {
        let hash = BlockHash::of(b"hello");
        let hex = hash.to_hex();
        let store = ObjectBlockStore::new(Arc::new(InMemory::new()), "");
        assert_eq!(
            store.key_for(&hash).as_ref(),
            format!("blocks/2c/{hex}").as_str()
        );
        let store = ObjectBlockStore::new(Arc::new(InMemory::new()), "tenant/a");
        assert_eq!(
            store.key_for(&hash).as_ref(),
            format!("tenant/a/blocks/2c/{hex}").as_str()
        );
    }

    #[test]
    fn block_in_accepts_only_direct_children() {
        let dir = Path::from("p/blocks/2c");
        let hex = BlockHash::of(b"hello").to_hex();
        assert!(block_in(&dir, "2c", &dir.clone().join(hex.as_str())).is_some());
        assert!(block_in(&dir, "2c", &dir.clone().join("x").join(hex.as_str())).is_none());
        assert!(block_in(&dir, "2c", &Path::from("p/blocks/2d").join(hex.as_str())).is_none());
        assert!(block_in(&dir, "2c", &dir.clone().join(".tmp-1")).is_none());
    }

    #[tokio::test]
    async fn stored_object_layout() {
        let memory = Arc::new(InMemory::new());
        let store = ObjectBlockStore::new(memory.clone(), "");
        let data = b"some block".to_vec();
        let hash = BlockHash::of(&data);
        store.put(&hash, data.clone()).await.unwrap();
        let raw = memory
            .get(&store.key_for(&hash))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&raw[..4], b"HGBK");
        assert_eq!(raw[4], 2);
        assert_eq!(&raw[5..9], &(data.len() as u32).to_le_bytes());
        // CRC32C of the hash then the content (as a third party computes it).
        let mut crc = crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc32Iscsi);
        crc.update(&hash.0);
        crc.update(&data);
        assert_eq!(&raw[9..13], &(crc.finalize() as u32).to_le_bytes());
        assert_eq!(&raw[13..], &data[..]);
    }

    #[tokio::test]
    async fn version_1_blocks_are_still_read() {
        let memory = Arc::new(InMemory::new());
        let store = ObjectBlockStore::new(memory.clone(), "");
        let data = b"an old block".to_vec();
        let hash = BlockHash::of(&data);
        let mut old = b"HGBK\x01".to_vec();
        old.extend_from_slice(&(data.len() as u32).to_le_bytes());
        old.extend_from_slice(&data);
        memory
            .put(&store.key_for(&hash), old.clone().into())
            .await
            .unwrap();
        assert_eq!(store.get(&hash).await.unwrap(), data);
        // And a damaged one is corrupt (re-hashed with SHA-256).
        let last = old.len() - 1;
        old[last] ^= 1;
        memory.put(&store.key_for(&hash), old.into()).await.unwrap();
        assert_eq!(
            store.get(&hash).await,
            Err(BlockError::Corrupt(hash.to_hex()))
        );
    }

    #[tokio::test]
    async fn stream_reads_split_anywhere() {
        let data: Vec<u8> = (0..100u8).collect();
        let hash = BlockHash::of(&data);
        let mut object = encode_header(&hash, &data).unwrap().to_vec();
        object.extend_from_slice(&data);
        let size = object.len() as u64;
        for chunk_size in [1, 3, 9, 10, 13, 14, 64, 200] {
            let chunks: Vec<object_store::Result<Bytes>> = object
                .chunks(chunk_size)
                .map(|chunk| Ok(Bytes::copy_from_slice(chunk)))
                .collect();
            let stream = futures::stream::iter(chunks).boxed();
            assert_eq!(read_stream(&hash, stream, size).await.unwrap(), data);
        }
        // A stream longer than its announced size is corrupt, not data.
        let mut long = object.clone();
        long.push(0);
        let stream = futures::stream::iter([Ok(Bytes::from(long))]).boxed();
        assert_eq!(
            read_stream(&hash, stream, size).await,
            Err(BlockError::Corrupt(hash.to_hex()))
        );
        // So is one that ends early.
        let stream = futures::stream::iter([Ok(Bytes::from(object[..50].to_vec()))]).boxed();
        assert_eq!(
            read_stream(&hash, stream, size).await,
            Err(BlockError::Corrupt(hash.to_hex()))
        );
        let stream = futures::stream::iter([Ok(Bytes::from(object[..5].to_vec()))]).boxed();
        assert_eq!(
            read_stream(&hash, stream, size).await,
            Err(BlockError::Corrupt(hash.to_hex()))
        );
    }
}
