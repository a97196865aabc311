//! Sessions: who is logged in, until when. This module holds what every store shares (the
//! session id, why a session ended, what a caller may learn of one, the errors); `memory` is the
//! store itself, kept in this process.

mod handle;
mod memory;

use std::sync::Arc;

use crate::auth::secret::SecretString;
use crate::auth::users::User;

pub use handle::Handles;
pub use memory::SessionStore;

/// 32 random bytes, shown as 64 lowercase hex characters. Stored binary to keep sessions small.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId([u8; 32]);

impl SessionId {
    /// Parses exactly 64 lowercase hex characters.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 64 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Self(bytes))
    }

    pub(super) fn generate() -> Result<Self, SessionError> {
        let mut bytes = [0u8; 32];
        crate::auth::secret::fill_random(&mut bytes)
            .map_err(|_| SessionError::Internal("random generator failed"))?;
        Ok(Self(bytes))
    }

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    /// The raw bytes: associated data when sealing the session's tokens, input of its handle.
    pub(super) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Session ids are bearer secrets: never printed.
impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionId([redacted])")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Absolute expiry reached.
    Expired,
    /// Idle timeout reached.
    Idle,
    /// The user was removed or disabled, or changed their password.
    Revoked,
    /// delete-session.
    Deleted,
    /// A used refresh token was presented again.
    TokenReuse,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Expired => "expired",
            EndReason::Idle => "idle",
            EndReason::Revoked => "revoked",
            EndReason::Deleted => "deleted",
            EndReason::TokenReuse => "token_reuse",
        }
    }
}

/// A session that has ended, for the audit log and the browser.
#[derive(Debug, Clone)]
pub struct EndedSession {
    pub id: SessionId,
    pub user_id: String,
    pub username: String,
    pub reason: EndReason,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("no such session")]
    NotFound,
    #[error("the session has expired")]
    Expired,
    #[error("the user already has {0} live sessions")]
    Limit(usize),
    #[error("the refresh token is invalid")]
    RefreshInvalid,
    #[error("the refresh token was already used")]
    RefreshReused,
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// Timeouts and limits of the store, in milliseconds where they are times.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub idle_ms: u64,
    pub per_user: usize,
    pub access_ttl_secs: u64,
    pub renew_within_ms: u64,
    pub expired_grace_ms: u64,
}

/// Tokens handed to the client. The strings are secrets.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    pub access_token: SecretString,
    pub refresh_token: SecretString,
    /// Seconds the access token is valid for.
    pub expires_in: u64,
}

/// What a caller may learn about a session.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: SessionId,
    pub user: User,
    pub created_ms: u64,
    pub expires_ms: u64,
    pub last_access_ms: u64,
    pub idle_expires_ms: u64,
    pub access_expires_ms: u64,
    pub client: Option<Arc<str>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_parse_only_lowercase_hex() {
        assert!(SessionId::parse(&"a".repeat(64)).is_some());
        assert!(SessionId::parse(&"A".repeat(64)).is_none());
        assert!(SessionId::parse(&"a".repeat(63)).is_none());
        assert!(SessionId::parse(&"g".repeat(64)).is_none());
        let id = SessionId::parse(&"0f".repeat(32));
        assert_eq!(id.map(SessionId::to_hex), Some("0f".repeat(32)));
        assert_eq!(format!("{:?}", id), "Some(SessionId([redacted]))");
    }
}
