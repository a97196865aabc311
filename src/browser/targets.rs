//! The policy on every target of a context. The browser is told to attach to every target it
//! creates (`Target.setAutoAttach` with `waitForDebuggerOnStart`, on the browser and again on
//! each target for its iframes and workers), so each new tab, popup, iframe and worker is
//! paused before it runs; this thread then pauses every request it makes (`Fetch.enable` for
//! all URLs, redirect hops included) and only then lets it run. Each paused request is checked
//! against the context's URL policy and continued or failed (`BlockedByClient`). Service
//! workers are never let run (page interception cannot see their requests), and tabs past the
//! context's cap are closed. Every refusal is counted on the context and reported (audit).
//!
//! One such thread per browser reads the events of its pipe; it never waits on a renderer (the
//! calls it makes are answered by the browser process), so a page that spins cannot stall it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Owner;
use super::cdp::{Event, Pipe};
use super::policy::{Refusal, UrlPolicy, origin_of, rule};

/// How many recent refusals a context keeps for the results of the calls that caused them.
const RECENT: usize = 20;
/// How long the set-up of a new target may take; a target whose policy could not be installed
/// is closed, never let run.
const SETUP_TIMEOUT: Duration = Duration::from_secs(5);

/// A request (or target) the policy refused.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlockedRequest {
    /// `scheme://host[:port]` (never a path or query).
    pub origin: String,
    /// The rule that fired.
    pub rule: &'static str,
    /// What was refused: Document, Image, Script, XHR, Fetch, connection, service-worker, tab…
    pub kind: String,
    /// Whether it was the top-level document of a tab (a navigation).
    #[serde(skip)]
    pub top_level: bool,
    /// Whether a redirect led there.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub redirect: bool,
}

/// The `kind` of a connection the context's proxy refused (not a request DevTools paused).
pub const CONNECTION: &str = "connection";

/// Told of every refusal: the context's owner and id, and what was refused.
pub type BlockSink = Arc<dyn Fn(&Owner, &str, &BlockedRequest) + Send + Sync>;

/// What the network side knows of one context.
pub struct ContextNet {
    pub owner: Owner,
    pub context_id: String,
    pub policy: UrlPolicy,
    pub max_tabs: usize,
    /// Refusals so far; a call compares it before and after.
    pub blocked: AtomicU64,
    recent: Mutex<VecDeque<(u64, BlockedRequest)>>,
    tabs: AtomicUsize,
    sink: BlockSink,
    /// A tab's renderer crashed (out of memory, most likely) and no call has worked since.
    pub crashed: std::sync::atomic::AtomicBool,
}

impl ContextNet {
    pub fn new(
        owner: Owner,
        context_id: String,
        policy: UrlPolicy,
        max_tabs: usize,
        sink: BlockSink,
    ) -> Self {
        Self {
            owner,
            context_id,
            policy,
            max_tabs,
            blocked: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::new()),
            tabs: AtomicUsize::new(0),
            sink,
            crashed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Counts, keeps and reports a refusal.
    pub fn refused(&self, request: BlockedRequest) {
        let n = self.blocked.fetch_add(1, Ordering::SeqCst) + 1;
        (self.sink)(&self.owner, &self.context_id, &request);
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back((n, request));
    }

    /// The refusals after the `mark`th (as many as are still kept).
    pub fn since(&self, mark: u64) -> Vec<BlockedRequest> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent
            .iter()
            .filter(|(n, _)| *n > mark)
            .map(|(_, r)| r.clone())
            .collect()
    }
}

/// The context's proxy asks the same policy for every connection, after resolving its name.
impl super::proxy::Gate for ContextNet {
    fn check_target(&self, scheme: Option<&str>, host: &str, port: u16) -> Result<(), Refusal> {
        self.policy.check_target(scheme, host, port)
    }

    fn check_address(&self, ip: std::net::IpAddr) -> Result<(), Refusal> {
        self.policy.check_address(ip)
    }

    fn refused(&self, host: &str, port: u16, refusal: &Refusal) {
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        self.refused(BlockedRequest {
            origin: format!("{host}:{port}"),
            rule: refusal.rule,
            kind: CONNECTION.into(),
            top_level: false,
            redirect: false,
        });
    }
}

/// A target we are attached to.
struct Attached {
    target_id: String,
    kind: String,
    net: Arc<ContextNet>,
    /// Refused (past the tab cap) and being closed: none of its requests go.
    closing: bool,
}

/// The contexts of one browser by their CDP BrowserContext id, and its attached targets.
#[derive(Default)]
pub struct Targets {
    contexts: Mutex<HashMap<String, Arc<ContextNet>>>,
    sessions: Mutex<HashMap<String, Attached>>,
    /// Page targets ready for use (policy installed, running): target id → session id.
    ready: Mutex<HashMap<String, String>>,
    ready_changed: Condvar,
    /// Service workers refused, by target id: the browser attaches to each twice.
    refused_workers: Mutex<std::collections::HashSet<String>>,
}

impl Targets {
    /// Makes the targets of BrowserContext `cdp_id` subject to `net` (before any is created).
    pub fn add_context(&self, cdp_id: &str, net: Arc<ContextNet>) {
        self.contexts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(cdp_id.to_owned(), net);
    }

    pub fn remove_context(&self, cdp_id: &str) {
        self.contexts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(cdp_id);
    }

    /// Waits until the tab `target_id` runs under the policy; returns its session id.
    pub fn wait_ready(&self, target_id: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut ready = self.ready.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(session) = ready.get(target_id) {
                return Some(session.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            ready = self
                .ready_changed
                .wait_timeout(ready, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn context(&self, cdp_id: &str) -> Option<Arc<ContextNet>> {
        self.contexts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(cdp_id)
            .cloned()
    }

    fn net_of(&self, session: &str) -> Option<(Arc<ContextNet>, String)> {
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions
            .get(session)
            .filter(|a| !a.closing)
            .map(|a| (a.net.clone(), a.target_id.clone()))
    }

    fn attach(
        &self,
        session: &str,
        target_id: &str,
        kind: &str,
        net: Arc<ContextNet>,
        closing: bool,
    ) {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                session.to_owned(),
                Attached {
                    target_id: target_id.to_owned(),
                    kind: kind.to_owned(),
                    net,
                    closing,
                },
            );
    }
}

/// The options every attach uses: pause new targets until we let them run.
fn auto_attach() -> Value {
    json!({"autoAttach": true, "waitForDebuggerOnStart": true, "flatten": true})
}

/// Asks the browser to attach to (and pause) every target it creates.
pub fn watch_browser(pipe: &Pipe, timeout: Duration) -> Result<(), super::cdp::CdpError> {
    pipe.call(None, "Target.setAutoAttach", auto_attach(), timeout)
        .map(|_| ())
}

/// Runs the event thread of one browser until its pipe closes.
pub fn spawn(
    pipe: Arc<Pipe>,
    events: Receiver<Event>,
    targets: Arc<Targets>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("cdp-events".into())
        .spawn(move || {
            for event in events {
                handle(&pipe, &targets, event);
            }
        })
        .map(|_| ())
}

fn handle(pipe: &Pipe, targets: &Targets, event: Event) {
    match event.method.as_str() {
        "Fetch.requestPaused" => {
            if let Some(session) = event.session.as_deref() {
                request_paused(pipe, targets, session, &event.params);
            }
        }
        "Target.attachedToTarget" => attached(pipe, targets, &event.params),
        "Inspector.targetCrashed" => {
            if let Some(session) = event.session.as_deref()
                && let Some((net, _)) = targets.net_of(session)
            {
                tracing::warn!("a page's renderer crashed (out of memory?)");
                net.crashed.store(true, Ordering::SeqCst);
                pipe.fail_session(session, "the page crashed");
            }
        }
        "Target.detachedFromTarget" => {
            if let Some(session) = event.params["sessionId"].as_str() {
                detached(targets, session);
            }
        }
        _ => {}
    }
}

fn request_paused(pipe: &Pipe, targets: &Targets, session: &str, params: &Value) {
    let request_id = params["requestId"].as_str().unwrap_or_default();
    let url = params["request"]["url"].as_str().unwrap_or_default();
    // A session we do not know (it is going away, or its tab is refused) lets nothing through.
    let allowed = targets.net_of(session).is_some_and(|(net, target_id)| {
        match net.policy.check_request(url) {
            Ok(()) => true,
            Err(refusal) => {
                let kind = params["resourceType"]
                    .as_str()
                    .unwrap_or("Other")
                    .to_owned();
                let top_level =
                    kind == "Document" && params["frameId"].as_str() == Some(&target_id);
                net.refused(BlockedRequest {
                    origin: origin_of(url),
                    rule: refusal.rule,
                    kind,
                    top_level,
                    redirect: params.get("redirectedRequestId").is_some(),
                });
                false
            }
        }
    });
    let _ = if allowed {
        pipe.notify(
            Some(session),
            "Fetch.continueRequest",
            json!({"requestId": request_id}),
        )
    } else {
        pipe.notify(
            Some(session),
            "Fetch.failRequest",
            json!({"requestId": request_id, "errorReason": "BlockedByClient"}),
        )
    };
}

fn attached(pipe: &Pipe, targets: &Targets, params: &Value) {
    let Some(session) = params["sessionId"].as_str() else {
        return;
    };
    let info = &params["targetInfo"];
    let target_id = info["targetId"].as_str().unwrap_or_default();
    let kind = info["type"].as_str().unwrap_or_default();
    let url = info["url"].as_str().unwrap_or_default();
    let waiting = params["waitingForDebugger"].as_bool().unwrap_or(false);
    let net = info["browserContextId"]
        .as_str()
        .and_then(|id| targets.context(id));
    let Some(net) = net else {
        // Not one of our contexts (the browser's own first tab): let it be, unwatched.
        if waiting {
            let _ = pipe.notify(Some(session), "Runtime.runIfWaitingForDebugger", json!({}));
        }
        let _ = pipe.notify(
            None,
            "Target.detachFromTarget",
            json!({"sessionId": session}),
        );
        return;
    };
    if kind == "service_worker" {
        // A service worker's requests escape page interception: it never runs. The browser
        // attaches to it once for itself and once under the page that registers it.
        let first = {
            let mut refused = targets
                .refused_workers
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if refused.len() >= 1024 {
                refused.clear();
            }
            refused.insert(target_id.to_owned())
        };
        if first {
            net.refused(BlockedRequest {
                origin: origin_of(url),
                rule: rule::SERVICE_WORKER,
                kind: "service-worker".into(),
                top_level: false,
                redirect: false,
            });
        }
        close(pipe, target_id);
        return;
    }
    if kind == "page" && net.tabs.fetch_add(1, Ordering::SeqCst) >= net.max_tabs {
        net.tabs.fetch_sub(1, Ordering::SeqCst);
        net.refused(BlockedRequest {
            origin: origin_of(url),
            rule: rule::TAB_LIMIT,
            kind: "tab".into(),
            top_level: false,
            redirect: false,
        });
        // Closed at once, but let run first with every request refused: an opener whose popup
        // stays paused waits for it.
        targets.attach(session, target_id, kind, net, true);
        if install(pipe, session, kind) && waiting {
            let _ = pipe.notify(Some(session), "Runtime.runIfWaitingForDebugger", json!({}));
        }
        close(pipe, target_id);
        return;
    }
    targets.attach(session, target_id, kind, net, false);
    if !install(pipe, session, kind) {
        tracing::warn!("could not install the request policy on a new {kind} target; closing it");
        close(pipe, target_id);
        return;
    }
    if waiting {
        let _ = pipe.notify(Some(session), "Runtime.runIfWaitingForDebugger", json!({}));
    }
    if kind == "page" {
        targets
            .ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(target_id.to_owned(), session.to_owned());
        targets.ready_changed.notify_all();
    }
}

/// Pauses every request of the target and attaches to (and pauses) what it creates. Workers
/// have no Fetch domain: their requests pause in the page that owns them.
fn install(pipe: &Pipe, session: &str, kind: &str) -> bool {
    let _ = pipe.call(
        Some(session),
        "Target.setAutoAttach",
        auto_attach(),
        SETUP_TIMEOUT,
    );
    let fetch = pipe.call(
        Some(session),
        "Fetch.enable",
        json!({"patterns": [{"urlPattern": "*", "requestStage": "Request"}]}),
        SETUP_TIMEOUT,
    );
    match fetch {
        Ok(_) => true,
        Err(super::cdp::CdpError::Remote(_)) => !matches!(kind, "page" | "iframe"),
        Err(_) => false,
    }
}

fn close(pipe: &Pipe, target_id: &str) {
    let _ = pipe.notify(None, "Target.closeTarget", json!({"targetId": target_id}));
}

fn detached(targets: &Targets, session: &str) {
    let gone = targets
        .sessions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(session);
    if let Some(gone) = gone
        && gone.kind == "page"
        && !gone.closing
    {
        gone.net.tabs.fetch_sub(1, Ordering::SeqCst);
        targets
            .ready
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&gone.target_id);
    }
}
