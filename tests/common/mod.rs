//! Test harness: spawns the built `mcp-sessions` binary with its own temporary data and config
//! directories and speaks newline-delimited JSON-RPC to it over stdio, as a host would. `browser`
//! adds what the browser tests need (a local test site, a look at Chromium's processes).
//!
//! The integration tests follow the source map (`src/lib.rs`), one file per area:
//! `protocol.rs` (transport and the MCP surface), `sessions.rs` (auth and sessions),
//! `browser.rs`, `audit.rs`, `ops.rs` (operator commands); and across areas: `hostile.rs`
//! (attacker input), `races.rs` (concurrency), `interop.rs` (clients we did not write: the Python
//! SDK and the MCP Inspector).
#![allow(dead_code)]

#[macro_use]
pub mod browser;
pub mod http;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_mcp-sessions");

/// How long a single response may take before a test fails (generous: CI machines are slow).
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// Options for a server under test.
#[derive(Default, Clone)]
pub struct Setup {
    pub demo: bool,
    /// `key=value` configuration overrides, passed as `--set`.
    pub set: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Reuse these directories instead of fresh ones (restarts).
    pub dirs: Option<(PathBuf, PathBuf)>,
    /// A program and its arguments that start the server (the binary and its arguments are
    /// appended), e.g. a shell that lowers a resource limit first. Empty: run the binary itself.
    pub launcher: Vec<String>,
}

impl Setup {
    pub fn demo() -> Self {
        Self {
            demo: true,
            ..Self::default()
        }
    }

    pub fn set(mut self, kv: &str) -> Self {
        self.set.push(kv.to_owned());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Uses `data` and `config` (kept by the caller) instead of fresh temporary directories.
    pub fn dirs(mut self, data: &Path, config: &Path) -> Self {
        self.dirs = Some((data.to_path_buf(), config.to_path_buf()));
        self
    }

    pub fn launcher(mut self, argv: &[&str]) -> Self {
        self.launcher = argv.iter().map(|a| (*a).to_owned()).collect();
        self
    }
}

/// A temporary directory holding `data` and `config` subdirectories, for tests that prepare files
/// before the server starts. The directory lives as long as the returned guard.
pub fn temp_dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let temp = tempfile::tempdir().expect("temp dir");
    let data = temp.path().join("data");
    let config = temp.path().join("config");
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::create_dir_all(&config).expect("config dir");
    (temp, data, config)
}

/// A running server and the client end of its stdio.
pub struct Server {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    pending: HashMap<i64, Value>,
    /// Lines that were not responses with a numeric id (errors with null id, notifications).
    pub other: Vec<Value>,
    next_id: i64,
    pub stderr_path: PathBuf,
    pub data_dir: PathBuf,
    pub config_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl Server {
    /// Spawns the server without initializing it.
    pub fn spawn(setup: Setup) -> Server {
        let (temp, data_dir, config_dir) = match setup.dirs.clone() {
            Some((data, config)) => (None, data, config),
            None => {
                let temp = tempfile::tempdir().expect("temp dir");
                let data = temp.path().join("data");
                let config = temp.path().join("config");
                (Some(temp), data, config)
            }
        };
        std::fs::create_dir_all(&data_dir).expect("data dir");
        std::fs::create_dir_all(&config_dir).expect("config dir");
        let stderr_path = data_dir
            .parent()
            .unwrap_or(&data_dir)
            .join(format!("stderr-{}.log", unique()));
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut command = match setup.launcher.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(BIN);
                command
            }
            None => Command::new(BIN),
        };
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", data_dir.parent().unwrap_or(&data_dir))
            .env("MCP_SESSIONS_DATA_DIR", &data_dir)
            .env("MCP_SESSIONS_CONFIG_DIR", &config_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        if let Ok(chrome) = std::env::var("CHROME_PATH") {
            command.env("CHROME_PATH", chrome);
        }
        if setup.demo {
            command.arg("--demo");
        }
        for kv in &setup.set {
            command.arg("--set").arg(kv);
        }
        for (k, v) in &setup.env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn mcp-sessions");
        let rx = lines_of(child.stdout.take().expect("stdout"));
        Server {
            stdin: child.stdin.take(),
            child,
            lines: rx,
            pending: HashMap::new(),
            other: Vec::new(),
            next_id: 1,
            stderr_path,
            data_dir,
            config_dir,
            _temp: temp,
        }
    }

    /// Spawns and completes the initialize handshake.
    pub fn start(setup: Setup) -> Server {
        let mut server = Server::spawn(setup);
        server.initialize();
        server
    }

    pub fn initialize(&mut self) -> Value {
        let result = self.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "mcp-sessions-tests", "version": "1"}}),
        );
        self.notify("notifications/initialized", None);
        result
    }

    /// Writes one raw line (a newline is added).
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(line.as_bytes()).expect("write");
        stdin.write_all(b"\n").expect("write");
        stdin.flush().expect("flush");
    }

    /// Writes raw bytes as they are.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(bytes).expect("write");
        stdin.flush().expect("flush");
    }

    /// Hands stdin to `write`, run on another thread, so that the test can read responses while a
    /// large volume is still being written; [`join_writer`](Self::join_writer) gives stdin back.
    pub fn write_in_background(
        &mut self,
        write: impl FnOnce(&mut ChildStdin) + Send + 'static,
    ) -> std::thread::JoinHandle<ChildStdin> {
        let mut stdin = self.stdin.take().expect("stdin open");
        std::thread::spawn(move || {
            write(&mut stdin);
            stdin.flush().expect("flush");
            stdin
        })
    }

    /// Waits for a [`write_in_background`](Self::write_in_background) writer and takes stdin back.
    pub fn join_writer(&mut self, writer: std::thread::JoinHandle<ChildStdin>) {
        self.stdin = Some(writer.join().expect("the background writer panicked"));
    }

    pub fn notify(&mut self, method: &str, params: Option<Value>) {
        let mut message = json!({"jsonrpc": "2.0", "method": method});
        if let Some(params) = params {
            message["params"] = params;
        }
        self.send_line(&message.to_string());
    }

    /// Sends a request and returns its id without waiting.
    pub fn send_request(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        let message = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_line(&message.to_string());
        id
    }

    /// The next line from stdout that is not the response to a known id, parsed.
    pub fn next_line(&mut self, timeout: Duration) -> Option<Value> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Some(
                serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}")),
            ),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// The next message that is not a response to a numeric id (an error with a null id, a
    /// notification); responses read on the way are kept for [`response`](Self::response).
    pub fn next_unkeyed(&mut self) -> Value {
        let deadline = Instant::now() + RESPONSE_TIMEOUT;
        loop {
            if !self.other.is_empty() {
                return self.other.remove(0);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(value) = self.next_line(left) else {
                panic!(
                    "no unkeyed message within {RESPONSE_TIMEOUT:?}; stderr:\n{}",
                    self.stderr()
                );
            };
            match value.get("id").and_then(Value::as_i64) {
                Some(got) => {
                    self.pending.insert(got, value);
                }
                None => self.other.push(value),
            }
        }
    }

    /// Waits for the whole JSON-RPC response with `id`.
    pub fn response(&mut self, id: i64) -> Value {
        let deadline = Instant::now() + RESPONSE_TIMEOUT;
        loop {
            if let Some(found) = self.pending.remove(&id) {
                return found;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(value) = self.next_line(left) else {
                panic!(
                    "no response to request {id} within {RESPONSE_TIMEOUT:?}; stderr:\n{}",
                    self.stderr()
                );
            };
            match value.get("id").and_then(Value::as_i64) {
                Some(got) => {
                    self.pending.insert(got, value);
                }
                None => self.other.push(value),
            }
        }
    }

    /// Sends a request and returns its `result`, panicking on a JSON-RPC error.
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params);
        let response = self.response(id);
        match response.get("result") {
            Some(result) => result.clone(),
            None => panic!("{method} failed: {response}"),
        }
    }

    /// Sends a tools/call without waiting for it; [`Server::reply`] reads its answer.
    pub fn send_call(&mut self, tool: &str, arguments: Value) -> i64 {
        self.send_request("tools/call", json!({"name": tool, "arguments": arguments}))
    }

    /// The tool result answering `id` (`isError` may be true); a JSON-RPC error fails the test.
    pub fn reply(&mut self, id: i64) -> ToolReply {
        let response = self.response(id);
        let result = response
            .get("result")
            .unwrap_or_else(|| panic!("request {id} got a protocol error: {response}"));
        ToolReply::from_result(result.clone())
    }

    /// Calls a tool and returns its result (`isError` may be true).
    pub fn call(&mut self, tool: &str, arguments: Value) -> ToolReply {
        let id = self.send_call(tool, arguments);
        self.reply(id)
    }

    /// Calls a tool that must succeed; returns its structured content.
    pub fn call_ok(&mut self, tool: &str, arguments: Value) -> Value {
        let reply = self.call(tool, arguments.clone());
        assert!(!reply.is_error, "{tool} failed: {}", reply.body);
        reply.body
    }

    /// Calls a tool that must fail with `code`; returns the error body.
    pub fn call_err(&mut self, tool: &str, arguments: Value, code: &str) -> Value {
        let reply = self.call(tool, arguments);
        assert!(
            reply.is_error,
            "{tool} succeeded but {code} was expected: {}",
            reply.body
        );
        assert_eq!(reply.body["code"], code, "{tool}: {}", reply.body);
        reply.body
    }

    /// Logs in and returns the create-session result.
    pub fn login(&mut self, username: &str, password: &str) -> Value {
        self.call_ok(
            "create-session",
            json!({"username": username, "password": password}),
        )
    }

    /// Closes stdin and waits for the process to exit; returns its exit code.
    pub fn close(&mut self) -> Option<i32> {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("server did not exit within 30 s of stdin closing");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn audit_path(&self) -> PathBuf {
        self.data_dir.join("audit.log")
    }

    /// The audit log, parsed line by line (a last line still being written is left out).
    pub fn audit(&self) -> Vec<Value> {
        read_audit(&self.audit_path())
    }

    /// Waits (up to 10 s) for an audit line matching `predicate`: some events are written by a
    /// background task just after the call that caused them has answered.
    pub fn wait_for_audit(&self, what: &str, predicate: impl Fn(&Value) -> bool) -> Value {
        wait_for_audit_line(&self.audit_path(), what, predicate)
    }

    pub fn users_path(&self) -> PathBuf {
        self.config_dir.join("users.toml")
    }

    /// Adds a user through the real CLI, against this server's directories.
    pub fn add_user(&self, username: &str, password: &str, roles: &[&str]) {
        add_user(&self.data_dir, &self.config_dir, username, password, roles);
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Runs `mcp-sessions user …` against this server's directories, with `stdin` as input.
    /// Runs `mcp-sessions <args>` on this server's directories (as an operator would beside it)
    /// and fails the test unless it succeeds.
    pub fn command_ok(&self, args: &[&str], stdin: &str) -> std::process::Output {
        let out = user_command(&self.data_dir, &self.config_dir, args, stdin);
        assert!(
            out.status.success(),
            "mcp-sessions {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The audit log at `path`, parsed line by line (a last line still being written is left out).
pub fn read_audit(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line is not JSON ({e}): {l}"))
        })
        .collect()
}

/// Waits (up to 10 s) for a line of the audit log at `path` matching `predicate`.
pub fn wait_for_audit_line(path: &Path, what: &str, predicate: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(line) = read_audit(path).into_iter().find(|l| predicate(l)) {
            return line;
        }
        if Instant::now() > deadline {
            panic!(
                "no audit line for {what}; audit log:\n{:#?}",
                read_audit(path)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `mcp-sessions <args>` with the given directories and stdin.
pub fn user_command(
    data_dir: &Path,
    config_dir: &Path,
    args: &[&str],
    stdin: &str,
) -> std::process::Output {
    let mut child = Command::new(BIN)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MCP_SESSIONS_DATA_DIR", data_dir)
        .env("MCP_SESSIONS_CONFIG_DIR", config_dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn user command");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        // A command that refuses early exits before reading stdin: a broken pipe is fine.
        .or_else(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => Ok(()),
            _ => Err(e),
        })
        .expect("write stdin");
    child.wait_with_output().expect("user command output")
}

/// A tool result: its JSON body (structured content, or the error body) and whether it failed.
#[derive(Debug, Clone)]
pub struct ToolReply {
    pub is_error: bool,
    pub body: Value,
    pub raw: Value,
}

impl ToolReply {
    pub fn from_result(result: Value) -> Self {
        let is_error = result
            .get("isError")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let body = match result.get("structuredContent") {
            Some(structured) if !is_error => structured.clone(),
            _ => result["content"]
                .as_array()
                .and_then(|items| items.iter().find(|c| c["type"] == "text"))
                .and_then(|c| c["text"].as_str())
                .and_then(|text| serde_json::from_str(text).ok())
                .unwrap_or(Value::Null),
        };
        ToolReply {
            is_error,
            body,
            raw: result,
        }
    }
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A users.toml line set for tests: creates `username` with `roles` through the real CLI.
pub fn add_user(
    data_dir: &Path,
    config_dir: &Path,
    username: &str,
    password: &str,
    roles: &[&str],
) {
    let mut args = vec!["user", "add", username];
    for role in roles {
        args.push("--role");
        args.push(role);
    }
    let out = user_command(data_dir, config_dir, &args, &format!("{password}\n"));
    assert!(
        out.status.success(),
        "user add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The claims of a JWT, decoded without verification.
pub fn jwt_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("JWT payload is base64url");
    serde_json::from_slice(&bytes).expect("JWT payload is JSON")
}

/// Whether `text` is a session id as DESIGN.md defines it: 64 lowercase hex characters.
pub fn is_session_id(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Milliseconds since the Unix epoch of an RFC 3339 timestamp in a result.
pub fn timestamp_ms(value: &Value) -> i128 {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a timestamp: {value}"));
    let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{text} is not RFC 3339: {e}"));
    assert_eq!(parsed.offset(), time::UtcOffset::UTC, "{text} is not UTC");
    assert!(text.ends_with('Z'), "{text} is not in Z form");
    parsed.unix_timestamp_nanos() / 1_000_000
}

/// The lines `output` gives, read on a thread of their own so a test can wait with a timeout.
pub fn lines_of(output: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Whether the tests run under CI (`CI=true`), where a missing tool fails a test instead of
/// skipping it: a CI run that silently skipped would prove nothing.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Says loudly that `test` did not run and why. The line goes straight to the process's stderr:
/// the test harness captures `eprintln!` of passing tests, which would hide it.
pub fn skip_loudly(test: &str, why: &str) {
    let line = format!("\n!!!!! SKIPPED {test}: {why} !!!!!\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}
