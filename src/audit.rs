//! The audit log: one JSON object per line appended to `<data_dir>/audit.log` (mode 0600).
//! Session ids appear only as a keyed hash; passwords and tokens never reach this module's
//! input types. A record that cannot be written is an error the caller must act on: security
//! actions fail closed.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;

use crate::secret::SecretBytes;

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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuditLine<'a> {
    ts: String,
    seq: u64,
    event: &'a str,
    outcome: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool: Option<&'a str>,
    nist: &'a [&'a str],
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a Value>,
}

struct Writer {
    file: File,
    next_seq: u64,
}

struct Shared {
    writer: Mutex<Writer>,
    session_key: SecretBytes,
}

/// Appends audit events. A cheap `Clone` handle.
#[derive(Clone)]
pub struct AuditLog {
    shared: Arc<Shared>,
}

impl AuditLog {
    /// Opens (or creates, 0600) `path` for appending. `signing_key` keys the session-id hash.
    pub fn open(path: &Path, signing_key: &SecretBytes) -> Result<Self, AuditError> {
        let open_err = |source| AuditError::Open {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            crate::config::ensure_private_dir(dir).map_err(open_err)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.read(true).append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(open_err)?;
        restrict_permissions(&file).map_err(open_err)?;
        let next_seq = last_seq(&mut file).map_or(1, |seq| seq + 1);
        let mut mac = Hmac::<Sha256>::new_from_slice(signing_key.expose())
            .map_err(|_| open_err(std::io::Error::other("bad key")))?;
        mac.update(b"mcp-sessions audit session-id hash v1");
        let session_key = SecretBytes::new(mac.finalize().into_bytes().to_vec());
        Ok(Self {
            shared: Arc::new(Shared {
                writer: Mutex::new(Writer { file, next_seq }),
                session_key,
            }),
        })
    }

    /// The keyed hash under which `session_id` appears in the log (32 hex characters).
    pub fn session_hash(&self, session_id: &str) -> String {
        match Hmac::<Sha256>::new_from_slice(self.shared.session_key.expose()) {
            Ok(mut mac) => {
                mac.update(session_id.as_bytes());
                hex::encode(&mac.finalize().into_bytes()[..16])
            }
            Err(_) => String::new(),
        }
    }

    /// Writes one event. An error means the event is not on record: fail closed.
    pub fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        let session = event.session_id.as_deref().map(|id| self.session_hash(id));
        let mut writer = self
            .shared
            .writer
            .lock()
            .map_err(|_| AuditError::Write(std::io::Error::other("audit writer poisoned")))?;
        let line = AuditLine {
            ts: crate::clock::rfc3339(crate::clock::now_ms()),
            seq: writer.next_seq,
            event: event.event,
            outcome: event.outcome,
            user_id: event.user_id.as_deref(),
            username: event.username.as_deref(),
            session,
            tool: event.tool,
            nist: event.nist,
            detail: event.detail.as_ref(),
        };
        let mut bytes = serde_json::to_vec(&line).map_err(|e| AuditError::Write(e.into()))?;
        bytes.push(b'\n');
        writer.file.write_all(&bytes).map_err(AuditError::Write)?;
        writer.next_seq += 1;
        Ok(())
    }

    /// Records an event whose loss must not stop the action it describes (e.g. a sweep), logging
    /// the failure instead.
    pub fn record_or_log(&self, event: AuditEvent) {
        if let Err(e) = self.record(event) {
            tracing::error!("{e}");
        }
    }

    /// Pushes everything written so far to stable storage (at exit).
    pub fn flush(&self) {
        if let Ok(writer) = self.shared.writer.lock()
            && let Err(e) = writer.file.sync_data()
        {
            tracing::warn!("audit log sync failed: {e}");
        }
    }
}

#[cfg(unix)]
fn restrict_permissions(file: &File) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = file.metadata()?;
    // Only a regular file is ours to change (never a device the path may point at).
    if meta.is_file() && meta.permissions().mode() & 0o777 != 0o600 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict_permissions(_file: &File) -> std::io::Result<()> {
    Ok(())
}

/// The `seq` of the file's last line, so numbering continues across restarts.
fn last_seq(file: &mut File) -> Option<u64> {
    let len = file.metadata().ok()?.len();
    if len == 0 || !file.metadata().ok()?.is_file() {
        return None;
    }
    let start = len.saturating_sub(64 * 1024);
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut tail = String::new();
    file.read_to_string(&mut tail).ok()?;
    let last = tail.lines().rev().find(|l| !l.trim().is_empty())?;
    serde_json::from_str::<Value>(last)
        .ok()?
        .get("seq")?
        .as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_and_sequence_continues() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("audit.log");
        let key = SecretBytes::new(vec![1u8; 32]);
        let log = AuditLog::open(&path, &key)?;
        let sid = "ab".repeat(32);
        log.record(AuditEvent::new("login.success", "success", &[nist::IA_2]).session(&sid))?;
        drop(log);
        let log = AuditLog::open(&path, &key)?;
        log.record(AuditEvent::new("session.delete", "success", &[nist::AC_12]))?;
        let text = std::fs::read_to_string(&path)?;
        assert!(!text.contains(&sid), "raw session id in the audit log");
        let lines: Vec<Value> = text
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
        assert_eq!(lines[0]["seq"], 1);
        assert_eq!(lines[1]["seq"], 2);
        assert_eq!(lines[0]["session"].as_str().map(str::len), Some(32));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path)?.permissions().mode() & 0o777,
                0o600
            );
        }
        Ok(())
    }
}
