//! A bare rmcp stdio server with one tool, `echo`, built from this crate's lockfile: the reference
//! the bench measures mcp-sessions against (cold start, pipelined calls), so that its ratios say
//! what mcp-sessions adds to what rmcp itself costs on the same machine.
//!
//! `cargo run --release --example echo` speaks newline-delimited JSON-RPC on stdin and stdout,
//! through the same `stdio_pipes` transport and the same kind of runtime as the server.

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::{ServerHandler, ServiceExt, tool, tool_handler, tool_router};

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    /// The text to send back.
    text: String,
}

/// The answer, as structured content: the shape of mcp-sessions' answers (structuredContent and
/// the same JSON as text), so that a pipelined echo and a pipelined get-session do alike work.
#[derive(serde::Serialize, schemars::JsonSchema)]
struct Echoed {
    text: String,
}

#[derive(Clone)]
struct Echo {
    /// Built once: the default `Self::tool_router()` would rebuild it (schemas included) per call.
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Echo {
    #[tool(description = "Answers with the text it was given.")]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> Json<Echoed> {
        Json(Echoed { text: args.text })
    }
}

#[tool_handler(router = self.tool_router, name = "echo")]
impl ServerHandler for Echo {}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let server = Echo {
            tool_router: Echo::tool_router(),
        };
        let running = server.serve(rmcp::transport::stdio_pipes()).await?;
        running.waiting().await?;
        anyhow::Ok(())
    })
}
