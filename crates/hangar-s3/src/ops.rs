//! The operations: establish the caller, convert the typed `s3s` input into
//! the domain's, call `hangar-core`, convert the result back.

use std::collections::HashMap;
use std::sync::Arc;

use hangar_core::buckets::{BucketError, CreateBucketInput as DomainCreateBucket};
use hangar_core::model::{Bucket, PublicAccessBlock};
use hangar_core::{Caller, Hangar};
use s3s::dto::{
    self, BucketLocationConstraint, CreateBucketInput, CreateBucketOutput, DeleteBucketInput,
    DeleteBucketOutput, DeletePublicAccessBlockInput, DeletePublicAccessBlockOutput,
    GetBucketLocationInput, GetBucketLocationOutput, GetPublicAccessBlockInput,
    GetPublicAccessBlockOutput, HeadBucketInput, HeadBucketOutput, ListBucketsInput,
    ListBucketsOutput, Owner, PublicAccessBlockConfiguration, PutPublicAccessBlockInput,
    PutPublicAccessBlockOutput, Timestamp,
};
use s3s::validation::NameValidation;
use s3s::{S3, S3Request, S3Response, S3Result};

use crate::DevCaller;
use crate::error::{anonymous, from_bucket_error, unknown_region};

/// Lets every bucket name through `s3s`'s path parser: the domain's rules
/// (`hangar_core::buckets::validate_bucket_name`) are the only ones.
pub struct AnyBucketName;

impl NameValidation for AnyBucketName {
    fn validate_bucket_name(&self, _name: &str) -> bool {
        true
    }
}

pub struct HangarS3 {
    hangar: Arc<Hangar>,
    /// Access key ID → account ID.
    accounts: HashMap<String, String>,
    regions: Vec<String>,
    dev_mode: bool,
}

impl HangarS3 {
    pub fn new(
        hangar: Arc<Hangar>,
        accounts: &[crate::S3Account],
        regions: Vec<String>,
        dev_mode: bool,
    ) -> Self {
        Self {
            hangar,
            accounts: accounts
                .iter()
                .map(|account| (account.access_key_id.clone(), account.account_id.clone()))
                .collect(),
            regions,
            dev_mode,
        }
    }

    /// Who is asking. Strict mode: the account of the access key `s3s`
    /// verified, in the region of its credential scope. Dev mode: what
    /// [`crate::Gateway::handle`] read from the signature. Anonymous
    /// requests are refused: nothing in this slice is public.
    fn caller<T>(&self, request: &S3Request<T>) -> S3Result<Caller> {
        if self.dev_mode {
            return match request.extensions.get::<DevCaller>() {
                Some(DevCaller(caller)) => Ok(caller.clone()),
                None => Err(anonymous()),
            };
        }
        let Some(credentials) = &request.credentials else {
            return Err(anonymous());
        };
        let Some(account_id) = self.accounts.get(&credentials.access_key) else {
            return Err(s3s::s3_error!(InvalidAccessKeyId));
        };
        let region = request
            .region
            .as_ref()
            .map(|region| region.as_str().to_owned())
            .unwrap_or_default();
        if !self.regions.iter().any(|served| served == &region) {
            return Err(unknown_region(&region));
        }
        Ok(Caller {
            account_id: account_id.clone(),
            region,
        })
    }
}

fn timestamp(epoch_ms: i64) -> Timestamp {
    let nanos = i128::from(epoch_ms) * 1_000_000;
    let moment = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(moment)
}

fn to_wire(configuration: PublicAccessBlock) -> PublicAccessBlockConfiguration {
    PublicAccessBlockConfiguration {
        block_public_acls: Some(configuration.block_public_acls),
        ignore_public_acls: Some(configuration.ignore_public_acls),
        block_public_policy: Some(configuration.block_public_policy),
        restrict_public_buckets: Some(configuration.restrict_public_buckets),
    }
}

/// A switch left out of the configuration is off, as in S3.
fn from_wire(configuration: &PublicAccessBlockConfiguration) -> PublicAccessBlock {
    PublicAccessBlock {
        block_public_acls: configuration.block_public_acls.unwrap_or(false),
        ignore_public_acls: configuration.ignore_public_acls.unwrap_or(false),
        block_public_policy: configuration.block_public_policy.unwrap_or(false),
        restrict_public_buckets: configuration.restrict_public_buckets.unwrap_or(false),
    }
}

fn listed(bucket: &Bucket) -> dto::Bucket {
    dto::Bucket {
        name: Some(bucket.name.clone()),
        creation_date: Some(timestamp(bucket.created_ms)),
        bucket_region: Some(bucket.region.clone()),
    }
}

/// `ExpectedBucketOwner`: a bucket of another owner reads as `AccessDenied`.
fn check_expected_owner(expected: Option<&String>, bucket: &Bucket) -> S3Result<()> {
    match expected {
        Some(expected) if expected != &bucket.owner_id => Err(from_bucket_error(
            BucketError::AccessDenied(bucket.name.clone()),
        )),
        _ => Ok(()),
    }
}

#[async_trait::async_trait]
impl S3 for HangarS3 {
    async fn create_bucket(
        &self,
        request: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let caller = self.caller(&request)?;
        let input = request.input;
        let location_constraint = input
            .create_bucket_configuration
            .and_then(|configuration| configuration.location_constraint)
            .map(|constraint| constraint.as_str().to_owned());
        let bucket = self
            .hangar
            .create_bucket(
                &caller,
                DomainCreateBucket {
                    name: input.bucket,
                    location_constraint,
                },
            )
            .await
            .map_err(from_bucket_error)?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{}", bucket.name)),
        }))
    }

    async fn head_bucket(
        &self,
        request: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let caller = self.caller(&request)?;
        let bucket = self
            .hangar
            .owned_bucket(&caller, &request.input.bucket)
            .await
            .map_err(from_bucket_error)?;
        check_expected_owner(request.input.expected_bucket_owner.as_ref(), &bucket)?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(bucket.region),
            ..HeadBucketOutput::default()
        }))
    }

    async fn list_buckets(
        &self,
        request: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let caller = self.caller(&request)?;
        let input = request.input;
        let mut buckets: Vec<Bucket> = self
            .hangar
            .list_buckets(&caller)
            .await
            .map_err(from_bucket_error)?
            .into_iter()
            .filter(|bucket| {
                input
                    .prefix
                    .as_ref()
                    .is_none_or(|prefix| bucket.name.starts_with(prefix.as_str()))
                    && input
                        .bucket_region
                        .as_ref()
                        .is_none_or(|region| &bucket.region == region)
                    && input
                        .continuation_token
                        .as_ref()
                        .is_none_or(|after| bucket.name.as_str() > after.as_str())
            })
            .collect();
        // Pages hold at most `MaxBuckets` (S3's range is 1 to 10,000); the
        // token is the last name of the page.
        let continuation_token = match input.max_buckets {
            Some(max) if max >= 1 && buckets.len() > max as usize => {
                buckets.truncate(max as usize);
                buckets.last().map(|bucket| bucket.name.clone())
            }
            _ => None,
        };
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets.iter().map(listed).collect()),
            continuation_token,
            owner: Some(Owner {
                display_name: None,
                id: Some(caller.account_id),
            }),
            prefix: input.prefix,
        }))
    }

    async fn delete_bucket(
        &self,
        request: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let caller = self.caller(&request)?;
        let bucket = self
            .hangar
            .owned_bucket(&caller, &request.input.bucket)
            .await
            .map_err(from_bucket_error)?;
        check_expected_owner(request.input.expected_bucket_owner.as_ref(), &bucket)?;
        self.hangar
            .delete_bucket(&caller, &bucket.name)
            .await
            .map_err(from_bucket_error)?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    async fn get_bucket_location(
        &self,
        request: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let caller = self.caller(&request)?;
        let bucket = self
            .hangar
            .owned_bucket(&caller, &request.input.bucket)
            .await
            .map_err(from_bucket_error)?;
        check_expected_owner(request.input.expected_bucket_owner.as_ref(), &bucket)?;
        // S3 reports `us-east-1` as no constraint at all.
        let location_constraint = (bucket.region != hangar_core::buckets::DEFAULT_REGION)
            .then(|| BucketLocationConstraint::from(bucket.region));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint,
        }))
    }

    async fn get_public_access_block(
        &self,
        request: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        let caller = self.caller(&request)?;
        let bucket = self
            .hangar
            .owned_bucket(&caller, &request.input.bucket)
            .await
            .map_err(from_bucket_error)?;
        check_expected_owner(request.input.expected_bucket_owner.as_ref(), &bucket)?;
        let configuration = self
            .hangar
            .public_access_block(&caller, &bucket.name)
            .await
            .map_err(from_bucket_error)?;
        Ok(S3Response::new(GetPublicAccessBlockOutput {
            public_access_block_configuration: Some(to_wire(configuration)),
        }))
    }

    async fn put_public_access_block(
        &self,
        request: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        let caller = self.caller(&request)?;
        let input = request.input;
        let bucket = self
            .hangar
            .owned_bucket(&caller, &input.bucket)
            .await
            .map_err(from_bucket_error)?;
        check_expected_owner(input.expected_bucket_owner.as_ref(), &bucket)?;
        let configuration = from_wire(&input.public_access_block_configuration);
        self.hangar
            .set_public_access_block(&caller, &bucket.name, Some(configuration))
            .await
            .map_err(from_bucket_error)?;
        Ok(S3Response::new(PutPublicAccessBlockOutput {}))
    }

    async fn delete_public_access_block(
        &self,
        request: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        let caller = self.caller(&request)?;
        let bucket = self
            .hangar
            .owned_bucket(&caller, &request.input.bucket)
            .await
            .map_err(from_bucket_error)?;
        check_expected_owner(request.input.expected_bucket_owner.as_ref(), &bucket)?;
        self.hangar
            .set_public_access_block(&caller, &bucket.name, None)
            .await
            .map_err(from_bucket_error)?;
        Ok(S3Response::new(DeletePublicAccessBlockOutput {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_switches_are_off() {
        let wire = PublicAccessBlockConfiguration {
            block_public_acls: Some(true),
            ignore_public_acls: None,
            block_public_policy: Some(false),
            restrict_public_buckets: Some(true),
        };
        let domain = from_wire(&wire);
        assert_eq!(
            domain,
            PublicAccessBlock {
                block_public_acls: true,
                ignore_public_acls: false,
                block_public_policy: false,
                restrict_public_buckets: true,
            }
        );
        assert_eq!(
            to_wire(PublicAccessBlock::ALL_BLOCKED),
            PublicAccessBlockConfiguration {
                block_public_acls: Some(true),
                ignore_public_acls: Some(true),
                block_public_policy: Some(true),
                restrict_public_buckets: Some(true),
            }
        );
    }

    #[test]
    fn timestamps_keep_milliseconds() {
        let mut text = Vec::new();
        timestamp(1_700_000_000_123)
            .format(s3s::dto::TimestampFormat::DateTime, &mut text)
            .expect("format");
        assert_eq!(
            String::from_utf8(text).expect("utf8"),
            "2023-11-14T22:13:20.123Z"
        );
    }
}
