"""A fake safety backend: flags images by a marker in the prompt, so censoring is testable."""

from __future__ import annotations

from horde_worker_regen.config.sections import FakeSafetySettings
from horde_worker_regen.safety.backend import SafetyScores


class FakeSafetyBackend:
    """Implements `SafetyBackend`: NSFW if the prompt holds `nsfw_marker`, CSAM if it holds `csam_marker`."""

    name = "fake"

    def __init__(self, settings: FakeSafetySettings) -> None:
        self._settings = settings

    def check(self, image: bytes, prompt: str) -> SafetyScores:
        """The verdict, from the prompt alone (the image is not looked at)."""
        is_csam = self._settings.csam_marker in prompt
        return SafetyScores(is_nsfw=is_csam or self._settings.nsfw_marker in prompt, is_csam=is_csam)
