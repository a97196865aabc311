//! The HTTP mode under test: `mcp-sessions serve --http 127.0.0.1:0` as a child process, with its
//! own directories, users and personal access tokens made by the real CLI, and a small MCP client
//! over reqwest that speaks both protocol eras the way remote hosts do (headers and status codes
//! included), so that tests assert on what goes over the wire.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{BIN, ToolReply, add_user, user_command};

/// Every test user's password.
pub const PASSWORD: &str = "correct horse battery staple";

pub struct HttpServer {
    pub child: Child,
    /// The MCP endpoint, `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub data_dir: PathBuf,
    pub config_dir: PathBuf,
    pub stderr: Arc<Mutex<String>>,
    _temp: tempfile::TempDir,
}

/// Starts an HTTP server with `users` (name, role) and the `--set` overrides.
pub fn start(users: &[(&str, &str)], set: &[&str]) -> HttpServer {
    let temp = tempfile::tempdir().expect("temp dir");
    let data_dir = temp.path().join("data");
    let config_dir = temp.path().join("config");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    std::fs::create_dir_all(&config_dir).expect("config dir");
    for (name, role) in users {
        add_user(&data_dir, &config_dir, name, PASSWORD, &[role]);
    }
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", temp.path())
        .env("MCP_SESSIONS_DATA_DIR", &data_dir)
        .env("MCP_SESSIONS_CONFIG_DIR", &config_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Ok(chrome) = std::env::var("CHROME_PATH") {
        command.env("CHROME_PATH", chrome);
    }
    for kv in set {
        command.arg("--set").arg(kv);
    }
    command.args(["serve", "--http", "127.0.0.1:0"]);
    let mut child = command.spawn().expect("spawn mcp-sessions serve --http");
    let stderr = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = BufReader::new(child.stderr.take().expect("stderr"));
    let log = stderr.clone();
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            if let Some((_, url)) = line.split_once("serving MCP over HTTP at ") {
                let _ = tx.send(url.trim().to_owned());
            }
            log.lock().unwrap().push_str(&format!("{line}\n"));
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| {
            panic!(
                "the server never said where it listens:\n{}",
                stderr.lock().unwrap()
            )
        });
    let base = url.trim_end_matches("/mcp").to_owned();
    HttpServer {
        child,
        url,
        base,
        data_dir,
        config_dir,
        stderr,
        _temp: temp,
    }
}

impl HttpServer {
    /// Runs an operator command against the server's directories.
    pub fn command(&self, args: &[&str]) -> std::process::Output {
        user_command(&self.data_dir, &self.config_dir, args, "")
    }

    /// A new personal access token of `user`.
    pub fn token(&self, user: &str) -> String {
        let out = self.command(&["token", "create", user]);
        assert!(
            out.status.success(),
            "token create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// A client for `user` with a fresh token.
    pub fn client(&self, user: &str) -> Client {
        Client::new(&self.url, Some(self.token(user)))
    }

    pub fn audit(&self) -> Vec<Value> {
        super::read_audit(&self.data_dir.join("audit.log"))
    }

    /// Waits (up to 10 s) for an audit line matching `predicate`.
    pub fn wait_for_audit(&self, what: &str, predicate: impl Fn(&Value) -> bool) -> Value {
        super::wait_for_audit_line(&self.data_dir.join("audit.log"), what, predicate)
    }

    /// Sends SIGTERM and waits (up to 30 s) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill only sends a signal to our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP answer: status, headers, and the JSON-RPC messages of its body (SSE or JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub messages: Vec<Value>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// The body as JSON (error bodies of our own layers are JSON objects).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// The message answering request `id`.
    pub fn response(&self, id: i64) -> Value {
        self.messages
            .iter()
            .find(|m| m["id"] == json!(id))
            .cloned()
            .unwrap_or_else(|| panic!("no answer to request {id}: {} {}", self.status, self.text))
    }
}

fn messages_of(text: &str) -> Vec<Value> {
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        return vec![value];
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}

/// A remote MCP client: one keep-alive connection pool, one bearer token.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub url: String,
    pub token: Option<String>,
}

pub const LEGACY: &str = "2025-11-25";
pub const STATELESS: &str = "2026-07-28";

impl Client {
    pub fn new(url: &str, token: Option<String>) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            url: url.to_owned(),
            token,
        }
    }

    /// A POST of `body` to the endpoint, with `session` and `extra` headers.
    pub async fn post(
        &self,
        session: Option<&str>,
        extra: &[(&str, &str)],
        body: &Value,
    ) -> Answer {
        let mut request = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(session) = session {
            request = request
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", LEGACY);
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let response = request
            .body(body.to_string())
            .send()
            .await
            .expect("HTTP request");
        answer(response).await
    }

    /// A request of another method (GET, DELETE) with the same credentials.
    pub async fn send(&self, method: reqwest::Method, session: Option<&str>) -> Answer {
        let mut request = self
            .http
            .request(method, &self.url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", LEGACY);
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(session) = session {
            request = request.header("mcp-session-id", session);
        }
        answer(request.send().await.expect("HTTP request")).await
    }

    fn initialize_body() -> Value {
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": LEGACY, "capabilities": {},
            "clientInfo": {"name": "http-test", "version": "1"}}})
    }

    /// The initialize request, as sent (for tests that look at its answer).
    pub async fn initialize_raw(&self, extra: &[(&str, &str)]) -> Answer {
        self.post(None, extra, &Self::initialize_body()).await
    }

    /// A 2025-11-25 handshake: the transport session's id.
    pub async fn initialize(&self) -> String {
        let answer = self.initialize_raw(&[]).await;
        assert_eq!(answer.status, 200, "initialize: {}", answer.text);
        let id = answer
            .header("mcp-session-id")
            .unwrap_or_else(|| panic!("no Mcp-Session-Id: {answer:?}"));
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let done = self.post(Some(&id), &[], &initialized).await;
        assert_eq!(done.status, 202, "initialized: {}", done.text);
        id
    }

    /// A tool call: in transport session `session`, or stateless (2026-07-28) without one.
    pub async fn call_raw(&self, session: Option<&str>, tool: &str, arguments: Value) -> Answer {
        let mut params = json!({"name": tool, "arguments": arguments});
        let mut extra = Vec::new();
        if session.is_none() {
            params["_meta"] = json!({
                "io.modelcontextprotocol/protocolVersion": STATELESS,
                "io.modelcontextprotocol/clientCapabilities": {},
            });
            extra = vec![
                ("mcp-protocol-version", STATELESS),
                ("mcp-method", "tools/call"),
                ("mcp-name", tool),
            ];
        }
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params});
        self.post(session, &extra, &body).await
    }

    pub async fn call(&self, session: Option<&str>, tool: &str, arguments: Value) -> ToolReply {
        let answer = self.call_raw(session, tool, arguments).await;
        assert_eq!(answer.status, 200, "{tool}: {}", answer.text);
        let response = answer.response(7);
        ToolReply::from_result(response["result"].clone())
    }

    pub async fn call_ok(&self, session: Option<&str>, tool: &str, arguments: Value) -> Value {
        let reply = self.call(session, tool, arguments).await;
        assert!(!reply.is_error, "{tool} failed: {:?}", reply.body);
        reply.body
    }

    pub async fn call_err(
        &self,
        session: Option<&str>,
        tool: &str,
        arguments: Value,
        code: &str,
    ) -> Value {
        let reply = self.call(session, tool, arguments).await;
        assert!(
            reply.is_error,
            "{tool} should fail with {code}: {:?}",
            reply.body
        );
        assert_eq!(reply.body["code"], code, "{tool}: {:?}", reply.body);
        reply.body
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    Answer {
        status,
        headers,
        messages: messages_of(&text),
        text,
    }
}
