//! What every request handler shares.

use hangar_core::Hangar;

use std::sync::Arc;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::workers::Waker;

pub struct AppState {
    pub config: Config,
    pub hangar: Arc<Hangar>,
    /// The S3 protocol layer (it shares `hangar`).
    pub s3: hangar_s3::Gateway,
    pub authenticator: Authenticator,
    pub waker: Arc<Waker>,
    /// The embedded buckets' files (for the collector).
    pub object_files: hangar_blocks::objects::ObjectFiles,
    /// How many tasks (image builds, stores, restores) run at once.
    pub task_concurrency: usize,
    /// The one service clock `hangar` reads; `/_hangar/clock/advance`
    /// moves it when `dev_clock` is on.
    pub clock: Arc<hangar_core::clock::SystemClock>,
    /// Serialises clock advances so the saved offset and the clock agree.
    pub clock_file: tokio::sync::Mutex<crate::devclock::OffsetFile>,
}
