//! The stdio line transport. rmcp's own drops malformed lines silently; this one answers them as
//! JSON-RPC 2.0 says (-32700 for a line that is not JSON, -32600 for JSON that is not a request,
//! -32602 for a known method with malformed params) and carries on. Lines are read with a bound
//! (`max_request_bytes`): a longer line is refused and skipped without being buffered whole.
//!
//! rmcp selects over `receive` and drops it whenever something else is ready first, so nothing in
//! it may be lost by being dropped: reading is cancellation-safe, and each refusal is written by a
//! task of its own that the next `receive` (or `close`) waits for.
//!
//! At most [`MAX_IN_FLIGHT`] requests are handed to rmcp unanswered (see `in_flight`): `receive`
//! stops reading until answers go out.

use std::sync::Arc;

use rmcp::RoleServer;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use super::in_flight::InFlight;
pub use super::in_flight::MAX_IN_FLIGHT;

/// A line-delimited JSON-RPC transport over any reader and writer (stdin and stdout in the server).
pub struct LineTransport<R, W> {
    read: BufReader<R>,
    line: Vec<u8>,
    /// Set while skipping the rest of a line that was too long.
    discarding: bool,
    max_line: usize,
    write: Arc<Mutex<Option<W>>>,
    /// The refusal being written (`false` when the peer is gone). Awaited before the next line is
    /// read, so refusals keep their order and a vanished peer ends the transport.
    refusing: Option<JoinHandle<bool>>,
    in_flight: Arc<InFlight>,
    max_in_flight: usize,
}

enum Line {
    Complete,
    TooLong,
    Eof,
}

impl<R, W> LineTransport<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    pub fn new(read: R, write: W, max_line: usize) -> Self {
        Self {
            read: BufReader::with_capacity(64 * 1024, read),
            line: Vec::new(),
            discarding: false,
            max_line,
            write: Arc::new(Mutex::new(Some(write))),
            refusing: None,
            in_flight: Arc::default(),
            max_in_flight: MAX_IN_FLIGHT,
        }
    }

    /// Waits for the refusal in flight, if any; `false` when the peer is gone. Cancellation-safe:
    /// the task goes on, and is awaited again next time.
    async fn finish_refusal(&mut self) -> bool {
        let Some(refusing) = self.refusing.as_mut() else {
            return true;
        };
        let delivered = refusing.await.unwrap_or(false);
        self.refusing = None;
        delivered
    }

    /// Reads one line into `self.line`, never holding more than `max_line` bytes of it.
    /// Cancellation-safe: bytes are moved out of the reader only together with their copy.
    async fn read_line(&mut self) -> std::io::Result<Line> {
        loop {
            let available = self.read.fill_buf().await?;
            if available.is_empty() {
                return Ok(Line::Eof);
            }
            let newline = available.iter().position(|b| *b == b'\n');
            let take = newline.map_or(available.len(), |i| i + 1);
            let outcome = if self.discarding {
                if newline.is_some() {
                    self.discarding = false;
                }
                None
            } else if self.line.len() + take > self.max_line + 1 {
                self.line.clear();
                self.discarding = newline.is_none();
                Some(Line::TooLong)
            } else {
                self.line.extend_from_slice(&available[..take]);
                newline.map(|_| Line::Complete)
            };
            self.read.consume(take);
            if let Some(outcome) = outcome {
                return Ok(outcome);
            }
        }
    }
}

/// Writes a JSON-RPC error response; `false` when the peer is gone.
async fn reply_error<W: AsyncWrite + Unpin + Send>(
    write: Arc<Mutex<Option<W>>>,
    id: Value,
    code: i64,
    message: String,
) -> bool {
    let reply = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    let mut bytes = reply.to_string().into_bytes();
    bytes.push(b'\n');
    let mut guard = write.lock().await;
    let Some(writer) = guard.as_mut() else {
        return false;
    };
    writer.write_all(&bytes).await.is_ok() && writer.flush().await.is_ok()
}

/// Classifies a line rmcp's types did not accept and answers it; `false` when the peer is gone.
async fn refuse<W: AsyncWrite + Unpin + Send>(write: Arc<Mutex<Option<W>>>, line: Vec<u8>) -> bool {
    let value = match serde_json::from_slice::<Value>(&line) {
        Ok(value) => value,
        Err(e) => {
            let why = match std::str::from_utf8(&line) {
                Err(_) => "the line is not valid UTF-8".to_owned(),
                Ok(_) => format!("the line is not valid JSON ({})", describe_syntax_error(&e)),
            };
            return reply_error(write, Value::Null, -32700, format!("Parse error: {why}")).await;
        }
    };
    let id = value.get("id");
    if id.is_some_and(|id| !id.is_string() && !id.is_number()) {
        // Present but neither string nor number: a request whose id cannot be echoed, not a
        // notification (which has no id member at all).
        let message = "Invalid Request: `id` must be a string or a number".to_owned();
        return reply_error(write, Value::Null, -32600, message).await;
    }
    let id = id.cloned();
    let method = value.get("method").and_then(Value::as_str);
    match (id, method) {
        // A notification nobody answers (JSON-RPC forbids replies to notifications).
        (None, Some(_)) => true,
        (Some(id), Some(method)) => {
            let message = format!(
                "Invalid params: the params of `{method}` do not have the shape the method takes"
            );
            reply_error(write, id, -32602, message).await
        }
        (id, None) => {
            let message = if value.is_array() {
                "Invalid Request: batches are not supported; send one request per line".to_owned()
            } else {
                "Invalid Request: not a JSON-RPC 2.0 request (expected jsonrpc, id, method)"
                    .to_owned()
            };
            reply_error(write, id.unwrap_or(Value::Null), -32600, message).await
        }
    }
}

/// The position and kind of a JSON syntax error, without echoing the input.
fn describe_syntax_error(e: &serde_json::Error) -> String {
    let kind = match e.classify() {
        serde_json::error::Category::Eof => "unexpected end of input",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Io => "read error",
    };
    format!("{kind} at line {} column {}", e.line(), e.column())
}

impl<R, W> Transport<RoleServer> for LineTransport<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let write = self.write.clone();
        let settles = InFlight::answered(&item).map(|id| (id, self.in_flight.clone()));
        async move {
            let written = async {
                let mut bytes = serde_json::to_vec(&item)?;
                bytes.push(b'\n');
                let mut guard = write.lock().await;
                let writer = guard.as_mut().ok_or_else(|| {
                    std::io::Error::new(std::io::ErrorKind::NotConnected, "transport closed")
                })?;
                writer.write_all(&bytes).await?;
                writer.flush().await
            }
            .await;
            if let Some((id, in_flight)) = settles {
                in_flight.leave(&id);
            }
            written
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            if !self.finish_refusal().await {
                return None;
            }
            self.in_flight.room(self.max_in_flight).await;
            match self.read_line().await {
                Ok(Line::Complete) => {}
                Ok(Line::TooLong) => {
                    let message = format!(
                        "Invalid Request: the line is longer than the {} bytes allowed (max_request_bytes); it was discarded",
                        self.max_line
                    );
                    let write = self.write.clone();
                    self.refusing = Some(tokio::spawn(reply_error(
                        write,
                        Value::Null,
                        -32600,
                        message,
                    )));
                    continue;
                }
                Ok(Line::Eof) => return None,
                Err(e) => {
                    tracing::warn!("reading stdin failed: {e}");
                    return None;
                }
            }
            let mut line = std::mem::take(&mut self.line);
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            let trimmed = line
                .strip_prefix(b"\xEF\xBB\xBF".as_slice())
                .unwrap_or(&line);
            let parsed = if trimmed.iter().all(u8::is_ascii_whitespace) {
                None
            } else {
                Some(serde_json::from_slice::<RxJsonRpcMessage<RoleServer>>(
                    trimmed,
                ))
            };
            match parsed {
                None => {}
                Some(Ok(message)) => {
                    self.line = reuse(line);
                    self.in_flight.note_incoming(&message);
                    return Some(message);
                }
                Some(Err(_)) => {
                    let write = self.write.clone();
                    self.refusing = Some(tokio::spawn(refuse(write, trimmed.to_vec())));
                }
            }
            self.line = reuse(line);
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.finish_refusal().await;
        let mut guard = self.write.lock().await;
        if let Some(mut writer) = guard.take() {
            writer.flush().await?;
        }
        Ok(())
    }
}

/// Keeps a modest buffer for the next line; drops a huge one.
fn reuse(mut line: Vec<u8>) -> Vec<u8> {
    line.clear();
    if line.capacity() > 1024 * 1024 {
        Vec::new()
    } else {
        line
    }
}

#[cfg(test)]
mod tests;
