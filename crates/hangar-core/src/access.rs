//! Who may do what to a bucket and its objects.
//!
//! Every S3 operation on a bucket goes through [`Hangar::authorize`] with
//! the IAM action it performs (`s3:GetObject`, …) and, for object
//! operations, the key. The domain methods that act on objects take the
//! [`Bucket`] this returns, so no object operation can skip the check.
//!
//! The decision ([`crate::policy::allows`]), in order:
//!
//! 1. the owner may always get, put and delete the bucket's policy, so no
//!    policy locks them out;
//! 2. a matching `Deny` statement of the bucket policy refuses, the owner
//!    included;
//! 3. the owner may do everything else;
//! 4. bucket-configuration actions (policy, policy status, public access
//!    block, encryption, `DeleteBucket`) stay the owner's, whatever a
//!    policy grants;
//! 5. a matching `Allow` statement grants another account, or an anonymous
//!    caller when its principal is `*`; while the bucket's
//!    `RestrictPublicBuckets` is on and its policy is public, no grant
//!    counts (only the owner's account gets in, as in S3);
//! 6. everything else is refused.

use crate::buckets::BucketError;
use crate::model::Bucket;
use crate::service::{Caller, Hangar};

/// Who makes an S3 request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A request signed by one of the configured accounts.
    Account(Caller),
    /// An unsigned request.
    Anonymous,
}

impl Principal {
    pub fn account_id(&self) -> Option<&str> {
        match self {
            Principal::Account(caller) => Some(&caller.account_id),
            Principal::Anonymous => None,
        }
    }
}

/// One request's claim on a bucket, as policies see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessRequest<'a> {
    pub principal: &'a Principal,
    /// The IAM action, e.g. `s3:GetObject`.
    pub action: &'static str,
    /// The object key for object actions, `None` for bucket actions.
    pub key: Option<&'a str>,
    /// Whether the request arrived over TLS (`aws:SecureTransport`).
    pub secure_transport: bool,
}

/// IAM action names of the operations Hangar serves.
pub mod actions {
    pub const GET_OBJECT: &str = "s3:GetObject";
    pub const PUT_OBJECT: &str = "s3:PutObject";
    pub const DELETE_OBJECT: &str = "s3:DeleteObject";
    pub const GET_OBJECT_TAGGING: &str = "s3:GetObjectTagging";
    pub const PUT_OBJECT_TAGGING: &str = "s3:PutObjectTagging";
    pub const DELETE_OBJECT_TAGGING: &str = "s3:DeleteObjectTagging";
    pub const ABORT_MULTIPART_UPLOAD: &str = "s3:AbortMultipartUpload";
    pub const LIST_MULTIPART_UPLOAD_PARTS: &str = "s3:ListMultipartUploadParts";
    pub const LIST_BUCKET: &str = "s3:ListBucket";
    pub const LIST_BUCKET_MULTIPART_UPLOADS: &str = "s3:ListBucketMultipartUploads";
    pub const GET_BUCKET_LOCATION: &str = "s3:GetBucketLocation";
    pub const GET_BUCKET_POLICY: &str = "s3:GetBucketPolicy";
    pub const PUT_BUCKET_POLICY: &str = "s3:PutBucketPolicy";
    pub const DELETE_BUCKET_POLICY: &str = "s3:DeleteBucketPolicy";
    pub const GET_BUCKET_POLICY_STATUS: &str = "s3:GetBucketPolicyStatus";
    pub const GET_BUCKET_PUBLIC_ACCESS_BLOCK: &str = "s3:GetBucketPublicAccessBlock";
    pub const PUT_BUCKET_PUBLIC_ACCESS_BLOCK: &str = "s3:PutBucketPublicAccessBlock";
    pub const GET_ENCRYPTION_CONFIGURATION: &str = "s3:GetEncryptionConfiguration";
    pub const PUT_ENCRYPTION_CONFIGURATION: &str = "s3:PutEncryptionConfiguration";
    pub const DELETE_BUCKET: &str = "s3:DeleteBucket";
}

impl Hangar {
    /// The bucket, if `request` may act on it: `NoSuchBucket` when there is
    /// none, `AccessDenied` when the principal is not allowed.
    pub async fn authorize(
        &self,
        bucket: &str,
        request: &AccessRequest<'_>,
    ) -> Result<Bucket, BucketError> {
        let Some(found) = self.store.get_bucket(bucket).await? else {
            return Err(BucketError::NoSuchBucket(bucket.to_owned()));
        };
        if crate::policy::allows(&found, request)? {
            Ok(found)
        } else {
            Err(BucketError::AccessDenied(bucket.to_owned()))
        }
    }
}
