//! Query text shared by the engines. Portable SQL only: `$n` placeholders,
//! `BIGINT`/`TEXT`, `ON CONFLICT DO NOTHING` (SQLite 3.24+, PostgreSQL 9.5+).
//! Every statement reads or writes whole rows in the column order below.

use hangar_core::model::Image;
use hangar_core::repo::ImageListQuery;

/// The most values bound in one `IN (...)` list. SQLite's default limit on
/// host parameters is 32766 (999 before 3.32), PostgreSQL's 65535.
pub(crate) const IN_CHUNK: usize = 500;

/// Columns a read returns, in this order.
const READ_COLUMNS: &str = "image_id, revision, record_version, doc";

/// Inserts a row, or does nothing when it would break the primary key or the
/// live-name index; the caller then looks up which one it was.
/// Binds: the ten columns of [`ImageRow`] in declaration order.
pub(crate) const INSERT_IMAGE: &str = "INSERT INTO images \
     (image_id, region, owner_id, owner_alias, name, state, created_ms, revision, record_version, doc) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT DO NOTHING";

/// Replaces a row whose revision is still `$11`. Binds: the ten columns of
/// [`ImageRow`] (its `revision` is the new one), then the expected revision.
/// Affects no row when the image is gone or its revision moved on.
pub(crate) const UPDATE_IMAGE: &str = "UPDATE images SET \
     region = $2, owner_id = $3, owner_alias = $4, name = $5, state = $6, created_ms = $7, \
     revision = $8, record_version = $9, doc = $10 \
     WHERE image_id = $1 AND revision = $11";

pub(crate) const SELECT_IMAGE: &str =
    "SELECT image_id, revision, record_version, doc FROM images WHERE image_id = $1";

/// The live image (other than `$4`) holding a name: who an `ImageNameTaken`
/// points at.
pub(crate) const SELECT_LIVE_NAME_HOLDER: &str = "SELECT image_id FROM images \
     WHERE region = $1 AND owner_id = $2 AND name = $3 AND state <> 'deregistered' \
     AND image_id <> $4 \
     ORDER BY image_id LIMIT 1";

pub(crate) const DELETE_ALL: &str = "DELETE FROM images";

/// The indexed columns of an image plus its serialized form, ready to bind.
#[derive(Debug, Clone)]
pub(crate) struct ImageRow {
    pub image_id: String,
    pub region: String,
    pub owner_id: String,
    pub owner_alias: Option<String>,
    pub name: String,
    pub state: &'static str,
    pub created_ms: i64,
    pub revision: i64,
    pub record_version: i64,
    pub doc: String,
}

impl ImageRow {
    /// The row for `image` stored at `revision` (the stored document carries
    /// that revision too, so a later read returns it).
    pub(crate) fn new(image: &Image, revision: i64) -> Result<Self, String> {
        let doc = if image.revision == revision {
            serde_json::to_string(image)
        } else {
            let mut stored = image.clone();
            stored.revision = revision;
            serde_json::to_string(&stored)
        }
        .map_err(|error| format!("cannot serialize image {}: {error}", image.image_id))?;
        Ok(Self {
            image_id: image.image_id.clone(),
            region: image.region.clone(),
            owner_id: image.owner_id.clone(),
            owner_alias: image.owner_alias.clone(),
            name: image.name.clone(),
            state: image.state.as_str(),
            created_ms: image.creation_ms,
            revision,
            record_version: Image::RECORD_VERSION,
            doc,
        })
    }
}

/// Turns a stored row back into an image, refusing a document format this
/// build does not know. The `revision` column wins over the document's copy.
pub(crate) fn decode_image(
    image_id: &str,
    revision: i64,
    record_version: i64,
    doc: &str,
) -> Result<Image, String> {
    if record_version != Image::RECORD_VERSION {
        return Err(format!(
            "image {image_id} is stored with record version {record_version}; \
             this build reads record version {}",
            Image::RECORD_VERSION
        ));
    }
    let mut image: Image = serde_json::from_str(doc)
        .map_err(|error| format!("image {image_id} has an unreadable record: {error}"))?;
    image.revision = revision;
    Ok(image)
}

/// `$first, $first+1, ...` for `count` values.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `SELECT ... WHERE image_id IN ($1, ..., $count)`.
pub(crate) fn select_images_by_id(count: usize) -> String {
    format!(
        "SELECT {READ_COLUMNS} FROM images WHERE image_id IN ({})",
        placeholders(1, count)
    )
}

/// A listing query and the values to bind to it, in order; `None` when the
/// query cannot match anything (an empty `IN` list).
pub(crate) fn list_images(query: &ImageListQuery) -> Option<(String, Vec<&str>)> {
    let mut sql = format!("SELECT {READ_COLUMNS} FROM images WHERE region = $1");
    let mut binds = vec![query.region.as_str()];
    for (column, values) in [
        ("owner_id", &query.owner_ids),
        ("owner_alias", &query.owner_aliases),
    ] {
        if let Some(values) = values {
            if values.is_empty() {
                return None;
            }
            sql.push_str(&format!(
                " AND {column} IN ({})",
                placeholders(binds.len() + 1, values.len())
            ));
            binds.extend(values.iter().map(String::as_str));
        }
    }
    if query.exclude_deregistered {
        sql.push_str(" AND state <> 'deregistered'");
    }
    sql.push_str(" ORDER BY image_id");
    Some((sql, binds))
}

#[cfg(test)]
mod tests {
    use super::*;

    use hangar_core::model::ImageState;

    /// The queries, the live-name index and the model agree on the word.
    #[test]
    fn deregistered_matches_the_model() {
        let word = format!("state <> '{}'", ImageState::Deregistered.as_str());
        let schema = include_str!("../migrations/sqlite/0001_images.sql");
        assert!(schema.contains(&format!("WHERE {word}")));
        assert!(SELECT_LIVE_NAME_HOLDER.contains(&word));
        let query = ImageListQuery {
            exclude_deregistered: true,
            ..ImageListQuery::default()
        };
        assert!(list_images(&query).expect("some").0.contains(&word));
    }

    #[test]
    fn listing_binds_in_placeholder_order() {
        let query = ImageListQuery {
            region: "r".into(),
            owner_ids: Some(vec!["a".into(), "b".into()]),
            owner_aliases: Some(vec!["amazon".into()]),
            exclude_deregistered: true,
        };
        let (sql, binds) = list_images(&query).expect("some");
        assert_eq!(
            sql,
            "SELECT image_id, revision, record_version, doc FROM images WHERE region = $1 \
             AND owner_id IN ($2, $3) AND owner_alias IN ($4) \
             AND state <> 'deregistered' ORDER BY image_id"
        );
        assert_eq!(binds, ["r", "a", "b", "amazon"]);
    }

    #[test]
    fn an_empty_in_list_matches_nothing() {
        let query = ImageListQuery {
            region: "r".into(),
            owner_ids: Some(vec![]),
            ..ImageListQuery::default()
        };
        assert!(list_images(&query).is_none());
    }

    #[test]
    fn id_lookup_numbers_its_placeholders() {
        assert_eq!(
            select_images_by_id(3),
            "SELECT image_id, revision, record_version, doc FROM images \
             WHERE image_id IN ($1, $2, $3)"
        );
    }
}
