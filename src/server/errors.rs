//! The one place where failures become MCP tool results: `isError: true` with the JSON body
//! `{"error": "<sentence>", "code": "<CODE>"}` (+ `retryAfter`). Internal causes are logged,
//! never shown to the client.

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::json;

use crate::browser::BrowserError;
use crate::sessions::SessionError;

/// The user-facing error codes of DESIGN.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidCredentials,
    AuthFailed,
    RateLimited,
    SessionLimit,
    InvalidArgument,
    InvalidSessionId,
    SessionNotFound,
    SessionExpired,
    DeleteFailed,
    PermissionDenied,
    BrowserUnavailable,
    BrowserCrashed,
    BrowserTimeout,
    BrowserError,
    ContextNotFound,
    ContextLimit,
    NavigationBlocked,
    NavigationTimeout,
    NavigationFailed,
    ElementNotFound,
    ScriptError,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidCredentials => "INVALID_CREDENTIALS",
            Code::AuthFailed => "AUTH_FAILED",
            Code::RateLimited => "RATE_LIMITED",
            Code::SessionLimit => "SESSION_LIMIT",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::InvalidSessionId => "INVALID_SESSION_ID",
            Code::SessionNotFound => "SESSION_NOT_FOUND",
            Code::SessionExpired => "SESSION_EXPIRED",
            Code::DeleteFailed => "DELETE_FAILED",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::BrowserUnavailable => "BROWSER_UNAVAILABLE",
            Code::BrowserCrashed => "BROWSER_CRASHED",
            Code::BrowserTimeout => "BROWSER_TIMEOUT",
            Code::BrowserError => "BROWSER_ERROR",
            Code::ContextNotFound => "CONTEXT_NOT_FOUND",
            Code::ContextLimit => "CONTEXT_LIMIT",
            Code::NavigationBlocked => "NAVIGATION_BLOCKED",
            Code::NavigationTimeout => "NAVIGATION_TIMEOUT",
            Code::NavigationFailed => "NAVIGATION_FAILED",
            Code::ElementNotFound => "ELEMENT_NOT_FOUND",
            Code::ScriptError => "SCRIPT_ERROR",
        }
    }
}

/// A failure a tool reports to its caller.
#[derive(Debug, Clone)]
pub struct ToolError {
    pub code: Code,
    pub message: String,
    pub retry_after: Option<u64>,
    /// More fields of the error body (e.g. the policy rule that refused a navigation).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ToolError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
            extra: serde_json::Map::new(),
        }
    }

    /// Adds a field to the error body.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    pub fn rate_limited(retry_after: u64, message: impl Into<String>) -> Self {
        Self {
            code: Code::RateLimited,
            message: message.into(),
            retry_after: Some(retry_after),
            extra: serde_json::Map::new(),
        }
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }

    pub fn permission_denied(permission: crate::auth::rbac::Permission) -> Self {
        Self::new(
            Code::PermissionDenied,
            format!(
                "your role does not grant `{}`; ask an administrator, or act on your own sessions only",
                permission.name()
            ),
        )
    }

    /// The audit log could not record a security action, so the action is refused.
    pub fn audit_unavailable(code: Code) -> Self {
        Self::new(
            code,
            "the audit log cannot be written, so the server refuses this action; check the data directory's disk and permissions",
        )
    }
}

impl From<SessionError> for ToolError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::NotFound => ToolError::new(
                Code::SessionNotFound,
                "no live session has this id; log in again with create-session",
            ),
            SessionError::Expired => ToolError::new(
                Code::SessionExpired,
                "the session has expired; log in again with create-session",
            ),
            SessionError::Limit(max) => ToolError::new(
                Code::SessionLimit,
                format!("you already have {max} live sessions; end one with delete-session first"),
            ),
            SessionError::RefreshInvalid => ToolError::new(
                Code::AuthFailed,
                "the refresh token is invalid or its session has ended; log in again with create-session",
            ),
            SessionError::RefreshReused => ToolError::new(
                Code::AuthFailed,
                "this refresh token was already used, so its session has been ended for safety; log in again with create-session",
            ),
            SessionError::Internal(what) => {
                tracing::error!("session store: {what}");
                ToolError::new(
                    Code::AuthFailed,
                    "the server could not complete the request; try again",
                )
            }
        }
    }
}

impl From<ToolError> for CallToolResult {
    fn from(e: ToolError) -> Self {
        let mut body = json!({"error": e.message, "code": e.code.as_str()});
        if let Some(seconds) = e.retry_after {
            body["retryAfter"] = json!(seconds);
        }
        for (key, value) in e.extra {
            body[key] = value;
        }
        CallToolResult::error(vec![ContentBlock::text(body.to_string())])
    }
}

impl From<SessionError> for CallToolResult {
    fn from(e: SessionError) -> Self {
        ToolError::from(e).into()
    }
}

impl From<BrowserError> for ToolError {
    fn from(e: BrowserError) -> Self {
        let (code, message) = match &e {
            BrowserError::Unavailable => (Code::BrowserUnavailable, e.to_string()),
            BrowserError::Launch(_) => (
                Code::BrowserUnavailable,
                format!("{e}; check that Chromium runs on this machine (`mcp-sessions` logs more with RUST_LOG=info)"),
            ),
            BrowserError::NoDisplay(_) => (Code::BrowserUnavailable, e.to_string()),
            BrowserError::Crashed => (
                Code::BrowserCrashed,
                "the browser crashed or stopped answering and its contexts are gone; create a new context with create-browser-context (it starts a fresh browser)".to_owned(),
            ),
            BrowserError::ContextNotFound => (
                Code::ContextNotFound,
                "this session has no browser context with that id; see list-browser-contexts, or create one".to_owned(),
            ),
            BrowserError::ContextLimit(max) => (
                Code::ContextLimit,
                format!("this session already has {max} browser contexts; close one with close-browser-context first"),
            ),
            BrowserError::UserContextLimit(max) => (
                Code::ContextLimit,
                format!("you already have {max} browser contexts across your sessions; close one (list-browser-contexts in each session) first"),
            ),
            BrowserError::Blocked(why) => {
                return ToolError::new(
                    Code::NavigationBlocked,
                    format!("navigation refused: {why}; only http(s) URLs the server's URL policy allows can be opened"),
                )
                .with("rule", why.rule);
            }
            BrowserError::NavigationTimeout => (
                Code::NavigationTimeout,
                "the page did not finish loading in time; retry with a larger timeoutMs, or read what has loaded".to_owned(),
            ),
            BrowserError::NavigationFailed(why) => (
                Code::NavigationFailed,
                format!("the page could not be loaded ({why}); check the URL and that the site is reachable"),
            ),
            BrowserError::PageCrashed => (
                Code::BrowserError,
                "the page crashed, most likely out of memory (browser.renderer_heap_mb bounds a page's script heap); browser-navigate loads a page again".to_owned(),
            ),
            BrowserError::ContextBusy(_) | BrowserError::UserBusy(_) => {
                return ToolError::rate_limited(
                    1,
                    format!("{e}; wait for the calls under way to finish, then try again"),
                );
            }
            BrowserError::Timeout => (
                Code::BrowserTimeout,
                "the page did not answer in time (it may be busy running a script); try again or close the context".to_owned(),
            ),
            BrowserError::NoElement => (
                Code::ElementNotFound,
                "no element matches the selector; check it with browser-read (mode html) or wait for it with browser-wait-for".to_owned(),
            ),
            BrowserError::Script(text) => (
                Code::ScriptError,
                format!("the expression threw: {text}; fix the expression (browser-read shows the page)"),
            ),
            BrowserError::Internal(text) => {
                tracing::warn!("browser: {text}");
                (Code::BrowserError, "the browser reported an error; try again".to_owned())
            }
        };
        ToolError::new(code, message)
    }
}

impl From<BrowserError> for CallToolResult {
    fn from(e: BrowserError) -> Self {
        ToolError::from(e).into()
    }
}
