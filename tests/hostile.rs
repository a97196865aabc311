//! S20 under hostile input: every malformed, oversized, deeply nested or oddly encoded line is
//! answered (or, for blank lines and notifications, ignored), never panics or hangs the server,
//! and the next valid request still succeeds. A flood of pipelined requests is answered in full.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use common::{RESPONSE_TIMEOUT, Server, Setup};
use serde_json::{Value, json};

const UNKNOWN_SESSION: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn error_code(message: &Value) -> i64 {
    message["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("not a JSON-RPC error: {message}"))
}

/// The server is still running, never panicked, and serves a ping and a tool call.
fn assert_alive(server: &mut Server) {
    assert!(
        server.is_running(),
        "the server exited; stderr:\n{}",
        server.stderr()
    );
    assert_eq!(server.request("ping", json!({})), json!({}));
    server.call_err(
        "get-session",
        json!({"sessionId": UNKNOWN_SESSION}),
        "SESSION_NOT_FOUND",
    );
    let stderr = server.stderr();
    assert!(
        !stderr.contains("panicked"),
        "the server panicked:\n{stderr}"
    );
}

/// The next message the server writes, whatever it answers.
fn next_message(server: &mut Server) -> Value {
    server
        .next_line(RESPONSE_TIMEOUT)
        .unwrap_or_else(|| panic!("no answer within {RESPONSE_TIMEOUT:?}"))
}

/// A tools/call line with the arguments spelled out as raw JSON text.
fn raw_call(id: i64, tool: &str, raw_arguments: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{raw_arguments}}}}}"#
    )
}

#[test]
fn deeply_nested_json_is_a_parse_error_and_the_server_goes_on() {
    let mut server = Server::start(Setup::demo());
    let depth = 100_000;
    let lines = [
        "[".repeat(depth),
        format!("{}{}", "[".repeat(depth), "]".repeat(depth)),
        "{\"a\":".repeat(depth),
        format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)),
        // The depth sits where a tool argument goes.
        raw_call(
            9001,
            "get-session",
            &format!(
                "{{\"sessionId\":{}\"x\"{}}}",
                "[".repeat(depth),
                "]".repeat(depth)
            ),
        ),
    ];
    for line in &lines {
        server.send_line(line);
        let reply = server.next_unkeyed();
        assert_eq!(error_code(&reply), -32700, "{reply}");
        assert_eq!(reply["id"], Value::Null, "{reply}");
    }
    assert_alive(&mut server);
}

#[test]
fn nested_objects_inside_tool_arguments_are_refused_by_name() {
    let mut server = Server::start(Setup::demo());
    let depth = 100;
    let nested = format!("{}1{}", "{\"x\":".repeat(depth), "}".repeat(depth));
    let cases = [
        (
            "get-session",
            format!("{{\"sessionId\":{nested}}}"),
            "INVALID_ARGUMENT",
            "sessionId",
        ),
        (
            "create-session",
            format!("{{\"username\":\"demo\",\"password\":{nested}}}"),
            "INVALID_ARGUMENT",
            "password",
        ),
        (
            "list-sessions",
            format!("{{\"deep\":{nested}}}"),
            "INVALID_ARGUMENT",
            "deep",
        ),
        (
            "create-browser-context",
            format!(
                "{{\"sessionId\":\"{UNKNOWN_SESSION}\",\"options\":{{\"viewport\":{nested}}}}}"
            ),
            "INVALID_ARGUMENT",
            "options",
        ),
    ];
    for (n, (tool, arguments, code, field)) in cases.iter().enumerate() {
        let id = 9100 + n as i64;
        server.send_line(&raw_call(id, tool, arguments));
        let reply = server.reply(id);
        assert!(reply.is_error, "{tool}: {}", reply.body);
        assert_eq!(reply.body["code"], *code, "{tool}: {}", reply.body);
        let message = reply.body["error"].as_str().unwrap_or_default();
        assert!(
            message.contains(field),
            "{tool}: does not name `{field}`: {message}"
        );
    }
    assert_alive(&mut server);
}

#[test]
fn nul_bytes_in_lines_and_strings_are_refused_or_handled() {
    let mut server = Server::start(Setup::demo());
    // Raw NUL bytes are never valid JSON, outside or inside a string.
    let raw: [&[u8]; 4] = [
        b"\0\0\0\n",
        b"{\"jsonrpc\":\"2.0\",\"id\":9200,\"method\":\"ping\"}\0\n",
        b"{\"jsonrpc\":\"2.0\",\"id\":9201,\"method\":\"tools/call\",\"params\":{\"name\":\"get-session\",\"arguments\":{\"sessionId\":\"00\x0000\"}}}\n",
        b"{\"jsonrpc\":\"2.0\",\0\"id\":9202,\"method\":\"ping\"}\n",
    ];
    for bytes in raw {
        server.send_bytes(bytes);
        let reply = server.next_unkeyed();
        assert_eq!(error_code(&reply), -32700, "{reply}");
        assert_eq!(reply["id"], Value::Null, "{reply}");
    }
    // An escaped NUL is a valid character and reaches the tools, which refuse it sensibly.
    let escaped = [
        (
            "get-session",
            format!("{{\"sessionId\":\"{}\\u0000\"}}", &UNKNOWN_SESSION[..63]),
            "INVALID_SESSION_ID",
        ),
        (
            "create-session",
            r#"{"username":"nul\u0000user","password":"demo123!"}"#.to_owned(),
            "INVALID_CREDENTIALS",
        ),
        (
            "create-session",
            r#"{"username":"demo","password":"demo123!\u0000"}"#.to_owned(),
            "INVALID_CREDENTIALS",
        ),
        (
            "refresh-session",
            r#"{"refreshToken":"\u0000"}"#.to_owned(),
            "AUTH_FAILED",
        ),
        (
            "list-sessions",
            r#"{"accessToken":"a.b\u0000.c"}"#.to_owned(),
            "AUTH_FAILED",
        ),
    ];
    for (n, (tool, arguments, code)) in escaped.iter().enumerate() {
        let id = 9210 + n as i64;
        server.send_line(&raw_call(id, tool, arguments));
        let reply = server.reply(id);
        assert!(reply.is_error, "{tool} {arguments}: {}", reply.body);
        assert_eq!(
            reply.body["code"], *code,
            "{tool} {arguments}: {}",
            reply.body
        );
    }
    assert_alive(&mut server);
}

#[test]
fn invalid_utf8_inside_a_string_is_a_parse_error() {
    let mut server = Server::start(Setup::demo());
    let cases: [&[u8]; 4] = [
        // A stray continuation byte, a truncated sequence, an overlong '/', a UTF-16 surrogate
        // encoded as UTF-8: each in the middle of an argument.
        b"\x80",
        b"\xe2\x82",
        b"\xc0\xaf",
        b"\xed\xa0\x80",
    ];
    for bad in cases {
        let mut line = br#"{"jsonrpc":"2.0","id":9300,"method":"tools/call","params":{"name":"create-session","arguments":{"username":"de"#.to_vec();
        line.extend_from_slice(bad);
        line.extend_from_slice(br#"mo","password":"demo123!"}}}"#);
        line.push(b'\n');
        server.send_bytes(&line);
        let reply = server.next_unkeyed();
        assert_eq!(error_code(&reply), -32700, "{bad:?}: {reply}");
        assert!(
            reply["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("UTF-8"),
            "{reply}"
        );
    }
    // A lone surrogate escape is valid JSON text but no string: also a parse error.
    server.send_line(&raw_call(
        9301,
        "create-session",
        r#"{"username":"\ud800","password":"demo123!"}"#,
    ));
    assert_eq!(error_code(&server.next_unkeyed()), -32700);
    assert_alive(&mut server);
}

#[test]
fn a_3_mib_argument_is_refused_by_its_length_rule_without_echo() {
    let mut server = Server::start(Setup::demo());
    let huge = "a".repeat(3 * 1024 * 1024);
    let cases = [
        (
            "create-session",
            json!({"username": huge, "password": "demo123!"}),
            "INVALID_ARGUMENT",
            "`username`",
            "longer than 64 characters",
        ),
        (
            "create-session",
            json!({"username": "demo", "password": huge}),
            "INVALID_ARGUMENT",
            "`password`",
            "longer than 1024 characters",
        ),
        (
            "get-session",
            json!({"sessionId": UNKNOWN_SESSION, "accessToken": huge}),
            "INVALID_ARGUMENT",
            "`accessToken`",
            "longer than 4096 characters",
        ),
        (
            "refresh-session",
            json!({"refreshToken": huge}),
            "INVALID_ARGUMENT",
            "`refreshToken`",
            "longer than 4096 characters",
        ),
        (
            "get-session",
            json!({"sessionId": huge}),
            "INVALID_SESSION_ID",
            "`sessionId`",
            "64 lowercase hex",
        ),
        (
            "browser-type",
            json!({"sessionId": UNKNOWN_SESSION, "contextId": UNKNOWN_SESSION,
                   "selector": "input", "text": huge}),
            "INVALID_ARGUMENT",
            "`text`",
            "longer than 100000 characters",
        ),
        // An unknown argument whose *name* is huge is named without flooding the answer.
        (
            "list-sessions",
            Value::Object([(huge.clone(), json!(1))].into_iter().collect()),
            "INVALID_ARGUMENT",
            "unknown argument",
            "unknown argument",
        ),
    ];
    for (tool, arguments, code, field, rule) in cases {
        let asked = Instant::now();
        let id = server.send_request("tools/call", json!({"name": tool, "arguments": arguments}));
        let response = server.response(id);
        let took = asked.elapsed();
        assert!(
            took < Duration::from_secs(10),
            "{tool} took {took:?} to refuse a 3 MiB argument"
        );
        let size = response.to_string().len();
        assert!(
            size < 16 * 1024,
            "{tool}: the answer is {size} bytes: the value is echoed"
        );
        let reply = common::ToolReply::from_result(response["result"].clone());
        assert!(reply.is_error, "{tool}: {}", reply.body);
        assert_eq!(reply.body["code"], code, "{tool}: {}", reply.body);
        let message = reply.body["error"].as_str().unwrap_or_default();
        assert!(
            message.contains(field) && message.contains(rule),
            "{tool}: the message names neither {field} nor {rule}: {message}"
        );
    }
    // Nothing above counted as a login attempt.
    server.login("demo", "demo123!");
    assert_alive(&mut server);
}

#[test]
fn a_line_over_the_default_4_mib_is_refused() {
    let mut server = Server::start(Setup::demo());
    let padding = "p".repeat(4 * 1024 * 1024 + 1);
    let line = json!({"jsonrpc": "2.0", "id": 9400, "method": "tools/call",
        "params": {"name": "create-session", "arguments": {"username": "demo", "password": padding}}});
    server.send_line(&line.to_string());
    let reply = server.next_unkeyed();
    assert_eq!(error_code(&reply), -32600, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("4194304 bytes"),
        "{reply}"
    );
    // The request id inside the refused line is never answered: nothing of it was parsed.
    assert_alive(&mut server);
    assert!(
        server.next_line(Duration::from_millis(300)).is_none(),
        "the refused line was answered"
    );
}

#[test]
fn extreme_numbers_for_duration_are_refused_or_exact() {
    let mut server = Server::start(Setup::demo());
    let refused = [
        "-0",
        "-0.0",
        "0.0",
        "18446744073709551616",
        "18446744073709551615",
        "-9223372036854775809",
        "1e19",
        "1e-400",
        "86400.5",
        "-1e308",
    ];
    for (n, number) in refused.iter().enumerate() {
        let id = 9500 + n as i64;
        server.send_line(&raw_call(
            id,
            "create-session",
            &format!(r#"{{"username":"demo","password":"demo123!","duration":{number}}}"#),
        ));
        let reply = server.reply(id);
        assert!(
            reply.is_error,
            "duration {number} was accepted: {}",
            reply.body
        );
        assert_eq!(
            reply.body["code"], "INVALID_ARGUMENT",
            "{number}: {}",
            reply.body
        );
        let message = reply.body["error"].as_str().unwrap_or_default();
        assert!(message.contains("duration"), "{number}: {message}");
    }
    // Out of f64's range: serde_json cannot read the line at all, so it is a parse error.
    for number in ["1e400", "-1e400"] {
        server.send_line(&raw_call(
            9550,
            "create-session",
            &format!(r#"{{"username":"demo","password":"demo123!","duration":{number}}}"#),
        ));
        let reply = next_message(&mut server);
        assert_eq!(error_code(&reply), -32700, "{number}: {reply}");
    }
    // An integral number written as a float is the integer it denotes (JSON Schema's reading):
    // it is either used exactly or refused by name, never a protocol error.
    for (n, number) in ["60.0", "6e1", "600e-1"].iter().enumerate() {
        let id = 9560 + n as i64;
        server.send_line(&raw_call(
            id,
            "create-session",
            &format!(r#"{{"username":"demo","password":"demo123!","duration":{number}}}"#),
        ));
        let reply = server.reply(id);
        if reply.is_error {
            assert_eq!(
                reply.body["code"], "INVALID_ARGUMENT",
                "{number}: {}",
                reply.body
            );
        } else {
            let lasts = common::timestamp_ms(&reply.body["expiresAt"])
                - common::timestamp_ms(&reply.body["createdAt"]);
            assert_eq!(lasts, 60_000, "{number}: {}", reply.body);
            server.call_ok(
                "delete-session",
                json!({"sessionId": reply.body["sessionId"]}),
            );
        }
    }
    assert_alive(&mut server);
}

#[test]
fn duplicate_keys_are_answered_and_the_value_checked_is_the_value_used() {
    let mut server = Server::start(Setup::demo());
    let created = server.login("demo", "demo123!");
    let live = created["sessionId"].as_str().expect("sessionId").to_owned();

    // Within arguments: whichever value wins, validation and the tool see the same one.
    for (n, (first, last)) in [("XYZ", live.as_str()), (live.as_str(), "XYZ")]
        .into_iter()
        .enumerate()
    {
        let id = 9600 + n as i64;
        server.send_line(&raw_call(
            id,
            "get-session",
            &format!(r#"{{"sessionId":"{first}","sessionId":"{last}"}}"#),
        ));
        let reply = server.reply(id);
        if reply.is_error {
            assert!(
                ["INVALID_SESSION_ID", "INVALID_ARGUMENT"]
                    .contains(&reply.body["code"].as_str().unwrap_or_default()),
                "{first}/{last}: {}",
                reply.body
            );
        } else {
            assert_eq!(reply.body["sessionId"], live.as_str(), "{}", reply.body);
        }
    }

    // In the envelope: every such line gets exactly one answer.
    let envelopes = [
        r#"{"jsonrpc":"2.0","id":9610,"method":"tools/call","params":{"name":"no-such-tool","name":"get-session","arguments":{}}}"#,
        r#"{"jsonrpc":"2.0","id":9611,"method":"ping","method":"tools/list"}"#,
        r#"{"jsonrpc":"2.0","id":9612,"id":9613,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","jsonrpc":"2.0","id":9614,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":9615,"method":"tools/call","params":{"name":"get-session","arguments":{},"arguments":{}}}"#,
    ];
    for line in envelopes {
        server.send_line(line);
        let reply = next_message(&mut server);
        assert_eq!(reply["jsonrpc"], "2.0", "{line}: {reply}");
        assert!(
            reply.get("result").is_some() || reply.get("error").is_some(),
            "{line}: {reply}"
        );
        let id = reply["id"].as_i64();
        assert!(
            id.is_none_or(|id| (9610..=9615).contains(&id)),
            "{line}: answered with a foreign id: {reply}"
        );
        assert!(
            server.next_line(Duration::from_millis(200)).is_none(),
            "{line}: answered twice"
        );
    }
    assert_alive(&mut server);
}

#[test]
fn requests_with_ids_of_the_wrong_type_get_invalid_request() {
    let mut server = Server::start(Setup::demo());
    for id in [r#"{"a":1}"#, "[1]", "[]", "true", "false", "null"] {
        for method in ["ping", "tools/call"] {
            let line =
                format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{{}}}}"#);
            server.send_line(&line);
            let reply = server
                .next_line(Duration::from_secs(5))
                .unwrap_or_else(|| panic!("{line}: never answered"));
            assert_eq!(error_code(&reply), -32600, "{line}: {reply}");
            assert_eq!(reply["id"], Value::Null, "{line}: {reply}");
        }
    }
    assert_alive(&mut server);
}

#[test]
fn a_method_that_is_not_a_string_or_params_that_are_an_array_are_refused() {
    let mut server = Server::start(Setup::demo());
    for (n, method) in ["42", "null", "{}", "[\"ping\"]", "true"]
        .iter()
        .enumerate()
    {
        let id = 9700 + n as i64;
        server.send_line(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":{method}}}"#
        ));
        let reply = server.response(id);
        assert_eq!(error_code(&reply), -32600, "method {method}: {reply}");
    }
    for (n, params) in ["[]", "[1,2]", r#"["get-session",{}]"#, "\"x\"", "7"]
        .iter()
        .enumerate()
    {
        let id = 9720 + n as i64;
        server.send_line(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{params}}}"#
        ));
        let reply = server.response(id);
        assert_eq!(error_code(&reply), -32602, "params {params}: {reply}");
    }
    assert_alive(&mut server);
}

#[test]
fn blank_lines_are_ignored() {
    let mut server = Server::start(Setup::demo());
    for blank in ["", " ", "\t", "\r", "   \t \r", &" ".repeat(100_000)] {
        server.send_line(blank);
    }
    // Refusals are written before the next line is read, so any answer to a blank line would
    // arrive before this one.
    assert_eq!(server.request("ping", json!({})), json!({}));
    assert!(
        server.other.is_empty(),
        "blank lines were answered: {:?}",
        server.other
    );
    assert_alive(&mut server);
}

#[test]
fn crlf_line_endings_and_a_utf8_bom_are_accepted() {
    let mut server = Server::spawn(Setup::demo());
    // A byte-order mark before the very first line, then CRLF endings throughout.
    server.send_bytes(b"\xEF\xBB\xBF");
    server.send_bytes(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "bom-and-crlf", "version": "1"}}})
        .to_string()
        .as_bytes(),
    );
    server.send_bytes(b"\r\n");
    let init = server.response(1);
    assert!(init.get("result").is_some(), "{init}");
    server.send_bytes(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\r\n");
    // Several CRLF lines in one write, one of them with a BOM of its own.
    server.send_bytes(
        concat!(
            "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}\r\n",
            "\u{feff}{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}\r\n",
            "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":\"create-session\",",
            "\"arguments\":{\"username\":\"demo\",\"password\":\"demo123!\"}}}\r\n",
        )
        .as_bytes(),
    );
    assert_eq!(server.response(2)["result"], json!({}));
    assert_eq!(server.response(3)["result"], json!({}));
    let created = common::ToolReply::from_result(server.response(4)["result"].clone());
    assert!(!created.is_error, "{}", created.body);
    // The password did not pick up the carriage return.
    assert_eq!(created.body["username"], "demo");
    // A BOM anywhere but the start of a line is not whitespace: a parse error.
    server.send_bytes(b"{\"jsonrpc\":\"2.0\",\"id\":5,\xEF\xBB\xBF\"method\":\"ping\"}\r\n");
    assert_eq!(error_code(&server.next_unkeyed()), -32700);
    // Bare CR inside a line is not an ending.
    server.send_bytes(b"{\"jsonrpc\":\"2.0\",\r\"id\":6,\"method\":\"ping\"}\n");
    assert_eq!(server.response(6)["result"], json!({}));
    assert_alive(&mut server);
}

/// Reads messages until every id in `expected` has been answered once; panics on a duplicate, a
/// foreign id or the deadline. Returns the responses and the unkeyed messages.
fn collect_answers(
    server: &mut Server,
    expected: &std::collections::HashSet<i64>,
    deadline: Instant,
) -> (HashMap<i64, Value>, Vec<Value>) {
    let mut answers = HashMap::new();
    let mut unkeyed = Vec::new();
    while answers.len() < expected.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(message) = server.next_line(left) else {
            let missing: Vec<_> = expected
                .iter()
                .filter(|id| !answers.contains_key(*id))
                .take(10)
                .collect();
            panic!(
                "{} of {} requests answered by the deadline; e.g. missing {missing:?}; stderr:\n{}",
                answers.len(),
                expected.len(),
                server.stderr()
            );
        };
        match message["id"].as_i64() {
            Some(id) => {
                assert!(expected.contains(&id), "answer to an unknown id: {message}");
                assert!(
                    answers.insert(id, message).is_none(),
                    "request {id} was answered twice"
                );
            }
            None => unkeyed.push(message),
        }
    }
    (answers, unkeyed)
}

#[test]
fn ten_thousand_pipelined_requests_are_all_answered() {
    let mut server = Server::start(Setup::demo());
    let created = server.login("demo", "demo123!");
    let live = created["sessionId"].as_str().expect("sessionId").to_owned();
    let count = 10_000i64;
    let first = 100_000i64;
    let lines: Vec<String> = (0..count)
        .map(|n| {
            let id = first + n;
            let message = match n % 4 {
                0 | 1 => json!({"jsonrpc": "2.0", "id": id, "method": "ping"}),
                2 => json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                    "params": {"name": "get-session", "arguments": {"sessionId": live}}}),
                _ => json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                    "params": {"name": "get-session", "arguments": {"sessionId": UNKNOWN_SESSION}}}),
            };
            message.to_string()
        })
        .collect();
    let started = Instant::now();
    let writer = server.write_in_background(move |stdin| {
        for line in lines {
            stdin.write_all(line.as_bytes()).expect("write");
            stdin.write_all(b"\n").expect("write");
        }
    });
    let expected = (first..first + count).collect();
    let (answers, unkeyed) =
        collect_answers(&mut server, &expected, started + Duration::from_secs(60));
    server.join_writer(writer);
    assert!(unkeyed.is_empty(), "unexpected messages: {unkeyed:?}");
    for (id, answer) in &answers {
        let n = id - first;
        match n % 4 {
            0 | 1 => assert_eq!(answer["result"], json!({}), "{answer}"),
            2 => {
                let reply = common::ToolReply::from_result(answer["result"].clone());
                assert!(!reply.is_error, "{}", reply.body);
                assert_eq!(reply.body["sessionId"], live.as_str());
            }
            _ => {
                let reply = common::ToolReply::from_result(answer["result"].clone());
                assert_eq!(reply.body["code"], "SESSION_NOT_FOUND", "{}", reply.body);
            }
        }
    }
    eprintln!(
        "10 000 pipelined requests answered in {:?}",
        started.elapsed()
    );
    assert_alive(&mut server);
}

#[test]
fn refusals_interleaved_with_pipelined_requests_are_each_answered_once() {
    // Refusals are written by the transport while rmcp writes responses to the same stdout: none
    // may be lost or torn while both are busy.
    let mut server = Server::start(Setup::demo().set("max_request_bytes=4096"));
    let rounds = 1_500i64;
    let first = 200_000i64;
    let mut lines = Vec::new();
    let mut expected = std::collections::HashSet::new();
    let (mut garbage, mut too_long) = (0, 0);
    for n in 0..rounds {
        let id = first + 3 * n;
        lines.push(json!({"jsonrpc": "2.0", "id": id, "method": "ping"}).to_string());
        lines.push(
            json!({"jsonrpc": "2.0", "id": id + 1, "method": "tools/call", "params": "not an object"})
                .to_string(),
        );
        lines.push(
            json!({"jsonrpc": "2.0", "id": id + 2, "method": "tools/call",
                   "params": {"name": "get-session", "arguments": {"sessionId": UNKNOWN_SESSION}}})
            .to_string(),
        );
        expected.extend([id, id + 1, id + 2]);
        match n % 10 {
            3 => {
                lines.push(format!("not json {n}"));
                garbage += 1;
            }
            7 => {
                lines.push("z".repeat(5000));
                too_long += 1;
            }
            _ => {}
        }
    }
    let started = Instant::now();
    let writer = server.write_in_background(move |stdin| {
        for line in lines {
            stdin.write_all(line.as_bytes()).expect("write");
            stdin.write_all(b"\n").expect("write");
        }
    });
    let (answers, mut unkeyed) =
        collect_answers(&mut server, &expected, started + Duration::from_secs(60));
    server.join_writer(writer);
    for n in 0..rounds {
        let id = first + 3 * n;
        assert_eq!(answers[&id]["result"], json!({}), "{}", answers[&id]);
        assert_eq!(
            error_code(&answers[&(id + 1)]),
            -32602,
            "{}",
            answers[&(id + 1)]
        );
        let reply = common::ToolReply::from_result(answers[&(id + 2)]["result"].clone());
        assert_eq!(reply.body["code"], "SESSION_NOT_FOUND", "{}", reply.body);
    }
    // The null-id refusals may trail the last keyed answer.
    let deadline = Instant::now() + Duration::from_secs(10);
    while unkeyed.len() < garbage + too_long && Instant::now() < deadline {
        match server.next_line(deadline.saturating_duration_since(Instant::now())) {
            Some(message) => unkeyed.push(message),
            None => break,
        }
    }
    let parse_errors = unkeyed.iter().filter(|m| error_code(m) == -32700).count();
    let oversized = unkeyed.iter().filter(|m| error_code(m) == -32600).count();
    assert_eq!(
        (parse_errors, oversized, unkeyed.len()),
        (garbage, too_long, garbage + too_long),
        "{unkeyed:?}"
    );
    assert_alive(&mut server);
}
