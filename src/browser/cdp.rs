//! A small synchronous DevTools client over one WebSocket. Page operations use one per tab
//! (`ws://…/devtools/page/<target>`): headless_chrome's transport holds its socket lock through
//! a 100 ms read timeout, so each of its calls waited ~100 ms here; a connection of our own
//! answers in a few milliseconds. It also makes the browser-level calls headless_chrome does not
//! expose (`Browser::call_method` is private), such as `Target.disposeBrowserContext`, which a
//! page session may not send ("Not allowed").

use std::net::TcpStream;
use std::time::{Duration, Instant};

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
    next_id: u64,
}

impl CdpConnection {
    pub fn connect(ws_url: &str) -> Result<Self, CdpError> {
        let (socket, _) =
            tungstenite::connect(ws_url).map_err(|e| CdpError::Closed(e.to_string()))?;
        if let MaybeTlsStream::Plain(stream) = socket.get_ref() {
            let _ = stream.set_nodelay(true);
        }
        Ok(Self { socket, next_id: 0 })
    }

    fn set_timeout(&self, timeout: Duration) {
        if let MaybeTlsStream::Plain(stream) = self.socket.get_ref() {
            let timeout = Some(timeout.max(Duration::from_millis(1)));
            let _ = stream.set_read_timeout(timeout);
            let _ = stream.set_write_timeout(timeout);
        }
    }

    /// Sends `method` and waits for its result, skipping events.
    pub fn call(
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
