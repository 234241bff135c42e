"""The alchemy form names, the image tiles they are measured in, and the deadlines they run under.

Follows horde-v13-and-alchemy.md §3: the form enum of `InterrogationPopInput` and
`ModelInterrogationFormStable` (the interrogator forms plus every `KNOWN_POST_PROCESSORS` key),
`calculate_image_tiles` (horde/image.py), the 255-tile limit of `/v2/interrogate/async`, and the
deadlines of `InterrogationForms.pop` / `check_interrogations`.
"""

from __future__ import annotations

import math

from horde_worker_regen.localhorde.schemas import KNOWN_POST_PROCESSORS

INTERROGATOR_FORMS = ("caption", "interrogation", "nsfw", "vectorize", "palette", "describe", "aesthetic")
POST_PROCESSOR_FORMS = frozenset(KNOWN_POST_PROCESSORS)  # strip_background included: they all upload a WebP
FORM_NAMES = (*INTERROGATOR_FORMS, *KNOWN_POST_PROCESSORS)

TILE_SIZE = 512
MAX_REQUEST_TILES = 255  # `/v2/interrogate/async` refuses bigger images
DEFAULT_MAX_TILES = 80  # the pop parser's default (the swagger model says 16)
MAX_POP_TILES = 256
FORM_TTL_S = 3 * 60  # a popped form must be submitted within 3 minutes
INTERROGATION_EXPIRY_S = 20 * 60  # a request lives 20 minutes from creation or its latest pop
MAX_SOURCE_BYTES = 5 * 1024 * 1024  # a requester's URL must serve at most 5 MB


def image_tiles(width: int, height: int) -> int:
    """How many 512x512 tiles cover an image: `ceil(w/512) * ceil(h/512)`."""
    return math.ceil(width / TILE_SIZE) * math.ceil(height / TILE_SIZE)


def is_post_processor(form: str) -> bool:
    """A form whose result is an image uploaded to `r2_upload` (upscalers, face fixers, strip_background)."""
    return form in POST_PROCESSOR_FORMS
