//! Parsing of the `Authorization` header and of presigned query parameters.

use crate::canonical::{decoded_query_pairs, header_values};
use crate::date::{parse_amz_date, parse_http_date};
use crate::{ALGORITHM, AuthError, ParsedAuth, RequestParts};

fn incomplete(msg: impl Into<String>) -> AuthError {
    AuthError::IncompleteSignature(msg.into())
}

/// See [`crate::parse`].
pub fn parse(req: &RequestParts<'_>) -> Result<ParsedAuth, AuthError> {
    let auth_headers: Vec<&str> = header_values(req.headers, "authorization").collect();
    let query = decoded_query_pairs(req.query);
    let presigned = query.iter().any(|(k, _)| k == "X-Amz-Algorithm");
    match (auth_headers.as_slice(), presigned) {
        ([], false) => Err(AuthError::MissingAuthenticationToken),
        ([_, ..], true) => Err(incomplete(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter \
             or the Authorization header should be specified",
        )),
        ([value], false) => parse_header(req, value),
        ([_, _, ..], false) => Err(incomplete("Multiple Authorization headers")),
        ([], true) => parse_query(&query),
    }
}

fn parse_header(req: &RequestParts<'_>, value: &str) -> Result<ParsedAuth, AuthError> {
    let value = value.trim();
    let (algorithm, rest) = value
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((value, ""));
    if algorithm != ALGORITHM {
        return Err(AuthError::UnsupportedAlgorithm(algorithm.to_owned()));
    }

    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for component in rest.split(',') {
        let component = component.trim();
        if component.is_empty() {
            continue;
        }
        let Some((key, val)) = component.split_once('=') else {
            return Err(incomplete(format!(
                "Authorization header requires each component to be of the form key=value: \
                 '{component}'"
            )));
        };
        let slot = match key.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            other => {
                return Err(incomplete(format!(
                    "Unknown component '{other}' in the Authorization header"
                )));
            }
        };
        if slot.replace(val.trim()).is_some() {
            return Err(incomplete(format!(
                "Authorization header contains '{}' more than once",
                key.trim()
            )));
        }
    }

    let mut missing = Vec::new();
    for (name, slot) in [
        ("Credential", &credential),
        ("Signature", &signature),
        ("SignedHeaders", &signed_headers),
    ] {
        if slot.is_none_or(str::is_empty) {
            missing.push(format!("Authorization header requires '{name}' parameter."));
        }
    }
    if !missing.is_empty() {
        return Err(incomplete(missing.join(" ")));
    }
    let (credential, signed_headers, signature) = (
        credential.unwrap_or_default(),
        signed_headers.unwrap_or_default(),
        signature.unwrap_or_default(),
    );

    let amz_date = if let Some(d) = header_values(req.headers, "x-amz-date").next() {
        parse_amz_date(d.trim()).ok_or_else(|| {
            AuthError::MalformedDate(format!(
                "Invalid X-Amz-Date '{d}': expected the form YYYYMMDD'T'HHMMSS'Z'"
            ))
        })?
    } else if let Some(d) = header_values(req.headers, "date").next() {
        parse_http_date(d).ok_or_else(|| {
            AuthError::MalformedDate(format!(
                "Invalid Date header '{d}': expected RFC 1123, e.g. 'Sun, 30 Aug 2015 12:36:00 GMT'"
            ))
        })?
    } else {
        return Err(incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ));
    };

    finish(credential, signed_headers, signature, amz_date, false, None)
}

fn parse_query(query: &[(String, String)]) -> Result<ParsedAuth, AuthError> {
    const REQUIRED: [&str; 6] = [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Signature",
        "X-Amz-Date",
        "X-Amz-SignedHeaders",
        "X-Amz-Expires",
    ];
    let mut values: [Option<&str>; 6] = [None; 6];
    for (key, value) in query {
        if let Some(i) = REQUIRED.iter().position(|r| r == key)
            && values[i].replace(value.as_str()).is_some()
        {
            return Err(incomplete(format!(
                "Query parameter '{key}' is given more than once"
            )));
        }
    }
    let [
        Some(algorithm),
        Some(credential),
        Some(signature),
        Some(date),
        Some(signed_headers),
        Some(expires),
    ] = values
    else {
        return Err(incomplete(
            "AWS query-string parameters must include 'X-Amz-Algorithm', 'X-Amz-Credential', \
             'X-Amz-Signature', 'X-Amz-Date', 'X-Amz-SignedHeaders', and 'X-Amz-Expires'. \
             Re-examine the query-string parameters.",
        ));
    };
    if algorithm != ALGORITHM {
        return Err(AuthError::UnsupportedAlgorithm(algorithm.to_owned()));
    }
    if signature.is_empty() || signed_headers.is_empty() || credential.is_empty() {
        return Err(incomplete(
            "X-Amz-Credential, X-Amz-SignedHeaders and X-Amz-Signature must not be empty",
        ));
    }
    let amz_date = parse_amz_date(date).ok_or_else(|| {
        AuthError::MalformedDate(format!(
            "Invalid X-Amz-Date '{date}': expected the form YYYYMMDD'T'HHMMSS'Z'"
        ))
    })?;
    let expires: u64 = if !expires.is_empty() && expires.bytes().all(|b| b.is_ascii_digit()) {
        expires
            .parse()
            .map_err(|_| incomplete(format!("X-Amz-Expires should be a number, not '{expires}'")))?
    } else {
        return Err(incomplete(format!(
            "X-Amz-Expires should be a number, not '{expires}'"
        )));
    };
    finish(
        credential,
        signed_headers,
        signature,
        amz_date,
        true,
        Some(expires),
    )
}

fn finish(
    credential: &str,
    signed_headers: &str,
    signature: &str,
    amz_date: time::OffsetDateTime,
    presigned: bool,
    expires_secs: Option<u64>,
) -> Result<ParsedAuth, AuthError> {
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, scope_date, region, service, terminator] = parts.as_slice() else {
        return Err(incomplete(format!(
            "Credential must have the form <AccessKeyId>/<YYYYMMDD>/<region>/<service>/aws4_request, \
             got '{credential}'"
        )));
    };
    if *terminator != "aws4_request" {
        return Err(incomplete(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'"
        )));
    }
    if [access_key_id, scope_date, region, service]
        .iter()
        .any(|p| p.is_empty())
    {
        return Err(incomplete(format!(
            "Credential has an empty component: '{credential}'"
        )));
    }
    let signed: Vec<String> = signed_headers
        .split(';')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    if signed.iter().any(String::is_empty) {
        return Err(incomplete(format!(
            "SignedHeaders has an empty header name: '{signed_headers}'"
        )));
    }
    if !signed.iter().any(|h| h == "host") {
        return Err(incomplete(
            "'Host' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    Ok(ParsedAuth {
        access_key_id: (*access_key_id).to_owned(),
        scope_date: (*scope_date).to_owned(),
        region: (*region).to_owned(),
        service: (*service).to_owned(),
        signed_headers: signed,
        signature: signature.to_owned(),
        amz_date,
        presigned,
        expires_secs,
    })
}
