//! Checks of S3 objects: put replaces atomically and reports the replaced
//! record, objects need their bucket, listings by prefix in key order with
//! a start-after bound and a limit, deletion, and buckets that hold objects
//! cannot be deleted.

use std::collections::BTreeMap;

use hangar_core::model::S3Object;
use hangar_core::repo::{MetaStore, StoreError};

use super::{expect_err, fresh_account, fresh_region, ok};
use super::{fresh_bucket_name, sample_bucket};

/// An object record with a content type and user metadata.
pub fn sample_object(bucket: &str, key: &str, etag: &str) -> S3Object {
    S3Object {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        size: 11,
        etag: etag.to_owned(),
        content_type: Some("text/plain".to_owned()),
        metadata: BTreeMap::from([("colour".to_owned(), "blue é".to_owned())]),
        last_modified_ms: 1_700_000_000_123,
        file_name: format!("{etag}.0001"),
        tags: BTreeMap::from([("team".to_owned(), "images".to_owned())]),
        ..S3Object::default()
    }
}

async fn fresh_bucket(store: &dyn MetaStore) -> String {
    let bucket = sample_bucket(&fresh_bucket_name(), &fresh_region(), &fresh_account());
    ok(store.insert_bucket(&bucket).await, "insert a bucket");
    bucket.name
}

/// An object reads back as written; a second put of its key replaces it and
/// returns the first; an unknown key reads as `None`.
pub async fn check_object_roundtrip(store: &dyn MetaStore) {
    let bucket = fresh_bucket(store).await;
    let first = sample_object(&bucket, "dir/../a b/ü.txt", "aa");
    let replaced = ok(store.put_object(&first).await, "put an object");
    assert_eq!(replaced, None, "conformance: a new key replaces nothing");
    let read = ok(store.get_object(&bucket, &first.key).await, "get it");
    assert_eq!(
        read.as_ref(),
        Some(&first),
        "conformance: an object must read back exactly as written"
    );
    let mut second = sample_object(&bucket, &first.key, "bb");
    second.metadata.clear();
    second.content_type = None;
    let replaced = ok(store.put_object(&second).await, "replace the object");
    assert_eq!(
        replaced.as_ref(),
        Some(&first),
        "conformance: a put must return the record it replaced"
    );
    let read = ok(store.get_object(&bucket, &first.key).await, "get it again");
    assert_eq!(read.as_ref(), Some(&second), "conformance: put replaces");
    let missing = ok(store.get_object(&bucket, "nothing").await, "get unknown");
    assert_eq!(missing, None, "conformance: an unknown key reads as None");
    let elsewhere = ok(
        store.get_object(&fresh_bucket_name(), &first.key).await,
        "get from an unknown bucket",
    );
    assert_eq!(elsewhere, None, "conformance: keys belong to one bucket");
}

/// An object needs its bucket: a put into a missing bucket is `Conflict`
/// and stores nothing.
pub async fn check_object_needs_bucket(store: &dyn MetaStore) {
    let bucket = fresh_bucket_name();
    expect_err(
        store.put_object(&sample_object(&bucket, "k", "aa")).await,
        StoreError::Conflict(bucket.clone()),
        "put into a missing bucket",
    );
    let read = ok(store.get_object(&bucket, "k").await, "get it");
    assert_eq!(read, None, "conformance: a refused put stores nothing");
}

/// Listings: by prefix, in key order (bytes of UTF-8), after a bound, at
/// most a limit; other buckets' objects never show.
pub async fn check_object_listing(store: &dyn MetaStore) {
    let bucket = fresh_bucket(store).await;
    let other = fresh_bucket(store).await;
    let keys = ["b/2", "a", "b/1", "b%", "b_", "c", "B", "b/1/x", "é", "z"];
    for key in keys {
        ok(
            store.put_object(&sample_object(&bucket, key, "aa")).await,
            "put an object",
        );
    }
    ok(
        store.put_object(&sample_object(&other, "b/0", "aa")).await,
        "put an object elsewhere",
    );
    let names = |objects: Vec<S3Object>| -> Vec<String> {
        objects.into_iter().map(|object| object.key).collect()
    };
    let all = names(ok(
        store.list_objects(&bucket, "", None, 100).await,
        "list all",
    ));
    assert_eq!(
        all,
        ["B", "a", "b%", "b/1", "b/1/x", "b/2", "b_", "c", "z", "é"],
        "conformance: objects list in key order (bytes of UTF-8)"
    );
    let b_slash = names(ok(
        store.list_objects(&bucket, "b/", None, 100).await,
        "list by prefix",
    ));
    assert_eq!(b_slash, ["b/1", "b/1/x", "b/2"], "conformance: prefix");
    let wildcard = names(ok(
        store.list_objects(&bucket, "b_", None, 100).await,
        "list by a prefix with a LIKE wildcard",
    ));
    assert_eq!(wildcard, ["b_"], "conformance: prefixes are literal");
    let page = names(ok(
        store.list_objects(&bucket, "b", Some("b/1"), 2).await,
        "list a page",
    ));
    assert_eq!(page, ["b/1/x", "b/2"], "conformance: after and limit");
    let none = names(ok(
        store.list_objects(&bucket, "", None, 0).await,
        "list zero",
    ));
    assert!(none.is_empty(), "conformance: limit 0 lists nothing");
}

/// Delete returns the removed record, then `None`; a bucket holding objects
/// is not deleted, and is once they are gone.
pub async fn check_object_delete(store: &dyn MetaStore) {
    let bucket = fresh_bucket(store).await;
    let object = sample_object(&bucket, "k", "aa");
    ok(store.put_object(&object).await, "put an object");
    let deleted = ok(
        store.delete_bucket(&bucket).await,
        "delete a non-empty bucket",
    );
    assert!(
        !deleted,
        "conformance: a bucket holding objects must not be deleted"
    );
    assert!(
        ok(store.get_bucket(&bucket).await, "get the bucket").is_some(),
        "conformance: a refused delete keeps the bucket"
    );
    let removed = ok(store.delete_object(&bucket, "k").await, "delete it");
    assert_eq!(
        removed,
        Some(object),
        "conformance: delete returns the record"
    );
    let again = ok(store.delete_object(&bucket, "k").await, "delete it again");
    assert_eq!(again, None, "conformance: a missing key deletes nothing");
    assert_eq!(
        ok(store.get_object(&bucket, "k").await, "get it"),
        None,
        "conformance: a deleted object is gone"
    );
    assert!(
        ok(
            store.delete_bucket(&bucket).await,
            "delete the empty bucket"
        ),
        "conformance: an emptied bucket can be deleted"
    );
}

/// `update_object_if` replaces only the record it was given as expected:
/// a tag change that raced a put must not undo the put.
pub async fn check_object_update_if(store: &dyn MetaStore) {
    let bucket = fresh_bucket(store).await;
    let first = sample_object(&bucket, "k", "aa");
    ok(store.put_object(&first).await, "put an object");
    let mut tagged = first.clone();
    tagged.tags.insert("stage".into(), "prod".into());
    let replaced = ok(store.update_object_if(&tagged, &first).await, "update");
    assert!(
        replaced,
        "conformance: an update of the current record applies"
    );
    let read = ok(store.get_object(&bucket, "k").await, "read");
    assert_eq!(
        read.as_ref(),
        Some(&tagged),
        "conformance: the update is stored"
    );
    let stale = ok(store.update_object_if(&first, &first).await, "stale update");
    assert!(
        !stale,
        "conformance: an update of a replaced record is refused"
    );
    let read = ok(store.get_object(&bucket, "k").await, "read again");
    assert_eq!(read.as_ref(), Some(&tagged), "conformance: nothing changed");
    ok(store.delete_object(&bucket, "k").await, "delete");
    let gone = ok(
        store.update_object_if(&tagged, &tagged).await,
        "update gone",
    );
    assert!(
        !gone,
        "conformance: an update of a deleted record is refused"
    );
    let read = ok(store.get_object(&bucket, "k").await, "read deleted");
    assert_eq!(read, None, "conformance: a refused update creates nothing");
}
