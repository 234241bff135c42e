#!/usr/bin/env bash
# Creates or updates the worker's Python runtime in ./.venv from the pinned versions in
# requirements/constraints.txt. Safe to run again: it returns at once when nothing changed.
#
#   ./update-runtime.sh            install or update (CUDA build of torch when nvidia-smi works, else CPU)
#   ./update-runtime.sh --rocm     AMD GPUs (ROCm build of torch)
#   ./update-runtime.sh --cpu      force the CPU build of torch
#   ./update-runtime.sh --cuda     force the CUDA build of torch
#   ./update-runtime.sh --dev      also install the test and lint tools
#   ./update-runtime.sh --check    exit 0 if the runtime is up to date, 1 if not (installs nothing)
#
# Environment: PYTHON=/path/to/python3.x picks the interpreter (3.10 to 3.12);
# HORDE_TORCH_INDEX_URL overrides the extra package index torch is taken from.
set -euo pipefail

cd "$(dirname "$0")"

CONSTRAINTS="requirements/constraints.txt"
VENV=".venv"
ROCM_INDEX="https://download.pytorch.org/whl/rocm6.4"
CPU_INDEX="https://download.pytorch.org/whl/cpu"

flavour=""
dev=0
check_only=0
for arg in "$@"; do
    case "$arg" in
        --rocm) flavour="rocm" ;;
        --cpu) flavour="cpu" ;;
        --cuda) flavour="cuda" ;;
        --dev) dev=1 ;;
        --check) check_only=1 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "update-runtime.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
    esac
done

find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3 python3.11 python3.12 python3.10; do
        [ -n "$candidate" ] || continue
        command -v "$candidate" >/dev/null 2>&1 || continue
        if "$candidate" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 12) else 1)' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

# The flavour given on the command line wins; otherwise the one this runtime was built with;
# otherwise what the machine has.
if [ -z "$flavour" ] && [ -f "$VENV/.runtime-flavour" ]; then
    flavour="$(cat "$VENV/.runtime-flavour")"
fi
if [ -z "$flavour" ]; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        flavour="cuda"
    else
        flavour="cpu"
    fi
fi
case "$flavour" in
    cuda) torch_index="${HORDE_TORCH_INDEX_URL:-}" ;;  # PyPI's Linux torch wheels are CUDA builds
    rocm) torch_index="${HORDE_TORCH_INDEX_URL:-$ROCM_INDEX}" ;;
    *) torch_index="${HORDE_TORCH_INDEX_URL:-$CPU_INDEX}" ;;
esac

stamp=""
if [ -x "$VENV/bin/python" ]; then
    stamp="$("$VENV/bin/python" requirements/stamp.py "$flavour" 2>/dev/null || true)"
fi
installed_stamp="$(cat "$VENV/.runtime-stamp" 2>/dev/null || true)"
dev_installed=0
if [ -f "$VENV/.runtime-dev" ]; then dev_installed=1; fi

if [ -n "$stamp" ] && [ "$stamp" = "$installed_stamp" ] && [ "$dev" -le "$dev_installed" ]; then
    [ "$check_only" = 1 ] || echo "Runtime is up to date ($flavour build of torch) in $VENV."
    exit 0
fi
if [ "$check_only" = 1 ]; then exit 1; fi

if [ ! -x "$VENV/bin/python" ]; then
    if ! python_bin="$(find_python)"; then
        echo "update-runtime.sh: no Python 3.10, 3.11 or 3.12 found. Install one (e.g. apt install python3.11 python3.11-venv)" >&2
        echo "or point PYTHON at it: PYTHON=/usr/bin/python3.11 ./update-runtime.sh" >&2
        exit 1
    fi
    echo "Creating $VENV with $("$python_bin" --version)..."
    "$python_bin" -m venv "$VENV"
fi

# --no-compile: pip would byte-compile all ~21,000 files of the stack (about 40 percent of a cold
# install); Python compiles each module when it is first imported, and no other file is ever needed.
pip_install=("$VENV/bin/python" -m pip --disable-pip-version-check install -q --no-compile -c "$CONSTRAINTS")
echo "Installing torch ($flavour build)..."
torch_args=()
# One quick try before pip gets the torch index: pip itself would retry an unreachable one for minutes.
if [ -n "$torch_index" ] && ! "$VENV/bin/python" requirements/index_reachable.py "$torch_index"; then
    echo "update-runtime.sh: the torch index $torch_index cannot be reached; skipping it (torch comes from the default index)" >&2
    torch_index=""
fi
if [ -n "$torch_index" ]; then torch_args=(--extra-index-url "$torch_index"); fi
# torch and torchvision come first and alone (--no-deps): they are the only packages that need
# the GPU-specific index, and asking that index about every other package would be slow. Their
# own dependencies come from the default index in the next step.
"${pip_install[@]}" --no-deps "${torch_args[@]}" torch torchvision

extras=""
if [ "$dev" = 1 ] || [ "$dev_installed" = 1 ]; then extras="[dev]"; fi
echo "Installing the worker and its pinned dependencies..."
"${pip_install[@]}" -e ".$extras"

echo "$flavour" > "$VENV/.runtime-flavour"
if [ -n "$extras" ]; then touch "$VENV/.runtime-dev"; fi
"$VENV/bin/python" requirements/stamp.py "$flavour" > "$VENV/.runtime-stamp"
echo "Runtime ready ($flavour build of torch) in $VENV."
