#!/usr/bin/env bash
# Registers mcp-sessions with Claude Code for the current user, with a bootstrap user whose
# password stays in a 0600 file (never in the host's configuration, never through the model).
# Usage: install/claude-code.sh USERNAME PASSWORD_FILE
set -euo pipefail
user=${1:?usage: $0 USERNAME PASSWORD_FILE}
password_file=${2:?usage: $0 USERNAME PASSWORD_FILE}
claude mcp add mcp-sessions --scope user \
  -e MCP_SESSIONS_USER="$user" \
  -e MCP_SESSIONS_PASSWORD_FILE="$password_file" \
  -- "$(command -v mcp-sessions)"
