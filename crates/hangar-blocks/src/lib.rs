//! Hangar's block stores: the engines of [`hangar_core::blocks::BlockStore`].
//!
//! - [`LocalBlockStore`], the default: files in one directory, the server's
//!   `<data_dir>/blocks`.
//! - [`ObjectBlockStore`]: any [`object_store::ObjectStore`] under a key
//!   prefix. Tests run it over `object_store::memory::InMemory`; the S3
//!   engine is this type over `object_store`'s S3 backend, nothing more
//!   ([`ObjectBlockStore::s3`], [`S3BlockConfig`], [`parse_s3_url`]).
//!
//! Both share one key layout, `<prefix>/blocks/<first 2 hex>/<64 hex>` (for
//! the local engine, `<root>/<first 2 hex>/<64 hex>`: its root is the
//! `blocks` directory), and one persisted format, a 13-byte header (magic
//! `HGBK`, version 2, content length as u32 LE, CRC32C of hash and content)
//! before the content: see [`format`](mod@format). `get` checks the header
//! and the object's size, then the CRC32C (a version 1 block: the SHA-256 of
//! its content against its name): any mismatch is [`BlockError::Corrupt`],
//! never data.
//!
//! # Durability of the local engine
//!
//! `object_store` 0.14.2's `LocalFileSystem::put_opts` stages the write in a
//! `<name>#<n>` file and renames it into place, but it calls `sync_all` on the
//! file and fsyncs the directory only when built `with_fsync(true)`, which is
//! off by default (`src/local.rs`: the `fsync: false` defaults in `new` and
//! `new_with_prefix`, `with_fsync`, `sync_and_close` and `rename`). Rather
//! than hang the engine's one durability promise on a flag, and to name
//! staging files so a start-up sweep can find them, [`LocalBlockStore`] does
//! its own writes: `<dir>/.tmp-<random>` in the block's directory, `sync_all`,
//! rename over the final name, `sync_all` of the directory (and of the root
//! when a fan-out directory is created, of the root's parent when `open`
//! creates the root). Reads,
//! listings and deletes go through an [`ObjectBlockStore`] over
//! `LocalFileSystem`, so the format is parsed and verified by the same code
//! for every engine. Deletes are not fsynced: a block that comes back after
//! a crash is harmless and the collector deletes it again.
//!
//! # Puts
//!
//! A put must leave the block good and its modification time fresh: the
//! collector's grace period reads that time, so a stale one could let it
//! delete, as old and unreferenced, a block a snapshot has just put again.
//! [`ObjectBlockStore`] always writes (no `head` first). [`LocalBlockStore`]
//! first reads an existing copy and checks it as every read does (its
//! header and CRC32C, cheap next to writing); a good copy only gets its
//! modification time set to now, which saves creating a file (a restore into
//! the deployment that stored the image writes no block it already has). A
//! missing or damaged copy is written anew, so a put still heals corruption.
//! Writes are atomic (rename, or an object store's atomic put), so
//! concurrent puts of the same block are harmless.
//!
//! # Crash leftovers
//!
//! A crash mid-write leaves a `.tmp-*` file, which is never listed nor read.
//! [`BlockStore::sweep_incomplete`] removes them, anywhere under the local
//! engine's root or an object engine's `<prefix>/blocks` (the server calls it
//! at start-up, before any write; [`LocalBlockStore::open`] does not).
//!
//! [`BlockError::Corrupt`]: hangar_core::blocks::BlockError::Corrupt
//! [`BlockStore::sweep_incomplete`]: hangar_core::blocks::BlockStore::sweep_incomplete

pub mod conformance;
pub mod crypto;
pub mod format;
mod local;
mod object;
pub mod objects;
mod s3;

pub use local::LocalBlockStore;
pub use object::ObjectBlockStore;
pub use s3::{S3BlockConfig, parse_s3_url};
