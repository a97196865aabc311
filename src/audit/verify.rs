//! `audit verify`: walks a file's chain and names the first line that was altered, removed or
//! inserted.

use std::path::Path;

use serde_json::Value;

use super::AuditError;
use super::chain::{Keys, split_mac};
use crate::auth::secret::SecretBytes;

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
    use std::path::PathBuf;

    use super::super::chain::line_mac_field;
    use super::super::{AuditEvent, AuditLog, nist};
    use super::*;

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
