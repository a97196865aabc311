//! The writer: appends stamped, chained lines to `audit.log` (0600) and rotates it past
//! `audit_max_bytes`, the new file's genesis being the MAC of the old file's last line.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;

use super::chain::{Keys, line_mac_field, line_seq};
use super::repeats::Repeats;
use super::{AuditError, AuditEvent, nist};
use crate::auth::secret::SecretBytes;

/// Rotated files kept beside the current one.
const KEEP_ROTATED: u32 = 5;

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
    /// Only on `log.start`: what the chain of this file starts from.
    #[serde(skip_serializing_if = "Option::is_none")]
    genesis: Option<String>,
    /// `mac` of the previous line (derived from `genesis` for the first).
    prev: String,
}

struct Writer {
    path: PathBuf,
    file: File,
    size: u64,
    next_seq: u64,
    /// `prev` of the next line.
    prev: String,
}

struct Shared {
    writer: Mutex<Writer>,
    keys: Keys,
    max_bytes: u64,
    repeats: Repeats,
}

/// Appends audit events. A cheap `Clone` handle.
#[derive(Clone)]
pub struct AuditLog {
    shared: Arc<Shared>,
}

fn open_append(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        crate::files::ensure_private_dir(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true).append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path)?;
    restrict_permissions(&file)?;
    Ok(file)
}

impl AuditLog {
    /// Opens (or creates, 0600) `path` for appending; rotates past `max_bytes`. `signing_key` keys
    /// the session-id hash and the chain.
    pub fn open(
        path: &Path,
        signing_key: &SecretBytes,
        max_bytes: u64,
    ) -> Result<Self, AuditError> {
        let open_err = |source| AuditError::Open {
            path: path.to_path_buf(),
            source,
        };
        let keys = Keys::derive(signing_key).map_err(open_err)?;
        let mut file = open_append(path).map_err(open_err)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let last = last_line(&mut file);
        let writer = Writer {
            path: path.to_path_buf(),
            file,
            size,
            next_seq: last
                .as_ref()
                .and_then(|l| line_seq(l))
                .map_or(1, |seq| seq + 1),
            prev: last
                .as_ref()
                .and_then(|l| line_mac_field(l))
                .unwrap_or_default(),
        };
        let log = Self {
            shared: Arc::new(Shared {
                writer: Mutex::new(writer),
                keys,
                max_bytes,
                repeats: Repeats::default(),
            }),
        };
        if last.is_none() {
            let mut genesis = [0u8; 16];
            crate::auth::secret::fill_random(&mut genesis)
                .map_err(|_| open_err(std::io::Error::other("random generator failed")))?;
            let mut writer = log.lock_writer()?;
            log.start_file(&mut writer, hex::encode(genesis), None)?;
        }
        Ok(log)
    }

    fn lock_writer(&self) -> Result<std::sync::MutexGuard<'_, Writer>, AuditError> {
        self.shared
            .writer
            .lock()
            .map_err(|_| AuditError::Write(std::io::Error::other("audit writer poisoned")))
    }

    /// Writes the `log.start` line that seeds a file's chain.
    /// Writes the `log.start` line that seeds a file's chain; `discarded` says what rotation
    /// removed to make room, so that no history goes away unrecorded.
    fn start_file(
        &self,
        writer: &mut Writer,
        genesis: String,
        discarded: Option<Value>,
    ) -> Result<(), AuditError> {
        writer.prev = self.shared.keys.genesis_prev(&genesis);
        let mut event = AuditEvent::new("log.start", "success", &[nist::AU_3]);
        let mut detail = serde_json::json!({"pid": std::process::id()});
        if let Some(discarded) = discarded {
            detail["discarded"] = discarded;
        }
        event.detail = Some(detail);
        self.write_line(writer, &event, Some(genesis))
    }

    /// The keyed hash under which `session_id` appears in the log (32 hex characters).
    pub fn session_hash(&self, session_id: &str) -> String {
        self.keyed_hash(&[session_id.as_bytes()])
    }

    /// How the log names a login attempt for a username no user has: a keyed hash (16 hex
    /// characters), since such a "username" is often a password typed into the wrong field.
    /// Attempts with the same name still carry the same hash, so a guessing run shows.
    pub fn unknown_username(&self, username: &str) -> String {
        let hash = self.keyed_hash(&[b"username:", username.as_bytes()]);
        format!("unknown#{}", &hash[..16.min(hash.len())])
    }

    fn keyed_hash(&self, parts: &[&[u8]]) -> String {
        match Hmac::<Sha256>::new_from_slice(self.shared.keys.session.expose()) {
            Ok(mut mac) => {
                for part in parts {
                    mac.update(part);
                }
                hex::encode(&mac.finalize().into_bytes()[..16])
            }
            Err(_) => String::new(),
        }
    }

    /// Writes one line, chained onto the file's real last line: another process (an operator
    /// command, a second server) may have appended since this one last wrote. The file lock
    /// keeps the look at the last line and the append together.
    fn write_line(
        &self,
        writer: &mut Writer,
        event: &AuditEvent,
        genesis: Option<String>,
    ) -> Result<(), AuditError> {
        let _lock = crate::files::lock_open(&writer.file).map_err(AuditError::Write)?;
        let len = writer.file.metadata().map_err(AuditError::Write)?.len();
        if len != writer.size {
            let last = last_line(&mut writer.file);
            if let Some((seq, mac)) = last
                .as_deref()
                .and_then(|l| Some((line_seq(l)?, line_mac_field(l)?)))
            {
                writer.next_seq = seq + 1;
                writer.prev = mac;
            }
            writer.size = len;
        }
        let line = AuditLine {
            ts: crate::clock::rfc3339(crate::clock::now_ms()),
            seq: writer.next_seq,
            event: event.event,
            outcome: event.outcome,
            user_id: event.user_id.as_deref(),
            username: event.username.as_deref(),
            session: event.session_id.as_deref().map(|id| self.session_hash(id)),
            tool: event.tool,
            nist: event.nist,
            detail: event.detail.as_ref(),
            genesis,
            prev: writer.prev.clone(),
        };
        let mut bytes = serde_json::to_vec(&line).map_err(|e| AuditError::Write(e.into()))?;
        let mac = self.shared.keys.line_mac(&bytes);
        bytes.pop();
        bytes.extend_from_slice(format!(r#","mac":"{mac}"}}"#).as_bytes());
        bytes.push(b'\n');
        writer.file.write_all(&bytes).map_err(AuditError::Write)?;
        writer.size += bytes.len() as u64;
        writer.next_seq += 1;
        writer.prev = mac;
        Ok(())
    }

    /// Moves the full file aside (`.1`, `.2`, …) and starts a new one chained to it.
    fn rotate(&self, writer: &mut Writer) -> Result<(), AuditError> {
        let rotated = |n: u32| PathBuf::from(format!("{}.{n}", writer.path.display()));
        let oldest = rotated(KEEP_ROTATED);
        let discarded = seq_range(&oldest).map(|(from, to)| {
            serde_json::json!({
                "file": oldest.file_name().map(|n| n.to_string_lossy().into_owned()),
                "seqFrom": from,
                "seqTo": to,
            })
        });
        let _ = std::fs::remove_file(&oldest);
        for n in (1..KEEP_ROTATED).rev() {
            let _ = std::fs::rename(rotated(n), rotated(n + 1));
        }
        std::fs::rename(&writer.path, rotated(1)).map_err(AuditError::Write)?;
        writer.file = open_append(&writer.path).map_err(AuditError::Write)?;
        writer.size = 0;
        let genesis = writer.prev.clone();
        self.start_file(writer, genesis, discarded)
    }

    /// Writes one event. An error means the event is not on record: fail closed.
    pub fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        let mut writer = self.lock_writer()?;
        if self.shared.max_bytes > 0 && writer.size >= self.shared.max_bytes {
            self.rotate(&mut writer)?;
        }
        self.write_line(&mut writer, &event, None)
    }

    /// Records an event whose loss must not stop the action it describes (e.g. a sweep), logging
    /// the failure instead.
    pub fn record_or_log(&self, event: AuditEvent) {
        if let Err(e) = self.record(event) {
            tracing::error!("{e}");
        }
    }

    /// Records a refusal that costs the caller nothing and may come in floods (see `repeats`):
    /// the first of its `kind` in a minute in full, the others counted into one summary line.
    pub fn record_repeated(&self, kind: &str, event: AuditEvent, now_ms: u64) {
        for line in self.shared.repeats.note(kind, event, now_ms) {
            self.record_or_log(line);
        }
    }

    /// Writes the summaries of the repeated refusals whose minute has ended (the background
    /// tick), or of all still being counted (`all`, at exit).
    pub fn flush_repeats(&self, now_ms: u64, all: bool) {
        for line in self.shared.repeats.due(now_ms, all) {
            self.record_or_log(line);
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

/// The first and last `seq` of an audit file, if it exists and has lines.
fn seq_range(path: &Path) -> Option<(u64, u64)> {
    let mut file = File::open(path).ok()?;
    let mut head = [0u8; 4096];
    let read = file.read(&mut head).ok()?;
    let first = head[..read].split(|b| *b == b'\n').next()?;
    let first = serde_json::from_slice::<Value>(first)
        .ok()?
        .get("seq")?
        .as_u64();
    let last = last_line(&mut file).and_then(|l| line_seq(&l));
    Some((first.or(last)?, last?))
}

/// The file's last non-empty line, without its newline.
fn last_line(file: &mut File) -> Option<Vec<u8>> {
    let meta = file.metadata().ok()?;
    if meta.len() == 0 || !meta.is_file() {
        return None;
    }
    let start = meta.len().saturating_sub(256 * 1024);
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).ok()?;
    tail.split(|b| *b == b'\n')
        .rev()
        .find(|l| !l.iter().all(u8::is_ascii_whitespace))
        .map(<[u8]>::to_vec)
}

#[cfg(test)]
mod tests {
    use super::super::{Verdict, verify};
    use super::*;

    #[test]
    fn lines_are_json_and_sequence_continues() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("audit.log");
        let key = SecretBytes::new(vec![1u8; 32]);
        let log = AuditLog::open(&path, &key, 0)?;
        let sid = "ab".repeat(32);
        log.record(AuditEvent::new("login.success", "success", &[nist::IA_2]).session(&sid))?;
        drop(log);
        let log = AuditLog::open(&path, &key, 0)?;
        log.record(AuditEvent::new("session.delete", "success", &[nist::AC_12]))?;
        let text = std::fs::read_to_string(&path)?;
        assert!(!text.contains(&sid), "raw session id in the audit log");
        let lines: Vec<Value> = text
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
        let events: Vec<&str> = lines.iter().filter_map(|l| l["event"].as_str()).collect();
        assert_eq!(events, ["log.start", "login.success", "session.delete"]);
        let seqs: Vec<u64> = lines.iter().filter_map(|l| l["seq"].as_u64()).collect();
        assert_eq!(seqs, [1, 2, 3]);
        assert_eq!(lines[1]["session"].as_str().map(str::len), Some(32));
        assert_eq!(verify(&path, &key)?, Verdict::Intact { lines: 3 });
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

    #[test]
    fn writers_in_two_processes_keep_one_chain() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("audit.log");
        let key = SecretBytes::new(vec![5u8; 32]);
        // Two handles stand for two processes: neither sees the other's writes in memory.
        let server = AuditLog::open(&path, &key, 0)?;
        let operator = AuditLog::open(&path, &key, 0)?;
        for round in 0..3 {
            server.record(AuditEvent::new("login.success", "success", &[nist::IA_2]))?;
            operator.record(AuditEvent::new("token.create", "success", &[nist::IA_5]))?;
            if round == 1 {
                operator.record(AuditEvent::new("token.revoke", "success", &[nist::IA_5]))?;
            }
        }
        assert_eq!(verify(&path, &key)?, Verdict::Intact { lines: 8 });
        let seqs: Vec<u64> = std::fs::read_to_string(&path)?
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok()?["seq"].as_u64())
            .collect();
        assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
        Ok(())
    }
}
