//! `cargo run --release --example demo`: a whole session lifecycle and a browser walk-through
//! (a page the demo serves itself, typing, clicking, a screenshot saved to a file), driven over
//! stdio by rmcp's MCP client exactly as a desktop host would drive the server, step by step.
//!
//! The server runs with the demo users (`--demo`) and throw-away data and config directories.
//! Every step checks that the server answered as DESIGN.md says; the first surprise stops the
//! demo with a non-zero exit, so it doubles as a smoke test. Secrets (session ids, tokens) are
//! only ever shown as a short prefix.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, anyhow, bail, ensure};
use rmcp::ServiceExt;
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, ProtocolVersion,
};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

use common::Scratch;

const TOOLS: [&str; 5] = [
    "create-session",
    "list-sessions",
    "get-session",
    "refresh-session",
    "delete-session",
];

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\ndemo FAILED: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let binary = common::server_binary()?;
    let scratch = Scratch::new("demo")?;
    println!("mcp-sessions demo: one session lifecycle over stdio, driven by rmcp's MCP client");
    println!("server: {} --demo", binary.display());
    println!("(data and config in a temporary directory, removed at the end)");

    let mut demo = Demo::start(&binary, &scratch).await?;
    let outcome = walk_through(&mut demo).await;
    if let Err(e) = outcome {
        let stderr = common::stderr_tail(&scratch.stderr_file());
        let _ = demo.client.close().await;
        if stderr.is_empty() {
            return Err(e);
        }
        return Err(e.context(format!("server stderr (last lines):\n{stderr}")));
    }
    shutdown_and_audit(demo, &binary, &scratch).await
}

/// The steps, in order. Each group is one function; a later group may use what an earlier one
/// returned (a live login).
async fn walk_through(demo: &mut Demo) -> anyhow::Result<()> {
    handshake(demo).await?;
    let first = first_session(demo).await?;
    refresh_and_reuse(demo, first).await?;
    let second = log_in(
        demo,
        "demo",
        "demo123!",
        "a second login (the first session is gone)",
    )
    .await?;
    permissions(demo, &second).await?;
    malformed_input(demo).await?;
    browse(demo, &second).await?;
    log_out(demo, second).await?;
    Ok(())
}

/// A login the demo holds: the secrets the server handed out.
struct Login {
    session_id: String,
    user_id: String,
    access_token: String,
    refresh_token: String,
}

/// What a tool call answered.
enum Reply {
    /// `structuredContent` of a success.
    Success(Value),
    /// An `isError` result: its `code` and sentence.
    Failure { code: String, message: String },
}

/// The client side of the conversation and the step counter.
struct Demo {
    client: RunningService<RoleClient, ClientConfig>,
    step: usize,
    /// Every secret handed out, to check at the end that none reached the audit log.
    secrets: Vec<String>,
}

impl Demo {
    /// Spawns the server and performs the MCP handshake (initialize + initialized).
    async fn start(binary: &std::path::Path, scratch: &Scratch) -> anyhow::Result<Self> {
        let command = common::server_command(binary, scratch, &["--demo"]);
        let (transport, _) = TokioChildProcess::builder(tokio::process::Command::from(command))
            .stderr(scratch.stderr_sink()?)
            .spawn()
            .context("cannot start the server")?;
        let config = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("mcp-sessions-demo", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE);
        let started = Instant::now();
        let client = config.serve(transport).await.map_err(|e| {
            anyhow!(
                "the MCP handshake failed: {e}\nserver stderr:\n{}",
                common::stderr_tail(&scratch.stderr_file())
            )
        })?;
        let mut demo = Self {
            client,
            step: 0,
            secrets: Vec::new(),
        };
        demo.step("initialize");
        println!(
            "    handshake done in {:.1} ms",
            started.elapsed().as_secs_f64() * 1000.0
        );
        Ok(demo)
    }

    fn step(&mut self, title: &str) {
        self.step += 1;
        println!("\n[{}] {title}", self.step);
    }

    /// Calls `tool`, printing the request (secrets shortened) and how long it took.
    async fn call(&mut self, tool: &'static str, arguments: Value) -> anyhow::Result<Reply> {
        let Value::Object(object) = arguments.clone() else {
            bail!("the arguments of {tool} must be an object");
        };
        println!("    → {tool} {}", describe(&arguments));
        let started = Instant::now();
        let result = self
            .client
            .call_tool(CallToolRequestParams::new(tool).with_arguments(object))
            .await
            .with_context(|| format!("{tool}: the call failed at the protocol level"))?;
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        if result.is_error == Some(true) {
            let text = result
                .content
                .first()
                .and_then(|block| block.as_text())
                .map(|text| text.text.clone())
                .unwrap_or_default();
            let body: Value = serde_json::from_str(&text)
                .with_context(|| format!("{tool}: the error body is not JSON: {text}"))?;
            let code = body["code"].as_str().unwrap_or_default().to_owned();
            let message = body["error"].as_str().unwrap_or_default().to_owned();
            println!("    ← error in {elapsed_ms:.1} ms: {code}: {message}");
            return Ok(Reply::Failure { code, message });
        }
        let structured = result
            .structured_content
            .with_context(|| format!("{tool}: the success has no structuredContent"))?;
        println!("    ← ok in {elapsed_ms:.1} ms");
        Ok(Reply::Success(structured))
    }

    /// Calls `tool` and expects a success.
    async fn expect_success(
        &mut self,
        tool: &'static str,
        arguments: Value,
    ) -> anyhow::Result<Value> {
        match self.call(tool, arguments).await? {
            Reply::Success(value) => Ok(value),
            Reply::Failure { code, message } => {
                bail!("{tool} should have succeeded but answered {code}: {message}")
            }
        }
    }

    /// Calls `tool` and expects the error `code`.
    async fn expect_failure(
        &mut self,
        tool: &'static str,
        arguments: Value,
        code: &str,
    ) -> anyhow::Result<()> {
        match self.call(tool, arguments).await? {
            Reply::Failure { code: got, .. } if got == code => {
                println!("    ✓ refused with {code}, as it should be");
                Ok(())
            }
            Reply::Failure { code: got, message } => {
                bail!("{tool} should have answered {code} but answered {got}: {message}")
            }
            Reply::Success(value) => {
                bail!("{tool} should have answered {code} but succeeded: {value}")
            }
        }
    }

    /// Remembers the secrets of a reply, for the audit check.
    fn remember(&mut self, login: &Login) {
        self.secrets.extend([
            login.session_id.clone(),
            login.access_token.clone(),
            login.refresh_token.clone(),
        ]);
    }
}

/// A secret as the demo prints it: a short prefix.
fn short(secret: &str) -> String {
    let prefix: String = secret.chars().take(8).collect();
    format!("{prefix}…")
}

/// A JWT as the demo prints it: a short prefix, plus its type and the start of its id (`jti`)
/// read from the payload, so that a rotation is visible without showing the token.
fn token(jwt: &str) -> String {
    use base64::Engine as _;
    let claims = jwt
        .split('.')
        .nth(1)
        .and_then(|payload| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .ok()
        })
        .and_then(|json| serde_json::from_slice::<Value>(&json).ok());
    match claims {
        Some(claims) => format!(
            "{} (typ {}, jti {})",
            short(jwt),
            claims["typ"].as_str().unwrap_or("?"),
            short(claims["jti"].as_str().unwrap_or("?"))
        ),
        None => short(jwt),
    }
}

/// The arguments of a call, with secrets shortened and passwords hidden.
fn describe(arguments: &Value) -> String {
    let Some(object) = arguments.as_object() else {
        return arguments.to_string();
    };
    let parts: Vec<String> = object
        .iter()
        .map(|(key, value)| {
            let text = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            let shown = match key.as_str() {
                "password" => "••••••••".to_owned(),
                "sessionId" | "accessToken" | "refreshToken" | "contextId" if text.len() > 12 => {
                    short(&text)
                }
                _ => text,
            };
            format!("{key}: {shown}")
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

fn text_of<'a>(value: &'a Value, key: &str) -> anyhow::Result<&'a str> {
    value[key]
        .as_str()
        .with_context(|| format!("the reply has no string `{key}`: {value}"))
}

fn is_session_id(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Logs `username` in with create-session and checks the reply's shape.
async fn log_in(
    demo: &mut Demo,
    username: &str,
    password: &str,
    why: &str,
) -> anyhow::Result<Login> {
    demo.step(&format!("create-session as {username}: {why}"));
    let reply = demo
        .expect_success(
            "create-session",
            json!({"username": username, "password": password}),
        )
        .await?;
    let tokens = &reply["tokens"];
    let login = Login {
        session_id: text_of(&reply, "sessionId")?.to_owned(),
        user_id: text_of(&reply, "userId")?.to_owned(),
        access_token: text_of(tokens, "accessToken")?.to_owned(),
        refresh_token: text_of(tokens, "refreshToken")?.to_owned(),
    };
    ensure!(
        is_session_id(&login.session_id),
        "the session id is not 64 lowercase hex characters"
    );
    ensure!(
        reply["username"] == username,
        "create-session answered for another user: {}",
        reply["username"]
    );
    println!(
        "    sessionId {}  user {username} ({})  roles {}",
        short(&login.session_id),
        login.user_id,
        reply["roles"]
    );
    println!(
        "    created {}  expires {}",
        text_of(&reply, "createdAt")?,
        text_of(&reply, "expiresAt")?
    );
    println!(
        "    accessToken {}, valid {} s",
        token(&login.access_token),
        tokens["expiresIn"]
    );
    println!("    refreshToken {}", token(&login.refresh_token));
    demo.remember(&login);
    Ok(login)
}

/// The handshake's result: who the server is and what it offers.
async fn handshake(demo: &mut Demo) -> anyhow::Result<()> {
    let info = demo
        .client
        .peer_info()
        .context("the server sent no initialize result")?;
    let server = info
        .server_info
        .as_ref()
        .context("the initialize result names no server")?;
    println!(
        "    server {} {} (protocol {})",
        server.name, server.version, info.protocol_version
    );
    ensure!(
        server.name == "mcp-sessions",
        "the server calls itself {}",
        server.name
    );
    if let Some(instructions) = &info.instructions {
        let first_sentence = instructions.split(". ").next().unwrap_or_default();
        println!("    instructions: {first_sentence}…");
    }

    demo.step("tools/list");
    let tools = demo.client.list_all_tools().await.context("tools/list")?;
    let names: Vec<&str> = tools.iter().map(|tool| tool.name.as_ref()).collect();
    let (browser, session): (Vec<&str>, Vec<&str>) =
        names.iter().partition(|name| name.contains("browser"));
    println!("    {} tools", names.len());
    println!("      sessions: {}", session.join(", "));
    if !browser.is_empty() {
        println!("      browser:  {}", browser.join(", "));
    }
    for expected in TOOLS {
        ensure!(
            names.contains(&expected),
            "tool {expected} is missing from tools/list"
        );
    }
    Ok(())
}

/// Log in, look at the session, list the user's sessions.
async fn first_session(demo: &mut Demo) -> anyhow::Result<Login> {
    let login = log_in(demo, "demo", "demo123!", "log in").await?;

    demo.step("get-session: the session's status (the session id is the credential)");
    let status = demo
        .expect_success("get-session", json!({"sessionId": login.session_id}))
        .await?;
    ensure!(
        status["status"] == "active",
        "the status is {}",
        status["status"]
    );
    ensure!(
        status["sessionId"] == login.session_id.as_str(),
        "get-session answered for another session"
    );
    println!(
        "    status {}  idle expiry {}  access token expiry {}  contexts {}",
        status["status"],
        text_of(&status, "idleExpiresAt")?,
        text_of(&status, "accessTokenExpiresAt")?,
        status["contexts"]
    );

    demo.step("list-sessions: the user's own sessions");
    let list = demo
        .expect_success("list-sessions", json!({"sessionId": login.session_id}))
        .await?;
    let sessions = list["sessions"]
        .as_array()
        .context("list-sessions has no sessions array")?;
    ensure!(
        sessions
            .iter()
            .any(|s| s["id"] == login.session_id.as_str()),
        "list-sessions does not show the session just created"
    );
    for session in sessions {
        println!(
            "    {}  {}  last used {}  metadata {}",
            short(session["id"].as_str().unwrap_or_default()),
            session["username"],
            session["lastAccessedAt"],
            session["metadata"]
        );
    }
    println!("    count {}", list["count"]);
    Ok(login)
}

/// Rotate the refresh token, use the new access token, then replay the old refresh token:
/// the server must refuse it and end the whole session (RFC 9700 reuse detection).
async fn refresh_and_reuse(demo: &mut Demo, login: Login) -> anyhow::Result<()> {
    demo.step("refresh-session: exchange the refresh token for new tokens");
    let reply = demo
        .expect_success(
            "refresh-session",
            json!({"refreshToken": login.refresh_token}),
        )
        .await?;
    let tokens = &reply["tokens"];
    let access = text_of(tokens, "accessToken")?.to_owned();
    let refresh = text_of(tokens, "refreshToken")?.to_owned();
    ensure!(
        reply["sessionId"] == login.session_id.as_str(),
        "refresh-session answered for another session"
    );
    ensure!(
        refresh != login.refresh_token,
        "refresh-session handed back the same refresh token"
    );
    println!("    same session {}; new tokens:", short(&login.session_id));
    println!("    accessToken  {}", token(&access));
    println!(
        "    refreshToken {}, replacing {}",
        token(&refresh),
        token(&login.refresh_token)
    );
    demo.secrets.extend([access.clone(), refresh.clone()]);

    demo.step("the new access token works as the caller's credential");
    let status = demo
        .expect_success(
            "get-session",
            json!({"sessionId": login.session_id, "accessToken": access}),
        )
        .await?;
    ensure!(
        status["status"] == "active",
        "the session is not active after a refresh"
    );
    println!("    session {} is active", short(&login.session_id));

    demo.step("replay the OLD refresh token (as a thief holding a copy would)");
    demo.expect_failure(
        "refresh-session",
        json!({"refreshToken": login.refresh_token}),
        "AUTH_FAILED",
    )
    .await?;

    demo.step("reuse detection ended the whole session");
    demo.expect_failure(
        "get-session",
        json!({"sessionId": login.session_id}),
        "SESSION_NOT_FOUND",
    )
    .await?;
    println!("    and the rotated refresh token died with it:");
    demo.expect_failure(
        "refresh-session",
        json!({"refreshToken": refresh}),
        "AUTH_FAILED",
    )
    .await?;
    Ok(())
}

/// Role checks: a viewer may not read another user's sessions, a user may not delete another
/// user's session, an admin sees everyone's.
async fn permissions(demo: &mut Demo, user: &Login) -> anyhow::Result<()> {
    let viewer = log_in(demo, "viewer", "viewer123!", "a second user, role viewer").await?;

    demo.step("viewer lists the demo user's sessions (userId of another user)");
    demo.expect_failure(
        "list-sessions",
        json!({"sessionId": viewer.session_id, "userId": user.user_id}),
        "PERMISSION_DENIED",
    )
    .await?;

    demo.step("demo user tries to delete the viewer's session with its own access token");
    demo.expect_failure(
        "delete-session",
        json!({"sessionId": viewer.session_id, "accessToken": user.access_token}),
        "PERMISSION_DENIED",
    )
    .await?;
    let status = demo
        .expect_success("get-session", json!({"sessionId": viewer.session_id}))
        .await?;
    ensure!(
        status["status"] == "active",
        "the viewer's session did not survive"
    );
    println!("    the viewer's session is still active");

    let admin = log_in(demo, "admin", "admin123!", "role admin").await?;
    demo.step("admin lists every user's sessions");
    let list = demo
        .expect_success("list-sessions", json!({"accessToken": admin.access_token}))
        .await?;
    let mut per_user: BTreeMap<String, usize> = BTreeMap::new();
    for session in list["sessions"].as_array().into_iter().flatten() {
        let name = session["username"].as_str().unwrap_or("?").to_owned();
        *per_user.entry(name).or_default() += 1;
    }
    println!("    {} live sessions: {per_user:?}", list["count"]);
    for name in ["admin", "demo", "viewer"] {
        ensure!(
            per_user.contains_key(name),
            "the admin's list misses {name}'s session"
        );
    }
    Ok(())
}

/// Bad input answers a precise code and creates nothing.
async fn malformed_input(demo: &mut Demo) -> anyhow::Result<()> {
    demo.step("a malformed session id");
    demo.expect_failure(
        "get-session",
        json!({"sessionId": "not-a-session-id"}),
        "INVALID_SESSION_ID",
    )
    .await
}

/// Log out and check that the session is gone.
async fn log_out(demo: &mut Demo, login: Login) -> anyhow::Result<()> {
    demo.step("delete-session: log out");
    let reply = demo
        .expect_success("delete-session", json!({"sessionId": login.session_id}))
        .await?;
    ensure!(
        reply["success"] == true,
        "delete-session did not report success"
    );
    println!("    {}", text_of(&reply, "message")?);

    demo.step("the deleted session is gone");
    demo.expect_failure(
        "get-session",
        json!({"sessionId": login.session_id}),
        "SESSION_NOT_FOUND",
    )
    .await?;
    println!("    and its access token no longer works either:");
    demo.expect_failure(
        "list-sessions",
        json!({"accessToken": login.access_token}),
        "AUTH_FAILED",
    )
    .await
}

/// Closes stdin as a host does when it quits, then reads the audit log the server left.
async fn shutdown_and_audit(
    mut demo: Demo,
    binary: &std::path::Path,
    scratch: &Scratch,
) -> anyhow::Result<()> {
    demo.step("close stdin (the host quits): the server ends the remaining sessions and exits");
    demo.client
        .close()
        .await
        .context("the client did not shut down cleanly")?;

    let text = std::fs::read_to_string(scratch.data_dir.join("audit.log"))
        .context("cannot read the audit log")?;
    let mut events: Vec<(String, usize)> = Vec::new();
    let mut last: Option<Value> = None;
    for line in text.lines() {
        let record: Value = serde_json::from_str(line)
            .with_context(|| format!("an audit line is not JSON: {line}"))?;
        let event = record["event"].as_str().unwrap_or("?").to_owned();
        match events.iter_mut().find(|(name, _)| *name == event) {
            Some((_, count)) => *count += 1,
            None => events.push((event, 1)),
        }
        last = Some(record);
    }
    let last = last.context("the audit log is empty")?;
    ensure!(
        last["event"] == "server.stop",
        "the server did not record its stop (last event: {})",
        last["event"]
    );
    println!(
        "    server stopped; sessions ended at shutdown: {}",
        last["detail"]["sessionsEnded"]
    );

    demo.step("the audit log");
    println!("    {} lines written:", text.lines().count());
    for (event, count) in &events {
        println!("      {event:<16} ×{count}");
    }
    for expected in [
        "server.start",
        "login.success",
        "session.create",
        "session.refresh",
        "token.reuse",
        "access.denied",
        "session.delete",
        "server.stop",
    ] {
        ensure!(
            events.iter().any(|(name, _)| name == expected),
            "the audit log has no {expected} event"
        );
    }
    let leaked = demo
        .secrets
        .iter()
        .filter(|secret| text.contains(secret.as_str()))
        .count();
    ensure!(
        leaked == 0,
        "{leaked} session ids or tokens appear in the audit log"
    );
    println!(
        "    none of the {} session ids and tokens handed out appears in it",
        demo.secrets.len()
    );

    demo.step("mcp-sessions audit verify: the log's hash chain is intact");
    let verify = common::server_command(binary, scratch, &["audit", "verify"])
        .stderr(std::process::Stdio::piped())
        .output()
        .context("cannot run `mcp-sessions audit verify`")?;
    let said = String::from_utf8_lossy(&verify.stdout);
    let said = said
        .trim()
        .replace(&*scratch.data_dir.to_string_lossy(), "<data_dir>");
    println!("    {said}");
    ensure!(
        verify.status.success(),
        "audit verify failed ({}): {}",
        verify.status,
        String::from_utf8_lossy(&verify.stderr).trim()
    );

    println!("\ndemo finished: every step behaved as designed");
    Ok(())
}

/// The page the demo serves itself on 127.0.0.1: a form whose button and Enter key change it.
const DEMO_PAGE: &str = r#"<!doctype html>
<html><head><title>mcp-sessions demo page</title>
<style>body{font-family:sans-serif;margin:40px;background:#f4f6fb}h1{color:#234}#out{font-size:24px;color:#164;margin-top:20px}</style>
</head><body>
<h1>Hello from a page the demo serves on 127.0.0.1</h1>
<form id="f" onsubmit="document.getElementById('out').textContent = 'Submitted: ' + document.getElementById('q').value; return false">
<input id="q" placeholder="type here" size="30">
<button id="go" type="button" onclick="document.getElementById('out').textContent = 'Button clicked'">Click me</button>
</form>
<p id="out">nothing yet</p>
</body></html>"#;

/// Serves `DEMO_PAGE` to every request on 127.0.0.1 from a thread; returns its URL.
fn serve_demo_page() -> anyhow::Result<String> {
    use std::io::{Read, Write};
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind the demo page")?;
    let url = format!("http://{}/", listener.local_addr()?);
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{DEMO_PAGE}",
                DEMO_PAGE.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    Ok(url)
}

/// The browser walk-through: a context of the session, a page the demo serves, typing and
/// clicking, a screenshot saved to a file, and the URL policy at work.
async fn browse(demo: &mut Demo, login: &Login) -> anyhow::Result<()> {
    let sid = login.session_id.clone();
    demo.step("create-browser-context: an isolated (incognito) Chromium context of this session");
    let context = match demo
        .call(
            "create-browser-context",
            json!({"sessionId": sid, "name": "demo"}),
        )
        .await?
    {
        Reply::Success(reply) => text_of(&reply, "contextId")?.to_owned(),
        Reply::Failure { code, message } if code == "BROWSER_UNAVAILABLE" => {
            println!("    no browser on this machine, so the browser part is skipped: {message}");
            return Ok(());
        }
        Reply::Failure { code, message } => {
            bail!("create-browser-context answered {code}: {message}")
        }
    };
    println!("    contextId {}", short(&context));

    let url = serve_demo_page()?;
    demo.step("browser-navigate: open a page the demo serves itself");
    let page = demo
        .expect_success(
            "browser-navigate",
            json!({"sessionId": sid, "contextId": context, "url": url}),
        )
        .await?;
    ensure!(
        page["status"] == 200,
        "the page answered {}",
        page["status"]
    );
    println!(
        "    {} → \"{}\" (HTTP {})",
        text_of(&page, "url")?,
        text_of(&page, "title")?,
        page["status"]
    );

    demo.step("browser-type and browser-click: fill the form, then press its button");
    demo.expect_success(
        "browser-type",
        json!({"sessionId": sid, "contextId": context, "selector": "#q", "text": "hello from an agent", "submit": true}),
    )
    .await?;
    let read = demo
        .expect_success(
            "browser-read",
            json!({"sessionId": sid, "contextId": context, "maxChars": 2000}),
        )
        .await?;
    let text = text_of(&read, "content")?;
    ensure!(
        text.contains("Submitted: hello from an agent"),
        "typing and Enter did not submit the form: {text}"
    );
    println!(
        "    the page now says: \"Submitted: hello from an agent\" (read back, marked untrusted: {})",
        read["untrusted"]
    );
    demo.expect_success(
        "browser-click",
        json!({"sessionId": sid, "contextId": context, "selector": "#go"}),
    )
    .await?;
    demo.expect_success(
        "browser-wait-for",
        json!({"sessionId": sid, "contextId": context, "selector": "#out"}),
    )
    .await?;
    let read = demo
        .expect_success(
            "browser-read",
            json!({"sessionId": sid, "contextId": context}),
        )
        .await?;
    ensure!(
        text_of(&read, "content")?.contains("Button clicked"),
        "the click did not reach the button"
    );
    println!("    after the click the page says: \"Button clicked\"");

    demo.step("browser-screenshot: a PNG of the page, saved to a file");
    let started = Instant::now();
    let shot = demo
        .client
        .call_tool(
            CallToolRequestParams::new("browser-screenshot").with_arguments(
                json!({"sessionId": sid, "contextId": context})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
        )
        .await
        .context("browser-screenshot: the call failed at the protocol level")?;
    ensure!(
        shot.is_error != Some(true),
        "browser-screenshot failed: {:?}",
        shot.content
    );
    let image = shot
        .content
        .iter()
        .find_map(|block| block.as_image())
        .context("browser-screenshot returned no image")?;
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&image.data)
        .context("the image is not base64")?;
    ensure!(bytes.starts_with(b"\x89PNG"), "the image is not a PNG");
    // Beside the build (target/ unless CARGO_TARGET_DIR moved it), which exists by now.
    let file = common::profile_dir()?
        .parent()
        .context("no target directory")?
        .join("demo-screenshot.png");
    std::fs::write(&file, &bytes).with_context(|| format!("cannot write {}", file.display()))?;
    println!(
        "    {} ({} bytes, {}) in {:.1} ms",
        image.mime_type,
        bytes.len(),
        shot.content
            .iter()
            .find_map(|block| block.as_text())
            .map(|t| t.text.clone())
            .unwrap_or_default(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    println!("    saved to {}", file.display());

    demo.step("the URL policy: local files and cloud metadata are refused");
    demo.expect_failure(
        "browser-navigate",
        json!({"sessionId": sid, "contextId": context, "url": "file:///etc/passwd"}),
        "NAVIGATION_BLOCKED",
    )
    .await?;
    demo.expect_failure(
        "browser-navigate",
        json!({"sessionId": sid, "contextId": context, "url": "http://169.254.169.254/latest/meta-data/"}),
        "NAVIGATION_BLOCKED",
    )
    .await?;

    demo.step("list-browser-contexts: the session's contexts (log-out below closes it)");
    let listed = demo
        .expect_success("list-browser-contexts", json!({"sessionId": sid}))
        .await?;
    println!(
        "    {} context(s): {}",
        listed["count"],
        listed["contexts"]
            .as_array()
            .map(|all| all
                .iter()
                .map(|c| format!("{} {} {}", c["name"], c["status"], c["url"]))
                .collect::<Vec<_>>()
                .join("; "))
            .unwrap_or_default()
    );
    Ok(())
}
