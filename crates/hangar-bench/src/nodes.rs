//! Metadata throughput over one or several nodes (`scripts/bench-nodes`):
//! closed-loop `DescribeImages ImageId.1=<id>` or `RunInstances` load spread
//! over every endpoint given, with the CPU of each node, of PostgreSQL and
//! of the whole machine over the measured window.
//!
//! Connections are spread over the endpoints round-robin (connection `w`
//! goes to endpoint `w mod n`) and keep their node, as an L4 load balancer
//! with keep-alive connections would; each connection in turn cycles
//! through the image IDs, starting at its own offset.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use http::StatusCode;
use serde_json::json;
use time::OffsetDateTime;

use crate::client::Conn;
use crate::phases::{first_element, snippet};
use crate::sign::{EC2_VERSION, Prepared, Signer};
use crate::stats::{self, Samples};
use crate::{Endpoint, record};

/// What each request does.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Op {
    /// `DescribeImages ImageId.1=<one of the images>`: a read by key.
    DescribeById,
    /// `RunInstances MinCount=1 MaxCount=1` of one of the images: a write
    /// (an instance and its root volume, each a record; no task).
    RunInstances,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::DescribeById => "describe-by-id",
            Op::RunInstances => "run-instances",
        }
    }

    fn form(self, image_id: &str) -> String {
        match self {
            Op::DescribeById => {
                format!("Action=DescribeImages&Version={EC2_VERSION}&ImageId.1={image_id}")
            }
            Op::RunInstances => format!(
                "Action=RunInstances&Version={EC2_VERSION}&ImageId={image_id}\
                 &MinCount=1&MaxCount=1&InstanceType=t3.micro"
            ),
        }
    }

    /// Whether an answer is the one asked for (checked on every answer:
    /// a cheap substring search, so the generator stays light).
    fn answered(self, body: &[u8], image_id: &str) -> bool {
        let text = String::from_utf8_lossy(body);
        match self {
            Op::DescribeById => text.contains(&format!("<imageId>{image_id}</imageId>")),
            Op::RunInstances => text.contains("<instanceId>i-"),
        }
    }
}

pub struct LoadOptions {
    pub op: Op,
    /// host:port of every node; empty: the target's one endpoint.
    pub endpoints: Vec<String>,
    /// How many of account A's images the requests cycle through.
    pub ids: usize,
    pub duration: f64,
    pub warmup: f64,
    pub connections: usize,
    pub sign_each: bool,
    /// Every node's pid, in the order of `endpoints`.
    pub server_pids: Vec<u32>,
    /// The database the nodes use: its backends' CPU is reported apart
    /// from the rest of the PostgreSQL cluster.
    pub pg_database: Option<String>,
    /// Which run of this configuration (1, 2, ...), for the report.
    pub run: usize,
}

struct Node {
    address: SocketAddr,
    host: String,
}

fn nodes(endpoint: &Endpoint, endpoints: &[String]) -> anyhow::Result<Vec<Node>> {
    if endpoints.is_empty() {
        return Ok(vec![Node {
            address: endpoint.address,
            host: endpoint.host.clone(),
        }]);
    }
    endpoints
        .iter()
        .map(|given| {
            let host = given
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string();
            let address = host
                .to_socket_addrs()
                .with_context(|| format!("cannot resolve {host}"))?
                .next()
                .ok_or_else(|| anyhow!("{host} resolves to no address"))?;
            Ok(Node { address, host })
        })
        .collect()
}

/// Up to `count` of account A's image IDs, asked of the first node.
async fn images_of_a(
    endpoint: &Endpoint,
    node: &Node,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let mut alice = node_signer(endpoint, node)?;
    let mut conn = Conn::connect(node.address).await?;
    let form = format!(
        "Action=DescribeImages&Version={EC2_VERSION}&Owner.1=self&MaxResults={}",
        count.clamp(5, 1000)
    );
    let (status, body) = conn
        .send(alice.sign(form, OffsetDateTime::now_utc())?.request())
        .await?;
    if status != StatusCode::OK {
        bail!(
            "DescribeImages Owner.1=self answered {status}: {}",
            snippet(&body)
        );
    }
    let text = String::from_utf8_lossy(&body);
    let ids: Vec<String> = text
        .split("<imageId>")
        .skip(1)
        .filter_map(|rest| rest.split('<').next())
        .take(count.max(1))
        .map(str::to_string)
        .collect();
    if ids.is_empty() {
        bail!("account A owns no image; run populate first");
    }
    Ok(ids)
}

/// Account A's signer for one node (the Host header is signed).
fn node_signer(endpoint: &Endpoint, node: &Node) -> anyhow::Result<Signer> {
    let credentials = endpoint.accounts.first().cloned().ok_or_else(|| {
        anyhow!(
            "{} configures no [[accounts]]",
            endpoint.config_path.display()
        )
    })?;
    Ok(Signer::new(credentials, &endpoint.region, &node.host))
}

/// CPU seconds of the processes that share the machine during a window.
#[derive(Default)]
struct CpuSnapshot {
    generator: f64,
    servers: Vec<Option<f64>>,
    /// PostgreSQL processes by pid: (CPU seconds, serves our database).
    postgres: HashMap<u32, (f64, bool)>,
    /// (busy, total) jiffies of the whole machine, all CPUs.
    machine: Option<(u64, u64)>,
}

impl CpuSnapshot {
    fn take(ticks: f64, server_pids: &[u32], pg_database: Option<&str>) -> Self {
        Self {
            generator: stats::cpu_seconds("self", ticks).unwrap_or(0.0),
            servers: server_pids
                .iter()
                .map(|pid| stats::cpu_seconds(&pid.to_string(), ticks))
                .collect(),
            postgres: stats::postgres_processes(pg_database)
                .into_iter()
                .filter_map(|(pid, ours)| {
                    stats::cpu_seconds(&pid.to_string(), ticks).map(|cpu| (pid, (cpu, ours)))
                })
                .collect(),
            machine: stats::machine_jiffies(),
        }
    }
}

/// Shares of one core (100 = one core) over a window.
struct CpuShares {
    generator: f64,
    servers: Vec<Option<f64>>,
    pg_ours: f64,
    pg_other: f64,
    /// Busy share of the whole machine (at most 100 × cores).
    machine: Option<f64>,
}

fn shares(before: &CpuSnapshot, after: &CpuSnapshot, wall: f64, cores: f64) -> CpuShares {
    let pct = |seconds: f64| 100.0 * seconds / wall;
    let mut pg_ours = 0.0;
    let mut pg_other = 0.0;
    for (pid, (cpu, ours)) in &after.postgres {
        // A backend that started inside the window counts from zero (the
        // pool opens connections on demand); one that ended is lost, which
        // the warm-up makes rare.
        let start = before.postgres.get(pid).map_or(0.0, |(cpu, _)| *cpu);
        if *ours {
            pg_ours += cpu - start;
        } else {
            pg_other += cpu - start;
        }
    }
    let servers = before
        .servers
        .iter()
        .zip(&after.servers)
        .map(|(start, end)| Some(pct((*end)? - (*start)?)))
        .collect();
    let machine = match (before.machine, after.machine) {
        (Some((busy0, total0)), Some((busy1, total1))) if total1 > total0 => {
            Some(100.0 * cores * (busy1 - busy0) as f64 / (total1 - total0) as f64)
        }
        _ => None,
    };
    CpuShares {
        generator: pct(after.generator - before.generator),
        servers,
        pg_ours: pct(pg_ours),
        pg_other: pct(pg_other),
        machine,
    }
}

/// What one connection did in the measured window.
struct WorkerResult {
    node: usize,
    samples: Samples,
    errors: usize,
    first_error: Option<String>,
    /// The last instance this connection launched (RunInstances only).
    last_instance: Option<String>,
}

pub async fn load(endpoint: &Endpoint, options: LoadOptions) -> anyhow::Result<()> {
    let nodes = nodes(endpoint, &options.endpoints)?;
    if !options.server_pids.is_empty() && options.server_pids.len() != nodes.len() {
        bail!(
            "{} --server-pid values for {} endpoints; give one per endpoint, in the same order",
            options.server_pids.len(),
            nodes.len()
        );
    }
    let images = Arc::new(images_of_a(endpoint, &nodes[0], options.ids).await?);
    let op = options.op;

    // Every node answers every image the same before the clock starts (the
    // nodes share the database; a node that does not is misconfigured).
    let mut signers = Vec::new();
    for node in &nodes {
        let mut alice = node_signer(endpoint, node)?;
        let mut conn = Conn::connect(node.address).await?;
        let form = Op::DescribeById.form(&images[0]);
        let (status, body) = conn
            .send(alice.sign(form, OffsetDateTime::now_utc())?.request())
            .await?;
        if status != StatusCode::OK || !Op::DescribeById.answered(&body, &images[0]) {
            bail!(
                "{}: DescribeImages {} answered {status}: {}",
                node.host,
                images[0],
                snippet(&body)
            );
        }
        signers.push(alice);
    }

    // Replayed requests: one signature per node and image, made up front
    // (a SigV4 header signature stays valid for 15 minutes). RunInstances
    // has no ClientToken, so every replay launches a new instance.
    let now = OffsetDateTime::now_utc();
    let prepared: Vec<Vec<Prepared>> = signers
        .iter_mut()
        .map(|alice| {
            images
                .iter()
                .map(|image| alice.sign(op.form(image), now))
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .collect::<anyhow::Result<_>>()?;
    let prepared = Arc::new(prepared);

    let loadavg_start = std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_ascii_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let ticks = stats::clock_ticks();
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    let started = Instant::now();
    let measure_from = started + Duration::from_secs_f64(options.warmup);
    let measure_to = measure_from + Duration::from_secs_f64(options.duration);
    let meter = tokio::spawn({
        let server_pids = options.server_pids.clone();
        let pg_database = options.pg_database.clone();
        async move {
            tokio::time::sleep_until(measure_from.into()).await;
            let before = CpuSnapshot::take(ticks, &server_pids, pg_database.as_deref());
            let from = Instant::now();
            tokio::time::sleep_until(measure_to.into()).await;
            let after = CpuSnapshot::take(ticks, &server_pids, pg_database.as_deref());
            shares(&before, &after, from.elapsed().as_secs_f64(), cores)
        }
    });

    let mut tasks = Vec::new();
    for worker in 0..options.connections.max(1) {
        let node = worker % nodes.len();
        let address = nodes[node].address;
        let (prepared, images) = (prepared.clone(), images.clone());
        let mut alice = signers[node].clone();
        let sign_each = options.sign_each;
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(address).await?;
            let mut result = WorkerResult {
                node,
                samples: Samples::with_capacity(16_384),
                errors: 0,
                first_error: None,
                last_instance: None,
            };
            let mut turn = worker;
            loop {
                turn = turn.wrapping_add(1);
                let image = turn % images.len();
                let request = if sign_each {
                    alice
                        .sign(op.form(&images[image]), OffsetDateTime::now_utc())?
                        .request()
                } else {
                    prepared[node][image].request()
                };
                let sent = Instant::now();
                let (status, body) = conn.send(request).await?;
                let done = Instant::now();
                if done >= measure_to {
                    break;
                }
                if status != StatusCode::OK || !op.answered(&body, &images[image]) {
                    if done >= measure_from {
                        result.errors += 1;
                    }
                    result
                        .first_error
                        .get_or_insert_with(|| format!("{status}: {}", snippet(&body)));
                    continue;
                }
                if op == Op::RunInstances {
                    result.last_instance = first_element(&body, "instanceId").map(str::to_string);
                }
                if done >= measure_from {
                    result.samples.push(done - sent);
                }
            }
            anyhow::Ok(result)
        }));
    }
    let mut samples = Samples::with_capacity(1 << 20);
    let mut per_node = vec![0usize; nodes.len()];
    let mut errors = 0;
    let mut first_error = None;
    let mut launched: Vec<Option<String>> = vec![None; nodes.len()];
    for task in tasks {
        let result = task.await??;
        per_node[result.node] += result.samples.len();
        samples.extend(result.samples);
        errors += result.errors;
        first_error = first_error.or(result.first_error);
        if result.last_instance.is_some() {
            launched[result.node] = result.last_instance;
        }
    }
    let cpu = meter.await?;
    samples.sort();
    let requests = samples.len();
    let rps = requests as f64 / options.duration;
    let server_total: f64 = cpu.servers.iter().flatten().sum();
    let server_us_per_request = if requests > 0 && !options.server_pids.is_empty() {
        Some(server_total / 100.0 * options.duration / requests as f64 * 1e6)
    } else {
        None
    };
    let pg_us_per_request = (requests > 0 && options.pg_database.is_some())
        .then(|| cpu.pg_ours / 100.0 * options.duration / requests as f64 * 1e6);

    // Read-your-writes across nodes: an instance launched through one node
    // is described through the next.
    let mut cross_node = None;
    if op == Op::RunInstances && nodes.len() > 1 {
        for (from, instance) in launched.iter().enumerate() {
            let Some(instance) = instance else { continue };
            let to = (from + 1) % nodes.len();
            let mut conn = Conn::connect(nodes[to].address).await?;
            let form =
                format!("Action=DescribeInstances&Version={EC2_VERSION}&InstanceId.1={instance}");
            let request = signers[to].sign(form, OffsetDateTime::now_utc())?.request();
            let (status, body) = conn.send(request).await?;
            if status != StatusCode::OK
                || !String::from_utf8_lossy(&body).contains(&format!("<instanceId>{instance}<"))
            {
                bail!(
                    "{instance}, launched through {}, is not described by {}: {status}: {}",
                    nodes[from].host,
                    nodes[to].host,
                    snippet(&body)
                );
            }
            cross_node = Some(true);
        }
    }

    let pct = |value: Option<f64>| value.map_or("n/a".into(), |v| format!("{v:.0}%"));
    println!(
        "load {} ({}, run {}): {} node(s), {} connections, {} images, {:.0} s: {requests} requests ({}), {rps:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, errors {errors}; CPU of one core: generator {:.0}%, nodes {}, PostgreSQL (this database) {:.0}%, PostgreSQL (rest of the cluster) {:.0}%, machine {}; load average at start {loadavg_start}{}",
        op.name(),
        endpoint.label,
        options.run,
        nodes.len(),
        options.connections,
        images.len(),
        options.duration,
        per_node
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(" + "),
        samples.percentile_ms(0.5),
        samples.percentile_ms(0.99),
        samples.max_ms(),
        cpu.generator,
        cpu.servers
            .iter()
            .map(|share| pct(*share))
            .collect::<Vec<_>>()
            .join(" + "),
        cpu.pg_ours,
        cpu.pg_other,
        pct(cpu.machine),
        if cross_node == Some(true) {
            "; instances launched through each node are described by the other"
        } else {
            ""
        },
    );
    if let Some(error) = &first_error {
        eprintln!("load: first error: {error}");
    }
    record(
        endpoint.results.as_deref(),
        &json!({
            "phase": "load",
            "op": op.name(),
            "label": endpoint.label,
            "run": options.run,
            "nodes": nodes.len(),
            "connections": options.connections,
            "images": images.len(),
            "mode": if options.sign_each { "sign-each" } else { "replay" },
            "seconds": options.duration,
            "requests": requests,
            "per_node": per_node,
            "rps": rps,
            "p50_ms": samples.percentile_ms(0.5),
            "p99_ms": samples.percentile_ms(0.99),
            "max_ms": samples.max_ms(),
            "errors": errors,
            "generator_cpu_pct": cpu.generator,
            "server_cpu_pct": cpu.servers,
            "server_cpu_total_pct": (!options.server_pids.is_empty()).then_some(server_total),
            "server_us_per_request": server_us_per_request,
            "pg_cpu_pct": options.pg_database.as_ref().map(|_| cpu.pg_ours),
            "pg_other_cpu_pct": cpu.pg_other,
            "pg_us_per_request": pg_us_per_request,
            "machine_cpu_pct": cpu.machine,
            "cores": cores,
            "loadavg_start": loadavg_start,
            "cross_node_read": cross_node,
        }),
    )?;
    if errors > 0 {
        bail!("{errors} {} requests failed", op.name());
    }
    Ok(())
}
