//! The S3 block store: [`ObjectBlockStore`] over `object_store`'s
//! [`AmazonS3`](object_store::aws::AmazonS3), for AWS S3 and the
//! S3-compatible stores (MinIO, Ceph, Garage).
//!
//! Nothing here changes the engine: keys, format and verification are those
//! of every [`ObjectBlockStore`]. This module only turns a configuration
//! (`blocks = "s3://bucket/prefix"` plus `[storage.s3]`) into the backend.

use std::sync::Arc;

use hangar_core::blocks::BlockError;
use object_store::aws::{AmazonS3Builder, Checksum};
use object_store::path::Path;

use crate::ObjectBlockStore;

/// Where and how to reach the S3 store holding the blocks.
#[derive(Clone, PartialEq, Eq)]
pub struct S3BlockConfig {
    /// The bucket (it must exist: the block store never creates buckets).
    pub bucket: String,
    /// The key prefix inside the bucket; blocks go under `<prefix>/blocks/`.
    /// Empty: `blocks/` at the bucket's root.
    pub prefix: String,
    /// A custom endpoint such as `http://127.0.0.1:9000` (MinIO, Ceph,
    /// Garage, moto). `None`: AWS's regional endpoint for `region`.
    pub endpoint: Option<String>,
    /// The region requests are signed for.
    pub region: String,
    /// Static credentials. `None` (both): `object_store`'s credential chain
    /// (the `AWS_*` environment variables, web identity, the instance
    /// metadata service).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Allow a plain `http://` endpoint (refused otherwise, so keys and
    /// blocks do not travel in clear text by accident).
    pub allow_http: bool,
}

/// The secret never reaches logs through `{:?}`.
impl std::fmt::Debug for S3BlockConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3BlockConfig")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// The bucket and prefix of an `s3://bucket/prefix` URL (the `blocks`
/// setting). The prefix may be empty (`s3://bucket` or `s3://bucket/`);
/// slashes around it are dropped and empty segments (`a//b`) refused, as
/// they would make keys no S3 listing by prefix finds again.
pub fn parse_s3_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("{url:?} is not an s3:// URL"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if !valid_bucket_name(bucket) {
        return Err(format!(
            "{url:?}: {bucket:?} is not a valid bucket name (3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit)"
        ));
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(str::is_empty) && !prefix.is_empty() {
        return Err(format!("{url:?}: the prefix has an empty path segment"));
    }
    if prefix.contains(['?', '#']) {
        return Err(format!("{url:?}: the prefix cannot hold '?' or '#'"));
    }
    // object_store's Path refuses `.`/`..` segments and control characters:
    // check here so a bad URL fails at parse time with the URL in the message.
    if let Err(error) = Path::parse(prefix) {
        return Err(format!("{url:?}: bad prefix: {error}"));
    }
    Ok((bucket.to_owned(), prefix.to_owned()))
}

/// S3's bucket naming rules (general purpose buckets).
fn valid_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && !name.contains("..")
}

/// Makes ring the process's rustls provider if none is set: object_store's
/// HTTP client (reqwest built with `rustls-no-provider`, see Cargo.toml)
/// takes the default provider, and the tree uses ring, not aws-lc-rs.
fn ensure_rustls_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: a provider is set.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

impl ObjectBlockStore {
    /// A block store over S3 (or an S3-compatible store) as `config` says.
    /// Nothing is sent yet: an unreachable store or a missing bucket shows
    /// at the first operation, as a [`BlockError::Backend`].
    pub fn s3(config: S3BlockConfig) -> Result<Self, BlockError> {
        ensure_rustls_provider();
        let builder = match (&config.access_key_id, &config.secret_access_key) {
            (Some(key), Some(secret)) => AmazonS3Builder::new()
                .with_access_key_id(key)
                .with_secret_access_key(secret),
            (None, None) => AmazonS3Builder::from_env(),
            _ => {
                return Err(BlockError::Backend(
                    "S3 block store: access_key_id and secret_access_key go together".into(),
                ));
            }
        };
        let mut builder = builder
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_allow_http(config.allow_http)
            // Every put carries `x-amz-checksum-sha256` of its body (and
            // multipart parts theirs), which S3 recomputes on receipt and
            // refuses with `BadDigest` on a mismatch: a block damaged on the
            // way is never stored. This adds to, not replaces, the block's
            // own CRC32C checked on every read (format.rs), which also
            // covers damage at rest and on the way back.
            .with_checksum_algorithm(Checksum::SHA256);
        if let Some(endpoint) = &config.endpoint {
            // Path-style (`<endpoint>/<bucket>/<key>`), which every
            // S3-compatible store serves, with no DNS per bucket.
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        let s3 = builder
            .build()
            .map_err(|error| BlockError::Backend(format!("S3 block store: {error}")))?;
        Ok(Self::new(Arc::new(s3), config.prefix.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> (String, String) {
        parse_s3_url(url).unwrap_or_else(|error| panic!("{url}: {error}"))
    }

    #[test]
    fn s3_urls() {
        assert_eq!(
            ok("s3://hangar-blocks/prefix"),
            ("hangar-blocks".into(), "prefix".into())
        );
        assert_eq!(
            ok("s3://hangar-blocks/a/b/"),
            ("hangar-blocks".into(), "a/b".into())
        );
        assert_eq!(
            ok("s3://hangar-blocks"),
            ("hangar-blocks".into(), "".into())
        );
        assert_eq!(
            ok("s3://hangar-blocks/"),
            ("hangar-blocks".into(), "".into())
        );
        assert_eq!(ok("s3://my.bucket-1/x"), ("my.bucket-1".into(), "x".into()));
    }

    #[test]
    fn bad_s3_urls() {
        for url in [
            "hangar-blocks/prefix",
            "https://hangar-blocks/prefix",
            "s3://",
            "s3:///prefix",
            "s3://ab/x",
            "s3://Hangar/x",
            "s3://-hangar/x",
            "s3://hangar-/x",
            "s3://han..gar/x",
            "s3://hangar_blocks/x",
            "s3://hangar/a//b",
            "s3://hangar/a/../b",
            "s3://hangar/a?b",
            &format!("s3://{}/x", "a".repeat(64)),
        ] {
            assert!(parse_s3_url(url).is_err(), "{url} was accepted");
        }
    }

    fn config() -> S3BlockConfig {
        S3BlockConfig {
            bucket: "hangar-blocks".into(),
            prefix: "p".into(),
            endpoint: Some("http://127.0.0.1:9".into()),
            region: "us-east-1".into(),
            access_key_id: Some("AKID".into()),
            secret_access_key: Some("very-secret".into()),
            allow_http: true,
        }
    }

    #[test]
    fn builds_without_contacting_the_store() {
        let store = ObjectBlockStore::s3(config()).unwrap();
        assert!(format!("{store:?}").contains("hangar-blocks"));
    }

    #[test]
    fn aws_endpoints_and_the_credential_chain_build() {
        // No endpoint: AWS's regional HTTPS endpoint (the TLS client is built
        // here, with ring as rustls provider); no keys: the default chain.
        let aws = S3BlockConfig {
            endpoint: None,
            access_key_id: None,
            secret_access_key: None,
            allow_http: false,
            ..config()
        };
        ObjectBlockStore::s3(aws).unwrap();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }

    #[test]
    fn half_credentials_are_refused() {
        let mut half = config();
        half.secret_access_key = None;
        assert!(matches!(
            ObjectBlockStore::s3(half),
            Err(BlockError::Backend(message)) if message.contains("go together")
        ));
    }

    #[test]
    fn debug_hides_the_secret() {
        let shown = format!("{:?}", config());
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}
