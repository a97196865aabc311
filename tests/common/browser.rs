//! What the browser tests need besides the stdio harness: a rule for machines without Chromium, a
//! tiny HTTP server on 127.0.0.1 that serves the test pages, a look at `/proc` to find the
//! browsers a server started (and any that outlive it), and a browser-level DevTools call that
//! asks Chromium itself which BrowserContexts exist (through `observed_chromium`, the only way a
//! test's Chromium has a DevTools port).
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{self as common, Server, ToolReply};

/// Logs in; returns the session id.
pub fn login(server: &mut Server, username: &str, password: &str) -> String {
    server.login(username, password)["sessionId"]
        .as_str()
        .expect("sessionId")
        .to_owned()
}

/// Opens a context in `session`; returns its id.
pub fn create_context(server: &mut Server, session: &str) -> String {
    let created = server.call_ok("create-browser-context", json!({"sessionId": session}));
    created["contextId"].as_str().expect("contextId").to_owned()
}

/// browser-navigate, which must succeed.
pub fn navigate(server: &mut Server, session: &str, context: &str, url: &str) -> Value {
    server.call_ok(
        "browser-navigate",
        json!({"sessionId": session, "contextId": context, "url": url}),
    )
}

/// Where the server looks for a browser when `CHROME_PATH` is not set (src/browser/process.rs).
const USUAL_PATHS: &[&str] = &[
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/bin/google-chrome",
    "/usr/bin/google-chrome-stable",
    "/snap/bin/chromium",
];

/// Whether a browser is installed for the server to find. Without one the test is skipped with a
/// loud line on stderr, except under CI (`CI=true`), where a missing browser fails the test: a
/// CI run that silently skipped every browser test would prove nothing.
pub fn chromium_present(test: &str) -> bool {
    let found = match std::env::var_os("CHROME_PATH").filter(|v| !v.is_empty()) {
        Some(path) => Path::new(&path).is_file(),
        None => USUAL_PATHS.iter().any(|p| Path::new(p).is_file()),
    };
    if found {
        return true;
    }
    if common::in_ci() {
        panic!(
            "{test}: no Chromium at /usr/bin/chromium (or CHROME_PATH) and CI=true: install Chromium on the CI runner"
        );
    }
    common::skip_loudly(test, "no Chromium (/usr/bin/chromium or CHROME_PATH)");
    false
}

/// Returns from the test when no browser is installed (and fails it under CI).
#[allow(unused_macros)]
macro_rules! require_chromium {
    ($test:expr) => {
        if !$crate::common::browser::chromium_present($test) {
            return;
        }
    };
}

/// One request the test site received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub cookie: Option<String>,
}

/// A static HTTP/1.1 server on 127.0.0.1 (port chosen by the OS), one thread per connection so
/// that a deliberately slow page does not hold up the others. Stopped when dropped.
pub struct TestSite {
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
}

impl TestSite {
    pub fn start() -> TestSite {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the test site");
        let port = listener.local_addr().expect("test site address").port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, stopped) = (received.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let log = log.clone();
                std::thread::spawn(move || serve(stream, &log));
            }
        });
        TestSite {
            port,
            received,
            stop,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }

    /// Every request so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Fails the test, saying `what`, if this site saw any connection at all.
    pub fn assert_untouched(&self, what: &str) {
        let received = self.received();
        assert!(received.is_empty(), "{what}: {received:?}");
    }

    /// The most recent request for `path`.
    pub fn last_request(&self, path: &str) -> Received {
        self.received()
            .into_iter()
            .rev()
            .find(|r| r.path == path)
            .unwrap_or_else(|| panic!("the test site never received {path}"))
    }
}

impl Drop for TestSite {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// The test page: a button that changes the page, a form whose handler changes it.
pub const INDEX_TEXT: &str = "Hello from the test page";

const INDEX: &str = r#"<!doctype html><html><head><title>Test Page</title></head><body>
<h1>Hello from the test page</h1>
<p id="status">Nothing happened yet</p>
<button id="change" onclick="document.getElementById('status').textContent = 'Button was clicked';
  const done = document.createElement('div'); done.id = 'clicked'; document.body.append(done);">Change</button>
<form id="form" onsubmit="event.preventDefault();
  const out = document.createElement('p'); out.id = 'greeting';
  out.textContent = 'Hello, ' + document.getElementById('name').value + '!'; document.body.append(out);">
  <input id="name" name="name" autocomplete="off"><button type="submit">Send</button>
</form>
</body></html>"#;

/// Sets a cookie from a header and one from script, and a localStorage entry.
const SET: &str = r#"<!doctype html><html><head><title>set</title></head><body><p id="done"></p>
<script>document.cookie = 'js=from-script; path=/'; localStorage.setItem('ls', 'from-storage');
document.getElementById('done').textContent = 'stored';</script></body></html>"#;

/// Shows the cookies and the localStorage entry this context holds for the origin.
const CHECK: &str = r#"<!doctype html><html><head><title>check</title></head><body><pre id="state"></pre>
<script>document.getElementById('state').textContent =
  'cookie=[' + document.cookie + '] storage=[' + (localStorage.getItem('ls') || '') + ']';</script>
</body></html>"#;

const LATE: &str = r#"<!doctype html><html><head><title>late</title></head><body><p>waiting</p>
<script>setTimeout(() => { const el = document.createElement('div'); el.id = 'late';
  el.textContent = 'arrived late'; document.body.append(el); }, 800);</script></body></html>"#;

const TALL: &str = r#"<!doctype html><html><head><title>tall</title>
<style>body { margin: 0 } #tall { height: 20000px; background: linear-gradient(#c00, #00c) }</style>
</head><body><div id="tall">a very tall page</div></body></html>"#;

/// Opens and closes a popup on load and on every click.
const POPUP: &str = r#"<!doctype html><html><head><title>popup</title></head>
<body onload="window.open('about:blank').close()"><p id="clicks">0</p>
<button id="open" onclick="window.open('about:blank').close();
  const p = document.getElementById('clicks'); p.textContent = String(Number(p.textContent) + 1);">Open</button>
</body></html>"#;

/// A button whose handler never returns.
const SPIN: &str = r#"<!doctype html><html><head><title>spin</title></head><body>
<button id="spin" onclick="while (true) {}">Spin</button></body></html>"#;

/// Hangs its renderer by itself once loaded: a timer starts an endless loop.
const HANG: &str = r#"<!doctype html><html><head><title>hang</title></head><body><p>about to hang</p>
<script>setTimeout(() => { for (;;) {} }, 50);</script></body></html>"#;

/// Builds a text of 17 MiB in the page, past the 16 MiB a DevTools message may carry.
const HUGE: &str = r#"<!doctype html><html><head><title>huge</title></head><body><p id="t"></p>
<script>document.getElementById('t').textContent = 'huge page '.repeat(1.8 * 1024 * 1024);</script>
</body></html>"#;

/// A page of the allowed site that tries to reach `to` one way (`kind`), for the policy tests:
/// each also does something allowed, so a test can tell that allowed traffic still works.
fn attack_page(kind: &str, to: &str) -> String {
    let script = |code: &str| format!("<script>{code}</script>");
    let body = match kind {
        "link" => format!("<a id=\"go\" href=\"{to}\">go</a>"),
        "download" => format!("<a id=\"go\" href=\"{to}\" download>save</a>"),
        "script" => script(&format!(
            "setTimeout(() => {{ location.href = '{to}'; }}, 50)"
        )),
        "meta" => format!("<meta http-equiv=\"refresh\" content=\"0;url={to}\">"),
        "form" => format!(
            "<form id=\"f\" method=\"post\" action=\"{to}\"><input name=\"a\" value=\"b\"></form>{}",
            script("setTimeout(() => document.getElementById('f').submit(), 50)")
        ),
        "popup" => format!("<button id=\"go\" onclick=\"window.open('{to}')\">open</button>"),
        "iframe" => format!("<iframe src=\"{to}\"></iframe>"),
        "image" => format!("<img src=\"{to}\">"),
        "fetch" => script(&format!(
            "fetch('{to}').then(() => document.title = 'reached', () => document.title = 'refused')"
        )),
        "xhr" => script(&format!(
            "const x = new XMLHttpRequest(); x.onload = () => document.title = 'reached';
             x.onerror = () => document.title = 'refused'; x.open('GET', '{to}'); x.send();"
        )),
        "worker" => script(&format!("new Worker('/worker.js?to={to}')")),
        "websocket" => script(&format!(
            "const w = new WebSocket('{to}'); w.onopen = () => document.title = 'reached';
             w.onerror = () => document.title = 'refused';"
        )),
        _ => "unknown attack".to_owned(),
    };
    format!(
        "<!doctype html><html><head><title>attack</title></head><body><p id=\"allowed\">{INDEX_TEXT}</p>{body}</body></html>"
    )
}

/// Registers a service worker and, a moment later, shows whether one is active (`#state`).
const SW_PAGE: &str = r#"<!doctype html><html><head><title>sw</title></head><body><p>service worker</p>
<script>const show = (text) => { const p = document.createElement('p'); p.id = 'state';
  p.textContent = text; document.body.append(p); };
navigator.serviceWorker.register('/sw.js').catch(() => {});
setTimeout(() => navigator.serviceWorker.getRegistration().then(
  r => show('active=' + !!(r && r.active)), e => show('active=false (' + e + ')')), 1500);
</script></body></html>"#;

fn long_page() -> String {
    let body = "lorem ipsum dolor sit amet ".repeat(400);
    format!(
        "<!doctype html><html><head><title>long</title></head><body><p>{body}</p></body></html>"
    )
}

fn serve(mut stream: TcpStream, log: &Mutex<Vec<Received>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(clone);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() || request_line.trim().is_empty() {
        // A connection that sent no request (a browser's preconnect, or the stop signal).
        log.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Received {
                path: "(connection without a request)".into(),
                cookie: None,
            });
        return;
    }
    let mut cookie = None;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line.trim_end().is_empty() => break,
            Ok(_) => {
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("cookie")
                {
                    cookie = Some(value.trim().to_owned());
                }
            }
        }
    }
    let target = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path.to_owned(), query.to_owned()),
        None => (target.clone(), String::new()),
    };
    log.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Received {
            path: path.clone(),
            cookie,
        });
    let long = long_page();
    let attack = attack_page(
        query
            .strip_prefix("kind=")
            .and_then(|q| q.split('&').next())
            .unwrap_or_default(),
        query
            .split_once("&to=")
            .map(|(_, to)| to)
            .unwrap_or_default(),
    );
    let worker = format!("fetch('{}')", query.strip_prefix("to=").unwrap_or_default());
    let mut content_type = "text/html; charset=utf-8";
    if path.ends_with(".js") {
        content_type = "text/javascript";
    }
    let (status, headers, body): (&str, Vec<String>, &str) = match path.as_str() {
        "/attack" => ("200 OK", vec![], &attack),
        "/worker.js" => ("200 OK", vec![], &worker),
        "/sw" => ("200 OK", vec![], SW_PAGE),
        "/download.txt" => (
            "200 OK",
            vec!["Content-Disposition: attachment; filename=\"download.txt\"".into()],
            "downloaded content",
        ),
        "/sw.js" => (
            "200 OK",
            vec![],
            "self.addEventListener('fetch', () => {});",
        ),
        "/" => ("200 OK", vec![], INDEX),
        "/set" => (
            "200 OK",
            vec!["Set-Cookie: hdr=from-header; Path=/".into()],
            SET,
        ),
        "/check" => ("200 OK", vec![], CHECK),
        "/late" => ("200 OK", vec![], LATE),
        "/long" => ("200 OK", vec![], &long),
        "/tall" => ("200 OK", vec![], TALL),
        "/popup" => ("200 OK", vec![], POPUP),
        "/spin" => ("200 OK", vec![], SPIN),
        "/hang" => ("200 OK", vec![], HANG),
        "/huge" => ("200 OK", vec![], HUGE),
        "/slow" => {
            std::thread::sleep(Duration::from_secs(10));
            ("200 OK", vec![], INDEX)
        }
        "/redirect" => {
            let to = query.strip_prefix("to=").unwrap_or("/");
            ("302 Found", vec![format!("Location: {to}")], "")
        }
        _ => ("404 Not Found", vec![], "not found"),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
        body.len()
    );
    for header in headers {
        response.push_str(&header);
        response.push_str("\r\n");
    }
    response.push_str("\r\n");
    response.push_str(body);
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
}

/// A process as `/proc` shows it.
#[derive(Debug, Clone)]
pub struct Process {
    pub pid: i32,
    /// `R`, `S`, `Z`… from `/proc/<pid>/stat`.
    pub state: char,
    pub process_group: i32,
    /// Clock ticks after boot: tells a process apart from a later one with the same pid.
    pub start_time: u64,
    pub args: Vec<String>,
}

impl Process {
    pub fn alive(&self) -> bool {
        self.state != 'Z' && self.state != 'X'
    }

    pub fn mentions(&self, needle: &str) -> bool {
        self.args.iter().any(|a| a.contains(needle))
    }

    pub fn cmdline(&self) -> String {
        self.args.join(" ")
    }
}

/// One process, or None once it is gone.
pub fn process(pid: i32) -> Option<Process> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid pgrp …`: comm may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let process_group = fields.get(2)?.parse().ok()?;
    let start_time = fields.get(19)?.parse().ok()?;
    let args = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| {
            bytes
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default();
    Some(Process {
        pid,
        state,
        process_group,
        start_time,
        args,
    })
}

/// Every process on the machine.
pub fn processes() -> Vec<Process> {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
                .filter_map(process)
                .collect()
        })
        .unwrap_or_default()
}

/// Live (not zombie) processes whose command line mentions `needle`.
pub fn live_processes_mentioning(needle: &Path) -> Vec<Process> {
    let needle = needle.display().to_string();
    processes()
        .into_iter()
        .filter(|p| p.alive() && p.mentions(&needle))
        .collect()
}

/// The profile directories of a server's browsers, `<data_dir>/browser-profiles/<pid>-<n>`, in
/// launch order.
pub fn profile_dirs(data_dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<(u64, PathBuf)> = std::fs::read_dir(data_dir.join("browser-profiles"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .map(|p| {
                    let n = p
                        .file_name()
                        .and_then(|n| n.to_str())
                        .and_then(|n| n.rsplit('-').next())
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(u64::MAX);
                    (n, p)
                })
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.into_iter().map(|(_, p)| p).collect()
}

/// The main process of the browser using `profile` (its command line names the profile and has
/// no `--type=`, which only Chromium's helper processes carry).
pub fn main_browser(profile: &Path) -> Process {
    let flag = format!("--user-data-dir={}", profile.display());
    let found: Vec<Process> = processes()
        .into_iter()
        .filter(|p| p.alive() && p.args.contains(&flag))
        .filter(|p| !p.args.iter().any(|a| a.starts_with("--type=")))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one main browser process for {}: {found:#?}",
        profile.display()
    );
    found.into_iter().next().expect("one process")
}

/// Every live process that belongs to the browsers of `data_dir`: those whose command line
/// mentions it and every member of their browsers' process groups.
pub fn browser_processes(data_dir: &Path) -> Vec<Process> {
    let all = processes();
    let needle = data_dir.display().to_string();
    let groups: HashSet<i32> = all
        .iter()
        .filter(|p| p.alive() && p.mentions(&needle))
        .map(|p| p.process_group)
        .collect();
    all.into_iter()
        .filter(|p| p.alive() && (p.mentions(&needle) || groups.contains(&p.process_group)))
        .collect()
}

/// Those of `watched` that still run (same pid and start time, not a zombie), after waiting up to
/// `within` for them to go.
pub fn survivors(watched: &[Process], within: Duration) -> Vec<Process> {
    let deadline = Instant::now() + within;
    loop {
        let left: Vec<Process> = watched
            .iter()
            .filter_map(|w| process(w.pid).filter(|p| p.start_time == w.start_time && p.alive()))
            .collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends SIGKILL to `pid`.
pub fn kill(pid: i32) {
    // SAFETY: plain syscall on a pid this test found and owns through its server.
    let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(rc, 0, "kill -9 {pid} failed");
}

/// A Chromium for the tests that ask Chromium itself which BrowserContexts exist: a wrapper that
/// adds a DevTools port to what the server starts it with. The server never opens one (its
/// DevTools channel is a pipe); only browsers started through this wrapper have it. Use with
/// `Setup::env("CHROME_PATH", &observed_chromium())`.
pub fn observed_chromium() -> String {
    let real = std::env::var("CHROME_PATH")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| {
            USUAL_PATHS
                .iter()
                .find(|p| Path::new(p).is_file())
                .map(|p| (*p).to_owned())
        })
        .expect("a Chromium to wrap");
    let dir = std::env::temp_dir().join(format!("mcp-sessions-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("wrapper directory");
    let path = dir.join("observed-chromium");
    if !path.exists() {
        let script = format!("#!/bin/sh\nexec '{real}' --remote-debugging-port=0 \"$@\"\n");
        let partial = dir.join(format!(
            "observed-chromium.{:?}",
            std::thread::current().id()
        ));
        std::fs::write(&partial, script).expect("write the wrapper");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755))
            .expect("make the wrapper executable");
        std::fs::rename(&partial, &path).expect("place the wrapper");
    }
    path.display().to_string()
}

/// The CDP BrowserContexts that exist in the browser using `profile` (started through
/// `observed_chromium`), asked of Chromium itself
/// over its browser-level DevTools endpoint (`ws://127.0.0.1:<port><path>` from the two lines of
/// `<profile>/DevToolsActivePort`).
pub fn browser_contexts(profile: &Path) -> HashSet<String> {
    let port_file = profile.join("DevToolsActivePort");
    let text = std::fs::read_to_string(&port_file)
        .unwrap_or_else(|e| panic!("{}: {e}", port_file.display()));
    let mut lines = text.lines();
    let (port, path) = (
        lines.next().expect("port line"),
        lines.next().expect("path line"),
    );
    let url = format!("ws://127.0.0.1:{port}{path}");
    let (mut socket, _) =
        tungstenite::connect(&url).unwrap_or_else(|e| panic!("DevTools at {url}: {e}"));
    if let tungstenite::stream::MaybeTlsStream::Plain(stream) = socket.get_ref() {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
    }
    let request = json!({"id": 1, "method": "Target.getBrowserContexts", "params": {}});
    socket
        .send(tungstenite::Message::text(request.to_string()))
        .expect("send Target.getBrowserContexts");
    loop {
        let message = socket.read().expect("DevTools answer");
        let tungstenite::Message::Text(text) = message else {
            continue;
        };
        let reply: Value = serde_json::from_str(text.as_str()).expect("DevTools JSON");
        if reply["id"] != 1 {
            continue;
        }
        let ids = reply["result"]["browserContextIds"]
            .as_array()
            .unwrap_or_else(|| panic!("Target.getBrowserContexts: {reply}"))
            .iter()
            .map(|id| id.as_str().expect("context id").to_owned())
            .collect();
        let _ = socket.close(None);
        let _ = socket.flush();
        return ids;
    }
}

/// Polls `browser_contexts` until `done` holds (up to 10 s); returns the last answer.
pub fn wait_for_browser_contexts(
    profile: &Path,
    what: &str,
    done: impl Fn(&HashSet<String>) -> bool,
) -> HashSet<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ids = browser_contexts(profile);
        if done(&ids) {
            return ids;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: Chromium still has browser contexts {ids:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Reads stdout until every id in `ids` has answered; returns each reply with the order and time
/// (since `since`) it arrived. Nothing else may be in flight.
pub fn replies_in_arrival_order(
    server: &mut Server,
    ids: &[i64],
    since: Instant,
    within: Duration,
) -> HashMap<i64, (usize, Duration, ToolReply)> {
    let mut got = HashMap::new();
    let deadline = Instant::now() + within;
    while got.len() < ids.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(message) = server.next_line(left) else {
            panic!(
                "only {} of {} replies within {within:?}: {got:#?}",
                got.len(),
                ids.len()
            );
        };
        let Some(id) = message.get("id").and_then(Value::as_i64) else {
            continue;
        };
        let result = message
            .get("result")
            .unwrap_or_else(|| panic!("request {id} failed: {message}"))
            .clone();
        let order = got.len();
        got.insert(id, (order, since.elapsed(), ToolReply::from_result(result)));
    }
    got
}

/// The content items of a tool result.
pub fn content(reply: &ToolReply) -> Vec<Value> {
    reply.raw["content"].as_array().cloned().unwrap_or_default()
}

/// Width and height from a PNG's IHDR chunk, checking the signature.
pub fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.len() > 24, "PNG too short: {} bytes", bytes.len());
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "not a PNG: {:02x?}",
        &bytes[..8]
    );
    assert_eq!(&bytes[12..16], b"IHDR", "PNG does not start with IHDR");
    let width = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
    let height = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    (width, height)
}
