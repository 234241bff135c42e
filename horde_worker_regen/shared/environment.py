"""Environment variables the worker and the local horde agree on."""

from __future__ import annotations

# Where the worker fetches the image model reference from (the demo points it at its local horde).
REFERENCE_URL_ENV = "HORDE_MODEL_REFERENCE_URL"
