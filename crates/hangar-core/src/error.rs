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
    #[error("The image '{image_id}' is in state {state}, which does not allow this request")]
    IncorrectImageState { image_id: String, state: String },
    /// Every check passed and `DryRun` was set: AWS answers with this error.
    #[error("Request would have succeeded, but DryRun flag is set.")]
    DryRunOperation,
    /// A fault inside Hangar (storage, corruption). Rendered as
    /// `InternalError` without the detail, which is logged instead.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid_value(parameter: &str, value: &str, reason: &str) -> Self {
        Error::InvalidParameterValue(format!(
            "Value ({value}) for parameter {parameter} is invalid. {reason}"
        ))
    }
}
