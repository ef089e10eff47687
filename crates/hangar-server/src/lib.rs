//! Hangar's composition root: reads the configuration, opens the storage
//! engines, builds the domain service, and serves every protocol on one
//! listener until SIGINT or SIGTERM.

pub mod auth;
pub mod config;
pub mod http;
pub mod state;
pub mod workers;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use hangar_blocks::LocalBlockStore;
use hangar_blocks::objects::ObjectFiles;
use hangar_core::blocks::BlockStore;
use hangar_core::clock::SystemClock;
use hangar_core::{Hangar, Settings};
use hangar_meta::SqliteStore;

pub use config::Config;

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

/// Builds the application state from the configuration.
pub async fn build(config: Config) -> anyhow::Result<Arc<AppState>> {
    prepare_data_dir(&config.data_dir)?;
    let database = config.data_dir.join("meta.sqlite");
    let store = SqliteStore::open(&database)
        .await
        .map_err(|error| anyhow::anyhow!("cannot open metadata database: {error}"))?;
    let blocks = LocalBlockStore::open(&config.data_dir.join("blocks"))
        .map_err(|error| anyhow::anyhow!("cannot open block store: {error}"))?;
    let swept = blocks
        .sweep_incomplete()
        .await
        .map_err(|error| anyhow::anyhow!("cannot sweep the block store: {error}"))?;
    if swept > 0 {
        tracing::warn!(swept, "removed leftovers of interrupted block writes");
    }
    let object_files = ObjectFiles::open(&config.data_dir.join("buckets"))
        .map_err(|error| anyhow::anyhow!("cannot open the object files: {error}"))?;
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
    let waker = Arc::new(workers::Waker::default());
    let hangar = Hangar::new(
        Arc::new(store),
        Arc::new(blocks),
        Arc::new(SystemClock::new()),
        settings,
    )
    .with_waker(waker.clone());
    if config.catalog {
        hangar
            .seed_catalog()
            .await
            .map_err(|error| anyhow::anyhow!("cannot seed the starter catalogue: {error}"))?;
    }
    let authenticator = Authenticator::from_config(&config);
    let hangar = Arc::new(hangar);
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
        object_files,
        s3_mode,
        config.regions.clone(),
    );
    Ok(Arc::new(AppState {
        config,
        hangar,
        s3,
        authenticator,
        waker,
    }))
}

/// Runs the server until a shutdown signal arrives.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let started = Instant::now();
    let address = config.listen_addr()?;
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
        data_dir = %state.config.data_dir.display(),
        regions = ?state.config.regions,
        accounts = state.config.accounts.len(),
        startup_ms = started.elapsed().as_millis() as u64,
        "hangar is ready"
    );
    workers::spawn(state.clone());
    axum::serve(listener, http::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("server failed")?;
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
