//! Transport sessions of 2025-11-25 clients (`Mcp-Session-Id`): rmcp's in-memory session worker
//! under ids and rules of ours. An id is 32 bytes from the OS generator as 64 lowercase hex, made
//! here and never taken from a client; each session is bound, when it is made, to the principal
//! that made it (user and credential; with `http.bind_client_address`, address and User-Agent
//! too). Since no session exists before authentication, none can be fixed in advance. Caps per
//! user and in total, and a creation rate per client address, hold under concurrency: the count
//! and the insert happen under one lock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::WorkerTransport;
use rmcp::transport::streamable_http_server::SessionManager;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionHandle, LocalSessionWorker, SessionConfig, SessionError, create_local_session,
};
use rmcp::transport::streamable_http_server::session::{ServerSseMessage, SessionId};
use tokio_stream::wrappers::ReceiverStream;

use super::limits::RateWindow;
use crate::server::Credential;

/// Who a transport session belongs to.
#[derive(Debug, Clone)]
pub struct Binding {
    pub user_id: String,
    pub username: String,
    pub credential: Credential,
    pub address: IpAddr,
    pub user_agent: Option<String>,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The client sent DELETE.
    Deleted,
    /// Unused for `http.session_idle_timeout`.
    Idle,
    /// Its worker stopped (the server is stopping, or the session broke).
    Closed,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Deleted => "deleted",
            EndReason::Idle => "idle",
            EndReason::Closed => "closed",
        }
    }
}

/// A session that ended, for the audit log and for closing its browser contexts.
pub struct Ended {
    pub id: SessionId,
    pub binding: Binding,
    pub reason: EndReason,
}

/// Why a request cannot use the session it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Found,
    /// Unknown, ended or idle past its timeout.
    NotFound,
    /// Another principal's (or, when bound, another address's or User-Agent's).
    Mismatch,
}

/// Why a session was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    UserCap(usize),
    TotalCap(usize),
    Rate { retry_after: u64 },
}

/// What the request that may create a session carries to [`SessionManager::create_session`],
/// which rmcp calls with no request in hand: the principal, and where a refusal is left.
pub struct Creation {
    pub binding: Binding,
    pub refused: Mutex<Option<Refusal>>,
    pub made: Mutex<Option<SessionId>>,
}

tokio::task_local! {
    /// Set by the authentication layer around each request it lets through.
    pub static CREATION: Arc<Creation>;
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("session not found")]
    NotFound,
    #[error("session refused: {0:?}")]
    Refused(Refusal),
    #[error("no authenticated request is creating this session")]
    Unauthenticated,
    #[error("the random generator failed")]
    Random,
    #[error(transparent)]
    Session(#[from] SessionError),
}

struct Entry {
    handle: LocalSessionHandle,
    binding: Binding,
    last_seen_ms: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub idle_ms: u64,
    pub per_user: usize,
    pub total: usize,
    pub create_per_minute: u32,
    pub bind_client_address: bool,
}

/// The server's transport sessions.
pub struct TransportSessions {
    sessions: Mutex<HashMap<SessionId, Arc<Entry>>>,
    limits: Limits,
    creations: RateWindow,
    ended: tokio::sync::mpsc::UnboundedSender<Ended>,
    worker: SessionConfig,
}

/// 64 lowercase hex characters: the only shape of id this server makes.
pub fn well_formed(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl TransportSessions {
    pub fn new(limits: Limits, ended: tokio::sync::mpsc::UnboundedSender<Ended>) -> Self {
        let mut worker = SessionConfig::default();
        // Our own idle timeout ends sessions (and says so); rmcp's is only a backstop.
        worker.keep_alive = Some(Duration::from_millis(limits.idle_ms) + Duration::from_secs(120));
        Self {
            sessions: Mutex::new(HashMap::new()),
            limits,
            creations: RateWindow::new(limits.create_per_minute, 60_000),
            ended,
            worker,
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Arc<Entry>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn entry(&self, id: &SessionId) -> Result<Arc<Entry>, TransportError> {
        self.map().get(id).cloned().ok_or(TransportError::NotFound)
    }

    /// Checks that `binding` may use session `id` now, and records the use. A session idle past
    /// its timeout ends here.
    pub fn check(&self, id: &str, binding: &Binding, now_ms: u64) -> Lookup {
        let id: SessionId = Arc::from(id);
        let entry = match self.map().get(&id) {
            Some(entry) => entry.clone(),
            None => return Lookup::NotFound,
        };
        let mine = entry.binding.user_id == binding.user_id
            && entry.binding.credential == binding.credential
            && (!self.limits.bind_client_address
                || (entry.binding.address == binding.address
                    && entry.binding.user_agent == binding.user_agent));
        if !mine {
            return Lookup::Mismatch;
        }
        let last = entry.last_seen_ms.load(Ordering::SeqCst);
        if now_ms.saturating_sub(last) >= self.limits.idle_ms {
            self.end(&id, EndReason::Idle);
            return Lookup::NotFound;
        }
        entry.last_seen_ms.store(now_ms, Ordering::SeqCst);
        Lookup::Found
    }

    /// Ends the sessions idle past their timeout; forgets old creation counts.
    pub fn sweep(&self, now_ms: u64) {
        let idle: Vec<SessionId> = self
            .map()
            .iter()
            .filter(|(_, e)| {
                now_ms.saturating_sub(e.last_seen_ms.load(Ordering::SeqCst)) >= self.limits.idle_ms
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in idle {
            self.end(&id, EndReason::Idle);
        }
        self.creations.prune(now_ms);
    }

    /// Removes a session and stops its worker; reports it once, whoever ends it first.
    fn end(&self, id: &SessionId, reason: EndReason) {
        let Some(entry) = self.map().remove(id) else {
            return;
        };
        let handle = entry.handle.clone();
        tokio::spawn(async move {
            let _ = handle.close().await;
        });
        let _ = self.ended.send(Ended {
            id: id.clone(),
            binding: entry.binding.clone(),
            reason,
        });
    }

    /// Ends every session (the server is stopping) and returns them, for the caller to audit:
    /// the task that reports endings is about to stop.
    pub fn end_all(&self) -> Vec<Ended> {
        let entries: Vec<(SessionId, Arc<Entry>)> = self.map().drain().collect();
        entries
            .into_iter()
            .map(|(id, entry)| {
                let handle = entry.handle.clone();
                tokio::spawn(async move {
                    let _ = handle.close().await;
                });
                Ended {
                    id,
                    binding: entry.binding.clone(),
                    reason: EndReason::Closed,
                }
            })
            .collect()
    }

    fn new_id() -> Result<SessionId, TransportError> {
        let mut bytes = [0u8; 32];
        crate::auth::secret::fill_random(&mut bytes).map_err(|_| TransportError::Random)?;
        Ok(Arc::from(hex::encode(bytes)))
    }
}

impl SessionManager for TransportSessions {
    type Error = TransportError;
    type Transport = WorkerTransport<LocalSessionWorker>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let creation = CREATION
            .try_with(Arc::clone)
            .map_err(|_| TransportError::Unauthenticated)?;
        let refuse = |refusal: Refusal| {
            *creation.refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(refusal);
            Err(TransportError::Refused(refusal))
        };
        let binding = creation.binding.clone();
        let now = crate::clock::now_ms();
        let mut sessions = self.map();
        if sessions.len() >= self.limits.total {
            return refuse(Refusal::TotalCap(self.limits.total));
        }
        let of_user = sessions
            .values()
            .filter(|e| e.binding.user_id == binding.user_id)
            .count();
        if of_user >= self.limits.per_user {
            return refuse(Refusal::UserCap(self.limits.per_user));
        }
        if let Err(retry_after) = self.creations.hit(binding.address, now) {
            return refuse(Refusal::Rate { retry_after });
        }
        let mut id = Self::new_id()?;
        while sessions.contains_key(&id) {
            id = Self::new_id()?;
        }
        let (handle, worker) = create_local_session(id.clone(), self.worker.clone());
        sessions.insert(
            id.clone(),
            Arc::new(Entry {
                handle,
                binding,
                last_seen_ms: AtomicU64::new(now),
            }),
        );
        *creation.made.lock().unwrap_or_else(|p| p.into_inner()) = Some(id.clone());
        Ok((id, WorkerTransport::spawn(worker)))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        let handle = self.entry(id)?.handle.clone();
        Ok(handle.initialize(message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.map().contains_key(id))
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        // rmcp calls this on DELETE (the authentication layer let only the owner's through) and
        // when a session's worker stops; whichever comes first is what is reported.
        let deleting = CREATION.try_with(|_| ()).is_ok();
        self.end(
            id,
            if deleting {
                EndReason::Deleted
            } else {
                EndReason::Closed
            },
        );
        Ok(())
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let handle = self.entry(id)?.handle.clone();
        let receiver = handle.establish_request_wise_channel().await?;
        handle
            .push_message(message, receiver.http_request_id)
            .await?;
        Ok(ReceiverStream::new(receiver.inner))
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        let handle = self.entry(id)?.handle.clone();
        handle.push_message(message, None).await?;
        Ok(())
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let handle = self.entry(id)?.handle.clone();
        let receiver = handle.establish_common_channel().await?;
        Ok(ReceiverStream::new(receiver.inner))
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let handle = self.entry(id)?.handle.clone();
        let event = last_event_id
            .parse()
            .map_err(|_| TransportError::Session(SessionError::InvalidEventId))?;
        let receiver = handle.resume(event).await?;
        Ok(ReceiverStream::new(receiver.inner))
    }
}
