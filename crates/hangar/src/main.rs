//! `hangar`: the EC2-compatible machine-image service.

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
