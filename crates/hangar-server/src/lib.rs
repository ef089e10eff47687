//! Hangar's composition root: reads the configuration, opens the storage
//! engines, builds the domain service, and serves every protocol on one
//! listener until SIGINT or SIGTERM.

pub mod auth;
pub mod collect;
pub mod config;
pub mod devclock;
pub mod http;
pub mod state;
mod tls;
pub mod workers;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use hangar_blocks::objects::ObjectFiles;
use hangar_blocks::{LocalBlockStore, ObjectBlockStore};
use hangar_core::blocks::BlockStore;
use hangar_core::clock::SystemClock;
use hangar_core::repo::MetaStore;
use hangar_core::{Hangar, Settings};
use hangar_meta::{PostgresStore, SqliteStore};

pub use config::Config;
use config::{BlocksEngine, BucketsBackend, MetadataEngine};

use crate::auth::Authenticator;
use crate::state::AppState;

/// Checks that the data directory exists (creating it) and is writable, so
/// a bad path fails at start-up with one clear line.
fn prepare_data_dir(path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(path)
        .with_context(|| format!("cannot create data directory {}", path.display()))?;
    let probe = path.join(".hangar-write-probe");
    std::fs::write(&probe, b"probe")
        .with_context(|| format!("data directory {} is not writable", path.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Opens the metadata and block engines `[storage]` selects: SQLite and
/// files in the data directory by default, or PostgreSQL and an S3 bucket
/// (the URLs were checked by `Config::validate`).
async fn open_storage(
    config: &Config,
) -> anyhow::Result<(Arc<dyn MetaStore>, Arc<dyn BlockStore>)> {
    let store: Arc<dyn MetaStore> = match config.storage.metadata_engine()? {
        MetadataEngine::Sqlite => {
            let database = config.data_dir.join("meta.sqlite");
            Arc::new(
                SqliteStore::open(&database)
                    .await
                    .map_err(|error| anyhow::anyhow!("cannot open metadata database: {error}"))?,
            )
        }
        // The store's own error names the URL with the password redacted.
        MetadataEngine::Postgres(url) => Arc::new(
            PostgresStore::connect(&url)
                .await
                .map_err(|error| anyhow::anyhow!("storage.metadata: {error}"))?,
        ),
    };
    let blocks: Arc<dyn BlockStore> = match config.storage.blocks_engine()? {
        BlocksEngine::Local => {
            let blocks = LocalBlockStore::open(&config.data_dir.join("blocks"))
                .map_err(|error| anyhow::anyhow!("cannot open block store: {error}"))?;
            let swept = blocks
                .sweep_incomplete()
                .await
                .map_err(|error| anyhow::anyhow!("cannot sweep the block store: {error}"))?;
            if swept > 0 {
                tracing::warn!(swept, "removed leftovers of interrupted block writes");
            }
            Arc::new(blocks)
        }
        // Nothing is sent yet: an unreachable store or a missing bucket
        // shows at the first block operation.
        BlocksEngine::S3 { bucket, prefix } => Arc::new(
            ObjectBlockStore::s3(config.storage.s3_block_config(bucket, prefix)?)
                .map_err(|error| anyhow::anyhow!("storage.blocks: {error}"))?,
        ),
    };
    Ok((store, blocks))
}

/// The external buckets of `[buckets] backend = "external"` (through the
/// `[storage.s3]` connection), or `None` for the embedded buckets.
async fn open_external_buckets(
    config: &Config,
) -> anyhow::Result<Option<hangar_external::ExternalBuckets>> {
    if config.buckets.backend()? != BucketsBackend::External {
        return Ok(None);
    }
    let settings = config.storage.external_buckets_config(&config.buckets)?;
    let external = hangar_external::ExternalBuckets::connect(settings)
        .await
        .map_err(|error| anyhow::anyhow!("buckets.backend = \"external\": storage.s3: {error}"))?;
    if external.isolates_accounts() {
        tracing::info!(
            store = external.endpoint_description(),
            "external buckets: each account may use only the buckets [buckets.external] grants it"
        );
    } else {
        tracing::warn!(
            store = external.endpoint_description(),
            "external buckets: no [buckets.external] grants are configured, so accounts are not isolated from each other in the external store: every account may store AMIs to and restore from every bucket the service's S3 credentials reach"
        );
    }
    Ok(Some(external))
}

/// Builds the application state from the configuration.
pub async fn build(config: Config) -> anyhow::Result<Arc<AppState>> {
    prepare_data_dir(&config.data_dir)?;
    let buckets_dir = config.data_dir.join("buckets");
    let key_file = config
        .master_key_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join("keys").join("master.key"));
    // The master key first: a bad key file is refused before anything is
    // opened or logged. A new key could decrypt none of the files already
    // there: refuse to create one over existing object files (the key file
    // was lost or moved).
    let key_exists = key_file.try_exists().map_err(|error| {
        anyhow::anyhow!(
            "cannot check master key file {}: {error}",
            key_file.display()
        )
    })?;
    if !key_exists
        && hangar_blocks::objects::holds_object_files(&buckets_dir)
            .map_err(|error| anyhow::anyhow!("cannot list the object files: {error}"))?
    {
        anyhow::bail!(
            "master key file {} is missing but {} holds object files encrypted under a master key: \
             restore the key file (or point master_key_file at it)",
            key_file.display(),
            buckets_dir.display()
        );
    }
    let master_key = hangar_blocks::crypto::MasterKey::load_or_create(&key_file)
        .map_err(|error| anyhow::anyhow!("cannot load the master key: {error}"))?;
    let (store, blocks) = open_storage(&config).await?;
    let object_files = ObjectFiles::open(&buckets_dir, master_key)
        .map_err(|error| anyhow::anyhow!("cannot open the object files: {error}"))?;
    // Logged once the files are open (a failed start stays one line).
    if key_exists {
        tracing::info!(key_file = %key_file.display(), "object files encrypted under the master key in this file");
    } else {
        tracing::info!(key_file = %key_file.display(), "created a new master key for object files: back this file up apart from the data");
    }
    let swept = object_files
        .sweep_temporary()
        .map_err(|error| anyhow::anyhow!("cannot sweep the object files: {error}"))?;
    if swept > 0 {
        tracing::warn!(swept, "removed leftovers of interrupted object writes");
    }
    let mut settings = Settings::new(config.partition.clone(), config.regions.clone());
    settings.deregistered_visible_ms = (config.images.deregistered_visible_secs as i64) * 1000;
    settings.instance_transition_ms = config.instances.transition_ms as i64;
    settings.max_instances_per_launch = config.instances.max_per_launch;
    settings.store_max_in_progress_gib = config.store.max_in_progress_gib;
    settings.store_max_image_gib = config.store.max_image_gib;
    settings.store_max_restore_in_progress_gib = config.store.max_restore_in_progress_gib;
    settings.store_allow_public_buckets = config.store.allow_public_buckets;
    settings.store_concurrency = config.store.concurrency;
    settings.report_delay_ms = config.usage.report_delay_ms()?;
    // One clock for the whole service; with `dev_clock` it resumes at the
    // offset saved by the last advance.
    let clock = Arc::new(SystemClock::new());
    let clock_file = devclock::OffsetFile::in_dir(&config.data_dir);
    if config.dev_clock {
        let offset_ms = clock_file.load()?;
        clock.set_offset(offset_ms);
        tracing::warn!(
            offset_seconds = offset_ms / 1000,
            "dev clock: the service clock runs ahead of wall time and POST /_hangar/clock/advance moves it"
        );
    }
    let waker = Arc::new(workers::Waker::default());
    let hangar = Hangar::new(store, blocks, clock.clone(), settings).with_waker(waker.clone());
    if config.catalog {
        hangar
            .seed_catalog()
            .await
            .map_err(|error| anyhow::anyhow!("cannot seed the starter catalogue: {error}"))?;
    }
    let authenticator = Authenticator::from_config(&config);
    let hangar = Arc::new(hangar);
    // Store and restore tasks write to and read from the embedded buckets,
    // or the buckets of the external S3 store.
    let external = open_external_buckets(&config).await?;
    let objects: Arc<dyn hangar_core::transfer::ObjectBackend> = match &external {
        Some(external) => Arc::new(external.clone()),
        None => Arc::new(hangar_s3::embedded::EmbeddedObjects::new(
            &hangar,
            object_files.clone(),
        )),
    };
    let transfer_options = hangar_transfer::TransferOptions {
        part_size: usize::try_from(config.store.part_size_mib)
            .unwrap_or(16)
            .saturating_mul(1024 * 1024),
        ..hangar_transfer::TransferOptions::default()
    };
    hangar.set_transfer(Arc::new(hangar_transfer::Transfer::new(
        objects,
        transfer_options,
    )));
    let s3_mode = if config.dev_mode() {
        hangar_s3::Mode::Dev {
            default_account: auth::DEV_DEFAULT_ACCOUNT.to_string(),
        }
    } else {
        hangar_s3::Mode::Strict(
            config
                .accounts
                .iter()
                .map(|account| hangar_s3::S3Account {
                    account_id: account.id.clone(),
                    access_key_id: account.access_key_id.clone(),
                    secret: account.secret_access_key.clone(),
                })
                .collect(),
        )
    };
    let s3 = hangar_s3::Gateway::new(
        hangar.clone(),
        object_files.clone(),
        s3_mode,
        config.regions.clone(),
    );
    let s3 = match &external {
        Some(external) => s3.refuse_for_external_store(external.endpoint_description().to_owned()),
        None => s3,
    };
    // At most `[store] concurrency` + 1 tasks run at once: the stores and
    // restores, and a slot so a quick image build is not stuck behind them.
    let task_concurrency = config.store.concurrency + 1;
    Ok(Arc::new(AppState {
        config,
        hangar,
        s3,
        authenticator,
        waker,
        object_files,
        task_concurrency,
        clock,
        clock_file: tokio::sync::Mutex::new(clock_file),
    }))
}

/// Runs the server until a shutdown signal arrives.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    let address = config.listen_addr()?;
    // Certificate and key before anything else: a bad file is a one-line
    // start-up error that leaves nothing behind.
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
        _ => None,
    };
    // Bind first: a port in use is the most common start-up failure, and it
    // should not leave a database behind in a fresh directory.
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    if config.dev_mode() {
        tracing::warn!(
            "dev mode: no [[accounts]] configured, so any access key is accepted without checking signatures (a 12-digit key ID selects that account, anything else is account {}); listening on loopback only",
            auth::DEV_DEFAULT_ACCOUNT
        );
    }
    let state = build(config).await?;
    tracing::info!(
        listen = %address,
        tls = tls.is_some(),
        data_dir = %state.config.data_dir.display(),
        regions = ?state.config.regions,
        accounts = state.config.accounts.len(),
        // Which engines serve this node; no password or secret key.
        metadata = %state.config.storage.metadata_engine()?.describe(),
        blocks = %state.config.storage.blocks_engine()?.describe(),
        buckets = %state.config.buckets.backend,
        startup_ms = started.elapsed().as_millis() as u64,
        "hangar is ready"
    );
    workers::spawn(state.clone());
    match tls {
        None => axum::serve(listener, http::router(state))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("server failed")?,
        Some(acceptor) => {
            tls::serve(listener, acceptor, http::router(state), shutdown_signal()).await;
        }
    }
    tracing::info!("hangar stopped");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; draining connections");
}
