//! The `callbox` command: run the server, or check a config file without binding anything.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "callbox", version, about = "Self-hosted 1:1 video calls")]
struct Cli {
    /// Path to config.toml. Without it callbox runs on built-in defaults
    /// (plain HTTP on http://127.0.0.1:8080, TURN on 127.0.0.1:3478).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Read and validate a config file (keys, types, certificates, port clashes), then exit.
    CheckConfig {
        /// The config file to check.
        path: PathBuf,
    },
    /// Check a running server as browsers reach it: DNS, HTTPS and its certificate, STUN on
    /// every TURN listener, one TURN allocation, metrics. Uses --config (or the defaults).
    Selftest,
}

fn main() -> ExitCode {
    callbox::ops::memory::settle_allocator();
    let cli = Cli::parse();
    callbox::app::init_logging();
    let loaded = match &cli.command {
        Some(Command::CheckConfig { path }) => callbox::config::Config::load(path),
        Some(Command::Selftest) | None => match &cli.config {
            Some(path) => callbox::config::Config::load(path),
            None => Ok(callbox::config::Config::default()),
        },
    };
    let config = match loaded {
        Ok(config) => config,
        Err(err) => {
            eprintln!("callbox: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Command::CheckConfig { path }) = &cli.command {
        println!("{}: ok", path.display());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("callbox: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Command::Selftest) = &cli.command {
        let checks = runtime.block_on(callbox::ops::selftest::run(&config));
        return match callbox::ops::selftest::report(&checks) {
            true => ExitCode::SUCCESS,
            false => ExitCode::FAILURE,
        };
    }
    match runtime.block_on(callbox::app::run_until_signal(config, cli.config.clone())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("callbox: {err}");
            ExitCode::FAILURE
        }
    }
}
