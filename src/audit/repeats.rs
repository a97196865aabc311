//! Repeated refusals, aggregated. A refusal that costs the caller nothing (a login for a locked
//! name is refused before any password check) could otherwise be sent thousands of times a
//! second, each writing a line, until rotation pushed the real history out of the log. The first
//! refusal of a kind in a window is written in full; the others in that window are counted, and
//! one line says how many there were ("N more like this in the last 60 s") when the window ends:
//! at the next such refusal, on the background tick, or at exit.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::json;

use super::AuditEvent;

/// How long one window of a kind of refusal lasts.
const WINDOW_MS: u64 = 60_000;
/// Kinds tracked at once; past this, every open window is summarised and closed (so a caller
/// inventing names cannot grow the map, nor escape aggregation for long).
const MAX_KINDS: usize = 4096;

struct Window {
    started_ms: u64,
    /// Refusals counted, not written, since the window's first.
    more: u64,
    /// The window's first refusal, which its summary repeats (event, user, tool).
    first: AuditEvent,
}

#[derive(Default)]
pub(super) struct Repeats {
    open: Mutex<HashMap<String, Window>>,
}

impl Repeats {
    /// What to write for a refusal of kind `key` now: the summary of the window it closes and
    /// the refusal itself when it opens a window; nothing when it is counted.
    pub(super) fn note(&self, key: &str, event: AuditEvent, now_ms: u64) -> Vec<AuditEvent> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        if let Some(window) = open.get_mut(key)
            && now_ms.saturating_sub(window.started_ms) < WINDOW_MS
        {
            window.more += 1;
            return out;
        }
        if let Some(ended) = open.remove(key) {
            out.extend(summary(ended, now_ms));
        }
        if open.len() >= MAX_KINDS {
            out.extend(open.drain().filter_map(|(_, w)| summary(w, now_ms)));
        }
        open.insert(
            key.to_owned(),
            Window {
                started_ms: now_ms,
                more: 0,
                first: event.clone(),
            },
        );
        out.push(event);
        out
    }

    /// Summaries of the windows that have ended by `now_ms` (all of them when `all`).
    pub(super) fn due(&self, now_ms: u64, all: bool) -> Vec<AuditEvent> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let ended: Vec<String> = open
            .iter()
            .filter(|(_, w)| all || now_ms.saturating_sub(w.started_ms) >= WINDOW_MS)
            .map(|(key, _)| key.clone())
            .collect();
        ended
            .into_iter()
            .filter_map(|key| open.remove(&key))
            .filter_map(|w| summary(w, now_ms))
            .collect()
    }
}

/// The line that says how many refusals a window counted; none when it counted none.
fn summary(window: Window, now_ms: u64) -> Option<AuditEvent> {
    if window.more == 0 {
        return None;
    }
    let seconds = now_ms
        .saturating_sub(window.started_ms)
        .min(WINDOW_MS)
        .div_ceil(1000);
    let mut line = window.first;
    line.detail = Some(json!({
        "repeated": window.more,
        "seconds": seconds,
        "note": format!("{} more like this in the last {seconds} s, counted, not written one by one", window.more),
    }));
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::super::nist;
    use super::*;

    fn refusal(name: &str) -> AuditEvent {
        AuditEvent::new("login.locked", "denied", &[nist::AC_7]).username(name)
    }

    #[test]
    fn the_first_of_a_window_is_written_the_rest_counted_then_summarised() {
        let repeats = Repeats::default();
        assert_eq!(repeats.note("a", refusal("a"), 0).len(), 1);
        for t in 1..=100 {
            assert!(repeats.note("a", refusal("a"), t).is_empty());
        }
        assert_eq!(
            repeats.note("b", refusal("b"), 200).len(),
            1,
            "another kind"
        );
        assert!(repeats.due(1_000, false).is_empty(), "the window is open");
        let next = repeats.note("a", refusal("a"), WINDOW_MS + 5);
        assert_eq!(
            next.len(),
            2,
            "the summary, then the refusal that opens a window"
        );
        assert_eq!(
            next[0].detail.as_ref().map(|d| d["repeated"].clone()),
            Some(json!(100))
        );
        let left = repeats.due(WINDOW_MS + 10, true);
        assert!(
            left.is_empty(),
            "b counted nothing more; a's new window neither"
        );
    }

    #[test]
    fn inventing_kinds_does_not_grow_the_map_past_its_bound() {
        let repeats = Repeats::default();
        for n in 0..(MAX_KINDS * 3) {
            let name = format!("u{n}");
            repeats.note(&name, refusal(&name), 0);
            repeats.note(&name, refusal(&name), 1);
        }
        let open = repeats.open.lock().unwrap().len();
        assert!(open <= MAX_KINDS, "{open} kinds open");
    }
}
