//! `mcp-sessions install <host>`: registers the server in a desktop host's MCP configuration file
//! (Claude Desktop, Claude Code, Cursor, VS Code), either as a command the host starts (stdio) or,
//! with `--url`, as a remote server the host connects to (Streamable HTTP). The merge is a pure
//! function over an order-preserving JSON document, so every other server, every other setting
//! and the order of the keys survive; the file I/O around it never touches a file it cannot
//! parse, backs the file up before changing it and replaces it atomically. Secrets stay out of
//! the host's configuration: a bootstrap user's password goes to a 0600 file the entry points
//! at, and a remote entry names the environment variable the host reads its token from.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::auth::secret::SecretString;
use crate::auth::users::{
    UserError, UserRecord, UsersFile, check_new_password, check_username, hash_password,
    verify_password,
};
use crate::config::Paths;

mod entry;
mod hosts;
mod remote;

use entry::PASSWORD_FILE_VAR;
pub use entry::{Json, RemoteEntry, ServerEntry, StdioEntry, merge_entry};
pub use hosts::Host;
pub use remote::{DEFAULT_TOKEN_ENV, RemoteTarget, RemoteUrl, TokenEnvName};

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(
        "{path} is not valid JSON ({reason}); it was left untouched. Fix it (comments and trailing commas are not supported), or print the entry with --print and add it by hand"
    )]
    Malformed { path: PathBuf, reason: String },
    #[error("{path}: {reason}; it was left untouched")]
    Shape { path: PathBuf, reason: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no home directory to find the host's configuration in; name the file with --config")]
    NoHome,
    #[error("cannot tell where this executable is ({0}); name it with --command")]
    CurrentExe(std::io::Error),
    #[error("the path {0} is not valid UTF-8, which host configuration files cannot hold")]
    NotUtf8(PathBuf),
    #[error(
        "the password does not match user `{0}` in users.toml; try again, or change it with `mcp-sessions user passwd {0}`"
    )]
    WrongPassword(String),
    #[error(
        "{host} cannot take a remote server from its configuration file (nothing was written): {instead}"
    )]
    NoRemote {
        host: &'static str,
        instead: &'static str,
    },
    #[error(
        "--demo (or MCP_SESSIONS_DEMO) and --set configure a server the host starts; with --url it starts none: give them to `serve --http` where the server runs"
    )]
    StdioOnly,
    #[error(transparent)]
    Users(#[from] UserError),
}

/// The name of the server's entry unless `--name` says otherwise.
pub const DEFAULT_ENTRY_NAME: &str = "mcp-sessions";

/// What `install` does with the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Write the file (backing it up first when it changes).
    Write,
    /// Print the whole resulting file; write nothing.
    DryRun,
    /// Print the entry alone; write nothing.
    Print,
}

/// An `install` command line, parsed.
#[derive(Debug, Clone)]
pub struct Request {
    pub host: Host,
    /// The host's file; `None`: its standard location.
    pub config_file: Option<PathBuf>,
    pub name: String,
    pub form: Form,
    pub mode: Mode,
}

/// Which kind of entry `install` writes.
#[derive(Debug, Clone)]
pub enum Form {
    /// The host starts the server and speaks to it over stdio.
    Stdio(StdioRequest),
    /// The host connects to a server that runs elsewhere (`serve --http`).
    Remote(RemoteTarget),
}

/// What a stdio entry starts, and as whom.
#[derive(Debug, Clone)]
pub struct StdioRequest {
    /// The executable the host runs; `None`: this one.
    pub command: Option<PathBuf>,
    /// Adds `--demo` to the arguments.
    pub demo: bool,
    /// `--set key=value` flags passed on to the server.
    pub settings: Vec<String>,
    /// The bootstrap user.
    pub user: Option<String>,
    /// Where its password is kept; `None`: `<config_dir>/<user>.password`.
    pub password_file: Option<PathBuf>,
    /// Its roles, should it be created (default `user`).
    pub roles: Vec<String>,
}

/// Asks for a password: the prompt, and whether it is a new one (to be typed twice on a terminal).
pub type PasswordReader<'a> = dyn FnMut(&str, bool) -> Result<SecretString, UserError> + 'a;

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn utf8(path: &Path) -> Result<String, InstallError> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| InstallError::NotUtf8(path.to_path_buf()))
}

/// `MCP_SESSIONS_{CONFIG,DATA}_DIR` for the directories that are not the platform's defaults: the
/// host starts the server with its own environment, which lacks the overrides of this shell.
fn directory_overrides(paths: &Paths) -> Result<Vec<(String, String)>, InstallError> {
    let defaults = directories::ProjectDirs::from("", "", "mcp-sessions");
    let mut env = Vec::new();
    let config_dir = absolute(&paths.config_dir);
    if defaults.as_ref().map(|d| d.config_dir()) != Some(config_dir.as_path()) {
        env.push(("MCP_SESSIONS_CONFIG_DIR".to_owned(), utf8(&config_dir)?));
    }
    let data_dir = absolute(&paths.data_dir);
    if defaults.as_ref().map(|d| d.data_dir()) != Some(data_dir.as_path()) {
        env.push(("MCP_SESSIONS_DATA_DIR".to_owned(), utf8(&data_dir)?));
    }
    Ok(env)
}

/// The existing document of `path`: `None` when the file is missing or blank.
fn read_document(path: &Path) -> Result<Option<Json>, InstallError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(InstallError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| InstallError::Malformed {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// `<path>.bak-<UTC timestamp>`, numbered when a backup of that second exists.
fn backup_path(path: &Path) -> PathBuf {
    let stamp: String = crate::clock::rfc3339(crate::clock::now_ms())
        .chars()
        .take(19)
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    let base = format!("{}.bak-{stamp}Z", path.display());
    let mut candidate = PathBuf::from(&base);
    let mut n = 2;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    candidate
}

/// Replaces the file at `path` (following a symlink to it) with `text` through a temporary file
/// and a rename, keeping the file's permissions.
fn replace_file(path: &Path, text: &str) -> std::io::Result<()> {
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let file_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = target.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let permissions = std::fs::metadata(&target).ok().map(|m| m.permissions());
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        if let Some(permissions) = permissions {
            std::fs::set_permissions(&tmp, permissions)?;
        }
        std::fs::rename(&tmp, &target)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Writes `password` to a new 0600 file at `path` (a pre-existing file of looser mode is
/// replaced, not reused).
fn write_password_file(path: &Path, password: &SecretString) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::files::ensure_private_dir(dir)?;
    }
    let tmp = path.with_extension("password.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut content = zeroize::Zeroizing::new(password.expose().as_bytes().to_vec());
    content.push(b'\n');
    let written =
        crate::files::write_private(&tmp, &content).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Makes sure `username` exists in users.toml with the password the operator types, creating
/// the user when it is new, and stores the password in `password_file`.
fn set_up_bootstrap_user(
    paths: &Paths,
    username: &str,
    roles: &[String],
    password_file: &Path,
    read_password: &mut PasswordReader<'_>,
    notes: &mut dyn Write,
) -> Result<(), InstallError> {
    let users_path = paths.users_file();
    let mut users = UsersFile::load(&users_path)?;
    let note_err = |e| InstallError::Write {
        path: "stderr".into(),
        source: e,
    };
    let password = match users.users.iter().find(|u| u.username == username) {
        Some(user) => {
            let password = read_password(&format!("Password of {username}: "), false)?;
            if !verify_password(&password, &user.password_hash) {
                return Err(InstallError::WrongPassword(username.to_owned()));
            }
            if user.disabled {
                writeln!(
                    notes,
                    "warning: user {username} is disabled; enable it with `mcp-sessions user enable {username}`"
                )
                .map_err(note_err)?;
            }
            if !roles.is_empty() && roles != user.roles.as_slice() {
                writeln!(
                    notes,
                    "note: user {username} exists; its roles stay {} (--role applies to new users)",
                    user.roles.join(",")
                )
                .map_err(note_err)?;
            }
            password
        }
        None => {
            users.check_available(username)?;
            let password = read_password(&format!("New password for {username}: "), true)?;
            check_new_password(password.expose())?;
            let roles = if roles.is_empty() {
                vec!["user".to_owned()]
            } else {
                roles.to_vec()
            };
            let record = UserRecord {
                id: uuid::Uuid::new_v4().to_string(),
                username: username.to_owned(),
                roles,
                password_hash: hash_password(&password)?,
                disabled: false,
            };
            writeln!(
                notes,
                "added user {username} with roles {} to {}",
                record.roles.join(","),
                users_path.display()
            )
            .map_err(note_err)?;
            users.users.push(record);
            users.save(&users_path)?;
            password
        }
    };
    write_password_file(password_file, &password).map_err(|source| InstallError::Write {
        path: password_file.to_path_buf(),
        source,
    })
}

fn write_error(path: &Path) -> impl Fn(std::io::Error) -> InstallError + use<> {
    let path = path.to_path_buf();
    move |source| InstallError::Write {
        path: path.clone(),
        source,
    }
}

/// The user a stdio entry logs in as at start.
struct Bootstrap {
    username: String,
    /// Where its password is kept.
    password_file: PathBuf,
    /// Its roles, should it be created.
    roles: Vec<String>,
}

/// The stdio entry for `request`, and its bootstrap user if it names one.
fn stdio_entry(
    request: &StdioRequest,
    paths: &Paths,
    notes: &mut dyn Write,
) -> Result<(StdioEntry, Option<Bootstrap>), InstallError> {
    let notes_err = write_error(Path::new("stderr"));
    let command = match &request.command {
        Some(command) => {
            if !command.is_file() {
                writeln!(
                    notes,
                    "warning: {} is not a file; the host will fail to start it",
                    command.display()
                )
                .map_err(&notes_err)?;
            }
            absolute(command)
        }
        None => std::env::current_exe().map_err(InstallError::CurrentExe)?,
    };
    let mut args = Vec::new();
    if request.demo {
        args.push("--demo".to_owned());
        writeln!(
            notes,
            "warning: --demo makes the host start the server with the demo users and their published passwords: for trials only, never for real use"
        )
        .map_err(&notes_err)?;
    }
    for setting in &request.settings {
        args.push("--set".to_owned());
        args.push(setting.clone());
    }

    let mut env = Vec::new();
    let bootstrap = match &request.user {
        Some(username) => {
            check_username(username)?;
            let password_file = absolute(
                &request
                    .password_file
                    .clone()
                    .unwrap_or_else(|| paths.config_dir.join(format!("{username}.password"))),
            );
            env.push(("MCP_SESSIONS_USER".to_owned(), username.clone()));
            env.push((PASSWORD_FILE_VAR.to_owned(), utf8(&password_file)?));
            Some(Bootstrap {
                username: username.clone(),
                password_file,
                roles: request.roles.clone(),
            })
        }
        None => None,
    };
    env.extend(directory_overrides(paths)?);
    let entry = StdioEntry {
        command: utf8(&command)?,
        args,
        env,
    };
    Ok((entry, bootstrap))
}

/// Where a remote entry's token comes from, and how to provide it.
fn token_hints(target: &RemoteTarget, out: &mut dyn Write) -> std::io::Result<()> {
    let variable = target.token_env.as_str();
    writeln!(
        out,
        "token: not in the file; the host reads it from {variable} when it connects"
    )?;
    writeln!(out, "create a token with: mcp-sessions token create USER")?;
    writeln!(
        out,
        "then: export {variable}=... in the environment the host starts from, before starting it"
    )
}

/// Runs `install`: results to `out`, notes and warnings to `notes`.
pub fn run(
    request: Request,
    paths: &Paths,
    read_password: &mut PasswordReader<'_>,
    out: &mut dyn Write,
    notes: &mut dyn Write,
) -> Result<(), InstallError> {
    let host = request.host;
    let stdout_err = write_error(Path::new("stdout"));
    let notes_err = write_error(Path::new("stderr"));

    // Built before the file is even located: a host that cannot take the entry is refused with
    // nothing read or written.
    let (entry, bootstrap, remote) = match &request.form {
        Form::Stdio(stdio) => {
            let (entry, bootstrap) = stdio_entry(stdio, paths, notes)?;
            (ServerEntry::Stdio(entry), bootstrap, None)
        }
        Form::Remote(target) => {
            let entry =
                RemoteEntry::new(host, target).map_err(|instead| InstallError::NoRemote {
                    host: host.display_name(),
                    instead,
                })?;
            (ServerEntry::Remote(entry), None, Some(target))
        }
    };
    let config_file = match request.config_file {
        Some(file) => file,
        None => host.default_config_file()?,
    };

    let original = read_document(&config_file)?;
    let merged = merge_entry(original.clone(), host, &request.name, &entry).map_err(|reason| {
        InstallError::Shape {
            path: config_file.clone(),
            reason,
        }
    })?;
    let unchanged = original.as_ref() == Some(&merged);

    match request.mode {
        Mode::Print => {
            out.write_all(entry.to_json(host).to_pretty().as_bytes())
                .map_err(&stdout_err)?;
            writeln!(
                notes,
                "add it as \"{}\" under \"{}\" in {}",
                request.name,
                host.servers_key(),
                config_file.display()
            )
            .map_err(&notes_err)?;
            if let Some(user) = &bootstrap {
                writeln!(
                    notes,
                    "the password file {} of {} is written only by a run without --print",
                    user.password_file.display(),
                    user.username
                )
                .map_err(&notes_err)?;
            }
            if let Some(target) = remote {
                token_hints(target, notes).map_err(&notes_err)?;
            }
            return Ok(());
        }
        Mode::DryRun => {
            out.write_all(merged.to_pretty().as_bytes())
                .map_err(&stdout_err)?;
            let verdict = match (&original, unchanged) {
                (_, true) => "it already holds this entry; nothing would change",
                (None, _) => "it would be created",
                (Some(_), false) => "it would be changed (after a backup)",
            };
            writeln!(
                notes,
                "dry run: {} not written; {verdict}",
                config_file.display()
            )
            .map_err(&notes_err)?;
            if let Some(user) = &bootstrap {
                writeln!(
                    notes,
                    "dry run: the password of {} would be asked for and kept in {} (0600)",
                    user.username,
                    user.password_file.display()
                )
                .map_err(&notes_err)?;
            }
            if let Some(target) = remote {
                token_hints(target, notes).map_err(&notes_err)?;
            }
            return Ok(());
        }
        Mode::Write => {}
    }

    if let Some(user) = &bootstrap {
        set_up_bootstrap_user(
            paths,
            &user.username,
            &user.roles,
            &user.password_file,
            read_password,
            notes,
        )?;
        writeln!(
            out,
            "bootstrap user {}: password kept in {} (0600), not in the host's configuration",
            user.username,
            user.password_file.display()
        )
        .map_err(&stdout_err)?;
    }
    if unchanged {
        writeln!(
            out,
            "unchanged: {} already has this {} entry \"{}\"",
            config_file.display(),
            host.display_name(),
            request.name
        )
        .map_err(&stdout_err)?;
        if let Some(target) = remote {
            token_hints(target, out).map_err(&stdout_err)?;
        }
        return Ok(());
    }
    let backup = match original {
        Some(_) => {
            let backup = backup_path(&config_file);
            std::fs::copy(&config_file, &backup).map_err(write_error(&backup))?;
            Some(backup)
        }
        None => None,
    };
    replace_file(&config_file, &merged.to_pretty()).map_err(write_error(&config_file))?;
    match backup {
        Some(backup) => writeln!(
            out,
            "updated {} (backup: {})",
            config_file.display(),
            backup.display()
        ),
        None => writeln!(out, "created {}", config_file.display()),
    }
    .map_err(&stdout_err)?;
    match &entry {
        ServerEntry::Stdio(stdio) => writeln!(
            out,
            "entry \"{}\" runs {}{}{}",
            request.name,
            stdio.command,
            if stdio.args.is_empty() { "" } else { " " },
            stdio.args.join(" ")
        ),
        ServerEntry::Remote(remote) => writeln!(
            out,
            "entry \"{}\" connects to {} with the header \"Authorization: {}\"",
            request.name, remote.url, remote.authorization
        ),
    }
    .map_err(&stdout_err)?;
    if let Some(target) = remote {
        token_hints(target, out).map_err(&stdout_err)?;
    }
    writeln!(out, "next: {}", host.next_step(remote.is_some())).map_err(&stdout_err)?;
    Ok(())
}

pub(super) const INSTALL_EXAMPLES: &str = "Hosts and their files:\n  \
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
    mcp-sessions install claude-desktop --config ./claude_desktop_config.json --command /usr/local/bin/mcp-sessions\n\n\
Remote server (serve --http elsewhere; the host sends Authorization: Bearer $MCP_SESSIONS_TOKEN):\n  \
    mcp-sessions install claude-code --url https://mcp.example.com/mcp\n  \
    mcp-sessions install vscode --url https://mcp.example.com/mcp --token-env WORK_MCP_TOKEN --name work\n  \
    mcp-sessions install cursor --url http://127.0.0.1:8750/mcp --dry-run   (http:// only to a loopback host)\n  \
    mcp-sessions token create alice                        the token; then export MCP_SESSIONS_TOKEN=... and start the host\n  \
    Claude Desktop takes remote servers only as connectors in its settings (Settings > Connectors).";

/// `install`'s arguments (`--demo`, `--set` and the directories are the global flags).
#[derive(Debug, clap::Args)]
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
    /// Register a remote server (`serve --http`) at this URL instead of starting this
    /// executable: the host connects over Streamable HTTP with a bearer token. https://, or
    /// http:// only to a loopback host.
    #[arg(
        long,
        value_name = "URL",
        conflicts_with_all = ["command", "user", "password_file", "roles"]
    )]
    pub url: Option<RemoteUrl>,
    /// With --url: the environment variable the host reads the token from when it connects; the
    /// file holds only a reference to it, never the token. Default: MCP_SESSIONS_TOKEN.
    #[arg(long, value_name = "NAME", requires = "url")]
    pub token_env: Option<TokenEnvName>,
    /// The entry's name in the host's configuration.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_ENTRY_NAME)]
    pub name: String,
}

/// Runs `install`; `global` supplies `--demo`, `--set` and the directories.
pub fn run_install_command(
    args: InstallArgs,
    global: &super::GlobalArgs,
    paths: &Paths,
) -> Result<(), InstallError> {
    let mode = match (args.dry_run, args.print) {
        (true, _) => Mode::DryRun,
        (false, true) => Mode::Print,
        (false, false) => Mode::Write,
    };
    let form = match args.url {
        // Global flags, which clap cannot make conflict with a subcommand's.
        Some(_) if global.demo || !global.set.is_empty() => return Err(InstallError::StdioOnly),
        Some(url) => Form::Remote(RemoteTarget {
            url,
            token_env: args.token_env.unwrap_or_default(),
        }),
        None => Form::Stdio(StdioRequest {
            command: args.command,
            demo: global.demo,
            settings: global.set.clone(),
            user: args.user,
            password_file: args.password_file,
            roles: args.roles,
        }),
    };
    let request = Request {
        host: args.host,
        config_file: args.config,
        name: args.name,
        form,
        mode,
    };
    run(
        request,
        paths,
        &mut |prompt, new| super::read_password(prompt, new),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )
}
