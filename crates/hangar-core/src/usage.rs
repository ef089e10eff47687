//! `lastLaunchedTime` with AWS's reporting delay.
//!
//! AWS reports an image's last launch "up to 24 hours" late. Hangar makes
//! that lag exact and configurable (`[usage] report_delay`): the reported
//! value is the latest launch that is at least `report_delay` old on the
//! service clock. One "newest launch" field cannot answer that (a launch at
//! t1 must still show while a later t2 is inside the delay), so each image
//! keeps a short, bounded history of launches (`Image::launch_history_ms`)
//! and the reported value is computed when the image is read.
//!
//! Bound: a launch closer than `delay / 64` to an entry already recorded
//! just before it is coalesced into that entry (the older time is kept, so
//! a steady stream of launches still ages past the delay), and every entry
//! older than the newest one already past the delay is dropped (that one
//! answers every later read). So at most about 66 entries remain, and the
//! reported time is at most `delay / 64` earlier than the true latest
//! launch past the delay (22.5 minutes for the default 24 hours), never
//! later.

use crate::clock::EpochMillis;
use crate::model::Image;

/// How close (in milliseconds) a launch may be to the entry before it and
/// still be coalesced into it.
fn coalesce_window_ms(delay_ms: i64) -> i64 {
    delay_ms.max(0) / 64
}

/// The launches recorded on `image`, oldest first. Records written before
/// the history existed hold only `last_launched_ms`: that launch is the
/// history.
fn history(image: &Image) -> Vec<EpochMillis> {
    if image.launch_history_ms.is_empty() {
        image.last_launched_ms.into_iter().collect()
    } else {
        image.launch_history_ms.clone()
    }
}

/// Records a launch at `at` (service clock) on `image`, keeping the history
/// bounded. Returns false when nothing changed (no write needed).
pub fn record_launch(image: &mut Image, at: EpochMillis, delay_ms: i64) -> bool {
    let before = (image.launch_history_ms.clone(), image.last_launched_ms);
    let mut launches = history(image);
    let position = launches.partition_point(|&launch| launch <= at);
    // The entry just before (launches[position - 1] <= at): a launch at the
    // same instant is always the same entry.
    let coalesced =
        position > 0 && at - launches[position - 1] < coalesce_window_ms(delay_ms).max(1);
    if !coalesced {
        launches.insert(position, at);
    }
    // Entries older than the newest one already past the delay can never
    // be reported again: the clock only moves forward.
    let cutoff = at.saturating_sub(delay_ms.max(0));
    let past = launches.partition_point(|&launch| launch <= cutoff);
    if past > 1 {
        launches.drain(..past - 1);
    }
    image.last_launched_ms = launches.last().copied().max(image.last_launched_ms);
    image.launch_history_ms = launches;
    (image.launch_history_ms.clone(), image.last_launched_ms) != before
}

/// The `lastLaunchedTime` to report at `now`: the latest launch at least
/// `delay_ms` old, if any.
pub fn reported_launch(image: &Image, now: EpochMillis, delay_ms: i64) -> Option<EpochMillis> {
    let cutoff = now.saturating_sub(delay_ms.max(0));
    history(image)
        .into_iter()
        .filter(|&launch| launch <= cutoff)
        .max()
}

/// Puts the reported value into the image's `last_launched_ms` (what the
/// wire renders) and drops the history, which no reply shows.
pub fn apply_report(image: &mut Image, now: EpochMillis, delay_ms: i64) {
    image.last_launched_ms = reported_launch(image, now, delay_ms);
    image.launch_history_ms.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    fn image() -> Image {
        crate::catalog::images_for("us-east-1").remove(0)
    }

    #[test]
    fn reports_after_the_delay() {
        let clock = ManualClock::at(1_700_000_000_000);
        let mut image = image();
        assert_eq!(reported_launch(&image, clock.now_ms(), DAY), None);
        let first = clock.now_ms();
        assert!(record_launch(&mut image, first, DAY));
        assert_eq!(reported_launch(&image, clock.now_ms(), DAY), None);
        clock.set(first + 2 * HOUR);
        let second = clock.now_ms();
        assert!(record_launch(&mut image, second, DAY));
        clock.set(first + DAY - 1);
        assert_eq!(reported_launch(&image, clock.now_ms(), DAY), None);
        clock.set(first + DAY);
        assert_eq!(reported_launch(&image, clock.now_ms(), DAY), Some(first));
        // The later launch is still inside the delay: the earlier one shows.
        clock.set(first + 25 * HOUR);
        assert_eq!(reported_launch(&image, clock.now_ms(), DAY), Some(first));
        clock.set(second + DAY);
        assert_eq!(reported_launch(&image, clock.now_ms(), DAY), Some(second));
        // Zero delay: at once.
        let mut fresh = self::image();
        record_launch(&mut fresh, clock.now_ms(), 0);
        assert_eq!(
            reported_launch(&fresh, clock.now_ms(), 0),
            Some(clock.now_ms())
        );
        assert_eq!(fresh.launch_history_ms.len(), 1);
    }

    #[test]
    fn close_launches_coalesce_into_the_older_entry() {
        let start = 1_700_000_000_000;
        let mut image = image();
        // One launch a minute for two days: the entries stay spaced.
        for minute in 0..(2 * 24 * 60) {
            record_launch(&mut image, start + minute * 60_000, DAY);
        }
        let now = start + 2 * DAY;
        assert!(
            image.launch_history_ms.len() <= 66,
            "{}",
            image.launch_history_ms.len()
        );
        assert!(
            image
                .launch_history_ms
                .windows(2)
                .all(|pair| pair[1] - pair[0] >= DAY / 64),
            "{:?}",
            image.launch_history_ms
        );
        let reported = reported_launch(&image, now, DAY).expect("reported");
        // True answer: the launch at exactly now - DAY.
        let truth = now - DAY;
        assert!(
            reported <= truth && truth - reported <= DAY / 64,
            "{reported} {truth}"
        );
        // The raw newest launch is kept apart from the history.
        assert_eq!(
            image.last_launched_ms,
            Some(image.launch_history_ms[image.launch_history_ms.len() - 1])
        );
    }

    #[test]
    fn old_entries_are_pruned() {
        let start = 1_700_000_000_000;
        let mut image = image();
        for day in 0..10 {
            record_launch(&mut image, start + day * DAY, DAY);
        }
        // Only the newest launch past the delay, and the ones inside it.
        assert_eq!(
            image.launch_history_ms,
            vec![start + 8 * DAY, start + 9 * DAY]
        );
        assert_eq!(
            reported_launch(&image, start + 9 * DAY, DAY),
            Some(start + 8 * DAY)
        );
        // The same instant twice changes nothing.
        assert!(!record_launch(&mut image, start + 9 * DAY, DAY));
    }

    #[test]
    fn records_from_before_the_history_still_count() {
        let mut image = image();
        image.last_launched_ms = Some(1_000);
        assert_eq!(reported_launch(&image, 1_000 + DAY, DAY), Some(1_000));
        assert_eq!(reported_launch(&image, 1_000 + DAY - 1, DAY), None);
        record_launch(&mut image, 2_000 + 2 * DAY, DAY);
        assert_eq!(image.launch_history_ms, vec![1_000, 2_000 + 2 * DAY]);
        apply_report(&mut image, 2_000 + 2 * DAY, DAY);
        assert_eq!(image.last_launched_ms, Some(1_000));
        assert!(image.launch_history_ms.is_empty());
    }
}
