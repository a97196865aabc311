//! The `[browser]` section: executable, limits, timeouts and the origin lists. The origin
//! patterns themselves are parsed by the browser's URL policy when the server starts.

use std::path::PathBuf;

use serde::Deserialize;

/// The `[browser]` configuration section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrowserConfig {
    /// Chromium or Chrome executable (after `CHROME_PATH`, before the usual locations).
    pub chrome_path: Option<PathBuf>,
    /// Chromium's sandbox: "auto" (on unless running as root), "on" or "off".
    pub sandbox: String,
    /// Live contexts one session may hold.
    pub max_contexts_per_session: usize,
    /// Live contexts one user may hold across their sessions.
    pub max_contexts_per_user: usize,
    /// Default navigation timeout, milliseconds.
    pub navigation_timeout_ms: u64,
    /// The longest navigation timeout a call may ask for, milliseconds.
    pub max_navigation_timeout_ms: u64,
    /// Timeout of clicks, typing, reads, screenshots and scripts, milliseconds.
    pub action_timeout_ms: u64,
    /// How long a browser may take to start, milliseconds.
    pub launch_timeout_ms: u64,
    /// Default and maximum `maxChars` of browser-read.
    pub read_chars: usize,
    pub max_read_chars: usize,
    /// Screenshots are scaled to fit these (what hosts accept).
    pub screenshot_max_side: u32,
    pub screenshot_max_pixels: u32,
    /// Default viewport of a new context.
    pub viewport_width: u32,
    pub viewport_height: u32,
    /// Origins navigation may reach (empty: any but the always-blocked ones).
    pub allow_origins: Vec<String>,
    /// Origins navigation may never reach.
    pub deny_origins: Vec<String>,
    /// Whether pages may reach loopback, private, link-local and unique-local addresses (IPv4,
    /// IPv6 and IPv4-mapped forms). Unset: yes over stdio (a desktop host's own dev servers),
    /// no over HTTP. Cloud metadata addresses are refused either way.
    pub allow_private_networks: Option<bool>,
    /// Tabs one context may have open, popups and tabs its pages open included.
    pub max_tabs_per_context: usize,
    /// The JavaScript heap one renderer may use, MiB (V8's old space); a page past it crashes alone.
    pub renderer_heap_mb: u32,
    /// Page calls one context may have running or waiting for their turn; more are refused
    /// (RATE_LIMITED) rather than queued.
    pub max_queued_calls_per_context: usize,
    /// The same across all of a user's contexts.
    pub max_queued_calls_per_user: usize,
    /// A user's browser with no contexts is stopped after this many seconds.
    pub idle_shutdown: u64,
    /// A context no call has used for this many seconds is closed (stateless HTTP clients never
    /// say they are done).
    pub context_idle_timeout: u64,
}

impl Default for BrowserConfig {
    fn default() -> Self {
        Self {
            chrome_path: None,
            sandbox: "auto".into(),
            max_contexts_per_session: 3,
            max_contexts_per_user: 10,
            navigation_timeout_ms: 30_000,
            max_navigation_timeout_ms: 120_000,
            action_timeout_ms: 10_000,
            launch_timeout_ms: 20_000,
            read_chars: 20_000,
            max_read_chars: 200_000,
            screenshot_max_side: 1568,
            screenshot_max_pixels: 1_150_000,
            viewport_width: 1280,
            viewport_height: 720,
            allow_origins: Vec::new(),
            deny_origins: Vec::new(),
            allow_private_networks: None,
            max_tabs_per_context: 5,
            renderer_heap_mb: 512,
            max_queued_calls_per_context: 16,
            max_queued_calls_per_user: 64,
            idle_shutdown: 300,
            context_idle_timeout: 600,
        }
    }
}

impl BrowserConfig {
    /// Checks the section; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !matches!(self.sandbox.as_str(), "auto" | "on" | "off") {
            return Err((
                "browser.sandbox",
                "must be \"auto\", \"on\" or \"off\"".into(),
            ));
        }
        let positive = [
            (
                "browser.max_contexts_per_session",
                self.max_contexts_per_session as u64,
            ),
            (
                "browser.max_contexts_per_user",
                self.max_contexts_per_user as u64,
            ),
            (
                "browser.max_tabs_per_context",
                self.max_tabs_per_context as u64,
            ),
            ("browser.renderer_heap_mb", u64::from(self.renderer_heap_mb)),
            (
                "browser.max_queued_calls_per_context",
                self.max_queued_calls_per_context as u64,
            ),
            (
                "browser.max_queued_calls_per_user",
                self.max_queued_calls_per_user as u64,
            ),
            ("browser.navigation_timeout_ms", self.navigation_timeout_ms),
            ("browser.action_timeout_ms", self.action_timeout_ms),
            ("browser.launch_timeout_ms", self.launch_timeout_ms),
            ("browser.read_chars", self.read_chars as u64),
            (
                "browser.screenshot_max_side",
                u64::from(self.screenshot_max_side),
            ),
            (
                "browser.screenshot_max_pixels",
                u64::from(self.screenshot_max_pixels),
            ),
            ("browser.viewport_width", u64::from(self.viewport_width)),
            ("browser.viewport_height", u64::from(self.viewport_height)),
            ("browser.context_idle_timeout", self.context_idle_timeout),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err((key, "must be greater than 0".into()));
            }
        }
        if self.navigation_timeout_ms > self.max_navigation_timeout_ms {
            return Err((
                "browser.navigation_timeout_ms",
                "must not exceed browser.max_navigation_timeout_ms".into(),
            ));
        }
        if self.read_chars > self.max_read_chars {
            return Err((
                "browser.read_chars",
                "must not exceed browser.max_read_chars".into(),
            ));
        }
        Ok(())
    }
}
