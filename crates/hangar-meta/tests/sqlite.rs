//! The SQLite engine: the conformance suite, durability across reopen,
//! failures to open, concurrent writers, and the cost of block-map copies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hangar_core::model::ImageState;
use hangar_core::repo::{MetaStore, StoreError};
use hangar_meta::SqliteStore;
use hangar_meta::conformance::{
    self, fresh_account, fresh_image_id, fresh_region, fresh_snapshot_id, fresh_task_id,
    fresh_volume_id, hashes_with_fresh_prefix, sample_image, sample_snapshot, sample_task,
};

async fn open_temp() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("meta.sqlite"))
        .await
        .expect("open a store in a fresh directory");
    (dir, store)
}

#[tokio::test]
async fn conformance_on_a_file() {
    let (_dir, store) = open_temp().await;
    conformance::run_all(&store).await;
}

#[tokio::test]
async fn conformance_in_memory() {
    let store = SqliteStore::open_in_memory().await.expect("open in memory");
    conformance::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_checks_share_a_store_concurrently() {
    // Every check but reset uses fresh IDs, so they may run side by side.
    let (_dir, store) = open_temp().await;
    let store: &dyn MetaStore = &store;
    tokio::join!(
        conformance::check_roundtrip(store),
        conformance::check_duplicate_id(store),
        conformance::check_name_unique_per_owner_and_region(store),
        conformance::check_name_reusable_after_deregistration(store),
        conformance::check_update_bumps_revision(store),
        conformance::check_update_stale_revision_conflicts(store),
        conformance::check_list_images(store),
        conformance::check_get_images(store),
        conformance::check_upsert(store),
        conformance::check_insert_image_with_task(store),
        conformance::check_snapshot_roundtrip(store),
        conformance::check_snapshot_revisions(store),
        conformance::check_snapshot_listing(store),
        conformance::check_snapshot_delete(store),
        conformance::check_volume_roundtrip(store),
        conformance::check_volume_revisions(store),
        conformance::check_volume_listing(store),
        conformance::check_volume_delete(store),
        conformance::check_instance_roundtrip(store),
        conformance::check_instance_revisions(store),
        conformance::check_instance_listing(store),
        conformance::check_task_roundtrip(store),
        conformance::check_task_revisions(store),
        conformance::check_unfinished_tasks(store),
        conformance::check_task_leases(store),
        conformance::check_named_leases(store),
        conformance::check_block_map_entries(store),
        conformance::check_copy_blocks(store),
        conformance::check_merge_blocks(store),
        conformance::check_referenced_hashes(store),
        conformance::check_claim_client_token(store),
    );
}

#[tokio::test]
async fn a_write_survives_closing_and_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A directory that does not exist yet is created.
    let path = dir.path().join("state").join("meta.sqlite");
    let image = sample_image(
        &fresh_image_id(),
        &fresh_region(),
        &fresh_account(),
        "durable",
    );
    let updated = {
        let store = SqliteStore::open(&path).await.expect("open");
        assert_eq!(store.path(), Some(path.as_path()));
        store.insert_image(&image).await.expect("insert");
        let mut updated = image.clone();
        updated.state = ImageState::Deregistered;
        updated.revision = store.update_image(&updated).await.expect("update");
        updated
        // Dropped without close(): acknowledged writes must already be on disk.
    };
    let store = SqliteStore::open(&path).await.expect("reopen");
    let got = store.get_image(&image.image_id).await.expect("get");
    assert_eq!(got, Some(updated.clone()));
    store.close().await;

    // And once more after a clean close, running the migrations a third time.
    let store = SqliteStore::open(&path).await.expect("reopen after close");
    let got = store.get_image(&image.image_id).await.expect("get");
    assert_eq!(got, Some(updated));
}

#[tokio::test]
async fn a_path_under_a_file_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"not a directory").expect("write");
    let path = file.join("sub").join("meta.sqlite");
    match SqliteStore::open(&path).await {
        Err(StoreError::Backend(message)) => {
            assert!(
                message.contains(&path.display().to_string()),
                "the error names the path: {message}"
            );
        }
        other => panic!("expected a Backend error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_directory_or_a_foreign_file_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    match SqliteStore::open(dir.path()).await {
        Err(StoreError::Backend(message)) => {
            assert!(
                message.contains(&dir.path().display().to_string()),
                "{message}"
            );
        }
        other => panic!("expected a Backend error for a directory, got {other:?}"),
    }

    let garbage = dir.path().join("garbage.sqlite");
    std::fs::write(&garbage, vec![0x5a_u8; 8192]).expect("write");
    match SqliteStore::open(&garbage).await {
        Err(StoreError::Backend(message)) => {
            assert!(
                message.contains(&garbage.display().to_string()),
                "{message}"
            );
        }
        other => panic!("expected a Backend error for a non-database file, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unknown_record_version_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("meta.sqlite");
    let store = SqliteStore::open(&path).await.expect("open");
    let image = sample_image(
        &fresh_image_id(),
        &fresh_region(),
        &fresh_account(),
        "future",
    );
    store.insert_image(&image).await.expect("insert");
    store.close().await;

    // A record written by some future build.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connect");
    sqlx::query("UPDATE images SET record_version = 99 WHERE image_id = $1")
        .bind(&image.image_id)
        .execute(&pool)
        .await
        .expect("tamper");
    pool.close().await;

    let store = SqliteStore::open(&path).await.expect("reopen");
    match store.get_image(&image.image_id).await {
        Err(StoreError::Backend(message)) => {
            assert!(
                message.contains("99"),
                "the error names the version: {message}"
            );
        }
        other => panic!("expected a Backend error, got {other:?}"),
    }
    let listed = store
        .list_images(&hangar_core::repo::ImageListQuery {
            region: image.region.clone(),
            ..Default::default()
        })
        .await;
    assert!(matches!(listed, Err(StoreError::Backend(_))), "{listed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_registrations_of_one_name_admit_exactly_one() {
    let (_dir, store) = open_temp().await;
    let store = Arc::new(store);
    let (region, owner) = (fresh_region(), fresh_account());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&store);
            let image = sample_image(&fresh_image_id(), &region, &owner, "contested");
            tokio::spawn(async move {
                let result = store.insert_image(&image).await;
                (image.image_id, result)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut refusals = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            (id, Ok(())) => winners.push(id),
            (_, Err(StoreError::ImageNameTaken { existing_image_id })) => {
                refusals.push(existing_image_id)
            }
            (id, Err(other)) => panic!("{id}: unexpected {other:?}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one registration wins: {winners:?}"
    );
    assert_eq!(refusals.len(), 19);
    assert!(
        refusals.iter().all(|existing| *existing == winners[0]),
        "every refusal names the winner"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_updates_from_one_revision_admit_exactly_one() {
    let (_dir, store) = open_temp().await;
    let store = Arc::new(store);
    let image = sample_image(
        &fresh_image_id(),
        &fresh_region(),
        &fresh_account(),
        "raced",
    );
    store.insert_image(&image).await.expect("insert");
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let store = Arc::clone(&store);
            let mut image = image.clone();
            image.description = Some(format!("writer {n}"));
            tokio::spawn(async move { (n, store.update_image(&image).await) })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            (n, Ok(revision)) => {
                assert_eq!(revision, 1);
                winners.push(n);
            }
            (_, Err(StoreError::Conflict(id))) => assert_eq!(id, image.image_id),
            (n, Err(other)) => panic!("writer {n}: unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one update wins: {winners:?}");
    let stored = store
        .get_image(&image.image_id)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(stored.revision, 1);
    assert_eq!(stored.description, Some(format!("writer {}", winners[0])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_see_each_others_writes() {
    // As when an operator's tool and the server share the file: the schema
    // is migrated once, and locking keeps both consistent.
    let (dir, first) = open_temp().await;
    let second = SqliteStore::open(&dir.path().join("meta.sqlite"))
        .await
        .expect("open a second store on the same file");
    let (region, owner) = (fresh_region(), fresh_account());
    let a = sample_image(&fresh_image_id(), &region, &owner, "shared");
    let b = sample_image(&fresh_image_id(), &region, &owner, "shared");
    first
        .insert_image(&a)
        .await
        .expect("insert through the first");
    assert_eq!(
        second.insert_image(&b).await,
        Err(StoreError::ImageNameTaken {
            existing_image_id: a.image_id.clone()
        })
    );
    assert_eq!(second.get_image(&a.image_id).await.expect("get"), Some(a));
}

#[tokio::test]
async fn an_unknown_record_version_of_a_snapshot_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("meta.sqlite");
    let store = SqliteStore::open(&path).await.expect("open");
    let snapshot = sample_snapshot(&fresh_snapshot_id(), &fresh_region(), &fresh_account());
    store.insert_snapshot(&snapshot).await.expect("insert");
    store.close().await;

    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connect");
    sqlx::query("UPDATE records SET record_version = 99 WHERE kind = 'snapshot' AND id = $1")
        .bind(&snapshot.snapshot_id)
        .execute(&pool)
        .await
        .expect("tamper");
    pool.close().await;

    let store = SqliteStore::open(&path).await.expect("reopen");
    match store.get_snapshot(&snapshot.snapshot_id).await {
        Err(StoreError::Backend(message)) => {
            assert!(
                message.contains("99"),
                "the error names the version: {message}"
            );
            assert!(message.contains(&snapshot.snapshot_id), "{message}");
        }
        other => panic!("expected a Backend error, got {other:?}"),
    }
    let listed = store
        .list_snapshots(&hangar_core::repo::RecordQuery::default())
        .await;
    assert!(matches!(listed, Err(StoreError::Backend(_))), "{listed:?}");
}

/// A 1 GiB snapshot has 2048 blocks; copying its map (as CreateImage and
/// CreateVolume do) is one INSERT ... SELECT, so it takes milliseconds.
#[tokio::test]
async fn copying_the_map_of_a_1_gib_snapshot_is_quick() {
    const BLOCKS: i64 = 2048;
    let (dir, store) = open_temp().await;
    let (source, target) = (fresh_snapshot_id(), fresh_volume_id());
    let hashes = hashes_with_fresh_prefix(BLOCKS as usize);
    // Filled in one transaction on the side: through `put_block`, each entry
    // would be a durable commit of its own (seconds for the lot).
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("meta.sqlite").display()
    ))
    .await
    .expect("connect");
    let mut tx = pool.begin().await.expect("begin");
    for (index, hash) in hashes.iter().enumerate() {
        sqlx::query("INSERT INTO block_maps (map_id, block_index, hash) VALUES ($1, $2, $3)")
            .bind(&source)
            .bind(index as i64)
            .bind(hash)
            .execute(&mut *tx)
            .await
            .expect("fill the source");
    }
    // The target has a map of its own, longer than the source's.
    for index in 0..BLOCKS + 10 {
        sqlx::query("INSERT INTO block_maps (map_id, block_index, hash) VALUES ($1, $2, $3)")
            .bind(&target)
            .bind(index)
            .bind(hangar_core::repo::ZERO_BLOCK)
            .execute(&mut *tx)
            .await
            .expect("fill the target");
    }
    tx.commit().await.expect("commit");
    pool.close().await;
    assert_eq!(store.count_blocks(&source).await.expect("count"), BLOCKS);

    let started = Instant::now();
    let copied = store.copy_blocks(&source, &target).await.expect("copy");
    let copying = started.elapsed();
    eprintln!("copied {BLOCKS} block entries in {copying:?}");
    assert_eq!(copied, BLOCKS);
    assert!(
        copying < Duration::from_secs(2),
        "copying {BLOCKS} block entries took {copying:?}"
    );
    assert_eq!(store.count_blocks(&target).await.expect("count"), BLOCKS);

    // Read back in pages, as a reader of the volume would.
    let mut entries = Vec::new();
    let mut next = 0;
    loop {
        let page = store.list_blocks(&target, next, 500).await.expect("list");
        let Some((last, _)) = page.last() else {
            break;
        };
        next = last + 1;
        entries.extend(page);
    }
    let expected: Vec<(i64, String)> = hashes
        .iter()
        .enumerate()
        .map(|(index, hash)| (index as i64, hash.clone()))
        .collect();
    assert_eq!(entries, expected);

    let started = Instant::now();
    store.merge_blocks(&source, &target).await.expect("merge");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(store.delete_snapshot(&source).await.is_ok());
    assert_eq!(store.count_blocks(&source).await.expect("count"), 0);
    assert_eq!(store.count_blocks(&target).await.expect("count"), BLOCKS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_claims_of_one_token_admit_exactly_one() {
    let (_dir, store) = open_temp().await;
    let store = Arc::new(store);
    let scope = format!("{}:RunInstances", fresh_account());
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let store = Arc::clone(&store);
            let scope = scope.clone();
            tokio::spawn(async move {
                let fingerprint = format!("fingerprint-{n}");
                let result = format!("result-{n}");
                let claimed = store
                    .claim_client_token(&scope, "the-token", &fingerprint, &result)
                    .await;
                (n, claimed)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut answers = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            (n, Ok(None)) => winners.push(n),
            (_, Ok(Some(first))) => answers.push(first),
            (n, Err(error)) => panic!("claim {n}: unexpected {error:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim wins: {winners:?}");
    let winner = (
        format!("fingerprint-{}", winners[0]),
        format!("result-{}", winners[0]),
    );
    assert_eq!(answers.len(), 19);
    assert!(
        answers.iter().all(|answer| *answer == winner),
        "every other claim returns the winner's fingerprint and result: {answers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_image_builds_of_one_name_store_exactly_one_task() {
    let (_dir, store) = open_temp().await;
    let store = Arc::new(store);
    let (region, owner) = (fresh_region(), fresh_account());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&store);
            let image = hangar_core::model::Image {
                state: ImageState::Pending,
                ..sample_image(&fresh_image_id(), &region, &owner, "built")
            };
            let task = sample_task(&fresh_task_id(), &region, &owner, &image.image_id);
            tokio::spawn(async move {
                let result = store.insert_image_with_task(&image, &task).await;
                (image.image_id, task.task_id, result)
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            (image_id, task_id, Ok(())) => winners.push((image_id, task_id)),
            (image_id, task_id, Err(StoreError::ImageNameTaken { existing_image_id })) => {
                losers.push((image_id, task_id, existing_image_id))
            }
            (image_id, _, Err(other)) => panic!("{image_id}: unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one build wins: {winners:?}");
    let (winner_image, winner_task) = &winners[0];
    assert!(store.get_task(winner_task).await.expect("get").is_some());
    assert_eq!(losers.len(), 19);
    for (image_id, task_id, existing) in losers {
        assert_eq!(&existing, winner_image, "every refusal names the winner");
        assert_eq!(store.get_image(&image_id).await.expect("get"), None);
        assert_eq!(store.get_task(&task_id).await.expect("get"), None);
    }
    let unfinished = store.list_unfinished_tasks().await.expect("list");
    assert_eq!(unfinished.len(), 1);
    assert_eq!(&unfinished[0].task_id, winner_task);
}
