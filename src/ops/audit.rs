//! `mcp-sessions audit verify|tail`: the command line over `crate::audit`.

use std::io::Write;
use std::path::PathBuf;

use clap::Subcommand;

use crate::config::Paths;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit log's hash chain; names the first line altered, removed or inserted.
    /// Exit status 0 when the chain holds, 1 when it breaks.
    #[command(
        after_help = "Examples:\n  mcp-sessions audit verify\n  mcp-sessions audit verify ~/.local/share/mcp-sessions/audit.log.1"
    )]
    Verify {
        /// The file (default: <data_dir>/audit.log). Needs the audit.key of the server that wrote it.
        file: Option<PathBuf>,
    },
    /// Print the last audit events readably, one line each: time, event, outcome, user, tool,
    /// short session hash, detail. With --follow, keep printing new ones (Ctrl-C stops).
    #[command(
        after_help = "Examples:\n  mcp-sessions audit tail\n  mcp-sessions audit tail -n 100 --user alice\n  \
                      mcp-sessions audit tail --event login.failure --follow\n  \
                      mcp-sessions audit tail --event session   (every session.* event)"
    )]
    Tail {
        /// How many events to print (the last ones that match).
        #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 20)]
        lines: usize,
        /// Keep printing events as they are appended (polls the file; follows rotations).
        #[arg(short, long)]
        follow: bool,
        /// Only events of this username or user id.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// Only this event (login.failure) or family (login).
        #[arg(long, value_name = "KIND")]
        event: Option<String>,
        /// The file (default: <data_dir>/audit.log).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

/// Runs an `audit` subcommand; `Ok(false)` when `verify` finds the chain broken.
pub fn run_audit_command(command: AuditCommand, paths: &Paths) -> anyhow::Result<bool> {
    let file = match command {
        AuditCommand::Verify { file } => file,
        AuditCommand::Tail {
            lines,
            follow,
            user,
            event,
            file,
        } => {
            let file = file.unwrap_or_else(|| paths.audit_file());
            let filter = crate::audit::tail::Filter { user, event };
            crate::audit::tail::run(&file, lines, follow, &filter, &mut std::io::stdout().lock())?;
            return Ok(true);
        }
    };
    let file = file.unwrap_or_else(|| paths.audit_file());
    if !paths.audit_key_file().exists() {
        anyhow::bail!(
            "no audit key: {} does not exist",
            paths.audit_key_file().display()
        );
    }
    let key = crate::auth::tokens::load_signing_key(None, &paths.audit_key_file())?;
    let mut out = std::io::stdout().lock();
    match crate::audit::verify(&file, &key)? {
        crate::audit::Verdict::Intact { lines } => {
            writeln!(
                out,
                "ok: {} — {lines} lines, the chain holds",
                file.display()
            )?;
            Ok(true)
        }
        crate::audit::Verdict::Broken { line, reason } => {
            writeln!(out, "BROKEN: {} line {line}: {reason}", file.display())?;
            Ok(false)
        }
    }
}
