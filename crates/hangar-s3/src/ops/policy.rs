//! Bucket policy operations. The rules (validation, `IsPublic`, who may
//! do what) live in `hangar_core::policy`; these convert and call it.

use s3s::access::{S3Access, S3AccessContext};
use s3s::dto::{
    DeleteBucketPolicyInput, DeleteBucketPolicyOutput, GetBucketPolicyInput, GetBucketPolicyOutput,
    GetBucketPolicyStatusInput, GetBucketPolicyStatusOutput, PolicyStatus, PutBucketPolicyInput,
    PutBucketPolicyOutput,
};

use super::*;

/// `s3s`'s access hook, which runs before every operation when SigV4 is
/// checked: it lets every request through, unsigned ones included, because
/// each operation decides itself ([`HangarS3::access`] on a bucket, and
/// [`HangarS3::caller`] refusing anonymous callers elsewhere). Without it,
/// `s3s` refuses every unsigned request, so a public bucket could not be
/// read.
pub struct OperationsDecide;

#[async_trait::async_trait]
impl S3Access for OperationsDecide {
    async fn check(&self, _cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        Ok(())
    }
}

impl HangarS3 {
    pub(super) async fn op_put_bucket_policy(
        &self,
        request: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        let bucket = self
            .access(
                &request,
                &request.input.bucket,
                actions::PUT_BUCKET_POLICY,
                None,
                request.input.expected_bucket_owner.as_ref(),
            )
            .await?;
        // `ConfirmRemoveSelfBucketAccess` is accepted and ignored: the owner
        // can always manage the policy, so there is nothing to confirm.
        self.hangar
            .put_bucket_policy(&bucket, &request.input.policy)
            .await
            .map_err(from_bucket_error)?;
        Ok(S3Response::new(PutBucketPolicyOutput {}))
    }

    pub(super) async fn op_get_bucket_policy(
        &self,
        request: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        let bucket = self
            .access(
                &request,
                &request.input.bucket,
                actions::GET_BUCKET_POLICY,
                None,
                request.input.expected_bucket_owner.as_ref(),
            )
            .await?;
        let policy = Hangar::bucket_policy(&bucket).map_err(from_bucket_error)?;
        Ok(S3Response::new(GetBucketPolicyOutput {
            policy: Some(policy.to_owned()),
        }))
    }

    pub(super) async fn op_delete_bucket_policy(
        &self,
        request: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        let bucket = self
            .access(
                &request,
                &request.input.bucket,
                actions::DELETE_BUCKET_POLICY,
                None,
                request.input.expected_bucket_owner.as_ref(),
            )
            .await?;
        self.hangar
            .delete_bucket_policy(&bucket)
            .await
            .map_err(from_bucket_error)?;
        Ok(S3Response::new(DeleteBucketPolicyOutput {}))
    }

    pub(super) async fn op_get_bucket_policy_status(
        &self,
        request: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        let bucket = self
            .access(
                &request,
                &request.input.bucket,
                actions::GET_BUCKET_POLICY_STATUS,
                None,
                request.input.expected_bucket_owner.as_ref(),
            )
            .await?;
        let is_public = Hangar::bucket_policy_is_public(&bucket).map_err(from_bucket_error)?;
        Ok(S3Response::new(GetBucketPolicyStatusOutput {
            policy_status: Some(PolicyStatus {
                is_public: Some(is_public),
            }),
        }))
    }
}
