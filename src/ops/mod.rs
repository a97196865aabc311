//! Command-line interface: serving (the default) and the operator commands, one file each (`user`,
//! `token`, `key`, `audit`, `install`, `doctor`). Raw flags are parsed once here into the objects the rest of
//! the crate takes. The operator commands are the only code that writes to stdout besides the MCP
//! transport, and only when not serving.

mod audit;
pub mod doctor;
pub mod install;
mod key;
mod token;
mod user;

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::auth::secret::SecretString;
use crate::auth::users::UserError;

pub use audit::{AuditCommand, run_audit_command};
pub use doctor::run_doctor_command;
pub use install::{InstallArgs, run_install_command};
pub use key::{KeyCommand, run_key_command};
pub use token::{TokenCommand, run_token_command};
pub use user::{UserCommand, run_user_command};

#[derive(Debug, Parser)]
#[command(
    name = "mcp-sessions",
    version,
    about = "A stdio MCP server with authenticated, time-limited, audited user sessions",
    after_help = "Examples:\n  \
                  mcp-sessions --demo                          serve over stdio with the demo users\n  \
                  mcp-sessions user add alice --role user      add a user (password prompted or read from stdin)\n  \
                  mcp-sessions token create alice --name ci    issue a personal access token (HTTP mode)\n  \
                  mcp-sessions install claude-desktop --user alice\n                                               register with a host, logged in as alice\n  \
                  mcp-sessions doctor                          check keys, audit log, users and Chromium\n  \
                  mcp-sessions audit tail -n 50 --follow       watch the audit log\n  \
                  mcp-sessions --set idle_timeout=600          override a configuration key"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Enable the demo users admin/admin123!, demo/demo123!, viewer/viewer123! (never in production).
    #[arg(long, global = true, env = "MCP_SESSIONS_DEMO", value_parser = clap::builder::FalseyValueParser::new())]
    pub demo: bool,
    /// Directory of config.toml and users.toml (default: the platform's config dir).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "MCP_SESSIONS_CONFIG_DIR"
    )]
    pub config_dir: Option<PathBuf>,
    /// Directory of audit.log and jwt.key (default: the platform's data dir).
    #[arg(long, global = true, value_name = "DIR", env = "MCP_SESSIONS_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Override a configuration key, e.g. --set idle_timeout=600 (repeatable; wins over config.toml and MCP_SESSIONS_*).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve MCP over stdin/stdout (the default). Hosts start it this way; stdout carries only
    /// JSON-RPC, logs go to stderr.
    #[command(
        after_help = "Examples:\n  mcp-sessions serve\n  mcp-sessions --demo serve < examples/fixtures/session-lifecycle.jsonl\n  \
                      RUST_LOG=debug mcp-sessions serve 2>server.log\n  \
                      mcp-sessions serve --http 127.0.0.1:8750     many clients over Streamable HTTP (bearer tokens: mcp-sessions token create)"
    )]
    Serve(ServeArgs),
    /// Manage the users in users.toml.
    #[command(
        subcommand,
        after_help = "Examples:\n  printf '%s\\n' \"$PASSWORD\" | mcp-sessions user add alice --role user\n  \
                      mcp-sessions user list\n  mcp-sessions user disable alice"
    )]
    User(UserCommand),
    /// Manage the personal access tokens that HTTP clients send as `Authorization: Bearer`.
    #[command(
        subcommand,
        after_help = "Examples:\n  mcp-sessions token create alice --name laptop --ttl 2592000\n  \
                      mcp-sessions token list --user alice\n  mcp-sessions token revoke --user alice laptop"
    )]
    Token(TokenCommand),
    /// Work with the audit log.
    #[command(
        subcommand,
        after_help = "Examples:\n  mcp-sessions audit verify\n  mcp-sessions audit tail -n 50 --event login"
    )]
    Audit(AuditCommand),
    /// Manage the JWT signing key.
    #[command(subcommand, after_help = "Example:\n  mcp-sessions key rotate")]
    Key(KeyCommand),
    /// Register the server with a desktop host: writes or merges its entry (a command the host
    /// starts, or with --url a remote server it connects to) into the host's MCP configuration
    /// file, keeping every other server and setting (the file is backed up first).
    #[command(after_help = install::INSTALL_EXAMPLES)]
    Install(InstallArgs),
    /// Check the configuration, users, directories, keys, audit log and browser, and say what to
    /// do about each problem. Exit status 1 when a check fails.
    #[command(
        after_help = "Examples:\n  mcp-sessions doctor\n  CHROME_PATH=/opt/chrome/chrome mcp-sessions doctor\n  \
                      mcp-sessions --data-dir /srv/mcp/data --config-dir /srv/mcp/config doctor"
    )]
    Doctor,
}

#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// Serve Streamable HTTP at /mcp instead of stdio, on ADDRESS:PORT (default: http.listen,
    /// 127.0.0.1:8750). Every request needs `Authorization: Bearer <token>`.
    #[arg(long, value_name = "ADDRESS:PORT", num_args = 0..=1, default_missing_value = "")]
    pub http: Option<String>,
}

/// Reads a password: from a terminal prompt (twice when it is `new`), or one line from stdin.
fn read_password(prompt: &str, new: bool) -> Result<SecretString, UserError> {
    let io = |e: std::io::Error| UserError::Policy(format!("cannot read the password: {e}"));
    let password = if std::io::stdin().is_terminal() {
        let first = SecretString::new(rpassword::prompt_password(prompt).map_err(io)?);
        if new {
            let second = SecretString::new(rpassword::prompt_password("Repeat it: ").map_err(io)?);
            if first != second {
                return Err(UserError::Policy("the passwords differ".into()));
            }
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(io)?;
        let password = SecretString::new(line.trim_end_matches(['\n', '\r']).to_owned());
        zeroize::Zeroize::zeroize(&mut line);
        password
    };
    if password.expose().is_empty() {
        return Err(UserError::Policy("no password was given".into()));
    }
    Ok(password)
}
