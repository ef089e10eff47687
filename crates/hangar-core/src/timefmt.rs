//! Time as AWS writes it in text: `2025-01-17T18:37:50.000Z` for most fields
//! (and for the `creation-date` filter, which compares that text), and
//! `2025-02-17T20:22:19Z` for `lastLaunchedTime`.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::clock::EpochMillis;

fn to_datetime(ms: EpochMillis) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `YYYY-MM-DDTHH:MM:SS.sssZ`
pub fn iso_millis(ms: EpochMillis) -> String {
    let at = to_datetime(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ`
pub fn iso_seconds(ms: EpochMillis) -> String {
    let at = to_datetime(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// Parses an ISO 8601 / RFC 3339 timestamp as clients send it (with or
/// without fractional seconds, `Z` or an offset) into epoch milliseconds.
pub fn parse_iso(text: &str) -> Option<EpochMillis> {
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(iso_millis(1_737_139_070_000), "2025-01-17T18:37:50.000Z");
        assert_eq!(iso_millis(1_737_139_070_123), "2025-01-17T18:37:50.123Z");
        assert_eq!(iso_seconds(1_739_823_739_000), "2025-02-17T20:22:19Z");
    }

    #[test]
    fn parses() {
        assert_eq!(
            parse_iso("2025-01-17T18:37:50.000Z"),
            Some(1_737_139_070_000)
        );
        assert_eq!(parse_iso("2025-01-17T18:37:50Z"), Some(1_737_139_070_000));
        assert_eq!(
            parse_iso("2030-04-15T13:17:12.500000Z").map(|ms| ms % 1000),
            Some(500)
        );
        assert_eq!(parse_iso("yesterday"), None);
    }
}
