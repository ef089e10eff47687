//! The EBS direct APIs (`ebs/2019-11-02`, REST-JSON): `StartSnapshot`,
//! `PutSnapshotBlock`, `CompleteSnapshot`, `ListSnapshotBlocks`,
//! `ListChangedBlocks`, `GetSnapshotBlock`. The server hands over a verified
//! caller and the raw request; this crate routes by method and path, decodes
//! headers and JSON, calls the domain and writes the REST-JSON answer. It is
//! the only crate that knows these wire shapes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hangar_core::blocks::BLOCK_SIZE;
use hangar_core::snapshots::StartSnapshotInput;
use hangar_core::{Caller, Error, Hangar, ResourceKind};
use serde::Deserialize;
use serde_json::{Value, json};

/// Everything the EBS layer needs from an HTTP request.
pub struct Request<'a> {
    pub method: &'a str,
    /// The path, percent-decoded segments are plain IDs and numbers here.
    pub path: &'a str,
    pub query: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: Vec<u8>,
}

/// An EBS answer: status, extra headers, body (JSON or block bytes).
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub content_type: &'static str,
    pub operation: &'static str,
    /// The detail behind an internal error, for the server's log only.
    pub internal_detail: Option<String>,
}

/// An EBS error on the wire: the `x-amzn-ErrorType` code, a reason from the
/// model's enums where one applies, a message, and the HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EbsError {
    pub code: &'static str,
    pub reason: Option<&'static str>,
    pub message: String,
    pub status: u16,
}

impl EbsError {
    fn validation(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code: "ValidationException",
            reason: Some(reason),
            message: message.into(),
            status: 400,
        }
    }

    pub fn render(&self, operation: &'static str, request_id: &str) -> Response {
        let mut body = json!({ "message": self.message, "Message": self.message });
        if let Some(reason) = self.reason {
            body["Reason"] = Value::String(reason.to_string());
        }
        Response {
            status: self.status,
            headers: vec![
                ("x-amzn-ErrorType", self.code.to_string()),
                ("x-amzn-RequestId", request_id.to_string()),
            ],
            body: body.to_string().into_bytes(),
            content_type: "application/json",
            operation,
            internal_detail: None,
        }
    }
}

/// An authentication failure in EBS's shape: bad keys and signatures are
/// `AccessDeniedException` (403), malformed or expired ones
/// `ValidationException` (400).
pub fn auth_failure(message: &str, access_denied: bool, request_id: &str) -> Response {
    let error = if access_denied {
        EbsError {
            code: "AccessDeniedException",
            reason: Some("UNAUTHORIZED_ACCOUNT"),
            message: message.to_string(),
            status: 403,
        }
    } else {
        EbsError {
            code: "ValidationException",
            reason: None,
            message: message.to_string(),
            status: 400,
        }
    };
    error.render("Authenticate", request_id)
}

/// The one mapping of domain errors to EBS errors.
impl From<&Error> for EbsError {
    fn from(error: &Error) -> Self {
        let message = error.to_string();
        match error {
            Error::ResourceNotFound { .. } | Error::ImageNotFound(_) => EbsError {
                code: "ResourceNotFoundException",
                reason: Some("SNAPSHOT_NOT_FOUND"),
                message,
                status: 404,
            },
            Error::MalformedId {
                kind: ResourceKind::Snapshot,
                ..
            } => EbsError::validation("INVALID_SNAPSHOT_ID", message),
            Error::InvalidBlock(_) => EbsError::validation("INVALID_BLOCK", message),
            Error::InvalidBlockToken => EbsError::validation("INVALID_BLOCK_TOKEN", message),
            Error::InvalidVolumeSize(_) => EbsError::validation("INVALID_VOLUME_SIZE", message),
            Error::InvalidPaginationToken => EbsError::validation("INVALID_PAGE_TOKEN", message),
            Error::TagLimitExceeded(_) => EbsError::validation("INVALID_TAG", message),
            Error::IdempotentParameterMismatch(_) => EbsError {
                code: "ConflictException",
                reason: None,
                message,
                status: 409,
            },
            Error::UnauthorizedOperation | Error::NotAuthorizedForImage(_) => EbsError {
                code: "AccessDeniedException",
                reason: Some("UNAUTHORIZED_ACCOUNT"),
                message,
                status: 403,
            },
            Error::Internal(_) | Error::TaskFailed(_) => EbsError {
                code: "InternalServerException",
                reason: None,
                message: "An internal error has occurred.".into(),
                status: 500,
            },
            _ => EbsError::validation("INVALID_PARAMETER_VALUE", message),
        }
    }
}

fn header<'a>(request: &'a Request<'_>, name: &str) -> Option<&'a str> {
    request
        .headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| *value)
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect()
}

fn query_value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

fn parse_int(value: Option<&str>, name: &str) -> Result<Option<i64>, EbsError> {
    value
        .map(|text| {
            text.parse::<i64>().map_err(|_| {
                EbsError::validation(
                    "INVALID_PARAMETER_VALUE",
                    format!("{name} must be an integer, got '{text}'"),
                )
            })
        })
        .transpose()
}

fn decode_checksum(value: Option<&str>, name: &str) -> Result<[u8; 32], EbsError> {
    let value = value.ok_or_else(|| {
        EbsError::validation("INVALID_PARAMETER_VALUE", format!("{name} is required"))
    })?;
    let bytes = BASE64.decode(value).map_err(|_| {
        EbsError::validation("INVALID_PARAMETER_VALUE", format!("{name} is not base64"))
    })?;
    bytes.try_into().map_err(|_| {
        EbsError::validation(
            "INVALID_PARAMETER_VALUE",
            format!("{name} is not a SHA-256 checksum"),
        )
    })
}

fn check_algorithm(value: Option<&str>) -> Result<(), EbsError> {
    match value {
        Some("SHA256") => Ok(()),
        Some(other) => Err(EbsError::validation(
            "INVALID_PARAMETER_VALUE",
            format!("Unsupported checksum algorithm '{other}'; use SHA256"),
        )),
        None => Err(EbsError::validation(
            "INVALID_PARAMETER_VALUE",
            "x-amz-Checksum-Algorithm is required",
        )),
    }
}

fn epoch_seconds(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

fn ok_json(status: u16, operation: &'static str, body: Value) -> Response {
    Response {
        status,
        headers: Vec::new(),
        body: body.to_string().into_bytes(),
        content_type: "application/json",
        operation,
        internal_detail: None,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
struct StartSnapshotBody {
    VolumeSize: Option<i64>,
    ParentSnapshotId: Option<String>,
    Tags: Option<Vec<TagBody>>,
    Description: Option<String>,
    ClientToken: Option<String>,
    Encrypted: Option<bool>,
    KmsKeyArn: Option<String>,
    Timeout: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
struct TagBody {
    Key: Option<String>,
    Value: Option<String>,
}

enum Route<'a> {
    StartSnapshot,
    PutSnapshotBlock(&'a str, &'a str),
    CompleteSnapshot(&'a str),
    ListSnapshotBlocks(&'a str),
    ListChangedBlocks(&'a str),
    GetSnapshotBlock(&'a str, &'a str),
}

impl Route<'_> {
    fn operation(&self) -> &'static str {
        match self {
            Route::StartSnapshot => "StartSnapshot",
            Route::PutSnapshotBlock(..) => "PutSnapshotBlock",
            Route::CompleteSnapshot(_) => "CompleteSnapshot",
            Route::ListSnapshotBlocks(_) => "ListSnapshotBlocks",
            Route::ListChangedBlocks(_) => "ListChangedBlocks",
            Route::GetSnapshotBlock(..) => "GetSnapshotBlock",
        }
    }
}

fn route<'a>(method: &str, path: &'a str) -> Option<Route<'a>> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("POST", ["snapshots"]) => Some(Route::StartSnapshot),
        ("PUT", ["snapshots", id, "blocks", index]) => Some(Route::PutSnapshotBlock(id, index)),
        ("POST", ["snapshots", "completion", id]) => Some(Route::CompleteSnapshot(id)),
        ("GET", ["snapshots", id, "blocks"]) => Some(Route::ListSnapshotBlocks(id)),
        ("GET", ["snapshots", id, "changedblocks"]) => Some(Route::ListChangedBlocks(id)),
        ("GET", ["snapshots", id, "blocks", index]) => Some(Route::GetSnapshotBlock(id, index)),
        _ => None,
    }
}

/// Handles one EBS direct API request for a verified caller.
pub async fn handle(
    hangar: &Hangar,
    caller: &Caller,
    request: Request<'_>,
    request_id: &str,
) -> Response {
    let Some(route) = route(request.method, request.path) else {
        return EbsError {
            code: "ValidationException",
            reason: Some("INVALID_PARAMETER_VALUE"),
            message: format!(
                "No EBS direct API operation at {} {}",
                request.method, request.path
            ),
            status: 404,
        }
        .render("Unknown", request_id);
    };
    let operation = route.operation();
    match serve(hangar, caller, &route, &request).await {
        Ok(mut response) => {
            response
                .headers
                .push(("x-amzn-RequestId", request_id.to_string()));
            response
        }
        Err((error, internal)) => {
            let mut response = error.render(operation, request_id);
            response.internal_detail = internal;
            response
        }
    }
}

type Outcome = Result<Response, (EbsError, Option<String>)>;

fn client(error: EbsError) -> (EbsError, Option<String>) {
    (error, None)
}

fn domain(error: Error) -> (EbsError, Option<String>) {
    let detail = match &error {
        Error::Internal(detail) | Error::TaskFailed(detail) => Some(detail.clone()),
        _ => None,
    };
    (EbsError::from(&error), detail)
}

fn block_index(text: &str) -> Result<i64, EbsError> {
    text.parse::<i64>()
        .ok()
        .filter(|index| *index >= 0)
        .ok_or_else(|| {
            EbsError::validation("INVALID_BLOCK", format!("Invalid block index '{text}'"))
        })
}

async fn serve(
    hangar: &Hangar,
    caller: &Caller,
    route: &Route<'_>,
    request: &Request<'_>,
) -> Outcome {
    let pairs = query_pairs(request.query);
    match route {
        Route::StartSnapshot => {
            let body: StartSnapshotBody =
                serde_json::from_slice(&request.body).map_err(|error| {
                    client(EbsError::validation(
                        "INVALID_PARAMETER_VALUE",
                        format!("The request body is not a valid StartSnapshot request: {error}"),
                    ))
                })?;
            let tags = body
                .Tags
                .unwrap_or_default()
                .into_iter()
                .map(|tag| hangar_core::model::Tag {
                    key: tag.Key.unwrap_or_default(),
                    value: tag.Value.unwrap_or_default(),
                })
                .collect();
            let snapshot = hangar
                .start_snapshot(
                    caller,
                    StartSnapshotInput {
                        volume_size_gib: body.VolumeSize,
                        parent_snapshot_id: body.ParentSnapshotId,
                        tags,
                        description: body.Description,
                        client_token: body.ClientToken,
                        encrypted: body.Encrypted,
                        kms_key_arn: body.KmsKeyArn,
                        timeout_minutes: body.Timeout,
                    },
                )
                .await
                .map_err(domain)?;
            let tags: Vec<Value> = snapshot
                .tags
                .iter()
                .map(|tag| json!({"Key": tag.key, "Value": tag.value}))
                .collect();
            let mut answer = json!({
                "SnapshotId": snapshot.snapshot_id,
                "OwnerId": snapshot.owner_id,
                "Status": snapshot.state.as_str(),
                "StartTime": epoch_seconds(snapshot.start_ms),
                "VolumeSize": snapshot.volume_size_gib,
                "BlockSize": BLOCK_SIZE,
                "Tags": tags,
            });
            if let Some(description) = &snapshot.description {
                answer["Description"] = json!(description);
            }
            if let Some(parent) = &snapshot.parent_snapshot_id {
                answer["ParentSnapshotId"] = json!(parent);
            }
            Ok(ok_json(201, "StartSnapshot", answer))
        }
        Route::PutSnapshotBlock(snapshot_id, index) => {
            let index = block_index(index).map_err(client)?;
            check_algorithm(header(request, "x-amz-Checksum-Algorithm")).map_err(client)?;
            let checksum = decode_checksum(header(request, "x-amz-Checksum"), "x-amz-Checksum")
                .map_err(client)?;
            let declared = parse_int(header(request, "x-amz-Data-Length"), "x-amz-Data-Length")
                .map_err(client)?
                .ok_or_else(|| {
                    client(EbsError::validation(
                        "INVALID_PARAMETER_VALUE",
                        "x-amz-Data-Length is required",
                    ))
                })?;
            if let Some(progress) =
                parse_int(header(request, "x-amz-Progress"), "x-amz-Progress").map_err(client)?
                && !(0..=100).contains(&progress)
            {
                return Err(client(EbsError::validation(
                    "INVALID_PARAMETER_VALUE",
                    "x-amz-Progress must be between 0 and 100",
                )));
            }
            let encoded = BASE64.encode(checksum);
            hangar
                .put_snapshot_block(
                    caller,
                    snapshot_id,
                    index,
                    request.body.clone(),
                    declared,
                    checksum,
                )
                .await
                .map_err(domain)?;
            let mut response = ok_json(201, "PutSnapshotBlock", json!({}));
            response.headers.push(("x-amz-Checksum", encoded));
            response
                .headers
                .push(("x-amz-Checksum-Algorithm", "SHA256".into()));
            Ok(response)
        }
        Route::CompleteSnapshot(snapshot_id) => {
            let count = parse_int(
                header(request, "x-amz-ChangedBlocksCount"),
                "x-amz-ChangedBlocksCount",
            )
            .map_err(client)?
            .ok_or_else(|| {
                client(EbsError::validation(
                    "INVALID_PARAMETER_VALUE",
                    "x-amz-ChangedBlocksCount is required",
                ))
            })?;
            let aggregate = match header(request, "x-amz-Checksum") {
                None => None,
                Some(value) => {
                    check_algorithm(header(request, "x-amz-Checksum-Algorithm")).map_err(client)?;
                    match header(request, "x-amz-Checksum-Aggregation-Method") {
                        Some("LINEAR") | None => {}
                        Some(other) => {
                            return Err(client(EbsError::validation(
                                "INVALID_PARAMETER_VALUE",
                                format!("Unsupported aggregation method '{other}'; use LINEAR"),
                            )));
                        }
                    }
                    Some(decode_checksum(Some(value), "x-amz-Checksum").map_err(client)?)
                }
            };
            let snapshot = hangar
                .complete_snapshot(caller, snapshot_id, count, aggregate)
                .await
                .map_err(domain)?;
            Ok(ok_json(
                202,
                "CompleteSnapshot",
                json!({"Status": snapshot.state.as_str()}),
            ))
        }
        Route::ListSnapshotBlocks(snapshot_id) => {
            let listing = hangar
                .list_snapshot_blocks(
                    caller,
                    snapshot_id,
                    parse_int(
                        query_value(&pairs, "startingBlockIndex"),
                        "startingBlockIndex",
                    )
                    .map_err(client)?,
                    parse_int(query_value(&pairs, "maxResults"), "maxResults").map_err(client)?,
                    query_value(&pairs, "pageToken"),
                )
                .await
                .map_err(domain)?;
            let blocks: Vec<Value> = listing
                .blocks
                .iter()
                .map(|block| json!({"BlockIndex": block.index, "BlockToken": block.token}))
                .collect();
            let mut answer = json!({
                "Blocks": blocks,
                "ExpiryTime": epoch_seconds(listing.expiry_ms),
                "VolumeSize": listing.volume_size_gib,
                "BlockSize": BLOCK_SIZE,
            });
            if let Some(token) = listing.next_token {
                answer["NextToken"] = json!(token);
            }
            Ok(ok_json(200, "ListSnapshotBlocks", answer))
        }
        Route::ListChangedBlocks(second) => {
            let listing = hangar
                .list_changed_blocks(
                    caller,
                    query_value(&pairs, "firstSnapshotId"),
                    second,
                    parse_int(
                        query_value(&pairs, "startingBlockIndex"),
                        "startingBlockIndex",
                    )
                    .map_err(client)?,
                    parse_int(query_value(&pairs, "maxResults"), "maxResults").map_err(client)?,
                    query_value(&pairs, "pageToken"),
                )
                .await
                .map_err(domain)?;
            let blocks: Vec<Value> = listing
                .blocks
                .iter()
                .map(|block| {
                    let mut entry = json!({"BlockIndex": block.index});
                    if let Some(token) = &block.first_token {
                        entry["FirstBlockToken"] = json!(token);
                    }
                    if let Some(token) = &block.second_token {
                        entry["SecondBlockToken"] = json!(token);
                    }
                    entry
                })
                .collect();
            let mut answer = json!({
                "ChangedBlocks": blocks,
                "ExpiryTime": epoch_seconds(listing.expiry_ms),
                "VolumeSize": listing.volume_size_gib,
                "BlockSize": BLOCK_SIZE,
            });
            if let Some(token) = listing.next_token {
                answer["NextToken"] = json!(token);
            }
            Ok(ok_json(200, "ListChangedBlocks", answer))
        }
        Route::GetSnapshotBlock(snapshot_id, index) => {
            let index = block_index(index).map_err(client)?;
            let token = query_value(&pairs, "blockToken").ok_or_else(|| {
                client(EbsError::validation(
                    "INVALID_BLOCK_TOKEN",
                    "blockToken is required",
                ))
            })?;
            let (data, hash) = hangar
                .get_snapshot_block(caller, snapshot_id, index, token)
                .await
                .map_err(domain)?;
            Ok(Response {
                status: 200,
                headers: vec![
                    ("x-amz-Data-Length", data.len().to_string()),
                    ("x-amz-Checksum", BASE64.encode(hash.0)),
                    ("x-amz-Checksum-Algorithm", "SHA256".into()),
                ],
                body: data,
                content_type: "application/octet-stream",
                operation: "GetSnapshotBlock",
                internal_detail: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert!(matches!(
            route("POST", "/snapshots"),
            Some(Route::StartSnapshot)
        ));
        assert!(matches!(
            route("PUT", "/snapshots/snap-1/blocks/7"),
            Some(Route::PutSnapshotBlock("snap-1", "7"))
        ));
        assert!(matches!(
            route("POST", "/snapshots/completion/snap-1"),
            Some(Route::CompleteSnapshot("snap-1"))
        ));
        assert!(matches!(
            route("GET", "/snapshots/snap-1/blocks"),
            Some(Route::ListSnapshotBlocks("snap-1"))
        ));
        assert!(matches!(
            route("GET", "/snapshots/snap-1/changedblocks"),
            Some(Route::ListChangedBlocks("snap-1"))
        ));
        assert!(matches!(
            route("GET", "/snapshots/snap-1/blocks/3"),
            Some(Route::GetSnapshotBlock("snap-1", "3"))
        ));
        assert!(route("DELETE", "/snapshots/snap-1").is_none());
        assert!(route("GET", "/other").is_none());
    }

    #[test]
    fn error_shapes() {
        let error = EbsError::from(&Error::InvalidBlockToken);
        assert_eq!(error.code, "ValidationException");
        assert_eq!(error.reason, Some("INVALID_BLOCK_TOKEN"));
        let response = error.render("GetSnapshotBlock", "rid");
        assert_eq!(response.status, 400);
        let body: Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(body["Reason"], "INVALID_BLOCK_TOKEN");
        let missing = EbsError::from(&Error::ResourceNotFound {
            kind: ResourceKind::Snapshot,
            ids: vec!["snap-0123456789abcdef0".into()],
        });
        assert_eq!(
            (missing.code, missing.status),
            ("ResourceNotFoundException", 404)
        );
        let internal = EbsError::from(&Error::Internal("disk".into()));
        assert_eq!(internal.status, 500);
        assert!(!internal.message.contains("disk"));
    }

    #[test]
    fn checksums() {
        let digest = [7u8; 32];
        let encoded = BASE64.encode(digest);
        assert_eq!(decode_checksum(Some(&encoded), "c").unwrap(), digest);
        assert!(decode_checksum(Some("!!"), "c").is_err());
        assert!(decode_checksum(Some(&BASE64.encode([1u8; 16])), "c").is_err());
        assert!(check_algorithm(Some("SHA256")).is_ok());
        assert!(check_algorithm(Some("MD5")).is_err());
    }
}
