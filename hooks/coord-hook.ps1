# Claude Code SessionStart wrapper for Windows PowerShell.
# A machine without coord-hook installed must still start sessions: when the
# binary is missing, say nothing and exit 0.
$bin = if ($env:COORD_HOOK_BIN) { $env:COORD_HOOK_BIN } else { "coord-hook" }
if (-not (Get-Command $bin -ErrorAction SilentlyContinue)) { exit 0 }
$input | & $bin --format json @args
exit 0
