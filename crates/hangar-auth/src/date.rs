//! Date parsing and formatting for SigV4 (`20150830T123600Z`, RFC 1123 `Date`).

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Parses the SigV4 basic ISO 8601 form `YYYYMMDDTHHMMSSZ` (UTC).
pub fn parse_amz_date(s: &str) -> Option<OffsetDateTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[4..6])?;
    let day = digits(&b[6..8])?;
    let hour = digits(&b[9..11])?;
    let minute = digits(&b[11..13])?;
    let second = digits(&b[13..15])?;
    build(year, month, day, hour, minute, second, UtcOffset::UTC)
}

/// Parses an HTTP `Date` header: RFC 1123 (`Sun, 30 Aug 2015 12:36:00 GMT`),
/// also with a numeric zone (`-0000`, `+0200`) as Python's `formatdate` writes it,
/// with or without the weekday.
pub fn parse_http_date(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    let rest = match s.split_once(',') {
        Some((weekday, rest)) => {
            const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
            if !DAYS.iter().any(|d| d.eq_ignore_ascii_case(weekday.trim())) {
                return None;
            }
            rest
        }
        None => s,
    };
    let mut parts = rest.split_ascii_whitespace();
    let day = digits(parts.next()?.as_bytes())?;
    let month_name = parts.next()?;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(month_name))?;
    let year_str = parts.next()?;
    if year_str.len() != 4 {
        return None;
    }
    let year = digits(year_str.as_bytes())?;
    let mut hms = parts.next()?.split(':');
    let hour = two_digits(hms.next()?)?;
    let minute = two_digits(hms.next()?)?;
    let second = two_digits(hms.next()?)?;
    if hms.next().is_some() {
        return None;
    }
    let zone = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let offset = match zone {
        z if z.eq_ignore_ascii_case("GMT")
            || z.eq_ignore_ascii_case("UT")
            || z.eq_ignore_ascii_case("UTC")
            || z == "Z" =>
        {
            UtcOffset::UTC
        }
        z => {
            let b = z.as_bytes();
            if b.len() != 5 || !(b[0] == b'+' || b[0] == b'-') {
                return None;
            }
            let h = i8::try_from(digits(&b[1..3])?).ok()?;
            let m = i8::try_from(digits(&b[3..5])?).ok()?;
            let sign = if b[0] == b'-' { -1 } else { 1 };
            UtcOffset::from_hms(sign * h, sign * m, 0).ok()?
        }
    };
    build(
        year,
        u32::try_from(month).ok()? + 1,
        day,
        hour,
        minute,
        second,
        offset,
    )
    .map(|dt| dt.to_offset(UtcOffset::UTC))
}

/// Formats as `YYYYMMDDTHHMMSSZ` in UTC.
pub fn format_amz_date(dt: OffsetDateTime) -> String {
    let dt = dt.to_offset(UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// Formats the UTC day as `YYYYMMDD`.
pub fn format_scope_date(dt: OffsetDateTime) -> String {
    let dt = dt.to_offset(UtcOffset::UTC);
    format!("{:04}{:02}{:02}", dt.year(), u8::from(dt.month()), dt.day())
}

fn two_digits(s: &str) -> Option<u32> {
    if s.len() != 2 {
        return None;
    }
    digits(s.as_bytes())
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 4 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0, |acc, d| acc * 10 + u32::from(d - b'0')))
}

fn build(
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    offset: UtcOffset,
) -> Option<OffsetDateTime> {
    let month = Month::try_from(u8::try_from(month).ok()?).ok()?;
    let date =
        Date::from_calendar_date(i32::try_from(year).ok()?, month, u8::try_from(day).ok()?).ok()?;
    let time = Time::from_hms(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
    )
    .ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_offset(offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn amz_date_round_trip() {
        let dt = parse_amz_date("20150830T123600Z").unwrap();
        assert_eq!(dt, datetime!(2015-08-30 12:36:00 UTC));
        assert_eq!(format_amz_date(dt), "20150830T123600Z");
        assert_eq!(format_scope_date(dt), "20150830");
    }

    #[test]
    fn amz_date_rejects_garbage() {
        for bad in [
            "",
            "20150830T123600",
            "20150830 123600Z",
            "2015-08-30T12:36:00Z",
            "20151330T123600Z",
            "20150230T123600Z",
            "20150830T253600Z",
            "20150830T123660Z",
            "2015083OT123600Z",
            "+0150830T123600Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn http_dates() {
        let want = datetime!(2015-08-30 12:36:00 UTC);
        for ok in [
            "Sun, 30 Aug 2015 12:36:00 GMT",
            "Sun, 30 Aug 2015 12:36:00 -0000",
            "Sun, 30 Aug 2015 12:36:00 +0000",
            "30 Aug 2015 12:36:00 GMT",
            "Sun, 30 Aug 2015 14:36:00 +0200",
        ] {
            assert_eq!(parse_http_date(ok), Some(want), "{ok}");
        }
        for bad in [
            "Sun, 30 Aug 2015 12:36 GMT",
            "Sun, 30 Foo 2015 12:36:00 GMT",
            "Xyz, 30 Aug 2015 12:36:00 GMT",
            "Sun, 30 Aug 15 12:36:00 GMT",
            "Sun, 30 Aug 2015 12:36:00 PST",
            "Sun, 30 Aug 2015 12:36:00 GMT extra",
            "20150830T123600Z",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }
}
