//! How MCP messages reach the tools: the stdio line transport (the default, one host per process)
//! with the bound on requests read ahead of their answers, and the Streamable HTTP mode (many
//! clients, each the bearer of a verified token).

pub mod http;
mod in_flight;
mod stdio;

pub use in_flight::MAX_IN_FLIGHT;
pub use stdio::LineTransport;
