#!/usr/bin/env bash
# Builds and installs mcp-sessions into ~/.cargo/bin from this checkout, then prints how to
# register it with a host (`mcp-sessions install <host>`; see README.md and the snippets beside
# this script).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo install --path . --locked
command -v chromium >/dev/null || command -v google-chrome >/dev/null || \
  echo "note: no Chromium found; the browser tools need one (Debian/Ubuntu: apt-get install chromium)" >&2
echo "installed: $(command -v mcp-sessions || echo ~/.cargo/bin/mcp-sessions)"
echo "next, register it with your host (one command each; the password is prompted for):"
echo "  mcp-sessions install claude-desktop --user NAME   (or claude-code, cursor, vscode; --dry-run shows the file first)"
echo "then check everything with: mcp-sessions doctor"
echo "by hand instead: the snippets in install/ (claude-desktop.json, cursor.json, vscode.json, claude-code.sh)"
