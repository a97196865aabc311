//! mcp-sessions: an MCP server that gives AI agents authenticated, time-limited, audited user
//! sessions and, bound to each, isolated headless Chromium contexts.
//!
//! The map. Each line: what the folder owns; what it may use. Dependencies point one way (down
//! this list, never up), and no two modules import each other; sessions and browser never call
//! each other: the composition root wires a session's end to closing its contexts.
//!
//! - `ops` — the operator commands (`user`, `token`, `key`, `audit`, `install`, `doctor`). Uses
//!   `app` (only to check a configuration as start-up would) and the parts below it.
//! - `app` — the composition root: builds every part from the configuration, wires them, runs
//!   the sweeper and shuts down in order. Uses everything below.
//! - `transport` — how MCP messages reach the tools: the stdio line transport and its read-ahead
//!   bound; the Streamable HTTP mode (Host/Origin guard, bearer authentication, transport sessions
//!   bound to their principal, the accept loop). Uses `server` (the handler, the principal, the
//!   shared state) and what it holds.
//! - `server` — the MCP tools: the rmcp handler, argument validation, tools/list, who calls, and
//!   the state the tools share. Uses `sessions`, `browser`, `audit`, `auth`, `config`.
//! - `sessions` — who is logged in, until when: the session types and the in-memory store. Uses
//!   `auth`.
//! - `browser` — one Chromium per user, one incognito context per browser context, the URL
//!   policy. Uses `auth` (random ids), `config`.
//! - `audit` — the append-only, MAC-chained audit log, its verification and `audit tail`. Uses
//!   `auth` (key types), `files`.
//! - `auth` — users and passwords, JWTs and keys, personal access tokens, roles, login throttling,
//!   sealing, secret types. Uses `files`, `clock`.
//! - `config` — `config.toml`, environment and flags parsed into a validated `Config`; where the
//!   files live. Uses nothing of ours.
//! - `files`, `clock` — private files, atomic replacement, locks and change watching; wall-clock
//!   time and RFC 3339. Any module above may use them.
#![deny(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod app;
pub mod audit;
pub mod auth;
pub mod browser;
pub mod clock;
pub mod config;
pub mod files;
pub mod ops;
pub mod server;
pub mod sessions;
pub mod transport;

#[cfg(test)]
mod layout {
    //! Keeps the map above true: a module may use only the layers below its own.

    use std::path::Path;

    /// The map's layers, top first.
    const LAYERS: &[&[&str]] = &[
        &["ops"],
        &["app"],
        &["transport"],
        &["server"],
        &["sessions", "browser", "audit"],
        &["auth"],
        &["config"],
        &["files", "clock"],
    ];

    fn layer(module: &str) -> Option<usize> {
        LAYERS.iter().position(|layer| layer.contains(&module))
    }

    /// The top-level module a file of `src/` belongs to.
    fn owner(relative: &Path) -> String {
        let first = relative.components().next().map(|c| c.as_os_str());
        let first = first.and_then(|c| c.to_str()).unwrap_or_default();
        first.trim_end_matches(".rs").to_owned()
    }

    fn rust_files(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                rust_files(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }

    #[test]
    fn modules_use_only_the_layers_below_their_own() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let mut wrong = Vec::new();
        for file in files {
            let relative = file.strip_prefix(&src).unwrap();
            let from = owner(relative);
            let Some(from_layer) = layer(&from) else {
                assert!(
                    ["lib", "main"].contains(&from.as_str()),
                    "{} is in no layer of the map in src/lib.rs",
                    relative.display()
                );
                continue;
            };
            let text = std::fs::read_to_string(&file).unwrap();
            for (at, _) in text.match_indices("crate::") {
                let rest = &text[at + "crate::".len()..];
                let used: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if used == from {
                    continue;
                }
                match layer(&used) {
                    Some(to_layer) if to_layer > from_layer => {}
                    _ => wrong.push(format!("{} uses crate::{used}", relative.display())),
                }
            }
        }
        wrong.sort();
        wrong.dedup();
        assert!(
            wrong.is_empty(),
            "uses against the map:\n{}",
            wrong.join("\n")
        );
    }
}
