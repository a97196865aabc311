#!/usr/bin/env bash
# Builds and installs mcp-sessions into ~/.cargo/bin from this checkout, then prints how to
# register it with a host (`mcp-sessions install <host>`; see README.md and the snippets beside
# this script).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo install --path . --locked
command -v chromium >/dev/null || command -v google-chrome >/dev/null || \
  echo "note: no Chromium found; the browser tools need one (Debian/Ubuntu: apt-get install chromium)" >&2
installed="${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin/mcp-sessions"
echo "installed: $installed"
on_path=$(command -v mcp-sessions || true)
if [ -z "$on_path" ]; then
  echo "note: $(dirname "$installed") is not on PATH: add it, or use the full path below" >&2
elif [ "$on_path" != "$installed" ]; then
  echo "note: another mcp-sessions comes first on PATH ($on_path): use the full path below" >&2
fi
echo "next, register it with your host (one command each; the password is prompted for):"
echo "  mcp-sessions install claude-desktop --user NAME   (or claude-code, cursor, vscode; --dry-run shows the file first)"
echo "then check everything with: mcp-sessions doctor"
echo "by hand instead: the snippets in install/ (claude-desktop.json, cursor.json, vscode.json, claude-code.sh)"
