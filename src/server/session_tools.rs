//! The session tools: create-session, list-sessions, get-session, refresh-session,
//! delete-session. Shapes and codes are DESIGN.md's contract.

use std::sync::Arc;

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::CallToolResult;
use rmcp::{Peer, RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::McpSessions;
use super::caller::Caller;
use super::errors::{Code, ToolError};
use crate::audit::{AuditEvent, nist};
use crate::auth::rbac::Permission;
use crate::auth::secret::SecretString;
use crate::auth::tokens::TokenKind;
use crate::clock::{now_ms, rfc3339};
use crate::sessions::{IssuedTokens, SessionInfo};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionArgs {
    /// User name.
    #[schemars(length(min = 1, max = 64))]
    pub username: String,
    /// Password. Prefer a bootstrap user: this one passes through the model.
    #[schemars(length(min = 1, max = 1024))]
    pub password: SecretString,
    /// Lifetime in seconds (default 3600), never extended.
    #[schemars(range(min = 1))]
    pub duration: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSessionsArgs {
    /// Access token.
    #[serde(rename = "accessToken")]
    #[schemars(length(min = 1, max = 4096))]
    pub access_token: Option<SecretString>,
    /// Session id.
    #[serde(rename = "sessionId")]
    #[schemars(regex(pattern = "^[0-9a-f]{64}$"))]
    pub session_id: Option<String>,
    /// Only this user's sessions (admin for others).
    #[serde(rename = "userId")]
    #[schemars(length(min = 1, max = 64))]
    pub user_id: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionArgs {
    /// The session; omitted: your own. Over stdio it is your credential unless accessToken is given.
    #[serde(rename = "sessionId")]
    #[schemars(regex(pattern = "^[0-9a-f]{64}$"))]
    pub session_id: Option<String>,
    /// Your access token (admins: for another's session).
    #[serde(rename = "accessToken")]
    #[schemars(length(min = 1, max = 4096))]
    pub access_token: Option<SecretString>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshSessionArgs {
    /// The latest refresh token (single use).
    #[serde(rename = "refreshToken")]
    #[schemars(length(min = 1, max = 4096))]
    pub refresh_token: SecretString,
}

/// Tokens for the session.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tokens {
    /// Bearer credential for the other tools (`accessToken` argument).
    pub access_token: String,
    /// Single-use token for refresh-session.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

impl From<IssuedTokens> for Tokens {
    fn from(t: IssuedTokens) -> Self {
        Self {
            access_token: t.access_token.expose().to_owned(),
            refresh_token: t.refresh_token.expose().to_owned(),
            expires_in: t.expires_in,
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionCreated {
    /// The session id: a secret that identifies you to the other tools.
    pub session_id: String,
    pub user_id: String,
    pub username: String,
    pub roles: Vec<String>,
    pub created_at: String,
    /// Absolute expiry; never extended.
    pub expires_at: String,
    pub tokens: Tokens,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    pub id: String,
    pub user_id: String,
    pub username: String,
    pub roles: Vec<String>,
    pub created_at: String,
    pub expires_at: String,
    pub last_accessed_at: String,
    /// What is known of the session's origin (the MCP client's name).
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionList {
    pub sessions: Vec<SessionSummary>,
    pub count: usize,
}

/// A browser context of a session.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContextBrief {
    pub context_id: String,
    pub name: String,
    pub status: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionStatus {
    pub session_id: String,
    pub user_id: String,
    pub username: String,
    pub roles: Vec<String>,
    /// Always "active": an ended session answers SESSION_NOT_FOUND or SESSION_EXPIRED.
    pub status: String,
    pub created_at: String,
    pub expires_at: String,
    /// When the session ends if unused.
    pub idle_expires_at: String,
    pub last_accessed_at: String,
    pub access_token_expires_at: String,
    /// The current access token, renewed automatically near its expiry (only for the session's own credential).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    pub contexts: Vec<ContextBrief>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionRefreshed {
    pub session_id: String,
    pub tokens: Tokens,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionDeleted {
    pub success: bool,
    pub session_id: String,
    pub message: String,
}

/// `info` as a caller sees it; `id` is its id or its handle (see `McpSessions::shown_id`).
fn summary(info: &SessionInfo, id: String) -> SessionSummary {
    let mut metadata = serde_json::Map::new();
    if let Some(client) = &info.client {
        metadata.insert("client".into(), json!(client.as_ref()));
    }
    SessionSummary {
        id,
        user_id: info.user.id.clone(),
        username: info.user.username.clone(),
        roles: info.user.roles.clone(),
        created_at: rfc3339(info.created_ms),
        expires_at: rfc3339(info.expires_ms),
        last_accessed_at: rfc3339(info.last_access_ms),
        metadata,
    }
}

/// What reading a session takes: (its owner's permission, anyone else's).
const READ_SESSION: (Permission, Permission) =
    (Permission::SessionReadOwn, Permission::SessionReadAll);
/// What ending a session takes: (its owner's permission, anyone else's).
const DELETE_SESSION: (Permission, Permission) =
    (Permission::SessionDeleteOwn, Permission::SessionDeleteAll);

impl McpSessions {
    /// The caller of a tool that names one session, and that session: the caller's own needs
    /// `own`, another user's `all` (see [`READ_SESSION`], [`DELETE_SESSION`]).
    async fn named_session(
        &self,
        tool: &'static str,
        args: &SessionArgs,
        (own, all): (Permission, Permission),
    ) -> Result<(Caller, SessionInfo), ToolError> {
        let caller = self
            .caller(args.access_token.as_ref(), args.session_id.as_deref())
            .await?;
        let target = self.target(tool, &caller, args.session_id.as_deref(), own, all)?;
        Ok((caller, target))
    }

    /// Over HTTP, create-session (a password through the model) is off unless the operator
    /// turned it on, and then logs in only the bearer's own user (an admin: anyone).
    fn check_password_login(&self, username: &str) -> Result<(), ToolError> {
        let Some(principal) = self.principal() else {
            return Ok(());
        };
        if !self.state.config.http.allow_password_login {
            return Err(ToolError::new(
                Code::PermissionDenied,
                "create-session is off over HTTP: your Authorization header already logs you in, so call the other tools without credentials (an operator can set http.allow_password_login = true for step-up logins)",
            ));
        }
        if !principal.username.eq_ignore_ascii_case(username) && !self.bearer_is_admin(principal) {
            return Err(ToolError::new(
                Code::PermissionDenied,
                "over HTTP create-session logs in only the bearer's own user",
            ));
        }
        Ok(())
    }

    /// Whether the HTTP bearer's current roles may act on every user's sessions.
    fn bearer_is_admin(&self, principal: &crate::server::Principal) -> bool {
        self.state
            .users
            .by_id(&principal.user_id)
            .is_some_and(|user| {
                self.state
                    .roles
                    .allows(&user.roles, Permission::SessionDeleteAll)
            })
    }

    fn audit_session_event(
        &self,
        event: &'static str,
        tags: &'static [&'static str],
        tool: &'static str,
        caller: &Caller,
        target: &SessionInfo,
    ) -> Result<(), crate::audit::AuditError> {
        self.state.audit.record(
            AuditEvent::new(event, "success", tags)
                .user(&target.user.id, &target.user.username)
                .session(&target.id.to_hex())
                .tool(tool)
                .detail(json!({"by": caller.session.user.username})),
        )
    }
}

// Results are spelled `Result<Json<T>, CallToolResult>` rather than through an alias: rmcp's
// `#[tool]` reads the return type's syntax to derive each tool's advertised `outputSchema`.
#[tool_router(router = session_tools, vis = "pub(super)")]
impl McpSessions {
    #[tool(
        name = "create-session",
        description = "Log in first, unless the host set a bootstrap user. Pass the returned sessionId (a secret) to the other tools."
    )]
    async fn create_session(
        &self,
        Parameters(args): Parameters<CreateSessionArgs>,
        peer: Peer<RoleServer>,
    ) -> Result<Json<SessionCreated>, CallToolResult> {
        let duration = args.duration.unwrap_or(self.state.config.session_duration);
        self.check_password_login(&args.username)?;
        let client: Option<Arc<str>> = peer
            .peer_info()
            .map(|info| Arc::from(info.client_info.name.as_str()));
        let (session, tokens) = self
            .login(
                "create-session",
                &args.username,
                args.password,
                duration,
                client,
            )
            .await?;
        Ok(Json(SessionCreated {
            session_id: session.id.to_hex(),
            user_id: session.user.id.clone(),
            username: session.user.username.clone(),
            roles: session.user.roles.clone(),
            created_at: rfc3339(session.created_ms),
            expires_at: rfc3339(session.expires_ms),
            tokens: tokens.into(),
        }))
    }

    #[tool(
        name = "list-sessions",
        description = "Find live sessions: yours, or (admin) everyone's or one userId's. Then get-session or delete-session."
    )]
    async fn list_sessions(
        &self,
        Parameters(args): Parameters<ListSessionsArgs>,
    ) -> Result<Json<SessionList>, CallToolResult> {
        let tool = "list-sessions";
        let caller = self
            .caller(args.access_token.as_ref(), args.session_id.as_deref())
            .await?;
        let may_read_all = self
            .state
            .roles
            .allows(&caller.session.user.roles, Permission::SessionReadAll);
        let filter = match args.user_id.as_deref() {
            Some(user) if user == caller.user_id() => {
                self.authorize(tool, &caller, Permission::SessionReadOwn)?;
                Some(user.to_owned())
            }
            Some(user) => {
                self.authorize(tool, &caller, Permission::SessionReadAll)?;
                Some(user.to_owned())
            }
            None if may_read_all => None,
            None => {
                self.authorize(tool, &caller, Permission::SessionReadOwn)?;
                Some(caller.user_id().to_owned())
            }
        };
        let sessions: Vec<SessionSummary> = self
            .state
            .sessions
            .list(filter.as_deref(), now_ms())
            .iter()
            .map(|info| summary(info, self.shown_id(&caller, info)))
            .collect();
        Ok(Json(SessionList {
            count: sessions.len(),
            sessions,
        }))
    }

    #[tool(
        name = "get-session",
        description = "Check a session's roles, expiries and contexts. Ended? create-session again."
    )]
    async fn get_session(
        &self,
        Parameters(args): Parameters<SessionArgs>,
    ) -> Result<Json<SessionStatus>, CallToolResult> {
        let tool = "get-session";
        let (caller, target) = self.named_session(tool, &args, READ_SESSION).await?;
        // Over HTTP the header is the credential: no token is handed to the model.
        let access_token = (target.id == caller.session.id && !self.over_http())
            .then(|| self.state.sessions.access_token(target.id))
            .flatten()
            .map(|t| t.expose().to_owned());
        // Named as the caller named it: its id, or the handle list-sessions showed.
        let s = summary(
            &target,
            args.session_id
                .clone()
                .unwrap_or_else(|| target.id.to_hex()),
        );
        Ok(Json(SessionStatus {
            session_id: s.id,
            user_id: s.user_id,
            username: s.username,
            roles: s.roles,
            status: "active".into(),
            created_at: s.created_at,
            expires_at: s.expires_at,
            idle_expires_at: rfc3339(target.idle_expires_ms),
            last_accessed_at: s.last_accessed_at,
            access_token_expires_at: rfc3339(target.access_expires_ms),
            access_token,
            contexts: self
                .state
                .browser
                .list(&target.id.to_hex(), false)
                .await
                .iter()
                .map(|c| ContextBrief {
                    context_id: c.context_id.clone(),
                    name: c.name.clone(),
                    status: c.status.to_owned(),
                })
                .collect(),
        }))
    }

    #[tool(
        name = "refresh-session",
        description = "When the access token nears expiry, trade the refresh token for new ones. Single use: reuse ends the session."
    )]
    async fn refresh_session(
        &self,
        Parameters(args): Parameters<RefreshSessionArgs>,
    ) -> Result<Json<SessionRefreshed>, CallToolResult> {
        let tool = "refresh-session";
        let state = &self.state;
        let now = now_ms();
        let claims = state
            .tokens
            .verify(args.refresh_token.expose(), TokenKind::Refresh, now / 1000)
            .map_err(|_| {
                ToolError::new(
                    Code::AuthFailed,
                    "the refresh token is invalid or expired; log in again with create-session",
                )
            })?;
        if let Some(user) = state.users.by_id(&claims.sub)
            && !state.roles.allows(&user.roles, Permission::SessionRefresh)
        {
            state.audit.record_or_log(
                AuditEvent::new("access.denied", "denied", &[nist::AC_3])
                    .user(&user.id, &user.username)
                    .session(&claims.sid)
                    .tool(tool)
                    .detail(json!({"permission": Permission::SessionRefresh.name()})),
            );
            return Err(ToolError::permission_denied(Permission::SessionRefresh).into());
        }
        if let Some(principal) = self.principal()
            && principal.user_id != claims.sub
            && !self.bearer_is_admin(principal)
        {
            return Err(ToolError::new(
                Code::PermissionDenied,
                "the refresh token is another user's; over HTTP you may refresh only your own sessions",
            )
            .into());
        }
        let (session, tokens) = state.sessions.refresh(&claims, now)?;
        if let Err(e) = state.audit.record(
            AuditEvent::new("session.refresh", "success", &[nist::IA_5, nist::AU_3])
                .user(&session.user.id, &session.user.username)
                .session(&session.id.to_hex())
                .tool(tool),
        ) {
            tracing::error!("{e}");
            state.sessions.delete(session.id, now_ms());
            return Err(ToolError::audit_unavailable(Code::AuthFailed).into());
        }
        Ok(Json(SessionRefreshed {
            session_id: session.id.to_hex(),
            tokens: tokens.into(),
        }))
    }

    #[tool(
        name = "delete-session",
        description = "Log out when done: ends the session, its tokens and its browser contexts."
    )]
    async fn delete_session(
        &self,
        Parameters(args): Parameters<SessionArgs>,
    ) -> Result<Json<SessionDeleted>, CallToolResult> {
        let tool = "delete-session";
        let (caller, target) = self.named_session(tool, &args, DELETE_SESSION).await?;
        // Revocation always proceeds; only its audit record can fail, and that is logged.
        let Some(ended) = self.state.sessions.delete(target.id, now_ms()) else {
            return Err(
                ToolError::new(Code::SessionNotFound, "the session had already ended").into(),
            );
        };
        // Close them now, so they are gone when delete-session answers (the composition root's
        // handler of ended sessions finds nothing left to close).
        self.state
            .close_session_contexts(
                &ended.id,
                &ended.user_id,
                &ended.username,
                ended.reason.as_str(),
            )
            .await;
        if let Err(e) = self.audit_session_event(
            "session.delete",
            &[nist::AC_12, nist::AU_3],
            tool,
            &caller,
            &target,
        ) {
            tracing::error!("session deleted but not audited: {e}");
            return Err(ToolError::audit_unavailable(Code::DeleteFailed).into());
        }
        Ok(Json(SessionDeleted {
            success: true,
            session_id: args
                .session_id
                .clone()
                .unwrap_or_else(|| target.id.to_hex()),
            message: "Session deleted successfully".into(),
        }))
    }
}
