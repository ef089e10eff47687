//! The SQLite engine: the conformance suite, durability across reopen,
//! failures to open, and concurrent writers.

use std::sync::Arc;

use hangar_core::model::ImageState;
use hangar_core::repo::{MetaStore, StoreError};
use hangar_meta::SqliteStore;
use hangar_meta::conformance::{self, fresh_account, fresh_image_id, fresh_region, sample_image};

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
