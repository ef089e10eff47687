//! Pagination tokens. A token is opaque to clients: a version, the listing it
//! belongs to and the last key returned, hex-encoded. A token from another
//! listing, or one that was altered, is refused with `InvalidPaginationToken`.

use crate::error::Error;

const VERSION: &str = "v1";

pub fn encode(listing: &str, last_key: &str) -> String {
    let plain = format!("{VERSION}|{listing}|{last_key}");
    plain.bytes().map(|byte| format!("{byte:02x}")).collect()
}

pub fn decode(listing: &str, token: &str) -> Result<String, Error> {
    if !token.len().is_multiple_of(2) || token.len() > 4096 {
        return Err(Error::InvalidPaginationToken);
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|index| u8::from_str_radix(token.get(index..index + 2)?, 16).ok())
        .collect();
    let text = bytes
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or(Error::InvalidPaginationToken)?;
    let mut parts = text.splitn(3, '|');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(VERSION), Some(name), Some(key)) if name == listing => Ok(key.to_string()),
        _ => Err(Error::InvalidPaginationToken),
    }
}

/// Checks `MaxResults` against the bounds an action allows.
pub fn check_max_results(value: Option<i64>, min: i64, max: i64) -> Result<Option<usize>, Error> {
    match value {
        None => Ok(None),
        Some(n) if n >= min && n <= max => Ok(Some(n as usize)),
        Some(n) => Err(Error::InvalidParameterValue(format!(
            "Value ( {n} ) for parameter maxResults is invalid. Expecting a value between {min} and {max}."
        ))),
    }
}

/// Cuts one page out of `items` (sorted by `key`), starting after the key in
/// `token`. Returns the page and the token for the next one, if any.
pub fn paginate<T>(
    items: Vec<T>,
    listing: &str,
    token: Option<&str>,
    max_results: Option<usize>,
    key: impl Fn(&T) -> &str,
) -> Result<(Vec<T>, Option<String>), Error> {
    let after = token.map(|token| decode(listing, token)).transpose()?;
    let mut remaining: Vec<T> = match &after {
        Some(after) => items
            .into_iter()
            .filter(|item| key(item) > after.as_str())
            .collect(),
        None => items,
    };
    match max_results {
        Some(limit) if remaining.len() > limit => {
            remaining.truncate(limit);
            let next = remaining.last().map(|item| encode(listing, key(item)));
            Ok((remaining, next))
        }
        _ => Ok((remaining, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_tamper() {
        let token = encode("images", "ami-0123456789abcdef0");
        assert_eq!(decode("images", &token).unwrap(), "ami-0123456789abcdef0");
        assert_eq!(decode("tags", &token), Err(Error::InvalidPaginationToken));
        assert_eq!(decode("images", "zz"), Err(Error::InvalidPaginationToken));
        assert_eq!(decode("images", "abc"), Err(Error::InvalidPaginationToken));
    }

    #[test]
    fn pages_cover_everything_once() {
        let items: Vec<String> = (0..23).map(|n| format!("k{n:03}")).collect();
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let (page, next) = paginate(items.clone(), "t", token.as_deref(), Some(5), |item| {
                item.as_str()
            })
            .unwrap();
            assert!(page.len() <= 5);
            seen.extend(page);
            match next {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, items);
    }

    #[test]
    fn max_results_bounds() {
        assert_eq!(check_max_results(Some(5), 5, 1000), Ok(Some(5)));
        assert!(check_max_results(Some(4), 5, 1000).is_err());
        assert!(check_max_results(Some(1001), 5, 1000).is_err());
        assert_eq!(check_max_results(None, 5, 1000), Ok(None));
    }
}
