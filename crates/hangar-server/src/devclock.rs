//! The dev clock's offset on disk: with `dev_clock = true` the service clock
//! runs ahead of wall time by an offset that `/_hangar/clock/advance` grows.
//! The offset is saved in the data directory so that, after a restart,
//! launches, deregistrations and tasks recorded "in the future" stay in the
//! past of the service clock.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// File name of the saved offset inside the data directory.
pub const FILE_NAME: &str = "dev-clock-offset";

/// The latest instant the dev clock may reach: 9999-12-31T23:59:59.999Z,
/// the last one every timestamp format on the wire can spell.
const LATEST_MS: i64 = 253_402_300_799_999;

#[derive(Debug)]
pub struct OffsetFile {
    path: PathBuf,
}

impl OffsetFile {
    pub fn in_dir(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(FILE_NAME),
        }
    }

    /// The saved offset in milliseconds; 0 when none was saved.
    pub fn load(&self) -> anyhow::Result<i64> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(error) => {
                return Err(error).with_context(|| {
                    format!("cannot read dev clock offset {}", self.path.display())
                });
            }
        };
        let offset: i64 = text.trim().parse().map_err(|_| {
            anyhow::anyhow!(
                "dev clock offset file {} does not hold a number of milliseconds; remove it to start from wall time",
                self.path.display()
            )
        })?;
        if offset < 0 {
            anyhow::bail!(
                "dev clock offset file {} holds a negative offset; remove it to start from wall time",
                self.path.display()
            );
        }
        Ok(offset)
    }

    /// Saves `offset_ms` durably: a temporary file, flushed, renamed over the
    /// old one, then the directory flushed.
    pub fn save(&self, offset_ms: i64) -> std::io::Result<()> {
        let temporary = self.path.with_extension("tmp");
        {
            let mut file = std::fs::File::create(&temporary)?;
            writeln!(file, "{offset_ms}")?;
            file.sync_all()?;
        }
        std::fs::rename(&temporary, &self.path)?;
        if let Some(directory) = self.path.parent() {
            std::fs::File::open(directory)?.sync_all()?;
        }
        Ok(())
    }
}

/// The offset after advancing `current_ms` by `by_ms` when wall time is
/// `wall_ms`, or why it cannot move that far.
pub fn advanced(current_ms: i64, by_ms: i64, wall_ms: i64) -> Result<i64, String> {
    let offset = current_ms
        .checked_add(by_ms)
        .filter(|offset| {
            wall_ms
                .checked_add(*offset)
                .is_some_and(|now| now <= LATEST_MS)
        })
        .ok_or_else(|| "the clock cannot move past 9999-12-31T23:59:59Z".to_string())?;
    Ok(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_round_trips_and_refuses_garbage() {
        let dir = std::env::temp_dir().join(format!("hangar-devclock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = OffsetFile::in_dir(&dir);
        let _ = std::fs::remove_file(dir.join(FILE_NAME));
        assert_eq!(file.load().unwrap(), 0);
        file.save(7_776_000_000).unwrap();
        assert_eq!(file.load().unwrap(), 7_776_000_000);
        std::fs::write(dir.join(FILE_NAME), "soon\n").unwrap();
        assert!(file.load().is_err());
        std::fs::write(dir.join(FILE_NAME), "-5\n").unwrap();
        assert!(file.load().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn advance_is_bounded() {
        assert_eq!(advanced(1000, 2000, 0), Ok(3000));
        assert!(advanced(0, i64::MAX, 1_700_000_000_000).is_err());
        assert!(advanced(i64::MAX, 1, 0).is_err());
        assert!(advanced(0, LATEST_MS, 1).is_err());
    }
}
