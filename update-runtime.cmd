@echo off
rem Creates or updates the worker's Python runtime in .venv from the pinned versions in
rem requirements\constraints.txt. Safe to run again: it returns at once when nothing changed.
rem
rem   update-runtime.cmd            install or update (CUDA build of torch when nvidia-smi works, else CPU)
rem   update-runtime.cmd --cpu      force the CPU build of torch
rem   update-runtime.cmd --cuda     force the CUDA build of torch
rem   update-runtime.cmd --rocm     AMD GPUs: PyTorch's ROCm builds are Linux-only (use update-runtime.sh)
rem   update-runtime.cmd --dev      also install the test and lint tools
rem   update-runtime.cmd --check    exit 0 if the runtime is up to date, 1 if not (installs nothing)
rem
rem Environment: PYTHON=C:\path\to\python.exe picks the interpreter (3.10 to 3.12);
rem HORDE_TORCH_INDEX_URL overrides the extra package index torch is taken from.
setlocal EnableExtensions EnableDelayedExpansion
cd /d "%~dp0"

set "CONSTRAINTS=requirements\constraints.txt"
set "VENV=.venv"
set "VENV_PY=.venv\Scripts\python.exe"
rem On Windows PyPI's torch wheels are CPU builds, so the CUDA build comes from PyTorch's index.
set "CUDA_INDEX=https://download.pytorch.org/whl/cu128"
set "CPU_INDEX=https://download.pytorch.org/whl/cpu"
set "FLAVOUR="
set "DEV=0"
set "CHECK=0"

:parse
if "%~1"=="" goto parsed
if /i "%~1"=="--cpu" (
    set "FLAVOUR=cpu"
) else if /i "%~1"=="--cuda" (
    set "FLAVOUR=cuda"
) else if /i "%~1"=="--rocm" (
    echo update-runtime.cmd: PyTorch publishes ROCm builds for Linux only; run update-runtime.sh --rocm there. 1>&2
    exit /b 2
) else if /i "%~1"=="--dev" (
    set "DEV=1"
) else if /i "%~1"=="--check" (
    set "CHECK=1"
) else (
    echo update-runtime.cmd: unknown option '%~1' ^(see the comments at the top of this file^) 1>&2
    exit /b 2
)
shift
goto parse
:parsed

rem The flavour given on the command line wins; otherwise the one this runtime was built with;
rem otherwise what the machine has.
if not defined FLAVOUR if exist "%VENV%\.runtime-flavour" set /p FLAVOUR=<"%VENV%\.runtime-flavour"
if not defined FLAVOUR (
    nvidia-smi -L >nul 2>&1
    if errorlevel 1 (set "FLAVOUR=cpu") else (set "FLAVOUR=cuda")
)
if /i "%FLAVOUR%"=="cuda" (set "TORCH_INDEX=%CUDA_INDEX%") else (set "TORCH_INDEX=%CPU_INDEX%")
if defined HORDE_TORCH_INDEX_URL set "TORCH_INDEX=%HORDE_TORCH_INDEX_URL%"

set "DEV_INSTALLED=0"
if exist "%VENV%\.runtime-dev" set "DEV_INSTALLED=1"
set "STAMP="
set "INSTALLED_STAMP="
if exist "%VENV_PY%" (
    for /f "delims=" %%s in ('.venv\Scripts\python.exe requirements\stamp.py %FLAVOUR%') do set "STAMP=%%s"
    if exist "%VENV%\.runtime-stamp" set /p INSTALLED_STAMP=<"%VENV%\.runtime-stamp"
)
if defined STAMP if "!STAMP!"=="!INSTALLED_STAMP!" if !DEV! LEQ !DEV_INSTALLED! (
    if "%CHECK%"=="0" echo Runtime is up to date ^(%FLAVOUR% build of torch^) in %VENV%.
    exit /b 0
)
if "%CHECK%"=="1" exit /b 1

if not exist "%VENV_PY%" (
    call :find_python
    if not defined PYTHON_BIN (
        echo update-runtime.cmd: no Python 3.10, 3.11 or 3.12 found. Install one from https://www.python.org/downloads/ 1>&2
        echo or point PYTHON at it: set PYTHON=C:\Python311\python.exe 1>&2
        exit /b 1
    )
    echo Creating %VENV%...
    !PYTHON_BIN! -m venv "%VENV%" || exit /b 1
)

echo Installing torch ^(%FLAVOUR% build^)...
rem --no-compile: pip would byte-compile all ~21,000 files of the stack (about 40 percent of a cold
rem install); Python compiles each module when it is first imported, and no other file is ever needed.
rem torch and torchvision come first and alone (--no-deps): they are the only packages that need
rem the GPU-specific index. Their own dependencies come from the default index in the next step.
rem One quick try before pip gets the torch index: pip itself would retry an unreachable one for minutes.
set "TORCH_ARGS=--extra-index-url "%TORCH_INDEX%""
if not defined TORCH_INDEX set "TORCH_ARGS="
if defined TORCH_INDEX (
    "%VENV_PY%" requirements\index_reachable.py "%TORCH_INDEX%"
    if errorlevel 1 (
        echo update-runtime.cmd: the torch index %TORCH_INDEX% cannot be reached; skipping it ^(torch comes from the default index^) 1>&2
        set "TORCH_ARGS="
    )
)
"%VENV_PY%" -m pip --disable-pip-version-check install -q --no-compile --no-deps -c "%CONSTRAINTS%" %TORCH_ARGS% torch torchvision || exit /b 1

set "EXTRAS="
if "%DEV%"=="1" set "EXTRAS=[dev]"
if "%DEV_INSTALLED%"=="1" set "EXTRAS=[dev]"
echo Installing the worker and its pinned dependencies...
"%VENV_PY%" -m pip --disable-pip-version-check install -q --no-compile -c "%CONSTRAINTS%" -e ".%EXTRAS%" || exit /b 1

for /f "delims=" %%s in ('.venv\Scripts\python.exe requirements\stamp.py %FLAVOUR%') do set "STAMP=%%s"
>"%VENV%\.runtime-flavour" echo %FLAVOUR%
if defined EXTRAS type nul >"%VENV%\.runtime-dev"
>"%VENV%\.runtime-stamp" echo !STAMP!
echo Runtime ready ^(%FLAVOUR% build of torch^) in %VENV%.
exit /b 0

:find_python
set "PYTHON_BIN="
if defined PYTHON (
    "%PYTHON%" -c "import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 12) else 1)" >nul 2>&1 && set "PYTHON_BIN="%PYTHON%""
    if defined PYTHON_BIN exit /b 0
)
python -c "import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 12) else 1)" >nul 2>&1 && set "PYTHON_BIN=python"
if defined PYTHON_BIN exit /b 0
for %%v in (3.11 3.12 3.10) do (
    if not defined PYTHON_BIN (
        py -%%v -c "import sys" >nul 2>&1 && set "PYTHON_BIN=py -%%v"
    )
)
exit /b 0
