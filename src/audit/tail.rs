//! `mcp-sessions audit tail`: the audit log for people. One readable line per event (time, event,
//! outcome, user, tool, short session hash, detail), the last N, filtered by user and event kind,
//! and optionally followed as the server appends, across rotations. Lines are shown, not verified
//! (`audit verify` checks the chain); what a client chose (a username tried at login, a URL) is
//! printed with its control characters escaped, so a log line cannot drive the terminal.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// How often `--follow` looks for new lines.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// The longest detail summary shown.
const DETAIL_CHARS: usize = 120;

#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("no audit log at {0} (the server creates it at its first start)")]
    Missing(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
}

/// Which events to show.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// A username or user id.
    pub user: Option<String>,
    /// An event (`login.failure`) or its family (`login`).
    pub event: Option<String>,
}

impl Filter {
    pub fn matches(&self, line: &Value) -> bool {
        let field = |name: &str| line.get(name).and_then(Value::as_str);
        let user_ok = self
            .user
            .as_deref()
            .is_none_or(|user| field("username") == Some(user) || field("userId") == Some(user));
        let event_ok = self.event.as_deref().is_none_or(|kind| {
            field("event").is_some_and(|event| {
                event == kind
                    || event
                        .strip_prefix(kind)
                        .is_some_and(|rest| rest.starts_with('.'))
            })
        });
        user_ok && event_ok
    }

    fn is_empty(&self) -> bool {
        self.user.is_none() && self.event.is_none()
    }
}

/// `text` with control characters and invisible formatting characters escaped: zero-width and
/// bidirectional controls would make `admin\u{200b}` look like `admin`, or reorder a line.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else if invisible(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Unicode's format characters (category Cf) that render as nothing or change the direction of
/// the text around them.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00ad}' | '\u{061c}' | '\u{180e}'
        | '\u{200b}'..='\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206f}'
        | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}'
        | '\u{e0000}'..='\u{e007f}')
}

fn truncate(text: String, max: usize) -> String {
    if text.chars().count() <= max {
        return text;
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `detail` as `key=value` pairs (strings unquoted), cut to [`DETAIL_CHARS`].
fn detail_summary(detail: Option<&Value>) -> String {
    let text = match detail {
        None | Some(Value::Null) => return String::new(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(key, value)| match value {
                Value::String(s) => format!("{key}={s}"),
                other => format!("{key}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    truncate(printable(&text), DETAIL_CHARS)
}

/// One audit line as a row: time, event, outcome, user, tool, session hash (8 characters), detail.
pub fn format_line(line: &Value) -> String {
    let field = |name: &str| {
        line.get(name)
            .and_then(Value::as_str)
            .map(printable)
            .unwrap_or_else(|| "-".to_owned())
    };
    let user = match line.get("username").and_then(Value::as_str) {
        Some(name) => printable(name),
        None => line
            .get("userId")
            .and_then(Value::as_str)
            .map(|id| printable(&id.chars().take(8).collect::<String>()))
            .unwrap_or_else(|| "-".to_owned()),
    };
    let session = line
        .get("session")
        .and_then(Value::as_str)
        .map(|s| printable(&s.chars().take(8).collect::<String>()))
        .unwrap_or_else(|| "-".to_owned());
    let row = format!(
        "{:<24}  {:<18}  {:<7}  {:<16}  {:<22}  {:<8}  {}",
        field("ts"),
        field("event"),
        field("outcome"),
        user,
        field("tool"),
        session,
        detail_summary(line.get("detail"))
    );
    row.trim_end().to_owned()
}

/// The row for one raw line, if the filter takes it. A line that is not JSON is shown (marked)
/// only when nothing is filtered.
fn row(raw: &[u8], filter: &Filter) -> Option<String> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    match serde_json::from_slice::<Value>(raw) {
        Ok(line) => filter.matches(&line).then(|| format_line(&line)),
        Err(_) if filter.is_empty() => Some(format!(
            "(not an audit line) {}",
            truncate(printable(&String::from_utf8_lossy(raw)), DETAIL_CHARS)
        )),
        Err(_) => None,
    }
}

/// What identifies the file behind a path, to notice a rotation.
fn identity(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

/// An open audit file and the bytes of a line not yet complete.
struct Reader {
    file: File,
    identity: Option<(u64, u64)>,
    partial: Vec<u8>,
}

impl Reader {
    fn open(path: &Path) -> std::io::Result<Self> {
        let file = File::open(path)?;
        let identity = identity(&file.metadata()?);
        Ok(Self {
            file,
            identity,
            partial: Vec::new(),
        })
    }

    /// The complete lines appended since the last call.
    fn new_lines(&mut self) -> std::io::Result<Vec<Vec<u8>>> {
        self.file.read_to_end(&mut self.partial)?;
        let Some(last_newline) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return Ok(Vec::new());
        };
        let rest = self.partial.split_off(last_newline + 1);
        let complete = std::mem::replace(&mut self.partial, rest);
        Ok(complete
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect())
    }
}

/// Prints the last `count` events of `path` that `filter` takes; with `follow`, then prints new
/// ones as they arrive until the process is interrupted.
pub fn run(
    path: &Path,
    count: usize,
    follow: bool,
    filter: &Filter,
    out: &mut dyn Write,
) -> Result<(), TailError> {
    let read_err = |source| TailError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = match Reader::open(path) {
        Ok(reader) => Some(reader),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && follow => None,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(TailError::Missing(path.to_path_buf()));
        }
        Err(e) => return Err(read_err(e)),
    };
    let mut last = VecDeque::with_capacity(count.min(4096));
    if let Some(reader) = reader.as_mut() {
        for raw in reader.new_lines().map_err(read_err)? {
            if let Some(row) = row(&raw, filter) {
                if last.len() == count {
                    last.pop_front();
                }
                if count > 0 {
                    last.push_back(row);
                }
            }
        }
    }
    for row in &last {
        writeln!(out, "{row}").map_err(TailError::Output)?;
    }
    out.flush().map_err(TailError::Output)?;
    if !follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(POLL_INTERVAL);
        let mut rows = Vec::new();
        if let Some(current) = reader.as_mut() {
            for raw in current.new_lines().map_err(read_err)? {
                rows.extend(row(&raw, filter));
            }
        }
        // A rotation renames the file and starts a new one: finish the old (above), then switch.
        let switched = match (std::fs::metadata(path), reader.as_mut()) {
            (Err(_), _) => false,
            (Ok(_), None) => true,
            (Ok(meta), Some(current)) => {
                current.identity != identity(&meta)
                    || current
                        .file
                        .stream_position()
                        .is_ok_and(|read| read > meta.len())
            }
        };
        if switched {
            reader = match Reader::open(path) {
                Ok(mut fresh) => {
                    for raw in fresh.new_lines().map_err(read_err)? {
                        rows.extend(row(&raw, filter));
                    }
                    Some(fresh)
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(read_err(e)),
            };
        }
        for row in rows {
            writeln!(out, "{row}").map_err(TailError::Output)?;
        }
        out.flush().map_err(TailError::Output)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_by_user_id_or_name_and_event_family() {
        let line = json!({"event": "login.failure", "username": "alice", "userId": "u-1"});
        let filter = |user: Option<&str>, event: Option<&str>| Filter {
            user: user.map(str::to_owned),
            event: event.map(str::to_owned),
        };
        assert!(filter(None, None).matches(&line));
        assert!(filter(Some("alice"), Some("login")).matches(&line));
        assert!(filter(Some("u-1"), Some("login.failure")).matches(&line));
        assert!(!filter(Some("bob"), None).matches(&line));
        assert!(!filter(None, Some("log")).matches(&line));
        assert!(!filter(None, Some("login.success")).matches(&line));
    }

    #[test]
    fn audit_tail_escapes_zero_width_and_bidi_characters() {
        let line = json!({"ts": "2026-01-02T03:04:05.678Z", "event": "context.create",
            "outcome": "success", "username": "admin\u{200b}",
            "detail": {"name": "\u{202e}gnp.exe", "tag": "a\u{2066}b\u{feff}", "site": "café"}});
        let row = format_line(&line);
        for hidden in ['\u{200b}', '\u{202e}', '\u{2066}', '\u{feff}'] {
            assert!(
                !row.contains(hidden),
                "{hidden:?} printed as it is: {row:?}"
            );
        }
        assert!(row.contains("admin\\u{200b}"), "{row}");
        assert!(row.contains("\\u{202e}gnp.exe"), "{row}");
        assert!(
            row.contains("café"),
            "ordinary letters stay as they are: {row}"
        );
    }

    #[test]
    fn rows_are_readable_and_escape_control_characters() {
        let line = json!({"ts": "2026-01-02T03:04:05.678Z", "event": "login.failure",
            "outcome": "failure", "username": "eve\u{1b}[31m", "tool": "create-session",
            "session": "0123456789abcdef0123456789abcdef", "detail": {"reason": "bad password", "n": 3}});
        let row = format_line(&line);
        assert!(
            row.starts_with("2026-01-02T03:04:05.678Z  login.failure"),
            "{row}"
        );
        assert!(row.contains("create-session"), "{row}");
        assert!(row.contains(" 01234567 "), "{row}");
        assert!(
            !row.contains("89abcdef"),
            "the session hash is shortened: {row}"
        );
        assert!(row.contains("reason=bad password"), "{row}");
        assert!(row.contains("n=3"), "{row}");
        assert!(
            !row.contains('\u{1b}'),
            "an escape reached the terminal: {row}"
        );
    }

    #[test]
    fn last_n_matching_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut text = String::new();
        for i in 0..10 {
            let user = if i % 2 == 0 { "alice" } else { "bob" };
            text.push_str(&format!(
                "{}\n",
                json!({"ts": format!("t{i}"), "event": "login.success", "outcome": "success", "username": user})
            ));
        }
        std::fs::write(&path, text).unwrap();
        let filter = Filter {
            user: Some("bob".into()),
            event: None,
        };
        let mut out = Vec::new();
        run(&path, 2, false, &filter, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        let times: Vec<&str> = out.lines().filter_map(|l| l.split(' ').next()).collect();
        assert_eq!(times, ["t7", "t9"]);
    }
}
