//! Percentiles, and process CPU time and memory read from `/proc`.

use std::time::Duration;

/// Latency samples in microseconds.
#[derive(Default)]
pub struct Samples(Vec<u32>);

impl Samples {
    pub fn with_capacity(capacity: usize) -> Self {
        Self(Vec::with_capacity(capacity))
    }

    pub fn push(&mut self, elapsed: Duration) {
        self.0
            .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
    }

    pub fn extend(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn sort(&mut self) {
        self.0.sort_unstable();
    }

    /// Nearest-rank percentile in milliseconds of sorted samples; 0 when empty.
    pub fn percentile_ms(&self, quantile: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        let rank = (quantile * self.0.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.0.len()) - 1;
        f64::from(self.0[index]) / 1000.0
    }

    pub fn min_ms(&self) -> f64 {
        self.0.first().map_or(0.0, |&v| f64::from(v) / 1000.0)
    }

    pub fn max_ms(&self) -> f64 {
        self.0.last().map_or(0.0, |&v| f64::from(v) / 1000.0)
    }
}

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ).
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|ticks| *ticks > 0.0)
        .unwrap_or(100.0)
}

/// User + system CPU time of a process (all its threads) in seconds;
/// `None` when the process is gone or `/proc` is unreadable.
pub fn cpu_seconds(pid: &str, ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields resume after ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // After ')' the fields start at 3 (state); utime is 14, stime 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

/// User and system CPU time of a process (all its threads) in seconds.
pub fn cpu_split(pid: &str, ticks: f64) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime / ticks, stime / ticks))
}

/// `read_bytes` and `write_bytes` of `/proc/<pid>/io`: what the process
/// made the kernel read from and send to storage (page-cache writeback is
/// charged to the writer).
pub fn io_bytes(pid: &str) -> Option<(u64, u64)> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let field = |name: &str| {
        io.lines().find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(':')?
                .trim()
                .parse::<u64>()
                .ok()
        })
    };
    Some((field("read_bytes")?, field("write_bytes")?))
}

/// A `/proc/<pid>/status` field in kB (`VmRSS`, `VmHWM`, `RssAnon`, ...).
pub fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        value.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// (busy, total) jiffies of all CPUs since boot, from the first line of
/// `/proc/stat`; busy is everything but idle and iowait.
pub fn machine_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let values: Vec<u64> = line
        .split_ascii_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal (guest time is already
    // inside user and nice).
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// Every PostgreSQL server process on the machine, and whether it is a
/// backend connected to `database`. A backend's title (its `cmdline`) is
/// `postgres: [<cluster name>:] <user> <database> <client> <state>`
/// (Debian sets `cluster_name`, e.g. `15/main`); the postmaster and the
/// background processes (WAL writer, checkpointer, ...) are the rest.
pub fn postgres_processes(database: Option<&str>) -> Vec<(u32, bool)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            if comm.trim_end() != "postgres" {
                return None;
            }
            let title = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let title = String::from_utf8_lossy(&title);
            Some((pid, is_backend_of(&title, database)))
        })
        .collect()
}

fn is_backend_of(title: &str, database: Option<&str>) -> bool {
    let Some(database) = database else {
        return false;
    };
    let mut words = title
        .trim_end_matches('\0')
        .strip_prefix("postgres: ")
        .unwrap_or("")
        .split_ascii_whitespace()
        .peekable();
    if words.peek().is_some_and(|word| word.ends_with(':')) {
        words.next();
    }
    words.next().is_some() && words.next() == Some(database)
}

/// kB (KiB) as decimal megabytes.
pub fn kib_to_mb(kib: u64) -> f64 {
    kib as f64 * 1024.0 / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut samples = Samples::default();
        for micros in 1..=100 {
            samples.push(Duration::from_micros(micros * 1000));
        }
        samples.sort();
        assert_eq!(samples.percentile_ms(0.5), 50.0);
        assert_eq!(samples.percentile_ms(0.99), 99.0);
        assert_eq!(samples.percentile_ms(1.0), 100.0);
        assert_eq!(samples.min_ms(), 1.0);
    }

    #[test]
    fn postgres_titles() {
        let backend = "postgres: postgres hangar_bench_1 127.0.0.1(41234) idle\0";
        assert!(is_backend_of(backend, Some("hangar_bench_1")));
        assert!(!is_backend_of(backend, Some("hangar_bench_10")));
        assert!(!is_backend_of(backend, None));
        let debian = "postgres: 15/main: postgres hangar_bench_1 127.0.0.1(41234) idle\0";
        assert!(is_backend_of(debian, Some("hangar_bench_1")));
        assert!(!is_backend_of(
            "postgres: 15/main: walwriter \0",
            Some("hangar_bench_1")
        ));
        assert!(!is_backend_of(
            "postgres: walwriter \0",
            Some("hangar_bench_1")
        ));
        assert!(!is_backend_of(
            "/usr/lib/postgresql/15/bin/postgres -D /var/lib/x\0",
            Some("-D")
        ));
    }

    #[test]
    fn machine_busy_is_at_most_total() {
        let (busy, total) = machine_jiffies().unwrap();
        assert!(busy <= total && total > 0);
    }

    #[test]
    fn own_process() {
        let me = std::process::id().to_string();
        assert!(status_kib(&me, "VmRSS").unwrap() > 0);
        assert!(cpu_seconds(&me, clock_ticks()).is_some());
    }
}
