//! The configuration file (TOML). Every key is documented in
//! `docs/configuration.md`; the top-level keys shown there are a contract
//! that scripts depend on. Unknown keys are refused so typos surface.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use hangar_auth::SecretKey;
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

/// The embedded buckets' housekeeping.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketsConfig {
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

impl Default for BucketsConfig {
    fn default() -> Self {
        Self {
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
}
