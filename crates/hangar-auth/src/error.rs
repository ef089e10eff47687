//! Verification errors.

/// Why a request failed SigV4 verification.
///
/// The messages are safe to show to the client: they never contain secrets
/// or the signature the server computed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization` header and no `X-Amz-Algorithm` query parameter.
    #[error("Request is missing Authentication Token")]
    MissingAuthenticationToken,
    /// Authentication information is present but a part is missing or malformed.
    #[error("{0}")]
    IncompleteSignature(String),
    /// The request is signed with something other than `AWS4-HMAC-SHA256`.
    #[error("Unsupported signing algorithm: {0}. Only AWS4-HMAC-SHA256 is accepted")]
    UnsupportedAlgorithm(String),
    /// The request date is unparsable, or the credential scope date differs from it.
    #[error("{0}")]
    MalformedDate(String),
    /// Clock skew too large, or a presigned URL has expired.
    #[error("Request has expired: {detail}")]
    RequestExpired {
        /// Human-readable times involved.
        detail: String,
    },
    /// The credential scope names another service.
    #[error("Credential should be scoped to correct service: '{expected}', not '{got}'")]
    WrongService {
        /// The service this endpoint serves.
        expected: String,
        /// The service named in the credential scope.
        got: String,
    },
    /// The credential scope names a region this server does not serve.
    #[error("Credential should be scoped to a valid region, not '{0}'")]
    UnknownRegion(String),
    /// The access key id is not known (rendered as `AuthFailure` by the server).
    #[error("The access key ID '{0}' does not exist")]
    InvalidAccessKey(String),
    /// The signature does not match the one computed with the stored secret.
    #[error(
        "The request signature we calculated does not match the signature you provided. \
         Check your AWS Secret Access Key and signing method."
    )]
    SignatureDoesNotMatch,
}
