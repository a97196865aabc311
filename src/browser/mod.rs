//! Browser contexts bound to sessions. One Chromium process per user (so a hostile page can only
//! hurt its own user's contexts), launched lazily; each context is a CDP BrowserContext
//! (incognito: cookies, storage and cache isolated) with one tab. DevTools calls are blocking:
//! every one runs on the blocking pool under a timeout of ours, and a browser that stops
//! answering is declared crashed, killed, and relaunched by the next create-browser-context.
//! This module knows nothing of sessions beyond an opaque owner key; the composition root closes
//! a session's contexts when the session ends.
//!
//! `manager` owns every browser and context; `instance` is one user's running Chromium;
//! `process` finds and launches it; `cdp` speaks DevTools over its pipe; `page` is what a tool
//! does in a tab; `targets` puts every target of a context under `policy`, which decides what may
//! be reached; `proxy` is each context's forward proxy, where every connection the context makes
//! is checked after its name is resolved.

mod cdp;
mod instance;
mod manager;
pub mod page;
pub mod policy;
mod process;
pub mod proxy;
pub mod targets;

pub use crate::config::BrowserConfig;
pub use cdp::CdpConnection;
pub use manager::{BrowserManager, Watched};
pub use policy::UrlPolicy;
pub use process::{INSTALL_ADVICE, find_executable};

#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    #[error("{}", INSTALL_ADVICE)]
    Unavailable,
    #[error("the browser could not start: {0}")]
    Launch(String),
    #[error("the browser crashed or stopped answering")]
    Crashed,
    #[error("no such browser context")]
    ContextNotFound,
    #[error("the session already has {0} browser contexts")]
    ContextLimit(usize),
    #[error("the user already has {0} browser contexts across their sessions")]
    UserContextLimit(usize),
    #[error("{0}")]
    Blocked(policy::Refusal),
    #[error("the navigation did not complete in time")]
    NavigationTimeout,
    #[error("the navigation failed: {0}")]
    NavigationFailed(String),
    #[error("the page did not answer in time")]
    Timeout,
    #[error("the page crashed")]
    PageCrashed,
    #[error("too many calls are waiting for this context ({0} at most)")]
    ContextBusy(usize),
    #[error("too many calls are waiting for your browser contexts ({0} at most)")]
    UserBusy(usize),
    #[error("no element matches the selector")]
    NoElement,
    #[error("the script threw: {0}")]
    Script(String),
    #[error("{0}")]
    NoDisplay(String),
    #[error("browser error: {0}")]
    Internal(String),
}

impl From<policy::Refusal> for BrowserError {
    fn from(refusal: policy::Refusal) -> Self {
        BrowserError::Blocked(refusal)
    }
}

/// Who owns a context: an opaque session key and the user whose browser runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub session: String,
    pub user_id: String,
    /// For the audit records of what the browser refuses.
    pub username: String,
    /// The HTTP transport session the context was opened through: it closes when that ends.
    pub transport: Option<std::sync::Arc<str>>,
}

/// A context as callers see it.
#[derive(Debug, Clone)]
pub struct ContextInfo {
    pub context_id: String,
    pub name: String,
    /// "active", or "gone" once its browser crashed.
    pub status: &'static str,
    pub created_ms: u64,
    pub url: String,
}
