//! Command-line interface: serving (the default) and the operator commands (users, keys, audit
//! log, host installation, doctor). Raw flags are parsed once here into the objects the rest of
//! the crate takes. The operator commands are the only code that writes to stdout besides the MCP
//! transport, and only when not serving.

pub mod doctor;
pub mod install;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::auth::secret::SecretString;
use crate::auth::users::{
    UserError, UserRecord, UsersFile, check_new_password, check_username, hash_password,
};
use crate::config::Paths;
use crate::ops::install::{DEFAULT_ENTRY_NAME, Host, InstallError, Mode, Request};

#[derive(Debug, Parser)]
#[command(
    name = "mcp-sessions",
    version,
    about = "A stdio MCP server with authenticated, time-limited, audited user sessions",
    after_help = "Examples:\n  \
                  mcp-sessions --demo                          serve over stdio with the demo users\n  \
                  mcp-sessions user add alice --role user      add a user (password prompted or read from stdin)\n  \
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
                      RUST_LOG=debug mcp-sessions serve 2>server.log"
    )]
    Serve,
    /// Manage the users in users.toml.
    #[command(
        subcommand,
        after_help = "Examples:\n  printf '%s\\n' \"$PASSWORD\" | mcp-sessions user add alice --role user\n  \
                      mcp-sessions user list\n  mcp-sessions user disable alice"
    )]
    User(UserCommand),
    /// Work with the audit log.
    #[command(
        subcommand,
        after_help = "Examples:\n  mcp-sessions audit verify\n  mcp-sessions audit tail -n 50 --event login"
    )]
    Audit(AuditCommand),
    /// Manage the JWT signing key.
    #[command(subcommand, after_help = "Example:\n  mcp-sessions key rotate")]
    Key(KeyCommand),
    /// Register the server with a desktop host: writes or merges its entry into the host's MCP
    /// configuration file, keeping every other server and setting (the file is backed up first).
    #[command(after_help = INSTALL_EXAMPLES)]
    Install(InstallArgs),
    /// Check the configuration, users, directories, keys, audit log and browser, and say what to
    /// do about each problem. Exit status 1 when a check fails.
    #[command(
        after_help = "Examples:\n  mcp-sessions doctor\n  CHROME_PATH=/opt/chrome/chrome mcp-sessions doctor\n  \
                      mcp-sessions --data-dir /srv/mcp/data --config-dir /srv/mcp/config doctor"
    )]
    Doctor,
}

const INSTALL_EXAMPLES: &str = "Hosts and their files:\n  \
    claude-desktop  Claude/claude_desktop_config.json in ~/.config (Linux), ~/Library/Application Support (macOS), %APPDATA% (Windows)\n  \
    claude-code     ~/.claude.json (user scope)\n  \
    cursor          ~/.cursor/mcp.json\n  \
    vscode          Code/User/mcp.json in ~/.config, ~/Library/Application Support or %APPDATA%\n\n\
Examples:\n  \
    mcp-sessions install claude-desktop --user alice      create or check alice; her password goes to a 0600 file\n  \
    printf '%s\\n' \"$PASSWORD\" | mcp-sessions install cursor --user alice\n  \
    mcp-sessions install vscode --dry-run                  show the whole resulting file, write nothing\n  \
    mcp-sessions install claude-code --print               show only the entry\n  \
    mcp-sessions install cursor --demo                     trials only: the demo users\n  \
    mcp-sessions install claude-desktop --config ./claude_desktop_config.json --command /usr/local/bin/mcp-sessions";

/// `install`'s arguments (`--demo`, `--set` and the directories are the global flags).
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The host to register with.
    #[arg(value_enum)]
    pub host: Host,
    /// Print the whole resulting configuration file instead of writing it.
    #[arg(long)]
    pub dry_run: bool,
    /// Print only the server's entry (to add by hand); writes nothing.
    #[arg(long, conflicts_with = "dry_run")]
    pub print: bool,
    /// The host's configuration file (default: its standard location on this platform).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The executable the host starts (default: this one).
    #[arg(long, value_name = "PATH")]
    pub command: Option<PathBuf>,
    /// A bootstrap user the server logs in at start, so the password never passes through the
    /// model. Created when missing; its password is read from stdin or a prompt (never argv) and
    /// kept in a 0600 file the entry names in MCP_SESSIONS_PASSWORD_FILE.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Where the bootstrap user's password is kept (default: <config_dir>/<NAME>.password).
    #[arg(long, value_name = "FILE", requires = "user")]
    pub password_file: Option<PathBuf>,
    /// Role of the bootstrap user if it is created; repeatable. Default: user.
    #[arg(long = "role", value_name = "ROLE", requires = "user")]
    pub roles: Vec<String>,
    /// The entry's name in the host's configuration.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_ENTRY_NAME)]
    pub name: String,
}

/// Runs `install`; `global` supplies `--demo`, `--set` and the directories.
pub fn run_install_command(
    args: InstallArgs,
    global: &GlobalArgs,
    paths: &Paths,
) -> Result<(), InstallError> {
    let mode = match (args.dry_run, args.print) {
        (true, _) => Mode::DryRun,
        (false, true) => Mode::Print,
        (false, false) => Mode::Write,
    };
    let request = Request {
        host: args.host,
        config_file: args.config,
        command: args.command,
        name: args.name,
        demo: global.demo,
        settings: global.set.clone(),
        user: args.user,
        password_file: args.password_file,
        roles: args.roles,
        mode,
    };
    crate::ops::install::run(
        request,
        paths,
        &mut |prompt, new| read_password(prompt, new),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )
}

/// Runs `doctor`; `Ok(false)` when a check failed.
pub fn run_doctor_command(paths: &Paths, settings: &[String]) -> anyhow::Result<bool> {
    let report = crate::ops::doctor::run(paths, settings);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "mcp-sessions doctor: config {}, data {}\n",
        paths.config_dir.display(),
        paths.data_dir.display()
    )?;
    report.render(&mut out)?;
    Ok(!report.failed())
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Replace jwt.key with a new random key. A running server signs with it within a second and
    /// keeps accepting tokens of the old key for `jwt_key_grace` seconds.
    #[command(
        after_help = "Examples:\n  mcp-sessions key rotate\n  mcp-sessions --data-dir /srv/mcp/data key rotate"
    )]
    Rotate,
}

/// Runs `key rotate`.
pub fn run_key_command(command: KeyCommand, paths: &Paths) -> anyhow::Result<()> {
    let KeyCommand::Rotate = command;
    let file = paths.key_file();
    let mut bytes = vec![0u8; crate::auth::tokens::MIN_KEY_BYTES];
    crate::auth::secret::fill_random(&mut bytes)
        .map_err(|e| anyhow::anyhow!("random generator: {e}"))?;
    crate::files::ensure_private_dir(&paths.data_dir)?;
    let tmp = file.with_extension("key.tmp");
    crate::files::write_private(&tmp, &bytes)?;
    std::fs::rename(&tmp, &file)?;
    let kid = crate::auth::tokens::key_id(&crate::auth::secret::SecretBytes::new(bytes));
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
    /// Print the last audit events readably, one line each: time, event, outcome, user, tool,
    /// short session hash, detail. With --follow, keep printing new ones (Ctrl-C stops).
    #[command(
        after_help = "Examples:\n  mcp-sessions audit tail\n  mcp-sessions audit tail -n 100 --user alice\n  \
                      mcp-sessions audit tail --event login.failure --follow\n  \
                      mcp-sessions audit tail --event session   (every session.* event)"
    )]
    Tail {
        /// How many events to print (the last ones that match).
        #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 20)]
        lines: usize,
        /// Keep printing events as they are appended (polls the file; follows rotations).
        #[arg(short, long)]
        follow: bool,
        /// Only events of this username or user id.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// Only this event (login.failure) or family (login).
        #[arg(long, value_name = "KIND")]
        event: Option<String>,
        /// The file (default: <data_dir>/audit.log).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

/// Runs an `audit` subcommand; `Ok(false)` when `verify` finds the chain broken.
pub fn run_audit_command(command: AuditCommand, paths: &Paths) -> anyhow::Result<bool> {
    let file = match command {
        AuditCommand::Verify { file } => file,
        AuditCommand::Tail {
            lines,
            follow,
            user,
            event,
            file,
        } => {
            let file = file.unwrap_or_else(|| paths.audit_file());
            let filter = crate::audit::tail::Filter { user, event };
            crate::audit::tail::run(&file, lines, follow, &filter, &mut std::io::stdout().lock())?;
            return Ok(true);
        }
    };
    let file = file.unwrap_or_else(|| paths.audit_file());
    if !paths.audit_key_file().exists() {
        anyhow::bail!(
            "no audit key: {} does not exist",
            paths.audit_key_file().display()
        );
    }
    let key = crate::auth::tokens::load_signing_key(None, &paths.audit_key_file())?;
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
    #[command(after_help = "Example:\n  mcp-sessions user list")]
    List,
    /// Remove a user; their sessions end at their next use.
    #[command(after_help = "Example:\n  mcp-sessions user remove alice")]
    Remove { username: String },
    /// Change a user's password; their sessions end at once.
    #[command(
        after_help = "Examples:\n  mcp-sessions user passwd alice\n  printf '%s\\n' \"$NEW_PASSWORD\" | mcp-sessions user passwd alice"
    )]
    Passwd { username: String },
    /// Disable a user; their sessions end at once.
    #[command(after_help = "Example:\n  mcp-sessions user disable alice")]
    Disable { username: String },
    /// Enable a disabled user.
    #[command(after_help = "Example:\n  mcp-sessions user enable alice")]
    Enable { username: String },
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

/// Reads a new password and checks it against the policy.
fn read_new_password(username: &str) -> Result<SecretString, UserError> {
    let password = read_password(&format!("New password for {username}: "), true)?;
    check_new_password(password.expose())?;
    Ok(password)
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
