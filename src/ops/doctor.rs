//! `mcp-sessions doctor`: checks what the server needs before a host starts it (configuration,
//! users, directories, keys, audit log, browser) and says, for each problem, what to do. It only
//! reads: no key, log or directory is created, and no secret is shown (keys by their size only).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::auth::users::UsersFile;
use crate::config::{Config, Paths};

/// How long `chromium --version` may take.
const BROWSER_VERSION_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Warn => "WARN",
            Self::Fail => "FAIL",
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone)]
pub struct Check {
    pub status: Status,
    /// What was checked.
    pub what: &'static str,
    /// What was found.
    pub found: String,
    /// What to do about it (for WARN and FAIL).
    pub fix: Option<String>,
}

impl Check {
    fn ok(what: &'static str, found: impl Into<String>) -> Self {
        Self {
            status: Status::Ok,
            what,
            found: found.into(),
            fix: None,
        }
    }

    fn warn(what: &'static str, found: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            status: Status::Warn,
            what,
            found: found.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(what: &'static str, found: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            status: Status::Fail,
            what,
            found: found.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Every check, in the order they ran.
#[derive(Debug, Clone)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether any check failed (the exit status is then non-zero).
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Fail)
    }

    fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    /// The report as a table: status, check, what was found, and under it what to do.
    pub fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let width = self
            .checks
            .iter()
            .map(|c| c.what.len())
            .max()
            .unwrap_or(0)
            .max("CHECK".len());
        writeln!(out, "{:<8}{:<width$}  RESULT", "STATUS", "CHECK")?;
        for check in &self.checks {
            writeln!(
                out,
                "{:<8}{:<width$}  {}",
                check.status.label(),
                check.what,
                check.found
            )?;
            if let Some(fix) = &check.fix {
                writeln!(out, "{:<8}{:<width$}  -> {fix}", "", "")?;
            }
        }
        let (ok, warn, fail) = (
            self.count(Status::Ok),
            self.count(Status::Warn),
            self.count(Status::Fail),
        );
        writeln!(out)?;
        let verdict = if fail > 0 {
            "fix the FAIL rows before a host starts the server"
        } else if warn > 0 {
            "the server can start; the WARN rows deserve a look"
        } else {
            "all good"
        };
        writeln!(out, "{ok} OK, {warn} WARN, {fail} FAIL: {verdict}")
    }
}

/// Runs every check against `paths`, with the `--set` overrides of this command line.
pub fn run(paths: &Paths, settings: &[String]) -> Report {
    let mut checks = Vec::new();
    let config = check_config(paths, settings, &mut checks);
    let users = check_users_file(paths, &mut checks);
    checks.push(check_dir(
        "config directory",
        &paths.config_dir,
        "mcp-sessions user add NAME",
    ));
    checks.push(check_dir(
        "data directory",
        &paths.data_dir,
        "start the server once (a host does it)",
    ));
    checks.push(check_jwt_key(paths));
    checks.push(check_key_file("audit.key", &paths.audit_key_file()));
    checks.push(check_tokens_file(&paths.tokens_file()));
    if paths.tokens_file().exists() || paths.pat_key_file().exists() {
        checks.push(check_key_file("pat.key", &paths.pat_key_file()));
    }
    checks.push(check_audit_writable(&paths.audit_file()));
    checks.push(check_audit_chain(paths));
    checks.push(check_audit_history(&paths.audit_file()));
    let configured = config
        .as_ref()
        .and_then(|c| c.browser.chrome_path.as_deref());
    checks.extend(check_browser(configured));
    if let Some(users) = users {
        checks.push(check_user_count(&users));
    }
    Report { checks }
}

fn check_config(paths: &Paths, settings: &[String], checks: &mut Vec<Check>) -> Option<Config> {
    let file = paths.config_file();
    let source = if file.exists() {
        format!("{} parses", file.display())
    } else {
        format!("{} absent: the defaults apply", file.display())
    };
    let loaded = Config::load(paths, settings)
        .and_then(|config| crate::app::configured_rules(&config, false).map(|_| config));
    match loaded {
        Ok(config) => {
            checks.push(Check::ok("config.toml", source));
            Some(config)
        }
        Err(e) => {
            checks.push(Check::fail(
                "config.toml",
                e.to_string(),
                "correct the named key in config.toml, the MCP_SESSIONS_* variables or the --set flags",
            ));
            None
        }
    }
}

fn check_users_file(paths: &Paths, checks: &mut Vec<Check>) -> Option<UsersFile> {
    let file = paths.users_file();
    match UsersFile::load(&file) {
        Ok(users) => {
            let found = if file.exists() {
                format!("{} parses", file.display())
            } else {
                format!("{} absent (no users yet)", file.display())
            };
            checks.push(Check::ok("users.toml", found));
            Some(users)
        }
        Err(e) => {
            checks.push(Check::fail(
                "users.toml",
                e.to_string(),
                "repair it by hand or restore a copy; `mcp-sessions user …` rewrites it only when it parses",
            ));
            None
        }
    }
}

/// The permission bits others than the owner hold on `path` (none where the platform has no modes).
fn foreign_mode_bits(meta: &std::fs::Metadata) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o077
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        0
    }
}

fn mode_text(meta: &std::fs::Metadata) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        format!("{:04o}", meta.permissions().mode() & 0o7777)
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        "n/a".to_owned()
    }
}

fn check_dir(what: &'static str, dir: &Path, creates_it: &str) -> Check {
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Check::fail(
            what,
            format!("{} is not a directory", dir.display()),
            "move the file away, or point MCP_SESSIONS_*_DIR elsewhere",
        ),
        Ok(meta) if foreign_mode_bits(&meta) != 0 => Check::warn(
            what,
            format!(
                "{} has mode {}: others can list it",
                dir.display(),
                mode_text(&meta)
            ),
            format!("chmod 700 {}", dir.display()),
        ),
        Ok(_) => Check::ok(what, format!("{} (owner only)", dir.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Check::warn(
            what,
            format!("{} does not exist yet", dir.display()),
            format!("it is created on first use: {creates_it}"),
        ),
        Err(e) => Check::fail(
            what,
            format!("{}: {e}", dir.display()),
            "check the directory's ownership",
        ),
    }
}

fn check_jwt_key(paths: &Paths) -> Check {
    match std::env::var("MCP_SESSIONS_JWT_SECRET") {
        Ok(secret) if !secret.is_empty() => {
            if secret.len() >= crate::auth::tokens::MIN_KEY_BYTES {
                Check::ok(
                    "jwt.key",
                    format!(
                        "MCP_SESSIONS_JWT_SECRET is set in this environment ({} bytes); jwt.key is not used",
                        secret.len()
                    ),
                )
            } else {
                Check::fail(
                    "jwt.key",
                    format!(
                        "MCP_SESSIONS_JWT_SECRET is {} bytes; at least {} are needed",
                        secret.len(),
                        crate::auth::tokens::MIN_KEY_BYTES
                    ),
                    "set it to 32+ random bytes (e.g. `openssl rand -hex 32`), or unset it to use jwt.key",
                )
            }
        }
        _ => check_key_file("jwt.key", &paths.key_file()),
    }
}

fn check_key_file(what: &'static str, file: &Path) -> Check {
    match std::fs::metadata(file) {
        Ok(meta) if !meta.is_file() => Check::fail(
            what,
            format!("{} is not a regular file", file.display()),
            "move it away; the server creates a new key at its next start",
        ),
        Ok(meta) if meta.len() < crate::auth::tokens::MIN_KEY_BYTES as u64 => Check::fail(
            what,
            format!(
                "{} holds {} bytes; at least {} are needed",
                file.display(),
                meta.len(),
                crate::auth::tokens::MIN_KEY_BYTES
            ),
            "delete it; the server creates a new one at its next start (tokens and, for audit.key, the log chain restart)",
        ),
        Ok(meta) if foreign_mode_bits(&meta) != 0 => Check::fail(
            what,
            format!(
                "{} has mode {}: other users can read the key",
                file.display(),
                mode_text(&meta)
            ),
            format!(
                "chmod 600 {}, then `mcp-sessions key rotate` if others may have read it",
                file.display()
            ),
        ),
        Ok(meta) => Check::ok(
            what,
            format!("{} ({} bytes, owner only)", file.display(), meta.len()),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Check::warn(
            what,
            format!("{} does not exist yet", file.display()),
            "the server creates it (0600) at its first start",
        ),
        Err(e) => Check::fail(
            what,
            format!("{}: {e}", file.display()),
            "check the file's ownership",
        ),
    }
}

/// tokens.json holds keyed hashes, not tokens, but others must not read them nor the names.
fn check_tokens_file(file: &Path) -> Check {
    let what = "tokens.json";
    match std::fs::metadata(file) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Check::ok(
            what,
            format!("{} absent (no personal access tokens)", file.display()),
        ),
        Err(e) => Check::fail(
            what,
            format!("{}: {e}", file.display()),
            "check the file's ownership",
        ),
        Ok(meta) if !meta.is_file() => Check::fail(
            what,
            format!("{} is not a regular file", file.display()),
            "move it away (every personal access token is refused until then)",
        ),
        Ok(meta) if foreign_mode_bits(&meta) != 0 => Check::fail(
            what,
            format!(
                "{} has mode {}: other users can read the token hashes",
                file.display(),
                mode_text(&meta)
            ),
            format!("chmod 600 {}", file.display()),
        ),
        Ok(_) => match crate::auth::pats::count_in(file) {
            Ok(count) => Check::ok(
                what,
                format!("{} ({count} tokens, owner only)", file.display()),
            ),
            Err(e) => Check::fail(
                what,
                e.to_string(),
                "restore a copy or repair it by hand; every personal access token is refused until then",
            ),
        },
    }
}

fn check_audit_writable(file: &Path) -> Check {
    let what = "audit log writable";
    if !file.exists() {
        return Check::warn(
            what,
            format!("{} does not exist yet", file.display()),
            "the server creates it (0600) at its first start",
        );
    }
    // Opening for append proves the server could write, without adding a line to the chain.
    match std::fs::OpenOptions::new().append(true).open(file) {
        Ok(handle) => match handle.metadata() {
            Ok(meta) if foreign_mode_bits(&meta) != 0 => Check::warn(
                what,
                format!(
                    "{} is writable but has mode {}",
                    file.display(),
                    mode_text(&meta)
                ),
                format!(
                    "chmod 600 {} (the server also does at its next start)",
                    file.display()
                ),
            ),
            _ => Check::ok(what, format!("{} opens for append", file.display())),
        },
        Err(e) => Check::fail(
            what,
            format!("{}: {e}", file.display()),
            "security actions fail closed without an audit log: fix its ownership or free disk space",
        ),
    }
}

fn check_audit_chain(paths: &Paths) -> Check {
    let what = "audit chain";
    let file = paths.audit_file();
    let key_file = paths.audit_key_file();
    if !file.exists() {
        return Check::ok(what, "no audit log yet: nothing to verify");
    }
    if !key_file.exists() {
        return Check::fail(
            what,
            format!(
                "{} exists but {} does not: the chain cannot be checked",
                file.display(),
                key_file.display()
            ),
            "restore audit.key from a backup; otherwise keep the log as evidence and move it aside",
        );
    }
    let key = match crate::auth::tokens::load_signing_key(None, &key_file) {
        Ok(key) => key,
        Err(e) => {
            return Check::fail(what, e.to_string(), "see the audit.key row");
        }
    };
    match crate::audit::verify(&file, &key) {
        Ok(crate::audit::Verdict::Intact { lines }) => {
            Check::ok(what, format!("{lines} lines, the chain holds"))
        }
        Ok(crate::audit::Verdict::Broken { line, reason }) => Check::fail(
            what,
            format!("{} line {line}: {reason}", file.display()),
            "keep a copy as evidence and investigate; move the file aside to start a new chain",
        ),
        Err(e) => Check::fail(what, e.to_string(), "check the file's ownership"),
    }
}

/// Whether rotation has discarded history, or is about to: each file's `log.start` line records
/// what the rotation that started it removed.
fn check_audit_history(file: &Path) -> Check {
    let what = "audit history";
    let rotated = |n: u32| std::path::PathBuf::from(format!("{}.{n}", file.display()));
    let kept: Vec<std::path::PathBuf> = (1..=5).map(rotated).filter(|p| p.exists()).collect();
    let fix = "archive the rotated files (audit.log.N) or ship the log to a collector, and raise audit_max_bytes";
    let mut discarded = Vec::new();
    for path in std::iter::once(file.to_path_buf()).chain(kept.iter().cloned()) {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for line in text.lines().filter(|l| l.contains("\"discarded\"")) {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(line) {
                let gone = &value["detail"]["discarded"];
                discarded.push(format!(
                    "seq {}–{} (at {})",
                    gone["seqFrom"],
                    gone["seqTo"],
                    value["ts"].as_str().unwrap_or("?")
                ));
            }
        }
    }
    if !discarded.is_empty() {
        return Check::warn(
            what,
            format!("rotation discarded audit history: {}", discarded.join(", ")),
            fix,
        );
    }
    if kept.len() >= 5 {
        return Check::warn(
            what,
            format!(
                "{} rotated files kept: the next rotation discards the oldest",
                kept.len()
            ),
            fix,
        );
    }
    Check::ok(
        what,
        format!("{} rotated file(s) kept, none discarded", kept.len()),
    )
}

fn check_browser(configured: Option<&Path>) -> Vec<Check> {
    let Some(executable) = crate::browser::find_executable(configured) else {
        let looked = match (
            std::env::var_os("CHROME_PATH").filter(|v| !v.is_empty()),
            configured,
        ) {
            (Some(path), _) => format!("CHROME_PATH={} is not a file", Path::new(&path).display()),
            (None, Some(path)) => format!("browser.chrome_path {} is not a file", path.display()),
            (None, None) => "none at the usual install locations".to_owned(),
        };
        return vec![Check::fail(
            "chromium",
            format!("not found: {looked}; the browser tools will answer BROWSER_UNAVAILABLE"),
            crate::browser::INSTALL_ADVICE,
        )];
    };
    let found = Check::ok("chromium", executable.display().to_string());
    let launch = match browser_version(&executable) {
        Ok(version) => Check::ok("chromium launches", version),
        Err(reason) => Check::fail(
            "chromium launches",
            format!("`{} --version` {reason}", executable.display()),
            "reinstall the browser, or point CHROME_PATH at a working one",
        ),
    };
    vec![found, launch]
}

/// Runs `<executable> --version` for at most [`BROWSER_VERSION_TIMEOUT`]; the version it printed,
/// or why it failed.
fn browser_version(executable: &Path) -> Result<String, String> {
    let mut child = Command::new(executable)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start: {e}"))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= BROWSER_VERSION_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "did not finish within {} s",
                    BROWSER_VERSION_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("cannot be waited for: {e}")),
        }
    };
    let mut output = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = stdout.read_to_string(&mut output);
    }
    let version = output.trim();
    match (status.success(), version.is_empty()) {
        (true, false) => Ok(version.to_owned()),
        // Chrome on Windows prints no version; exiting cleanly shows it starts.
        (true, true) => Ok("starts (printed no version)".to_owned()),
        (false, _) => Err(format!("exited with {status}")),
    }
}

fn check_user_count(users: &UsersFile) -> Check {
    let what = "users";
    let total = users.users.len();
    let enabled = users.users.iter().filter(|u| !u.disabled).count();
    let admins = users
        .users
        .iter()
        .filter(|u| !u.disabled && u.roles.iter().any(|r| r == "admin"))
        .count();
    let advice =
        "add one: `mcp-sessions user add NAME --role user` (or try the server with --demo)";
    if total == 0 {
        return Check::warn(what, "no users: nobody can log in", advice);
    }
    let noun = if total == 1 { "user" } else { "users" };
    let found = format!("{total} {noun} ({enabled} enabled, {admins} admin)");
    if enabled == 0 {
        return Check::warn(what, format!("{found}: nobody can log in"), advice);
    }
    Check::ok(what, found)
}

/// Runs `doctor`; `Ok(false)` when a check failed.
pub fn run_doctor_command(paths: &Paths, settings: &[String]) -> anyhow::Result<bool> {
    let report = run(paths, settings);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_fails_only_on_a_fail_row_and_shows_fixes() {
        let mut report = Report {
            checks: vec![
                Check::ok("a", "fine"),
                Check::warn("bb", "meh", "look at it"),
            ],
        };
        assert!(!report.failed());
        report
            .checks
            .push(Check::fail("chromium", "not found", "install it"));
        assert!(report.failed());
        let mut out = Vec::new();
        report.render(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("FAIL    chromium  not found"), "{text}");
        assert!(text.contains("-> install it"), "{text}");
        assert!(text.contains("1 OK, 1 WARN, 1 FAIL"), "{text}");
    }

    #[test]
    fn key_files_are_judged_by_size_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("jwt.key");
        assert_eq!(check_key_file("jwt.key", &key).status, Status::Warn);
        crate::files::write_private(&key, &[7u8; 16]).unwrap();
        assert_eq!(check_key_file("jwt.key", &key).status, Status::Fail);
        std::fs::remove_file(&key).unwrap();
        crate::files::write_private(&key, &[7u8; 32]).unwrap();
        let check = check_key_file("jwt.key", &key);
        assert_eq!(check.status, Status::Ok);
        assert!(!check.found.contains("0707"), "no key bytes in the report");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert_eq!(check_key_file("jwt.key", &key).status, Status::Fail);
        }
    }
}
