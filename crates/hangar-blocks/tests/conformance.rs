//! The block-store conformance suite on every engine, plus what only the
//! local engine promises: its on-disk layout, persistence across reopen, and
//! the start-up sweep of leftovers anywhere under its root.

use std::sync::Arc;

use hangar_blocks::conformance::{self, RawAccess, random_block};
use hangar_blocks::format::{FORMAT_VERSION, HEADER_LEN, MAGIC};
use hangar_blocks::{LocalBlockStore, ObjectBlockStore};
use hangar_core::blocks::{BLOCK_SIZE, BlockError, BlockStore};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;

fn open_temp() -> (tempfile::TempDir, LocalBlockStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    // As the server opens it: `<data_dir>/blocks`, created by `open`.
    let store = LocalBlockStore::open(&dir.path().join("blocks")).expect("open a block store");
    (dir, store)
}

#[tokio::test]
async fn local_engine_conforms() {
    let (_dir, store) = open_temp();
    conformance::run_all_with_raw(&store, &store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn local_engine_conforms_on_a_multi_thread_runtime() {
    let (_dir, store) = open_temp();
    conformance::run_all_with_raw(&store, &store).await;
}

#[tokio::test]
async fn in_memory_object_store_conforms() {
    let store = ObjectBlockStore::new(Arc::new(InMemory::new()), "");
    conformance::run_all_with_raw(&store, &store).await;
}

#[tokio::test]
async fn prefixed_object_store_over_local_files_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let files = LocalFileSystem::new_with_prefix(dir.path()).expect("local fs");
    let store = ObjectBlockStore::new(Arc::new(files), "tenant/one");
    conformance::run_all_with_raw(&store, &store).await;
    assert!(dir.path().join("tenant/one/blocks").is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checks_share_a_store_concurrently() {
    let (_dir, store) = open_temp();
    let store: &dyn BlockStore = &store;
    tokio::join!(
        conformance::check_roundtrip(store),
        conformance::check_get_missing(store),
        conformance::check_put_idempotent(store),
        conformance::check_delete(store),
        conformance::check_list_order_and_paging(store),
        conformance::check_list_limit(store),
        conformance::check_concurrent_puts(store),
    );
}

#[tokio::test]
async fn prefixes_keep_stores_apart() {
    let memory = Arc::new(InMemory::new());
    let one = ObjectBlockStore::new(memory.clone(), "one");
    let two = ObjectBlockStore::new(memory, "two");
    let (hash, data) = random_block(100);
    one.put(&hash, data).await.unwrap();
    assert_eq!(
        two.get(&hash).await,
        Err(BlockError::NotFound(hash.to_hex()))
    );
    assert!(two.list(None, 10).await.unwrap().is_empty());
    assert_eq!(one.list(None, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn local_layout_on_disk() {
    let (dir, store) = open_temp();
    let (hash, data) = random_block(BLOCK_SIZE);
    store.put(&hash, data.clone()).await.unwrap();
    let hex = hash.to_hex();
    let path = dir
        .path()
        .canonicalize()
        .unwrap()
        .join("blocks")
        .join(&hex[..2])
        .join(&hex);
    assert_eq!(store.root(), path.parent().unwrap().parent().unwrap());
    assert_eq!(store.path_for(&hash), path);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes[..4], MAGIC);
    assert_eq!(bytes[4], FORMAT_VERSION);
    assert_eq!(bytes[5..9], (BLOCK_SIZE as u32).to_le_bytes());
    assert!(bytes[HEADER_LEN..] == data[..]);
    // No staging file is left behind by a successful put.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from(&hex)]);
}

#[tokio::test]
async fn local_blocks_survive_reopen() {
    let (dir, store) = open_temp();
    let (hash, data) = random_block(BLOCK_SIZE);
    store.put(&hash, data.clone()).await.unwrap();
    drop(store);
    let store = LocalBlockStore::open(&dir.path().join("blocks")).unwrap();
    assert!(store.get(&hash).await.unwrap() == data);
    let listed = store.list(None, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].hash, hash);
}

#[tokio::test]
async fn local_engine_and_object_engine_share_the_format() {
    // A LocalBlockStore at `<dir>/blocks` and a plain ObjectBlockStore over
    // LocalFileSystem at `<dir>` (so also `<dir>/blocks/...`) read each
    // other's blocks.
    let (dir, local) = open_temp();
    let files = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    let objects = ObjectBlockStore::new(Arc::new(files), "");
    let (a, a_data) = random_block(BLOCK_SIZE);
    let (b, b_data) = random_block(BLOCK_SIZE);
    local.put(&a, a_data.clone()).await.unwrap();
    objects.put(&b, b_data.clone()).await.unwrap();
    assert!(objects.get(&a).await.unwrap() == a_data);
    assert!(local.get(&b).await.unwrap() == b_data);
    assert_eq!(
        local.list(None, 10).await.unwrap(),
        objects.list(None, 10).await.unwrap()
    );
}

#[tokio::test]
async fn local_sweep_reaches_everywhere_under_blocks_and_open_does_not_sweep() {
    let (dir, store) = open_temp();
    let (hash, data) = random_block(1000);
    store.put(&hash, data.clone()).await.unwrap();
    let blocks = store.root().to_path_buf();
    let hex = hash.to_hex();
    let leftovers = [
        blocks.join(".tmp-top"),
        blocks.join(&hex[..2]).join(".tmp-0123456789abcdef"),
        blocks.join("zz").join("deeper").join(".tmp-x"),
        // object_store's own staging name, should anything write through it.
        blocks.join(&hex[..2]).join(format!("{hex}#1")),
    ];
    for path in &leftovers {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"partial").unwrap();
    }
    // Outside the root: not the block store's to remove.
    let outside = dir.path().join(".tmp-not-mine");
    std::fs::write(&outside, b"x").unwrap();

    // Reopening leaves them; listing ignores them.
    let store = LocalBlockStore::open(&dir.path().join("blocks")).unwrap();
    assert!(leftovers.iter().all(|path| path.exists()));
    let listed = store.list(None, 100).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].hash, hash);

    assert_eq!(store.sweep_incomplete().await.unwrap(), leftovers.len());
    assert!(leftovers.iter().all(|path| !path.exists()));
    assert!(outside.exists());
    assert!(store.get(&hash).await.unwrap() == data);
    assert_eq!(store.sweep_incomplete().await.unwrap(), 0);
}

#[tokio::test]
async fn local_put_recreates_a_removed_fanout_directory() {
    let (_dir, store) = open_temp();
    let (hash, data) = random_block(100);
    store.put(&hash, data.clone()).await.unwrap();
    let hex = hash.to_hex();
    std::fs::remove_dir_all(store.root().join(&hex[..2])).unwrap();
    assert_eq!(
        store.get(&hash).await,
        Err(BlockError::NotFound(hash.to_hex()))
    );
    assert!(store.list(None, 10).await.unwrap().is_empty());
    store.put(&hash, data.clone()).await.unwrap();
    assert!(store.get(&hash).await.unwrap() == data);
}

#[tokio::test]
async fn local_corruption_on_disk_is_reported() {
    // One flipped byte in the file, via plain fs, as a disk would do it.
    let (_dir, store) = open_temp();
    let (hash, data) = random_block(BLOCK_SIZE);
    store.put(&hash, data).await.unwrap();
    let mut bytes = store.read_raw(&hash).await;
    bytes[HEADER_LEN + BLOCK_SIZE / 2] ^= 0x10;
    std::fs::write(store.path_for(&hash), bytes).unwrap();
    assert_eq!(
        store.get(&hash).await,
        Err(BlockError::Corrupt(hash.to_hex()))
    );
}

#[test]
fn open_fails_cleanly_on_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    match LocalBlockStore::open(&file) {
        Err(BlockError::Backend(message)) => assert!(message.contains("not-a-dir"), "{message}"),
        other => panic!("expected a Backend error, got {other:?}"),
    }
}
