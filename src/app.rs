//! The composition root: builds every part from the configuration, wires session endings to the
//! audit log (and, later, to the browser), runs the background sweeper, serves MCP over the given
//! streams and shuts everything down in order when the host closes stdin.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rmcp::ServiceExt;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::task::JoinHandle;

use crate::audit::{AuditEvent, AuditLog, nist};
use crate::auth::pats::PatStore;
use crate::auth::rbac::RoleTable;
use crate::auth::secret::SecretString;
use crate::auth::throttle::{LoginThrottle, ThrottleConfig};
use crate::auth::tokens::{TokenService, load_signing_key};
use crate::auth::users::UserStore;
use crate::browser::targets::{BlockSink, BlockedRequest};
use crate::browser::{BrowserManager, Owner, UrlPolicy};
use crate::config::{Config, ConfigError, Paths};
use crate::files::FileWatch;
use crate::server::{Bootstrap, McpSessions, ServerState};
use crate::sessions::{EndReason, EndedSession, Handles, SessionLimits, SessionStore};
use crate::transport::LineTransport;
use crate::transport::http::{HttpOptions, Tls};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Users(#[from] crate::auth::users::UserError),
    #[error(transparent)]
    Key(#[from] crate::auth::tokens::KeyError),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error("cannot read MCP_SESSIONS_PASSWORD_FILE {path}: {source}")]
    PasswordFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "MCP_SESSIONS_USER is set but neither MCP_SESSIONS_PASSWORD nor MCP_SESSIONS_PASSWORD_FILE is"
    )]
    BootstrapPassword,
    #[error("the operating system's random generator failed")]
    Random,
    #[error(transparent)]
    Pats(#[from] crate::auth::pats::PatError),
    #[error(transparent)]
    Listen(#[from] crate::transport::http::ListenError),
    #[error("invalid configuration key `{key}`: {reason}")]
    Http { key: &'static str, reason: String },
}

/// The rules of the configuration that belong to the parts it configures: permission names
/// (the role table) and origin patterns (the browser's URL policy). Start-up and `doctor` check
/// them here, with the same error as the rest of the configuration.
pub fn configured_rules(
    config: &Config,
    over_http: bool,
) -> Result<(RoleTable, UrlPolicy), ConfigError> {
    let roles = RoleTable::from_config(&config.roles).map_err(|reason| ConfigError::Invalid {
        key: "roles",
        reason,
    })?;
    let policy = UrlPolicy::new(
        &config.browser.allow_origins,
        &config.browser.deny_origins,
        // Over stdio the browser belongs to one desktop host, whose own dev servers it may open;
        // over HTTP it serves many users on a shared host, whose neighbours it must not reach.
        config.browser.allow_private_networks.unwrap_or(!over_http),
    )
    .map_err(|reason| ConfigError::Invalid {
        key: "browser.allow_origins",
        reason,
    })?;
    Ok((roles, policy))
}

/// Records each request or target the browser policy refuses as `browser.blocked`; a page that
/// keeps trying is aggregated per context, rule and origin like other free refusals.
fn audit_blocks(audit: AuditLog) -> BlockSink {
    Arc::new(
        move |owner: &Owner, context_id: &str, blocked: &BlockedRequest| {
            let event = AuditEvent::new("browser.blocked", "denied", &[nist::AC_3, nist::AU_3])
                .user(&owner.user_id, &owner.username)
                .session(&owner.session)
                .detail(json!({
                    "contextId": context_id,
                    "origin": blocked.origin,
                    "rule": blocked.rule,
                    "kind": blocked.kind,
                }));
            let kind = format!(
                "browser.blocked {context_id} {} {} {}",
                blocked.rule, blocked.origin, blocked.kind
            );
            audit.record_repeated(&kind, event, crate::clock::now_ms());
        },
    )
}

/// Which transport the server speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// One host over stdin/stdout (the default).
    Stdio,
    /// Streamable HTTP on `listen` (the `--http` flag's address, else `http.listen`).
    Http { listen: Option<String> },
}

/// What the server is started with.
pub struct Options {
    pub paths: Paths,
    pub config: Config,
    pub demo: bool,
    pub mode: Mode,
    pub bootstrap: Option<(String, SecretString)>,
    pub jwt_secret: Option<String>,
    /// A key that signed tokens before a rotation, accepted for `jwt_key_grace` seconds.
    pub jwt_previous_secret: Option<String>,
}

impl Options {
    /// Reads the environment's bootstrap credentials and signing secret.
    pub fn from_env(
        paths: Paths,
        config: Config,
        demo: bool,
        mode: Mode,
    ) -> Result<Self, StartError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let bootstrap = match var("MCP_SESSIONS_USER") {
            None => None,
            Some(user) => {
                let password = match (
                    var("MCP_SESSIONS_PASSWORD"),
                    var("MCP_SESSIONS_PASSWORD_FILE"),
                ) {
                    (Some(password), _) => password,
                    (None, Some(file)) => std::fs::read_to_string(&file)
                        .map(|text| text.trim_end_matches(['\n', '\r']).to_owned())
                        .map_err(|source| StartError::PasswordFile {
                            path: file.into(),
                            source,
                        })?,
                    (None, None) => return Err(StartError::BootstrapPassword),
                };
                Some((user, SecretString::new(password)))
            }
        };
        Ok(Self {
            paths,
            config,
            demo,
            mode,
            bootstrap,
            jwt_secret: var("MCP_SESSIONS_JWT_SECRET"),
            jwt_previous_secret: var("MCP_SESSIONS_JWT_PREVIOUS_SECRET"),
        })
    }
}

/// Aborts the background task when the server is dropped, so no task outlives its owner.
struct TaskGuard(JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Where and how the HTTP mode listens, settled at start.
struct HttpPlan {
    /// Bound at start, so that a busy port fails start-up and port 0 gets its number.
    listener: std::net::TcpListener,
    resource: String,
    tls: Option<Tls>,
}

/// Settles the HTTP mode's address, URL and TLS; refuses a listener off loopback that has
/// neither TLS nor a proxy in front (tokens would cross the network in the clear).
fn plan_http(config: &Config, listen: Option<&str>) -> Result<HttpPlan, StartError> {
    let http = &config.http;
    let invalid = |key, reason| StartError::Http { key, reason };
    let listen = http
        .listen_address(listen)
        .map_err(|reason| invalid("http.listen", reason))?;
    let tls = match (&http.tls_cert, &http.tls_key) {
        (Some(cert), Some(key)) => Some(Tls::load(cert, key)?),
        _ => None,
    };
    if !listen.ip().is_loopback() && tls.is_none() && !http.behind_proxy {
        return Err(invalid(
            "http.listen",
            format!(
                "{listen} is reachable from other machines, and bearer tokens must not cross a network in the clear: set http.tls_cert and http.tls_key, or http.behind_proxy = true with http.trusted_proxies when a TLS proxy is in front, or listen on 127.0.0.1"
            ),
        ));
    }
    if http.behind_proxy && http.trusted_proxies.is_empty() {
        tracing::warn!(
            "http.behind_proxy is set but http.trusted_proxies is empty: X-Forwarded-For is ignored and every request is accounted to the proxy's address"
        );
    }
    let listener = std::net::TcpListener::bind(listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|source| crate::transport::http::ListenError::Bind {
            address: listen,
            source,
        })?;
    let bound = listener.local_addr().unwrap_or(listen);
    Ok(HttpPlan {
        resource: http.resource_url(bound),
        listener,
        tls,
    })
}

/// A started server.
pub struct App {
    pub state: Arc<ServerState>,
    ended: Option<UnboundedReceiver<EndedSession>>,
    http: Option<HttpPlan>,
}

impl App {
    /// Builds every part; fails with a clear message on bad configuration, key or files.
    pub fn start(options: Options) -> Result<Self, StartError> {
        let Options {
            paths,
            config,
            demo,
            mode,
            bootstrap,
            jwt_secret,
            jwt_previous_secret,
        } = options;
        let http = match &mode {
            Mode::Stdio => None,
            Mode::Http { listen } => Some(plan_http(&config, listen.as_deref())?),
        };
        if demo {
            tracing::warn!(
                "demo users are enabled (admin/admin123!, demo/demo123!, viewer/viewer123!): never use --demo outside a trial"
            );
        }
        let (roles, policy) = configured_rules(&config, http.is_some())?;
        let users = UserStore::open(paths.users_file(), demo)?;
        let key_from_file = jwt_secret.is_none();
        let key = load_signing_key(jwt_secret, &paths.key_file())?;
        let audit_key = load_signing_key(None, &paths.audit_key_file())?;
        let audit = AuditLog::open(&paths.audit_file(), &audit_key, config.audit_max_bytes)?;
        // Over HTTP the tokens this server issues and accepts are for its public URL (RFC 8707).
        let audience = http
            .as_ref()
            .map_or(config.jwt_audience.as_str(), |plan| plan.resource.as_str());
        let tokens = Arc::new(TokenService::new(
            key,
            &config.jwt_issuer,
            audience,
            config.jwt_leeway,
        ));
        let pats = PatStore::open(
            paths.tokens_file(),
            load_signing_key(None, &paths.pat_key_file())?,
        )?;
        if let Some(previous) = jwt_previous_secret {
            let until = crate::clock::now_ms() / 1000 + config.jwt_key_grace;
            tokens.accept_previous(load_signing_key(Some(previous), &paths.key_file())?, until);
        }
        let key_watch = key_from_file.then(|| FileWatch::new(paths.key_file()));
        let (ended_tx, ended_rx) = unbounded_channel();
        let sessions = SessionStore::new(
            SessionLimits {
                idle_ms: config.idle_timeout * 1000,
                per_user: config.max_sessions_per_user,
                access_ttl_secs: config.access_token_ttl,
                renew_within_ms: config.access_token_renew_within * 1000,
                expired_grace_ms: config.expired_grace * 1000,
            },
            tokens.clone(),
            users.clone(),
            ended_tx,
        );
        let throttle = LoginThrottle::new(ThrottleConfig {
            free_failures: config.login_free_failures,
            max_delay_secs: config.login_max_delay,
            lock_after: config.login_lock_after,
            lock_secs: config.login_lock_duration,
            per_minute: config.login_rate_per_minute,
        });
        let browser = BrowserManager::new(
            config.browser.clone(),
            policy,
            &paths.data_dir,
            audit_blocks(audit.clone()),
        );
        let bootstrap = bootstrap.map(|(username, password)| Bootstrap {
            username,
            password,
            session: tokio::sync::Mutex::new(None),
        });
        Ok(Self {
            state: Arc::new(ServerState {
                config,
                paths,
                users,
                sessions,
                handles: Handles::new().ok_or(StartError::Random)?,
                tokens,
                audit,
                throttle,
                roles,
                bootstrap,
                browser,
                key_watch,
                pats,
                bearer_sessions: std::sync::Mutex::new(std::collections::HashMap::new()),
                over_http: http.is_some(),
            }),
            ended: Some(ended_rx),
            http,
        })
    }

    /// Records the start and starts the background work; the handler every request shares.
    fn begin(
        &mut self,
        transport: &'static str,
    ) -> Result<(McpSessions, Option<TaskGuard>), StartError> {
        let state = self.state.clone();
        let handler = McpSessions::new(state.clone());
        state.audit.record(
            AuditEvent::new("server.start", "success", &[nist::AU_3]).detail(json!({
                "version": env!("CARGO_PKG_VERSION"),
                "pid": std::process::id(),
                "transport": transport,
            })),
        )?;
        let background = self
            .ended
            .take()
            .map(|ended| TaskGuard(tokio::spawn(background(state.clone(), ended))));
        Ok((handler, background))
    }

    /// Serves Streamable HTTP until SIGTERM or SIGINT, then stops accepting, lets calls in flight
    /// finish, ends every transport session and shuts down cleanly.
    pub async fn run_http(mut self) -> Result<(), StartError> {
        let Some(plan) = self.http.take() else {
            return Err(StartError::Http {
                key: "http.listen",
                reason: "the server was not started in HTTP mode".into(),
            });
        };
        let (handler, _background) = self.begin("http")?;
        let served = crate::transport::http::serve(
            handler,
            self.state.clone(),
            HttpOptions {
                listener: plan.listener,
                resource: plan.resource,
                tls: plan.tls,
            },
            stop_signal(),
        )
        .await;
        self.shutdown();
        served.map_err(StartError::from)
    }

    /// Serves MCP over `read`/`write` until the peer closes, then shuts down cleanly.
    pub async fn run<R, W>(mut self, read: R, write: W) -> Result<(), StartError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let state = self.state.clone();
        let (handler, _background) = self.begin("stdio")?;
        handler.start_bootstrap().await;
        let transport = LineTransport::new(read, write, state.config.max_request_bytes);
        match handler.serve(transport).await {
            Ok(service) => {
                if let Err(e) = service.waiting().await {
                    tracing::warn!("the MCP service stopped with an error: {e}");
                }
            }
            // The peer left before initializing: nothing to serve.
            Err(e) => tracing::info!("no MCP session was established: {e}"),
        }
        self.shutdown();
        Ok(())
    }

    /// Closes every browser context, stops Chromium, ends every session and flushes the audit log.
    fn shutdown(&self) {
        for (owner, context) in self.state.browser.shutdown() {
            self.state.audit.record_or_log(
                AuditEvent::new("context.close", "success", &[nist::AC_12, nist::AU_3])
                    .detail(json!({"contextId": context.context_id, "reason": "server exit", "userId": owner.user_id})),
            );
        }
        let ended = self.state.sessions.end_all();
        self.state.audit.flush_repeats(crate::clock::now_ms(), true);
        self.state.audit.record_or_log(
            AuditEvent::new("server.stop", "success", &[nist::AU_3, nist::AC_12])
                .detail(json!({"sessionsEnded": ended.len()})),
        );
        self.state.audit.flush();
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn stop_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::warn!("stopping: finishing calls in flight");
}

/// Sweeps expired sessions on a timer and audits every session that ended by itself.
async fn background(state: Arc<ServerState>, mut ended: UnboundedReceiver<EndedSession>) {
    let period = Duration::from_secs(state.config.sweep_interval);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The users file is watched every second, so `mcp-sessions user disable|passwd|remove` run in
    // another process closes the user's browser contexts promptly even when no call comes in.
    let mut users_ticker = tokio::time::interval(Duration::from_secs(1));
    users_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let now = crate::clock::now_ms();
                state.sessions.sweep(now);
                state.throttle.prune(now);
                state.audit.flush_repeats(now, false);
                state.browser.stop_idle(now);
                for (owner, context) in state.browser.close_idle(now).await {
                    state.audit.record_or_log(
                        AuditEvent::new("context.close", "success", &[nist::AC_12, nist::AU_3])
                            .user(&owner.user_id, &owner.username)
                            .session(&owner.session)
                            .detail(json!({"contextId": context.context_id, "reason": "idle"})),
                    );
                }
                release_free_memory();
            }
            _ = users_ticker.tick() => {
                if state.users.refresh() {
                    state.sessions.sweep(crate::clock::now_ms());
                }
                if state.over_http {
                    state.forget_ended_bearer_sessions(crate::clock::now_ms());
                }
                if let Some(watch) = &state.key_watch
                    && watch.changed()
                {
                    rotate_signing_key(&state, watch.path());
                }
            }
            session = ended.recv() => {
                let Some(session) = session else { return };
                // delete-session audits its own deletions (with who asked); the rest are audited here.
                if session.reason != EndReason::Deleted {
                    audit_ending(&state.audit, &session);
                }
                state
                    .close_session_contexts(&session.id, &session.user_id, &session.username, session.reason.as_str())
                    .await;
            }
        }
    }
}

/// Hands memory freed by ended sessions back to the system: glibc keeps freed heap pages for
/// reuse, so without this a burst of sessions would hold its peak RSS forever.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it takes the allocator's own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The key file changed (`mcp-sessions key rotate`): sign with the new key from now on; tokens of
/// the old one keep verifying for `jwt_key_grace` seconds.
fn rotate_signing_key(state: &ServerState, key_file: &std::path::Path) {
    match load_signing_key(None, key_file) {
        Ok(key) => {
            let until = crate::clock::now_ms() / 1000 + state.config.jwt_key_grace;
            let previous = state.tokens.current_kid();
            if state.tokens.rotate(key, until) {
                state.audit.record_or_log(
                    AuditEvent::new("key.rotate", "success", &[nist::IA_5, nist::AU_3]).detail(
                        json!({
                            "kid": state.tokens.current_kid(),
                            "previousKid": previous,
                            "previousValidUntil": crate::clock::rfc3339(until * 1000),
                        }),
                    ),
                );
            }
        }
        Err(e) => tracing::error!("the signing key file changed but cannot be used: {e}"),
    }
}

fn audit_ending(audit: &AuditLog, session: &EndedSession) {
    let (event, tags): (&'static str, &'static [&'static str]) = match session.reason {
        EndReason::Expired | EndReason::Idle => ("session.expire", &[nist::AC_12, nist::AU_3]),
        EndReason::Revoked => ("session.revoke", &[nist::AC_12, nist::IA_5]),
        EndReason::TokenReuse => ("token.reuse", &[nist::IA_5, nist::AC_12]),
        EndReason::Deleted => ("session.delete", &[nist::AC_12]),
    };
    let mut record = AuditEvent::new(event, "success", tags)
        .user(&session.user_id, &session.username)
        .session(&session.id.to_hex())
        .detail(json!({"reason": session.reason.as_str()}));
    if session.reason == EndReason::TokenReuse {
        // Only refresh-session presents refresh tokens; the attempt itself was refused.
        record.outcome = "denied";
        record.tool = Some("refresh-session");
    }
    audit.record_or_log(record);
}
