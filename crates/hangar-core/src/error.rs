//! The domain's errors. Each variant is one thing a caller can get wrong (or
//! one real fault); the wire crates give each its AWS code and HTTP status in
//! exactly one place. Messages follow AWS's wording where it is known.

use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    #[error("{0}")]
    InvalidParameterValue(String),
    #[error("{0}")]
    InvalidParameterCombination(String),
    #[error("The request must contain the parameter {0}")]
    MissingParameter(String),
    #[error("Invalid pagination token")]
    InvalidPaginationToken,
    #[error("Invalid id: \"{0}\" (expecting \"ami-...\")")]
    MalformedImageId(String),
    #[error("The image id '[{}]' does not exist", .0.join(", "))]
    ImageNotFound(Vec<String>),
    #[error("The image ID '{0}' is no longer available")]
    ImageUnavailable(String),
    #[error("{0}")]
    MalformedImageName(String),
    #[error("AMI name {name} is already in use by AMI {existing}")]
    DuplicateImageName { name: String, existing: String },
    #[error("{0}")]
    InvalidAttributeItemValue(String),
    #[error("Not authorized for image:{0}")]
    NotAuthorizedForImage(String),
    #[error("You are not authorized to perform this operation.")]
    UnauthorizedOperation,
    #[error("The ID '{0}' is not valid")]
    MalformedResourceId(String),
    #[error("{0}")]
    TagLimitExceeded(String),
    #[error("{0}")]
    FilterLimitExceeded(String),
    /// `DeregisterImage` on an image whose deregistration protection is on,
    /// or still in its cooldown after being turned off.
    #[error(
        "The image {image_id} is protected from deregistration ({state}). {}",
        if state == "disabled-with-cooldown" {
            "Its protection was turned off less than 24 hours ago and stays in force until the cooldown ends."
        } else {
            "Disable deregistration protection before deregistering it."
        }
    )]
    DeregistrationProtected { image_id: String, state: String },
    #[error("The image '{image_id}' is in state {state}, which does not allow this request")]
    IncorrectImageState { image_id: String, state: String },
    #[error("The {kind} ID '{id}' is malformed")]
    MalformedId { kind: ResourceKind, id: String },
    #[error("The {kind} ID '{}' does not exist", .ids.join(", "))]
    ResourceNotFound {
        kind: ResourceKind,
        ids: Vec<String>,
    },
    #[error("The snapshot {snapshot_id} is currently in use by {image_id}")]
    SnapshotInUse {
        snapshot_id: String,
        image_id: String,
    },
    #[error("The volume '{0}' is currently attached")]
    VolumeInUse(String),
    #[error("The snapshot '{snapshot_id}' is in state {state}: {detail}")]
    IncorrectSnapshotState {
        snapshot_id: String,
        state: String,
        detail: String,
    },
    #[error("The instance '{instance_id}' is not in a state from which it can be {action}.")]
    IncorrectInstanceState { instance_id: String, action: String },
    /// EBS direct APIs: a block that is out of range, of the wrong length,
    /// or whose checksum does not match its data.
    #[error("{0}")]
    InvalidBlock(String),
    #[error("The block token is not valid for this block")]
    InvalidBlockToken,
    #[error("{0}")]
    InvalidVolumeSize(String),
    /// A `ClientToken` reused with different parameters.
    #[error("The client token {0} was already used with different parameters")]
    IdempotentParameterMismatch(String),
    #[error("{0}")]
    InstanceLimitExceeded(String),
    /// An account quota (e.g. GiB of store tasks in progress) would be
    /// exceeded.
    #[error("{0}")]
    ResourceLimitExceeded(String),
    /// A request this deployment cannot serve (a feature not configured).
    #[error("{0}")]
    Unsupported(String),
    #[error("The region '{0}' is not served by this endpoint")]
    InvalidRegion(String),
    /// Every check passed and `DryRun` was set: AWS answers with this error.
    #[error("Request would have succeeded, but DryRun flag is set.")]
    DryRunOperation,
    /// A fault inside Hangar (storage, corruption). Rendered as
    /// `InternalError` without the detail, which is logged instead.
    #[error("internal error: {0}")]
    Internal(String),
    /// Why a long task (store, restore) failed, in words for its owner
    /// (`storeTaskFailureReason`, an image's `stateReason`). Never a request's
    /// answer; should one leak there it renders as `InternalError`.
    #[error("{0}")]
    TaskFailed(String),
}

/// Kinds of resource, for errors that name one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Image,
    Snapshot,
    Volume,
    Instance,
}

impl std::fmt::Display for ResourceKind {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            ResourceKind::Image => "image",
            ResourceKind::Snapshot => "snapshot",
            ResourceKind::Volume => "volume",
            ResourceKind::Instance => "instance",
        })
    }
}

impl Error {
    pub fn invalid_value(parameter: &str, value: &str, reason: &str) -> Self {
        Error::InvalidParameterValue(format!(
            "Value ({value}) for parameter {parameter} is invalid. {reason}"
        ))
    }
}
