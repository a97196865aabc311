//! Races on one connection: requests are pipelined (all written before any answer is read) so
//! that rmcp runs them concurrently. Whatever the interleaving, a session that was deleted,
//! idle-expired or revoked by a replayed refresh token stays dead, and a refresh token works once.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{Server, Setup, ToolReply};
use serde_json::{Value, json};

fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
        .to_owned()
}

/// The credentials of a create-session result.
struct Login {
    session_id: String,
    access_token: String,
    refresh_token: String,
}

fn login(server: &mut Server, username: &str, password: &str) -> Login {
    let created = server.login(username, password);
    Login {
        session_id: text(&created["sessionId"]),
        access_token: text(&created["tokens"]["accessToken"]),
        refresh_token: text(&created["tokens"]["refreshToken"]),
    }
}

fn assert_failed_with(reply: &ToolReply, codes: &[&str], what: &str) {
    assert!(reply.is_error, "{what} succeeded: {}", reply.body);
    let code = reply.body["code"].as_str().unwrap_or_default();
    assert!(codes.contains(&code), "{what}: {}", reply.body);
}

/// Sends every kind of request that names the session, by id and by token, and checks that each
/// one fails: the session is dead for good.
fn assert_dead(server: &mut Server, login: &Login, also_tokens: &[(String, String)]) {
    let by_id = json!({"sessionId": login.session_id});
    let mut ids = vec![
        (
            server.send_call("get-session", by_id.clone()),
            "get-session by id",
        ),
        (
            server.send_call("list-sessions", by_id.clone()),
            "list-sessions by id",
        ),
        (
            server.send_call("delete-session", by_id),
            "delete-session by id",
        ),
    ];
    let mut tokens = vec![(login.access_token.clone(), login.refresh_token.clone())];
    tokens.extend_from_slice(also_tokens);
    for (access, refresh) in &tokens {
        ids.push((
            server.send_call(
                "get-session",
                json!({"sessionId": login.session_id, "accessToken": access}),
            ),
            "get-session by token",
        ));
        ids.push((
            server.send_call("list-sessions", json!({"accessToken": access})),
            "list-sessions by token",
        ));
        ids.push((
            server.send_call("refresh-session", json!({"refreshToken": refresh})),
            "refresh-session",
        ));
    }
    for (id, what) in ids {
        let reply = server.reply(id);
        assert_failed_with(
            &reply,
            &["SESSION_NOT_FOUND", "SESSION_EXPIRED", "AUTH_FAILED"],
            what,
        );
    }
}

#[test]
fn get_session_racing_delete_never_succeeds_after_the_delete_answered() {
    let mut server = Server::start(Setup::demo());
    for round in 0..6 {
        let session = login(&mut server, "demo", "demo123!");
        let by_id = json!({"sessionId": session.session_id});
        let by_token =
            json!({"sessionId": session.session_id, "accessToken": session.access_token});
        let mut racing = Vec::new();
        for n in 0..30 {
            let arguments = if n % 3 == 0 { &by_token } else { &by_id };
            racing.push(server.send_call("get-session", arguments.clone()));
        }
        let delete = server.send_call("delete-session", by_id.clone());
        for n in 0..30 {
            let arguments = if n % 3 == 0 { &by_token } else { &by_id };
            racing.push(server.send_call("get-session", arguments.clone()));
        }
        let deleted = server.reply(delete);
        assert!(!deleted.is_error, "round {round}: {}", deleted.body);
        assert_eq!(deleted.body["success"], true);
        // Sent after the delete answered, while the pipelined ones may still be in flight.
        assert_dead(&mut server, &session, &[]);
        for id in racing {
            let reply = server.reply(id);
            if reply.is_error {
                assert_failed_with(
                    &reply,
                    &["SESSION_NOT_FOUND", "AUTH_FAILED"],
                    "a racing get-session",
                );
            } else {
                assert_eq!(reply.body["sessionId"], session.session_id.as_str());
            }
        }
        assert_dead(&mut server, &session, &[]);
    }
    // The deleted sessions are gone from listings.
    let admin = login(&mut server, "admin", "admin123!");
    let list = server.call_ok("list-sessions", json!({"accessToken": admin.access_token}));
    assert_eq!(list["count"], 1, "{list}");
}

#[test]
fn refresh_racing_delete_never_succeeds_after_the_delete_answered() {
    let mut server = Server::start(Setup::demo().set("max_sessions_per_user=20"));
    let mut refreshed_first = 0;
    let rounds = 12;
    for round in 0..rounds {
        // Several sessions at once, each with its refresh and its delete racing.
        let sessions: Vec<Login> = (0..4)
            .map(|_| login(&mut server, "demo", "demo123!"))
            .collect();
        let mut pairs = Vec::new();
        for session in &sessions {
            let by_id = json!({"sessionId": session.session_id});
            let (refresh, delete) = if round % 2 == 0 {
                let refresh = server.send_call(
                    "refresh-session",
                    json!({"refreshToken": session.refresh_token}),
                );
                (refresh, server.send_call("delete-session", by_id))
            } else {
                let delete = server.send_call("delete-session", by_id);
                let refresh = server.send_call(
                    "refresh-session",
                    json!({"refreshToken": session.refresh_token}),
                );
                (refresh, delete)
            };
            pairs.push((refresh, delete));
        }
        for (session, (refresh, delete)) in sessions.iter().zip(pairs) {
            let deleted = server.reply(delete);
            let refreshed = server.reply(refresh);
            // A refresh cannot end the session (its token is used once), so the delete succeeds.
            assert!(!deleted.is_error, "round {round}: {}", deleted.body);
            let mut rotated = Vec::new();
            if refreshed.is_error {
                assert_failed_with(
                    &refreshed,
                    &["AUTH_FAILED", "SESSION_NOT_FOUND"],
                    "a refresh racing delete",
                );
            } else {
                refreshed_first += 1;
                assert_eq!(refreshed.body["sessionId"], session.session_id.as_str());
                rotated.push((
                    text(&refreshed.body["tokens"]["accessToken"]),
                    text(&refreshed.body["tokens"]["refreshToken"]),
                ));
            }
            // Nothing sent now succeeds, including the tokens the winning refresh handed out.
            assert_dead(&mut server, session, &rotated);
        }
    }
    // Both orders happened: the test exercised refreshes that won and ones that lost.
    assert!(
        refreshed_first > 0 && refreshed_first < 4 * rounds,
        "{refreshed_first} of {} refreshes won",
        4 * rounds
    );
    let expired = server
        .audit()
        .into_iter()
        .filter(|l| l["event"] == "session.delete")
        .count();
    assert_eq!(
        expired,
        4 * rounds,
        "every session was deleted exactly once"
    );
}

#[test]
fn fifty_pipelined_refreshes_of_one_token_succeed_exactly_once() {
    let mut server = Server::start(Setup::demo());
    for round in 0..5 {
        let session = login(&mut server, "demo", "demo123!");
        let ids: Vec<i64> = (0..50)
            .map(|_| {
                server.send_call(
                    "refresh-session",
                    json!({"refreshToken": session.refresh_token}),
                )
            })
            .collect();
        let replies: Vec<ToolReply> = ids.into_iter().map(|id| server.reply(id)).collect();
        let winners: Vec<&ToolReply> = replies.iter().filter(|r| !r.is_error).collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: {} of 50 refreshes succeeded",
            winners.len()
        );
        for failed in replies.iter().filter(|r| r.is_error) {
            assert_eq!(failed.body["code"], "AUTH_FAILED", "{}", failed.body);
        }
        // The replays ended the session: the winner's tokens are dead too.
        let winner = &winners[0].body["tokens"];
        assert_dead(
            &mut server,
            &session,
            &[(text(&winner["accessToken"]), text(&winner["refreshToken"]))],
        );
    }
    let reuses = server
        .audit()
        .into_iter()
        .filter(|l| l["event"] == "token.reuse")
        .count();
    assert!(
        reuses >= 5,
        "{reuses} token.reuse audit lines for 5 replays"
    );
}

#[test]
fn an_idle_expired_session_is_never_revived_by_concurrent_use() {
    // The sweeper runs hourly here: only the check on each access can end the session.
    let mut server = Server::start(
        Setup::demo()
            .set("idle_timeout=2")
            .set("sweep_interval=3600"),
    );
    let session = login(&mut server, "demo", "demo123!");
    std::thread::sleep(Duration::from_millis(2300));
    let by_id = json!({"sessionId": session.session_id});
    let mut by_session_id = Vec::new();
    let mut by_token = Vec::new();
    for n in 0..80 {
        match n % 4 {
            0 => by_session_id.push(server.send_call("get-session", by_id.clone())),
            1 => by_session_id.push(server.send_call("list-sessions", by_id.clone())),
            2 => by_token.push(server.send_call(
                "list-sessions",
                json!({"accessToken": session.access_token}),
            )),
            _ => by_token.push(server.send_call(
                "get-session",
                json!({"sessionId": session.session_id, "accessToken": session.access_token}),
            )),
        }
    }
    // Refreshes end an idle session on their own: they go in a second wave, so that the first
    // shows that uses alone never bring the session back.
    for id in by_session_id {
        let reply = server.reply(id);
        assert_failed_with(&reply, &["SESSION_EXPIRED"], "a call by the expired id");
    }
    for id in by_token {
        let reply = server.reply(id);
        assert_failed_with(&reply, &["AUTH_FAILED"], "a call by the expired token");
    }
    let refreshes: Vec<i64> = (0..10)
        .map(|_| {
            server.send_call(
                "refresh-session",
                json!({"refreshToken": session.refresh_token}),
            )
        })
        .collect();
    for id in refreshes {
        let reply = server.reply(id);
        assert_failed_with(
            &reply,
            &["SESSION_EXPIRED", "AUTH_FAILED"],
            "a refresh of the expired session",
        );
    }
    // Still dead, ended exactly once, and not listed anywhere.
    server.call_err("get-session", by_id, "SESSION_EXPIRED");
    assert_dead(&mut server, &session, &[]);
    let admin = login(&mut server, "admin", "admin123!");
    let list = server.call_ok("list-sessions", json!({"accessToken": admin.access_token}));
    assert_eq!(list["count"], 1, "{list}");
    server.wait_for_audit("session.expire", |l| l["event"] == "session.expire");
    std::thread::sleep(Duration::from_millis(200));
    let expiries = server
        .audit()
        .into_iter()
        .filter(|l| l["event"] == "session.expire" && l["username"] == "demo")
        .count();
    assert_eq!(expiries, 1, "the session ended {expiries} times");
}

#[test]
fn once_idle_expiry_is_seen_no_later_request_succeeds() {
    // An admin watches the session (a look that does not count as use) while it goes idle; the
    // first failure read is the point of no return for every request written after it, including
    // the session's own attempts to use itself.
    let mut server = Server::start(
        Setup::demo()
            .set("idle_timeout=2")
            .set("sweep_interval=3600"),
    );
    let admin = login(&mut server, "admin", "admin123!");
    let session = login(&mut server, "demo", "demo123!");
    let watch = json!({"sessionId": session.session_id, "accessToken": admin.access_token});
    let by_id = json!({"sessionId": session.session_id});
    let mut in_flight: Vec<i64> = Vec::new();
    let mut seen_failure = false;
    let mut seen_success = false;
    let mut after_failure: HashSet<i64> = HashSet::new();
    let deadline = Instant::now() + Duration::from_millis(3500);
    while Instant::now() < deadline {
        for _ in 0..3 {
            in_flight.push(server.send_call("get-session", watch.clone()));
        }
        if seen_failure {
            for _ in 0..2 {
                in_flight.push(server.send_call("get-session", by_id.clone()));
            }
            after_failure.extend(in_flight.iter().rev().take(5));
        }
        // Keep a few requests in flight, so that they overlap, and read the rest.
        while in_flight.len() > 4 {
            let oldest = in_flight.remove(0);
            let reply = server.reply(oldest);
            if reply.is_error {
                assert_failed_with(&reply, &["SESSION_EXPIRED"], "get-session");
                seen_failure = true;
            } else {
                assert!(
                    !after_failure.contains(&oldest),
                    "request {oldest} succeeded after the session was seen expired: {}",
                    reply.body
                );
                seen_success = true;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for id in in_flight {
        let reply = server.reply(id);
        assert!(
            reply.is_error || !after_failure.contains(&id),
            "request {id} succeeded after the session was seen expired: {}",
            reply.body
        );
    }
    assert!(seen_success, "the session was never seen live");
    assert!(seen_failure, "the session never went idle");
    assert!(!after_failure.is_empty());
    server.call_err("get-session", by_id, "SESSION_EXPIRED");
}
