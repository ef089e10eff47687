//! The service object the wire crates call: one `Hangar` per process, holding
//! the repository, the clock and the settings.

use std::sync::Arc;

use crate::blocks::BlockStore;
use crate::clock::Clock;
use crate::error::Error;
use crate::repo::MetaStore;

/// Who is asking, established by the authentication layer: the account the
/// verified credentials belong to and the region of the credential scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub account_id: String,
    pub region: String,
}

/// The domain's knobs, taken from the configuration file.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `aws`, `aws-cn`, `aws-us-gov`, ...: where store/restore and ancestry
    /// draw partition boundaries.
    pub partition: String,
    pub regions: Vec<String>,
    /// How long a deregistered image still answers `DescribeImages` by ID
    /// (with state `deregistered`) before it reads as not found.
    pub deregistered_visible_ms: i64,
    /// How long an instance stays `pending` (and `stopping`,
    /// `shutting-down`) before it settles.
    pub instance_transition_ms: i64,
    /// Most instances one `RunInstances` may start.
    pub max_instances_per_launch: i64,
    /// `[store]`: the most GiB (sum of the volume sizes of the AMIs being
    /// stored) an account may have in store tasks in progress.
    pub store_max_in_progress_gib: i64,
    /// `[store]`: the largest AMI (sum of its volume sizes) that may be
    /// stored, in GiB.
    pub store_max_image_gib: i64,
    /// `[store]`: the most GiB (sum of the restored volume sizes) an account
    /// may have in restore tasks in progress.
    pub store_max_restore_in_progress_gib: i64,
    /// `[store]`: accept buckets that are public or whose Block Public
    /// Access is not fully on.
    pub store_allow_public_buckets: bool,
    /// `[store]`: how many store and restore tasks run at once.
    pub store_concurrency: usize,
    /// `[usage] report_delay`: how old a launch must be (on the service
    /// clock) before `lastLaunchedTime` reports it.
    pub report_delay_ms: i64,
}

impl Settings {
    pub fn new(partition: impl Into<String>, regions: Vec<String>) -> Self {
        Self {
            partition: partition.into(),
            regions,
            deregistered_visible_ms: 60 * 60 * 1000,
            instance_transition_ms: 1000,
            max_instances_per_launch: 20,
            store_max_in_progress_gib: 1200,
            store_max_image_gib: 5000,
            store_max_restore_in_progress_gib: 600,
            store_allow_public_buckets: false,
            store_concurrency: 2,
            report_delay_ms: 24 * 60 * 60 * 1000,
        }
    }
}

/// Told when a task is created, so the runner picks it up without waiting
/// for its next poll.
pub trait TaskWaker: Send + Sync + 'static {
    fn wake(&self);
}

struct NoWaker;

impl TaskWaker for NoWaker {
    fn wake(&self) {}
}

pub struct Hangar {
    pub(crate) store: Arc<dyn MetaStore>,
    pub(crate) blocks: Arc<dyn BlockStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: Settings,
    pub(crate) waker: Arc<dyn TaskWaker>,
    /// Block writers (a block put together with the map entry that points at
    /// it) hold this shared; the collector holds it exclusively while it
    /// re-checks and deletes, so it never deletes a block a writer is about
    /// to reference.
    pub(crate) block_guard: tokio::sync::RwLock<()>,
    /// The work of store and restore tasks (see `crate::transfer`); without
    /// it those tasks fail.
    pub(crate) transfer: std::sync::OnceLock<Arc<dyn crate::transfer::ImageTransfer>>,
    /// The leases this node's runner holds, and the block writers' time
    /// fence (see `crate::build::NodeLeases`).
    pub(crate) leases: crate::build::NodeLeases,
}

impl Hangar {
    pub fn new(
        store: Arc<dyn MetaStore>,
        blocks: Arc<dyn BlockStore>,
        clock: Arc<dyn Clock>,
        settings: Settings,
    ) -> Self {
        Self {
            store,
            blocks,
            clock,
            settings,
            waker: Arc::new(NoWaker),
            block_guard: tokio::sync::RwLock::new(()),
            transfer: std::sync::OnceLock::new(),
            leases: crate::build::NodeLeases::default(),
        }
    }

    /// Registers the work of store and restore tasks (once; later calls
    /// change nothing). Set after the `Hangar` is shared, because the
    /// embedded buckets' backend refers back to it.
    pub fn set_transfer(&self, transfer: Arc<dyn crate::transfer::ImageTransfer>) {
        let _ = self.transfer.set(transfer);
    }

    pub fn transfer(&self) -> Option<&Arc<dyn crate::transfer::ImageTransfer>> {
        self.transfer.get()
    }

    pub fn with_waker(mut self, waker: Arc<dyn TaskWaker>) -> Self {
        self.waker = waker;
        self
    }

    pub fn blocks(&self) -> &Arc<dyn BlockStore> {
        &self.blocks
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn store(&self) -> &Arc<dyn MetaStore> {
        &self.store
    }

    /// Wipes all state and reseeds the catalogue (the dev-mode reset).
    pub async fn reset(&self, seed_catalog: bool) -> Result<(), Error> {
        self.store.reset().await?;
        if seed_catalog {
            self.seed_catalog().await?;
        }
        Ok(())
    }

    /// Writes the starter catalogue for every configured region. Idempotent:
    /// the records have stable IDs and are replaced in place.
    pub async fn seed_catalog(&self) -> Result<(), Error> {
        for region in &self.settings.regions {
            for image in crate::catalog::images_for(region) {
                if self.store.get_image(&image.image_id).await?.is_none() {
                    self.store.upsert_image(&image).await?;
                }
            }
            for snapshot in crate::catalog::snapshots_for(region) {
                if self
                    .store
                    .get_snapshot(&snapshot.snapshot_id)
                    .await?
                    .is_none()
                {
                    match self.store.insert_snapshot(&snapshot).await {
                        Ok(()) | Err(crate::repo::StoreError::DuplicateId(_)) => {}
                        Err(other) => return Err(other.into()),
                    }
                }
            }
        }
        Ok(())
    }
}
