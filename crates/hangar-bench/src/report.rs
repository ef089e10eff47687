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

fn cpu_pair(value: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(generator) = value["generator_cpu_pct"].as_f64() {
        parts.push(format!(
            "generator {generator:.0}% (sys {:.0}%)",
            number(value, "generator_sys_pct")
        ));
    }
    if let Some(server) = value["server_cpu_pct"].as_f64() {
        parts.push(format!(
            "server {server:.0}% (sys {:.0}%)",
            number(value, "server_sys_pct")
        ));
    }
    parts.join(" / ")
}

fn median_of(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The markdown summary of `scripts/bench-data`'s results.
pub fn print_data(path: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let results: Vec<Value> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("a results line is not JSON")?;

    let mut rows: Vec<[String; 2]> = Vec::new();
    for result in &results {
        let label = result["label"].as_str().unwrap_or("");
        match result["phase"].as_str().unwrap_or("") {
            "ebs-write" => rows.push([
                format!(
                    "EBS write ({label}): StartSnapshot VolumeSize={} + {} × PutSnapshotBlock ({:.0} MiB) over {} connections + CompleteSnapshot",
                    result["volume_size_gib"],
                    result["blocks"],
                    number(result, "mib"),
                    result["concurrency"]
                ),
                format!(
                    "**{:.1} MiB/s** ({:.2} s); put p50 {:.1} ms, p99 {:.1} ms; CompleteSnapshot {:.1} ms; CPU {}; server wrote {:.0} MiB to storage",
                    number(result, "mib_s"),
                    number(result, "seconds"),
                    number(result, "p50_ms"),
                    number(result, "p99_ms"),
                    number(result, "complete_ms"),
                    cpu_pair(result),
                    number(result, "server_written_mib"),
                ),
            ]),
            "ebs-read" => rows.push([
                format!(
                    "EBS read ({label}): ListSnapshotBlocks ({} pages) + {} × GetSnapshotBlock ({:.0} MiB), checksums verified, {} connections",
                    result["pages"],
                    result["blocks"],
                    number(result, "mib"),
                    result["concurrency"]
                ),
                format!(
                    "**{:.1} MiB/s** ({:.2} s; listing {:.1} ms); get p50 {:.1} ms, p99 {:.1} ms; CPU {}; server read {:.0} MiB from storage",
                    number(result, "mib_s"),
                    number(result, "seconds"),
                    number(result, "list_ms"),
                    number(result, "p50_ms"),
                    number(result, "p99_ms"),
                    cpu_pair(result),
                    number(result, "server_read_mib"),
                ),
            ]),
            "blocks-direct" => {
                rows.push([
                    format!(
                        "Block store direct put: LocalBlockStore in-process, {} blocks ({:.0} MiB), {} tasks",
                        result["blocks"],
                        number(result, "mib"),
                        result["concurrency"]
                    ),
                    format!(
                        "**{:.1} MiB/s** ({:.2} s); p50 {:.1} ms, p99 {:.1} ms; CPU {:.0}% (sys {:.0}%)",
                        number(result, "put_mib_s"),
                        number(result, "put_seconds"),
                        number(result, "put_p50_ms"),
                        number(result, "put_p99_ms"),
                        number(result, "put_cpu_pct"),
                        number(result, "put_sys_pct"),
                    ),
                ]);
                rows.push([
                    "Block store direct get (SHA-256 verified), page cache warm".into(),
                    format!(
                        "**{:.1} MiB/s** ({:.2} s); p50 {:.2} ms, p99 {:.2} ms; CPU {:.0}%",
                        number(result, "get_warm_mib_s"),
                        number(result, "get_warm_seconds"),
                        number(result, "get_warm_p50_ms"),
                        number(result, "get_warm_p99_ms"),
                        number(result, "get_warm_cpu_pct"),
                    ),
                ]);
                if result["get_cold_mib_s"].is_number() {
                    rows.push([
                        "Block store direct get, files evicted from the page cache".into(),
                        format!(
                            "**{:.1} MiB/s** ({:.2} s); p50 {:.2} ms, p99 {:.2} ms; CPU {:.0}%",
                            number(result, "get_cold_mib_s"),
                            number(result, "get_cold_seconds"),
                            number(result, "get_cold_p50_ms"),
                            number(result, "get_cold_p99_ms"),
                            number(result, "get_cold_cpu_pct"),
                        ),
                    ]);
                }
            }
            "image-build" => {
                let size = format!(
                    "{} GiB snapshot, {} data blocks",
                    result["volume_size_gib"], result["blocks"]
                );
                rows.push([
                    format!("CreateImage until `available` ({label}: {size})"),
                    format!(
                        "median **{:.1} ms**, max {:.1} ms over {} (call alone: median {:.1} ms); RunInstances of the image {:.1} ms",
                        number(result, "create_ms_median"),
                        number(result, "create_ms_max"),
                        result["repeat"],
                        number(result, "create_call_ms_median"),
                        number(result, "run_instances_ms"),
                    ),
                ]);
                rows.push([
                    format!("CopyImage (same region) until `available` ({label}: {size})"),
                    format!(
                        "median **{:.1} ms**, max {:.1} ms over {} (call alone: median {:.1} ms)",
                        number(result, "copy_ms_median"),
                        number(result, "copy_ms_max"),
                        result["repeat"],
                        number(result, "copy_call_ms_median"),
                    ),
                ]);
            }
            "cp" => {
                let seconds: Vec<f64> = result["seconds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_f64)
                    .collect();
                let middle = median_of(&seconds);
                rows.push([
                    format!("`{}` ({:.0} MiB)", result["command"].as_str().unwrap_or("cp"), number(result, "mib")),
                    format!(
                        "median **{middle:.2} s** = {:.0} MiB/s (runs: {})",
                        number(result, "mib") / middle,
                        seconds
                            .iter()
                            .map(|s| format!("{s:.2}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ]);
            }
            _ => {}
        }
    }
    let cp = find(&results, "cp", |r| r["label"] == "cp").map(|r| {
        let seconds: Vec<f64> = r["seconds"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_f64)
            .collect();
        median_of(&seconds)
    });
    if let Some(cp_s) = cp {
        for build in results.iter().filter(|r| r["phase"] == "image-build") {
            let create_s = number(build, "create_ms_median") / 1000.0;
            let copy_s = number(build, "copy_ms_median") / 1000.0;
            rows.push([
                format!(
                    "CreateImage time ({}) ÷ time of the 1 GiB cp",
                    build["label"].as_str().unwrap_or("")
                ),
                format!(
                    "**{:.4}** ({:.1} ms / {:.2} s: {:.0}× faster); CopyImage ÷ cp {:.4}",
                    create_s / cp_s,
                    create_s * 1000.0,
                    cp_s,
                    cp_s / create_s,
                    copy_s / cp_s
                ),
            ]);
        }
    }

    println!("| Measure | Result |");
    println!("|---|---|");
    for [measure, result] in rows {
        println!("| {measure} | {result} |");
    }
    println!();
    println!(
        "MiB = 2^20 bytes. CPU in % of one core over the phase (user + system; system alone in brackets)."
    );
    let loads: Vec<String> = results
        .iter()
        .filter_map(|result| {
            let load = result["loadavg"].as_str()?;
            let phase = result["phase"].as_str().unwrap_or("?");
            let label = result["label"].as_str().unwrap_or("");
            Some(if label.is_empty() {
                format!("{phase} {load}")
            } else {
                format!("{phase} ({label}) {load}")
            })
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

/// The markdown tables of a `scripts/bench-nodes` results file: requests/s
/// of every run side by side per configuration, then every measurement
/// with its latencies and where the CPU went.
pub fn print_nodes(path: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let results: Vec<Value> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("a results line is not JSON")?;
    let loads: Vec<&Value> = results
        .iter()
        .filter(|result| result["phase"] == "load")
        .collect();
    let text_of = |value: &Value, key: &str| value[key].as_str().unwrap_or("").to_string();
    // Configurations, operations and concurrencies in the order first run.
    let mut labels: Vec<String> = Vec::new();
    let mut rows: Vec<(String, u64)> = Vec::new();
    for load in &loads {
        let label = text_of(load, "label");
        if !labels.contains(&label) {
            labels.push(label);
        }
        let row = (
            text_of(load, "op"),
            load["connections"].as_u64().unwrap_or(0),
        );
        if !rows.contains(&row) {
            rows.push(row);
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));

    println!("Requests/s, every run (run 1 / run 2 / ...):");
    println!();
    println!("| Operation | Connections | {} |", labels.join(" | "));
    println!("|---|---|{}", "---|".repeat(labels.len()));
    for (op, connections) in &rows {
        let cells: Vec<String> = labels
            .iter()
            .map(|label| {
                let mut runs: Vec<&&Value> = loads
                    .iter()
                    .filter(|load| {
                        text_of(load, "op") == *op
                            && load["connections"].as_u64() == Some(*connections)
                            && text_of(load, "label") == *label
                    })
                    .collect();
                runs.sort_by_key(|load| load["run"].as_u64());
                if runs.is_empty() {
                    "–".into()
                } else {
                    runs.iter()
                        .map(|load| format!("{:.0}", number(load, "rps")))
                        .collect::<Vec<_>>()
                        .join(" / ")
                }
            })
            .collect();
        println!("| {op} | {connections} | {} |", cells.join(" | "));
    }

    println!();
    println!("Every measurement (CPU in % of one core over the measured window):");
    println!();
    println!(
        "| Operation | Conns | Configuration | Run | requests/s | p50 / p99 ms | errors | CPU nodes | CPU PostgreSQL: this db / rest | CPU generator | CPU machine (of which others) | node / PostgreSQL CPU µs per request | load avg at start |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut ordered = loads.clone();
    ordered.sort_by(|a, b| {
        let key = |load: &Value| {
            (
                text_of(load, "op"),
                load["connections"].as_u64(),
                labels
                    .iter()
                    .position(|label| *label == text_of(load, "label")),
                load["run"].as_u64(),
            )
        };
        key(a).cmp(&key(b))
    });
    let pct = |value: &Value| value.as_f64().map_or("–".into(), |v| format!("{v:.0}%"));
    let micros = |value: &Value| value.as_f64().map_or("–".into(), |v| format!("{v:.0}"));
    for load in ordered {
        let nodes = load["server_cpu_pct"]
            .as_array()
            .map(|shares| shares.iter().map(pct).collect::<Vec<_>>().join(" + "))
            .unwrap_or_default();
        // What the machine spent outside the measured processes: other
        // people's builds and tests, the kernel's own work.
        let ours: f64 = load["server_cpu_pct"]
            .as_array()
            .map_or(0.0, |shares| shares.iter().filter_map(Value::as_f64).sum())
            + load["pg_cpu_pct"].as_f64().unwrap_or(0.0)
            + load["pg_other_cpu_pct"].as_f64().unwrap_or(0.0)
            + load["generator_cpu_pct"].as_f64().unwrap_or(0.0);
        let machine = match load["machine_cpu_pct"].as_f64() {
            Some(machine) => format!("{machine:.0}% ({:.0}%)", (machine - ours).max(0.0)),
            None => "–".into(),
        };
        println!(
            "| {} | {} | {} | {} | {:.0} | {:.2} / {:.2} | {} | {} | {} / {} | {} | {} | {} / {} | {} |",
            text_of(load, "op"),
            load["connections"],
            text_of(load, "label"),
            load["run"],
            number(load, "rps"),
            number(load, "p50_ms"),
            number(load, "p99_ms"),
            load["errors"],
            nodes,
            pct(&load["pg_cpu_pct"]),
            pct(&load["pg_other_cpu_pct"]),
            pct(&load["generator_cpu_pct"]),
            machine,
            micros(&load["server_us_per_request"]),
            micros(&load["pg_us_per_request"]),
            text_of(load, "loadavg_start"),
        );
    }

    let populates: Vec<&Value> = results
        .iter()
        .filter(|result| result["phase"] == "populate")
        .collect();
    if !populates.is_empty() {
        println!();
        println!("Set-up, RegisterImage through the first node (not a comparison; disk-bound):");
        println!();
        println!("| Configuration | images | connections | requests/s | p50 / p99 ms |");
        println!("|---|---|---|---|---|");
        for populate in populates {
            println!(
                "| {} | {} | {} | {:.0} | {:.2} / {:.2} |",
                text_of(populate, "label"),
                populate["images"],
                populate["concurrency"],
                number(populate, "rps"),
                number(populate, "p50_ms"),
                number(populate, "p99_ms"),
            );
        }
    }
    Ok(())
}
