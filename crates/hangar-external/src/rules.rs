//! The store rules read on an external bucket's answers: pure functions, so
//! the rules are tested apart from the store (and the same whatever the
//! store answered with).

use hangar_core::buckets::BucketError;
use hangar_core::policy::BucketPolicy;

/// What `GetPublicAccessBlock` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicAccessAnswer {
    /// `BlockPublicAcls`, `IgnorePublicAcls`, `BlockPublicPolicy`,
    /// `RestrictPublicBuckets` (a switch the store left out is off).
    Config([bool; 4]),
    /// `NoSuchPublicAccessBlockConfiguration`.
    Missing,
    /// The store does not implement the request (MinIO, for one).
    Unsupported,
}

/// What the bucket's policy looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyAnswer {
    /// `GetBucketPolicyStatus`'s `IsPublic`, `None` when absent.
    Status(Option<bool>),
    /// `NoSuchBucketPolicy`.
    NoPolicy,
    /// The policy document, read because the store does not answer
    /// `GetBucketPolicyStatus`.
    Document(String),
}

const SWITCHES: [&str; 4] = [
    "BlockPublicAcls",
    "IgnorePublicAcls",
    "BlockPublicPolicy",
    "RestrictPublicBuckets",
];

/// Why the bucket counts as public, naming the rule; `None` when it does
/// not. The same rules as the embedded buckets: Block Public Access must be
/// fully on (a missing configuration counts as not blocked), and the
/// policy must not be public (no policy, or a status without `IsPublic`,
/// is not public).
pub fn public_reason(
    bucket: &str,
    block: &PublicAccessAnswer,
    policy: &PolicyAnswer,
) -> Result<Option<String>, BucketError> {
    match block {
        PublicAccessAnswer::Config(switches) => {
            let off: Vec<&str> = SWITCHES
                .iter()
                .zip(switches)
                .filter(|(_, on)| !**on)
                .map(|(name, _)| *name)
                .collect();
            if !off.is_empty() {
                return Ok(Some(format!(
                    "the Block Public Access configuration of bucket '{bucket}' is not fully enabled: {} off (GetPublicAccessBlock)",
                    off.join(", ")
                )));
            }
        }
        PublicAccessAnswer::Missing => {
            return Ok(Some(format!(
                "bucket '{bucket}' has no Block Public Access configuration (GetPublicAccessBlock: NoSuchPublicAccessBlockConfiguration), which counts as not blocked"
            )));
        }
        PublicAccessAnswer::Unsupported => {
            return Ok(Some(format!(
                "the external store does not answer GetPublicAccessBlock for bucket '{bucket}', so its public access is not known to be blocked"
            )));
        }
    }
    match policy {
        PolicyAnswer::Status(Some(true)) => Ok(Some(format!(
            "the policy of bucket '{bucket}' makes it public (GetBucketPolicyStatus: IsPublic is true)"
        ))),
        PolicyAnswer::Status(_) | PolicyAnswer::NoPolicy => Ok(None),
        PolicyAnswer::Document(document) => match BucketPolicy::parse(document, bucket) {
            Ok(parsed) if parsed.is_public() => Ok(Some(format!(
                "the policy of bucket '{bucket}' makes it public (its policy document grants access to everyone)"
            ))),
            Ok(_) => Ok(None),
            // A policy the evaluator cannot read cannot be shown private.
            Err(error) => Ok(Some(format!(
                "the policy of bucket '{bucket}' cannot be judged ({error}), so it may be public"
            ))),
        },
    }
}

/// The log's advice when the bucket has no default encryption
/// (`encrypted`: `None` when the store does not answer
/// `GetBucketEncryption`).
pub fn encryption_warning(bucket: &str, encrypted: Option<bool>) -> Option<String> {
    match encrypted {
        Some(true) => None,
        Some(false) => Some(format!(
            "bucket {bucket} has no default encryption (GetBucketEncryption); stored AMI objects hold plaintext disk data"
        )),
        None => Some(format!(
            "the external store does not answer GetBucketEncryption for bucket {bucket}; stored AMI objects may hold plaintext disk data"
        )),
    }
}

/// The region of a `LocationConstraint`: none or empty is `us-east-1`, the
/// legacy `EU` is `eu-west-1`.
pub fn region_of(constraint: Option<&str>) -> String {
    match constraint.map(str::trim) {
        None | Some("") => "us-east-1".to_owned(),
        Some("EU") => "eu-west-1".to_owned(),
        Some(region) => region.to_owned(),
    }
}
