//! How MCP messages reach the tools: the stdio line transport (the default, one host per process)
//! and the bound on requests read ahead of their answers.

mod in_flight;
mod stdio;

pub use in_flight::MAX_IN_FLIGHT;
pub use stdio::LineTransport;
