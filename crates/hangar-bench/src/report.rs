//! The markdown summary of a results file (one JSON object per line).

use std::path::Path;

use anyhow::Context;
use serde_json::Value;

/// The targets.
const BY_ID_RPS_TARGET: f64 = 8_000.0;
const LISTING_MS_TARGET: f64 = 30.0;
const STARTUP_MS_TARGET: f64 = 100.0;
const IDLE_MB_TARGET: f64 = 30.0;

fn find<'a>(
    results: &'a [Value],
    phase: &str,
    matches: impl Fn(&Value) -> bool,
) -> Option<&'a Value> {
    results
        .iter()
        .rev()
        .find(|result| result["phase"] == phase && matches(result))
}

fn number(value: &Value, key: &str) -> f64 {
    value[key].as_f64().unwrap_or(f64::NAN)
}

fn verdict(pass: bool) -> &'static str {
    if pass { "**pass**" } else { "**FAIL**" }
}

fn cpu(value: &Value) -> String {
    let generator = number(value, "generator_cpu_pct");
    match value["server_cpu_pct"].as_f64() {
        Some(server) => format!("generator {generator:.0}% / server {server:.0}% of one core"),
        None => format!("generator {generator:.0}% of one core"),
    }
}

pub fn print(path: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let results: Vec<Value> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("a results line is not JSON")?;

    let mut rows: Vec<[String; 4]> = Vec::new();
    if let Some(by_id) = find(&results, "by-id", |r| r["mode"] == "replay") {
        let rps = number(by_id, "rps");
        rows.push([
            format!(
                "DescribeImages by one id, {} connections, signatures replayed",
                by_id["connections"]
            ),
            format!(
                "{rps:.0} requests/s; p50 {:.2} ms, p99 {:.2} ms; {} errors ({})",
                number(by_id, "p50_ms"),
                number(by_id, "p99_ms"),
                by_id["errors"],
                cpu(by_id)
            ),
            format!("≥ {BY_ID_RPS_TARGET:.0} requests/s"),
            verdict(rps >= BY_ID_RPS_TARGET).into(),
        ]);
    }
    if let Some(by_id) = find(&results, "by-id", |r| r["mode"] == "sign-each") {
        rows.push([
            format!(
                "DescribeImages by one id, {} connections, every request signed",
                by_id["connections"]
            ),
            format!(
                "{:.0} requests/s; p50 {:.2} ms, p99 {:.2} ms; {} errors ({})",
                number(by_id, "rps"),
                number(by_id, "p50_ms"),
                number(by_id, "p99_ms"),
                by_id["errors"],
                cpu(by_id)
            ),
            "(generator overhead)".into(),
            "–".into(),
        ]);
    }
    if let Some(populate) = find(&results, "populate", |_| true) {
        let failures = populate["non_200"].as_u64().unwrap_or(u64::MAX);
        rows.push([
            format!(
                "RegisterImage, {} images, {} connections",
                populate["images"], populate["concurrency"]
            ),
            format!(
                "{:.0} requests/s; p50 {:.2} ms, p99 {:.2} ms; {failures} non-200 ({})",
                number(populate, "rps"),
                number(populate, "p50_ms"),
                number(populate, "p99_ms"),
                cpu(populate)
            ),
            "0 non-200".into(),
            verdict(failures == 0).into(),
        ]);
    }
    if let Some(list) = find(&results, "list-self", |_| true) {
        let p50 = number(list, "p50_ms");
        let p99 = number(list, "p99_ms");
        rows.push([
            format!(
                "DescribeImages Owner.1=self, {} images in one answer ({:.1} MB)",
                list["items"],
                number(list, "response_bytes") / 1e6
            ),
            format!(
                "p50 {p50:.1} ms (min {:.1}, p99 {p99:.1}, first call {:.1}) over {} calls",
                number(list, "min_ms"),
                number(list, "first_ms"),
                list["repeat"]
            ),
            format!("≤ {LISTING_MS_TARGET:.0} ms"),
            format!(
                "{} (p50), {} (p99)",
                verdict(p50 <= LISTING_MS_TARGET),
                verdict(p99 <= LISTING_MS_TARGET)
            ),
        ]);
    }
    for (fresh, what) in [
        (true, "fresh data dir"),
        (false, "data dir with the populated images"),
    ] {
        if let Some(startup) = find(&results, "startup", |r| r["fresh"] == fresh) {
            let health = number(startup, "health_ms_median");
            let signed = number(startup, "signed_ms_median");
            rows.push([
                format!(
                    "Start-up to first answer, {what} (median of {})",
                    startup["repeat"]
                ),
                format!("health {health:.1} ms; first signed DescribeImages {signed:.1} ms"),
                format!("≤ {STARTUP_MS_TARGET:.0} ms"),
                verdict(health <= STARTUP_MS_TARGET && signed <= STARTUP_MS_TARGET).into(),
            ]);
        }
    }
    if let Some(idle) = find(&results, "memory", |r| r["label"] == "idle") {
        let mb = number(idle, "rss_mb");
        rows.push([
            "Idle memory (VmRSS) after start, fresh data dir".into(),
            format!("{mb:.1} MB ({} threads)", idle["threads"]),
            format!("≤ {IDLE_MB_TARGET:.0} MB"),
            verdict(mb <= IDLE_MB_TARGET).into(),
        ]);
    }
    if let Some(after) = find(&results, "memory", |r| r["label"] == "after") {
        rows.push([
            "Memory (VmRSS) after populate, by-id and listings".into(),
            format!(
                "{:.1} MB (peak VmHWM {:.1} MB)",
                number(after, "rss_mb"),
                number(after, "hwm_mb")
            ),
            "–".into(),
            "–".into(),
        ]);
    }

    println!("| Measure | Result | Target | Verdict |");
    println!("|---|---|---|---|");
    for [measure, result, target, pass] in rows {
        println!("| {measure} | {result} | {target} | {pass} |");
    }
    println!();
    println!("MB = 10^6 bytes (VmRSS is read in KiB from /proc/<pid>/status).");
    let loads: Vec<String> = results
        .iter()
        .filter_map(|result| {
            let load = result["loadavg"].as_str()?;
            let phase = result["phase"].as_str().unwrap_or("?");
            let detail = [&result["label"], &result["mode"]]
                .into_iter()
                .filter_map(|value| value.as_str().filter(|text| !text.is_empty()))
                .collect::<Vec<_>>()
                .join(", ");
            let name = if detail.is_empty() {
                phase.to_string()
            } else {
                format!("{phase} ({detail})")
            };
            Some(format!("{name} {load}"))
        })
        .collect();
    if !loads.is_empty() {
        println!(
            "Load average (1, 5, 15 min) when each phase ended: {}.",
            loads.join("; ")
        );
    }
    Ok(())
}
