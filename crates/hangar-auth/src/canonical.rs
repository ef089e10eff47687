//! Canonical request construction.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, percent_encode};

use crate::{AuthError, ParsedAuth, RequestParts, UriEncoding};

/// Hex SHA-256 of the empty string.
pub const EMPTY_SHA256_HEX: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Payload hash value for S3 unsigned payloads.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Everything but the RFC 3986 unreserved characters `A-Z a-z 0-9 - _ . ~`.
const QUERY_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Like [`QUERY_SET`] but keeps `/` (path segment separators).
const PATH_SET: &AsciiSet = &QUERY_SET.remove(b'/');

/// AWS URI-encoding of arbitrary bytes (unreserved kept, the rest `%XX` upper-case).
pub fn uri_encode(bytes: &[u8]) -> String {
    percent_encode(bytes, QUERY_SET).to_string()
}

/// The canonical URI.
///
/// * [`UriEncoding::Double`]: remove `.`/`..` segments and empty segments (as
///   botocore's `remove_dot_segments`), then encode the (already once-encoded)
///   path a second time, so `%` becomes `%25`.
/// * [`UriEncoding::Single`]: the path as received; bytes a client should have
///   encoded are encoded, existing `%XX` escapes are kept.
pub fn canonical_uri(path: &str, encoding: UriEncoding) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    match encoding {
        UriEncoding::Double => {
            let normalized = remove_dot_segments(path);
            percent_encode(normalized.as_bytes(), PATH_SET).to_string()
        }
        UriEncoding::Single => encode_keeping_escapes(path),
    }
}

/// RFC 3986 section 5.2.4 dot-segment removal, plus collapsing of empty
/// segments (`//`), as AWS services (and botocore) expect. A trailing slash
/// survives when at least one segment remains.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut result = String::with_capacity(path.len());
    if path.starts_with('/') {
        result.push('/');
    }
    result.push_str(&out.join("/"));
    if path.ends_with('/') && !out.is_empty() {
        result.push('/');
    }
    if result.is_empty() {
        result.push('/');
    }
    result
}

fn encode_keeping_escapes(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            out.push_str(&path[i..i + 3]);
            i += 3;
            continue;
        }
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
        i += 1;
    }
    out
}

/// The canonical query string: every `key[=value]` pair of the raw query is
/// percent-decoded and re-encoded with the AWS rule (`+` is a literal plus,
/// `%2B`), pairs are sorted by encoded key then encoded value, and joined with
/// `&`. With `skip_signature`, `X-Amz-Signature` is left out (presigned URLs).
pub fn canonical_query(raw: &str, skip_signature: bool) -> String {
    let mut pairs: Vec<(String, String)> = raw
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let key: Vec<u8> = percent_decode_str(k).collect();
            if skip_signature && key == b"X-Amz-Signature" {
                return None;
            }
            let value: Vec<u8> = percent_decode_str(v).collect();
            Some((uri_encode(&key), uri_encode(&value)))
        })
        .collect();
    pairs.sort();
    let mut out = String::with_capacity(raw.len() + 16);
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Decoded `(key, value)` pairs of a raw query string (lossy UTF-8).
pub fn decoded_query_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                percent_decode_str(k).decode_utf8_lossy().into_owned(),
                percent_decode_str(v).decode_utf8_lossy().into_owned(),
            )
        })
        .collect()
}

/// All values of a header (name compared case-insensitively), in order.
pub fn header_values<'a>(
    headers: &'a [(&'a str, &'a str)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

/// Trims a header value and collapses internal whitespace runs to one space.
fn trim_all(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, word) in value.split_ascii_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Signed header names, lower-cased, sorted and de-duplicated.
fn sorted_signed_headers(auth: &ParsedAuth) -> Vec<String> {
    let mut names: Vec<String> = auth
        .signed_headers
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The payload hash line of the canonical request.
fn payload_hash(
    req: &RequestParts<'_>,
    auth: &ParsedAuth,
    encoding: UriEncoding,
) -> Result<String, AuthError> {
    if let Some(v) = header_values(req.headers, "x-amz-content-sha256").next() {
        return Ok(v.trim().to_owned());
    }
    if !auth.presigned {
        return req.payload_sha256_hex.map(str::to_owned).ok_or_else(|| {
            AuthError::IncompleteSignature(
                "Missing required header for this request: x-amz-content-sha256".to_owned(),
            )
        });
    }
    Ok(match encoding {
        UriEncoding::Single => UNSIGNED_PAYLOAD.to_owned(),
        UriEncoding::Double => req
            .payload_sha256_hex
            .unwrap_or(EMPTY_SHA256_HEX)
            .to_owned(),
    })
}

/// See [`crate::canonical_request`].
pub fn build(
    req: &RequestParts<'_>,
    auth: &ParsedAuth,
    encoding: UriEncoding,
) -> Result<String, AuthError> {
    let names = sorted_signed_headers(auth);
    if !names.iter().any(|n| n == "host") {
        return Err(AuthError::IncompleteSignature(
            "'Host' must be a 'SignedHeader' in the AWS Authorization.".to_owned(),
        ));
    }
    let mut out = String::with_capacity(256);
    out.push_str(req.method);
    out.push('\n');
    out.push_str(&canonical_uri(req.path, encoding));
    out.push('\n');
    out.push_str(&canonical_query(req.query, auth.presigned));
    out.push('\n');
    for name in &names {
        out.push_str(name);
        out.push(':');
        let mut first = true;
        for value in header_values(req.headers, name) {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(&trim_all(value));
        }
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&names.join(";"));
    out.push('\n');
    out.push_str(&payload_hash(req, auth, encoding)?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments() {
        for (input, want) in [
            ("/", "/"),
            ("//", "/"),
            ("/./", "/"),
            ("/./example", "/example"),
            ("//example//", "/example/"),
            ("/example/..", "/"),
            ("/example1/example2/../..", "/"),
            ("/a/b/../c/./d", "/a/c/d"),
            ("/../a", "/a"),
            ("/a/b/", "/a/b/"),
        ] {
            assert_eq!(remove_dot_segments(input), want, "{input}");
        }
    }

    #[test]
    fn uri_double_and_single() {
        assert_eq!(canonical_uri("", UriEncoding::Double), "/");
        assert_eq!(canonical_uri("", UriEncoding::Single), "/");
        assert_eq!(
            canonical_uri("/bucket/my%20key", UriEncoding::Double),
            "/bucket/my%2520key"
        );
        assert_eq!(
            canonical_uri("/bucket/my%20key", UriEncoding::Single),
            "/bucket/my%20key"
        );
        // S3: no normalisation, unencoded bytes get encoded, %XX kept as is.
        assert_eq!(
            canonical_uri("/b/a//./../k y%2a%zz", UriEncoding::Single),
            "/b/a//./../k%20y%2a%25zz"
        );
        assert_eq!(
            canonical_uri("/b/\u{1234}!", UriEncoding::Single),
            "/b/%E1%88%B4%21"
        );
        assert_eq!(canonical_uri("/b/%4", UriEncoding::Single), "/b/%254");
        assert_eq!(canonical_uri("/b/%", UriEncoding::Single), "/b/%25");
    }

    #[test]
    fn query() {
        assert_eq!(canonical_query("", false), "");
        assert_eq!(canonical_query("b=2&a=1&a=0", false), "a=0&a=1&b=2");
        assert_eq!(canonical_query("c+d", false), "c%2Bd=");
        assert_eq!(canonical_query("k=a%20b&k2=a+b", false), "k=a%20b&k2=a%2Bb");
        assert_eq!(canonical_query("k=%2f%7E", false), "k=%2F~");
        assert_eq!(canonical_query("a&&b=", false), "a=&b=");
        assert_eq!(
            canonical_query("X-Amz-Signature=abc&X-Amz-Date=1", true),
            "X-Amz-Date=1"
        );
        assert_eq!(
            canonical_query("X-Amz-Signature=abc&X-Amz-Date=1", false),
            "X-Amz-Date=1&X-Amz-Signature=abc"
        );
        // sorted by the encoded key: "%" (0x25) sorts before letters
        assert_eq!(canonical_query("a=1&%21=2", false), "%21=2&a=1");
    }

    #[test]
    fn trim() {
        assert_eq!(trim_all("  a   b \t c  "), "a b c");
        assert_eq!(trim_all("\"a   b   c\""), "\"a b c\"");
        assert_eq!(trim_all(""), "");
    }
}
