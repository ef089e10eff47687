//! The PostgreSQL engine: the conformance suite, migrations when several
//! nodes start at once, and the concurrency guarantees the SQLite engine's
//! tests check, here with the contenders spread over two stores ("nodes")
//! sharing one database.
//!
//! Each test creates its own database on the server named by
//! `HANGAR_TEST_POSTGRES` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! and drops it afterwards, even when the test fails. When that server
//! cannot be reached, each test prints why to stderr and passes without
//! checking anything (`scripts/test` starts the machine's PostgreSQL first).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hangar_core::model::ImageState;
use hangar_core::repo::{MetaStore, StoreError};
use hangar_meta::PostgresStore;
use hangar_meta::conformance::{
    self, fresh_account, fresh_bucket_name, fresh_image_id, fresh_region, fresh_snapshot_id,
    fresh_task_id, fresh_volume_id, hashes_with_fresh_prefix, sample_bucket, sample_image,
    sample_object, sample_snapshot, sample_task,
};
use sqlx::{Connection, PgConnection};

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database created for one test, dropped when this goes out of scope.
struct TestDb {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDb {
    /// A fresh, empty database; `None` (after saying why on stderr) when the
    /// server cannot be reached.
    async fn create(test: &str) -> Option<Self> {
        let admin_url =
            std::env::var("HANGAR_TEST_POSTGRES").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
        let mut admin =
            match tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(&admin_url))
                .await
            {
                Ok(Ok(connection)) => connection,
                Ok(Err(error)) => {
                    skip(&format!(
                        "SKIPPED {test}: PostgreSQL at {admin_url} cannot be reached: {error}"
                    ));
                    return None;
                }
                Err(_) => {
                    skip(&format!(
                        "SKIPPED {test}: PostgreSQL at {admin_url} did not answer within 5 s"
                    ));
                    return None;
                }
            };
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let name = format!(
            "hangar_meta_test_{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut admin)
            .await
            .expect("create a test database");
        admin.close().await.ok();
        let (base, _) = admin_url
            .rsplit_once('/')
            .expect("the admin URL names a database");
        let url = format!("{base}/{name}");
        Some(Self {
            admin_url,
            name,
            url,
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be shutting down: a
        // runtime of its own, on a thread of its own. `WITH (FORCE)` ends the
        // connections the stores' pools still hold.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut admin = PgConnection::connect(&admin_url).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

/// Says why a test skips where the person running the tests sees it: the
/// harness captures `eprintln!` and shows it only for failing tests, so on
/// Linux this writes to the process's stderr file itself.
fn skip(reason: &str) {
    use std::io::Write as _;
    match std::fs::OpenOptions::new().write(true).open("/dev/stderr") {
        Ok(mut stderr) => {
            let _ = writeln!(stderr, "{reason}");
        }
        Err(_) => eprintln!("{reason}"),
    }
}

async fn connect(db: &TestDb) -> PostgresStore {
    PostgresStore::connect(&db.url)
        .await
        .expect("connect to the test database")
}

#[tokio::test]
async fn conformance_on_postgres() {
    let Some(db) = TestDb::create("conformance_on_postgres").await else {
        return;
    };
    let store = connect(&db).await;
    conformance::run_all(&store).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_checks_share_a_store_concurrently() {
    let Some(db) = TestDb::create("conformance_checks_share_a_store_concurrently").await else {
        return;
    };
    let store = connect(&db).await;
    // Every check but reset uses fresh IDs, so they may run side by side.
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

/// Several nodes starting at once on a fresh database: every one connects,
/// and each migration is applied exactly once (sqlx's advisory lock).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_start_ups_on_a_fresh_database_migrate_once() {
    let Some(db) = TestDb::create("concurrent_start_ups_on_a_fresh_database_migrate_once").await
    else {
        return;
    };
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            tokio::spawn(async move { PostgresStore::connect(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for start in starts {
        stores.push(start.await.expect("task").expect("every node starts"));
    }
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .expect("read the migrations")
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|entry| entry.path().extension().is_some_and(|ext| ext == "sql"))
        })
        .count();
    let mut connection = PgConnection::connect(&db.url).await.expect("connect");
    let applied: Vec<(i64, i64, bool)> = sqlx::query_as(
        "SELECT version, COUNT(*), bool_and(success) FROM _sqlx_migrations \
         GROUP BY version ORDER BY version",
    )
    .fetch_all(&mut connection)
    .await
    .expect("read the migration table");
    assert_eq!(applied.len(), migrations, "{applied:?}");
    assert!(
        applied.iter().all(|(_, count, ok)| *count == 1 && *ok),
        "each migration applied once and successfully: {applied:?}"
    );
    connection.close().await.ok();

    // The nodes share one store: a write through one is read through another.
    let image = sample_image(&fresh_image_id(), &fresh_region(), &fresh_account(), "n");
    stores[0].insert_image(&image).await.expect("insert");
    assert_eq!(
        stores[3].get_image(&image.image_id).await.expect("get"),
        Some(image)
    );
    for store in stores {
        store.close().await;
    }
}

#[tokio::test]
async fn a_write_survives_reconnecting() {
    let Some(db) = TestDb::create("a_write_survives_reconnecting").await else {
        return;
    };
    let image = sample_image(
        &fresh_image_id(),
        &fresh_region(),
        &fresh_account(),
        "durable",
    );
    let updated = {
        let store = connect(&db).await;
        store.insert_image(&image).await.expect("insert");
        let mut updated = image.clone();
        updated.state = ImageState::Deregistered;
        updated.revision = store.update_image(&updated).await.expect("update");
        store.close().await;
        updated
    };
    // Connecting again runs the migrator again: nothing left to apply.
    let store = connect(&db).await;
    assert_eq!(
        store.get_image(&image.image_id).await.expect("get"),
        Some(updated)
    );
    store.close().await;
}

/// An unreachable server is a clear error naming where, without the
/// password. (Needs no PostgreSQL.)
#[tokio::test]
async fn an_unreachable_server_is_an_error_without_the_password() {
    let url = "postgres://hangar:s3cret-word@127.0.0.1:1/hangar";
    match PostgresStore::connect(url).await {
        Err(StoreError::Backend(message)) => {
            assert!(message.contains("127.0.0.1:1/hangar"), "{message}");
            assert!(!message.contains("s3cret-word"), "{message}");
        }
        other => panic!("expected a Backend error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unknown_record_version_is_refused() {
    let Some(db) = TestDb::create("an_unknown_record_version_is_refused").await else {
        return;
    };
    let store = connect(&db).await;
    let image = sample_image(
        &fresh_image_id(),
        &fresh_region(),
        &fresh_account(),
        "future",
    );
    store.insert_image(&image).await.expect("insert");
    let snapshot = sample_snapshot(&fresh_snapshot_id(), &fresh_region(), &fresh_account());
    store.insert_snapshot(&snapshot).await.expect("insert");

    // Records written by some future build.
    let mut connection = PgConnection::connect(&db.url).await.expect("connect");
    sqlx::query("UPDATE images SET record_version = 99 WHERE image_id = $1")
        .bind(&image.image_id)
        .execute(&mut connection)
        .await
        .expect("tamper");
    sqlx::query("UPDATE records SET record_version = 99 WHERE kind = 'snapshot' AND id = $1")
        .bind(&snapshot.snapshot_id)
        .execute(&mut connection)
        .await
        .expect("tamper");
    connection.close().await.ok();

    match store.get_image(&image.image_id).await {
        Err(StoreError::Backend(message)) => assert!(message.contains("99"), "{message}"),
        other => panic!("expected a Backend error, got {other:?}"),
    }
    let listed = store
        .list_images(&hangar_core::repo::ImageListQuery {
            region: image.region.clone(),
            ..Default::default()
        })
        .await;
    assert!(matches!(listed, Err(StoreError::Backend(_))), "{listed:?}");
    match store.get_snapshot(&snapshot.snapshot_id).await {
        Err(StoreError::Backend(message)) => {
            assert!(message.contains("99"), "{message}");
            assert!(message.contains(&snapshot.snapshot_id), "{message}");
        }
        other => panic!("expected a Backend error, got {other:?}"),
    }
    store.close().await;
}

/// Two nodes on one database, and which of them the `n`th contender uses.
async fn two_nodes(db: &TestDb) -> [Arc<PostgresStore>; 2] {
    [Arc::new(connect(db).await), Arc::new(connect(db).await)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_registrations_of_one_name_admit_exactly_one() {
    let Some(db) = TestDb::create("concurrent_registrations_of_one_name_admit_exactly_one").await
    else {
        return;
    };
    let nodes = two_nodes(&db).await;
    let (region, owner) = (fresh_region(), fresh_account());
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let store = Arc::clone(&nodes[n % 2]);
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
    let Some(db) = TestDb::create("concurrent_updates_from_one_revision_admit_exactly_one").await
    else {
        return;
    };
    let nodes = two_nodes(&db).await;
    let image = sample_image(
        &fresh_image_id(),
        &fresh_region(),
        &fresh_account(),
        "raced",
    );
    nodes[0].insert_image(&image).await.expect("insert");
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let store = Arc::clone(&nodes[n % 2]);
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
    let stored = nodes[1]
        .get_image(&image.image_id)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(stored.revision, 1);
    assert_eq!(stored.description, Some(format!("writer {}", winners[0])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_claims_of_one_token_admit_exactly_one() {
    let Some(db) = TestDb::create("concurrent_claims_of_one_token_admit_exactly_one").await else {
        return;
    };
    let nodes = two_nodes(&db).await;
    let scope = format!("{}:RunInstances", fresh_account());
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let store = Arc::clone(&nodes[n % 2]);
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

/// Two nodes claiming tasks at once (`FOR UPDATE SKIP LOCKED` plus the
/// conditional lease upsert): every task is claimed exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn two_nodes_claiming_at_once_claim_each_task_exactly_once() {
    let Some(db) = TestDb::create("two_nodes_claiming_at_once_claim_each_task_exactly_once").await
    else {
        return;
    };
    let nodes = two_nodes(&db).await;
    for _ in 0..3 {
        conformance::check_concurrent_claims(&[&*nodes[0], &*nodes[1]]).await;
    }
}

/// A task claimed on one node and taken over on the other after its lease
/// expired: the first node can neither renew nor write the task any more,
/// and the second finds the first's last write.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_taken_over_by_another_node_fences_the_first() {
    let Some(db) = TestDb::create("a_task_taken_over_by_another_node_fences_the_first").await
    else {
        return;
    };
    let [a, b] = two_nodes(&db).await;
    let (node_a, node_b) = (conformance::fresh_holder(), conformance::fresh_holder());
    let task = conformance::earliest_task();
    a.insert_task(&task).await.expect("insert");
    let now = 1_800_000_000_000;
    let (mut held, lease_a) = a
        .claim_task(&node_a, now, 1_000)
        .await
        .expect("claim")
        .expect("a task to claim");
    assert!(
        b.claim_task(&node_b, now + 999, 1_000)
            .await
            .expect("claim")
            .is_none()
    );
    held.progress = 42;
    held.revision = a.update_task_fenced(&held, &lease_a).await.expect("write");
    let (taken, lease_b) = b
        .claim_task(&node_b, now + 1_000, 1_000)
        .await
        .expect("claim")
        .expect("the expired task");
    assert_eq!(taken, held);
    assert!(lease_b.token > lease_a.token);
    let mut late = held.clone();
    late.progress = 43;
    assert_eq!(
        a.update_task_fenced(&late, &lease_a).await,
        Err(StoreError::LeaseLost(lease_a.name.clone()))
    );
    assert_eq!(
        a.renew_lease(&lease_a, now + 1_001, 1_000).await,
        Err(StoreError::LeaseLost(lease_a.name.clone()))
    );
    assert_eq!(b.get_task(&task.task_id).await.expect("read"), Some(held));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_image_builds_of_one_name_store_exactly_one_task() {
    let Some(db) =
        TestDb::create("concurrent_image_builds_of_one_name_store_exactly_one_task").await
    else {
        return;
    };
    let nodes = two_nodes(&db).await;
    let (region, owner) = (fresh_region(), fresh_account());
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let store = Arc::clone(&nodes[n % 2]);
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
    let store = &nodes[0];
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

/// Concurrent puts of one key each report the record they replaced: the
/// replaced records form one chain (exactly one put found nothing, and no
/// two replaced the same record), as with SQLite's single writer. Without
/// the per-key lock, two puts could both read the same previous record.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_puts_of_one_key_replace_one_another_in_turn() {
    let Some(db) = TestDb::create("concurrent_puts_of_one_key_replace_one_another_in_turn").await
    else {
        return;
    };
    let nodes = two_nodes(&db).await;
    let bucket = sample_bucket(&fresh_bucket_name(), &fresh_region(), &fresh_account());
    nodes[0].insert_bucket(&bucket).await.expect("bucket");
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let store = Arc::clone(&nodes[n % 2]);
            let object = sample_object(&bucket.name, "the-key", &format!("etag{n:02}"));
            tokio::spawn(async move { store.put_object(&object).await })
        })
        .collect();
    let mut replaced = Vec::new();
    for task in tasks {
        replaced.push(task.await.expect("task").expect("put").map(|o| o.etag));
    }
    let firsts = replaced
        .iter()
        .filter(|previous| previous.is_none())
        .count();
    assert_eq!(
        firsts, 1,
        "exactly one put found the key empty: {replaced:?}"
    );
    let mut etags: Vec<String> = replaced.into_iter().flatten().collect();
    etags.sort();
    let before = etags.len();
    etags.dedup();
    assert_eq!(etags.len(), before, "no record was replaced twice");
    let last = nodes[1]
        .get_object(&bucket.name, "the-key")
        .await
        .expect("get")
        .expect("present");
    assert!(
        !etags.contains(&last.etag),
        "the surviving record was replaced by no one"
    );
}

/// A bucket is deleted only when empty, even while objects are being put
/// into it from another node: no object outlives its bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn deleting_a_bucket_while_objects_arrive_leaves_no_orphan() {
    let Some(db) = TestDb::create("deleting_a_bucket_while_objects_arrive_leaves_no_orphan").await
    else {
        return;
    };
    let nodes = two_nodes(&db).await;
    for round in 0..10 {
        let bucket = sample_bucket(&fresh_bucket_name(), &fresh_region(), &fresh_account());
        nodes[0].insert_bucket(&bucket).await.expect("bucket");
        let writer = {
            let store = Arc::clone(&nodes[0]);
            let name = bucket.name.clone();
            tokio::spawn(async move {
                let object = sample_object(&name, &format!("key-{round}"), "aa");
                store.put_object(&object).await
            })
        };
        let deleter = {
            let store = Arc::clone(&nodes[1]);
            let name = bucket.name.clone();
            tokio::spawn(async move { store.delete_bucket(&name).await })
        };
        let put = writer.await.expect("task");
        let deleted = deleter.await.expect("task").expect("delete");
        let object = nodes[0]
            .get_object(&bucket.name, &format!("key-{round}"))
            .await
            .expect("get");
        match (put, deleted) {
            // The put came first: the bucket was not empty.
            (Ok(None), false) => assert!(object.is_some()),
            // The delete came first: the put found no bucket.
            (Err(StoreError::Conflict(_)), true) => assert!(object.is_none()),
            other => panic!("round {round}: inconsistent outcome {other:?}"),
        }
    }
}

/// A 1 GiB snapshot has 2048 blocks; copying its map is one INSERT ...
/// SELECT.
#[tokio::test]
async fn copying_the_map_of_a_1_gib_snapshot_is_quick() {
    const BLOCKS: i64 = 2048;
    let Some(db) = TestDb::create("copying_the_map_of_a_1_gib_snapshot_is_quick").await else {
        return;
    };
    let store = connect(&db).await;
    let (source, target) = (fresh_snapshot_id(), fresh_volume_id());
    let hashes = hashes_with_fresh_prefix(BLOCKS as usize);
    let entries: Vec<(i64, String)> = hashes
        .iter()
        .enumerate()
        .map(|(index, hash)| (index as i64, hash.clone()))
        .collect();
    store.put_blocks(&source, &entries).await.expect("fill");
    let zeros: Vec<(i64, String)> = (0..BLOCKS + 10)
        .map(|index| (index, hangar_core::repo::ZERO_BLOCK.to_owned()))
        .collect();
    store.put_blocks(&target, &zeros).await.expect("fill");

    let started = Instant::now();
    let copied = store.copy_blocks(&source, &target).await.expect("copy");
    let copying = started.elapsed();
    eprintln!("copied {BLOCKS} block entries in {copying:?}");
    assert_eq!(copied, BLOCKS);
    assert!(copying < Duration::from_secs(2), "took {copying:?}");
    assert_eq!(store.count_blocks(&target).await.expect("count"), BLOCKS);
    let mut read = Vec::new();
    let mut next = 0;
    loop {
        let page = store.list_blocks(&target, next, 500).await.expect("list");
        let Some((last, _)) = page.last() else {
            break;
        };
        next = last + 1;
        read.extend(page);
    }
    assert_eq!(read, entries);
    store.close().await;
}
