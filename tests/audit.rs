//! The audit log from outside: what a full run leaves in it (S19), that no secret reaches it or
//! stderr (S16), and that an audit log that cannot be written stops security actions (S19, AU-9).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{Server, Setup, timestamp_ms};
use serde_json::{Value, json};

const KNOWN_TAGS: [&str; 6] = ["ia-2", "ac-3", "au-3", "ia-5", "ac-7", "ac-12"];

fn text(value: &Value, key: &str) -> String {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {value}"))
        .to_owned()
}

/// Every string value anywhere in `value` (tokens and ids hide in nested objects).
fn strings(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::String(s) => into.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, into)),
        Value::Object(map) => map.values().for_each(|v| strings(v, into)),
        _ => {}
    }
}

fn is_jwt(s: &str) -> bool {
    s.starts_with("eyJ") && s.split('.').count() == 3
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Drives every kind of security event; returns every secret the run handed out or used.
fn full_run(server: &mut Server) -> Vec<String> {
    let mut secrets = vec![
        "alice-admin-password-1".to_owned(),
        "bob-user-password-22".to_owned(),
        "wrong-guess-password-333".to_owned(),
        "another-wrong-guess-4444".to_owned(),
        "carol-viewer-password-5".to_owned(),
    ];
    let mut keep = |value: &Value| strings(value, &mut secrets);

    let alice = server.login("alice", "alice-admin-password-1");
    keep(&alice);
    let bob = server.login("bob", "bob-user-password-22");
    keep(&bob);
    let carol = server.login("carol", "carol-viewer-password-5");
    keep(&carol);
    for guess in ["wrong-guess-password-333", "another-wrong-guess-4444"] {
        server.call_err(
            "create-session",
            json!({"username": "bob", "password": guess}),
            "INVALID_CREDENTIALS",
        );
        server.call_err(
            "create-session",
            json!({"username": "nobody", "password": guess}),
            "INVALID_CREDENTIALS",
        );
    }
    // Throttled: login.locked.
    for _ in 0..3 {
        server.call(
            "create-session",
            json!({"username": "nobody", "password": "wrong-guess-password-333"}),
        );
    }
    let bob_status = server.call_ok("get-session", json!({"sessionId": text(&bob, "sessionId")}));
    keep(&bob_status);
    let refreshed = server.call_ok(
        "refresh-session",
        json!({"refreshToken": bob["tokens"]["refreshToken"]}),
    );
    keep(&refreshed);
    // Replaying the first refresh token: token.reuse, bob's session ends.
    server.call_err(
        "refresh-session",
        json!({"refreshToken": bob["tokens"]["refreshToken"]}),
        "AUTH_FAILED",
    );
    // A viewer reaching for another user's session: access.denied.
    server.call_err(
        "get-session",
        json!({"sessionId": text(&alice, "sessionId"), "accessToken": carol["tokens"]["accessToken"]}),
        "PERMISSION_DENIED",
    );
    server.call_err(
        "list-sessions",
        json!({"accessToken": "not.a.token"}),
        "AUTH_FAILED",
    );
    let listing = server.call_ok(
        "list-sessions",
        json!({"accessToken": alice["tokens"]["accessToken"]}),
    );
    keep(&listing);
    server.call_ok(
        "delete-session",
        json!({"sessionId": text(&carol, "sessionId"), "accessToken": alice["tokens"]["accessToken"]}),
    );
    let short = server.call_ok(
        "create-session",
        json!({"username": "alice", "password": "alice-admin-password-1", "duration": 1}),
    );
    keep(&short);
    std::thread::sleep(Duration::from_millis(1300));
    // Expired on access: session.expire.
    server.call_err(
        "get-session",
        json!({"sessionId": text(&short, "sessionId")}),
        "SESSION_EXPIRED",
    );
    server.call_ok(
        "delete-session",
        json!({"sessionId": text(&alice, "sessionId")}),
    );
    // Keep the secrets: passwords, session ids and tokens (not user ids or timestamps, which
    // the audit log rightly holds).
    secrets.retain(|s| s.contains("password") || s.contains("guess") || is_hex(s, 64) || is_jwt(s));
    secrets
}

fn start_with_users() -> Server {
    let server = Server::start(
        Setup::default()
            .set("login_free_failures=2")
            .set("login_max_delay=30")
            .env("RUST_LOG", "trace"),
    );
    server.add_user("alice", "alice-admin-password-1", &["admin"]);
    server.add_user("bob", "bob-user-password-22", &["user"]);
    server.add_user("carol", "carol-viewer-password-5", &["viewer"]);
    server
}

#[test]
fn s16_no_password_token_or_session_id_reaches_the_audit_log_or_stderr() {
    let mut server = start_with_users();
    let secrets = full_run(&mut server);
    assert_eq!(server.close(), Some(0));
    let audit = std::fs::read_to_string(server.audit_path()).expect("audit log");
    let stderr = server.stderr();
    assert!(
        audit.lines().count() > 15,
        "the run left too little to check: {audit}"
    );
    let session_ids: Vec<&String> = secrets.iter().filter(|s| is_hex(s, 64)).collect();
    let tokens = secrets.iter().filter(|s| is_jwt(s)).count();
    assert!(
        session_ids.len() >= 4 && tokens >= 8,
        "the run did not collect its secrets: {secrets:?}"
    );
    for secret in &secrets {
        assert!(
            !audit.contains(secret.as_str()),
            "the audit log holds a secret: {secret}"
        );
        assert!(
            !stderr.contains(secret.as_str()),
            "stderr holds a secret: {secret}"
        );
        // Parts of a token are secrets too (its signature alone forges nothing, but its payload
        // names the session).
        for part in secret.split('.').filter(|p| p.len() >= 16) {
            assert!(
                !audit.contains(part) && !stderr.contains(part),
                "a part of a token leaked: {part}"
            );
        }
    }
}

#[test]
fn s19_audit_lines_carry_who_what_when_and_nist_tags() {
    let mut server = start_with_users();
    full_run(&mut server);
    assert_eq!(server.close(), Some(0));
    let lines = server.audit();

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(server.audit_path())
            .expect("audit log")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "audit.log mode {:o}", mode & 0o777);
    }

    let mut previous: Option<(u64, i128)> = None;
    for line in &lines {
        let seq = line["seq"]
            .as_u64()
            .unwrap_or_else(|| panic!("no seq: {line}"));
        let ts = timestamp_ms(&line["ts"]);
        if let Some((last_seq, last_ts)) = previous {
            assert_eq!(seq, last_seq + 1, "seq is not consecutive at {line}");
            assert!(ts >= last_ts, "ts goes back at {line}");
        }
        previous = Some((seq, ts));
        assert!(
            line["event"].as_str().is_some_and(|e| !e.is_empty()),
            "{line}"
        );
        assert!(
            line["outcome"].as_str().is_some_and(|o| !o.is_empty()),
            "{line}"
        );
        let tags = line["nist"]
            .as_array()
            .unwrap_or_else(|| panic!("no nist tags: {line}"));
        assert!(!tags.is_empty(), "{line}");
        for tag in tags {
            assert!(
                KNOWN_TAGS.contains(&tag.as_str().unwrap_or_default()),
                "unknown tag {tag} in {line}"
            );
        }
        if let Some(session) = line.get("session") {
            assert!(
                is_hex(session.as_str().unwrap_or_default(), 32),
                "session is not a 32-hex hash: {line}"
            );
        }
    }

    // event → (outcome where it is fixed, must name the tool, must name a session, a tag it must
    // carry). Endings noticed by the store (expiry, reuse) are audited off the tool's path.
    let expected: [(&str, Option<&str>, bool, bool, &str); 9] = [
        ("login.success", Some("success"), true, true, "ia-2"),
        ("login.failure", Some("failure"), true, false, "ac-7"),
        ("login.locked", Some("denied"), true, false, "ac-7"),
        ("session.create", Some("success"), true, true, "ac-12"),
        ("session.delete", Some("success"), true, true, "ac-12"),
        ("session.expire", None, false, true, "ac-12"),
        ("session.refresh", Some("success"), true, true, "ia-5"),
        ("token.reuse", None, false, true, "ia-5"),
        ("access.denied", Some("denied"), true, true, "ac-3"),
    ];
    let mut seen = BTreeMap::new();
    for (event, outcome, has_tool, has_session, tag) in expected {
        let matching: Vec<&Value> = lines.iter().filter(|l| l["event"] == event).collect();
        assert!(!matching.is_empty(), "no {event} line in {lines:#?}");
        for line in &matching {
            if let Some(outcome) = outcome {
                assert_eq!(line["outcome"], outcome, "{line}");
            }
            assert!(
                line["username"].as_str().is_some_and(|u| !u.is_empty()),
                "{event} names no user: {line}"
            );
            assert!(
                line["nist"]
                    .as_array()
                    .is_some_and(|t| t.contains(&json!(tag))),
                "{event} lacks {tag}: {line}"
            );
            if has_tool {
                assert!(
                    line["tool"].as_str().is_some_and(|t| !t.is_empty()),
                    "{event} names no tool: {line}"
                );
            }
            if has_session {
                assert!(
                    line.get("session").is_some(),
                    "{event} names no session: {line}"
                );
                assert!(
                    line["userId"].as_str().is_some_and(|u| !u.is_empty()),
                    "{event} has no userId: {line}"
                );
            }
        }
        seen.insert(event, matching.len());
    }
    let failures: BTreeSet<String> = lines
        .iter()
        .filter(|l| l["event"] == "login.failure")
        .map(|l| text(l, "username"))
        .collect();
    // A known user is named; a name no user has is recorded as a keyed hash (issue 16 item 5).
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(failures.contains("bob"), "{failures:?}");
    assert!(
        failures.iter().any(|f| f.starts_with("unknown#")),
        "{failures:?}"
    );
    let denied = lines
        .iter()
        .find(|l| l["event"] == "access.denied")
        .expect("access.denied");
    assert_eq!(denied["username"], "carol");
    assert_eq!(denied["tool"], "get-session");

    // One session's lifecycle shares one hash; different sessions have different hashes.
    let created: Vec<String> = lines
        .iter()
        .filter(|l| l["event"] == "session.create")
        .map(|l| text(l, "session"))
        .collect();
    assert_eq!(
        created.iter().collect::<BTreeSet<_>>().len(),
        created.len(),
        "hash collision: {created:?}"
    );
    let reuse = lines
        .iter()
        .find(|l| l["event"] == "token.reuse")
        .expect("token.reuse");
    let refresh = lines
        .iter()
        .find(|l| l["event"] == "session.refresh")
        .expect("session.refresh");
    assert_eq!(
        reuse["session"], refresh["session"],
        "refresh and reuse of bob's session hash differently"
    );
    assert!(created.contains(&text(reuse, "session")));
    assert_eq!(
        lines.last().map(|l| l["event"].clone()),
        Some(json!("server.stop")),
        "{seen:?}"
    );
}

/// Issue 16 item 5: a password typed into the username field is not kept verbatim. A failed login
/// for a name no user has records a keyed hash (the same for the same name); a known user's name
/// is still recorded as it is.
#[test]
fn s16_a_password_typed_as_the_username_is_not_kept_in_the_audit_log() {
    let mut server = start_with_users();
    let typed = "Correct-Horse-Battery-Staple-42";
    for _ in 0..2 {
        server.call_err(
            "create-session",
            json!({"username": typed, "password": "whatever-it-was-1"}),
            "INVALID_CREDENTIALS",
        );
    }
    server.call_err(
        "create-session",
        json!({"username": "bob", "password": "not-bobs-password-9"}),
        "INVALID_CREDENTIALS",
    );
    assert_eq!(server.close(), Some(0));
    let text = std::fs::read_to_string(server.audit_path()).expect("audit log");
    assert!(!text.contains(typed), "the typed text is in the audit log");
    let failures: Vec<String> = server
        .audit()
        .iter()
        .filter(|l| l["event"] == "login.failure")
        .map(|l| l["username"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(failures.len(), 3, "{failures:?}");
    assert!(failures[0].starts_with("unknown#"), "{failures:?}");
    assert_eq!(failures[0], failures[1], "the same name hashes alike");
    assert_eq!(failures[2], "bob");
}

/// Issue 16 item 3: refused logins for a locked name cost nothing and used to write a line each,
/// enough to rotate the whole history out in a minute. The first refusal of a minute is written
/// in full, the rest are counted into one summary line, and none goes unrecorded.
#[test]
fn refused_logins_for_a_locked_name_cannot_flush_the_audit_log() {
    let mut server = Server::start(
        Setup::default()
            .set("login_free_failures=1")
            .set("login_lock_after=2")
            .set("login_lock_duration=600"),
    );
    server.add_user("bob", "bob-user-password-22", &["user"]);
    let wrong = json!({"username": "bob", "password": "not-bobs-password-9"});
    server.call_err("create-session", wrong.clone(), "INVALID_CREDENTIALS");
    server.call_err("create-session", wrong.clone(), "INVALID_CREDENTIALS");
    let ids: Vec<i64> = (0..500)
        .map(|_| server.send_call("create-session", wrong.clone()))
        .collect();
    for id in ids {
        let reply = server.reply(id);
        assert_eq!(reply.body["code"], "RATE_LIMITED", "{:?}", reply.body);
    }
    assert_eq!(server.close(), Some(0));
    let refusals: Vec<Value> = server
        .audit()
        .into_iter()
        .filter(|l| l["event"] == "login.locked")
        .filter(|l| l["detail"].get("global").is_some() || l["detail"].get("repeated").is_some())
        .collect();
    let written = refusals
        .iter()
        .filter(|l| l["detail"].get("global").is_some())
        .count();
    let counted: u64 = refusals
        .iter()
        .filter_map(|l| l["detail"]["repeated"].as_u64())
        .sum();
    assert!(
        written <= 2,
        "{written} refusal lines for one name in a minute"
    );
    assert_eq!(written as u64 + counted, 500, "every refusal is on record");
    assert!(refusals.iter().all(|l| l["username"] == "bob"));
}

#[cfg(unix)]
#[test]
fn s19_an_audit_log_that_cannot_be_opened_stops_start_up() {
    let (_temp, data, config) = common::temp_dirs();
    std::os::unix::fs::symlink("/dev/full", data.join("audit.log")).expect("symlink");
    let mut server = Server::spawn(Setup::demo().dirs(&data, &config));
    let code = server.close();
    assert!(
        code.is_some() && code != Some(0),
        "served with an unwritable audit log (exit {code:?})"
    );
    assert!(
        server.stderr().contains("audit log"),
        "unclear error: {}",
        server.stderr()
    );
    assert!(
        server.next_line(Duration::from_millis(200)).is_none(),
        "it answered on stdout"
    );
}

#[cfg(unix)]
#[test]
fn s19_audit_write_failures_at_run_time_fail_closed() {
    // A file-size limit of eight 512-byte blocks lets the server start and a few logins be
    // recorded, then every further audit write fails (EFBIG; SIGXFSZ is ignored so the process is
    // not killed). stderr shares the limit, as it would share a full disk.
    let mut server = Server::start(Setup::demo().launcher(&[
        "sh",
        "-c",
        "trap '' XFSZ; ulimit -f 8; exec \"$0\" \"$@\"",
    ]));
    let users = [
        ("admin", "admin123!"),
        ("demo", "demo123!"),
        ("viewer", "viewer123!"),
    ];
    let mut live = Vec::new();
    let mut refused = 0;
    for (user, password) in users.iter().cycle().take(16) {
        let reply = server.call(
            "create-session",
            json!({"username": user, "password": password}),
        );
        if !reply.is_error {
            assert_eq!(
                refused, 0,
                "a login succeeded after the audit log had failed"
            );
            live.push(reply.body);
            continue;
        }
        assert_eq!(reply.body["code"], "AUTH_FAILED", "{}", reply.body);
        assert!(
            reply.body["error"]
                .as_str()
                .unwrap_or_default()
                .contains("audit"),
            "{}",
            reply.body
        );
        refused += 1;
    }
    assert!(
        refused >= 4,
        "logins went on while the audit log was full ({refused} refused)"
    );
    assert!(
        live.len() >= 2,
        "the limit left no room for the first logins: {}",
        server.stderr()
    );

    // A refresh that cannot be recorded is refused and ends the session; a deletion still ends
    // the session but says it could not be recorded.
    let (first, second) = (&live[0], &live[1]);
    server.call_err(
        "refresh-session",
        json!({"refreshToken": first["tokens"]["refreshToken"]}),
        "AUTH_FAILED",
    );
    server.call_err(
        "get-session",
        json!({"sessionId": first["sessionId"]}),
        "SESSION_NOT_FOUND",
    );
    server.call_err(
        "delete-session",
        json!({"sessionId": second["sessionId"]}),
        "DELETE_FAILED",
    );
    server.call_err(
        "get-session",
        json!({"sessionId": second["sessionId"]}),
        "SESSION_NOT_FOUND",
    );

    // Still answering.
    assert_eq!(server.request("ping", json!({})), json!({}));
    assert!(server.is_running());
    assert_eq!(server.close(), Some(0));
}

#[test]
fn audit_verify_detects_an_edited_line_in_a_real_log() {
    let mut server = Server::start(Setup::demo());
    server.login("demo", "demo123!");
    server.call(
        "create-session",
        json!({"username": "demo", "password": "wrong-password"}),
    );
    let (data, config) = (server.data_dir.clone(), server.config_dir.clone());
    assert_eq!(server.close(), Some(0));

    let verify = || common::user_command(&data, &config, &["audit", "verify"], "");
    let intact = verify();
    let said = String::from_utf8_lossy(&intact.stdout).to_string();
    assert!(
        intact.status.success(),
        "a fresh log does not verify: {said}"
    );
    assert!(said.starts_with("ok:"), "{said}");

    let path = data.join("audit.log");
    let original = std::fs::read_to_string(&path).expect("audit log");
    let number = original
        .lines()
        .position(|l| l.contains("\"login.failure\""))
        .expect("a login.failure line")
        + 1;
    std::fs::write(
        &path,
        original.replacen("\"login.failure\"", "\"login.success\"", 1),
    )
    .expect("edit");
    let edited = verify();
    let said = String::from_utf8_lossy(&edited.stdout).to_string();
    assert!(!edited.status.success(), "an edited log verified: {said}");
    assert!(
        said.contains(&format!("line {number}:")) && said.contains("altered"),
        "the edited line {number} is not named: {said}"
    );

    let lines: Vec<&str> = original.lines().collect();
    let without: Vec<&str> = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i + 1 != number)
        .map(|(_, l)| *l)
        .collect();
    std::fs::write(&path, without.join("\n") + "\n").expect("remove a line");
    let removed = verify();
    let said = String::from_utf8_lossy(&removed.stdout).to_string();
    assert!(
        !removed.status.success(),
        "a log with a line removed verified: {said}"
    );
    assert!(said.contains("removed"), "{said}");
}

#[test]
fn rotated_signing_key_keeps_old_tokens_for_the_grace_period_only() {
    let mut server = Server::start(Setup::demo().set("jwt_key_grace=3"));
    let created = server.login("demo", "demo123!");
    let old_token = created["tokens"]["accessToken"]
        .as_str()
        .expect("access token")
        .to_owned();
    let refresh = created["tokens"]["refreshToken"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    let old_kid = jwt_header(&old_token)["kid"].clone();
    assert!(old_kid.is_string(), "tokens carry a kid");

    server.command_ok(&["key", "rotate"], "");
    server.wait_for_audit("key.rotate", |l| l["event"] == "key.rotate");

    // Within the grace period the old key still verifies; new tokens use the new key.
    server.call_ok("list-sessions", json!({"accessToken": old_token}));
    let renewed = server.call_ok("refresh-session", json!({"refreshToken": refresh}));
    let new_token = renewed["tokens"]["accessToken"]
        .as_str()
        .expect("new access token")
        .to_owned();
    assert_ne!(
        jwt_header(&new_token)["kid"],
        old_kid,
        "still signing with the old key"
    );

    std::thread::sleep(Duration::from_millis(4200));
    server.call_err(
        "list-sessions",
        json!({"accessToken": old_token}),
        "AUTH_FAILED",
    );
    server.call_ok("list-sessions", json!({"accessToken": new_token}));
}

fn jwt_header(token: &str) -> Value {
    use base64::Engine;
    let header = token.split('.').next().expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .expect("base64url header");
    serde_json::from_slice(&bytes).expect("JSON header")
}
