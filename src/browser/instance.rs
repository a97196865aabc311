//! A user's running Chromium (its process, its DevTools pipe and the targets attached on it) and
//! the contexts open in it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use headless_chrome::protocol::cdp::Target;
use headless_chrome::protocol::cdp::types::Method;

use super::cdp::Pipe;
use super::page::PageError;
use super::process::ChromeProcess;
use super::proxy::ContextProxy;
use super::targets::{ContextNet, Targets};
use super::{CdpConnection, ContextInfo, Owner};

/// One user's Chromium and its DevTools pipe.
pub(super) struct UserBrowser {
    pub(super) pipe: Arc<Pipe>,
    pub(super) targets: Arc<Targets>,
    pub(super) process: Mutex<Option<ChromeProcess>>,
    /// Each context's downloads go to a directory of its own under this one (in the profile).
    pub(super) downloads: std::path::PathBuf,
    pub(super) crashed: AtomicBool,
    /// When it last had a context (for idle shutdown), ms.
    pub(super) last_used_ms: AtomicU64,
}

impl UserBrowser {
    pub(super) fn process_exited(&self) -> bool {
        if self.pipe.is_closed() {
            return true;
        }
        let mut guard = self.process.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_mut().is_none_or(|p| !p.is_alive())
    }

    /// A browser-level DevTools call on the control connection.
    pub(super) fn control<M: Method + serde::Serialize>(
        &self,
        method: M,
        timeout: Duration,
    ) -> Result<M::ReturnObject, PageError> {
        Ok(CdpConnection::new(self.pipe.clone(), None).send(method, timeout)?)
    }

    /// The URL a target shows.
    pub(super) fn target_url(&self, target_id: &str) -> String {
        self.control(
            Target::GetTargetInfo {
                target_id: Some(target_id.to_owned()),
            },
            Duration::from_secs(2),
        )
        .map(|reply| reply.target_info.url)
        .unwrap_or_default()
    }

    /// Kills the process and removes its profile.
    pub(super) fn stop(&self) {
        let process = self
            .process
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(mut process) = process {
            process.stop();
        }
    }
}

pub(super) struct ContextEntry {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) owner: Owner,
    pub(super) headless: bool,
    pub(super) browser: Arc<UserBrowser>,
    /// The CDP BrowserContext.
    pub(super) cdp_id: String,
    pub(super) target_id: String,
    /// The policy state of its targets (refusals, tabs).
    pub(super) net: Arc<ContextNet>,
    /// Where every connection of the context goes; it stops with the context.
    pub(super) _proxy: ContextProxy,
    /// The tab's own DevTools session; one operation at a time. An async lock: a call waits
    /// for its turn without holding a blocking thread, and stops waiting when it is dropped
    /// (cancelled) or its time is up.
    pub(super) page: Arc<tokio::sync::Mutex<CdpConnection>>,
    pub(super) created_ms: u64,
    /// When a call last used it; an unused context closes after `context_idle_timeout`.
    pub(super) last_used_ms: std::sync::atomic::AtomicU64,
}

impl ContextEntry {
    pub(super) fn gone(&self) -> bool {
        self.browser.crashed.load(Ordering::SeqCst)
    }

    /// What callers see; `url` is asked of the browser only when `with_url` (a blocking call).
    pub(super) fn info(&self, with_url: bool) -> ContextInfo {
        let gone = self.gone();
        ContextInfo {
            context_id: self.id.clone(),
            name: self.name.clone(),
            status: if gone { "gone" } else { "active" },
            created_ms: self.created_ms,
            url: if with_url && !gone {
                self.browser.target_url(&self.target_id)
            } else {
                String::new()
            },
        }
    }
}
