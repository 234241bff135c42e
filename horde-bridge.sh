#!/usr/bin/env bash
# Starts the worker. Sets up (or updates) the Python runtime in ./.venv first when needed,
# then passes every argument on:  ./horde-bridge.sh [SUBCOMMAND] [OPTIONS]
#   ./horde-bridge.sh                     run the worker with ./bridgeData.yaml
#   ./horde-bridge.sh -n "Dreamer 2"      run under another worker name
#   ./horde-bridge.sh check-config        validate bridgeData.yaml and show the resolved settings
#   ./horde-bridge.sh --local             demo: a local horde, demo requests, the worker, images saved
#   ./horde-bridge.sh --help              every subcommand and option
set -euo pipefail

cd "$(dirname "$0")"

if ! ./update-runtime.sh --check; then
    ./update-runtime.sh
fi
if [ "${1:-}" = "--local" ]; then
    set -- demo "${@:2}"
fi
exec .venv/bin/python -m horde_worker_regen "$@"
