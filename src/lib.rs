//! mcp-sessions: a stdio MCP server that gives AI agents authenticated, time-limited, audited
//! user sessions.
//!
//! Dependencies point one way: `server` (tools) → `sessions`, `audit` → `tokens`, `users`,
//! `seal` → `rbac`. `app` is the composition root that wires them; `cli` holds the operator commands (`install`,
//! `doctor`, `audit_tail` and user, key and audit management).
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
