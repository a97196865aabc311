//! The context tools: open, list and close the browser contexts of the caller's session, and
//! what every browser tool shares (the argument wrappers, resolving the session a call acts in,
//! auditing, progress). Each checks a permission (context:create, context:use, context:close),
//! that the session is the caller's own (admins may act on others'), and that the context belongs
//! to that session.

use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{CallToolResult, ProgressNotificationParam, ProgressToken};
use rmcp::service::RequestContext;
use rmcp::{Peer, RoleServer};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::McpSessions;
use super::errors::ToolError;
use crate::audit::{AuditEvent, nist};
use crate::auth::rbac::Permission;
use crate::auth::secret::SecretString;
use crate::browser::{ContextInfo, Owner};
use crate::clock::rfc3339;
use crate::sessions::SessionInfo;

// Results are spelled `Result<Json<T>, CallToolResult>`: rmcp's macro finds the output schema
// by that shape, not through an alias.

/// Arguments of a tool that acts within a session.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Scoped<T> {
    /// Session id.
    #[serde(rename = "sessionId")]
    #[schemars(regex(pattern = "^[0-9a-f]{64}$"))]
    pub session_id: Option<String>,
    /// Access token.
    #[serde(rename = "accessToken")]
    #[schemars(length(min = 1, max = 4096))]
    pub access_token: Option<SecretString>,
    #[serde(flatten)]
    pub args: T,
}

/// Arguments of a tool that acts in one context.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct InContext<T> {
    /// Context id.
    #[serde(rename = "contextId")]
    #[schemars(regex(pattern = "^[0-9a-f]{64}$"))]
    pub context_id: String,
    #[serde(flatten)]
    pub args: T,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct Viewport {
    /// CSS pixels.
    #[schemars(range(min = 200, max = 3840))]
    pub width: u32,
    /// CSS pixels.
    #[schemars(range(min = 200, max = 2160))]
    pub height: u32,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContextOptions {
    /// Default true; false shows a window (needs a display).
    pub headless: Option<bool>,
    /// Default 1280×720.
    pub viewport: Option<Viewport>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CreateContextArgs {
    /// A label for the context.
    #[schemars(length(min = 1, max = 64))]
    pub name: Option<String>,
    /// Browser options.
    pub options: Option<ContextOptions>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct NoArgs {}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContextCreated {
    pub context_id: String,
    pub name: String,
    /// Always "chrome".
    #[serde(rename = "type")]
    pub kind: String,
    pub status: String,
    pub created_at: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContextSummary {
    pub context_id: String,
    pub name: String,
    /// "active", or "gone" after its browser crashed.
    pub status: String,
    pub created_at: String,
    /// The page it shows.
    pub url: String,
}

impl From<&ContextInfo> for ContextSummary {
    fn from(c: &ContextInfo) -> Self {
        Self {
            context_id: c.context_id.clone(),
            name: c.name.clone(),
            status: c.status.to_owned(),
            created_at: rfc3339(c.created_ms),
            url: c.url.clone(),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ContextList {
    pub contexts: Vec<ContextSummary>,
    pub count: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContextClosed {
    pub success: bool,
    pub context_id: String,
}

/// MCP progress notifications for a call whose client asked for them (with a progress token).
pub(super) struct Progress {
    peer: Peer<RoleServer>,
    token: Option<ProgressToken>,
}

impl Progress {
    pub(super) fn of(context: &RequestContext<RoleServer>) -> Self {
        Self {
            peer: context.peer.clone(),
            token: context.meta.get_progress_token(),
        }
    }

    /// Reports step `done` of `total`; a client that went away is not an error.
    pub(super) async fn report(&self, done: f64, total: f64, message: &str) {
        if let Some(token) = &self.token {
            let mut param = ProgressNotificationParam::new(token.clone(), done).with_total(total);
            param.message = Some(message.to_owned());
            let _ = self.peer.notify_progress(param).await;
        }
    }
}

/// A session a browser tool acts in, and who asked (an admin may act in another's session).
pub(super) struct Scope {
    pub(super) session: SessionInfo,
    /// The caller's username, recorded as `by` when it is not the session's user.
    by: String,
}

impl Scope {
    pub(super) fn key(&self) -> String {
        self.session.id.to_hex()
    }
}

impl McpSessions {
    /// Resolves the caller, checks `permission`, and the session it acts in (its own, unless an
    /// admin names another).
    pub(super) async fn scope<T>(
        &self,
        tool: &'static str,
        args: &Scoped<T>,
        permission: Permission,
    ) -> Result<Scope, ToolError> {
        let caller = self
            .caller(args.access_token.as_ref(), args.session_id.as_deref())
            .await?;
        self.authorize(tool, &caller, permission)?;
        let session = self.target(
            tool,
            &caller,
            args.session_id.as_deref(),
            permission,
            Permission::SessionReadAll,
        )?;
        Ok(Scope {
            session,
            by: caller.session.user.username.clone(),
        })
    }

    pub(super) fn audit_context(
        &self,
        event: &'static str,
        tool: &'static str,
        scope: &Scope,
        mut detail: Value,
    ) -> Result<(), ToolError> {
        if scope.by != scope.session.user.username {
            // The record names whose session was acted in, and who acted.
            detail["by"] = Value::from(scope.by.as_str());
        }
        self.state
            .audit
            .record(
                AuditEvent::new(event, "success", &[nist::AU_3, nist::AC_3])
                    .user(&scope.session.user.id, &scope.session.user.username)
                    .session(&scope.key())
                    .tool(tool)
                    .detail(detail),
            )
            .map_err(|e| {
                tracing::error!("{e}");
                ToolError::audit_unavailable(super::errors::Code::BrowserError)
            })
    }
}

#[tool_router(router = context_tools, vis = "pub(super)")]
impl McpSessions {
    #[tool(
        name = "create-browser-context",
        description = "Open an isolated browser (own cookies and storage) with one tab. Next: browser-navigate with its contextId."
    )]
    async fn create_browser_context(
        &self,
        Parameters(args): Parameters<Scoped<CreateContextArgs>>,
        context: RequestContext<RoleServer>,
    ) -> Result<Json<ContextCreated>, CallToolResult> {
        let tool = "create-browser-context";
        let progress = Progress::of(&context);
        let scope = self.scope(tool, &args, Permission::ContextCreate).await?;
        let options = args.args.options.unwrap_or_default();
        let owner = Owner {
            session: scope.key(),
            user_id: scope.session.user.id.clone(),
            username: scope.session.user.username.clone(),
            // Over HTTP, the transport session it was opened through: it closes with that.
            transport: self.principal().and_then(|p| p.transport_session.clone()),
        };
        let viewport = options.viewport.map(|v| (v.width, v.height));
        progress
            .report(
                0.0,
                2.0,
                "opening a context (starting the browser if needed)",
            )
            .await;
        let info = self
            .state
            .browser
            .create_context(
                owner,
                args.args.name,
                options.headless.unwrap_or(true),
                viewport,
            )
            .await?;
        // The session may have ended while the browser started, after its contexts were closed:
        // close this one too rather than leave it open for nobody.
        if let Err(ended) = self
            .state
            .sessions
            .peek(scope.session.id, crate::clock::now_ms())
        {
            let _ = self
                .state
                .browser
                .close(&scope.key(), &info.context_id)
                .await;
            return Err(ToolError::from(ended).into());
        }
        if let Err(e) = self.audit_context(
            "context.create",
            tool,
            &scope,
            json!({"contextId": info.context_id, "name": info.name}),
        ) {
            // Fail closed: a context that is not on record does not stay open.
            let _ = self
                .state
                .browser
                .close(&scope.key(), &info.context_id)
                .await;
            return Err(e.into());
        }
        progress.report(2.0, 2.0, "context ready").await;
        Ok(Json(ContextCreated {
            context_id: info.context_id,
            name: info.name,
            kind: "chrome".into(),
            status: info.status.into(),
            created_at: rfc3339(info.created_ms),
        }))
    }

    #[tool(
        name = "list-browser-contexts",
        description = "Find your session's browser contexts and their URLs, to reuse or close them."
    )]
    async fn list_browser_contexts(
        &self,
        Parameters(args): Parameters<Scoped<NoArgs>>,
    ) -> Result<Json<ContextList>, CallToolResult> {
        let tool = "list-browser-contexts";
        let scope = self.scope(tool, &args, Permission::ContextUse).await?;
        let contexts: Vec<ContextSummary> = self
            .state
            .browser
            .list(&scope.key(), true)
            .await
            .iter()
            .map(ContextSummary::from)
            .collect();
        Ok(Json(ContextList {
            count: contexts.len(),
            contexts,
        }))
    }

    #[tool(
        name = "close-browser-context",
        description = "When done with a context: closes it, discarding its cookies and storage."
    )]
    async fn close_browser_context(
        &self,
        Parameters(args): Parameters<Scoped<InContext<NoArgs>>>,
    ) -> Result<Json<ContextClosed>, CallToolResult> {
        let tool = "close-browser-context";
        let scope = self.scope(tool, &args, Permission::ContextClose).await?;
        let info = self
            .state
            .browser
            .close(&scope.key(), &args.args.context_id)
            .await?;
        self.audit_context(
            "context.close",
            tool,
            &scope,
            json!({"contextId": info.context_id, "reason": "requested"}),
        )?;
        Ok(Json(ContextClosed {
            success: true,
            context_id: info.context_id,
        }))
    }
}
