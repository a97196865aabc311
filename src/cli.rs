//! Command-line interface: serving (the default) and offline user management. Raw flags are
//! parsed once here into the objects the rest of the crate takes. The user subcommands are the
//! only code that writes to stdout besides the MCP transport, and only when not serving.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Paths;
use crate::secret::SecretString;
use crate::users::{
    UserError, UserRecord, UsersFile, check_new_password, check_username, hash_password,
};

#[derive(Debug, Parser)]
#[command(
    name = "mcp-sessions",
    version,
    about = "A stdio MCP server with authenticated, time-limited, audited user sessions",
    after_help = "Examples:\n  mcp-sessions --demo                      serve over stdio with the demo users\n  \
                  mcp-sessions user add alice --role user  add a user (password prompted or read from stdin)\n  \
                  mcp-sessions --set idle_timeout=600      override a configuration key"
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
    /// Serve MCP over stdin/stdout (the default).
    Serve,
    /// Manage the users in users.toml.
    #[command(subcommand)]
    User(UserCommand),
    /// Work with the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage the JWT signing key.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Replace jwt.key with a new random key. A running server signs with it within a second and
    /// keeps accepting tokens of the old key for `jwt_key_grace` seconds.
    Rotate,
}

/// Runs `key rotate`.
pub fn run_key_command(command: KeyCommand, paths: &Paths) -> anyhow::Result<()> {
    let KeyCommand::Rotate = command;
    let file = paths.key_file();
    let mut bytes = vec![0u8; crate::tokens::MIN_KEY_BYTES];
    crate::secret::fill_random(&mut bytes).map_err(|e| anyhow::anyhow!("random generator: {e}"))?;
    crate::config::ensure_private_dir(&paths.data_dir)?;
    let tmp = file.with_extension("key.tmp");
    crate::users::write_private(&tmp, &bytes)?;
    std::fs::rename(&tmp, &file)?;
    let kid = crate::tokens::key_id(&crate::secret::SecretBytes::new(bytes));
    writeln!(
        std::io::stdout().lock(),
        "rotated {}: new kid {kid}",
        file.display()
    )?;
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain; names the first line altered, removed or inserted.
    /// Exit status 0 when the chain holds, 1 when it breaks.
    #[command(
        after_help = "Examples:\n  mcp-sessions audit verify\n  mcp-sessions audit verify ~/.local/share/mcp-sessions/audit.log.1"
    )]
    Verify {
        /// The file (default: <data_dir>/audit.log). Needs the audit.key of the server that wrote it.
        file: Option<PathBuf>,
    },
}

/// Runs `audit verify`; `Ok(true)` when the chain holds.
pub fn run_audit_command(command: AuditCommand, paths: &Paths) -> anyhow::Result<bool> {
    let AuditCommand::Verify { file } = command;
    let file = file.unwrap_or_else(|| paths.audit_file());
    if !paths.audit_key_file().exists() {
        anyhow::bail!(
            "no audit key: {} does not exist",
            paths.audit_key_file().display()
        );
    }
    let key = crate::tokens::load_signing_key(None, &paths.audit_key_file())?;
    let mut out = std::io::stdout().lock();
    match crate::audit::verify(&file, &key)? {
        crate::audit::Verdict::Intact { lines } => {
            writeln!(
                out,
                "ok: {} — {lines} lines, the chain holds",
                file.display()
            )?;
            Ok(true)
        }
        crate::audit::Verdict::Broken { line, reason } => {
            writeln!(out, "BROKEN: {} line {line}: {reason}", file.display())?;
            Ok(false)
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is prompted for, or read from stdin when it is not a terminal.
    #[command(
        after_help = "Example:\n  printf '%s\\n' \"$PASSWORD\" | mcp-sessions user add alice --role user"
    )]
    Add {
        username: String,
        /// Role (admin, user, viewer or a configured one); repeatable. Default: user.
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
    },
    /// List users (never their hashes).
    List,
    /// Remove a user; their sessions end at their next use.
    Remove { username: String },
    /// Change a user's password; their sessions end at once.
    Passwd { username: String },
    /// Disable a user; their sessions end at once.
    Disable { username: String },
    /// Enable a disabled user.
    Enable { username: String },
}

/// Reads a new password: twice from a terminal prompt, or one line from stdin.
fn read_new_password(username: &str) -> Result<SecretString, UserError> {
    let io = |e: std::io::Error| UserError::Policy(format!("cannot read the password: {e}"));
    let password = if std::io::stdin().is_terminal() {
        let first =
            rpassword::prompt_password(format!("New password for {username}: ")).map_err(io)?;
        let second = rpassword::prompt_password("Repeat it: ").map_err(io)?;
        if first != second {
            return Err(UserError::Policy("the passwords differ".into()));
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(io)?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    check_new_password(&password)?;
    Ok(SecretString::new(password))
}

/// Runs a `user` subcommand against `paths`.
pub fn run_user_command(command: UserCommand, paths: &Paths) -> Result<(), UserError> {
    let file_path = paths.users_file();
    let mut file = UsersFile::load(&file_path)?;
    let mut out = std::io::stdout().lock();
    let write = |e: std::io::Error| UserError::Write {
        path: "stdout".into(),
        source: e,
    };
    match command {
        UserCommand::Add { username, roles } => {
            check_username(&username)?;
            if file.users.iter().any(|u| u.username == username) {
                return Err(UserError::Exists(username));
            }
            let password = read_new_password(&username)?;
            let roles = if roles.is_empty() {
                vec!["user".to_owned()]
            } else {
                roles
            };
            let record = UserRecord {
                id: uuid::Uuid::new_v4().to_string(),
                username: username.clone(),
                roles,
                password_hash: hash_password(&password)?,
                disabled: false,
            };
            writeln!(
                out,
                "added {} ({}) with roles {}",
                record.username,
                record.id,
                record.roles.join(",")
            )
            .map_err(write)?;
            file.users.push(record);
        }
        UserCommand::List => {
            writeln!(
                out,
                "{:<36}  {:<24}  {:<16}  status",
                "id", "username", "roles"
            )
            .map_err(write)?;
            for u in &file.users {
                let status = if u.disabled { "disabled" } else { "enabled" };
                writeln!(
                    out,
                    "{:<36}  {:<24}  {:<16}  {status}",
                    u.id,
                    u.username,
                    u.roles.join(",")
                )
                .map_err(write)?;
            }
            return Ok(());
        }
        UserCommand::Remove { username } => {
            let before = file.users.len();
            file.users.retain(|u| u.username != username);
            if file.users.len() == before {
                return Err(UserError::NotFound(username));
            }
            writeln!(out, "removed {username}").map_err(write)?;
        }
        UserCommand::Passwd { username } => {
            file.find_mut(&username)?;
            let password = read_new_password(&username)?;
            let hash = hash_password(&password)?;
            file.find_mut(&username)?.password_hash = hash;
            writeln!(
                out,
                "changed the password of {username}; their sessions have ended"
            )
            .map_err(write)?;
        }
        UserCommand::Disable { username } => {
            file.find_mut(&username)?.disabled = true;
            writeln!(out, "disabled {username}; their sessions have ended").map_err(write)?;
        }
        UserCommand::Enable { username } => {
            file.find_mut(&username)?.disabled = false;
            writeln!(out, "enabled {username}").map_err(write)?;
        }
    }
    file.save(&file_path)
}
