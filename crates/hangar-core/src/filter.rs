//! EC2 filters: several `Filter.N` are ANDed, the values of one filter are
//! ORed, names and values are case-sensitive, and values may use the
//! wildcards `*` (any run of characters) and `?` (zero or one character),
//! with `\` escaping a literal `*`, `?` or `\`.

use crate::error::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub name: String,
    pub values: Vec<String>,
}

/// Bounds that keep one request from asking for unbounded work.
pub const MAX_FILTERS: usize = 50;
pub const MAX_FILTER_VALUES: usize = 200;

pub fn check_limits(filters: &[Filter]) -> Result<(), Error> {
    if filters.len() > MAX_FILTERS {
        return Err(Error::FilterLimitExceeded(format!(
            "The maximum number of filters is {MAX_FILTERS}"
        )));
    }
    for filter in filters {
        if filter.values.len() > MAX_FILTER_VALUES {
            return Err(Error::FilterLimitExceeded(format!(
                "The maximum number of filter values specified on a single call is {MAX_FILTER_VALUES}"
            )));
        }
        if filter.values.is_empty() {
            return Err(Error::InvalidParameterValue(format!(
                "The filter '{}' requires at least one value",
                filter.name
            )));
        }
    }
    Ok(())
}

/// The error AWS gives for a filter name the action does not know.
pub fn unknown_filter(name: &str) -> Error {
    Error::InvalidParameterValue(format!("The filter '{name}' is invalid"))
}

/// True when any of `candidates` matches any of the filter's values.
pub fn matches_any<S: AsRef<str>>(filter: &Filter, candidates: &[S]) -> bool {
    filter.values.iter().any(|pattern| {
        candidates
            .iter()
            .any(|candidate| wildcard_match(pattern, candidate.as_ref()))
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Literal(char),
    AnyRun,
    ZeroOrOne,
}

fn tokenize(pattern: &str) -> Vec<Token> {
    let mut tokens = Vec::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(character) = chars.next() {
        match character {
            '\\' => match chars.next() {
                Some(escaped) => tokens.push(Token::Literal(escaped)),
                None => tokens.push(Token::Literal('\\')),
            },
            '*' => tokens.push(Token::AnyRun),
            '?' => tokens.push(Token::ZeroOrOne),
            other => tokens.push(Token::Literal(other)),
        }
    }
    tokens
}

/// Matches `value` against an EC2 filter pattern.
pub fn wildcard_match(pattern: &str, value: &str) -> bool {
    if !pattern.contains(['*', '?', '\\']) {
        return pattern == value;
    }
    let tokens = tokenize(pattern);
    let chars: Vec<char> = value.chars().collect();
    // reachable[j]: the tokens consumed so far can match chars[..j].
    let mut reachable = vec![false; chars.len() + 1];
    reachable[0] = true;
    for token in tokens {
        let mut next = vec![false; chars.len() + 1];
        match token {
            Token::Literal(expected) => {
                for j in 0..chars.len() {
                    if reachable[j] && chars[j] == expected {
                        next[j + 1] = true;
                    }
                }
            }
            Token::ZeroOrOne => {
                for j in 0..=chars.len() {
                    if reachable[j] {
                        next[j] = true;
                        if j < chars.len() {
                            next[j + 1] = true;
                        }
                    }
                }
            }
            Token::AnyRun => {
                let mut seen = false;
                for j in 0..=chars.len() {
                    seen |= reachable[j];
                    next[j] = seen;
                }
            }
        }
        reachable = next;
    }
    reachable[chars.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_table() {
        let cases = [
            ("abc", "abc", true),
            ("abc", "abd", false),
            ("a*", "a", true),
            ("a*", "abcdef", true),
            ("*c", "abc", true),
            ("*c", "abd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", true),
            ("a?c", "abbc", false),
            (
                "al2023-ami-*-x86_64",
                "al2023-ami-2023.6.20241010.0-kernel-6.1-x86_64",
                true,
            ),
            (
                "al2023-ami-*-x86_64",
                "al2023-ami-2023.6.20241010.0-kernel-6.1-arm64",
                false,
            ),
            ("a\\*c", "a*c", true),
            ("a\\*c", "abc", false),
            ("a\\?", "a?", true),
            ("a\\\\b", "a\\b", true),
            ("2021-09-29T*", "2021-09-29T10:00:00.000Z", true),
            ("*", "", true),
            ("?", "", true),
            ("Abc", "abc", false),
        ];
        for (pattern, value, expected) in cases {
            assert_eq!(
                wildcard_match(pattern, value),
                expected,
                "{pattern} vs {value}"
            );
        }
    }

    #[test]
    fn limits() {
        let many = vec![
            Filter {
                name: "name".into(),
                values: vec!["x".into()],
            };
            MAX_FILTERS + 1
        ];
        assert!(matches!(
            check_limits(&many),
            Err(Error::FilterLimitExceeded(_))
        ));
        let empty = vec![Filter {
            name: "name".into(),
            values: vec![],
        }];
        assert!(matches!(
            check_limits(&empty),
            Err(Error::InvalidParameterValue(_))
        ));
    }
}
