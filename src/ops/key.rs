//! `mcp-sessions key rotate`: a new JWT signing key, which a running server picks up.

use std::io::Write;

use clap::Subcommand;

use crate::config::Paths;

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Replace jwt.key with a new random key. A running server signs with it within a second and
    /// keeps accepting tokens of the old key for `jwt_key_grace` seconds.
    #[command(
        after_help = "Examples:\n  mcp-sessions key rotate\n  mcp-sessions --data-dir /srv/mcp/data key rotate"
    )]
    Rotate,
}

/// Runs `key rotate`.
pub fn run_key_command(command: KeyCommand, paths: &Paths) -> anyhow::Result<()> {
    let KeyCommand::Rotate = command;
    let file = paths.key_file();
    let mut bytes = vec![0u8; crate::auth::tokens::MIN_KEY_BYTES];
    crate::auth::secret::fill_random(&mut bytes)
        .map_err(|e| anyhow::anyhow!("random generator: {e}"))?;
    crate::files::ensure_private_dir(&paths.data_dir)?;
    let tmp = file.with_extension("key.tmp");
    crate::files::write_private(&tmp, &bytes)?;
    std::fs::rename(&tmp, &file)?;
    let kid = crate::auth::tokens::key_id(&crate::auth::secret::SecretBytes::new(bytes));
    writeln!(
        std::io::stdout().lock(),
        "rotated {}: new kid {kid}",
        file.display()
    )?;
    Ok(())
}
