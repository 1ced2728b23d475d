@echo off
rem Claude Code SessionStart wrapper for Windows (cmd.exe).
rem A machine without coord-hook installed must still start sessions:
rem when the binary is missing, say nothing and exit 0.
if "%COORD_HOOK_BIN%"=="" set "COORD_HOOK_BIN=coord-hook"
where "%COORD_HOOK_BIN%" >nul 2>nul || exit /b 0
"%COORD_HOOK_BIN%" --format json %*
exit /b 0
