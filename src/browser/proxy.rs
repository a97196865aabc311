//! The network policy of one browser context, enforced where connections are made. Checking the
//! URL of a navigation is not enough: a page can fetch, embed, redirect, open a WebSocket or run a
//! worker, and a host name can resolve to a private address after the URL passed. So every
//! context is created with this proxy as its `proxyServer` (and `<-loopback>` as its bypass list,
//! so not even loopback is reached directly), and every connection it makes comes here: plain
//! http as absolute-form requests, https, wss and ws as `CONNECT` tunnels.
//!
//! For each connection the proxy asks the [`Gate`] whether the host and port may be reached,
//! resolves the name itself, asks again for every address it resolved to (one forbidden address
//! refuses the name), and connects to exactly those addresses: no second lookup, no DNS-rebinding
//! gap. A refusal is a 403 whose body names the rule. One client connection carries one request.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::AbortHandle;
use tokio::time::timeout;

use crate::browser::policy::Refusal;

/// The longest request head read (request line and headers).
const MAX_HEAD: usize = 16 * 1024;
/// How long a client has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long resolving a host name may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting to the resolved addresses may take, all attempts together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once by one proxy; more are accepted and closed.
const MAX_CONNECTIONS: usize = 256;
/// After an error answer, how long and how much of the client's unread request is discarded so
/// that closing does not reset the connection before the client reads the answer.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
const DRAIN_LIMIT: usize = 256 * 1024;
/// How long a server that keeps its side of a forwarded request open is waited for once the
/// browser closed its side.
const HALF_CLOSED_GRACE: Duration = Duration::from_secs(5);
/// Request headers the proxy rewrites or that concern only the hop to it.
const DROPPED_HEADERS: &[&str] = &["host", "proxy-authorization"];
/// Headers about the connection itself, replaced by `Connection: close` both ways.
const HOP_HEADERS: &[&str] = &["connection", "keep-alive", "proxy-connection"];

/// What the proxy asks before it connects anywhere; implemented by the browser manager.
pub trait Gate: Send + Sync + 'static {
    /// Whether `host:port` may be reached at all, before any resolution (origin allow/deny lists,
    /// forbidden names, IP literals). `host` is lowercase, an IPv6 literal without its brackets.
    /// `scheme` is "http" for absolute-form requests and None for CONNECT.
    fn check_target(&self, scheme: Option<&str>, host: &str, port: u16) -> Result<(), Refusal>;
    /// Whether one resolved address may be connected to.
    fn check_address(&self, ip: IpAddr) -> Result<(), Refusal>;
    /// Told of every refusal (to count it and audit it). `host` is the name or literal asked for.
    fn refused(&self, host: &str, port: u16, refusal: &Refusal);
}

/// A running proxy for one browser context. Dropping it stops accepting and ends the connections
/// it is serving.
pub struct ContextProxy {
    addr: SocketAddr,
    accept: AbortHandle,
    /// Never sent on; dropping it tells every connection task to stop.
    _stop: watch::Sender<()>,
}

impl ContextProxy {
    /// Binds 127.0.0.1:0 and serves until dropped.
    pub async fn start(gate: Arc<dyn Gate>) -> std::io::Result<Self> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(());
        let accept = tokio::spawn(accept_loop(listener, gate, stopped)).abort_handle();
        Ok(Self {
            addr,
            accept,
            _stop: stop,
        })
    }

    /// "http://127.0.0.1:PORT", for proxyServer.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for ContextProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, gate: Arc<dyn Gate>, stopped: watch::Receiver<()>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(e) => {
                // Out of descriptors, most likely: wait rather than spin.
                tracing::debug!("browser proxy: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!("browser proxy: {MAX_CONNECTIONS} connections open; one more closed");
            continue;
        };
        tokio::spawn(serve(client, gate.clone(), stopped.clone(), permit));
    }
}

/// One client connection, until it ends or the proxy is dropped.
async fn serve(
    client: TcpStream,
    gate: Arc<dyn Gate>,
    mut stopped: watch::Receiver<()>,
    _permit: OwnedSemaphorePermit,
) {
    tokio::select! {
        _ = stopped.changed() => {}
        () = handle(client, gate.as_ref()) => {}
    }
}

async fn handle(mut client: TcpStream, gate: &dyn Gate) {
    let (head, early) = match timeout(HEAD_TIMEOUT, read_head(&mut client)).await {
        Ok(Ok(read)) => read,
        Ok(Err(HeadError::Closed)) => return,
        Ok(Err(HeadError::Truncated)) => {
            return answer(client, Status::BadRequest, "incomplete request head").await;
        }
        Ok(Err(HeadError::TooLarge)) => {
            return answer(client, Status::HeadTooLarge, "request head too large").await;
        }
        Err(_) => return answer(client, Status::Timeout, "request head not sent in time").await,
    };
    let parsed = parse_head(&head).and_then(|parsed| {
        let route = route(&parsed)?;
        Ok((parsed, route))
    });
    match parsed {
        Err(BadRequest(why)) => answer(client, Status::BadRequest, why).await,
        Ok((_, Route::Tunnel(target))) => tunnel(client, gate, &target, &early).await,
        Ok((parsed, Route::Forward { target, path })) => {
            let upstream_head = origin_form(&parsed, &target, path);
            forward(client, gate, &target, &upstream_head, &early).await;
        }
    }
}

/// CONNECT: a byte tunnel to the checked address.
async fn tunnel(mut client: TcpStream, gate: &dyn Gate, target: &Target, early: &[u8]) {
    let mut upstream = match open(gate, None, target).await {
        Ok(upstream) => upstream,
        Err(failure) => return fail(client, gate, target, failure).await,
    };
    tracing::debug!("browser proxy: tunnel to {}", target.authority());
    let established = b"HTTP/1.1 200 Connection established\r\n\r\n";
    if client.write_all(established).await.is_err() || upstream.write_all(early).await.is_err() {
        return;
    }
    relay(client, upstream).await;
}

/// Absolute-form http: the request, in origin form, to the checked address.
async fn forward(client: TcpStream, gate: &dyn Gate, target: &Target, head: &[u8], early: &[u8]) {
    let mut upstream = match open(gate, Some("http"), target).await {
        Ok(upstream) => upstream,
        Err(failure) => return fail(client, gate, target, failure).await,
    };
    tracing::debug!("browser proxy: request to http://{}", target.authority());
    if upstream.write_all(head).await.is_err() || upstream.write_all(early).await.is_err() {
        let why = "the upstream server closed the connection";
        return answer(client, Status::BadGateway, why).await;
    }
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_upstream, mut to_upstream) = upstream.into_split();
    // The rest of the request (a body) goes up until the browser closes its side.
    let request = async {
        let _ = tokio::io::copy(&mut from_client, &mut to_upstream).await;
        let _ = to_upstream.shutdown().await;
    };
    // The answer comes back marked `Connection: close`, also when the server would keep the
    // connection: the browser must not send its next request (perhaps for another host) on it.
    let response = async {
        if let Ok((head, early)) = read_head(&mut from_upstream).await {
            let head = closing_response_head(&head);
            if to_client.write_all(&head).await.is_ok() && to_client.write_all(&early).await.is_ok()
            {
                let _ = tokio::io::copy(&mut from_upstream, &mut to_client).await;
            }
        }
        let _ = to_client.shutdown().await;
    };
    // Once the browser is done, a server that keeps its side open gets a moment, not forever.
    tokio::select! {
        () = response => {}
        () = async { request.await; tokio::time::sleep(HALF_CLOSED_GRACE).await } => {}
    }
}

/// A response head (without its blank line) with its connection headers replaced by
/// `Connection: close`, and the blank line.
fn closing_response_head(head: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len() + 24);
    for (n, line) in head.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let name = line.split(|b| *b == b':').next().unwrap_or_default();
        let hop = HOP_HEADERS
            .iter()
            .any(|h| h.as_bytes().eq_ignore_ascii_case(name));
        if n == 0 || !hop {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out
}

async fn relay(mut client: TcpStream, mut upstream: TcpStream) {
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!("browser proxy: connection ended: {e}");
    }
}

/// Why the proxy did not connect.
enum Failure {
    Refused(Refusal),
    Unresolved(String),
    Unreachable(String),
}

/// Checks the target, resolves it, checks every address, and connects to one of them.
async fn open(
    gate: &dyn Gate,
    scheme: Option<&str>,
    target: &Target,
) -> Result<TcpStream, Failure> {
    gate.check_target(scheme, &target.host, target.port)
        .map_err(Failure::Refused)?;
    let addrs = resolve(target).await.map_err(Failure::Unresolved)?;
    check_all(gate, &addrs).map_err(Failure::Refused)?;
    connect(&addrs).await.map_err(Failure::Unreachable)
}

/// The first refusal among the addresses, if any: one forbidden address refuses them all.
fn check_all(gate: &dyn Gate, addrs: &[SocketAddr]) -> Result<(), Refusal> {
    addrs
        .iter()
        .try_for_each(|addr| gate.check_address(addr.ip()))
}

async fn resolve(target: &Target) -> Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = target.host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, target.port)]);
    }
    let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
    let found = match timeout(RESOLVE_TIMEOUT, lookup).await {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => return Err(format!("cannot resolve {}: {e}", target.host)),
        Err(_) => return Err(format!("resolving {} timed out", target.host)),
    };
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for addr in found {
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        return Err(format!("{} has no address", target.host));
    }
    Ok(addrs)
}

/// Tries the addresses in order, within one time budget.
async fn connect(addrs: &[SocketAddr]) -> Result<TcpStream, String> {
    let attempts = async {
        let mut last = String::from("no address");
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    };
    match timeout(CONNECT_TIMEOUT, attempts).await {
        Ok(result) => result,
        Err(_) => Err("connecting timed out".into()),
    }
}

async fn fail(client: TcpStream, gate: &dyn Gate, target: &Target, failure: Failure) {
    match failure {
        Failure::Refused(refusal) => {
            tracing::debug!(
                "browser proxy: {} refused ({})",
                target.authority(),
                refusal.rule
            );
            gate.refused(&target.host, target.port, &refusal);
            let body = format!(
                "blocked by the mcp-sessions browser policy ({}): {}",
                refusal.rule, refusal.reason
            );
            answer(client, Status::Forbidden, &body).await;
        }
        Failure::Unresolved(why) | Failure::Unreachable(why) => {
            tracing::debug!("browser proxy: {}: {why}", target.authority());
            answer(client, Status::BadGateway, &why).await;
        }
    }
}

#[derive(Clone, Copy)]
enum Status {
    BadRequest,
    Forbidden,
    Timeout,
    HeadTooLarge,
    BadGateway,
}

impl Status {
    fn line(self) -> &'static str {
        match self {
            Self::BadRequest => "400 Bad Request",
            Self::Forbidden => "403 Forbidden",
            Self::Timeout => "408 Request Timeout",
            Self::HeadTooLarge => "431 Request Header Fields Too Large",
            Self::BadGateway => "502 Bad Gateway",
        }
    }
}

/// Writes a plain-text answer and closes the connection.
async fn answer(mut client: TcpStream, status: Status, body: &str) {
    let response = format!(
        "HTTP/1.1 {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        status.line(),
        body.len()
    );
    if client.write_all(response.as_bytes()).await.is_ok() {
        close(client).await;
    }
}

/// Ends the connection without resetting it: the client may still be sending what the proxy did
/// not read, and a close with unread data would discard the answer on its way.
async fn close(mut client: TcpStream) {
    let _ = client.shutdown().await;
    let drain = async {
        let mut sink = [0u8; 4096];
        let mut total = 0;
        while total < DRAIN_LIMIT {
            match client.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = timeout(DRAIN_TIMEOUT, drain).await;
}

enum HeadError {
    /// The client left, or the connection failed, before sending anything useful.
    Closed,
    /// The client stopped sending in the middle of the head.
    Truncated,
    TooLarge,
}

/// The request head without its final blank line, and any bytes read past it.
async fn read_head<R: tokio::io::AsyncRead + Unpin>(
    client: &mut R,
) -> Result<(Vec<u8>, Vec<u8>), HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = client
            .read(&mut chunk)
            .await
            .map_err(|_| HeadError::Closed)?;
        if n == 0 {
            return Err(if buf.is_empty() {
                HeadError::Closed
            } else {
                HeadError::Truncated
            });
        }
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = find(&buf[from..], b"\r\n\r\n") {
            let end = from + at;
            if end > MAX_HEAD {
                return Err(HeadError::TooLarge);
            }
            let early = buf.split_off(end + 4);
            buf.truncate(end);
            return Ok((buf, early));
        }
        if buf.len() > MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Why a request cannot be served; the text is the body of the 400 answer.
struct BadRequest(&'static str);

/// A parsed request head. Header lines are kept as sent, to be forwarded unchanged.
struct Head<'a> {
    method: &'a str,
    target: &'a str,
    headers: Vec<Header<'a>>,
}

struct Header<'a> {
    name: &'a str,
    line: &'a [u8],
}

fn parse_head(head: &[u8]) -> Result<Head<'_>, BadRequest> {
    let lines = split_lines(head);
    if lines
        .iter()
        .any(|line| line.contains(&b'\r') || line.contains(&b'\n'))
    {
        return Err(BadRequest("lines must end with CRLF"));
    }
    let (first, rest) = lines.split_first().ok_or(BadRequest("empty request"))?;
    let first = std::str::from_utf8(first).map_err(|_| BadRequest("malformed request line"))?;
    let (method, target, version) = parse_request_line(first)?;
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(BadRequest("only HTTP/1.0 and HTTP/1.1 are supported"));
    }
    let headers = rest
        .iter()
        .map(|line| parse_header(line))
        .collect::<Result<_, _>>()?;
    Ok(Head {
        method,
        target,
        headers,
    })
}

/// The lines of a head, split at each CRLF.
fn split_lines(mut rest: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    while let Some(at) = find(rest, b"\r\n") {
        lines.push(&rest[..at]);
        rest = &rest[at + 2..];
    }
    lines.push(rest);
    lines
}

fn parse_request_line(line: &str) -> Result<(&str, &str, &str), BadRequest> {
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BadRequest("malformed request line"));
    };
    let visible = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
    if !is_token(method) || !visible(target) || !visible(version) {
        return Err(BadRequest("malformed request line"));
    }
    Ok((method, target, version))
}

fn parse_header(line: &[u8]) -> Result<Header<'_>, BadRequest> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(BadRequest("malformed header"))?;
    let name = std::str::from_utf8(&line[..colon]).map_err(|_| BadRequest("malformed header"))?;
    if !is_token(name) || line.contains(&0) {
        return Err(BadRequest("malformed header"));
    }
    Ok(Header { name, line })
}

/// An HTTP token (RFC 9110 §5.6.2): a method or a header name.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Where a request goes: a host (lowercase, an IPv6 literal without brackets) and a port.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    host: String,
    port: u16,
}

impl Target {
    /// `host:port`, brackets around an IPv6 literal: what logs show and the `Host` header says.
    fn authority(&self) -> String {
        format!("{}:{}", self.bracketed_host(), self.port)
    }

    /// The `Host` header of a forwarded request: the port only when it is not 80.
    fn host_header(&self) -> String {
        match self.port {
            80 => self.bracketed_host(),
            _ => self.authority(),
        }
    }

    fn bracketed_host(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Tunnel(Target),
    Forward { target: Target, path: &'a str },
}

fn route<'a>(head: &Head<'a>) -> Result<Route<'a>, BadRequest> {
    if head.method == "CONNECT" {
        return parse_authority(head.target, None).map(Route::Tunnel);
    }
    let Some(rest) = strip_prefix_ignore_case(head.target, "http://") else {
        return Err(if head.target.contains("://") {
            BadRequest("only http:// requests and CONNECT tunnels are proxied")
        } else {
            BadRequest("this is a proxy: send absolute-form requests or CONNECT")
        });
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let path = path.split('#').next().unwrap_or_default();
    let target = parse_authority(authority, Some(80))?;
    Ok(Route::Forward { target, path })
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// `host[:port]` or `[v6]:port`; without a default port the port is required.
fn parse_authority(text: &str, default_port: Option<u16>) -> Result<Target, BadRequest> {
    let (host, port) = split_host_port(text)?;
    let port = match port {
        Some(port) => parse_port(port)?,
        None => default_port.ok_or(BadRequest("CONNECT needs host:port"))?,
    };
    Ok(Target { host, port })
}

fn split_host_port(text: &str) -> Result<(String, Option<&str>), BadRequest> {
    if let Some(rest) = text.strip_prefix('[') {
        let (literal, after) = rest
            .split_once(']')
            .ok_or(BadRequest("malformed IPv6 literal"))?;
        let ip: Ipv6Addr = literal
            .parse()
            .map_err(|_| BadRequest("malformed IPv6 literal"))?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or(BadRequest("malformed port"))?,
            ),
        };
        return Ok((ip.to_string(), port));
    }
    let (host, port) = match text.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    };
    let valid = |b: u8| b.is_ascii_alphanumeric() || b"-._".contains(&b);
    if host.is_empty() || host.len() > 253 || !host.bytes().all(valid) {
        return Err(BadRequest("malformed host"));
    }
    Ok((host.to_ascii_lowercase(), port))
}

fn parse_port(text: &str) -> Result<u16, BadRequest> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadRequest("malformed port"));
    }
    match text.parse() {
        Ok(0) | Err(_) => Err(BadRequest("malformed port")),
        Ok(port) => Ok(port),
    }
}

/// The head sent upstream: origin form, the proxy's hop headers dropped, `Host` set to the target
/// and `Connection: close`, so that one connection carries one request.
fn origin_form(head: &Head<'_>, target: &Target, path: &str) -> Vec<u8> {
    let path = match path {
        "" => "/".to_owned(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_owned(),
    };
    let host = target.host_header();
    let mut out = format!("{} {path} HTTP/1.1\r\nHost: {host}\r\n", head.method).into_bytes();
    for header in &head.headers {
        if !DROPPED_HEADERS
            .iter()
            .chain(HOP_HEADERS)
            .any(|d| d.eq_ignore_ascii_case(header.name))
        {
            out.extend_from_slice(header.line);
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::Mutex;

    use super::*;

    /// A gate that refuses one address and/or one host, and records what it was asked.
    #[derive(Default)]
    struct TestGate {
        refuse_ip: Option<IpAddr>,
        deny_host: Option<&'static str>,
        targets: Mutex<Vec<(Option<String>, String, u16)>>,
        addresses: Mutex<Vec<IpAddr>>,
        refusals: Mutex<Vec<(String, u16, &'static str)>>,
    }

    impl Gate for TestGate {
        fn check_target(&self, scheme: Option<&str>, host: &str, port: u16) -> Result<(), Refusal> {
            let asked = (scheme.map(str::to_owned), host.to_owned(), port);
            self.targets.lock().unwrap().push(asked);
            match self.deny_host {
                Some(denied) if denied == host => Err(Refusal {
                    rule: "deny-list",
                    reason: format!("{host} is on the configured deny list"),
                }),
                _ => Ok(()),
            }
        }

        fn check_address(&self, ip: IpAddr) -> Result<(), Refusal> {
            self.addresses.lock().unwrap().push(ip);
            match self.refuse_ip {
                Some(refused) if refused == ip => Err(Refusal {
                    rule: "private-network",
                    reason: format!("{ip} is a private address"),
                }),
                _ => Ok(()),
            }
        }

        fn refused(&self, host: &str, port: u16, refusal: &Refusal) {
            let told = (host.to_owned(), port, refusal.rule);
            self.refusals.lock().unwrap().push(told);
        }
    }

    const LIMIT: Duration = Duration::from_secs(10);

    async fn within<T>(work: impl Future<Output = T>) -> T {
        timeout(LIMIT, work).await.expect("the test took too long")
    }

    async fn start(gate: &Arc<TestGate>) -> ContextProxy {
        let gate: Arc<dyn Gate> = gate.clone();
        ContextProxy::start(gate).await.unwrap()
    }

    /// Sends `request` to the proxy and reads until the proxy closes.
    async fn exchange(proxy: &ContextProxy, request: &[u8]) -> String {
        let mut client = TcpStream::connect(proxy.addr).await.unwrap();
        client.write_all(request).await.unwrap();
        let mut response = Vec::new();
        client.read_to_end(&mut response).await.unwrap();
        String::from_utf8_lossy(&response).into_owned()
    }

    /// Reads up to and including the blank line that ends a response head.
    async fn read_response_head(stream: &mut TcpStream) -> String {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "closed early");
            head.push(byte[0]);
        }
        String::from_utf8(head).unwrap()
    }

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut read, mut write) = stream.split();
                    let _ = tokio::io::copy(&mut read, &mut write).await;
                });
            }
        });
        addr
    }

    /// One-request HTTP server: answers with the request line and the head it received.
    async fn http_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if stream.read(&mut byte).await.unwrap() == 0 {
                    return;
                }
                head.push(byte[0]);
            }
            let body = String::from_utf8(head).unwrap();
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(response.as_bytes()).await.unwrap();
        });
        addr
    }

    #[tokio::test]
    async fn a_kept_alive_answer_reaches_the_browser_marked_close() {
        within(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let upstream = listener.local_addr().unwrap();
            tokio::spawn(async move {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut head = [0u8; 1024];
                let _ = stream.read(&mut head).await;
                let response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\nKeep-Alive: timeout=15\r\n\r\nok";
                stream.write_all(response.as_bytes()).await.unwrap();
                // Keeps the connection open, as a keep-alive server does.
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
            let gate = Arc::new(TestGate::default());
            let proxy = start(&gate).await;
            let mut client = TcpStream::connect(proxy.addr).await.unwrap();
            let request = format!("GET http://{upstream}/ HTTP/1.1\r\nHost: {upstream}\r\n\r\n");
            client.write_all(request.as_bytes()).await.unwrap();
            let head = read_response_head(&mut client).await;
            assert_eq!(
                head,
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
            );
            let mut body = [0u8; 2];
            client.read_exact(&mut body).await.unwrap();
            assert_eq!(&body, b"ok");
        })
        .await;
    }

    #[tokio::test]
    async fn connect_tunnels_bytes_both_ways() {
        within(async {
            let echo = echo_server().await;
            let gate = Arc::new(TestGate::default());
            let proxy = start(&gate).await;
            let mut client = TcpStream::connect(proxy.addr).await.unwrap();
            let request = format!("CONNECT {echo} HTTP/1.1\r\nHost: {echo}\r\n\r\nearly");
            client.write_all(request.as_bytes()).await.unwrap();
            let head = read_response_head(&mut client).await;
            assert_eq!(head, "HTTP/1.1 200 Connection established\r\n\r\n");
            client.write_all(b" and late").await.unwrap();
            let mut echoed = [0u8; 14];
            client.read_exact(&mut echoed).await.unwrap();
            assert_eq!(&echoed, b"early and late");
            let targets = gate.targets.lock().unwrap().clone();
            assert_eq!(targets, [(None, "127.0.0.1".to_owned(), echo.port())]);
            assert_eq!(*gate.addresses.lock().unwrap(), [echo.ip()]);
        })
        .await;
    }

    #[tokio::test]
    async fn absolute_form_is_forwarded_in_origin_form() {
        within(async {
            let upstream = http_server().await;
            let gate = Arc::new(TestGate::default());
            let proxy = start(&gate).await;
            let request = format!(
                "GET http://{upstream}/a/b?c=d#frag HTTP/1.1\r\nHost: {upstream}\r\nProxy-Connection: keep-alive\r\nConnection: keep-alive\r\nKeep-Alive: 5\r\nProxy-Authorization: Basic eA==\r\nAccept: */*\r\n\r\n"
            );
            let response = exchange(&proxy, request.as_bytes()).await;
            let (head, body) = response.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with("HTTP/1.1 200 OK"), "{response}");
            let expected = format!(
                "GET /a/b?c=d HTTP/1.1\r\nHost: {upstream}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
            );
            assert_eq!(body, expected);
            let targets = gate.targets.lock().unwrap().clone();
            let asked = (Some("http".to_owned()), "127.0.0.1".to_owned(), upstream.port());
            assert_eq!(targets, [asked]);
        })
        .await;
    }

    #[tokio::test]
    async fn a_refused_address_is_never_connected_to() {
        within(async {
            let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = upstream.local_addr().unwrap().port();
            let gate = Arc::new(TestGate {
                refuse_ip: Some(IpAddr::from([127, 0, 0, 1])),
                ..TestGate::default()
            });
            let proxy = start(&gate).await;
            let get = format!("GET http://localhost:{port}/secret?q=1 HTTP/1.1\r\n\r\n");
            let connect = format!("CONNECT localhost:{port} HTTP/1.1\r\n\r\n");
            for request in [get, connect] {
                let response = exchange(&proxy, request.as_bytes()).await;
                assert!(response.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{response}");
                assert!(response.contains("Content-Type: text/plain"), "{response}");
                assert!(response.contains("Connection: close\r\n"), "{response}");
                let body = response.split_once("\r\n\r\n").unwrap().1;
                assert_eq!(
                    body,
                    "blocked by the mcp-sessions browser policy (private-network): 127.0.0.1 is a private address"
                );
            }
            let refusals = gate.refusals.lock().unwrap().clone();
            let refusal = ("localhost".to_owned(), port, "private-network");
            assert_eq!(refusals, [refusal.clone(), refusal]);
            let connected = timeout(Duration::from_millis(300), upstream.accept()).await;
            assert!(connected.is_err(), "the upstream saw a connection");
        })
        .await;
    }

    #[tokio::test]
    async fn a_denied_target_is_refused_before_resolution() {
        within(async {
            let gate = Arc::new(TestGate {
                deny_host: Some("blocked.invalid"),
                ..TestGate::default()
            });
            let proxy = start(&gate).await;
            for request in [
                "CONNECT blocked.invalid:443 HTTP/1.1\r\n\r\n",
                "GET http://BLOCKED.invalid/ HTTP/1.1\r\n\r\n",
            ] {
                let response = exchange(&proxy, request.as_bytes()).await;
                assert!(
                    response.starts_with("HTTP/1.1 403 Forbidden\r\n"),
                    "{response}"
                );
                assert!(
                    response.contains("(deny-list): blocked.invalid is on"),
                    "{response}"
                );
            }
            assert!(gate.addresses.lock().unwrap().is_empty());
            let refusals = gate.refusals.lock().unwrap().clone();
            let expected = [
                ("blocked.invalid".to_owned(), 443, "deny-list"),
                ("blocked.invalid".to_owned(), 80, "deny-list"),
            ];
            assert_eq!(refusals, expected);
        })
        .await;
    }

    #[tokio::test]
    async fn bad_requests_get_4xx_and_the_proxy_keeps_serving() {
        within(async {
            let echo = echo_server().await;
            let gate = Arc::new(TestGate::default());
            let proxy = start(&gate).await;
            let oversized = format!(
                "GET http://{echo}/ HTTP/1.1\r\nX: {}\r\n\r\n",
                "a".repeat(20_000)
            );
            let cases: [(&[u8], &str); 8] = [
                (b"\x00\x01\xffgarbage\r\n\r\n", "400"),
                (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "400"),
                (b"GET ftp://example.com/ HTTP/1.1\r\n\r\n", "400"),
                (b"CONNECT example.com HTTP/1.1\r\n\r\n", "400"),
                (b"GET http://a b/ HTTP/1.1\r\n\r\n", "400"),
                (b"GET http://x/ HTTP/1.1\nHost: x\n\n\r\n\r\n", "400"),
                (b"GET http://x/ HTTP/1.1\r\nno colon\r\n\r\n", "400"),
                (oversized.as_bytes(), "431"),
            ];
            for (request, status) in cases {
                let response = exchange(&proxy, request).await;
                let expected = format!("HTTP/1.1 {status} ");
                assert!(response.starts_with(&expected), "{response}");
            }
            let mut client = TcpStream::connect(proxy.addr).await.unwrap();
            client.write_all(b"GET http://x/ HTT").await.unwrap();
            client.shutdown().await.unwrap();
            let mut truncated = String::new();
            client.read_to_string(&mut truncated).await.unwrap();
            assert!(truncated.starts_with("HTTP/1.1 400 "), "{truncated}");
            assert!(gate.targets.lock().unwrap().is_empty());
            // Still serving.
            let mut client = TcpStream::connect(proxy.addr).await.unwrap();
            let request = format!("CONNECT {echo} HTTP/1.1\r\n\r\n");
            client.write_all(request.as_bytes()).await.unwrap();
            let head = read_response_head(&mut client).await;
            assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
        })
        .await;
    }

    #[tokio::test]
    async fn dropping_the_proxy_ends_its_tunnels() {
        within(async {
            let echo = echo_server().await;
            let gate = Arc::new(TestGate::default());
            let proxy = start(&gate).await;
            let mut client = TcpStream::connect(proxy.addr).await.unwrap();
            let request = format!("CONNECT {echo} HTTP/1.1\r\n\r\n");
            client.write_all(request.as_bytes()).await.unwrap();
            read_response_head(&mut client).await;
            let addr = proxy.addr;
            drop(proxy);
            let mut rest = Vec::new();
            let ended = client.read_to_end(&mut rest).await;
            assert!(ended.is_err() || rest.is_empty());
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
        })
        .await;
    }

    #[test]
    fn one_refused_address_refuses_the_name() {
        let gate = TestGate {
            refuse_ip: Some(IpAddr::from([10, 0, 0, 1])),
            ..TestGate::default()
        };
        let public = SocketAddr::from(([93, 184, 216, 34], 443));
        let private = SocketAddr::from(([10, 0, 0, 1], 443));
        assert!(check_all(&gate, &[public]).is_ok());
        let refusal = check_all(&gate, &[public, private]).unwrap_err();
        assert_eq!(refusal.rule, "private-network");
    }

    #[test]
    fn authorities_and_targets_parse() {
        let target = |host: &str, port| Target {
            host: host.into(),
            port,
        };
        let parse = |text| parse_authority(text, Some(80)).ok();
        assert_eq!(parse("[::1]:443"), Some(target("::1", 443)));
        assert_eq!(parse("[::1]"), Some(target("::1", 80)));
        assert_eq!(parse("Example.COM"), Some(target("example.com", 80)));
        for bad in [
            "", ":80", "a:+80", "a:0", "a:65536", "::1", "[::1", "[x]:1", "a@b", "a/b",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert!(parse_authority("example.com", None).is_err());
        let head = parse_head(b"GET HTTP://h:8080?x HTTP/1.1\r\nA: b")
            .ok()
            .unwrap();
        let Ok(Route::Forward { target: t, path }) = route(&head) else {
            panic!("not forwarded");
        };
        assert_eq!((t, path), (target("h", 8080), "?x"));
        let forwarded = origin_form(&head, &target("h", 8080), "?x");
        assert_eq!(
            String::from_utf8(forwarded).unwrap(),
            "GET /?x HTTP/1.1\r\nHost: h:8080\r\nA: b\r\nConnection: close\r\n\r\n"
        );
    }
}
