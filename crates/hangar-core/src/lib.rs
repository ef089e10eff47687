//! Hangar's domain layer.
//!
//! This crate holds the rules of the service: who may see and change which
//! image, how filters and pagination behave, and what a stored record looks
//! like. It knows nothing about HTTP, XML, SQL or files: the wire crates turn
//! requests into the typed inputs defined here, and the storage engines
//! implement the [`repo::MetaStore`] trait defined here.

pub mod access;
pub mod blocks;
pub mod buckets;
pub mod build;
pub mod catalog;
pub mod clock;
pub mod error;
pub mod filter;
pub mod ids;
pub mod images;
pub mod instances;
pub mod model;
pub mod multipart;
pub mod objects;
pub mod page;
pub mod policy;
pub mod regions;
pub mod repo;
pub mod service;
pub mod snapshots;
pub mod store;
pub mod tags;
pub mod timefmt;
pub mod transfer;
pub mod usage;

pub use error::{Error, ResourceKind, Result};
pub use service::{Caller, Hangar, Settings};
