//! Tags on resources: validation shared by `CreateTags` and every
//! `TagSpecification`, and the merge rules (a key set twice keeps the last
//! value; a resource holds at most 50 tags).

use crate::error::Error;
use crate::model::Tag;

pub const MAX_TAGS_PER_RESOURCE: usize = 50;
pub const MAX_KEY_CHARS: usize = 127;
pub const MAX_VALUE_CHARS: usize = 256;

/// A `TagSpecification.N`: the resource type the tags are for, and the tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagSpecification {
    pub resource_type: Option<String>,
    pub tags: Vec<Tag>,
}

pub fn validate_tag(tag: &Tag) -> Result<(), Error> {
    let key_chars = tag.key.chars().count();
    if key_chars == 0 || key_chars > MAX_KEY_CHARS {
        return Err(Error::InvalidParameterValue(format!(
            "Tag key must be between 1 and {MAX_KEY_CHARS} characters long"
        )));
    }
    if tag.key.to_ascii_lowercase().starts_with("aws:") {
        return Err(Error::InvalidParameterValue(
            "Tag keys starting with 'aws:' are reserved for internal use".into(),
        ));
    }
    if tag.value.chars().count() > MAX_VALUE_CHARS {
        return Err(Error::InvalidParameterValue(format!(
            "Tag value must be at most {MAX_VALUE_CHARS} characters long"
        )));
    }
    Ok(())
}

/// Merges `new` tags into `existing`, replacing values of existing keys,
/// and enforces the per-resource limit.
pub fn merge(existing: &mut Vec<Tag>, new: &[Tag]) -> Result<(), Error> {
    for tag in new {
        validate_tag(tag)?;
    }
    let mut merged = existing.clone();
    for tag in new {
        match merged.iter_mut().find(|current| current.key == tag.key) {
            Some(current) => current.value = tag.value.clone(),
            None => merged.push(tag.clone()),
        }
    }
    if merged.len() > MAX_TAGS_PER_RESOURCE {
        return Err(Error::TagLimitExceeded(format!(
            "The maximum number of Tags for a resource has been reached (limit {MAX_TAGS_PER_RESOURCE})"
        )));
    }
    *existing = merged;
    Ok(())
}

/// A tag to remove: by key alone, or by key and value (only removed when the
/// value matches, as `DeleteTags` does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRemoval {
    pub key: String,
    pub value: Option<String>,
}

pub fn remove(existing: &mut Vec<Tag>, removals: &[TagRemoval]) {
    if removals.is_empty() {
        // DeleteTags without Tag.N deletes every tag of the resource.
        existing.clear();
        return;
    }
    existing.retain(|tag| {
        !removals.iter().any(|removal| {
            removal.key == tag.key
                && removal
                    .value
                    .as_ref()
                    .is_none_or(|value| value == &tag.value)
        })
    });
}

/// Collects the tags of the specifications meant for `resource_type`,
/// rejecting specifications for types the action does not create.
pub fn tags_for(
    specifications: &[TagSpecification],
    resource_type: &str,
    allowed_types: &[&str],
) -> Result<Vec<Tag>, Error> {
    let mut tags = Vec::new();
    for specification in specifications {
        let Some(kind) = specification.resource_type.as_deref() else {
            return Err(Error::InvalidParameterValue(
                "Tag specification resource type must have a value".into(),
            ));
        };
        if !allowed_types.contains(&kind) {
            return Err(Error::InvalidParameterValue(format!(
                "'{kind}' is not a valid taggable resource type for this operation."
            )));
        }
        if kind == resource_type {
            merge(&mut tags, &specification.tags)?;
        }
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(key: &str, value: &str) -> Tag {
        Tag {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn merge_replaces_and_limits() {
        let mut tags = vec![tag("a", "1")];
        merge(&mut tags, &[tag("a", "2"), tag("b", "3")]).unwrap();
        assert_eq!(tags, vec![tag("a", "2"), tag("b", "3")]);
        let many: Vec<Tag> = (0..49).map(|n| tag(&format!("k{n}"), "v")).collect();
        assert!(matches!(
            merge(&mut tags, &many),
            Err(Error::TagLimitExceeded(_))
        ));
        assert_eq!(tags.len(), 2, "a refused merge changes nothing");
    }

    #[test]
    fn validation() {
        assert!(validate_tag(&tag("aws:x", "1")).is_err());
        assert!(validate_tag(&tag("", "1")).is_err());
        assert!(validate_tag(&tag(&"k".repeat(128), "1")).is_err());
        assert!(validate_tag(&tag(&"k".repeat(127), &"v".repeat(256))).is_ok());
        assert!(validate_tag(&tag("k", &"v".repeat(257))).is_err());
    }

    #[test]
    fn removal_by_key_and_value() {
        let mut tags = vec![tag("a", "1"), tag("b", "2"), tag("c", "3")];
        remove(
            &mut tags,
            &[
                TagRemoval {
                    key: "a".into(),
                    value: None,
                },
                TagRemoval {
                    key: "b".into(),
                    value: Some("other".into()),
                },
            ],
        );
        assert_eq!(tags, vec![tag("b", "2"), tag("c", "3")]);
        remove(&mut tags, &[]);
        assert!(tags.is_empty());
    }
}
