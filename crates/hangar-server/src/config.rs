//! The configuration file (TOML). Every key is documented in
//! `docs/configuration.md`; the top-level keys shown there are a contract
//! that scripts depend on. Unknown keys are refused so typos surface.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use hangar_auth::SecretKey;
use hangar_meta::redact_url;
use serde::Deserialize;

fn default_listen() -> String {
    "127.0.0.1:8773".into()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("hangar-data")
}
fn default_partition() -> String {
    "aws".into()
}
fn default_regions() -> Vec<String> {
    vec!["us-east-1".into(), "us-west-2".into(), "eu-west-1".into()]
}
fn default_catalog() -> bool {
    true
}
fn default_max_body_bytes() -> usize {
    2 * 1024 * 1024
}
fn default_max_parameters() -> usize {
    20_000
}
fn default_deregistered_visible_secs() -> u64 {
    3600
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address and port of the one listener that serves every API.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Where the metadata database and (later) data files live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default = "default_partition")]
    pub partition: String,
    /// The regions this endpoint serves; a request's credential scope must
    /// name one of them.
    #[serde(default = "default_regions")]
    pub regions: Vec<String>,
    /// Seed the starter catalogue of public `amazon` images.
    #[serde(default = "default_catalog")]
    pub catalog: bool,
    /// PEM file with the server's certificate chain (leaf first). With
    /// `tls_key`, the listener speaks HTTPS only; see `docs/tls.md`.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM file with the private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// The key file of the master key that encrypts S3 object files at
    /// rest (64 hex digits, mode 0600). Created when missing. Default
    /// `<data_dir>/keys/master.key`; see `docs/s3.md`.
    #[serde(default)]
    pub master_key_file: Option<PathBuf>,
    /// The accounts and their keys. None configured means dev mode.
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub images: ImagesConfig,
    #[serde(default)]
    pub instances: InstancesConfig,
    #[serde(default)]
    pub blocks: BlocksConfig,
    #[serde(default)]
    pub buckets: BucketsConfig,
    #[serde(default)]
    pub store: StoreConfig,
    /// Lets `POST /_hangar/clock/advance` move the service clock forward
    /// (a dev convenience: loopback listeners only). Off by default.
    #[serde(default)]
    pub dev_clock: bool,
    #[serde(default)]
    pub usage: UsageConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub tasks: TasksConfig,
}

fn default_lease_secs() -> u64 {
    30
}

/// How nodes share long tasks (see `docs/deployment.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TasksConfig {
    /// How long a node's claim on a task lasts without a heartbeat, in
    /// seconds (heartbeats come every third of it). A task whose node died
    /// is taken over by another node this long after its last heartbeat.
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u64,
    /// This node's name in the leases. Default: a UUID kept in
    /// `<data_dir>/node-id`, so a restart on the same data directory is
    /// the same node (and takes its old leases back at once). Must differ
    /// between nodes that run at the same time.
    #[serde(default)]
    pub node_id: Option<String>,
}

impl Default for TasksConfig {
    fn default() -> Self {
        Self {
            lease_secs: default_lease_secs(),
            node_id: None,
        }
    }
}

fn default_metadata() -> String {
    "sqlite".into()
}
fn default_blocks_engine() -> String {
    "local".into()
}
fn default_s3_region() -> String {
    "us-east-1".into()
}

/// Where the metadata and the snapshot blocks live (`[storage]`): the
/// embedded default (SQLite and files in `data_dir`), or PostgreSQL and an
/// S3-compatible store shared by several nodes. See `docs/deployment.md`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `"sqlite"` (the file `meta.sqlite` in `data_dir`) or a
    /// `postgres://` / `postgresql://` URL. It may hold a password, so
    /// `Debug` and the logs show it redacted.
    #[serde(default = "default_metadata")]
    pub metadata: String,
    /// `"local"` (files under `<data_dir>/blocks`) or `s3://bucket/prefix`.
    #[serde(default = "default_blocks_engine")]
    pub blocks: String,
    #[serde(default)]
    pub s3: S3StorageConfig,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            metadata: default_metadata(),
            blocks: default_blocks_engine(),
            s3: S3StorageConfig::default(),
        }
    }
}

impl fmt::Debug for StorageConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("StorageConfig")
            .field("metadata", &redact_url(&self.metadata))
            .field("blocks", &self.blocks)
            .field("s3", &self.s3)
            .finish()
    }
}

/// How to reach the S3-compatible store of `blocks = "s3://..."`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3StorageConfig {
    /// `http://host:port` or `https://...` (MinIO, Ceph, Garage, moto).
    /// Omitted: AWS's regional endpoint for `region`.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default = "default_s3_region")]
    pub region: String,
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default, deserialize_with = "deserialize_optional_secret")]
    pub secret_access_key: Option<SecretKey>,
    /// A file holding the secret access key (surrounding whitespace is
    /// dropped), instead of `secret_access_key` in this file.
    #[serde(default)]
    pub secret_access_key_file: Option<PathBuf>,
}

impl Default for S3StorageConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: default_s3_region(),
            access_key_id: None,
            secret_access_key: None,
            secret_access_key_file: None,
        }
    }
}

impl fmt::Debug for S3StorageConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("S3StorageConfig")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            // SecretKey's Debug prints `<redacted>`.
            .field("secret_access_key", &self.secret_access_key)
            .field("secret_access_key_file", &self.secret_access_key_file)
            .finish()
    }
}

fn deserialize_optional_secret<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SecretKey>, D::Error> {
    Option::<String>::deserialize(deserializer).map(|value| value.map(SecretKey::new))
}

/// The metadata engine `[storage] metadata` selects.
#[derive(Clone, PartialEq, Eq)]
pub enum MetadataEngine {
    Sqlite,
    /// The URL as configured (it may hold a password: never log it, use
    /// [`MetadataEngine::describe`]).
    Postgres(String),
}

impl fmt::Debug for MetadataEngine {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.describe())
    }
}

impl MetadataEngine {
    /// For logs: the engine and, for PostgreSQL, the URL without password
    /// or query parameters.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite => "sqlite".into(),
            Self::Postgres(url) => redact_url(url),
        }
    }
}

/// The block engine `[storage] blocks` selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlocksEngine {
    Local,
    S3 { bucket: String, prefix: String },
}

impl BlocksEngine {
    pub fn describe(&self) -> String {
        match self {
            Self::Local => "local".into(),
            Self::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            Self::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

impl StorageConfig {
    /// The metadata engine, or one line naming `storage.metadata`.
    pub fn metadata_engine(&self) -> anyhow::Result<MetadataEngine> {
        let value = self.metadata.as_str();
        if value == "sqlite" {
            return Ok(MetadataEngine::Sqlite);
        }
        let rest = value
            .strip_prefix("postgres://")
            .or_else(|| value.strip_prefix("postgresql://"));
        match rest {
            // A host (or user@host) at least; the rest is libpq's to judge
            // when connecting.
            Some(rest) if !rest.is_empty() && !rest.starts_with('/') => {
                Ok(MetadataEngine::Postgres(value.to_owned()))
            }
            Some(_) => bail!(
                "storage.metadata: {:?} names no host (expected postgres://user@host:port/database)",
                redact_url(value)
            ),
            None => bail!(
                "storage.metadata: {:?} is neither \"sqlite\" nor a postgres:// or postgresql:// URL",
                redact_url(value)
            ),
        }
    }

    /// The block engine, or one line naming `storage.blocks`.
    pub fn blocks_engine(&self) -> anyhow::Result<BlocksEngine> {
        let value = self.blocks.as_str();
        if value == "local" {
            return Ok(BlocksEngine::Local);
        }
        if !value.starts_with("s3://") {
            bail!("storage.blocks: {value:?} is neither \"local\" nor an s3://bucket/prefix URL");
        }
        let (bucket, prefix) = hangar_blocks::parse_s3_url(value)
            .map_err(|error| anyhow::anyhow!("storage.blocks: {error}"))?;
        Ok(BlocksEngine::S3 { bucket, prefix })
    }

    /// The S3 block store's settings for `bucket`/`prefix`, with the secret
    /// read from `secret_access_key_file` or the environment where the
    /// configuration says so. Errors name the key at fault.
    pub fn s3_block_config(
        &self,
        bucket: String,
        prefix: String,
    ) -> anyhow::Result<hangar_blocks::S3BlockConfig> {
        let s3 = &self.s3;
        let allow_http = match &s3.endpoint {
            None => false,
            Some(endpoint) if endpoint.starts_with("http://") => true,
            Some(endpoint) if endpoint.starts_with("https://") => false,
            Some(endpoint) => {
                bail!("storage.s3.endpoint: {endpoint:?} is not an http:// or https:// URL")
            }
        };
        if let Some(endpoint) = &s3.endpoint {
            let host = endpoint.split_once("://").map_or("", |(_, rest)| rest);
            if host.is_empty() || host.starts_with('/') {
                bail!("storage.s3.endpoint: {endpoint:?} names no host");
            }
        }
        if s3.region.is_empty() {
            bail!("storage.s3.region must not be empty");
        }
        let secret = match (&s3.secret_access_key, &s3.secret_access_key_file) {
            (Some(_), Some(_)) => {
                bail!("storage.s3: set secret_access_key or secret_access_key_file, not both")
            }
            (Some(secret), None) => Some(secret.expose().to_owned()),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|error| {
                    anyhow::anyhow!(
                        "storage.s3.secret_access_key_file: cannot read {}: {error}",
                        path.display()
                    )
                })?;
                let secret = text.trim();
                if secret.is_empty() {
                    bail!(
                        "storage.s3.secret_access_key_file: {} is empty",
                        path.display()
                    );
                }
                Some(secret.to_owned())
            }
            (None, None) => None,
        };
        let (access_key_id, secret_access_key) = match (&s3.access_key_id, secret) {
            (Some(key), Some(secret)) => (Some(key.clone()), Some(secret)),
            // Both omitted: the standard AWS credential chain (environment,
            // web identity, instance metadata), resolved by the S3 client.
            (None, None) => (None, None),
            // A key ID in the file and its secret in the environment.
            (Some(key), None) => match std::env::var("AWS_SECRET_ACCESS_KEY") {
                Ok(secret) if !secret.is_empty() => (Some(key.clone()), Some(secret)),
                _ => bail!(
                    "storage.s3.access_key_id is set but no secret is: set secret_access_key, secret_access_key_file or AWS_SECRET_ACCESS_KEY"
                ),
            },
            (None, Some(_)) => {
                bail!("storage.s3: a secret access key is set but access_key_id is not")
            }
        };
        Ok(hangar_blocks::S3BlockConfig {
            bucket,
            prefix,
            endpoint: s3.endpoint.clone(),
            region: s3.region.clone(),
            access_key_id,
            secret_access_key,
            allow_http,
        })
    }

    /// Checks every `[storage]` rule (called by [`Config::validate`]).
    fn validate(&self) -> anyhow::Result<()> {
        self.metadata_engine()?;
        if let BlocksEngine::S3 { bucket, prefix } = self.blocks_engine()? {
            self.s3_block_config(bucket, prefix)?;
        }
        Ok(())
    }
}

fn default_report_delay() -> String {
    "24h".into()
}

/// Usage reporting (`lastLaunchedTime`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageConfig {
    /// How old a launch must be before `lastLaunchedTime` reports it, as a
    /// duration (`"24h"` as on AWS, `"0s"` for at once).
    #[serde(default = "default_report_delay")]
    pub report_delay: String,
}

impl Default for UsageConfig {
    fn default() -> Self {
        Self {
            report_delay: default_report_delay(),
        }
    }
}

impl UsageConfig {
    /// `report_delay` in milliseconds (`Config::validate` has checked it).
    pub fn report_delay_ms(&self) -> anyhow::Result<i64> {
        hangar_core::clock::parse_duration(&self.report_delay)
            .map_err(|error| anyhow::anyhow!("usage.report_delay: {error}"))
    }
}

fn default_store_max_in_progress_gib() -> i64 {
    1200
}
fn default_store_max_image_gib() -> i64 {
    5000
}
fn default_store_max_restore_in_progress_gib() -> i64 {
    600
}
fn default_store_concurrency() -> usize {
    2
}

/// Storing AMIs in buckets and restoring them (`CreateStoreImageTask`,
/// `CreateRestoreImageTask`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Most GiB (sum of the volume sizes of the AMIs being stored) one
    /// account may have in store tasks in progress, per region.
    #[serde(default = "default_store_max_in_progress_gib")]
    pub max_in_progress_gib: i64,
    /// Largest AMI (sum of its volume sizes) that may be stored, in GiB.
    #[serde(default = "default_store_max_image_gib")]
    pub max_image_gib: i64,
    /// Most GiB (sum of the restored volume sizes) one account may have in
    /// restore tasks in progress, per region.
    #[serde(default = "default_store_max_restore_in_progress_gib")]
    pub max_restore_in_progress_gib: i64,
    /// Accept buckets that are public or whose Block Public Access is not
    /// fully on.
    #[serde(default)]
    pub allow_public_buckets: bool,
    /// How many store and restore tasks run at once.
    #[serde(default = "default_store_concurrency")]
    pub concurrency: usize,
    /// Size of the parts a store task uploads, in MiB (5 to 5120, S3's
    /// part limits; the last part may be smaller).
    #[serde(default = "default_store_part_size_mib")]
    pub part_size_mib: u64,
}

fn default_store_part_size_mib() -> u64 {
    16
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            max_in_progress_gib: default_store_max_in_progress_gib(),
            max_image_gib: default_store_max_image_gib(),
            max_restore_in_progress_gib: default_store_max_restore_in_progress_gib(),
            allow_public_buckets: false,
            concurrency: default_store_concurrency(),
            part_size_mib: default_store_part_size_mib(),
        }
    }
}

fn default_transition_ms() -> u64 {
    1000
}
fn default_max_instances_per_launch() -> i64 {
    20
}
fn default_gc_interval_secs() -> u64 {
    600
}
fn default_gc_grace_secs() -> u64 {
    3600
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstancesConfig {
    /// How long an instance stays `pending`, `stopping` or `shutting-down`
    /// before it settles, in milliseconds.
    #[serde(default = "default_transition_ms")]
    pub transition_ms: u64,
    /// Most instances one `RunInstances` starts.
    #[serde(default = "default_max_instances_per_launch")]
    pub max_per_launch: i64,
}

impl Default for InstancesConfig {
    fn default() -> Self {
        Self {
            transition_ms: default_transition_ms(),
            max_per_launch: default_max_instances_per_launch(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlocksConfig {
    /// How often unreferenced blocks are reclaimed, in seconds (0 disables).
    #[serde(default = "default_gc_interval_secs")]
    pub gc_interval_secs: u64,
    /// A block younger than this is never reclaimed, in seconds.
    #[serde(default = "default_gc_grace_secs")]
    pub gc_grace_secs: u64,
}

/// Where the buckets of store and restore tasks live, and the embedded
/// buckets' housekeeping.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketsConfig {
    /// `"embedded"` (Hangar's own S3 buckets, served on its endpoint) or
    /// `"external"` (the buckets of the S3 store `[storage.s3]` names;
    /// Hangar's S3 API is then refused). See `docs/deployment.md`.
    #[serde(default = "default_buckets_backend")]
    pub backend: String,
    #[serde(default)]
    pub external: ExternalBucketsConfig,
    /// How often object files that no record names are removed, and
    /// abandoned multipart uploads aborted, in seconds (0 disables both).
    #[serde(default = "default_collect_interval_secs")]
    pub collect_interval_secs: u64,
    /// An object file younger than this is never removed as an orphan, in
    /// seconds.
    #[serde(default = "default_orphan_grace_secs")]
    pub orphan_grace_secs: u64,
    /// A multipart upload initiated longer ago than this is aborted and its
    /// parts removed, in seconds (0 keeps uploads until completed or
    /// aborted, as S3 does without a lifecycle rule).
    #[serde(default = "default_abandoned_upload_secs")]
    pub abandoned_upload_secs: u64,
}

fn default_collect_interval_secs() -> u64 {
    600
}
fn default_orphan_grace_secs() -> u64 {
    3600
}
fn default_abandoned_upload_secs() -> u64 {
    7 * 24 * 3600
}

fn default_buckets_backend() -> String {
    "embedded".into()
}

/// `[buckets.external]`: who may use which bucket of the external store.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalBucketsConfig {
    /// Bucket name → the account IDs that may store AMIs to it and restore
    /// from it. Empty (the default): every account may use every bucket
    /// the service's S3 credentials reach (logged as a warning at start-up).
    #[serde(default)]
    pub grants: std::collections::BTreeMap<String, Vec<String>>,
}

/// The bucket backend `[buckets] backend` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketsBackend {
    Embedded,
    External,
}

impl BucketsConfig {
    /// The backend, or one line naming `buckets.backend`.
    pub fn backend(&self) -> anyhow::Result<BucketsBackend> {
        match self.backend.as_str() {
            "embedded" => Ok(BucketsBackend::Embedded),
            "external" => Ok(BucketsBackend::External),
            other => bail!("buckets.backend: {other:?} is neither \"embedded\" nor \"external\""),
        }
    }

    /// Checks `[buckets]` (called by [`Config::validate`]): the backend,
    /// the grants, and for an external backend the `[storage.s3]`
    /// connection it uses.
    fn validate(&self, storage: &StorageConfig) -> anyhow::Result<()> {
        let backend = self.backend()?;
        for (bucket, accounts) in &self.external.grants {
            hangar_core::buckets::validate_bucket_name(bucket).map_err(|error| {
                anyhow::anyhow!("buckets.external.grants: {bucket:?} is not a bucket name: {error}")
            })?;
            for account in accounts {
                if account.len() != 12 || !account.bytes().all(|byte| byte.is_ascii_digit()) {
                    bail!(
                        "buckets.external.grants.{bucket}: {account:?} is not a 12-digit account ID"
                    );
                }
            }
        }
        if backend == BucketsBackend::External {
            storage.external_buckets_config(self)?;
        } else if !self.external.grants.is_empty() {
            bail!("buckets.external.grants is set but buckets.backend is not \"external\"");
        }
        Ok(())
    }
}

impl StorageConfig {
    /// The connection of the external buckets: the `[storage.s3]` store,
    /// with its secret resolved as for the S3 block store, and the grants.
    pub fn external_buckets_config(
        &self,
        buckets: &BucketsConfig,
    ) -> anyhow::Result<hangar_external::ExternalConfig> {
        // The block store's resolution of endpoint, region and secret (file,
        // environment, credential chain), without its bucket.
        let connection = self.s3_block_config(String::new(), String::new())?;
        Ok(hangar_external::ExternalConfig {
            endpoint: connection.endpoint,
            region: connection.region,
            access_key_id: connection.access_key_id,
            secret_access_key: connection.secret_access_key,
            grants: buckets.external.grants.clone(),
        })
    }
}

impl Default for BucketsConfig {
    fn default() -> Self {
        Self {
            backend: default_buckets_backend(),
            external: ExternalBucketsConfig::default(),
            collect_interval_secs: default_collect_interval_secs(),
            orphan_grace_secs: default_orphan_grace_secs(),
            abandoned_upload_secs: default_abandoned_upload_secs(),
        }
    }
}

impl Default for BlocksConfig {
    fn default() -> Self {
        Self {
            gc_interval_secs: default_gc_interval_secs(),
            gc_grace_secs: default_gc_grace_secs(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body accepted, in bytes.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Most query parameters accepted in one request.
    #[serde(default = "default_max_parameters")]
    pub max_parameters: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: default_max_body_bytes(),
            max_parameters: default_max_parameters(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagesConfig {
    /// How long a deregistered image still answers `DescribeImages` by ID
    /// (state `deregistered`), in seconds.
    #[serde(default = "default_deregistered_visible_secs")]
    pub deregistered_visible_secs: u64,
}

impl Default for ImagesConfig {
    fn default() -> Self {
        Self {
            deregistered_visible_secs: default_deregistered_visible_secs(),
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    pub id: String,
    pub access_key_id: String,
    #[serde(deserialize_with = "deserialize_secret")]
    pub secret_access_key: SecretKey,
}

fn deserialize_secret<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<SecretKey, D::Error> {
    String::deserialize(deserializer).map(SecretKey::new)
}

impl fmt::Debug for AccountConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("AccountConfig")
            .field("id", &self.id)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        // An empty document takes every default.
        toml::from_str("").expect("the empty configuration is valid")
    }
}

impl Config {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let config: Config = toml::from_str(text).map_err(|error| {
            // toml's message spans several lines with a caret; keep one line.
            let message = error.message().to_string();
            match error.span() {
                Some(span) => {
                    let line = text[..span.start].matches('\n').count() + 1;
                    anyhow::anyhow!("line {line}: {message}")
                }
                None => anyhow::anyhow!("{message}"),
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn dev_mode(&self) -> bool {
        self.accounts.is_empty()
    }

    /// Whether the listener serves HTTPS (both `tls_cert` and `tls_key` set;
    /// `validate` refuses one without the other).
    pub fn tls_enabled(&self) -> bool {
        self.tls_cert.is_some() && self.tls_key.is_some()
    }

    pub fn listen_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listen
            .parse()
            .with_context(|| format!("listen = {:?} is not an address:port", self.listen))
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        let address = self.listen_addr()?;
        if self.dev_mode() && !address.ip().is_loopback() {
            bail!(
                "no [[accounts]] are configured (dev mode accepts any access key), so Hangar only listens on a loopback address; listen = {:?} is not loopback. Configure accounts or listen on 127.0.0.1",
                self.listen
            );
        }
        if self.dev_clock && !address.ip().is_loopback() {
            bail!(
                "dev_clock = true lets anyone move the service clock through /_hangar/clock (no credentials asked), so Hangar only listens on a loopback address with it; listen = {:?} is not loopback. Turn dev_clock off or listen on 127.0.0.1",
                self.listen
            );
        }
        self.usage.report_delay_ms()?;
        self.buckets.validate(&self.storage)?;
        if self.regions.is_empty() {
            bail!("regions must name at least one region");
        }
        for region in &self.regions {
            let well_formed = !region.is_empty()
                && region.len() <= 32
                && region
                    .bytes()
                    .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
            if !well_formed {
                bail!("regions: {region:?} is not a region name like \"us-east-1\"");
            }
        }
        if self.partition.is_empty() {
            bail!("partition must not be empty");
        }
        for (key, value) in [
            ("store.max_in_progress_gib", self.store.max_in_progress_gib),
            ("store.max_image_gib", self.store.max_image_gib),
            (
                "store.max_restore_in_progress_gib",
                self.store.max_restore_in_progress_gib,
            ),
        ] {
            if value < 1 {
                bail!("{key} must be at least 1 (got {value})");
            }
        }
        if !(5..=5120).contains(&self.store.part_size_mib) {
            bail!(
                "store.part_size_mib must be 5 to 5120 (got {})",
                self.store.part_size_mib
            );
        }
        if self.store.concurrency < 1 {
            bail!("store.concurrency must be at least 1");
        }
        if !(3..=3600).contains(&self.tasks.lease_secs) {
            bail!(
                "tasks.lease_secs must be 3 to 3600 (got {})",
                self.tasks.lease_secs
            );
        }
        if let Some(node_id) = &self.tasks.node_id
            && (node_id.is_empty() || node_id.len() > 128 || node_id.chars().any(char::is_control))
        {
            bail!("tasks.node_id must be 1 to 128 printable characters (got {node_id:?})");
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                bail!(
                    "tls_cert is set but tls_key is not: HTTPS needs both (or neither, for plain HTTP)"
                )
            }
            (None, Some(_)) => {
                bail!(
                    "tls_key is set but tls_cert is not: HTTPS needs both (or neither, for plain HTTP)"
                )
            }
            _ => {}
        }
        let mut keys = std::collections::HashSet::new();
        let mut ids = std::collections::HashSet::new();
        for account in &self.accounts {
            if !hangar_core::ids::is_account_id(&account.id) {
                bail!("accounts: id {:?} is not a 12-digit account ID", account.id);
            }
            if account.access_key_id.len() < 16 || account.access_key_id.len() > 128 {
                bail!(
                    "accounts: access_key_id {:?} must be 16 to 128 characters",
                    account.access_key_id
                );
            }
            if account.secret_access_key.expose().len() < 16 {
                bail!(
                    "accounts: the secret_access_key of {} must be at least 16 characters",
                    account.id
                );
            }
            if !keys.insert(account.access_key_id.clone()) {
                bail!(
                    "accounts: access_key_id {:?} appears twice",
                    account.access_key_id
                );
            }
            if !ids.insert(account.id.clone()) {
                bail!("accounts: account {} appears twice", account.id);
            }
        }
        if self.limits.max_body_bytes < 1024 {
            bail!("limits.max_body_bytes must be at least 1024");
        }
        self.storage.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let config = Config::parse("").unwrap();
        assert_eq!(config.listen, "127.0.0.1:8773");
        assert_eq!(config.regions.len(), 3);
        assert!(config.catalog);
        assert!(config.dev_mode());
        assert_eq!(config.store.max_in_progress_gib, 1200);
        assert_eq!(config.store.max_image_gib, 5000);
        assert_eq!(config.store.max_restore_in_progress_gib, 600);
        assert!(!config.store.allow_public_buckets);
        assert_eq!(config.store.concurrency, 2);
    }

    #[test]
    fn store_section() {
        let config = Config::parse(
            "[store]\nmax_in_progress_gib = 10\nallow_public_buckets = true\nconcurrency = 4\n",
        )
        .unwrap();
        assert_eq!(config.store.max_in_progress_gib, 10);
        assert!(config.store.allow_public_buckets);
        assert_eq!(config.store.concurrency, 4);
        assert!(Config::parse("[store]\nbogus = 1\n").is_err());
        assert!(Config::parse("[store]\nmax_image_gib = 0\n").is_err());
        assert!(Config::parse("[store]\nconcurrency = 0\n").is_err());
        assert!(Config::parse("[store]\npart_size_mib = 4\n").is_err());
        assert_eq!(Config::parse("").expect("defaults").store.part_size_mib, 16);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = Config::parse("lisen = \"127.0.0.1:1\"").unwrap_err();
        assert!(format!("{error:#}").contains("unknown field"), "{error:#}");
    }

    #[test]
    fn dev_mode_only_on_loopback() {
        let error = Config::parse("listen = \"0.0.0.0:8773\"").unwrap_err();
        assert!(format!("{error:#}").contains("loopback"), "{error:#}");
        let with_accounts = Config::parse(
            "listen = \"0.0.0.0:8773\"\n[[accounts]]\nid = \"111111111111\"\naccess_key_id = \"AKIAEXAMPLEALICE0001\"\nsecret_access_key = \"alice-secret-key-0001\"\n",
        )
        .unwrap();
        assert!(!with_accounts.dev_mode());
    }

    #[test]
    fn secrets_never_in_debug() {
        let config = Config::parse(
            "[[accounts]]\nid = \"111111111111\"\naccess_key_id = \"AKIAEXAMPLEALICE0001\"\nsecret_access_key = \"very-secret-value-123\"\n",
        )
        .unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("very-secret-value-123"), "{debug}");
        assert!(debug.contains("AKIAEXAMPLEALICE0001"));
    }

    #[test]
    fn tls_needs_both_files() {
        let config = Config::parse("").unwrap();
        assert!(!config.tls_enabled());
        let config = Config::parse(
            "tls_cert = \"/etc/hangar/cert.pem\"\ntls_key = \"/etc/hangar/key.pem\"\n",
        )
        .unwrap();
        assert!(config.tls_enabled());
        assert_eq!(
            config.tls_cert.as_deref(),
            Some(Path::new("/etc/hangar/cert.pem"))
        );
        let error = Config::parse("tls_cert = \"cert.pem\"").unwrap_err();
        assert!(format!("{error:#}").contains("tls_key is not"), "{error:#}");
        let error = Config::parse("tls_key = \"key.pem\"").unwrap_err();
        assert!(
            format!("{error:#}").contains("tls_cert is not"),
            "{error:#}"
        );
    }

    #[test]
    fn dev_clock_and_usage() {
        let config = Config::parse("").unwrap();
        assert!(!config.dev_clock);
        assert_eq!(config.usage.report_delay_ms().unwrap(), 86_400_000);
        let config =
            Config::parse("dev_clock = true\n[usage]\nreport_delay = \"1h30m\"\n").unwrap();
        assert!(config.dev_clock);
        assert_eq!(config.usage.report_delay_ms().unwrap(), 5_400_000);
        assert_eq!(
            Config::parse("[usage]\nreport_delay = \"0s\"\n")
                .unwrap()
                .usage
                .report_delay_ms()
                .unwrap(),
            0
        );
        let error = Config::parse("[usage]\nreport_delay = \"soon\"\n").unwrap_err();
        assert!(
            format!("{error:#}").contains("usage.report_delay"),
            "{error:#}"
        );
        assert!(Config::parse("[usage]\nreport_delay = 5\n").is_err());
        let error = Config::parse(
            "listen = \"0.0.0.0:8773\"\ndev_clock = true\n[[accounts]]\nid = \"111111111111\"\naccess_key_id = \"AKIAEXAMPLEALICE0001\"\nsecret_access_key = \"alice-secret-key-0001\"\n",
        )
        .unwrap_err();
        assert!(format!("{error:#}").contains("dev_clock"), "{error:#}");
        assert!(!format!("{error:#}").contains('\n'), "{error:#}");
    }

    #[test]
    fn bad_accounts() {
        assert!(Config::parse("[[accounts]]\nid = \"1\"\naccess_key_id = \"AKIAEXAMPLEALICE0001\"\nsecret_access_key = \"alice-secret-key-0001\"\n").is_err());
        assert!(Config::parse("regions = []").is_err());
        assert!(Config::parse("regions = [\"US East\"]").is_err());
    }

    #[test]
    fn storage_defaults_are_embedded() {
        let config = Config::parse("").unwrap();
        assert_eq!(
            config.storage.metadata_engine().unwrap(),
            MetadataEngine::Sqlite
        );
        assert_eq!(config.storage.blocks_engine().unwrap(), BlocksEngine::Local);
        assert_eq!(config.storage.s3.region, "us-east-1");
    }

    #[test]
    fn storage_metadata_urls() {
        for url in [
            "postgres://postgres@127.0.0.1:5432/hangar",
            "postgresql://u:p@db.example/hangar",
        ] {
            let config = Config::parse(&format!("[storage]\nmetadata = \"{url}\"\n")).unwrap();
            assert_eq!(
                config.storage.metadata_engine().unwrap(),
                MetadataEngine::Postgres(url.into())
            );
        }
        for bad in [
            "mysql://db/hangar",
            "postgres://",
            "postgres:///hangar",
            "SQLite",
        ] {
            let error = Config::parse(&format!("[storage]\nmetadata = \"{bad}\"\n")).unwrap_err();
            let message = format!("{error:#}");
            assert!(message.contains("storage.metadata"), "{message}");
            assert!(!message.contains('\n'), "{message}");
        }
    }

    #[test]
    fn storage_blocks_urls() {
        let config = Config::parse(
            "[storage]\nblocks = \"s3://hangar-blocks/some/prefix/\"\n[storage.s3]\naccess_key_id = \"AKIDEXAMPLE\"\nsecret_access_key = \"s3-secret-value\"\n",
        )
        .unwrap();
        assert_eq!(
            config.storage.blocks_engine().unwrap(),
            BlocksEngine::S3 {
                bucket: "hangar-blocks".into(),
                prefix: "some/prefix".into()
            }
        );
        for bad in [
            "file:///tmp",
            "s3://UPPER/x",
            "s3://ab",
            "s3://bucket/a//b",
            "Local",
        ] {
            let error = Config::parse(&format!("[storage]\nblocks = \"{bad}\"\n")).unwrap_err();
            assert!(
                format!("{error:#}").contains("storage.blocks"),
                "{bad}: {error:#}"
            );
        }
    }

    #[test]
    fn storage_s3_settings() {
        let base = "[storage]\nblocks = \"s3://bucket-one/p\"\n[storage.s3]\n";
        let config = Config::parse(&format!(
            "{base}endpoint = \"http://127.0.0.1:9000\"\nregion = \"eu-west-1\"\naccess_key_id = \"AKIDEXAMPLE\"\nsecret_access_key = \"s3-secret-value\"\n"
        ))
        .unwrap();
        let s3 = config
            .storage
            .s3_block_config("bucket-one".into(), "p".into())
            .unwrap();
        assert!(s3.allow_http);
        assert_eq!(s3.region, "eu-west-1");
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(s3.secret_access_key.as_deref(), Some("s3-secret-value"));
        let https = Config::parse(&format!(
            "{base}endpoint = \"https://s3.example\"\naccess_key_id = \"AKIDEXAMPLE\"\nsecret_access_key = \"s3-secret-value\"\n"
        ))
        .unwrap();
        assert!(
            !https
                .storage
                .s3_block_config("bucket-one".into(), "p".into())
                .unwrap()
                .allow_http
        );
        // Neither key: the standard credential chain.
        let chain = Config::parse(base).unwrap();
        let s3 = chain
            .storage
            .s3_block_config("bucket-one".into(), "p".into())
            .unwrap();
        assert_eq!((s3.access_key_id, s3.secret_access_key), (None, None));
        assert!(!s3.allow_http);
        let error = Config::parse(&format!("{base}endpoint = \"ftp://x\"\n")).unwrap_err();
        assert!(
            format!("{error:#}").contains("storage.s3.endpoint"),
            "{error:#}"
        );
        let error =
            Config::parse(&format!("{base}secret_access_key = \"s3-secret-value\"\n")).unwrap_err();
        assert!(
            format!("{error:#}").contains("access_key_id is not"),
            "{error:#}"
        );
        assert!(Config::parse(&format!("{base}bogus = 1\n")).is_err());
        assert!(Config::parse("[storage]\nbogus = 1\n").is_err());
    }

    #[test]
    fn storage_secret_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "file-secret-value\n").unwrap();
        let base = "[storage]\nblocks = \"s3://bucket-one\"\n[storage.s3]\naccess_key_id = \"AKIDEXAMPLE\"\n";
        let config = Config::parse(&format!(
            "{base}secret_access_key_file = \"{}\"\n",
            path.display()
        ))
        .unwrap();
        let s3 = config
            .storage
            .s3_block_config("bucket-one".into(), String::new())
            .unwrap();
        assert_eq!(s3.secret_access_key.as_deref(), Some("file-secret-value"));
        let error = Config::parse(&format!(
            "{base}secret_access_key_file = \"{}\"\n",
            dir.path().join("missing").display()
        ))
        .unwrap_err();
        assert!(
            format!("{error:#}").contains("storage.s3.secret_access_key_file"),
            "{error:#}"
        );
        let error = Config::parse(&format!(
            "{base}secret_access_key = \"x\"\nsecret_access_key_file = \"{}\"\n",
            path.display()
        ))
        .unwrap_err();
        assert!(format!("{error:#}").contains("not both"), "{error:#}");
    }

    #[test]
    fn storage_secrets_never_in_debug() {
        let config = Config::parse(
            "[storage]\nmetadata = \"postgres://hangar:db-password-1@db/hangar?password=db-password-2\"\nblocks = \"s3://bucket-one\"\n[storage.s3]\naccess_key_id = \"AKIDEXAMPLE\"\nsecret_access_key = \"s3-secret-value\"\n",
        )
        .unwrap();
        let debug = format!("{config:?}");
        for secret in ["db-password-1", "db-password-2", "s3-secret-value"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("AKIDEXAMPLE"), "{debug}");
        let engine = config.storage.metadata_engine().unwrap();
        assert_eq!(engine.describe(), "postgres://hangar:***@db/hangar");
        assert!(!format!("{engine:?}").contains("db-password"));
        let blocks = config
            .storage
            .s3_block_config("bucket-one".into(), String::new())
            .unwrap();
        assert!(!format!("{blocks:?}").contains("s3-secret-value"));
        assert_eq!(
            config.storage.blocks_engine().unwrap().describe(),
            "s3://bucket-one"
        );
    }
}
