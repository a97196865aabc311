//! Clients we did not write, against the built binary:
//! - the official MCP Python SDK (mcp 2.3.0) runs the demo flow: sessions, and the browser when
//!   Chromium is installed. Skipped, loudly, when python3 or its `mcp` package is missing
//!   (`.ci/run` installs it); under CI=true that fails instead.
//! - the official MCP Inspector CLI (2.x; it needs Node >= 22.19). `--strict` on `tools/list` lints
//!   every tool's inputSchema and outputSchema for portability (bare boolean schemas, `type`
//!   arrays, remote `$ref`s, schemas that constrain nothing); `tools/call` checks each
//!   `structuredContent` against the tool's outputSchema.
//!
//! `MCP_SESSIONS_NODE` names the node binary (else `node` on PATH, if new enough) and
//! `MCP_SESSIONS_INSPECTOR` the package's `clients/launcher/build/index.js` (else the one in
//! `npm root -g`); `eval "$(bash .ci/inspector-setup)"` installs both and sets them. Without them
//! the Inspector tests are skipped, loudly; with CI=true they fail instead, unless there is no
//! Node at all.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Server, Setup};
use serde_json::{Value, json};

/// The Inspector 2.x's `engines`.
const MIN_NODE: (u64, u64, u64) = (22, 19, 0);
/// `--strict` arrived with the Inspector 2.
const MIN_INSPECTOR_MAJOR: u64 = 2;
/// One Inspector run (it starts its own server) takes well under a second here.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// "v22.23.3" or "2.12.0" → (22, 23, 3).
fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let mut parts = text
        .trim()
        .trim_start_matches('v')
        .split(['.', '-', '+'])
        .map(|part| part.parse::<u64>().ok());
    Some((parts.next()??, parts.next()??, parts.next()??))
}

fn version_of(program: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

struct Inspector {
    node: PathBuf,
    /// The Inspector's launcher (`clients/launcher/build/index.js`); `--cli` selects the CLI.
    entry: PathBuf,
}

/// Node >= 22.19 and the Inspector 2.x, or why not. A variable that is set but wrong is an error,
/// not a reason to skip.
fn locate() -> Result<Inspector, String> {
    let node = match std::env::var_os("MCP_SESSIONS_NODE") {
        Some(path) => {
            let node = PathBuf::from(path);
            let version = version_of(&node, &["--version"])
                .unwrap_or_else(|| panic!("MCP_SESSIONS_NODE={} does not run", node.display()));
            assert!(
                parse_version(&version).is_some_and(|v| v >= MIN_NODE),
                "MCP_SESSIONS_NODE={} is Node {version}; the Inspector needs >= 22.19",
                node.display()
            );
            node
        }
        None => match version_of(Path::new("node"), &["--version"]) {
            Some(version) if parse_version(&version).is_some_and(|v| v >= MIN_NODE) => {
                PathBuf::from("node")
            }
            Some(version) => {
                return Err(format!(
                    "`node` on PATH is {version}, the Inspector needs >= 22.19 (set MCP_SESSIONS_NODE)"
                ));
            }
            None => return Err("no Node (set MCP_SESSIONS_NODE)".to_owned()),
        },
    };
    let entry = match std::env::var_os("MCP_SESSIONS_INSPECTOR") {
        Some(path) => {
            let entry = PathBuf::from(path);
            assert!(
                entry.is_file(),
                "MCP_SESSIONS_INSPECTOR={} is not a file",
                entry.display()
            );
            entry
        }
        None => {
            let global = Command::new("npm")
                .args(["root", "-g"])
                .output()
                .ok()
                .filter(|out| out.status.success())
                .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned());
            let entry = global.map(|root| {
                Path::new(&root)
                    .join("@modelcontextprotocol/inspector/clients/launcher/build/index.js")
            });
            match entry {
                Some(entry) if entry.is_file() => entry,
                _ => {
                    return Err(
                        "no MCP Inspector (set MCP_SESSIONS_INSPECTOR to its clients/launcher/build/index.js)"
                            .to_owned(),
                    );
                }
            }
        }
    };
    let version = version_of(
        &node,
        &[entry.to_str().expect("utf-8 path"), "--cli", "--version"],
    )
    .unwrap_or_else(|| panic!("{} --cli --version failed", entry.display()));
    match parse_version(&version) {
        Some((major, ..)) if major >= MIN_INSPECTOR_MAJOR => {}
        _ => {
            return Err(format!(
                "the MCP Inspector at {} is {version}; --strict needs 2.x",
                entry.display()
            ));
        }
    }
    eprintln!(
        "MCP Inspector {version} on Node {} ({})",
        version_of(&node, &["--version"]).unwrap_or_default(),
        entry.display()
    );
    Ok(Inspector { node, entry })
}

/// The Inspector, or `None` after a loud skip. With CI=true a missing Inspector fails the test
/// whenever Node itself is there (`.ci/inspector-setup` should have installed the rest), unless
/// `.ci/run` said why it could not (`MCP_SESSIONS_INSPECTOR_UNAVAILABLE`).
fn inspector_or_skip(test: &str) -> Option<Inspector> {
    match locate() {
        Ok(inspector) => Some(inspector),
        Err(reason) => {
            let any_node = version_of(Path::new("node"), &["--version"]).is_some();
            // .ci/run says so when it could not install them (no npm, no registry).
            let excused = std::env::var("MCP_SESSIONS_INSPECTOR_UNAVAILABLE")
                .ok()
                .filter(|why| !why.trim().is_empty());
            if common::in_ci() && any_node && excused.is_none() {
                panic!(
                    "{test}: CI=true and Node is installed, but {reason}: run `eval \"$(bash .ci/inspector-setup)\"` first"
                );
            }
            let why = match excused {
                Some(excuse) => format!("{reason}, and .ci/run says: {excuse}"),
                None => format!(
                    "{reason}; `eval \"$(bash .ci/inspector-setup)\"` installs Node 22 and the MCP Inspector {MIN_INSPECTOR_MAJOR}.x"
                ),
            };
            common::skip_loudly(test, &why);
            None
        }
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn describe(&self) -> String {
        format!(
            "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// stdout as JSON (the Inspector prints one document).
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.describe()))
    }

    /// What the Inspector says about schemas on stderr: the `--strict` report ("Warning: tool …",
    /// "Error: tool …", "N errors, N warnings across N tools."), the summary printed without
    /// `--strict`, and Ajv's "unknown format … ignored" while it validates a result.
    fn schema_complaints(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|line| {
                line.starts_with("Warning: tool ")
                    || line.starts_with("Error: tool ")
                    || line.starts_with("Schema portability:")
                    || line.contains(" warnings across ")
                    || line.contains(" warning across ")
                    || line.contains("unknown format")
                    || line.contains("schema_unportable")
            })
            .collect()
    }
}

impl Inspector {
    /// Runs the Inspector CLI with `args` against a fresh `mcp-sessions --demo`, whose data and
    /// config directories live in `temp`. The Inspector hands a stdio server only a few variables
    /// of its own environment (PATH, HOME, …), so the server's go through `-e`.
    fn run(&self, temp: &Path, server_env: &[(&str, &str)], args: &[&str]) -> Run {
        let home = temp.join("home");
        let data = temp.join("data");
        let config = temp.join("config");
        for dir in [&home, &data, &config] {
            std::fs::create_dir_all(dir).expect("temp dir");
        }
        let mut command = Command::new(&self.node);
        command
            .arg(&self.entry)
            .arg("--cli")
            .args(args)
            .arg("-e")
            .arg(format!("MCP_SESSIONS_DATA_DIR={}", data.display()))
            .arg("-e")
            .arg(format!("MCP_SESSIONS_CONFIG_DIR={}", config.display()));
        for (key, value) in server_env {
            command.arg("-e").arg(format!("{key}={value}"));
        }
        command.arg("--").arg(common::BIN).arg("--demo");
        Self::finish(command, temp, &home, args)
    }

    /// The Inspector against a remote server: `args` name the URL, transport and headers.
    fn run_remote(&self, temp: &Path, args: &[&str]) -> Run {
        let home = temp.join("home");
        std::fs::create_dir_all(&home).expect("temp dir");
        let mut command = Command::new(&self.node);
        command.arg(&self.entry).arg("--cli").args(args);
        Self::finish(command, temp, &home, args)
    }

    /// Runs the Inspector's command with a clean environment, bounded by [`RUN_TIMEOUT`].
    fn finish(mut command: Command, temp: &Path, home: &Path, args: &[&str]) -> Run {
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let n = RUNS.fetch_add(1, Ordering::Relaxed);
        let stdout_path = temp.join(format!("inspector-{n}.out"));
        let stderr_path = temp.join(format!("inspector-{n}.err"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr_path).expect("stderr file"));
        let mut child = command.spawn().expect("spawn the Inspector");
        let deadline = Instant::now() + RUN_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the Inspector") {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let run = Run {
            code: status.and_then(|s| s.code()),
            stdout: std::fs::read_to_string(&stdout_path).unwrap_or_default(),
            stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
        };
        assert!(
            status.is_some(),
            "the Inspector did not finish in {RUN_TIMEOUT:?}: {args:?}\n{}",
            run.describe()
        );
        run
    }
}

/// The tool names the server itself advertises, sorted.
fn advertised_tools() -> Vec<String> {
    let mut server = Server::start(Setup::demo());
    let listed = server.request("tools/list", json!({}));
    server.close();
    tool_names(&listed)
}

fn tool_names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools array in {list}"))
        .iter()
        .filter_map(|tool| tool["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

#[test]
fn the_inspector_in_strict_mode_finds_no_schema_problems() {
    let test = "the_inspector_in_strict_mode_finds_no_schema_problems";
    let Some(inspector) = inspector_or_skip(test) else {
        return;
    };
    let temp = tempfile::tempdir().expect("temp dir");
    let run = inspector.run(
        temp.path(),
        &[],
        &["--strict", "--format", "json", "--method", "tools/list"],
    );
    // Exit 6 is the Inspector's "schema portability error"; warnings leave it at 0, so the
    // report itself is checked too.
    assert_eq!(run.code, Some(0), "{}", run.describe());
    let complaints = run.schema_complaints();
    assert!(
        complaints.is_empty(),
        "the Inspector --strict reports schema problems:\n{}\n\n{}",
        complaints.join("\n"),
        run.stderr
    );
    let envelope = run.json();
    assert!(
        envelope.get("schemaFindings").is_none(),
        "schemaFindings: {:#}",
        envelope["schemaFindings"]
    );
    // The Inspector drops, without a word, a tool its SDK cannot parse: every tool the server
    // advertises must come through.
    assert_eq!(
        tool_names(&envelope["result"]),
        advertised_tools(),
        "{}",
        run.describe()
    );
    for tool in envelope["result"]["tools"].as_array().expect("tools") {
        assert_eq!(tool["inputSchema"]["type"], "object", "{tool:#}");
    }
}

#[test]
fn the_inspector_calls_tools_and_their_results_match_the_output_schemas() {
    let test = "the_inspector_calls_tools_and_their_results_match_the_output_schemas";
    let Some(inspector) = inspector_or_skip(test) else {
        return;
    };
    // `--strict` takes only tools/list; a tools/call is checked against the outputSchema anyway
    // (a mismatch exits non-zero with the Ajv error), and Ajv warns about unknown formats.
    let temp = tempfile::tempdir().expect("temp dir");
    let login = inspector.run(
        temp.path(),
        &[],
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "create-session",
            "--tool-args-json",
            r#"{"username": "demo", "password": "demo123!"}"#,
        ],
    );
    assert_eq!(login.code, Some(0), "{}", login.describe());
    assert!(login.schema_complaints().is_empty(), "{}", login.describe());
    let result = login.json();
    assert_ne!(result["isError"], true, "{result:#}");
    let session = &result["structuredContent"];
    assert_eq!(session["username"], "demo", "{result:#}");
    assert!(
        session["sessionId"]
            .as_str()
            .is_some_and(|id| id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())),
        "{result:#}"
    );
    assert!(session["tokens"]["accessToken"].is_string(), "{result:#}");

    // Each Inspector run starts its own server, and sessions do not outlive it: the bootstrap
    // user gives the next call its credential.
    let temp = tempfile::tempdir().expect("temp dir");
    let listed = inspector.run(
        temp.path(),
        &[
            ("MCP_SESSIONS_USER", "demo"),
            ("MCP_SESSIONS_PASSWORD", "demo123!"),
        ],
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "list-sessions",
            "--tool-args-json",
            "{}",
        ],
    );
    assert_eq!(listed.code, Some(0), "{}", listed.describe());
    assert!(
        listed.schema_complaints().is_empty(),
        "{}",
        listed.describe()
    );
    let result = listed.json();
    assert_ne!(result["isError"], true, "{result:#}");
    let sessions = &result["structuredContent"]["sessions"];
    assert!(
        sessions
            .as_array()
            .is_some_and(|all| all.iter().any(|s| s["username"] == "demo")),
        "{result:#}"
    );
}

fn python_sdk_available() -> bool {
    Command::new("python3")
        .args(["-c", "import mcp.client.stdio"])
        .output()
        .is_ok_and(|out| out.status.success())
}

#[test]
fn the_official_python_sdk_completes_the_demo_flow() {
    if !python_sdk_available() {
        let why = "no python3 with the `mcp` package (pip install mcp==2.3.0)";
        assert!(!common::in_ci(), "CI=true but {why}: .ci/run installs it");
        common::skip_loudly("the_official_python_sdk_completes_the_demo_flow", why);
        return;
    }
    let site = common::browser::TestSite::start();
    let mut command = Command::new("python3");
    command
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/python_sdk_flow.py"
        ))
        .arg(common::BIN);
    if common::browser::chromium_present(
        "the_official_python_sdk_completes_the_demo_flow (browser part)",
    ) {
        command.arg(site.url("/"));
    }
    let out = command.output().expect("run python3");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the Python SDK flow failed:\n{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("python sdk flow: ok"), "{said}");
}

/// The Python SDK's Streamable HTTP client with a bearer header, against `serve --http`.
#[test]
fn the_official_python_sdk_speaks_streamable_http_with_a_bearer_token() {
    let test = "the_official_python_sdk_speaks_streamable_http_with_a_bearer_token";
    if !python_sdk_available() {
        let why = "no python3 with the `mcp` package (pip install mcp==2.3.0)";
        assert!(!common::in_ci(), "CI=true but {why}: .ci/run installs it");
        common::skip_loudly(test, why);
        return;
    }
    let server = common::http::start(&[("alice", "user")], &[]);
    let token = server.token("alice");
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/python_sdk_http.py"
        ))
        .args([&server.url, &token, "alice"])
        .output()
        .expect("run python3");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the Python SDK over HTTP failed:\n{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("get-session: the bearer's session"), "{said}");
    assert!(said.lines().any(|l| l == "ok"), "{said}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains(&token), "the token was printed");
}

/// The Inspector CLI over Streamable HTTP with a bearer header: `--strict` tools/list, and a call
/// whose result matches its output schema.
#[test]
fn the_inspector_speaks_streamable_http_with_a_bearer_header() {
    let test = "the_inspector_speaks_streamable_http_with_a_bearer_header";
    let Some(inspector) = inspector_or_skip(test) else {
        return;
    };
    let server = common::http::start(&[("alice", "user")], &[]);
    let header = format!("Authorization: Bearer {}", server.token("alice"));
    let temp = tempfile::tempdir().expect("temp dir");
    let remote = [
        "--transport",
        "http",
        "--server-url",
        &server.url,
        "--header",
        &header,
    ];
    let listed = inspector.run_remote(
        temp.path(),
        &[&remote[..], &["--strict", "--method", "tools/list"]].concat(),
    );
    assert_eq!(listed.code, Some(0), "{}", listed.describe());
    assert!(
        listed.schema_complaints().is_empty(),
        "{}",
        listed.describe()
    );
    assert_eq!(tool_names(&listed.json()), advertised_tools());
    let called = inspector.run_remote(
        temp.path(),
        &[
            &remote[..],
            &["--method", "tools/call", "--tool-name", "get-session"],
        ]
        .concat(),
    );
    assert_eq!(called.code, Some(0), "{}", called.describe());
    assert_eq!(called.json()["structuredContent"]["username"], "alice");
    assert!(
        called.schema_complaints().is_empty(),
        "{}",
        called.describe()
    );
    // Without the header the Inspector is refused.
    let anonymous = inspector.run_remote(
        temp.path(),
        &[
            "--transport",
            "http",
            "--server-url",
            &server.url,
            "--method",
            "tools/list",
        ],
    );
    assert_ne!(anonymous.code, Some(0), "{}", anonymous.describe());
}

/// The official conformance suite (`@modelcontextprotocol/conformance` 0.1.16, installed by
/// `.ci/inspector-setup` as `MCP_SESSIONS_CONFORMANCE`) straight against `serve --http`. Its server
/// scenarios send no Authorization header, so against a server that authenticates every request
/// only the checks that come before authentication can pass: DNS-rebinding protection's refusal of
/// a foreign Host/Origin. Its "valid localhost" check gets 401 (authentication), not the 2xx it
/// expects from an open server; this test pins both answers.
#[test]
fn the_conformance_suite_finds_dns_rebinding_refused() {
    let test = "the_conformance_suite_finds_dns_rebinding_refused";
    let Some(inspector) = inspector_or_skip(test) else {
        return;
    };
    let Some(entry) = std::env::var_os("MCP_SESSIONS_CONFORMANCE").map(PathBuf::from) else {
        let why = "MCP_SESSIONS_CONFORMANCE is not set (`eval \"$(bash .ci/inspector-setup)\"` installs the suite)";
        assert!(
            !common::in_ci() || std::env::var_os("MCP_SESSIONS_INSPECTOR_UNAVAILABLE").is_some(),
            "CI=true but {why}"
        );
        common::skip_loudly(test, why);
        return;
    };
    let server = common::http::start(&[("alice", "user")], &[]);
    let out = Command::new(&inspector.node)
        .arg(&entry)
        .args([
            "server",
            "--url",
            &server.url,
            "--scenario",
            "dns-rebinding-protection",
            "--verbose",
        ])
        .output()
        .expect("run the conformance suite");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json_start = stdout
        .find('[')
        .unwrap_or_else(|| panic!("no results:\n{stdout}"));
    let checks: Value = serde_json::Deserializer::from_str(&stdout[json_start..])
        .into_iter::<Value>()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("results are not JSON:\n{stdout}"));
    let check = |id: &str| {
        checks
            .as_array()
            .and_then(|a| a.iter().find(|c| c["id"] == id))
            .cloned()
            .unwrap_or_else(|| panic!("no check {id} in:\n{stdout}"))
    };
    let rejected = check("localhost-host-rebinding-rejected");
    assert_eq!(rejected["status"], "SUCCESS", "{rejected:#}");
    assert_eq!(rejected["details"]["statusCode"], 403);
    let valid = check("localhost-host-valid-accepted");
    assert_eq!(valid["details"]["statusCode"], 401, "{valid:#}");
}
