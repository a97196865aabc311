//! Properties of the decoder over arbitrary streams: every line is yielded or answered in
//! order, nothing is buffered past the bound, and rmcp dropping `receive` midway (it selects
//! over it) loses or tears nothing. `PROPTEST_CASES` sets the number of cases (default 256).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Mutex as StdMutex;
use std::task::{Context, Poll};

use proptest::prelude::*;
use tokio::io::ReadBuf;

use super::*;

/// Hands out the stream in the given chunks, one per read; when `stall`, it is not ready
/// before every other read, so that lines span several polls.
struct ChunkedReader {
    chunks: VecDeque<Vec<u8>>,
    stall: bool,
    stalled: bool,
}

impl AsyncRead for ChunkedReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.stall && !self.stalled {
            self.stalled = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.stalled = false;
        if let Some(chunk) = self.chunks.front_mut() {
            let n = chunk.len().min(buf.remaining());
            buf.put_slice(&chunk[..n]);
            chunk.drain(..n);
            if chunk.is_empty() {
                self.chunks.pop_front();
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// Takes a few bytes per write; when `stall`, it is not ready before every other write.
struct SlowWriter {
    out: Arc<StdMutex<Vec<u8>>>,
    stall: bool,
    stalled: bool,
}

impl AsyncWrite for SlowWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.stall && !self.stalled {
            self.stalled = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.stalled = false;
        let n = buf.len().min(7);
        self.out.lock().unwrap().extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// One line of the stream, without its newline.
#[derive(Debug, Clone)]
enum Piece {
    Request {
        id: u32,
        pad: usize,
        crlf: bool,
        bom: bool,
    },
    Notification {
        pad: usize,
    },
    /// A known method whose params have the wrong shape: -32602 naming the id.
    WrongParams {
        id: u32,
    },
    /// An id that is neither string nor number: -32600 with a null id.
    BadId,
    /// Never JSON: it starts with `#`.
    Garbage(Vec<u8>),
    /// Only whitespace: ignored.
    Blank(Vec<u8>),
    /// `x` repeated: not JSON, and past the bound when long enough.
    Long(usize),
}

impl Piece {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Piece::Request { id, pad, crlf, bom } => {
                let mut line = Vec::new();
                if *bom {
                    line.extend_from_slice(b"\xEF\xBB\xBF");
                }
                line.extend_from_slice(
                    format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#).as_bytes(),
                );
                line.extend(std::iter::repeat_n(b' ', *pad));
                if *crlf {
                    line.push(b'\r');
                }
                line
            }
            Piece::Notification { pad } => {
                let mut line =
                    br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_vec();
                line.extend(std::iter::repeat_n(b' ', *pad));
                line
            }
            Piece::WrongParams { id } => {
                format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":"x"}}"#)
                    .into_bytes()
            }
            Piece::BadId => br#"{"jsonrpc":"2.0","id":true,"method":"ping"}"#.to_vec(),
            Piece::Garbage(bytes) => [b"#".as_slice(), bytes].concat(),
            Piece::Blank(bytes) => bytes.clone(),
            Piece::Long(n) => vec![b'x'; *n],
        }
    }
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        4 => (0u32..1000, 0usize..80, any::<bool>(), any::<bool>())
            .prop_map(|(id, pad, crlf, bom)| Piece::Request { id, pad, crlf, bom }),
        1 => (0usize..40).prop_map(|pad| Piece::Notification { pad }),
        1 => (0u32..1000).prop_map(|id| Piece::WrongParams { id }),
        1 => Just(Piece::BadId),
        2 => prop::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..100)
            .prop_map(Piece::Garbage),
        1 => prop::collection::vec(prop::sample::select(vec![b' ', b'\t', b'\r', 0x0C]), 0..10)
            .prop_map(Piece::Blank),
        1 => (1usize..600).prop_map(Piece::Long),
    ]
}

/// What the transport must do with one piece.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// Yielded to rmcp; the id (null for a notification).
    Yield(Value),
    /// Answered with this error code and id.
    Refuse(i64, Value),
    Nothing,
}

fn outcome(piece: &Piece, max: usize, terminated: bool) -> Outcome {
    let len = piece.bytes().len();
    // A line without its newline is over the bound only once it holds more than a full
    // line (`max` bytes and the newline) could.
    if (terminated && len > max) || (!terminated && len > max + 1) {
        return Outcome::Refuse(-32600, Value::Null);
    }
    if !terminated {
        return Outcome::Nothing;
    }
    match piece {
        Piece::Request { id, .. } => Outcome::Yield(json!(id)),
        Piece::Notification { .. } => Outcome::Yield(Value::Null),
        Piece::WrongParams { id } => Outcome::Refuse(-32602, json!(id)),
        Piece::BadId => Outcome::Refuse(-32600, Value::Null),
        Piece::Garbage(_) | Piece::Long(_) => Outcome::Refuse(-32700, Value::Null),
        Piece::Blank(_) => Outcome::Nothing,
    }
}

/// The stream of `pieces` (the last without a newline unless `terminated`), cut into chunks of
/// the given sizes, used in turn.
fn chunked(pieces: &[Piece], terminated: bool, sizes: &[usize]) -> VecDeque<Vec<u8>> {
    let mut stream = Vec::new();
    for (n, piece) in pieces.iter().enumerate() {
        stream.extend_from_slice(&piece.bytes());
        if terminated || n + 1 < pieces.len() {
            stream.push(b'\n');
        }
    }
    let mut chunks = VecDeque::new();
    let mut at = 0;
    for size in sizes.iter().cycle() {
        if at >= stream.len() {
            break;
        }
        let end = (at + size).min(stream.len());
        chunks.push_back(stream[at..end].to_vec());
        at = end;
    }
    chunks
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn transport(
    chunks: VecDeque<Vec<u8>>,
    max: usize,
    stall: bool,
) -> (
    LineTransport<ChunkedReader, SlowWriter>,
    Arc<StdMutex<Vec<u8>>>,
) {
    let out = Arc::new(StdMutex::new(Vec::new()));
    let reader = ChunkedReader {
        chunks,
        stall,
        stalled: false,
    };
    let writer = SlowWriter {
        out: out.clone(),
        stall,
        stalled: false,
    };
    (LineTransport::new(reader, writer, max), out)
}

/// The complete lines written so far, parsed; a torn or non-JSON line fails.
fn written(out: &StdMutex<Vec<u8>>) -> Vec<Value> {
    let bytes = out.lock().unwrap().clone();
    bytes
        .split_inclusive(|b| *b == b'\n')
        .filter(|line| line.ends_with(b"\n"))
        .map(|line| {
            serde_json::from_slice(line).unwrap_or_else(|e| {
                panic!("torn output line ({e}): {}", String::from_utf8_lossy(line))
            })
        })
        .collect()
}

/// Past the bound `receive` reads nothing more until an answer goes out or a cancellation
/// (read before the bound was reached) settles a request.
#[test]
fn receive_stops_reading_while_max_in_flight_requests_are_unanswered() {
    let lines = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
        json!({"jsonrpc": "2.0", "id": "two", "method": "ping"}),
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "two"}}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}),
        json!({"jsonrpc": "2.0", "id": 4, "method": "ping"}),
    ];
    let stream: Vec<u8> = lines
        .iter()
        .flat_map(|l| format!("{l}\n").into_bytes())
        .collect();
    let (mut transport, out) = transport(VecDeque::from([stream]), 4096, false);
    transport.max_in_flight = 2;
    let answer = |id: Value| -> TxJsonRpcMessage<RoleServer> {
        serde_json::from_value(json!({"jsonrpc": "2.0", "id": id, "result": {}})).unwrap()
    };
    runtime().block_on(async {
        async fn next(transport: &mut LineTransport<ChunkedReader, SlowWriter>) -> Value {
            let message = transport.receive().await.expect("a message");
            serde_json::to_value(&message).unwrap()
        }
        assert_eq!(next(&mut transport).await["id"], 1);
        assert_eq!(next(&mut transport).await["id"], "two");
        // Two unanswered: the cancellation behind them is not read yet.
        let blocked =
            tokio::time::timeout(std::time::Duration::from_millis(50), next(&mut transport)).await;
        assert!(blocked.is_err(), "read past the bound: {blocked:?}");
        transport.send(answer(json!(1))).await.unwrap();
        // Room for one: the cancellation of "two" is read, which makes room for 3 and 4.
        assert_eq!(
            next(&mut transport).await["method"],
            "notifications/cancelled"
        );
        assert_eq!(next(&mut transport).await["id"], 3);
        assert_eq!(next(&mut transport).await["id"], 4);
        transport.send(answer(json!(3))).await.unwrap();
        assert!(transport.receive().await.is_none(), "the stream has ended");
    });
    assert_eq!(written(&out).len(), 2);
}

proptest! {
    /// `read_line` hands over each line within the bound byte for byte, reports each longer
    /// one once, and never holds more than `max_line` bytes and a newline.
    #[test]
    fn read_line_yields_each_line_and_never_buffers_past_the_bound(
        pieces in prop::collection::vec(piece(), 0..30),
        terminated in any::<bool>(),
        sizes in prop::collection::vec(1usize..300, 1..20),
        max in 48usize..400,
    ) {
        let (mut transport, _) = transport(chunked(&pieces, terminated, &sizes), max, false);
        let mut expected: VecDeque<(Vec<u8>, bool)> = pieces
            .iter()
            .enumerate()
            .map(|(n, p)| (p.bytes(), terminated || n + 1 < pieces.len()))
            .collect();
        runtime().block_on(async {
            loop {
                let line = transport.read_line().await.unwrap();
                prop_assert!(transport.line.len() <= max + 1);
                prop_assert!(transport.line.capacity() <= (2 * (max + 1)).max(8));
                match line {
                    Line::Complete => {
                        let (bytes, has_newline) = expected.pop_front().unwrap();
                        prop_assert!(has_newline && bytes.len() <= max);
                        prop_assert_eq!(&transport.line[..bytes.len()], &bytes[..]);
                        prop_assert_eq!(&transport.line[bytes.len()..], b"\n");
                        transport.line.clear();
                    }
                    Line::TooLong => {
                        let (bytes, has_newline) = expected.pop_front().unwrap();
                        prop_assert!(bytes.len() > max, "{} bytes refused", bytes.len());
                        prop_assert!(has_newline || bytes.len() > max + 1);
                    }
                    Line::Eof => {
                        // Only an unterminated last line within the bound may be left.
                        match expected.pop_front() {
                            None => {}
                            Some((bytes, has_newline)) => {
                                prop_assert!(!has_newline && bytes.len() <= max + 1);
                            }
                        }
                        prop_assert!(expected.is_empty());
                        break;
                    }
                }
            }
            Ok(())
        })?;
    }

    /// `receive` yields every valid message and answers every other non-blank line, in
    /// stream order, even when each call is dropped as soon as it has to wait twice (as
    /// rmcp's select does) and the writer takes a few bytes at a time.
    #[test]
    fn receive_answers_or_yields_every_line_in_order_despite_cancellation(
        pieces in prop::collection::vec(piece(), 0..30),
        terminated in any::<bool>(),
        sizes in prop::collection::vec(1usize..300, 1..20),
        max in 48usize..400,
        stall in any::<bool>(),
    ) {
        let (mut transport, out) = transport(chunked(&pieces, terminated, &sizes), max, stall);
        let outcomes: Vec<Outcome> = pieces
            .iter()
            .enumerate()
            .map(|(n, p)| outcome(p, max, terminated || n + 1 < pieces.len()))
            .collect();
        let (yielded, replies) = runtime().block_on(async {
            let mut yielded = Vec::new();
            loop {
                let message = loop {
                    tokio::select! {
                        biased;
                        message = transport.receive() => break message,
                        () = tokio::task::yield_now() => {}
                    }
                };
                let Some(message) = message else { break };
                let value = serde_json::to_value(&message).unwrap();
                let id = value.get("id").cloned().unwrap_or(Value::Null);
                // Refusals of earlier lines are written before a later line is yielded.
                yielded.push((id, written(&out).len()));
            }
            transport.close().await.unwrap();
            (yielded, written(&out))
        });
        let mut expected_yields = Vec::new();
        let mut expected_replies = Vec::new();
        for outcome in &outcomes {
            match outcome {
                Outcome::Yield(id) => expected_yields.push((id.clone(), expected_replies.len())),
                Outcome::Refuse(code, id) => expected_replies.push((*code, id.clone())),
                Outcome::Nothing => {}
            }
        }
        prop_assert_eq!(yielded, expected_yields);
        let replies: Vec<(i64, Value)> = replies
            .iter()
            .map(|r| (r["error"]["code"].as_i64().unwrap_or_default(), r["id"].clone()))
            .collect();
        prop_assert_eq!(replies, expected_replies);
        prop_assert_eq!(out.lock().unwrap().last().copied().unwrap_or(b'\n'), b'\n');
    }
}
