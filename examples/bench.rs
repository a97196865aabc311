//! `cargo run --release --example bench`: the performance figures of the server, measured from
//! outside over stdio (newline-delimited JSON-RPC on pipes, as a host speaks it) and over HTTP on
//! loopback (section `http`), printed next to their targets and beside references measured in the
//! same run (a bare rmcp echo server, a bare hyper server).
//!
//! A benchmark, not a test: it fails only when the server misbehaves, never because a figure
//! misses its target. The clients here are a bare line client and bare hyper connections (no MCP
//! SDK) so that the figures are the server's, not a client library's. Each section starts its own
//! server with throw-away directories.

mod common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
use hyper::body::Bytes;
use serde_json::{Value, json};

use common::Scratch;

const PROTOCOL_VERSION: &str = "2025-06-18";

/// How much each measurement does; sized to keep the whole bench well under 3 minutes on 2 cores.
struct Sizes {
    cold_starts: usize,
    sequential_calls: usize,
    pipelined_calls: usize,
    /// Rounds of the pipelined calls, taking turns with the echo server's.
    pipelined_rounds: usize,
    real_logins: usize,
    burst_logins: usize,
    probe_interval: Duration,
    bench_users: usize,
    sessions_small: usize,
    sessions_large: usize,
    list_calls: usize,
    browser_launches: usize,
    browser_new_contexts: usize,
    browser_navigations: usize,
    browser_screenshots: usize,
    /// How long each HTTP client count runs, after its warm-up.
    http_run: Duration,
    http_transport_sessions: usize,
    http_probe_clients: usize,
    http_probe_interval: Duration,
}

const SIZES: Sizes = Sizes {
    cold_starts: 20,
    sequential_calls: 2_000,
    pipelined_calls: 20_000,
    pipelined_rounds: 3,
    real_logins: 20,
    burst_logins: 100,
    probe_interval: Duration::from_millis(2),
    bench_users: 1_000,
    sessions_small: 10_000,
    sessions_large: 100_000,
    list_calls: 500,
    browser_launches: 5,
    browser_new_contexts: 20,
    browser_navigations: 30,
    browser_screenshots: 30,
    http_run: Duration::from_secs(3),
    http_transport_sessions: 1_000,
    http_probe_clients: 10,
    http_probe_interval: Duration::from_millis(5),
};

/// Contexts open (each showing the bench's page) when the browser's memory is measured; the
/// server runs with `browser.max_contexts_per_session` and `_per_user` raised to allow the largest.
const BROWSER_CONTEXT_COUNTS: [usize; 3] = [1, 10, 50];

/// Sessions created and deleted by the churn section, and how many are live at once.
const CHURN_SESSIONS: usize = 100_000;
const CHURN_ROUND: usize = 10_000;
/// Browser contexts opened and closed by the churn section (BENCH_CHURN_CONTEXTS overrides).
const CHURN_CONTEXTS: usize = 1_000;

/// At most this many create-session calls in flight while filling the store, so that the memory
/// figures measure sessions rather than queued requests.
const FILL_WINDOW: usize = 128;

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nbench FAILED: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let binary = common::server_binary()?;
    let started = Instant::now();
    println!(
        "mcp-sessions bench: figures measured over stdio pipes from a bare JSON-RPC client, and over\n\
         HTTP on 127.0.0.1 from bare hyper connections"
    );
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("server: {}  machine: {cpus} CPUs", binary.display());
    if let Some(load) = load_average() {
        let note = if load > 0.5 * cpus as f64 {
            ": other processes compete for the CPUs, so the figures are pessimistic"
        } else {
            ""
        };
        println!("load average (1 min) before the bench: {load:.2}{note}");
    }

    // `cargo run --release --example bench -- start browser` runs only the sections named.
    type Section = fn(&Path, &mut Report) -> anyhow::Result<()>;
    let sections: [(&str, Section); 6] = [
        ("start", start_up),
        ("calls", calls_and_logins),
        ("sessions", many_sessions),
        ("http", http),
        ("browser", browser),
        ("churn", churn),
    ];
    let chosen: Vec<String> = std::env::args().skip(1).collect();
    if let Some(unknown) = chosen
        .iter()
        .find(|c| !sections.iter().any(|(name, _)| name == c))
    {
        let names: Vec<&str> = sections.iter().map(|(name, _)| *name).collect();
        bail!(
            "no bench section `{unknown}`; the sections: {}",
            names.join(", ")
        );
    }
    let mut report = Report::default();
    for (name, section) in sections {
        if chosen.is_empty() || chosen.iter().any(|c| c == name) {
            section(&binary, &mut report)?;
        }
    }

    report.summary();
    println!(
        "\nbench finished in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Sections

/// Churn: many sessions (and browser contexts) created and deleted; the server's memory must come
/// back to within 10% of where it started (no leak per session or per context).
fn churn(binary: &Path, report: &mut Report) -> anyhow::Result<()> {
    let contexts = std::env::var("BENCH_CHURN_CONTEXTS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(CHURN_CONTEXTS);
    report.section(&format!(
        "Churn: {} sessions created and deleted in rounds of {} (cheap-hash users), then {} browser\n\
         contexts opened and closed (BENCH_CHURN_CONTEXTS to change)",
        thousands(CHURN_SESSIONS as f64),
        thousands(CHURN_ROUND as f64),
        thousands(contexts as f64)
    ));
    let scratch = Scratch::new("bench-churn")?;
    let users = BenchUsers::write(&scratch, SIZES.bench_users)?;
    let args = [
        "--set".to_owned(),
        format!(
            "max_sessions_per_user={}",
            CHURN_ROUND.div_ceil(SIZES.bench_users) + 5
        ),
        "--set".to_owned(),
        "login_rate_per_minute=1000000000".to_owned(),
        // The sweeper compacts the store and returns freed memory; once a second here.
        "--set".to_owned(),
        "sweep_interval=1".to_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = Server::spawn(binary, &scratch, &args)?;
    server.initialize()?;
    // Warm-up round, so the baseline includes what the first use of each path allocates.
    server.churn_round(&users, 0, 1_000)?;
    std::thread::sleep(Duration::from_millis(2_500));
    let baseline = server.memory()?.rss;
    let mut peak = baseline;
    let started = Instant::now();
    let mut from = 0;
    while from < CHURN_SESSIONS {
        let to = (from + CHURN_ROUND).min(CHURN_SESSIONS);
        peak = peak.max(server.churn_round(&users, from, to)?);
        from = to;
    }
    // Two sweeps: one compacts the store, the next finds nothing more to hand back.
    std::thread::sleep(Duration::from_millis(2_500));
    let after = server.memory()?.rss;
    report.row(
        "RSS at the baseline (after a warm-up)",
        megabytes(baseline),
        None,
    );
    report.row(
        "RSS at the peak (a full round live)",
        format!(
            "{}  ({:.1} s for all rounds)",
            megabytes(peak),
            started.elapsed().as_secs_f64()
        ),
        None,
    );
    let ratio = after as f64 / baseline as f64;
    report.row(
        "RSS after every session was deleted",
        format!(
            "{}  ({:+.1}% of the baseline)",
            megabytes(after),
            (ratio - 1.0) * 100.0
        ),
        Some(Target::at_most(ratio, 1.10, "baseline + 10%")),
    );

    if mcp_sessions::browser::find_executable(None).is_some() && contexts > 0 {
        let session = server.tool(
            "create-session",
            json!({"username": BenchUsers::LISTER, "password": BenchUsers::PASSWORD}),
        )?["sessionId"]
            .as_str()
            .context("create-session returned no sessionId")?
            .to_owned();
        // Warm-up contexts start the browser; the baseline is taken with it running, none open.
        for n in 0..20 {
            let warm = server.create_context(&session, &format!("churn-warm-up-{n}"))?;
            server.close_context(&session, &warm)?;
        }
        std::thread::sleep(Duration::from_millis(2_500));
        let baseline = server.memory()?.rss;
        let started = Instant::now();
        for n in 0..contexts {
            let context = server.create_context(&session, &format!("churn-{n}"))?;
            server.close_context(&session, &context)?;
        }
        std::thread::sleep(Duration::from_millis(2_500));
        let after = server.memory()?;
        let ratio = after.rss as f64 / baseline as f64;
        report.row(
            "server RSS with the browser up, no contexts",
            megabytes(baseline),
            None,
        );
        report.row(
            &format!(
                "server RSS after {} contexts opened and closed",
                thousands(contexts as f64)
            ),
            format!(
                "{}  ({:+.1}%; {:.0} ms per open+close)",
                megabytes(after.rss),
                (ratio - 1.0) * 100.0,
                started.elapsed().as_secs_f64() * 1000.0 / contexts as f64
            ),
            Some(Target::at_most(ratio, 1.10, "baseline + 10%")),
        );
        let profiles = scratch.data_dir.join("browser-profiles");
        if let Ok(memory) = settled_pss(&profiles) {
            report.row(
                "Chromium PSS afterwards (no context open)",
                format!(
                    "{:.1} MB  ({} processes)",
                    memory.pss as f64 / 1e6,
                    memory.processes
                ),
                None,
            );
        }
    }
    server.close()
}

/// Cold start and idle memory of a server with the demo users.
fn start_up(binary: &Path, report: &mut Report) -> anyhow::Result<()> {
    report.section("Start-up (server with the demo users, nothing else configured)");
    let scratch = Scratch::new("bench-start")?;
    // The first start creates the signing key and the audit log; a host starts the server
    // many more times than that, so the first start is a warm-up and not counted.
    let mut times = Vec::with_capacity(SIZES.cold_starts);
    for run in 0..=SIZES.cold_starts {
        let spawned = Instant::now();
        let mut server = Server::spawn(binary, &scratch, &["--demo"])?;
        server.initialize()?;
        let elapsed = spawned.elapsed();
        if run > 0 {
            times.push(elapsed);
        }
        server.close()?;
    }
    let stats = Stats::of(times);
    report.row(
        "cold start: spawn → initialize response",
        format!(
            "median {}  p90 {}  ({} runs)",
            ms(stats.median()),
            ms(stats.percentile(90.0)),
            stats.len()
        ),
        Some(Target::at_most_ms(stats.median(), 5.0)),
    );
    // The reference: what spawning an rmcp server and its handshake cost here, with nothing else.
    let mut times = Vec::with_capacity(SIZES.cold_starts);
    for run in 0..=SIZES.cold_starts {
        let spawned = Instant::now();
        let mut echo = Server::spawn_echo(&scratch)?;
        echo.initialize()?;
        let elapsed = spawned.elapsed();
        if run > 0 {
            times.push(elapsed);
        }
        echo.close()?;
    }
    let echo = Stats::of(times);
    report.row(
        "  reference: bare rmcp echo server, same way",
        format!(
            "median {}  p90 {}  ({} runs)",
            ms(echo.median()),
            ms(echo.percentile(90.0)),
            echo.len()
        ),
        None,
    );
    let ratio = stats.median().as_secs_f64() / echo.median().as_secs_f64();
    report.row(
        "cold start ÷ the echo server's (medians)",
        format!("{ratio:.2}×"),
        Some(Target::at_most(ratio, 2.0, "2×")),
    );

    let mut server = Server::spawn(binary, &scratch, &["--demo"])?;
    server.initialize()?;
    std::thread::sleep(Duration::from_millis(200));
    let rss = server.memory()?.rss;
    report.row(
        "idle RSS after initialize",
        megabytes(rss),
        Some(Target::at_most(rss as f64, 15e6, "15 MB")),
    );
    // Hosts put the tool list in the model's context on every turn.
    let listing = server.reply_line("tools/list", &json!({}))?;
    let bytes = listing.trim_end().len();
    let tools = serde_json::from_str::<Value>(&listing)?["result"]["tools"]
        .as_array()
        .map_or(0, Vec::len);
    report.row(
        "tools/list answer",
        format!("{bytes} bytes, {tools} tools (≈{} tokens)", bytes / 4),
        Some(Target::at_most(bytes as f64, 10_000.0, "10,000 bytes")),
    );
    server.close()?;
    Ok(())
}

/// get-session latency and throughput, create-session with real argon2 parameters, and the
/// latency of cheap calls while a burst of logins hashes passwords.
fn calls_and_logins(binary: &Path, report: &mut Report) -> anyhow::Result<()> {
    let scratch = Scratch::new("bench-calls")?;
    let args = [
        "--demo",
        "--set",
        "max_sessions_per_user=1000",
        "--set",
        "login_rate_per_minute=1000000",
    ];
    let mut server = Server::spawn(binary, &scratch, &args)?;
    server.initialize()?;
    let login = server.tool(
        "create-session",
        json!({"username": "demo", "password": "demo123!"}),
    )?;
    let session_id = login["sessionId"]
        .as_str()
        .context("create-session returned no sessionId")?
        .to_owned();
    let get_session = json!({"sessionId": session_id});

    report.section("get-session (one session; the session id is the credential)");
    let stats = Stats::timed(SIZES.sequential_calls, |_| {
        server.tool("get-session", get_session.clone()).map(drop)
    })?;
    report.row("sequential round trip", p50_p99(&stats), None);

    // The same pipeline into a bare rmcp server whose one tool answers at once: what the stdio
    // transport and rmcp's dispatch cost here, without authentication, validation or the store.
    // The two take turns, and each keeps its best round: a neighbour's burst of CPU use during
    // one round then moves neither figure nor their ratio.
    let mut echo = Server::spawn_echo(&scratch)?;
    echo.initialize()?;
    let echo_arguments = json!({"text": "a line about as long as a session id is, to echo back"});
    let before = server.memory()?;
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..SIZES.pipelined_rounds {
        let requests: Vec<Vec<u8>> = (0..SIZES.pipelined_calls)
            .map(|_| server.tool_request("get-session", &get_session))
            .collect();
        let batch = server.pipeline(&requests, usize::MAX)?;
        batch.expect_no_errors("get-session")?;
        ours.push(batch.elapsed);
        let requests: Vec<Vec<u8>> = (0..SIZES.pipelined_calls)
            .map(|_| echo.tool_request("echo", &echo_arguments))
            .collect();
        let batch = echo.pipeline(&requests, usize::MAX)?;
        batch.expect_no_errors("echo")?;
        bare.push(batch.elapsed);
    }
    echo.close()?;
    let after = server.memory()?;
    let (ours, bare) = (Stats::of(ours), Stats::of(bare));
    let rate = |elapsed: Duration| SIZES.pipelined_calls as f64 / elapsed.as_secs_f64();
    let rounds = |stats: &Stats| {
        format!(
            "{} calls/s  (best of {}; worst {})",
            thousands(rate(stats.percentile(0.0))),
            stats.len(),
            thousands(rate(stats.max()))
        )
    };
    let best = rate(ours.percentile(0.0));
    report.row(
        &format!("pipelined throughput ({} calls)", SIZES.pipelined_calls),
        rounds(&ours),
        Some(Target::at_least(best, 30_000.0, "30k calls/s")),
    );
    report.row(
        "RSS before → after the pipelined calls",
        format!(
            "{} → {}  ({} → {} threads)",
            megabytes(before.rss),
            megabytes(after.rss),
            before.threads,
            after.threads
        ),
        None,
    );
    let echo_best = rate(bare.percentile(0.0));
    report.row(
        "  reference: pipelined echo, bare rmcp server",
        rounds(&bare),
        None,
    );
    let ratio = best / echo_best;
    report.row(
        "pipelined get-session ÷ pipelined echo",
        format!("{ratio:.2}×  (best rounds)"),
        Some(Target::at_least(ratio, 0.5, "0.5×")),
    );

    report.section("create-session with the real argon2id parameters (m=19456 KiB, t=2, p=1)");
    let before = server.memory()?;
    let stats = Stats::timed(SIZES.real_logins, |_| {
        server
            .tool(
                "create-session",
                json!({"username": "demo", "password": "demo123!"}),
            )
            .map(drop)
    })?;
    report.row(
        "create-session latency",
        format!(
            "median {}  p90 {}  ({} sequential logins)",
            ms(stats.median()),
            ms(stats.percentile(90.0)),
            stats.len()
        ),
        None,
    );
    let after = server.memory()?;
    report.row(
        "RSS before → after these logins",
        format!("{} → {}", megabytes(before.rss), megabytes(after.rss)),
        None,
    );

    report.section(&format!(
        "Burst: {} logins at once, get-session probes every {} ms on the same connection",
        SIZES.burst_logins,
        SIZES.probe_interval.as_millis()
    ));
    let before = server.memory()?;
    let burst = server.login_burst(&get_session)?;
    let stats = Stats::of(burst.probe_latencies);
    report.row(
        "get-session during the burst",
        format!(
            "p50 {}  p99 {}  max {}  ({} probes)",
            ms(stats.median()),
            ms(stats.percentile(99.0)),
            ms(stats.max()),
            stats.len()
        ),
        Some(Target::at_most_ms(stats.percentile(99.0), 10.0)),
    );
    report.row(
        "the burst itself",
        format!(
            "{} logins answered in {}  ({:.0} logins/s)",
            SIZES.burst_logins,
            ms(burst.duration),
            SIZES.burst_logins as f64 / burst.duration.as_secs_f64()
        ),
        None,
    );
    let during = server.memory()?;
    report.row(
        "RSS before → peak (VmHWM)",
        format!(
            "{} → {}  ({} threads)",
            megabytes(before.rss),
            megabytes(during.peak),
            during.threads
        ),
        None,
    );
    // tokio lets idle blocking threads go after 10 s; whatever RSS remains then stays.
    let settled = Instant::now();
    let mut after = server.memory()?;
    while after.threads > before.threads && settled.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(500));
        after = server.memory()?;
    }
    report.row(
        "RSS once the blocking threads are gone",
        format!(
            "{}  ({} threads, {:.0} s after the burst)",
            megabytes(after.rss),
            after.threads,
            settled.elapsed().as_secs_f64()
        ),
        None,
    );
    server.close()?;
    Ok(())
}

/// Memory per idle session and list-sessions among many sessions, with users whose hashes are
/// deliberately cheap so that 100k logins take seconds.
fn many_sessions(binary: &Path, report: &mut Report) -> anyhow::Result<()> {
    report.section(&format!(
        "Many sessions, logged in as {} users whose argon2id hashes are CHEAP on purpose\n\
         (m=8 KiB, t=1, p=1, so that 100k logins take seconds; create-session latency with the\n\
         real parameters is measured above)",
        SIZES.bench_users
    ));
    let scratch = Scratch::new("bench-sessions")?;
    let users = BenchUsers::write(&scratch, SIZES.bench_users)?;
    let per_user = SIZES.sessions_large.div_ceil(SIZES.bench_users);
    let args = [
        "--set".to_owned(),
        format!("max_sessions_per_user={}", per_user.max(5)),
        "--set".to_owned(),
        "login_rate_per_minute=1000000000".to_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = Server::spawn(binary, &scratch, &args)?;
    server.initialize()?;
    std::thread::sleep(Duration::from_millis(200));
    let before = server.memory()?.rss;

    // The user whose sessions list-sessions reads: 5 sessions among all the others.
    let mut lister_session = String::new();
    for _ in 0..5 {
        let login = server.tool(
            "create-session",
            json!({"username": BenchUsers::LISTER, "password": BenchUsers::PASSWORD}),
        )?;
        lister_session = login["sessionId"]
            .as_str()
            .context("create-session returned no sessionId")?
            .to_owned();
    }

    let filled = server.fill_sessions(&users, 0, SIZES.sessions_small)?;
    std::thread::sleep(Duration::from_millis(300));
    let small_memory = server.memory()?;
    let small = small_memory.rss;
    let per_session = small.saturating_sub(before) as f64 / SIZES.sessions_small as f64;
    report.row("RSS before any session", megabytes(before), None);
    report.row(
        &format!(
            "RSS with {} live sessions",
            thousands(SIZES.sessions_small as f64)
        ),
        format!("{}  ({} threads)", megabytes(small), small_memory.threads),
        None,
    );
    report.row(
        "bytes per idle session",
        format!(
            "{per_session:.0} B  ((RSS_{} − RSS_0) / {})",
            short_count(SIZES.sessions_small),
            SIZES.sessions_small
        ),
        Some(Target::at_most(per_session, 2048.0, "2 KiB")),
    );
    report.row(
        "create-session throughput (cheap hashes)",
        format!(
            "{} logins/s  (window of {FILL_WINDOW} in flight)",
            thousands(SIZES.sessions_small as f64 / filled.as_secs_f64())
        ),
        None,
    );

    server.fill_sessions(&users, SIZES.sessions_small, SIZES.sessions_large)?;
    std::thread::sleep(Duration::from_millis(300));
    let large = server.memory()?.rss;
    report.row(
        &format!(
            "RSS with {} live sessions",
            thousands(SIZES.sessions_large as f64)
        ),
        format!(
            "{}  ({:.0} B per session)",
            megabytes(large),
            large.saturating_sub(before) as f64 / SIZES.sessions_large as f64
        ),
        None,
    );
    // The first sessions also pay for buffers and threads that later ones reuse.
    report.row(
        &format!(
            "marginal bytes per session ({} → {})",
            short_count(SIZES.sessions_small),
            short_count(SIZES.sessions_large)
        ),
        format!(
            "{:.0} B",
            large.saturating_sub(small) as f64
                / (SIZES.sessions_large - SIZES.sessions_small) as f64
        ),
        None,
    );

    let list = json!({"sessionId": lister_session});
    let stats = Stats::timed(SIZES.list_calls, |_| {
        let reply = server.tool("list-sessions", list.clone())?;
        ensure!(
            reply["count"] == 5,
            "list-sessions saw {} sessions of the lister, not 5",
            reply["count"]
        );
        Ok(())
    })?;
    report.row(
        &format!(
            "list-sessions: 5 of {} sessions",
            short_count(SIZES.sessions_large)
        ),
        p50_p99(&stats),
        None,
    );
    let get = json!({"sessionId": lister_session});
    let stats = Stats::timed(SIZES.list_calls, |_| {
        server.tool("get-session", get.clone()).map(drop)
    })?;
    report.row(
        &format!(
            "get-session among {} sessions",
            short_count(SIZES.sessions_large)
        ),
        p50_p99(&stats),
        None,
    );
    server.close()?;
    Ok(())
}

/// Headless Chromium driven through the browser tools: launch, new contexts on a warm browser,
/// navigation to a page the bench serves itself, screenshots, and the memory of the browser's
/// process tree as contexts are added. Skipped, saying why, when no Chromium is found.
fn browser(binary: &Path, report: &mut Report) -> anyhow::Result<()> {
    const TITLE: &str = "Browser (headless Chromium)";
    // The server's own lookup: CHROME_PATH, else the usual install locations (the bench sets no
    // `browser.chrome_path`).
    let Some(chromium) = mcp_sessions::browser::find_executable(None) else {
        let why = match std::env::var_os("CHROME_PATH").filter(|v| !v.is_empty()) {
            Some(path) => format!(
                "CHROME_PATH is {}, which is not a file",
                Path::new(&path).display()
            ),
            None => mcp_sessions::browser::INSTALL_ADVICE.to_owned(),
        };
        println!("\n{TITLE}\n  skipped: {why}");
        return Ok(());
    };
    let started = Instant::now();
    let page = PageServer::start()?;
    report.section(&format!(
        "{TITLE}: {} ({})\n\
         the page loaded is served by the bench itself on {} ({:.1} KB of HTML and CSS, no images)",
        chromium.display(),
        chromium_version(&chromium),
        page.address,
        PageServer::HTML.len() as f64 / 1e3
    ));
    // Every server of the section keeps its data directory until the process check at the end.
    let mut scratches = Vec::new();
    browser_figures(binary, &page, report, &mut scratches)?;
    let left = browser_processes_left(&scratches);
    report.row(
        "Chromium processes left once servers exit",
        match left.len() {
            0 => "none  (checked in /proc)".to_owned(),
            n => format!("{n}: {}", describe_processes(&left)),
        },
        None,
    );
    println!(
        "  (browser section took {:.0} s; the bench's page server answered {} requests)",
        started.elapsed().as_secs_f64(),
        page.requests()
    );
    ensure!(
        left.is_empty(),
        "the servers exited but left {} Chromium processes running: {}",
        left.len(),
        describe_processes(&left)
    );
    Ok(())
}

/// The measurements of the browser section; each server it starts has its directories in
/// `scratches`.
fn browser_figures(
    binary: &Path,
    page: &PageServer,
    report: &mut Report,
    scratches: &mut Vec<Scratch>,
) -> anyhow::Result<()> {
    // Cold: a fresh server each time, so the user has no browser yet.
    let scratch = Scratch::new("bench-browser-cold")?;
    let mut times = Vec::with_capacity(SIZES.browser_launches);
    for _ in 0..SIZES.browser_launches {
        let mut server = Server::spawn(binary, &scratch, &["--demo"])?;
        server.initialize()?;
        let session = server.login("demo", "demo123!")?;
        let sent = Instant::now();
        let context = server.create_context(&session, "cold")?;
        times.push(sent.elapsed());
        server.close_context(&session, &context)?;
        server.close()?;
    }
    scratches.push(scratch);
    let stats = Stats::of(times);
    report.row(
        "browser launch: a user's first context (cold)",
        format!(
            "median {}  ({:.1}–{:.1} ms, {} fresh servers)",
            ms(stats.median()),
            stats.percentile(0.0).as_secs_f64() * 1000.0,
            stats.max().as_secs_f64() * 1000.0,
            stats.len()
        ),
        None,
    );

    // Warm: one server, one browser, one context kept open for the page operations.
    let scratch = Scratch::new("bench-browser-warm")?;
    let mut server = Server::spawn(binary, &scratch, &["--demo"])?;
    scratches.push(scratch);
    server.initialize()?;
    let session = server.login("demo", "demo123!")?;
    let context = server.create_context(&session, "warm")?;
    let first = server.navigate(&session, &context, &page.url(0))?;
    ensure!(
        first.title == PageServer::TITLE && first.status == Some(200),
        "the bench's page loaded as {first:?}"
    );

    let mut opened = Vec::with_capacity(SIZES.browser_new_contexts);
    let mut closed = Vec::with_capacity(SIZES.browser_new_contexts);
    for n in 0..SIZES.browser_new_contexts {
        let sent = Instant::now();
        let extra = server.create_context(&session, &format!("extra-{n}"))?;
        opened.push(sent.elapsed());
        let sent = Instant::now();
        server.close_context(&session, &extra)?;
        closed.push(sent.elapsed());
    }
    let stats = Stats::of(opened);
    report.row(
        "new context + tab, warm (each closed after)",
        median_p90(&stats, "contexts"),
        Some(Target::at_most_ms(stats.median(), 300.0)),
    );
    report.row(
        "close-browser-context",
        median_p90(&Stats::of(closed), "closes"),
        None,
    );

    let stats = Stats::timed(SIZES.browser_navigations, |n| {
        let url = page.url(n);
        let navigated = server.navigate(&session, &context, &url)?;
        ensure!(
            navigated.url == url && navigated.status == Some(200),
            "navigating to {url} ended as {navigated:?}"
        );
        Ok(())
    })?;
    report.row(
        "navigate to the local page, warm",
        median_p90(&stats, "navigations"),
        Some(Target::at_most_ms(stats.median(), 150.0)),
    );

    for format in ["png", "jpeg"] {
        let mut bytes = 0;
        let stats = Stats::timed(SIZES.browser_screenshots, |_| {
            let shot = server.screenshot(&session, &context, format)?;
            ensure!(
                (shot.width, shot.height) == (1280, 720) && shot.format == format,
                "asked for a 1280×720 {format} screenshot, got {shot:?}"
            );
            bytes += shot.bytes;
            Ok(())
        })?;
        let label = format!("screenshot 1280×720 {}", format.to_uppercase());
        let size = bytes as f64 / SIZES.browser_screenshots as f64 / 1e3;
        let result = median_p90(&stats, &format!("shots, ~{size:.0} KB"));
        let target = (format == "png").then(|| Target::at_most_ms(stats.median(), 100.0));
        report.row(&label, result, target);
    }
    // A page that spins (an endless loop from a timer) holds only its own context: get-session
    // is timed without it and then while it spins, on the same server.
    let calls = SIZES.browser_navigations * 10;
    let get_session = json!({"sessionId": session});
    let quiet = Stats::timed(calls, |_| {
        server.tool("get-session", get_session.clone()).map(drop)
    })?;
    let spinning = server.create_context(&session, "spin")?;
    server.navigate(&session, &spinning, &page.spin_url())?;
    // Its timer starts the loop 50 ms after the load.
    std::thread::sleep(Duration::from_millis(300));
    let busy = Stats::timed(calls, |_| {
        server.tool("get-session", get_session.clone()).map(drop)
    })?;
    report.row(
        "get-session while another context's page spins",
        format!("{}  (without it: {})", p50_p99(&busy), p50_p99(&quiet)),
        Some(Target::at_most_ms(busy.percentile(0.99), 10.0)),
    );
    server.close_context(&session, &spinning)?;
    server.close_context(&session, &context)?;
    server.close()?;

    // Memory: a fresh server whose session may hold the largest count of contexts.
    let largest = BROWSER_CONTEXT_COUNTS[BROWSER_CONTEXT_COUNTS.len() - 1];
    let scratch = Scratch::new("bench-browser-memory")?;
    let per_session = format!("browser.max_contexts_per_session={}", largest + 10);
    let per_user = format!("browser.max_contexts_per_user={}", largest + 10);
    let mut server = Server::spawn(
        binary,
        &scratch,
        &["--demo", "--set", &per_session, "--set", &per_user],
    )?;
    let profiles = scratch.data_dir.join("browser-profiles");
    scratches.push(scratch);
    server.initialize()?;
    let session = server.login("demo", "demo123!")?;
    let mut contexts = Vec::with_capacity(largest);
    let mut pss = Vec::with_capacity(BROWSER_CONTEXT_COUNTS.len());
    for count in BROWSER_CONTEXT_COUNTS {
        while contexts.len() < count {
            let context = server.create_context(&session, &format!("mem-{}", contexts.len()))?;
            server.navigate(&session, &context, &page.url(contexts.len()))?;
            contexts.push(context);
        }
        let tree = settled_pss(&profiles)?;
        report.row(
            &format!(
                "Chromium PSS, {count} context{} open",
                if count == 1 { "" } else { "s" }
            ),
            format!("{}  ({} processes)", megabytes(tree.pss), tree.processes),
            None,
        );
        pss.push(tree.pss);
    }
    let (first, last) = (BROWSER_CONTEXT_COUNTS[0], largest);
    let per_context = pss[pss.len() - 1].saturating_sub(pss[0]) as f64 / (last - first) as f64;
    report.row(
        "Chromium PSS per added context",
        format!(
            "{}  ((PSS_{last} − PSS_{first}) / {})",
            megabytes(per_context as u64),
            last - first
        ),
        Some(Target::at_most(per_context, 30e6, "30 MB")),
    );
    for context in &contexts {
        server.close_context(&session, context)?;
    }
    let tree = settled_pss(&profiles)?;
    report.row(
        &format!("Chromium PSS once the {largest} are closed"),
        format!("{}  ({} processes)", megabytes(tree.pss), tree.processes),
        None,
    );
    server.close()?;

    println!("  for reference, today's browser MCP servers (the figures the issue quotes):");
    for (measure, figure) in [
        ("new isolated context", "463 ms"),
        ("warm navigate", "124–251 ms"),
        ("warm 1280×720 screenshot", "62–119 ms"),
    ] {
        report.row(&format!("  {measure}"), figure.to_owned(), None);
    }
    Ok(())
}

fn p50_p99(stats: &Stats) -> String {
    format!(
        "p50 {}  p99 {}  ({} calls)",
        ms(stats.median()),
        ms(stats.percentile(99.0)),
        stats.len()
    )
}

fn median_p90(stats: &Stats, what: &str) -> String {
    format!(
        "median {}  p90 {}  ({} {what})",
        ms(stats.median()),
        ms(stats.percentile(90.0)),
        stats.len()
    )
}

/// `chromium --version`, or a note that it did not say.
fn chromium_version(chromium: &Path) -> String {
    std::process::Command::new(chromium)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|version| !version.is_empty())
        .unwrap_or_else(|| "version unknown".to_owned())
}

/// Where a navigation ended.
#[derive(Debug)]
struct Navigated {
    url: String,
    title: String,
    status: Option<u64>,
}

/// What browser-screenshot says of its image.
#[derive(Debug)]
struct Shot {
    width: u64,
    height: u64,
    format: String,
    bytes: usize,
}

impl Server {
    /// Logs in and returns the session id.
    fn login(&mut self, username: &str, password: &str) -> anyhow::Result<String> {
        let login = self.tool(
            "create-session",
            json!({"username": username, "password": password}),
        )?;
        login["sessionId"]
            .as_str()
            .map(str::to_owned)
            .context("create-session returned no sessionId")
    }

    /// Opens a headless context with a 1280×720 viewport; returns its id.
    fn create_context(&mut self, session: &str, name: &str) -> anyhow::Result<String> {
        let created = self.tool(
            "create-browser-context",
            json!({
                "sessionId": session,
                "name": name,
                "options": {"viewport": {"width": 1280, "height": 720}},
            }),
        )?;
        created["contextId"]
            .as_str()
            .map(str::to_owned)
            .context("create-browser-context returned no contextId")
    }

    fn close_context(&mut self, session: &str, context: &str) -> anyhow::Result<()> {
        let closed = self.tool(
            "close-browser-context",
            json!({"sessionId": session, "contextId": context}),
        )?;
        ensure!(
            closed["success"] == true,
            "close-browser-context answered {closed}"
        );
        Ok(())
    }

    fn navigate(&mut self, session: &str, context: &str, url: &str) -> anyhow::Result<Navigated> {
        let reply = self.tool(
            "browser-navigate",
            json!({"sessionId": session, "contextId": context, "url": url}),
        )?;
        Ok(Navigated {
            url: reply["url"].as_str().unwrap_or_default().to_owned(),
            title: reply["title"].as_str().unwrap_or_default().to_owned(),
            status: reply["status"].as_u64(),
        })
    }

    /// A viewport screenshot; its reply is an image block and a text block describing it (no
    /// structured content).
    fn screenshot(&mut self, session: &str, context: &str, format: &str) -> anyhow::Result<Shot> {
        let tool = "browser-screenshot";
        let result = self.call(
            "tools/call",
            &json!({"name": tool, "arguments": {
                "sessionId": session, "contextId": context, "fullPage": false, "format": format,
            }}),
        )?;
        tool_outcome(tool, &json!({"result": result}))?;
        let image = &result["content"][0];
        let data = image["data"].as_str().unwrap_or_default();
        ensure!(
            image["type"] == "image" && image["mimeType"] == format!("image/{format}"),
            "{tool} returned no {format} image first: {}",
            shorten(&image.to_string())
        );
        let meta: Value = serde_json::from_str(result["content"][1]["text"].as_str().unwrap_or(""))
            .with_context(|| format!("{tool}: the second block does not describe the image"))?;
        let bytes = meta["bytes"].as_u64().unwrap_or(0) as usize;
        ensure!(
            bytes > 0 && data.len() == bytes.div_ceil(3) * 4,
            "{tool}: {} base64 characters for an image of {bytes} bytes",
            data.len()
        );
        Ok(Shot {
            width: meta["width"].as_u64().unwrap_or(0),
            height: meta["height"].as_u64().unwrap_or(0),
            format: meta["format"].as_str().unwrap_or_default().to_owned(),
            bytes,
        })
    }
}

fn shorten(text: &str) -> String {
    text.chars().take(200).collect()
}

// ---------------------------------------------------------------------------------------------
// The page the browser loads, and the browser's processes

/// A tiny HTTP/1.1 server on 127.0.0.1 answering every GET with the same small page (a thread per
/// connection, keep-alive as Chromium expects). Stops when dropped.
struct PageServer {
    address: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

impl PageServer {
    const TITLE: &str = "mcp-sessions bench page";
    const SPIN: &str = "<!doctype html><title>spin</title><p>about to spin</p>\
        <script>setTimeout(() => { for (;;) {} }, 50);</script>";
    const HTML: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>mcp-sessions bench page</title>
<link rel="icon" href="data:,">
<style>
  body { font: 16px/1.5 sans-serif; margin: 0; color: #222; background: #fafafa; }
  header, footer { background: #2b4c6f; color: #fff; padding: 12px 24px; }
  nav a { color: #fff; margin-right: 16px; }
  main { display: grid; grid-template-columns: 2fr 1fr; gap: 24px; padding: 24px; }
  aside { border-left: 4px solid #2b4c6f; padding-left: 16px; }
  table { border-collapse: collapse; }
  td, th { border: 1px solid #ccc; padding: 4px 8px; }
</style>
</head>
<body>
<header><h1>Bench page</h1><nav><a href="#a">Sessions</a><a href="#b">Contexts</a><a href="#c">Audit</a></nav></header>
<main>
  <article>
    <h2 id="a">A page to measure the browser with</h2>
    <p>This page is served by the benchmark itself from 127.0.0.1, so that navigation times
       measure the browser and the server rather than the network. It has text, a layout and a
       table, and no images, scripts or fonts to fetch.</p>
    <p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt
       ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation
       ullamco laboris nisi ut aliquip ex ea commodo consequat.</p>
    <table>
      <tr><th>measure</th><th>target</th></tr>
      <tr><td>new context</td><td>&le; 300 ms</td></tr>
      <tr><td>navigate</td><td>&le; 150 ms</td></tr>
      <tr><td>screenshot</td><td>&le; 100 ms</td></tr>
    </table>
  </article>
  <aside id="b"><h3>Notes</h3><ul><li>Headless Chromium</li><li>One context per tab</li><li>No network</li></ul></aside>
</main>
<footer id="c">mcp-sessions bench</footer>
</body>
</html>
"##;

    fn start() -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .context("cannot listen on 127.0.0.1 for the bench's page")?;
        let address = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let (stopping, counter) = (stop.clone(), requests.clone());
        let acceptor = std::thread::Builder::new()
            .name("bench-page-server".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if stopping.load(Ordering::Acquire) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        let counter = counter.clone();
                        std::thread::spawn(move || Self::serve(stream, &counter));
                    }
                }
            })?;
        Ok(Self {
            address,
            stop,
            requests,
            acceptor: Some(acceptor),
        })
    }

    /// A distinct URL per `n`, so that every navigation loads a new document.
    fn url(&self, n: usize) -> String {
        format!("http://{}/page?n={n}", self.address)
    }

    /// A page whose timer starts an endless loop once it has loaded.
    fn spin_url(&self) -> String {
        format!("http://{}/spin", self.address)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    /// Answers the requests of one connection until the client closes it or stays idle.
    fn serve(stream: std::net::TcpStream, requests: &AtomicUsize) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(15)));
        let _ = stream.set_nodelay(true);
        let Ok(mut writer) = stream.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(stream);
        loop {
            let mut request_line = String::new();
            match reader.read_line(&mut request_line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            // Headers up to the blank line; GET requests have no body.
            loop {
                let mut header = String::new();
                match reader.read_line(&mut header) {
                    Ok(0) | Err(_) => return,
                    Ok(_) if header.trim_end().is_empty() => break,
                    Ok(_) => {}
                }
            }
            requests.fetch_add(1, Ordering::Relaxed);
            let path = request_line.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = if path.starts_with("/page") {
                ("200 OK", Self::HTML)
            } else if path == "/spin" {
                ("200 OK", Self::SPIN)
            } else {
                ("404 Not Found", "")
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n\
                 Content-Length: {}\r\nCache-Control: no-store\r\nConnection: keep-alive\r\n\r\n",
                body.len()
            );
            if writer.write_all(head.as_bytes()).is_err()
                || writer.write_all(body.as_bytes()).is_err()
                || writer.flush().is_err()
            {
                return;
            }
        }
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the acceptor, which then sees the flag.
        let _ = std::net::TcpStream::connect(self.address);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// The PSS of a browser's process tree.
struct TreeMemory {
    pss: u64,
    processes: usize,
}

/// The processes of the browsers under `profiles` (a server's `browser-profiles` directory):
/// those whose command line names it (Chromium and its helpers carry `--user-data-dir`), and
/// their descendants.
fn browser_tree(profiles: &Path) -> Vec<u32> {
    let needle = profiles.to_string_lossy().into_owned();
    let mut parents = HashMap::new();
    let mut tree = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return tree;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            tree.push(pid);
        }
        // The parent is the second field after the command name, which may hold spaces.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(parent) = parent {
            parents.insert(pid, parent);
        }
    }
    let mut grew = true;
    while grew {
        grew = false;
        for (pid, parent) in &parents {
            if tree.contains(parent) && !tree.contains(pid) {
                tree.push(*pid);
                grew = true;
            }
        }
    }
    tree.sort_unstable();
    tree
}

/// PSS summed over the browser tree under `profiles` (`Pss:` of /proc/<pid>/smaps_rollup).
fn tree_pss(profiles: &Path) -> anyhow::Result<TreeMemory> {
    let mut memory = TreeMemory {
        pss: 0,
        processes: 0,
    };
    for pid in browser_tree(profiles) {
        // A helper may exit between the listing and the read.
        let Ok(rollup) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
            continue;
        };
        let kilobytes = rollup
            .lines()
            .find_map(|l| l.strip_prefix("Pss:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .with_context(|| format!("no Pss: in /proc/{pid}/smaps_rollup"))?;
        memory.pss += kilobytes * 1024;
        memory.processes += 1;
    }
    ensure!(
        memory.processes > 0,
        "no browser process names {} (the memory figures need Linux's /proc)",
        profiles.display()
    );
    Ok(memory)
}

/// The tree's PSS once it has stopped moving: sampled every 200 ms until two samples agree
/// within 1 % and the process count holds, for at most 3 s.
fn settled_pss(profiles: &Path) -> anyhow::Result<TreeMemory> {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut last = tree_pss(profiles)?;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let now = tree_pss(profiles)?;
        let steady = now.processes == last.processes
            && (now.pss as f64 - last.pss as f64).abs() <= 0.01 * last.pss as f64;
        if steady || Instant::now() > deadline {
            return Ok(now);
        }
        last = now;
    }
}

/// Browser processes of the section's servers still running after those servers exited; waits up
/// to 3 s for killed helpers to go.
fn browser_processes_left(scratches: &[Scratch]) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left: Vec<u32> = scratches
            .iter()
            .flat_map(|s| browser_tree(&s.data_dir.join("browser-profiles")))
            .filter(|pid| !is_zombie(*pid))
            .collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit_once(')')
                .is_none_or(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

fn describe_processes(pids: &[u32]) -> String {
    pids.iter()
        .map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let program = cmdline.split(|b| *b == 0).next().unwrap_or_default();
            format!("{pid} {}", String::from_utf8_lossy(program))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// Over HTTP

/// Client counts the HTTP section measures get-session at, each client one connection.
const HTTP_CLIENT_COUNTS: [usize; 3] = [1, 10, 100];

/// The HTTP mode: authenticated get-session over keep-alive connections at 1, 10 and 100 clients
/// beside a bare hyper server answering the same bytes, the memory of idle 2025-11-25 transport
/// sessions, and get-session latency while a burst of logins hashes passwords.
fn http(binary: &Path, report: &mut Report) -> anyhow::Result<()> {
    let started = Instant::now();
    let largest = HTTP_CLIENT_COUNTS[HTTP_CLIENT_COUNTS.len() - 1];
    report.section(&format!(
        "HTTP (serve --http on 127.0.0.1; stateless {STATELESS} tools/call, one personal access\n\
         token per user, each client one keep-alive HTTP/1.1 connection of its own; {} users with\n\
         cheap hashes)",
        largest
    ));
    let scratch = Scratch::new("bench-http")?;
    let users = BenchUsers::write(&scratch, largest)?;
    let args = [
        "--set".to_owned(),
        "http.allow_password_login=true".to_owned(),
        "--set".to_owned(),
        "login_rate_per_minute=1000000000".to_owned(),
        "--set".to_owned(),
        format!(
            "http.max_sessions_per_user={}",
            SIZES.http_transport_sessions.div_ceil(users.count) + 5
        ),
        "--set".to_owned(),
        format!("http.max_sessions={}", SIZES.http_transport_sessions * 2),
        "--set".to_owned(),
        "http.session_create_per_minute=1000000000".to_owned(),
        // The sweeper hands freed memory back to the system; once a second here.
        "--set".to_owned(),
        "sweep_interval=1".to_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = HttpServer::spawn(binary, &scratch, &args)?;
    let tokens_made = Instant::now();
    let tokens = (0..users.count)
        .map(|n| server.token(&scratch, &users.name(n)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let admin = server.token(&scratch, BenchUsers::ADMIN)?;
    println!(
        "  ({} tokens made with `token create` in {:.1} s)",
        tokens.len() + 1,
        tokens_made.elapsed().as_secs_f64()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the bench's async runtime")?;
    let outcome = runtime.block_on(http_figures(&server, &tokens, &admin, report));
    drop(runtime);
    outcome?;
    server.stop()?;
    println!(
        "  (HTTP section took {:.0} s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn http_figures(
    server: &HttpServer,
    tokens: &[String],
    admin: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let address = server.address;
    let get_session: Vec<Call> = tokens
        .iter()
        .map(|token| Call::stateless(address, token, "get-session", &json!({})))
        .collect();
    // Each token's first call makes its bearer's session; every figure below is of later calls.
    let mut first_answer = None;
    for call in &get_session {
        let mut connection = Connection::open(address).await?;
        let answer = connection.send(call.request()).await?;
        answer.tool_result("get-session")?;
        first_answer.get_or_insert(answer);
    }
    let first_answer = first_answer.context("no user to call get-session as")?;

    transport_session_memory(server, tokens, report).await?;

    let mut rates = Vec::with_capacity(HTTP_CLIENT_COUNTS.len());
    for clients in HTTP_CLIENT_COUNTS {
        let load = closed_loop(address, &get_session[..clients], SIZES.http_run).await?;
        let target = match clients {
            10 => Some(Target::at_most_ms(load.latencies.percentile(99.0), 10.0)),
            100 => Some(Target::at_least(load.rate(), 10_000.0, "10k calls/s")),
            _ => None,
        };
        report.row(
            &format!(
                "get-session, {clients} client{}",
                if clients == 1 { "" } else { "s" }
            ),
            load.summary(),
            target,
        );
        rates.push(load.rate());
    }

    // The reference: a bare hyper server on this machine that reads each request whole and
    // answers with the bytes get-session answered, so that the ratio is what our layers, rmcp
    // and the tool cost over HTTP itself.
    let reference = ReferenceServer::start(&first_answer)?;
    let mut reference_rates = Vec::with_capacity(HTTP_CLIENT_COUNTS.len());
    for clients in HTTP_CLIENT_COUNTS {
        let calls: Vec<Call> = get_session[..clients]
            .iter()
            .map(|call| call.to(reference.address))
            .collect();
        let load = closed_loop(reference.address, &calls, SIZES.http_run).await?;
        report.row(
            &format!("  reference: bare hyper, {clients} client(s)"),
            load.summary(),
            None,
        );
        reference_rates.push(load.rate());
    }
    drop(reference);
    let ratios: Vec<String> = HTTP_CLIENT_COUNTS
        .iter()
        .zip(rates.iter().zip(&reference_rates))
        .map(|(clients, (ours, bare))| format!("{:.2}× at {clients}", ours / bare))
        .collect();
    report.row("calls/s ÷ the bare hyper server's", ratios.join(", "), None);

    login_burst_over_http(address, &get_session, admin, report).await
}

/// RSS per idle 2025-11-25 transport session (initialize and notifications/initialized, the id
/// kept), and after every one of them is deleted again.
async fn transport_session_memory(
    server: &HttpServer,
    tokens: &[String],
    report: &mut Report,
) -> anyhow::Result<()> {
    let count = SIZES.http_transport_sessions;
    // Warm-up, so the baseline includes what the first sessions allocate once for all.
    let warm = open_transport_sessions(server.address, tokens, count / 10).await?;
    delete_transport_sessions(server.address, &warm).await?;
    // Two sweeps: the sessions' memory is handed back to the system.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let before = server.memory()?;
    let opened = Instant::now();
    let sessions = open_transport_sessions(server.address, tokens, count).await?;
    let opening = opened.elapsed();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let live = server.memory()?;
    let per_session = live.rss.saturating_sub(before.rss) as f64 / count as f64;
    report.row(
        &format!("RSS before ({} opened and deleted first)", warm.len()),
        format!("{}  ({} threads)", megabytes(before.rss), before.threads),
        None,
    );
    report.row(
        &format!(
            "RSS with {} idle transport sessions",
            thousands(count as f64)
        ),
        format!(
            "{}  ({} threads; opened in {})",
            megabytes(live.rss),
            live.threads,
            ms(opening)
        ),
        None,
    );
    report.row(
        "KiB per idle transport session",
        format!(
            "{:.2} KiB  ((RSS_{} − RSS_0) / {count})",
            per_session / 1024.0,
            short_count(count)
        ),
        Some(Target::at_most(per_session, 8.0 * 1024.0, "8 KiB")),
    );
    delete_transport_sessions(server.address, &sessions).await?;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let after = server.memory()?;
    let ratio = after.rss as f64 / before.rss as f64;
    report.row(
        "RSS after DELETE of every one",
        format!(
            "{}  ({:+.1}% of before)",
            megabytes(after.rss),
            (ratio - 1.0) * 100.0
        ),
        Some(Target::at_most(ratio, 1.10, "before + 10%")),
    );
    Ok(())
}

/// A transport session's id and the token that opened it (which every later request must carry).
struct TransportSession {
    id: String,
    authorization: http::HeaderValue,
}

/// Opens `count` transport sessions over 10 connections, the users' tokens in turn.
async fn open_transport_sessions(
    address: std::net::SocketAddr,
    tokens: &[String],
    count: usize,
) -> anyhow::Result<Vec<TransportSession>> {
    const CONNECTIONS: usize = 10;
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..CONNECTIONS {
        let mine: Vec<String> = (lane..count)
            .step_by(CONNECTIONS)
            .map(|n| tokens[n % tokens.len()].clone())
            .collect();
        tasks.spawn(async move {
            let mut connection = Connection::open(address).await?;
            let mut opened = Vec::with_capacity(mine.len());
            for token in mine {
                opened.push(connection.open_transport_session(address, &token).await?);
            }
            anyhow::Ok(opened)
        });
    }
    let mut sessions = Vec::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        sessions.extend(joined.context("a session-opening task panicked")??);
    }
    Ok(sessions)
}

async fn delete_transport_sessions(
    address: std::net::SocketAddr,
    sessions: &[TransportSession],
) -> anyhow::Result<()> {
    const CONNECTIONS: usize = 10;
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..CONNECTIONS {
        let mine: Vec<(String, http::HeaderValue)> = sessions
            .iter()
            .skip(lane)
            .step_by(CONNECTIONS)
            .map(|s| (s.id.clone(), s.authorization.clone()))
            .collect();
        tasks.spawn(async move {
            let mut connection = Connection::open(address).await?;
            for (id, authorization) in mine {
                let request = http::Request::delete("/mcp")
                    .header(http::header::HOST, address.to_string())
                    .header(http::header::AUTHORIZATION, authorization)
                    .header("mcp-session-id", &id)
                    .header("mcp-protocol-version", LEGACY)
                    .body(http_body_util::Full::new(Bytes::new()))?;
                let answer = connection.send(request).await?;
                ensure!(
                    answer.status.is_success(),
                    "DELETE of a transport session answered {}: {}",
                    answer.status,
                    answer.text()
                );
            }
            anyhow::Ok(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.context("a session-deleting task panicked")??;
    }
    Ok(())
}

/// `SIZES.burst_logins` create-session calls at once from one admin client (each on a connection
/// of its own, for users no one has: an argon2id verification at the real parameters, then
/// INVALID_CREDENTIALS), while `SIZES.http_probe_clients` other clients call get-session every
/// `SIZES.http_probe_interval`; the probes are timed for a second before the burst and during it.
async fn login_burst_over_http(
    address: std::net::SocketAddr,
    get_session: &[Call],
    admin: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    let clients = SIZES.http_probe_clients;
    report.section(&format!(
        "HTTP burst: {} create-session calls at once from one admin client (unknown users, real\n\
         argon2id parameters); {clients} other clients call get-session every {} ms",
        SIZES.burst_logins,
        SIZES.http_probe_interval.as_millis()
    ));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut probes = tokio::task::JoinSet::new();
    for call in get_session.iter().take(clients).cloned() {
        let mut stopped = stopped.clone();
        probes.spawn(async move {
            let mut connection = Connection::open(call.address).await?;
            let mut ticker = tokio::time::interval(SIZES.http_probe_interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut samples = Vec::new();
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stopped.changed() => return anyhow::Ok(samples),
                }
                let sent = Instant::now();
                connection.send(call.request()).await?.check_tool()?;
                samples.push((sent, sent.elapsed()));
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let burst_started = Instant::now();
    let mut logins = tokio::task::JoinSet::new();
    for n in 0..SIZES.burst_logins {
        let login = Call::stateless(
            address,
            admin,
            "create-session",
            &json!({"username": format!("burst{n:04}"), "password": "not-a-password"}),
        );
        logins.spawn(async move {
            let mut connection = Connection::open(address).await?;
            let answer = connection.send(login.request()).await?;
            let code = answer.tool_error_code("create-session")?;
            ensure!(
                code == "INVALID_CREDENTIALS",
                "a login of the burst answered {code}, not INVALID_CREDENTIALS"
            );
            anyhow::Ok(())
        });
    }
    while let Some(joined) = logins.join_next().await {
        joined.context("a login task panicked")??;
    }
    let burst_ended = Instant::now();
    stop.send(true)?;
    let mut quiet = Vec::new();
    let mut during = Vec::new();
    while let Some(joined) = probes.join_next().await {
        for (sent, latency) in joined.context("a probe task panicked")?? {
            if sent < burst_started {
                quiet.push(latency);
            } else if sent < burst_ended {
                during.push(latency);
            }
        }
    }
    let (quiet, during) = (Stats::of(quiet), Stats::of(during));
    report.row("get-session before the burst", p50_p99(&quiet), None);
    report.row(
        "get-session during the burst",
        format!(
            "p50 {}  p99 {}  max {}  ({} calls)",
            ms(during.median()),
            ms(during.percentile(99.0)),
            ms(during.max()),
            during.len()
        ),
        Some(Target::at_most_ms(during.percentile(99.0), 10.0)),
    );
    let duration = burst_ended.duration_since(burst_started);
    report.row(
        "the burst itself",
        format!(
            "{} logins answered in {}  ({:.0} logins/s)",
            SIZES.burst_logins,
            ms(duration),
            SIZES.burst_logins as f64 / duration.as_secs_f64()
        ),
        None,
    );
    Ok(())
}

/// The get-session calls of a closed loop and how long it ran.
struct Load {
    latencies: Stats,
    elapsed: Duration,
}

impl Load {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn summary(&self) -> String {
        format!(
            "{} calls/s  p50 {}  p99 {}",
            thousands(self.rate()),
            ms(self.latencies.median()),
            ms(self.latencies.percentile(99.0))
        )
    }
}

/// One client per call in `calls`, each on its own connection: a warm-up, then, all together,
/// one call after another for `duration`.
async fn closed_loop(
    address: std::net::SocketAddr,
    calls: &[Call],
    duration: Duration,
) -> anyhow::Result<Load> {
    const WARM_UP_CALLS: usize = 20;
    let (ready, mut readiness) = tokio::sync::mpsc::channel::<()>(calls.len());
    let (start, started) = tokio::sync::watch::channel(false);
    let mut clients = tokio::task::JoinSet::new();
    for call in calls {
        let call = call.clone();
        let ready = ready.clone();
        let mut started = started.clone();
        clients.spawn(async move {
            let mut connection = Connection::open(address).await?;
            for _ in 0..WARM_UP_CALLS {
                connection.send(call.request()).await?.check_tool()?;
            }
            let _ = ready.send(()).await;
            // The sender goes when another client failed: stop without a figure.
            started
                .wait_for(|go| *go)
                .await
                .map_err(|_| anyhow!("the load was called off"))?;
            let deadline = Instant::now() + duration;
            let mut samples = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                connection.send(call.request()).await?.check_tool()?;
                samples.push(sent.elapsed());
            }
            anyhow::Ok(samples)
        });
    }
    drop(ready);
    let mut waiting = calls.len();
    while waiting > 0 {
        tokio::select! {
            r = readiness.recv() => {
                ensure!(r.is_some(), "a client stopped before the load started");
                waiting -= 1;
            }
            Some(joined) = clients.join_next() => {
                joined.context("a client task panicked")??;
                bail!("a client finished before the load started");
            }
        }
    }
    let began = Instant::now();
    start.send(true)?;
    let mut samples = Vec::new();
    while let Some(joined) = clients.join_next().await {
        samples.extend(joined.context("a client task panicked")??);
    }
    Ok(Load {
        latencies: Stats::of(samples),
        elapsed: began.elapsed(),
    })
}

const LEGACY: &str = "2025-11-25";
const STATELESS: &str = "2026-07-28";

/// A POST to /mcp made once and sent many times: headers (the bearer's included) and body.
#[derive(Clone)]
struct Call {
    address: std::net::SocketAddr,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Call {
    /// A stateless (2026-07-28) tools/call, as such a client sends it: the version in a header
    /// and in `_meta`, the method and tool name in the SEP-2243 headers rmcp checks.
    fn stateless(
        address: std::net::SocketAddr,
        token: &str,
        tool: &str,
        arguments: &Value,
    ) -> Self {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": tool,
            "arguments": arguments,
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": STATELESS,
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        }});
        let mut headers = Self::base_headers(address, token);
        for (name, value) in [
            ("mcp-protocol-version", STATELESS),
            ("mcp-method", "tools/call"),
            ("mcp-name", tool),
        ] {
            if let Ok(value) = http::HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        }
        Self {
            address,
            headers,
            body: body.to_string().into(),
        }
    }

    fn base_headers(address: std::net::SocketAddr, token: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        let values = [
            (http::header::HOST, address.to_string()),
            (http::header::AUTHORIZATION, format!("Bearer {token}")),
            (http::header::CONTENT_TYPE, "application/json".to_owned()),
            (
                http::header::ACCEPT,
                "application/json, text/event-stream".to_owned(),
            ),
        ];
        for (name, value) in values {
            if let Ok(value) = http::HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        headers
    }

    /// The same call sent to another server.
    fn to(&self, address: std::net::SocketAddr) -> Self {
        let mut headers = self.headers.clone();
        if let Ok(host) = http::HeaderValue::from_str(&address.to_string()) {
            headers.insert(http::header::HOST, host);
        }
        Self {
            address,
            headers,
            body: self.body.clone(),
        }
    }

    fn request(&self) -> http::Request<http_body_util::Full<Bytes>> {
        let mut request = http::Request::new(http_body_util::Full::new(self.body.clone()));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = http::Uri::from_static("/mcp");
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// An HTTP answer read whole.
struct Answer {
    status: http::StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn text(&self) -> String {
        shorten(&String::from_utf8_lossy(&self.body))
    }

    /// Cheap enough for every call of a load: a 200 carrying a tool's structured result.
    fn check_tool(&self) -> anyhow::Result<()> {
        let body: &[u8] = &self.body;
        let holds = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
        ensure!(
            self.status == http::StatusCode::OK
                && holds(b"\"structuredContent\"")
                && !holds(b"\"isError\":true"),
            "a call answered {}: {}",
            self.status,
            self.text()
        );
        Ok(())
    }

    /// The JSON-RPC message of the body, which is JSON or SSE (`data:` lines).
    fn message(&self) -> anyhow::Result<Value> {
        ensure!(
            self.status == http::StatusCode::OK,
            "answered {}: {}",
            self.status,
            self.text()
        );
        let text = std::str::from_utf8(&self.body).context("an answer that is not UTF-8")?;
        if let Ok(value) = serde_json::from_str(text) {
            return Ok(value);
        }
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .find_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .with_context(|| format!("no JSON-RPC message in {}", self.text()))
    }

    fn tool_result(&self, tool: &str) -> anyhow::Result<Value> {
        tool_result(tool, &self.message()?)
    }

    /// The `code` of a tool error; a success is a bench failure.
    fn tool_error_code(&self, tool: &str) -> anyhow::Result<String> {
        let reply = self.message()?;
        ensure!(
            reply["result"]["isError"] == true,
            "{tool} succeeded where it should fail: {reply}"
        );
        let body: Value = reply["result"]["content"][0]["text"]
            .as_str()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default();
        Ok(body["code"].as_str().unwrap_or_default().to_owned())
    }
}

/// One keep-alive HTTP/1.1 connection, as one remote client holds it. Its driver task ends when
/// the connection is dropped (or the server closes it).
struct Connection {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<Bytes>>,
}

impl Connection {
    async fn open(address: std::net::SocketAddr) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .with_context(|| format!("cannot connect to {address}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self { sender })
    }

    async fn send(
        &mut self,
        request: http::Request<http_body_util::Full<Bytes>>,
    ) -> anyhow::Result<Answer> {
        use http_body_util::BodyExt as _;
        self.sender.ready().await?;
        let (parts, body) = self.sender.send_request(request).await?.into_parts();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await?.to_bytes(),
        })
    }

    /// A 2025-11-25 handshake on this connection: initialize, then notifications/initialized in
    /// the session it opened.
    async fn open_transport_session(
        &mut self,
        address: std::net::SocketAddr,
        token: &str,
    ) -> anyhow::Result<TransportSession> {
        let headers = Call::base_headers(address, token);
        let initialize = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": LEGACY, "capabilities": {},
            "clientInfo": {"name": "mcp-sessions-bench", "version": env!("CARGO_PKG_VERSION")}}});
        let mut request = http::Request::post("/mcp")
            .body(http_body_util::Full::new(initialize.to_string().into()))?;
        *request.headers_mut() = headers.clone();
        let answer = self.send(request).await?;
        let result = answer.message()?;
        ensure!(
            result["result"]["serverInfo"]["name"] == "mcp-sessions",
            "initialize answered {result}"
        );
        let id = answer
            .headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .context("initialize answered no Mcp-Session-Id")?
            .to_owned();
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let mut request = http::Request::post("/mcp")
            .body(http_body_util::Full::new(initialized.to_string().into()))?;
        *request.headers_mut() = headers.clone();
        request
            .headers_mut()
            .insert("mcp-session-id", http::HeaderValue::from_str(&id)?);
        request.headers_mut().insert(
            "mcp-protocol-version",
            http::HeaderValue::from_static(LEGACY),
        );
        let done = self.send(request).await?;
        ensure!(
            done.status == http::StatusCode::ACCEPTED,
            "notifications/initialized answered {}: {}",
            done.status,
            done.text()
        );
        let authorization = headers
            .get(http::header::AUTHORIZATION)
            .cloned()
            .context("no Authorization header made")?;
        Ok(TransportSession { id, authorization })
    }
}

/// A bare hyper HTTP/1.1 server on 127.0.0.1, on a runtime of its own sized like the server's,
/// that reads each request whole and answers with fixed bytes. Stops when dropped.
struct ReferenceServer {
    address: std::net::SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl ReferenceServer {
    fn start(answer: &Answer) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the reference server's runtime")?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .context("cannot listen on 127.0.0.1 for the reference server")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let body = answer.body.clone();
        let content_type = answer
            .headers
            .get(http::header::CONTENT_TYPE)
            .cloned()
            .unwrap_or_else(|| http::HeaderValue::from_static("application/json"));
        runtime.spawn(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                return;
            };
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let (body, content_type) = (body.clone(), content_type.clone());
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let (body, content_type) = (body.clone(), content_type.clone());
                        async move {
                            use http_body_util::BodyExt as _;
                            request.into_body().collect().await?;
                            let mut response = http::Response::new(http_body_util::Full::new(body));
                            response
                                .headers_mut()
                                .insert(http::header::CONTENT_TYPE, content_type);
                            Ok::<_, hyper::Error>(response)
                        }
                    },
                );
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        Ok(Self {
            address,
            runtime: Some(runtime),
        })
    }
}

impl Drop for ReferenceServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// `mcp-sessions serve --http 127.0.0.1:0` as a child process; stopped with SIGTERM.
struct HttpServer {
    child: Child,
    address: std::net::SocketAddr,
}

impl HttpServer {
    fn spawn(binary: &Path, scratch: &Scratch, args: &[&str]) -> anyhow::Result<Self> {
        let mut command = common::server_command(binary, scratch, args);
        command
            .args(["serve", "--http", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().context("cannot start the HTTP server")?;
        let stderr = child.stderr.take().context("no stderr pipe")?;
        let mut log = scratch.stderr_sink()?;
        let (said, listening) = mpsc::channel();
        // Copies the server's stderr to its log; ends when the server exits.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some((_, url)) = line.split_once("serving MCP over HTTP at ") {
                    let _ = said.send(url.trim().to_owned());
                }
                let _ = writeln!(log, "{line}");
            }
        });
        let mut server = Self {
            child,
            address: ([127, 0, 0, 1], 0).into(),
        };
        let url = listening
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| {
                anyhow!(
                    "the HTTP server never said where it listens; its stderr:\n{}",
                    common::stderr_tail(&scratch.stderr_file())
                )
            })?;
        server.address = url
            .strip_prefix("http://")
            .and_then(|rest| rest.strip_suffix("/mcp"))
            .and_then(|address| address.parse().ok())
            .with_context(|| {
                format!("the server listens at {url}, not http://127.0.0.1:PORT/mcp")
            })?;
        Ok(server)
    }

    /// A personal access token of `user`, made with the operator command beside the server.
    fn token(&self, scratch: &Scratch, user: &str) -> anyhow::Result<String> {
        let binary = std::fs::read_link(format!("/proc/{}/exe", self.child.id()))
            .context("cannot find the server's binary")?;
        let out = common::server_command(&binary, scratch, &["token", "create", user])
            .stdin(Stdio::null())
            .output()
            .context("cannot run token create")?;
        ensure!(
            out.status.success(),
            "token create {user} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    }

    fn memory(&self) -> anyhow::Result<Memory> {
        process_memory(self.child.id())
    }

    /// SIGTERM, as a service manager stops it, and a clean exit.
    fn stop(mut self) -> anyhow::Result<()> {
        // SAFETY: kill only sends a signal, to our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait()? {
                ensure!(status.success(), "the HTTP server exited with {status}");
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "the HTTP server did not exit within 15 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The server under measurement and a bare line client for it

/// A running server and the client end of its stdio.
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
    stderr: std::path::PathBuf,
    /// The `serverInfo.name` initialize must answer: `mcp-sessions`, or `echo` for the reference.
    name: &'static str,
}

/// The replies of a pipelined batch and how long the batch took.
struct Batch {
    replies: Vec<String>,
    elapsed: Duration,
}

impl Batch {
    fn expect_no_errors(&self, tool: &str) -> anyhow::Result<()> {
        for line in &self.replies {
            let reply: Value = serde_json::from_str(line).context("a reply is not JSON")?;
            tool_result(tool, &reply)?;
        }
        Ok(())
    }
}

/// Replies seen so far during a login burst.
struct BurstTally {
    first_probe_id: u64,
    /// Probe id → when its reply arrived.
    probes: HashMap<u64, Instant>,
    logins: usize,
    last_login: Instant,
}

struct Burst {
    probe_latencies: Vec<Duration>,
    duration: Duration,
}

struct Memory {
    rss: u64,
    peak: u64,
    threads: u64,
}

impl Server {
    fn spawn(binary: &Path, scratch: &Scratch, args: &[&str]) -> anyhow::Result<Self> {
        Self::spawn_named(binary, scratch, args, "mcp-sessions")
    }

    /// The bare rmcp echo server (examples/echo.rs), spoken to with the same client.
    fn spawn_echo(scratch: &Scratch) -> anyhow::Result<Self> {
        Self::spawn_named(echo_binary()?, scratch, &[], "echo")
    }

    fn spawn_named(
        binary: &Path,
        scratch: &Scratch,
        args: &[&str],
        name: &'static str,
    ) -> anyhow::Result<Self> {
        let mut command = common::server_command(binary, scratch, args);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(scratch.stderr_sink()?);
        let mut child = command.spawn().context("cannot start the server")?;
        let stdin = child.stdin.take().context("no stdin pipe")?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        Ok(Self {
            child,
            stdin: Some(stdin),
            stdout: BufReader::with_capacity(256 * 1024, stdout),
            next_id: 1,
            stderr: scratch.stderr_file(),
            name,
        })
    }

    fn stdin(&mut self) -> anyhow::Result<&mut ChildStdin> {
        self.stdin.as_mut().context("stdin is closed")
    }

    fn request(&mut self, method: &str, params: &Value) -> Vec<u8> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = serde_json::to_vec(
            &json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        )
        .unwrap_or_default();
        line.push(b'\n');
        line
    }

    fn tool_request(&mut self, tool: &str, arguments: &Value) -> Vec<u8> {
        self.request("tools/call", &json!({"name": tool, "arguments": arguments}))
    }

    fn read_line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!(
                "the server closed stdout; its stderr:\n{}",
                common::stderr_tail(&self.stderr)
            );
        }
        Ok(line)
    }

    /// Sends one request and returns its reply line as the server wrote it.
    fn reply_line(&mut self, method: &str, params: &Value) -> anyhow::Result<String> {
        let line = self.request(method, params);
        let stdin = self.stdin()?;
        stdin.write_all(&line)?;
        stdin.flush()?;
        // Notifications the server sends meanwhile (it sends none unless asked) are skipped.
        loop {
            let line = self.read_line()?;
            let message: Value = serde_json::from_str(&line)?;
            if message.get("id").is_some() {
                return Ok(line);
            }
        }
    }

    /// Sends one request and waits for its reply's `result`.
    fn call(&mut self, method: &str, params: &Value) -> anyhow::Result<Value> {
        let reply: Value = serde_json::from_str(&self.reply_line(method, params)?)?;
        if let Some(error) = reply.get("error") {
            bail!("{method} answered a JSON-RPC error: {error}");
        }
        reply
            .get("result")
            .cloned()
            .with_context(|| format!("{method}: a reply without result: {reply}"))
    }

    /// Calls a tool and returns its `structuredContent`; a tool error is a bench failure.
    fn tool(&mut self, tool: &str, arguments: Value) -> anyhow::Result<Value> {
        let result = self.call("tools/call", &json!({"name": tool, "arguments": arguments}))?;
        tool_result(tool, &json!({"result": result}))
    }

    fn initialize(&mut self) -> anyhow::Result<()> {
        let result = self.call(
            "initialize",
            &json!({
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "mcp-sessions-bench", "version": env!("CARGO_PKG_VERSION")},
            }),
        )?;
        ensure!(
            result["serverInfo"]["name"] == self.name,
            "initialize answered {result}"
        );
        let stdin = self.stdin()?;
        stdin.write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n")?;
        stdin.flush()?;
        Ok(())
    }

    /// Writes `requests` while reading their replies, with at most `window` unanswered.
    fn pipeline(&mut self, requests: &[Vec<u8>], window: usize) -> anyhow::Result<Batch> {
        let mut stdin = self.stdin.take().context("stdin is closed")?;
        let (credit, credits) = mpsc::channel::<()>();
        let started = Instant::now();
        let outcome = std::thread::scope(|scope| {
            let writer = scope.spawn(move || -> std::io::Result<ChildStdin> {
                let mut out = std::io::BufWriter::with_capacity(64 * 1024, &mut stdin);
                for (sent, line) in requests.iter().enumerate() {
                    if sent >= window && credits.try_recv().is_err() {
                        out.flush()?;
                        if credits.recv().is_err() {
                            break;
                        }
                    }
                    out.write_all(line)?;
                }
                out.flush()?;
                drop(out);
                Ok(stdin)
            });
            let mut replies = Vec::with_capacity(requests.len());
            let mut failure = None;
            while replies.len() < requests.len() {
                match self.read_line() {
                    Ok(line) => {
                        replies.push(line);
                        let _ = credit.send(());
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            let elapsed = started.elapsed();
            drop(credit);
            let stdin = writer
                .join()
                .map_err(|_| anyhow!("the writer thread panicked"))??;
            match failure {
                Some(e) => Err(e),
                None => Ok((stdin, Batch { replies, elapsed })),
            }
        });
        let (stdin, batch) = outcome?;
        self.stdin = Some(stdin);
        Ok(batch)
    }

    /// Sends `SIZES.burst_logins` logins at once, then a get-session probe every
    /// `SIZES.probe_interval` until the last login is answered; times the probes only.
    ///
    /// Each login names a different user no one has: the server verifies it against its dummy
    /// hash, an argon2id verification at the real parameters like any other, and answers
    /// INVALID_CREDENTIALS. (Logins of one username are checked a few at a time, so a burst for
    /// one user would mostly answer RATE_LIMITED and hash little.)
    fn login_burst(&mut self, get_session: &Value) -> anyhow::Result<Burst> {
        let logins: Vec<Vec<u8>> = (0..SIZES.burst_logins)
            .map(|n| {
                self.tool_request(
                    "create-session",
                    &json!({"username": format!("burst{n:04}"), "password": "not-a-password"}),
                )
            })
            .collect();
        let first_probe_id = self.next_id;
        // More probes than the burst can use; the writer stops when the burst is over.
        let probes: Vec<Vec<u8>> = (0..20_000)
            .map(|_| self.tool_request("get-session", get_session))
            .collect();
        let mut stdin = self.stdin.take().context("stdin is closed")?;
        let over = AtomicBool::new(false);
        let started = Instant::now();
        let outcome = std::thread::scope(|scope| {
            let (logins, probes, over_flag) = (&logins, &probes, &over);
            let writer = scope.spawn(move || -> std::io::Result<(ChildStdin, Vec<Instant>)> {
                for line in logins {
                    stdin.write_all(line)?;
                }
                stdin.flush()?;
                let mut sent = Vec::new();
                for line in probes {
                    if over_flag.load(Ordering::Acquire) {
                        break;
                    }
                    sent.push(Instant::now());
                    stdin.write_all(line)?;
                    stdin.flush()?;
                    std::thread::sleep(SIZES.probe_interval);
                }
                Ok((stdin, sent))
            });
            let mut tally = BurstTally {
                first_probe_id,
                probes: HashMap::new(),
                logins: 0,
                last_login: started,
            };
            let mut failure = None;
            while tally.logins < SIZES.burst_logins {
                if let Err(e) = self.read_burst_reply(&mut tally) {
                    failure = Some(e);
                    break;
                }
            }
            over.store(true, Ordering::Release);
            let joined = writer
                .join()
                .map_err(|_| anyhow!("the writer thread panicked"))?;
            if let Some(e) = failure {
                return Err(e);
            }
            let (stdin, sent) = joined?;
            while tally.probes.len() < sent.len() {
                self.read_burst_reply(&mut tally)?;
            }
            let latencies = sent
                .iter()
                .enumerate()
                .map(|(i, at)| {
                    tally
                        .probes
                        .get(&(first_probe_id + i as u64))
                        .map(|got| got.duration_since(*at))
                        .context("a probe was not answered")
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok((
                stdin,
                Burst {
                    probe_latencies: latencies,
                    duration: tally.last_login.duration_since(started),
                },
            ))
        });
        let (stdin, burst) = outcome?;
        self.stdin = Some(stdin);
        Ok(burst)
    }

    /// Reads one reply of the burst and notes when it arrived.
    fn read_burst_reply(&mut self, tally: &mut BurstTally) -> anyhow::Result<()> {
        let line = self.read_line()?;
        let now = Instant::now();
        let reply: Value = serde_json::from_str(&line)?;
        let id = reply["id"].as_u64().context("a reply without id")?;
        if id >= tally.first_probe_id {
            tool_result("get-session", &reply)?;
            tally.probes.insert(id, now);
        } else {
            let body: Value = reply["result"]["content"][0]["text"]
                .as_str()
                .and_then(|text| serde_json::from_str(text).ok())
                .unwrap_or_default();
            if body["code"] != "INVALID_CREDENTIALS" {
                bail!("a login of the burst answered {reply}, not INVALID_CREDENTIALS");
            }
            tally.logins += 1;
            tally.last_login = now;
        }
        Ok(())
    }

    /// Creates sessions number `from..to`, spread round-robin over the bench users; returns how
    /// long it took.
    fn fill_sessions(
        &mut self,
        users: &BenchUsers,
        from: usize,
        to: usize,
    ) -> anyhow::Result<Duration> {
        let requests: Vec<Vec<u8>> = (from..to)
            .map(|n| {
                let username = users.name(n % users.count);
                let arguments = json!({"username": username, "password": BenchUsers::PASSWORD});
                self.tool_request("create-session", &arguments)
            })
            .collect();
        let batch = self.pipeline(&requests, FILL_WINDOW)?;
        batch.expect_no_errors("create-session")?;
        Ok(batch.elapsed)
    }

    /// Creates sessions `from..to` (users in turn), then deletes them all; returns the RSS
    /// while they were all live.
    fn churn_round(&mut self, users: &BenchUsers, from: usize, to: usize) -> anyhow::Result<u64> {
        let requests: Vec<Vec<u8>> = (from..to)
            .map(|n| {
                let username = users.name(n % users.count);
                let arguments = json!({"username": username, "password": BenchUsers::PASSWORD});
                self.tool_request("create-session", &arguments)
            })
            .collect();
        let created = self.pipeline(&requests, FILL_WINDOW)?;
        let mut ids = Vec::with_capacity(created.replies.len());
        for line in &created.replies {
            let reply: Value = serde_json::from_str(line).context("a reply is not JSON")?;
            let session = tool_result("create-session", &reply)?;
            ids.push(
                session["sessionId"]
                    .as_str()
                    .context("create-session returned no sessionId")?
                    .to_owned(),
            );
        }
        let live = self.memory()?.rss;
        let requests: Vec<Vec<u8>> = ids
            .iter()
            .map(|id| self.tool_request("delete-session", &json!({"sessionId": id})))
            .collect();
        self.pipeline(&requests, FILL_WINDOW)?
            .expect_no_errors("delete-session")?;
        Ok(live)
    }

    fn memory(&self) -> anyhow::Result<Memory> {
        process_memory(self.child.id())
    }

    /// Closes stdin, as a host does, and waits for a clean exit.
    fn close(mut self) -> anyhow::Result<()> {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait()? {
                ensure!(status.success(), "the server exited with {status}");
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("the server did not exit within 10 s of stdin closing");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// VmRSS and VmHWM of process `pid`, in bytes, and its thread count.
fn process_memory(pid: u32) -> anyhow::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .context("cannot read /proc/<pid>/status (the memory figures need Linux)")?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name} in /proc/<pid>/status"))?;
        line.split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("cannot parse {line}"))
    };
    Ok(Memory {
        rss: field("VmRSS:")? * 1024,
        peak: field("VmHWM:")? * 1024,
        threads: field("Threads:")?,
    })
}

/// The bare rmcp echo server, built (once per run) beside this example.
fn echo_binary() -> anyhow::Result<&'static Path> {
    static ECHO: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    if let Some(path) = ECHO.get() {
        return Ok(path);
    }
    let binary = common::profile_dir()?
        .join("examples")
        .join(format!("echo{}", std::env::consts::EXE_SUFFIX));
    let built = common::cargo_build(&["--example", "echo"], binary)?;
    Ok(ECHO.get_or_init(|| built))
}

/// The `structuredContent` of a tools/call reply; an error reply becomes an error naming its code.
fn tool_result(tool: &str, reply: &Value) -> anyhow::Result<Value> {
    tool_outcome(tool, reply)?
        .get("structuredContent")
        .cloned()
        .with_context(|| format!("{tool}: a reply without structuredContent"))
}

/// The `result` of a tools/call reply; a JSON-RPC error or a tool error becomes an error.
fn tool_outcome<'a>(tool: &str, reply: &'a Value) -> anyhow::Result<&'a Value> {
    if let Some(error) = reply.get("error") {
        bail!("{tool} answered a JSON-RPC error: {error}");
    }
    let result = &reply["result"];
    if result["isError"] == true {
        let text = result["content"][0]["text"].as_str().unwrap_or_default();
        bail!("{tool} failed: {text}");
    }
    Ok(result)
}

// ---------------------------------------------------------------------------------------------
// Users with cheap hashes

/// `users.toml` with `count` users `bench0000…` plus one user `lister` and one admin, all with the same password
/// hashed with deliberately cheap argon2id parameters.
struct BenchUsers {
    count: usize,
}

impl BenchUsers {
    const PASSWORD: &str = "bench-password-not-secret";
    const LISTER: &str = "lister";
    /// An admin, whose HTTP bearer may log in any username (the HTTP login burst).
    const ADMIN: &str = "bench-admin";

    fn name(&self, n: usize) -> String {
        format!("bench{n:04}")
    }

    fn write(scratch: &Scratch, count: usize) -> anyhow::Result<Self> {
        let params = Params::new(8, 1, 1, None).map_err(|e| anyhow!("argon2 params: {e}"))?;
        let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let users = Self { count };
        let mut text = String::new();
        let names = (0..count)
            .map(|n| users.name(n))
            .chain([Self::LISTER.to_owned(), Self::ADMIN.to_owned()]);
        for name in names {
            let role = if name == Self::ADMIN { "admin" } else { "user" };
            let hash = hasher
                .hash_password(Self::PASSWORD.as_bytes())
                .map_err(|e| anyhow!("hashing: {e}"))?;
            let id = uuid::Uuid::new_v4();
            writeln!(text, "[[users]]")?;
            writeln!(text, "id = \"{id}\"")?;
            writeln!(text, "username = \"{name}\"")?;
            writeln!(text, "roles = [\"{role}\"]")?;
            writeln!(text, "password_hash = \"{hash}\"\n")?;
        }
        std::fs::write(scratch.config_dir.join("users.toml"), text)
            .context("cannot write users.toml")?;
        Ok(users)
    }
}

// ---------------------------------------------------------------------------------------------
// Figures

struct Stats {
    sorted: Vec<Duration>,
}

impl Stats {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        Self { sorted: samples }
    }

    /// Runs `call` `n` times (with the run's number, from 1) and times each run.
    fn timed(n: usize, mut call: impl FnMut(usize) -> anyhow::Result<()>) -> anyhow::Result<Self> {
        let mut samples = Vec::with_capacity(n);
        for run in 1..=n {
            let sent = Instant::now();
            call(run)?;
            samples.push(sent.elapsed());
        }
        Ok(Self::of(samples))
    }

    fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Nearest-rank percentile.
    fn percentile(&self, p: f64) -> Duration {
        if self.sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.sorted.len() as f64).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1]
    }

    fn median(&self) -> Duration {
        self.percentile(50.0)
    }

    fn max(&self) -> Duration {
        self.sorted.last().copied().unwrap_or_default()
    }
}

/// A target and whether the figure meets it.
struct Target {
    text: String,
    met: bool,
}

impl Target {
    fn at_most(value: f64, limit: f64, text: &str) -> Self {
        Self {
            text: format!("≤ {text}"),
            met: value <= limit,
        }
    }

    fn at_least(value: f64, limit: f64, text: &str) -> Self {
        Self {
            text: format!("≥ {text}"),
            met: value >= limit,
        }
    }

    fn at_most_ms(value: Duration, limit_ms: f64) -> Self {
        Self::at_most(
            value.as_secs_f64() * 1000.0,
            limit_ms,
            &format!("{limit_ms} ms"),
        )
    }
}

/// The figures, printed as they come and summarised against their targets at the end.
#[derive(Default)]
struct Report {
    targets: Vec<(String, String, Target)>,
}

impl Report {
    fn section(&mut self, title: &str) {
        println!("\n{title}");
        println!(
            "  {:<46} {:<52} {:<18} verdict",
            "measure", "result", "target"
        );
    }

    fn row(&mut self, measure: &str, result: String, target: Option<Target>) {
        let (target_text, verdict) = match &target {
            Some(t) => (t.text.clone(), if t.met { "met" } else { "NOT MET" }),
            None => ("—".to_owned(), ""),
        };
        println!("  {measure:<46} {result:<52} {target_text:<18} {verdict}");
        if let Some(target) = target {
            self.targets.push((measure.to_owned(), result, target));
        }
    }

    fn summary(&self) {
        let met = self.targets.iter().filter(|(_, _, t)| t.met).count();
        println!("\nTargets: {met} of {} met", self.targets.len());
        for (measure, result, target) in &self.targets {
            println!(
                "  {:<8} {measure}: {result} (target {})",
                if target.met { "met" } else { "NOT MET" },
                target.text
            );
        }
    }
}

/// The 1-minute load average (Linux).
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn ms(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn thousands(value: f64) -> String {
    let rounded = value.round() as u64;
    let digits = rounded.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn short_count(n: usize) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else if n >= 1000 {
        format!("{:.1}k", n as f64 / 1000.0)
    } else {
        n.to_string()
    }
}
