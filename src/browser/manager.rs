//! Every browser and context of the server: launching a user's browser on first use, opening and
//! closing contexts, running page operations on the blocking pool under our own timeouts, and
//! declaring a browser that stops answering crashed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use headless_chrome::protocol::cdp::{Browser, Target};

use super::cdp::Pipe;
use super::instance::{ContextEntry, UserBrowser};
use super::page::{self, PageError};
use super::policy::Refusal;
use super::process::{self, ChromeProcess, LaunchSpec, sandbox_enabled};
use super::proxy::ContextProxy;
use super::targets::{self, BlockSink, BlockedRequest, CONNECTION, ContextNet, Targets};
use super::{BrowserConfig, BrowserError, CdpConnection, ContextInfo, Owner, UrlPolicy};

type Slot = Arc<tokio::sync::Mutex<Option<Arc<UserBrowser>>>>;

struct Shared {
    config: BrowserConfig,
    policy: UrlPolicy,
    profile_root: PathBuf,
    /// (user id, headless) → that user's browser, launched on first use.
    browsers: Mutex<HashMap<(String, bool), Slot>>,
    contexts: Mutex<HashMap<String, Arc<ContextEntry>>>,
    /// Contexts being opened: counted against the caps with the open ones, so that concurrent
    /// calls cannot all pass the check before any of them is inserted.
    reserved: Mutex<Vec<Owner>>,
    profile_counter: AtomicU64,
    /// Told of every request or target the policy refuses (the audit log).
    sink: BlockSink,
    /// Page calls running or waiting, per context id and per user id.
    queued: Mutex<HashMap<String, usize>>,
}

/// A page call's place in its context's and its user's queues; given back when dropped.
struct Queued {
    shared: Arc<Shared>,
    keys: [String; 2],
}

impl Drop for Queued {
    fn drop(&mut self) {
        let mut queued = self.shared.queued.lock().unwrap_or_else(|p| p.into_inner());
        for key in &self.keys {
            if let Some(n) = queued.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    queued.remove(key);
                }
            }
        }
    }
}

/// A place held for a context being opened; given back when dropped (opened or failed).
struct Reservation {
    shared: Arc<Shared>,
    owner: Owner,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut reserved = self
            .shared
            .reserved
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(at) = reserved.iter().position(|o| *o == self.owner) {
            reserved.swap_remove(at);
        }
    }
}

/// What a page operation returned, and the requests the policy refused while it ran.
pub struct Watched<T> {
    pub value: T,
    pub blocked: Vec<BlockedRequest>,
}

impl<T> Watched<T> {
    /// The refusal of a tab's own document during the call, if there was one: the request
    /// itself, or (`landed_on`, where the tab ended) the connection the proxy refused for it.
    pub fn blocked_document(&self, landed_on: &str) -> Option<Refusal> {
        document_refusal(&self.blocked).or_else(|| {
            let url = url::Url::parse(landed_on).ok()?;
            let port = url.port_or_known_default()?;
            let host = url.host_str()?;
            let connection = self
                .blocked
                .iter()
                .find(|b| b.kind == CONNECTION && b.origin == format!("{host}:{port}"))?;
            Some(connection_refusal(connection))
        })
    }
}

/// A refused connection, as the agent is told of it when its navigation failed.
fn connection_refusal(connection: &BlockedRequest) -> Refusal {
    Refusal {
        rule: connection.rule,
        reason: format!(
            "the browser may not connect to {}: the rule `{}` refuses what it resolves to",
            connection.origin, connection.rule
        ),
    }
}

/// A refusal of a tab's own document (a navigation), as the agent is told of it.
fn document_refusal(blocked: &[BlockedRequest]) -> Option<Refusal> {
    let document = blocked.iter().find(|b| b.top_level)?;
    let how = if document.redirect {
        "the page was redirected to"
    } else {
        "the page was sent to"
    };
    Some(Refusal {
        rule: document.rule,
        reason: format!(
            "{how} {}, which the rule `{}` refuses",
            document.origin, document.rule
        ),
    })
}

/// Every browser and context of the server. A cheap `Clone` handle.
#[derive(Clone)]
pub struct BrowserManager {
    shared: Arc<Shared>,
}

impl BrowserManager {
    /// `data_dir/browser-profiles` holds the profiles; stale ones from a killed run are removed.
    pub fn new(config: BrowserConfig, policy: UrlPolicy, data_dir: &Path, sink: BlockSink) -> Self {
        let profile_root = data_dir.join("browser-profiles");
        process::remove_stale_profiles(&profile_root);
        Self {
            shared: Arc::new(Shared {
                config,
                policy,
                profile_root,
                browsers: Mutex::new(HashMap::new()),
                contexts: Mutex::new(HashMap::new()),
                reserved: Mutex::new(Vec::new()),
                profile_counter: AtomicU64::new(0),
                sink,
                queued: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn config(&self) -> &BrowserConfig {
        &self.shared.config
    }

    pub fn policy(&self) -> &UrlPolicy {
        &self.shared.policy
    }

    fn contexts(&self) -> MutexGuard<'_, HashMap<String, Arc<ContextEntry>>> {
        self.shared
            .contexts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn slot(&self, user_id: &str, headless: bool) -> Slot {
        let mut browsers = self
            .shared
            .browsers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        browsers
            .entry((user_id.to_owned(), headless))
            .or_default()
            .clone()
    }

    /// The user's live browser, launching one if needed.
    async fn browser_for(
        &self,
        user_id: &str,
        headless: bool,
    ) -> Result<Arc<UserBrowser>, BrowserError> {
        let slot = self.slot(user_id, headless);
        let mut current = slot.lock().await;
        if let Some(browser) = current.as_ref()
            && !browser.crashed.load(Ordering::SeqCst)
            && !browser.process_exited()
        {
            return Ok(browser.clone());
        }
        if let Some(old) = current.take() {
            self.mark_crashed(&old);
        }
        let executable = process::find_executable(self.shared.config.chrome_path.as_deref())
            .ok_or(BrowserError::Unavailable)?;
        if !headless && !display_available() {
            return Err(BrowserError::NoDisplay(
                "a visible browser window needs a display (DISPLAY or WAYLAND_DISPLAY); use headless: true".into(),
            ));
        }
        let n = self.shared.profile_counter.fetch_add(1, Ordering::SeqCst);
        let spec = LaunchSpec {
            executable,
            profile_dir: self
                .shared
                .profile_root
                .join(format!("{}-{n}", std::process::id())),
            headless,
            sandbox: sandbox_enabled(&self.shared.config),
            renderer_heap_mb: self.shared.config.renderer_heap_mb,
        };
        let launch_timeout = Duration::from_millis(self.shared.config.launch_timeout_ms);
        let launched = tokio::task::spawn_blocking(move || start_browser(&spec, launch_timeout))
            .await
            .map_err(|e| BrowserError::Internal(e.to_string()))??;
        let browser = Arc::new(launched);
        *current = Some(browser.clone());
        Ok(browser)
    }

    /// Marks a browser dead: its contexts turn "gone" and its process is killed.
    fn mark_crashed(&self, browser: &Arc<UserBrowser>) {
        if !browser.crashed.swap(true, Ordering::SeqCst) {
            tracing::warn!("a browser crashed or stopped answering; its contexts are gone");
        }
        let browser = browser.clone();
        std::thread::spawn(move || browser.stop());
    }

    /// Whether the browser still answers at the browser level.
    async fn answers(&self, browser: &Arc<UserBrowser>) -> bool {
        if browser.crashed.load(Ordering::SeqCst) || browser.process_exited() {
            return false;
        }
        let probe = browser.clone();
        let task = tokio::task::spawn_blocking(move || {
            probe
                .control(Browser::GetVersion(None), Duration::from_secs(2))
                .is_ok()
        });
        matches!(
            tokio::time::timeout(Duration::from_secs(3), task).await,
            Ok(Ok(true))
        )
    }

    /// Takes a place in the queues of `entry` and of its user, if both have room.
    fn enqueue(&self, entry: &ContextEntry) -> Result<Queued, BrowserError> {
        let config = &self.shared.config;
        let keys = [
            format!("c {}", entry.id),
            format!("u {}", entry.owner.user_id),
        ];
        let mut queued = self.shared.queued.lock().unwrap_or_else(|p| p.into_inner());
        let count = |key: &String| queued.get(key).copied().unwrap_or(0);
        if count(&keys[0]) >= config.max_queued_calls_per_context {
            return Err(BrowserError::ContextBusy(
                config.max_queued_calls_per_context,
            ));
        }
        if count(&keys[1]) >= config.max_queued_calls_per_user {
            return Err(BrowserError::UserBusy(config.max_queued_calls_per_user));
        }
        for key in &keys {
            *queued.entry(key.clone()).or_insert(0) += 1;
        }
        drop(queued);
        Ok(Queued {
            shared: self.shared.clone(),
            keys,
        })
    }

    /// Holds a place for a new context of `owner` if the session and the user are under their
    /// caps, counting the open contexts and those being opened, under one lock.
    fn reserve(&self, owner: &Owner) -> Result<Reservation, BrowserError> {
        let config = &self.shared.config;
        let contexts = self.contexts();
        let mut reserved = self
            .shared
            .reserved
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let live: Vec<&Owner> = contexts
            .values()
            .filter(|c| !c.browser.crashed.load(Ordering::SeqCst))
            .map(|c| &c.owner)
            .chain(reserved.iter())
            .collect();
        let of_session = live.iter().filter(|o| o.session == owner.session).count();
        if of_session >= config.max_contexts_per_session {
            return Err(BrowserError::ContextLimit(config.max_contexts_per_session));
        }
        let of_user = live.iter().filter(|o| o.user_id == owner.user_id).count();
        if of_user >= config.max_contexts_per_user {
            return Err(BrowserError::UserContextLimit(config.max_contexts_per_user));
        }
        reserved.push(owner.clone());
        drop(contexts);
        Ok(Reservation {
            shared: self.shared.clone(),
            owner: owner.clone(),
        })
    }

    /// Creates a context with one tab for `owner`.
    pub async fn create_context(
        &self,
        owner: Owner,
        name: Option<String>,
        headless: bool,
        viewport: Option<(u32, u32)>,
    ) -> Result<ContextInfo, BrowserError> {
        let _reservation = self.reserve(&owner)?;
        let browser = self.browser_for(&owner.user_id, headless).await?;
        let (width, height) = viewport.unwrap_or((
            self.shared.config.viewport_width,
            self.shared.config.viewport_height,
        ));
        let action_timeout = Duration::from_millis(self.shared.config.action_timeout_ms);
        let id = crate::auth::secret::random_hex_id()
            .map_err(|e| BrowserError::Internal(e.to_string()))?;
        let net = Arc::new(ContextNet::new(
            owner.clone(),
            id.clone(),
            self.shared.policy.clone(),
            self.shared.config.max_tabs_per_context,
            self.shared.sink.clone(),
        ));
        let proxy = ContextProxy::start(net.clone()).await.map_err(|e| {
            BrowserError::Internal(format!("cannot start the context's proxy: {e}"))
        })?;
        let proxy_url = proxy.url();
        let worker = browser.clone();
        let context_net = net.clone();
        // Dropped before it is disarmed (the call was cancelled, or failed), the guard disposes of
        // whatever BrowserContext the blocking task made or will make.
        let opening = Opening::new(browser.clone());
        let made = opening.made.clone();
        let task = tokio::task::spawn_blocking(move || {
            open_context(
                &worker,
                context_net,
                &made,
                &proxy_url,
                (width, height),
                action_timeout,
            )
        });
        let (cdp_id, target_id, page) = self
            .finish(&browser, action_timeout * 3, task, false)
            .await?;
        opening.disarm();
        let entry = Arc::new(ContextEntry {
            id: id.clone(),
            name: name.unwrap_or_else(|| format!("context-{}", &id[..8])),
            owner,
            headless,
            browser,
            cdp_id,
            target_id,
            net,
            _proxy: proxy,
            page: Arc::new(tokio::sync::Mutex::new(page)),
            created_ms: crate::clock::now_ms(),
            last_used_ms: AtomicU64::new(crate::clock::now_ms()),
        });
        let info = entry.info(false);
        self.contexts().insert(id, entry);
        Ok(info)
    }

    /// Waits for a blocking browser task; classifies failures, declaring the browser crashed when
    /// it no longer answers.
    async fn finish<T>(
        &self,
        browser: &Arc<UserBrowser>,
        timeout: Duration,
        task: tokio::task::JoinHandle<Result<T, PageError>>,
        navigation: bool,
    ) -> Result<T, BrowserError> {
        let outcome = tokio::time::timeout(timeout + Duration::from_secs(1), task).await;
        let failure = match outcome {
            Ok(Ok(Ok(value))) => return Ok(value),
            Ok(Ok(Err(e))) => e,
            Ok(Err(join)) => PageError::Protocol(join.to_string()),
            Err(_) => PageError::Timeout,
        };
        match failure {
            PageError::NoElement => Err(BrowserError::NoElement),
            PageError::Script(text) => Err(BrowserError::Script(text)),
            PageError::Navigation(text) => Err(BrowserError::NavigationFailed(text)),
            PageError::Timeout | PageError::Protocol(_) => {
                if !self.answers(browser).await {
                    self.mark_crashed(browser);
                    return Err(BrowserError::Crashed);
                }
                match failure {
                    PageError::Timeout if navigation => Err(BrowserError::NavigationTimeout),
                    PageError::Timeout => Err(BrowserError::Timeout),
                    PageError::Protocol(text) => Err(BrowserError::Internal(text)),
                    _ => Err(BrowserError::Timeout),
                }
            }
        }
    }

    fn entry(
        &self,
        owner_session: &str,
        context_id: &str,
    ) -> Result<Arc<ContextEntry>, BrowserError> {
        self.contexts()
            .get(context_id)
            .filter(|c| c.owner.session == owner_session)
            .cloned()
            .ok_or(BrowserError::ContextNotFound)
    }

    /// Runs a page operation on `context_id` of `session`, bounded by `timeout`; says what the
    /// policy refused meanwhile. A call that failed because its tab's own document was refused
    /// (a redirect or a navigation the page started) answers that refusal.
    pub async fn with_page<T, F>(
        &self,
        session: &str,
        context_id: &str,
        timeout: Duration,
        navigation: bool,
        op: F,
    ) -> Result<Watched<T>, BrowserError>
    where
        T: Send + 'static,
        F: FnOnce(&mut CdpConnection) -> Result<T, PageError> + Send + 'static,
    {
        let entry = self.entry(session, context_id)?;
        if entry.browser.crashed.load(Ordering::SeqCst) {
            return Err(BrowserError::Crashed);
        }
        entry
            .last_used_ms
            .store(crate::clock::now_ms(), Ordering::SeqCst);
        // A bounded queue: a flood of calls is refused, not held (each waiting call is memory
        // and, once its turn comes, a blocking thread).
        let _place = self.enqueue(&entry)?;
        // Wait for the context's turn here, not on a blocking thread: a flood of calls on one
        // context must not fill the pool that every user's browser work and logins share.
        let Ok(mut page) = tokio::time::timeout(timeout, entry.page.clone().lock_owned()).await
        else {
            return Err(if navigation {
                BrowserError::NavigationTimeout
            } else {
                BrowserError::Timeout
            });
        };
        let mark = entry.net.blocked.load(Ordering::SeqCst);
        let task = tokio::task::spawn_blocking(move || op(&mut page));
        let outcome = self.finish(&entry.browser, timeout, task, navigation).await;
        let blocked = entry.net.since(mark);
        match outcome {
            Ok(value) => {
                // A navigation after a crash loads the page again.
                entry.net.crashed.store(false, Ordering::SeqCst);
                Ok(Watched { value, blocked })
            }
            Err(_) if entry.net.crashed.load(Ordering::SeqCst) => Err(BrowserError::PageCrashed),
            Err(e) => {
                let refusal = document_refusal(&blocked).or_else(|| match e {
                    // A navigation whose connection the proxy refused (a tunnel, which the
                    // browser reports as a failed load).
                    BrowserError::NavigationFailed(_) => blocked
                        .iter()
                        .find(|b| b.kind == CONNECTION)
                        .map(connection_refusal),
                    _ => None,
                });
                Err(refusal.map_or(e, BrowserError::Blocked))
            }
        }
    }

    /// The contexts of a session, with the page each shows when `with_urls`.
    pub async fn list(&self, session: &str, with_urls: bool) -> Vec<ContextInfo> {
        let entries: Vec<Arc<ContextEntry>> = self
            .contexts()
            .values()
            .filter(|c| c.owner.session == session)
            .cloned()
            .collect();
        // Only the URLs need the browser (a blocking call); without them nothing leaves this thread.
        let mut list = if with_urls && !entries.is_empty() {
            let task = tokio::task::spawn_blocking(move || {
                entries.iter().map(|c| c.info(true)).collect::<Vec<_>>()
            });
            task.await.unwrap_or_default()
        } else {
            entries.iter().map(|c| c.info(false)).collect()
        };
        list.sort_by_key(|c| c.created_ms);
        list
    }

    /// Closes a context: disposes its BrowserContext (tabs, cookies, storage) over a browser-level
    /// connection. Returns whether it existed.
    pub async fn close(
        &self,
        session: &str,
        context_id: &str,
    ) -> Result<ContextInfo, BrowserError> {
        let entry = self.entry(session, context_id)?;
        self.contexts().remove(context_id);
        let info = entry.info(false);
        self.dispose(entry).await;
        Ok(info)
    }

    async fn dispose(&self, entry: Arc<ContextEntry>) {
        entry
            .browser
            .last_used_ms
            .store(crate::clock::now_ms(), Ordering::SeqCst);
        if entry.browser.crashed.load(Ordering::SeqCst) {
            return;
        }
        let result =
            tokio::task::spawn_blocking(move || discard_context(&entry.browser, &entry.cdp_id))
                .await;
        if let Err(e) = result {
            tracing::warn!("disposing a browser context failed: {e}");
        }
    }

    /// Closes every context of a session (it ended). Returns what was closed.
    pub async fn close_session(&self, session: &str) -> Vec<ContextInfo> {
        self.close_matching(|c| c.owner.session == session)
            .await
            .into_iter()
            .map(|(_, info)| info)
            .collect()
    }

    /// Closes the contexts opened through an HTTP transport session that ended.
    pub async fn close_transport(&self, transport: &str) -> Vec<(Owner, ContextInfo)> {
        self.close_matching(|c| c.owner.transport.as_deref() == Some(transport))
            .await
    }

    /// Closes the contexts no call has used for `context_idle_timeout` seconds.
    pub async fn close_idle(&self, now_ms: u64) -> Vec<(Owner, ContextInfo)> {
        let idle_ms = self.shared.config.context_idle_timeout.saturating_mul(1000);
        self.close_matching(|c| {
            now_ms.saturating_sub(c.last_used_ms.load(Ordering::SeqCst)) >= idle_ms
        })
        .await
    }

    /// Removes the contexts `which` picks, then disposes of each. Returns what was closed.
    async fn close_matching(
        &self,
        which: impl Fn(&ContextEntry) -> bool,
    ) -> Vec<(Owner, ContextInfo)> {
        let entries: Vec<Arc<ContextEntry>> = {
            let mut contexts = self.contexts();
            let ids: Vec<String> = contexts
                .values()
                .filter(|c| which(c))
                .map(|c| c.id.clone())
                .collect();
            ids.iter().filter_map(|id| contexts.remove(id)).collect()
        };
        let mut closed = Vec::with_capacity(entries.len());
        for entry in entries {
            closed.push((entry.owner.clone(), entry.info(false)));
            self.dispose(entry).await;
        }
        closed
    }

    /// Stops browsers that have had no context for `idle_shutdown` seconds.
    pub fn stop_idle(&self, now_ms: u64) {
        let busy: Vec<(String, bool)> = self
            .contexts()
            .values()
            .map(|c| (c.owner.user_id.clone(), c.headless))
            .collect();
        let idle_ms = self.shared.config.idle_shutdown * 1000;
        let mut browsers = self
            .shared
            .browsers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        browsers.retain(|key, slot| {
            if busy.contains(key) {
                return true;
            }
            let Ok(mut current) = slot.try_lock() else {
                return true;
            };
            let idle = current.as_ref().is_none_or(|b| {
                now_ms.saturating_sub(b.last_used_ms.load(Ordering::SeqCst)) >= idle_ms
            });
            if idle && let Some(browser) = current.take() {
                let browser = browser.clone();
                std::thread::spawn(move || browser.stop());
            }
            !idle
        });
    }

    /// Closes every context and stops every browser (server exit). Returns the contexts closed.
    pub fn shutdown(&self) -> Vec<(Owner, ContextInfo)> {
        let entries: Vec<Arc<ContextEntry>> = self.contexts().drain().map(|(_, e)| e).collect();
        let closed = entries
            .iter()
            .map(|e| (e.owner.clone(), e.info(false)))
            .collect();
        drop(entries);
        let slots: Vec<Slot> = self
            .shared
            .browsers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, slot)| slot)
            .collect();
        for slot in slots {
            if let Ok(mut current) = slot.try_lock()
                && let Some(browser) = current.take()
            {
                browser.stop();
            }
        }
        closed
    }
}

/// Where a BrowserContext being opened stands, shared by the call and its blocking task.
#[derive(Default)]
enum Made {
    #[default]
    Pending,
    Created(String),
    /// The call went away first: the task disposes of what it makes.
    Abandoned,
}

/// Disposes of a BrowserContext whose call went away (cancelled) or failed before keeping it.
struct Opening {
    browser: Arc<UserBrowser>,
    made: Arc<Mutex<Made>>,
    kept: bool,
}

impl Opening {
    fn new(browser: Arc<UserBrowser>) -> Self {
        Self {
            browser,
            made: Arc::default(),
            kept: false,
        }
    }

    fn disarm(mut self) {
        self.kept = true;
    }
}

impl Drop for Opening {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let mut made = self.made.lock().unwrap_or_else(|p| p.into_inner());
        match std::mem::replace(&mut *made, Made::Abandoned) {
            Made::Created(cdp_id) => {
                let browser = self.browser.clone();
                std::thread::spawn(move || discard_context(&browser, &cdp_id));
            }
            Made::Pending | Made::Abandoned => {}
        }
    }
}

/// Disposes of a BrowserContext (tabs, cookies, storage) and its downloads, and stops watching
/// its targets.
fn discard_context(browser: &UserBrowser, cdp_id: &str) {
    let disposed = browser.control(
        Target::DisposeBrowserContext {
            browser_context_id: cdp_id.to_owned(),
        },
        Duration::from_secs(5),
    );
    if let Err(e) = disposed {
        tracing::warn!("disposing a browser context failed: {e}");
    }
    browser.targets.remove_context(cdp_id);
    remove_downloads(browser, cdp_id);
}

/// Launches a browser, starts reading its pipe, and has it attach to every target it creates.
fn start_browser(spec: &LaunchSpec, timeout: Duration) -> Result<UserBrowser, BrowserError> {
    let (process, ends) = ChromeProcess::launch(spec)?;
    let failed = |why: String| {
        BrowserError::Launch(format!(
            "the browser did not answer on its DevTools pipe: {why}"
        ))
    };
    let (pipe, events) =
        Pipe::start(ends.from_browser, ends.to_browser).map_err(|e| failed(e.to_string()))?;
    let targets = Arc::new(Targets::default());
    targets::spawn(pipe.clone(), events, targets.clone()).map_err(|e| failed(e.to_string()))?;
    // The first answer says the browser is up; the pipe carries the call until it is.
    let browser = UserBrowser {
        pipe,
        targets,
        downloads: spec.profile_dir.join("downloads"),
        process: Mutex::new(Some(process)),
        crashed: AtomicBool::new(false),
        last_used_ms: AtomicU64::new(crate::clock::now_ms()),
    };
    browser
        .control(Browser::GetVersion(None), timeout)
        .map_err(|e| failed(e.to_string()))?;
    targets::watch_browser(&browser.pipe, timeout).map_err(|e| failed(e.to_string()))?;
    Ok(browser)
}

/// Opens a BrowserContext watched by `net` with one tab, and waits until the tab runs under the
/// policy. A context left half-made is disposed of.
fn open_context(
    browser: &UserBrowser,
    net: Arc<ContextNet>,
    made: &Mutex<Made>,
    proxy_url: &str,
    (width, height): (u32, u32),
    timeout: Duration,
) -> Result<(String, String, CdpConnection), PageError> {
    let cdp_id = browser
        .control(
            Target::CreateBrowserContext {
                dispose_on_detach: Some(false),
                // Every connection through the context's proxy, loopback included (Chromium
                // would otherwise reach loopback directly).
                proxy_server: Some(proxy_url.to_owned()),
                proxy_bypass_list: Some("<-loopback>".into()),
                origins_with_universal_network_access: None,
            },
            timeout,
        )?
        .browser_context_id;
    {
        let mut made = made.lock().unwrap_or_else(|p| p.into_inner());
        if let Made::Abandoned = *made {
            drop(made);
            discard_context(browser, &cdp_id);
            return Err(PageError::Protocol("the call was cancelled".into()));
        }
        *made = Made::Created(cdp_id.clone());
    }
    browser.targets.add_context(&cdp_id, net);
    let tab = keep_downloads(browser, &cdp_id, timeout)
        .and_then(|()| open_tab(browser, &cdp_id, (width, height), timeout));
    let (target_id, page) = tab?;
    Ok((cdp_id, target_id, page))
}

/// Sends the context's downloads to its own owner-only directory (removed with the context).
fn keep_downloads(browser: &UserBrowser, cdp_id: &str, timeout: Duration) -> Result<(), PageError> {
    let dir = browser.downloads.join(cdp_id);
    crate::files::ensure_private_dir(&dir)
        .map_err(|e| PageError::Protocol(format!("cannot create the downloads directory: {e}")))?;
    browser.pipe.call(
        None,
        "Browser.setDownloadBehavior",
        serde_json::json!({"behavior": "allow", "browserContextId": cdp_id,
                           "downloadPath": dir.display().to_string(), "eventsEnabled": false}),
        timeout,
    )?;
    Ok(())
}

/// Removes a closed context's downloads.
fn remove_downloads(browser: &UserBrowser, cdp_id: &str) {
    let dir = browser.downloads.join(cdp_id);
    if let Err(e) = std::fs::remove_dir_all(&dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("could not remove a closed context's downloads: {e}");
    }
}

fn open_tab(
    browser: &UserBrowser,
    cdp_id: &str,
    (width, height): (u32, u32),
    timeout: Duration,
) -> Result<(String, CdpConnection), PageError> {
    let target_id = browser
        .control(
            Target::CreateTarget {
                url: "about:blank".into(),
                left: None,
                top: None,
                width: None,
                height: None,
                window_state: None,
                browser_context_id: Some(cdp_id.to_owned()),
                enable_begin_frame_control: None,
                // Its own window: input into a background tab hangs.
                new_window: Some(true),
                background: None,
                for_tab: None,
                hidden: None,
            },
            timeout,
        )?
        .target_id;
    let session = browser
        .targets
        .wait_ready(&target_id, timeout)
        .ok_or(PageError::Timeout)?;
    let mut page = CdpConnection::new(browser.pipe.clone(), Some(session));
    page::set_viewport(&mut page, width, height, timeout)?;
    Ok((target_id, page))
}

fn display_available() -> bool {
    if cfg!(target_os = "linux") {
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some()
    } else {
        true
    }
}
