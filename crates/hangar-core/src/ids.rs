//! Resource identifiers: a prefix, a dash and 17 lower-case hex characters,
//! as AWS has issued since 2018 (`ami-0123456789abcdef0`). Legacy 8-character
//! IDs are accepted as well-formed input, never generated.

use rand::Rng;

pub const IMAGE: &str = "ami";
pub const SNAPSHOT: &str = "snap";
pub const VOLUME: &str = "vol";
pub const INSTANCE: &str = "i";

/// Generates a new random ID with the given prefix.
pub fn generate(prefix: &str) -> String {
    let mut rng = rand::rng();
    let value: u128 = rng.random();
    // 17 hex digits carry 68 bits; mask the random value down to that.
    let masked = value & ((1u128 << 68) - 1);
    format!("{prefix}-{masked:017x}")
}

/// A deterministic ID derived from a seed string, for records that must keep
/// the same ID across restarts (the starter catalogue). FNV-1a, twice, gives
/// enough spread for a handful of seeds; collisions are caught by the store's
/// primary key.
pub fn derived(prefix: &str, seed: &str) -> String {
    fn fnv1a(bytes: &[u8], basis: u64) -> u64 {
        let mut hash = basis;
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash
    }
    let high = fnv1a(seed.as_bytes(), 0xcbf2_9ce4_8422_2325) & 0xf;
    let low = fnv1a(seed.as_bytes(), 0x6c62_272e_07bb_0142);
    format!("{prefix}-{high:x}{low:016x}")
}

/// True when `id` is `prefix-` followed by 8 or 17 lower-case hex characters.
pub fn is_well_formed(prefix: &str, id: &str) -> bool {
    let Some(rest) = id
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
    else {
        return false;
    };
    (rest.len() == 8 || rest.len() == 17)
        && rest
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

/// The prefix of an ID (`ami`, `snap`, ...), if it has one.
pub fn prefix_of(id: &str) -> Option<&str> {
    id.split_once('-').map(|(prefix, _)| prefix)
}

/// True when `account` is a 12-digit AWS account ID.
pub fn is_account_id(account: &str) -> bool {
    account.len() == 12 && account.bytes().all(|byte| byte.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_well_formed_and_distinct() {
        let first = generate(IMAGE);
        let second = generate(IMAGE);
        assert!(is_well_formed(IMAGE, &first), "{first}");
        assert_eq!(first.len(), "ami-".len() + 17);
        assert_ne!(first, second);
    }

    #[test]
    fn well_formedness_table() {
        let cases = [
            ("ami-0123456789abcdef0", true),
            ("ami-12345678", true),
            ("ami-0123456789ABCDEF0", false),
            ("ami-0123456789abcdef", false),
            ("ami-0123456789abcdefg", false),
            ("snap-0123456789abcdef0", false),
            ("ami0123456789abcdef0", false),
            ("", false),
        ];
        for (id, expected) in cases {
            assert_eq!(is_well_formed(IMAGE, id), expected, "{id}");
        }
    }

    #[test]
    fn derived_ids_are_stable_and_well_formed() {
        let first = derived(IMAGE, "us-east-1/al2023-x86_64");
        assert_eq!(first, derived(IMAGE, "us-east-1/al2023-x86_64"));
        assert_ne!(first, derived(IMAGE, "us-west-2/al2023-x86_64"));
        assert!(is_well_formed(IMAGE, &first), "{first}");
    }

    #[test]
    fn account_ids() {
        assert!(is_account_id("123456789012"));
        assert!(!is_account_id("12345678901"));
        assert!(!is_account_id("12345678901a"));
    }
}
