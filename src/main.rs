//! The `mcp-sessions` binary: wires the command line to the library. stdout belongs to the MCP
//! transport; logs go to stderr.
#![deny(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use mcp_sessions::app::{App, Options};
use mcp_sessions::cli::{Cli, Command, run_audit_command, run_key_command, run_user_command};
use mcp_sessions::config::{Config, Paths};
use tracing_subscriber::EnvFilter;

fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    // rmcp at debug level logs whole messages, tokens included: keep it at warn.
    let filter = match "rmcp=warn".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    };
    // A log line that cannot be written (stderr closed, disk full) is dropped: the default would
    // report it with `eprintln!`, which panics on that same stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .with_ansi(false)
        .with_env_filter(filter)
        .init();
}

fn serve(cli: Cli) -> anyhow::Result<()> {
    let paths = Paths::resolve(cli.global.config_dir, cli.global.data_dir)?;
    let config = Config::load(&paths, &cli.global.set)?;
    let options = Options::from_env(paths, config, cli.global.demo)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let app = App::start(options)?;
        let (read, write) = rmcp::transport::stdio_pipes();
        app.run(read, write).await
    })?;
    // Background blocking work (a password check in flight) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    Ok(())
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        None | Some(Command::Serve) => serve(cli),
        Some(Command::User(command)) => Paths::resolve(cli.global.config_dir, cli.global.data_dir)
            .map_err(anyhow::Error::from)
            .and_then(|paths| run_user_command(command, &paths).map_err(anyhow::Error::from)),
        Some(Command::Key(command)) => Paths::resolve(cli.global.config_dir, cli.global.data_dir)
            .map_err(anyhow::Error::from)
            .and_then(|paths| run_key_command(command, &paths)),
        Some(Command::Audit(command)) => {
            let verdict = Paths::resolve(cli.global.config_dir, cli.global.data_dir)
                .map_err(anyhow::Error::from)
                .and_then(|paths| run_audit_command(command, &paths));
            match verdict {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::FAILURE,
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-sessions: {e:#}");
            ExitCode::FAILURE
        }
    }
}
