@echo off
rem Claude Code hook wrapper for Windows (cmd.exe).
rem A machine without coord-hook installed must still start sessions: when
rem the binary is missing, say nothing and exit 0. COORD_HOOK_BIN may name
rem the binary by full path or by a name found on the PATH. (No `where`:
rem it rejects full paths, and some systems lack it.)
setlocal
if "%COORD_HOOK_BIN%"=="" set "COORD_HOOK_BIN=coord-hook.exe"
set "COORD_HOOK_FOUND="
if exist "%COORD_HOOK_BIN%" set "COORD_HOOK_FOUND=%COORD_HOOK_BIN%"
if not defined COORD_HOOK_FOUND call :onpath "%COORD_HOOK_BIN%"
if not defined COORD_HOOK_FOUND call :onpath "%COORD_HOOK_BIN%.exe"
if not defined COORD_HOOK_FOUND exit /b 0
"%COORD_HOOK_FOUND%" --format json %*
exit /b 0

:onpath
set "COORD_HOOK_FOUND=%~$PATH:1"
exit /b 0
