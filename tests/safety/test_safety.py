"""The censoring policy, the censor images and the fake safety backend."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from horde_worker_regen.config.sections import FakeSafetySettings
from horde_worker_regen.jobs.spec import CensorPolicy
from horde_worker_regen.safety.backend import SafetyScores
from horde_worker_regen.safety.censor import censor_image
from horde_worker_regen.safety.fake import FakeSafetyBackend
from horde_worker_regen.safety.policy import censor_policy, censorlist_hit, censorship_for

CLEAN, NSFW, CSAM = SafetyScores(False, False), SafetyScores(True, False), SafetyScores(True, True)


@pytest.mark.parametrize(
    ("worker_nsfw", "use_nsfw_censor", "prompt", "censor_nsfw"),
    [
        (True, False, "a cat", False),  # NSFW worker, NSFW allowed
        (False, False, "a cat", True),  # SFW worker
        (True, True, "a cat", True),  # the requester asked for the censor
        (True, False, "a BadWord cat ### blurry", True),  # censorlist, any case
        (True, False, "a cat ### badword", True),  # the negative prompt counts too
    ],
)
def test_when_nsfw_images_are_censored(
    worker_nsfw: bool, use_nsfw_censor: bool, prompt: str, censor_nsfw: bool
) -> None:
    policy = censor_policy(
        worker_nsfw=worker_nsfw, use_nsfw_censor=use_nsfw_censor, prompt=prompt, censorlist=["badword"]
    )
    assert policy.censor_nsfw is censor_nsfw
    assert censorship_for(NSFW, policy) == ("nsfw" if censor_nsfw else None)
    assert censorship_for(CLEAN, policy) is None
    assert censorship_for(CSAM, policy) == "csam"  # always


def test_censorlist_ignores_empty_words() -> None:
    assert not censorlist_hit("anything", ["", "zebra"])
    assert censorlist_hit("A Zebra", ["zebra"])


@pytest.mark.parametrize("kind", ["nsfw", "csam"])
def test_censor_images_are_webp_of_the_requested_size_and_cached(kind: str) -> None:
    data = censor_image(kind, 640, 384)
    image = Image.open(io.BytesIO(data))
    assert image.format == "WEBP" and image.size == (640, 384)
    assert censor_image(kind, 640, 384) is data


def test_the_fake_backend_flags_by_marker() -> None:
    backend = FakeSafetyBackend(FakeSafetySettings(nsfw_marker="[n]", csam_marker="[c]"))
    assert backend.check(b"", "plain") == CLEAN
    assert backend.check(b"", "x [n]") == NSFW
    assert backend.check(b"", "x [c]") == CSAM


def test_policy_defaults_are_strict_nowhere() -> None:
    assert CensorPolicy(censor_nsfw=False).censorlist_hit is False
