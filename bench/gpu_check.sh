#!/usr/bin/env bash
# The GPU check: the real CUDA path with two slots against the local horde, read through NVML.
# Run from anywhere on a machine with an NVIDIA GPU, after ./update-runtime.sh (which takes the CUDA
# build of torch when nvidia-smi works). It builds the random-weight test checkpoint (nothing is
# downloaded), so it needs no model hub. Options go to bench/gpu_check.py (--jobs, --size, --steps,
# --write to append the figures to bench/RESULTS.md). Finishes in under five minutes or gives up.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    echo "gpu_check.sh: no runtime in .venv; run ./update-runtime.sh first" >&2
    exit 1
fi
if [ "$(.venv/bin/python -c 'import torch; print(torch.cuda.is_available())')" != "True" ]; then
    case " $* " in
        *" --cpu "*) ;;
        *) echo "gpu_check.sh: torch sees no CUDA GPU here (CPU build of torch, or no driver); rebuild with ./update-runtime.sh --cuda, or pass --cpu to check the plumbing only" >&2
           exit 2 ;;
    esac
fi
exec timeout 290 .venv/bin/python -m bench.gpu_check "$@"
