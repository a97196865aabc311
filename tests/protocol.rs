//! The JSON-RPC face over stdio: bad input of every kind is answered and never kills the server
//! (S20), the advertised tool schemas, clean exit when the host closes stdin, and the
//! session-lifecycle fixture piped in as a host would send it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use common::{Server, Setup};
use serde_json::{Value, json};

const SESSION_TOOLS: [&str; 5] = [
    "create-session",
    "list-sessions",
    "get-session",
    "refresh-session",
    "delete-session",
];

/// A request that must still be served after whatever came before it.
fn assert_still_serving(server: &mut Server) {
    assert_eq!(server.request("ping", json!({})), json!({}));
    server.login("demo", "demo123!");
}

fn error_code(message: &Value) -> i64 {
    message["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("not a JSON-RPC error: {message}"))
}

#[test]
fn s20_a_line_that_is_not_json_gets_parse_error_and_the_server_goes_on() {
    let mut server = Server::start(Setup::demo());
    for line in [
        "this is not json",
        "{\"jsonrpc\": \"2.0\", \"id\": 7, \"method\": ",
        "}{",
        "\"unterminated",
    ] {
        server.send_line(line);
        let reply = server.next_unkeyed();
        assert_eq!(error_code(&reply), -32700, "{line}: {reply}");
        assert_eq!(reply["id"], Value::Null, "{reply}");
        assert_eq!(reply["jsonrpc"], "2.0");
        assert!(
            !reply["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains(line),
            "the input is echoed"
        );
    }
    assert_still_serving(&mut server);
}

#[test]
fn s20_invalid_utf8_gets_parse_error() {
    let mut server = Server::start(Setup::demo());
    server.send_bytes(
        b"{\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"ping\",\"params\":{\"x\":\"\xff\xfe\"}}\n",
    );
    let reply = server.next_unkeyed();
    assert_eq!(error_code(&reply), -32700, "{reply}");
    assert_eq!(reply["id"], Value::Null);
    server.send_bytes(b"\xc3\x28\n");
    assert_eq!(error_code(&server.next_unkeyed()), -32700);
    assert_still_serving(&mut server);
}

#[test]
fn s20_batches_and_non_requests_get_invalid_request() {
    let mut server = Server::start(Setup::demo());
    server.send_line(r#"[{"jsonrpc":"2.0","id":1000,"method":"ping"},{"jsonrpc":"2.0","id":1001,"method":"ping"}]"#);
    let reply = server.next_unkeyed();
    assert_eq!(error_code(&reply), -32600, "{reply}");
    assert_eq!(reply["id"], Value::Null);
    for line in ["[]", "{}", "42", r#"{"jsonrpc":"2.0","result":{}}"#] {
        server.send_line(line);
        let reply = server.next_unkeyed();
        assert!(
            [-32600, -32700].contains(&error_code(&reply)),
            "{line}: {reply}"
        );
    }
    // A request with an id whose params have the wrong shape names the id it answers.
    server
        .send_line(r#"{"jsonrpc":"2.0","id":"p1","method":"tools/call","params":"not an object"}"#);
    let reply = server.next_unkeyed();
    assert_eq!(reply["id"], "p1", "{reply}");
    assert!([-32602, -32600].contains(&error_code(&reply)), "{reply}");
    assert_still_serving(&mut server);
}

#[test]
fn s20_lines_longer_than_max_request_bytes_are_refused() {
    let mut server = Server::start(Setup::demo().set("max_request_bytes=4096"));
    let padding = "x".repeat(10_000);
    let long = json!({"jsonrpc": "2.0", "id": 500, "method": "tools/call",
        "params": {"name": "create-session", "arguments": {"username": "demo", "password": padding}}});
    server.send_line(&long.to_string());
    let reply = server.next_unkeyed();
    assert_eq!(error_code(&reply), -32600, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("max_request_bytes"),
        "{reply}"
    );
    // Twice in a row, then a line just under the limit is read and answered as usual.
    server.send_line(&"y".repeat(50_000));
    assert_eq!(error_code(&server.next_unkeyed()), -32600);
    let near_limit = server.call(
        "get-session",
        json!({"sessionId": "0".repeat(64), "accessToken": "z".repeat(3800)}),
    );
    assert_eq!(
        near_limit.body["code"], "AUTH_FAILED",
        "{}",
        near_limit.body
    );
    assert!(
        server.other.is_empty(),
        "unexpected messages: {:?}",
        server.other
    );
    assert_still_serving(&mut server);
}

#[test]
fn s20_wrong_missing_and_unknown_arguments_name_the_field() {
    let mut server = Server::start(Setup::demo().set("max_session_duration=7200"));
    let cases = [
        (
            "create-session",
            json!({"username": 5, "password": "demo123!"}),
            "username",
        ),
        (
            "create-session",
            json!({"username": "demo", "password": ["demo123!"]}),
            "password",
        ),
        (
            "create-session",
            json!({"password": "demo123!"}),
            "username",
        ),
        ("create-session", json!({"username": "demo"}), "password"),
        (
            "create-session",
            json!({"username": "demo", "password": "demo123!", "role": "admin"}),
            "role",
        ),
        (
            "create-session",
            json!({"username": "demo", "password": "demo123!", "duration": "long"}),
            "duration",
        ),
        (
            "create-session",
            json!({"username": "demo", "password": "demo123!", "duration": -5}),
            "duration",
        ),
        (
            "create-session",
            json!({"username": "demo", "password": "demo123!", "duration": 0}),
            "duration",
        ),
        (
            "create-session",
            json!({"username": "demo", "password": "demo123!", "duration": 1.5}),
            "duration",
        ),
        (
            "create-session",
            json!({"username": "demo", "password": "demo123!", "duration": 7201}),
            "duration",
        ),
        (
            "create-session",
            json!({"username": "", "password": "demo123!"}),
            "username",
        ),
        (
            "create-session",
            json!({"username": "u".repeat(65), "password": "demo123!"}),
            "username",
        ),
        // sessionId may be left out (the caller's own session); a wrong one is still named.
        ("get-session", json!({"sessionId": 5}), "sessionId"),
        (
            "get-session",
            json!({"sessionId": "0".repeat(64), "extra": true}),
            "extra",
        ),
        (
            "get-session",
            json!({"sessionId": "0".repeat(64), "accessToken": 12}),
            "accessToken",
        ),
        (
            "delete-session",
            json!({"sessionId": "0".repeat(64), "accessToken": ""}),
            "accessToken",
        ),
        ("list-sessions", json!({"userId": 3}), "userId"),
        ("list-sessions", json!({"token": "x"}), "token"),
        ("refresh-session", json!({}), "refreshToken"),
        (
            "refresh-session",
            json!({"refreshToken": {"nested": 1}}),
            "refreshToken",
        ),
    ];
    for (tool, arguments, field) in cases {
        let refused = server.call_err(tool, arguments.clone(), "INVALID_ARGUMENT");
        let message = refused["error"].as_str().unwrap_or_default();
        assert!(
            message.contains(field),
            "{tool} {arguments}: the error does not name `{field}`: {message}"
        );
    }
    server.call_err("get-session", json!({"sessionId": 64}), "INVALID_ARGUMENT");
    server.call_err(
        "get-session",
        json!({"sessionId": "XYZ"}),
        "INVALID_SESSION_ID",
    );

    // The longest duration the configuration allows is accepted.
    let created = server.call_ok(
        "create-session",
        json!({"username": "demo", "password": "demo123!", "duration": 7200}),
    );
    assert_eq!(
        common::timestamp_ms(&created["expiresAt"]) - common::timestamp_ms(&created["createdAt"]),
        7_200_000
    );
    // Nothing above logged anyone in or out.
    let list = server.call_ok("list-sessions", json!({"sessionId": created["sessionId"]}));
    assert_eq!(list["count"], 1);

    let unknown = server.send_request(
        "tools/call",
        json!({"name": "no-such-tool", "arguments": {}}),
    );
    let reply = server.response(unknown);
    assert!(
        reply.get("error").is_some(),
        "an unknown tool is a protocol error: {reply}"
    );
    assert_still_serving(&mut server);
}

#[test]
fn s20_a_partial_line_then_eof_exits_cleanly() {
    let mut server = Server::start(Setup::demo());
    server.send_bytes(
        br#"{"jsonrpc":"2.0","id":77,"method":"tools/call","params":{"name":"create-se"#,
    );
    assert_eq!(server.close(), Some(0));
    assert!(
        server.next_line(Duration::from_millis(200)).is_none(),
        "the partial line was answered"
    );
}

#[test]
fn closing_stdin_exits_zero_and_audits_server_stop() {
    let mut server = Server::start(Setup::demo());
    let created = server.login("demo", "demo123!");
    assert!(created["sessionId"].is_string());
    assert_eq!(server.close(), Some(0));
    let audit = server.audit();
    let stop = audit.last().expect("audit lines");
    assert_eq!(stop["event"], "server.stop", "{audit:#?}");
    assert_eq!(stop["detail"]["sessionsEnded"], 1);
    let started = audit.iter().position(|l| l["event"] == "server.start");
    let created = audit.iter().position(|l| l["event"] == "session.create");
    assert!(started.is_some() && started < created, "{audit:#?}");
}

#[test]
fn closing_stdin_before_initializing_exits_zero() {
    let mut server = Server::spawn(Setup::demo());
    assert_eq!(server.close(), Some(0));
}

#[test]
fn tools_list_documents_every_argument_and_result() {
    let mut server = Server::start(Setup::demo().set("max_session_duration=7200"));
    let tools = server.request("tools/list", json!({}));
    let by_name: BTreeMap<&str, &Value> = tools["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| (t["name"].as_str().expect("name"), t))
        .collect();
    for name in SESSION_TOOLS {
        let tool = by_name
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not advertised"));
        assert!(
            tool["description"].as_str().is_some_and(|d| d.len() > 20),
            "{name} has no description"
        );
        let input = &tool["inputSchema"];
        assert_eq!(input["type"], "object", "{name}");
        let properties = input["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{name} has no properties"));
        assert!(!properties.is_empty(), "{name}");
        for (property, schema) in properties {
            assert!(
                schema["description"]
                    .as_str()
                    .is_some_and(|d| !d.trim().is_empty()),
                "{name}.{property} has no description"
            );
        }
        let output = &tool["outputSchema"];
        assert_eq!(
            output["type"], "object",
            "{name} has no outputSchema: {tool}"
        );
        assert!(
            output["required"].as_array().is_some_and(|r| !r.is_empty()),
            "{name}: {output}"
        );
    }
    let create = by_name["create-session"];
    assert_eq!(
        create["inputSchema"]["properties"]["duration"]["maximum"],
        7200
    );
    let required: BTreeSet<&str> = create["inputSchema"]["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(required, BTreeSet::from(["username", "password"]));
    let outputs: BTreeMap<&str, Vec<&str>> = [
        (
            "create-session",
            vec![
                "sessionId",
                "userId",
                "username",
                "roles",
                "createdAt",
                "expiresAt",
                "tokens",
            ],
        ),
        ("list-sessions", vec!["sessions", "count"]),
        (
            "get-session",
            vec![
                "sessionId",
                "status",
                "expiresAt",
                "idleExpiresAt",
                "contexts",
            ],
        ),
        ("refresh-session", vec!["sessionId", "tokens"]),
        ("delete-session", vec!["success", "sessionId", "message"]),
    ]
    .into_iter()
    .collect();
    for (name, keys) in outputs {
        let required = &by_name[name]["outputSchema"]["required"];
        for key in keys {
            assert!(
                required.as_array().is_some_and(|r| r.contains(&json!(key))),
                "{name}'s outputSchema does not promise {key}: {required}"
            );
        }
    }
}

/// Hosts put tools/list in the model's context on every turn: the whole answer stays under 10 KB
/// (issue 5), while every rule the listing leaves out is still enforced and named.
#[test]
fn tools_list_stays_under_10_kb_and_unshown_rules_still_hold() {
    let mut server = Server::start(Setup::demo());
    let id = server.send_request("tools/list", json!({}));
    let answer = server.response(id);
    let bytes = serde_json::to_vec(&answer).expect("serialize").len();
    assert!(bytes < 10_000, "tools/list is {bytes} bytes");
    let listed = answer["result"]["tools"].as_array().expect("tools").len();
    assert_eq!(listed, 15, "{answer}");

    let created = server.login("demo", "demo123!");
    let session = created["sessionId"].as_str().expect("sessionId");
    let unknown = server.call_err(
        "get-session",
        json!({"sessionId": session, "sessionid": session}),
        "INVALID_ARGUMENT",
    );
    assert!(
        unknown["error"]
            .as_str()
            .is_some_and(|e| e.contains("unknown argument(s) `sessionid`")),
        "{unknown}"
    );
    let malformed = server.call_err(
        "get-session",
        json!({"sessionId": "ABC"}),
        "INVALID_SESSION_ID",
    );
    assert!(
        malformed["error"]
            .as_str()
            .is_some_and(|e| e.contains("64 lowercase hex")),
        "{malformed}"
    );
    let long = "a".repeat(65);
    let too_long = server.call_err(
        "create-session",
        json!({"username": long, "password": "x"}),
        "INVALID_ARGUMENT",
    );
    assert!(
        too_long["error"]
            .as_str()
            .is_some_and(|e| e.contains("`username`")),
        "{too_long}"
    );
    // An optional argument may still be given as null, which means "none".
    server.call_ok(
        "get-session",
        json!({"sessionId": session, "accessToken": null}),
    );
}

#[test]
fn session_lifecycle_fixture_gets_every_answer() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fixtures/session-lifecycle.jsonl");
    let text = std::fs::read_to_string(&fixture).expect("fixture");
    let mut request_ids = BTreeSet::new();
    let mut malformed = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Value>(line) {
            Ok(message) => {
                if let Some(id) = message.get("id").and_then(Value::as_i64) {
                    request_ids.insert(id);
                }
            }
            Err(_) => malformed += 1,
        }
    }
    assert_eq!(malformed, 1, "the fixture should hold one malformed line");
    assert!(request_ids.len() >= 5, "{request_ids:?}");

    let mut server = Server::spawn(Setup::demo());
    server.send_bytes(text.as_bytes());
    assert_eq!(server.close(), Some(0));
    let mut answers = BTreeMap::new();
    let mut parse_errors = 0;
    while let Some(message) = server.next_line(Duration::from_secs(5)) {
        match message.get("id").and_then(Value::as_i64) {
            Some(id) => {
                assert!(
                    answers.insert(id, message).is_none(),
                    "two answers to one id"
                );
            }
            None => {
                assert_eq!(message["id"], Value::Null);
                assert_eq!(error_code(&message), -32700, "{message}");
                parse_errors += 1;
            }
        }
    }
    assert_eq!(parse_errors, 1);
    assert_eq!(
        answers.keys().copied().collect::<BTreeSet<_>>(),
        request_ids,
        "unanswered requests"
    );
    for (id, answer) in &answers {
        assert!(
            answer.get("result").is_some(),
            "request {id} failed: {answer}"
        );
    }
    let tool_replies: Vec<common::ToolReply> = answers
        .values()
        .filter(|a| a["result"].get("content").is_some())
        .map(|a| common::ToolReply::from_result(a["result"].clone()))
        .collect();
    assert!(
        tool_replies.iter().any(|r| !r.is_error
            && common::is_session_id(r.body["sessionId"].as_str().unwrap_or_default())),
        "no session was created: {tool_replies:#?}"
    );
    assert!(
        tool_replies
            .iter()
            .any(|r| r.is_error && r.body["code"] == "SESSION_NOT_FOUND"),
        "the never-issued id was not refused: {tool_replies:#?}"
    );
}

/// The harness itself: a server starts, lists its tools and exits cleanly when stdin closes.
#[test]
fn initialize_list_tools_and_clean_exit() {
    let mut server = Server::start(Setup::demo());
    let tools = server.request("tools/list", json!({}));
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .expect("tools array")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for expected in [
        "create-session",
        "list-sessions",
        "get-session",
        "refresh-session",
        "delete-session",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    assert_eq!(server.close(), Some(0));
}
