//! S3 buckets: the name rules, where a bucket lives, who owns it, and its
//! Block Public Access configuration. Every operation takes the verified
//! caller; anonymous callers never get this far (the wire crate refuses
//! them with `AccessDenied`).
//!
//! Bucket errors are their own enum ([`BucketError`]) rather than variants of
//! [`crate::Error`]: S3's vocabulary barely overlaps EC2's, and the EC2 and
//! EBS wire crates match `Error` exhaustively, so they stay untouched.

use thiserror::Error;

use crate::model::{Bucket, PublicAccessBlock};
use crate::repo::StoreError;
use crate::service::{Caller, Hangar};

/// The region S3 treats as "no location constraint".
pub const DEFAULT_REGION: &str = "us-east-1";

/// How many times a read-modify-write is retried after losing a race.
pub(crate) const RETRIES: usize = 8;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BucketError {
    /// The name breaks a naming rule; the detail says which.
    #[error("The specified bucket is not valid: {0}")]
    InvalidBucketName(String),
    /// Another account owns a bucket of that name.
    #[error(
        "The requested bucket name is not available. The bucket namespace is shared by all \
         users of the system. Please select a different name and try again."
    )]
    BucketAlreadyExists(String),
    /// The caller already owns a bucket of that name.
    #[error("Your previous request to create the named bucket succeeded and you already own it.")]
    BucketAlreadyOwnedByYou(String),
    #[error("The specified bucket does not exist")]
    NoSuchBucket(String),
    /// The bucket exists and belongs to another account.
    #[error("Access Denied")]
    AccessDenied(String),
    /// The constraint names no region this deployment serves (or names
    /// `us-east-1`, which S3 spells as no constraint at all).
    #[error("The specified location-constraint is not valid")]
    InvalidLocationConstraint(String),
    /// The constraint (or its absence) does not match the region the
    /// request was signed for.
    #[error(
        "The {} location constraint is incompatible for the region specific endpoint this \
         request was sent to.",
        .constraint.as_deref().unwrap_or("unspecified")
    )]
    IllegalLocationConstraint {
        constraint: Option<String>,
        region: String,
    },
    #[error("The public access block configuration was not found")]
    NoSuchPublicAccessBlockConfiguration(String),
    #[error("The bucket you tried to delete is not empty")]
    BucketNotEmpty(String),
    #[error("The specified key does not exist.")]
    NoSuchKey(String),
    /// A key of this many bytes: empty, or longer than 1,024.
    #[error("Your key is too long")]
    KeyTooLong(usize),
    /// A fault inside Hangar; the wire renders `InternalError` and logs this.
    #[error("internal error: {0}")]
    Internal(String),
    /// Object tags break a rule; the message says which.
    #[error("{0}")]
    InvalidTag(String),
    /// A bucket policy Hangar refuses; the message says why, in S3's words.
    #[error("{0}")]
    MalformedPolicy(String),
    #[error("The bucket policy does not exist")]
    NoSuchBucketPolicy(String),
    /// A public policy put while the bucket's `BlockPublicPolicy` is on
    /// (rendered as `AccessDenied`, 403).
    #[error(
        "Access Denied: s3:PutBucketPolicy on resource \"arn:aws:s3:::{0}\" is refused because \
         public policies are blocked by the BlockPublicPolicy block public access setting."
    )]
    PublicPolicyBlocked(String),
    /// No multipart upload of this ID for the bucket and key (never
    /// created, completed, or aborted).
    #[error(
        "The specified multipart upload does not exist. The upload ID may be invalid, or the \
         upload may have been aborted or completed."
    )]
    NoSuchUpload(String),
    /// A listed part was not uploaded, or its ETag or checksum differs.
    #[error(
        "One or more of the specified parts could not be found. The part may not have been \
         uploaded, or the specified entity tag may not match the part's entity tag: {0}"
    )]
    InvalidPart(String),
    #[error("The list of parts was not in ascending order. Parts must be ordered by part number.")]
    InvalidPartOrder,
    /// A part other than the last is smaller than the minimum (5 MiB).
    #[error("Your proposed upload is smaller than the minimum allowed object size.")]
    EntityTooSmall { part_number: i32, size: i64 },
    /// A parameter is out of its range; the message says which.
    #[error("{0}")]
    InvalidArgument(String),
    /// A request body (the part list of `CompleteMultipartUpload`) is empty
    /// or not what the operation takes.
    #[error(
        "The XML you provided was not well-formed or did not validate against our published schema"
    )]
    MalformedXml,
    /// A request S3 would not accept in this form; the message says why.
    #[error("{0}")]
    InvalidRequest(String),
}

impl From<StoreError> for BucketError {
    fn from(error: StoreError) -> Self {
        BucketError::Internal(error.to_string())
    }
}

/// Checks S3's rules for general purpose bucket names. The error says which
/// rule the name breaks.
pub fn validate_bucket_name(name: &str) -> Result<(), BucketError> {
    let refuse = |reason: &str| Err(BucketError::InvalidBucketName(reason.to_owned()));
    if name.len() < 3 || name.len() > 63 {
        return refuse("bucket names must be between 3 and 63 characters long");
    }
    if !name.bytes().all(|byte| {
        byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'.' || byte == b'-'
    }) {
        return refuse(
            "bucket names can consist only of lowercase letters, numbers, dots and hyphens",
        );
    }
    let letter_or_digit = |byte: Option<&u8>| {
        byte.is_some_and(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit())
    };
    if !letter_or_digit(name.as_bytes().first()) || !letter_or_digit(name.as_bytes().last()) {
        return refuse("bucket names must begin and end with a letter or number");
    }
    if name.contains("..") {
        return refuse("bucket names must not contain two adjacent periods");
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() == 4
        && labels
            .iter()
            .all(|label| !label.is_empty() && label.bytes().all(|byte| byte.is_ascii_digit()))
    {
        return refuse("bucket names must not be formatted as an IP address");
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(prefix) {
            return refuse(&format!("bucket names must not start with '{prefix}'"));
        }
    }
    for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if name.ends_with(suffix) {
            return refuse(&format!("bucket names must not end with '{suffix}'"));
        }
    }
    Ok(())
}

/// The region a new bucket lives in: the one the request was signed for,
/// which the location constraint must name (no constraint means
/// `us-east-1`, and spelling `us-east-1` out is refused, as S3 does).
pub fn resolve_location(
    signing_region: &str,
    constraint: Option<&str>,
    served_regions: &[String],
) -> Result<String, BucketError> {
    match constraint.filter(|constraint| !constraint.is_empty()) {
        None if signing_region == DEFAULT_REGION => Ok(DEFAULT_REGION.to_owned()),
        None => Err(BucketError::IllegalLocationConstraint {
            constraint: None,
            region: signing_region.to_owned(),
        }),
        Some(constraint) => {
            if constraint == DEFAULT_REGION
                || !served_regions.iter().any(|region| region == constraint)
            {
                return Err(BucketError::InvalidLocationConstraint(
                    constraint.to_owned(),
                ));
            }
            if constraint != signing_region {
                return Err(BucketError::IllegalLocationConstraint {
                    constraint: Some(constraint.to_owned()),
                    region: signing_region.to_owned(),
                });
            }
            Ok(constraint.to_owned())
        }
    }
}

/// What creating `name` in `region` means when `existing` already holds the
/// name: another account's bucket is taken; the caller's own is
/// `BucketAlreadyOwnedByYou`, except that re-creating a `us-east-1` bucket in
/// `us-east-1` succeeds and changes nothing (S3's legacy behaviour there).
pub fn on_existing(caller: &Caller, region: &str, existing: &Bucket) -> Result<(), BucketError> {
    if existing.owner_id != caller.account_id {
        return Err(BucketError::BucketAlreadyExists(existing.name.clone()));
    }
    if region == DEFAULT_REGION && existing.region == DEFAULT_REGION {
        return Ok(());
    }
    Err(BucketError::BucketAlreadyOwnedByYou(existing.name.clone()))
}

/// The bucket if the caller owns it: `NoSuchBucket` when there is none,
/// `AccessDenied` when another account owns it.
pub fn owned_by(
    caller: &Caller,
    name: &str,
    bucket: Option<Bucket>,
) -> Result<Bucket, BucketError> {
    match bucket {
        None => Err(BucketError::NoSuchBucket(name.to_owned())),
        Some(bucket) if bucket.owner_id != caller.account_id => {
            Err(BucketError::AccessDenied(name.to_owned()))
        }
        Some(bucket) => Ok(bucket),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateBucketInput {
    pub name: String,
    /// `LocationConstraint`; `None` (or empty) means `us-east-1`.
    pub location_constraint: Option<String>,
}

impl Hangar {
    /// `CreateBucket`. New buckets block all public access.
    pub async fn create_bucket(
        &self,
        caller: &Caller,
        input: CreateBucketInput,
    ) -> Result<Bucket, BucketError> {
        validate_bucket_name(&input.name)?;
        let region = resolve_location(
            &caller.region,
            input.location_constraint.as_deref(),
            &self.settings.regions,
        )?;
        let bucket = Bucket {
            name: input.name,
            region,
            owner_id: caller.account_id.clone(),
            created_ms: self.clock.now_ms(),
            public_access_block: Some(PublicAccessBlock::ALL_BLOCKED),
            policy: None,
            encryption: Default::default(),
            revision: 0,
        };
        for _ in 0..RETRIES {
            match self.store.insert_bucket(&bucket).await {
                Ok(()) => return Ok(bucket),
                Err(StoreError::DuplicateId(_)) => {}
                Err(other) => return Err(other.into()),
            }
            // Taken: by whom decides the answer. A bucket deleted in
            // between frees the name, so try again.
            if let Some(existing) = self.store.get_bucket(&bucket.name).await? {
                on_existing(caller, &bucket.region, &existing)?;
                return Ok(existing);
            }
        }
        Err(BucketError::Internal(format!(
            "bucket {} kept changing while being created",
            bucket.name
        )))
    }

    /// `HeadBucket` and every other read of one bucket.
    pub async fn owned_bucket(&self, caller: &Caller, name: &str) -> Result<Bucket, BucketError> {
        owned_by(caller, name, self.store.get_bucket(name).await?)
    }

    /// `ListBuckets`: the caller's buckets in every region, by name.
    pub async fn list_buckets(&self, caller: &Caller) -> Result<Vec<Bucket>, BucketError> {
        Ok(self.store.list_buckets(&caller.account_id).await?)
    }

    /// `DeleteBucket`: only an empty bucket goes (the store checks
    /// emptiness and deletes in one statement); else `BucketNotEmpty`.
    pub async fn delete_bucket(&self, caller: &Caller, name: &str) -> Result<(), BucketError> {
        self.owned_bucket(caller, name).await?;
        if !self.store.delete_bucket(name).await? {
            // Not deleted: gone meanwhile, or holding objects.
            return match self.store.get_bucket(name).await? {
                Some(_) => Err(BucketError::BucketNotEmpty(name.to_owned())),
                None => Err(BucketError::NoSuchBucket(name.to_owned())),
            };
        }
        Ok(())
    }

    /// `GetPublicAccessBlock`.
    pub async fn public_access_block(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<PublicAccessBlock, BucketError> {
        self.owned_bucket(caller, name)
            .await?
            .public_access_block
            .ok_or_else(|| BucketError::NoSuchPublicAccessBlockConfiguration(name.to_owned()))
    }

    /// `PutBucketEncryption` (`Some`) and `DeleteBucketEncryption` (`None`,
    /// which returns the bucket to the default, SSE-S3, as S3 does).
    pub async fn set_bucket_encryption(
        &self,
        bucket: &Bucket,
        encryption: Option<crate::model::BucketEncryption>,
    ) -> Result<(), BucketError> {
        for _ in 0..RETRIES {
            let Some(mut current) = self.store.get_bucket(&bucket.name).await? else {
                return Err(BucketError::NoSuchBucket(bucket.name.clone()));
            };
            current.encryption = encryption.clone().unwrap_or_default();
            match self.store.update_bucket(&current).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict(_)) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(BucketError::Internal(format!(
            "bucket {} kept changing while its encryption was set",
            bucket.name
        )))
    }

    /// `PutPublicAccessBlock` (`Some`) and `DeletePublicAccessBlock` (`None`).
    pub async fn set_public_access_block(
        &self,
        caller: &Caller,
        name: &str,
        configuration: Option<PublicAccessBlock>,
    ) -> Result<(), BucketError> {
        for _ in 0..RETRIES {
            let mut bucket = self.owned_bucket(caller, name).await?;
            bucket.public_access_block = configuration;
            match self.store.update_bucket(&bucket).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict(_)) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(BucketError::Internal(format!(
            "bucket {name} kept changing while its public access block was set"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_name_rules() {
        let long = "a".repeat(63);
        let too_long = "a".repeat(64);
        let table: &[(&str, bool)] = &[
            ("abc", true),
            ("my-bucket.example", true),
            ("0bucket9", true),
            (&long, true),
            ("a.b-c.d1", true),
            ("1.2.3", true),
            ("1.2.3.4.5", true),
            ("ab", false),
            (&too_long, false),
            ("", false),
            ("MyBucket", false),
            ("my_bucket", false),
            ("my bucket", false),
            ("-bucket", false),
            ("bucket-", false),
            (".bucket", false),
            ("bucket.", false),
            ("my..bucket", false),
            ("192.168.5.4", false),
            ("xn--bucket", false),
            ("bucket-s3alias", false),
            ("bucket--ol-s3", false),
            ("sthree-bucket", false),
            ("bucket.mrap", false),
            ("bücket", false),
        ];
        for (name, valid) in table {
            assert_eq!(
                validate_bucket_name(name).is_ok(),
                *valid,
                "{name:?}: {:?}",
                validate_bucket_name(name)
            );
        }
    }

    fn regions() -> Vec<String> {
        ["us-east-1", "us-west-2", "eu-west-1"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn location_rules() {
        let served = regions();
        let ok = |signing: &str, constraint: Option<&str>| {
            resolve_location(signing, constraint, &served)
        };
        assert_eq!(ok("us-east-1", None), Ok("us-east-1".to_owned()));
        assert_eq!(ok("us-east-1", Some("")), Ok("us-east-1".to_owned()));
        assert_eq!(
            ok("eu-west-1", Some("eu-west-1")),
            Ok("eu-west-1".to_owned())
        );
        assert_eq!(
            ok("us-west-2", None),
            Err(BucketError::IllegalLocationConstraint {
                constraint: None,
                region: "us-west-2".into()
            })
        );
        assert_eq!(
            ok("us-east-1", Some("eu-west-1")),
            Err(BucketError::IllegalLocationConstraint {
                constraint: Some("eu-west-1".into()),
                region: "us-east-1".into()
            })
        );
        assert_eq!(
            ok("us-east-1", Some("us-east-1")),
            Err(BucketError::InvalidLocationConstraint("us-east-1".into()))
        );
        assert_eq!(
            ok("us-west-2", Some("ap-south-1")),
            Err(BucketError::InvalidLocationConstraint("ap-south-1".into()))
        );
    }

    fn bucket(owner: &str, region: &str) -> Bucket {
        Bucket {
            name: "taken".into(),
            region: region.into(),
            owner_id: owner.into(),
            created_ms: 1,
            public_access_block: Some(PublicAccessBlock::ALL_BLOCKED),
            policy: None,
            encryption: Default::default(),
            revision: 0,
        }
    }

    fn caller(account: &str, region: &str) -> Caller {
        Caller {
            account_id: account.into(),
            region: region.into(),
        }
    }

    #[test]
    fn creating_a_taken_name() {
        let alice = caller("111111111111", "us-east-1");
        let bob = caller("222222222222", "us-east-1");
        let in_virginia = bucket("111111111111", "us-east-1");
        let in_oregon = bucket("111111111111", "us-west-2");
        assert_eq!(on_existing(&alice, "us-east-1", &in_virginia), Ok(()));
        assert_eq!(
            on_existing(&alice, "us-west-2", &in_virginia),
            Err(BucketError::BucketAlreadyOwnedByYou("taken".into()))
        );
        assert_eq!(
            on_existing(&alice, "us-west-2", &in_oregon),
            Err(BucketError::BucketAlreadyOwnedByYou("taken".into()))
        );
        assert_eq!(
            on_existing(&bob, "us-east-1", &in_virginia),
            Err(BucketError::BucketAlreadyExists("taken".into()))
        );
    }

    #[test]
    fn ownership() {
        let alice = caller("111111111111", "us-east-1");
        let bob = caller("222222222222", "eu-west-1");
        let owned = bucket("111111111111", "us-west-2");
        assert_eq!(
            owned_by(&alice, "taken", Some(owned.clone())),
            Ok(owned.clone())
        );
        assert_eq!(
            owned_by(&bob, "taken", Some(owned)),
            Err(BucketError::AccessDenied("taken".into()))
        );
        assert_eq!(
            owned_by(&alice, "taken", None),
            Err(BucketError::NoSuchBucket("taken".into()))
        );
    }

    #[test]
    fn new_buckets_block_everything() {
        let all = PublicAccessBlock::ALL_BLOCKED;
        assert!(
            all.block_public_acls
                && all.ignore_public_acls
                && all.block_public_policy
                && all.restrict_public_buckets
        );
    }
}
