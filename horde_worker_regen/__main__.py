"""`python -m horde_worker_regen`: the worker's command line."""

import sys

from horde_worker_regen.cli import main

sys.exit(main())
