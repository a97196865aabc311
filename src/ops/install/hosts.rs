//! The hosts `install` knows: where each keeps its user-level MCP servers, how it names them and
//! how a remote entry refers to an environment variable.

use std::path::{Path, PathBuf};

use super::InstallError;

/// A desktop host that launches MCP servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Host {
    ClaudeDesktop,
    ClaudeCode,
    Cursor,
    Vscode,
}

impl Host {
    pub fn display_name(self) -> &'static str {
        match self {
            Self::ClaudeDesktop => "Claude Desktop",
            Self::ClaudeCode => "Claude Code",
            Self::Cursor => "Cursor",
            Self::Vscode => "VS Code",
        }
    }

    /// The key under which the host's file lists its servers.
    pub fn servers_key(self) -> &'static str {
        match self {
            Self::Vscode => "servers",
            Self::ClaudeDesktop | Self::ClaudeCode | Self::Cursor => "mcpServers",
        }
    }

    /// Whether the host's entries name their transport (`"type": "stdio"`).
    pub(super) fn names_transport(self) -> bool {
        matches!(self, Self::Vscode | Self::ClaudeCode)
    }

    /// How the host's file refers to the environment variable `name` in a remote server's
    /// headers (the host substitutes its value when it connects); the error says why the host's
    /// file cannot hold a remote server and what to do instead.
    pub(super) fn env_reference(self, name: &str) -> Result<String, &'static str> {
        match self {
            Self::ClaudeCode => Ok(format!("${{{name}}}")),
            Self::Cursor | Self::Vscode => Ok(format!("${{env:{name}}}")),
            Self::ClaudeDesktop => Err(
                "it adds remote servers as connectors in its settings (Settings > Connectors > Add custom connector, then the URL), which sign in with OAuth rather than with a token from the environment. Or register the local server with `mcp-sessions install claude-desktop` (without --url)",
            ),
        }
    }

    /// The file holding the host's user-level MCP servers, given the home directory and the
    /// platform's per-user configuration directory (`$XDG_CONFIG_HOME` or `~/.config` on Linux,
    /// `~/Library/Application Support` on macOS, `%APPDATA%` on Windows).
    pub fn config_file_in(self, home: &Path, config_dir: &Path) -> PathBuf {
        match self {
            Self::ClaudeDesktop => config_dir.join("Claude").join("claude_desktop_config.json"),
            Self::ClaudeCode => home.join(".claude.json"),
            Self::Cursor => home.join(".cursor").join("mcp.json"),
            Self::Vscode => config_dir.join("Code").join("User").join("mcp.json"),
        }
    }

    /// [`Host::config_file_in`] for the current user on this platform.
    pub fn default_config_file(self) -> Result<PathBuf, InstallError> {
        let dirs = directories::BaseDirs::new().ok_or(InstallError::NoHome)?;
        Ok(self.config_file_in(dirs.home_dir(), dirs.config_dir()))
    }

    /// What the operator does next for the host to start the server, or to connect to it when
    /// it is `remote`.
    pub(super) fn next_step(self, remote: bool) -> &'static str {
        match self {
            Self::ClaudeDesktop => "quit Claude Desktop completely and start it again",
            Self::ClaudeCode if remote => {
                "new Claude Code sessions connect to it; check with `claude mcp list`"
            }
            Self::ClaudeCode => "new Claude Code sessions start it; check with `claude mcp list`",
            Self::Cursor => "open Cursor Settings > MCP and check that mcp-sessions is enabled",
            Self::Vscode => {
                "in VS Code, run `MCP: List Servers` from the command palette and start mcp-sessions"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_locations_per_host() {
        let home = Path::new("/home/a");
        let linux = Path::new("/home/a/.config");
        let mac = Path::new("/Users/a/Library/Application Support");
        assert_eq!(
            Host::ClaudeDesktop.config_file_in(home, linux),
            Path::new("/home/a/.config/Claude/claude_desktop_config.json")
        );
        assert_eq!(
            Host::ClaudeDesktop.config_file_in(Path::new("/Users/a"), mac),
            Path::new("/Users/a/Library/Application Support/Claude/claude_desktop_config.json")
        );
        assert_eq!(
            Host::Vscode.config_file_in(home, linux),
            Path::new("/home/a/.config/Code/User/mcp.json")
        );
        assert_eq!(
            Host::ClaudeCode.config_file_in(home, linux),
            Path::new("/home/a/.claude.json")
        );
        assert_eq!(
            Host::Cursor.config_file_in(home, linux),
            Path::new("/home/a/.cursor/mcp.json")
        );
    }

    #[test]
    fn each_host_spells_an_environment_reference_its_own_way() {
        let name = "MCP_SESSIONS_TOKEN";
        assert_eq!(
            Host::ClaudeCode.env_reference(name).unwrap(),
            "${MCP_SESSIONS_TOKEN}"
        );
        assert_eq!(
            Host::Vscode.env_reference(name).unwrap(),
            "${env:MCP_SESSIONS_TOKEN}"
        );
        assert_eq!(
            Host::Cursor.env_reference(name).unwrap(),
            "${env:MCP_SESSIONS_TOKEN}"
        );
        let refusal = Host::ClaudeDesktop.env_reference(name).unwrap_err();
        assert!(refusal.contains("Connectors"), "{refusal}");
    }
}
