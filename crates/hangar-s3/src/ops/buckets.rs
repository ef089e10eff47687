//! Bucket operations.

use super::*;

impl HangarS3 {
    pub(super) async fn op_create_bucket(
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

    pub(super) async fn op_head_bucket(
        &self,
        request: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let bucket = self
            .access(
                &request,
                &request.input.bucket,
                actions::LIST_BUCKET,
                None,
                request.input.expected_bucket_owner.as_ref(),
            )
            .await?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(bucket.region),
            ..HeadBucketOutput::default()
        }))
    }

    pub(super) async fn op_list_buckets(
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

    pub(super) async fn op_delete_bucket(
        &self,
        request: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let caller = self.caller(&request)?;
        let bucket = self
            .access(
                &request,
                &request.input.bucket,
                actions::DELETE_BUCKET,
                None,
                request.input.expected_bucket_owner.as_ref(),
            )
            .await?;
        self.hangar
            .delete_bucket(&caller, &bucket.name)
            .await
            .map_err(from_bucket_error)?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    pub(super) async fn op_get_bucket_location(
        &self,
        request: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let bucket = self
            .access(
                &request,
                &request.input.bucket,
                actions::GET_BUCKET_LOCATION,
                None,
                request.input.expected_bucket_owner.as_ref(),
            )
            .await?;
        // S3 reports `us-east-1` as no constraint at all.
        let location_constraint = (bucket.region != hangar_core::buckets::DEFAULT_REGION)
            .then(|| BucketLocationConstraint::from(bucket.region));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint,
        }))
    }

    pub(super) async fn op_get_public_access_block(
        &self,
        request: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        let caller = self.caller(&request)?;
        let bucket = self
            .access(
                &request,
                &request.input.bucket,
                actions::GET_BUCKET_PUBLIC_ACCESS_BLOCK,
                None,
                request.input.expected_bucket_owner.as_ref(),
            )
            .await?;
        let configuration = self
            .hangar
            .public_access_block(&caller, &bucket.name)
            .await
            .map_err(from_bucket_error)?;
        Ok(S3Response::new(GetPublicAccessBlockOutput {
            public_access_block_configuration: Some(to_wire(configuration)),
        }))
    }

    pub(super) async fn op_put_public_access_block(
        &self,
        request: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        let caller = self.caller(&request)?;
        let bucket = self
            .access(
                &request,
                &request.input.bucket,
                actions::PUT_BUCKET_PUBLIC_ACCESS_BLOCK,
                None,
                request.input.expected_bucket_owner.as_ref(),
            )
            .await?;
        let input = request.input;
        let configuration = from_wire(&input.public_access_block_configuration);
        self.hangar
            .set_public_access_block(&caller, &bucket.name, Some(configuration))
            .await
            .map_err(from_bucket_error)?;
        Ok(S3Response::new(PutPublicAccessBlockOutput {}))
    }

    pub(super) async fn op_delete_public_access_block(
        &self,
        request: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        let caller = self.caller(&request)?;
        let bucket = self
            .access(
                &request,
                &request.input.bucket,
                actions::PUT_BUCKET_PUBLIC_ACCESS_BLOCK,
                None,
                request.input.expected_bucket_owner.as_ref(),
            )
            .await?;
        self.hangar
            .set_public_access_block(&caller, &bucket.name, None)
            .await
            .map_err(from_bucket_error)?;
        Ok(S3Response::new(DeletePublicAccessBlockOutput {}))
    }
}

impl HangarS3 {
    pub(super) async fn op_put_bucket_encryption(
        &self,
        request: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        let input = &request.input;
        let bucket = self
            .access(
                &request,
                &input.bucket,
                actions::PUT_ENCRYPTION_CONFIGURATION,
                None,
                input.expected_bucket_owner.as_ref(),
            )
            .await?;
        let rules = &input.server_side_encryption_configuration.rules;
        let [rule] = rules.as_slice() else {
            return Err(s3s::S3Error::with_message(
                s3s::S3ErrorCode::MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema",
            ));
        };
        let algorithm = rule
            .apply_server_side_encryption_by_default
            .as_ref()
            .map(|default| default.sse_algorithm.as_str().to_owned())
            .unwrap_or_else(|| "AES256".to_owned());
        if algorithm != "AES256" {
            // Hangar has no KMS: every object is encrypted with keys derived
            // from its own master key (SSE-S3).
            return Err(s3s::S3Error::with_message(
                s3s::S3ErrorCode::InvalidArgument,
                format!(
                    "The encryption algorithm {algorithm} is not supported by this endpoint; use AES256"
                ),
            ));
        }
        let encryption = hangar_core::model::BucketEncryption {
            sse_algorithm: algorithm,
            bucket_key_enabled: rule.bucket_key_enabled.unwrap_or(false),
        };
        self.hangar
            .set_bucket_encryption(&bucket, Some(encryption))
            .await
            .map_err(from_bucket_error)?;
        Ok(S3Response::new(PutBucketEncryptionOutput::default()))
    }

    pub(super) async fn op_get_bucket_encryption(
        &self,
        request: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        let input = &request.input;
        let bucket = self
            .access(
                &request,
                &input.bucket,
                actions::GET_ENCRYPTION_CONFIGURATION,
                None,
                input.expected_bucket_owner.as_ref(),
            )
            .await?;
        let rule = dto::ServerSideEncryptionRule {
            apply_server_side_encryption_by_default: Some(dto::ServerSideEncryptionByDefault {
                kms_master_key_id: None,
                sse_algorithm: dto::ServerSideEncryption::from(bucket.encryption.sse_algorithm),
            }),
            bucket_key_enabled: Some(bucket.encryption.bucket_key_enabled),
        };
        Ok(S3Response::new(GetBucketEncryptionOutput {
            server_side_encryption_configuration: Some(dto::ServerSideEncryptionConfiguration {
                rules: vec![rule],
            }),
        }))
    }

    pub(super) async fn op_delete_bucket_encryption(
        &self,
        request: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        let input = &request.input;
        let bucket = self
            .access(
                &request,
                &input.bucket,
                actions::PUT_ENCRYPTION_CONFIGURATION,
                None,
                input.expected_bucket_owner.as_ref(),
            )
            .await?;
        self.hangar
            .set_bucket_encryption(&bucket, None)
            .await
            .map_err(from_bucket_error)?;
        Ok(S3Response::with_status(
            DeleteBucketEncryptionOutput::default(),
            http::StatusCode::NO_CONTENT,
        ))
    }
}
