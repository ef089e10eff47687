//! Time as the domain sees it: milliseconds since the Unix epoch, read through
//! an injectable clock so tests and the `hangar clock` helpers can move time.

use std::sync::atomic::{AtomicI64, Ordering};

/// Milliseconds since 1970-01-01T00:00:00Z.
pub type EpochMillis = i64;

pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> EpochMillis;
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
}

impl Clock for SystemClock {
    fn now_ms(&self) -> EpochMillis {
        let wall = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
        wall as i64 + self.offset_ms.load(Ordering::Relaxed)
    }
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
