#!/usr/bin/env bash
# Builds and installs mcp-sessions into ~/.cargo/bin from this checkout, then prints how to
# register it with a host (see README.md and the snippets beside this script).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo install --path . --locked
command -v chromium >/dev/null || command -v google-chrome >/dev/null || \
  echo "note: no Chromium found; the browser tools need one (Debian/Ubuntu: apt-get install chromium)" >&2
echo "installed: $(command -v mcp-sessions || echo ~/.cargo/bin/mcp-sessions)"
echo "next: mcp-sessions user add NAME --role user   (password read from stdin or a prompt)"
echo "then: add the entry from install/claude-desktop.json (or cursor.json, vscode.json, claude-code.sh) to your host"
