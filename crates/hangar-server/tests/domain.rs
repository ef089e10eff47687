//! The data layer end to end inside one process: the domain over the real
//! SQLite and local block-store engines. These cover what the wire tests
//! cannot easily time: a build task interrupted before it ran, the block
//! collector, and a copy whose source vanished.

use std::path::Path;
use std::sync::Arc;

use hangar_blocks::LocalBlockStore;
use hangar_core::blocks::{BLOCK_SIZE, BlockHash};
use hangar_core::build::{CopyImageInput, CreateImageInput};
use hangar_core::clock::{Clock, ManualClock, SystemClock};
use hangar_core::images::RegisterImageInput;
use hangar_core::instances::RunInstancesInput;
use hangar_core::model::{BlockDeviceMapping, EbsBlockDevice, ImageState};
use hangar_core::snapshots::StartSnapshotInput;
use hangar_core::{Caller, Error, Hangar, Settings};
use hangar_meta::SqliteStore;

const NOW: i64 = 1_764_504_000_000;

async fn hangar_at(dir: &Path, clock: Arc<dyn Clock>) -> Hangar {
    let store = SqliteStore::open(&dir.join("meta.sqlite")).await.unwrap();
    let blocks = LocalBlockStore::open(&dir.join("blocks")).unwrap();
    let mut settings = Settings::new("aws", vec!["us-east-1".into(), "us-west-2".into()]);
    settings.instance_transition_ms = 0;
    Hangar::new(Arc::new(store), Arc::new(blocks), clock, settings)
}

fn alice() -> Caller {
    Caller {
        account_id: "111111111111".into(),
        region: "us-east-1".into(),
    }
}

fn block(seed: u8) -> Vec<u8> {
    (0..BLOCK_SIZE)
        .map(|index| (index as u8).wrapping_mul(seed).wrapping_add(seed))
        .collect()
}

/// Writes a 1 GiB snapshot holding `blocks` at indices 0.. and returns its ID.
async fn write_snapshot(hangar: &Hangar, caller: &Caller, blocks: &[Vec<u8>]) -> String {
    let snapshot = hangar
        .start_snapshot(
            caller,
            StartSnapshotInput {
                volume_size_gib: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for (index, data) in blocks.iter().enumerate() {
        let checksum = BlockHash::of(data).0;
        hangar
            .put_snapshot_block(
                caller,
                &snapshot.snapshot_id,
                index as i64,
                data.clone(),
                BLOCK_SIZE as i64,
                checksum,
            )
            .await
            .unwrap();
    }
    hangar
        .complete_snapshot(caller, &snapshot.snapshot_id, blocks.len() as i64, None)
        .await
        .unwrap();
    snapshot.snapshot_id
}

async fn register(hangar: &Hangar, caller: &Caller, name: &str, snapshot_id: &str) -> String {
    hangar
        .register_image(
            caller,
            RegisterImageInput {
                name: Some(name.into()),
                root_device_name: Some("/dev/xvda".into()),
                virtualization_type: Some("hvm".into()),
                block_device_mappings: vec![BlockDeviceMapping {
                    device_name: "/dev/xvda".into(),
                    ebs: Some(EbsBlockDevice {
                        snapshot_id: Some(snapshot_id.into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            },
            false,
        )
        .await
        .unwrap()
}

/// Reads every data block of a snapshot back through the EBS read path.
async fn read_snapshot(hangar: &Hangar, caller: &Caller, snapshot_id: &str) -> Vec<(i64, Vec<u8>)> {
    let listing = hangar
        .list_snapshot_blocks(caller, snapshot_id, None, None, None)
        .await
        .unwrap();
    let mut out = Vec::new();
    for entry in listing.blocks {
        let (data, _) = hangar
            .get_snapshot_block(caller, snapshot_id, entry.index, &entry.token)
            .await
            .unwrap();
        out.push((entry.index, data));
    }
    out
}

fn root_snapshot(image: &hangar_core::model::Image) -> String {
    image.snapshot_ids().next().unwrap().to_string()
}

#[tokio::test]
async fn an_interrupted_build_finishes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(NOW));
    let caller = alice();
    let data = vec![block(3), vec![0; BLOCK_SIZE], block(5)];
    let (image_id, created_id) = {
        let hangar = hangar_at(dir.path(), clock.clone()).await;
        let snapshot_id = write_snapshot(&hangar, &caller, &data).await;
        let image_id = register(&hangar, &caller, "base", &snapshot_id).await;
        let reservation = hangar
            .run_instances(
                &caller,
                RunInstancesInput {
                    image_id: Some(image_id.clone()),
                    min_count: Some(1),
                    max_count: Some(1),
                    ..Default::default()
                },
                false,
            )
            .await
            .unwrap();
        let created = hangar
            .create_image(
                &caller,
                CreateImageInput {
                    instance_id: reservation.instances[0].instance_id.clone(),
                    name: Some("captured".into()),
                    ..Default::default()
                },
                false,
            )
            .await
            .unwrap();
        // No runner here: the process "dies" with the task queued.
        let image = hangar.store().get_image(&created).await.unwrap().unwrap();
        assert_eq!(image.state, ImageState::Pending);
        (image_id, created)
    };
    let hangar = hangar_at(dir.path(), clock.clone()).await;
    let unfinished = hangar.unfinished_tasks().await.unwrap();
    assert_eq!(unfinished.len(), 1);
    for task in unfinished {
        hangar.run_task(&task).await.unwrap();
    }
    let created = hangar
        .store()
        .get_image(&created_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(created.state, ImageState::Available);
    assert_eq!(created.source_image_id.as_deref(), Some(image_id.as_str()));
    let back = read_snapshot(&hangar, &caller, &root_snapshot(&created)).await;
    assert_eq!(back, vec![(0, data[0].clone()), (2, data[2].clone())]);
    // Running it again changes nothing.
    assert!(hangar.unfinished_tasks().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_collector_takes_only_unreferenced_blocks() {
    let dir = tempfile::tempdir().unwrap();
    // Block ages come from the file system's clock, so this test runs on the
    // wall clock.
    let clock = Arc::new(SystemClock::new());
    let caller = alice();
    let hangar = hangar_at(dir.path(), clock.clone()).await;
    let shared = block(7);
    let first = write_snapshot(&hangar, &caller, &[shared.clone(), block(9)]).await;
    let second = write_snapshot(&hangar, &caller, &[shared.clone(), block(11)]).await;
    let stored = hangar.blocks().list(None, 100).await.unwrap().len();
    assert_eq!(stored, 3, "the shared block is stored once");

    hangar
        .delete_snapshot(&caller, &first, false)
        .await
        .unwrap();
    // Young blocks survive whatever their references.
    let (_, deleted) = hangar.collect_blocks(3_600_000).await.unwrap();
    assert_eq!(deleted, 0);
    // Advancing the service (dev) clock does not age them: the grace period
    // is measured in wall time, like the files' modification times.
    clock.advance(2 * 3_600_000);
    let (_, deleted) = hangar.collect_blocks(3_600_000).await.unwrap();
    assert_eq!(deleted, 0);
    // Past the grace period only the block of the deleted snapshot goes.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let (kept, deleted) = hangar.collect_blocks(10).await.unwrap();
    assert_eq!((kept, deleted), (2, 1));
    let back = read_snapshot(&hangar, &caller, &second).await;
    assert_eq!(back, vec![(0, shared), (1, block(11))]);
}

#[tokio::test]
async fn a_copy_whose_source_vanished_fails_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(NOW));
    let caller = alice();
    let hangar = hangar_at(dir.path(), clock).await;
    let snapshot_id = write_snapshot(&hangar, &caller, &[block(1)]).await;
    let image_id = register(&hangar, &caller, "to-copy", &snapshot_id).await;
    let west = Caller {
        region: "us-west-2".into(),
        ..caller.clone()
    };
    let copy_id = hangar
        .copy_image(
            &west,
            CopyImageInput {
                source_region: "us-east-1".into(),
                source_image_id: image_id.clone(),
                name: Some("copy".into()),
                ..Default::default()
            },
            false,
        )
        .await
        .unwrap();
    // The source goes away before the task runs.
    hangar
        .deregister_image(&caller, &image_id, false, false)
        .await
        .unwrap();
    hangar
        .delete_snapshot(&caller, &snapshot_id, false)
        .await
        .unwrap();
    for task in hangar.unfinished_tasks().await.unwrap() {
        hangar.run_task(&task).await.unwrap();
    }
    let copy = hangar.store().get_image(&copy_id).await.unwrap().unwrap();
    assert_eq!(copy.state, ImageState::Failed);
    let reason = copy.state_reason.expect("a failed image says why");
    assert!(reason.message.contains(&snapshot_id), "{}", reason.message);
}

#[tokio::test]
async fn a_corrupt_block_is_an_error_not_data() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(NOW));
    let caller = alice();
    let hangar = hangar_at(dir.path(), clock).await;
    let data = block(13);
    let snapshot_id = write_snapshot(&hangar, &caller, std::slice::from_ref(&data)).await;
    let hash = BlockHash::of(&data).to_hex();
    let path = dir.path().join("blocks").join(&hash[..2]).join(&hash);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let listing = hangar
        .list_snapshot_blocks(&caller, &snapshot_id, None, None, None)
        .await
        .unwrap();
    let result = hangar
        .get_snapshot_block(&caller, &snapshot_id, 0, &listing.blocks[0].token)
        .await;
    assert!(
        matches!(result, Err(Error::Internal(ref detail)) if detail.contains("corrupt")),
        "{result:?}"
    );
}

/// A block store whose puts take `stall_ms` of the manual clock: a writer
/// stalled between its block put and its map entry, as a slow disk, a long
/// garbage-collection pause or a suspended VM would leave it.
struct StallingBlocks {
    inner: LocalBlockStore,
    clock: Arc<ManualClock>,
    stall_ms: std::sync::atomic::AtomicI64,
    puts: std::sync::Mutex<Vec<BlockHash>>,
}

#[async_trait::async_trait]
impl hangar_core::blocks::BlockStore for StallingBlocks {
    async fn put(
        &self,
        hash: &BlockHash,
        data: Vec<u8>,
    ) -> Result<(), hangar_core::blocks::BlockError> {
        self.puts.lock().unwrap().push(*hash);
        let stall = self.stall_ms.load(std::sync::atomic::Ordering::SeqCst);
        self.clock.set(self.clock.now_ms() + stall);
        self.inner.put(hash, data).await
    }
    async fn get(&self, hash: &BlockHash) -> Result<Vec<u8>, hangar_core::blocks::BlockError> {
        self.inner.get(hash).await
    }
    async fn delete(&self, hash: &BlockHash) -> Result<(), hangar_core::blocks::BlockError> {
        self.inner.delete(hash).await
    }
    async fn list(
        &self,
        after: Option<&BlockHash>,
        limit: usize,
    ) -> Result<Vec<hangar_core::blocks::StoredBlock>, hangar_core::blocks::BlockError> {
        self.inner.list(after, limit).await
    }
    async fn sweep_incomplete(&self) -> Result<usize, hangar_core::blocks::BlockError> {
        self.inner.sweep_incomplete().await
    }
}

/// The time fence that keeps collectors on other nodes off blocks a writer
/// is about to reference (docs/deployment.md, "Block collection across
/// nodes"): a writer that took more than half the grace between its put and
/// its map entry puts the block again first, in PutSnapshotBlock and in a
/// restore alike; a prompt writer puts it once.
#[tokio::test]
async fn a_stalled_block_writer_puts_its_block_again_before_the_map_entry() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::at(NOW));
    let blocks = Arc::new(StallingBlocks {
        inner: LocalBlockStore::open(&dir.path().join("blocks")).unwrap(),
        clock: clock.clone(),
        stall_ms: 0.into(),
        puts: Default::default(),
    });
    let store = SqliteStore::open(&dir.path().join("meta.sqlite"))
        .await
        .unwrap();
    let settings = Settings::new("aws", vec!["us-east-1".into()]);
    let hangar = Hangar::new(Arc::new(store), blocks.clone(), clock.clone(), settings);
    let grace_ms = 60_000;
    hangar.set_block_grace_ms(grace_ms);
    let caller = alice();
    let snapshot_id = hangar
        .start_snapshot(
            &caller,
            StartSnapshotInput {
                volume_size_gib: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .snapshot_id;
    let puts_of = |hash: BlockHash| {
        blocks
            .puts
            .lock()
            .unwrap()
            .iter()
            .filter(|put| **put == hash)
            .count()
    };
    let put_block = |index: i64, data: Vec<u8>| {
        let hangar = &hangar;
        let caller = &caller;
        let snapshot_id = &snapshot_id;
        async move {
            let checksum = BlockHash::of(&data).0;
            hangar
                .put_snapshot_block(
                    caller,
                    snapshot_id,
                    index,
                    data,
                    BLOCK_SIZE as i64,
                    checksum,
                )
                .await
                .unwrap();
        }
    };

    // PutSnapshotBlock, prompt then stalled.
    put_block(0, block(3)).await;
    assert_eq!(puts_of(BlockHash::of(&block(3))), 1);
    blocks
        .stall_ms
        .store(grace_ms / 2 + 1, std::sync::atomic::Ordering::SeqCst);
    put_block(1, block(5)).await;
    assert_eq!(
        puts_of(BlockHash::of(&block(5))),
        2,
        "a stalled PutSnapshotBlock puts its block again"
    );

    // A restore batch, prompt then stalled.
    for (index, seed, stall, expected) in [(2, 7u8, 0, 1), (3, 9u8, grace_ms / 2 + 1, 2)] {
        blocks
            .stall_ms
            .store(stall, std::sync::atomic::Ordering::SeqCst);
        let data = block(seed);
        let hash = BlockHash::of(&data);
        let put_ms = hangar.block_write_started();
        let restored = Hangar::restored_block(&snapshot_id, 1, index, data, hash.0).unwrap();
        let value = hangar.put_restored_block(restored).await.unwrap();
        hangar
            .restore_map_entries(&snapshot_id, &[(index, value)], put_ms)
            .await
            .unwrap();
        assert_eq!(
            puts_of(hash),
            expected,
            "restore block {index} (stall {stall} ms of a {grace_ms} ms grace)"
        );
    }
}
