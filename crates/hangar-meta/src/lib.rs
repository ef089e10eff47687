//! Hangar's metadata store.
//!
//! [`SqliteStore`] is the SQLite engine of [`hangar_core::repo::MetaStore`]
//! and [`PostgresStore`] its PostgreSQL engine, for several nodes sharing one
//! database; their schemas are versioned under `migrations/sqlite/` and
//! `migrations/postgres/`, and their query text (portable SQL) lives in one
//! module. [`conformance`] is the suite every engine must pass; it is
//! compiled in normal builds so other crates' tests can run it.

pub mod conformance;
mod postgres;
mod sql;
mod sqlite;

pub use postgres::{PostgresStore, redact_url};
pub use sqlite::SqliteStore;
