# Builds and installs mcp-sessions into %USERPROFILE%\.cargo\bin from this checkout (Windows),
# then prints how to register it with a host. Run from PowerShell:
#   powershell -ExecutionPolicy Bypass -File install\install.ps1
$ErrorActionPreference = 'Stop'
Set-Location (Join-Path $PSScriptRoot '..')

cargo install --path . --locked
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }

$root = if ($env:CARGO_INSTALL_ROOT) { $env:CARGO_INSTALL_ROOT } elseif ($env:CARGO_HOME) { $env:CARGO_HOME } else { Join-Path $env:USERPROFILE '.cargo' }
$exe = Join-Path $root 'bin\mcp-sessions.exe'
$chrome = @(
  "$env:ProgramFiles\Google\Chrome\Application\chrome.exe",
  "${env:ProgramFiles(x86)}\Google\Chrome\Application\chrome.exe"
) | Where-Object { $_ -and (Test-Path $_) } | Select-Object -First 1
if (-not $chrome -and -not $env:CHROME_PATH) {
  Write-Warning 'no Chrome found: the browser tools need one (install Google Chrome, or set CHROME_PATH)'
}

Write-Host "installed: $exe"
Write-Host 'next, register it with your host (one command each; the password is prompted for):'
Write-Host '  mcp-sessions install claude-desktop --user NAME   # %APPDATA%\Claude\claude_desktop_config.json'
Write-Host '  mcp-sessions install claude-code --user NAME      # %USERPROFILE%\.claude.json'
Write-Host '  mcp-sessions install cursor --user NAME           # %USERPROFILE%\.cursor\mcp.json'
Write-Host '  mcp-sessions install vscode --user NAME           # %APPDATA%\Code\User\mcp.json'
Write-Host 'add --dry-run to see the resulting file first; then check everything with: mcp-sessions doctor'
