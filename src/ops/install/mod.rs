//! `mcp-sessions install <host>`: registers the server in a desktop host's MCP configuration file
//! (Claude Desktop, Claude Code, Cursor, VS Code). The merge is a pure function over an
//! order-preserving JSON document, so every other server, every other setting and the order of
//! the keys survive; the file I/O around it never touches a file it cannot parse, backs the file
//! up before changing it and replaces it atomically. A bootstrap user's password goes to a 0600
//! file the entry points at, never into the host's configuration.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::auth::secret::SecretString;
use crate::auth::users::{
    UserError, UserRecord, UsersFile, check_new_password, check_username, hash_password,
    verify_password,
};
use crate::config::Paths;

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
    #[error(transparent)]
    Users(#[from] UserError),
}

/// The name of the server's entry unless `--name` says otherwise.
pub const DEFAULT_ENTRY_NAME: &str = "mcp-sessions";

/// A desktop host that launches MCP servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Host {
    ClaudeDesktop,
    ClaudeCode,
    Cursor,
    Vscode,
}

impl Host {
    pub fn display_name(self) -> &'static str {
        match self {
            Self::ClaudeDesktop => "Claude Desktop",
            Self::ClaudeCode => "Claude Code",
            Self::Cursor => "Cursor",
            Self::Vscode => "VS Code",
        }
    }

    /// The key under which the host's file lists its servers.
    pub fn servers_key(self) -> &'static str {
        match self {
            Self::Vscode => "servers",
            Self::ClaudeDesktop | Self::ClaudeCode | Self::Cursor => "mcpServers",
        }
    }

    /// Whether the host's entries name their transport (`"type": "stdio"`).
    fn names_transport(self) -> bool {
        matches!(self, Self::Vscode | Self::ClaudeCode)
    }

    /// The file holding the host's user-level MCP servers, given the home directory and the
    /// platform's per-user configuration directory (`$XDG_CONFIG_HOME` or `~/.config` on Linux,
    /// `~/Library/Application Support` on macOS, `%APPDATA%` on Windows).
    pub fn config_file_in(self, home: &Path, config_dir: &Path) -> PathBuf {
        match self {
            Self::ClaudeDesktop => config_dir.join("Claude").join("claude_desktop_config.json"),
            Self::ClaudeCode => home.join(".claude.json"),
            Self::Cursor => home.join(".cursor").join("mcp.json"),
            Self::Vscode => config_dir.join("Code").join("User").join("mcp.json"),
        }
    }

    /// [`Host::config_file_in`] for the current user on this platform.
    pub fn default_config_file(self) -> Result<PathBuf, InstallError> {
        let dirs = directories::BaseDirs::new().ok_or(InstallError::NoHome)?;
        Ok(self.config_file_in(dirs.home_dir(), dirs.config_dir()))
    }

    /// What the operator does next for the host to start the server.
    fn next_step(self) -> &'static str {
        match self {
            Self::ClaudeDesktop => "quit Claude Desktop completely and start it again",
            Self::ClaudeCode => "new Claude Code sessions start it; check with `claude mcp list`",
            Self::Cursor => "open Cursor Settings > MCP and check that mcp-sessions is enabled",
            Self::Vscode => {
                "in VS Code, run `MCP: List Servers` from the command palette and start mcp-sessions"
            }
        }
    }
}

/// A JSON value whose objects keep their keys in the order of the file, so that rewriting a
/// host's configuration changes nothing but the entry (serde_json's own map sorts the keys).
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn string(value: &str) -> Self {
        Self::String(value.to_owned())
    }

    /// `text` as pretty-printed JSON with a final newline.
    pub fn to_pretty(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// The value under `key`, if the object has one.
fn member_mut<'a>(object: &'a mut [(String, Json)], key: &str) -> Option<&'a mut Json> {
    object.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Sets `key` to `value`, in place when the key exists (its position is kept).
fn set_member(object: &mut Vec<(String, Json)>, key: &str, value: Json) {
    match member_mut(object, key) {
        Some(slot) => *slot = value,
        None => object.push((key.to_owned(), value)),
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Null => serializer.serialize_unit(),
            Self::Bool(b) => serializer.serialize_bool(*b),
            Self::Number(n) => n.serialize(serializer),
            Self::String(s) => serializer.serialize_str(s),
            Self::Array(items) => serializer.collect_seq(items),
            Self::Object(members) => {
                let mut map = serializer.serialize_map(Some(members.len()))?;
                for (key, value) in members {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct JsonVisitor;

        impl<'de> Visitor<'de> for JsonVisitor {
            type Value = Json;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }

            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }

            fn visit_bool<E>(self, value: bool) -> Result<Json, E> {
                Ok(Json::Bool(value))
            }

            fn visit_i64<E>(self, value: i64) -> Result<Json, E> {
                Ok(Json::Number(value.into()))
            }

            fn visit_u64<E>(self, value: u64) -> Result<Json, E> {
                Ok(Json::Number(value.into()))
            }

            fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Json, E> {
                serde_json::Number::from_f64(value)
                    .map(Json::Number)
                    .ok_or_else(|| E::custom("a number JSON cannot hold"))
            }

            fn visit_str<E>(self, value: &str) -> Result<Json, E> {
                Ok(Json::string(value))
            }

            fn visit_string<E>(self, value: String) -> Result<Json, E> {
                Ok(Json::String(value))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Json::Array(items))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
                let mut members = Vec::new();
                // A repeated key keeps its first position and its last value, as parsers agree.
                while let Some((key, value)) = map.next_entry::<String, Json>()? {
                    set_member(&mut members, &key, value);
                }
                Ok(Json::Object(members))
            }
        }

        deserializer.deserialize_any(JsonVisitor)
    }
}

/// The environment variable naming the bootstrap user's password file.
const PASSWORD_FILE_VAR: &str = "MCP_SESSIONS_PASSWORD_FILE";
/// A password in the entry itself: replaced by the file whenever a bootstrap user is installed.
const PASSWORD_VAR: &str = "MCP_SESSIONS_PASSWORD";

/// The server's entry in a host's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerEntry {
    pub command: String,
    pub args: Vec<String>,
    /// Environment variables in the order they are written; never a password.
    pub env: Vec<(String, String)>,
}

impl ServerEntry {
    /// The entry as `host` spells it.
    pub fn to_json(&self, host: Host) -> Json {
        let mut members = Vec::new();
        if host.names_transport() {
            members.push(("type".to_owned(), Json::string("stdio")));
        }
        members.push(("command".to_owned(), Json::string(&self.command)));
        members.push((
            "args".to_owned(),
            Json::Array(self.args.iter().map(|a| Json::string(a)).collect()),
        ));
        if !self.env.is_empty() {
            members.push(("env".to_owned(), self.env_json()));
        }
        Json::Object(members)
    }

    fn env_json(&self) -> Json {
        Json::Object(
            self.env
                .iter()
                .map(|(k, v)| (k.clone(), Json::string(v)))
                .collect(),
        )
    }
}

/// Puts `entry` under `name` in the host's server list of `document` (a new document when
/// `None`), keeping everything else. An existing entry of that name keeps its other keys and
/// environment variables; its transport, command and arguments become the new ones. The error
/// says why the document cannot take an entry.
pub fn merge_entry(
    document: Option<Json>,
    host: Host,
    name: &str,
    entry: &ServerEntry,
) -> Result<Json, String> {
    let mut document = document.unwrap_or(Json::Object(Vec::new()));
    let Json::Object(top) = &mut document else {
        return Err("the top level is not a JSON object".into());
    };
    let key = host.servers_key();
    if member_mut(top, key).is_none() {
        top.push((key.to_owned(), Json::Object(Vec::new())));
    }
    let Some(Json::Object(servers)) = member_mut(top, key) else {
        return Err(format!("`{key}` is not a JSON object"));
    };
    match member_mut(servers, name) {
        Some(Json::Object(existing)) => {
            if host.names_transport() {
                set_member(existing, "type", Json::string("stdio"));
            }
            set_member(existing, "command", Json::string(&entry.command));
            set_member(
                existing,
                "args",
                Json::Array(entry.args.iter().map(|a| Json::string(a)).collect()),
            );
            if !entry.env.is_empty() {
                match member_mut(existing, "env") {
                    Some(Json::Object(env)) => {
                        for (k, v) in &entry.env {
                            set_member(env, k, Json::string(v));
                        }
                        if entry.env.iter().any(|(k, _)| k == PASSWORD_FILE_VAR) {
                            env.retain(|(k, _)| k != PASSWORD_VAR);
                        }
                    }
                    Some(other) => *other = entry.env_json(),
                    None => existing.push(("env".to_owned(), entry.env_json())),
                }
            }
        }
        Some(other) => *other = entry.to_json(host),
        None => servers.push((name.to_owned(), entry.to_json(host))),
    }
    Ok(document)
}

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
    /// The executable the host runs; `None`: this one.
    pub command: Option<PathBuf>,
    pub name: String,
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
    pub mode: Mode,
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

/// Runs `install`: results to `out`, notes and warnings to `notes`.
pub fn run(
    request: Request,
    paths: &Paths,
    read_password: &mut PasswordReader<'_>,
    out: &mut dyn Write,
    notes: &mut dyn Write,
) -> Result<(), InstallError> {
    let host = request.host;
    let config_file = match request.config_file {
        Some(file) => file,
        None => host.default_config_file()?,
    };
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InstallError::Write {
            path: path.clone(),
            source,
        }
    };
    let stdout_err = write_err(Path::new("stdout"));
    let notes_err = write_err(Path::new("stderr"));

    let command = match request.command {
        Some(command) => {
            if !command.is_file() {
                writeln!(
                    notes,
                    "warning: {} is not a file; the host will fail to start it",
                    command.display()
                )
                .map_err(&notes_err)?;
            }
            absolute(&command)
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
            Some((username.clone(), password_file))
        }
        None => None,
    };
    env.extend(directory_overrides(paths)?);
    let entry = ServerEntry {
        command: utf8(&command)?,
        args,
        env,
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
            if let Some((username, password_file)) = &bootstrap {
                writeln!(
                    notes,
                    "the password file {} of {username} is written only by a run without --print",
                    password_file.display()
                )
                .map_err(&notes_err)?;
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
            if let Some((username, password_file)) = &bootstrap {
                writeln!(
                    notes,
                    "dry run: the password of {username} would be asked for and kept in {} (0600)",
                    password_file.display()
                )
                .map_err(&notes_err)?;
            }
            return Ok(());
        }
        Mode::Write => {}
    }

    if let Some((username, password_file)) = &bootstrap {
        set_up_bootstrap_user(
            paths,
            username,
            &request.roles,
            password_file,
            read_password,
            notes,
        )?;
        writeln!(
            out,
            "bootstrap user {username}: password kept in {} (0600), not in the host's configuration",
            password_file.display()
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
        return Ok(());
    }
    let backup = match original {
        Some(_) => {
            let backup = backup_path(&config_file);
            std::fs::copy(&config_file, &backup).map_err(write_err(&backup))?;
            Some(backup)
        }
        None => None,
    };
    replace_file(&config_file, &merged.to_pretty()).map_err(write_err(&config_file))?;
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
    writeln!(
        out,
        "entry \"{}\" runs {}{}{}",
        request.name,
        entry.command,
        if entry.args.is_empty() { "" } else { " " },
        entry.args.join(" ")
    )
    .map_err(&stdout_err)?;
    writeln!(out, "next: {}", host.next_step()).map_err(&stdout_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Json {
        serde_json::from_str(text).unwrap()
    }

    fn entry() -> ServerEntry {
        ServerEntry {
            command: "/opt/bin/mcp-sessions".into(),
            args: vec![],
            env: vec![
                ("MCP_SESSIONS_USER".into(), "alice".into()),
                (
                    PASSWORD_FILE_VAR.into(),
                    "/home/a/.config/alice.password".into(),
                ),
            ],
        }
    }

    fn to_value(json: &Json) -> serde_json::Value {
        serde_json::from_str(&json.to_pretty()).unwrap()
    }

    #[test]
    fn keeps_other_servers_settings_and_key_order() {
        let original = parse(
            r#"{"zeta": 1, "mcpServers": {"other": {"command": "x", "args": ["-y"]}}, "alpha": {"b": [1, 2.5, null, true], "a": "s"}}"#,
        );
        let merged = merge_entry(
            Some(original),
            Host::ClaudeDesktop,
            DEFAULT_ENTRY_NAME,
            &entry(),
        )
        .unwrap();
        let text = merged.to_pretty();
        let keys: Vec<usize> = ["\"zeta\"", "\"mcpServers\"", "\"alpha\"", "\"b\"", "\"a\""]
            .iter()
            .map(|k| text.find(k).unwrap())
            .collect();
        assert!(
            keys.windows(2).all(|w| w[0] < w[1]),
            "order changed:\n{text}"
        );
        let value = to_value(&merged);
        assert_eq!(value["mcpServers"]["other"]["args"][0], "-y");
        assert_eq!(value["alpha"]["b"][1], 2.5);
        assert_eq!(
            value["mcpServers"]["mcp-sessions"]["command"],
            "/opt/bin/mcp-sessions"
        );
        assert_eq!(
            value["mcpServers"]["mcp-sessions"]["env"]["MCP_SESSIONS_USER"],
            "alice"
        );
        assert!(value["mcpServers"]["mcp-sessions"].get("type").is_none());
    }

    #[test]
    fn merging_twice_changes_nothing() {
        let once = merge_entry(None, Host::Vscode, DEFAULT_ENTRY_NAME, &entry()).unwrap();
        let twice = merge_entry(
            Some(once.clone()),
            Host::Vscode,
            DEFAULT_ENTRY_NAME,
            &entry(),
        )
        .unwrap();
        assert_eq!(once, twice);
        let value = to_value(&once);
        assert_eq!(value["servers"]["mcp-sessions"]["type"], "stdio");
        assert!(value.get("mcpServers").is_none());
    }

    #[test]
    fn an_existing_entry_keeps_its_extra_keys_and_loses_an_inline_password() {
        let original = parse(
            r#"{"mcpServers": {"mcp-sessions": {"command": "old", "args": ["--demo"], "disabled": false,
                "env": {"CHROME_PATH": "/usr/bin/chromium", "MCP_SESSIONS_PASSWORD": "hunter2hunter2hunter2"}}}}"#,
        );
        let merged =
            merge_entry(Some(original), Host::Cursor, DEFAULT_ENTRY_NAME, &entry()).unwrap();
        let value = to_value(&merged);
        let server = &value["mcpServers"]["mcp-sessions"];
        assert_eq!(server["command"], "/opt/bin/mcp-sessions");
        assert_eq!(server["args"], serde_json::json!([]));
        assert_eq!(server["disabled"], false);
        assert_eq!(server["env"]["CHROME_PATH"], "/usr/bin/chromium");
        assert!(server["env"].get(PASSWORD_VAR).is_none());
        assert!(!merged.to_pretty().contains("hunter2"));
    }

    #[test]
    fn refuses_documents_that_cannot_hold_an_entry() {
        assert!(merge_entry(Some(parse("[1]")), Host::Cursor, "x", &entry()).is_err());
        let err = merge_entry(
            Some(parse(r#"{"servers": []}"#)),
            Host::Vscode,
            "x",
            &entry(),
        )
        .unwrap_err();
        assert!(err.contains("servers"), "{err}");
    }

    #[test]
    fn standard_locations_per_host() {
        let home = Path::new("/home/a");
        let linux = Path::new("/home/a/.config");
        let mac = Path::new("/Users/a/Library/Application Support");
        assert_eq!(
            Host::ClaudeDesktop.config_file_in(home, linux),
            Path::new("/home/a/.config/Claude/claude_desktop_config.json")
        );
        assert_eq!(
            Host::ClaudeDesktop.config_file_in(Path::new("/Users/a"), mac),
            Path::new("/Users/a/Library/Application Support/Claude/claude_desktop_config.json")
        );
        assert_eq!(
            Host::Vscode.config_file_in(home, linux),
            Path::new("/home/a/.config/Code/User/mcp.json")
        );
        assert_eq!(
            Host::ClaudeCode.config_file_in(home, linux),
            Path::new("/home/a/.claude.json")
        );
        assert_eq!(
            Host::Cursor.config_file_in(home, linux),
            Path::new("/home/a/.cursor/mcp.json")
        );
    }

    #[test]
    fn claude_code_entries_name_their_transport() {
        let value = to_value(&merge_entry(None, Host::ClaudeCode, "s", &entry()).unwrap());
        assert_eq!(value["mcpServers"]["s"]["type"], "stdio");
    }
}
