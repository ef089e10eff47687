//! The metadata repository: the narrow interface the domain needs from a
//! storage engine. Engines (SQLite now, PostgreSQL next) implement it, and
//! one conformance suite (in `hangar-meta`) runs against each.

use async_trait::async_trait;
use thiserror::Error;

use crate::model::Image;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// Another live (not deregistered) image of the same owner in the same
    /// region already has this name.
    #[error("image name already in use by {existing_image_id}")]
    ImageNameTaken { existing_image_id: String },
    /// A record with this ID already exists.
    #[error("duplicate id {0}")]
    DuplicateId(String),
    /// The record changed since it was read (its revision moved on), or it
    /// no longer exists. Callers re-read and retry.
    #[error("stale revision for {0}")]
    Conflict(String),
    #[error("storage failure: {0}")]
    Backend(String),
}

impl From<StoreError> for crate::Error {
    fn from(error: StoreError) -> Self {
        crate::Error::Internal(error.to_string())
    }
}

/// Which images a listing should consider. The domain applies visibility and
/// filters on what comes back; the engine only narrows by indexed columns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageListQuery {
    pub region: String,
    /// When set, only images whose owner ID is one of these.
    pub owner_ids: Option<Vec<String>>,
    /// When set, only images whose owner alias is one of these.
    pub owner_aliases: Option<Vec<String>>,
    /// Leave out images in state `deregistered`.
    pub exclude_deregistered: bool,
}

#[async_trait]
pub trait MetaStore: Send + Sync + 'static {
    /// Stores a new image. Fails with `ImageNameTaken` when the owner already
    /// has a live image of that name in that region, `DuplicateId` when the
    /// ID exists. The write is durable when this returns.
    async fn insert_image(&self, image: &Image) -> Result<(), StoreError>;

    /// Replaces the stored image whose ID and revision match `image`, and
    /// stores it with `revision + 1`. Returns the new revision.
    async fn update_image(&self, image: &Image) -> Result<i64, StoreError>;

    /// Inserts the image, or replaces it entirely if the ID exists (used to
    /// keep the starter catalogue current at start-up).
    async fn upsert_image(&self, image: &Image) -> Result<(), StoreError>;

    async fn get_image(&self, image_id: &str) -> Result<Option<Image>, StoreError>;

    /// The images with these IDs that exist, in any order.
    async fn get_images(&self, image_ids: &[String]) -> Result<Vec<Image>, StoreError>;

    /// Images matching the query, ordered by image ID.
    async fn list_images(&self, query: &ImageListQuery) -> Result<Vec<Image>, StoreError>;

    /// Deletes every record (the dev-mode reset).
    async fn reset(&self) -> Result<(), StoreError>;
}
