//! The one listener: health and dev helpers under `/_hangar/`, everything
//! else authenticated and routed by the SigV4 service name.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hangar_auth::{AuthError, RequestParts, UriEncoding};
use hangar_ec2::error::WireError;
use hangar_ec2::params::Limits;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::state::AppState;

pub fn router(state: Arc<AppState>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(state)
}

fn xml_response(status: u16, body: String, request_id: &str) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml;charset=UTF-8"),
    );
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", value);
    }
    response
}

fn ec2_error(error: &WireError, request_id: &str) -> Response {
    xml_response(error.status, error.render(request_id), request_id)
}

async fn handle(State(state): State<Arc<AppState>>, request: Request<Body>) -> Response {
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let path = request.uri().path().to_string();
    if let Some(helper) = path.strip_prefix("/_hangar/") {
        if helper == "clock" || helper.starts_with("clock/") {
            return clock_helper(&state, request.method(), helper, request.uri().query()).await;
        }
        return dev_helper(&state, request.method(), helper).await;
    }
    if path == "/moto-api/reset" {
        return dev_helper(&state, request.method(), "reset").await;
    }

    if is_s3(&request) {
        return s3(&state, request, &request_id, started).await;
    }

    let (parts, body) = request.into_parts();
    let body = match to_bytes(body, state.config.limits.max_body_bytes).await {
        Ok(body) => body,
        Err(_) => {
            return ec2_error(
                &WireError::request_too_large(state.config.limits.max_body_bytes),
                &request_id,
            );
        }
    };
    let method = parts.method.as_str().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let header_pairs = header_pairs(&parts.headers);
    let header_refs: Vec<(&str, &str)> = header_pairs
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let payload_hash = hex::encode(Sha256::digest(&body));
    let request_parts = RequestParts {
        method: &method,
        path: &path,
        query: &raw_query,
        headers: &header_refs,
        payload_sha256_hex: Some(&payload_hash),
    };

    // The service comes from the credential scope; an unsigned or garbled
    // request is answered in EC2's vocabulary, the default protocol.
    let service = match crate::auth::Authenticator::peek(&request_parts) {
        Ok(parsed) => parsed.service,
        Err(error) => return ec2_error(&WireError::from(&error), &request_id),
    };
    match service.as_str() {
        "ec2" => {
            // EC2's parameters travel in the body, so the signature must cover
            // it: refuse `UNSIGNED-PAYLOAD` and streaming markers here.
            if let Some((_, declared)) = header_pairs
                .iter()
                .find(|(name, _)| name == "x-amz-content-sha256")
                && declared != &payload_hash
            {
                return ec2_error(
                    &WireError::from(&AuthError::SignatureDoesNotMatch),
                    &request_id,
                );
            }
            let caller = match state.authenticator.authenticate(
                &request_parts,
                "ec2",
                UriEncoding::Double,
                OffsetDateTime::now_utc(),
            ) {
                Ok(caller) => caller,
                Err(error) => {
                    log_auth_failure(&error, &request_id);
                    return ec2_error(&WireError::from(&error), &request_id);
                }
            };
            let form: Vec<u8> = match parts.method {
                Method::POST => body.to_vec(),
                Method::GET => raw_query.into_bytes(),
                _ => {
                    return ec2_error(
                        &WireError::new("InvalidHttpRequest", "EC2 requests use GET or POST", 400),
                        &request_id,
                    );
                }
            };
            let limits = Limits {
                max_parameters: state.config.limits.max_parameters,
                ..Limits::default()
            };
            let outcome =
                hangar_ec2::handle(&state.hangar, &caller, &form, limits, &request_id).await;
            if let Some(detail) = &outcome.internal_detail {
                tracing::error!(
                    request_id,
                    action = outcome.action,
                    detail,
                    "internal error"
                );
            }
            for warning in &outcome.warnings {
                tracing::warn!(request_id, action = outcome.action, warning, "advice");
            }
            tracing::info!(
                request_id,
                account = caller.account_id,
                region = caller.region,
                action = outcome.action.unwrap_or("-"),
                status = outcome.status,
                micros = started.elapsed().as_micros() as u64,
                "ec2"
            );
            xml_response(outcome.status, outcome.body, &request_id)
        }
        "ebs" => {
            let caller = match state.authenticator.authenticate(
                &request_parts,
                "ebs",
                UriEncoding::Double,
                OffsetDateTime::now_utc(),
            ) {
                Ok(caller) => caller,
                Err(error) => {
                    log_auth_failure(&error, &request_id);
                    return ebs_auth_error(&error, &request_id);
                }
            };
            let ebs_request = hangar_ebs::Request {
                method: &method,
                path: &path,
                query: &raw_query,
                headers: &header_refs,
                body: body.to_vec(),
            };
            let outcome =
                hangar_ebs::handle(&state.hangar, &caller, ebs_request, &request_id).await;
            if let Some(detail) = &outcome.internal_detail {
                tracing::error!(
                    request_id,
                    operation = outcome.operation,
                    detail,
                    "internal error"
                );
            }
            tracing::info!(
                request_id,
                account = caller.account_id,
                region = caller.region,
                operation = outcome.operation,
                status = outcome.status,
                micros = started.elapsed().as_micros() as u64,
                "ebs"
            );
            ebs_response(outcome)
        }
        other => ec2_error(
            &WireError::new(
                "InvalidAction",
                format!("This endpoint does not serve the '{other}' service"),
                400,
            ),
            &request_id,
        ),
    }
}

/// Whether a request is for S3: its credential scope names `s3`, or it is
/// unsigned and addressed to a bucket path (anything but `/`, which is EC2's,
/// and `/snapshots...`, which is EBS's), so S3 can refuse it in its own words.
/// Only the headers and query are read; the body stays a stream.
fn is_s3(request: &Request<Body>) -> bool {
    let header_pairs = header_pairs(request.headers());
    let header_refs: Vec<(&str, &str)> = header_pairs
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let path = request.uri().path();
    let parts = RequestParts {
        method: request.method().as_str(),
        path,
        query: request.uri().query().unwrap_or(""),
        headers: &header_refs,
        payload_sha256_hex: None,
    };
    match crate::auth::Authenticator::peek(&parts) {
        Ok(parsed) => parsed.service == "s3",
        Err(AuthError::MissingAuthenticationToken) => {
            path != "/" && path != "/snapshots" && !path.starts_with("/snapshots/")
        }
        Err(_) => false,
    }
}

/// Hands an S3 request to `hangar-s3`, body unread.
async fn s3(
    state: &AppState,
    request: Request<Body>,
    request_id: &str,
    started: Instant,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = state.s3.handle(request, request_id).await;
    tracing::info!(
        request_id,
        method = %method,
        path,
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "s3"
    );
    response.map(Body::new)
}

/// Headers as (name, value) text pairs. Values that are not visible ASCII
/// are kept lossily; they then fail signature checks rather than panicking.
fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Authentication failures of the EBS direct APIs, in their error shape.
fn ebs_auth_error(error: &AuthError, request_id: &str) -> Response {
    let wire = WireError::from(error);
    let access_denied = matches!(
        error,
        AuthError::SignatureDoesNotMatch
            | AuthError::InvalidAccessKey(_)
            | AuthError::UnknownRegion(_)
    );
    ebs_response(hangar_ebs::auth_failure(
        &wire.message,
        access_denied,
        request_id,
    ))
}

fn ebs_response(outcome: hangar_ebs::Response) -> Response {
    let status = StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, outcome.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(outcome.content_type),
    );
    for (name, value) in outcome.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

fn log_auth_failure(error: &AuthError, request_id: &str) {
    // The error names the access key at most, never a secret or signature.
    tracing::warn!(request_id, %error, "authentication failed");
}

async fn dev_helper(state: &AppState, method: &Method, helper: &str) -> Response {
    match (method, helper) {
        (&Method::GET, "health") => (StatusCode::OK, "ok\n").into_response(),
        (&Method::POST, "reset") if state.config.dev_mode() => {
            match state.hangar.reset(state.config.catalog).await {
                Ok(()) => {
                    tracing::warn!("all state wiped by /_hangar/reset");
                    (StatusCode::OK, "{\"reset\": true}\n").into_response()
                }
                Err(error) => {
                    tracing::error!(%error, "reset failed");
                    (StatusCode::INTERNAL_SERVER_ERROR, "reset failed\n").into_response()
                }
            }
        }
        (_, "reset") => (
            StatusCode::FORBIDDEN,
            "reset is only available in dev mode (no [[accounts]] configured)\n",
        )
            .into_response(),
        _ => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A JSON string literal (the messages are ASCII, but quote them properly).
fn json_string(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for character in text.chars() {
        match character {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            control if control.is_control() => {
                quoted.push_str(&format!("\\u{:04x}", control as u32));
            }
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    quoted
}

fn json_error(status: StatusCode, message: &str) -> Response {
    json_response(status, format!("{{\"error\": {}}}\n", json_string(message)))
}

fn clock_body(offset_ms: i64, now_ms: i64) -> String {
    format!(
        "{{\"offset_seconds\": {}, \"now\": {}}}\n",
        offset_ms.div_euclid(1000),
        json_string(&hangar_core::timefmt::iso_seconds(now_ms))
    )
}

/// `GET /_hangar/clock` (the service clock and its offset from wall time)
/// and `POST /_hangar/clock/advance?by=<duration>` (only with `dev_clock`).
async fn clock_helper(
    state: &AppState,
    method: &Method,
    helper: &str,
    query: Option<&str>,
) -> Response {
    use hangar_core::clock::Clock;
    match (method, helper) {
        (&Method::GET, "clock") => {
            // The offset is always 0 without dev_clock: nothing moves it.
            json_response(
                StatusCode::OK,
                clock_body(state.clock.offset_ms(), state.clock.now_ms()),
            )
        }
        (&Method::POST, "clock/advance") => {
            if !state.config.dev_clock {
                return json_error(
                    StatusCode::FORBIDDEN,
                    "the clock can only be advanced with dev_clock = true in the configuration",
                );
            }
            let by = query
                .into_iter()
                .flat_map(|query| query.split('&'))
                .find_map(|pair| {
                    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (name == "by").then_some(value)
                });
            let Some(by) = by else {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    "missing query parameter by (a duration such as 90d, 24h or 1h30m)",
                );
            };
            let by_ms = match hangar_core::clock::parse_duration(by) {
                Ok(by_ms) => by_ms,
                Err(message) => {
                    return json_error(StatusCode::BAD_REQUEST, &format!("by: {message}"));
                }
            };
            let file = state.clock_file.lock().await;
            let offset_ms = match crate::devclock::advanced(
                state.clock.offset_ms(),
                by_ms,
                state.clock.wall_ms(),
            ) {
                Ok(offset_ms) => offset_ms,
                Err(message) => return json_error(StatusCode::BAD_REQUEST, &message),
            };
            // Saved before it takes effect: a failed write leaves the clock
            // where it was.
            if let Err(error) = file.save(offset_ms) {
                tracing::error!(%error, "cannot save the dev clock offset");
                return json_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cannot save the clock offset in the data directory",
                );
            }
            state.clock.set_offset(offset_ms);
            drop(file);
            tracing::warn!(by, offset_seconds = offset_ms / 1000, "dev clock advanced");
            json_response(StatusCode::OK, clock_body(offset_ms, state.clock.now_ms()))
        }
        (_, "clock" | "clock/advance") => {
            json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}
