//! A small synchronous DevTools client over one WebSocket, speaking headless_chrome's typed
//! protocol (`headless_chrome::protocol::cdp`: each method's params and return object). We use
//! headless_chrome for the protocol, not for its transport: that one holds its socket lock through
//! a 100 ms read timeout (every call took ~100 ms here), its event loop stops for the whole
//! browser when a page opens and closes a popup (upstream #332) or after an idle timeout (#498),
//! and it keeps `Browser::call_method` private, so browser-level calls such as
//! `Target.disposeBrowserContext` (refused through a page session) cannot be made. Pages get one
//! connection per tab (`ws://…/devtools/page/<target>`), the browser a control connection.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use headless_chrome::protocol::cdp::types::Method;
use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// Why a DevTools call failed.
#[derive(Debug, thiserror::Error)]
pub enum CdpError {
    #[error("no answer within the time allowed")]
    Timeout,
    #[error("the connection is closed: {0}")]
    Closed(String),
    #[error("{0}")]
    Remote(String),
}

pub struct CdpConnection {
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
    url: String,
    /// The socket failed (the browser closed it, or a message was larger than a WebSocket
    /// message may be): the next call connects again, so one failed call does not leave the
    /// tab unusable while its target lives on.
    broken: bool,
    next_id: u64,
}

fn open_socket(ws_url: &str) -> Result<WebSocket<MaybeTlsStream<TcpStream>>, CdpError> {
    let (socket, _) = tungstenite::connect(ws_url).map_err(|e| CdpError::Closed(e.to_string()))?;
    if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
        let _ = stream.set_nodelay(true);
    }
    Ok(socket)
}

impl CdpConnection {
    pub fn connect(ws_url: &str) -> Result<Self, CdpError> {
        Ok(Self {
            socket: open_socket(ws_url)?,
            url: ws_url.to_owned(),
            broken: false,
            next_id: 0,
        })
    }

    fn set_timeout(&self, timeout: Duration) {
        if let MaybeTlsStream::Plain(stream) = self.socket.get_ref() {
            let timeout = Some(timeout.max(Duration::from_millis(1)));
            let _ = stream.set_read_timeout(timeout);
            let _ = stream.set_write_timeout(timeout);
        }
    }

    /// Sends a typed protocol method and waits for its typed result.
    pub fn send<M: Method + serde::Serialize>(
        &mut self,
        method: M,
        timeout: Duration,
    ) -> Result<M::ReturnObject, CdpError> {
        let params = serde_json::to_value(&method).map_err(|e| CdpError::Remote(e.to_string()))?;
        // Methods without parameters serialize as null; DevTools wants an object.
        let params = if params.is_null() { json!({}) } else { params };
        let result = self.call(M::NAME, params, timeout)?;
        serde_json::from_value(result)
            .map_err(|e| CdpError::Remote(format!("unexpected answer to {}: {e}", M::NAME)))
    }

    /// Sends `method` and waits for its result, skipping events; a failed socket is replaced first.
    fn call(&mut self, method: &str, params: Value, timeout: Duration) -> Result<Value, CdpError> {
        if self.broken {
            self.socket = open_socket(&self.url)?;
            self.broken = false;
        }
        let result = self.exchange(method, params, timeout);
        if let Err(CdpError::Closed(_)) = result {
            self.broken = true;
        }
        result
    }

    fn exchange(
        &mut self,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, CdpError> {
        self.next_id += 1;
        let id = self.next_id;
        let deadline = Instant::now() + timeout;
        self.set_timeout(timeout);
        let request = json!({"id": id, "method": method, "params": params});
        self.socket
            .send(Message::text(request.to_string()))
            .map_err(|e| CdpError::Closed(e.to_string()))?;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(CdpError::Timeout);
            }
            self.set_timeout(left);
            match self.socket.read() {
                Ok(Message::Text(text)) => {
                    let Ok(reply) = serde_json::from_str::<Value>(text.as_str()) else {
                        continue;
                    };
                    if reply.get("id").and_then(Value::as_u64) != Some(id) {
                        continue;
                    }
                    return match reply.get("error") {
                        Some(error) => Err(CdpError::Remote(
                            error
                                .get("message")
                                .and_then(Value::as_str)
                                .unwrap_or("error")
                                .to_owned(),
                        )),
                        None => Ok(reply.get("result").cloned().unwrap_or(Value::Null)),
                    };
                }
                Ok(Message::Close(_)) => {
                    return Err(CdpError::Closed("closed by the browser".into()));
                }
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(CdpError::Timeout);
                }
                Err(e) => return Err(CdpError::Closed(e.to_string())),
            }
        }
    }
}

impl Drop for CdpConnection {
    fn drop(&mut self) {
        let _ = self.socket.close(None);
        let _ = self.socket.flush();
    }
}
