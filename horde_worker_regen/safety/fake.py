"""A fake safety backend: flags images by a marker in the prompt, so censoring is testable; and fake
analysis forms, answered from the picture's size and colour, in the shapes the real backend gives."""

from __future__ import annotations

from collections.abc import Mapping

from PIL import Image, ImageStat

from horde_worker_regen.config.sections import FakeSafetySettings
from horde_worker_regen.safety.backend import SafetyScores
from horde_worker_regen.safety.caption_options import CaptionOptions
from horde_worker_regen.safety.ranking import INTERROGATION_CATEGORIES, Ranked, top_ranked

# A few labels per category, enough for a top five; made up, and said to be.
FAKE_LABEL_COUNT = 7


def fake_labels(category: str) -> tuple[str, ...]:
    """The fake word list of one interrogation category."""
    return tuple(f"fake {category} label {index}" for index in range(FAKE_LABEL_COUNT))


class FakeSafetyBackend:
    """Implements `FormBackend`: NSFW if the prompt holds `nsfw_marker`, CSAM if it holds `csam_marker`."""

    name = "fake"

    def __init__(self, settings: FakeSafetySettings) -> None:
        self._settings = settings

    def check(self, image: bytes, prompt: str) -> SafetyScores:
        """The verdict, from the prompt alone (the image is not looked at); no prompt is never NSFW."""
        is_csam = self._settings.csam_marker in prompt
        return SafetyScores(is_nsfw=is_csam or self._settings.nsfw_marker in prompt, is_csam=is_csam)

    def interrogate(self, picture: Image.Image) -> Mapping[str, list[Ranked]]:
        """Every category ranked by made-up similarities that follow the picture's mean colour."""
        red, green, blue = (channel / 255.0 for channel in ImageStat.Stat(picture.convert("RGB")).mean)
        similarities = [((red * (index + 1) + green * index + blue) % 1.0) * 0.3 for index in range(FAKE_LABEL_COUNT)]
        return {category: top_ranked(fake_labels(category), similarities) for category in INTERROGATION_CATEGORIES}

    def caption(self, picture: Image.Image, options: CaptionOptions) -> str:
        """A caption that says what it is."""
        return f"a fake caption of a {picture.width}x{picture.height} picture ({options.num_beams} beams)"
