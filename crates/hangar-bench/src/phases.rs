//! The benchmark phases.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::json;
use time::OffsetDateTime;

use crate::client::{self, Conn};
use crate::sign::{EC2_VERSION, Signer, encode};
use crate::stats::{self, Samples};
use crate::{Endpoint, record};

pub(crate) fn signer(endpoint: &Endpoint, index: usize) -> anyhow::Result<Signer> {
    let credentials = endpoint.accounts.get(index).cloned().ok_or_else(|| {
        anyhow!(
            "{} needs at least {} [[accounts]]",
            endpoint.config_path.display(),
            index + 1
        )
    })?;
    Ok(Signer::new(credentials, &endpoint.region, &endpoint.host))
}

/// The text of the first `<tag>...</tag>` in `body`.
pub(crate) fn first_element<'a>(body: &'a [u8], tag: &str) -> Option<&'a str> {
    let text = std::str::from_utf8(body).ok()?;
    let open = format!("<{tag}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find('<')? + start;
    Some(&text[start..end])
}

fn count_occurrences(body: &[u8], needle: &[u8]) -> usize {
    body.windows(needle.len())
        .filter(|window| *window == needle)
        .count()
}

pub(crate) fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(400)]).into_owned()
}

pub(crate) fn run_nonce() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    format!("{:08x}", (nanos as u64) & 0xffff_ffff)
}

fn register_form(index: usize, nonce: &str, snapshot: &str) -> String {
    let name = format!("hangar-bench-{nonce}-{index:05}");
    format!(
        "Action=RegisterImage&Version={EC2_VERSION}\
         &Name={name}\
         &Description={description}\
         &Architecture=x86_64&VirtualizationType=hvm&EnaSupport=true&BootMode=uefi-preferred\
         &RootDeviceName=%2Fdev%2Fxvda\
         &BlockDeviceMapping.1.DeviceName=%2Fdev%2Fxvda\
         &BlockDeviceMapping.1.Ebs.SnapshotId={snapshot}\
         &BlockDeviceMapping.1.Ebs.VolumeSize=8\
         &BlockDeviceMapping.1.Ebs.VolumeType=gp3\
         &BlockDeviceMapping.1.Ebs.DeleteOnTermination=true\
         &TagSpecification.1.ResourceType=image\
         &TagSpecification.1.Tag.1.Key=bench-run&TagSpecification.1.Tag.1.Value={nonce}\
         &TagSpecification.1.Tag.2.Key=index&TagSpecification.1.Tag.2.Value={index}",
        description = encode(&format!("hangar-bench image {index} of run {nonce}")),
    )
}

/// Creates an empty, completed 8 GiB snapshot through the EBS direct APIs
/// (StartSnapshot, then CompleteSnapshot with no blocks): RegisterImage
/// only accepts completed snapshots the caller can use.
async fn create_snapshot(
    signer: &mut Signer,
    conn: &mut Conn,
    nonce: &str,
) -> anyhow::Result<String> {
    let body =
        json!({"VolumeSize": 8, "Description": format!("hangar-bench root volume, run {nonce}")});
    let prepared = signer.sign_request(
        &Method::POST,
        "/snapshots",
        "ebs",
        "application/json",
        &[],
        Bytes::from(body.to_string()),
        OffsetDateTime::now_utc(),
    )?;
    let (status, answer) = conn.send(prepared.request()).await?;
    if status != StatusCode::CREATED {
        bail!("StartSnapshot answered {status}: {}", snippet(&answer));
    }
    let answer: serde_json::Value =
        serde_json::from_slice(&answer).context("StartSnapshot answer")?;
    let snapshot_id = answer["SnapshotId"]
        .as_str()
        .ok_or_else(|| anyhow!("StartSnapshot answered no SnapshotId: {answer}"))?
        .to_string();
    let prepared = signer.sign_request(
        &Method::POST,
        &format!("/snapshots/completion/{snapshot_id}"),
        "ebs",
        "application/json",
        &[("x-amz-changedblockscount", "0")],
        Bytes::new(),
        OffsetDateTime::now_utc(),
    )?;
    let (status, answer) = conn.send(prepared.request()).await?;
    if status != StatusCode::ACCEPTED {
        bail!(
            "CompleteSnapshot {snapshot_id} answered {status}: {}",
            snippet(&answer)
        );
    }
    Ok(snapshot_id)
}

/// Reads the server's and this process's CPU seconds.
struct CpuMeter {
    ticks: f64,
    server: Option<String>,
    start_self: f64,
    start_server: Option<f64>,
}

impl CpuMeter {
    fn start(server_pid: Option<u32>) -> Self {
        let ticks = stats::clock_ticks();
        let server = server_pid.map(|pid| pid.to_string());
        Self {
            ticks,
            start_self: stats::cpu_seconds("self", ticks).unwrap_or(0.0),
            start_server: server
                .as_deref()
                .and_then(|pid| stats::cpu_seconds(pid, ticks)),
            server,
        }
    }

    /// (generator %, server %) of one core over `wall` seconds.
    fn stop(&self, wall: f64) -> (f64, Option<f64>) {
        let own = stats::cpu_seconds("self", self.ticks).unwrap_or(0.0) - self.start_self;
        let server = match (&self.server, self.start_server) {
            (Some(pid), Some(start)) => {
                stats::cpu_seconds(pid, self.ticks).map(|now| 100.0 * (now - start) / wall)
            }
            _ => None,
        };
        (100.0 * own / wall, server)
    }
}

pub async fn populate(
    endpoint: &Endpoint,
    images: usize,
    owned: usize,
    concurrency: usize,
    snapshots: usize,
    server_pid: Option<u32>,
) -> anyhow::Result<()> {
    let mut alice = signer(endpoint, 0)?;
    let mut bob = signer(endpoint, 1)?;
    let nonce = run_nonce();
    // A few root snapshots per account, shared by its images (as AWS allows).
    let mut setup = Conn::connect(endpoint.address).await?;
    let mut alice_snapshots = Vec::new();
    let mut bob_snapshots = Vec::new();
    for _ in 0..snapshots.max(1) {
        alice_snapshots.push(create_snapshot(&mut alice, &mut setup, &nonce).await?);
        bob_snapshots.push(create_snapshot(&mut bob, &mut setup, &nonce).await?);
    }
    drop(setup);
    let alice_snapshots = Arc::new(alice_snapshots);
    let bob_snapshots = Arc::new(bob_snapshots);
    let next = Arc::new(AtomicUsize::new(0));
    let meter = CpuMeter::start(server_pid);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (mut alice, mut bob) = (alice.clone(), bob.clone());
        let (next, nonce, address) = (next.clone(), nonce.clone(), endpoint.address);
        let (alice_snapshots, bob_snapshots) = (alice_snapshots.clone(), bob_snapshots.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(address).await?;
            let mut samples = Samples::with_capacity(images / concurrency.max(1) + 1);
            let mut failures = 0usize;
            let mut first_failure = None;
            let mut alice_image = None;
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= images {
                    break;
                }
                let (signer, snapshots) = if index < owned {
                    (&mut alice, &alice_snapshots)
                } else {
                    (&mut bob, &bob_snapshots)
                };
                let snapshot = &snapshots[index % snapshots.len()];
                let prepared = signer.sign(
                    register_form(index, &nonce, snapshot),
                    OffsetDateTime::now_utc(),
                )?;
                let sent = Instant::now();
                let (status, body) = conn.send(prepared.request()).await?;
                samples.push(sent.elapsed());
                if status != StatusCode::OK {
                    failures += 1;
                    first_failure.get_or_insert_with(|| format!("{status}: {}", snippet(&body)));
                } else if index < owned && alice_image.is_none() {
                    alice_image = first_element(&body, "imageId").map(str::to_string);
                }
            }
            anyhow::Ok((samples, failures, first_failure, alice_image))
        }));
    }
    let mut samples = Samples::with_capacity(images);
    let mut failures = 0;
    let mut first_failure = None;
    let mut alice_image = None;
    for task in tasks {
        let (part, part_failures, part_first, part_image) = task.await??;
        samples.extend(part);
        failures += part_failures;
        first_failure = first_failure.or(part_first);
        alice_image = alice_image.or(part_image);
    }
    let wall = started.elapsed().as_secs_f64();
    let (generator_cpu, server_cpu) = meter.stop(wall);
    samples.sort();
    let rps = images as f64 / wall;
    println!(
        "populate: {images} RegisterImage ({owned} as {}, {} as {}) over {concurrency} connections in {wall:.2} s: {rps:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, non-200: {failures}; generator CPU {generator_cpu:.0}%, server CPU {}",
        alice.account_id(),
        images - owned.min(images),
        bob.account_id(),
        samples.percentile_ms(0.5),
        samples.percentile_ms(0.99),
        samples.max_ms(),
        server_cpu.map_or("n/a".into(), |cpu| format!("{cpu:.0}%")),
    );
    if let Some(failure) = &first_failure {
        eprintln!("populate: first failure: {failure}");
    }
    record(
        endpoint.results.as_deref(),
        &json!({
            "phase": "populate",
            "label": endpoint.label,
            "images": images,
            "owned": owned,
            "concurrency": concurrency,
            "snapshots_per_account": snapshots.max(1),
            "seconds": wall,
            "rps": rps,
            "p50_ms": samples.percentile_ms(0.5),
            "p99_ms": samples.percentile_ms(0.99),
            "max_ms": samples.max_ms(),
            "non_200": failures,
            "generator_cpu_pct": generator_cpu,
            "server_cpu_pct": server_cpu,
            "sample_image_id": alice_image,
        }),
    )?;
    if failures > 0 {
        bail!("{failures} RegisterImage requests did not answer 200");
    }
    Ok(())
}

/// One signed request as account A; returns (status, body).
async fn call(
    endpoint: &Endpoint,
    conn: &mut Conn,
    form: &str,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let prepared = signer(endpoint, 0)?.sign(form.to_string(), OffsetDateTime::now_utc())?;
    conn.send(prepared.request()).await
}

/// One of account A's image IDs.
async fn some_image_of_a(endpoint: &Endpoint) -> anyhow::Result<String> {
    let mut conn = Conn::connect(endpoint.address).await?;
    let form = format!("Action=DescribeImages&Version={EC2_VERSION}&Owner.1=self&MaxResults=5");
    let (status, body) = call(endpoint, &mut conn, &form).await?;
    if status != StatusCode::OK {
        bail!(
            "DescribeImages Owner.1=self answered {status}: {}",
            snippet(&body)
        );
    }
    first_element(&body, "imageId")
        .map(str::to_string)
        .ok_or_else(|| anyhow!("account A owns no image; run populate first"))
}

pub struct ByIdOptions {
    pub image_id: Option<String>,
    pub duration: f64,
    pub warmup: f64,
    pub connections: usize,
    pub sign_each: bool,
    pub signatures: usize,
    pub server_pid: Option<u32>,
}

pub async fn by_id(endpoint: &Endpoint, options: ByIdOptions) -> anyhow::Result<()> {
    let image_id = match options.image_id {
        Some(id) => id,
        None => some_image_of_a(endpoint).await?,
    };
    let form = format!("Action=DescribeImages&Version={EC2_VERSION}&ImageId.1={image_id}");

    // Check the request is answered as intended before loading the server.
    let mut probe = Conn::connect(endpoint.address).await?;
    let (status, body) = call(endpoint, &mut probe, &form).await?;
    let expected = format!("<imageId>{image_id}</imageId>");
    if status != StatusCode::OK || count_occurrences(&body, expected.as_bytes()) != 1 {
        bail!(
            "DescribeImages {image_id} answered {status}: {}",
            snippet(&body)
        );
    }
    let response_bytes = body.len();
    drop(probe);

    // Replayed requests: a few signatures made up front with distinct dates
    // (all well inside the 15 minutes the server tolerates).
    let mut alice = signer(endpoint, 0)?;
    let now = OffsetDateTime::now_utc();
    let prepared: Vec<_> = (0..options.signatures.max(1))
        .map(|offset| alice.sign(form.clone(), now - time::Duration::seconds(offset as i64)))
        .collect::<anyhow::Result<_>>()?;
    let prepared = Arc::new(prepared);
    let form = Bytes::from(form);

    let started = Instant::now();
    let measure_from = started + Duration::from_secs_f64(options.warmup);
    let measure_to = measure_from + Duration::from_secs_f64(options.duration);
    let meter = tokio::spawn({
        let server_pid = options.server_pid;
        async move {
            tokio::time::sleep_until(measure_from.into()).await;
            let meter = CpuMeter::start(server_pid);
            let from = Instant::now();
            tokio::time::sleep_until(measure_to.into()).await;
            meter.stop(from.elapsed().as_secs_f64())
        }
    });
    let mut tasks = Vec::new();
    for worker in 0..options.connections.max(1) {
        let (prepared, form, mut alice) = (prepared.clone(), form.clone(), alice.clone());
        let (address, sign_each) = (endpoint.address, options.sign_each);
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(address).await?;
            let mut samples = Samples::with_capacity(65_536);
            let mut errors = 0usize;
            let mut first_error = None;
            let mut turn = worker;
            loop {
                let request = if sign_each {
                    alice
                        .sign(form.clone(), OffsetDateTime::now_utc())?
                        .request()
                } else {
                    turn = turn.wrapping_add(1);
                    prepared[turn % prepared.len()].request()
                };
                let sent = Instant::now();
                let (status, body) = conn.send(request).await?;
                let done = Instant::now();
                if done >= measure_to {
                    break;
                }
                if done < measure_from {
                    continue;
                }
                samples.push(done - sent);
                if status != StatusCode::OK {
                    errors += 1;
                    first_error.get_or_insert_with(|| format!("{status}: {}", snippet(&body)));
                }
            }
            anyhow::Ok((samples, errors, first_error))
        }));
    }
    let mut samples = Samples::with_capacity(1 << 20);
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        let (part, part_errors, part_first) = task.await??;
        samples.extend(part);
        errors += part_errors;
        first_error = first_error.or(part_first);
    }
    let (generator_cpu, server_cpu) = meter.await?;
    samples.sort();
    let requests = samples.len();
    let rps = requests as f64 / options.duration;
    let mode = if options.sign_each {
        "sign-each"
    } else {
        "replay"
    };
    println!(
        "by-id ({mode}): DescribeImages ImageId.1={image_id} ({response_bytes} B answers), {} connections, {:.0} s: {requests} requests, {rps:.0} requests/s, p50 {:.3} ms, p99 {:.3} ms, max {:.2} ms, errors {errors}; generator CPU {generator_cpu:.0}%, server CPU {}",
        options.connections,
        options.duration,
        samples.percentile_ms(0.5),
        samples.percentile_ms(0.99),
        samples.max_ms(),
        server_cpu.map_or("n/a".into(), |cpu| format!("{cpu:.0}%")),
    );
    if let Some(error) = &first_error {
        eprintln!("by-id: first error: {error}");
    }
    record(
        endpoint.results.as_deref(),
        &json!({
            "phase": "by-id",
            "label": endpoint.label,
            "mode": mode,
            "image_id": image_id,
            "connections": options.connections,
            "seconds": options.duration,
            "requests": requests,
            "rps": rps,
            "p50_ms": samples.percentile_ms(0.5),
            "p99_ms": samples.percentile_ms(0.99),
            "max_ms": samples.max_ms(),
            "errors": errors,
            "response_bytes": response_bytes,
            "generator_cpu_pct": generator_cpu,
            "server_cpu_pct": server_cpu,
        }),
    )?;
    if errors > 0 {
        bail!("{errors} DescribeImages requests did not answer 200");
    }
    Ok(())
}

pub async fn list_self(endpoint: &Endpoint, repeat: usize, expect: usize) -> anyhow::Result<()> {
    let form = format!("Action=DescribeImages&Version={EC2_VERSION}&Owner.1=self");
    let mut alice = signer(endpoint, 0)?;
    let mut conn = Conn::connect(endpoint.address).await?;
    let mut samples = Samples::with_capacity(repeat);
    let mut first_ms = None;
    let mut response_bytes = 0;
    let mut items = 0;
    // One unmeasured call first, reported apart as the cold call.
    for round in 0..=repeat {
        let request = alice
            .sign(form.clone(), OffsetDateTime::now_utc())?
            .request();
        let sent = Instant::now();
        let (status, body) = conn.send(request).await?;
        let elapsed = sent.elapsed();
        if status != StatusCode::OK {
            bail!(
                "DescribeImages Owner.1=self answered {status}: {}",
                snippet(&body)
            );
        }
        items = count_occurrences(&body, b"<imageId>");
        if items != expect {
            bail!("DescribeImages Owner.1=self returned {items} images, expected {expect}");
        }
        if body.windows(11).any(|window| window == b"<nextToken>") {
            bail!("DescribeImages Owner.1=self without MaxResults answered with a nextToken");
        }
        response_bytes = body.len();
        if round == 0 {
            first_ms = Some(elapsed.as_secs_f64() * 1000.0);
        } else {
            samples.push(elapsed);
        }
    }
    samples.sort();
    println!(
        "list-self: DescribeImages Owner.1=self as {}: {items} images, {response_bytes} B; first {:.2} ms, then over {repeat} calls min {:.2} ms, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        alice.account_id(),
        first_ms.unwrap_or(0.0),
        samples.min_ms(),
        samples.percentile_ms(0.5),
        samples.percentile_ms(0.99),
        samples.max_ms(),
    );
    record(
        endpoint.results.as_deref(),
        &json!({
            "phase": "list-self",
            "label": endpoint.label,
            "repeat": repeat,
            "items": items,
            "response_bytes": response_bytes,
            "first_ms": first_ms,
            "min_ms": samples.min_ms(),
            "p50_ms": samples.percentile_ms(0.5),
            "p99_ms": samples.percentile_ms(0.99),
            "max_ms": samples.max_ms(),
        }),
    )
}

pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

pub async fn wait_ready(endpoint: &Endpoint, timeout: f64) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if let Ok(mut conn) = Conn::connect(endpoint.address).await
            && let Ok((status, _)) = conn
                .send(client::get(&endpoint.host, "/_hangar/health")?)
                .await
            && status == StatusCode::OK
        {
            println!(
                "ready: {} answered /_hangar/health after {:.1} ms of polling",
                endpoint.host,
                started.elapsed().as_secs_f64() * 1000.0
            );
            return Ok(());
        }
        if started.elapsed().as_secs_f64() > timeout {
            bail!(
                "{} did not answer /_hangar/health within {timeout} s",
                endpoint.host
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// SIGTERM (graceful), then SIGKILL after 5 s.
fn stop(child: &mut Child) -> anyhow::Result<()> {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill()?;
    child.wait()?;
    Ok(())
}

struct StartupSample {
    health_ms: f64,
    signed_ms: f64,
    rss_kib: Option<u64>,
}

async fn one_startup(
    endpoint: &Endpoint,
    hangar_bin: &Path,
    data_dir: &Path,
    probe: &str,
) -> anyhow::Result<StartupSample> {
    let port = free_port()?;
    let host = format!("127.0.0.1:{port}");
    let address: SocketAddr = host.parse()?;
    let log = data_dir.with_extension("stderr.log");
    let started = Instant::now();
    let mut child = std::process::Command::new(hangar_bin)
        .arg("serve")
        .arg("--config")
        .arg(&endpoint.config_path)
        .arg("--listen")
        .arg(&host)
        .arg("--data-dir")
        .arg(data_dir)
        .env("HANGAR_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("cannot start {}", hangar_bin.display()))?;
    let outcome = async {
        let (mut conn, health_ms) = loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "hangar exited ({status}) before answering: {}",
                    std::fs::read_to_string(&log).unwrap_or_default().trim()
                );
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("hangar did not answer within 30 s");
            }
            if let Ok(mut conn) = Conn::connect(address).await
                && let Ok((status, _)) = conn.send(client::get(&host, "/_hangar/health")?).await
                && status == StatusCode::OK
            {
                break (conn, started.elapsed().as_secs_f64() * 1000.0);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let mut alice = Signer::new(
            endpoint
                .accounts
                .first()
                .cloned()
                .ok_or_else(|| anyhow!("no account"))?,
            &endpoint.region,
            &host,
        );
        let request = alice
            .sign(probe.to_string(), OffsetDateTime::now_utc())?
            .request();
        let (status, body) = conn.send(request).await?;
        let signed_ms = started.elapsed().as_secs_f64() * 1000.0;
        if status != StatusCode::OK {
            bail!(
                "signed DescribeImages answered {status}: {}",
                snippet(&body)
            );
        }
        let rss_kib = stats::status_kib(&child.id().to_string(), "VmRSS");
        Ok(StartupSample {
            health_ms,
            signed_ms,
            rss_kib,
        })
    }
    .await;
    stop(&mut child)?;
    let _ = std::fs::remove_file(&log);
    outcome
}

pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

pub async fn startup(
    endpoint: &Endpoint,
    hangar_bin: &Path,
    repeat: usize,
    data_dir: Option<&Path>,
    probe_image_id: Option<&str>,
) -> anyhow::Result<()> {
    if !hangar_bin.exists() {
        bail!(
            "{} does not exist; build it with cargo build --release -p hangar",
            hangar_bin.display()
        );
    }
    let probe = match probe_image_id {
        Some(id) => format!("Action=DescribeImages&Version={EC2_VERSION}&ImageId.1={id}"),
        None => format!("Action=DescribeImages&Version={EC2_VERSION}&Owner.1=self&MaxResults=5"),
    };
    let scratch = std::env::temp_dir().join(format!("hangar-bench-startup-{}", run_nonce()));
    std::fs::create_dir_all(&scratch)?;
    let mut samples = Vec::new();
    for round in 0..repeat.max(1) {
        let dir: PathBuf = match data_dir {
            Some(dir) => dir.to_path_buf(),
            None => scratch.join(format!("data-{round}")),
        };
        let sample = one_startup(endpoint, hangar_bin, &dir, &probe).await;
        if data_dir.is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        let sample = sample?;
        println!(
            "startup {round}: first answer (health) {:.1} ms, first signed DescribeImages {:.1} ms, VmRSS then {}",
            sample.health_ms,
            sample.signed_ms,
            sample.rss_kib.map_or("n/a".into(), |kib| format!(
                "{:.1} MB",
                stats::kib_to_mb(kib)
            )),
        );
        samples.push(sample);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let mut health: Vec<f64> = samples.iter().map(|sample| sample.health_ms).collect();
    let mut signed: Vec<f64> = samples.iter().map(|sample| sample.signed_ms).collect();
    let rss: Vec<u64> = samples.iter().filter_map(|sample| sample.rss_kib).collect();
    let health_median = median(&mut health);
    let signed_median = median(&mut signed);
    let which = if data_dir.is_some() {
        "existing data dir"
    } else {
        "fresh data dir"
    };
    println!(
        "startup ({which}): median of {} starts: first answer {health_median:.1} ms, first signed DescribeImages {signed_median:.1} ms",
        samples.len()
    );
    record(
        endpoint.results.as_deref(),
        &json!({
            "phase": "startup",
            "label": endpoint.label,
            "fresh": data_dir.is_none(),
            "repeat": samples.len(),
            "health_ms_median": health_median,
            "signed_ms_median": signed_median,
            "health_ms": health,
            "signed_ms": signed,
            "rss_mb_at_ready": rss.iter().map(|&kib| stats::kib_to_mb(kib)).collect::<Vec<_>>(),
        }),
    )
}

pub fn memory(pid: u32, results: Option<&Path>, label: &str) -> anyhow::Result<()> {
    let pid_text = pid.to_string();
    let rss = stats::status_kib(&pid_text, "VmRSS")
        .ok_or_else(|| anyhow!("cannot read VmRSS of process {pid}"))?;
    let hwm = stats::status_kib(&pid_text, "VmHWM");
    let anon = stats::status_kib(&pid_text, "RssAnon");
    let threads = stats::status_kib(&pid_text, "Threads");
    println!(
        "memory ({label}): VmRSS {:.1} MB ({rss} kB), peak VmHWM {}, RssAnon {}, threads {}",
        stats::kib_to_mb(rss),
        hwm.map_or("n/a".into(), |kib| format!(
            "{:.1} MB",
            stats::kib_to_mb(kib)
        )),
        anon.map_or("n/a".into(), |kib| format!(
            "{:.1} MB",
            stats::kib_to_mb(kib)
        )),
        threads.map_or("n/a".into(), |count| count.to_string()),
    );
    record(
        results,
        &json!({
            "phase": "memory",
            "label": label,
            "rss_kib": rss,
            "rss_mb": stats::kib_to_mb(rss),
            "hwm_mb": hwm.map(stats::kib_to_mb),
            "anon_mb": anon.map(stats::kib_to_mb),
            "threads": threads,
        }),
    )
}
