//! `hangar-bench`: measures a running Hangar over HTTP with real SigV4-signed
//! EC2 requests on keep-alive connections. Each sub-command is one phase of
//! `scripts/bench`; each appends one JSON line to `--results`, and `report`
//! turns those lines into the markdown table of `docs/benchmarks.md`.

mod client;
mod data;
mod nodes;
mod phases;
mod report;
mod sign;
mod stats;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use hangar_auth::SecretKey;
use serde::Deserialize;

use crate::sign::Credentials;

#[derive(Parser)]
#[command(
    name = "hangar-bench",
    about = "SigV4-signing EC2 load generator and benchmark phases for Hangar"
)]
struct Cli {
    /// Tokio worker threads of the load generator (1 = a single-threaded
    /// runtime, which leaves the other core to the server).
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    #[command(subcommand)]
    command: Command,
}

/// Where the server is and who calls it.
#[derive(Args, Clone)]
pub struct Target {
    /// The server's configuration file (TOML): the accounts (the first is
    /// account A, the second account B), `listen` and `regions` are read
    /// from it.
    #[arg(long, env = "HANGAR_CONFIG")]
    config: PathBuf,
    /// host:port to send to; defaults to `listen` of the configuration.
    #[arg(long)]
    endpoint: Option<String>,
    /// Region of the credential scope; defaults to the first configured one.
    #[arg(long)]
    region: Option<String>,
    /// Append the phase's result as one JSON line to this file.
    #[arg(long)]
    results: Option<PathBuf>,
    /// Label stored with the result (e.g. "idle", "populated").
    #[arg(long, default_value = "")]
    label: String,
}

#[derive(Subcommand)]
enum Command {
    /// RegisterImage N images: the first K as account A, the rest as B.
    Populate {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 10_000)]
        images: usize,
        /// How many of them account A registers.
        #[arg(long, default_value_t = 2_000)]
        owned: usize,
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Root snapshots created per account (EBS direct APIs) before the
        /// registrations, which then use them in turn.
        #[arg(long, default_value_t = 4)]
        snapshots: usize,
        /// Server pid, to report its CPU time during the phase.
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// DescribeImages ImageId.1=<one id> for D seconds over C connections.
    ById {
        #[command(flatten)]
        target: Target,
        /// The image to describe; default: one of account A's images.
        #[arg(long)]
        image_id: Option<String>,
        /// Measured seconds.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Unmeasured seconds before.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Sign every request afresh instead of replaying a few signatures
        /// made up front (shows what signing costs the generator).
        #[arg(long)]
        sign_each: bool,
        /// How many distinct signed requests to replay.
        #[arg(long, default_value_t = 4)]
        signatures: usize,
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// DescribeImages Owner.1=self as account A, R times, one at a time.
    ListSelf {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 50)]
        repeat: usize,
        /// How many images the answer must hold.
        #[arg(long, default_value_t = 2_000)]
        expect: usize,
    },
    /// Spawns `hangar serve` and times the first answers.
    Startup {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value = "target/release/hangar")]
        hangar_bin: PathBuf,
        #[arg(long, default_value_t = 5)]
        repeat: usize,
        /// Start on this existing data directory each time instead of a
        /// fresh one.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Probe with DescribeImages ImageId.1=<this> instead of
        /// `Owner.1=self MaxResults=5`.
        #[arg(long)]
        probe_image_id: Option<String>,
    },
    /// Reads VmRSS (and VmHWM) of a process.
    Memory {
        #[arg(long)]
        pid: u32,
        #[arg(long)]
        results: Option<PathBuf>,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Polls GET /_hangar/health every millisecond until it answers 200.
    WaitReady {
        #[command(flatten)]
        target: Target,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
    },
    /// StartSnapshot, PutSnapshotBlock for every block (pseudo-random,
    /// distinct, incompressible data) over C connections, CompleteSnapshot.
    EbsWrite {
        #[command(flatten)]
        target: Target,
        /// VolumeSize of the snapshot, GiB.
        #[arg(long, default_value_t = 1)]
        volume_size: usize,
        /// Blocks to write, from index 0; default: all (2048 per GiB).
        #[arg(long)]
        blocks: Option<usize>,
        /// Block contents depend only on the seed and the block index.
        #[arg(long, default_value_t = 0x4841_4e47_4152)]
        seed: u64,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Up to this much data is generated and hashed before the clock
        /// starts; beyond it, a generator thread makes blocks while sending.
        #[arg(long, default_value_t = 2048)]
        pregenerate_max_mib: usize,
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// ListSnapshotBlocks (all pages), then GetSnapshotBlock for every block
    /// over C connections, each body checked against its x-amz-Checksum.
    EbsRead {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        snapshot_id: String,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// How many blocks the listing must hold.
        #[arg(long)]
        expect: Option<usize>,
        /// maxResults of each ListSnapshotBlocks page.
        #[arg(long, default_value_t = 1000)]
        page: usize,
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// hangar-blocks' LocalBlockStore in this process (no HTTP): puts N
    /// distinct blocks with C tasks, then gets them all back.
    BlocksDirect {
        /// The store's root directory (put it on the disk under test).
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 2048)]
        blocks: usize,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[arg(long, default_value_t = 0x4841_4e47_4152)]
        seed: u64,
        /// Also read everything again after evicting the files from the
        /// page cache.
        #[arg(long)]
        cold: bool,
        #[arg(long)]
        results: Option<PathBuf>,
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Drops every file under a directory from the page cache.
    Evict {
        #[arg(long)]
        dir: PathBuf,
    },
    /// RegisterImage on a snapshot, RunInstances, then R times: CreateImage
    /// until available, CopyImage (same region) of it until available.
    ImageBuild {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        snapshot_id: String,
        /// The snapshot's size (the root mapping's VolumeSize), GiB.
        #[arg(long, default_value_t = 1)]
        volume_size: usize,
        /// Data blocks the new images' snapshots must map (checked once,
        /// outside the timings).
        #[arg(long)]
        expect_blocks: Option<usize>,
        #[arg(long, default_value_t = 5)]
        repeat: usize,
        /// DescribeImages polling interval, ms.
        #[arg(long, default_value_t = 5.0)]
        poll_ms: f64,
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// DescribeImages by id or RunInstances for D seconds over C connections
    /// spread round-robin over one or several nodes, with the CPU of each
    /// node, of PostgreSQL and of the machine (scripts/bench-nodes).
    Load {
        #[command(flatten)]
        target: Target,
        #[arg(long, value_enum)]
        op: nodes::Op,
        /// host:port of every node, comma-separated (connections are spread
        /// over them round-robin); default: the target's endpoint.
        #[arg(long, value_delimiter = ',')]
        endpoints: Vec<String>,
        /// How many of account A's images the requests cycle through.
        #[arg(long, default_value_t = 100)]
        ids: usize,
        /// Measured seconds.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        /// Unmeasured seconds before.
        #[arg(long, default_value_t = 1.0)]
        warmup: f64,
        #[arg(long, default_value_t = 16)]
        connections: usize,
        /// Sign every request afresh instead of replaying signatures made
        /// up front.
        #[arg(long)]
        sign_each: bool,
        /// Each node's pid, in the order of --endpoints (repeat or
        /// comma-separate).
        #[arg(long, value_delimiter = ',')]
        server_pid: Vec<u32>,
        /// The PostgreSQL database the nodes use, to report its backends'
        /// CPU apart from the rest of the cluster.
        #[arg(long)]
        pg_database: Option<String>,
        /// Which run of this configuration, for the report.
        #[arg(long, default_value_t = 1)]
        run: usize,
    },
    /// Prints the markdown tables of a scripts/bench-nodes results file.
    ReportNodes {
        #[arg(long)]
        results: PathBuf,
    },
    /// Prints the markdown summary of a scripts/bench-data results file.
    ReportData {
        #[arg(long)]
        results: PathBuf,
    },
    /// Prints a free loopback TCP port.
    FreePort,
    /// Prints the markdown summary of a results file.
    Report {
        #[arg(long)]
        results: PathBuf,
    },
}

#[derive(Deserialize)]
struct ServerConfig {
    listen: Option<String>,
    regions: Option<Vec<String>>,
    #[serde(default)]
    accounts: Vec<AccountEntry>,
}

#[derive(Deserialize)]
struct AccountEntry {
    id: String,
    access_key_id: String,
    secret_access_key: String,
}

/// The resolved target: address, Host header, region, accounts.
pub struct Endpoint {
    pub address: SocketAddr,
    pub host: String,
    pub region: String,
    pub accounts: Vec<Credentials>,
    pub config_path: PathBuf,
    pub results: Option<PathBuf>,
    pub label: String,
}

impl Target {
    fn resolve(&self) -> anyhow::Result<Endpoint> {
        let text = std::fs::read_to_string(&self.config)
            .with_context(|| format!("cannot read {}", self.config.display()))?;
        let config: ServerConfig = toml::from_str(&text)
            .with_context(|| format!("invalid config {}", self.config.display()))?;
        if config.accounts.is_empty() {
            bail!(
                "{} configures no [[accounts]]; the benchmark signs as real accounts",
                self.config.display()
            );
        }
        let host = self
            .endpoint
            .clone()
            .or(config.listen)
            .unwrap_or_else(|| "127.0.0.1:8773".into());
        let host = host
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let address = host
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {host}"))?
            .next()
            .ok_or_else(|| anyhow!("{host} resolves to no address"))?;
        let region = self
            .region
            .clone()
            .or_else(|| {
                config
                    .regions
                    .and_then(|regions| regions.into_iter().next())
            })
            .unwrap_or_else(|| "us-east-1".into());
        let accounts = config
            .accounts
            .into_iter()
            .map(|account| Credentials {
                account_id: account.id,
                access_key_id: account.access_key_id,
                secret: SecretKey::new(account.secret_access_key),
            })
            .collect();
        Ok(Endpoint {
            address,
            host,
            region,
            accounts,
            config_path: self.config.clone(),
            results: self.results.clone(),
            label: self.label.clone(),
        })
    }
}

/// Appends one JSON line to the results file, when there is one.
pub fn record(results: Option<&Path>, value: &serde_json::Value) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(path) = results {
        let mut value = value.clone();
        if let (Some(object), Ok(load)) = (
            value.as_object_mut(),
            std::fs::read_to_string("/proc/loadavg"),
        ) {
            // The load average when the phase ended, for the notes.
            let load: Vec<&str> = load.split_ascii_whitespace().take(3).collect();
            object.insert("loadavg".into(), load.join(" ").into());
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        writeln!(file, "{value}")?;
    }
    Ok(())
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Populate {
            target,
            images,
            owned,
            concurrency,
            snapshots,
            server_pid,
        } => {
            phases::populate(
                &target.resolve()?,
                images,
                owned,
                concurrency,
                snapshots,
                server_pid,
            )
            .await
        }
        Command::ById {
            target,
            image_id,
            duration,
            warmup,
            connections,
            sign_each,
            signatures,
            server_pid,
        } => {
            let options = phases::ByIdOptions {
                image_id,
                duration,
                warmup,
                connections,
                sign_each,
                signatures,
                server_pid,
            };
            phases::by_id(&target.resolve()?, options).await
        }
        Command::ListSelf {
            target,
            repeat,
            expect,
        } => phases::list_self(&target.resolve()?, repeat, expect).await,
        Command::Startup {
            target,
            hangar_bin,
            repeat,
            data_dir,
            probe_image_id,
        } => {
            phases::startup(
                &target.resolve()?,
                &hangar_bin,
                repeat,
                data_dir.as_deref(),
                probe_image_id.as_deref(),
            )
            .await
        }
        Command::Memory {
            pid,
            results,
            label,
        } => phases::memory(pid, results.as_deref(), &label),
        Command::WaitReady { target, timeout } => {
            phases::wait_ready(&target.resolve()?, timeout).await
        }
        Command::EbsWrite {
            target,
            volume_size,
            blocks,
            seed,
            concurrency,
            pregenerate_max_mib,
            server_pid,
        } => {
            let options = data::EbsWriteOptions {
                volume_size,
                blocks,
                seed,
                concurrency,
                pregenerate_max_mib,
                server_pid,
            };
            data::ebs_write(&target.resolve()?, options).await
        }
        Command::EbsRead {
            target,
            snapshot_id,
            concurrency,
            expect,
            page,
            server_pid,
        } => {
            data::ebs_read(
                &target.resolve()?,
                &snapshot_id,
                concurrency,
                expect,
                page,
                server_pid,
            )
            .await
        }
        Command::BlocksDirect {
            dir,
            blocks,
            concurrency,
            seed,
            cold,
            results,
            label,
        } => {
            data::blocks_direct(data::DirectOptions {
                dir: &dir,
                blocks,
                concurrency,
                seed,
                cold,
                results: results.as_deref(),
                label: &label,
            })
            .await
        }
        Command::Evict { dir } => {
            let (files, bytes) = data::evict(&dir)?;
            println!(
                "evicted {files} files ({:.0} MiB) under {} from the page cache",
                bytes as f64 / 1_048_576.0,
                dir.display()
            );
            Ok(())
        }
        Command::ImageBuild {
            target,
            snapshot_id,
            volume_size,
            expect_blocks,
            repeat,
            poll_ms,
            server_pid,
        } => {
            let options = data::ImageBuildOptions {
                snapshot_id,
                volume_size,
                expect_blocks,
                repeat,
                poll_ms,
                server_pid,
            };
            data::image_build(&target.resolve()?, options).await
        }
        Command::Load {
            target,
            op,
            endpoints,
            ids,
            duration,
            warmup,
            connections,
            sign_each,
            server_pid,
            pg_database,
            run,
        } => {
            let options = nodes::LoadOptions {
                op,
                endpoints,
                ids,
                duration,
                warmup,
                connections,
                sign_each,
                server_pids: server_pid,
                pg_database,
                run,
            };
            nodes::load(&target.resolve()?, options).await
        }
        Command::ReportNodes { results } => report::print_nodes(&results),
        Command::ReportData { results } => report::print_data(&results),
        Command::FreePort => {
            println!("{}", phases::free_port()?);
            Ok(())
        }
        Command::Report { results } => report::print(&results),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.threads)
            .enable_all()
            .build()
    };
    let result = runtime
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(run(cli.command)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hangar-bench: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
