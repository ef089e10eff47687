//! S3 objects: key rules, the file name an object's bytes are stored under,
//! ownership, and `ListObjectsV2`'s grouping and pagination. The bytes
//! themselves are the wire/engine side's business: the domain names the file
//! (never from the key as a path) and keeps the record.
//!
//! An object is visible only once its record is committed, which happens
//! after its file is durably in place; a put replaces the previous record in
//! one transaction (a reader sees the old object or the new one), and
//! returns the replaced record so its file can be removed.

use crate::blocks::BlockHash;
use crate::buckets::BucketError;
use crate::model::Bucket;
use crate::model::S3Object;
use crate::repo::StoreError;
use crate::service::Hangar;

/// S3's limit on a key: 1 to 1,024 bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// How many records a listing reads from the store at a time.
const LIST_BATCH: usize = 1000;

/// Checks a key: non-empty, at most [`MAX_KEY_BYTES`].
pub fn validate_key(key: &str) -> Result<(), BucketError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(BucketError::KeyTooLong(key.len()));
    }
    Ok(())
}

/// S3's limits on object tags.
pub const MAX_OBJECT_TAGS: usize = 10;
pub const MAX_TAG_KEY_CHARS: usize = 128;
pub const MAX_TAG_VALUE_CHARS: usize = 256;

/// Checks a set of object tags (`x-amz-tagging`, `PutObjectTagging`): at
/// most 10, keys of 1 to 128 characters, values of at most 256, no key
/// twice, no `aws:` prefix.
pub fn validate_object_tags(
    tags: &[(String, String)],
) -> Result<std::collections::BTreeMap<String, String>, BucketError> {
    let refuse = |message: &str| Err(BucketError::InvalidTag(message.to_owned()));
    if tags.len() > MAX_OBJECT_TAGS {
        return refuse("Object tags cannot be greater than 10");
    }
    let mut out = std::collections::BTreeMap::new();
    for (key, value) in tags {
        if key.is_empty() || key.chars().count() > MAX_TAG_KEY_CHARS {
            return refuse("The TagKey you have provided is invalid");
        }
        if value.chars().count() > MAX_TAG_VALUE_CHARS {
            return refuse("The TagValue you have provided is invalid");
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            return refuse("Your TagKey cannot be prefixed with aws:");
        }
        if out.insert(key.clone(), value.clone()).is_some() {
            return refuse("Cannot provide multiple Tags with the same key");
        }
    }
    Ok(out)
}

/// The file name an object's bytes are stored under in its bucket's folder:
/// the hex SHA-256 of the key, a dot, and `unique` (which makes each put's
/// file distinct, so a replaced object's file stays readable until its
/// record is gone). Only hex digits, the dot and `unique`'s characters
/// appear, never the key, so no key can name a path; `unique` must be
/// ASCII alphanumeric (checked: anything else is dropped).
pub fn object_file_name(key: &str, unique: &str) -> String {
    let unique: String = unique.chars().filter(char::is_ascii_alphanumeric).collect();
    format!("{}.{unique}", BlockHash::of(key.as_bytes()).to_hex())
}

/// Whether `name` could have come from [`object_file_name`]: what a sweep
/// of a bucket's folder may consider as object files.
pub fn is_object_file_name(name: &str) -> bool {
    match name.split_once('.') {
        Some((hash, unique)) => {
            BlockHash::from_hex(hash).is_some()
                && !unique.is_empty()
                && unique.chars().all(|c| c.is_ascii_alphanumeric())
        }
        None => false,
    }
}

/// `ListObjectsV2`'s parameters, already decoded from the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListObjectsInput {
    pub prefix: String,
    /// Keys with this after the prefix are rolled up into common prefixes.
    pub delimiter: Option<String>,
    /// At most this many keys plus common prefixes.
    pub max_keys: usize,
    /// List what sorts after this (a `StartAfter` or a continuation token).
    pub after: Option<String>,
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectListing {
    pub objects: Vec<S3Object>,
    pub common_prefixes: Vec<String>,
    /// Set when the listing was cut short: where the next page starts
    /// (after this key or common prefix).
    pub next_after: Option<String>,
}

/// The common prefix `key` rolls up into: the prefix, then the key up to and
/// including the first delimiter after it; `None` when there is none.
pub fn common_prefix<'k>(key: &'k str, prefix: &str, delimiter: &str) -> Option<&'k str> {
    if delimiter.is_empty() {
        return None;
    }
    let rest = key.strip_prefix(prefix)?;
    let at = rest.find(delimiter)?;
    key.get(..prefix.len() + at + delimiter.len())
}

/// Builds a page from records offered in key order.
pub struct ListingCollector<'a> {
    input: &'a ListObjectsInput,
    listing: ObjectListing,
    /// The last key or common prefix put on the page (or the start bound).
    last: Option<String>,
    count: usize,
}

impl<'a> ListingCollector<'a> {
    pub fn new(input: &'a ListObjectsInput) -> Self {
        Self {
            input,
            listing: ObjectListing::default(),
            last: input.after.clone(),
            count: 0,
        }
    }

    /// Offers the next record; `false` once the page is full and this
    /// record proves there is more (then the page is cut short).
    pub fn offer(&mut self, object: S3Object) -> bool {
        let rolled_up = self
            .input
            .delimiter
            .as_deref()
            .and_then(|delimiter| common_prefix(&object.key, &self.input.prefix, delimiter))
            .map(str::to_owned);
        if let Some(prefix) = &rolled_up {
            // Already on the page, or where a previous page stopped.
            if self.last.as_deref() == Some(prefix.as_str()) {
                return true;
            }
        }
        if self.count >= self.input.max_keys {
            self.listing.next_after = self.last.clone();
            return false;
        }
        self.count += 1;
        match rolled_up {
            Some(prefix) => {
                self.last = Some(prefix.clone());
                self.listing.common_prefixes.push(prefix);
            }
            None => {
                self.last = Some(object.key.clone());
                self.listing.objects.push(object);
            }
        }
        true
    }

    pub fn finish(self) -> ObjectListing {
        self.listing
    }
}

impl Hangar {
    /// Stores an object's record once its file is in place, replacing the
    /// one under the same key; returns the replaced record (whose file the
    /// caller removes). `bucket` comes from [`Hangar::authorize`].
    pub async fn put_object_record(
        &self,
        bucket: &Bucket,
        object: &S3Object,
    ) -> Result<Option<S3Object>, BucketError> {
        validate_key(&object.key)?;
        if object.bucket != bucket.name {
            return Err(BucketError::Internal(format!(
                "object of bucket {} put into {}",
                object.bucket, bucket.name
            )));
        }
        match self.store.put_object(object).await {
            Ok(replaced) => Ok(replaced),
            Err(StoreError::Conflict(_)) => Err(BucketError::NoSuchBucket(object.bucket.clone())),
            Err(other) => Err(other.into()),
        }
    }

    /// `HeadObject` and `GetObject`: the record, `NoSuchKey` when absent.
    pub async fn object(&self, bucket: &Bucket, key: &str) -> Result<S3Object, BucketError> {
        self.store
            .get_object(&bucket.name, key)
            .await?
            .ok_or_else(|| BucketError::NoSuchKey(key.to_owned()))
    }

    /// `DeleteObject`: the removed record, `None` when there was none (S3
    /// answers 204 either way).
    pub async fn delete_object_record(
        &self,
        bucket: &Bucket,
        key: &str,
    ) -> Result<Option<S3Object>, BucketError> {
        Ok(self.store.delete_object(&bucket.name, key).await?)
    }

    /// Every file name the object records of `bucket` refer to: what the
    /// collector of orphaned object files must keep. (Whether the bucket
    /// still exists is [`Hangar::find_bucket`].)
    pub async fn referenced_object_files(
        &self,
        bucket: &str,
    ) -> Result<std::collections::HashSet<String>, BucketError> {
        let mut referenced = std::collections::HashSet::new();
        let mut after: Option<String> = None;
        loop {
            let batch = self
                .store
                .list_objects(bucket, "", after.as_deref(), LIST_BATCH)
                .await?;
            let complete = batch.len() < LIST_BATCH;
            for object in batch {
                for (file_name, _) in object.files() {
                    referenced.insert(file_name.to_owned());
                }
                after = Some(object.key);
            }
            if complete {
                break;
            }
        }
        Ok(referenced)
    }

    /// A bucket by name, for housekeeping (no access check).
    pub async fn find_bucket(&self, name: &str) -> Result<Option<Bucket>, BucketError> {
        Ok(self.store.get_bucket(name).await?)
    }

    /// `PutObjectTagging` / `DeleteObjectTagging` (empty `tags`): replaces
    /// the object's tags, retrying while a put of the same key races it.
    pub async fn set_object_tags(
        &self,
        bucket: &Bucket,
        key: &str,
        tags: std::collections::BTreeMap<String, String>,
    ) -> Result<S3Object, BucketError> {
        for _ in 0..crate::buckets::RETRIES {
            let current = self.object(bucket, key).await?;
            let mut updated = current.clone();
            updated.tags = tags.clone();
            if self.store.update_object_if(&updated, &current).await? {
                return Ok(updated);
            }
        }
        Err(BucketError::Internal(format!(
            "object {key} kept changing while its tags were set"
        )))
    }

    /// `ListObjectsV2`: keys under the prefix in key order, rolled up by the
    /// delimiter, at most `max_keys` entries per page.
    pub async fn list_objects(
        &self,
        bucket: &Bucket,
        input: &ListObjectsInput,
    ) -> Result<ObjectListing, BucketError> {
        let bucket = bucket.name.as_str();
        let mut collector = ListingCollector::new(input);
        if input.max_keys == 0 {
            return Ok(collector.finish());
        }
        let mut after = input.after.clone();
        loop {
            let batch = self
                .store
                .list_objects(bucket, &input.prefix, after.as_deref(), LIST_BATCH)
                .await?;
            let complete = batch.len() < LIST_BATCH;
            for object in batch {
                after = Some(object.key.clone());
                if !collector.offer(object) {
                    return Ok(collector.finish());
                }
            }
            if complete {
                return Ok(collector.finish());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn file_names_never_carry_the_key() {
        for key in [
            "../x",
            "../../etc/passwd",
            "/abs",
            "a/b",
            ".",
            "..",
            "a\0b",
            "é",
        ] {
            let name = object_file_name(key, "00ff1a");
            assert!(is_object_file_name(&name), "{name}");
            assert!(!name.contains('/') && !name.contains(".."), "{name}");
            assert_eq!(name.len(), 64 + 1 + 6);
        }
        assert_ne!(object_file_name("a", "1"), object_file_name("b", "1"));
        assert_ne!(object_file_name("a", "1"), object_file_name("a", "2"));
        assert_eq!(object_file_name("a", "../1"), object_file_name("a", "1"));
        assert!(!is_object_file_name("x.1"));
        assert!(!is_object_file_name(&"a".repeat(64)));
        assert!(!is_object_file_name(&format!("{}.", "a".repeat(64))));
        assert!(!is_object_file_name(&format!("{}.tmp-1", "a".repeat(64))));
    }

    #[test]
    fn key_rules() {
        assert!(validate_key("a").is_ok());
        assert!(validate_key(&"é".repeat(512)).is_ok());
        assert_eq!(validate_key(""), Err(BucketError::KeyTooLong(0)));
        assert_eq!(
            validate_key(&"a".repeat(1025)),
            Err(BucketError::KeyTooLong(1025))
        );
    }

    #[test]
    fn common_prefixes() {
        assert_eq!(common_prefix("a/b/c", "", "/"), Some("a/"));
        assert_eq!(common_prefix("a/b/c", "a/", "/"), Some("a/b/"));
        assert_eq!(common_prefix("a/b", "a/b", "/"), None);
        assert_eq!(common_prefix("a/b", "x", "/"), None);
        assert_eq!(common_prefix("a--b--c", "a", "--"), Some("a--"));
        assert_eq!(common_prefix("a/b", "", ""), None);
    }

    fn object(key: &str) -> S3Object {
        S3Object {
            bucket: "b".into(),
            key: key.into(),
            size: 0,
            etag: String::new(),
            content_type: None,
            metadata: BTreeMap::new(),
            last_modified_ms: 0,
            file_name: String::new(),
            ..S3Object::default()
        }
    }

    /// Pages through `keys` (sorted) as the service does.
    fn page(keys: &[&str], input: &ListObjectsInput) -> (Vec<String>, Vec<String>, Option<String>) {
        let mut collector = ListingCollector::new(input);
        for key in keys {
            if input.after.as_deref().is_some_and(|after| *key <= after) {
                continue;
            }
            if !key.starts_with(input.prefix.as_str()) {
                continue;
            }
            if !collector.offer(object(key)) {
                break;
            }
        }
        let listing = collector.finish();
        (
            listing.objects.into_iter().map(|o| o.key).collect(),
            listing.common_prefixes,
            listing.next_after,
        )
    }

    #[test]
    fn listing_rolls_up_and_pages() {
        let keys = ["a", "d/1", "d/2", "d/x/3", "e", "f/1", "g"];
        let everything = ListObjectsInput {
            prefix: String::new(),
            delimiter: Some("/".into()),
            max_keys: 1000,
            after: None,
        };
        let (objects, prefixes, next) = page(&keys, &everything);
        assert_eq!(objects, ["a", "e", "g"]);
        assert_eq!(prefixes, ["d/", "f/"]);
        assert_eq!(next, None);

        // Two entries per page: keys and common prefixes both count.
        let mut input = ListObjectsInput {
            max_keys: 2,
            ..everything.clone()
        };
        let mut seen = Vec::new();
        loop {
            let (objects, prefixes, next) = page(&keys, &input);
            assert!(objects.len() + prefixes.len() <= 2);
            seen.extend(objects);
            seen.extend(prefixes);
            match next {
                Some(next) => input.after = Some(next),
                None => break,
            }
        }
        seen.sort();
        assert_eq!(seen, ["a", "d/", "e", "f/", "g"]);

        // Under a prefix, the rest of the key is what rolls up.
        let under_d = ListObjectsInput {
            prefix: "d/".into(),
            ..everything.clone()
        };
        let (objects, prefixes, _) = page(&keys, &under_d);
        assert_eq!(objects, ["d/1", "d/2"]);
        assert_eq!(prefixes, ["d/x/"]);

        // Without a delimiter every key is listed; a full last page is not
        // cut short.
        let flat = ListObjectsInput {
            delimiter: None,
            max_keys: 7,
            ..everything
        };
        let (objects, prefixes, next) = page(&keys, &flat);
        assert_eq!(objects.len(), 7);
        assert!(prefixes.is_empty());
        assert_eq!(next, None);
    }
}
