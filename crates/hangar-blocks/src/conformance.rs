//! The behaviour every [`BlockStore`] engine must show.
//!
//! [`run_all`] runs every check that needs nothing but the trait;
//! [`run_all_with_raw`] adds the checks that damage stored blocks or plant
//! crash leftovers, through the engine's [`RawAccess`] (implemented here for
//! [`LocalBlockStore`], on the files, and [`ObjectBlockStore`], on the
//! objects). Each check is public so a test can run one alone, and panics,
//! naming what went wrong, on the first deviation. Checks use fresh random
//! blocks and never assume an empty store, so they may share a store and run
//! concurrently, except that the sweep check removes every leftover, so run it
//! alone (it is never concurrent with real writes at start-up either).
//!
//! ```no_run
//! # async fn demo() {
//! let dir = tempfile::tempdir().unwrap();
//! let store = hangar_blocks::LocalBlockStore::open(&dir.path().join("blocks")).unwrap();
//! hangar_blocks::conformance::run_all_with_raw(&store, &store).await;
//! # }
//! ```

use async_trait::async_trait;
use futures::future::join_all;
use hangar_core::blocks::{BLOCK_SIZE, BlockError, BlockHash, BlockStore, StoredBlock};
use object_store::{ObjectStoreExt, PutPayload};
use rand::RngCore;

use crate::format::{FORMAT_VERSION, HEADER_LEN, MAGIC, TMP_PREFIX};
use crate::{LocalBlockStore, ObjectBlockStore};

/// Byte-level access to an engine's stored objects, for the damage checks.
/// Implementations panic on failure: they only serve tests.
#[async_trait]
pub trait RawAccess: Send + Sync {
    /// The stored object of `hash`, header included, exactly as persisted.
    async fn read_raw(&self, hash: &BlockHash) -> Vec<u8>;
    /// Replaces the stored object of `hash` with `bytes`, as is.
    async fn write_raw(&self, hash: &BlockHash, bytes: Vec<u8>);
    /// Writes `bytes` as an object (file) called `name` in the fan-out
    /// directory of `near`: where an interrupted write would leave it.
    async fn plant(&self, near: &BlockHash, name: &str, bytes: Vec<u8>);
    /// Whether the object planted as `name` near `near` still exists.
    async fn planted_exists(&self, near: &BlockHash, name: &str) -> bool;
}

#[async_trait]
impl RawAccess for LocalBlockStore {
    async fn read_raw(&self, hash: &BlockHash) -> Vec<u8> {
        let path = self.path_for(hash);
        tokio::fs::read(&path)
            .await
            .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
    }

    async fn write_raw(&self, hash: &BlockHash, bytes: Vec<u8>) {
        let path = self.path_for(hash);
        tokio::fs::write(&path, bytes)
            .await
            .unwrap_or_else(|error| panic!("writing {}: {error}", path.display()));
    }

    async fn plant(&self, near: &BlockHash, name: &str, bytes: Vec<u8>) {
        let path = self.path_for(near).with_file_name(name);
        let dir = path.parent().expect("a fan-out directory");
        tokio::fs::create_dir_all(dir)
            .await
            .expect("create fan-out dir");
        tokio::fs::write(&path, bytes)
            .await
            .unwrap_or_else(|error| panic!("writing {}: {error}", path.display()));
    }

    async fn planted_exists(&self, near: &BlockHash, name: &str) -> bool {
        let path = self.path_for(near).with_file_name(name);
        tokio::fs::try_exists(&path)
            .await
            .expect("stat a planted file")
    }
}

#[async_trait]
impl RawAccess for ObjectBlockStore {
    async fn read_raw(&self, hash: &BlockHash) -> Vec<u8> {
        let key = self.key_for(hash);
        let result = self.object_store().get(&key).await;
        let bytes = match result {
            Ok(result) => result.bytes().await,
            Err(error) => Err(error),
        };
        bytes
            .unwrap_or_else(|error| panic!("reading {key}: {error}"))
            .to_vec()
    }

    async fn write_raw(&self, hash: &BlockHash, bytes: Vec<u8>) {
        let key = self.key_for(hash);
        self.object_store()
            .put(&key, PutPayload::from(bytes))
            .await
            .unwrap_or_else(|error| panic!("writing {key}: {error}"));
    }

    async fn plant(&self, near: &BlockHash, name: &str, bytes: Vec<u8>) {
        let key = self.fanout_key(near, name);
        self.object_store()
            .put(&key, PutPayload::from(bytes))
            .await
            .unwrap_or_else(|error| panic!("writing {key}: {error}"));
    }

    async fn planted_exists(&self, near: &BlockHash, name: &str) -> bool {
        let key = self.fanout_key(near, name);
        match self.object_store().head(&key).await {
            Ok(_) => true,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(error) => panic!("head {key}: {error}"),
        }
    }
}

/// Runs every check that needs only the trait.
pub async fn run_all(store: &dyn BlockStore) {
    check_roundtrip(store).await;
    check_get_missing(store).await;
    check_put_idempotent(store).await;
    check_delete(store).await;
    check_delete_missing(store).await;
    check_list_order_and_paging(store).await;
    check_list_limit(store).await;
    check_concurrent_puts(store).await;
}

/// [`run_all`], then the checks that damage stored blocks and plant
/// leftovers through `raw` (which must reach the same storage as `store`).
pub async fn run_all_with_raw(store: &dyn BlockStore, raw: &dyn RawAccess) {
    run_all(store).await;
    check_flipped_byte_is_corrupt(store, raw).await;
    check_damaged_header_is_corrupt(store, raw).await;
    check_truncated_is_corrupt(store, raw).await;
    check_other_content_is_corrupt(store, raw).await;
    check_put_heals_corruption(store, raw).await;
    check_refresh_if_holding(store, raw).await;
    check_put_blocking(store, raw).await;
    check_leftovers_swept_and_unlisted(store, raw).await;
}

/// `len` random bytes and their hash: a SplitMix64 stream from a random
/// seed (several times faster than a cryptographic generator in unoptimised
/// test builds, and as good for filling blocks).
pub fn random_block(len: usize) -> (BlockHash, Vec<u8>) {
    let mut state = rand::rng().next_u64();
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut data = vec![0u8; len];
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        chunk.copy_from_slice(&next().to_le_bytes());
    }
    let tail = chunks.into_remainder();
    let last = next().to_le_bytes();
    tail.copy_from_slice(&last[..tail.len()]);
    (BlockHash::of(&data), data)
}

async fn put_ok(store: &dyn BlockStore, hash: &BlockHash, data: Vec<u8>) {
    store
        .put(hash, data)
        .await
        .unwrap_or_else(|error| panic!("put {}: {error}", hash.to_hex()));
}

/// `get`, checking that an engine's `get_blocking` (where it has one)
/// answers the same.
async fn get_both(store: &dyn BlockStore, hash: &BlockHash) -> Result<Vec<u8>, BlockError> {
    let result = store.get(hash).await;
    if let Some(blocking) = store.get_blocking(hash) {
        assert_eq!(
            blocking,
            result,
            "get_blocking and get disagree on {}",
            hash.to_hex()
        );
    }
    result
}

async fn get_ok(store: &dyn BlockStore, hash: &BlockHash) -> Vec<u8> {
    get_both(store, hash)
        .await
        .unwrap_or_else(|error| panic!("get {}: {error}", hash.to_hex()))
}

async fn assert_corrupt(store: &dyn BlockStore, hash: &BlockHash, what: &str) {
    match get_both(store, hash).await {
        Err(BlockError::Corrupt(hex)) => {
            assert_eq!(hex, hash.to_hex(), "{what}: Corrupt names the block")
        }
        Ok(data) => panic!(
            "{what}: get returned {} bytes of data instead of Corrupt",
            data.len()
        ),
        Err(error) => panic!("{what}: expected Corrupt, got {error:?}"),
    }
}

/// Every block, by paging with `page` per call; checks the pages' shape.
async fn list_everything(store: &dyn BlockStore, page: usize) -> Vec<StoredBlock> {
    let mut all: Vec<StoredBlock> = Vec::new();
    loop {
        let after = all.last().map(|block| block.hash);
        let batch = store
            .list(after.as_ref(), page)
            .await
            .unwrap_or_else(|error| panic!("list: {error}"));
        assert!(
            batch.len() <= page,
            "list returned {} > limit {page}",
            batch.len()
        );
        if let (Some(after), Some(first)) = (after, batch.first()) {
            assert!(
                first.hash > after,
                "list returned a block not after `after`"
            );
        }
        let done = batch.len() < page;
        all.extend(batch);
        if done {
            break;
        }
    }
    assert!(
        all.windows(2).all(|pair| pair[0].hash < pair[1].hash),
        "list is not in strictly increasing hash order"
    );
    all
}

/// Random full-size blocks read back byte for byte; an empty block too.
pub async fn check_roundtrip(store: &dyn BlockStore) {
    for _ in 0..3 {
        let (hash, data) = random_block(BLOCK_SIZE);
        put_ok(store, &hash, data.clone()).await;
        assert!(
            get_ok(store, &hash).await == data,
            "roundtrip changed the data"
        );
    }
    let (hash, data) = random_block(0);
    put_ok(store, &hash, data).await;
    assert!(
        get_ok(store, &hash).await.is_empty(),
        "empty block roundtrip"
    );
}

/// A hash never stored is `NotFound`, naming it.
pub async fn check_get_missing(store: &dyn BlockStore) {
    let (hash, _) = random_block(64);
    assert_eq!(
        get_both(store, &hash).await,
        Err(BlockError::NotFound(hash.to_hex())),
        "get of a missing block"
    );
}

/// Putting the same block again succeeds and changes nothing; it is listed
/// once.
pub async fn check_put_idempotent(store: &dyn BlockStore) {
    let (hash, data) = random_block(BLOCK_SIZE);
    put_ok(store, &hash, data.clone()).await;
    put_ok(store, &hash, data.clone()).await;
    assert!(
        get_ok(store, &hash).await == data,
        "data after a second put"
    );
    let all = list_everything(store, 1000).await;
    let count = all.iter().filter(|block| block.hash == hash).count();
    assert_eq!(count, 1, "a block put twice is listed once");
}

/// A deleted block is `NotFound`, and gone from the listing; deleting it
/// again is fine.
pub async fn check_delete(store: &dyn BlockStore) {
    let (hash, data) = random_block(4096);
    put_ok(store, &hash, data).await;
    store.delete(&hash).await.expect("delete a stored block");
    assert_eq!(
        store.get(&hash).await,
        Err(BlockError::NotFound(hash.to_hex())),
        "get after delete"
    );
    let all = list_everything(store, 1000).await;
    assert!(
        all.iter().all(|block| block.hash != hash),
        "a deleted block is still listed"
    );
    store.delete(&hash).await.expect("delete a deleted block");
}

/// Deleting a block that was never stored is Ok.
pub async fn check_delete_missing(store: &dyn BlockStore) {
    let (hash, _) = random_block(64);
    store.delete(&hash).await.expect("delete a missing block");
}

/// Blocks are listed in hash order, each once, with a plausible
/// `modified_ms`; paging with `after` (stored or not) resumes right after it.
pub async fn check_list_order_and_paging(store: &dyn BlockStore) {
    let started_ms = now_ms();
    let mut ours: Vec<BlockHash> = Vec::new();
    for _ in 0..40 {
        let (hash, data) = random_block(1024);
        put_ok(store, &hash, data).await;
        ours.push(hash);
    }
    ours.sort();

    for page in [1, 7, 1000] {
        let all = list_everything(store, page).await;
        let mine: Vec<&StoredBlock> = all
            .iter()
            .filter(|block| ours.binary_search(&block.hash).is_ok())
            .collect();
        assert_eq!(
            mine.len(),
            ours.len(),
            "paging by {page} lists each block once"
        );
        for block in mine {
            // Allow clock granularity and skew between this host and the
            // backend: a day either side.
            let day = 86_400_000;
            assert!(
                block.modified_ms > started_ms - day && block.modified_ms < now_ms() + day,
                "modified_ms {} is not about now ({started_ms})",
                block.modified_ms
            );
        }
    }

    // Resume after a stored hash: the next of ours is listed, nothing <= it.
    let after = ours[10];
    let batch = store.list(Some(&after), 100_000).await.expect("list after");
    assert!(
        batch.iter().all(|block| block.hash > after),
        "list after a stored hash"
    );
    assert!(
        batch.iter().any(|block| block.hash == ours[11]),
        "the next stored block follows `after`"
    );

    // Resume after a hash that is not stored, between two of ours.
    let mut between = ours[20];
    between.0[31] = between.0[31].wrapping_add(1);
    if between < ours[21] && ours.binary_search(&between).is_err() {
        let batch = store
            .list(Some(&between), 100_000)
            .await
            .expect("list after");
        assert!(
            batch.iter().all(|block| block.hash > between),
            "list after an absent hash"
        );
        assert!(
            batch.iter().any(|block| block.hash == ours[21]),
            "the next stored block follows an absent `after`"
        );
    }

    // Past the greatest possible hash, nothing.
    let max = BlockHash([0xff; 32]);
    assert!(
        store
            .list(Some(&max), 10)
            .await
            .expect("list after max")
            .is_empty(),
        "nothing is after ff…ff"
    );

    for hash in &ours {
        store.delete(hash).await.expect("clean up");
    }
}

/// `limit` is a maximum: 0 gives nothing, 1 gives one block of a non-empty
/// store.
pub async fn check_list_limit(store: &dyn BlockStore) {
    let (hash, data) = random_block(512);
    put_ok(store, &hash, data).await;
    assert!(
        store.list(None, 0).await.expect("list 0").is_empty(),
        "limit 0"
    );
    assert_eq!(
        store.list(None, 1).await.expect("list 1").len(),
        1,
        "limit 1"
    );
    let three = store.list(None, 3).await.expect("list 3");
    assert!(!three.is_empty() && three.len() <= 3, "limit 3");
    store.delete(&hash).await.expect("clean up");
}

/// 16 concurrent puts of one block and 16 of different blocks all succeed
/// and read back.
pub async fn check_concurrent_puts(store: &dyn BlockStore) {
    let (same_hash, same_data) = random_block(BLOCK_SIZE);
    let different: Vec<(BlockHash, Vec<u8>)> = (0..16).map(|_| random_block(BLOCK_SIZE)).collect();
    let same_puts = (0..16).map(|_| store.put(&same_hash, same_data.clone()));
    let different_puts = different
        .iter()
        .map(|(hash, data)| store.put(hash, data.clone()));
    let (same, different_results) = futures::join!(join_all(same_puts), join_all(different_puts));
    for result in same.into_iter().chain(different_results) {
        result.expect("a concurrent put");
    }
    assert!(
        get_ok(store, &same_hash).await == same_data,
        "the block put 16 times at once"
    );
    let reads = join_all(different.iter().map(|(hash, _)| store.get(hash))).await;
    for ((hash, data), read) in different.iter().zip(reads) {
        let read = read.unwrap_or_else(|error| panic!("get {}: {error}", hash.to_hex()));
        assert!(read == *data, "a block put concurrently with others");
    }
}

/// One flipped bit in the content, anywhere, is `Corrupt`.
pub async fn check_flipped_byte_is_corrupt(store: &dyn BlockStore, raw: &dyn RawAccess) {
    for position in [0, 1000, BLOCK_SIZE - 1] {
        let (hash, data) = random_block(BLOCK_SIZE);
        put_ok(store, &hash, data).await;
        let mut bytes = raw.read_raw(&hash).await;
        bytes[HEADER_LEN + position] ^= 0x01;
        raw.write_raw(&hash, bytes).await;
        assert_corrupt(store, &hash, &format!("content byte {position} flipped")).await;
    }
}

/// Alters a stored object in place.
type Damage = fn(&mut Vec<u8>);

/// A wrong magic, an unknown version or a length that does not match the
/// object is `Corrupt`.
pub async fn check_damaged_header_is_corrupt(store: &dyn BlockStore, raw: &dyn RawAccess) {
    let (hash, data) = random_block(4096);
    put_ok(store, &hash, data).await;
    let stored = raw.read_raw(&hash).await;
    assert_eq!(stored[..4], MAGIC, "stored objects start with the magic");
    assert_eq!(
        stored[4], FORMAT_VERSION,
        "stored objects carry the version"
    );
    assert_eq!(stored.len(), HEADER_LEN + 4096, "header + content");

    let damages: [(&str, Damage); 4] = [
        ("bad magic", |bytes| bytes[0] = b'X'),
        ("unknown version", |bytes| bytes[4] = FORMAT_VERSION + 1),
        ("length not the size", |bytes| {
            bytes[5] = bytes[5].wrapping_sub(1)
        }),
        ("extra trailing bytes", |bytes| {
            bytes.extend_from_slice(b"tail")
        }),
    ];
    for (what, damage) in damages {
        let mut bytes = stored.clone();
        damage(&mut bytes);
        raw.write_raw(&hash, bytes).await;
        assert_corrupt(store, &hash, what).await;
    }
}

/// An object cut short (in the content, in the header, or empty) is
/// `Corrupt`.
pub async fn check_truncated_is_corrupt(store: &dyn BlockStore, raw: &dyn RawAccess) {
    let (hash, data) = random_block(BLOCK_SIZE);
    put_ok(store, &hash, data).await;
    let stored = raw.read_raw(&hash).await;
    for keep in [stored.len() - 1, stored.len() / 2, HEADER_LEN, 5, 0] {
        raw.write_raw(&hash, stored[..keep].to_vec()).await;
        assert_corrupt(store, &hash, &format!("truncated to {keep} bytes")).await;
    }
}

/// A well-formed object of another block stored under a hash is `Corrupt`:
/// the content is checked against the name, not just the header.
pub async fn check_other_content_is_corrupt(store: &dyn BlockStore, raw: &dyn RawAccess) {
    let (hash, data) = random_block(BLOCK_SIZE);
    let (other, other_data) = random_block(BLOCK_SIZE);
    put_ok(store, &hash, data).await;
    put_ok(store, &other, other_data).await;
    let other_object = raw.read_raw(&other).await;
    raw.write_raw(&hash, other_object).await;
    assert_corrupt(store, &hash, "another block's object").await;
    assert!(store.get(&other).await.is_ok(), "the other block is intact");
}

/// Putting a block again over a corrupt copy restores it (puts always
/// write).
pub async fn check_put_heals_corruption(store: &dyn BlockStore, raw: &dyn RawAccess) {
    let (hash, data) = random_block(BLOCK_SIZE);
    put_ok(store, &hash, data.clone()).await;
    let mut bytes = raw.read_raw(&hash).await;
    bytes[HEADER_LEN + 7] ^= 0x80;
    raw.write_raw(&hash, bytes).await;
    assert_corrupt(store, &hash, "before healing").await;
    put_ok(store, &hash, data.clone()).await;
    assert!(
        get_ok(store, &hash).await == data,
        "a second put heals a corrupt block"
    );
}

/// The modified time `list` gives for `hash`, which must be stored.
async fn modified_ms(store: &dyn BlockStore, hash: &BlockHash) -> i64 {
    store
        .list(None, usize::MAX)
        .await
        .expect("list")
        .into_iter()
        .find(|stored| stored.hash == *hash)
        .map(|stored| stored.modified_ms)
        .expect("listed")
}

/// `refresh_if_holding_blocking` (engines that have it): `true` only for a
/// good copy holding exactly the bytes given, and then the copy's time is
/// refreshed; `false` for other bytes, a missing block and a damaged copy
/// (which a put then heals).
pub async fn check_refresh_if_holding(store: &dyn BlockStore, raw: &dyn RawAccess) {
    let (hash, data) = random_block(BLOCK_SIZE);
    let (missing, _) = random_block(BLOCK_SIZE);
    let Some(answer) = store.refresh_if_holding_blocking(&missing, &data) else {
        return;
    };
    assert!(
        !answer.expect("a missing block"),
        "a missing block is not held"
    );
    put_ok(store, &hash, data.clone()).await;
    let before = modified_ms(store, &hash).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let held = store.refresh_if_holding_blocking(&hash, &data);
    assert!(
        matches!(held, Some(Ok(true))),
        "the same bytes are held: {held:?}"
    );
    let after = modified_ms(store, &hash).await;
    assert!(
        after > before,
        "held refreshes the time ({before} then {after})"
    );
    let mut other = data.clone();
    other[BLOCK_SIZE / 2] ^= 1;
    let held = store.refresh_if_holding_blocking(&hash, &other);
    assert!(
        matches!(held, Some(Ok(false))),
        "other bytes are not held: {held:?}"
    );
    let mut bytes = raw.read_raw(&hash).await;
    bytes[HEADER_LEN + 11] ^= 0x40;
    raw.write_raw(&hash, bytes).await;
    let held = store.refresh_if_holding_blocking(&hash, &data);
    assert!(
        matches!(held, Some(Ok(false))),
        "a damaged copy is not held: {held:?}"
    );
    put_ok(store, &hash, data.clone()).await;
    assert!(get_ok(store, &hash).await == data, "a put heals it");
}

/// `put_blocking` (engines that have it) is a put: the block reads back,
/// a second put of it succeeds and refreshes its time, and a put over a
/// damaged copy heals it.
pub async fn check_put_blocking(store: &dyn BlockStore, raw: &dyn RawAccess) {
    let (hash, data) = random_block(BLOCK_SIZE);
    let Some(written) = store.put_blocking(&hash, &data) else {
        return;
    };
    written.expect("put_blocking");
    assert!(
        get_ok(store, &hash).await == data,
        "a blocking put reads back"
    );
    let before = modified_ms(store, &hash).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let again = store.put_blocking(&hash, &data);
    assert!(matches!(again, Some(Ok(()))), "a second put: {again:?}");
    let after = modified_ms(store, &hash).await;
    assert!(
        after > before,
        "a second put refreshes the time ({before} then {after})"
    );
    let mut bytes = raw.read_raw(&hash).await;
    bytes[HEADER_LEN + 7] ^= 0x10;
    raw.write_raw(&hash, bytes).await;
    assert!(
        matches!(store.get(&hash).await, Err(BlockError::Corrupt(_))),
        "the damaged copy reads as corrupt"
    );
    let healed = store.put_blocking(&hash, &data);
    assert!(matches!(healed, Some(Ok(()))), "a healing put: {healed:?}");
    assert!(
        get_ok(store, &hash).await == data,
        "a blocking put heals it"
    );
}

/// Leftovers of interrupted writes (`.tmp-*`, even when they hold a complete
/// block) are neither listed nor readable, and `sweep_incomplete` removes them
/// and counts them. Removes every leftover in the store: run it alone.
pub async fn check_leftovers_swept_and_unlisted(store: &dyn BlockStore, raw: &dyn RawAccess) {
    // A whole, valid object of `hash`, left under a temporary name.
    let (hash, data) = random_block(BLOCK_SIZE);
    put_ok(store, &hash, data).await;
    let object = raw.read_raw(&hash).await;
    store.delete(&hash).await.expect("delete");
    let (stored, stored_data) = random_block(1024);
    put_ok(store, &stored, stored_data.clone()).await;

    let names = [
        format!("{TMP_PREFIX}{}", hash.to_hex()),
        format!("{TMP_PREFIX}0123456789abcdef"),
    ];
    raw.plant(&hash, &names[0], object).await;
    raw.plant(&stored, &names[1], b"partial".to_vec()).await;

    let all = list_everything(store, 1000).await;
    assert!(
        all.iter().all(|block| block.hash != hash),
        "a leftover is listed"
    );
    assert!(
        all.iter().any(|block| block.hash == stored),
        "a stored block is listed"
    );
    assert_eq!(
        store.get(&hash).await,
        Err(BlockError::NotFound(hash.to_hex())),
        "a leftover is readable"
    );

    let removed = store.sweep_incomplete().await.expect("sweep");
    assert!(removed >= 2, "sweep counted {removed} of 2 leftovers");
    assert!(
        !raw.planted_exists(&hash, &names[0]).await,
        "leftover 1 survived"
    );
    assert!(
        !raw.planted_exists(&stored, &names[1]).await,
        "leftover 2 survived"
    );
    assert!(
        get_ok(store, &stored).await == stored_data,
        "sweep keeps stored blocks"
    );
    assert_eq!(
        store.sweep_incomplete().await.expect("sweep"),
        0,
        "a second sweep"
    );
    store.delete(&stored).await.expect("clean up");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}
