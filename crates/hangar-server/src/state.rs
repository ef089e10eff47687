//! What every request handler shares.

use hangar_core::Hangar;

use crate::auth::Authenticator;
use crate::config::Config;

pub struct AppState {
    pub config: Config,
    pub hangar: Hangar,
    pub authenticator: Authenticator,
}
