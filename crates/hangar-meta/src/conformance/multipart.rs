//! Checks of S3 multipart uploads: uploads need their bucket and keep a
//! bucket from being deleted, parts are inserted or replaced by number and
//! need their upload, listings in (key, upload ID) order with markers, and
//! completion and abort are each one transaction: completion stores the
//! object and deletes the upload and its parts together, returning the
//! replaced object and the unused parts, and changes nothing when the
//! upload is gone or a part it names was replaced.

use std::collections::BTreeMap;

use hangar_core::model::{MultipartUpload, ObjectChecksum, ObjectPart, S3Object, UploadPart};
use hangar_core::repo::{MetaStore, StoreError};

use super::{expect_err, fresh_account, fresh_region, ok, sample_object, unique};
use super::{fresh_bucket_name, sample_bucket};

/// A fresh upload ID (hex, like the domain's).
pub fn fresh_upload_id() -> String {
    format!("{:012x}{:032x}", unique() % (1 << 48), unique())
}

/// An upload with a content type, metadata, tags and a checksum algorithm.
pub fn sample_upload(
    bucket: &str,
    key: &str,
    upload_id: &str,
    initiated_ms: i64,
) -> MultipartUpload {
    MultipartUpload {
        upload_id: upload_id.to_owned(),
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        initiator_id: "111111111111".to_owned(),
        initiated_ms,
        content_type: Some("application/octet-stream".to_owned()),
        metadata: BTreeMap::from([("colour".to_owned(), "green ü".to_owned())]),
        tags: BTreeMap::from([("team".to_owned(), "images".to_owned())]),
        checksum_algorithm: Some("CRC32".to_owned()),
    }
}

/// A part record whose file name says which upload, number and version.
pub fn sample_part(upload_id: &str, part_number: i32, version: &str) -> UploadPart {
    UploadPart {
        upload_id: upload_id.to_owned(),
        part_number,
        file_name: format!("{upload_id}.{part_number}{version}"),
        size: 5 * 1024 * 1024 + i64::from(part_number),
        etag: format!("{:032x}", part_number),
        last_modified_ms: 1_700_000_000_000 + i64::from(part_number),
        checksum: Some(ObjectChecksum {
            algorithm: "CRC32".to_owned(),
            value: "AAAAAA==".to_owned(),
            composite: false,
        }),
    }
}

async fn fresh_bucket(store: &dyn MetaStore) -> String {
    let bucket = sample_bucket(&fresh_bucket_name(), &fresh_region(), &fresh_account());
    ok(store.insert_bucket(&bucket).await, "insert a bucket");
    bucket.name
}

/// The object an upload completes into, made of `parts`.
fn object_of(upload: &MultipartUpload, parts: &[&UploadPart]) -> S3Object {
    S3Object {
        bucket: upload.bucket.clone(),
        key: upload.key.clone(),
        size: parts.iter().map(|part| part.size).sum(),
        etag: format!("{:032x}-{}", 7, parts.len()),
        content_type: upload.content_type.clone(),
        metadata: upload.metadata.clone(),
        last_modified_ms: 1_700_000_001_000,
        file_name: String::new(),
        parts: parts
            .iter()
            .map(|part| ObjectPart {
                file_name: part.file_name.clone(),
                size: part.size,
            })
            .collect(),
        tags: upload.tags.clone(),
        checksum: None,
    }
}

/// An upload reads back as written; its ID is unique; it needs its bucket;
/// a bucket with an upload in progress is not deleted.
pub async fn check_upload_roundtrip(store: &dyn MetaStore) {
    let bucket = fresh_bucket(store).await;
    let upload = sample_upload(&bucket, "dir/../ü k", &fresh_upload_id(), 1_700_000_000_000);
    ok(store.insert_upload(&upload).await, "insert an upload");
    let read = ok(store.get_upload(&upload.upload_id).await, "get it");
    assert_eq!(
        read.as_ref(),
        Some(&upload),
        "conformance: an upload reads back as written"
    );
    expect_err(
        store.insert_upload(&upload).await,
        StoreError::DuplicateId(upload.upload_id.clone()),
        "insert the same upload ID again",
    );
    assert_eq!(
        ok(store.get_upload(&fresh_upload_id()).await, "get unknown"),
        None,
        "conformance: an unknown upload reads as None"
    );
    let nowhere = fresh_bucket_name();
    let orphan = sample_upload(&nowhere, "k", &fresh_upload_id(), 1);
    expect_err(
        store.insert_upload(&orphan).await,
        StoreError::Conflict(nowhere.clone()),
        "insert an upload into a missing bucket",
    );
    assert_eq!(
        ok(store.get_upload(&orphan.upload_id).await, "get it"),
        None,
        "conformance: a refused upload stores nothing"
    );
    assert!(
        !ok(store.delete_bucket(&bucket).await, "delete the bucket"),
        "conformance: a bucket with an upload in progress must not be deleted"
    );
    ok(store.delete_upload(&upload.upload_id).await, "abort");
    assert!(
        ok(
            store.delete_bucket(&bucket).await,
            "delete the bucket again"
        ),
        "conformance: once its uploads are gone the bucket can be deleted"
    );
}

/// Parts are stored by number (a second put replaces and returns the
/// first), list in number order after a marker with a limit, and need
/// their upload.
pub async fn check_parts(store: &dyn MetaStore) {
    let bucket = fresh_bucket(store).await;
    let upload = sample_upload(&bucket, "k", &fresh_upload_id(), 5);
    ok(store.insert_upload(&upload).await, "insert an upload");
    let id = upload.upload_id.as_str();
    for number in [3, 1, 10_000, 2] {
        let replaced = ok(
            store.put_part(&sample_part(id, number, "a")).await,
            "put a part",
        );
        assert_eq!(
            replaced, None,
            "conformance: a new part number replaces nothing"
        );
    }
    let numbers = |parts: Vec<UploadPart>| -> Vec<i32> {
        parts.into_iter().map(|part| part.part_number).collect()
    };
    let all = ok(store.list_parts(id, 0, 100).await, "list parts");
    assert_eq!(
        all[0],
        sample_part(id, 1, "a"),
        "conformance: a part reads back as written"
    );
    assert_eq!(
        numbers(all),
        [1, 2, 3, 10_000],
        "conformance: parts list in number order"
    );
    assert_eq!(
        numbers(ok(store.list_parts(id, 1, 2).await, "list a page")),
        [2, 3],
        "conformance: parts after a marker, at most a limit"
    );
    assert!(ok(store.list_parts(id, 0, 0).await, "list zero").is_empty());
    let replaced = ok(
        store.put_part(&sample_part(id, 2, "b")).await,
        "replace part 2",
    );
    assert_eq!(
        replaced,
        Some(sample_part(id, 2, "a")),
        "conformance: a put returns the part it replaced"
    );
    let read = ok(store.list_parts(id, 1, 1).await, "read part 2");
    assert_eq!(read, [sample_part(id, 2, "b")], "conformance: put replaces");
    let other = fresh_upload_id();
    expect_err(
        store.put_part(&sample_part(&other, 1, "a")).await,
        StoreError::Conflict(other.clone()),
        "put a part of a missing upload",
    );
    assert!(
        ok(store.list_parts(&other, 0, 10).await, "list its parts").is_empty(),
        "conformance: a refused part stores nothing"
    );
    ok(store.delete_upload(id).await, "abort");
}

/// Completion stores the object and deletes the upload and every part in
/// one transaction; it returns the object it replaced and the parts the
/// object does not use. A second completion (the upload is gone) fails
/// with `Conflict(upload ID)` and changes nothing.
pub async fn check_complete_upload(store: &dyn MetaStore) {
    let bucket = fresh_bucket(store).await;
    let old = sample_object(&bucket, "big.img", "aa");
    ok(store.put_object(&old).await, "put the object to replace");
    let upload = sample_upload(&bucket, "big.img", &fresh_upload_id(), 5);
    ok(store.insert_upload(&upload).await, "insert an upload");
    let id = upload.upload_id.as_str();
    let parts: Vec<UploadPart> = (1..=3).map(|n| sample_part(id, n, "a")).collect();
    for part in &parts {
        ok(store.put_part(part).await, "put a part");
    }
    // Parts 1 and 3 make the object; part 2 is left over.
    let object = object_of(&upload, &[&parts[0], &parts[2]]);
    let visible = ok(store.get_object(&bucket, "big.img").await, "read before");
    assert_eq!(
        visible.as_ref(),
        Some(&old),
        "conformance: the old object until completion"
    );
    let completed = ok(store.complete_upload(id, &object).await, "complete");
    assert_eq!(
        completed.replaced.as_ref(),
        Some(&old),
        "conformance: completion returns the object it replaced"
    );
    assert_eq!(
        completed.unused_parts,
        vec![parts[1].clone()],
        "conformance: completion returns the parts the object does not use"
    );
    let read = ok(
        store.get_object(&bucket, "big.img").await,
        "read the object",
    );
    assert_eq!(
        read.as_ref(),
        Some(&object),
        "conformance: the completed object is stored"
    );
    assert_eq!(
        read.map(|read| read
            .files()
            .into_iter()
            .map(|(f, _)| f.to_owned())
            .collect::<Vec<_>>()),
        Some(vec![parts[0].file_name.clone(), parts[2].file_name.clone()]),
        "conformance: the object's files are its parts, in order"
    );
    assert_eq!(
        ok(store.get_upload(id).await, "get the upload"),
        None,
        "conformance: completion deletes the upload"
    );
    assert!(
        ok(store.list_parts(id, 0, 100).await, "list parts").is_empty(),
        "conformance: completion deletes the parts"
    );
    let mut again = object.clone();
    again.etag = "bb".into();
    expect_err(
        store.complete_upload(id, &again).await,
        StoreError::Conflict(id.to_owned()),
        "complete a completed upload",
    );
    let read = ok(store.get_object(&bucket, "big.img").await, "read again");
    assert_eq!(
        read.as_ref(),
        Some(&object),
        "conformance: a refused completion changes nothing"
    );
}

/// Completion of an upload aborted meanwhile, or naming a part file that was
/// replaced meanwhile, fails with `Conflict(upload ID)` and changes nothing;
/// completion into a deleted bucket fails with `Conflict(bucket)`.
pub async fn check_complete_refusals(store: &dyn MetaStore) {
    let bucket = fresh_bucket(store).await;
    // Aborted meanwhile.
    let upload = sample_upload(&bucket, "k", &fresh_upload_id(), 5);
    ok(store.insert_upload(&upload).await, "insert an upload");
    let part = sample_part(&upload.upload_id, 1, "a");
    ok(store.put_part(&part).await, "put a part");
    let object = object_of(&upload, &[&part]);
    let aborted = ok(store.delete_upload(&upload.upload_id).await, "abort");
    assert_eq!(
        aborted,
        Some(vec![part.clone()]),
        "conformance: abort returns the parts"
    );
    expect_err(
        store.complete_upload(&upload.upload_id, &object).await,
        StoreError::Conflict(upload.upload_id.clone()),
        "complete an aborted upload",
    );
    assert_eq!(
        ok(store.get_object(&bucket, "k").await, "read"),
        None,
        "conformance: a refused completion stores no object"
    );
    // A part replaced between the caller's check and the completion.
    let upload = sample_upload(&bucket, "k", &fresh_upload_id(), 6);
    ok(store.insert_upload(&upload).await, "insert an upload");
    let first = sample_part(&upload.upload_id, 1, "a");
    ok(store.put_part(&first).await, "put a part");
    let object = object_of(&upload, &[&first]);
    let second = sample_part(&upload.upload_id, 1, "b");
    ok(store.put_part(&second).await, "replace it");
    expect_err(
        store.complete_upload(&upload.upload_id, &object).await,
        StoreError::Conflict(upload.upload_id.clone()),
        "complete with a replaced part",
    );
    assert_eq!(ok(store.get_object(&bucket, "k").await, "read"), None);
    assert!(
        ok(store.get_upload(&upload.upload_id).await, "get the upload").is_some(),
        "conformance: a refused completion keeps the upload"
    );
    assert_eq!(
        ok(
            store.list_parts(&upload.upload_id, 0, 10).await,
            "list parts"
        ),
        std::slice::from_ref(&second),
        "conformance: a refused completion keeps the parts"
    );
    // Abort of an unknown upload.
    assert_eq!(
        ok(
            store.delete_upload(&fresh_upload_id()).await,
            "abort unknown"
        ),
        None,
        "conformance: aborting an unknown upload deletes nothing"
    );
    let parts = ok(store.delete_upload(&upload.upload_id).await, "abort");
    assert_eq!(parts, Some(vec![second]));
    assert_eq!(
        ok(store.delete_upload(&upload.upload_id).await, "abort again"),
        None
    );
}

/// Upload listings: by bucket and prefix, in (key, upload ID) order, after a
/// key or a (key, upload ID), at most a limit; and by age.
pub async fn check_upload_listing(store: &dyn MetaStore) {
    let bucket = fresh_bucket(store).await;
    let other = fresh_bucket(store).await;
    let base = i64::try_from(unique() % 1_000_000).unwrap_or(0) * 1_000_000;
    let entries = [
        ("b/1", "02"),
        ("a", "01"),
        ("b/1", "01"),
        ("b_", "01"),
        ("c", "01"),
    ];
    let mut ids = Vec::new();
    for (index, (key, suffix)) in entries.iter().enumerate() {
        let id = format!("{}{suffix}", fresh_upload_id());
        let upload = sample_upload(&bucket, key, &id, base + i64::try_from(index).unwrap_or(0));
        ok(store.insert_upload(&upload).await, "insert an upload");
        ids.push((key.to_string(), id));
    }
    ok(
        store
            .insert_upload(&sample_upload(&other, "b/0", &fresh_upload_id(), base))
            .await,
        "insert an upload elsewhere",
    );
    let mut expected = ids.clone();
    expected.sort();
    let pairs = |uploads: Vec<MultipartUpload>| -> Vec<(String, String)> {
        uploads.into_iter().map(|u| (u.key, u.upload_id)).collect()
    };
    let all = pairs(ok(
        store.list_uploads(&bucket, "", "", None, 100).await,
        "list all",
    ));
    assert_eq!(
        all, expected,
        "conformance: uploads list in (key, upload ID) order"
    );
    let b = pairs(ok(
        store.list_uploads(&bucket, "b/", "", None, 100).await,
        "by prefix",
    ));
    assert_eq!(b, expected[1..3], "conformance: prefix (literal)");
    let wildcard = pairs(ok(
        store.list_uploads(&bucket, "b_", "", None, 100).await,
        "wildcard",
    ));
    assert_eq!(
        wildcard,
        expected[3..4],
        "conformance: prefixes are literal"
    );
    let after_key = pairs(ok(
        store.list_uploads(&bucket, "", "b/1", None, 100).await,
        "after a key",
    ));
    assert_eq!(
        after_key,
        expected[3..],
        "conformance: after a key skips its uploads"
    );
    let after_upload = pairs(ok(
        store
            .list_uploads(&bucket, "", "b/1", Some(&expected[1].1), 2)
            .await,
        "after an upload",
    ));
    assert_eq!(
        after_upload,
        expected[2..4],
        "conformance: after (key, upload ID), with a limit"
    );
    assert!(ok(store.list_uploads(&bucket, "", "", None, 0).await, "zero").is_empty());
    let old = ok(
        store.uploads_initiated_before(base + 2, 1000).await,
        "by age",
    );
    let old_ids: Vec<&str> = old
        .iter()
        .filter(|u| u.bucket == bucket)
        .map(|u| u.upload_id.as_str())
        .collect();
    assert_eq!(
        old_ids,
        [ids[0].1.as_str(), ids[1].1.as_str()],
        "conformance: uploads initiated before a time, oldest first"
    );
    for (_, id) in &ids {
        ok(store.delete_upload(id).await, "abort");
    }
}
