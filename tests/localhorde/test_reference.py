"""The bundled model reference, tag-based baselines, registration, and URL signing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from horde_worker_regen.localhorde.jobs import seed_to_int
from horde_worker_regen.localhorde.reference import ModelRecord, ModelReference
from horde_worker_regen.localhorde.urls import UrlCheck, UrlSigner


def test_bundled_reference_covers_every_baseline() -> None:
    reference = ModelReference.bundled()
    baselines = {reference.baseline(name) for name in reference.names()}
    assert baselines == {
        "stable diffusion 1", "stable diffusion 2", "stable diffusion 2 512", "stable_diffusion_xl",
        "stable_cascade", "flux_1",
    }  # fmt: skip
    assert reference.is_inpainting("Deliberate Inpainting") and not reference.is_inpainting("Deliberate")
    assert reference.is_nsfw("Hentai Diffusion") and not reference.is_nsfw("stable_diffusion")
    assert reference.step_limit("Flux.1-Schnell fp8 (Compact)") == 6
    assert reference.step_limit("Deliberate") == 30


@pytest.mark.parametrize(
    ("name", "baseline"),
    [
        ("My Merge [SDXL]", "stable_diffusion_xl"),
        ("Something [Flux]", "flux_1"),
        ("Qwen thing [Qwen]", "qwen_image"),
        ("Fast [ZImage]", "z_image_turbo"),
        ("Plain Unknown", None),
    ],
)
def test_unknown_names_map_by_tag(name: str, baseline: str | None) -> None:
    reference = ModelReference.bundled()
    assert not reference.is_known(name)
    assert reference.baseline(name) == baseline


def test_register_and_load_another_file(tmp_path: Path) -> None:
    reference = ModelReference.bundled()
    reference.register(ModelRecord(name="Test Checkpoint", baseline="stable_diffusion_xl", inpainting=True))
    assert reference.is_known("Test Checkpoint") and reference.is_inpainting("Test Checkpoint")
    path = tmp_path / "ref.json"
    path.write_text(json.dumps(reference.to_json()), encoding="utf-8")
    loaded = ModelReference.load(path)
    assert loaded.names() == reference.names()
    assert loaded.get("Test Checkpoint") == reference.get("Test Checkpoint")


@pytest.mark.parametrize(
    ("seed", "expected"),
    [
        ("42", 42),
        ("", None),
        (None, None),
        (7, 7),
        (str(2**40), 2**40 >> 32),
        ("abc", int.from_bytes(b"abc", "little")),
    ],
)
def test_seed_to_int(seed: str | int | None, expected: int | None) -> None:
    value = seed_to_int(seed)
    assert 0 <= value < 2**32
    if expected is not None:
        assert value == expected


def test_signed_urls() -> None:
    signer = UrlSigner(b"secret")
    url = signer.url("http://h", "PUT", "bucket", "k.webp", issued=1_767_225_600, lifetime=1800)
    query = dict(part.split("=", 1) for part in url.split("?", 1)[1].split("&"))
    assert url.startswith("http://h/r2/bucket/k.webp?") and query["X-Amz-Date"] == "20260101T000000Z"
    assert signer.check("PUT", "bucket", "k.webp", query, 1_767_225_600 + 1800) is UrlCheck.OK
    assert signer.check("PUT", "bucket", "k.webp", query, 1_767_225_600 + 1801) is UrlCheck.EXPIRED
    assert signer.check("GET", "bucket", "k.webp", query, 1_767_225_600) is UrlCheck.INVALID
    assert signer.check("PUT", "bucket", "other.webp", query, 1_767_225_600) is UrlCheck.INVALID
    assert UrlSigner(b"other").check("PUT", "bucket", "k.webp", query, 1_767_225_600) is UrlCheck.INVALID
    assert signer.check("PUT", "bucket", "k.webp", {}, 0) is UrlCheck.INVALID
