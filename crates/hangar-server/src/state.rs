//! What every request handler shares.

use hangar_core::Hangar;

use std::sync::Arc;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::workers::Waker;

pub struct AppState {
    pub config: Config,
    pub hangar: Hangar,
    pub authenticator: Authenticator,
    pub waker: Arc<Waker>,
}
