//! The Streamable HTTP mode (`serve --http`): rmcp's `StreamableHttpService` at `/mcp`, behind
//! our own layers, in an accept loop of ours (plain or TLS) that stops gracefully.
//!
//! Every request first passes `guard` (Host, Origin, client address); every MCP request then
//! `bearer` authentication (401 with the RFC 9728 metadata URL otherwise), and, when it names a
//! transport session, the check that the session is its bearer's (`sessions`). The verified
//! bearer travels to the tools beside the request's headers, as a `Principal`. Both protocol
//! eras are served on the one endpoint: 2026-07-28 requests statelessly, 2025-11-25 clients in
//! transport sessions.

mod bearer;
mod guard;
mod limits;
mod listen;
mod sessions;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, StatusCode};
use http_body_util::BodyExt;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use crate::audit::{AuditEvent, nist};
use crate::clock::now_ms;
use crate::config::http::AddressBlock;
use crate::server::{McpSessions, Principal, ServerState};

pub use listen::{ListenError, Tls};
use sessions::{Binding, CREATION, Creation, Ended, Limits, Lookup, Refusal, TransportSessions};

/// The connection's peer, put on each request by the accept loop.
#[derive(Debug, Clone, Copy)]
struct Peer(SocketAddr);

/// The address a request is accounted to, put on it by the guard.
#[derive(Debug, Clone, Copy)]
struct ClientAddress(IpAddr);

/// What the layers share.
struct Front {
    state: Arc<ServerState>,
    sessions: Arc<TransportSessions>,
    resource: String,
    metadata_url: String,
    hosts: Vec<String>,
    origins: Vec<guard::OriginRule>,
    proxies: Vec<AddressBlock>,
    failures: limits::RateWindow,
    request_timeout: Duration,
    /// POST requests whose answer is not complete.
    in_flight: AtomicUsize,
    drained: tokio::sync::Notify,
}

/// Counts a request in flight until its answer's body is dropped.
struct InFlight(Arc<Front>);

impl InFlight {
    fn enter(front: &Arc<Front>) -> Self {
        front.in_flight.fetch_add(1, Ordering::SeqCst);
        Self(front.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

/// A JSON error body with `status`.
fn refuse(status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({"error": error, "error_description": description}).to_string();
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn too_many(retry_after: u64, description: &str) -> Response {
    let mut response = refuse(StatusCode::TOO_MANY_REQUESTS, "rate_limited", description);
    if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, value);
    }
    response
}

impl Front {
    /// Audits a refusal that costs the caller nothing, aggregated per address and reason.
    fn audit_refusal(&self, event: &'static str, address: IpAddr, reason: &str) {
        let record = AuditEvent::new(event, "denied", &[nist::AC_3, nist::IA_2]).detail(json!({
            "transport": "http",
            "address": address.to_string(),
            "reason": reason,
        }));
        self.state
            .audit
            .record_repeated(&format!("{event} {address} {reason}"), record, now_ms());
    }

    fn unauthorized(&self, address: IpAddr, why: bearer::Unauthenticated) -> Response {
        self.audit_refusal("http.unauthorized", address, why.reason());
        let mut response = refuse(
            StatusCode::UNAUTHORIZED,
            why.error().unwrap_or("invalid_request"),
            why.description(),
        );
        if let Ok(value) = HeaderValue::from_str(&bearer::challenge(&self.metadata_url, why)) {
            response
                .headers_mut()
                .insert(http::header::WWW_AUTHENTICATE, value);
        }
        response
    }

    fn metadata(&self) -> serde_json::Value {
        json!({
            "resource": self.resource,
            "bearer_methods_supported": ["header"],
            "resource_name": "mcp-sessions",
            "resource_documentation": "https://github.com/mcp-sessions/mcp-sessions#http",
        })
    }
}

/// Host and Origin on every request; the client address it is accounted to.
async fn guard_layer(
    State(front): State<Arc<Front>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<Peer>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |p| p.0.ip());
    let address = guard::client_address(peer, request.headers(), &front.proxies);
    if let Err(forbidden) = guard::check(request.headers(), &front.hosts, &front.origins) {
        front.audit_refusal("http.forbidden", address, forbidden.as_str());
        let description = match forbidden {
            guard::Forbidden::Host => {
                "this server does not answer to that Host; connect by its public URL (http.public_url) or add the name to http.allowed_hosts"
            }
            guard::Forbidden::Origin => {
                "requests from this browser origin are refused; an operator can add it to http.allowed_origins"
            }
        };
        return refuse(StatusCode::FORBIDDEN, "forbidden", description);
    }
    request.extensions_mut().insert(ClientAddress(address));
    next.run(request).await
}

/// Authentication, and the transport session's owner, on every MCP request.
async fn mcp_layer(State(front): State<Arc<Front>>, mut request: Request, next: Next) -> Response {
    let now = now_ms();
    let address = request
        .extensions()
        .get::<ClientAddress>()
        .map_or(IpAddr::from([127, 0, 0, 1]), |a| a.0);
    let verified = if bearer::token_in_query(request.uri().query()) {
        Err(bearer::Unauthenticated::InQuery)
    } else {
        bearer::bearer_token(request.headers())
            .and_then(|token| bearer::verify(&front.state, token, now))
    };
    let bearer = match verified {
        Ok(bearer) => bearer,
        Err(why) => {
            // A valid token is always served (checking one costs a hash); past its budget of
            // failures an address gets 429 until the window ends, whatever else it tries.
            if let Err(retry_after) = front.failures.hit(address, now) {
                front.audit_refusal("http.unauthorized", address, "too many failed requests");
                return too_many(
                    retry_after,
                    "too many requests without a valid token from this address; wait, then send a valid token",
                );
            }
            return front.unauthorized(address, why);
        }
    };
    let binding = Binding {
        user_id: bearer.user_id.clone(),
        username: bearer.username.clone(),
        credential: bearer.credential.clone(),
        address,
        user_agent: request
            .headers()
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    let transport_session = match request.headers().get("mcp-session-id") {
        None => None,
        Some(value) => {
            let Some(id) = value.to_str().ok().filter(|id| sessions::well_formed(id)) else {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Mcp-Session-Id is not a session id of this server (64 lowercase hex characters); initialize to get one",
                );
            };
            match front.sessions.check(id, &binding, now) {
                Lookup::Found => Some(Arc::<str>::from(id)),
                Lookup::NotFound => return session_not_found(),
                Lookup::Mismatch => {
                    front.state.audit.record_or_log(
                        AuditEvent::new(
                            "http.session_mismatch",
                            "denied",
                            &[nist::AC_3, nist::AC_12],
                        )
                        .user(&bearer.user_id, &bearer.username)
                        .detail(json!({
                            "transport": "http",
                            "address": address.to_string(),
                            "transportSession": front.state.audit.session_hash(id),
                        })),
                    );
                    return session_not_found();
                }
            }
        }
    };
    let principal = Arc::new(Principal {
        user_id: bearer.user_id,
        username: bearer.username,
        credential: bearer.credential,
        address,
        transport_session,
    });
    request.extensions_mut().insert(principal.clone());
    let counted = (request.method() == http::Method::POST).then(|| InFlight::enter(&front));
    let deleting = request.method() == http::Method::DELETE;
    let creation = Arc::new(Creation {
        binding,
        refused: std::sync::Mutex::new(None),
        made: std::sync::Mutex::new(None),
    });
    let answer = CREATION
        .scope(
            creation.clone(),
            tokio::time::timeout(front.request_timeout, next.run(request)),
        )
        .await;
    let Ok(mut response) = answer else {
        return refuse(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "the request took longer than http.request_timeout",
        );
    };
    // rmcp answers a DELETE that ended the session with 202; clients (the Python SDK) expect a
    // plain success for a request that is done, not accepted for later.
    if deleting && response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::OK;
    }
    let refused = *creation.refused.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(refusal) = refused {
        return refused_session(&front, &principal, refusal);
    }
    let made = creation
        .made
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(id) = made {
        front.state.audit.record_or_log(
            AuditEvent::new("http.session.create", "success", &[nist::AC_12, nist::AU_3])
                .user(&principal.user_id, &principal.username)
                .detail(json!({
                    "transport": "http",
                    "address": address.to_string(),
                    "transportSession": front.state.audit.session_hash(&id),
                    "credential": principal.credential_label(|s| front.state.handles.of(s)),
                })),
        );
    }
    match counted {
        // The request stays in flight until its answer's body is done (an SSE stream).
        Some(counted) => response.map(|body| {
            Body::new(body.map_frame(move |frame| {
                let _still = &counted;
                frame
            }))
        }),
        None => response,
    }
}

fn session_not_found() -> Response {
    refuse(
        StatusCode::NOT_FOUND,
        "session_not_found",
        "no such transport session (ended, idle too long, or never made): initialize again",
    )
}

fn refused_session(front: &Front, principal: &Principal, refusal: Refusal) -> Response {
    let (retry_after, description) = match refusal {
        Refusal::UserCap(n) => (
            30,
            format!(
                "you hold {n} transport sessions, the most allowed: end one (DELETE) or wait for one to go idle"
            ),
        ),
        Refusal::TotalCap(n) => (
            30,
            format!("the server holds {n} transport sessions, the most allowed; retry later"),
        ),
        Refusal::Rate { retry_after } => (
            retry_after,
            "too many transport sessions opened from this address; retry later".to_owned(),
        ),
    };
    front.state.audit.record_repeated(
        &format!("http.session.limit {}", principal.user_id),
        AuditEvent::new("http.session.limit", "denied", &[nist::AC_12])
            .user(&principal.user_id, &principal.username)
            .detail(json!({"transport": "http", "address": principal.address.to_string(), "reason": description})),
        now_ms(),
    );
    too_many(retry_after, &description)
}

/// Audits each transport session that ended and closes the browser contexts opened through it.
async fn ended_sessions(state: Arc<ServerState>, mut ended: UnboundedReceiver<Ended>) {
    while let Some(Ended {
        id,
        binding,
        reason,
    }) = ended.recv().await
    {
        audit_end(&state, &id, &binding, reason);
        for (owner, context) in state.browser.close_transport(&id).await {
            state.audit.record_or_log(
                AuditEvent::new("context.close", "success", &[nist::AC_12, nist::AU_3])
                    .user(&owner.user_id, &owner.username)
                    .session(&owner.session)
                    .detail(json!({"contextId": context.context_id, "reason": "transport session ended", "transport": "http"})),
            );
        }
    }
}

fn audit_end(state: &ServerState, id: &str, binding: &Binding, reason: sessions::EndReason) {
    state.audit.record_or_log(
        AuditEvent::new("http.session.end", "success", &[nist::AC_12, nist::AU_3])
            .user(&binding.user_id, &binding.username)
            .detail(json!({
                "transport": "http",
                "transportSession": state.audit.session_hash(id),
                "reason": reason.as_str(),
            })),
    );
}

/// How the HTTP mode is started.
pub struct HttpOptions {
    pub listener: std::net::TcpListener,
    /// The canonical URL of the MCP endpoint (the tokens' audience).
    pub resource: String,
    pub tls: Option<Tls>,
}

/// Serves until `shutdown` resolves, then stops accepting, lets calls in flight finish (for
/// `http.shutdown_grace` at most) and ends every transport session.
pub async fn serve(
    handler: McpSessions,
    state: Arc<ServerState>,
    options: HttpOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ListenError> {
    let config = &state.config.http;
    let (ended_tx, ended_rx) = tokio::sync::mpsc::unbounded_channel();
    let sessions = Arc::new(TransportSessions::new(
        Limits {
            idle_ms: config.session_idle_timeout.saturating_mul(1000),
            per_user: config.max_sessions_per_user,
            total: config.max_sessions,
            create_per_minute: config.session_create_per_minute,
            bind_client_address: config.bind_client_address,
        },
        ended_tx,
    ));
    let hosts = guard::allowed_hosts(&options.resource, &config.allowed_hosts);
    // The server's own origin is not cross-site: a page it served may call it (and the
    // conformance suite's DNS-rebinding check sends it as the valid case).
    let own_origins = url::Url::parse(&options.resource)
        .map(|u| {
            let origin = u.origin().ascii_serialization();
            let port = u.port_or_known_default().unwrap_or(80);
            vec![
                origin,
                format!("{}://localhost:{port}", u.scheme()),
                format!("{}://127.0.0.1:{port}", u.scheme()),
                format!("{}://[::1]:{port}", u.scheme()),
            ]
        })
        .unwrap_or_default();
    let mut origin_list = config.allowed_origins.clone();
    origin_list.extend(own_origins);
    let front = Arc::new(Front {
        state: state.clone(),
        sessions: sessions.clone(),
        metadata_url: bearer::metadata_url(&options.resource),
        resource: options.resource.clone(),
        origins: origin_list
            .iter()
            .filter_map(|o| guard::OriginRule::parse(o))
            .collect(),
        hosts: hosts.clone(),
        proxies: if config.behind_proxy {
            config.proxies()
        } else {
            Vec::new()
        },
        failures: limits::RateWindow::new(config.failed_auth_per_minute, 60_000),
        request_timeout: Duration::from_secs(config.request_timeout),
        in_flight: AtomicUsize::new(0),
        drained: tokio::sync::Notify::new(),
    });
    let cancel = CancellationToken::new();
    let mut mcp_config = StreamableHttpServerConfig::default();
    // Our guard checked Host and Origin already; rmcp checks the same lists again.
    mcp_config.allowed_hosts = hosts;
    mcp_config.allowed_origins = origin_list.clone();
    mcp_config = mcp_config.enforce_origin_validation();
    mcp_config.max_request_body_bytes = state.config.max_request_bytes;
    mcp_config.cancellation_token = cancel.clone();
    let service =
        StreamableHttpService::new(move || Ok(handler.clone()), sessions.clone(), mcp_config);
    let metadata_front = front.clone();
    let metadata = get(move || {
        let body = metadata_front.metadata();
        async move { axum::Json(body) }
    });
    let resource_path = url::Url::parse(&options.resource)
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_else(|_| "/mcp".into());
    let mut router = Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route("/.well-known/oauth-protected-resource", metadata.clone())
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            metadata.clone(),
        );
    if resource_path != "/mcp" && !resource_path.is_empty() {
        router = router.route(
            &format!("/.well-known/oauth-protected-resource{resource_path}"),
            metadata,
        );
    }
    let mcp = Router::new()
        .fallback_service(service)
        .layer(middleware::from_fn_with_state(front.clone(), mcp_layer));
    let router = router
        .nest_service("/mcp", mcp)
        .layer(middleware::from_fn_with_state(front.clone(), guard_layer));
    let _ended = AbortOnDrop(tokio::spawn(ended_sessions(state.clone(), ended_rx)));
    let sweeper_front = front.clone();
    let _sweeper = AbortOnDrop(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(5));
        loop {
            ticker.tick().await;
            let now = now_ms();
            sweeper_front.sessions.sweep(now);
            sweeper_front.failures.prune(now);
        }
    }));
    let grace = Duration::from_secs(config.shutdown_grace);
    let drain_front = front.clone();
    let drain_state = state.clone();
    let drained = async move {
        loop {
            let notified = drain_front.drained.notified();
            if drain_front.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    };
    listen::run(
        options.listener,
        options.tls,
        router,
        shutdown,
        async move {
            // Calls in flight finish (bounded); then every session and stream is told to end.
            if tokio::time::timeout(grace, drained).await.is_err() {
                tracing::warn!("calls still in flight after http.shutdown_grace; stopping them");
            }
            cancel.cancel();
            for ended in sessions.end_all() {
                audit_end(&drain_state, &ended.id, &ended.binding, ended.reason);
            }
        },
    )
    .await
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
