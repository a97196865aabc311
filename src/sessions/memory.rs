//! The in-memory session store, the one a stdio server (and a single HTTP instance) uses. Absolute
//! and idle expiry, the user's standing (exists, enabled, same password) and ownership are checked
//! on every access, against the users file as it is on disk now (another process may have edited
//! it); the sweeper only frees memory. Every session that ends is announced on a channel so the
//! composition root can audit it and close its browser contexts (sessions never call the
//! browser).
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use subtle::ConstantTimeEq;
use tokio::sync::mpsc::UnboundedSender;

use crate::auth::seal::{SealKey, Sealed};
use crate::auth::secret::SecretString;
use crate::auth::tokens::{Claims, TokenKind, TokenService};
use crate::auth::users::{User, UserRecord, UserStore};

use super::{
    EndReason, EndedSession, IssuedTokens, SessionError, SessionId, SessionInfo, SessionLimits,
};

struct Session {
    user: User,
    credential_stamp: u64,
    created_ms: u64,
    expires_ms: u64,
    last_access_ms: u64,
    /// The jti of the one refresh token that may be used next.
    refresh_jti: [u8; 16],
    access_expires_ms: u64,
    /// The current access token, sealed under `key` with the session id as associated data.
    access_token: Sealed,
    key: SealKey,
    client: Option<Arc<str>>,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<SessionId, Session>,
    by_user: HashMap<String, Vec<SessionId>>,
    /// Recently expired ids → when they ended, to answer SESSION_EXPIRED for a while.
    tombstones: HashMap<SessionId, u64>,
}

struct Shared {
    inner: Mutex<Inner>,
    limits: SessionLimits,
    tokens: Arc<TokenService>,
    users: UserStore,
    ended: UnboundedSender<EndedSession>,
}

/// A cheap `Clone` handle to the sessions.
#[derive(Clone)]
pub struct SessionStore {
    shared: Arc<Shared>,
}

fn decode_jti(jti: &str) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    if hex::decode_to_slice(jti, &mut bytes).is_err() {
        bytes = [0u8; 16];
    }
    bytes
}

impl SessionStore {
    pub fn new(
        limits: SessionLimits,
        tokens: Arc<TokenService>,
        users: UserStore,
        ended: UnboundedSender<EndedSession>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner::default()),
                limits,
                tokens,
                users,
                ended,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.shared.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why `session` can no longer be used at `now`, if it cannot.
    fn dead_reason(&self, session: &Session, now: u64) -> Option<EndReason> {
        if now >= session.expires_ms {
            return Some(EndReason::Expired);
        }
        if now
            >= session
                .last_access_ms
                .saturating_add(self.shared.limits.idle_ms)
        {
            return Some(EndReason::Idle);
        }
        match self.shared.users.by_id(&session.user.id) {
            Some(user) if !user.disabled && user.credential_stamp() == session.credential_stamp => {
                None
            }
            _ => Some(EndReason::Revoked),
        }
    }

    /// Removes a session; announces it unless it was deleted on request (the caller audits that).
    fn end(
        &self,
        inner: &mut Inner,
        id: SessionId,
        reason: EndReason,
        now: u64,
    ) -> Option<EndedSession> {
        let session = inner.sessions.remove(&id)?;
        if let Some(ids) = inner.by_user.get_mut(&session.user.id) {
            ids.retain(|other| *other != id);
            if ids.is_empty() {
                inner.by_user.remove(&session.user.id);
            }
        }
        if matches!(reason, EndReason::Expired | EndReason::Idle) {
            inner.tombstones.insert(id, now);
        }
        let ended = EndedSession {
            id,
            user_id: session.user.id.clone(),
            username: session.user.username.clone(),
            reason,
        };
        // The receiver lives as long as the server; a send error only means it is shutting down.
        let _ = self.shared.ended.send(ended.clone());
        Some(ended)
    }

    fn issue(
        &self,
        kind: TokenKind,
        user_id: &str,
        id: SessionId,
        now_ms: u64,
        until_ms: u64,
    ) -> Result<(String, Claims), SessionError> {
        let now = now_ms / 1000;
        let ttl = match kind {
            TokenKind::Access => self.shared.limits.access_ttl_secs,
            TokenKind::Refresh => u64::MAX,
        }
        .min((until_ms / 1000).saturating_sub(now));
        self.shared
            .tokens
            .issue(kind, user_id, &id.to_hex(), now, ttl)
            .map_err(|_| SessionError::Internal("token issue failed"))
    }

    /// Starts a session for an authenticated `user` lasting `duration_secs`.
    pub fn create(
        &self,
        user: &User,
        duration_secs: u64,
        client: Option<Arc<str>>,
        now: u64,
    ) -> Result<(SessionInfo, IssuedTokens), SessionError> {
        let mut inner = self.lock();
        let existing: Vec<SessionId> = inner.by_user.get(&user.id).cloned().unwrap_or_default();
        let mut live = 0;
        for id in existing {
            let reason = inner
                .sessions
                .get(&id)
                .and_then(|s| self.dead_reason(s, now));
            match reason {
                Some(reason) => {
                    self.end(&mut inner, id, reason, now);
                }
                None => live += 1,
            }
        }
        if live >= self.shared.limits.per_user {
            return Err(SessionError::Limit(self.shared.limits.per_user));
        }
        let mut id = SessionId::generate()?;
        while inner.sessions.contains_key(&id) || inner.tombstones.contains_key(&id) {
            id = SessionId::generate()?;
        }
        let expires_ms = now.saturating_add(duration_secs.saturating_mul(1000));
        let (access, access_claims) =
            self.issue(TokenKind::Access, &user.id, id, now, expires_ms)?;
        let (refresh, refresh_claims) =
            self.issue(TokenKind::Refresh, &user.id, id, now, expires_ms)?;
        let key = SealKey::generate().map_err(|_| SessionError::Internal("sealing key"))?;
        let sealed = key
            .seal(access.as_bytes(), id.as_bytes())
            .map_err(|_| SessionError::Internal("sealing failed"))?;
        let session = Session {
            user: user.clone(),
            credential_stamp: UserRecord::credential_stamp(user),
            created_ms: now,
            expires_ms,
            last_access_ms: now,
            refresh_jti: decode_jti(&refresh_claims.jti),
            access_expires_ms: access_claims.exp * 1000,
            access_token: sealed,
            key,
            client,
        };
        let info = self.info(id, &session);
        inner.sessions.insert(id, session);
        inner.by_user.entry(user.id.clone()).or_default().push(id);
        let tokens = IssuedTokens {
            access_token: SecretString::new(access),
            refresh_token: SecretString::new(refresh),
            expires_in: access_claims.exp.saturating_sub(access_claims.iat),
        };
        Ok((info, tokens))
    }

    fn info(&self, id: SessionId, s: &Session) -> SessionInfo {
        SessionInfo {
            id,
            user: s.user.clone(),
            created_ms: s.created_ms,
            expires_ms: s.expires_ms,
            last_access_ms: s.last_access_ms,
            idle_expires_ms: s
                .last_access_ms
                .saturating_add(self.shared.limits.idle_ms)
                .min(s.expires_ms),
            access_expires_ms: s.access_expires_ms,
            client: s.client.clone(),
        }
    }

    /// The error for an id that is not live: SESSION_EXPIRED while its expiry is recent.
    fn missing(&self, inner: &Inner, id: &SessionId, now: u64) -> SessionError {
        match inner.tombstones.get(id) {
            Some(ended) if now.saturating_sub(*ended) < self.shared.limits.expired_grace_ms => {
                SessionError::Expired
            }
            _ => SessionError::NotFound,
        }
    }

    /// Ends `id` when it can no longer be used; the error to answer when it is not live.
    fn check_live(&self, inner: &mut Inner, id: SessionId, now: u64) -> Result<(), SessionError> {
        let Some(session) = inner.sessions.get(&id) else {
            return Err(self.missing(inner, &id, now));
        };
        if let Some(reason) = self.dead_reason(session, now) {
            self.end(inner, id, reason, now);
            return Err(if reason == EndReason::Revoked {
                SessionError::NotFound
            } else {
                SessionError::Expired
            });
        }
        Ok(())
    }

    /// Uses a session: checks that it is live (ending it if not), records the access and renews
    /// its access token when that is close to expiry. With `owner`, the session must belong to it.
    pub fn touch(
        &self,
        id: SessionId,
        owner: Option<&str>,
        now: u64,
    ) -> Result<SessionInfo, SessionError> {
        self.shared.users.refresh();
        let mut inner = self.lock();
        self.check_live(&mut inner, id, now)?;
        let Some(session) = inner.sessions.get(&id) else {
            return Err(SessionError::NotFound);
        };
        if owner.is_some_and(|owner| owner != session.user.id) {
            return Err(SessionError::NotFound);
        }
        let user = self.shared.users.by_id(&session.user.id);
        let renew = session.access_expires_ms.saturating_sub(now)
            <= self.shared.limits.renew_within_ms
            && session.access_expires_ms < session.expires_ms;
        let renewed = if renew {
            let (token, claims) = self.issue(
                TokenKind::Access,
                &session.user.id,
                id,
                now,
                session.expires_ms,
            )?;
            let sealed = session
                .key
                .seal(token.as_bytes(), id.as_bytes())
                .map_err(|_| SessionError::Internal("sealing failed"))?;
            Some((sealed, claims.exp * 1000))
        } else {
            None
        };
        let Some(session) = inner.sessions.get_mut(&id) else {
            return Err(SessionError::NotFound);
        };
        session.last_access_ms = now;
        if let Some(user) = user {
            // Roles and names come from the user store on every access.
            session.user = user;
        }
        if let Some((sealed, expires_ms)) = renewed {
            session.access_token = sealed;
            session.access_expires_ms = expires_ms;
        }
        let session = &inner.sessions[&id];
        Ok(self.info(id, session))
    }

    /// The session's current access token (renewed by [`touch`](Self::touch) near its expiry).
    pub fn access_token(&self, id: SessionId) -> Option<SecretString> {
        let inner = self.lock();
        let session = inner.sessions.get(&id)?;
        let plain = session
            .key
            .open(&session.access_token, id.as_bytes())
            .ok()?;
        String::from_utf8(plain.to_vec())
            .ok()
            .map(SecretString::new)
    }

    /// Looks at a session without touching it (admin listing, get-session of another's).
    pub fn peek(&self, id: SessionId, now: u64) -> Result<SessionInfo, SessionError> {
        self.shared.users.refresh();
        let mut inner = self.lock();
        self.check_live(&mut inner, id, now)?;
        let session = inner.sessions.get(&id).ok_or(SessionError::NotFound)?;
        Ok(self.info(id, session))
    }

    /// Ends a session on request; `None` if it was not live.
    pub fn delete(&self, id: SessionId, now: u64) -> Option<EndedSession> {
        let mut inner = self.lock();
        self.end(&mut inner, id, EndReason::Deleted, now)
    }

    /// Ends a session because the credential it was started for was revoked; `None` if it was
    /// not live. Reported (and audited) like any other ending.
    pub fn revoke(&self, id: SessionId, now: u64) -> Option<EndedSession> {
        let mut inner = self.lock();
        self.end(&mut inner, id, EndReason::Revoked, now)
    }

    /// Live sessions, of one user or of all, oldest first.
    pub fn list(&self, user_id: Option<&str>, now: u64) -> Vec<SessionInfo> {
        self.shared.users.refresh();
        let mut inner = self.lock();
        let ids: Vec<SessionId> = match user_id {
            Some(user) => inner.by_user.get(user).cloned().unwrap_or_default(),
            None => inner.sessions.keys().copied().collect(),
        };
        let mut live = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(session) = inner.sessions.get(&id) else {
                continue;
            };
            match self.dead_reason(session, now) {
                Some(reason) => {
                    self.end(&mut inner, id, reason, now);
                }
                None => live.push(self.info(id, session)),
            }
        }
        live.sort_by_key(|s| s.created_ms);
        live
    }

    /// Rotates a verified refresh token: exactly one use per token; a second use of the same
    /// token ends the session (RFC 9700 §4.14.2).
    pub fn refresh(
        &self,
        claims: &Claims,
        now: u64,
    ) -> Result<(SessionInfo, IssuedTokens), SessionError> {
        let id = SessionId::parse(&claims.sid).ok_or(SessionError::RefreshInvalid)?;
        self.shared.users.refresh();
        let mut inner = self.lock();
        let Some(session) = inner.sessions.get(&id) else {
            return Err(match self.missing(&inner, &id, now) {
                SessionError::Expired => SessionError::Expired,
                _ => SessionError::RefreshInvalid,
            });
        };
        if session.user.id != claims.sub {
            return Err(SessionError::RefreshInvalid);
        }
        if let Some(reason) = self.dead_reason(session, now) {
            self.end(&mut inner, id, reason, now);
            return Err(SessionError::Expired);
        }
        let presented = decode_jti(&claims.jti);
        if !bool::from(presented.ct_eq(&session.refresh_jti)) {
            self.end(&mut inner, id, EndReason::TokenReuse, now);
            return Err(SessionError::RefreshReused);
        }
        let (user_id, expires_ms) = (session.user.id.clone(), session.expires_ms);
        let (access, access_claims) =
            self.issue(TokenKind::Access, &user_id, id, now, expires_ms)?;
        let (refresh, refresh_claims) =
            self.issue(TokenKind::Refresh, &user_id, id, now, expires_ms)?;
        let Some(session) = inner.sessions.get_mut(&id) else {
            return Err(SessionError::NotFound);
        };
        let sealed = session
            .key
            .seal(access.as_bytes(), id.as_bytes())
            .map_err(|_| SessionError::Internal("sealing failed"))?;
        session.refresh_jti = decode_jti(&refresh_claims.jti);
        session.access_token = sealed;
        session.access_expires_ms = access_claims.exp * 1000;
        session.last_access_ms = now;
        let session = &inner.sessions[&id];
        let info = self.info(id, session);
        Ok((
            info,
            IssuedTokens {
                access_token: SecretString::new(access),
                refresh_token: SecretString::new(refresh),
                expires_in: access_claims.exp.saturating_sub(access_claims.iat),
            },
        ))
    }

    /// Ends every session that can no longer be used and forgets old tombstones. Returns how
    /// many sessions it ended.
    pub fn sweep(&self, now: u64) -> usize {
        let mut inner = self.lock();
        let dead: Vec<(SessionId, EndReason)> = inner
            .sessions
            .iter()
            .filter_map(|(id, s)| self.dead_reason(s, now).map(|r| (*id, r)))
            .collect();
        for (id, reason) in &dead {
            self.end(&mut inner, *id, *reason, now);
        }
        let grace = self.shared.limits.expired_grace_ms;
        inner
            .tombstones
            .retain(|_, ended| now.saturating_sub(*ended) < grace);
        if inner.sessions.capacity() > 2 * inner.sessions.len() + 1024 {
            inner.sessions.shrink_to_fit();
            inner.by_user.shrink_to_fit();
            inner.tombstones.shrink_to_fit();
        }
        dead.len()
    }

    /// Ends every session (server shutdown); returns them.
    pub fn end_all(&self) -> Vec<SessionId> {
        let mut inner = self.lock();
        let ids: Vec<SessionId> = inner.sessions.keys().copied().collect();
        inner.sessions.clear();
        inner.by_user.clear();
        ids
    }
}
