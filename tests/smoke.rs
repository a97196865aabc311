//! The harness itself: a server starts, lists its tools and exits cleanly when stdin closes.

mod common;

use common::{Server, Setup};
use serde_json::json;

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
