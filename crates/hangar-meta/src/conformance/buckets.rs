//! Checks of S3 buckets: one name space across owners and regions, the
//! revision rule, listings by owner, deletion.

use hangar_core::model::{Bucket, PublicAccessBlock};
use hangar_core::repo::{MetaStore, StoreError};

use super::{expect_err, fresh_account, fresh_region, ok, unique};

/// A bucket name no check has used (valid under S3's rules).
pub fn fresh_bucket_name() -> String {
    format!("conformance-{:016x}", unique())
}

/// A new bucket record (revision 0, every public access switch on).
pub fn sample_bucket(name: &str, region: &str, owner: &str) -> Bucket {
    Bucket {
        name: name.to_owned(),
        region: region.to_owned(),
        owner_id: owner.to_owned(),
        created_ms: 1_700_000_000_000,
        public_access_block: Some(PublicAccessBlock::ALL_BLOCKED),
        policy: None,
        encryption: Default::default(),
        revision: 0,
    }
}

/// A bucket reads back as written; an unknown name reads as `None`.
pub async fn check_bucket_roundtrip(store: &dyn MetaStore) {
    let bucket = sample_bucket(&fresh_bucket_name(), &fresh_region(), &fresh_account());
    ok(store.insert_bucket(&bucket).await, "insert a bucket");
    let read = ok(store.get_bucket(&bucket.name).await, "read the bucket");
    assert_eq!(
        read.as_ref(),
        Some(&bucket),
        "conformance: a bucket must read back exactly as written"
    );
    let missing = ok(
        store.get_bucket(&fresh_bucket_name()).await,
        "read an unknown bucket",
    );
    assert_eq!(
        missing, None,
        "conformance: an unknown bucket must read as None"
    );
}

/// A name is taken once for every owner and region: a second insert of it,
/// by anyone anywhere, is `DuplicateId` and changes nothing.
pub async fn check_bucket_names_are_global(store: &dyn MetaStore) {
    let name = fresh_bucket_name();
    let first = sample_bucket(&name, &fresh_region(), &fresh_account());
    ok(store.insert_bucket(&first).await, "insert a bucket");
    for other in [
        sample_bucket(&name, &first.region, &first.owner_id),
        sample_bucket(&name, &fresh_region(), &first.owner_id),
        sample_bucket(&name, &first.region, &fresh_account()),
        sample_bucket(&name, &fresh_region(), &fresh_account()),
    ] {
        expect_err(
            store.insert_bucket(&other).await,
            StoreError::DuplicateId(name.clone()),
            "insert a bucket whose name is taken",
        );
    }
    let read = ok(store.get_bucket(&name).await, "read the bucket");
    assert_eq!(
        read.as_ref(),
        Some(&first),
        "conformance: a refused insert must leave the first bucket as it was"
    );
}

/// `update_bucket` stores the new content with the next revision, and
/// refuses a stale revision or a missing bucket with `Conflict`.
pub async fn check_bucket_revisions(store: &dyn MetaStore) {
    let bucket = sample_bucket(&fresh_bucket_name(), &fresh_region(), &fresh_account());
    ok(store.insert_bucket(&bucket).await, "insert a bucket");
    let mut changed = bucket.clone();
    changed.public_access_block = None;
    let revision = ok(store.update_bucket(&changed).await, "update the bucket");
    assert_eq!(
        revision, 1,
        "conformance: an update must return the next revision"
    );
    let read = ok(store.get_bucket(&bucket.name).await, "read the bucket");
    assert_eq!(
        read,
        Some(Bucket {
            revision: 1,
            ..changed.clone()
        }),
        "conformance: an update must store the new content and revision"
    );
    expect_err(
        store.update_bucket(&changed).await,
        StoreError::Conflict(bucket.name.clone()),
        "update the bucket from a stale revision",
    );
    let ghost = sample_bucket(&fresh_bucket_name(), &fresh_region(), &fresh_account());
    expect_err(
        store.update_bucket(&ghost).await,
        StoreError::Conflict(ghost.name.clone()),
        "update a bucket that does not exist",
    );
}

/// `list_buckets` returns one owner's buckets from every region, by name,
/// and nobody else's.
pub async fn check_bucket_listing(store: &dyn MetaStore) {
    let owner = fresh_account();
    let other = fresh_account();
    let base = fresh_bucket_name();
    let mine: Vec<Bucket> = ["c", "a", "b"]
        .iter()
        .map(|suffix| sample_bucket(&format!("{base}-{suffix}"), &fresh_region(), &owner))
        .collect();
    for bucket in &mine {
        ok(store.insert_bucket(bucket).await, "insert a bucket");
    }
    let theirs = sample_bucket(&format!("{base}-d"), &mine[0].region, &other);
    ok(
        store.insert_bucket(&theirs).await,
        "insert another owner's bucket",
    );

    let listed = ok(store.list_buckets(&owner).await, "list the owner's buckets");
    let names: Vec<&str> = listed.iter().map(|bucket| bucket.name.as_str()).collect();
    assert_eq!(
        names,
        [
            format!("{base}-a"),
            format!("{base}-b"),
            format!("{base}-c")
        ],
        "conformance: a listing must hold exactly the owner's buckets, by name"
    );
    let none = ok(
        store.list_buckets(&fresh_account()).await,
        "list an account without buckets",
    );
    assert!(
        none.is_empty(),
        "conformance: an account without buckets must list none"
    );
}

/// `delete_bucket` says whether the bucket existed, and frees its name.
pub async fn check_bucket_delete(store: &dyn MetaStore) {
    let bucket = sample_bucket(&fresh_bucket_name(), &fresh_region(), &fresh_account());
    ok(store.insert_bucket(&bucket).await, "insert a bucket");
    assert!(
        ok(store.delete_bucket(&bucket.name).await, "delete the bucket"),
        "conformance: deleting a bucket must report that it existed"
    );
    assert_eq!(
        ok(
            store.get_bucket(&bucket.name).await,
            "read the deleted bucket"
        ),
        None,
        "conformance: a deleted bucket must read as None"
    );
    assert!(
        !ok(
            store.delete_bucket(&bucket.name).await,
            "delete the bucket again"
        ),
        "conformance: deleting a missing bucket must report false"
    );
    let reborn = sample_bucket(&bucket.name, &fresh_region(), &fresh_account());
    ok(
        store.insert_bucket(&reborn).await,
        "create a bucket under the freed name",
    );
}
