//! The service object the wire crates call: one `Hangar` per process, holding
//! the repository, the clock and the settings.

use std::sync::Arc;

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
}

impl Settings {
    pub fn new(partition: impl Into<String>, regions: Vec<String>) -> Self {
        Self {
            partition: partition.into(),
            regions,
            deregistered_visible_ms: 60 * 60 * 1000,
        }
    }
}

pub struct Hangar {
    pub(crate) store: Arc<dyn MetaStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) settings: Settings,
}

impl Hangar {
    pub fn new(store: Arc<dyn MetaStore>, clock: Arc<dyn Clock>, settings: Settings) -> Self {
        Self {
            store,
            clock,
            settings,
        }
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
        }
        Ok(())
    }
}
