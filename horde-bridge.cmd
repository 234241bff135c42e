@echo off
rem Starts the worker. Sets up (or updates) the Python runtime in .venv first when needed,
rem then passes every argument on:  horde-bridge.cmd [SUBCOMMAND] [OPTIONS]
rem   horde-bridge.cmd                    run the worker with bridgeData.yaml
rem   horde-bridge.cmd -n "Dreamer 2"     run under another worker name
rem   horde-bridge.cmd check-config       validate bridgeData.yaml and show the resolved settings
rem   horde-bridge.cmd --help             every subcommand and option
setlocal EnableExtensions
cd /d "%~dp0"

call update-runtime.cmd --check
if errorlevel 1 (
    call update-runtime.cmd
    if errorlevel 1 exit /b 1
)
".venv\Scripts\python.exe" -m horde_worker_regen %*
exit /b %ERRORLEVEL%
