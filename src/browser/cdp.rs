//! DevTools over the pipe Chromium is started with (`--remote-debugging-pipe`: it reads commands
//! on its fd 3 and writes answers and events on its fd 4, each message ending in a NUL byte). No
//! TCP listener exists, so no other process can drive the browser; every target (the browser
//! itself, each tab, iframe and worker) is a flattened session on this one channel, named by the
//! `sessionId` of each message.
//!
//! One reader thread per browser hands each answer to the call waiting for its id and each event
//! to the browser's event thread (`targets`). Calls are blocking (they run on the blocking pool
//! or the event thread) and any number may wait at once; a call stops waiting at its timeout, and
//! every waiting call fails at once when the browser closes the pipe. We use headless_chrome for
//! its typed protocol only (each method's params and return object).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use headless_chrome::protocol::cdp::types::Method;
use serde_json::{Value, json};

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

/// The largest message we keep; a larger one is dropped (its call times out) rather than held.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

type Reply = Result<Value, CdpError>;

/// A call waiting for its answer: the session it was sent to, and where the answer goes.
type Waiting = (Option<String>, SyncSender<Reply>);

/// An event from the browser: `method` and `params`, from the target `session` (None: the
/// browser).
#[derive(Debug)]
pub struct Event {
    pub session: Option<String>,
    pub method: String,
    pub params: Value,
}

/// The two ends of one browser's DevTools pipe.
pub struct Pipe {
    writer: Mutex<File>,
    pending: Mutex<HashMap<u64, Waiting>>,
    next_id: AtomicU64,
    closed: AtomicBool,
}

impl Pipe {
    /// Starts reading `input` (the browser's fd 4) on a thread of its own; commands go to
    /// `output` (its fd 3). Returns the pipe and the browser's events.
    pub fn start(input: File, output: File) -> std::io::Result<(Arc<Self>, Receiver<Event>)> {
        let pipe = Arc::new(Self {
            writer: Mutex::new(output),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        let (events, received) = channel();
        let reader = pipe.clone();
        std::thread::Builder::new()
            .name("cdp-reader".into())
            .spawn(move || reader.read_all(input, events))?;
        Ok((pipe, received))
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn read_all(&self, input: File, events: Sender<Event>) {
        let mut input = BufReader::with_capacity(1 << 20, input);
        let mut message = Vec::new();
        let mut oversized = false;
        loop {
            let chunk = match input.fill_buf() {
                Ok([]) | Err(_) => break,
                Ok(chunk) => chunk,
            };
            let (used, complete) = match chunk.iter().position(|b| *b == 0) {
                Some(end) => (end + 1, Some(end)),
                None => (chunk.len(), None),
            };
            let take = complete.unwrap_or(used);
            if !oversized && message.len() + take <= MAX_MESSAGE {
                message.extend_from_slice(&chunk[..take]);
            } else {
                oversized = true;
                message.clear();
            }
            input.consume(used);
            if complete.is_some() {
                if oversized {
                    tracing::warn!("dropped a DevTools message larger than {MAX_MESSAGE} bytes");
                } else {
                    self.dispatch(&message, &events);
                }
                message.clear();
                oversized = false;
            }
        }
        self.closed.store(true, Ordering::SeqCst);
        let waiting: Vec<SyncSender<Reply>> = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, (_, tx))| tx)
            .collect();
        for tx in waiting {
            let _ = tx.try_send(Err(CdpError::Closed("the browser closed its pipe".into())));
        }
    }

    fn dispatch(&self, message: &[u8], events: &Sender<Event>) {
        let Ok(mut message) = serde_json::from_slice::<Value>(message) else {
            return;
        };
        if let Some(id) = message.get("id").and_then(Value::as_u64) {
            let waiting = self
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            if let Some((_, tx)) = waiting {
                let reply = match message.get("error") {
                    Some(error) => Err(CdpError::Remote(
                        error
                            .get("message")
                            .and_then(Value::as_str)
                            .unwrap_or("error")
                            .to_owned(),
                    )),
                    None => Ok(message
                        .get_mut("result")
                        .map(Value::take)
                        .unwrap_or(Value::Null)),
                };
                let _ = tx.try_send(reply);
            }
            return;
        }
        let Some(method) = message.get("method").and_then(Value::as_str) else {
            return;
        };
        let event = Event {
            method: method.to_owned(),
            session: message
                .get("sessionId")
                .and_then(Value::as_str)
                .map(str::to_owned),
            params: message
                .get_mut("params")
                .map(Value::take)
                .unwrap_or(Value::Null),
        };
        let _ = events.send(event);
    }

    fn write(
        &self,
        id: u64,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<(), CdpError> {
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = Value::from(session);
        }
        let mut bytes = message.to_string().into_bytes();
        bytes.push(0);
        let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        writer
            .write_all(&bytes)
            .map_err(|e| CdpError::Closed(e.to_string()))
    }

    /// Sends `method` to `session` and waits up to `timeout` for its result.
    pub fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, CdpError> {
        if self.is_closed() {
            return Err(CdpError::Closed("the browser closed its pipe".into()));
        }
        let id = self.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        let (tx, rx) = sync_channel(1);
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, (session.map(str::to_owned), tx));
        let forget = || {
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
        };
        if let Err(e) = self.write(id, session, method, params) {
            forget();
            return Err(e);
        }
        match rx.recv_timeout(timeout.max(Duration::from_millis(1))) {
            Ok(reply) => reply,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                forget();
                Err(CdpError::Timeout)
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                Err(CdpError::Closed("the browser closed its pipe".into()))
            }
        }
    }

    /// Fails at once every call waiting on `session` (its target crashed: no answer will come).
    pub fn fail_session(&self, session: &str, why: &str) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let ids: Vec<u64> = pending
            .iter()
            .filter(|(_, (s, _))| s.as_deref() == Some(session))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some((_, tx)) = pending.remove(&id) {
                let _ = tx.try_send(Err(CdpError::Remote(why.to_owned())));
            }
        }
    }

    /// Sends `method` without waiting for its answer (which the reader drops).
    pub fn notify(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<(), CdpError> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        self.write(id, session, method, params)
    }
}

/// One target's session on a browser's pipe (or, without a session, the browser itself).
#[derive(Clone)]
pub struct CdpConnection {
    pipe: Arc<Pipe>,
    session: Option<String>,
}

impl CdpConnection {
    pub fn new(pipe: Arc<Pipe>, session: Option<String>) -> Self {
        Self { pipe, session }
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
        let result = self
            .pipe
            .call(self.session.as_deref(), M::NAME, params, timeout)?;
        serde_json::from_value(result)
            .map_err(|e| CdpError::Remote(format!("unexpected answer to {}: {e}", M::NAME)))
    }
}
