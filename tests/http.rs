//! The Streamable HTTP mode, from outside: what a remote client (or an attacker on the network)
//! sees in status codes, headers and bodies, and what the audit log records. S22–S26 of the
//! security requirements.
#[macro_use]
mod common;

use std::time::Duration;

use common::http::{Client, start};
use serde_json::{Value, json};

fn is_hex64(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[tokio::test]
async fn unauthenticated_requests_get_401_with_the_metadata_url() {
    let server = start(&[("alice", "user")], &[]);
    let anonymous = Client::new(&server.url, None);
    let answer = anonymous.initialize_raw(&[]).await;
    assert_eq!(answer.status, 401, "{}", answer.text);
    let metadata_url = format!("{}/.well-known/oauth-protected-resource/mcp", server.base);
    assert_eq!(
        answer.header("www-authenticate").as_deref(),
        Some(format!("Bearer resource_metadata=\"{metadata_url}\"").as_str())
    );
    // No transport session exists before authentication: nothing to fix in advance.
    assert_eq!(answer.header("mcp-session-id"), None);

    let metadata: Value = reqwest::get(&metadata_url)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["resource"], json!(server.url));
    assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));
    let root: Value = reqwest::get(format!(
        "{}/.well-known/oauth-protected-resource",
        server.base
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(root, metadata);

    let forged = Client::new(&server.url, Some(format!("mcps_{}", "0".repeat(64))));
    let answer = forged.initialize_raw(&[]).await;
    assert_eq!(answer.status, 401);
    let challenge = answer.header("www-authenticate").unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    let jwt = Client::new(&server.url, Some("eyJhbGciOiJIUzI1NiJ9.e30.sig".into()));
    assert_eq!(jwt.initialize_raw(&[]).await.status, 401);

    // A token in the URL is refused even when it is valid, and never used.
    let token = server.token("alice");
    let in_query = Client::new(&format!("{}?access_token={token}", server.url), None);
    let answer = in_query.initialize_raw(&[]).await;
    assert_eq!(answer.status, 401);
    assert!(
        answer.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("URL")
    );

    let refusals = server.wait_for_audit("401", |l| l["event"] == "http.unauthorized");
    assert_eq!(refusals["detail"]["transport"], "http");
    assert_eq!(refusals["detail"]["address"], "127.0.0.1");
    let log = std::fs::read_to_string(server.data_dir.join("audit.log")).unwrap();
    assert!(!log.contains(&token), "a token reached the audit log");
    let health = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn foreign_hosts_and_origins_get_403() {
    let server = start(
        &[("alice", "user")],
        &["http.allowed_origins=[\"http://localhost:*\"]"],
    );
    let alice = server.client("alice");
    let rebinding = alice.initialize_raw(&[("host", "attacker.example")]).await;
    assert_eq!(rebinding.status, 403, "{}", rebinding.text);
    let foreign = alice
        .initialize_raw(&[("origin", "https://attacker.example")])
        .await;
    assert_eq!(foreign.status, 403, "{}", foreign.text);
    let allowed = alice
        .initialize_raw(&[("origin", "http://localhost:6274")])
        .await;
    assert_eq!(allowed.status, 200, "{}", allowed.text);
    // The guard comes before authentication: an anonymous rebinding attempt is 403 too.
    let anonymous = Client::new(&server.url, None);
    assert_eq!(
        anonymous
            .initialize_raw(&[("host", "attacker.example")])
            .await
            .status,
        403
    );
    let line = server.wait_for_audit("403", |l| l["event"] == "http.forbidden");
    assert_eq!(line["detail"]["reason"], "host not allowed");
}

#[tokio::test]
async fn transport_sessions_are_ours_bound_and_endable() {
    let server = start(&[("alice", "user"), ("bob", "user")], &[]);
    let alice = server.client("alice");
    let session = alice.initialize().await;
    assert!(is_hex64(&session), "{session}");
    let me = alice
        .call_ok(Some(&session), "get-session", json!({}))
        .await;
    assert_eq!(me["username"], "alice");
    assert!(
        me.get("accessToken").is_none(),
        "no token for the model over HTTP"
    );

    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let malformed = alice.post(Some("not-a-session-id"), &[], &list).await;
    assert_eq!(malformed.status, 400, "{}", malformed.text);
    let upper = alice.post(Some(&session.to_uppercase()), &[], &list).await;
    assert_eq!(upper.status, 400);
    let invented = "ab".repeat(32);
    let unknown = alice.post(Some(&invented), &[], &list).await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    // An id a client invents is never adopted, not even by an initialize.
    let fixation = alice
        .post(Some(&invented), &[], &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}}))
        .await;
    assert_eq!(fixation.status, 404);
    assert_eq!(alice.post(Some(&invented), &[], &list).await.status, 404);

    // Another user's token on Alice's session: as if it did not exist, and audited.
    let bob = server.client("bob");
    let riding = bob.post(Some(&session), &[], &list).await;
    assert_eq!(riding.status, 404, "{}", riding.text);
    let mismatch = server.wait_for_audit("mismatch", |l| l["event"] == "http.session_mismatch");
    assert_eq!(mismatch["username"], "bob");
    assert_eq!(mismatch["detail"]["address"], "127.0.0.1");
    // Even another token of Alice's own is another credential.
    let alice_again = server.client("alice");
    assert_eq!(
        alice_again.post(Some(&session), &[], &list).await.status,
        404
    );
    // Still Alice's.
    assert_eq!(alice.post(Some(&session), &[], &list).await.status, 200);

    let deleted = alice.send(reqwest::Method::DELETE, Some(&session)).await;
    assert!(
        deleted.status < 300,
        "DELETE: {} {}",
        deleted.status,
        deleted.text
    );
    assert_eq!(alice.post(Some(&session), &[], &list).await.status, 404);
    let ended = server.wait_for_audit("end", |l| l["event"] == "http.session.end");
    assert_eq!(ended["detail"]["reason"], "deleted");
    server.wait_for_audit("create", |l| l["event"] == "http.session.create");
    let log = std::fs::read_to_string(server.data_dir.join("audit.log")).unwrap();
    assert!(
        !log.contains(&session),
        "a raw transport session id reached the audit log"
    );
}

#[tokio::test]
async fn idle_transport_sessions_end() {
    let server = start(&[("alice", "user")], &["http.session_idle_timeout=1"]);
    let alice = server.client("alice");
    let session = alice.initialize().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    assert_eq!(alice.post(Some(&session), &[], &list).await.status, 404);
    let ended = server.wait_for_audit("idle", |l| l["event"] == "http.session.end");
    assert_eq!(ended["detail"]["reason"], "idle");
}

#[tokio::test]
async fn caps_answer_429_with_retry_after() {
    let server = start(
        &[("alice", "user"), ("bob", "user")],
        &["http.max_sessions_per_user=2", "http.max_sessions=3"],
    );
    let alice = server.client("alice");
    // Concurrent creations cannot overshoot the cap.
    let attempts = futures::future::join_all((0..6).map(|_| alice.initialize_raw(&[]))).await;
    let made = attempts.iter().filter(|a| a.status == 200).count();
    let refused: Vec<_> = attempts.iter().filter(|a| a.status == 429).collect();
    assert_eq!(
        made,
        2,
        "{:?}",
        attempts.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    assert_eq!(refused.len(), 4);
    assert!(refused[0].header("retry-after").is_some());
    let bob = server.client("bob");
    bob.initialize().await;
    let over_total = bob.initialize_raw(&[]).await;
    assert_eq!(over_total.status, 429, "{}", over_total.text);
    server.wait_for_audit("limit", |l| l["event"] == "http.session.limit");

    // Failed tokens from one address are budgeted too.
    let limited = start(&[("alice", "user")], &["http.failed_auth_per_minute=3"]);
    let forged = Client::new(&limited.url, Some(format!("mcps_{}", "1".repeat(64))));
    for _ in 0..3 {
        assert_eq!(forged.initialize_raw(&[]).await.status, 401);
    }
    let answer = forged.initialize_raw(&[]).await;
    assert_eq!(answer.status, 429);
    assert!(answer.header("retry-after").is_some());
    // A valid token from the same address is still served.
    limited.client("alice").initialize().await;
}

#[tokio::test]
async fn a_revoked_token_is_refused_on_the_next_request() {
    let server = start(&[("alice", "user")], &[]);
    let alice = server.client("alice");
    let session = alice.initialize().await;
    alice.call_ok(None, "get-session", json!({})).await;
    let listed = server.command(&["token", "list"]);
    let listing = String::from_utf8_lossy(&listed.stdout).to_string();
    let id = listing
        .lines()
        .find(|l| l.contains("alice"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no token of alice in:\n{listing}"))
        .to_owned();
    let out = server.command(&["token", "revoke", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stateless = alice.call_raw(None, "get-session", json!({})).await;
    assert_eq!(stateless.status, 401, "{}", stateless.text);
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    assert_eq!(alice.post(Some(&session), &[], &list).await.status, 401);
    // The session the token acted in ends too (within a second), audited as revoked.
    let revoked =
        server.wait_for_audit("bearer session revoked", |l| l["event"] == "session.revoke");
    assert_eq!(revoked["username"], "alice");
}

#[tokio::test]
async fn the_bearer_is_the_caller() {
    let server = start(
        &[("alice", "user"), ("bob", "user"), ("root", "admin")],
        &[],
    );
    let alice = server.client("alice");
    // Stateless calls act on the session that belongs to the token, made on first use.
    let first = alice.call_ok(None, "get-session", json!({})).await;
    assert_eq!(first["username"], "alice");
    let again = alice.call_ok(None, "get-session", json!({})).await;
    assert_eq!(again["sessionId"], first["sessionId"]);
    let session = alice.initialize().await;
    let in_session = alice
        .call_ok(Some(&session), "get-session", json!({}))
        .await;
    assert_eq!(in_session["sessionId"], first["sessionId"]);

    // A credential in the arguments is refused: the header says who calls.
    let body = alice
        .call_err(
            None,
            "get-session",
            json!({"accessToken": "x"}),
            "INVALID_ARGUMENT",
        )
        .await;
    assert!(
        body["error"].as_str().unwrap().contains("Authorization"),
        "{body}"
    );
    // Password logins through the model are off over HTTP by default.
    alice
        .call_err(
            None,
            "create-session",
            json!({"username": "alice", "password": common::http::PASSWORD}),
            "PERMISSION_DENIED",
        )
        .await;

    // Another user's session id is not a credential: bob cannot act in it.
    let bob = server.client("bob");
    let alice_id = first["sessionId"].as_str().unwrap();
    let denied = bob
        .call(None, "get-session", json!({"sessionId": alice_id}))
        .await;
    assert!(denied.is_error);
    assert!(
        ["PERMISSION_DENIED", "SESSION_NOT_FOUND"].contains(&denied.body["code"].as_str().unwrap()),
        "{:?}",
        denied.body
    );
    let bobs = bob.call_ok(None, "list-sessions", json!({})).await;
    assert_eq!(bobs["count"], 1);
    assert_eq!(bobs["sessions"][0]["username"], "bob");
    // An admin sees both, under handles.
    let root = server.client("root");
    let all = root.call_ok(None, "list-sessions", json!({})).await;
    let names: Vec<&str> = all["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["username"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"alice") && names.contains(&"bob"),
        "{names:?}"
    );
    assert!(
        !all.to_string().contains(alice_id),
        "an admin saw another user's raw id"
    );

    // delete-session ends the bearer's session; the next call starts a new one.
    alice.call_ok(None, "delete-session", json!({})).await;
    let fresh = alice.call_ok(None, "get-session", json!({})).await;
    assert_ne!(fresh["sessionId"], first["sessionId"]);
    let created = server.wait_for_audit("bearer session", |l| {
        l["event"] == "session.create" && l["detail"]["transport"] == "http"
    });
    assert!(
        created["detail"]["credential"]
            .as_str()
            .unwrap()
            .starts_with("pat:")
    );
}

#[tokio::test]
async fn a_step_up_login_gives_an_access_token_for_this_server() {
    let server = start(
        &[("alice", "user"), ("bob", "user")],
        &["http.allow_password_login=true"],
    );
    let alice = server.client("alice");
    let created = alice
        .call_ok(
            None,
            "create-session",
            json!({"username": "alice", "password": common::http::PASSWORD}),
        )
        .await;
    let access = created["tokens"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(common::jwt_claims(&access)["aud"], json!(server.url));
    // That access token is a bearer credential for its own session.
    let jwt = Client::new(&server.url, Some(access));
    let me = jwt.call_ok(None, "get-session", json!({})).await;
    assert_eq!(me["sessionId"], created["sessionId"]);
    // A token of this server's key for another audience (the stdio default) is refused; the same
    // claims re-signed for this server's URL are accepted, so it is the audience that decides.
    let key = std::fs::read(server.data_dir.join("jwt.key")).unwrap();
    let access = created["tokens"]["accessToken"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(access).unwrap();
    let mut claims = common::jwt_claims(access);
    let sign = |claims: &Value| {
        jsonwebtoken::encode(
            &header,
            claims,
            &jsonwebtoken::EncodingKey::from_secret(&key),
        )
        .unwrap()
    };
    let resigned = Client::new(&server.url, Some(sign(&claims)));
    assert_eq!(
        resigned
            .call_raw(None, "get-session", json!({}))
            .await
            .status,
        200
    );
    claims["aud"] = json!("mcp-sessions");
    let elsewhere = Client::new(&server.url, Some(sign(&claims)));
    let refused = elsewhere.call_raw(None, "get-session", json!({})).await;
    assert_eq!(refused.status, 401, "{}", refused.text);
    // Only the bearer's own user may be logged in this way.
    alice
        .call_err(
            None,
            "create-session",
            json!({"username": "bob", "password": common::http::PASSWORD}),
            "PERMISSION_DENIED",
        )
        .await;
    // Ending the session ends its token.
    jwt.call_ok(None, "delete-session", json!({})).await;
    assert_eq!(
        jwt.call_raw(None, "get-session", json!({})).await.status,
        401
    );
}

#[tokio::test]
async fn fifty_concurrent_users_see_only_their_own() {
    let users: Vec<(String, &str)> = (0..50).map(|i| (format!("user{i:02}"), "user")).collect();
    let named: Vec<(&str, &str)> = users.iter().map(|(n, r)| (n.as_str(), *r)).collect();
    let server = start(&named, &[]);
    let clients: Vec<(String, Client)> = users
        .iter()
        .map(|(name, _)| (name.clone(), server.client(name)))
        .collect();
    let seen = futures::future::join_all(clients.iter().map(|(name, client)| async move {
        let session = client.initialize().await;
        let me = client
            .call_ok(Some(&session), "get-session", json!({}))
            .await;
        let list = client.call_ok(None, "list-sessions", json!({})).await;
        let contexts = client
            .call_ok(None, "list-browser-contexts", json!({}))
            .await;
        (name.clone(), me, list, contexts)
    }))
    .await;
    let mut ids = std::collections::HashSet::new();
    for (name, me, list, contexts) in seen {
        assert_eq!(me["username"], json!(name));
        assert_eq!(list["count"], 1, "{name}: {list}");
        assert_eq!(list["sessions"][0]["username"], json!(name));
        assert_eq!(contexts["contexts"], json!([]), "{name}: {contexts}");
        assert!(ids.insert(me["sessionId"].as_str().unwrap().to_owned()));
    }
}

#[test]
fn a_listener_off_loopback_needs_tls_or_a_proxy() {
    let (_temp, data, config) = common::temp_dirs();
    let out = std::process::Command::new(common::BIN)
        .env_clear()
        .env("MCP_SESSIONS_DATA_DIR", &data)
        .env("MCP_SESSIONS_CONFIG_DIR", &config)
        .args(["serve", "--http", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("http.tls_cert") && stderr.contains("http.behind_proxy"),
        "{stderr}"
    );
}

/// Browser contexts over HTTP: opened through a transport session, they close with it; every
/// context closes when unused; pages may not reach private networks unless the operator says so;
/// SIGTERM leaves no Chromium behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_contexts_end_with_their_transport_session_and_at_sigterm() {
    require_chromium!("browser_contexts_end_with_their_transport_session_and_at_sigterm");
    let site = common::browser::TestSite::start();
    let mut server = start(&[("alice", "user")], &[]);
    let alice = server.client("alice");

    // Over HTTP the browser may not reach loopback or private addresses by default.
    let stateless = alice
        .call_ok(None, "create-browser-context", json!({}))
        .await;
    let context = stateless["contextId"].as_str().unwrap().to_owned();
    let blocked = alice
        .call_err(
            None,
            "browser-navigate",
            json!({"contextId": context, "url": site.url("/")}),
            "NAVIGATION_BLOCKED",
        )
        .await;
    assert_eq!(blocked["rule"], "private-network", "{blocked}");
    site.assert_untouched("a private address over HTTP");

    let session = alice.initialize().await;
    let opened = alice
        .call_ok(Some(&session), "create-browser-context", json!({}))
        .await;
    let through_session = opened["contextId"].as_str().unwrap().to_owned();
    let listed = alice
        .call_ok(None, "list-browser-contexts", json!({}))
        .await;
    assert_eq!(listed["contexts"].as_array().unwrap().len(), 2, "{listed}");
    let deleted = alice.send(reqwest::Method::DELETE, Some(&session)).await;
    assert!(deleted.status < 300, "{}", deleted.text);
    let closed = server.wait_for_audit("context closed with its transport session", |l| {
        l["event"] == "context.close" && l["detail"]["contextId"] == json!(through_session)
    });
    assert_eq!(closed["detail"]["reason"], "transport session ended");
    let listed = alice
        .call_ok(None, "list-browser-contexts", json!({}))
        .await;
    let left: Vec<&str> = listed["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["contextId"].as_str().unwrap())
        .collect();
    assert_eq!(left, vec![context.as_str()], "the stateless context stays");

    let browsers = common::browser::browser_processes(&server.data_dir);
    assert!(!browsers.is_empty(), "no Chromium found for the server");
    let open_at_exit = alice.initialize().await;
    assert!(!open_at_exit.is_empty());
    let status = server.terminate();
    assert!(
        status.success(),
        "exit status {status:?}\n{}",
        server.stderr()
    );
    let left = common::browser::survivors(&browsers, Duration::from_secs(10));
    assert!(left.is_empty(), "Chromium outlived the server: {left:?}");
    server.wait_for_audit("stop", |l| l["event"] == "server.stop");
    server.wait_for_audit("session open at exit", |l| {
        l["event"] == "http.session.end" && l["detail"]["reason"] == "closed"
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unused_contexts_close_and_private_networks_can_be_allowed() {
    require_chromium!("unused_contexts_close_and_private_networks_can_be_allowed");
    let site = common::browser::TestSite::start();
    let server = start(
        &[("alice", "user")],
        &[
            "browser.allow_private_networks=true",
            "browser.context_idle_timeout=1",
            "sweep_interval=1",
        ],
    );
    let alice = server.client("alice");
    let opened = alice
        .call_ok(None, "create-browser-context", json!({}))
        .await;
    let context = opened["contextId"].as_str().unwrap().to_owned();
    let page = alice
        .call_ok(
            None,
            "browser-navigate",
            json!({"contextId": context, "url": site.url("/")}),
        )
        .await;
    assert!(
        page["url"].as_str().unwrap().starts_with(&site.origin()),
        "{page}"
    );
    let closed = server.wait_for_audit("idle context", |l| {
        l["event"] == "context.close" && l["detail"]["contextId"] == json!(context)
    });
    assert_eq!(closed["detail"]["reason"], "idle");
    alice
        .call_err(
            None,
            "browser-read",
            json!({"contextId": context}),
            "CONTEXT_NOT_FOUND",
        )
        .await;
}

#[test]
fn tls_serves_https_with_the_configured_certificate() {
    let (temp, _, _) = common::temp_dirs();
    let cert = temp.path().join("cert.pem");
    let key = temp.path().join("key.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    let Some(made) = made.ok().filter(|o| o.status.success()) else {
        assert!(
            !common::in_ci(),
            "openssl is needed to make a test certificate under CI"
        );
        common::skip_loudly(
            "tls_serves_https_with_the_configured_certificate",
            "no openssl",
        );
        return;
    };
    drop(made);
    let cert_set = format!("http.tls_cert={}", cert.display());
    let key_set = format!("http.tls_key={}", key.display());
    let server = start(&[("alice", "user")], &[&cert_set, &key_set]);
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let token = server.token("alice");
    let curl = |extra: &[&str]| {
        let mut command = std::process::Command::new("curl");
        command
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "10",
                "--cacert",
            ])
            .arg(&cert);
        command.args(extra);
        command.output()
    };
    let Ok(health) = curl(&[&format!("{}/healthz", server.base)]) else {
        assert!(!common::in_ci(), "curl is needed for the TLS test under CI");
        common::skip_loudly(
            "tls_serves_https_with_the_configured_certificate",
            "no curl",
        );
        return;
    };
    assert_eq!(String::from_utf8_lossy(&health.stdout), "200");
    let body = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}"#;
    let auth = format!("Authorization: Bearer {token}");
    let init = curl(&[
        "-X",
        "POST",
        "-H",
        &auth,
        "-H",
        "Content-Type: application/json",
        "-H",
        "Accept: application/json, text/event-stream",
        "-d",
        body,
        &server.url,
    ])
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&init.stdout), "200");
    let anonymous = curl(&["-X", "POST", "-d", body, &server.url]).unwrap();
    assert_eq!(String::from_utf8_lossy(&anonymous.stdout), "401");
    // Plain HTTP on the TLS port gets nothing served.
    let plain = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .arg(server.base.replace("https://", "http://") + "/healthz")
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "200");
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_accounted() {
    let server = start(
        &[("alice", "user")],
        &[
            "http.behind_proxy=true",
            "http.trusted_proxies=[\"127.0.0.1\"]",
            "http.failed_auth_per_minute=2",
        ],
    );
    let forged = Client::new(&server.url, Some(format!("mcps_{}", "2".repeat(64))));
    for _ in 0..2 {
        let answer = forged
            .initialize_raw(&[("x-forwarded-for", "203.0.113.7")])
            .await;
        assert_eq!(answer.status, 401);
    }
    // That client is out of budget; another behind the same proxy is not.
    let spent = forged
        .initialize_raw(&[("x-forwarded-for", "203.0.113.7")])
        .await;
    assert_eq!(spent.status, 429);
    let other = forged
        .initialize_raw(&[("x-forwarded-for", "203.0.113.8")])
        .await;
    assert_eq!(other.status, 401);
    let line = server.wait_for_audit("forwarded 401", |l| {
        l["event"] == "http.unauthorized" && l["detail"]["address"] == "203.0.113.7"
    });
    assert_eq!(line["detail"]["transport"], "http");
}
