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

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;

use crate::auth::secret::SecretBytes;

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

/// Rotated files kept beside the current one.
const KEEP_ROTATED: u32 = 5;

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
    /// Only on `log.start`: what the chain of this file starts from.
    #[serde(skip_serializing_if = "Option::is_none")]
    genesis: Option<String>,
    /// `mac` of the previous line (derived from `genesis` for the first).
    prev: String,
}

/// Every line ends with `,"mac":"<64 hex>"}`.
const MAC_SUFFIX_LEN: usize = r#","mac":""}"#.len() + 64;

/// The keys of the log: one for session-id hashes, one for the chain.
struct Keys {
    session: SecretBytes,
    chain: SecretBytes,
}

impl Keys {
    fn derive(signing_key: &SecretBytes) -> Result<Self, std::io::Error> {
        let derive = |label: &[u8]| {
            let mut mac = Hmac::<Sha256>::new_from_slice(signing_key.expose())
                .map_err(|_| std::io::Error::other("bad key"))?;
            mac.update(label);
            Ok::<_, std::io::Error>(SecretBytes::new(mac.finalize().into_bytes().to_vec()))
        };
        Ok(Self {
            session: derive(b"mcp-sessions audit session-id hash v1")?,
            chain: derive(b"mcp-sessions audit chain v1")?,
        })
    }

    fn chain_mac(&self, parts: &[&[u8]]) -> String {
        match Hmac::<Sha256>::new_from_slice(self.chain.expose()) {
            Ok(mut mac) => {
                for part in parts {
                    mac.update(part);
                }
                hex::encode(mac.finalize().into_bytes())
            }
            Err(_) => String::new(),
        }
    }

    /// What the first line of a file with this `genesis` must carry as `prev`.
    fn genesis_prev(&self, genesis: &str) -> String {
        self.chain_mac(&[b"genesis:", genesis.as_bytes()])
    }

    /// The `mac` of a line whose JSON without the `mac` field is `body`.
    fn line_mac(&self, body: &[u8]) -> String {
        self.chain_mac(&[b"line:", body])
    }
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
            }),
        };
        if last.is_none() {
            let mut genesis = [0u8; 16];
            crate::auth::secret::fill_random(&mut genesis)
                .map_err(|_| open_err(std::io::Error::other("random generator failed")))?;
            let mut writer = log.lock_writer()?;
            log.start_file(&mut writer, hex::encode(genesis))?;
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
    fn start_file(&self, writer: &mut Writer, genesis: String) -> Result<(), AuditError> {
        writer.prev = self.shared.keys.genesis_prev(&genesis);
        let mut event = AuditEvent::new("log.start", "success", &[nist::AU_3]);
        event.detail = Some(serde_json::json!({"pid": std::process::id()}));
        self.write_line(writer, &event, Some(genesis))
    }

    /// The keyed hash under which `session_id` appears in the log (32 hex characters).
    pub fn session_hash(&self, session_id: &str) -> String {
        match Hmac::<Sha256>::new_from_slice(self.shared.keys.session.expose()) {
            Ok(mut mac) => {
                mac.update(session_id.as_bytes());
                hex::encode(&mac.finalize().into_bytes()[..16])
            }
            Err(_) => String::new(),
        }
    }

    fn write_line(
        &self,
        writer: &mut Writer,
        event: &AuditEvent,
        genesis: Option<String>,
    ) -> Result<(), AuditError> {
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
        let _ = std::fs::remove_file(rotated(KEEP_ROTATED));
        for n in (1..KEEP_ROTATED).rev() {
            let _ = std::fs::rename(rotated(n), rotated(n + 1));
        }
        std::fs::rename(&writer.path, rotated(1)).map_err(AuditError::Write)?;
        writer.file = open_append(&writer.path).map_err(AuditError::Write)?;
        writer.size = 0;
        let genesis = writer.prev.clone();
        self.start_file(writer, genesis)
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

/// Splits a line into the JSON it was MACed as and the `mac` it carries.
fn split_mac(line: &[u8]) -> Option<(Vec<u8>, String)> {
    let cut = line.len().checked_sub(MAC_SUFFIX_LEN)?;
    let suffix = std::str::from_utf8(&line[cut..]).ok()?;
    let mac = suffix.strip_prefix(r#","mac":""#)?.strip_suffix(r#""}"#)?;
    let mut body = line[..cut].to_vec();
    body.push(b'}');
    Some((body, mac.to_owned()))
}

fn line_mac_field(line: &[u8]) -> Option<String> {
    split_mac(line).map(|(_, mac)| mac)
}

fn line_seq(line: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Value>(line)
        .ok()?
        .get("seq")?
        .as_u64()
}

/// The verdict on one audit file.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The chain holds over `lines` lines.
    Intact { lines: usize },
    /// The first place the chain breaks (1-based line number) and what most likely happened.
    Broken { line: usize, reason: String },
}

/// Checks the chain of the audit file `path` with the log's `signing_key`.
pub fn verify(path: &Path, signing_key: &SecretBytes) -> Result<Verdict, AuditError> {
    let open_err = |source| AuditError::Open {
        path: path.to_path_buf(),
        source,
    };
    let keys = Keys::derive(signing_key).map_err(open_err)?;
    let text = std::fs::read(path).map_err(open_err)?;
    let mut expected_prev: Option<String> = None;
    let mut previous_seq: Option<u64> = None;
    let mut count = 0;
    for (index, raw) in text.split(|b| *b == b'\n').enumerate() {
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let number = index + 1;
        count += 1;
        let broken = |reason: String| {
            Ok(Verdict::Broken {
                line: number,
                reason,
            })
        };
        let (Ok(value), Some((body, mac))) = (serde_json::from_slice::<Value>(raw), split_mac(raw))
        else {
            return broken("not an audit line: it was altered".into());
        };
        if keys.line_mac(&body) != mac {
            return broken("the line was altered (its MAC does not match its content)".into());
        }
        let prev = value
            .get("prev")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let seq = value.get("seq").and_then(Value::as_u64);
        let expected = match (&expected_prev, value.get("genesis").and_then(Value::as_str)) {
            (None, Some(genesis)) => keys.genesis_prev(genesis),
            (None, None) => {
                return broken(
                    "the file does not start with its log.start line: lines before it were removed"
                        .into(),
                );
            }
            (Some(expected), _) => expected.clone(),
        };
        if prev != expected {
            let reason = match (previous_seq, seq) {
                (Some(before), Some(now)) if now > before + 1 => {
                    format!(
                        "{} line(s) before it were removed (seq jumps from {before} to {now})",
                        now - before - 1
                    )
                }
                (Some(before), Some(now)) => {
                    format!("the line was inserted (seq {now} after {before})")
                }
                _ => "the line is out of place: lines around it were removed or inserted".into(),
            };
            return broken(reason);
        }
        expected_prev = Some(mac);
        previous_seq = seq;
    }
    Ok(Verdict::Intact { lines: count })
}

#[cfg(test)]
mod tests {
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

    fn write_lines(
        dir: &Path,
        key: &SecretBytes,
        n: usize,
        max_bytes: u64,
    ) -> Result<PathBuf, AuditError> {
        let path = dir.join("audit.log");
        let log = AuditLog::open(&path, key, max_bytes)?;
        for i in 0..n {
            log.record(
                AuditEvent::new("login.failure", "failure", &[nist::AC_7])
                    .username(&format!("user{i}")),
            )?;
        }
        Ok(path)
    }

    fn broken_at(verdict: Verdict, expected_line: usize, word: &str) -> bool {
        matches!(verdict, Verdict::Broken { line, ref reason } if line == expected_line && reason.contains(word))
    }

    #[test]
    fn verify_names_the_altered_removed_or_inserted_line() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let key = SecretBytes::new(vec![2u8; 32]);
        let path = write_lines(dir.path(), &key, 6, 0)?;
        let original = std::fs::read_to_string(&path)?;
        let lines: Vec<&str> = original.lines().collect();
        assert_eq!(verify(&path, &key)?, Verdict::Intact { lines: 7 });

        std::fs::write(&path, original.replace("user3", "userX"))?;
        assert!(broken_at(verify(&path, &key)?, 5, "altered"));

        std::fs::write(&path, original.replace("user5", "userY"))?;
        assert!(
            broken_at(verify(&path, &key)?, 7, "altered"),
            "the last line is covered too"
        );

        let removed: Vec<&str> = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 3)
            .map(|(_, l)| *l)
            .collect();
        std::fs::write(&path, removed.join("\n") + "\n")?;
        assert!(broken_at(verify(&path, &key)?, 4, "removed"));

        let mut inserted = lines.clone();
        inserted.insert(4, lines[2]);
        std::fs::write(&path, inserted.join("\n") + "\n")?;
        assert!(broken_at(verify(&path, &key)?, 5, "inserted"));

        std::fs::write(&path, lines[1..].join("\n") + "\n")?;
        assert!(broken_at(verify(&path, &key)?, 1, "removed"));

        std::fs::write(&path, &original)?;
        let other_key = SecretBytes::new(vec![3u8; 32]);
        assert!(
            broken_at(verify(&path, &other_key)?, 1, "altered"),
            "a MAC needs the key"
        );
        Ok(())
    }

    #[test]
    fn rotation_keeps_the_chain() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let key = SecretBytes::new(vec![4u8; 32]);
        let path = write_lines(dir.path(), &key, 40, 2000)?;
        let rotated = dir.path().join("audit.log.1");
        assert!(rotated.exists(), "no rotation happened");
        assert!(matches!(verify(&path, &key)?, Verdict::Intact { .. }));
        assert!(matches!(verify(&rotated, &key)?, Verdict::Intact { .. }));
        // The new file's genesis is the mac of the old file's last line.
        let old = std::fs::read(&rotated)?;
        let old_last = old
            .split(|b| *b == b'\n')
            .rev()
            .find(|l| !l.is_empty())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&path)?;
        let first: Value = serde_json::from_str(text.lines().next().unwrap_or_default())?;
        assert_eq!(
            first["genesis"].as_str(),
            line_mac_field(old_last).as_deref()
        );
        Ok(())
    }
}
