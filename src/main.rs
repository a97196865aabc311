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
use mcp_sessions::app::{App, Mode, Options};
use mcp_sessions::config::{Config, Paths};
use mcp_sessions::ops::{
    Cli, Command, GlobalArgs, ServeArgs, run_audit_command, run_doctor_command,
    run_install_command, run_key_command, run_token_command, run_user_command,
};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{FilterExt, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Crates that log whole protocol messages below a level, and the most they may log whatever
/// `RUST_LOG` asks: rmcp logs every JSON-RPC message at debug (tokens, passwords, typed text).
/// DevTools traffic (text typed with browser-type, URLs with their query tokens) goes over our
/// own pipe client, which never logs a message.
const PROTOCOL_LOG_CEILINGS: &[(&str, LevelFilter)] = &[("rmcp", LevelFilter::WARN)];

fn init_logging() {
    let requested = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    // A second filter that every line must pass too: a ceiling, never a floor.
    let ceilings = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(PROTOCOL_LOG_CEILINGS.iter().copied());
    // A log line that cannot be written (stderr closed, disk full) is dropped: the default would
    // report it with `eprintln!`, which panics on that same stderr.
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .with_ansi(false)
        .with_filter(requested.and(ceilings));
    tracing_subscriber::registry().with(stderr).init();
}

/// glibc raises its mmap threshold after the first large free, so argon2's 19 MiB blocks would
/// then come from the heap and stay there after every login; a fixed threshold keeps them
/// mapped, and returned to the system when freed.
fn keep_large_allocations_mapped() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called once before any thread is started.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}

fn serve(global: GlobalArgs, args: ServeArgs) -> anyhow::Result<()> {
    keep_large_allocations_mapped();
    let paths = Paths::resolve(global.config_dir, global.data_dir)?;
    let config = Config::load(&paths, &global.set)?;
    let mode = match args.http {
        None => Mode::Stdio,
        Some(listen) => Mode::Http {
            listen: Some(listen).filter(|l| !l.is_empty()),
        },
    };
    let options = Options::from_env(paths, config, global.demo, mode.clone())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let app = App::start(options)?;
        if mode == Mode::Stdio {
            let (read, write) = rmcp::transport::stdio_pipes();
            app.run(read, write).await
        } else {
            app.run_http().await
        }
    })?;
    // Background blocking work (a password check in flight) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    Ok(())
}

/// Runs the command; `Ok(false)` when it found a problem it reports by exit status alone.
fn run(cli: Cli) -> anyhow::Result<bool> {
    let Cli { global, command } = cli;
    let command = match command {
        None => return serve(global, ServeArgs::default()).map(|()| true),
        Some(Command::Serve(args)) => return serve(global, args).map(|()| true),
        Some(command) => command,
    };
    let paths = Paths::resolve(global.config_dir.clone(), global.data_dir.clone())?;
    match command {
        Command::Serve(args) => serve(global, args).map(|()| true),
        Command::User(command) => run_user_command(command, &paths)
            .map(|()| true)
            .map_err(anyhow::Error::from),
        Command::Token(command) => run_token_command(command, &paths).map(|()| true),
        Command::Key(command) => run_key_command(command, &paths).map(|()| true),
        Command::Audit(command) => run_audit_command(command, &paths),
        Command::Install(args) => run_install_command(args, &global, &paths)
            .map(|()| true)
            .map_err(anyhow::Error::from),
        Command::Doctor => run_doctor_command(&paths, &global.set),
    }
}

fn main() -> ExitCode {
    init_logging();
    let result = match run(Cli::parse()) {
        Ok(true) => Ok(()),
        Ok(false) => return ExitCode::FAILURE,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-sessions: {e:#}");
            ExitCode::FAILURE
        }
    }
}
