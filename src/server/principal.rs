//! Who an HTTP request comes from: the bearer of a credential the transport verified. Over stdio
//! there is none, and the tools read the caller from their arguments as before.

use std::net::IpAddr;
use std::sync::Arc;

use crate::sessions::SessionId;

/// The credential a bearer presented.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Credential {
    /// A personal access token, by its id (never the token).
    Pat(String),
    /// An access JWT of this server, for the session it names.
    Session(SessionId),
}

/// The verified bearer of an HTTP request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user_id: String,
    pub username: String,
    pub credential: Credential,
    /// The client's address (the proxy's client when behind a trusted proxy).
    pub address: IpAddr,
    /// The transport session (`Mcp-Session-Id`) the request came in, checked against this
    /// principal; `None` for stateless requests.
    pub transport_session: Option<Arc<str>>,
}

impl Principal {
    /// The credential as audit records name it: a token id, or a session's keyed handle.
    pub fn credential_label(&self, handle_of: impl Fn(SessionId) -> String) -> String {
        match &self.credential {
            Credential::Pat(id) => format!("pat:{id}"),
            Credential::Session(id) => format!("session:{}", handle_of(*id)),
        }
    }
}
