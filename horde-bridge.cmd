@echo off
rem Starts the worker. Sets up (or updates) the Python runtime in .venv first when needed,
rem then passes every argument on:  horde-bridge.cmd [SUBCOMMAND] [OPTIONS]
rem   horde-bridge.cmd                    run the worker with bridgeData.yaml
rem   horde-bridge.cmd -n "Dreamer 2"     run under another worker name
rem   horde-bridge.cmd check-config       validate bridgeData.yaml and show the resolved settings
rem   horde-bridge.cmd --local            demo: a local horde, demo requests, the worker, images saved
rem   horde-bridge.cmd --help             every subcommand and option
setlocal EnableExtensions
cd /d "%~dp0"

call update-runtime.cmd --check
if errorlevel 1 (
    call update-runtime.cmd
    if errorlevel 1 exit /b 1
)
if /i "%~1"=="--local" goto local
".venv\Scripts\python.exe" -m horde_worker_regen %*
exit /b %ERRORLEVEL%

:local
rem --local is the demo subcommand; the options after it (at most eight) go on to it.
".venv\Scripts\python.exe" -m horde_worker_regen demo %2 %3 %4 %5 %6 %7 %8 %9
exit /b %ERRORLEVEL%
