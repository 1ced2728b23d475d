#!/bin/sh
# Claude Code SessionStart wrapper for POSIX shells (Linux, macOS).
# A machine without coord-hook installed must still start sessions: when the
# binary is missing, say nothing and exit 0.
bin="${COORD_HOOK_BIN:-coord-hook}"
command -v "$bin" >/dev/null 2>&1 || exit 0
exec "$bin" --format json "$@"
