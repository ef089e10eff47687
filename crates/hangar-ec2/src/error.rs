//! The one place where errors become EC2 wire errors: a code from AWS's
//! vocabulary, a message and an HTTP status, rendered in the
//! `<Response><Errors><Error>` envelope with a `RequestID`.

use hangar_auth::AuthError;
use hangar_core::{Error, ResourceKind};
use thiserror::Error as ThisError;

use crate::xml::escape;

/// What can be wrong with a request before any domain logic runs.
#[derive(Debug, Clone, PartialEq, Eq, ThisError)]
pub enum ProtocolError {
    #[error("The request must contain the parameter Action")]
    MissingAction,
    #[error("The action {0} is not valid for this web service.")]
    InvalidAction(String),
    #[error("The request must contain the parameter {0}")]
    MissingParameter(String),
    #[error("The parameter {0} is not recognized")]
    UnknownParameter(String),
    #[error("{0}")]
    InvalidParameterValue(String),
    #[error("{0}")]
    InvalidParameterCombination(String),
    #[error("{0}")]
    MalformedQueryString(String),
    #[error("The requested version ({0}) of service AmazonEC2 does not exist")]
    NoSuchVersion(String),
    #[error("{0}")]
    InvalidAttributeItemValue(String),
}

/// An error as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    pub code: &'static str,
    pub message: String,
    pub status: u16,
}

impl WireError {
    pub fn new(code: &'static str, message: impl Into<String>, status: u16) -> Self {
        Self {
            code,
            message: message.into(),
            status,
        }
    }

    pub fn dry_run_operation() -> Self {
        Self::new(
            "DryRunOperation",
            "Request would have succeeded, but DryRun flag is set.",
            412,
        )
    }

    pub fn internal() -> Self {
        Self::new(
            "InternalError",
            "An internal error has occurred. Please try again later.",
            500,
        )
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new("Unavailable", message, 503)
    }

    pub fn request_too_large(limit: usize) -> Self {
        Self::new(
            "RequestEntityTooLarge",
            format!("The request body is larger than {limit} bytes"),
            413,
        )
    }

    /// `<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>`
    pub fn render(&self, request_id: &str) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{}</Code><Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>",
            self.code,
            escape(&self.message),
            escape(request_id)
        )
    }
}

impl From<ProtocolError> for WireError {
    fn from(error: ProtocolError) -> Self {
        let code = match &error {
            ProtocolError::MissingAction => "MissingAction",
            ProtocolError::InvalidAction(_) => "InvalidAction",
            ProtocolError::MissingParameter(_) => "MissingParameter",
            ProtocolError::UnknownParameter(_) => "UnknownParameter",
            ProtocolError::InvalidParameterValue(_) => "InvalidParameterValue",
            ProtocolError::InvalidParameterCombination(_) => "InvalidParameterCombination",
            ProtocolError::MalformedQueryString(_) => "MalformedQueryString",
            ProtocolError::NoSuchVersion(_) => "NoSuchVersion",
            ProtocolError::InvalidAttributeItemValue(_) => "InvalidAMIAttributeItemValue",
        };
        WireError::new(code, error.to_string(), 400)
    }
}

impl From<&Error> for WireError {
    fn from(error: &Error) -> Self {
        let (code, status) = match error {
            Error::InvalidParameterValue(_) => ("InvalidParameterValue", 400),
            Error::InvalidParameterCombination(_) => ("InvalidParameterCombination", 400),
            Error::MissingParameter(_) => ("MissingParameter", 400),
            Error::InvalidPaginationToken => ("InvalidPaginationToken", 400),
            Error::MalformedImageId(_) => ("InvalidAMIID.Malformed", 400),
            Error::ImageNotFound(_) => ("InvalidAMIID.NotFound", 400),
            Error::ImageUnavailable(_) => ("InvalidAMIID.Unavailable", 400),
            Error::MalformedImageName(_) => ("InvalidAMIName.Malformed", 400),
            Error::DuplicateImageName { .. } => ("InvalidAMIName.Duplicate", 400),
            Error::InvalidAttributeItemValue(_) => ("InvalidAMIAttributeItemValue", 400),
            Error::NotAuthorizedForImage(_) => ("AuthFailure", 400),
            Error::UnauthorizedOperation => ("UnauthorizedOperation", 403),
            Error::MalformedResourceId(_) => ("InvalidID", 400),
            Error::TagLimitExceeded(_) => ("TagLimitExceeded", 400),
            Error::FilterLimitExceeded(_) => ("FilterLimitExceeded", 400),
            Error::IncorrectImageState { .. } => ("IncorrectState", 400),
            // AWS does not document the code; EC2 uses OperationNotPermitted
            // for requests a resource's own setting forbids.
            Error::DeregistrationProtected { .. } => ("OperationNotPermitted", 400),
            Error::MalformedId { kind, .. } => (
                match kind {
                    ResourceKind::Image => "InvalidAMIID.Malformed",
                    ResourceKind::Snapshot => "InvalidSnapshotID.Malformed",
                    ResourceKind::Volume => "InvalidVolumeID.Malformed",
                    ResourceKind::Instance => "InvalidInstanceID.Malformed",
                },
                400,
            ),
            Error::ResourceNotFound { kind, .. } => (
                match kind {
                    ResourceKind::Image => "InvalidAMIID.NotFound",
                    ResourceKind::Snapshot => "InvalidSnapshot.NotFound",
                    ResourceKind::Volume => "InvalidVolume.NotFound",
                    ResourceKind::Instance => "InvalidInstanceID.NotFound",
                },
                400,
            ),
            Error::SnapshotInUse { .. } => ("InvalidSnapshot.InUse", 400),
            Error::VolumeInUse(_) => ("VolumeInUse", 400),
            Error::IncorrectSnapshotState { .. } => ("IncorrectState", 400),
            Error::IncorrectInstanceState { .. } => ("IncorrectInstanceState", 400),
            Error::InvalidBlock(_) | Error::InvalidBlockToken | Error::InvalidVolumeSize(_) => {
                ("InvalidParameterValue", 400)
            }
            Error::IdempotentParameterMismatch(_) => ("IdempotentParameterMismatch", 400),
            Error::InstanceLimitExceeded(_) => ("InstanceLimitExceeded", 400),
            Error::ResourceLimitExceeded(_) => ("ResourceLimitExceeded", 400),
            Error::Unsupported(_) => ("Unsupported", 400),
            Error::InvalidRegion(_) => ("InvalidParameterValue", 400),
            Error::DryRunOperation => return WireError::dry_run_operation(),
            // Internals never leak: the detail is logged by the server.
            Error::Internal(_) | Error::TaskFailed(_) => return WireError::internal(),
        };
        WireError::new(code, error.to_string(), status)
    }
}

impl From<&AuthError> for WireError {
    fn from(error: &AuthError) -> Self {
        match error {
            AuthError::MissingAuthenticationToken => WireError::new(
                "MissingAuthenticationToken",
                "Request is missing Authentication Token",
                401,
            ),
            AuthError::IncompleteSignature(detail) => {
                WireError::new("IncompleteSignature", detail.clone(), 400)
            }
            AuthError::UnsupportedAlgorithm(detail) => WireError::new(
                "IncompleteSignature",
                format!("Unsupported signature algorithm: {detail}. Use AWS4-HMAC-SHA256."),
                400,
            ),
            AuthError::MalformedDate(detail) => WireError::new("AuthFailure", detail.clone(), 401),
            AuthError::RequestExpired { detail } => WireError::new(
                "RequestExpired",
                format!("Request has expired. {detail}"),
                400,
            ),
            AuthError::WrongService { expected, got } => WireError::new(
                "AuthFailure",
                format!(
                    "Credential should be scoped to correct service: '{expected}' (got '{got}')."
                ),
                401,
            ),
            AuthError::UnknownRegion(region) => WireError::new(
                "AuthFailure",
                format!(
                    "Credential should be scoped to a valid region; '{region}' is not one of this endpoint's regions."
                ),
                401,
            ),
            AuthError::InvalidAccessKey(_) => WireError::new(
                "AuthFailure",
                "AWS was not able to validate the provided access credentials",
                401,
            ),
            AuthError::SignatureDoesNotMatch => WireError::new(
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
                403,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_envelope_golden() {
        let error = WireError::from(&Error::ImageNotFound(vec!["ami-0123456789abcdef0".into()]));
        assert_eq!(
            error.render("ea966190-f9aa-478e-9ede-000000000000"),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>InvalidAMIID.NotFound</Code><Message>The image id &apos;[ami-0123456789abcdef0]&apos; does not exist</Message></Error></Errors><RequestID>ea966190-f9aa-478e-9ede-000000000000</RequestID></Response>"
        );
        assert_eq!(error.status, 400);
    }

    #[test]
    fn statuses() {
        assert_eq!(WireError::dry_run_operation().status, 412);
        assert_eq!(WireError::from(&Error::UnauthorizedOperation).status, 403);
        assert_eq!(
            WireError::from(&Error::Internal("disk on fire".into())).status,
            500
        );
        assert!(
            !WireError::from(&Error::Internal("disk on fire".into()))
                .message
                .contains("disk")
        );
        assert_eq!(
            WireError::from(&AuthError::SignatureDoesNotMatch).code,
            "SignatureDoesNotMatch"
        );
        assert_eq!(
            WireError::from(&AuthError::InvalidAccessKey("AKIA".into())).code,
            "AuthFailure"
        );
        let expired = AuthError::RequestExpired { detail: "x".into() };
        assert_eq!(WireError::from(&expired).code, "RequestExpired");
    }
}
