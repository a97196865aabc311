//! The audit log: one JSON object per line appended to `<data_dir>/audit.log` (mode 0600).
//! Session ids appear only as a keyed hash; passwords and tokens never reach this module's
//! input types. A record that cannot be written is an error the caller must act on: security
//! actions fail closed.
//!
//! The log is tamper-evident: every line ends with `mac`, an HMAC-SHA256 (under a key derived
//! from the signing key) of the line without it, and carries `prev`, the `mac` of the line before
//! it; a file starts with a `log.start` line whose `genesis` value seeds the chain. Past `max_bytes` the file rotates (`audit.log.1`, …) and the
//! new file's genesis is the MAC of the old file's last line, so the chain runs on across files.
//! [`verify`] names the first line that was altered, removed or inserted.

mod chain;
mod log;
mod repeats;
pub mod tail;
mod verify;

use std::path::PathBuf;

use serde_json::Value;

pub use log::AuditLog;
pub use verify::{Verdict, verify};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open the audit log {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the audit log: {0}")]
    Write(std::io::Error),
}

/// NIST SP 800-53 controls an event is evidence for.
pub mod nist {
    pub const IA_2: &str = "ia-2";
    pub const AC_3: &str = "ac-3";
    pub const AU_3: &str = "au-3";
    pub const IA_5: &str = "ia-5";
    pub const AC_7: &str = "ac-7";
    pub const AC_12: &str = "ac-12";
}

/// One audit event, before it is stamped with time and sequence number.
#[derive(Debug, Clone, Default)]
pub struct AuditEvent {
    pub event: &'static str,
    pub outcome: &'static str,
    pub user_id: Option<String>,
    pub username: Option<String>,
    /// The raw session id; only its keyed hash is written.
    pub session_id: Option<String>,
    pub tool: Option<&'static str>,
    pub nist: &'static [&'static str],
    pub detail: Option<Value>,
}

impl AuditEvent {
    pub fn new(event: &'static str, outcome: &'static str, nist: &'static [&'static str]) -> Self {
        Self {
            event,
            outcome,
            nist,
            ..Self::default()
        }
    }

    pub fn user(mut self, user_id: &str, username: &str) -> Self {
        self.user_id = Some(user_id.to_owned());
        self.username = Some(username.to_owned());
        self
    }

    pub fn username(mut self, username: &str) -> Self {
        self.username = Some(username.to_owned());
        self
    }

    pub fn session(mut self, session_id: &str) -> Self {
        self.session_id = Some(session_id.to_owned());
        self
    }

    pub fn tool(mut self, tool: &'static str) -> Self {
        self.tool = Some(tool);
        self
    }

    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }
}
