//! Time as the domain sees it: milliseconds since the Unix epoch, read through
//! an injectable clock so tests and the `hangar clock` helpers can move time.

use std::sync::atomic::{AtomicI64, Ordering};

/// Milliseconds since 1970-01-01T00:00:00Z.
pub type EpochMillis = i64;

pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> EpochMillis;

    /// The real wall clock, never shifted: for comparisons with times the
    /// domain does not own, such as file modification times. A clock that
    /// is all there is (a test clock) answers its own time.
    fn wall_ms(&self) -> EpochMillis {
        self.now_ms()
    }
}

/// The real wall clock, optionally shifted by a fixed offset (used by tests
/// that need to see the world "later" without sleeping).
#[derive(Debug, Default)]
pub struct SystemClock {
    offset_ms: AtomicI64,
}

impl SystemClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves this clock forward (or back) by `delta_ms` from now on.
    pub fn advance(&self, delta_ms: i64) {
        self.offset_ms.fetch_add(delta_ms, Ordering::SeqCst);
    }

    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::SeqCst)
    }

    /// Sets the offset outright (the dev clock restores its saved offset at
    /// start-up).
    pub fn set_offset(&self, offset_ms: i64) {
        self.offset_ms.store(offset_ms, Ordering::SeqCst);
    }
}

fn wall_now_ms() -> EpochMillis {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl Clock for SystemClock {
    fn now_ms(&self) -> EpochMillis {
        wall_now_ms() + self.offset_ms.load(Ordering::Relaxed)
    }

    fn wall_ms(&self) -> EpochMillis {
        wall_now_ms()
    }
}

/// Parses a duration such as `0s`, `90d`, `24h` or `1h30m`: one or more
/// `<digits><unit>` pairs, units `s`, `m`, `h`, `d`, no sign, no spaces.
/// Returns milliseconds. The message says what is wrong, without the key
/// (the caller names it).
pub fn parse_duration(text: &str) -> Result<i64, String> {
    const EXPECTED: &str =
        "expected a duration such as \"0s\", \"24h\", \"90d\" or \"1h30m\" (units s, m, h, d)";
    if text.is_empty() {
        return Err(format!("empty duration: {EXPECTED}"));
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    for character in text.chars() {
        if character.is_ascii_digit() {
            digits.push(character);
            continue;
        }
        let unit_ms: i64 = match character {
            's' => 1000,
            'm' => 60 * 1000,
            'h' => 3600 * 1000,
            'd' => 24 * 3600 * 1000,
            _ => return Err(format!("{text:?} is not a duration: {EXPECTED}")),
        };
        if digits.is_empty() {
            return Err(format!("{text:?} is not a duration: {EXPECTED}"));
        }
        let part = digits
            .parse::<i64>()
            .ok()
            .and_then(|count| count.checked_mul(unit_ms))
            .and_then(|ms| total.checked_add(ms));
        total = part.ok_or_else(|| format!("{text:?} is too long a duration"))?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!(
            "{text:?} is not a duration (a number needs a unit): {EXPECTED}"
        ));
    }
    Ok(total)
}

/// A clock that stands still until told to move; for unit tests.
#[derive(Debug)]
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    pub fn at(now_ms: EpochMillis) -> Self {
        Self {
            now_ms: AtomicI64::new(now_ms),
        }
    }

    pub fn set(&self, now_ms: EpochMillis) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> EpochMillis {
        self.now_ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0s"), Ok(0));
        assert_eq!(parse_duration("90d"), Ok(90 * 86_400_000));
        assert_eq!(parse_duration("24h"), Ok(86_400_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("2m5s"), Ok(125_000));
        assert_eq!(parse_duration("1d1h1m1s"), Ok(90_061_000));
        for bad in [
            "",
            "24",
            "h",
            "-1h",
            "1.5h",
            "1 h",
            "1H",
            "1w",
            "24hx",
            " 1h",
            "99999999999999999999d",
            "106751991168d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn system_clock_offset_leaves_wall_time() {
        let clock = SystemClock::new();
        clock.set_offset(90 * 86_400_000);
        let (now, wall) = (clock.now_ms(), clock.wall_ms());
        assert!(now - wall >= 90 * 86_400_000 - 1000, "{now} {wall}");
        clock.advance(1000);
        assert_eq!(clock.offset_ms(), 90 * 86_400_000 + 1000);
        let manual = ManualClock::at(5);
        assert_eq!(manual.wall_ms(), 5);
    }
}
