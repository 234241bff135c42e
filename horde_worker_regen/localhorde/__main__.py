"""`python -m horde_worker_regen.localhorde`: serve the local horde standalone."""

import sys

from horde_worker_regen.localhorde.command import main

sys.exit(main())
