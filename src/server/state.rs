//! What the tools share: the stores, the token service, the audit log, the browser and the
//! bootstrap user. Built by the composition root (`app`), handed to the handler behind an `Arc`.

use std::sync::Arc;

use serde_json::json;

use crate::audit::{AuditEvent, AuditLog, nist};
use crate::auth::pats::PatStore;
use crate::auth::rbac::RoleTable;
use crate::auth::secret::SecretString;
use crate::auth::throttle::LoginThrottle;
use crate::auth::tokens::TokenService;
use crate::auth::users::UserStore;
use crate::browser::BrowserManager;
use crate::config::{Config, Paths};
use crate::files::FileWatch;
use crate::sessions::{Handles, SessionId, SessionStore};

/// The user the host logged in through the environment; calls without a credential act as it.
pub struct Bootstrap {
    pub username: String,
    pub password: SecretString,
    /// Its current session; replaced by a fresh login when it has ended.
    pub session: tokio::sync::Mutex<Option<SessionId>>,
}

/// Everything the tools share.
pub struct ServerState {
    pub config: Config,
    pub paths: Paths,
    pub users: UserStore,
    pub sessions: SessionStore,
    /// How other users' sessions are named to an admin (never their ids).
    pub handles: Handles,
    pub tokens: Arc<TokenService>,
    pub audit: AuditLog,
    pub throttle: LoginThrottle,
    pub roles: RoleTable,
    pub bootstrap: Option<Bootstrap>,
    pub browser: BrowserManager,
    /// The signing key file, watched for `mcp-sessions key rotate` (absent with MCP_SESSIONS_JWT_SECRET).
    pub key_watch: Option<FileWatch>,
    /// Personal access tokens (the HTTP mode's bearer credentials).
    pub pats: PatStore,
    /// The session each personal access token acts in over HTTP, by token id.
    pub bearer_sessions: std::sync::Mutex<std::collections::HashMap<String, SessionId>>,
    /// Whether the server speaks Streamable HTTP (else stdio).
    pub over_http: bool,
}

impl ServerState {
    /// Forgets which session a personal access token acted in once that session has ended, and
    /// ends the session of a token that was revoked or expired (its browser contexts close with
    /// it): nobody could use it any more.
    pub fn forget_ended_bearer_sessions(&self, now_ms: u64) {
        let live: std::collections::HashSet<String> = self
            .pats
            .list()
            .into_iter()
            .filter(|record| !record.is_expired(now_ms))
            .map(|record| record.id)
            .collect();
        let mut bearer = self
            .bearer_sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        bearer.retain(|token_id, id| {
            if !live.contains(token_id) {
                self.sessions.revoke(*id, now_ms);
                return false;
            }
            self.sessions.peek(*id, now_ms).is_ok()
        });
    }

    /// Closes the browser contexts of a session that ended, auditing each.
    pub async fn close_session_contexts(
        &self,
        session_id: &SessionId,
        user_id: &str,
        username: &str,
        reason: &str,
    ) {
        let session_hex = session_id.to_hex();
        for context in self.browser.close_session(&session_hex).await {
            self.audit.record_or_log(
                AuditEvent::new("context.close", "success", &[nist::AC_12, nist::AU_3])
                    .user(user_id, username)
                    .session(&session_hex)
                    .detail(json!({"contextId": context.context_id, "reason": reason})),
            );
        }
    }
}
