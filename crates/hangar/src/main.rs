//! `hangar`: the EC2-compatible machine-image service.

mod awsconfig;
mod client;
mod clock;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hangar_server::Config;

#[derive(Parser)]
#[command(
    name = "hangar",
    version,
    about = "An EC2-compatible machine-image (AMI) service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the EC2 API (and the S3 and EBS slices) on one endpoint.
    Serve {
        /// Configuration file (TOML); see docs/configuration.md.
        #[arg(long, env = "HANGAR_CONFIG")]
        config: Option<PathBuf>,
        /// Address to listen on; overrides `listen` in the file.
        #[arg(long)]
        listen: Option<String>,
        /// Data directory; overrides `data_dir` in the file.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Read AMI archives (the objects `CreateStoreImageTask` writes).
    Archive {
        #[command(subcommand)]
        command: ArchiveCommand,
    },
    /// Read or advance a server's development clock (`dev_clock = true`).
    Clock {
        #[command(subcommand)]
        command: ClockCommand,
    },
    /// Reports computed from the EC2 API of a running endpoint.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
}

/// Where a client command sends its requests; see docs/cli.md for the
/// places each one is also read from (environment, AWS profile).
#[derive(clap::Args, Clone, Default)]
struct Target {
    /// The endpoint, e.g. http://127.0.0.1:8773 (else AWS_ENDPOINT_URL_EC2,
    /// AWS_ENDPOINT_URL, the profile's endpoint_url).
    #[arg(long)]
    endpoint_url: Option<String>,
    /// The AWS profile for region, keys and endpoint (else AWS_PROFILE,
    /// else "default").
    #[arg(long)]
    profile: Option<String>,
    /// CA bundle (PEM) to trust for an https endpoint (else AWS_CA_BUNDLE,
    /// the profile's ca_bundle, the system's bundle).
    #[arg(long)]
    ca_bundle: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ClockCommand {
    /// Print the server's clock: its "now" and its offset from real time.
    Show {
        #[command(flatten)]
        target: Target,
    },
    /// Move the server's clock forward, e.g. `hangar clock advance 90d`.
    Advance {
        /// How far: numbers with units s, m, h, d (90d, 25h, 1h30m).
        by: String,
        #[command(flatten)]
        target: Target,
    },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// The caller's images not launched for N days (or never launched and
    /// created N days ago or more), counted on the service's clock.
    Unused {
        /// N: a whole number of days, 0 or more (0 lists every image).
        #[arg(long, value_name = "N")]
        days: u32,
        /// The region (else AWS_REGION, AWS_DEFAULT_REGION, the profile's
        /// region).
        #[arg(long)]
        region: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = report::Format::Table)]
        format: report::Format,
        #[command(flatten)]
        target: Target,
    },
}

/// Endpoint, region and keys for a client command, from the flags, the
/// environment and the AWS files.
fn resolve(target: &Target, region: Option<String>) -> anyhow::Result<awsconfig::Resolved> {
    let flags = awsconfig::Flags {
        endpoint_url: target.endpoint_url.clone(),
        region,
        profile: target.profile.clone(),
    };
    let mut resolved = awsconfig::resolve_from_process(&flags)?;
    if let Some(bundle) = &target.ca_bundle {
        resolved.ca_bundle = Some(bundle.clone());
    }
    Ok(resolved)
}

fn http_for(resolved: &awsconfig::Resolved) -> anyhow::Result<client::Http> {
    let endpoint = client::Endpoint::parse(resolved.require_endpoint()?)?;
    client::Http::new(endpoint, resolved.ca_bundle.as_deref())
}

fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn clock(command: ClockCommand) -> anyhow::Result<()> {
    let runtime = client_runtime()?;
    let state = match command {
        ClockCommand::Show { target } => {
            let http = http_for(&resolve(&target, None)?)?;
            runtime.block_on(clock::show(&http))?
        }
        ClockCommand::Advance { by, target } => {
            let http = http_for(&resolve(&target, None)?)?;
            runtime.block_on(clock::advance(&http, &by))?
        }
    };
    print_out(&state.render())
}

fn report(command: ReportCommand) -> anyhow::Result<()> {
    let ReportCommand::Unused {
        days,
        region,
        format,
        target,
    } = command;
    let resolved = resolve(&target, region)?;
    let http = http_for(&resolved)?;
    let region = resolved.require_region()?.to_string();
    let credentials = resolved.require_credentials()?.clone();
    let ec2 = client::Ec2::new(http, credentials, &region);
    let runtime = client_runtime()?;
    let rows = runtime.block_on(async {
        let now = clock::service_now(ec2.http()).await;
        report::unused(&ec2, days, now).await
    })?;
    print_out(&report::render(&rows, format))
}

#[derive(Subcommand)]
enum ArchiveCommand {
    /// Print what an archive holds (header, manifest, index), without
    /// decompressing any block.
    Inspect {
        /// The archive file (`<ami-id>.bin`).
        file: PathBuf,
        /// Print the manifest and the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check every block's checksum, the index and the digest, without
    /// restoring anything.
    Verify {
        /// The archive file (`<ami-id>.bin`).
        file: PathBuf,
    },
}

fn archive(command: ArchiveCommand) -> anyhow::Result<()> {
    let in_file = |file: &PathBuf| {
        let file = file.display().to_string();
        move |error: hangar_archive::ArchiveError| anyhow::Error::new(error).context(file)
    };
    let text = match command {
        ArchiveCommand::Inspect { file, json } => {
            let report = hangar_archive::inspect_file(&file).map_err(in_file(&file))?;
            if json {
                report.to_json().to_string()
            } else {
                report.to_string()
            }
        }
        ArchiveCommand::Verify { file } => {
            let report = hangar_archive::verify_file(&file).map_err(in_file(&file))?;
            format!(
                "OK: {} blocks of {} snapshots, digest blake3:{}",
                report.summary.block_count,
                report.summary.snapshots.len(),
                report.summary.digest_hex()
            )
        }
    };
    print_out(&text)
}

/// Writes a command's answer to stdout. A reader that went away (`| head`)
/// is not an error: what it wanted, it got.
fn print_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(()),
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HANGAR_LOG")
        // s3s logs every client error at ERROR; Hangar logs each S3 request itself.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,s3s=off"));
    // Colours only for a terminal: a log file must stay plain text.
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn load_config(
    config: Option<PathBuf>,
    listen: Option<String>,
    data_dir: Option<PathBuf>,
) -> anyhow::Result<Config> {
    let mut loaded = match &config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(listen) = listen {
        loaded.listen = listen;
    }
    if let Some(data_dir) = data_dir {
        loaded.data_dir = data_dir;
    }
    // The flags may have changed what the file said; check the result again.
    loaded.validate()?;
    Ok(loaded)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            config,
            listen,
            data_dir,
        } => load_config(config, listen, data_dir).and_then(|config| {
            init_logging();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(hangar_server::serve(config))
        }),
        Command::Archive { command } => archive(command),
        Command::Clock { command } => clock(command),
        Command::Report { command } => report(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line: the whole cause chain, outermost first.
            eprintln!("hangar: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
