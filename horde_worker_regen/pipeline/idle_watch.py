"""`minutes_allowed_without_jobs`: a clear warning when the horde has given no job for that long.

A worker that pops nothing for half an hour is usually set up so that nobody's request fits it
(models nobody asks for, a `max_power` below what the waiting requests need, kinds of job turned
off). Each "no job" answer counts why the horde passed the waiting requests by (`skipped`); once
per period without a job the worker logs one WARNING naming the key, the likely reasons and the
horde's own counts over that period. 0 turns it off.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from loguru import logger

# What each `skipped` reason of a no-job answer means for the operator (horde-api.md §3.3).
SKIP_HINTS = {
    "models": "requests are for models this worker does not offer (models_to_load)",
    "max_pixels": "requests are larger than max_power allows",
    "img2img": "img2img requests while allow_img2img is off",
    "painting": "inpainting requests while allow_painting is off",
    "lora": "LoRA requests while allow_lora is off",
    "controlnet": "ControlNet requests while allow_controlnet is off",
    "post-processing": "post-processing requests while allow_post_processing is off",
    "nsfw": "NSFW requests while nsfw is off",
    "unsafe_ip": "requests that refuse this worker's IP (VPN or proxy)",
    "untrusted": "requests that want trusted workers only",
    "performance": "requests that want a faster (or slower) worker",
    "worker_id": "requests meant for other workers",
    "blacklist": "requests with words in this worker's blacklist",
    "kudos": "requests whose owner lacks the kudos",
    "step_count": "requests with more steps than this worker takes",
    "bridge_version": "requests needing a feature this worker does not offer",
}


class IdleWatch:
    """Counts the time since the last job and warns once per `minutes` without one."""

    def __init__(self, minutes: int, max_power: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._period = minutes * 60.0
        self._minutes = minutes
        self._max_power = max_power
        self._clock = clock
        self._since = clock()
        self._skipped: Counter[str] = Counter()

    def job_arrived(self) -> None:
        """A job came: the period starts again."""
        self._since = self._clock()
        self._skipped.clear()

    def no_job(self, skipped: Mapping[str, int], models: Sequence[str]) -> str | None:
        """Record a no-job answer; the warning logged when a whole period has passed without a job."""
        self._skipped.update({reason: count for reason, count in skipped.items() if count > 0})
        if self._period <= 0 or self._clock() - self._since < self._period:
            return None
        message = self._message(models)
        logger.warning(message)
        self.job_arrived()  # the next warning comes after another whole period
        return message

    def _message(self, models: Sequence[str]) -> str:
        offered = ", ".join(models[:5]) + (f" and {len(models) - 5} more" if len(models) > 5 else "")
        lines = [
            f"No job for {self._minutes} minutes (minutes_allowed_without_jobs: {self._minutes}). Likely reasons: "
            f"nobody is asking for the models offered ({offered or 'none'}); max_power {self._max_power} is "
            "too low for the requests waiting; kinds of job this worker turns off (allow_* keys)."
        ]
        if self._skipped:
            counts = "; ".join(
                f"{SKIP_HINTS.get(reason, reason)}: {count}" for reason, count in self._skipped.most_common()
            )
            lines.append(f"The horde passed requests by for: {counts}.")
        return " ".join(lines)
