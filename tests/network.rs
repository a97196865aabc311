//! The browser's private DevTools channel (S29) and its network policy on every request of every
//! target (S30), against a real Chromium. Three sites on loopback ports: the allowed one, a second
//! allowed one reached as `localhost` (another site, so its iframes run out of process), and a
//! denied one (`browser.deny_origins`) that must never hear a request, whichever way a page tries.
//! Without Chromium each test says SKIPPED on stderr and returns, except under `CI=true`.

#[macro_use]
mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::browser::{INDEX_TEXT, TestSite, browser_processes, create_context, login, navigate};
use common::{Server, Setup};
use serde_json::{Value, json};

const ACTION_TIMEOUT: &str = "browser.action_timeout_ms=10000";

/// A server whose policy denies `denied`'s origin.
fn server_denying(denied: &TestSite) -> Server {
    Server::start(
        Setup::demo()
            .set(ACTION_TIMEOUT)
            .set(&format!("browser.deny_origins=[\"{}\"]", denied.origin())),
    )
}

/// The `browser.blocked` line for `context`, refusing `origin` by `rule`.
fn wait_for_block(server: &Server, context: &str, origin: &str, rule: &str) -> Value {
    server.wait_for_audit(&format!("browser.blocked of {origin} by {rule}"), |l| {
        l["event"] == "browser.blocked"
            && l["detail"]["contextId"] == context
            && l["detail"]["origin"] == origin
            && l["detail"]["rule"] == rule
    })
}

#[test]
fn s30_every_way_a_page_reaches_a_denied_origin_is_refused_and_audited() {
    require_chromium!("s30_every_way_a_page_reaches_a_denied_origin_is_refused_and_audited");
    let site = TestSite::start();
    let other = TestSite::start();
    let denied = TestSite::start();
    let mut server = server_denying(&denied);
    let session = login(&mut server, "demo", "demo123!");
    let other_site = format!("http://localhost:{}", other.port);
    let kinds = [
        "link", "script", "meta", "form", "popup", "iframe", "image", "fetch", "xhr", "worker",
        // A cross-site iframe (its own renderer, its own target) that fetches by itself.
        "oopif",
    ];
    for kind in kinds {
        // One context each: the audit log aggregates a context's repeated refusals.
        let context = create_context(&mut server, &session);
        let target = denied.url(&format!("/{kind}"));
        let page = match kind {
            "oopif" => site.url(&format!(
                "/attack?kind=iframe&to={other_site}/attack?kind=fetch&to={target}"
            )),
            _ => site.url(&format!("/attack?kind={kind}&to={target}")),
        };
        let loaded = server.call(
            "browser-navigate",
            json!({"sessionId": session, "contextId": context, "url": page}),
        );
        if loaded.is_error {
            // The page went on by itself while it loaded (a meta refresh, a script): the
            // navigation answers the refusal.
            assert_eq!(
                loaded.body["code"], "NAVIGATION_BLOCKED",
                "{kind}: {}",
                loaded.body
            );
            assert_eq!(loaded.body["rule"], "deny-list", "{kind}: {}", loaded.body);
        } else {
            // "refused" once a fetch or XHR failed; "reached" would mean it got through.
            let title = &loaded.body["title"];
            assert!(
                title == "attack" || title == "refused",
                "{kind}: {}",
                loaded.body
            );
        }
        if matches!(kind, "link" | "popup") {
            server.call_ok(
                "browser-click",
                json!({"sessionId": session, "contextId": context, "selector": "#go"}),
            );
        }
        let line = wait_for_block(&server, &context, &denied.origin(), "deny-list");
        assert_eq!(line["username"], "demo", "{kind}: {line}");
        assert_eq!(line["outcome"], "denied", "{kind}: {line}");
        assert!(
            !line.to_string().contains(&format!("/{kind}")),
            "{kind}: the audit line carries the path: {line}"
        );
        // What the page itself may do still works: it is there, and (oopif) its allowed
        // cross-site frame loaded.
        let read = server.call_ok(
            "browser-read",
            json!({"sessionId": session, "contextId": context}),
        );
        if !matches!(kind, "link" | "script" | "meta" | "form") {
            assert!(
                read["content"]
                    .as_str()
                    .is_some_and(|c| c.contains(INDEX_TEXT)),
                "{kind}: the allowed page is not shown: {read}"
            );
        }
        server.call_ok(
            "close-browser-context",
            json!({"sessionId": session, "contextId": context}),
        );
    }
    assert!(
        other.received().iter().any(|r| r.path == "/attack"),
        "the allowed cross-site frame never loaded: {:?}",
        other.received()
    );
    denied.assert_untouched("the denied site was reached");
    assert_eq!(server.close(), Some(0));
}

#[test]
fn s30_websockets_go_through_the_policy_too() {
    require_chromium!("s30_websockets_go_through_the_policy_too");
    let site = TestSite::start();
    let denied = TestSite::start();
    let mut server = server_denying(&denied);
    let session = login(&mut server, "demo", "demo123!");
    let context = create_context(&mut server, &session);
    // DevTools cannot pause a WebSocket handshake; the context's proxy refuses its tunnel.
    let to = format!("ws://127.0.0.1:{}/socket", denied.port);
    navigate(
        &mut server,
        &session,
        &context,
        &site.url(&format!("/attack?kind=websocket&to={to}")),
    );
    let line = wait_for_block(
        &server,
        &context,
        &format!("127.0.0.1:{}", denied.port),
        "deny-list",
    );
    assert_eq!(line["detail"]["kind"], "connection", "{line}");
    server.call_ok(
        "browser-wait-for",
        json!({"sessionId": session, "contextId": context, "selector": "title", "timeoutMs": 2000}),
    );
    denied.assert_untouched("the WebSocket reached the denied site");
    assert_eq!(server.close(), Some(0));
}

/// A name of this machine that resolves to a loopback or private address (its host name, which
/// /etc/hosts maps), or None.
fn a_name_for_a_private_address(port: u16) -> Option<String> {
    use std::net::ToSocketAddrs;
    let name = std::fs::read_to_string("/etc/hostname")
        .ok()?
        .trim()
        .to_owned();
    let private = (name.as_str(), port)
        .to_socket_addrs()
        .ok()?
        .any(|a| match a.ip() {
            std::net::IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
            std::net::IpAddr::V6(v6) => v6.is_loopback(),
        });
    (private && !name.is_empty() && !name.contains('.')).then_some(name)
}

#[test]
fn s30_a_name_is_checked_by_what_it_resolves_to() {
    require_chromium!("s30_a_name_is_checked_by_what_it_resolves_to");
    let site = TestSite::start();
    let Some(name) = a_name_for_a_private_address(site.port) else {
        let why = "this machine's host name does not resolve to a loopback or private address";
        assert!(!common::in_ci(), "{why}: the DNS test needs one under CI");
        common::skip_loudly("s30_a_name_is_checked_by_what_it_resolves_to", why);
        return;
    };
    let mut server = Server::start(
        Setup::demo()
            .set(ACTION_TIMEOUT)
            .set("browser.allow_private_networks=false"),
    );
    let session = login(&mut server, "demo", "demo123!");
    let context = create_context(&mut server, &session);
    // The URL names no address, so only the proxy, which resolves the name, can tell.
    let url = format!("http://{name}:{}/", site.port);
    let error = server.call_err(
        "browser-navigate",
        json!({"sessionId": session, "contextId": context, "url": url}),
        "NAVIGATION_BLOCKED",
    );
    assert_eq!(error["rule"], "private-network", "{error}");
    wait_for_block(
        &server,
        &context,
        &format!("{name}:{}", site.port),
        "private-network",
    );
    // Its literal address is refused before anything resolves.
    let error = server.call_err(
        "browser-navigate",
        json!({"sessionId": session, "contextId": context, "url": site.url("/")}),
        "NAVIGATION_BLOCKED",
    );
    assert_eq!(error["rule"], "private-network", "{error}");
    site.assert_untouched("the private address was reached");
    assert_eq!(server.close(), Some(0));
}

#[test]
fn s30_refusals_are_counted_in_the_result_of_the_call_that_caused_them() {
    require_chromium!("s30_refusals_are_counted_in_the_result_of_the_call_that_caused_them");
    let site = TestSite::start();
    let denied = TestSite::start();
    let mut server = server_denying(&denied);
    let session = login(&mut server, "demo", "demo123!");
    let context = create_context(&mut server, &session);
    // The image is part of the load: its refusal comes back with the navigation.
    let loaded = navigate(
        &mut server,
        &session,
        &context,
        &site.url(&format!(
            "/attack?kind=image&to={}",
            denied.url("/pixel.png")
        )),
    );
    let blocked = loaded["blocked"].as_array().cloned().unwrap_or_default();
    assert!(
        blocked
            .iter()
            .any(|b| b["origin"] == denied.origin().as_str()
                && b["rule"] == "deny-list"
                && b["kind"] == "Image"),
        "{loaded}"
    );
    assert!(
        !loaded["blocked"].to_string().contains("pixel.png"),
        "a refusal carries the path: {loaded}"
    );
    // A clean load says nothing of refusals.
    let clean = navigate(&mut server, &session, &context, &site.url("/"));
    assert!(clean.get("blocked").is_none(), "{clean}");
    assert_eq!(server.close(), Some(0));
}

#[test]
fn s30_redirect_chains_and_metadata_addresses_in_every_form_are_refused() {
    require_chromium!("s30_redirect_chains_and_metadata_addresses_in_every_form_are_refused");
    let site = TestSite::start();
    let denied = TestSite::start();
    let mut server = server_denying(&denied);
    let session = login(&mut server, "demo", "demo123!");
    let context = create_context(&mut server, &session);
    // allowed → allowed → denied: refused at the last hop, which never leaves the browser.
    let chain = site.url(&format!("/redirect?to=/redirect?to={}", denied.url("/end")));
    let error = server.call_err(
        "browser-navigate",
        json!({"sessionId": session, "contextId": context, "url": chain}),
        "NAVIGATION_BLOCKED",
    );
    assert_eq!(error["rule"], "deny-list", "{error}");
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("redirected")),
        "{error}"
    );
    denied.assert_untouched("the denied site was reached");
    wait_for_block(&server, &context, &denied.origin(), "deny-list");

    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::a9fe:a9fe]/",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
    ] {
        let error = server.call_err(
            "browser-navigate",
            json!({"sessionId": session, "contextId": context, "url": url}),
            "NAVIGATION_BLOCKED",
        );
        assert_eq!(error["rule"], "metadata", "{url}: {error}");
    }
    // A page that fetches the metadata address by itself is refused too, and audited.
    navigate(
        &mut server,
        &session,
        &context,
        &site.url("/attack?kind=fetch&to=http://169.254.169.254/latest/meta-data/"),
    );
    wait_for_block(&server, &context, "http://169.254.169.254", "metadata");
    assert_eq!(server.close(), Some(0));
}

#[test]
fn s30_service_workers_never_run() {
    require_chromium!("s30_service_workers_never_run");
    let site = TestSite::start();
    let mut server = Server::start(Setup::demo().set(ACTION_TIMEOUT));
    let session = login(&mut server, "demo", "demo123!");
    let context = create_context(&mut server, &session);
    navigate(&mut server, &session, &context, &site.url("/sw"));
    wait_for_block(&server, &context, &site.origin(), "service-worker");
    server.call_ok(
        "browser-wait-for",
        json!({"sessionId": session, "contextId": context, "selector": "#state", "timeoutMs": 5000}),
    );
    let read = server.call_ok(
        "browser-read",
        json!({"sessionId": session, "contextId": context}),
    );
    let text = read["content"].as_str().unwrap_or_default();
    assert!(
        text.contains("active=false"),
        "a service worker runs: {text}"
    );
    assert_eq!(server.close(), Some(0));
}

#[test]
fn popups_count_against_the_tab_cap() {
    require_chromium!("popups_count_against_the_tab_cap");
    let site = TestSite::start();
    let mut server = Server::start(
        Setup::demo()
            .set(ACTION_TIMEOUT)
            .set("browser.max_tabs_per_context=1"),
    );
    let session = login(&mut server, "demo", "demo123!");
    let context = create_context(&mut server, &session);
    // The context's tab is all the cap allows: a popup is closed at once.
    navigate(
        &mut server,
        &session,
        &context,
        &site.url(&format!("/attack?kind=popup&to={}", site.url("/late"))),
    );
    server.call_ok(
        "browser-click",
        json!({"sessionId": session, "contextId": context, "selector": "#go"}),
    );
    let line = server.wait_for_audit("browser.blocked by tab-limit", |l| {
        l["event"] == "browser.blocked"
            && l["detail"]["contextId"] == context.as_str()
            && l["detail"]["rule"] == "tab-limit"
    });
    assert_eq!(line["detail"]["kind"], "tab", "{line}");
    // (The refused popup may still fetch its allowed page before it is closed: the cap bounds
    // tabs, the policy decides what each may reach.)
    // The context's own tab still works.
    navigate(&mut server, &session, &context, &site.url("/"));
    assert_eq!(server.close(), Some(0));
}

/// Every file named `name` under `dir`, at any depth.
fn files_named(dir: &std::path::Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_named(&path, name));
        } else if entry.file_name() == name {
            found.push(path);
        }
    }
    found
}

#[test]
fn downloads_land_in_the_contexts_own_directory_and_go_with_it() {
    require_chromium!("downloads_land_in_the_contexts_own_directory_and_go_with_it");
    let site = TestSite::start();
    let mut server = Server::start(Setup::demo().set(ACTION_TIMEOUT));
    let session = login(&mut server, "demo", "demo123!");
    let context = create_context(&mut server, &session);
    navigate(
        &mut server,
        &session,
        &context,
        &site.url("/attack?kind=download&to=/download.txt"),
    );
    server.call_ok(
        "browser-click",
        json!({"sessionId": session, "contextId": context, "selector": "#go"}),
    );
    let profiles = server.data_dir.join("browser-profiles");
    let started = Instant::now();
    let saved = loop {
        let found = files_named(&profiles, "download.txt");
        if !found.is_empty() || started.elapsed() > Duration::from_secs(15) {
            break found;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert_eq!(
        std::fs::read_to_string(&saved[0]).unwrap_or_default(),
        "downloaded content"
    );
    let dir = saved[0]
        .parent()
        .expect("the context's directory")
        .to_path_buf();
    assert_eq!(
        dir.parent().and_then(|d| d.file_name()),
        Some(std::ffi::OsStr::new("downloads")),
        "{}",
        dir.display()
    );
    // Nowhere else: not in the home directory the browser was given.
    let home = server.data_dir.parent().expect("home").to_path_buf();
    let elsewhere: Vec<_> = files_named(&home, "download.txt")
        .into_iter()
        .filter(|p| !p.starts_with(&profiles))
        .collect();
    assert!(elsewhere.is_empty(), "{elsewhere:?}");
    server.call_ok(
        "close-browser-context",
        json!({"sessionId": session, "contextId": context}),
    );
    assert!(
        !dir.exists(),
        "the closed context's downloads are still there"
    );
    assert_eq!(server.close(), Some(0));
}

/// The socket inodes of every listening TCP socket on the machine (IPv4 and IPv6).
fn listening_inodes() -> HashSet<String> {
    let mut inodes = HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // st 0A is LISTEN; the inode is the tenth field.
            if fields.len() > 9 && fields[3] == "0A" {
                inodes.insert(fields[9].to_owned());
            }
        }
    }
    inodes
}

/// The socket inodes a process holds open.
fn socket_inodes(pid: i32) -> HashSet<String> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|target| {
            target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .map(str::to_owned)
        })
        .collect()
}

#[test]
fn s29_no_process_of_the_browser_listens_on_tcp() {
    require_chromium!("s29_no_process_of_the_browser_listens_on_tcp");
    let site = TestSite::start();
    let mut server = Server::start(Setup::demo().set(ACTION_TIMEOUT));
    let session = login(&mut server, "demo", "demo123!");
    for _ in 0..2 {
        let context = create_context(&mut server, &session);
        navigate(&mut server, &session, &context, &site.url("/"));
    }
    let processes = browser_processes(&server.data_dir);
    assert!(
        processes.len() >= 2,
        "the browser's processes were not found: {processes:#?}"
    );
    let listening = listening_inodes();
    assert!(
        !listening.is_empty(),
        "no listening socket seen at all (the test site listens): /proc/net/tcp unreadable?"
    );
    for process in &processes {
        let held: HashSet<String> = socket_inodes(process.pid);
        let listeners: Vec<&String> = held.intersection(&listening).collect();
        assert!(
            listeners.is_empty(),
            "browser process {} listens on TCP (socket inodes {listeners:?}): {}",
            process.pid,
            process.cmdline()
        );
    }
    // No DevTools discovery file either: nothing to find a port by.
    for profile in common::browser::profile_dirs(&server.data_dir) {
        assert!(!profile.join("DevToolsActivePort").exists());
    }
    assert_eq!(server.close(), Some(0));
}

#[test]
fn a_spinning_page_does_not_stall_other_contexts_or_the_session_tools() {
    require_chromium!("a_spinning_page_does_not_stall_other_contexts_or_the_session_tools");
    let site = TestSite::start();
    let mut server = Server::start(Setup::demo().set("browser.action_timeout_ms=3000"));
    let session = login(&mut server, "demo", "demo123!");
    let spinning = create_context(&mut server, &session);
    let calm = create_context(&mut server, &session);
    navigate(&mut server, &session, &spinning, &site.url("/hang"));
    // Its timer starts the endless loop 50 ms after the load.
    std::thread::sleep(Duration::from_millis(300));
    // The hung page's own call times out; meanwhile another context and the session answer.
    let hung = server.send_call(
        "browser-read",
        json!({"sessionId": session, "contextId": spinning}),
    );
    let started = Instant::now();
    navigate(&mut server, &session, &calm, &site.url("/"));
    for _ in 0..20 {
        server.call_ok("get-session", json!({"sessionId": session}));
    }
    // A liveness bound, not a performance figure (the bench measures that): the other calls
    // finished long before the hung one's 3 s timeout could have freed anything.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "other calls waited for the spinning page: {:?}",
        started.elapsed()
    );
    let reply = server.reply(hung);
    assert!(reply.is_error, "{}", reply.body);
    assert_eq!(server.close(), Some(0));
}
