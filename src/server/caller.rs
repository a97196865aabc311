//! Who is calling, and may they? Over HTTP the caller is always the bearer of the request's
//! Authorization header, acting in the session that belongs to its credential. Over stdio a
//! caller is identified by an access token, else by the session id the tool names (a bearer
//! secret), else by the host's bootstrap user. Roles are read from the user store on every call;
//! every denial is audited (AC-3).

use serde_json::json;

use super::McpSessions;
use super::errors::{Code, ToolError};
use super::principal::{Credential, Principal};
use crate::audit::{AuditEvent, nist};
use crate::auth::rbac::Permission;
use crate::auth::secret::SecretString;
use crate::auth::tokens::TokenKind;
use crate::auth::users::MAX_PASSWORD_BYTES;
use crate::clock::now_ms;
use crate::sessions::{IssuedTokens, SessionError, SessionId, SessionInfo};

/// An authenticated caller: the live session its credential belongs to.
pub(super) struct Caller {
    pub session: SessionInfo,
}

impl Caller {
    pub fn user_id(&self) -> &str {
        &self.session.user.id
    }
}

/// Parses a session id argument (the schema has already checked its pattern).
pub(super) fn parse_session_id(text: &str) -> Result<SessionId, ToolError> {
    SessionId::parse(text).ok_or_else(|| {
        ToolError::new(
            Code::InvalidSessionId,
            "`sessionId` is not a session id (64 lowercase hex characters)",
        )
    })
}

fn token_refused() -> ToolError {
    ToolError::new(
        Code::AuthFailed,
        "the access token is invalid, expired or its session has ended; use refresh-session or create-session",
    )
}

impl McpSessions {
    /// Resolves the caller from `accessToken`, else `sessionId`, else the bootstrap user.
    pub(super) async fn caller(
        &self,
        access_token: Option<&SecretString>,
        session_id: Option<&str>,
    ) -> Result<Caller, ToolError> {
        let state = &self.state;
        let now = now_ms();
        if let Some(principal) = &self.principal {
            if access_token.is_some() {
                return Err(ToolError::invalid_argument(
                    "over HTTP the Authorization header says who calls: remove `accessToken` (a `sessionId` still names the session to act on)",
                ));
            }
            return self.bearer_caller(principal);
        }
        if let Some(token) = access_token {
            let claims = state
                .tokens
                .verify(token.expose(), TokenKind::Access, now / 1000)
                .map_err(|_| token_refused())?;
            let id = SessionId::parse(&claims.sid).ok_or_else(token_refused)?;
            let session = state
                .sessions
                .touch(id, Some(&claims.sub), now)
                .map_err(|_| token_refused())?;
            return Ok(Caller { session });
        }
        if let Some(text) = session_id {
            let id = parse_session_id(text)?;
            // With a bootstrap user the host's model acts as that user: a session id selects
            // among its sessions and never stands for another user, whose id the model may have
            // seen. Any other id is a target, checked against the bootstrap user's roles.
            if let Some(bootstrap) = &state.bootstrap {
                let own = state
                    .sessions
                    .peek(id, now)
                    .is_ok_and(|s| s.user.username == bootstrap.username);
                if !own {
                    return self.bootstrap_caller().await;
                }
            }
            let session = state.sessions.touch(id, None, now)?;
            return Ok(Caller { session });
        }
        self.bootstrap_caller().await
    }

    /// The session of an HTTP request's bearer: the one its access token names, or the one its
    /// personal access token acts in (started on first use, and again after it ended).
    fn bearer_caller(&self, principal: &Principal) -> Result<Caller, ToolError> {
        let state = &self.state;
        let now = now_ms();
        let refused = || {
            ToolError::new(
                Code::AuthFailed,
                "the bearer token's session has ended or its user is gone; get a new token",
            )
        };
        let token_id = match &principal.credential {
            Credential::Session(id) => {
                let session = state
                    .sessions
                    .touch(*id, Some(&principal.user_id), now)
                    .map_err(|_| refused())?;
                return Ok(Caller { session });
            }
            Credential::Pat(token_id) => token_id,
        };
        let mut sessions = state
            .bearer_sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(id) = sessions.get(token_id)
            && let Ok(session) = state.sessions.touch(*id, Some(&principal.user_id), now)
        {
            return Ok(Caller { session });
        }
        let user = state.users.by_id(&principal.user_id).ok_or_else(refused)?;
        if !state.roles.allows(&user.roles, Permission::SessionCreate) {
            state.audit.record_or_log(
                AuditEvent::new("access.denied", "denied", &[nist::AC_3])
                    .user(&user.id, &user.username)
                    .detail(json!({"permission": Permission::SessionCreate.name(), "transport": "http"})),
            );
            return Err(ToolError::permission_denied(Permission::SessionCreate));
        }
        let (session, _tokens) = state
            .sessions
            .create(
                &user,
                state.config.session_duration,
                Some(std::sync::Arc::from("http")),
                now,
            )
            .inspect_err(|e| {
                if matches!(e, SessionError::Limit(_)) {
                    state.audit.record_or_log(
                        AuditEvent::new("session.limit", "denied", &[nist::AC_12])
                            .user(&user.id, &user.username)
                            .detail(json!({"transport": "http"})),
                    );
                }
            })?;
        let recorded = state.audit.record(
            AuditEvent::new("session.create", "success", &[nist::AC_12, nist::AU_3])
                .user(&user.id, &user.username)
                .session(&session.id.to_hex())
                .detail(json!({
                    "expiresAt": crate::clock::rfc3339(session.expires_ms),
                    "transport": "http",
                    "credential": principal.credential_label(|id| state.handles.of(id)),
                    "address": principal.address.to_string(),
                })),
        );
        if let Err(e) = recorded {
            tracing::error!("{e}");
            state.sessions.delete(session.id, now_ms());
            return Err(ToolError::audit_unavailable(Code::AuthFailed));
        }
        sessions.insert(token_id.clone(), session.id);
        Ok(Caller { session })
    }

    /// Whether the caller is a bearer over HTTP (whose header, not the model, holds the credential).
    pub(super) fn over_http(&self) -> bool {
        self.principal.is_some()
    }

    /// The HTTP bearer, if any.
    pub(super) fn principal(&self) -> Option<&Principal> {
        self.principal.as_deref()
    }

    /// How `target` is named to `caller`: its id when it is the caller's own, else its handle
    /// (an admin sees other users' sessions, never their ids).
    pub(super) fn shown_id(&self, caller: &Caller, target: &SessionInfo) -> String {
        if target.user.id == caller.user_id() {
            target.id.to_hex()
        } else {
            self.state.handles.of(target.id)
        }
    }

    /// The bootstrap user's session, logging in again when the previous one has ended.
    async fn bootstrap_caller(&self) -> Result<Caller, ToolError> {
        let Some(bootstrap) = &self.state.bootstrap else {
            return Err(ToolError::new(
                Code::AuthFailed,
                "no credential: pass `sessionId` or `accessToken` (from create-session), or configure a bootstrap user in the host (MCP_SESSIONS_USER)",
            ));
        };
        let mut current = bootstrap.session.lock().await;
        if let Some(id) = *current
            && let Ok(session) = self.state.sessions.touch(id, None, now_ms())
        {
            return Ok(Caller { session });
        }
        let (session, _tokens) = self
            .login(
                "bootstrap",
                &bootstrap.username,
                bootstrap.password.clone(),
                self.state.config.session_duration,
                None,
            )
            .await
            .map_err(|e| match e.code {
                // The caller gave no credential: the host's configuration is what is wrong.
                Code::InvalidCredentials => ToolError::new(
                    Code::AuthFailed,
                    "no credential, and the host's bootstrap user (MCP_SESSIONS_USER) cannot log in; pass `sessionId` or `accessToken` (from create-session)",
                ),
                _ => e,
            })?;
        *current = Some(session.id);
        Ok(Caller { session })
    }

    /// Logs the bootstrap user in at start, so a misconfiguration shows at once on stderr.
    pub async fn start_bootstrap(&self) {
        if let Some(bootstrap) = &self.state.bootstrap {
            match self.bootstrap_caller().await {
                Ok(_) => tracing::info!("bootstrap user `{}` logged in", bootstrap.username),
                Err(e) => tracing::error!(
                    "bootstrap user `{}` could not log in: {}",
                    bootstrap.username,
                    e.message
                ),
            }
        }
    }

    /// The session a tool acts on: the caller's own, or (with an access token) the one named.
    /// Another user's session needs `all`; without it the answer is PERMISSION_DENIED.
    pub(super) fn target(
        &self,
        tool: &'static str,
        caller: &Caller,
        session_id: Option<&str>,
        own: Permission,
        all: Permission,
    ) -> Result<SessionInfo, ToolError> {
        let target = match session_id {
            None => caller.session.clone(),
            Some(text) => {
                let id = parse_session_id(text)?;
                if id == caller.session.id {
                    caller.session.clone()
                } else {
                    self.session_named(text, id)?
                }
            }
        };
        let permission = if target.user.id == caller.user_id() {
            own
        } else {
            all
        };
        self.authorize(tool, caller, permission)?;
        Ok(target)
    }

    /// The session `text` (parsed as `id`) names: a session id, or the handle under which
    /// list-sessions showed one. Any 64-hex text decodes to some id, so only a live or recently
    /// ended session counts as found.
    fn session_named(&self, text: &str, id: SessionId) -> Result<SessionInfo, SessionError> {
        let now = now_ms();
        match self.state.sessions.peek(id, now) {
            Err(SessionError::NotFound) => {
                let named = self
                    .state
                    .handles
                    .id_of(text)
                    .ok_or(SessionError::NotFound)?;
                match self.state.sessions.peek(named, now) {
                    Err(SessionError::Expired) => Err(SessionError::Expired),
                    Err(_) => Err(SessionError::NotFound),
                    found => found,
                }
            }
            found => found,
        }
    }

    /// Checks `permission` against the caller's current roles; audits a denial.
    pub(super) fn authorize(
        &self,
        tool: &'static str,
        caller: &Caller,
        permission: Permission,
    ) -> Result<(), ToolError> {
        if self
            .state
            .roles
            .allows(&caller.session.user.roles, permission)
        {
            return Ok(());
        }
        self.state.audit.record_or_log(
            AuditEvent::new("access.denied", "denied", &[nist::AC_3])
                .user(&caller.session.user.id, &caller.session.user.username)
                .session(&caller.session.id.to_hex())
                .tool(tool)
                .detail(json!({"permission": permission.name()})),
        );
        Err(ToolError::permission_denied(permission))
    }

    /// Authenticates `username` and starts a session: throttling, constant-cost verification,
    /// permission, per-user cap, audit (fail closed).
    pub(super) async fn login(
        &self,
        tool: &'static str,
        username: &str,
        password: SecretString,
        duration_secs: u64,
        client: Option<std::sync::Arc<str>>,
    ) -> Result<(SessionInfo, IssuedTokens), ToolError> {
        let state = &self.state;
        if password.expose().len() > MAX_PASSWORD_BYTES {
            return Err(ToolError::invalid_argument(format!(
                "`password` is longer than {MAX_PASSWORD_BYTES} bytes"
            )));
        }
        let now = now_ms();
        // An unknown name is recorded as a keyed hash: it may be a password in the wrong field.
        let claimed = || match state.users.by_name(username) {
            Some(_) => username.to_owned(),
            None => state.audit.unknown_username(username),
        };
        let attempt = match state.throttle.admit(username, now) {
            Ok(attempt) => attempt,
            Err(throttled) => {
                // Refused before any password check, so free to repeat: aggregated per name.
                let name = claimed();
                state.audit.record_repeated(
                    &format!("login.locked {name}"),
                    AuditEvent::new("login.locked", "denied", &[nist::AC_7])
                        .username(&name)
                        .tool(tool)
                        .detail(json!({"retryAfter": throttled.retry_after, "global": throttled.global, "locked": throttled.locked, "busy": throttled.busy})),
                    now,
                );
                let why = if throttled.global {
                    "too many logins on this server"
                } else if throttled.busy {
                    "other logins for this username are being checked"
                } else {
                    "too many failed logins for this username"
                };
                let message = format!("{why}; retry after {} s", throttled.retry_after);
                return Err(ToolError::rate_limited(throttled.retry_after, message));
            }
        };
        let Some(user) = state.users.authenticate(username, password).await else {
            let block = attempt.fail(now_ms());
            state.audit.record_or_log(
                AuditEvent::new("login.failure", "failure", &[nist::IA_2, nist::AC_7])
                    .username(&claimed())
                    .tool(tool),
            );
            if let Some(block) = block.filter(|b| b.locked) {
                state.audit.record_or_log(
                    AuditEvent::new("login.locked", "denied", &[nist::AC_7])
                        .username(&claimed())
                        .tool(tool)
                        .detail(json!({"retryAfter": block.retry_after, "locked": true})),
                );
            }
            return Err(ToolError::new(
                Code::InvalidCredentials,
                "invalid username or password; check both (repeated failures delay further logins), or let the host log in a bootstrap user",
            ));
        };
        attempt.succeed();
        let caller_roles = &user.roles;
        if !state.roles.allows(caller_roles, Permission::SessionCreate) {
            state.audit.record_or_log(
                AuditEvent::new("access.denied", "denied", &[nist::AC_3])
                    .user(&user.id, &user.username)
                    .tool(tool)
                    .detail(json!({"permission": Permission::SessionCreate.name()})),
            );
            return Err(ToolError::permission_denied(Permission::SessionCreate));
        }
        let (session, tokens) = match state
            .sessions
            .create(&user, duration_secs, client, now_ms())
        {
            Ok(created) => created,
            Err(e @ SessionError::Limit(_)) => {
                state.audit.record_or_log(
                    AuditEvent::new("session.limit", "denied", &[nist::AC_12])
                        .user(&user.id, &user.username)
                        .tool(tool),
                );
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        let session_hex = session.id.to_hex();
        let recorded = state
            .audit
            .record(
                AuditEvent::new("login.success", "success", &[nist::IA_2, nist::AU_3])
                    .user(&user.id, &user.username)
                    .session(&session_hex)
                    .tool(tool),
            )
            .and_then(|()| {
                state.audit.record(
                    AuditEvent::new("session.create", "success", &[nist::AC_12, nist::AU_3])
                        .user(&user.id, &user.username)
                        .session(&session_hex)
                        .tool(tool)
                        .detail(json!({"expiresAt": crate::clock::rfc3339(session.expires_ms)})),
                )
            });
        if let Err(e) = recorded {
            tracing::error!("{e}");
            state.sessions.delete(session.id, now_ms());
            return Err(ToolError::audit_unavailable(Code::AuthFailed));
        }
        Ok((session, tokens))
    }
}
