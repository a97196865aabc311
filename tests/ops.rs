//! The operator commands from outside, run as the built binary with temporary HOME, data and
//! config directories: `install <host>` (merge, idempotence, backups, dry runs, the bootstrap
//! user's password file, each host's shape and location, malformed files, the remote form of
//! `--url` and its refusals), `doctor` and `audit tail`.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{BIN, Server, Setup};
use serde_json::{Value, json};

const PASSWORD: &str = "operator passphrase 4 tests";

/// A temporary home with `data` and `config` directories (owner-only, as the server makes them).
struct Home {
    temp: tempfile::TempDir,
}

impl Home {
    fn new() -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        for dir in ["data", "config"] {
            let path = temp.path().join(dir);
            std::fs::create_dir_all(&path).expect("dir");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
                    .expect("chmod");
            }
        }
        Self { temp }
    }

    fn path(&self) -> &Path {
        self.temp.path()
    }

    fn data(&self) -> PathBuf {
        self.path().join("data")
    }

    fn config(&self) -> PathBuf {
        self.path().join("config")
    }

    /// `mcp-sessions <args>` in this home, with only the environment a test gives it.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.path())
            .env("MCP_SESSIONS_DATA_DIR", self.data())
            .env("MCP_SESSIONS_CONFIG_DIR", self.config());
        command
    }

    /// Runs `mcp-sessions <args>` with `stdin` (closed when empty).
    fn run(&self, args: &[&str], stdin: &str) -> Output {
        self.run_with(self.command(args), stdin)
    }

    fn run_with(&self, mut command: Command, stdin: &str) -> Output {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mcp-sessions");
        let mut input = child.stdin.take().expect("stdin");
        // A command that refuses early exits before reading stdin: a broken pipe is fine.
        if let Err(e) = input.write_all(stdin.as_bytes()) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
        }
        drop(input);
        child.wait_with_output().expect("wait")
    }

    /// Starts the server once and lets it exit, so that keys and the audit log exist.
    fn serve_once(&self) {
        let output = self.run(&["serve"], "");
        assert!(output.status.success(), "serve: {}", text(&output.stderr));
    }

    /// Files in `dir` whose name starts with `prefix`.
    fn backups(&self, file: &Path) -> Vec<PathBuf> {
        let name = file.file_name().and_then(|n| n.to_str()).expect("name");
        std::fs::read_dir(file.parent().expect("dir"))
            .expect("read dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{name}.bak-")))
            })
            .collect()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// A Claude Desktop file with another server and other settings.
fn existing_host_config(dir: &Path) -> PathBuf {
    let file = dir.join("claude_desktop_config.json");
    let original = json!({
        "globalShortcut": "Ctrl+Space",
        "mcpServers": {
            "filesystem": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]},
            "weather": {"command": "/opt/weather", "env": {"API_REGION": "eu"}}
        },
        "preferences": {"theme": "dark", "zoom": 1.25}
    });
    std::fs::write(
        &file,
        serde_json::to_string_pretty(&original).expect("json"),
    )
    .expect("write");
    file
}

#[test]
fn install_merges_keeps_everything_else_and_is_idempotent() {
    let home = Home::new();
    let file = existing_host_config(home.path());
    let config = file.to_str().expect("utf-8");
    let args = [
        "install",
        "claude-desktop",
        "--config",
        config,
        "--user",
        "alice",
        "--command",
        BIN,
    ];

    let first = home.run(&args, &format!("{PASSWORD}\n"));
    assert!(
        first.status.success(),
        "install failed: {}",
        text(&first.stderr)
    );
    let value = read_json(&file);
    assert_eq!(value["globalShortcut"], "Ctrl+Space");
    assert_eq!(value["preferences"], json!({"theme": "dark", "zoom": 1.25}));
    assert_eq!(
        value["mcpServers"]["filesystem"]["args"][1],
        "@modelcontextprotocol/server-filesystem"
    );
    assert_eq!(value["mcpServers"]["weather"]["env"]["API_REGION"], "eu");
    let entry = &value["mcpServers"]["mcp-sessions"];
    assert_eq!(entry["command"], BIN);
    assert_eq!(entry["args"], json!([]));
    assert_eq!(entry["env"]["MCP_SESSIONS_USER"], "alice");
    assert!(
        entry.get("type").is_none(),
        "Claude Desktop entries have no type"
    );
    let backups = home.backups(&file);
    assert_eq!(
        backups.len(),
        1,
        "one backup before the change: {backups:?}"
    );
    let backup: Value = read_json(&backups[0]);
    assert!(
        backup["mcpServers"].get("mcp-sessions").is_none(),
        "the backup is the old file"
    );

    // The password lives in a 0600 file the entry names, and nowhere else.
    let password_file = PathBuf::from(
        entry["env"]["MCP_SESSIONS_PASSWORD_FILE"]
            .as_str()
            .expect("password file in env"),
    );
    assert_eq!(password_file, home.config().join("alice.password"));
    assert_eq!(
        std::fs::read_to_string(&password_file)
            .expect("password file")
            .trim_end(),
        PASSWORD
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&password_file)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "password file mode {mode:o}");
    }
    let host_text = std::fs::read_to_string(&file).expect("read");
    assert!(!host_text.contains(PASSWORD), "password in the host config");
    assert!(!text(&first.stdout).contains(PASSWORD) && !text(&first.stderr).contains(PASSWORD));
    let users = std::fs::read_to_string(home.config().join("users.toml")).expect("users");
    assert!(users.contains("alice") && !users.contains(PASSWORD));

    // The installed entry works: the server logs alice in from the password file.
    let mut server = Server::start(
        Setup::default()
            .dirs(&home.data(), &home.config())
            .env("MCP_SESSIONS_USER", "alice")
            .env(
                "MCP_SESSIONS_PASSWORD_FILE",
                password_file.to_str().expect("utf-8"),
            ),
    );
    let sessions = server.call_ok("list-sessions", json!({}));
    assert_eq!(sessions["count"], 1, "{sessions}");
    server.close();

    // A second run changes nothing and backs nothing up.
    let before = std::fs::read(&file).expect("read");
    let second = home.run(&args, &format!("{PASSWORD}\n"));
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert!(
        text(&second.stdout).contains("unchanged"),
        "{}",
        text(&second.stdout)
    );
    assert_eq!(std::fs::read(&file).expect("read"), before);
    assert_eq!(home.backups(&file).len(), 1, "no new backup");

    // A wrong password for the existing user is refused before anything changes.
    let wrong = home.run(&args, "not alice's password at all\n");
    assert!(!wrong.status.success());
    assert!(
        text(&wrong.stderr).contains("does not match"),
        "{}",
        text(&wrong.stderr)
    );
    assert_eq!(std::fs::read(&file).expect("read"), before);
}

#[test]
fn dry_run_and_print_write_nothing() {
    let home = Home::new();
    let file = existing_host_config(home.path());
    let config = file.to_str().expect("utf-8");
    let before = std::fs::read(&file).expect("read");

    let dry = home.run(
        &[
            "install",
            "claude-desktop",
            "--config",
            config,
            "--dry-run",
            "--user",
            "bob",
        ],
        "",
    );
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let whole: Value = serde_json::from_slice(&dry.stdout).expect("dry run prints JSON");
    assert_eq!(whole["preferences"]["theme"], "dark");
    assert_eq!(whole["mcpServers"]["weather"]["command"], "/opt/weather");
    assert_eq!(
        whole["mcpServers"]["mcp-sessions"]["env"]["MCP_SESSIONS_USER"],
        "bob"
    );
    assert_eq!(
        std::fs::read(&file).expect("read"),
        before,
        "dry run wrote the file"
    );
    assert!(home.backups(&file).is_empty());
    assert!(!home.config().join("bob.password").exists());
    assert!(!home.config().join("users.toml").exists());

    let missing = home.path().join("absent.json");
    let dry = home.run(
        &[
            "install",
            "vscode",
            "--config",
            missing.to_str().expect("utf-8"),
            "--dry-run",
        ],
        "",
    );
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(!missing.exists(), "dry run created the file");

    let print = home.run(
        &[
            "install",
            "claude-desktop",
            "--config",
            config,
            "--print",
            "--demo",
        ],
        "",
    );
    assert!(print.status.success(), "{}", text(&print.stderr));
    let entry: Value = serde_json::from_slice(&print.stdout).expect("print prints JSON");
    assert!(
        entry["command"]
            .as_str()
            .is_some_and(|c| c.ends_with("mcp-sessions")),
        "{entry}"
    );
    assert_eq!(entry["args"], json!(["--demo"]));
    assert!(
        entry.get("mcpServers").is_none(),
        "--print shows the entry alone"
    );
    assert!(
        text(&print.stderr).contains("trials only"),
        "{}",
        text(&print.stderr)
    );
    assert_eq!(
        std::fs::read(&file).expect("read"),
        before,
        "--print wrote the file"
    );
}

/// The platform's per-user configuration directory under `home` (as `directories` finds it).
fn platform_config_dir(home: &Path) -> PathBuf {
    if cfg!(target_os = "macos") {
        home.join("Library").join("Application Support")
    } else {
        home.join(".config")
    }
}

#[cfg(unix)]
#[test]
fn each_host_gets_its_shape_at_its_standard_location() {
    let home = Home::new();
    let config_dir = platform_config_dir(home.path());
    let hosts = [
        (
            "claude-desktop",
            config_dir.join("Claude/claude_desktop_config.json"),
            "mcpServers",
            None,
        ),
        (
            "claude-code",
            home.path().join(".claude.json"),
            "mcpServers",
            Some("stdio"),
        ),
        (
            "cursor",
            home.path().join(".cursor/mcp.json"),
            "mcpServers",
            None,
        ),
        (
            "vscode",
            config_dir.join("Code/User/mcp.json"),
            "servers",
            Some("stdio"),
        ),
    ];
    for (host, file, key, transport) in hosts {
        let output = home.run(&["install", host, "--command", BIN], "");
        assert!(output.status.success(), "{host}: {}", text(&output.stderr));
        let value = read_json(&file);
        let entry = &value[key]["mcp-sessions"];
        assert_eq!(entry["command"], BIN, "{host}: {value}");
        assert_eq!(entry["args"], json!([]), "{host}");
        assert_eq!(
            entry.get("type").and_then(Value::as_str),
            transport,
            "{host}: {value}"
        );
        // The directories of this shell differ from the platform's: the host must be told.
        assert_eq!(
            entry["env"]["MCP_SESSIONS_DATA_DIR"],
            home.data().to_str().expect("utf-8"),
            "{host}"
        );
        let other = if key == "servers" {
            "mcpServers"
        } else {
            "servers"
        };
        assert!(value.get(other).is_none(), "{host}: {value}");
    }
}

#[test]
fn a_malformed_host_config_is_refused_and_left_untouched() {
    let home = Home::new();
    let file = home.path().join("mcp.json");
    let broken = "{\n  // VS Code allows comments, we do not\n  \"servers\": {},\n}\n";
    std::fs::write(&file, broken).expect("write");
    let output = home.run(
        &[
            "install",
            "vscode",
            "--config",
            file.to_str().expect("utf-8"),
            "--user",
            "carol",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&file.display().to_string()),
        "names the file: {stderr}"
    );
    assert!(stderr.contains("untouched"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), broken);
    assert!(home.backups(&file).is_empty());
    assert!(
        !home.config().join("carol.password").exists(),
        "nothing else was written"
    );

    std::fs::write(&file, "{\"servers\": [1, 2]}").expect("write");
    let output = home.run(
        &[
            "install",
            "vscode",
            "--config",
            file.to_str().expect("utf-8"),
        ],
        "",
    );
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("`servers` is not a JSON object"),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        "{\"servers\": [1, 2]}"
    );
}

const REMOTE_URL: &str = "https://mcp.example.com/mcp";

/// `install <host> --url`: each host's remote shape at its standard location, beside the servers
/// and settings already there, with the token only as a reference to a variable.
#[cfg(unix)]
#[test]
fn remote_entries_point_at_the_url_and_name_the_token_variable() {
    let home = Home::new();
    let config_dir = platform_config_dir(home.path());
    let other = json!({"command": "npx", "args": ["-y", "other-server"]});
    let hosts = [
        (
            "claude-code",
            home.path().join(".claude.json"),
            "mcpServers",
            json!({"type": "http", "url": REMOTE_URL,
                "headers": {"Authorization": "Bearer ${MCP_SESSIONS_TOKEN}"}}),
        ),
        (
            "vscode",
            config_dir.join("Code/User/mcp.json"),
            "servers",
            json!({"type": "http", "url": REMOTE_URL,
                "headers": {"Authorization": "Bearer ${env:MCP_SESSIONS_TOKEN}"}}),
        ),
        (
            "cursor",
            home.path().join(".cursor/mcp.json"),
            "mcpServers",
            json!({"url": REMOTE_URL,
                "headers": {"Authorization": "Bearer ${env:MCP_SESSIONS_TOKEN}"}}),
        ),
    ];
    for (host, file, key, expected) in hosts {
        std::fs::create_dir_all(file.parent().expect("dir")).expect("mkdir");
        let original = json!({"theme": "dark", key: {"other": other}});
        std::fs::write(&file, original.to_string()).expect("write");

        let output = home.run(&["install", host, "--url", REMOTE_URL], "");
        assert!(output.status.success(), "{host}: {}", text(&output.stderr));
        let value = read_json(&file);
        assert_eq!(value[key]["mcp-sessions"], expected, "{host}: {value}");
        assert_eq!(value[key]["other"], other, "{host}: {value}");
        assert_eq!(value["theme"], "dark", "{host}");
        assert_eq!(home.backups(&file).len(), 1, "{host}: one backup");
        let stdout = text(&output.stdout);
        for hint in [
            REMOTE_URL,
            "create a token with: mcp-sessions token create USER",
            "export MCP_SESSIONS_TOKEN=",
        ] {
            assert!(stdout.contains(hint), "{host}: no {hint:?} in\n{stdout}");
        }

        let again = home.run(&["install", host, "--url", REMOTE_URL], "");
        assert!(again.status.success(), "{host}: {}", text(&again.stderr));
        assert!(text(&again.stdout).contains("unchanged"), "{host}");
        assert_eq!(home.backups(&file).len(), 1, "{host}: no change, no backup");
    }

    // Another name and variable, over the stdio entry of that name.
    let file = home.path().join(".cursor/mcp.json");
    let stdio = home.run(
        &["install", "cursor", "--name", "work", "--command", BIN],
        "",
    );
    assert!(stdio.status.success(), "{}", text(&stdio.stderr));
    let output = home.run(
        &[
            "install",
            "cursor",
            "--name",
            "work",
            "--url",
            "http://127.0.0.1:8750/mcp",
            "--token-env",
            "WORK_MCP_TOKEN",
        ],
        "",
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let value = read_json(&file);
    assert_eq!(
        value["mcpServers"]["work"],
        json!({"url": "http://127.0.0.1:8750/mcp",
            "headers": {"Authorization": "Bearer ${env:WORK_MCP_TOKEN}"}}),
        "the stdio keys went: {value}"
    );
    assert!(value["mcpServers"].get("mcp-sessions").is_some(), "{value}");
    assert!(text(&output.stdout).contains("export WORK_MCP_TOKEN="));
}

#[test]
fn claude_desktop_refuses_a_remote_entry_and_leaves_its_file_alone() {
    let home = Home::new();
    let file = existing_host_config(home.path());
    let before = std::fs::read(&file).expect("read");
    for extra in [&[][..], &["--dry-run"][..], &["--print"][..]] {
        let mut args = vec![
            "install",
            "claude-desktop",
            "--config",
            file.to_str().expect("utf-8"),
            "--url",
            REMOTE_URL,
        ];
        args.extend_from_slice(extra);
        let output = home.run(&args, "");
        assert_eq!(output.status.code(), Some(1), "{extra:?}");
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("Claude Desktop") && stderr.contains("Connectors"),
            "{extra:?}: {stderr}"
        );
        assert!(
            output.stdout.is_empty(),
            "{extra:?}: {}",
            text(&output.stdout)
        );
    }
    assert_eq!(std::fs::read(&file).expect("read"), before);
    assert!(home.backups(&file).is_empty());

    let standard = platform_config_dir(home.path()).join("Claude/claude_desktop_config.json");
    let output = home.run(&["install", "claude-desktop", "--url", REMOTE_URL], "");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        !standard.exists(),
        "the refusal created {}",
        standard.display()
    );
}

#[test]
fn remote_flags_are_checked_before_anything_is_written() {
    let home = Home::new();
    let file = home.path().join("mcp.json");
    let config = file.to_str().expect("utf-8");
    let refused: &[(&[&str], &str)] = &[
        (&["--url", "http://mcp.example.com/mcp"], "loopback"),
        (&["--url", "ftp://mcp.example.com/mcp"], "https://"),
        (&["--url", "mcp.example.com/mcp"], "not a URL"),
        (
            &["--url", "https://alice:pw@mcp.example.com/mcp"],
            "password",
        ),
        (
            &["--url", REMOTE_URL, "--token-env", "my-token"],
            "[A-Z_][A-Z0-9_]*",
        ),
        (&["--token-env", "WORK_TOKEN"], "--url"),
        (
            &["--url", REMOTE_URL, "--user", "bob"],
            "cannot be used with",
        ),
        (
            &["--url", REMOTE_URL, "--command", "/usr/bin/true"],
            "cannot be used with",
        ),
        (&["--url", REMOTE_URL, "--demo"], "--demo"),
        (&["--url", REMOTE_URL, "--set", "idle_timeout=60"], "--set"),
    ];
    for (flags, reason) in refused {
        let mut args = vec!["install", "cursor", "--config", config];
        args.extend_from_slice(flags);
        let output = home.run(&args, "");
        assert!(!output.status.success(), "{flags:?} was accepted");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(reason), "{flags:?}: {stderr}");
        assert!(!file.exists(), "{flags:?} wrote the file");
    }
    let http = home.run(
        &[
            "install",
            "cursor",
            "--config",
            config,
            "--url",
            "http://mcp.example.com/mcp",
        ],
        "",
    );
    assert!(
        text(&http.stderr).contains("unencrypted"),
        "says why: {}",
        text(&http.stderr)
    );

    for loopback in [
        "http://127.0.0.1:8750/mcp",
        "http://localhost:8750/mcp",
        "http://[::1]:8750/mcp",
    ] {
        let output = home.run(
            &[
                "install",
                "cursor",
                "--config",
                config,
                "--url",
                loopback,
                "--dry-run",
            ],
            "",
        );
        assert!(
            output.status.success(),
            "{loopback}: {}",
            text(&output.stderr)
        );
        let whole: Value = serde_json::from_slice(&output.stdout).expect("JSON");
        assert_eq!(whole["mcpServers"]["mcp-sessions"]["url"], loopback);
        assert!(!file.exists(), "dry run wrote the file");
    }
}

/// The doctor row of `check`: its status and the rest of the line.
fn doctor_row<'a>(report: &'a str, check: &str) -> (&'a str, &'a str) {
    report
        .lines()
        .find_map(|line| {
            let (status, rest) = line.split_once(' ')?;
            let rest = rest.trim_start();
            rest.strip_prefix(check)
                .filter(|r| r.starts_with("  "))
                .map(|r| (status, r.trim()))
        })
        .unwrap_or_else(|| panic!("no {check} row in:\n{report}"))
}

#[test]
fn doctor_explains_a_missing_chromium_and_fails() {
    let home = Home::new();
    let mut command = home.command(&["doctor"]);
    command.env("CHROME_PATH", "/nonexistent");
    let output = home.run_with(command, "");
    assert!(!output.status.success(), "doctor passed without a browser");
    let report = text(&output.stdout);
    let (status, found) = doctor_row(&report, "chromium");
    assert_eq!(status, "FAIL", "{report}");
    assert!(found.contains("CHROME_PATH=/nonexistent"), "{report}");
    assert!(
        report.contains("apt-get install chromium"),
        "install advice: {report}"
    );
    let (status, _) = doctor_row(&report, "users");
    assert_eq!(status, "WARN", "no users is a warning: {report}");
    assert!(
        report.contains("user add") && report.contains("--demo"),
        "{report}"
    );
}

#[test]
fn doctor_passes_the_key_and_audit_checks_after_a_first_run() {
    let home = Home::new();
    home.serve_once();
    let output = home.run(&["doctor"], "");
    let report = text(&output.stdout);
    for check in [
        "config.toml",
        "users.toml",
        "config directory",
        "data directory",
        "jwt.key",
        "audit.key",
        "tokens.json",
        "audit log writable",
        "audit chain",
        "audit history",
    ] {
        assert_eq!(doctor_row(&report, check).0, "OK", "{check}:\n{report}");
    }
    assert!(
        doctor_row(&report, "audit chain")
            .1
            .contains("the chain holds")
    );
    for key in ["jwt.key", "audit.key"] {
        let bytes = std::fs::read(home.data().join(key)).expect("key");
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!report.contains(&hex[..16]), "key material in the report");
    }

    // A short signing secret in the environment is a failure.
    let mut command = home.command(&["doctor"]);
    command.env("MCP_SESSIONS_JWT_SECRET", "too short");
    let output = home.run_with(command, "");
    let report = text(&output.stdout);
    assert!(!output.status.success());
    assert_eq!(doctor_row(&report, "jwt.key").0, "FAIL", "{report}");
    assert!(!report.contains("too short"), "the secret itself is shown");

    // A tampered log fails the chain check.
    let log = home.data().join("audit.log");
    let original = std::fs::read_to_string(&log).expect("log");
    std::fs::write(&log, original.replace("server.start", "server.bogus")).expect("write");
    let output = home.run(&["doctor"], "");
    let report = text(&output.stdout);
    assert!(!output.status.success());
    assert_eq!(doctor_row(&report, "audit chain").0, "FAIL", "{report}");
}

#[test]
fn audit_tail_filters_by_user_and_event() {
    let home = Home::new();
    let mut server = Server::start(Setup::demo().dirs(&home.data(), &home.config()));
    server.login("demo", "demo123!");
    server.call_err(
        "create-session",
        json!({"username": "admin", "password": "not the admin password"}),
        "INVALID_CREDENTIALS",
    );
    server.close();

    let all = home.run(&["audit", "tail", "-n", "100"], "");
    assert!(all.status.success(), "{}", text(&all.stderr));
    let all = text(&all.stdout);
    assert!(
        all.lines()
            .any(|l| l.contains("login.success") && l.contains("demo")),
        "{all}"
    );
    assert!(
        all.lines()
            .any(|l| l.contains("login.failure") && l.contains("admin")),
        "{all}"
    );

    let admin_logins = home.run(
        &["audit", "tail", "--user", "admin", "--event", "login"],
        "",
    );
    let admin_logins = text(&admin_logins.stdout);
    let lines: Vec<&str> = admin_logins.lines().collect();
    assert!(!lines.is_empty(), "no admin login events:\n{all}");
    for line in &lines {
        assert!(line.contains(" login.") && line.contains("admin"), "{line}");
        assert!(!line.contains("demo"), "{line}");
    }

    let demo = home.run(
        &[
            "audit",
            "tail",
            "--user",
            "demo",
            "--event",
            "session.create",
        ],
        "",
    );
    let demo = text(&demo.stdout);
    assert_eq!(demo.lines().count(), 1, "{demo}");
    let row = demo.lines().next().unwrap_or_default();
    assert!(
        row.contains("session.create") && row.contains("create-session"),
        "{row}"
    );

    let last = home.run(&["audit", "tail", "-n", "1"], "");
    let last = text(&last.stdout);
    assert_eq!(last.lines().count(), 1, "{last}");
    assert!(
        all.trim_end().ends_with(last.trim_end()),
        "-n 1 is the last line"
    );
}

#[test]
fn audit_tail_follow_prints_new_events() {
    let home = Home::new();
    home.serve_once();
    let mut child = home
        .command(&[
            "audit",
            "tail",
            "--follow",
            "-n",
            "0",
            "--event",
            "server.start",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tail");
    let rx = common::lines_of(child.stdout.take().expect("stdout"));
    assert!(
        rx.recv_timeout(Duration::from_millis(700)).is_err(),
        "-n 0 printed old events"
    );
    home.serve_once();
    let line = rx.recv_timeout(Duration::from_secs(10));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("no new event followed");
    assert!(line.contains("server.start"), "{line}");
}

#[test]
fn every_command_has_help_with_examples() {
    let home = Home::new();
    for command in [
        vec![],
        vec!["serve"],
        vec!["install"],
        vec!["doctor"],
        vec!["audit"],
        vec!["audit", "tail"],
        vec!["audit", "verify"],
        vec!["user"],
        vec!["user", "add"],
        vec!["user", "list"],
        vec!["user", "passwd"],
        vec!["key", "rotate"],
        vec!["token"],
        vec!["token", "create"],
        vec!["token", "list"],
        vec!["token", "revoke"],
    ] {
        let mut args = command.clone();
        args.push("--help");
        let output = home.run(&args, "");
        let help = text(&output.stdout);
        assert!(
            output.status.success(),
            "{command:?}: {}",
            text(&output.stderr)
        );
        assert!(
            help.contains("Example"),
            "{command:?} --help has no example:\n{help}"
        );
    }
}

/// Issue 16 item 7: `user add Alice` beside `alice` is refused, by `user add` and by `install
/// --user`, with a message that names the user it would look like; nothing is written.
#[test]
fn user_add_refuses_a_name_that_differs_only_in_case() {
    let home = Home::new();
    let added = home.run(&["user", "add", "alice"], &format!("{PASSWORD}\n"));
    assert!(added.status.success(), "{}", text(&added.stderr));
    let users_file = home.config().join("users.toml");
    let before = std::fs::read_to_string(&users_file).expect("users.toml");

    for name in ["Alice", "ALICE"] {
        let refused = home.run(&["user", "add", name], &format!("{PASSWORD}\n"));
        assert!(!refused.status.success(), "{name} was added");
        let said = text(&refused.stderr);
        assert!(said.contains("alice") && said.contains("case"), "{said}");
    }
    let host_file = home.path().join("mcp.json");
    let install = home.run(
        &[
            "install",
            "cursor",
            "--config",
            host_file.to_str().expect("utf-8"),
            "--user",
            "Alice",
            "--command",
            BIN,
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(!install.status.success(), "install created Alice");
    assert!(!host_file.exists(), "the host's file was written");
    assert!(
        text(&install.stderr).contains("alice"),
        "{}",
        text(&install.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&users_file).expect("users.toml"),
        before
    );
    let again = home.run(&["user", "add", "alice"], &format!("{PASSWORD}\n"));
    assert!(text(&again.stderr).contains("already exists"));
}

/// Issue 16 item 3: rotation never discards history silently. The `log.start` line of the file a
/// rotation starts names the seq range of the file it removed, the chain still verifies, and
/// `doctor` warns in an "audit history" row.
#[test]
fn audit_rotation_records_what_it_discards_and_doctor_warns() {
    let mut server = Server::start(
        Setup::demo()
            .set("audit_max_bytes=1500")
            .set("login_rate_per_minute=100000"),
    );
    for n in 0..60 {
        server.call_err(
            "create-session",
            json!({"username": format!("nobody{n}"), "password": "wrong-password-1"}),
            "INVALID_CREDENTIALS",
        );
    }
    assert_eq!(server.close(), Some(0));
    let log = server.data_dir.join("audit.log");
    let files: Vec<PathBuf> = std::iter::once(log.clone())
        .chain((1..=5).map(|n| server.data_dir.join(format!("audit.log.{n}"))))
        .collect();
    assert!(files.iter().all(|f| f.exists()), "expected 5 rotated files");
    let discarded: Vec<Value> = files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|l| l["event"] == "log.start" && l["detail"].get("discarded").is_some())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        !discarded.is_empty(),
        "no rotation recorded what it removed"
    );
    for line in &discarded {
        let gone = &line["detail"]["discarded"];
        assert_eq!(gone["file"], "audit.log.5", "{line}");
        let (from, to) = (gone["seqFrom"].as_u64(), gone["seqTo"].as_u64());
        assert!(from.is_some() && to >= from, "{line}");
    }
    let verify = common::user_command(
        &server.data_dir,
        &server.config_dir,
        &["audit", "verify"],
        "",
    );
    assert!(verify.status.success(), "{}", text(&verify.stdout));
    let doctor = common::user_command(&server.data_dir, &server.config_dir, &["doctor"], "");
    let report = text(&doctor.stdout);
    let (status, found) = doctor_row(&report, "audit history");
    assert_eq!(status, "WARN", "{report}");
    assert!(found.contains("discarded"), "{report}");
}

/// The audit log's events of kind `event`, parsed.
fn audit_events(home: &Home, event: &str) -> Vec<Value> {
    let log = std::fs::read_to_string(home.data().join("audit.log")).unwrap_or_default();
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["event"] == event)
        .collect()
}

fn is_pat(token: &str) -> bool {
    token.strip_prefix("mcps_").is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// `token create` prints the token alone, once; nothing else ever shows it or its hash: not
/// `token list`, not tokens.json (0600), not the audit log, which records the creation and the
/// revocation. `audit verify` still holds afterwards.
#[test]
fn token_create_list_revoke_keep_the_token_secret_and_audit() {
    let home = Home::new();
    let added = home.run(&["user", "add", "alice"], &format!("{PASSWORD}\n"));
    assert!(added.status.success(), "{}", text(&added.stderr));

    let created = home.run(&["token", "create", "alice", "--name", "laptop"], "");
    assert!(created.status.success(), "{}", text(&created.stderr));
    let stdout = text(&created.stdout);
    let token = stdout.trim_end();
    assert!(is_pat(token), "{stdout:?}");
    assert_eq!(stdout, format!("{token}\n"), "the token alone on stdout");
    let said = text(&created.stderr);
    assert!(
        said.contains("Authorization: Bearer") && said.contains("once"),
        "{said}"
    );
    assert!(!said.contains(token), "the token on stderr: {said}");

    let listed = home.run(&["token", "list"], "");
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let listed = text(&listed.stdout);
    let row = listed
        .lines()
        .find(|l| l.contains("laptop"))
        .unwrap_or_else(|| panic!("no laptop row:\n{listed}"));
    assert!(row.contains("alice") && row.contains("never"), "{row}");
    let id = row.split_whitespace().next().expect("id").to_owned();
    assert_eq!(id.len(), 32, "{row}");
    assert!(!listed.contains(&token[5..]), "the token in the list");

    let tokens_file = home.data().join("tokens.json");
    let stored = std::fs::read_to_string(&tokens_file).expect("tokens.json");
    assert!(!stored.contains(&token[5..]), "the token in tokens.json");
    assert!(stored.contains(&id));
    let hash = read_json(&tokens_file)["tokens"][0]["hash"]
        .as_str()
        .expect("hash")
        .to_owned();
    assert!(!listed.contains(&hash), "the hash in the list");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&tokens_file)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let creations = audit_events(&home, "token.create");
    assert_eq!(creations.len(), 1, "{creations:?}");
    assert_eq!(creations[0]["username"], "alice");
    assert_eq!(creations[0]["detail"]["tokenId"], id.as_str());
    assert_eq!(creations[0]["detail"]["name"], "laptop");

    // A second `laptop` for alice is refused and changes nothing.
    let again = home.run(&["token", "create", "alice", "--name", "laptop"], "");
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("already has a token named `laptop`"));
    assert!(again.stdout.is_empty());

    let revoked = home.run(&["token", "revoke", "--user", "alice", "laptop"], "");
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    assert!(text(&revoked.stdout).contains(&id));
    let listed = text(&home.run(&["token", "list"], "").stdout);
    assert!(!listed.contains(&id), "{listed}");
    let revocations = audit_events(&home, "token.revoke");
    assert_eq!(revocations.len(), 1, "{revocations:?}");
    assert_eq!(revocations[0]["detail"]["tokenId"], id.as_str());

    let unknown = home.run(&["token", "revoke", &id], "");
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown.stderr).contains("no token has the id"),
        "{}",
        text(&unknown.stderr)
    );

    let log = std::fs::read_to_string(home.data().join("audit.log")).expect("audit.log");
    assert!(!log.contains(&token[5..]), "the token in the audit log");
    assert!(!log.contains(&hash), "the hash in the audit log");
    let verified = home.run(&["audit", "verify"], "");
    assert!(verified.status.success(), "{}", text(&verified.stdout));
}

/// `token create` for a user users.toml does not hold, or with a lifetime of 0 or past ten
/// years, says why, exits 1 and issues nothing.
#[test]
fn token_create_refuses_unknown_users_and_bad_lifetimes() {
    let home = Home::new();
    let refused = home.run(&["token", "create", "bob"], "");
    assert_eq!(refused.status.code(), Some(1));
    let said = text(&refused.stderr);
    assert!(
        said.contains("no user `bob`") && said.contains("user add"),
        "{said}"
    );
    assert!(refused.stdout.is_empty());

    let added = home.run(&["user", "add", "alice"], &format!("{PASSWORD}\n"));
    assert!(added.status.success(), "{}", text(&added.stderr));
    for (ttl, expected) in [("0", "at least 1 second"), ("315360001", "at most")] {
        let refused = home.run(&["token", "create", "alice", "--ttl", ttl], "");
        assert_eq!(refused.status.code(), Some(1), "--ttl {ttl}");
        let said = text(&refused.stderr);
        assert!(said.contains(expected), "--ttl {ttl}: {said}");
        assert!(refused.stdout.is_empty());
    }
    assert!(
        !home.data().join("tokens.json").exists(),
        "a file was written"
    );
    assert!(audit_events(&home, "token.create").is_empty());

    let created = home.run(&["token", "create", "alice", "--ttl", "3600"], "");
    assert!(created.status.success(), "{}", text(&created.stderr));
    let listed = text(&home.run(&["token", "list", "--user", "alice"], "").stdout);
    assert!(!listed.contains("never"), "{listed}");
    assert_eq!(listed.lines().count(), 2, "{listed}");
}

/// `user remove` revokes the user's tokens with it.
#[test]
fn user_remove_revokes_the_users_tokens() {
    let home = Home::new();
    for user in ["alice", "bob"] {
        let added = home.run(&["user", "add", user], &format!("{PASSWORD}\n"));
        assert!(added.status.success(), "{}", text(&added.stderr));
        let created = home.run(&["token", "create", user], "");
        assert!(created.status.success(), "{}", text(&created.stderr));
    }
    let removed = home.run(&["user", "remove", "alice"], "");
    assert!(removed.status.success(), "{}", text(&removed.stderr));
    assert!(
        text(&removed.stdout).contains("revoked their 1"),
        "{}",
        text(&removed.stdout)
    );
    let listed = text(&home.run(&["token", "list"], "").stdout);
    assert!(
        !listed.contains("alice") && listed.contains("bob"),
        "{listed}"
    );
}

/// An operator command audits into the file a running server appends to: both chain onto the
/// file's real last line, so `audit verify` holds whichever wrote last.
#[test]
fn token_commands_and_a_running_server_share_one_audit_chain() {
    let home = Home::new();
    let added = home.run(&["user", "add", "alice"], &format!("{PASSWORD}\n"));
    assert!(added.status.success(), "{}", text(&added.stderr));
    let mut server = Server::start(Setup::demo().dirs(&home.data(), &home.config()));
    server.login("demo", "demo123!");
    let created = home.run(&["token", "create", "alice"], "");
    assert!(created.status.success(), "{}", text(&created.stderr));
    server.login("demo", "demo123!");
    let revoked = home.run(&["token", "revoke", "--user", "alice", "--", "unknown"], "");
    assert_eq!(revoked.status.code(), Some(1));
    server.close();

    assert_eq!(audit_events(&home, "token.create").len(), 1);
    let verified = home.run(&["audit", "verify"], "");
    assert!(
        verified.status.success(),
        "{}{}",
        text(&verified.stdout),
        text(&verified.stderr)
    );
}

/// `doctor` fails a tokens.json others can read, or one that does not parse.
#[test]
fn doctor_checks_the_tokens_file() {
    let home = Home::new();
    let added = home.run(&["user", "add", "alice"], &format!("{PASSWORD}\n"));
    assert!(added.status.success(), "{}", text(&added.stderr));
    let created = home.run(&["token", "create", "alice"], "");
    assert!(created.status.success(), "{}", text(&created.stderr));
    let token = text(&created.stdout).trim_end().to_owned();
    let report = text(&home.run(&["doctor"], "").stdout);
    assert_eq!(doctor_row(&report, "tokens.json").0, "OK", "{report}");
    assert!(
        doctor_row(&report, "tokens.json").1.contains("1 tokens"),
        "{report}"
    );
    assert_eq!(doctor_row(&report, "pat.key").0, "OK", "{report}");
    assert!(!report.contains(&token[5..]), "the token in the report");

    let file = home.data().join("tokens.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let output = home.run(&["doctor"], "");
        let report = text(&output.stdout);
        assert!(!output.status.success());
        assert_eq!(doctor_row(&report, "tokens.json").0, "FAIL", "{report}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let stored = std::fs::read_to_string(&file).expect("tokens.json");
    let hash = read_json(&file)["tokens"][0]["hash"]
        .as_str()
        .expect("hash")
        .to_owned();
    std::fs::write(
        &file,
        stored.replace("\"version\": 1", "\"version\": \"1\""),
    )
    .expect("write");
    let output = home.run(&["doctor"], "");
    let report = text(&output.stdout);
    assert_eq!(doctor_row(&report, "tokens.json").0, "FAIL", "{report}");
    assert!(!report.contains(&hash), "the hash in the report");
    let listed = home.run(&["token", "list"], "");
    assert_eq!(listed.status.code(), Some(1));
    assert!(
        text(&listed.stderr).contains("tokens.json"),
        "{}",
        text(&listed.stderr)
    );
}
