//! The disk-data phases of `scripts/bench-data`: snapshot data written and
//! read through the EBS direct APIs, the block store driven in-process
//! (no HTTP), and CreateImage / CopyImage of a snapshot with real data.
//!
//! Block contents are pseudo-random (wyrand, seeded per block from `--seed`
//! and the block index): non-zero, incompressible, every block distinct, and
//! the same for the same seed and index, so two snapshots written with the
//! same seed hold the same data.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use hangar_blocks::LocalBlockStore;
use hangar_core::blocks::{BLOCK_SIZE, BlockHash, BlockStore};
use http::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::client::Conn;
use crate::phases::{first_element, median, run_nonce, signer, snippet};
use crate::sign::{EC2_VERSION, RequestSpec, Signer, encode};
use crate::stats::{self, Samples};
use crate::{Endpoint, record};

/// 512 KiB blocks per GiB.
pub const BLOCKS_PER_GIB: usize = 2048;
const MIB: f64 = 1024.0 * 1024.0;

// ---- block contents ----

fn splitmix64(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fills `buf` (a multiple of 8 bytes long) with wyrand output.
fn fill(buf: &mut [u8], seed: u64) {
    let mut state = seed;
    for chunk in buf.chunks_exact_mut(8) {
        state = state.wrapping_add(0xa076_1d64_78bd_642f);
        let wide = u128::from(state) * u128::from(state ^ 0xe703_7ed1_a0b4_28db);
        chunk.copy_from_slice(&(((wide >> 64) as u64) ^ (wide as u64)).to_le_bytes());
    }
}

/// The content of block `index` for `seed`: 512 KiB of pseudo-random bytes.
pub fn block_content(seed: u64, index: u64) -> Vec<u8> {
    let mut data = vec![0u8; BLOCK_SIZE];
    fill(&mut data, splitmix64(seed ^ splitmix64(index)));
    data
}

/// A block ready to be sent: content, and its SHA-256 in the two encodings
/// a PutSnapshotBlock needs (base64 for `x-amz-Checksum`, hex for SigV4's
/// payload hash).
struct WireBlock {
    index: usize,
    data: Bytes,
    checksum_b64: String,
    sha_hex: String,
}

fn wire_block(seed: u64, index: usize) -> WireBlock {
    let data = block_content(seed, index as u64);
    let digest = Sha256::digest(&data);
    WireBlock {
        index,
        checksum_b64: BASE64.encode(digest),
        sha_hex: hex::encode(digest),
        data: Bytes::from(data),
    }
}

// ---- measuring ----

/// CPU (user, system) of this process and of the server, and the server's
/// storage I/O, over a window.
struct Meter {
    ticks: f64,
    server: Option<String>,
    own: (f64, f64),
    server_cpu: Option<(f64, f64)>,
    server_io: Option<(u64, u64)>,
    started: Instant,
}

impl Meter {
    fn start(server_pid: Option<u32>) -> Self {
        let ticks = stats::clock_ticks();
        let server = server_pid.map(|pid| pid.to_string());
        Self {
            ticks,
            own: stats::cpu_split("self", ticks).unwrap_or_default(),
            server_cpu: server
                .as_deref()
                .and_then(|pid| stats::cpu_split(pid, ticks)),
            server_io: server.as_deref().and_then(stats::io_bytes),
            server,
            started: Instant::now(),
        }
    }

    /// Wall seconds, and JSON fields: CPU in % of one core (user + system
    /// and system alone), server bytes read from and written to storage.
    fn stop(&self) -> (f64, serde_json::Map<String, Value>) {
        let wall = self.started.elapsed().as_secs_f64();
        let mut fields = serde_json::Map::new();
        let pct = |seconds: f64| 100.0 * seconds / wall;
        if let Some((user, system)) = stats::cpu_split("self", self.ticks) {
            let (user, system) = (user - self.own.0, system - self.own.1);
            fields.insert("generator_cpu_pct".into(), json!(pct(user + system)));
            fields.insert("generator_sys_pct".into(), json!(pct(system)));
        }
        if let (Some(pid), Some(start)) = (&self.server, self.server_cpu)
            && let Some((user, system)) = stats::cpu_split(pid, self.ticks)
        {
            let (user, system) = (user - start.0, system - start.1);
            fields.insert("server_cpu_pct".into(), json!(pct(user + system)));
            fields.insert("server_sys_pct".into(), json!(pct(system)));
        }
        if let (Some(pid), Some(start)) = (&self.server, self.server_io)
            && let Some((read, written)) = stats::io_bytes(pid)
        {
            fields.insert(
                "server_read_mib".into(),
                json!(read.saturating_sub(start.0) as f64 / MIB),
            );
            fields.insert(
                "server_written_mib".into(),
                json!(written.saturating_sub(start.1) as f64 / MIB),
            );
        }
        (wall, fields)
    }
}

fn cpu_text(fields: &serde_json::Map<String, Value>) -> String {
    let get = |key: &str| fields.get(key).and_then(Value::as_f64);
    let mut parts = Vec::new();
    if let Some(cpu) = get("generator_cpu_pct") {
        parts.push(format!(
            "generator CPU {cpu:.0}% (sys {:.0}%)",
            get("generator_sys_pct").unwrap_or(0.0)
        ));
    }
    if let Some(cpu) = get("server_cpu_pct") {
        parts.push(format!(
            "server CPU {cpu:.0}% (sys {:.0}%)",
            get("server_sys_pct").unwrap_or(0.0)
        ));
    }
    if let Some(written) = get("server_written_mib") {
        parts.push(format!(
            "server storage I/O read {:.0} MiB, written {written:.0} MiB",
            get("server_read_mib").unwrap_or(0.0)
        ));
    }
    parts.join(", ")
}

fn with_fields(mut value: Value, fields: serde_json::Map<String, Value>) -> Value {
    if let Some(object) = value.as_object_mut() {
        object.extend(fields);
    }
    value
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

// ---- EBS direct API calls ----

/// Sends one signed EBS request and returns (status, headers, body).
#[allow(clippy::too_many_arguments)]
async fn ebs_send(
    signer: &mut Signer,
    conn: &mut Conn,
    method: &Method,
    path: &str,
    query: &str,
    content_type: &str,
    headers: &[(&str, &str)],
    body: Bytes,
    payload_sha256_hex: Option<&str>,
) -> anyhow::Result<(StatusCode, http::HeaderMap, Bytes)> {
    let prepared = signer.sign_spec(
        &RequestSpec {
            method,
            path,
            query,
            service: "ebs",
            content_type,
            extra_headers: headers,
            payload_sha256_hex,
        },
        body,
        OffsetDateTime::now_utc(),
    )?;
    conn.send_full(prepared.request()).await
}

async fn start_snapshot(
    signer: &mut Signer,
    conn: &mut Conn,
    volume_size: usize,
    description: &str,
) -> anyhow::Result<String> {
    let body = json!({"VolumeSize": volume_size, "Description": description});
    let (status, _, answer) = ebs_send(
        signer,
        conn,
        &Method::POST,
        "/snapshots",
        "",
        "application/json",
        &[],
        Bytes::from(body.to_string()),
        None,
    )
    .await?;
    if status != StatusCode::CREATED {
        bail!("StartSnapshot answered {status}: {}", snippet(&answer));
    }
    let answer: Value = serde_json::from_slice(&answer).context("StartSnapshot answer")?;
    answer["SnapshotId"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("StartSnapshot answered no SnapshotId: {answer}"))
}

/// Every (index, token) of a completed snapshot, through ListSnapshotBlocks
/// pages of `page` entries; also returns the number of pages.
async fn list_blocks(
    signer: &mut Signer,
    conn: &mut Conn,
    snapshot_id: &str,
    page: usize,
) -> anyhow::Result<(Vec<(i64, String)>, usize)> {
    let path = format!("/snapshots/{snapshot_id}/blocks");
    let mut blocks = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut query = format!("maxResults={page}");
        if let Some(token) = &token {
            query.push_str(&format!("&pageToken={}", encode(token)));
        }
        let (status, _, body) = ebs_send(
            signer,
            conn,
            &Method::GET,
            &path,
            &query,
            "application/json",
            &[],
            Bytes::new(),
            None,
        )
        .await?;
        if status != StatusCode::OK {
            bail!("ListSnapshotBlocks answered {status}: {}", snippet(&body));
        }
        pages += 1;
        let answer: Value = serde_json::from_slice(&body).context("ListSnapshotBlocks answer")?;
        for block in answer["Blocks"].as_array().into_iter().flatten() {
            let index = block["BlockIndex"]
                .as_i64()
                .ok_or_else(|| anyhow!("a block without BlockIndex: {block}"))?;
            let token = block["BlockToken"]
                .as_str()
                .ok_or_else(|| anyhow!("a block without BlockToken: {block}"))?;
            blocks.push((index, token.to_string()));
        }
        match answer["NextToken"].as_str() {
            Some(next) => token = Some(next.to_string()),
            None => break,
        }
    }
    Ok((blocks, pages))
}

// ---- ebs-write ----

pub struct EbsWriteOptions {
    pub volume_size: usize,
    pub blocks: Option<usize>,
    pub seed: u64,
    pub concurrency: usize,
    pub pregenerate_max_mib: usize,
    pub server_pid: Option<u32>,
}

/// Where the senders take their blocks from.
enum Source {
    /// Generated (and hashed) before the clock starts.
    Ready(Arc<Vec<WireBlock>>, Arc<AtomicUsize>),
    /// Generated while sending by a thread of its own, a few blocks ahead.
    Streamed(Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<WireBlock>>>),
}

impl Source {
    async fn next(&self) -> Option<WireBlock> {
        match self {
            Source::Ready(blocks, next) => {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let block = blocks.get(index)?;
                Some(WireBlock {
                    index: block.index,
                    data: block.data.clone(),
                    checksum_b64: block.checksum_b64.clone(),
                    sha_hex: block.sha_hex.clone(),
                })
            }
            Source::Streamed(receiver) => receiver.lock().await.recv().await,
        }
    }
}

pub async fn ebs_write(endpoint: &Endpoint, options: EbsWriteOptions) -> anyhow::Result<()> {
    let blocks = options
        .blocks
        .unwrap_or(options.volume_size * BLOCKS_PER_GIB);
    if blocks > options.volume_size * BLOCKS_PER_GIB {
        bail!(
            "{blocks} blocks do not fit a {} GiB snapshot",
            options.volume_size
        );
    }
    let concurrency = options.concurrency.max(1);
    let seed = options.seed;
    let total_mib = blocks as f64 * BLOCK_SIZE as f64 / MIB;
    let pregenerated = total_mib <= options.pregenerate_max_mib as f64;

    let mut generation = serde_json::Map::new();
    let source = if pregenerated {
        let meter = Meter::start(None);
        let ready: Vec<WireBlock> = (0..blocks).map(|index| wire_block(seed, index)).collect();
        let (seconds, fields) = meter.stop();
        println!(
            "ebs-write: generated and hashed {blocks} blocks ({total_mib:.0} MiB) in {seconds:.2} s ({:.0} MiB/s) before timing",
            total_mib / seconds
        );
        generation.insert("generate_seconds".into(), json!(seconds));
        generation.insert(
            "generate_cpu_pct".into(),
            fields
                .get("generator_cpu_pct")
                .cloned()
                .unwrap_or(Value::Null),
        );
        Source::Ready(Arc::new(ready), Arc::new(AtomicUsize::new(0)))
    } else {
        let (sender, receiver) = tokio::sync::mpsc::channel(concurrency * 2);
        std::thread::spawn(move || {
            for index in 0..blocks {
                if sender.blocking_send(wire_block(seed, index)).is_err() {
                    break;
                }
            }
        });
        println!(
            "ebs-write: {total_mib:.0} MiB is over --pregenerate-max-mib; a generator thread makes the blocks while they are sent (its CPU counts as the generator's)"
        );
        Source::Streamed(Arc::new(tokio::sync::Mutex::new(receiver)))
    };
    let source = Arc::new(source);

    let mut alice = signer(endpoint, 0)?;
    let mut conn = Conn::connect(endpoint.address).await?;
    let nonce = run_nonce();
    let snapshot_id = start_snapshot(
        &mut alice,
        &mut conn,
        options.volume_size,
        &format!("hangar-bench data, run {nonce}"),
    )
    .await?;

    let meter = Meter::start(options.server_pid);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (source, snapshot_id, mut alice) = (source.clone(), snapshot_id.clone(), alice.clone());
        let address = endpoint.address;
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(address).await?;
            let mut samples = Samples::with_capacity(blocks / concurrency + 1);
            while let Some(block) = source.next().await {
                let path = format!("/snapshots/{snapshot_id}/blocks/{}", block.index);
                let headers = [
                    ("x-amz-checksum", block.checksum_b64.as_str()),
                    ("x-amz-checksum-algorithm", "SHA256"),
                    ("x-amz-data-length", "524288"),
                ];
                let prepared = alice.sign_spec(
                    &RequestSpec {
                        method: &Method::PUT,
                        path: &path,
                        query: "",
                        service: "ebs",
                        content_type: "application/octet-stream",
                        extra_headers: &headers,
                        payload_sha256_hex: Some(&block.sha_hex),
                    },
                    block.data.clone(),
                    OffsetDateTime::now_utc(),
                )?;
                let sent = Instant::now();
                let (status, body) = conn.send(prepared.request()).await?;
                samples.push(sent.elapsed());
                if status != StatusCode::CREATED {
                    bail!(
                        "PutSnapshotBlock {} answered {status}: {}",
                        block.index,
                        snippet(&body)
                    );
                }
            }
            anyhow::Ok(samples)
        }));
    }
    let mut samples = Samples::with_capacity(blocks);
    for task in tasks {
        samples.extend(task.await??);
    }
    let puts_seconds = meter.started.elapsed().as_secs_f64();
    let completing = Instant::now();
    let count = blocks.to_string();
    let (status, _, body) = ebs_send(
        &mut alice,
        &mut conn,
        &Method::POST,
        &format!("/snapshots/completion/{snapshot_id}"),
        "",
        "application/json",
        &[("x-amz-changedblockscount", count.as_str())],
        Bytes::new(),
        None,
    )
    .await?;
    let complete_ms = ms(completing.elapsed());
    if status != StatusCode::ACCEPTED {
        bail!(
            "CompleteSnapshot {snapshot_id} answered {status}: {}",
            snippet(&body)
        );
    }
    let (wall, fields) = meter.stop();
    samples.sort();
    if samples.len() != blocks {
        bail!("{} of {blocks} blocks were sent", samples.len());
    }
    let mib_s = total_mib / wall;
    println!(
        "ebs-write: {snapshot_id} ({} GiB): {blocks} PutSnapshotBlock ({total_mib:.0} MiB) over {concurrency} connections + CompleteSnapshot in {wall:.2} s: {mib_s:.1} MiB/s; put p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; CompleteSnapshot {complete_ms:.1} ms; {}",
        options.volume_size,
        samples.percentile_ms(0.5),
        samples.percentile_ms(0.99),
        samples.max_ms(),
        cpu_text(&fields),
    );
    let mut value = json!({
        "phase": "ebs-write",
        "label": endpoint.label,
        "snapshot_id": snapshot_id,
        "volume_size_gib": options.volume_size,
        "blocks": blocks,
        "mib": total_mib,
        "concurrency": concurrency,
        "pregenerated": pregenerated,
        "seed": seed,
        "seconds": wall,
        "puts_seconds": puts_seconds,
        "mib_s": mib_s,
        "p50_ms": samples.percentile_ms(0.5),
        "p99_ms": samples.percentile_ms(0.99),
        "max_ms": samples.max_ms(),
        "complete_ms": complete_ms,
    });
    value = with_fields(value, generation);
    record(endpoint.results.as_deref(), &with_fields(value, fields))
}

// ---- ebs-read ----

pub async fn ebs_read(
    endpoint: &Endpoint,
    snapshot_id: &str,
    concurrency: usize,
    expect: Option<usize>,
    page: usize,
    server_pid: Option<u32>,
) -> anyhow::Result<()> {
    let concurrency = concurrency.max(1);
    let mut alice = signer(endpoint, 0)?;
    let mut conn = Conn::connect(endpoint.address).await?;
    let meter = Meter::start(server_pid);
    let (listing, pages) = list_blocks(&mut alice, &mut conn, snapshot_id, page).await?;
    let list_ms = ms(meter.started.elapsed());
    if let Some(expect) = expect
        && listing.len() != expect
    {
        bail!(
            "ListSnapshotBlocks {snapshot_id} listed {} blocks, expected {expect}",
            listing.len()
        );
    }
    let blocks = listing.len();
    let listing = Arc::new(listing);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (listing, next, mut alice) = (listing.clone(), next.clone(), alice.clone());
        let (address, snapshot_id) = (endpoint.address, snapshot_id.to_string());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(address).await?;
            let mut samples = Samples::with_capacity(blocks / concurrency + 1);
            let mut bytes = 0usize;
            loop {
                let turn = next.fetch_add(1, Ordering::Relaxed);
                let Some((index, token)) = listing.get(turn) else {
                    break;
                };
                let sent = Instant::now();
                let (status, headers, body) = ebs_send(
                    &mut alice,
                    &mut conn,
                    &Method::GET,
                    &format!("/snapshots/{snapshot_id}/blocks/{index}"),
                    &format!("blockToken={}", encode(token)),
                    "application/json",
                    &[],
                    Bytes::new(),
                    None,
                )
                .await?;
                samples.push(sent.elapsed());
                if status != StatusCode::OK {
                    bail!(
                        "GetSnapshotBlock {index} answered {status}: {}",
                        snippet(&body)
                    );
                }
                let declared = headers
                    .get("x-amz-checksum")
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| BASE64.decode(value).ok())
                    .ok_or_else(|| anyhow!("GetSnapshotBlock {index}: no x-amz-Checksum"))?;
                if body.len() != BLOCK_SIZE || Sha256::digest(&body).as_slice() != declared {
                    bail!(
                        "GetSnapshotBlock {index}: {} bytes that do not match x-amz-Checksum",
                        body.len()
                    );
                }
                bytes += body.len();
            }
            anyhow::Ok((samples, bytes))
        }));
    }
    let mut samples = Samples::with_capacity(blocks);
    let mut bytes = 0;
    for task in tasks {
        let (part, part_bytes) = task.await??;
        samples.extend(part);
        bytes += part_bytes;
    }
    let (wall, fields) = meter.stop();
    samples.sort();
    let mib = bytes as f64 / MIB;
    let mib_s = mib / wall;
    println!(
        "ebs-read ({}): {snapshot_id}: ListSnapshotBlocks {blocks} blocks in {pages} pages ({list_ms:.1} ms), then {blocks} GetSnapshotBlock ({mib:.0} MiB, every checksum verified) over {concurrency} connections; {wall:.2} s in all: {mib_s:.1} MiB/s; get p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {}",
        endpoint.label,
        samples.percentile_ms(0.5),
        samples.percentile_ms(0.99),
        samples.max_ms(),
        cpu_text(&fields),
    );
    let value = json!({
        "phase": "ebs-read",
        "label": endpoint.label,
        "snapshot_id": snapshot_id,
        "blocks": blocks,
        "pages": pages,
        "mib": mib,
        "concurrency": concurrency,
        "seconds": wall,
        "list_ms": list_ms,
        "mib_s": mib_s,
        "p50_ms": samples.percentile_ms(0.5),
        "p99_ms": samples.percentile_ms(0.99),
        "max_ms": samples.max_ms(),
    });
    record(endpoint.results.as_deref(), &with_fields(value, fields))
}

// ---- blocks-direct ----

pub struct DirectOptions<'a> {
    pub dir: &'a Path,
    pub blocks: usize,
    pub concurrency: usize,
    pub seed: u64,
    pub cold: bool,
    pub results: Option<&'a Path>,
    pub label: &'a str,
}

/// Gets every block of `hashes` with `concurrency` tasks; returns the
/// latencies and the wall seconds.
async fn direct_gets(
    store: &Arc<LocalBlockStore>,
    hashes: &Arc<Vec<BlockHash>>,
    concurrency: usize,
) -> anyhow::Result<(Samples, f64, serde_json::Map<String, Value>)> {
    let meter = Meter::start(None);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (store, hashes, next) = (store.clone(), hashes.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = Samples::with_capacity(hashes.len() / concurrency + 1);
            loop {
                let turn = next.fetch_add(1, Ordering::Relaxed);
                let Some(hash) = hashes.get(turn) else { break };
                let started = Instant::now();
                // The store verifies the content against its SHA-256 name.
                let data = store.get(hash).await?;
                samples.push(started.elapsed());
                if data.len() != BLOCK_SIZE {
                    bail!(
                        "block {} came back with {} bytes",
                        hash.to_hex(),
                        data.len()
                    );
                }
            }
            anyhow::Ok(samples)
        }));
    }
    let mut samples = Samples::with_capacity(hashes.len());
    for task in tasks {
        samples.extend(task.await??);
    }
    samples.sort();
    let (wall, fields) = meter.stop();
    Ok((samples, wall, fields))
}

pub async fn blocks_direct(options: DirectOptions<'_>) -> anyhow::Result<()> {
    let concurrency = options.concurrency.max(1);
    let blocks = options.blocks;
    let mib = blocks as f64 * BLOCK_SIZE as f64 / MIB;
    let started = Instant::now();
    let prepared: VecDeque<(BlockHash, Vec<u8>)> = (0..blocks)
        .map(|index| {
            let data = block_content(options.seed, index as u64);
            (BlockHash::of(&data), data)
        })
        .collect();
    let generate_seconds = started.elapsed().as_secs_f64();
    let hashes: Arc<Vec<BlockHash>> = Arc::new(prepared.iter().map(|(hash, _)| *hash).collect());
    let store = Arc::new(
        LocalBlockStore::open(options.dir)
            .map_err(|error| anyhow!("cannot open the block store: {error}"))?,
    );
    println!(
        "blocks-direct: LocalBlockStore at {}; generated {blocks} blocks ({mib:.0} MiB) in {generate_seconds:.2} s before timing",
        store.root().display()
    );

    // Puts: each block is moved into the store (no copy), as the server does.
    let queue = Arc::new(Mutex::new(prepared));
    let meter = Meter::start(None);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (store, queue) = (store.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = Samples::with_capacity(blocks / concurrency + 1);
            loop {
                let item = queue.lock().expect("queue lock").pop_front();
                let Some((hash, data)) = item else { break };
                let started = Instant::now();
                store.put(&hash, data).await?;
                samples.push(started.elapsed());
            }
            anyhow::Ok(samples)
        }));
    }
    let mut put_samples = Samples::with_capacity(blocks);
    for task in tasks {
        put_samples.extend(task.await??);
    }
    put_samples.sort();
    let (put_wall, put_fields) = meter.stop();
    println!(
        "blocks-direct put: {blocks} blocks ({mib:.0} MiB), {concurrency} tasks, {put_wall:.2} s: {:.1} MiB/s; p50 {:.2} ms, p99 {:.2} ms; {}",
        mib / put_wall,
        put_samples.percentile_ms(0.5),
        put_samples.percentile_ms(0.99),
        cpu_text(&put_fields),
    );

    let (warm, warm_wall, warm_fields) = direct_gets(&store, &hashes, concurrency).await?;
    println!(
        "blocks-direct get (page cache warm): {:.2} s: {:.1} MiB/s; p50 {:.2} ms, p99 {:.2} ms; {}",
        warm_wall,
        mib / warm_wall,
        warm.percentile_ms(0.5),
        warm.percentile_ms(0.99),
        cpu_text(&warm_fields),
    );
    let mut value = json!({
        "phase": "blocks-direct",
        "label": options.label,
        "dir": store.root().display().to_string(),
        "blocks": blocks,
        "mib": mib,
        "concurrency": concurrency,
        "generate_seconds": generate_seconds,
        "put_seconds": put_wall,
        "put_mib_s": mib / put_wall,
        "put_p50_ms": put_samples.percentile_ms(0.5),
        "put_p99_ms": put_samples.percentile_ms(0.99),
        "put_cpu_pct": put_fields.get("generator_cpu_pct"),
        "put_sys_pct": put_fields.get("generator_sys_pct"),
        "get_warm_seconds": warm_wall,
        "get_warm_mib_s": mib / warm_wall,
        "get_warm_p50_ms": warm.percentile_ms(0.5),
        "get_warm_p99_ms": warm.percentile_ms(0.99),
        "get_warm_cpu_pct": warm_fields.get("generator_cpu_pct"),
    });
    if options.cold {
        let (files, evicted) = evict(store.root())?;
        println!(
            "blocks-direct: evicted {files} files ({:.0} MiB) from the page cache",
            evicted as f64 / MIB
        );
        let (cold, cold_wall, cold_fields) = direct_gets(&store, &hashes, concurrency).await?;
        println!(
            "blocks-direct get (evicted from the page cache): {:.2} s: {:.1} MiB/s; p50 {:.2} ms, p99 {:.2} ms; {}",
            cold_wall,
            mib / cold_wall,
            cold.percentile_ms(0.5),
            cold.percentile_ms(0.99),
            cpu_text(&cold_fields),
        );
        if let Some(object) = value.as_object_mut() {
            object.insert("get_cold_seconds".into(), json!(cold_wall));
            object.insert("get_cold_mib_s".into(), json!(mib / cold_wall));
            object.insert("get_cold_p50_ms".into(), json!(cold.percentile_ms(0.5)));
            object.insert("get_cold_p99_ms".into(), json!(cold.percentile_ms(0.99)));
            object.insert(
                "get_cold_cpu_pct".into(),
                json!(cold_fields.get("generator_cpu_pct")),
            );
        }
    }
    record(options.results, &value)
}

// ---- evict ----

/// Drops the (clean) page-cache pages of every file under `dir`
/// (`posix_fadvise(POSIX_FADV_DONTNEED)`), so the next reads go to the
/// disk. Returns the number of files and their total size.
pub fn evict(dir: &Path) -> anyhow::Result<(usize, u64)> {
    let mut files = 0;
    let mut bytes = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current)
            .with_context(|| format!("cannot list {}", current.display()))?
        {
            let entry = entry?;
            let file_type = entry.file_type()?;
            if file_type.is_dir() {
                pending.push(entry.path());
            } else if file_type.is_file() {
                let file = std::fs::File::open(entry.path())?;
                rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed)
                    .with_context(|| format!("fadvise {}", entry.path().display()))?;
                files += 1;
                bytes += file.metadata()?.len();
            }
        }
    }
    Ok((files, bytes))
}

// ---- image-build ----

/// Sends one signed EC2 request; the answer must be 200.
async fn ec2(signer: &mut Signer, conn: &mut Conn, form: String) -> anyhow::Result<Bytes> {
    let action = form
        .split('&')
        .next()
        .unwrap_or("")
        .trim_start_matches("Action=")
        .to_string();
    let prepared = signer.sign(form, OffsetDateTime::now_utc())?;
    let (status, body) = conn.send(prepared.request()).await?;
    if status != StatusCode::OK {
        bail!("{action} answered {status}: {}", snippet(&body));
    }
    Ok(body)
}

/// Polls DescribeImages every `poll` until the image is `available`;
/// returns the number of polls.
async fn wait_available(
    signer: &mut Signer,
    conn: &mut Conn,
    image_id: &str,
    poll: Duration,
    timeout: Duration,
) -> anyhow::Result<usize> {
    let form = format!("Action=DescribeImages&Version={EC2_VERSION}&ImageId.1={image_id}");
    let started = Instant::now();
    let mut polls = 0;
    loop {
        let body = ec2(signer, conn, form.clone()).await?;
        polls += 1;
        match first_element(&body, "imageState") {
            Some("available") => return Ok(polls),
            Some("pending") => {}
            other => bail!("{image_id} is {other:?}: {}", snippet(&body)),
        }
        if started.elapsed() > timeout {
            bail!("{image_id} was not available after {timeout:?}");
        }
        tokio::time::sleep(poll).await;
    }
}

/// The root snapshot of an image and its number of data blocks.
async fn image_blocks(
    signer: &mut Signer,
    conn: &mut Conn,
    image_id: &str,
) -> anyhow::Result<(String, usize)> {
    let form = format!("Action=DescribeImages&Version={EC2_VERSION}&ImageId.1={image_id}");
    let body = ec2(signer, conn, form).await?;
    let snapshot_id = first_element(&body, "snapshotId")
        .ok_or_else(|| anyhow!("{image_id} has no snapshot: {}", snippet(&body)))?
        .to_string();
    let (blocks, _) = list_blocks(signer, conn, &snapshot_id, 10_000).await?;
    Ok((snapshot_id, blocks.len()))
}

pub struct ImageBuildOptions {
    pub snapshot_id: String,
    pub volume_size: usize,
    pub expect_blocks: Option<usize>,
    pub repeat: usize,
    pub poll_ms: f64,
    pub server_pid: Option<u32>,
}

fn summary(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    let middle = median(&mut sorted);
    let min = sorted.first().copied().unwrap_or(0.0);
    let max = sorted.last().copied().unwrap_or(0.0);
    (middle, min, max)
}

pub async fn image_build(endpoint: &Endpoint, options: ImageBuildOptions) -> anyhow::Result<()> {
    let mut alice = signer(endpoint, 0)?;
    let mut conn = Conn::connect(endpoint.address).await?;
    let nonce = run_nonce();
    let label = if endpoint.label.is_empty() {
        "data".to_string()
    } else {
        endpoint.label.clone()
    };
    let poll = Duration::from_secs_f64(options.poll_ms / 1000.0);
    let timeout = Duration::from_secs(120);
    let base = format!("hangar-bench-{label}-{nonce}");

    let body = ec2(
        &mut alice,
        &mut conn,
        format!(
            "Action=RegisterImage&Version={EC2_VERSION}&Name={base}-registered\
             &Architecture=x86_64&VirtualizationType=hvm&EnaSupport=true\
             &RootDeviceName=%2Fdev%2Fxvda\
             &BlockDeviceMapping.1.DeviceName=%2Fdev%2Fxvda\
             &BlockDeviceMapping.1.Ebs.SnapshotId={}\
             &BlockDeviceMapping.1.Ebs.VolumeSize={}\
             &BlockDeviceMapping.1.Ebs.VolumeType=gp3\
             &BlockDeviceMapping.1.Ebs.DeleteOnTermination=true",
            options.snapshot_id, options.volume_size
        ),
    )
    .await?;
    let registered = first_element(&body, "imageId")
        .ok_or_else(|| anyhow!("RegisterImage answered no imageId: {}", snippet(&body)))?
        .to_string();
    wait_available(&mut alice, &mut conn, &registered, poll, timeout).await?;

    let launching = Instant::now();
    let body = ec2(
        &mut alice,
        &mut conn,
        format!(
            "Action=RunInstances&Version={EC2_VERSION}&ImageId={registered}\
             &MinCount=1&MaxCount=1&InstanceType=t3.micro"
        ),
    )
    .await?;
    let run_instances_ms = ms(launching.elapsed());
    let instance_id = first_element(&body, "instanceId")
        .ok_or_else(|| anyhow!("RunInstances answered no instanceId: {}", snippet(&body)))?
        .to_string();
    let describe =
        format!("Action=DescribeInstances&Version={EC2_VERSION}&InstanceId.1={instance_id}");
    loop {
        let body = ec2(&mut alice, &mut conn, describe.clone()).await?;
        if String::from_utf8_lossy(&body).contains("<name>running</name>") {
            break;
        }
        if launching.elapsed() > timeout {
            bail!("{instance_id} is not running after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let running_ms = ms(launching.elapsed());
    println!(
        "image-build ({label}): registered {registered} on {} ({} GiB); RunInstances {instance_id} answered in {run_instances_ms:.1} ms, running after {running_ms:.0} ms",
        options.snapshot_id, options.volume_size
    );

    let meter = Meter::start(options.server_pid);
    let mut create_ms = Vec::new();
    let mut create_call_ms = Vec::new();
    let mut copy_ms = Vec::new();
    let mut copy_call_ms = Vec::new();
    let mut polls = 0;
    let mut checked = Vec::new();
    for round in 0..options.repeat.max(1) {
        let started = Instant::now();
        let body = ec2(
            &mut alice,
            &mut conn,
            format!(
                "Action=CreateImage&Version={EC2_VERSION}&InstanceId={instance_id}\
                 &Name={base}-create-{round}&NoReboot=true"
            ),
        )
        .await?;
        let call = ms(started.elapsed());
        let created = first_element(&body, "imageId")
            .ok_or_else(|| anyhow!("CreateImage answered no imageId: {}", snippet(&body)))?
            .to_string();
        polls += wait_available(&mut alice, &mut conn, &created, poll, timeout).await?;
        let create = ms(started.elapsed());

        let started = Instant::now();
        let body = ec2(
            &mut alice,
            &mut conn,
            format!(
                "Action=CopyImage&Version={EC2_VERSION}&SourceRegion={}\
                 &SourceImageId={created}&Name={base}-copy-{round}",
                endpoint.region
            ),
        )
        .await?;
        let copy_call = ms(started.elapsed());
        let copied = first_element(&body, "imageId")
            .ok_or_else(|| anyhow!("CopyImage answered no imageId: {}", snippet(&body)))?
            .to_string();
        polls += wait_available(&mut alice, &mut conn, &copied, poll, timeout).await?;
        let copy = ms(started.elapsed());
        println!(
            "image-build ({label}) round {round}: CreateImage {created} available after {create:.1} ms (call {call:.1} ms); CopyImage {copied} available after {copy:.1} ms (call {copy_call:.1} ms)"
        );
        create_ms.push(create);
        create_call_ms.push(call);
        copy_ms.push(copy);
        copy_call_ms.push(copy_call);
        if round == 0 {
            // Outside the timings: the new images' snapshots map every block.
            for image in [&created, &copied] {
                let (snapshot, blocks) = image_blocks(&mut alice, &mut conn, image).await?;
                if let Some(expect) = options.expect_blocks
                    && blocks != expect
                {
                    bail!("{image}'s snapshot {snapshot} maps {blocks} blocks, expected {expect}");
                }
                checked.push(json!({"image_id": image, "snapshot_id": snapshot, "blocks": blocks}));
            }
        }
    }
    let (_, fields) = meter.stop();
    let (create_median, create_min, create_max) = summary(&create_ms);
    let (copy_median, copy_min, copy_max) = summary(&copy_ms);
    println!(
        "image-build ({label}): {} rounds: CreateImage until available median {create_median:.1} ms (min {create_min:.1}, max {create_max:.1}); CopyImage until available median {copy_median:.1} ms (min {copy_min:.1}, max {copy_max:.1}); polling every {} ms; new snapshots checked: {}",
        create_ms.len(),
        options.poll_ms,
        checked
            .iter()
            .map(|entry| format!("{} blocks", entry["blocks"]))
            .collect::<Vec<_>>()
            .join(", "),
    );
    let value = json!({
        "phase": "image-build",
        "label": label,
        "snapshot_id": options.snapshot_id,
        "volume_size_gib": options.volume_size,
        "blocks": options.expect_blocks,
        "repeat": create_ms.len(),
        "poll_ms": options.poll_ms,
        "polls": polls,
        "run_instances_ms": run_instances_ms,
        "running_ms": running_ms,
        "create_ms": create_ms,
        "create_call_ms": create_call_ms,
        "create_ms_median": create_median,
        "create_ms_max": create_max,
        "create_call_ms_median": summary(&create_call_ms).0,
        "copy_ms": copy_ms,
        "copy_call_ms": copy_call_ms,
        "copy_ms_median": copy_median,
        "copy_ms_max": copy_max,
        "copy_call_ms_median": summary(&copy_call_ms).0,
        "checked": checked,
    });
    record(endpoint.results.as_deref(), &with_fields(value, fields))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_distinct_deterministic_and_not_zero() {
        let first = block_content(7, 0);
        assert_eq!(first.len(), BLOCK_SIZE);
        assert_eq!(first, block_content(7, 0));
        assert_ne!(first, block_content(7, 1));
        assert_ne!(first, block_content(8, 0));
        assert!(!hangar_core::blocks::is_all_zero(&first));
        // Incompressible enough: every byte value appears, none dominates.
        let mut counts = [0usize; 256];
        for byte in &first {
            counts[usize::from(*byte)] += 1;
        }
        let expected = BLOCK_SIZE / 256;
        assert!(
            counts
                .iter()
                .all(|count| *count > expected / 2 && *count < expected * 2)
        );
    }
}
