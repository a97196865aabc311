//! Clients we did not write: the official MCP Python SDK drives the demo flow (sessions, and the
//! browser when Chromium is installed) against the built binary. Skipped, loudly, when python3 or
//! its `mcp` package is missing (`.ci/run` installs it).

#[allow(unused_macros)]
mod browser_support;
mod common;

use std::process::Command;

fn python_sdk_available() -> bool {
    Command::new("python3")
        .args(["-c", "import mcp.client.stdio"])
        .output()
        .is_ok_and(|out| out.status.success())
}

#[test]
fn the_official_python_sdk_completes_the_demo_flow() {
    if !python_sdk_available() {
        let why = "no python3 with the `mcp` package (pip install mcp==2.3.0)";
        assert!(!common::in_ci(), "CI=true but {why}: .ci/run installs it");
        common::skip_loudly("the_official_python_sdk_completes_the_demo_flow", why);
        return;
    }
    let site = browser_support::TestSite::start();
    let mut command = Command::new("python3");
    command
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/python_sdk_flow.py"
        ))
        .arg(common::BIN);
    if browser_support::chromium_present(
        "the_official_python_sdk_completes_the_demo_flow (browser part)",
    ) {
        command.arg(site.url("/"));
    }
    let out = command.output().expect("run python3");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the Python SDK flow failed:\n{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("python sdk flow: ok"), "{said}");
}
