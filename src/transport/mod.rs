//! How MCP messages reach the tools: the stdio line transport (the default, one host per process).

mod stdio;

pub use stdio::{LineTransport, MAX_IN_FLIGHT};
