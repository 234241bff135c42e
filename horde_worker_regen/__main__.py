"""`python -m horde_worker_regen`: the worker's command line."""

import sys

from horde_worker_regen.worker.stop_signals import StopRequested, stop_signals

# Before the slow imports below: a SIGTERM or Ctrl+C during them ends the command with exit 0.
stop_signals.install()
try:
    from horde_worker_regen.cli import main

    status = main()
except StopRequested:
    status = 0
sys.exit(status)
