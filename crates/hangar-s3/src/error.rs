//! The one place where domain errors get their S3 code and HTTP status.

use hangar_core::buckets::BucketError;
use http::StatusCode;
use s3s::{S3Error, S3ErrorCode};

/// A bucket error as S3 names it. `Internal` becomes a bare `InternalError`;
/// its detail goes to the log only.
pub(crate) fn from_bucket_error(error: BucketError) -> S3Error {
    let code = match &error {
        BucketError::InvalidBucketName(_) => S3ErrorCode::InvalidBucketName,
        BucketError::BucketAlreadyExists(_) => S3ErrorCode::BucketAlreadyExists,
        BucketError::BucketAlreadyOwnedByYou(_) => S3ErrorCode::BucketAlreadyOwnedByYou,
        BucketError::NoSuchBucket(_) => S3ErrorCode::NoSuchBucket,
        BucketError::AccessDenied(_) => S3ErrorCode::AccessDenied,
        BucketError::InvalidLocationConstraint(_) => S3ErrorCode::InvalidLocationConstraint,
        BucketError::IllegalLocationConstraint { .. } => {
            S3ErrorCode::IllegalLocationConstraintException
        }
        BucketError::NoSuchPublicAccessBlockConfiguration(_) => {
            let mut s3 = S3Error::with_message(
                S3ErrorCode::Custom("NoSuchPublicAccessBlockConfiguration".into()),
                error.to_string(),
            );
            s3.set_status_code(StatusCode::NOT_FOUND);
            return s3;
        }
        BucketError::BucketNotEmpty(_) => S3ErrorCode::BucketNotEmpty,
        BucketError::NoSuchKey(_) => S3ErrorCode::NoSuchKey,
        BucketError::KeyTooLong(_) => S3ErrorCode::KeyTooLongError,
        BucketError::InvalidTag(_) => S3ErrorCode::InvalidTag,
        BucketError::NoSuchUpload(_) => S3ErrorCode::NoSuchUpload,
        BucketError::InvalidPart(_) => S3ErrorCode::InvalidPart,
        BucketError::InvalidPartOrder => S3ErrorCode::InvalidPartOrder,
        BucketError::EntityTooSmall { .. } => S3ErrorCode::EntityTooSmall,
        BucketError::InvalidArgument(_) => S3ErrorCode::InvalidArgument,
        BucketError::MalformedXml => S3ErrorCode::MalformedXML,
        BucketError::InvalidRequest(_) => S3ErrorCode::InvalidRequest,
        BucketError::MalformedPolicy(_) => S3ErrorCode::MalformedPolicy,
        BucketError::NoSuchBucketPolicy(_) => S3ErrorCode::NoSuchBucketPolicy,
        BucketError::PublicPolicyBlocked(_) => S3ErrorCode::AccessDenied,
        BucketError::Internal(detail) => {
            tracing::error!(detail, "internal error");
            return S3Error::with_message(
                S3ErrorCode::InternalError,
                "We encountered an internal error. Please try again.",
            );
        }
    };
    S3Error::with_message(code, error.to_string())
}

/// A credential scope naming a region this deployment does not serve.
pub(crate) fn unknown_region(region: &str) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::AuthorizationHeaderMalformed,
        format!(
            "The authorization header is malformed; the region '{region}' is not served by this endpoint"
        ),
    )
}

/// Anonymous requests: nothing in this slice is public.
pub(crate) fn anonymous() -> S3Error {
    S3Error::with_message(S3ErrorCode::AccessDenied, "Access Denied")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let cases = [
            (
                BucketError::InvalidBucketName("x".into()),
                400,
                "InvalidBucketName",
            ),
            (
                BucketError::BucketAlreadyExists("b".into()),
                409,
                "BucketAlreadyExists",
            ),
            (
                BucketError::BucketAlreadyOwnedByYou("b".into()),
                409,
                "BucketAlreadyOwnedByYou",
            ),
            (BucketError::NoSuchBucket("b".into()), 404, "NoSuchBucket"),
            (BucketError::AccessDenied("b".into()), 403, "AccessDenied"),
            (
                BucketError::InvalidLocationConstraint("x".into()),
                400,
                "InvalidLocationConstraint",
            ),
            (
                BucketError::IllegalLocationConstraint {
                    constraint: None,
                    region: "us-west-2".into(),
                },
                400,
                "IllegalLocationConstraintException",
            ),
            (
                BucketError::NoSuchPublicAccessBlockConfiguration("b".into()),
                404,
                "NoSuchPublicAccessBlockConfiguration",
            ),
            (
                BucketError::BucketNotEmpty("b".into()),
                409,
                "BucketNotEmpty",
            ),
            (BucketError::NoSuchKey("k".into()), 404, "NoSuchKey"),
            (BucketError::KeyTooLong(1025), 400, "KeyTooLongError"),
            (BucketError::NoSuchUpload("u".into()), 404, "NoSuchUpload"),
            (BucketError::InvalidPart("1".into()), 400, "InvalidPart"),
            (BucketError::InvalidPartOrder, 400, "InvalidPartOrder"),
            (
                BucketError::EntityTooSmall {
                    part_number: 1,
                    size: 1,
                },
                400,
                "EntityTooSmall",
            ),
            (
                BucketError::InvalidArgument("x".into()),
                400,
                "InvalidArgument",
            ),
            (BucketError::MalformedXml, 400, "MalformedXML"),
            (
                BucketError::InvalidRequest("x".into()),
                400,
                "InvalidRequest",
            ),
            (
                BucketError::MalformedPolicy("Policy has invalid action".into()),
                400,
                "MalformedPolicy",
            ),
            (
                BucketError::NoSuchBucketPolicy("b".into()),
                404,
                "NoSuchBucketPolicy",
            ),
            (
                BucketError::PublicPolicyBlocked("b".into()),
                403,
                "AccessDenied",
            ),
            (
                BucketError::Internal("disk on fire".into()),
                500,
                "InternalError",
            ),
        ];
        for (error, status, code) in cases {
            let s3 = from_bucket_error(error);
            assert_eq!(s3.code().as_str(), code);
            assert_eq!(s3.status_code().map(|s| s.as_u16()), Some(status), "{code}");
            assert!(!s3.message().unwrap_or("").contains("disk on fire"));
        }
    }
}
