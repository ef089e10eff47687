//! Hangar's metadata store.
//!
//! [`SqliteStore`] is the SQLite engine of [`hangar_core::repo::MetaStore`];
//! its schema is versioned under `migrations/sqlite/`, and its query text
//! (portable SQL, to be shared with the PostgreSQL engine) lives in one
//! module. [`conformance`] is the suite every engine must pass; it is
//! compiled in normal builds so other crates' tests can run it.

pub mod conformance;
mod sql;
mod sqlite;

pub use sqlite::SqliteStore;
